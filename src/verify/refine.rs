//! Refinement: improves a verified text by local search at the level of words, with the
//! encoder as judge and the generator's likelihood as a fluency prior.
//!
//! Each round proposes edits of the current text (delete, replace or insert a word from the
//! pool of the candidates' words or from [`FUNCTION_WORDS`], swap two neighbours, splice the
//! current text with another candidate; never two equal words side by side), ranks them
//! cheaply (a bag-of-words estimate of their embedding from the pool words' own
//! embeddings, then the generator's mean log-probability given the input), and
//! re-embeds the best few in one encoder batch for all inputs. The edit that most raises
//! `cosine + fluency_weight * mean_log_prob` is kept; an input stops when no edit improves or
//! its budget of encoder calls is spent. Nothing is sampled: the result is deterministic.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::embedding::{dot, UnitEmbedding};
use crate::error::Result;
use crate::generative::InferenceModel;

use super::Verifier;

/// Settings of refinement.
#[derive(Debug, Clone, PartialEq)]
pub struct RefineSettings {
    /// Encoder calls per input, the pool words' embeddings included.
    pub budget: usize,
    /// Edits re-embedded per input and round.
    pub per_round: usize,
    /// Distinct words taken from the candidates (best candidates first).
    pub max_pool_words: usize,
    /// Weight of the generator's mean log-probability per byte (the fluency prior) against
    /// the cosine; 0 ranks by cosine alone.
    pub fluency_weight: f32,
    /// Also insert and substitute the most common English function words ("the", "of",
    /// ...), which candidates written as keyword lists lack; their embeddings are not
    /// charged to any input's budget (the verifier's cache keeps them after the first call).
    pub function_words: bool,
}

/// The function words refinement may insert or substitute (`RefineSettings::function_words`).
pub const FUNCTION_WORDS: [&str; 16] = [
    "the", "of", "and", "a", "to", "in", "is", "for", "that", "with", "on", "as", "by", "or",
    "from", "it",
];

impl Default for RefineSettings {
    fn default() -> Self {
        RefineSettings {
            budget: 64,
            per_round: 8,
            max_pool_words: 24,
            fluency_weight: 0.02,
            function_words: true,
        }
    }
}

impl RefineSettings {
    /// Largest `budget`.
    pub const MAX_BUDGET: usize = 100_000;

    /// Checks the bounds.
    pub fn validate(&self) -> crate::error::Result<()> {
        use crate::error::{check, finite_in};
        check(
            (1..=Self::MAX_BUDGET).contains(&self.budget),
            "refine.budget must be in 1..=100000",
        )?;
        check(
            (1..=256).contains(&self.per_round),
            "refine.per_round must be in 1..=256",
        )?;
        check(
            (1..=1000).contains(&self.max_pool_words),
            "refine.max_pool_words must be in 1..=1000",
        )?;
        check(
            finite_in(self.fluency_weight, 0.0, 10.0),
            "refine.fluency_weight must be in [0, 10]",
        )
    }
}

/// The search state of one input.
pub(crate) struct Refinement {
    query: UnitEmbedding,
    /// The pooled texts, best first (the words and the splices come from them).
    pool: Vec<String>,
    current: Vec<String>,
    current_embedding: Vec<f32>,
    cosine: f32,
    log_prob: f32,
    seen: HashSet<String>,
    calls: usize,
    done: bool,
}

impl Refinement {
    /// Starts from `text` (embedded as `embedding`, at `cosine` to the input).
    pub(crate) fn new(
        query: UnitEmbedding,
        pool: Vec<String>,
        text: &str,
        embedding: &[f32],
        cosine: f32,
    ) -> Self {
        let mut seen: HashSet<String> = pool.iter().cloned().collect();
        seen.insert(text.to_string());
        Refinement {
            query,
            pool,
            current: words(text),
            current_embedding: embedding.to_vec(),
            cosine,
            log_prob: 0.0,
            seen,
            calls: 0,
            done: text.trim().is_empty(),
        }
    }

    /// The refined text and its cosine to the input.
    pub(crate) fn result(&self) -> (String, f32) {
        (self.current.join(" "), self.cosine)
    }
}

