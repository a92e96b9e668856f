//! Decoding strategies (greedy, beam search, seeded sampling) that always yield valid UTF-8.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::guide::Guide;
use super::inference::{InferenceModel, Sequence};
use super::utf8::Utf8State;
use crate::metrics::token_f1;
use crate::{Error, Result};

/// How the next byte is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
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

/// Options of [`InferenceModel::decode`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A decoded text and how confident the model was in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decoded {
    /// The text (always valid UTF-8, without the end byte).
    pub text: String,
    /// Mean natural-log probability per byte under the model (unmasked distribution), over the
    /// text bytes and the end byte.
    pub mean_log_prob: f32,
    /// True if the text reached `max_len`, so the end was forced.
    pub truncated: bool,
}

/// Chooses a byte given the log-probabilities and the allowed bytes.
type Picker<'a> = &'a mut dyn FnMut(&[f32], &[u8]) -> u8;

/// One partial output.
#[derive(Debug, Clone)]
struct Hypothesis {
    bytes: Vec<u8>,
    state: Utf8State,
    log_prob: f64,
}

impl Hypothesis {
    fn finish(self, max_len: usize) -> Result<Decoded> {
        let truncated = self.bytes.len() >= max_len;
        let count = self.bytes.len() + 1;
        let text = String::from_utf8(self.bytes)
            .map_err(|e| Error::InvalidArgument(format!("decoder produced invalid UTF-8: {e}")))?;
        Ok(Decoded {
            text,
            mean_log_prob: (self.log_prob / count as f64) as f32,
            truncated,
        })
    }
}

/// Where the repetition starts, if the last `n` space-separated words of `bytes` (which ends
/// with a space) already occurred as `n` consecutive words earlier, or the last word repeats
/// the one before it.
fn repeated_words_start(bytes: &[u8], n: usize) -> Option<usize> {
    let mut starts = Vec::new();
    let mut words: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            if i > start {
                words.push(&bytes[start..i]);
                starts.push(start);
            }
            start = i + 1;
        }
    }
    if words.len() < 2 {
        return None;
    }
    if words.len() < 2 * n {
        let k = words.len();
        return (words[k - 1] == words[k - 2]).then(|| starts[k - 1]);
    }
    let last = &words[words.len() - n..];
    let earlier = &words[..words.len() - n];
    if earlier.windows(n).any(|w| w == last) {
        return Some(starts[words.len() - n]);
    }
    // a word written twice in a row ("storth storth")
    let k = words.len();
    (words[k - 1] == words[k - 2]).then(|| starts[k - 1])
}

/// Log-softmax of `logits` into `out` (same length).
pub(crate) fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = max + sum.ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = l - log_sum;
    }
}

/// The bytes allowed after `hyp` when the output may hold `max_len` bytes.
fn allowed(hyp: &Hypothesis, max_len: usize) -> impl Iterator<Item = u8> + '_ {
    let room = max_len.saturating_sub(hyp.bytes.len());
    (0..=255u8).filter(move |&b| hyp.state.allows(b, room))
}

/// Picks a byte from `log_probs` by temperature / top-k / top-p sampling among `candidates`.
fn sample(
    log_probs: &[f32],
    candidates: &[u8],
    temperature: f32,
    top_k: usize,
    top_p: f32,
    rng: &mut StdRng,
) -> u8 {
    let mut weighted: Vec<(u8, f64)> = candidates
        .iter()
        .map(|&b| {
            (
                b,
                f64::from(log_probs[usize::from(b)]) / f64::from(temperature),
            )
        })
        .collect();
    weighted.sort_by(|a, b| b.1.total_cmp(&a.1));
    if top_k > 0 {
        weighted.truncate(top_k);
    }
    let max = weighted.first().map_or(0.0, |w| w.1);
    for w in &mut weighted {
        w.1 = (w.1 - max).exp();
    }
    let total: f64 = weighted.iter().map(|w| w.1).sum();
    let mut cumulative = 0.0;
    let mut keep = weighted.len();
    for (i, w) in weighted.iter().enumerate() {
        cumulative += w.1 / total;
        if cumulative >= f64::from(top_p) {
            keep = i + 1;
            break;
        }
    }
    weighted.truncate(keep);
    let total: f64 = weighted.iter().map(|w| w.1).sum();
    let mut target = rng.random::<f64>() * total;
    for &(b, w) in &weighted {
        target -= w;
        if target <= 0.0 {
            return b;
        }
    }
    weighted.last().map_or(0, |w| w.0)
}

