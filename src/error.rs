//! The crate's error type and `Result` alias.

use std::path::PathBuf;

/// Everything that can go wrong while building, loading or querying a decoder.
///
/// Library code never panics on user input: every bad input maps to one of these variants,
/// whose message names the problem.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An embedding does not have the dimension the decoder expects.
    #[error("embedding has dimension {got}, expected {expected}")]
    DimensionMismatch {
        /// Dimension the decoder was built for.
        expected: usize,
        /// Dimension that was passed.
        got: usize,
    },
    /// An embedding contains NaN or an infinite value.
    #[error("embedding contains a non-finite value ({value}) at position {position}")]
    NonFinite {
        /// Index of the first offending component.
        position: usize,
        /// The offending value, printed as NaN / inf / -inf.
        value: f32,
    },
    /// An embedding is (numerically) the zero vector and has no direction.
    #[error("embedding is the zero vector (norm {norm:e}): it has no direction to decode")]
    ZeroVector {
        /// The norm that was found.
        norm: f32,
    },
    /// A phrase bank holds no phrases; the text says which bank (its folder or manifest
    /// field) or which call.
    #[error("phrase bank is empty: {0}")]
    EmptyBank(String),
    /// A bank directory or one of its files is missing, malformed or fails its checksum.
    #[error("corrupt phrase bank at {path}: {reason}")]
    CorruptBank {
        /// The bank directory or file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A model file is truncated, corrupt or does not match its configuration.
    #[error("invalid model {path}: {reason}")]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A language model file (`.lm`) is truncated, corrupt or inconsistent.
    #[error("invalid language model {path}: {reason}")]
    InvalidLanguageModel {
        /// The model file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A `.npy` file could not be read as the expected array.
    #[error("cannot read array {path}: {reason}")]
    Npy {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Session boundaries are out of range or not sorted.
    #[error("invalid session boundaries: {0}")]
    InvalidBoundaries(String),
    /// An error concerning one row of a batch.
    #[error("row {row}: {source}")]
    AtRow {
        /// Index of the row in the batch.
        row: usize,
        /// What was wrong with it.
        source: Box<Error>,
    },
    /// Any other invalid argument (empty input, bad method name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The generative model failed to build, run or train (a candle error, with what was
    /// being done).
    #[error("model: {0}")]
    Model(String),
    /// The sentence encoder failed to load or to run.
    #[error("encoder: {0}")]
    Encoder(#[from] crate::encoder::EncoderError),
    /// An internal invariant does not hold: a bug in this crate, never the caller's input.
    #[error("internal error (please report): {0}")]
    Internal(String),
    /// Strict mode: no phrase is similar enough to the embedding.
    #[error("no phrase is similar enough: best similarity {best:.3} is below the threshold {threshold:.3}")]
    BelowThreshold {
        /// Best similarity that was found.
        best: f32,
        /// Configured threshold.
        threshold: f32,
    },
    /// An error reported by FAISS.
    #[error("faiss: {0}")]
    Faiss(String),
    /// An I/O error on a named path, with what was being done.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `read`, `create the folder`.
        action: &'static str,
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON document could not be parsed or written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<faiss::error::Error> for Error {
    fn from(e: faiss::error::Error) -> Self {
        Error::Faiss(e.to_string())
    }
}

impl Error {
    /// Wraps an I/O error together with what was being done (`action`, e.g. `read`) and the
    /// path it concerns: the message reads "cannot {action} {path}: {source}".
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Ok(())` if `ok`, else [`Error::InvalidConfig`] with `what` (the rule that failed).
pub(crate) fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(what.to_string()))
    }
}

/// Whether `v` is finite and in `[lo, hi]`.
pub(crate) fn finite_in(v: f32, lo: f32, hi: f32) -> bool {
    v.is_finite() && (lo..=hi).contains(&v)
}
