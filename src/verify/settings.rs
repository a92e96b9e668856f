//! The settings of verified decoding ([`VerifySettings`]) and of refinement
//! ([`RefineSettings`]), part of a decoder configuration file (`DecoderConfig::verify`).

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Settings of a [`VerifiedDecoder`](super::VerifiedDecoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifySettings {
    /// The decoder's top candidates pooled besides its answer (at most its `top_k`).
    pub pool_top_k: usize,
    /// Of the pooled proposals that carry the decoder's own similarity estimate (the bank's
    /// search score), only the best this many are re-embedded and compete; the others stay
    /// in the pool as refinement's material. The answer and proposals without an estimate
    /// (generated text) are always re-embedded.
    pub reembed_top_k: usize,
    /// Texts whose embeddings are remembered between calls (0 turns the cache off).
    pub cache_capacity: usize,
    /// Refine the chosen text by search ([`RefineSettings`]); `None` keeps the choice.
    pub refine: Option<RefineSettings>,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            pool_top_k: 10,
            reembed_top_k: 4,
            cache_capacity: 65_536,
            refine: None,
        }
    }
}

impl VerifySettings {
    /// Largest `cache_capacity` (the cache holds a 768-d vector per entry: 3 KB).
    pub const MAX_CACHE_CAPACITY: usize = 1 << 20;

    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        crate::error::check(
            (1..=1000).contains(&self.pool_top_k),
            "verify.pool_top_k must be in 1..=1000",
        )?;
        crate::error::check(
            (1..=1000).contains(&self.reembed_top_k),
            "verify.reembed_top_k must be in 1..=1000",
        )?;
        crate::error::check(
            self.cache_capacity <= Self::MAX_CACHE_CAPACITY,
            "verify.cache_capacity must be at most 1048576",
        )?;
        match &self.refine {
            Some(r) => r.validate(),
            None => Ok(()),
        }
    }
}

/// Settings of refinement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineSettings {
    /// Encoder calls per input, the pool words' embeddings included.
    pub budget: usize,
    /// Edits re-embedded per input and round.
    pub per_round: usize,
    /// Distinct words taken from the candidates (best candidates first).
    pub max_pool_words: usize,
    /// Texts kept per input between rounds (1: a hill climb).
    pub beam: usize,
    /// Rounds an input goes on without a better best text before it stops.
    pub patience: usize,
    /// Weight of the language model's mean log10 probability per token against the cosine
    /// (with a language model; see [`super::VerifiedDecoder::with_language_model`]).
    pub language_model_weight: f32,
    /// How far an edit's fluency (the language model's mean log10 probability per token) may
    /// fall below the starting text's.
    pub fluency_slack: f32,
    /// The fluency no edit may fall below while the starting text is above it (about the 5th
    /// percentile of real sentences); from a text below it, edits may not fall at all.
    pub fluency_floor: f32,
    /// Weight of the generator's mean log-probability per byte given the input (a second,
    /// slower fluency prior; 0 turns it off).
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
            beam: 2,
            patience: 2,
            language_model_weight: 0.015,
            fluency_slack: 0.6,
            fluency_floor: -2.9,
            fluency_weight: 0.0,
            function_words: true,
        }
    }
}

impl RefineSettings {
    /// Largest `budget`.
    pub const MAX_BUDGET: usize = 100_000;

    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
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
            (1..=64).contains(&self.beam),
            "refine.beam must be in 1..=64",
        )?;
        check(
            (1..=1000).contains(&self.patience),
            "refine.patience must be in 1..=1000",
        )?;
        check(
            finite_in(self.language_model_weight, 0.0, 10.0),
            "refine.language_model_weight must be in [0, 10]",
        )?;
        check(
            finite_in(self.fluency_slack, 0.0, 100.0),
            "refine.fluency_slack must be in [0, 100]",
        )?;
        check(
            finite_in(self.fluency_floor, -100.0, 0.0),
            "refine.fluency_floor must be in [-100, 0]",
        )?;
        check(
            finite_in(self.fluency_weight, 0.0, 10.0),
            "refine.fluency_weight must be in [0, 10]",
        )
    }
}
