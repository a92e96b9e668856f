//! [`HybridDecoder`]: per input, the bank's phrase or the generator's text, whichever the
//! calibrated rule expects to be better.

use serde::{Deserialize, Serialize};

use crate::decoder::{Decoded, Decoder};
use crate::error::{Error, Result};
use crate::generative_decoder::GenerativeDecoder;
use crate::metrics::token_f1;
use crate::phrase_bank_decoder::PhraseBankDecoder;
use crate::session::{Session, SessionEntry};

/// The hybrid's decision rule (stored in [`crate::DecoderConfig::hybrid`]; fit it with
/// [`calibrate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HybridConfig {
    /// When the bank's best similarity is at least this, its phrase is returned without running
    /// the generator (the input is almost surely a bank phrase, or close to one).
    pub bank_similarity: f32,
    /// Below that, the generated text wins when its mean log-probability per byte under the
    /// generator exceeds the bank phrase's (scored by the same generator) by at least this.
    pub generator_margin: f32,
}

impl Default for HybridConfig {
    /// Uncalibrated: never leave the bank (safe until [`calibrate`] has measured the generator).
    fn default() -> Self {
        HybridConfig {
            bank_similarity: 0.0,
            generator_margin: f32::MAX,
        }
    }
}

impl HybridConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if !self.bank_similarity.is_finite() || !(-1.0..=2.0).contains(&self.bank_similarity) {
            return Err(Error::InvalidConfig(
                "hybrid.bank_similarity must be in [-1, 2]".into(),
            ));
        }
        if self.generator_margin.is_nan() {
            return Err(Error::InvalidConfig(
                "hybrid.generator_margin must be a number".into(),
            ));
        }
        Ok(())
    }
}

/// Signals the rule reads for one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HybridSignals {
    /// The bank's best similarity.
    pub bank_similarity: f32,
    /// Best minus second-best bank similarity.
    pub bank_margin: f32,
    /// The generator's mean log-probability per byte of the bank's phrase.
    pub bank_log_prob: f32,
    /// The generator's mean log-probability per byte of its own text.
    pub generator_log_prob: f32,
}

/// Chooses per input between a [`PhraseBankDecoder`] and a [`GenerativeDecoder`].
pub struct HybridDecoder {
    bank: PhraseBankDecoder,
    generator: GenerativeDecoder,
    rule: HybridConfig,
}

/// Both decoders' outputs for one input, with the signals.
#[derive(Debug, Clone)]
pub struct BothOutputs {
    /// The bank's result (its session entry is recorded only if it is chosen).
    pub bank: Decoded,
    /// The generator's result; `None` when the bank's similarity took the fast path.
    pub generated: Option<Decoded>,
    /// The signals, when the generator ran.
    pub signals: Option<HybridSignals>,
}

impl HybridDecoder {
    /// A hybrid of the two decoders with a validated rule.
    pub fn new(
        bank: PhraseBankDecoder,
        generator: GenerativeDecoder,
        rule: HybridConfig,
    ) -> Result<Self> {
        rule.validate()?;
        if bank.dim() != generator.dim() {
            return Err(Error::InvalidConfig(format!(
                "the bank takes {}-d embeddings, the generator {}-d",
                bank.dim(),
                generator.dim()
            )));
        }
        Ok(HybridDecoder {
            bank,
            generator,
            rule,
        })
    }

    /// The decision rule.
    pub fn rule(&self) -> &HybridConfig {
        &self.rule
    }

    /// Runs the bank (recording into `session`) and, unless `fast_path` and the bank is sure,
    /// the generator on one unit-norm input.
    fn both(&self, query: &[f32], session: &mut Session, fast_path: bool) -> Result<BothOutputs> {
        let bank = self.bank.decode_in_session(query, session)?;
        let s1 = bank.candidates.first().map_or(-1.0, |c| c.similarity);
        if fast_path && s1 >= self.rule.bank_similarity {
            return Ok(BothOutputs {
                bank,
                generated: None,
                signals: None,
            });
        }
        let generated = self.generator.decode(query)?;
        let model = self.generator.model();
        let signals = HybridSignals {
            bank_similarity: s1,
            bank_margin: s1 - bank.candidates.get(1).map_or(-1.0, |c| c.similarity),
            bank_log_prob: model.mean_log_prob(query, &bank.text)?,
            generator_log_prob: generated.confidence.max(f32::MIN_POSITIVE).ln(),
        };
        Ok(BothOutputs {
            bank,
            generated: Some(generated),
            signals: Some(signals),
        })
    }

    /// Both outputs and the signals for one input, without the fast path (for calibration).
    pub fn both_outputs(&self, input: &[f32]) -> Result<BothOutputs> {
        let query = crate::embedding::normalized(input, self.dim())?;
        self.both(&query, &mut self.bank.new_session(), false)
    }
}

