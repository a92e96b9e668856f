//! [`NgramEstimator`]: interpolated modified Kneser-Ney estimation, with count pruning and
//! renormalised backoff weights.
//!
//! As in KenLM's `lmplz`: the highest order and every n-gram that starts with `<s>` keep
//! their raw counts; lower orders use continuation counts (how many distinct words precede
//! the n-gram); each order has three discounts from its counts of counts; probabilities
//! interpolate down to the uniform distribution. Pruning drops n-grams of order two and up
//! whose adjusted count is below the order's threshold (never one that is the prefix or
//! suffix of a kept longer n-gram), and each context's backoff weight is recomputed so that
//! its distribution still sums to one.

use std::collections::HashMap;

use super::model::{id_bits, pack, Entry, KeyMap, NgramModel, BOS, BOS_LOG_PROB, EOS, UNK};
use crate::error::{Error, Result};

/// Counts sentences and estimates an [`NgramModel`] from them.
#[derive(Debug, Clone)]
pub struct NgramEstimator {
    order: usize,
    max_vocabulary: usize,
    min_counts: Vec<u32>,
    /// Provisional ids of every word seen, and their counts.
    words: HashMap<String, u32>,
    word_counts: Vec<u64>,
    /// Every sentence's provisional ids, concatenated; `ends[i]` closes sentence i.
    tokens: Vec<u32>,
    ends: Vec<usize>,
}

impl NgramEstimator {
    /// Largest order.
    pub const MAX_ORDER: usize = 5;

    /// An estimator of an `order`-gram model (1 to 5) that keeps every n-gram and as many
    /// words as the packed keys allow.
    pub fn new(order: usize) -> Result<Self> {
        if !(1..=Self::MAX_ORDER).contains(&order) {
            return Err(Error::InvalidConfig(format!(
                "n-gram order must be in 1..=5, got {order}"
            )));
        }
        Ok(NgramEstimator {
            order,
            max_vocabulary: usize::MAX,
            min_counts: vec![1; order],
            words: HashMap::new(),
            word_counts: Vec::new(),
            tokens: Vec::new(),
            ends: Vec::new(),
        })
    }

    /// Keeps the `max` most frequent words; the others become `<unk>`.
    pub fn max_vocabulary(mut self, max: usize) -> Self {
        self.max_vocabulary = max.max(1);
        self
    }

    /// Pruning: `min_counts[n - 1]` is the least adjusted count an n-gram of order `n >= 2`
    /// needs to be kept (1 keeps all; missing orders keep all; unigrams are never pruned).
    pub fn min_counts(mut self, min_counts: &[u32]) -> Self {
        for (n, slot) in self.min_counts.iter_mut().enumerate() {
            *slot = min_counts.get(n).copied().unwrap_or(1).max(1);
        }
        self
    }

    /// Sentences added so far.
    pub fn sentences(&self) -> usize {
        self.ends.len()
    }

    /// Adds one sentence (tokenised by [`super::tokens`]).
    pub fn add_sentence(&mut self, text: &str) {
        for token in super::tokens(text) {
            let next = self.words.len() as u32;
            let id = *self.words.entry(token).or_insert(next);
            if id as usize == self.word_counts.len() {
                self.word_counts.push(0);
            }
            self.word_counts[id as usize] += 1;
            self.tokens.push(id);
        }
        self.ends.push(self.tokens.len());
    }

