//! Decode 768-dimensional sentence embeddings back into text.
//!
//! Three decoders share one input contract (a unit-normalisable `f32` vector of the bank's or
//! model's dimension, 768 for all-mpnet-base-v2) and the [`Decoder`] trait:
//! [`PhraseBankDecoder`] searches a [`PhraseBank`] of phrases with known embeddings through
//! FAISS and assembles the output from them; [`generative`] holds the compact byte-level
//! transformer (722,944 parameters) trained in Rust with candle, with INT8/INT4 twins.
//!
//! ```no_run
//! use lightweight_decoder::{Decoder, DecoderConfig, PhraseBankDecoder};
//! # fn main() -> lightweight_decoder::Result<()> {
//! let decoder = PhraseBankDecoder::with_default_bank(DecoderConfig::default())?;
//! let embedding = vec![0.03f32; 768]; // an all-mpnet-base-v2 embedding
//! let decoded = decoder.decode(&embedding)?;
//! println!("{} ({:.2})", decoded.text, decoded.confidence);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod assembly;
pub mod cache;
pub mod config;
pub mod dataset;
pub mod decoder;
pub mod embedding;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod generative;
pub mod generative_decoder;
pub mod hybrid;
pub mod metrics;
pub mod monitoring;
pub mod phrase_bank;
pub mod phrase_bank_decoder;
pub mod postprocess;
pub mod samples;
pub mod session;

pub use config::{load_config, save_config, AssemblyMethod, DecoderConfig, ThresholdMode};
pub use decoder::{Candidate, Decoded, Decoder, Source};
pub use error::{Error, Result};
pub use generative_decoder::GenerativeDecoder;
pub use hybrid::{HybridConfig, HybridDecoder};
pub use phrase_bank::PhraseBank;
pub use phrase_bank_decoder::PhraseBankDecoder;
pub use session::Session;
