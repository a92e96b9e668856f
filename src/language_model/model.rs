//! [`NgramModel`]: the queries of a backoff n-gram model (ARPA semantics).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Word id of the unknown word.
pub(crate) const UNK: u32 = 0;
/// Word id of the sentence start.
pub(crate) const BOS: u32 = 1;
/// Word id of the sentence end.
pub(crate) const EOS: u32 = 2;
/// log10 probability ARPA files give the sentence start, which is never predicted.
pub(crate) const BOS_LOG_PROB: f32 = -99.0;

/// A multiplicative hasher for the packed n-gram keys (already well mixed by the packing of
/// word ids; SipHash would cost more than the table look-up).
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = (k ^ (k >> 29)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A hash map keyed by packed n-grams.
pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// Bits per word id in a packed key of an `order`-gram model.
pub(crate) fn id_bits(order: usize) -> u32 {
    (64 / order.max(1)) as u32
}

/// The packed key of the n-gram `ids` (at most `order` ids of at most `id_bits` bits each).
pub(crate) fn pack(ids: &[u32], bits: u32) -> u64 {
    ids.iter().fold(0u64, |k, &id| (k << bits) | u64::from(id))
}

/// One stored n-gram's log10 probability and, below the highest order, its backoff weight
/// (log10; 0 where the n-gram is never a context).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry {
    pub(crate) log_prob: f32,
    pub(crate) backoff: f32,
}

/// A text's score under an [`NgramModel`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextScore {
    /// Sum of the log10 probabilities of every token and the sentence end.
    pub log10_prob: f32,
    /// Tokens scored: the text's tokens plus the sentence end.
    pub tokens: usize,
    /// Tokens outside the model's vocabulary.
    pub unknown: usize,
}

impl TextScore {
    /// The mean log10 probability per token (the fluency figure: higher reads more like the
    /// model's text).
    pub fn mean(&self) -> f32 {
        self.log10_prob / self.tokens.max(1) as f32
    }
}

/// A backoff n-gram language model over words (orders 1 to 5), as estimated by
/// [`crate::language_model::NgramEstimator`] or loaded from a `.lm` file.
#[derive(Debug, Clone)]
pub struct NgramModel {
    pub(crate) order: usize,
    /// Words by id: 0 `<unk>`, 1 `<s>`, 2 `</s>`, then the vocabulary.
    pub(crate) words: Vec<String>,
    pub(crate) ids: HashMap<String, u32>,
    /// Unigrams by word id.
    pub(crate) unigrams: Vec<Entry>,
    /// Orders 2..=order: `tables[n - 2]` holds the n-grams.
    pub(crate) tables: Vec<KeyMap<Entry>>,
}

/// The environment variable that overrides the bundled model's location.
pub const LANGUAGE_MODEL_ENV: &str = "LWDEC_LANGUAGE_MODEL";

impl NgramModel {
    /// Location of the bundled model: `$LWDEC_LANGUAGE_MODEL`, else `model/english.lm` in the
    /// user data folder or the crate's checkout ([`crate::data::locate`]).
    pub fn default_path() -> std::path::PathBuf {
        crate::data::locate(crate::data::LANGUAGE_MODEL, LANGUAGE_MODEL_ENV)
    }

    /// Builds the model from its parts (ids 0..3 are `<unk>`, `<s>`, `</s>`).
    pub(crate) fn from_parts(
        order: usize,
        words: Vec<String>,
        unigrams: Vec<Entry>,
        tables: Vec<KeyMap<Entry>>,
    ) -> Result<Self> {
        if !(1..=5).contains(&order) || tables.len() + 1 != order {
            return Err(Error::Internal(format!(
                "an n-gram model of order {order} with {} tables",
                tables.len()
            )));
        }
        if words.len() != unigrams.len() || words.len() < 3 {
            return Err(Error::Internal(
                "n-gram vocabulary and unigrams differ".into(),
            ));
        }
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(NgramModel {
            order,
            words,
            ids,
            unigrams,
            tables,
        })
    }

    /// The model's order (3 for a trigram model).
    pub fn order(&self) -> usize {
        self.order
    }

    /// Words in the vocabulary, `<unk>`, `<s>` and `</s>` included.
    pub fn vocabulary_size(&self) -> usize {
        self.words.len()
    }

    /// Stored n-grams per order, unigrams first.
    pub fn ngram_counts(&self) -> Vec<usize> {
        std::iter::once(self.unigrams.len())
            .chain(self.tables.iter().map(HashMap::len))
            .collect()
    }

    /// The id of a token (`<unk>`'s id, 0, for a word outside the vocabulary).
    pub fn id(&self, token: &str) -> u32 {
        self.ids.get(token).copied().unwrap_or(UNK)
    }

