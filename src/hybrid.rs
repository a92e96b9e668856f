//! [`HybridDecoder`]: per input, the bank's phrase or the generator's text, whichever the
//! calibrated rule expects to be better.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::DecoderConfig;
use crate::decoder::{Decoded, Decoder, Source};
use crate::error::{Error, Result};
use crate::generative::DecodeOptions;
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
    /// How many of the bank's candidates the generator re-scores below `bank_similarity`
    /// (1 turns re-ranking off).
    pub rerank_top_k: usize,
    /// Re-ranking score of a bank candidate: its similarity, plus this times the generator's
    /// mean log-probability per byte of its text, plus `overlap_weight` times its token F1
    /// with the generated text. Both 0 keep the bank's choice.
    pub rerank_weight: f32,
    /// Weight of a candidate's word overlap (token F1) with the generated text.
    pub overlap_weight: f32,
    /// Only candidates whose similarity is within this of the best one are re-ranked (a
    /// clearly best match, such as a bank phrase's own embedding, stays).
    pub rerank_max_gap: f32,
}

impl Default for HybridConfig {
    /// The rule fitted for the shipped configuration: the bundled model guided by a compressed
    /// (`IVF1024,PQ96`) bank like the default one, calibrated on clean inputs and on inputs
    /// with noise to cosine 0.9 and 0.8 (`DEFAULT=1 bash scripts/hybrid_report.sh`,
    /// `docs/hybrid_default_report.json`). The bank phrase when its similarity is at least
    /// 0.793; below, a bank candidate re-ranked by similarity, log-probability and overlap with
    /// the generated text, unless the generated text's log-probability per byte beats it by
    /// 0.8. A rule depends on the bank's similarity scale and on the generator: fit your own
    /// with [`calibrate`] (`lwdec calibrate`) for another bank or model, and use
    /// [`HybridConfig::bank_only`] with an unguided generator.
    fn default() -> Self {
        HybridConfig {
            bank_similarity: 0.793,
            generator_margin: 0.8,
            rerank_top_k: 5,
            rerank_weight: 0.05,
            overlap_weight: 0.05,
            rerank_max_gap: 0.1,
        }
    }
}

impl HybridConfig {
    /// Never leave the bank's choice: the generator does not run (the rule for an unguided
    /// generator until one is calibrated; `lwdec` uses it with `--no-guide`).
    pub fn bank_only() -> Self {
        HybridConfig {
            bank_similarity: -1.0,
            generator_margin: f32::MAX,
            rerank_top_k: 5,
            rerank_weight: 0.0,
            overlap_weight: 0.0,
            rerank_max_gap: f32::MAX,
        }
    }

    /// Whether the rule re-ranks the bank's candidates.
    pub fn reranks(&self) -> bool {
        self.rerank_top_k > 1 && (self.rerank_weight > 0.0 || self.overlap_weight > 0.0)
    }

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
        if !(1..=100).contains(&self.rerank_top_k) {
            return Err(Error::InvalidConfig(
                "hybrid.rerank_top_k must be in 1..=100".into(),
            ));
        }
        if self.rerank_max_gap.is_nan() || self.rerank_max_gap < 0.0 {
            return Err(Error::InvalidConfig(
                "hybrid.rerank_max_gap must be >= 0".into(),
            ));
        }
        for (name, w) in [
            ("rerank_weight", self.rerank_weight),
            ("overlap_weight", self.overlap_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::InvalidConfig(format!(
                    "hybrid.{name} must be a finite number >= 0"
                )));
            }
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
    /// Token F1 between the bank's phrase and the generated text.
    pub bank_overlap: f32,
}

/// Another of the bank's candidates, re-scored by the generator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    /// Position in the bank's candidate list.
    pub rank: usize,
    /// Its similarity to the input.
    pub similarity: f32,
    /// The generator's mean log-probability per byte of its text.
    pub log_prob: f32,
    /// Token F1 between its text and the generated text.
    pub overlap: f32,
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
    /// The bank's other single-phrase candidates re-scored by the generator (empty when the
    /// generator did not run, re-ranking is off or the bank's output joins several phrases).
    pub alternatives: Vec<Alternative>,
}

