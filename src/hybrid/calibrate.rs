//! Fitting the hybrid's rule: [`measure`] both decoders on labelled embeddings under an
//! [`Objective`], [`calibrate`] the rule that maximises it on them, [`evaluate_rule`] a given
//! rule.

use rayon::prelude::*;
use serde::Serialize;

use super::decoder::HybridDecoder;
use super::rule::{choose, decide, rerank, Alternative, Choice, HybridConfig, HybridSignals};
use crate::embedding::{dot, UnitEmbedding};
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::eval::metrics::token_f1;

/// What a rule is fitted to maximise: the mean, over rows, of a score of the text it returns.
#[derive(Clone, Copy)]
pub enum Objective<'a> {
    /// Token F1 of the text against the reference.
    TokenF1,
    /// Round-trip cosine: the text re-embedded by the encoder (all-mpnet-base-v2, the
    /// decoders' own input space), against the input; what verified decoding maximises. It
    /// rewards meaning rather than shared function words.
    RoundTrip(&'a dyn Encoder),
}

impl Objective<'_> {
    /// Short name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::TokenF1 => "token F1",
            Objective::RoundTrip(_) => "round-trip cosine",
        }
    }
}

impl std::fmt::Debug for Objective<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-row measurements on a calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRow {
    /// The signals.
    pub signals: HybridSignals,
    /// The objective's score of the bank's output.
    pub bank_score: f64,
    /// The objective's score of the generator's output.
    pub generator_score: f64,
    /// The bank's other candidates as re-scored, each with the objective's score.
    pub alternatives: Vec<(Alternative, f64)>,
}

/// The fitted rule and what it achieves on the calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The best rule found.
    pub rule: HybridConfig,
    /// Mean score of the bank alone.
    pub bank_score: f64,
    /// Mean score of the generator alone.
    pub generator_score: f64,
    /// Mean score of the hybrid with the fitted rule.
    pub hybrid_score: f64,
    /// Share of rows where the rule picks the generator.
    pub generator_share: f64,
    /// Share of rows where the rule picks another bank candidate than the bank's own.
    pub reranked_share: f64,
}

/// The texts the hybrid may return for one row: the bank's, the generator's, then each
/// re-scored alternative's.
struct RowOutputs {
    signals: HybridSignals,
    texts: Vec<String>,
    alternatives: Vec<Alternative>,
}

/// Measures both decoders on `embeddings` (one row per reference, each its own session, rows
/// in parallel with rayon), re-scoring the bank's top `hybrid.rule().rerank_top_k` candidates,
/// and scores every text the hybrid may return by `objective` (round trip: all texts of all
/// rows re-embedded in the encoder's batches).
pub fn measure(
    hybrid: &HybridDecoder,
    embeddings: ndarray::ArrayView2<f32>,
    references: &[String],
    objective: Objective<'_>,
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
    let outputs: Vec<RowOutputs> = (0..references.len())
        .into_par_iter()
        .map(|row| {
            let both = hybrid
                .both_outputs(&embeddings.row(row).to_vec())
                .map_err(|e| Error::AtRow {
                    row,
                    source: Box::new(e),
                })?;
            let mut texts = vec![
                both.bank.text.clone(),
                both.generated.map(|d| d.text).unwrap_or_default(),
            ];
            texts.extend(
                both.alternatives
                    .iter()
                    .map(|a| both.bank.candidates[a.rank].text.clone()),
            );
            Ok(RowOutputs {
                signals: both
                    .signals
                    .ok_or_else(|| Error::Internal("the generator did not run".into()))?,
                texts,
                alternatives: both.alternatives,
            })
        })
        .collect::<Result<_>>()?;
    let scores: Vec<Vec<f64>> = match objective {
        Objective::TokenF1 => outputs
            .iter()
            .zip(references)
            .map(|(o, reference)| o.texts.iter().map(|t| token_f1(t, reference)).collect())
            .collect(),
        Objective::RoundTrip(encoder) => round_trip(encoder, embeddings, &outputs)?,
    };
    Ok(outputs
        .into_iter()
        .zip(scores)
        .map(|(o, score)| CalibrationRow {
            signals: o.signals,
            bank_score: score[0],
            generator_score: score[1],
            alternatives: o
                .alternatives
                .into_iter()
                .zip(score[2..].iter().copied())
                .collect(),
        })
        .collect())
}

