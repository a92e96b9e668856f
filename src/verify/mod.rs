//! Verified decoding: the encoder in the loop. A [`VerifiedDecoder`] asks its decoder for its
//! answer and the other texts it would stand behind ([`Proposer`]: the bank's nearest
//! phrases, the generator's text), re-embeds them all with an [`Encoder`] and returns the one
//! whose embedding is closest to the input. That cosine is the result's
//! [`Decoded::roundtrip_cosine`] and its confidence. With [`RefineSettings`] the chosen text
//! is then improved by a word-level search with the encoder as judge.

mod proposer;
mod refine;
mod settings;
mod verifier;

pub use proposer::Proposer;
pub use settings::{RefineSettings, VerifySettings, FUNCTION_WORDS};
pub use verifier::Verifier;

use std::collections::HashMap;
use std::sync::Arc;

use ndarray::ArrayView2;

use crate::decoder::{check_batch, session_ranges, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::evidence::Evidence;
use crate::language_model::NgramModel;
use crate::session::Session;

/// A text of an input's verification pool, and where it came from.
#[derive(Debug, Clone, PartialEq)]
struct Proposal {
    /// The text.
    text: String,
    /// What produced it.
    source: Source,
    /// The decoder's own estimate of the text's cosine to the input (a bank phrase's search
    /// score), if it has one.
    similarity: Option<f32>,
}

/// One input on its way through verification: the checked input, the decoder's answer, the
/// pool and the scores under the generator found so far.
struct Proposed {
    query: UnitEmbedding,
    decoded: Decoded,
    pool: Vec<Proposal>,
    scores: HashMap<String, f32>,
}

/// The pool entries that are re-embedded and compete, in pool order: every one without a
/// similarity estimate and the `top_k` best estimated ones.
fn contenders(pool: &[Proposal], top_k: usize) -> Vec<usize> {
    let mut estimated: Vec<(f32, usize)> = pool
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.similarity.map(|s| (s, i)))
        .collect();
    estimated.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let kept: std::collections::HashSet<usize> =
        estimated.iter().take(top_k).map(|&(_, i)| i).collect();
    (0..pool.len())
        .filter(|i| pool[*i].similarity.is_none() || kept.contains(i))
        .collect()
}

/// A decoder whose every answer is checked by re-embedding: among its answer and proposals,
/// the text whose embedding is closest to the input wins.
pub struct VerifiedDecoder<P: Proposer> {
    inner: P,
    verifier: Verifier,
    settings: VerifySettings,
    language_model: Option<Arc<NgramModel>>,
}

impl<P: Proposer> VerifiedDecoder<P> {
    /// Verifies `inner` with `encoder`; their dimensions must agree.
    pub fn new(inner: P, encoder: Arc<dyn Encoder>, settings: VerifySettings) -> Result<Self> {
        settings.validate()?;
        if encoder.dimension() != inner.dim() {
            return Err(Error::InvalidConfig(format!(
                "the encoder {} writes {}-d embeddings, the decoder takes {}-d",
                encoder.name(),
                encoder.dimension(),
                inner.dim()
            )));
        }
        Ok(VerifiedDecoder {
            verifier: Verifier::new(encoder, settings.cache_capacity),
            inner,
            settings,
            language_model: None,
        })
    }

    /// Gives refinement a model of English ([`NgramModel`]): edits must keep the text's
    /// fluency ([`RefineSettings::fluency_floor`]) and the search weighs it
    /// ([`RefineSettings::language_model_weight`]). Without one, refinement judges by the
    /// cosine (and the generator's prior) alone.
    pub fn with_language_model(mut self, model: Arc<NgramModel>) -> Self {
        self.language_model = Some(model);
        self
    }

    /// The model of English refinement uses, if any.
    pub fn language_model(&self) -> Option<&NgramModel> {
        self.language_model.as_deref()
    }

