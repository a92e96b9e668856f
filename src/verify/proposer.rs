//! [`Proposer`]: what each decoder hands verification besides its answer.

use crate::decoder::{Candidate, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::error::Result;
use crate::generative::{GenerativeDecoder, InferenceModel};
use crate::hybrid::HybridDecoder;
use crate::phrase_bank::PhraseBankDecoder;
use crate::session::Session;

/// A text a decoder would also stand behind for an input, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The text.
    pub text: String,
    /// What produced it.
    pub source: Source,
    /// The decoder's own estimate of the text's cosine to the input (a bank phrase's search
    /// score), if it has one.
    pub similarity: Option<f32>,
}

/// A decoder that can name, besides its answer, the other texts it would stand behind.
pub trait Proposer: Decoder {
    /// The decoder's answer for `embedding` (recorded in `session` as usual) and up to
    /// `top_k` alternatives, best first by the decoder's own judgement.
    fn propose(
        &self,
        embedding: &[f32],
        session: &mut Session,
        top_k: usize,
    ) -> Result<(Decoded, Vec<Proposal>)>;

    /// The model whose likelihood of a text given the input is refinement's optional second
    /// fluency prior (`RefineSettings::fluency_weight`)
    /// (the generator), if the decoder has one.
    fn fluency_model(&self) -> Option<&InferenceModel> {
        None
    }
}

/// A candidate as a proposal.
fn candidate_proposal(c: &Candidate) -> Proposal {
    Proposal {
        text: c.text.clone(),
        source: match c.phrase_id {
            Some(id) => Source::PhraseBank {
                phrase_ids: vec![id],
            },
            None => Source::Generative,
        },
        similarity: c.phrase_id.map(|_| c.similarity),
    }
}

/// The first `top_k` of `candidates` as proposals.
fn candidate_proposals(candidates: &[Candidate], top_k: usize) -> Vec<Proposal> {
    candidates
        .iter()
        .take(top_k)
        .map(candidate_proposal)
        .collect()
}

impl Proposer for PhraseBankDecoder {
    fn propose(
        &self,
        embedding: &[f32],
        session: &mut Session,
        top_k: usize,
    ) -> Result<(Decoded, Vec<Proposal>)> {
        let decoded = self.decode_in_session(embedding, session)?;
        let proposals = candidate_proposals(&decoded.candidates, top_k);
        Ok((decoded, proposals))
    }
}

impl Proposer for GenerativeDecoder {
    fn propose(
        &self,
        embedding: &[f32],
        session: &mut Session,
        _top_k: usize,
    ) -> Result<(Decoded, Vec<Proposal>)> {
        Ok((self.decode_in_session(embedding, session)?, Vec::new()))
    }

    fn fluency_model(&self) -> Option<&InferenceModel> {
        Some(self.model())
    }
}

impl Proposer for HybridDecoder {
    /// The hybrid's answer, the bank's candidates and the guided generator's text, as the
    /// hybrid saw them (the generator runs only when the bank's fast path skipped it).
    fn propose(
        &self,
        embedding: &[f32],
        session: &mut Session,
        top_k: usize,
    ) -> Result<(Decoded, Vec<Proposal>)> {
        let query = UnitEmbedding::new(embedding, self.dim())?;
        let (decoded, seen) = self.decide(&query, session)?;
        let candidates = seen.candidates.as_deref().unwrap_or(&decoded.candidates);
        let mut proposals = candidate_proposals(candidates, top_k);
        let generated = match seen.generated {
            Some(text) => text,
            None if decoded.source == Source::Generative => decoded.text.clone(),
            None => {
                self.generator()
                    .decode_unit_with_found(&query, &self.bank().shared_bank(), candidates)?
                    .text
            }
        };
        proposals.push(Proposal {
            text: generated,
            source: Source::Generative,
            similarity: None,
        });
        Ok((decoded, proposals))
    }

    fn fluency_model(&self) -> Option<&InferenceModel> {
        Some(self.generator().model())
    }
}