impl InferenceModel {
    /// Decodes an embedding (validated, then normalised) into text.
    pub fn decode(&self, embedding: &[f32], options: &DecodeOptions) -> Result<Decoded> {
        self.decode_with_draft(embedding, "", options)
    }

    /// Decodes an embedding after reading `draft`, a related text such as the nearest phrase
    /// of a bank, which the model may copy from and edit. Models that take no drafts
    /// (`max_draft` 0) ignore it; longer drafts are cut (see
    /// [`GenerativeConfig::draft_bytes`](super::GenerativeConfig::draft_bytes)). An empty
    /// draft decodes like [`InferenceModel::decode`].
    pub fn decode_with_draft(
        &self,
        embedding: &[f32],
        draft: &str,
        options: &DecodeOptions,
    ) -> Result<Decoded> {
        self.decode_guided(embedding, draft, None, options)
    }

    /// Decodes with retrieval guidance: at every step the `guide`'s texts propose the bytes
    /// that continue what was written where they match it, mixed into the model's
    /// distribution (see [`Guide`]); the reported mean log-probability is the mixture's. With
    /// greedy and beam search, a guide that votes then may replace the output by one of its
    /// texts ([`Guide::most_agreed`]).
    pub fn decode_guided(
        &self,
        embedding: &[f32],
        draft: &str,
        guide: Option<&Guide>,
        options: &DecodeOptions,
    ) -> Result<Decoded> {
        let guide = guide.filter(|g| !g.is_empty());
        let draft_text = draft;
        let draft = self.config().draft_bytes(draft);
        let draft = draft.as_slice();
        let max_len = options.max_len;
        if max_len > self.config().max_len {
            return Err(Error::InvalidArgument(format!(
                "max_len {max_len} exceeds the model's max_len {}",
                self.config().max_len
            )));
        }
        let greedy = || {
            self.decode_single(
                embedding,
                draft,
                guide,
                max_len,
                options.stop_on_repeated_words,
                None,
            )
        };
        // the deterministic strategies give way to the guide text the others agree with most
        let agreed = |decoded: Decoded| match guide {
            Some(guide) if guide.votes() => match guide.most_agreed(&decoded.text, max_len) {
                Some(i) => {
                    let text = guide.texts()[i].clone();
                    Ok(Decoded {
                        mean_log_prob: self.mean_log_prob_guided(
                            embedding,
                            draft_text,
                            &text,
                            Some(guide),
                        )?,
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
                if width == 0 {
                    return Err(Error::InvalidArgument(
                        "beam width must be at least 1".into(),
                    ));
                }
                agreed(self.decode_beam(embedding, draft, guide, max_len, width)?)
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
                self.decode_sampled(
                    embedding,
                    draft,
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
                if samples == 0 || !(temperature.is_finite() && temperature > 0.0) {
                    return Err(Error::InvalidArgument(format!(
                        "MBR needs at least one sample and a finite positive temperature, \
                         got {samples} and {temperature}"
                    )));
                }
                let mut outputs = vec![greedy()?];
                for k in 0..samples as u64 {
                    let seed = seed.wrapping_add(k);
                    outputs.push(self.decode_sampled(
                        embedding,
                        draft,
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

    /// One seeded sample.
    #[allow(clippy::too_many_arguments)]
    fn decode_sampled(
        &self,
        embedding: &[f32],
        draft: &[u8],
        guide: Option<&Guide>,
        options: &DecodeOptions,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        seed: u64,
    ) -> Result<Decoded> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pick =
            |lp: &[f32], cands: &[u8]| sample(lp, cands, temperature, top_k, top_p, &mut rng);
        self.decode_single(
            embedding,
            draft,
            guide,
            options.max_len,
            options.stop_on_repeated_words,
            Some(&mut pick),
        )
    }

    /// Greedy decoding, or sampling when `pick` is given.
    fn decode_single(
        &self,
        embedding: &[f32],
        draft: &[u8],
        guide: Option<&Guide>,
        max_len: usize,
        repeat_words: usize,
        mut pick: Option<Picker<'_>>,
    ) -> Result<Decoded> {
        // log-probability of the text up to each byte, to drop a repetition's share
        let mut cumulative: Vec<f64> = Vec::with_capacity(max_len);
        let mut seq = self.start_with_draft(embedding, draft)?;
        let mut hyp = Hypothesis {
            bytes: Vec::with_capacity(max_len),
            state: Utf8State::default(),
            log_prob: 0.0,
        };
        let mut lp = vec![0.0f32; 256];
        let mut candidates: Vec<u8> = Vec::with_capacity(256);
        loop {
            log_softmax(seq.logits(), &mut lp);
            if let Some(guide) = guide {
                guide.mix(&hyp.bytes, &mut lp);
            }
            candidates.clear();
            candidates.extend(allowed(&hyp, max_len));
            let byte = match pick.as_mut() {
                Some(pick) => pick(&lp, &candidates),
                None => candidates
                    .iter()
                    .copied()
                    .max_by(|&a, &b| lp[usize::from(a)].total_cmp(&lp[usize::from(b)]))
                    .unwrap_or(0),
            };
            hyp.log_prob += f64::from(lp[usize::from(byte)]);
            if byte == 0 {
                return hyp.finish(max_len);
            }
            hyp.bytes.push(byte);
            cumulative.push(hyp.log_prob);
            hyp.state = hyp.state.advance(byte);
            if byte == b' ' && repeat_words > 0 {
                if let Some(cut) = repeated_words_start(&hyp.bytes, repeat_words) {
                    hyp.bytes.truncate(cut);
                    while hyp.bytes.last() == Some(&b' ') {
                        hyp.bytes.pop();
                    }
                    hyp.log_prob = hyp
                        .bytes
                        .len()
                        .checked_sub(1)
                        .map_or(0.0, |i| cumulative[i]);
                    return hyp.finish(max_len);
                }
            }
            self.step(&mut seq, byte)?;
        }
    }

    /// Beam search of the given width: one decoding state per hypothesis; a surviving
    /// hypothesis copies its parent's state into a recycled buffer.
    fn decode_beam(
        &self,
        embedding: &[f32],
        draft: &[u8],
        guide: Option<&Guide>,
        max_len: usize,
        width: usize,
    ) -> Result<Decoded> {
        let mut states: Vec<Sequence> = vec![self.start_with_draft(embedding, draft)?];
        let mut spare: Vec<Sequence> = Vec::new();
        let mut beams = vec![Hypothesis {
            bytes: Vec::new(),
            state: Utf8State::default(),
            log_prob: 0.0,
        }];
        let mut finished: Vec<Hypothesis> = Vec::new();
        let mut lp = vec![0.0f32; 256];
        while !beams.is_empty() && finished.len() < width {
            let mut candidates: Vec<(usize, u8, f64)> = Vec::new();
            for (i, (hyp, state)) in beams.iter().zip(&states).enumerate() {
                log_softmax(state.logits(), &mut lp);
                if let Some(guide) = guide {
                    guide.mix(&hyp.bytes, &mut lp);
                }
                candidates.extend(
                    allowed(hyp, max_len)
                        .map(|b| (i, b, hyp.log_prob + f64::from(lp[usize::from(b)]))),
                );
            }
            candidates.sort_by(|a, b| b.2.total_cmp(&a.2));
            candidates.truncate(width - finished.len());
            let mut next = Vec::new();
            let mut next_states = Vec::new();
            for (i, b, log_prob) in candidates {
                let mut hyp = Hypothesis {
                    bytes: beams[i].bytes.clone(),
                    state: beams[i].state,
                    log_prob,
                };
                if b == 0 {
                    finished.push(hyp);
                } else {
                    hyp.bytes.push(b);
                    hyp.state = hyp.state.advance(b);
                    next.push(hyp);
                    let mut state = spare.pop().unwrap_or_else(|| states[i].clone());
                    state.copy_from(&states[i]);
                    next_states.push((state, b));
                }
            }
            beams = next;
            spare.append(&mut states);
            if !beams.is_empty() && finished.len() < width {
                for (mut state, b) in next_states {
                    self.step(&mut state, b)?;
                    states.push(state);
                }
            }
        }
        let score = |h: &Hypothesis| {
            h.log_prob / (h.bytes.len() + 1) as f64
                + guide.map_or(0.0, |g| g.consensus(&String::from_utf8_lossy(&h.bytes)))
        };
        finished
            .into_iter()
            .max_by(|a, b| score(a).total_cmp(&score(b)))
            .ok_or_else(|| Error::InvalidArgument("beam search finished no hypothesis".into()))?
            .finish(max_len)
    }
}

#[cfg(test)]
mod repeat_tests {
    use super::repeated_words_start;

    #[test]
    fn finds_a_repeated_word_trigram() {
        let text = b"the sound of the sound of ";
        assert_eq!(repeated_words_start(text, 3), Some(13));
        assert_eq!(repeated_words_start(b"the sound of the sea ", 3), None);
        assert_eq!(repeated_words_start(b"a b a b ", 2), Some(4));
        assert_eq!(repeated_words_start(b"had had ", 1), Some(4));
        assert_eq!(repeated_words_start(b"a storth storth ", 3), Some(9));
    }
}
