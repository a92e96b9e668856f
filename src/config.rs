//! [`DecoderConfig`]: every setting of the decoders, composed of the settings each decoder
//! owns (the bank decoder's, the hybrid's rule, the generator's guidance, verification's), as
//! strict serde JSON with validation.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::generative::GuideSettings;
use crate::hybrid::HybridConfig;
use crate::monitoring::HealthConfig;
pub use crate::phrase_bank::ThresholdMode;
use crate::phrase_bank::{
    AssemblyMethod, BeamConfig, CacheConfig, ContextConfig, PhraseBankSettings, PostProcessConfig,
    WeightedConfig,
};
use crate::verify::VerifySettings;

/// Every setting of the decoders, composed of the settings each one owns: the bank decoder's
/// ([`PhraseBankSettings`]), the hybrid's rule, the generator's guidance and verification's.
///
/// The JSON file keeps the bank decoder's keys at its top level beside `hybrid`, `guide` and
/// `verify` (the shape of earlier files, which still load; `verify` is optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(from = "ConfigFile", into = "ConfigFile")]
pub struct DecoderConfig {
    /// The [`crate::PhraseBankDecoder`]'s settings (the file's top-level keys).
    pub phrase_bank: PhraseBankSettings,
    /// Decision rule of the hybrid decoder (calibrate with `lwdec calibrate`).
    pub hybrid: HybridConfig,
    /// Retrieval guidance of the generative decoder, also the hybrid's generator (the
    /// measured settings by default; [`GuideSettings::off`] turns it off).
    pub guide: GuideSettings,
    /// Verification and refinement, used when a decoder is verified
    /// ([`crate::DecoderBuilder::verified`], `lwdec --verify`, Python's `verify=True`).
    pub verify: VerifySettings,
}

/// The JSON shape of a [`DecoderConfig`]: the bank decoder's keys flat, unknown keys refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    method: AssemblyMethod,
    top_k: usize,
    nprobe: Option<usize>,
    similarity_threshold: f32,
    threshold_mode: ThresholdMode,
    weighted: WeightedConfig,
    beam: BeamConfig,
    context: ContextConfig,
    postprocess: PostProcessConfig,
    cache: CacheConfig,
    health: HealthConfig,
    hybrid: HybridConfig,
    guide: GuideSettings,
    verify: VerifySettings,
}

impl Default for ConfigFile {
    fn default() -> Self {
        DecoderConfig::default().into()
    }
}

impl From<ConfigFile> for DecoderConfig {
    fn from(f: ConfigFile) -> Self {
        DecoderConfig {
            phrase_bank: PhraseBankSettings {
                method: f.method,
                top_k: f.top_k,
                nprobe: f.nprobe,
                similarity_threshold: f.similarity_threshold,
                threshold_mode: f.threshold_mode,
                weighted: f.weighted,
                beam: f.beam,
                context: f.context,
                postprocess: f.postprocess,
                cache: f.cache,
                health: f.health,
            },
            hybrid: f.hybrid,
            guide: f.guide,
            verify: f.verify,
        }
    }
}

impl From<DecoderConfig> for ConfigFile {
    fn from(c: DecoderConfig) -> Self {
        let b = c.phrase_bank;
        ConfigFile {
            method: b.method,
            top_k: b.top_k,
            nprobe: b.nprobe,
            similarity_threshold: b.similarity_threshold,
            threshold_mode: b.threshold_mode,
            weighted: b.weighted,
            beam: b.beam,
            context: b.context,
            postprocess: b.postprocess,
            cache: b.cache,
            health: b.health,
            hybrid: c.hybrid,
            guide: c.guide,
            verify: c.verify,
        }
    }
}

impl From<DecoderConfig> for PhraseBankSettings {
    /// The bank decoder's part of a configuration.
    fn from(config: DecoderConfig) -> Self {
        config.phrase_bank
    }
}

impl DecoderConfig {
    /// A preset for serving ([`PhraseBankSettings::production`]).
    pub fn production() -> Self {
        DecoderConfig {
            phrase_bank: PhraseBankSettings::production(),
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

    /// The verification settings with refinement on or off: on keeps the file's `verify.refine`
    /// settings, or the defaults ([`RefineSettings::default`](crate::RefineSettings::default)) when it has none.
    pub fn verify_settings(&self, refine: bool) -> VerifySettings {
        VerifySettings {
            refine: refine.then(|| self.verify.refine.clone().unwrap_or_default()),
            ..self.verify.clone()
        }
    }

    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        self.phrase_bank.validate()?;
        self.hybrid.validate()?;
        self.guide.validate()?;
        self.verify.validate()
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: DecoderConfig = crate::json::parse_json(text)?;
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
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    DecoderConfig::from_json(&text)
}