/// What the rule picked; `T` tags the alternatives (a rank when decoding, a token F1 when
/// evaluating measured rows).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Choice<T> {
    /// The bank's own output.
    Bank,
    /// This other bank candidate instead.
    Alternative(T),
    /// The generated text.
    Generator,
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

    /// The shipped configuration: the default bank, and the bundled model guided by that same
    /// bank with `config.guide` (one bank in memory, searched once per input), decided by
    /// `config.hybrid`.
    pub fn with_defaults(config: DecoderConfig, options: DecodeOptions) -> Result<Self> {
        let rule = config.hybrid.clone();
        let guide = config.guide.clone();
        let bank = PhraseBankDecoder::with_default_bank(config)?;
        let generator = GenerativeDecoder::with_default_model(options)?
            .with_guide(bank.shared_bank(), guide)?;
        Self::new(bank, generator, rule)
    }

    /// The bank decoder.
    pub fn bank(&self) -> &PhraseBankDecoder {
        &self.bank
    }

    /// The generative decoder.
    pub fn generator(&self) -> &GenerativeDecoder {
        &self.generator
    }

    /// The decision rule.
    pub fn rule(&self) -> &HybridConfig {
        &self.rule
    }

    /// Runs the bank (recording into `session`) and, unless `fast_path` and the bank is sure,
    /// the generator on one unit-norm input. Without the fast path (calibration) the
    /// alternatives are scored even when the rule's weight is 0.
    fn both(&self, query: &[f32], session: &mut Session, fast_path: bool) -> Result<BothOutputs> {
        let bank = self.bank.decode_in_session(query, session)?;
        let s1 = bank.candidates.first().map_or(-1.0, |c| c.similarity);
        if fast_path && s1 >= self.rule.bank_similarity {
            return Ok(BothOutputs {
                bank,
                generated: None,
                signals: None,
                alternatives: Vec::new(),
            });
        }
        // the bank's best match is the generator's draft (if it reads drafts) and its top
        // candidates the guide (if it is guided by this bank): no second search
        let generated =
            self.generator
                .decode_with_found(query, &self.bank.shared_bank(), &bank.candidates)?;
        let model = self.generator.model();
        // Score raw bank phrases (as the generator was trained on), not post-processed text.
        let single = match &bank.source {
            Source::PhraseBank { phrase_ids } if phrase_ids.len() == 1 => Some(phrase_ids[0]),
            _ => None,
        };
        let bank_text = single
            .and_then(|id| self.bank.bank().phrase(id))
            .unwrap_or(&bank.text);
        let mut alternatives = Vec::new();
        if let Some(chosen) = single {
            if !fast_path || self.rule.reranks() {
                for (rank, c) in bank.candidates.iter().enumerate() {
                    if rank >= self.rule.rerank_top_k || c.phrase_id == Some(chosen) {
                        continue;
                    }
                    alternatives.push(Alternative {
                        rank,
                        similarity: c.similarity,
                        log_prob: model.mean_log_prob(query, &c.text)?,
                        overlap: token_f1(&c.text, &generated.text) as f32,
                    });
                }
            }
        }
        let signals = HybridSignals {
            bank_similarity: s1,
            bank_margin: s1 - bank.candidates.get(1).map_or(-1.0, |c| c.similarity),
            bank_log_prob: model.mean_log_prob(query, bank_text)?,
            generator_log_prob: generated.confidence.max(f32::MIN_POSITIVE).ln(),
            bank_overlap: token_f1(bank_text, &generated.text) as f32,
        };
        Ok(BothOutputs {
            bank,
            generated: Some(generated),
            signals: Some(signals),
            alternatives,
        })
    }

    /// Both outputs and the signals for one input, without the fast path (for calibration).
    pub fn both_outputs(&self, input: &[f32]) -> Result<BothOutputs> {
        let query = crate::embedding::normalized(input, self.dim())?;
        self.both(&query, &mut self.bank.new_session(), false)
    }
}

/// The rule's pick: below the similarity threshold, the best bank candidate by similarity plus
/// weighted log-probability, unless the generated text beats its log-probability by the margin.
fn choose<'a, T>(
    rule: &HybridConfig,
    s: &HybridSignals,
    alternatives: impl Iterator<Item = (&'a Alternative, T)>,
) -> Choice<T> {
    if s.bank_similarity >= rule.bank_similarity {
        return Choice::Bank;
    }
    let (log_prob, tag) = rerank(rule, s, alternatives);
    if s.generator_log_prob - log_prob >= rule.generator_margin {
        Choice::Generator
    } else {
        tag.map_or(Choice::Bank, Choice::Alternative)
    }
}

