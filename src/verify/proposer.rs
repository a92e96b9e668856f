//! [`Proposer`]: a decoder that hands on, beside its answer, the [`Evidence`] it found (the
//! texts verification pools, the scores refinement reuses).

use crate::decoder::{Decoded, Decoder};
use crate::embedding::UnitEmbedding;
use crate::error::Result;
use crate::evidence::Evidence;
use crate::generative::{GenerativeDecoder, InferenceModel};
use crate::hybrid::HybridDecoder;
use crate::phrase_bank::PhraseBankDecoder;
use crate::session::Session;

/// A decoder that can hand on, besides its answer, what it found on the way.
pub trait Proposer: Decoder {
    /// The decoder's answer for a checked input (recorded in `session` as usual) and the
    /// evidence found on the way: the bank's candidates, the generator's text, the scores.
    fn decode_with_evidence(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)>;

    /// The model whose likelihood of a text given the input is refinement's optional second
    /// fluency prior (`RefineSettings::fluency_weight`) (the generator), if the decoder has
    /// one.
    fn fluency_model(&self) -> Option<&InferenceModel> {
        None
    }
}

impl Proposer for PhraseBankDecoder {
    /// The answer and the bank's candidates.
    fn decode_with_evidence(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)> {
        let decoded = self.examine(query, session)?.into_result()?;
        let evidence = Evidence::searched(decoded.candidates.clone());
        Ok((decoded, evidence))
    }
}

impl Proposer for GenerativeDecoder {
    /// The generated answer.
    fn decode_with_evidence(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)> {
        let decoded = self.decode_unit(query, session)?;
        let evidence = Evidence {
            generated: Some(decoded.text.clone()),
            ..Evidence::default()
        };
        Ok((decoded, evidence))
    }

    fn fluency_model(&self) -> Option<&InferenceModel> {
        Some(self.model())
    }
}

impl Proposer for HybridDecoder {
    /// The hybrid's answer with the bank's candidates, the guided generator's text (run now
    /// when the bank's fast path skipped it) and the scores the rule computed.
    fn decode_with_evidence(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<(Decoded, Evidence)> {
        self.decide_with_generated(query, session)
    }

    fn fluency_model(&self) -> Option<&InferenceModel> {
        Some(self.generator().model())
    }
}
