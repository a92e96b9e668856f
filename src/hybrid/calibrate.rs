//! Fitting the hybrid's rule: [`measure`] both decoders on labelled embeddings, [`calibrate`]
//! the rule that maximises token F1 on them, [`evaluate_rule`] a given rule.

use rayon::prelude::*;
use serde::Serialize;

use super::decoder::HybridDecoder;
use super::rule::{choose, decide, rerank, Alternative, Choice, HybridConfig, HybridSignals};
use crate::error::{Error, Result};
use crate::eval::metrics::token_f1;

/// Per-row measurements on a calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRow {
    /// The signals.
    pub signals: HybridSignals,
    /// Token F1 of the bank's output against the reference.
    pub bank_f1: f64,
    /// Token F1 of the generator's output against the reference.
    pub generator_f1: f64,
    /// The bank's other candidates as re-scored, each with its token F1.
    pub alternatives: Vec<(Alternative, f64)>,
}

/// The fitted rule and what it achieves on the calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The best rule found.
    pub rule: HybridConfig,
    /// Mean token F1 of the bank alone.
    pub bank_f1: f64,
    /// Mean token F1 of the generator alone.
    pub generator_f1: f64,
    /// Mean token F1 of the hybrid with the fitted rule.
    pub hybrid_f1: f64,
    /// Share of rows where the rule picks the generator.
    pub generator_share: f64,
    /// Share of rows where the rule picks another bank candidate than the bank's own.
    pub reranked_share: f64,
}

/// Measures both decoders on `embeddings` (one row per reference, each its own session, rows
/// in parallel with rayon), re-scoring the bank's top `hybrid.rule().rerank_top_k` candidates.
pub fn measure(
    hybrid: &HybridDecoder,
    embeddings: ndarray::ArrayView2<f32>,
    references: &[String],
) -> Result<Vec<CalibrationRow>> {
    if embeddings.nrows() == 0 {
        return Err(Error::InvalidArgument(
            "no labelled rows to measure: a rule fitted on nothing would be meaningless".into(),
        ));
    }
    if references.len() != embeddings.nrows() {
        return Err(Error::InvalidArgument(format!(
            "{} references for {} embeddings",
            references.len(),
            embeddings.nrows()
        )));
    }
    (0..references.len())
        .into_par_iter()
        .map(|row| {
            let (x, reference) = (embeddings.row(row), &references[row]);
            let both = hybrid.both_outputs(&x.to_vec()).map_err(|e| Error::AtRow {
                row,
                source: Box::new(e),
            })?;
            let generated = both.generated.map(|d| d.text).unwrap_or_default();
            let alternatives = both
                .alternatives
                .into_iter()
                .map(|a| {
                    let f1 = token_f1(&both.bank.candidates[a.rank].text, reference);
                    (a, f1)
                })
                .collect();
            Ok(CalibrationRow {
                signals: both
                    .signals
                    .ok_or_else(|| Error::Internal("the generator did not run".into()))?,
                bank_f1: token_f1(&both.bank.text, reference),
                generator_f1: token_f1(&generated, reference),
                alternatives,
            })
        })
        .collect()
}

/// Re-ranking weights tried by [`calibrate`].
const RERANK_WEIGHTS: [f32; 6] = [0.0, 0.02, 0.03, 0.05, 0.075, 0.1];

/// Largest similarity gaps to the best candidate tried by [`calibrate`].
const MAX_GAPS: [f32; 5] = [0.02, 0.05, 0.1, 0.2, f32::MAX];

/// Overlap weights tried by [`calibrate`].
const OVERLAP_WEIGHTS: [f32; 7] = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5];

