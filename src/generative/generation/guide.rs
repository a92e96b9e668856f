//! Retrieval guidance: related texts (a bank's nearest phrases) whose continuations the decoder
//! may copy, mixed into the model's next-byte distribution (a copy mechanism without
//! parameters, in the spirit of pointer-generator networks and kNN-LM).

use serde::{Deserialize, Serialize};

use crate::embedding::UnitEmbedding;
use crate::generative::inference::InferenceModel;
use crate::text::token_f1;
use crate::{Error, Result};

/// How strongly, and from how many related texts, decoding copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuideSettings {
    /// How many of the bank's nearest phrases guide one decode (0 turns guidance off).
    pub candidates: usize,
    /// Softmax temperature over the candidates' similarities: lower trusts the nearest more.
    pub temperature: f32,
    /// Share of the next-byte probability the candidates may take, in [0, 1]; the model keeps
    /// the rest (all of it where no candidate matches what was written).
    pub weight: f32,
    /// A candidate proposes its next byte only where at least this many of the last bytes
    /// written match it (at the start, its first byte is proposed).
    pub min_match: usize,
    /// Consensus, the token F1 against the candidates weighted by similarity: beam search
    /// ranks each finished hypothesis by its mean log-probability plus this times its
    /// consensus, and greedy and beam search then return whichever of the decoded text and
    /// the candidates the other candidates agree with most ([`Guide::most_agreed`]); 0 turns
    /// both off.
    pub consensus_weight: f32,
    /// Softmax temperature over the similarities for the consensus (flatter than
    /// `temperature`: every candidate is evidence of the words the input's text holds).
    pub consensus_temperature: f32,
}

impl Default for GuideSettings {
    /// The settings measured best for the bundled model (plan.md, "Retrieval-guided
    /// decoding"): the 8 nearest phrases, most of the probability to their continuations,
    /// beam hypotheses ranked with their consensus, and the output checked against the
    /// candidates ([`Guide::most_agreed`]). Greedy is the fast mode, beam 8 the best
    /// measured. Fitted on validation rows 1000-1999 with the bundled and an exact bank, and
    /// on out-of-domain text (`scripts/ood_texts.py`), where a flatter temperature than the
    /// WordNet optimum helps. [`GuideSettings::off`] turns guidance off.
    fn default() -> Self {
        GuideSettings {
            candidates: 8,
            temperature: 0.05,
            weight: 0.7,
            min_match: 2,
            consensus_weight: 3.0,
            consensus_temperature: 0.3,
        }
    }
}

impl GuideSettings {
    /// No guidance: the generator decodes from the embedding alone.
    pub fn off() -> Self {
        GuideSettings {
            candidates: 0,
            ..GuideSettings::default()
        }
    }

