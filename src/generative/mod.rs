//! The compact generative decoder: a byte-level transformer conditioned on an embedding.
//!
//! One pre-norm transformer layer is applied `depth` times with shared weights. The embedding is
//! projected to the hidden size (the "prefix"), which is both the first sequence position and,
//! optionally, added to the hidden state at the input of every depth iteration. Bytes are
//! predicted one at a time; byte 0 ends the text.
//!
//! * [`GenerativeConfig`]: architecture hyper-parameters.
//! * `GenerativeModel` (feature `train`): trainable float32 model (training forward, loss), on
//!   candle.
//! * `train` (feature `train`): `Trainer` / `TrainConfig`, AdamW training with warm-up, decay
//!   and validation, and resumable checkpoints.
//! * [`InferenceModel`]: key/value-cached incremental network, float32 or block-quantized
//!   ([`Precision`]), loaded from GGUF by the crate's own reader (no candle), exported from a
//!   trained model and saved with the `train` feature.
//! * [`generate`] with [`DecodeOptions`]: greedy, beam, sampled and MBR decoding that always
//!   yields valid UTF-8, optionally guided by a [`Guide`] (the nearest bank phrases proposing
//!   the bytes that continue what was written and voting on the result).
//! * [`GenerativeDecoder`]: all of it behind the crate's [`Decoder`](crate::Decoder) trait.

mod config;
mod decoder;
mod generation;
mod gguf;
mod gguf_file;
mod inference;
mod kernels;
#[cfg(feature = "train")]
mod model;
mod params;
mod precision;
mod rope;
#[cfg(feature = "train")]
pub mod train;
mod utf8;

pub use config::GenerativeConfig;
pub use decoder::{GenerativeDecoder, MODEL_PATH_ENV};
pub use generation::{
    generate, DecodeOptions, GeneratedText, Guide, GuideSettings, Strategy, MAX_BEAM_WIDTH,
    MAX_MBR_SAMPLES,
};
pub use inference::{InferenceModel, MAX_WEIGHT};
#[cfg(feature = "train")]
pub use model::{Batch, GenerativeModel};
pub use precision::Precision;

/// Maps a candle error to the crate's error type, naming what was being done.
#[cfg(feature = "train")]
pub(crate) fn candle_err(context: &str) -> impl Fn(candle_core::Error) -> crate::Error + '_ {
    move |e| crate::Error::Model(format!("{context}: {e}"))
}
