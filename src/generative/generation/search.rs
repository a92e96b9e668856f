//! The search loops of generation: greedy and sampled decoding (one state) and beam search
//! (one state per hypothesis), with the UTF-8 mask and the repeated-words stop.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::guide::Guide;
use super::{DecodeOptions, GeneratedText};
use crate::embedding::UnitEmbedding;
use crate::generative::inference::{log_softmax, InferenceModel, Sequence};
use crate::generative::utf8::Utf8State;
use crate::{Error, Result};

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
    fn finish(self, max_len: usize) -> Result<GeneratedText> {
        let truncated = self.bytes.len() >= max_len;
        let count = self.bytes.len() + 1;
        let text = String::from_utf8(self.bytes)
            .map_err(|e| Error::Internal(format!("decoder produced invalid UTF-8: {e}")))?;
        Ok(GeneratedText {
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

/// One seeded sample.
#[allow(clippy::too_many_arguments)]
pub(super) fn sampled(
    model: &InferenceModel,
    embedding: &UnitEmbedding,
    guide: Option<&Guide>,
    options: &DecodeOptions,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    seed: u64,
) -> Result<GeneratedText> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pick =
        |lp: &[f32], cands: &[u8]| sample(lp, cands, temperature, top_k, top_p, &mut rng);
    single(
        model,
        embedding,
        guide,
        options.max_len,
        options.stop_on_repeated_words,
        Some(&mut pick),
    )
}

/// Greedy decoding, or sampling when `pick` is given.
pub(super) fn single(
    model: &InferenceModel,
    embedding: &UnitEmbedding,
    guide: Option<&Guide>,
    max_len: usize,
    repeat_words: usize,
    mut pick: Option<Picker<'_>>,
) -> Result<GeneratedText> {
    // log-probability of the text up to each byte, to drop a repetition's share
    let mut cumulative: Vec<f64> = Vec::with_capacity(max_len);
    let mut seq = model.start(embedding)?;
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
        model.step(&mut seq, byte)?;
    }
}

/// Beam search of the given width: one decoding state per hypothesis; a surviving
/// hypothesis copies its parent's state into a recycled buffer.
pub(super) fn beam(
    model: &InferenceModel,
    embedding: &UnitEmbedding,
    guide: Option<&Guide>,
    max_len: usize,
    width: usize,
) -> Result<GeneratedText> {
    let mut states: Vec<Sequence> = vec![model.start(embedding)?];
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
                allowed(hyp, max_len).map(|b| (i, b, hyp.log_prob + f64::from(lp[usize::from(b)]))),
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
                model.step(&mut state, b)?;
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
        .ok_or_else(|| Error::Internal("beam search finished no hypothesis".into()))?
        .finish(max_len)
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
