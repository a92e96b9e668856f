//! Assembly: how the decoder turns the bank's search results into the phrases of its output.
//!
//! Each method is an [`Assembler`] with its own settings; [`AssemblyMethod`] names them.

mod beam;
mod context_aware;
mod greedy;
mod weighted;

pub use beam::{Beam, BeamConfig};
pub use context_aware::{ContextAware, ContextConfig};
pub use greedy::Greedy;
pub use weighted::{Weighted, WeightedConfig};

use serde::{Deserialize, Serialize};

use super::bank::{Hit, PhraseBank};
use crate::error::{Error, Result};
use crate::session::Session;

/// What an assembler sees for one input.
#[derive(Debug, Clone, Copy)]
pub struct AssemblyInput<'a> {
    /// The input embedding, unit norm.
    pub query: &'a [f32],
    /// The bank's nearest phrases, best first (never empty).
    pub hits: &'a [Hit],
    /// The session's context before this input.
    pub session: &'a Session,
    /// The bank, for phrase texts, stored embeddings and further searches.
    pub bank: &'a PhraseBank,
}

/// The phrases chosen for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembly {
    /// Bank phrase ids, in output order.
    pub phrase_ids: Vec<usize>,
    /// Cosine similarity between the input and the chosen phrases' (combined) embedding.
    pub similarity: f32,
    /// Share of the evidence that supports the choice, in `[0, 1]` (1 for methods without a
    /// vote); scales the confidence.
    pub support: f32,
}

/// One assembly method.
pub trait Assembler: Send + Sync {
    /// Chooses the phrases for one input.
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly>;
}

/// How the decoder turns search results into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AssemblyMethod {
    /// The most similar phrase.
    Greedy,
    /// Similarity-weighted vote among the top-k above a threshold; near-identical phrases pool
    /// their weight.
    Weighted,
    /// Beam search over combinations of phrases whose combined embedding best matches the input.
    Beam,
    /// Re-ranks near-best candidates by coherence with the session's recent context and penalises
    /// repeating recent phrases. Equal to greedy when the session has no context.
    #[default]
    ContextAware,
}

impl std::str::FromStr for AssemblyMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.replace('-', "_").as_str() {
            "greedy" => Ok(Self::Greedy),
            "weighted" => Ok(Self::Weighted),
            "beam" => Ok(Self::Beam),
            "context_aware" => Ok(Self::ContextAware),
            other => Err(Error::InvalidArgument(format!(
                "unknown method {other:?} (expected greedy, weighted, beam or context_aware)"
            ))),
        }
    }
}