/// Whether `rule` picks the generator for these signals.
fn prefers_generator(rule: &HybridConfig, s: &HybridSignals) -> bool {
    s.bank_similarity < rule.bank_similarity
        && s.generator_log_prob - s.bank_log_prob >= rule.generator_margin
}

impl Decoder for HybridDecoder {
    fn dim(&self) -> usize {
        self.bank.dim()
    }

    fn new_session(&self) -> Session {
        self.bank.new_session()
    }

    /// The bank decodes into a copy of the session, which replaces the session when the bank's
    /// answer is chosen; a generated answer is recorded as an input-only entry.
    fn decode_in_session(&self, input: &[f32], session: &mut Session) -> Result<Decoded> {
        let query = crate::embedding::normalized(input, self.dim())?;
        let mut scratch = session.clone();
        let both = self.both(&query, &mut scratch, true)?;
        match (both.generated, both.signals) {
            (Some(generated), Some(signals)) if prefers_generator(&self.rule, &signals) => {
                session.record(SessionEntry {
                    input: query,
                    output: None,
                    phrase_ids: Vec::new(),
                });
                Ok(generated)
            }
            _ => {
                *session = scratch;
                Ok(both.bank)
            }
        }
    }
}

/// Per-row measurements on a calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRow {
    /// The signals.
    pub signals: HybridSignals,
    /// Token F1 of the bank's output against the reference.
    pub bank_f1: f64,
    /// Token F1 of the generator's output against the reference.
    pub generator_f1: f64,
}

/// The fitted rule and what it achieves on the calibration set.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// The best rule found.
    pub rule: HybridConfig,
    /// Mean token F1 of the bank alone, the generator alone and the rule.
    pub bank_f1: f64,
    /// Mean token F1 of the generator alone.
    pub generator_f1: f64,
    /// Mean token F1 of the hybrid with the fitted rule.
    pub hybrid_f1: f64,
    /// Share of rows where the rule picks the generator.
    pub generator_share: f64,
}

/// Measures both decoders on `embeddings` (one row per reference, each its own session).
pub fn measure(
    hybrid: &HybridDecoder,
    embeddings: ndarray::ArrayView2<f32>,
    references: &[String],
) -> Result<Vec<CalibrationRow>> {
    if references.len() != embeddings.nrows() {
        return Err(Error::InvalidArgument(format!(
            "{} references for {} embeddings",
            references.len(),
            embeddings.nrows()
        )));
    }
    embeddings
        .rows()
        .into_iter()
        .zip(references)
        .enumerate()
        .map(|(row, (x, reference))| {
            let both = hybrid.both_outputs(&x.to_vec()).map_err(|e| Error::AtRow {
                row,
                source: Box::new(e),
            })?;
            let generated = both.generated.map(|d| d.text).unwrap_or_default();
            Ok(CalibrationRow {
                signals: both
                    .signals
                    .ok_or_else(|| Error::InvalidArgument("the generator did not run".into()))?,
                bank_f1: token_f1(&both.bank.text, reference),
                generator_f1: token_f1(&generated, reference),
            })
        })
        .collect()
}

/// Fits the rule that maximises mean token F1 over the measured rows: a grid over the bank
/// similarity (every observed value, and "never") and the log-probability margin. Ties go to the
/// rule that uses the bank more.
pub fn calibrate(rows: &[CalibrationRow]) -> Calibration {
    let n = rows.len().max(1) as f64;
    let mean = |f: &dyn Fn(&CalibrationRow) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let mut thresholds: Vec<f32> = rows.iter().map(|r| r.signals.bank_similarity).collect();
    thresholds.push(-1.0);
    thresholds.push(2.0);
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup();
    let margins: Vec<f32> = (-20..=20)
        .map(|i| i as f32 * 0.1)
        .chain([f32::MIN, f32::MAX])
        .collect();
    let mut best = (f64::NEG_INFINITY, f64::INFINITY, HybridConfig::default());
    for &bank_similarity in &thresholds {
        for &generator_margin in &margins {
            let rule = HybridConfig {
                bank_similarity,
                generator_margin,
            };
            let mut f1 = 0.0;
            let mut generated = 0.0;
            for r in rows {
                if prefers_generator(&rule, &r.signals) {
                    f1 += r.generator_f1;
                    generated += 1.0;
                } else {
                    f1 += r.bank_f1;
                }
            }
            let (f1, share) = (f1 / n, generated / n);
            if f1 > best.0 + 1e-12 || (f1 > best.0 - 1e-12 && share < best.1) {
                best = (f1, share, rule);
            }
        }
    }
    Calibration {
        rule: best.2,
        bank_f1: mean(&|r| r.bank_f1),
        generator_f1: mean(&|r| r.generator_f1),
        hybrid_f1: best.0.max(0.0),
        generator_share: best.1,
    }
}
