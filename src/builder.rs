//! [`DecoderBuilder`]: wires a bank, the generator and the hybrid from one set of settings, as
//! the command line and the examples do.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::DecoderConfig;
use crate::decoder::Decoder;
use crate::encoder::Encoder;
use crate::error::Result;
use crate::generative::{DecodeOptions, GenerativeDecoder};
use crate::hybrid::HybridDecoder;
use crate::language_model::NgramModel;
use crate::phrase_bank::assembly::Assembler;
use crate::phrase_bank::postprocess::PostProcessor;
use crate::phrase_bank::{PhraseBank, PhraseBankDecoder};
use crate::verify::{Proposer, VerifiedDecoder, VerifySettings};

/// Which decoder [`DecoderBuilder::build`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderKind {
    /// [`PhraseBankDecoder`]: FAISS search over the bank.
    PhraseBank,
    /// [`GenerativeDecoder`]: the byte-level transformer, guided by the bank unless the
    /// config's `guide` is off.
    Generative,
    /// [`HybridDecoder`]: per input the bank's phrase or the generator's text.
    Hybrid,
}

/// Builds decoders from a bank directory, a model file, a [`DecoderConfig`] and
/// [`DecodeOptions`]; each defaults to the bundled one.
///
/// ```no_run
/// use lightweight_decoder::{Decoder, DecoderBuilder};
/// # fn main() -> lightweight_decoder::Result<()> {
/// let hybrid = DecoderBuilder::new().hybrid()?; // the shipped configuration
/// let text = hybrid.decode(&vec![0.03f32; 768])?.text;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct DecoderBuilder {
    bank_dir: Option<PathBuf>,
    model_path: Option<PathBuf>,
    config: DecoderConfig,
    options: DecodeOptions,
    language_model_path: Option<PathBuf>,
    assembler: Option<Arc<dyn Assembler>>,
    postprocessors: Vec<Arc<dyn PostProcessor>>,
}

impl std::fmt::Debug for DecoderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderBuilder")
            .field("bank_dir", &self.bank_dir)
            .field("model_path", &self.model_path)
            .field("config", &self.config)
            .field("options", &self.options)
            .field("language_model_path", &self.language_model_path)
            .field("custom_assembler", &self.assembler.is_some())
            .field("added_postprocessors", &self.postprocessors.len())
            .finish()
    }
}

