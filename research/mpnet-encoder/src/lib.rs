//! Pure-Rust sentence encoder: `sentence-transformers/all-mpnet-base-v2` on candle.
//!
//! ```no_run
//! use encoder_dev::{Encoder, MpnetEncoder};
//! let enc = MpnetEncoder::from_default_location()?.with_batch_size(64);
//! let rows = enc.embed(&["a sentence", "another one"])?; // [2, 768], unit norm
//! # Ok::<(), encoder_dev::EncoderError>(())
//! ```

#![warn(missing_docs)]

pub mod encoder;
pub mod mpnet;

pub use encoder::{Encoder, EncoderError, Result};
pub use mpnet::{Config, MpnetEncoder, Precision};
