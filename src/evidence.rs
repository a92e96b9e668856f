//! [`Evidence`]: what a decoder found on the way to its answer for one input, handed on once
//! to whatever builds on it (the hybrid's rule, verification's pool, refinement's starts), so
//! that nothing is searched or scored a second time.

use std::collections::HashMap;

use crate::decoder::Candidate;

/// What a decoder found for one input besides its answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The bank's nearest phrases for the input, best first, as the search returned them
    /// (those below the similarity threshold too); empty when no bank was searched.
    pub candidates: Vec<Candidate>,
    /// The generator's text for the input, when the generator ran.
    pub generated: Option<String>,
    /// Every text scored under the generator for this input, with its score (the one
    /// definition: the mean log-probability per byte of the text as given, unguided;
    /// [`InferenceModel::mean_log_prob`](crate::generative::InferenceModel::mean_log_prob)).
    pub scores: HashMap<String, f32>,
}

impl Evidence {
    /// Evidence of a bank search that found `candidates`.
    pub fn searched(candidates: Vec<Candidate>) -> Self {
        Evidence {
            candidates,
            ..Evidence::default()
        }
    }

    /// The score of `text` under the generator, if it was scored for this input.
    pub fn score(&self, text: &str) -> Option<f32> {
        self.scores.get(text).copied()
    }
}
