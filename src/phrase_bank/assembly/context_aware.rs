//! The `context_aware` method.

use super::{Assembler, Assembly, AssemblyInput};
use serde::{Deserialize, Serialize};

use crate::embedding::dot;
use crate::error::{check, finite_in, Result};

/// Settings of the `context_aware` method and of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextConfig {
    /// Recent inputs kept in a session's context.
    pub window: usize,
    /// Weight of each older input relative to the next newer one (0..=1).
    pub decay: f32,
    /// Strength of the context prior (log-odds per unit of cosine with the context); its weight
    /// against similarity shrinks as the input gets cleaner (see [`ContextAware`]).
    pub prior_strength: f32,
    /// Score subtracted from a candidate that the session emitted within the window.
    pub repetition_penalty: f32,
    /// Only candidates within this similarity of the best are re-ranked, so context never
    /// overrides a clearly better match.
    pub max_margin: f32,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            window: 4,
            decay: 0.7,
            prior_strength: 15.0,
            repetition_penalty: 0.02,
            max_margin: 0.03,
        }
    }
}

impl ContextConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            (1..=64).contains(&self.window),
            "context.window must be in 1..=64",
        )?;
        for (value, hi, what) in [
            (self.decay, 1.0, "context.decay must be in [0, 1]"),
            (
                self.prior_strength,
                1000.0,
                "context.prior_strength must be in [0, 1000]",
            ),
            (
                self.repetition_penalty,
                10.0,
                "context.repetition_penalty must be in [0, 10]",
            ),
            (self.max_margin, 2.0, "context.max_margin must be in [0, 2]"),
        ] {
            check(finite_in(value, 0.0, hi), what)?;
        }
        Ok(())
    }
}

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
