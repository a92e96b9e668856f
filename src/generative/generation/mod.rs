//! Generation: decoding strategies (greedy, beam search, seeded sampling, MBR) over an
//! [`InferenceModel`], optionally retrieval-guided ([`Guide`]); outputs are always valid UTF-8.

mod guide;
mod search;

pub use guide::{Guide, GuideSettings};

use serde::{Deserialize, Serialize};

use super::inference::InferenceModel;
use crate::embedding::UnitEmbedding;
use crate::text::token_f1;
use crate::{Error, Result};

/// How the next byte is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum Strategy {
    /// The most probable allowed byte at every step.
    Greedy,
    /// Beam search keeping `width` hypotheses; the finished hypothesis with the best mean
    /// log-probability per byte wins.
    Beam {
        /// Number of hypotheses kept (at least 1).
        width: usize,
    },
    /// Sampling from the allowed bytes, reproducible for a given seed.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep only the `top_k` most probable bytes (0 = no limit).
        top_k: usize,
        /// Keep the smallest set of bytes whose probability reaches `top_p` (in (0, 1]).
        top_p: f32,
        /// Random seed.
        seed: u64,
    },
    /// Minimum Bayes risk: the greedy output and `samples` seeded samples (top-p 0.95) are
    /// drawn, and the one with the highest mean token F1 against the others wins: the
    /// consensus of the model's likely outputs, which scores higher against the reference
    /// than any single greedy path (plan.md), at `samples + 1` times the cost.
    Mbr {
        /// Number of samples (at least 1).
        samples: usize,
        /// Sampling temperature (> 0).
        temperature: f32,
        /// Random seed of the first sample (the others use the following seeds).
        seed: u64,
    },
}

/// Widest beam [`generate`] accepts (each hypothesis holds a key/value cache).
pub const MAX_BEAM_WIDTH: usize = 64;
/// Most MBR samples [`generate`] accepts (the cost grows with their square).
pub const MAX_MBR_SAMPLES: usize = 256;

/// Options of [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeOptions {
    /// How bytes are chosen.
    pub strategy: Strategy,
    /// Longest output in bytes (at most the model's `max_len`).
    pub max_len: usize,
    /// Greedy and sampling stop when the last `n` words repeat `n` words written before (or a
    /// word repeats the one before it), and drop the repetition: an undertrained model loops
    /// ("the sound of the sound of ..."). 0 turns this off.
    #[serde(default)]
    pub stop_on_repeated_words: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::Greedy,
            max_len: 128,
            stop_on_repeated_words: 3,
        }
    }
}

impl DecodeOptions {
    /// The default options with the strategy a search setting names, as `lwdec --beam`,
    /// `--mbr` and `--mbr-temperature` and Python's `beam=`, `mbr=`, `mbr_temperature=` set
    /// it: MBR with `mbr` samples when `mbr > 0`, else beam search when `beam > 1`, else
    /// greedy. Out-of-range values are an [`Error::InvalidConfig`](crate::Error) naming them.
    pub fn with_search(beam: usize, mbr: usize, mbr_temperature: f32) -> crate::Result<Self> {
        use crate::error::check;
        check(
            (1..=MAX_BEAM_WIDTH).contains(&beam),
            &format!("beam must be in 1..={MAX_BEAM_WIDTH}, got {beam}"),
        )?;
        check(
            mbr <= MAX_MBR_SAMPLES,
            &format!("mbr must be in 0..={MAX_MBR_SAMPLES}, got {mbr}"),
        )?;
        check(
            mbr_temperature.is_finite() && mbr_temperature > 0.0,
            &format!("mbr_temperature must be finite and positive, got {mbr_temperature}"),
        )?;
        let strategy = if mbr > 0 {
            Strategy::Mbr {
                samples: mbr,
                temperature: mbr_temperature,
                seed: 0,
            }
        } else if beam > 1 {
            Strategy::Beam { width: beam }
        } else {
            Strategy::Greedy
        };
        Ok(Self {
            strategy,
            ..Self::default()
        })
    }
}

/// A generated text and how confident the model was in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedText {
    /// The text (always valid UTF-8, without the end byte).
    pub text: String,
    /// Mean natural-log probability per byte under the model (unmasked distribution), over the
    /// text bytes and the end byte.
    pub mean_log_prob: f32,
    /// True if the text reached `max_len`, so the end was forced.
    pub truncated: bool,
}

