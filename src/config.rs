//! [`DecoderConfig`]: every setting of the phrase-bank decoder, as serde JSON with validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the decoder turns search results into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AssemblyMethod {
    /// The most similar phrase.
    Greedy,
    /// Similarity-weighted vote among the top-k above a threshold; near-identical phrases pool
    /// their weight.
    Weighted,
    /// Beam search over combinations of phrases whose combined embedding best matches the input.
    Beam,
    /// Re-ranks near-best candidates by coherence with the session's recent context and penalises
    /// repeating recent phrases. Equal to greedy when the session has no context.
    #[default]
    ContextAware,
}

impl std::str::FromStr for AssemblyMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.replace('-', "_").as_str() {
            "greedy" => Ok(Self::Greedy),
            "weighted" => Ok(Self::Weighted),
            "beam" => Ok(Self::Beam),
            "context_aware" => Ok(Self::ContextAware),
            other => Err(Error::InvalidArgument(format!(
                "unknown method {other:?} (expected greedy, weighted, beam or context_aware)"
            ))),
        }
    }
}

/// What happens when the best match is below [`DecoderConfig::similarity_threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Fail with [`Error::BelowThreshold`].
    Strict,
    /// Return the best effort, flagged `low_confidence` with a reduced confidence.
    #[default]
    Lenient,
}

/// Settings of the `weighted` method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightedConfig {
    /// Softmax temperature over similarities.
    pub temperature: f32,
    /// Candidates further than this below the best similarity take no part in the vote.
    pub max_margin: f32,
}

impl Default for WeightedConfig {
    fn default() -> Self {
        WeightedConfig {
            temperature: 0.01,
            max_margin: 0.05,
        }
    }
}

/// Settings of the `beam` method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BeamConfig {
    /// Partial assemblies kept at each step.
    pub width: usize,
    /// Most phrases joined into one output.
    pub max_phrases: usize,
    /// A phrase is added only if it raises the cosine to the input by at least this much.
    pub min_gain: f32,
    /// Candidate phrases considered at each step (from the input and from each residual).
    pub pool: usize,
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig {
            width: 4,
            max_phrases: 3,
            min_gain: 0.04,
            pool: 8,
        }
    }
}

/// Settings of the `context_aware` method and of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextConfig {
    /// Recent inputs kept in a session's context.
    pub window: usize,
    /// Weight of each older input relative to the next newer one (0..=1).
    pub decay: f32,
    /// Strength of the context prior (log-odds per unit of cosine with the context); its weight
    /// against similarity shrinks as the input gets cleaner (see [`crate::assembly::ContextAware`]).
    pub prior_strength: f32,
    /// Score subtracted from a candidate that the session emitted within the window.
    pub repetition_penalty: f32,
    /// Only candidates within this similarity of the best are re-ranked, so context never
    /// overrides a clearly better match.
    pub max_margin: f32,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            window: 4,
            decay: 0.7,
            prior_strength: 15.0,
            repetition_penalty: 0.02,
            max_margin: 0.03,
        }
    }
}

/// Settings of text post-processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostProcessConfig {
    /// Master switch: with `false` the phrases are returned exactly as stored and joined.
    pub enabled: bool,
    /// Capitalise the first letter of each sentence.
    pub capitalize: bool,
    /// Collapse whitespace and remove spaces before punctuation.
    pub fix_spacing: bool,
    /// Remove immediately repeated words.
    pub remove_redundant_words: bool,
    /// Drop a joined phrase whose stemmed words mostly repeat an earlier one.
    pub remove_near_duplicates: bool,
    /// Share of stemmed words (Jaccard) above which two phrases are near-duplicates.
    pub near_duplicate_jaccard: f32,
}

impl Default for PostProcessConfig {
    fn default() -> Self {
        PostProcessConfig {
            enabled: true,
            capitalize: true,
            fix_spacing: true,
            remove_redundant_words: true,
            remove_near_duplicates: true,
            near_duplicate_jaccard: 0.7,
        }
    }
}

/// Settings of the pattern cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Entries kept; 0 disables the cache.
    pub capacity: usize,
    /// Quantisation step of the signature (unit-norm components are rounded to multiples of it).
    pub quantization_step: f32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 4096,
            quantization_step: 1.0 / 256.0,
        }
    }
}

/// Limits that [`crate::monitoring::Health`] checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Error rate above which the decoder is degraded.
    pub degraded_error_rate: f64,
    /// Error rate above which the decoder is unhealthy.
    pub unhealthy_error_rate: f64,
    /// p99 latency (microseconds) above which the decoder is degraded.
    pub p99_latency_budget_us: f64,
    /// Share of low-confidence results above which the decoder is degraded.
    pub low_confidence_rate: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            degraded_error_rate: 0.05,
            unhealthy_error_rate: 0.5,
            p99_latency_budget_us: 10_000.0,
            low_confidence_rate: 0.5,
        }
    }
}