impl DecoderBuilder {
    /// The bundled bank and model, default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bank directory (`None`: the bundled bank, or `$LWDEC_BANK_DIR`).
    pub fn bank_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.bank_dir = dir;
        self
    }

    /// The generative model file (`None`: the bundled model, or `$LWDEC_MODEL`).
    pub fn model_path(mut self, path: Option<PathBuf>) -> Self {
        self.model_path = path;
        self
    }

    /// The model of English that refinement uses (`None`: the bundled `model/english.lm`, or
    /// `$LWDEC_LANGUAGE_MODEL`).
    pub fn language_model_path(mut self, path: Option<PathBuf>) -> Self {
        self.language_model_path = path;
        self
    }

    /// Loads the model of English ([`NgramModel`]).
    pub fn load_language_model(&self) -> Result<NgramModel> {
        let path = self
            .language_model_path
            .clone()
            .unwrap_or_else(NgramModel::default_path);
        NgramModel::load(&path)
    }

    /// The decoders' settings.
    pub fn config(mut self, config: DecoderConfig) -> Self {
        self.config = config;
        self
    }

    /// An [`Assembler`] of your own for the bank decoder (and the hybrid's bank), in place of
    /// the config's `method`.
    pub fn assembler(mut self, assembler: Arc<dyn Assembler>) -> Self {
        self.assembler = Some(assembler);
        self
    }

    /// A [`PostProcessor`] of your own, run after the configured stages (call again to add
    /// more, in order).
    pub fn postprocessor(mut self, stage: Arc<dyn PostProcessor>) -> Self {
        self.postprocessors.push(stage);
        self
    }

    /// The decoders' settings this builder uses.
    pub fn decoder_config(&self) -> &DecoderConfig {
        &self.config
    }

    /// How the generator decodes (greedy, beam, MBR, ...).
    pub fn decode_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Loads the bank.
    pub fn load_bank(&self) -> Result<PhraseBank> {
        match &self.bank_dir {
            Some(dir) => PhraseBank::load(dir),
            None => PhraseBank::load_default(),
        }
    }

    /// A [`PhraseBankDecoder`] over the bank.
    pub fn phrase_bank(&self) -> Result<PhraseBankDecoder> {
        let mut decoder = PhraseBankDecoder::new(self.load_bank()?, self.config.clone())?;
        if let Some(assembler) = &self.assembler {
            decoder = decoder.with_assembler(assembler.clone());
        }
        for stage in &self.postprocessors {
            decoder = decoder.with_postprocessor(stage.clone());
        }
        Ok(decoder)
    }

    /// A [`GenerativeDecoder`], guided by the bank when the config's `guide` is on.
    pub fn generative(&self) -> Result<GenerativeDecoder> {
        if self.config.guide.enabled() {
            self.generative_with_bank(Arc::new(self.load_bank()?))
        } else {
            self.unguided_generator()
        }
    }

    /// A [`HybridDecoder`] of the bank and the generator, which borrows the bank's search
    /// (one bank in memory, searched once per input), decided by the config's `hybrid` rule.
    pub fn hybrid(&self) -> Result<HybridDecoder> {
        let bank = self.phrase_bank()?;
        let generator = self.generative_with_bank(bank.shared_bank())?;
        HybridDecoder::new(bank, generator, self.config.hybrid)
    }

    /// The decoder of `kind`, behind the [`Decoder`] trait.
    pub fn build(&self, kind: DecoderKind) -> Result<Box<dyn Decoder>> {
        Ok(match kind {
            DecoderKind::PhraseBank => Box::new(self.phrase_bank()?),
            DecoderKind::Generative => Box::new(self.generative()?),
            DecoderKind::Hybrid => Box::new(self.hybrid()?),
        })
    }

    /// The decoder of `kind` verified by `encoder` ([`VerifiedDecoder`]): every answer is
    /// re-embedded beside its alternatives and the closest to the input is returned.
    pub fn verified(
        &self,
        kind: DecoderKind,
        encoder: Arc<dyn Encoder>,
        settings: VerifySettings,
    ) -> Result<Box<dyn Decoder>> {
        // checked before anything loads (the decoders below validate again, for callers
        // who build a `VerifiedDecoder` themselves)
        settings.validate()?;
        Ok(match kind {
            DecoderKind::PhraseBank => {
                Box::new(self.verify(self.phrase_bank()?, encoder, settings)?)
            }
            DecoderKind::Generative => {
                Box::new(self.verify(self.generative()?, encoder, settings)?)
            }
            DecoderKind::Hybrid => Box::new(self.verify(self.hybrid()?, encoder, settings)?),
        })
    }

    /// `decoder` verified by `encoder` with `settings` ([`VerifiedDecoder`]), with the model of
    /// English ([`DecoderBuilder::load_language_model`]) when refinement is on.
    pub fn verify<P: Proposer>(
        &self,
        decoder: P,
        encoder: Arc<dyn Encoder>,
        settings: VerifySettings,
    ) -> Result<VerifiedDecoder<P>> {
        // refinement writes with the model of English; plain verification needs none
        let english = match settings.refine {
            Some(_) => Some(Arc::new(self.load_language_model()?)),
            None => None,
        };
        let decoder = VerifiedDecoder::new(decoder, encoder, settings)?;
        Ok(match english {
            Some(model) => decoder.with_language_model(model),
            None => decoder,
        })
    }

    fn unguided_generator(&self) -> Result<GenerativeDecoder> {
        let path = self
            .model_path
            .clone()
            .unwrap_or_else(GenerativeDecoder::default_model_path);
        GenerativeDecoder::load(&path, self.options.clone())
    }

    /// A [`GenerativeDecoder`] guided by `bank` with the config's `guide` settings (no
    /// guidance when they are off), e.g. the bank of a [`PhraseBankDecoder`] it should share
    /// ([`PhraseBankDecoder::shared_bank`]).
    pub fn generative_with_bank(&self, bank: Arc<PhraseBank>) -> Result<GenerativeDecoder> {
        self.unguided_generator()?
            .with_guide(bank, self.config.guide.clone())
    }
}
