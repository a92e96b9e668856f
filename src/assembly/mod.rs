//! Assembly: how the decoder turns the bank's search results into the phrases of its output.
//!
//! Each method is an [`Assembler`]; [`assembler_for`] builds the one a config names.

mod beam;
mod context_aware;
mod greedy;
mod weighted;

pub use beam::Beam;
pub use context_aware::ContextAware;
pub use greedy::Greedy;
pub use weighted::Weighted;

use crate::config::{AssemblyMethod, DecoderConfig};
use crate::error::Result;
use crate::phrase_bank::{Hit, PhraseBank};
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

/// The assembler for the config's method.
pub fn assembler_for(config: &DecoderConfig) -> Box<dyn Assembler> {
    match config.method {
        AssemblyMethod::Greedy => Box::new(Greedy),
        AssemblyMethod::Weighted => Box::new(Weighted::new(config.weighted.clone())),
        AssemblyMethod::Beam => Box::new(Beam::new(config.beam.clone())),
        AssemblyMethod::ContextAware => Box::new(ContextAware::new(config.context.clone())),
    }
}
