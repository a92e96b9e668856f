//! Verified decoding: the encoder in the loop. A [`VerifiedDecoder`] asks its decoder for its
//! answer and the other texts it would stand behind ([`Proposer`]: the bank's nearest
//! phrases, the generator's text), re-embeds them all with an [`Encoder`] and returns the one
//! whose embedding is closest to the input. That cosine is the result's
//! [`Decoded::roundtrip_cosine`] and its confidence. With [`RefineSettings`] the chosen text
//! is then improved by a word-level search with the encoder as judge.

mod refine;

pub use refine::{RefineSettings, FUNCTION_WORDS};

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use ndarray::ArrayView2;

use crate::decoder::{check_batch, session_ranges, Candidate, Decoded, Decoder, Source};
use crate::embedding::UnitEmbedding;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::generative::{GenerativeDecoder, InferenceModel};
use crate::hybrid::HybridDecoder;
use crate::language_model::NgramModel;
use crate::phrase_bank::PhraseBankDecoder;
use crate::session::Session;

/// Settings of a [`VerifiedDecoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    /// The decoder's top candidates pooled besides its answer (at most its `top_k`).
    pub pool_top_k: usize,
    /// Of the pooled proposals that carry the decoder's own similarity estimate (the bank's
    /// search score), only the best this many are re-embedded and compete; the others stay
    /// in the pool as refinement's material. The answer and proposals without an estimate
    /// (generated text) are always re-embedded.
    pub reembed_top_k: usize,
    /// Texts whose embeddings are remembered between calls (0 turns the cache off).
    pub cache_capacity: usize,
    /// Refine the chosen text by search ([`RefineSettings`]); `None` keeps the choice.
    pub refine: Option<RefineSettings>,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            pool_top_k: 10,
            reembed_top_k: 4,
            cache_capacity: 65_536,
            refine: None,
        }
    }
}

impl VerifySettings {
    /// Largest `cache_capacity` (the cache holds a 768-d vector per entry: 3 KB).
    pub const MAX_CACHE_CAPACITY: usize = 1 << 20;

    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        crate::error::check(
            (1..=1000).contains(&self.pool_top_k),
            "verify.pool_top_k must be in 1..=1000",
        )?;
        crate::error::check(
            (1..=1000).contains(&self.reembed_top_k),
            "verify.reembed_top_k must be in 1..=1000",
        )?;
        crate::error::check(
            self.cache_capacity <= Self::MAX_CACHE_CAPACITY,
            "verify.cache_capacity must be at most 1048576",
        )?;
        match &self.refine {
            Some(r) => r.validate(),
            None => Ok(()),
        }
    }
}

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

/// Re-embeds texts with an [`Encoder`], remembering what it has embedded.
pub struct Verifier {
    encoder: Arc<dyn Encoder>,
    cache: Option<Mutex<LruCache<String, Arc<[f32]>>>>,
    calls: AtomicU64,
}