    /// The decoder being verified.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The verifier (encoder, cache, call count).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// One input checked, decoded with its evidence, and its pool made.
    fn propose(&self, embedding: &[f32], session: &mut Session) -> Result<Proposed> {
        let query = UnitEmbedding::new(embedding, self.dim())?;
        let (decoded, evidence) = self.inner.decode_with_evidence(&query, session)?;
        let pool = self.pool(&decoded, &evidence);
        Ok(Proposed {
            query,
            decoded,
            pool,
            scores: evidence.scores,
        })
    }

    /// The pool of one input, without repeated texts: the answer, the bank's best
    /// `pool_top_k` candidates, the generator's text.
    fn pool(&self, decoded: &Decoded, evidence: &Evidence) -> Vec<Proposal> {
        let candidates = evidence
            .candidates
            .iter()
            .take(self.settings.pool_top_k)
            .map(|c| Proposal {
                text: c.text.clone(),
                source: match c.phrase_id {
                    Some(id) => Source::PhraseBank {
                        phrase_ids: vec![id],
                    },
                    None => Source::Generative,
                },
                similarity: c.phrase_id.map(|_| c.similarity),
            });
        let generated = evidence.generated.iter().map(|text| Proposal {
            text: text.clone(),
            source: Source::Generative,
            similarity: None,
        });
        let mut pool = vec![Proposal {
            text: decoded.text.clone(),
            source: decoded.source.clone(),
            similarity: None,
        }];
        for p in candidates.chain(generated) {
            if !p.text.trim().is_empty() && !pool.iter().any(|q| q.text == p.text) {
                pool.push(p);
            }
        }
        pool
    }

    /// Chooses, for each input, the pooled text whose embedding is closest, then refines it
    /// when refinement is on.
    fn choose(&self, items: Vec<Proposed>) -> Result<Vec<Decoded>> {
        let contenders: Vec<Vec<usize>> = items
            .iter()
            .map(|p| contenders(&p.pool, self.settings.reembed_top_k))
            .collect();
        let texts: Vec<&str> = items
            .iter()
            .zip(&contenders)
            .flat_map(|(p, idx)| idx.iter().map(|&i| p.pool[i].text.as_str()))
            .collect();
        let embeddings = self.verifier.embed(&texts)?;
        let mut next = embeddings.into_iter();
        let mut chosen = Vec::with_capacity(items.len());
        for (proposed, idx) in items.into_iter().zip(contenders) {
            // the re-embedded contenders, closest first (ties: pool order); the first is the
            // choice, all of them are refinement's starts
            let mut ranked: Vec<(f32, usize, Arc<[f32]>)> = Vec::with_capacity(idx.len());
            for i in idx {
                let e = next
                    .next()
                    .ok_or_else(|| Error::Internal("fewer embeddings than texts".into()))?;
                ranked.push((crate::embedding::dot(proposed.query.as_slice(), &e), i, e));
            }
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if ranked.is_empty() {
                return Err(Error::Internal("an empty verification pool".into()));
            }
            chosen.push((proposed, ranked));
        }
        let refined: Option<Vec<(String, f32)>> = match &self.settings.refine {
            Some(settings) => {
                let mut states: Vec<refine::Refinement> = chosen
                    .iter_mut()
                    .map(|(p, ranked)| {
                        refine::Refinement::new(
                            p.query.clone(),
                            p.pool.iter().map(|q| q.text.clone()).collect(),
                            ranked
                                .iter()
                                .map(|(c, i, e)| (p.pool[*i].text.clone(), e.to_vec(), *c))
                                .collect(),
                            std::mem::take(&mut p.scores),
                        )
                    })
                    .collect();
                refine::refine(
                    &mut states,
                    &self.verifier,
                    &refine::Judges {
                        language_model: self.language_model.as_deref(),
                        generator: self.inner.fluency_model(),
                    },
                    settings,
                )?;
                Some(states.iter().map(refine::Refinement::result).collect())
            }
            None => None,
        };
        let mut out = Vec::with_capacity(chosen.len());
        for (k, (Proposed { decoded, pool, .. }, ranked)) in chosen.into_iter().enumerate() {
            let (cosine, i) = (ranked[0].0, ranked[0].1);
            let picked = &pool[i];
            let (text, cosine, source) = match refined.as_ref().map(|r| &r[k]) {
                Some((text, c)) if *text != picked.text => (text.clone(), *c, Source::Refined),
                _ => (picked.text.clone(), cosine, picked.source.clone()),
            };
            let kept_answer = text == decoded.text;
            out.push(Decoded {
                text,
                confidence: crate::decoder::checked_confidence(cosine.clamp(0.0, 1.0))?,
                low_confidence: kept_answer && decoded.low_confidence,
                source,
                candidates: decoded.candidates,
                roundtrip_cosine: Some(cosine),
            });
        }
        Ok(out)
    }
}