/// Every setting of the decoders: a [`crate::PhraseBankDecoder`]'s, the hybrid's rule and the
/// generator's guidance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecoderConfig {
    /// Assembly method.
    pub method: AssemblyMethod,
    /// Candidates retrieved per input and reported in [`crate::Decoded::candidates`].
    pub top_k: usize,
    /// Inverted lists probed per search (IVF banks); `None` keeps the bank's own setting.
    pub nprobe: Option<usize>,
    /// Best similarity under which a result is below threshold.
    pub similarity_threshold: f32,
    /// Strict (error) or lenient (flagged best effort) below the threshold.
    pub threshold_mode: ThresholdMode,
    /// Settings of the `weighted` method.
    pub weighted: WeightedConfig,
    /// Settings of the `beam` method.
    pub beam: BeamConfig,
    /// Settings of the `context_aware` method and of sessions.
    pub context: ContextConfig,
    /// Text post-processing.
    pub postprocess: PostProcessConfig,
    /// Pattern cache.
    pub cache: CacheConfig,
    /// Health limits.
    pub health: HealthConfig,
    /// Decision rule of the hybrid decoder (calibrate with `lwdec calibrate`).
    pub hybrid: crate::hybrid::HybridConfig,
    /// Retrieval guidance of the generative decoder, also the hybrid's generator (the
    /// measured settings by default; [`crate::generative::GuideSettings::off`] turns it off).
    pub guide: crate::generative::GuideSettings,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            method: AssemblyMethod::default(),
            top_k: 10,
            nprobe: None,
            similarity_threshold: 0.3,
            threshold_mode: ThresholdMode::default(),
            weighted: WeightedConfig::default(),
            beam: BeamConfig::default(),
            context: ContextConfig::default(),
            postprocess: PostProcessConfig::default(),
            cache: CacheConfig::default(),
            health: HealthConfig::default(),
            hybrid: crate::hybrid::HybridConfig::default(),
            guide: crate::generative::GuideSettings::default(),
        }
    }
}

impl DecoderConfig {
    /// A preset for serving: a larger cache, strict thresholds, tighter health limits.
    pub fn production() -> Self {
        DecoderConfig {
            similarity_threshold: 0.35,
            threshold_mode: ThresholdMode::Strict,
            cache: CacheConfig {
                capacity: 65_536,
                ..CacheConfig::default()
            },
            health: HealthConfig {
                degraded_error_rate: 0.01,
                unhealthy_error_rate: 0.2,
                p99_latency_budget_us: 5_000.0,
                low_confidence_rate: 0.3,
            },
            ..DecoderConfig::default()
        }
    }

    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, what: &str) -> Result<()> {
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidConfig(what.to_string()))
            }
        }
        let finite_in = |v: f32, lo: f32, hi: f32| v.is_finite() && (lo..=hi).contains(&v);
        check(
            (1..=1000).contains(&self.top_k),
            "top_k must be in 1..=1000",
        )?;
        check(self.nprobe != Some(0), "nprobe must be positive")?;
        check(
            finite_in(self.similarity_threshold, -1.0, 1.0),
            "similarity_threshold must be in [-1, 1]",
        )?;
        check(
            self.weighted.temperature.is_finite() && self.weighted.temperature > 0.0,
            "weighted.temperature must be positive",
        )?;
        check(
            finite_in(self.weighted.max_margin, 0.0, 2.0),
            "weighted.max_margin must be in [0, 2]",
        )?;
        check(self.beam.width >= 1, "beam.width must be at least 1")?;
        check(
            (1..=8).contains(&self.beam.max_phrases),
            "beam.max_phrases must be in 1..=8",
        )?;
        check(
            (1..=self.top_k.max(1) * 4).contains(&self.beam.pool),
            "beam.pool must be in 1..=4*top_k",
        )?;
        check(
            finite_in(self.beam.min_gain, 0.0, 1.0),
            "beam.min_gain must be in [0, 1]",
        )?;
        check(
            (1..=64).contains(&self.context.window),
            "context.window must be in 1..=64",
        )?;
        check(
            finite_in(self.context.decay, 0.0, 1.0),
            "context.decay must be in [0, 1]",
        )?;
        check(
            finite_in(self.context.prior_strength, 0.0, 1000.0),
            "context.prior_strength must be in [0, 1000]",
        )?;
        check(
            finite_in(self.context.repetition_penalty, 0.0, 10.0),
            "context.repetition_penalty must be in [0, 10]",
        )?;
        check(
            finite_in(self.context.max_margin, 0.0, 2.0),
            "context.max_margin must be in [0, 2]",
        )?;
        check(
            finite_in(self.postprocess.near_duplicate_jaccard, 0.0, 1.0),
            "postprocess.near_duplicate_jaccard must be in [0, 1]",
        )?;
        check(
            self.cache.quantization_step.is_finite() && self.cache.quantization_step > 0.0,
            "cache.quantization_step must be positive",
        )?;
        self.hybrid.validate()?;
        self.guide.validate()?;
        let h = &self.health;
        check(
            (0.0..=1.0).contains(&h.degraded_error_rate)
                && (0.0..=1.0).contains(&h.unhealthy_error_rate)
                && h.degraded_error_rate <= h.unhealthy_error_rate,
            "health error rates must be in [0, 1] with degraded <= unhealthy",
        )?;
        check(
            h.p99_latency_budget_us.is_finite() && h.p99_latency_budget_us > 0.0,
            "health.p99_latency_budget_us must be positive",
        )?;
        check(
            (0.0..=1.0).contains(&h.low_confidence_rate),
            "health.low_confidence_rate must be in [0, 1]",
        )?;
        Ok(())
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: DecoderConfig = serde_json::from_str(text)
            .map_err(|e| Error::InvalidConfig(format!("malformed JSON: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}

/// Writes a validated config as pretty JSON, atomically.
pub fn save_config(config: &DecoderConfig, path: &Path) -> Result<()> {
    config.validate()?;
    let text = serde_json::to_string_pretty(config)? + "\n";
    crate::fsutil::write_atomic(path, text.as_bytes())
}

/// Reads and validates a JSON config.
pub fn load_config(path: &Path) -> Result<DecoderConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    DecoderConfig::from_json(&text)
}
