//! The compact generative decoder: a byte-level transformer conditioned on an embedding.
//!
//! One pre-norm transformer layer is applied `depth` times with shared weights. The embedding is
//! projected to the hidden size (the "prefix"), which is both the first sequence position and,
//! optionally, added to the hidden state at the input of every depth iteration. Bytes are
//! predicted one at a time; byte 0 ends the text.
//!
//! * [`GenerativeConfig`]: architecture hyper-parameters.
//! * [`GenerativeModel`]: trainable float32 model (training forward, loss, checkpoints).
//! * [`Trainer`] / [`TrainConfig`]: AdamW training with warm-up, decay and validation.
//! * [`InferenceModel`]: key/value-cached incremental decoder, float32 or block-quantized
//!   (saved and loaded as GGUF), with greedy, beam and sampled decoding that always yields
//!   valid UTF-8.
//! * [`Guide`] / [`GuideSettings`]: retrieval guidance, the nearest bank phrases proposing
//!   the bytes that continue what was written and voting on the result
//!   ([`InferenceModel::decode_guided`]).

mod checkpoint;
mod config;
mod decode;
mod guide;
mod inference;
mod kernels;
mod model;
mod quantized;
mod rope;
mod train;
mod utf8;

pub use checkpoint::{Checkpoint, CheckpointState};
pub use config::GenerativeConfig;
pub use decode::{DecodeOptions, Decoded, Strategy};
pub use guide::{Guide, GuideSettings};
pub use inference::InferenceModel;
pub use model::{Batch, GenerativeModel};
pub use quantized::{quantize_tensor, Precision};
pub use train::{Decay, DepthStage, StepStats, TrainConfig, TrainLogEntry, TrainSummary, Trainer};

use crate::Error;

/// Maps a candle error to the crate's error type, naming what was being done.
pub(crate) fn candle_err(context: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| Error::InvalidArgument(format!("{context}: {e}"))
}