impl<P: Proposer> Decoder for VerifiedDecoder<P> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn new_session(&self) -> Session {
        self.inner.new_session()
    }

    /// The session records the decoder's own answer (verification chooses after it).
    fn decode_in_session(&self, embedding: &[f32], session: &mut Session) -> Result<Decoded> {
        let proposed = self.propose(embedding, session)?;
        let mut out = self.choose(vec![proposed])?;
        out.pop()
            .ok_or_else(|| Error::Internal("no verified result".into()))
    }

    /// Proposes for every row (sessions in parallel), then re-embeds all pools in one
    /// encoder batch.
    fn batch_decode_with_sessions(
        &self,
        embeddings: ArrayView2<f32>,
        boundaries: &[usize],
    ) -> Result<Vec<Decoded>> {
        check_batch(&embeddings, self.dim())?;
        let ranges = session_ranges(embeddings.nrows(), boundaries)?;
        let proposed = crate::decoder::decode_sessions(
            ranges,
            || self.inner.new_session(),
            |row, session| {
                let values = embeddings.row(row).to_vec();
                self.propose(&values, session)
            },
        )?;
        self.choose(proposed)
    }
}

/// Sets the round-trip cosine of every answer in `decoded` that has none (a decoder that is
/// not verified): its text re-embedded by `encoder` (in one batch), against its input row,
/// which is normalised first. What `lwdec decode --text` and Python's `decode_text` report.
pub fn fill_roundtrip_cosines(
    encoder: &dyn Encoder,
    inputs: ArrayView2<f32>,
    decoded: &mut [Decoded],
) -> Result<()> {
    if inputs.nrows() != decoded.len() {
        return Err(Error::InvalidArgument(format!(
            "{} inputs for {} answers",
            inputs.nrows(),
            decoded.len()
        )));
    }
    let missing: Vec<usize> = (0..decoded.len())
        .filter(|&i| decoded[i].roundtrip_cosine.is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = missing.iter().map(|&i| decoded[i].text.clone()).collect();
    let rows = inputs.select(ndarray::Axis(0), &missing);
    let cosines = crate::roundtrip::roundtrip_cosines(encoder, rows.view(), &texts)?;
    for (&i, cosine) in missing.iter().zip(cosines) {
        decoded[i].roundtrip_cosine = Some(cosine);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(text: &str, similarity: Option<f32>) -> Proposal {
        Proposal {
            text: text.into(),
            source: Source::Generative,
            similarity,
        }
    }

    #[test]
    fn contenders_are_the_unscored_and_the_best_scored_in_pool_order() {
        let pool = [
            proposal("answer", None),
            proposal("b0", Some(0.5)),
            proposal("b1", Some(0.7)),
            proposal("b2", Some(0.6)),
            proposal("b3", Some(0.7)),
            proposal("generated", None),
        ];
        assert_eq!(contenders(&pool, 2), vec![0, 2, 4, 5]);
        assert_eq!(contenders(&pool, 3), vec![0, 2, 3, 4, 5]);
        assert_eq!(contenders(&pool, 100), (0..6).collect::<Vec<_>>());
    }
}
