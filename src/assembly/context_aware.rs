//! The `context_aware` method.

use super::{Assembler, Assembly, AssemblyInput};
use crate::config::ContextConfig;
use crate::embedding::dot;
use crate::error::Result;

/// Re-ranks near-best candidates with the session's context.
///
/// A Bayesian reading: the input is its phrase's embedding plus noise, so the log-likelihood of
/// a candidate grows with its similarity `s` times a concentration `kappa`, which is large when
/// the input is clean; the session's context adds a log-prior `prior_strength * cos(candidate,
/// context)`, the context being the decayed mean of the session's recent outputs. Dividing by
/// `kappa` gives the score `s + (prior_strength / kappa) * coherence - repetition_penalty *
/// [recent]`. `kappa` is estimated from the best similarity `s1` (about the cosine between the
/// input and its true phrase) as `dim * s1 / (1 - s1^2)`, so context weighs almost nothing for a
/// clean input and more for a noisy one. Only candidates within `max_margin` of the best are
/// re-ranked, so context never overrides a clearly better match. With an empty session this is
/// `greedy`.
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
        let s1 = best.similarity.clamp(0.05, 0.99);
        let kappa = context.len() as f32 * s1 / (1.0 - s1 * s1);
        let weight = self.config.prior_strength / kappa;
        let mut chosen = (f32::NEG_INFINITY, best);
        for hit in input
            .hits
            .iter()
            .filter(|h| h.similarity >= best.similarity - self.config.max_margin)
        {
            let coherence = dot(&input.bank.embedding(hit.id)?, &context);
            let repeated = input.session.recently_emitted(hit.id);
            let score = hit.similarity + weight * coherence
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
