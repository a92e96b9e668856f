//! Sentence encoders: the [`Encoder`] trait a decoder uses to re-embed text, and (with the
//! `encoder` feature) `MpnetEncoder`, the reference encoder (sentence-transformers
//! `all-mpnet-base-v2`) in pure Rust on candle, with its errors.

#[cfg(feature = "encoder")]
mod mpnet;

#[cfg(feature = "encoder")]
pub use mpnet::{
    Config, EncoderPrecision, MpnetEncoder, DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, MODEL_NAME,
};

/// Environment variable naming the reference encoder's model folder.
pub const ENCODER_DIR_ENV: &str = "LWDEC_ENCODER_DIR";

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a sentence encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The model folder, or a file it must contain, is absent.
    #[error("encoder not found at {}: {hint}", dir.display())]
    Missing {
        /// The folder or file that was looked for.
        dir: PathBuf,
        /// What to do about it.
        hint: String,
    },
    /// A model file exists but cannot be read or parsed.
    #[error("corrupt encoder file {}: {reason}", file.display())]
    Corrupt {
        /// The offending file.
        file: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The configuration disagrees with the weights (or with itself).
    #[error("encoder mismatch in {what}: expected {expected}, found {found}")]
    Mismatch {
        /// The quantity that disagrees, e.g. `hidden size (config.json vs weights)`.
        what: String,
        /// The value required.
        expected: String,
        /// The value found.
        found: String,
    },
    /// The tokenizer failed to load or to encode a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model produced a NaN or infinite embedding value (unsound weights or config).
    #[error(
        "the encoder produced a non-finite embedding value ({value}) for row {row} of a batch: \
         its weights or config.json are unsound"
    )]
    NonFinite {
        /// Row of the batch (texts sorted by length).
        row: usize,
        /// The value.
        value: f32,
    },
    /// The precision asked for cannot run on this CPU.
    #[error("encoder precision {precision} is unavailable: {reason}")]
    Unsupported {
        /// The precision's name (`bf16`).
        precision: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An error while loading the folder `dir`, which came from `origin`.
    #[error("encoder folder {} ({origin}): {source}", dir.display())]
    Folder {
        /// The model folder.
        dir: PathBuf,
        /// Where the folder's path came from.
        origin: EncoderOrigin,
        /// What went wrong.
        source: Box<EncoderError>,
    },
    /// A tensor operation failed.
    #[cfg(feature = "encoder")]
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Where an encoder folder's path came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderOrigin {
    /// A command-line flag (`--encoder`, `--recheck-encoder`).
    Flag(&'static str),
    /// The environment variable [`ENCODER_DIR_ENV`].
    Environment,
    /// The default location (no flag, no environment variable).
    Default,
    /// Passed to the library by its caller.
    Argument,
}

impl std::fmt::Display for EncoderOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncoderOrigin::Flag(flag) => write!(f, "given by {flag}"),
            EncoderOrigin::Environment => write!(f, "from ${ENCODER_DIR_ENV}"),
            EncoderOrigin::Default => write!(
                f,
                "the default location; set {ENCODER_DIR_ENV} or pass --encoder to use another"
            ),
            EncoderOrigin::Argument => write!(f, "given by the caller"),
        }
    }
}

/// `Result` with an [`EncoderError`] (inside this module).
#[cfg(feature = "encoder")]
pub(crate) type Result<T> = std::result::Result<T, EncoderError>;

/// A sentence encoder: texts in, unit-norm embeddings out.
pub trait Encoder: Send + Sync {
    /// Unit-norm embeddings, one row per text.
    fn embed(&self, texts: &[&str]) -> std::result::Result<ndarray::Array2<f32>, EncoderError>;
    /// The length of every embedding row.
    fn dimension(&self) -> usize;
    /// A short name of the model, e.g. `all-mpnet-base-v2`.
    fn name(&self) -> &str;
}