    /// Checks the values, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if self.candidates > 100 {
            return Err(Error::InvalidConfig(
                "guide.candidates must be at most 100".into(),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidConfig(
                "guide.temperature must be finite and positive".into(),
            ));
        }
        if !(self.consensus_temperature.is_finite() && self.consensus_temperature > 0.0) {
            return Err(Error::InvalidConfig(
                "guide.consensus_temperature must be finite and positive".into(),
            ));
        }
        if !(self.consensus_weight.is_finite() && self.consensus_weight >= 0.0) {
            return Err(Error::InvalidConfig(
                "guide.consensus_weight must be finite and non-negative".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(Error::InvalidConfig(
                "guide.weight must be in [0, 1]".into(),
            ));
        }
        Ok(())
    }

    /// Whether decoding is guided at all.
    pub fn enabled(&self) -> bool {
        self.candidates > 0 && self.weight > 0.0
    }
}

/// The related texts of one decode and their weights.
#[derive(Debug, Clone)]
pub struct Guide {
    texts: Vec<String>,
    shares: Vec<f32>,
    weight: f32,
    min_match: usize,
    consensus_shares: Vec<f64>,
}

/// Softmax of `similarities` at `temperature`.
fn softmax(similarities: &[f32], temperature: f32) -> Vec<f32> {
    let best = similarities
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f32> = similarities
        .iter()
        .map(|s| ((s - best) / temperature).exp())
        .collect();
    let total: f32 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// Longest match looked at, in bytes.
const MAX_MATCH: usize = 32;

/// How well `text[..j]` matches the end of `written`: the longest common suffix that starts
/// at a word boundary in both (so copying resumes only on whole words), plus [`MAX_MATCH`]
/// where it reaches the start of both (a copy from the beginning); 0 for none.
fn match_length(text: &[u8], j: usize, written: &[u8]) -> usize {
    let cap = j.min(written.len()).min(MAX_MATCH);
    let common = (1..=cap)
        .take_while(|&i| text[j - i] == written[written.len() - i])
        .count();
    let at_boundary = |bytes: &[u8], start: usize| start == 0 || bytes[start - 1] == b' ';
    (1..=common)
        .rev()
        .find(|&i| at_boundary(text, j - i) && at_boundary(written, written.len() - i))
        .map_or(0, |i| {
            if i == j && i == written.len() {
                i + MAX_MATCH
            } else {
                i
            }
        })
}

impl Guide {
    /// A guide from texts and their similarities to the input (best first or not); texts are
    /// cut at byte 0, which ends a text.
    pub fn new<'a>(
        texts: impl IntoIterator<Item = (&'a str, f32)>,
        settings: &GuideSettings,
    ) -> Result<Guide> {
        settings.validate()?;
        let (texts, similarities): (Vec<String>, Vec<f32>) = texts
            .into_iter()
            .take(settings.candidates)
            .map(|(t, s)| (t.split('\0').next().unwrap_or_default().to_string(), s))
            .unzip();
        if similarities.iter().any(|s| !s.is_finite()) {
            return Err(Error::InvalidArgument(
                "guide similarities must be finite".into(),
            ));
        }
        let consensus_shares = softmax(&similarities, settings.consensus_temperature)
            .into_iter()
            .map(|w| f64::from(settings.consensus_weight * w))
            .collect();
        Ok(Guide {
            shares: softmax(&similarities, settings.temperature),
            texts,
            weight: settings.weight,
            min_match: settings.min_match,
            consensus_shares,
        })
    }

    /// The consensus of `text` with the guide's texts: `consensus_weight` times its token F1
    /// against each, weighted by a softmax of the similarities at `consensus_temperature`.
    pub fn consensus(&self, text: &str) -> f64 {
        self.consensus_without(text, None)
    }

    /// [`Self::consensus`] leaving out the guide's text number `skip` (a text's own vote).
    fn consensus_without(&self, text: &str, skip: Option<usize>) -> f64 {
        self.texts
            .iter()
            .zip(&self.consensus_shares)
            .enumerate()
            .filter(|&(i, (_, &w))| w > 0.0 && Some(i) != skip)
            .map(|(_, (t, &w))| w * token_f1(text, t))
            .sum()
    }

    /// Whether the guide's texts vote (`consensus_weight` > 0).
    pub fn votes(&self) -> bool {
        self.consensus_shares.iter().any(|&w| w > 0.0)
    }

    /// Which of `decoded` and the guide's texts the others agree with most (leave-one-out
    /// consensus: a guide text does not vote for itself): `None` for `decoded`, else the
    /// number of a guide text. Ties keep `decoded`; texts over `max_bytes` bytes are not
    /// chosen.
    pub fn most_agreed(&self, decoded: &str, max_bytes: usize) -> Option<usize> {
        let mut best = (None, self.consensus(decoded));
        for (i, text) in self.texts.iter().enumerate() {
            if text.len() > max_bytes {
                continue;
            }
            let score = self.consensus_without(text, Some(i));
            if score > best.1 {
                best = (Some(i), score);
            }
        }
        best.0
    }

    /// The guide's texts, in the order given.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Whether the guide holds no text.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Mean log-probability per byte of `text` under `model`'s distribution mixed with this
    /// guide's proposals, as guided decoding scores its own output.
    pub fn mean_log_prob(
        &self,
        model: &InferenceModel,
        embedding: &UnitEmbedding,
        text: &str,
    ) -> Result<f32> {
        model.mean_log_prob_mixed(embedding, text, Some(&|written, lp| self.mix(written, lp)))
    }

    /// Mixes the candidates' proposals for the byte after `written` into the model's
    /// log-probabilities `log_probs` (256 entries, replaced by the mixture's).
    pub fn mix(&self, written: &[u8], log_probs: &mut [f32]) {
        let mut proposed = [0.0f32; 256];
        let mut total = 0.0f32;
        let mut positions = Vec::new();
        for (text, &share) in self.texts.iter().zip(&self.shares) {
            let text = text.as_bytes();
            positions.clear();
            if written.is_empty() {
                positions.push(0);
            } else {
                let mut longest = 0;
                for j in 1..=text.len() {
                    let m = match_length(text, j, written);
                    if m > longest {
                        longest = m;
                        positions.clear();
                    }
                    if m == longest && m > 0 {
                        positions.push(j);
                    }
                }
                if longest < self.min_match.min(written.len()).max(1) {
                    continue;
                }
            }
            let each = share / positions.len() as f32;
            for &j in &positions {
                let next = text.get(j).copied().unwrap_or(0);
                proposed[usize::from(next)] += each;
            }
            total += share;
        }
        if total <= 0.0 {
            return;
        }
        let keep = 1.0 - self.weight * total;
        for (lp, &q) in log_probs.iter_mut().zip(&proposed) {
            *lp = (keep * lp.exp() + self.weight * q)
                .max(f32::MIN_POSITIVE)
                .ln();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> Vec<f32> {
        vec![-(256f32.ln()); 256]
    }

    #[test]
    fn proposes_the_continuation_of_the_longest_match() {
        let settings = GuideSettings {
            candidates: 2,
            weight: 1.0,
            ..GuideSettings::default()
        };
        let guide = Guide::new([("a dog barks", 0.9), ("a cat", 0.5)], &settings).unwrap();
        let mut lp = uniform();
        guide.mix(b"", &mut lp);
        assert!((lp[usize::from(b'a')].exp() - 1.0).abs() < 1e-4);
        let mut lp = uniform();
        guide.mix(b"the dog ", &mut lp);
        // the second candidate matches only " " and is far less similar
        assert!(lp[usize::from(b'b')].exp() > 0.99);
        let mut lp = uniform();
        guide.mix(b"a dog barks", &mut lp);
        assert!(lp[0].exp() > 0.99, "the end of the text is proposed");
    }

    #[test]
    fn leaves_the_model_alone_without_a_match() {
        let mut settings = GuideSettings::default();
        (settings.candidates, settings.weight, settings.min_match) = (1, 0.5, 2);
        let guide = Guide::new([("xyz", 1.0)], &settings).unwrap();
        let mut lp = uniform();
        guide.mix(b"abc", &mut lp);
        assert_eq!(lp, uniform());
        guide.mix(b"a x", &mut lp);
        assert_eq!(lp, uniform(), "one byte is too short a match");
        guide.mix(b"axy", &mut lp);
        assert_eq!(lp, uniform(), "a match must start on a word boundary");
        guide.mix(b"a xy", &mut lp);
        assert!((lp[usize::from(b'z')].exp() - (0.5 + 0.5 / 256.0)).abs() < 1e-4);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = GuideSettings {
            weight: 1.5,
            ..GuideSettings::default()
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
        let bad = GuideSettings {
            temperature: 0.0,
            ..GuideSettings::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_text_the_others_agree_with_most_wins_without_voting_for_itself() {
        let settings = GuideSettings {
            candidates: 3,
            consensus_weight: 1.0,
            consensus_temperature: 1.0,
            ..GuideSettings::default()
        };
        let texts = [
            ("a cat sleeps", 0.9),
            ("a dog barks loudly", 0.8),
            ("the dog barks", 0.8),
        ];
        let guide = Guide::new(texts, &settings).unwrap();
        assert!(guide.votes());
        // "a dog barks" shares words with all three: it stays
        assert_eq!(guide.most_agreed("a dog barks", 96), None);
        // an unrelated text gives way to the candidate the other two agree with most
        assert_eq!(guide.most_agreed("xyz", 96), Some(1));
        assert_eq!(
            guide.most_agreed("xyz", 5),
            None,
            "candidates over max_bytes stay out"
        );
        let silent = GuideSettings {
            consensus_weight: 0.0,
            ..settings
        };
        let silent = Guide::new(texts, &silent).unwrap();
        assert!(!silent.votes());
    }
}