/// What the search maximises: the cosine plus the weighted fluency prior.
fn objective(cosine: f32, log_prob: f32, weight: f32) -> f32 {
    cosine + weight * log_prob
}

/// Words of a text, split at whitespace.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The key of a word in the pool: lower case, without surrounding punctuation.
fn key(word: &str) -> String {
    word.trim_matches(|c: char| c.is_ascii_punctuation())
        .to_lowercase()
}

/// Distinct pool words, best candidates first.
fn pool_words(pool: &[String], max: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for text in pool {
        for w in text.split_whitespace() {
            let k = key(w);
            if !k.is_empty() && seen.insert(k.clone()) {
                out.push(k);
                if out.len() == max {
                    return out;
                }
            }
        }
    }
    out
}

/// Whether two neighbouring words are the same word ("devices devices"): never fluent, and
/// the encoder barely tells it apart from the single word, so such edits are not proposed.
fn repeats_a_word(words: &[String]) -> bool {
    words.windows(2).any(|w| key(&w[0]) == key(&w[1]))
}

/// One proposed edit: the new words and the bag-of-words change.
struct Edit {
    words: Vec<String>,
    added: Vec<String>,
    removed: Vec<String>,
}

/// Every edit of `current` from `vocab` and the pool's texts.
fn edits(current: &[String], vocab: &[String], pool: &[String]) -> Vec<Edit> {
    let n = current.len();
    let mut out = Vec::new();
    for i in 0..n {
        if n > 1 {
            let mut w = current.to_vec();
            let gone = w.remove(i);
            out.push(Edit {
                words: w,
                added: vec![],
                removed: vec![gone],
            });
        }
        if i + 1 < n {
            let mut w = current.to_vec();
            w.swap(i, i + 1);
            out.push(Edit {
                words: w,
                added: vec![],
                removed: vec![],
            });
        }
        for v in vocab {
            if key(&current[i]) != *v {
                let mut w = current.to_vec();
                let gone = std::mem::replace(&mut w[i], v.clone());
                out.push(Edit {
                    words: w,
                    added: vec![v.clone()],
                    removed: vec![gone],
                });
            }
        }
    }
    for i in 0..=n {
        for v in vocab {
            let mut w = current.to_vec();
            w.insert(i, v.clone());
            out.push(Edit {
                words: w,
                added: vec![v.clone()],
                removed: vec![],
            });
        }
    }
    for other in pool {
        let o = words(other);
        if o.is_empty() {
            continue;
        }
        for i in 1..n {
            let j = (i * o.len() / n).min(o.len() - 1);
            // the current text's head with the other's tail, and the other's head with ours
            let mut head = current[..i].to_vec();
            head.extend_from_slice(&o[j..]);
            out.push(Edit {
                added: o[j..].to_vec(),
                removed: current[i..].to_vec(),
                words: head,
            });
            let mut tail = o[..j.max(1)].to_vec();
            tail.extend_from_slice(&current[i..]);
            out.push(Edit {
                added: o[..j.max(1)].to_vec(),
                removed: current[..i].to_vec(),
                words: tail,
            });
        }
    }
    out
}