/// Decodes with retrieval guidance: at every step the `guide`'s texts propose the bytes
/// that continue what was written where they match it, mixed into the model's
/// distribution (see [`Guide`]); the reported mean log-probability is the mixture's. With
/// greedy and beam search, a guide that votes then may replace the output by one of its
/// texts ([`Guide::most_agreed`]).
pub fn generate(
    model: &InferenceModel,
    embedding: &UnitEmbedding,
    guide: Option<&Guide>,
    options: &DecodeOptions,
) -> Result<GeneratedText> {
    let guide = guide.filter(|g| !g.is_empty());
    let max_len = options.max_len;
    if max_len > model.config().max_len {
        return Err(Error::InvalidArgument(format!(
            "max_len {max_len} exceeds the model's max_len {}",
            model.config().max_len
        )));
    }
    let greedy = || {
        search::single(
            model,
            embedding,
            guide,
            max_len,
            options.stop_on_repeated_words,
            None,
        )
    };
    // the deterministic strategies give way to the guide text the others agree with most
    let agreed = |decoded: GeneratedText| match guide {
        Some(guide) if guide.votes() => match guide.most_agreed(&decoded.text, max_len) {
            Some(i) => {
                let text = guide.texts()[i].clone();
                Ok(GeneratedText {
                    mean_log_prob: guide.mean_log_prob(model, embedding, &text)?,
                    text,
                    truncated: false,
                })
            }
            None => Ok(decoded),
        },
        _ => Ok(decoded),
    };
    match options.strategy {
        Strategy::Greedy => agreed(greedy()?),
        Strategy::Beam { width } => {
            if !(1..=MAX_BEAM_WIDTH).contains(&width) {
                return Err(Error::InvalidArgument(format!(
                    "beam width must be in 1..={MAX_BEAM_WIDTH}, got {width}"
                )));
            }
            agreed(search::beam(model, embedding, guide, max_len, width)?)
        }
        Strategy::Sample {
            temperature,
            top_k,
            top_p,
            seed,
        } => {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "temperature must be finite and positive, got {temperature}"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "top_p must be in (0, 1], got {top_p}"
                )));
            }
            search::sampled(
                model,
                embedding,
                guide,
                options,
                temperature,
                top_k,
                top_p,
                seed,
            )
        }
        Strategy::Mbr {
            samples,
            temperature,
            seed,
        } => {
            let valid = (1..=MAX_MBR_SAMPLES).contains(&samples)
                && temperature.is_finite()
                && temperature > 0.0;
            if !valid {
                return Err(Error::InvalidArgument(format!(
                    "MBR needs 1..={MAX_MBR_SAMPLES} samples and a finite positive temperature, \
                     got {samples} and {temperature}"
                )));
            }
            let mut outputs = vec![greedy()?];
            for k in 0..samples as u64 {
                let seed = seed.wrapping_add(k);
                outputs.push(search::sampled(
                    model,
                    embedding,
                    guide,
                    options,
                    temperature,
                    0,
                    0.95,
                    seed,
                )?);
            }
            let utility = |i: usize| -> f64 {
                outputs
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, o)| token_f1(&outputs[i].text, &o.text))
                    .sum()
            };
            let best = (0..outputs.len()).map(|i| (i, utility(i))).fold(
                (0, f64::NEG_INFINITY),
                |best, (i, u)| if u > best.1 { (i, u) } else { best },
            );
            Ok(outputs.swap_remove(best.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_settings_map_to_one_strategy() {
        let s = |b, m, t| DecodeOptions::with_search(b, m, t).map(|o| o.strategy);
        assert_eq!(s(1, 0, 0.7).unwrap(), Strategy::Greedy);
        assert_eq!(s(8, 0, 0.7).unwrap(), Strategy::Beam { width: 8 });
        // MBR wins over a beam, as on the command line
        assert_eq!(
            s(8, 4, 0.7).unwrap(),
            Strategy::Mbr {
                samples: 4,
                temperature: 0.7,
                seed: 0
            }
        );
        for (b, m, t, what) in [
            (0, 0, 0.7, "beam must be in 1..=64"),
            (65, 0, 0.7, "beam must be in 1..=64"),
            (1, 257, 0.7, "mbr must be in 0..=256"),
            (1, 4, f32::NAN, "mbr_temperature"),
            (1, 4, 0.0, "mbr_temperature"),
        ] {
            let err = s(b, m, t).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
    }
}