/// The re-ranking's pick among the bank's own choice and `alternatives` (each with a tag):
/// the pick's log-probability, and the tag of the alternative (`None`: the bank's choice).
fn rerank<'a, T>(
    rule: &HybridConfig,
    s: &HybridSignals,
    alternatives: impl Iterator<Item = (&'a Alternative, T)>,
) -> (f32, Option<T>) {
    let (w, v) = (rule.rerank_weight, rule.overlap_weight);
    let mut score = s.bank_similarity + w * s.bank_log_prob + v * s.bank_overlap;
    let mut pick = (s.bank_log_prob, None);
    if rule.reranks() {
        for (a, tag) in alternatives {
            let close = s.bank_similarity - a.similarity <= rule.rerank_max_gap;
            let candidate = a.similarity + w * a.log_prob + v * a.overlap;
            if a.rank < rule.rerank_top_k && close && candidate > score {
                (score, pick) = (candidate, (a.log_prob, Some(tag)));
            }
        }
    }
    pick
}

impl Decoder for HybridDecoder {
    fn dim(&self) -> usize {
        self.bank.dim()
    }

    fn new_session(&self) -> Session {
        self.bank.new_session()
    }

    /// The bank decodes into a copy of the session, which replaces the session when a bank
    /// phrase is chosen; a generated answer is recorded as an input-only entry.
    fn decode_in_session(&self, input: &[f32], session: &mut Session) -> Result<Decoded> {
        let query = crate::embedding::normalized(input, self.dim())?;
        let mut scratch = session.clone();
        let both = self.both(&query, &mut scratch, true)?;
        let (Some(generated), Some(signals)) = (both.generated, both.signals) else {
            *session = scratch;
            return Ok(both.bank);
        };
        let ranked = both.alternatives.iter().map(|a| (a, a.rank));
        match choose(&self.rule, &signals, ranked) {
            Choice::Generator => {
                session.record(SessionEntry {
                    input: query,
                    output: None,
                    phrase_ids: Vec::new(),
                });
                Ok(generated)
            }
            Choice::Alternative(rank) => {
                let candidate = &both.bank.candidates[rank];
                let id = candidate.phrase_id.ok_or_else(|| {
                    Error::InvalidArgument("a re-ranked candidate has no phrase id".into())
                })?;
                scratch.replace_last(SessionEntry {
                    input: query,
                    output: Some(self.bank.output_embedding(&[id])?),
                    phrase_ids: vec![id],
                });
                *session = scratch;
                Ok(Decoded {
                    text: self.bank.render(&[id]),
                    confidence: candidate.similarity.clamp(0.0, 1.0),
                    low_confidence: both.bank.low_confidence,
                    source: Source::PhraseBank {
                        phrase_ids: vec![id],
                    },
                    candidates: both.bank.candidates,
                })
            }
            Choice::Bank => {
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
                    .ok_or_else(|| Error::InvalidArgument("the generator did not run".into()))?,
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
        // log-probability, token F1 and whether it differs from the bank's own choice.
        let picks: Vec<(f32, f64, bool)> = rows
            .iter()
            .map(|r| {
                let tagged = r.alternatives.iter().map(|(a, f1)| (a, *f1));
                match rerank(&reranking, &r.signals, tagged) {
                    (log_prob, Some(f1)) => (log_prob, f1, true),
                    (log_prob, None) => (log_prob, r.bank_f1, false),
                }
            })
            .collect();
        for &bank_similarity in &thresholds {
            for &generator_margin in &margins {
                let (mut f1, mut changed, mut generated) = (0.0, 0.0, 0.0);
                for (r, &(log_prob, pick_f1, moved)) in rows.iter().zip(&picks) {
                    let s = &r.signals;
                    if s.bank_similarity >= bank_similarity {
                        f1 += r.bank_f1;
                    } else if s.generator_log_prob - log_prob >= generator_margin {
                        f1 += r.generator_f1;
                        generated += 1.0;
                        changed += 1.0;
                    } else {
                        f1 += pick_f1;
                        changed += f64::from(u8::from(moved));
                    }
                }
                let (f1, changed) = (f1 / n, changed / n);
                if f1 > best.0 + 1e-12 || (f1 > best.0 - 1e-12 && changed < best.1) {
                    let rule = HybridConfig {
                        bank_similarity,
                        generator_margin,
                        ..reranking.clone()
                    };
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