/// Fits the rule that maximises mean token F1 over the measured rows: a grid over the
/// re-ranking weights, the bank similarity (100 quantiles of the observed values, and "never")
/// and the log-probability margin. Ties go to the rule that leaves the bank's own choice least.
/// `rerank_top_k` is kept from `base`.
pub fn calibrate(rows: &[CalibrationRow], base: &HybridConfig) -> Calibration {
    let n = rows.len().max(1) as f64;
    let mean = |f: &dyn Fn(&CalibrationRow) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let mut observed: Vec<f32> = rows.iter().map(|r| r.signals.bank_similarity).collect();
    observed.sort_by(f32::total_cmp);
    let mut thresholds: Vec<f32> = (0..100)
        .filter_map(|i| observed.get(i * observed.len() / 100).copied())
        .chain([-1.0, 2.0])
        .collect();
    // A threshold just above the highest value keeps every row below it.
    thresholds.extend(observed.last().map(|&v| v + 1e-6));
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let margins: Vec<f32> = (-20..=20)
        .map(|i| i as f32 * 0.1)
        .chain([f32::MIN, f32::MAX])
        .collect();
    // (f1, share changed, share generated, rule)
    let mut best = (
        f64::NEG_INFINITY,
        f64::INFINITY,
        0.0,
        HybridConfig::default(),
    );
    let weights = RERANK_WEIGHTS.iter().flat_map(|&w| {
        OVERLAP_WEIGHTS
            .iter()
            .flat_map(move |&v| MAX_GAPS.iter().map(move |&g| (w, v, g)))
    });
    for (rerank_weight, overlap_weight, rerank_max_gap) in weights {
        let reranking = HybridConfig {
            rerank_top_k: base.rerank_top_k,
            rerank_weight,
            overlap_weight,
            rerank_max_gap,
            ..HybridConfig::default()
        };
        // Per row, the bank candidate the re-ranking picks below the threshold: its
        // log-probability, and its token F1 when it differs from the bank's own choice.
        let picks: Vec<(f32, Option<f64>)> = rows
            .iter()
            .map(|r| {
                let tagged = r.alternatives.iter().map(|(a, f1)| (a, *f1));
                rerank(&reranking, &r.signals, tagged)
            })
            .collect();
        for &bank_similarity in &thresholds {
            for &generator_margin in &margins {
                let rule = HybridConfig {
                    bank_similarity,
                    generator_margin,
                    ..reranking
                };
                let (mut f1, mut changed, mut generated) = (0.0, 0.0, 0.0);
                for (r, &(log_prob, pick)) in rows.iter().zip(&picks) {
                    match decide(&rule, &r.signals, log_prob, pick) {
                        Choice::Bank => f1 += r.bank_f1,
                        Choice::Generator => {
                            f1 += r.generator_f1;
                            generated += 1.0;
                            changed += 1.0;
                        }
                        Choice::Alternative(pick_f1) => {
                            f1 += pick_f1;
                            changed += 1.0;
                        }
                    }
                }
                let (f1, changed) = (f1 / n, changed / n);
                if f1 > best.0 + 1e-12 || (f1 > best.0 - 1e-12 && changed < best.1) {
                    best = (f1, changed, generated / n, rule);
                }
            }
        }
    }
    let (hybrid_f1, changed, generator_share, rule) = best;
    Calibration {
        rule,
        bank_f1: mean(&|r| r.bank_f1),
        generator_f1: mean(&|r| r.generator_f1),
        hybrid_f1: hybrid_f1.max(0.0),
        generator_share,
        reranked_share: changed - generator_share,
    }
}

/// What a rule achieves on measured rows.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    /// Mean token F1 of the rule's picks.
    pub f1: f64,
    /// Share of rows where it picks the generated text.
    pub generator_share: f64,
    /// Share of rows where it picks another bank candidate than the bank's own.
    pub reranked_share: f64,
    /// Token F1 of the pick, per row.
    #[serde(skip)]
    pub row_f1: Vec<f64>,
}

/// Applies `rule` to measured rows (the same decision [`HybridDecoder`] takes per input).
pub fn evaluate_rule(rule: &HybridConfig, rows: &[CalibrationRow]) -> RuleOutcome {
    let n = rows.len().max(1) as f64;
    let (mut generated, mut reranked) = (0.0, 0.0);
    let mut row_f1 = Vec::with_capacity(rows.len());
    for r in rows {
        let scored = r.alternatives.iter().map(|(a, f1)| (a, *f1));
        row_f1.push(match choose(rule, &r.signals, scored) {
            Choice::Bank => r.bank_f1,
            Choice::Generator => {
                generated += 1.0;
                r.generator_f1
            }
            Choice::Alternative(f1) => {
                reranked += 1.0;
                f1
            }
        });
    }
    RuleOutcome {
        f1: row_f1.iter().sum::<f64>() / n,
        generator_share: generated / n,
        reranked_share: reranked / n,
        row_f1,
    }
}
