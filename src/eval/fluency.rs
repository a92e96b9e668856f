//! Fluency figures of decoded texts, beside the fidelity metrics: how English the texts read
//! to a judge language model, how often they repeat a content word, and how sure BLEU is.
//!
//! The judge must be a model decoding never uses, built from text decoding never sees (the
//! project's judge: a 4-gram model of the corpus's held-out ood split, with the evaluated
//! samples' sentences left out; `scripts/build_fluency_judge.sh`). Per-token log-probability
//! favours short, common text: report it beside meaning, never alone.

use rand::{RngExt, SeedableRng};

use crate::language_model::{repeats_content_word, NgramModel};

use super::metrics::corpus_bleu;

/// Fluency and repetition of a set of decoded texts against their references.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FluencyReport {
    /// Mean over texts of the judge's mean log10 probability per token.
    pub fluency: f64,
    /// The same for the references (real sentences).
    pub reference_fluency: f64,
    /// The 5th percentile of the references' scores.
    pub reference_p5: f64,
    /// Share of texts scoring below `reference_p5` (5% for real sentences).
    pub below_reference_p5: f64,
    /// Share of texts that repeat a content word their reference holds at most once.
    pub repetition: f64,
    /// Corpus BLEU and its bootstrap 95% interval (1,000 resamples of the rows, seeded).
    pub bleu: [f64; 3],
}

/// Scores `texts` against `references` under `judge`.
pub fn fluency_report(
    judge: &NgramModel,
    texts: &[String],
    references: &[String],
) -> FluencyReport {
    let n = texts.len().min(references.len());
    let scores: Vec<f64> = texts[..n]
        .iter()
        .map(|t| f64::from(judge.score(t).mean()))
        .collect();
    let mut reference_scores: Vec<f64> = references[..n]
        .iter()
        .map(|t| f64::from(judge.score(t).mean()))
        .collect();
    reference_scores.sort_by(f64::total_cmp);
    let p5 = crate::monitoring::percentile(&reference_scores, 5.0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let repeated = texts[..n]
        .iter()
        .zip(&references[..n])
        .filter(|(t, r)| repeats_content_word(t, r))
        .count();
    FluencyReport {
        fluency: mean(&scores),
        reference_fluency: mean(&reference_scores),
        reference_p5: p5,
        below_reference_p5: scores.iter().filter(|&&s| s < p5).count() as f64 / n.max(1) as f64,
        repetition: repeated as f64 / n.max(1) as f64,
        bleu: bleu_interval(&texts[..n], &references[..n], 1000, 2026),
    }
}

/// Corpus BLEU with its bootstrap 95% interval: `[bleu, low, high]`.
pub fn bleu_interval(
    texts: &[String],
    references: &[String],
    resamples: usize,
    seed: u64,
) -> [f64; 3] {
    let bleu = corpus_bleu(texts, references);
    let n = texts.len().min(references.len());
    if n == 0 || resamples == 0 {
        return [bleu, bleu, bleu];
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut t, mut r) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for _ in 0..n {
                let i = rng.random_range(0..n);
                t.push(texts[i].clone());
                r.push(references[i].clone());
            }
            corpus_bleu(&t, &r)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let p = |q| crate::monitoring::percentile(&draws, q);
    [bleu, p(2.5), p(97.5)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language_model::NgramEstimator;

    #[test]
    fn salad_scores_below_real_sentences_and_repetition_is_counted() {
        let mut est = NgramEstimator::new(3).unwrap();
        for s in [
            "the pointer was not mapped to a valid address",
            "the error was produced in some cases",
            "this change fixes some cases where an error was thrown",
            "the memory is not mapped",
        ] {
            est.add_sentence(s);
        }
        let judge = est.build().unwrap();
        let refs = vec![
            "the error was thrown".to_string(),
            "the memory was mapped".to_string(),
        ];
        let fluent = vec![
            "the error was produced".to_string(),
            "the memory is not mapped".to_string(),
        ];
        let salad = vec![
            "error error was the produced or but".to_string(),
            "mapped memory memory the not".to_string(),
        ];
        let a = fluency_report(&judge, &fluent, &refs);
        let b = fluency_report(&judge, &salad, &refs);
        assert!(a.fluency > b.fluency, "{a:?} {b:?}");
        assert_eq!(a.repetition, 0.0);
        assert_eq!(b.repetition, 1.0);
        assert!(b.bleu[1] <= b.bleu[0] && b.bleu[0] <= b.bleu[2]);
    }
}
