//! [`GenerativeDecoder`]: the compact byte-level transformer behind the [`Decoder`] trait.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::decoder::{Decoded, Decoder, Source};
use crate::embedding;
use crate::error::Result;
use crate::generative::{DecodeOptions, InferenceModel};
use crate::monitoring::{Monitor, Statistics};
use crate::session::{Session, SessionEntry};

/// Environment variable that overrides the location of the default generative model.
pub const MODEL_PATH_ENV: &str = "LWDEC_MODEL";

/// Generates text byte by byte from the embedding, so it can say what no bank phrase says.
///
/// Confidence is the geometric-mean probability per byte of the output under the model
/// (`exp(mean log-probability)`).
pub struct GenerativeDecoder {
    model: InferenceModel,
    options: DecodeOptions,
    window: usize,
    monitor: Monitor,
}

impl GenerativeDecoder {
    /// A decoder around a loaded model with the given decoding options.
    pub fn new(model: InferenceModel, options: DecodeOptions) -> Self {
        GenerativeDecoder {
            model,
            options,
            window: 4,
            monitor: Monitor::default(),
        }
    }

    /// Loads a model file (GGUF, any precision).
    pub fn load(path: &Path, options: DecodeOptions) -> Result<Self> {
        Ok(Self::new(InferenceModel::load(path)?, options))
    }

    /// Location of the bundled model: `$LWDEC_MODEL`, else the crate's
    /// `model/generative.q4.gguf`.
    pub fn default_model_path() -> PathBuf {
        std::env::var_os(MODEL_PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("model/generative.q4.gguf")
            })
    }

    /// Loads the bundled model.
    pub fn with_default_model(options: DecodeOptions) -> Result<Self> {
        Self::load(&Self::default_model_path(), options)
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
        let started = Instant::now();
        let result = embedding::normalized(input, self.dim()).and_then(|query| {
            let generated = self.model.decode(&query, &self.options)?;
            session.record(SessionEntry {
                input: query,
                output: None,
                phrase_ids: Vec::new(),
            });
            Ok(Decoded {
                text: generated.text,
                confidence: generated.mean_log_prob.exp().clamp(0.0, 1.0),
                low_confidence: generated.truncated,
                source: Source::Generative,
                candidates: Vec::new(),
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
