//! [`DecoderConfig`]: every setting of the decoders, composed of the settings each component
//! owns (assembly methods, post-processing, cache, health, the hybrid's rule, the generator's
//! guidance), as strict serde JSON with validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{check, finite_in, Error, Result};
use crate::generative::GuideSettings;
use crate::hybrid::HybridConfig;
use crate::monitoring::HealthConfig;
use crate::phrase_bank::{
    AssemblyMethod, BeamConfig, CacheConfig, ContextConfig, PostProcessConfig, WeightedConfig,
};

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

/// Every setting of the decoders: a [`crate::PhraseBankDecoder`]'s, the hybrid's rule and the
/// generator's guidance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    pub hybrid: HybridConfig,
    /// Retrieval guidance of the generative decoder, also the hybrid's generator (the
    /// measured settings by default; [`GuideSettings::off`] turns it off).
    pub guide: GuideSettings,
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
            hybrid: HybridConfig::default(),
            guide: GuideSettings::default(),
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

    /// These settings with retrieval guidance off ([`GuideSettings::off`]): the generator
    /// decodes from the embedding alone. The default hybrid rule was fitted for the guided
    /// generator, so it becomes [`HybridConfig::bank_only`] (the generator never overrides the
    /// bank) until a rule is calibrated for the unguided one; a rule of your own is kept.
    pub fn without_guide(mut self) -> Self {
        self.guide = GuideSettings::off();
        if self.hybrid == HybridConfig::default() {
            self.hybrid = HybridConfig::bank_only();
        }
        self
    }

    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            (1..=1000).contains(&self.top_k),
            "top_k must be in 1..=1000",
        )?;
        check(self.nprobe != Some(0), "nprobe must be positive")?;
        check(
            finite_in(self.similarity_threshold, -1.0, 1.0),
            "similarity_threshold must be in [-1, 1]",
        )?;
        self.weighted.validate()?;
        self.beam.validate(self.top_k)?;
        self.context.validate()?;
        self.postprocess.validate()?;
        self.cache.validate()?;
        self.hybrid.validate()?;
        self.guide.validate()?;
        self.health.validate()
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: DecoderConfig = parse_json(text)?;
        config.validate()?;
        Ok(config)
    }
}

/// Parses a strict JSON settings document (unknown keys are errors); the error names the
/// problem and, for an unknown key, the nearest known one.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let hint = unknown_key_hint(&message).unwrap_or_default();
        Error::InvalidConfig(format!("malformed JSON: {message}{hint}"))
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`"), a hint
/// naming the known key nearest to `x` by edit distance.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, known) = rest.split_once('`')?;
    let nearest = known
        .split('`')
        .skip(1)
        .step_by(2)
        .min_by_key(|k| edit_distance(unknown, k))?;
    Some(format!(" (did you mean `{nearest}`?)"))
}

/// Levenshtein distance between two keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (up + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = up;
        }
    }
    row[b.len()]
}

/// Writes a validated config as pretty JSON, atomically.
pub fn save_config(config: &DecoderConfig, path: &Path) -> Result<()> {
    config.validate()?;
    let text = serde_json::to_string_pretty(config)? + "\n";
    crate::fsutil::write_atomic(path, text.as_bytes())
}

/// Reads and validates a JSON config.
pub fn load_config(path: &Path) -> Result<DecoderConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    DecoderConfig::from_json(&text)
}