impl Verifier {
    /// A verifier over `encoder` remembering up to `cache_capacity` texts.
    pub fn new(encoder: Arc<dyn Encoder>, cache_capacity: usize) -> Self {
        Verifier {
            encoder,
            cache: NonZeroUsize::new(cache_capacity).map(|c| Mutex::new(LruCache::new(c))),
            calls: AtomicU64::new(0),
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &Arc<dyn Encoder> {
        &self.encoder
    }

    /// Texts the encoder has embedded so far (cache hits are free).
    pub fn encoder_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The unit-norm embeddings of `texts`, in order: remembered ones from the cache, the
    /// others in one encoder batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Arc<[f32]>>> {
        let mut found: Vec<Option<Arc<[f32]>>> = match &self.cache {
            Some(cache) => {
                let mut cache = lock(cache)?;
                texts.iter().map(|t| cache.get(*t).cloned()).collect()
            }
            None => vec![None; texts.len()],
        };
        // texts to embed, first appearance first, each once
        let mut missing: Vec<&str> = Vec::new();
        let mut slot: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (t, f) in texts.iter().zip(&found) {
            if f.is_none() {
                slot.entry(t).or_insert_with(|| {
                    missing.push(t);
                    missing.len() - 1
                });
            }
        }
        if !missing.is_empty() {
            let rows = self.encoder.embed(&missing)?;
            self.calls
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let fresh: Vec<Arc<[f32]>> =
                rows.rows().into_iter().map(|r| r.to_vec().into()).collect();
            if let Some(cache) = &self.cache {
                let mut cache = lock(cache)?;
                for (t, e) in missing.iter().zip(&fresh) {
                    cache.put((*t).to_string(), e.clone());
                }
            }
            for (t, f) in texts.iter().zip(found.iter_mut()) {
                if f.is_none() {
                    *f = slot.get(t).map(|&i| fresh[i].clone());
                }
            }
        }
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| Error::Internal("a text was not embedded".into())))
            .collect()
    }
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

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| Error::Internal("the verifier's cache lock is poisoned".into()))
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

    /// The input as a unit vector, the decoder's answer and the pool of one input.
    fn propose_pool(
        &self,
        embedding: &[f32],
        session: &mut Session,
    ) -> Result<(UnitEmbedding, Decoded, Vec<Proposal>)> {
        let query = UnitEmbedding::new(embedding, self.dim())?;
        let (decoded, proposals) =
            self.inner
                .propose(embedding, session, self.settings.pool_top_k)?;
        let pool = self.pool(&decoded, proposals);
        Ok((query, decoded, pool))
    }

    /// The pool of one input, answer first, without repeated texts.
    fn pool(&self, decoded: &Decoded, proposals: Vec<Proposal>) -> Vec<Proposal> {
        let mut pool = vec![Proposal {
            text: decoded.text.clone(),
            source: decoded.source.clone(),
            similarity: None,
        }];
        for p in proposals {
            if !p.text.trim().is_empty() && !pool.iter().any(|q| q.text == p.text) {
                pool.push(p);
            }
        }
        pool
    }

    /// Chooses, for each input, the pooled text whose embedding is closest, then refines it
    /// when refinement is on.
    fn choose(&self, items: Vec<(UnitEmbedding, Decoded, Vec<Proposal>)>) -> Result<Vec<Decoded>> {
        let contenders: Vec<Vec<usize>> = items
            .iter()
            .map(|(_, _, pool)| contenders(pool, self.settings.reembed_top_k))
            .collect();
        let texts: Vec<&str> = items
            .iter()
            .zip(&contenders)
            .flat_map(|((_, _, pool), idx)| idx.iter().map(|&i| pool[i].text.as_str()))
            .collect();
        let embeddings = self.verifier.embed(&texts)?;
        let mut next = embeddings.into_iter();
        let mut chosen = Vec::with_capacity(items.len());
        for ((query, decoded, pool), idx) in items.into_iter().zip(contenders) {
            // the re-embedded contenders, closest first (ties: pool order); the first is the
            // choice, all of them are refinement's starts
            let mut ranked: Vec<(f32, usize, Arc<[f32]>)> = Vec::with_capacity(idx.len());
            for i in idx {
                let e = next
                    .next()
                    .ok_or_else(|| Error::Internal("fewer embeddings than texts".into()))?;
                ranked.push((crate::embedding::dot(query.as_slice(), &e), i, e));
            }
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if ranked.is_empty() {
                return Err(Error::Internal("an empty verification pool".into()));
            }
            chosen.push((query, decoded, pool, ranked));
        }
        let refined: Option<Vec<(String, f32)>> = match &self.settings.refine {
            Some(settings) => {
                let mut states: Vec<refine::Refinement> = chosen
                    .iter()
                    .map(|(query, _, pool, ranked)| {
                        refine::Refinement::new(
                            query.clone(),
                            pool.iter().map(|p| p.text.clone()).collect(),
                            ranked
                                .iter()
                                .map(|(c, i, e)| (pool[*i].text.clone(), e.to_vec(), *c))
                                .collect(),
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
        for (k, (_, decoded, pool, ranked)) in chosen.into_iter().enumerate() {
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
        let proposed = self.propose_pool(embedding, session)?;
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
                self.propose_pool(&values, session)
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
    let texts: Vec<&str> = missing.iter().map(|&i| decoded[i].text.as_str()).collect();
    let again = encoder.embed(&texts)?;
    if again.dim() != (texts.len(), inputs.ncols()) {
        return Err(Error::InvalidArgument(format!(
            "the encoder returned {} x {} for {} texts of inputs with {} columns",
            again.nrows(),
            again.ncols(),
            texts.len(),
            inputs.ncols()
        )));
    }
    for (row, &i) in missing.iter().enumerate() {
        let input = UnitEmbedding::new(&inputs.row(i).to_vec(), inputs.ncols())?;
        let output: Vec<f32> = again.row(row).to_vec();
        decoded[i].roundtrip_cosine = Some(crate::embedding::dot(input.as_slice(), &output));
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