    /// The ids of `text`'s tokens ([`crate::language_model::tokens`]).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        super::tokens(text).iter().map(|t| self.id(t)).collect()
    }

    fn entry(&self, ngram: &[u32]) -> Option<Entry> {
        match ngram.len() {
            0 => None,
            1 => self.unigrams.get(ngram[0] as usize).copied(),
            n => self.tables[n - 2]
                .get(&pack(ngram, id_bits(self.order)))
                .copied(),
        }
    }

    /// log10 P(`word` | `context`), the context's last `order - 1` ids counting.
    pub fn log_prob(&self, context: &[u32], word: u32) -> f32 {
        let k = context.len().min(self.order - 1);
        let context = &context[context.len() - k..];
        let mut ngram = [0u32; 5];
        let mut backoff = 0.0;
        for start in 0..k {
            let n = k - start + 1;
            ngram[..n - 1].copy_from_slice(&context[start..]);
            ngram[n - 1] = word;
            if let Some(e) = self.entry(&ngram[..n]) {
                return backoff + e.log_prob;
            }
            if let Some(c) = self.entry(&context[start..]) {
                backoff += c.backoff;
            }
        }
        backoff
            + self
                .unigrams
                .get(word as usize)
                .map_or(self.unigrams[UNK as usize].log_prob, |e| e.log_prob)
    }

    /// The score of a sentence given as token ids (without `<s>` / `</s>`, which are added).
    pub fn score_ids(&self, ids: &[u32]) -> TextScore {
        let mut padded = Vec::with_capacity(ids.len() + 2);
        padded.push(BOS);
        padded.extend_from_slice(ids);
        padded.push(EOS);
        let mut total = 0.0;
        for i in 1..padded.len() {
            let from = i.saturating_sub(self.order - 1);
            total += self.log_prob(&padded[from..i], padded[i]);
        }
        TextScore {
            log10_prob: total,
            tokens: padded.len() - 1,
            unknown: ids.iter().filter(|&&id| id == UNK).count(),
        }
    }

    /// The score of `text` as one sentence.
    pub fn score(&self, text: &str) -> TextScore {
        self.score_ids(&self.token_ids(text))
    }

    /// Writes the model in the ARPA text format (log10 probabilities and backoffs), which
    /// KenLM and SRILM read.
    pub fn write_arpa(&self, path: &Path) -> Result<()> {
        let mut file = crate::fsutil::AtomicFile::create(path)?;
        let io = |e| Error::io("write the ARPA file", path, e);
        {
            let out = &mut file;
            writeln!(out, "\n\\data\\").map_err(io)?;
            for (n, count) in self.ngram_counts().iter().enumerate() {
                writeln!(out, "ngram {}={count}", n + 1).map_err(io)?;
            }
            let bits = id_bits(self.order);
            let mask = (1u64 << bits) - 1;
            for n in 1..=self.order {
                writeln!(out, "\n\\{n}-grams:").map_err(io)?;
                let mut rows: Vec<(Vec<u32>, Entry)> = if n == 1 {
                    self.unigrams
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (vec![i as u32], *e))
                        .collect()
                } else {
                    self.tables[n - 2]
                        .iter()
                        .map(|(k, e)| {
                            let ids = (0..n)
                                .map(|j| ((k >> (bits * (n - 1 - j) as u32)) & mask) as u32)
                                .collect();
                            (ids, *e)
                        })
                        .collect()
                };
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                for (ids, e) in rows {
                    let text: Vec<&str> = ids
                        .iter()
                        .map(|&i| self.words[i as usize].as_str())
                        .collect();
                    if n < self.order {
                        writeln!(out, "{}\t{}\t{}", e.log_prob, text.join(" "), e.backoff)
                    } else {
                        writeln!(out, "{}\t{}", e.log_prob, text.join(" "))
                    }
                    .map_err(io)?;
                }
            }
            writeln!(out, "\n\\end\\").map_err(io)?;
            out.flush().map_err(io)?;
        }
        file.commit()
    }
}

/// Asserts that P(. | context) sums to one over the vocabulary (all but `<s>`) within
/// `tolerance`, for each of `contexts`.
#[cfg(test)]
pub(crate) fn assert_distributions(m: &NgramModel, contexts: &[Vec<u32>], tolerance: f64) {
    for context in contexts {
        let total: f64 = (0..m.vocabulary_size() as u32)
            .filter(|&i| i != BOS)
            .map(|w| 10f64.powf(f64::from(m.log_prob(context, w))))
            .sum();
        assert!(
            (total - 1.0).abs() < tolerance,
            "context {context:?} sums to {total}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language_model::NgramEstimator;

    fn toy() -> NgramModel {
        let mut est = NgramEstimator::new(3).unwrap();
        for s in [
            "the cat sat on the mat",
            "the dog sat on the log",
            "a cat saw the dog",
            "the cat ran",
            "a dog ran on the mat",
        ] {
            est.add_sentence(s);
        }
        est.build().unwrap()
    }

    #[test]
    fn every_context_is_a_distribution() {
        let m = toy();
        let contexts = [
            vec![],
            vec![BOS],
            vec![m.id("the")],
            vec![BOS, m.id("the")],
            vec![m.id("sat"), m.id("on")],
            vec![m.id("ran"), m.id("cat")],
        ];
        assert_distributions(&m, &contexts, 1e-4);
    }

    #[test]
    fn seen_word_order_scores_above_its_scramble() {
        let m = toy();
        assert!(
            m.score("the cat sat on the mat").mean() > m.score("mat the on sat cat the").mean()
        );
        assert!(m.score("the dog ran").mean() > m.score("the the dog").mean());
    }
}
