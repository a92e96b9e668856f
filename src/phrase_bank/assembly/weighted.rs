//! The `weighted` method.

use std::collections::HashMap;

use rust_stemmers::Stemmer;

use super::{Assembler, Assembly, AssemblyInput};
use serde::{Deserialize, Serialize};

use crate::error::{check, finite_in, Result};
use crate::phrase_bank::postprocess::{english_stemmer, words};

/// Settings of the `weighted` method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeightedConfig {
    /// Softmax temperature over similarities.
    pub temperature: f32,
    /// Candidates further than this below the best similarity take no part in the vote.
    pub max_margin: f32,
}

impl Default for WeightedConfig {
    fn default() -> Self {
        WeightedConfig {
            temperature: 0.01,
            max_margin: 0.05,
        }
    }
}

impl WeightedConfig {
    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        check(
            self.temperature.is_finite() && self.temperature > 0.0,
            "weighted.temperature must be positive",
        )?;
        check(
            finite_in(self.max_margin, 0.0, 2.0),
            "weighted.max_margin must be in [0, 2]",
        )
    }
}

/// A similarity-weighted vote among the top candidates.
///
/// Candidates within `max_margin` of the best similarity vote with weight
/// `exp((similarity - best) / temperature)`; phrases with the same stemmed words (`a .22 caliber
/// pistol`, `a .22-caliber pistol`) pool their weight. The heaviest group wins and its most
/// similar member is returned; the group's share of the total weight is the support.
pub struct Weighted {
    config: WeightedConfig,
    stemmer: Stemmer,
}

impl Weighted {
    /// A `weighted` assembler with the given settings.
    pub fn new(config: WeightedConfig) -> Self {
        Weighted {
            config,
            stemmer: english_stemmer(),
        }
    }

    fn group_key(&self, text: &str) -> String {
        words(text)
            .map(|w| self.stemmer.stem(&w.to_lowercase()).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Assembler for Weighted {
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly> {
        let best = input.hits[0].similarity;
        let mut groups: HashMap<String, (f32, usize, f32)> = HashMap::new();
        let mut total = 0f32;
        for hit in input
            .hits
            .iter()
            .filter(|h| h.similarity >= best - self.config.max_margin)
        {
            let weight = ((hit.similarity - best) / self.config.temperature).exp();
            total += weight;
            let key = self.group_key(input.bank.phrase(hit.id).unwrap_or_default());
            let entry = groups.entry(key).or_insert((0.0, hit.id, hit.similarity));
            entry.0 += weight;
        }
        let (weight, id, similarity) = groups
            .into_values()
            .max_by(|a, b| a.0.total_cmp(&b.0).then(a.2.total_cmp(&b.2)))
            .unwrap_or((1.0, input.hits[0].id, best));
        Ok(Assembly {
            phrase_ids: vec![id],
            similarity,
            support: if total > 0.0 { weight / total } else { 1.0 },
        })
    }
}
