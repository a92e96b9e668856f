//! [`HybridDecoder`]: per input, the bank's phrase or the generator's text, whichever the
//! calibrated rule expects to be better.

use super::rule::{choose, Alternative, Choice, HybridConfig, HybridSignals};
use crate::decoder::{checked_confidence, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::error::{Error, Result};
use crate::evidence::Evidence;
use crate::generative::GenerativeDecoder;
use crate::phrase_bank::{BankOutcome, PhraseBankDecoder};
use crate::session::{Session, SessionEntry};
use crate::text::token_f1;

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

    /// The generator's text for one input whose bank answer is `bank` (its candidates in
    /// `evidence`), and the signals the rule reads, every score kept in
    /// `evidence`. Decoding (`fast_path`) scores only the candidates the rule can pick (the
    /// re-ranking on and within `rerank_max_gap` of the best); calibration scores them all.
    fn compare(
        &self,
        query: &UnitEmbedding,
        bank: &Decoded,
        evidence: &mut Evidence,
        fast_path: bool,
    ) -> Result<(Decoded, HybridSignals, Vec<Alternative>)> {
        let generated = self.generate(query, evidence)?;
        let s1 = bank.candidates.first().map_or(-1.0, |c| c.similarity);
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
                    // decoding scores only what the rule may pick (`rule::rerank`)
                    let skipped = match fast_path {
                        true => !self.rule.may_pick(rank, s1, c.similarity),
                        false => rank >= self.rule.rerank_top_k,
                    };
                    if skipped || c.phrase_id == Some(chosen) {
                        continue;
                    }
                    alternatives.push(Alternative {
                        rank,
                        similarity: c.similarity,
                        log_prob: self.score(query, &c.text, evidence)?,
                        overlap: token_f1(&c.text, &generated.text) as f32,
                    });
                }
            }
        }
        let signals = HybridSignals {
            bank_similarity: s1,
            bank_margin: s1 - bank.candidates.get(1).map_or(-1.0, |c| c.similarity),
            bank_log_prob: self.score(query, bank_text, evidence)?,
            generator_log_prob: self.score(query, &generated.text, evidence)?,
            bank_overlap: token_f1(bank_text, &generated.text) as f32,
        };
        Ok((generated, signals, alternatives))
    }

    /// The generator's text for `query`, guided by the bank's candidates in `evidence` (no
    /// second search), recorded there.
    fn generate(&self, query: &UnitEmbedding, evidence: &mut Evidence) -> Result<Decoded> {
        let generated = self.generator.decode_unit_with_found(
            query,
            &self.bank.shared_bank(),
            &evidence.candidates,
        )?;
        evidence.generated = Some(generated.text.clone());
        Ok(generated)
    }

    /// `text`'s score under the generator for this input ([`Evidence::scores`]): computed
    /// once, then read from the evidence.
    fn score(&self, query: &UnitEmbedding, text: &str, evidence: &mut Evidence) -> Result<f32> {
        if let Some(score) = evidence.score(text) {
            return Ok(score);
        }
        let score = self.generator.model().score(query, text)?;
        evidence.scores.insert(text.to_string(), score);
        Ok(score)
    }

    /// Both outputs and the signals for one input, without the fast path (for calibration).
    pub fn both_outputs(&self, input: &[f32]) -> Result<BothOutputs> {
        let query = UnitEmbedding::new(input, self.dim())?;
        let bank = self
            .bank
            .examine(&query, &mut self.bank.new_session())?
            .into_result()?;
        let mut evidence = Evidence::searched(bank.candidates.clone());
        let (generated, signals, alternatives) =
            self.compare(&query, &bank, &mut evidence, false)?;
        Ok(BothOutputs {
            bank,
            generated: Some(generated),
            signals: Some(signals),
            alternatives,
        })
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

impl HybridDecoder {
    /// The answer for one unit-norm input, recorded in `session`, and the evidence found on
    /// the way (see [`HybridDecoder::decode_in_session`]).
    pub(crate) fn decide(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)> {
        let mut scratch = session.clone();
        let outcome = self.bank.examine(query, &mut scratch)?;
        let mut evidence = Evidence::searched(outcome.candidates().to_vec());
        let bank = match outcome {
            BankOutcome::Answer(decoded) => decoded,
            BankOutcome::BelowThreshold { .. } => {
                // strict mode and no bank phrase above the threshold: the generator answers,
                // guided by the candidates found (no second search)
                let generated = self.generate(query, &mut evidence)?;
                record_generated(session, query);
                return Ok((generated, evidence));
            }
        };
        let s1 = bank.candidates.first().map_or(-1.0, |c| c.similarity);
        if s1 >= self.rule.bank_similarity {
            *session = scratch;
            return Ok((bank, evidence));
        }
        let (generated, signals, alternatives) = self.compare(query, &bank, &mut evidence, true)?;
        let ranked = alternatives.iter().map(|a| (a, a.rank));
        let decoded = match choose(&self.rule, &signals, ranked) {
            Choice::Generator => {
                record_generated(session, query);
                generated
            }
            Choice::Alternative(rank) => {
                let candidate = &bank.candidates[rank];
                let id = candidate.phrase_id.ok_or_else(|| {
                    Error::Internal("a re-ranked candidate has no phrase id".into())
                })?;
                scratch.replace_last(SessionEntry {
                    input: query.as_slice().to_vec(),
                    output: Some(self.bank.output_embedding(&[id])?),
                    phrase_ids: vec![id],
                });
                *session = scratch;
                Decoded {
                    text: self.bank.render(&[id]),
                    confidence: checked_confidence(candidate.similarity.clamp(0.0, 1.0))?,
                    low_confidence: bank.low_confidence,
                    source: Source::PhraseBank {
                        phrase_ids: vec![id],
                    },
                    candidates: bank.candidates,
                    roundtrip_cosine: None,
                }
            }
            Choice::Bank => {
                *session = scratch;
                bank
            }
        };
        Ok((decoded, evidence))
    }

    /// [`HybridDecoder::decide`], with the generator's text in the evidence even when the
    /// bank's fast path skipped it (verification pools it).
    pub(crate) fn decide_with_generated(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)> {
        let (decoded, mut evidence) = self.decide(query, session)?;
        if evidence.generated.is_none() {
            self.generate(query, &mut evidence)?;
        }
        Ok((decoded, evidence))
    }
}

/// Records a generated answer in `session`: the input, without an output embedding.
fn record_generated(session: &mut Session, query: &UnitEmbedding) {
    session.record(SessionEntry {
        input: query.as_slice().to_vec(),
        output: None,
        phrase_ids: Vec::new(),
    });
}