    /// Estimates the model.
    pub fn build(&self) -> Result<NgramModel> {
        let order = self.order;
        let bits = id_bits(order);
        // the vocabulary: the most frequent words (ties by spelling), ids from 3
        let cap = self
            .max_vocabulary
            .min((1usize << bits.min(31)) - 4)
            .min(self.words.len());
        let mut by_count: Vec<(&String, u32)> = self.words.iter().map(|(w, &i)| (w, i)).collect();
        by_count.sort_by(|a, b| {
            self.word_counts[b.1 as usize]
                .cmp(&self.word_counts[a.1 as usize])
                .then_with(|| a.0.cmp(b.0))
        });
        let mut remap = vec![UNK; self.words.len()];
        let mut words: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        for (rank, (word, provisional)) in by_count.into_iter().take(cap).enumerate() {
            remap[provisional as usize] = rank as u32 + 3;
            words.push(word.clone());
        }

        // raw counts: the highest order, and the shorter n-grams that start a sentence
        let mut counts: Vec<KeyMap<u32>> = (0..order).map(|_| KeyMap::default()).collect();
        let mut ids = Vec::new();
        let mut start = 0;
        for &end in &self.ends {
            ids.clear();
            ids.push(BOS);
            ids.extend(self.tokens[start..end].iter().map(|&t| remap[t as usize]));
            ids.push(EOS);
            start = end;
            for i in 1..ids.len() {
                let from = (i + 1).saturating_sub(order);
                let gram = &ids[from..=i];
                *counts[gram.len() - 1].entry(pack(gram, bits)).or_insert(0) += 1;
            }
        }
        // adjusted counts of the lower orders: distinct left extensions
        for n in (1..order).rev() {
            let suffix_mask = low_mask(bits * n as u32);
            let extensions: Vec<u64> = counts[n].keys().map(|k| k & suffix_mask).collect();
            for suffix in extensions {
                *counts[n - 1].entry(suffix).or_insert(0) += 1;
            }
        }
        let discounts: Vec<[f64; 4]> = counts.iter().map(discounts).collect::<Result<_>>()?;

        // interpolated probabilities, order by order (linear, f64)
        let uniform = 1.0 / (words.len() - 1) as f64; // every word but <s>
        let mut probs: Vec<KeyMap<f64>> = Vec::with_capacity(order);
        let mut gammas: Vec<KeyMap<f64>> = Vec::with_capacity(order); // by context, order n-1
        for n in 1..=order {
            let d = discounts[n - 1];
            let mut stats: KeyMap<[f64; 4]> = KeyMap::default();
            for (&k, &a) in &counts[n - 1] {
                let s = stats.entry(k >> bits).or_insert([0.0; 4]);
                s[0] += f64::from(a);
                s[(a as usize).min(3)] += 1.0;
            }
            let gamma: KeyMap<f64> = stats
                .iter()
                .map(|(&h, s)| (h, (d[1] * s[1] + d[2] * s[2] + d[3] * s[3]) / s[0]))
                .collect();
            let suffix_mask = low_mask(bits * (n as u32 - 1));
            let mut p: KeyMap<f64> = KeyMap::default();
            for (&k, &a) in &counts[n - 1] {
                let h = k >> bits;
                let u = (f64::from(a) - d[(a as usize).min(3)]) / stats[&h][0];
                let lower = if n == 1 {
                    uniform
                } else {
                    *probs[n - 2]
                        .get(&(k & suffix_mask))
                        .ok_or_else(|| Error::Internal(format!("an {n}-gram without its suffix")))?
                };
                p.insert(k, u + gamma[&h] * lower);
            }
            probs.push(p);
            gammas.push(gamma);
        }

        // pruning, top down: kept n-grams keep their prefixes and suffixes
        let mut kept: Vec<Vec<u64>> = vec![Vec::new(); order];
        for n in (2..=order).rev() {
            let mut keep: KeyMap<()> = counts[n - 1]
                .iter()
                .filter(|(_, &a)| a >= self.min_counts[n - 1])
                .map(|(&k, _)| (k, ()))
                .collect();
            if n < order {
                let suffix_mask = low_mask(bits * n as u32);
                for &k in &kept[n] {
                    keep.insert(k >> bits, ());
                    keep.insert(k & suffix_mask, ());
                }
            }
            let mut v: Vec<u64> = keep.into_keys().collect();
            v.sort_unstable();
            kept[n - 1] = v;
        }

        // the model, bottom up: each order's backoffs renormalised over what the pruned
        // lower orders give
        let mut unigrams = vec![
            Entry {
                log_prob: 0.0,
                backoff: 0.0
            };
            words.len()
        ];
        for (i, e) in unigrams.iter_mut().enumerate() {
            let p = probs[0].get(&(i as u64)).copied().unwrap_or(0.0);
            e.log_prob = if i as u32 == BOS {
                BOS_LOG_PROB
            } else if p > 0.0 {
                p.log10() as f32
            } else {
                // a word never preceded by anything (only <unk> can be): the uniform share
                (gammas[0].get(&0).copied().unwrap_or(1.0) * uniform).log10() as f32
            };
        }
        let tables: Vec<KeyMap<Entry>> = (2..=order).map(|_| KeyMap::default()).collect();
        let mut model = NgramModel::from_parts(order, words, unigrams, tables)?;
        for n in 2..=order {
            let mut sums: KeyMap<(f64, f64)> = KeyMap::default();
            let mut table: KeyMap<Entry> = KeyMap::default();
            table.reserve(kept[n - 1].len());
            let mut gram = vec![0u32; n];
            for &k in &kept[n - 1] {
                let p = probs[n - 1][&k];
                unpack(k, bits, &mut gram);
                let q = 10f64.powf(f64::from(model.log_prob(&gram[1..n - 1], gram[n - 1])));
                let s = sums.entry(k >> bits).or_insert((0.0, 0.0));
                s.0 += p;
                s.1 += q;
                table.insert(
                    k,
                    Entry {
                        log_prob: p.log10() as f32,
                        backoff: 0.0,
                    },
                );
            }
            // the backoff of each context (an (n-1)-gram)
            for (h, (p, q)) in sums {
                let left = (1.0 - p).max(1e-12);
                let right = (1.0 - q).max(1e-12);
                let backoff = (left / right).log10() as f32;
                if n == 2 {
                    if let Some(e) = model.unigrams.get_mut(h as usize) {
                        e.backoff = backoff;
                    }
                } else if let Some(e) = model.tables[n - 3].get_mut(&h) {
                    e.backoff = backoff;
                }
            }
            model.tables[n - 2] = table;
        }
        Ok(model)
    }
}

