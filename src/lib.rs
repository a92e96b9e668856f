//! Decode 768-dimensional sentence embeddings (all-mpnet-base-v2) back into text, on a CPU.
//!
//! Three decoders share one input contract, a vector of the bank's or model's dimension that
//! is checked and normalised once ([`UnitEmbedding`]), and one trait, [`Decoder`]:
//! `decode`, `decode_in_session`, `batch_decode` and `batch_decode_with_sessions`, each
//! returning [`Decoded`] (text, confidence, source, candidates). [`DecoderBuilder`] wires them
//! from the bundled bank and model or from your own.
//!
//! # The phrase-bank decoder
//!
//! [`PhraseBankDecoder`] searches a [`PhraseBank`] of phrases with known embeddings through
//! FAISS and assembles its output from the nearest phrases (greedy, weighted vote, beam over
//! phrase combinations, or context-aware re-ranking within a [`Session`]). Exact on phrases
//! that are in the bank, sub-millisecond.
//!
//! ```
//! use lightweight_decoder::{Decoder, DecoderConfig, PhraseBankDecoder};
//! # fn main() -> lightweight_decoder::Result<()> {
//! let decoder = PhraseBankDecoder::with_default_bank(DecoderConfig::default())?;
//! let embedding = vec![0.03f32; 768]; // an all-mpnet-base-v2 embedding
//! let decoded = decoder.decode(&embedding)?;
//! println!("{} ({:.2})", decoded.text, decoded.confidence);
//! println!("{:?} {:?}", decoder.statistics(), decoder.health());
//! # Ok(())
//! # }
//! ```
//!
//! # The generative decoder
//!
//! [`GenerativeDecoder`] runs a 722,944-parameter byte-level transformer
//! ([`generative`], trained in Rust with candle, shipped INT4), guided by the bank's nearest
//! phrases, so it can write what no bank phrase says.
//!
//! ```
//! use lightweight_decoder::generative::{DecodeOptions, Strategy};
//! use lightweight_decoder::{Decoder, DecoderBuilder};
//! # fn main() -> lightweight_decoder::Result<()> {
//! let options = DecodeOptions { strategy: Strategy::Beam { width: 8 }, ..Default::default() };
//! let generator = DecoderBuilder::new().decode_options(options).generative()?;
//! println!("{}", generator.decode(&vec![0.03f32; 768])?.text);
//! # Ok(())
//! # }
//! ```
//!
//! # The hybrid decoder
//!
//! [`HybridDecoder`] decodes with the bank first and, when the bank is unsure, lets the
//! generator re-rank the bank's candidates or answer itself, by a rule fitted on labelled
//! embeddings ([`hybrid::calibrate`]).
//!
//! ```
//! use lightweight_decoder::{Decoder, DecoderBuilder};
//! # fn main() -> lightweight_decoder::Result<()> {
//! let hybrid = DecoderBuilder::new().hybrid()?;
//! let batch = ndarray::Array2::<f32>::from_elem((4, 768), 0.03);
//! for decoded in hybrid.batch_decode_with_sessions(batch.view(), &[0, 2])? {
//!     println!("{} {:?}", decoded.text, decoded.source);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Verified decoding
//!
//! With an [`Encoder`] (the reference `MpnetEncoder` of the `encoder` feature, or your
//! pipeline's own), a
//! [`VerifiedDecoder`] re-embeds each decoder's answer beside its alternatives (the bank's
//! nearest phrases, the hybrid's generated text) and returns the text whose embedding is
//! closest to the input; [`Decoded::roundtrip_cosine`] reports that cosine ([`verify`];
//! `DecoderBuilder::verified`).
//!
//! Evaluation (token F1, BLEU, chrF, the bundled samples) lives in [`eval`]. Every bad input
//! gives an [`Error`] naming the problem; library code does not panic on user input.
#![warn(missing_docs)]

mod builder;
mod config;
pub mod data;
mod decoder;
mod embedding;
pub mod encoder;
mod error;
pub mod eval;
mod evidence;
mod fsutil;
pub mod generative;
pub mod hybrid;
pub mod install;
pub mod io;
mod json;
pub mod language_model;
mod monitoring;
mod npy;
pub mod phrase_bank;
mod roundtrip;
mod session;
pub mod text;
pub mod trace;
pub mod verify;

pub use builder::{DecoderBuilder, DecoderKind};
pub use config::{load_config, save_config, DecoderConfig, ThresholdMode};
pub use decoder::{Candidate, Decoded, Decoder, Source};
pub use embedding::UnitEmbedding;
pub use encoder::Encoder;
#[cfg(feature = "encoder")]
pub use encoder::MpnetEncoder;
pub use error::{Error, Result};
pub use evidence::Evidence;
pub use generative::GenerativeDecoder;
pub use hybrid::{HybridConfig, HybridDecoder};
pub use monitoring::{Health, HealthConfig, HealthStatus, Statistics};
pub use npy::load_embeddings;
pub use phrase_bank::{AssemblyMethod, PhraseBank, PhraseBankDecoder, PhraseBankSettings};
pub use session::{Session, SessionEntry};
pub use verify::{RefineSettings, VerifiedDecoder, VerifySettings};

/// The README's Rust quick start, compiled and run as a doctest (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeQuickStart;
