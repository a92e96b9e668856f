//! The `greedy` method.

use super::{Assembler, Assembly, AssemblyInput};
use crate::error::Result;

/// Returns the single most similar phrase.
#[derive(Debug, Clone, Copy, Default)]
pub struct Greedy;

impl Assembler for Greedy {
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly> {
        let best = input.hits[0];
        Ok(Assembly {
            phrase_ids: vec![best.id],
            similarity: best.similarity,
            support: 1.0,
        })
    }
}
