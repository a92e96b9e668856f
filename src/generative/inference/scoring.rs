//! Scoring a text under the model: teacher-forced logits and the mean log-probability per
//! byte of a text given an input (the generator's one score of a text; `plan.md`).

use super::InferenceModel;
use crate::embedding::UnitEmbedding;
use crate::{Error, Result};

impl InferenceModel {
    /// Teacher-forced logits `[text.len() + 1][vocab]` computed incrementally with the cache:
    /// row `t` predicts byte `t + 1` of `text` (the end byte after the last one).
    /// The embedding is checked and normalised first.
    pub fn teacher_forced_logits(&self, embedding: &[f32], text: &[u8]) -> Result<Vec<Vec<f32>>> {
        self.teacher_forced(&UnitEmbedding::new(embedding, self.config.embed_dim)?, text)
    }

    /// [`Self::teacher_forced_logits`] of a unit-norm embedding.
    fn teacher_forced(&self, embedding: &UnitEmbedding, text: &[u8]) -> Result<Vec<Vec<f32>>> {
        if text.len() > self.config.max_len {
            return Err(Error::InvalidArgument(format!(
                "text of {} bytes exceeds max_len {}",
                text.len(),
                self.config.max_len
            )));
        }
        let mut seq = self.start(embedding)?;
        let mut rows = vec![seq.logits().to_vec()];
        for &b in text {
            self.step(&mut seq, b)?;
            rows.push(seq.logits().to_vec());
        }
        Ok(rows)
    }

    /// Mean natural-log probability per byte (text bytes and end byte) of `text` given
    /// `embedding`: how well the text explains the embedding, comparable with
    /// [`GeneratedText::mean_log_prob`](crate::generative::GeneratedText::mean_log_prob). A text longer
    /// than `max_len` bytes is scored by its first `max_len` bytes (no end byte).
    /// The embedding is checked and normalised first.
    pub fn mean_log_prob(&self, embedding: &[f32], text: &str) -> Result<f32> {
        let e = UnitEmbedding::new(embedding, self.config.embed_dim)?;
        self.score(&e, text)
    }

    /// The generator's score of a text given an input, the one definition every comparison
    /// of texts under the generator uses (the hybrid's rule, its re-ranking, refinement's
    /// prior; carried in [`Evidence::scores`](crate::Evidence::scores)): [`Self::mean_log_prob`]
    /// of the text exactly as given, under the model alone. Unguided, because a guide is a
    /// decoding aid that pulls towards the bank's phrases (it would score them by their own
    /// agreement); of the text as given, because the hybrid compares the bank's phrases as
    /// stored (the model was trained on them) and refinement the texts it writes.
    pub(crate) fn score(&self, embedding: &UnitEmbedding, text: &str) -> Result<f32> {
        crate::trace::record(|| crate::trace::Event::Score {
            text: text.to_string(),
        });
        self.mean_log_prob_mixed(embedding, text, None)
    }

    /// [`Self::mean_log_prob`] under the model's distribution rewritten by `mix` at each
    /// position when given (`mix(written, log_probs)`: a retrieval guide mixing in its
    /// proposals), as guided decoding scores its own candidates while it searches (its beams
    /// and MBR samples; the decoder's confidence). Texts are compared with [`Self::score`].
    pub(crate) fn mean_log_prob_mixed(
        &self,
        embedding: &UnitEmbedding,
        text: &str,
        mix: Option<&LogProbMix<'_>>,
    ) -> Result<f32> {
        let all = text.as_bytes();
        if all.contains(&0) {
            return Err(Error::InvalidArgument("text contains byte 0".into()));
        }
        // the model sees at most max_len bytes: a longer text (a long bank sentence) is scored
        // by the predictions of its first max_len bytes, without an end byte
        let truncated = all.len() > self.config.max_len;
        let bytes = &all[..all.len().min(self.config.max_len)];
        let mut rows = self.teacher_forced(embedding, bytes)?;
        if truncated {
            rows.pop();
        }
        let targets = bytes.iter().copied().chain((!truncated).then_some(0));
        let mut mixed = vec![0.0f32; 256];
        let mut total = 0.0f64;
        for (i, (row, target)) in rows.iter().zip(targets).enumerate() {
            let target = usize::from(target);
            total += match mix {
                Some(mix) => {
                    log_softmax(row, &mut mixed);
                    mix(&bytes[..i], &mut mixed);
                    f64::from(mixed[target])
                }
                None => {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let log_sum = f64::from(max)
                        + row
                            .iter()
                            .map(|&l| f64::from(l - max).exp())
                            .sum::<f64>()
                            .ln();
                    f64::from(row[target]) - log_sum
                }
            };
        }
        Ok((total / rows.len() as f64) as f32)
    }
}

/// Rewrites the next-byte log-probabilities given the bytes written so far.
pub(crate) type LogProbMix<'a> = dyn Fn(&[u8], &mut [f32]) + 'a;

/// Log-softmax of `logits` into `out` (same length).
pub(crate) fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let log_sum = max + sum.ln();
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = l - log_sum;
    }
}
