//! Decode 768-dimensional sentence embeddings back into text.
pub mod error;

pub use error::{Error, Result};
