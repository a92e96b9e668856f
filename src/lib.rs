//! Decode 768-dimensional sentence embeddings back into text.
pub mod dataset;
pub mod error;
pub mod generative;

pub use error::{Error, Result};
