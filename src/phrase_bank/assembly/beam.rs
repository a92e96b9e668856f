//! The `beam` method.

use super::{Assembler, Assembly, AssemblyInput};
use serde::{Deserialize, Serialize};

use crate::embedding::{dot, normalize_in_place};
use crate::error::{check, finite_in, Result};

/// Settings of the `beam` method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeamConfig {
    /// Partial assemblies kept at each step.
    pub width: usize,
    /// Most phrases joined into one output.
    pub max_phrases: usize,
    /// A phrase is added only if it raises the cosine to the input by at least this much.
    pub min_gain: f32,
    /// Candidate phrases considered at each step (from the input and from each residual).
    pub pool: usize,
}

impl Default for BeamConfig {
    fn default() -> Self {
        BeamConfig {
            width: 4,
            max_phrases: 3,
            min_gain: 0.04,
            pool: 8,
        }
    }
}

impl BeamConfig {
    /// Checks the values against the decoder's `top_k`, naming the first one out of range.
    pub fn validate(&self, top_k: usize) -> Result<()> {
        check(self.width >= 1, "beam.width must be at least 1")?;
        check(
            (1..=8).contains(&self.max_phrases),
            "beam.max_phrases must be in 1..=8",
        )?;
        check(
            (1..=top_k.max(1) * 4).contains(&self.pool),
            "beam.pool must be in 1..=4*top_k",
        )?;
        check(
            finite_in(self.min_gain, 0.0, 1.0),
            "beam.min_gain must be in [0, 1]",
        )
    }
}

/// Multi-phrase assembly by beam search.
///
/// When no single phrase covers the input, a combination may: the combined embedding of a set of
/// phrases is the normalised sum of theirs (as mean pooling over their joined tokens roughly
/// gives). Starting from the best single phrases, each step extends every partial assembly with
/// candidates found for the input and for its residual (the part of the input the assembly does
/// not yet explain), keeping the `width` best by cosine to the input. A phrase is added only if
/// it raises that cosine by at least `min_gain`, so a well-covered input stays one phrase.
#[derive(Debug, Clone)]
pub struct Beam {
    config: BeamConfig,
}

impl Beam {
    /// A `beam` assembler with the given settings.
    pub fn new(config: BeamConfig) -> Self {
        Beam { config }
    }
}

#[derive(Debug, Clone)]
struct Partial {
    ids: Vec<usize>,
    sum: Vec<f32>,
    score: f32,
}

impl Assembler for Beam {
    fn assemble(&self, input: &AssemblyInput<'_>) -> Result<Assembly> {
        let q = input.query;
        let bank = input.bank;
        let pool = self.config.pool.min(input.hits.len());
        let mut beam: Vec<Partial> = Vec::with_capacity(pool);
        for hit in &input.hits[..pool] {
            let v = bank.embedding(hit.id)?;
            beam.push(Partial {
                ids: vec![hit.id],
                score: dot(q, &v),
                sum: v,
            });
        }
        sort_and_truncate(&mut beam, self.config.width);
        for _ in 1..self.config.max_phrases {
            let mut next = beam.clone();
            for partial in &beam {
                let mut combined = partial.sum.clone();
                normalize_in_place(&mut combined);
                let projection = dot(q, &combined);
                let mut residual: Vec<f32> = q
                    .iter()
                    .zip(&combined)
                    .map(|(a, c)| a - projection * c)
                    .collect();
                normalize_in_place(&mut residual);
                let found = bank.search(&residual, pool)?;
                let extra = found.first().map(Vec::as_slice).unwrap_or_default();
                for hit in input.hits[..pool].iter().chain(extra) {
                    if partial.ids.contains(&hit.id) {
                        continue;
                    }
                    let v = bank.embedding(hit.id)?;
                    let sum: Vec<f32> = partial.sum.iter().zip(&v).map(|(a, b)| a + b).collect();
                    let mut unit = sum.clone();
                    normalize_in_place(&mut unit);
                    let score = dot(q, &unit);
                    if score >= partial.score + self.config.min_gain
                        && !next.iter().any(|p| same_set(&p.ids, &partial.ids, hit.id))
                    {
                        let mut ids = partial.ids.clone();
                        ids.push(hit.id);
                        next.push(Partial { ids, sum, score });
                    }
                }
            }
            sort_and_truncate(&mut next, self.config.width);
            let improved = next.first().map(|p| p.score) > beam.first().map(|p| p.score);
            beam = next;
            if !improved {
                break;
            }
        }
        let best = &beam[0];
        Ok(Assembly {
            phrase_ids: best.ids.clone(),
            similarity: best.score,
            support: 1.0,
        })
    }
}

fn sort_and_truncate(beam: &mut Vec<Partial>, width: usize) {
    beam.sort_by(|a, b| b.score.total_cmp(&a.score));
    beam.truncate(width.max(1));
}

/// Whether `ids` equals `base` plus `extra`, as sets.
fn same_set(ids: &[usize], base: &[usize], extra: usize) -> bool {
    ids.len() == base.len() + 1 && ids.contains(&extra) && base.iter().all(|b| ids.contains(b))
}