/// Refines every input of `states` in lockstep rounds, one encoder batch per round.
pub(crate) fn refine(
    states: &mut [Refinement],
    verifier: &Verifier,
    fluency: Option<&InferenceModel>,
    settings: &RefineSettings,
) -> Result<()> {
    let weight = if fluency.is_some() {
        settings.fluency_weight
    } else {
        0.0
    };
    let log_prob = |s: &Refinement, text: &str| -> Result<f32> {
        match fluency.filter(|_| weight > 0.0) {
            // the model scores a text longer than max_len bytes by its head
            Some(model) => model.mean_log_prob_mixed(&s.query, text, None),
            None => Ok(0.0),
        }
    };
    // the pool words' own embeddings, charged to each input's budget (a third of it at most)
    let pooled: Vec<Vec<String>> = states
        .iter()
        .map(|s| pool_words(&s.pool, settings.max_pool_words.min(settings.budget / 3)))
        .collect();
    let common: &[&str] = if settings.function_words {
        &FUNCTION_WORDS
    } else {
        &[]
    };
    let all_words: Vec<&str> = pooled
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(common.iter().copied())
        .collect();
    let word_vectors = verifier.embed(&all_words)?;
    let mut vectors = std::collections::HashMap::new();
    for (w, v) in all_words.iter().zip(word_vectors) {
        vectors.insert(w.to_string(), v);
    }
    // each input's edit vocabulary: its pool words, then the function words it lacks
    let vocabs: Vec<Vec<String>> = pooled
        .iter()
        .map(|words| {
            let mut vocab = words.clone();
            for w in common {
                if !vocab.iter().any(|v| v == w) {
                    vocab.push((*w).to_string());
                }
            }
            vocab
        })
        .collect();
    for (s, words) in states.iter_mut().zip(&pooled) {
        // shared words are charged to every input that uses them, at most the batch's cost
        s.calls += words.len();
        s.log_prob = log_prob(s, &s.current.join(" "))?;
        if s.calls + settings.per_round > settings.budget {
            s.done = true;
        }
    }
    loop {
        // the proposals of every active input, ranked cheaply
        let mut chosen: Vec<(usize, String, f32)> = Vec::new();
        for (idx, s) in states.iter().enumerate() {
            if s.done {
                continue;
            }
            let n = s.current.len() as f32;
            let mut scored: Vec<(f32, String)> = Vec::new();
            let mut texts = HashSet::new();
            for edit in edits(&s.current, &vocabs[idx], &s.pool) {
                if repeats_a_word(&edit.words) {
                    continue;
                }
                let text = edit.words.join(" ");
                if text.is_empty() || s.seen.contains(&text) || !texts.insert(text.clone()) {
                    continue;
                }
                let mut estimate: Vec<f32> = s.current_embedding.iter().map(|x| x * n).collect();
                for (w, sign) in edit
                    .added
                    .iter()
                    .map(|w| (w, 1.0f32))
                    .chain(edit.removed.iter().map(|w| (w, -1.0f32)))
                {
                    if let Some(v) = vectors.get(&key(w)) {
                        estimate
                            .iter_mut()
                            .zip(v.iter())
                            .for_each(|(e, x)| *e += sign * x);
                    }
                }
                let norm = crate::embedding::norm(&estimate).max(1e-6);
                scored.push((dot(&estimate, s.query.as_slice()) / norm, text));
            }
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            scored.truncate(settings.per_round + settings.per_round / 2);
            // the fluency prior of the shortlist, texts in parallel (the encoder is idle now)
            let log_probs: Vec<f32> = scored
                .par_iter()
                .map(|(_, text)| log_prob(s, text))
                .collect::<Result<_>>()?;
            let mut ranked: Vec<(f32, String, f32)> = scored
                .into_iter()
                .zip(log_probs)
                .map(|((proxy, text), lp)| (proxy + weight * lp, text, lp))
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            ranked.truncate(settings.per_round);
            chosen.extend(ranked.into_iter().map(|(_, text, lp)| (idx, text, lp)));
        }
        if chosen.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = chosen.iter().map(|(_, t, _)| t.as_str()).collect();
        let embeddings = verifier.embed(&texts)?;
        let mut best: Vec<Option<(f32, usize)>> = vec![None; states.len()];
        for (k, ((idx, text, lp), e)) in chosen.iter().zip(&embeddings).enumerate() {
            let s = &mut states[*idx];
            s.seen.insert(text.clone());
            s.calls += 1;
            let cosine = dot(s.query.as_slice(), e);
            let j = objective(cosine, *lp, weight);
            if best[*idx].is_none_or(|(b, _)| j > b) {
                best[*idx] = Some((j, k));
            }
        }
        for (idx, s) in states.iter_mut().enumerate() {
            if s.done {
                continue;
            }
            let current = objective(s.cosine, s.log_prob, weight);
            match best[idx] {
                Some((j, k)) if j > current + 1e-6 => {
                    let (_, text, lp) = &chosen[k];
                    s.current = words(text);
                    s.current_embedding = embeddings[k].to_vec();
                    s.cosine = dot(s.query.as_slice(), &embeddings[k]);
                    s.log_prob = *lp;
                }
                _ => s.done = true,
            }
            if s.calls + settings.per_round > settings.budget {
                s.done = true;
            }
        }
    }
}
