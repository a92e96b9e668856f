//! Text-quality metrics: exact match, token F1, corpus BLEU and chrF.
//!
//! BLEU and chrF follow sacrebleu 2.x (BLEU: `13a` tokenisation, 4-grams, brevity penalty,
//! `exp` smoothing; chrF: character 6-grams without whitespace, beta 2, per-order F-scores
//! averaged), computed case-insensitively (`sacrebleu -lc`), like the exact-match figure:
//! bank phrases are stored in their original case and capitalised by post-processing.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

pub use crate::text::token_f1;

/// Lower-cases and collapses whitespace: the comparison used for exact-match figures.
pub fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether two texts are equal case-insensitively with whitespace collapsed.
pub fn same_text(a: &str, b: &str) -> bool {
    normalize_text(a) == normalize_text(b)
}

/// Share of pairs whose texts are equal case-insensitively with whitespace collapsed.
pub fn exact_match(hypotheses: &[String], references: &[String]) -> f64 {
    let n = hypotheses.len().min(references.len());
    if n == 0 {
        return 0.0;
    }
    let same = hypotheses
        .iter()
        .zip(references)
        .filter(|(h, r)| same_text(h, r))
        .count();
    same as f64 / n as f64
}

/// Mean token F1 over pairs.
pub fn mean_token_f1(hypotheses: &[String], references: &[String]) -> f64 {
    let n = hypotheses.len().min(references.len());
    if n == 0 {
        return 0.0;
    }
    hypotheses
        .iter()
        .zip(references)
        .map(|(h, r)| token_f1(h, r))
        .sum::<f64>()
        / n as f64
}

/// sacrebleu's `13a` tokeniser (mteval-v13a), applied to lower-cased text.
pub fn tokenize_13a(text: &str) -> Vec<String> {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        [
            (r"([\{-\~\[-\` -\&\(-\+\:-\@/])", " $1 "),
            (r"([^0-9])([\.,])", "$1 $2 "),
            (r"([\.,])([^0-9])", " $1 $2"),
            (r"([0-9])(-)", "$1 $2 "),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).expect("static pattern"), r))
        .collect()
    });
    let mut line = text
        .to_lowercase()
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in rules {
        line = re.replace_all(&line, *rep).into_owned();
    }
    line.split_whitespace().map(str::to_owned).collect()
}

fn ngram_counts(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if tokens.len() >= n {
        for g in tokens.windows(n) {
            *m.entry(g).or_default() += 1;
        }
    }
    m
}

/// Corpus BLEU (0..100) of hypotheses against one reference each.
pub fn corpus_bleu(hypotheses: &[String], references: &[String]) -> f64 {
    let mut matches = [0usize; 4];
    let mut totals = [0usize; 4];
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (h, r) in hypotheses.iter().zip(references) {
        let h = tokenize_13a(h);
        let r = tokenize_13a(r);
        hyp_len += h.len();
        ref_len += r.len();
        for n in 1..=4 {
            let hc = ngram_counts(&h, n);
            let rc = ngram_counts(&r, n);
            totals[n - 1] += h.len().saturating_sub(n - 1);
            matches[n - 1] += hc
                .iter()
                .map(|(g, c)| (*c).min(rc.get(g).copied().unwrap_or(0)))
                .sum::<usize>();
        }
    }
    if hyp_len == 0 {
        return 0.0;
    }
    let mut log_sum = 0.0;
    let mut smooth = 1.0;
    for n in 0..4 {
        if totals[n] == 0 {
            return 0.0;
        }
        let p = if matches[n] == 0 {
            smooth *= 2.0;
            1.0 / (smooth * totals[n] as f64)
        } else {
            matches[n] as f64 / totals[n] as f64
        };
        log_sum += p.ln();
    }
    let bp = if hyp_len < ref_len {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    } else {
        1.0
    };
    100.0 * bp * (log_sum / 4.0).exp()
}

fn char_ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut m = HashMap::new();
    if chars.len() >= n {
        for g in chars.windows(n) {
            *m.entry(g).or_default() += 1;
        }
    }
    m
}

/// Corpus chrF (0..100): character n-grams of order 1..=6, whitespace removed, beta 2.
pub fn corpus_chrf(hypotheses: &[String], references: &[String]) -> f64 {
    const ORDER: usize = 6;
    const BETA: f64 = 2.0;
    let mut stats = [[0usize; 3]; ORDER]; // hyp n-grams, ref n-grams, matches
    for (h, r) in hypotheses.iter().zip(references) {
        let h: Vec<char> = h
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let r: Vec<char> = r
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        for n in 1..=ORDER {
            let (hc, rc) = (char_ngrams(&h, n), char_ngrams(&r, n));
            stats[n - 1][0] += hc.values().sum::<usize>();
            stats[n - 1][1] += rc.values().sum::<usize>();
            stats[n - 1][2] += hc
                .iter()
                .map(|(g, c)| (*c).min(rc.get(g).copied().unwrap_or(0)))
                .sum::<usize>();
        }
    }
    let eps = 1e-16;
    let factor = BETA * BETA;
    let mut score = 0.0;
    let mut effective = 0;
    for [n_hyp, n_ref, n_match] in stats {
        let prec = if n_hyp > 0 {
            n_match as f64 / n_hyp as f64
        } else {
            eps
        };
        let rec = if n_ref > 0 {
            n_match as f64 / n_ref as f64
        } else {
            eps
        };
        let denom = factor * prec + rec;
        score += if denom > 0.0 {
            (1.0 + factor) * prec * rec / denom
        } else {
            eps
        };
        if n_hyp > 0 && n_ref > 0 {
            effective += 1;
        }
    }
    if effective == 0 {
        0.0
    } else {
        100.0 * score / effective as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn token_f1_counts_shared_words() {
        assert_eq!(token_f1("The cat sat.", "the cat sat"), 1.0);
        assert!((token_f1("a cat", "a black cat sat") - 2.0 * 1.0 * 0.5 / 1.5).abs() < 1e-9);
        assert_eq!(token_f1("dog", "cat"), 0.0);
    }

    #[test]
    fn tokenizer_matches_13a() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs $3.50 (approx.)"),
            s(&["hello", ",", "world", "!", "it", "costs", "$", "3.50", "(", "approx", ".", ")"])
        );
    }

    #[test]
    fn bleu_and_chrf_reference_values() {
        // Identical corpora score 100; values below were computed with sacrebleu 2.6.0
        // (`sacrebleu -lc`, BLEU and chrF defaults).
        let refs = s(&["the cat sat on the mat", "a quick brown fox jumps"]);
        assert!((corpus_bleu(&refs, &refs) - 100.0).abs() < 1e-9);
        assert!((corpus_chrf(&refs, &refs) - 100.0).abs() < 1e-9);
        let hyps = s(&["the cat sat on a mat", "a quick brown dog jumps"]);
        assert!(
            (corpus_bleu(&hyps, &refs) - 44.428).abs() < 0.01,
            "{}",
            corpus_bleu(&hyps, &refs)
        );
        assert!(
            (corpus_chrf(&hyps, &refs) - 66.019).abs() < 0.01,
            "{}",
            corpus_chrf(&hyps, &refs)
        );
    }
}
