//! [`GenerativeDecoder`]: the compact byte-level transformer behind the [`Decoder`] trait.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::generation::{generate, DecodeOptions, Guide, GuideSettings};
use super::inference::InferenceModel;
use crate::decoder::{checked_confidence, Candidate, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::error::Result;
use crate::monitoring::{Monitor, Statistics};
use crate::phrase_bank::PhraseBank;
use crate::session::{Session, SessionEntry};

/// Environment variable that overrides the location of the default generative model.
pub const MODEL_PATH_ENV: &str = "LWDEC_MODEL";

/// Generates text byte by byte from the embedding, so it can say what no bank phrase says.
///
/// With a guide bank ([`GenerativeDecoder::with_guide`]) decoding is retrieval-guided: the
/// input's nearest bank phrases propose the bytes that continue what was written (plan.md).
/// That is the shipped configuration ([`GenerativeDecoder::bundled`], `lwdec` unless
/// `--no-guide`): on held-out text it beats both the nearest phrase and the model alone.
///
/// Confidence is the geometric-mean probability per byte of the output under the model
/// (`exp(mean log-probability)`).
pub struct GenerativeDecoder {
    model: InferenceModel,
    options: DecodeOptions,
    window: usize,
    monitor: Monitor,
    guide: Option<(Arc<PhraseBank>, GuideSettings)>,
}

impl GenerativeDecoder {
    /// A decoder around a loaded model with the given decoding options.
    pub fn new(model: InferenceModel, options: DecodeOptions) -> Self {
        GenerativeDecoder {
            model,
            options,
            window: 4,
            monitor: Monitor::default(),
            guide: None,
        }
    }

    /// Guides decoding with each input's `settings.candidates` nearest phrases of `bank`
    /// (retrieval-guided decoding, [`Guide`]; plan.md has the measured settings). Settings that
    /// guide nothing (`candidates` or `weight` 0) turn guidance off.
    pub fn with_guide(mut self, bank: Arc<PhraseBank>, settings: GuideSettings) -> Result<Self> {
        settings.validate()?;
        self.guide = settings.enabled().then_some((bank, settings));
        Ok(self)
    }

    /// The bank and settings that guide decoding, if guidance is on.
    pub fn guide(&self) -> Option<(&Arc<PhraseBank>, &GuideSettings)> {
        self.guide.as_ref().map(|(bank, settings)| (bank, settings))
    }

    /// The guide of one input: its nearest phrases of the guide bank, if guidance is on.
    /// `searched` holds that bank's nearest phrases of this input, best first, when the caller
    /// already searched it (enough of them: no second search).
    fn guide_for(&self, query: &[f32], searched: Option<&[Candidate]>) -> Result<Option<Guide>> {
        let Some((bank, settings)) = &self.guide else {
            return Ok(None);
        };
        if let Some(found) = searched.filter(|c| c.len() >= settings.candidates.min(bank.len())) {
            let texts = found.iter().map(|c| (c.text.as_str(), c.similarity));
            return Ok(Some(Guide::new(texts, settings)?));
        }
        let hits = bank.search(query, settings.candidates)?;
        let texts = hits
            .iter()
            .flatten()
            .filter_map(|hit| Some((bank.phrase(hit.id)?, hit.similarity)));
        Ok(Some(Guide::new(texts, settings)?))
    }

    /// Loads a model file (GGUF, any precision).
    pub fn load(path: &Path, options: DecodeOptions) -> Result<Self> {
        Ok(Self::new(InferenceModel::load(path)?, options))
    }

    /// Location of the bundled model: `$LWDEC_MODEL`, else `model/generative.q4.gguf` in the
    /// user data folder or the crate's checkout ([`crate::data::locate`]).
    pub fn default_model_path() -> PathBuf {
        crate::data::locate(crate::data::GENERATOR, MODEL_PATH_ENV)
    }

    /// Loads the bundled model, unguided (it decodes from the embedding alone).
    pub fn with_default_model(options: DecodeOptions) -> Result<Self> {
        Self::load(&Self::default_model_path(), options)
    }

    /// The shipped configuration: the bundled model guided by the bundled bank
    /// ([`PhraseBank::load_default`]) with [`GuideSettings::default`].
    pub fn bundled(options: DecodeOptions) -> Result<Self> {
        let bank = Arc::new(PhraseBank::load_default()?);
        Self::with_default_model(options)?.with_guide(bank, GuideSettings::default())
    }

    /// The model.
    pub fn model(&self) -> &InferenceModel {
        &self.model
    }

    /// Counters and latency percentiles since the decoder was made.
    pub fn statistics(&self) -> Statistics {
        self.monitor.statistics(0, 0)
    }
}

impl Decoder for GenerativeDecoder {
    fn dim(&self) -> usize {
        self.model.config().embed_dim
    }

    fn new_session(&self) -> Session {
        Session::new(self.window)
    }

    fn decode_in_session(&self, input: &[f32], session: &mut Session) -> Result<Decoded> {
        match UnitEmbedding::new(input, self.dim()) {
            Ok(query) => self.generate(&query, None, session),
            Err(e) => {
                self.monitor.record_error(std::time::Duration::ZERO);
                Err(e)
            }
        }
    }
}

impl GenerativeDecoder {
    /// Decodes `input` for a caller that already searched a bank for it, such as the hybrid
    /// decoder: `found` holds that bank's nearest phrases, best first. When `bank` is the
    /// guide bank (the same `Arc`) they guide decoding without a second search.
    pub fn decode_with_found(
        &self,
        input: &[f32],
        bank: &Arc<PhraseBank>,
        found: &[Candidate],
    ) -> Result<Decoded> {
        let query = UnitEmbedding::new(input, self.dim())?;
        self.decode_unit_with_found(&query, bank, found)
    }

    /// Decodes an input already checked and normalised, recording it in `session`.
    pub(crate) fn decode_unit(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<Decoded> {
        self.generate(query, None, session)
    }

    /// [`GenerativeDecoder::decode_with_found`] of an input already checked and normalised.
    pub(crate) fn decode_unit_with_found(
        &self,
        query: &UnitEmbedding,
        bank: &Arc<PhraseBank>,
        found: &[Candidate],
    ) -> Result<Decoded> {
        let same_bank = self
            .guide
            .as_ref()
            .is_some_and(|(guide_bank, _)| Arc::ptr_eq(guide_bank, bank));
        let searched = same_bank.then_some(found);
        self.generate(query, searched, &mut self.new_session())
    }

    /// One decode of a unit-norm input, with the guide from `searched` when given (see
    /// [`GenerativeDecoder::guide_for`]).
    fn generate(
        &self,
        query: &UnitEmbedding,
        searched: Option<&[Candidate]>,
        session: &mut Session,
    ) -> Result<Decoded> {
        let started = Instant::now();
        let result = self.guide_for(query, searched).and_then(|guide| {
            let generated = generate(&self.model, query, guide.as_ref(), &self.options)?;
            session.record(SessionEntry {
                input: query.to_vec(),
                output: None,
                phrase_ids: Vec::new(),
            });
            Ok(Decoded {
                text: generated.text,
                confidence: checked_confidence(generated.mean_log_prob.exp().clamp(0.0, 1.0))?,
                low_confidence: generated.truncated,
                source: Source::Generative,
                candidates: Vec::new(),
                roundtrip_cosine: None,
            })
        });
        match &result {
            Ok(d) => self
                .monitor
                .record_success(started.elapsed(), d.confidence, d.low_confidence),
            Err(_) => self.monitor.record_error(started.elapsed()),
        }
        result
    }
}
