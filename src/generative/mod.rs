//! The compact generative decoder: a byte-level transformer conditioned on an embedding.
//!
//! One pre-norm transformer layer is applied `depth` times with shared weights. The embedding is
//! projected to the hidden size (the "prefix"), which is both the first sequence position and,
//! optionally, added to the hidden state at the input of every depth iteration. Bytes are
//! predicted one at a time; byte 0 ends the text.
//!
//! * [`GenerativeConfig`]: architecture hyper-parameters.
//! * [`GenerativeModel`]: trainable float32 model (training forward, loss).
//! * [`train`]: [`Trainer`](train::Trainer) / [`TrainConfig`](train::TrainConfig), AdamW
//!   training with warm-up, decay and validation, and resumable checkpoints.
//! * [`InferenceModel`]: key/value-cached incremental network, float32 or block-quantized
//!   ([`Precision`]), saved and loaded as GGUF.
//! * [`generate`] with [`DecodeOptions`]: greedy, beam, sampled and MBR decoding that always
//!   yields valid UTF-8, optionally guided by a [`Guide`] (the nearest bank phrases proposing
//!   the bytes that continue what was written and voting on the result).
//! * [`GenerativeDecoder`]: all of it behind the crate's [`Decoder`](crate::Decoder) trait.

mod config;
mod decoder;
mod generation;
mod gguf;
mod inference;
mod kernels;
mod model;
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
pub use model::{Batch, GenerativeModel};
pub use precision::Precision;

use crate::Error;

/// Maps a candle error to the crate's error type, naming what was being done.
pub(crate) fn candle_err(context: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::Model(format!("{context}: {e}"))
}
