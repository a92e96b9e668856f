//! The hybrid's decision rule: [`HybridConfig`], the signals it reads per input and the
//! choice it makes (shared by the decoder and by calibration).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The hybrid's decision rule (stored in [`crate::DecoderConfig::hybrid`]; fit it with
/// [`calibrate`](super::calibrate)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// The rule fitted for the shipped configuration: the bundled model guided by the broad
    /// default bank, calibrated for round-trip cosine (the chosen text re-embedded, against
    /// the input) on 400 corpus validation sentences, clean and with noise to cosine 0.9 and
    /// 0.8 (`bash scripts/calibrate_broad_hybrid.sh`,
    /// `docs/hybrid_broad_round_trip_config.json`). The bank phrase when its similarity is at
    /// least 0.393, which is nearly always; below, a bank candidate re-ranked by similarity,
    /// or the generated text when its score leads by 1.8 (almost never: the WordNet-trained
    /// generator's texts lose meaning against the broad bank's). A rule depends on the bank's
    /// similarity scale and on the generator: fit your own with
    /// [`calibrate`](super::calibrate) (`lwdec calibrate`) for another bank or model, and use
    /// [`HybridConfig::bank_only`] with an unguided generator.
    fn default() -> Self {
        HybridConfig {
            bank_similarity: 0.393_040_27,
            generator_margin: 1.800_000_1,
            rerank_top_k: 5,
            rerank_weight: 0.02,
            overlap_weight: 0.0,
            rerank_max_gap: 0.05,
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

    /// Whether re-ranking may pick the bank's candidate at `rank` with `similarity` when the
    /// best one has `best`: within the first `rerank_top_k`, within `rerank_max_gap` of it.
    pub(crate) fn may_pick(&self, rank: usize, best: f32, similarity: f32) -> bool {
        rank < self.rerank_top_k && best - similarity <= self.rerank_max_gap
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

/// What the rule picked; `T` tags the alternatives (a rank when decoding, a token F1 when
/// evaluating measured rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Choice<T> {
    /// The bank's own output.
    Bank,
    /// This other bank candidate instead.
    Alternative(T),
    /// The generated text.
    Generator,
}

/// The rule's pick: below the similarity threshold, the best bank candidate by similarity plus
/// weighted log-probability, unless the generated text beats its log-probability by the margin.
pub(crate) fn choose<'a, T>(
    rule: &HybridConfig,
    s: &HybridSignals,
    alternatives: impl Iterator<Item = (&'a Alternative, T)>,
) -> Choice<T> {
    if s.bank_similarity >= rule.bank_similarity {
        return Choice::Bank;
    }
    let (log_prob, tag) = rerank(rule, s, alternatives);
    decide(rule, s, log_prob, tag)
}

/// The rule's pick once the re-ranking has picked `tag` (`None`: the bank's own choice),
/// whose generator log-probability is `log_prob`.
pub(crate) fn decide<T>(
    rule: &HybridConfig,
    s: &HybridSignals,
    log_prob: f32,
    tag: Option<T>,
) -> Choice<T> {
    if s.bank_similarity >= rule.bank_similarity {
        Choice::Bank
    } else if s.generator_log_prob - log_prob >= rule.generator_margin {
        Choice::Generator
    } else {
        tag.map_or(Choice::Bank, Choice::Alternative)
    }
}

/// The re-ranking's pick among the bank's own choice and `alternatives` (each with a tag):
/// the pick's log-probability, and the tag of the alternative (`None`: the bank's choice).
pub(crate) fn rerank<'a, T>(
    rule: &HybridConfig,
    s: &HybridSignals,
    alternatives: impl Iterator<Item = (&'a Alternative, T)>,
) -> (f32, Option<T>) {
    let (w, v) = (rule.rerank_weight, rule.overlap_weight);
    let mut score = s.bank_similarity + w * s.bank_log_prob + v * s.bank_overlap;
    let mut pick = (s.bank_log_prob, None);
    if rule.reranks() {
        for (a, tag) in alternatives {
            let candidate = a.similarity + w * a.log_prob + v * a.overlap;
            if rule.may_pick(a.rank, s.bank_similarity, a.similarity) && candidate > score {
                (score, pick) = (candidate, (a.log_prob, Some(tag)));
            }
        }
    }
    pick
}
