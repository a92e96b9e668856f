//! [`PhraseBankSettings`]: what a [`PhraseBankDecoder`](super::PhraseBankDecoder) is told (search,
//! threshold, assembly, post-processing, cache, health). A decoder configuration file
//! ([`DecoderConfig`](crate::DecoderConfig)) holds these keys at its top level.

use serde::{Deserialize, Serialize};

use super::assembly::{AssemblyMethod, BeamConfig, ContextConfig, WeightedConfig};
use super::cache::CacheConfig;
use super::postprocess::PostProcessConfig;
use crate::error::{check, finite_in, Result};
use crate::monitoring::HealthConfig;

/// What happens when the best match is below [`PhraseBankSettings::similarity_threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    /// Fail with [`Error::BelowThreshold`](crate::Error::BelowThreshold).
    Strict,
    /// Return the best effort, flagged `low_confidence` with a reduced confidence.
    #[default]
    Lenient,
}

/// The settings of a [`PhraseBankDecoder`](super::PhraseBankDecoder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhraseBankSettings {
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
}

impl Default for PhraseBankSettings {
    fn default() -> Self {
        PhraseBankSettings {
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
        }
    }
}

impl PhraseBankSettings {
    /// A preset for serving: a larger cache, strict thresholds, tighter health limits.
    pub fn production() -> Self {
        PhraseBankSettings {
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
            ..PhraseBankSettings::default()
        }
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
        self.health.validate()
    }
}
