//! The `context_aware` method.

use super::{Assembler, Assembly, AssemblyInput};
use crate::config::ContextConfig;
use crate::embedding::dot;
use crate::error::Result;

/// Re-ranks near-best candidates with the session's context.
///
/// Candidates within `max_margin` of the best similarity are scored
/// `similarity + coherence_weight * cos(candidate, context) - repetition_penalty * [recent]`,
/// where the context is the decayed mean of the session's recent inputs. A candidate further
/// below the best never wins, so context cannot override a clearly better match. With an empty
/// session this is `greedy`.
#[derive(Debug, Clone)]
pub struct ContextAware {
    config: ContextConfig,
}

impl ContextAware {
    /// A `context_aware` assembler with the given settings.
    pub fn new(config: ContextConfig) -> Self {
        ContextAware { config }
    }
}

impl Assembler for ContextAware {
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly> {
        let best = input.hits[0];
        let Some(context) = input.session.context_vector(self.config.decay) else {
            return Ok(Assembly {
                phrase_ids: vec![best.id],
                similarity: best.similarity,
                support: 1.0,
            });
        };
        let mut chosen = (f32::NEG_INFINITY, best);
        for hit in input
            .hits
            .iter()
            .filter(|h| h.similarity >= best.similarity - self.config.max_margin)
        {
            let coherence = dot(&input.bank.embedding(hit.id)?, &context);
            let repeated = input.session.recently_emitted(hit.id);
            let score = hit.similarity + self.config.coherence_weight * coherence
                - if repeated {
                    self.config.repetition_penalty
                } else {
                    0.0
                };
            if score > chosen.0 {
                chosen = (score, *hit);
            }
        }
        Ok(Assembly {
            phrase_ids: vec![chosen.1.id],
            similarity: chosen.1.similarity,
            support: 1.0,
        })
    }
}