/// A mask of the low `bits` bits.
fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The ids of a packed n-gram into `out` (its length is the order of the n-gram).
fn unpack(key: u64, bits: u32, out: &mut [u32]) {
    let n = out.len();
    let mask = low_mask(bits);
    for (j, slot) in out.iter_mut().enumerate() {
        *slot = ((key >> (bits * (n - 1 - j) as u32)) & mask) as u32;
    }
}

/// The modified Kneser-Ney discounts `[_, D1, D2, D3+]` of one order's adjusted counts.
fn discounts(counts: &KeyMap<u32>) -> Result<[f64; 4]> {
    let mut t = [0f64; 5];
    for &a in counts.values() {
        if (1..=4).contains(&a) {
            t[a as usize] += 1.0;
        }
    }
    if t[1] == 0.0 || t[2] == 0.0 || t[3] == 0.0 || t[4] == 0.0 {
        // too little text for the estimate (a toy corpus): KenLM's usual values
        return Ok([0.0, 0.5, 1.0, 1.5]);
    }
    let y = t[1] / (t[1] + 2.0 * t[2]);
    let d = [
        0.0,
        1.0 - 2.0 * y * t[2] / t[1],
        2.0 - 3.0 * y * t[3] / t[2],
        3.0 - 4.0 * y * t[4] / t[3],
    ];
    if d[1..]
        .iter()
        .enumerate()
        .any(|(i, &x)| !(x > 0.0 && x < (i + 1) as f64 + 1e-9))
    {
        return Ok([0.0, 0.5, 1.0, 1.5]);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_outside_one_to_five_are_refused() {
        assert!(NgramEstimator::new(0).is_err());
        assert!(NgramEstimator::new(6).is_err());
    }

    #[test]
    fn pruning_keeps_distributions_normalised() {
        let mut est = NgramEstimator::new(3).unwrap().min_counts(&[1, 2, 2]);
        for i in 0..200 {
            est.add_sentence(&format!(
                "the {} cat sat on the {} mat number {}",
                ["big", "small", "red"][i % 3],
                ["old", "new"][i % 2],
                i % 7
            ));
        }
        let m = est.build().unwrap();
        let contexts = [
            vec![BOS],
            vec![m.id("the"), m.id("big")],
            vec![m.id("number"), m.id("3")],
            vec![m.id("mat"), m.id("sat")],
        ];
        crate::language_model::model::assert_distributions(&m, &contexts, 1e-3);
    }
}
