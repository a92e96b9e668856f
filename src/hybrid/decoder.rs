//! [`HybridDecoder`]: per input, the bank's phrase or the generator's text, whichever the
//! calibrated rule expects to be better.

use super::rule::{choose, Alternative, Choice, HybridConfig, HybridSignals};
use crate::decoder::{checked_confidence, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::error::{Error, Result};
use crate::eval::metrics::token_f1;
use crate::generative::GenerativeDecoder;
use crate::phrase_bank::PhraseBankDecoder;
use crate::session::{Session, SessionEntry};

/// Chooses per input between a [`PhraseBankDecoder`] and a [`GenerativeDecoder`].
pub struct HybridDecoder {
    bank: PhraseBankDecoder,
    generator: GenerativeDecoder,
    rule: HybridConfig,
}

/// Both decoders' outputs for one input, with the signals.
#[derive(Debug, Clone)]
pub struct BothOutputs {
    /// The bank's result (its session entry is recorded only if it is chosen).
    pub bank: Decoded,
    /// The generator's result; `None` when the bank's similarity took the fast path.
    pub generated: Option<Decoded>,
    /// The signals, when the generator ran.
    pub signals: Option<HybridSignals>,
    /// The bank's other single-phrase candidates re-scored by the generator (empty when the
    /// generator did not run, re-ranking is off or the bank's output joins several phrases).
    pub alternatives: Vec<Alternative>,
}

impl HybridDecoder {
    /// A hybrid of the two decoders with a validated rule.
    pub fn new(
        bank: PhraseBankDecoder,
        generator: GenerativeDecoder,
        rule: HybridConfig,
    ) -> Result<Self> {
        rule.validate()?;
        if bank.dim() != generator.dim() {
            return Err(Error::InvalidConfig(format!(
                "the bank takes {}-d embeddings, the generator {}-d",
                bank.dim(),
                generator.dim()
            )));
        }
        Ok(HybridDecoder {
            bank,
            generator,
            rule,
        })
    }

    /// The bank decoder.
    pub fn bank(&self) -> &PhraseBankDecoder {
        &self.bank
    }

    /// The generative decoder.
    pub fn generator(&self) -> &GenerativeDecoder {
        &self.generator
    }

    /// The decision rule.
    pub fn rule(&self) -> &HybridConfig {
        &self.rule
    }

    /// Runs the bank (recording into `session`) and, unless `fast_path` and the bank is sure,
    /// the generator on one unit-norm input. Without the fast path (calibration) the
    /// alternatives are scored even when the rule's weight is 0.
    fn both(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
        fast_path: bool,
    ) -> Result<BothOutputs> {
        let bank = self.bank.decode_unit(query, session)?;
        let s1 = bank.candidates.first().map_or(-1.0, |c| c.similarity);
        if fast_path && s1 >= self.rule.bank_similarity {
            return Ok(BothOutputs {
                bank,
                generated: None,
                signals: None,
                alternatives: Vec::new(),
            });
        }
        // the bank's top candidates guide the generator (if it is guided by this bank): no
        // second search
        let generated = self.generator.decode_unit_with_found(
            query,
            &self.bank.shared_bank(),
            &bank.candidates,
        )?;
        let model = self.generator.model();
        // Score raw bank phrases (as the generator was trained on), not post-processed text.
        let single = match &bank.source {
            Source::PhraseBank { phrase_ids } if phrase_ids.len() == 1 => Some(phrase_ids[0]),
            _ => None,
        };
        let bank_text = single
            .and_then(|id| self.bank.bank().phrase(id))
            .unwrap_or(&bank.text);
        let mut alternatives = Vec::new();
        if let Some(chosen) = single {
            if !fast_path || self.rule.reranks() {
                for (rank, c) in bank.candidates.iter().enumerate() {
                    if rank >= self.rule.rerank_top_k || c.phrase_id == Some(chosen) {
                        continue;
                    }
                    alternatives.push(Alternative {
                        rank,
                        similarity: c.similarity,
                        log_prob: model.mean_log_prob_mixed(query, &c.text, None)?,
                        overlap: token_f1(&c.text, &generated.text) as f32,
                    });
                }
            }
        }
        let signals = HybridSignals {
            bank_similarity: s1,
            bank_margin: s1 - bank.candidates.get(1).map_or(-1.0, |c| c.similarity),
            bank_log_prob: model.mean_log_prob_mixed(query, bank_text, None)?,
            generator_log_prob: generated.confidence.max(f32::MIN_POSITIVE).ln(),
            bank_overlap: token_f1(bank_text, &generated.text) as f32,
        };
        Ok(BothOutputs {
            bank,
            generated: Some(generated),
            signals: Some(signals),
            alternatives,
        })
    }

    /// Both outputs and the signals for one input, without the fast path (for calibration).
    pub fn both_outputs(&self, input: &[f32]) -> Result<BothOutputs> {
        let query = UnitEmbedding::new(input, self.dim())?;
        self.both(&query, &mut self.bank.new_session(), false)
    }
}

impl Decoder for HybridDecoder {
    fn dim(&self) -> usize {
        self.bank.dim()
    }

    fn new_session(&self) -> Session {
        self.bank.new_session()
    }

    /// The bank decodes into a copy of the session, which replaces the session when a bank
    /// phrase is chosen; a generated answer is recorded as an input-only entry. When the bank
    /// has no phrase above its threshold in strict mode ([`Error::BelowThreshold`]), the
    /// generator answers.
    fn decode_in_session(&self, input: &[f32], session: &mut Session) -> Result<Decoded> {
        let query = UnitEmbedding::new(input, self.dim())?;
        Ok(self.decide(&query, session)?.0)
    }
}

/// What the hybrid saw on the way to its answer: the bank's candidates and the generator's
/// text (when it ran), so that verification pools them without decoding again.
pub(crate) struct Seen {
    /// The bank's candidates when the answer does not carry them (a generated answer);
    /// `None`: they are the answer's own `candidates`.
    pub(crate) candidates: Option<Vec<crate::decoder::Candidate>>,
    /// The generator's text when the answer is not it; `None` when the answer is the
    /// generated text (source `Generative`) or the bank's fast path skipped the generator.
    pub(crate) generated: Option<String>,
}

impl Seen {
    /// A bank answer (carrying its candidates) beside the generator's `text`.
    fn generated(text: String) -> Self {
        Seen {
            candidates: None,
            generated: Some(text),
        }
    }
}

impl HybridDecoder {
    /// The answer for one unit-norm input, recorded in `session`, and what was seen on the
    /// way (see [`HybridDecoder::decode_in_session`]).
    pub(crate) fn decide(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Seen)> {
        let mut scratch = session.clone();
        let both = match self.both(query, &mut scratch, true) {
            Err(Error::BelowThreshold { .. }) => {
                let seen = Seen {
                    candidates: Some(Vec::new()),
                    generated: None,
                };
                return Ok((self.generator.decode_unit(query, session)?, seen));
            }
            other => other?,
        };
        let (Some(generated), Some(signals)) = (both.generated, both.signals) else {
            *session = scratch;
            let seen = Seen {
                candidates: None,
                generated: None,
            };
            return Ok((both.bank, seen));
        };
        let ranked = both.alternatives.iter().map(|a| (a, a.rank));
        let (decoded, seen) = match choose(&self.rule, &signals, ranked) {
            Choice::Generator => {
                session.record(SessionEntry {
                    input: query.as_slice().to_vec(),
                    output: None,
                    phrase_ids: Vec::new(),
                });
                let seen = Seen {
                    candidates: Some(both.bank.candidates),
                    generated: None,
                };
                (generated, seen)
            }
            Choice::Alternative(rank) => {
                let candidate = &both.bank.candidates[rank];
                let id = candidate.phrase_id.ok_or_else(|| {
                    Error::Internal("a re-ranked candidate has no phrase id".into())
                })?;
                scratch.replace_last(SessionEntry {
                    input: query.as_slice().to_vec(),
                    output: Some(self.bank.output_embedding(&[id])?),
                    phrase_ids: vec![id],
                });
                *session = scratch;
                let decoded = Decoded {
                    text: self.bank.render(&[id]),
                    confidence: checked_confidence(candidate.similarity.clamp(0.0, 1.0))?,
                    low_confidence: both.bank.low_confidence,
                    source: Source::PhraseBank {
                        phrase_ids: vec![id],
                    },
                    candidates: both.bank.candidates,
                    roundtrip_cosine: None,
                };
                (decoded, Seen::generated(generated.text))
            }
            Choice::Bank => {
                *session = scratch;
                (both.bank, Seen::generated(generated.text))
            }
        };
        Ok((decoded, seen))
    }
}