/// Cosine of each row's texts, re-embedded by `encoder`, with the row's input (an empty text
/// scores 0).
fn round_trip(
    encoder: &dyn Encoder,
    embeddings: ndarray::ArrayView2<f32>,
    outputs: &[RowOutputs],
) -> Result<Vec<Vec<f64>>> {
    if encoder.dimension() != embeddings.ncols() {
        return Err(Error::DimensionMismatch {
            expected: embeddings.ncols(),
            got: encoder.dimension(),
        });
    }
    let texts: Vec<&str> = outputs
        .iter()
        .flat_map(|o| o.texts.iter().map(String::as_str))
        .collect();
    let embedded = encoder.embed(&texts)?;
    let mut next = 0;
    outputs
        .iter()
        .enumerate()
        .map(|(row, o)| {
            let input = UnitEmbedding::new(&embeddings.row(row).to_vec(), embeddings.ncols())?;
            let scores = o
                .texts
                .iter()
                .map(|text| {
                    let e = embedded.row(next).to_vec();
                    next += 1;
                    if text.trim().is_empty() {
                        return 0.0;
                    }
                    f64::from(dot(input.as_slice(), &e))
                })
                .collect();
            Ok(scores)
        })
        .collect()
}

/// Re-ranking weights tried by [`calibrate`].
const RERANK_WEIGHTS: [f32; 6] = [0.0, 0.02, 0.03, 0.05, 0.075, 0.1];

/// Largest similarity gaps to the best candidate tried by [`calibrate`].
const MAX_GAPS: [f32; 5] = [0.02, 0.05, 0.1, 0.2, f32::MAX];

/// Overlap weights tried by [`calibrate`].
const OVERLAP_WEIGHTS: [f32; 7] = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5];

/// Fits the rule that maximises the mean score over the measured rows: a grid over the
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
    // (score, share changed, share generated, rule)
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
        // log-probability, and its score when it differs from the bank's own choice.
        let picks: Vec<(f32, Option<f64>)> = rows
            .iter()
            .map(|r| {
                let tagged = r.alternatives.iter().map(|(a, score)| (a, *score));
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
                let (mut score, mut changed, mut generated) = (0.0, 0.0, 0.0);
                for (r, &(log_prob, pick)) in rows.iter().zip(&picks) {
                    match decide(&rule, &r.signals, log_prob, pick) {
                        Choice::Bank => score += r.bank_score,
                        Choice::Generator => {
                            score += r.generator_score;
                            generated += 1.0;
                            changed += 1.0;
                        }
                        Choice::Alternative(pick_score) => {
                            score += pick_score;
                            changed += 1.0;
                        }
                    }
                }
                let (score, changed) = (score / n, changed / n);
                if score > best.0 + 1e-12 || (score > best.0 - 1e-12 && changed < best.1) {
                    best = (score, changed, generated / n, rule);
                }
            }
        }
    }
    let (hybrid_score, changed, generator_share, rule) = best;
    Calibration {
        rule,
        bank_score: mean(&|r| r.bank_score),
        generator_score: mean(&|r| r.generator_score),
        hybrid_score: hybrid_score.max(0.0),
        generator_share,
        reranked_share: changed - generator_share,
    }
}

/// What a rule achieves on measured rows.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    /// Mean score of the rule's picks.
    pub score: f64,
    /// Share of rows where it picks the generated text.
    pub generator_share: f64,
    /// Share of rows where it picks another bank candidate than the bank's own.
    pub reranked_share: f64,
    /// Score of the pick, per row.
    #[serde(skip)]
    pub row_scores: Vec<f64>,
}

/// Applies `rule` to measured rows (the same decision [`HybridDecoder`] takes per input).
pub fn evaluate_rule(rule: &HybridConfig, rows: &[CalibrationRow]) -> RuleOutcome {
    let n = rows.len().max(1) as f64;
    let (mut generated, mut reranked) = (0.0, 0.0);
    let mut row_scores = Vec::with_capacity(rows.len());
    for r in rows {
        let scored = r.alternatives.iter().map(|(a, score)| (a, *score));
        row_scores.push(match choose(rule, &r.signals, scored) {
            Choice::Bank => r.bank_score,
            Choice::Generator => {
                generated += 1.0;
                r.generator_score
            }
            Choice::Alternative(score) => {
                reranked += 1.0;
                score
            }
        });
    }
    RuleOutcome {
        score: row_scores.iter().sum::<f64>() / n,
        generator_share: generated / n,
        reranked_share: reranked / n,
        row_scores,
    }
}
