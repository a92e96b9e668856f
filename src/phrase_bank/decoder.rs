//! [`PhraseBankDecoder`]: decodes embeddings into phrases of a [`PhraseBank`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::ArrayView2;

use super::assembly::{
    Assembler, AssemblyInput, AssemblyMethod, Beam, ContextAware, Greedy, Weighted,
};
use super::bank::{Hit, PhraseBank};
use super::cache::PatternCache;
use super::postprocess::Pipeline;
use super::settings::{PhraseBankSettings, ThresholdMode};
use crate::decoder::{
    check_batch, checked_confidence, decode_sessions_with, session_ranges, Candidate, Decoded,
    Decoder, Source,
};
use crate::embedding::{self, UnitEmbedding};
use crate::error::{Error, Result};
use crate::monitoring::{Health, Monitor, Statistics};
use crate::session::{Session, SessionEntry};

/// The bank decoder's result for one input: its answer, or none when the best match is below
/// the threshold in strict mode; its candidates either way.
pub(crate) enum BankOutcome {
    /// The answer, carrying its candidates.
    Answer(Decoded),
    /// Strict mode, best match below the threshold: no answer.
    BelowThreshold {
        /// The best similarity.
        best: f32,
        /// The threshold.
        threshold: f32,
        /// The candidates found.
        candidates: Vec<Candidate>,
    },
}

impl BankOutcome {
    /// The candidates the search found.
    pub(crate) fn candidates(&self) -> &[Candidate] {
        match self {
            BankOutcome::Answer(d) => &d.candidates,
            BankOutcome::BelowThreshold { candidates, .. } => candidates,
        }
    }

    /// The answer, or [`Error::BelowThreshold`].
    pub(crate) fn into_result(self) -> Result<Decoded> {
        match self {
            BankOutcome::Answer(d) => Ok(d),
            BankOutcome::BelowThreshold {
                best, threshold, ..
            } => Err(Error::BelowThreshold { best, threshold }),
        }
    }
}

/// Decodes embeddings by similarity search over a phrase bank, assembling one or more phrases.
///
/// Thread-safe: decode from many threads through `&self`; the bank is searched concurrently, the
/// cache and statistics are shared.
pub struct PhraseBankDecoder {
    bank: Arc<PhraseBank>,
    config: PhraseBankSettings,
    assembler: Arc<dyn Assembler>,
    postprocess: Pipeline,
    cache: PatternCache,
    monitor: Monitor,
}

impl PhraseBankDecoder {
    /// A decoder over `bank` with validated settings (a [`PhraseBankSettings`], or a
    /// [`DecoderConfig`](crate::DecoderConfig), whose bank part it takes).
    pub fn new(mut bank: PhraseBank, config: impl Into<PhraseBankSettings>) -> Result<Self> {
        let config: PhraseBankSettings = config.into();
        config.validate()?;
        if bank.is_empty() {
            return Err(Error::EmptyBank(
                "the bank given to the decoder holds no phrase".into(),
            ));
        }
        if let Some(nprobe) = config.nprobe {
            bank.set_nprobe(nprobe);
        }
        Ok(PhraseBankDecoder {
            bank: Arc::new(bank),
            assembler: assembler_for(&config),
            postprocess: Pipeline::new(&config.postprocess),
            cache: PatternCache::new(config.cache.capacity, config.cache.quantization_step),
            monitor: Monitor::default(),
            config,
        })
    }

    /// This decoder with `assembler` choosing the phrases in place of the configured
    /// [`AssemblyMethod`] (an [`Assembler`] of your own; the pattern cache holds search
    /// results, which it does not change).
    pub fn with_assembler(mut self, assembler: Arc<dyn Assembler>) -> Self {
        self.assembler = assembler;
        self
    }

    /// This decoder with `stage` added after the configured post-processing stages (a
    /// [`PostProcessor`](super::postprocess::PostProcessor) of your own).
    pub fn with_postprocessor(mut self, stage: Arc<dyn super::postprocess::PostProcessor>) -> Self {
        self.postprocess.push(stage);
        self
    }

    /// A decoder over the bundled default bank ([`PhraseBank::load_default`]).
    pub fn with_default_bank(config: impl Into<PhraseBankSettings>) -> Result<Self> {
        Self::new(PhraseBank::load_default()?, config)
    }

    /// Replaces the bank; the pattern cache is cleared since its results no longer apply.
    pub fn set_bank(&mut self, mut bank: PhraseBank) -> Result<()> {
        if bank.is_empty() {
            return Err(Error::EmptyBank(
                "the bank given to the decoder holds no phrase".into(),
            ));
        }
        if let Some(nprobe) = self.config.nprobe {
            bank.set_nprobe(nprobe);
        }
        self.bank = Arc::new(bank);
        self.cache.clear();
        Ok(())
    }

    /// The bank searched by this decoder.
    pub fn bank(&self) -> &PhraseBank {
        &self.bank
    }

    /// The bank as a shared handle, e.g. as a generator's guide bank
    /// ([`GenerativeDecoder::with_guide`](crate::GenerativeDecoder::with_guide)), so that both
    /// search one copy.
    pub fn shared_bank(&self) -> Arc<PhraseBank> {
        Arc::clone(&self.bank)
    }

    /// The decoder's settings.
    pub fn config(&self) -> &PhraseBankSettings {
        &self.config
    }

    /// The pattern cache.
    pub fn cache(&self) -> &PatternCache {
        &self.cache
    }

    /// Counters, cache hit rate and latency percentiles since the decoder was made.
    pub fn statistics(&self) -> Statistics {
        self.monitor
            .statistics(self.cache.hits(), self.cache.misses())
    }

    /// Healthy, degraded or unhealthy, with the reasons.
    pub fn health(&self) -> Health {
        let mut problems = Vec::new();
        if self.bank.is_empty() {
            problems.push("phrase bank is empty".to_string());
        }
        self.statistics().health(&self.config.health, problems)
    }

    /// Search results for a unit-norm query, from the cache when an equivalent input was seen.
    fn hits(&self, query: &UnitEmbedding) -> Result<Vec<Hit>> {
        if !self.cache.is_enabled() {
            return Ok(self
                .bank
                .search(query, self.config.top_k)?
                .pop()
                .unwrap_or_default());
        }
        let signature = self.cache.signature(query);
        if let Some(hits) = self.cache.get(&signature) {
            return Ok(hits);
        }
        let hits = self
            .bank
            .search(query, self.config.top_k)?
            .pop()
            .unwrap_or_default();
        self.cache.put(signature, hits.clone());
        Ok(hits)
    }

    /// Assembles, thresholds and post-processes one input (unit norm) whose hits are known,
    /// then records it in the session if `record` (not when the session is dropped right
    /// after).
    fn finish(
        &self,
        query: &[f32],
        hits: &[Hit],
        session: &mut Session,
        record: bool,
    ) -> Result<BankOutcome> {
        let threshold = self.config.similarity_threshold;
        let best = hits.first().map_or(-1.0, |h| h.similarity);
        let low_confidence = best < threshold;
        // the phrases first, then their copies: the phrases lie all over the bank's text, and
        // looked up together (independent reads) their cache misses overlap
        let texts: Vec<&str> = hits
            .iter()
            .map(|h| self.bank.phrase(h.id).unwrap_or_default())
            .collect();
        let candidates: Vec<Candidate> = hits
            .iter()
            .zip(texts)
            .map(|(h, text)| Candidate {
                text: text.to_string(),
                similarity: h.similarity,
                phrase_id: Some(h.id),
            })
            .collect();
        if low_confidence && self.config.threshold_mode == ThresholdMode::Strict {
            return Ok(BankOutcome::BelowThreshold {
                best,
                threshold,
                candidates,
            });
        }
        if hits.is_empty() {
            return Ok(BankOutcome::Answer(Decoded {
                text: String::new(),
                confidence: 0.0,
                low_confidence: true,
                source: Source::PhraseBank { phrase_ids: vec![] },
                candidates,
                roundtrip_cosine: None,
            }));
        }
        let assembly = self.assembler.assemble(&AssemblyInput {
            query,
            hits,
            session,
            bank: &self.bank,
        })?;
        let text = self.render(&assembly.phrase_ids);
        let mut confidence = assembly.similarity.clamp(0.0, 1.0) * assembly.support;
        if low_confidence {
            confidence *= 0.5;
        }
        if record {
            session.record(SessionEntry {
                input: query.to_vec(),
                output: Some(self.output_embedding(&assembly.phrase_ids)?),
                phrase_ids: assembly.phrase_ids.clone(),
            });
        }
        Ok(BankOutcome::Answer(Decoded {
            text,
            confidence: checked_confidence(confidence)?,
            low_confidence,
            source: Source::PhraseBank {
                phrase_ids: assembly.phrase_ids,
            },
            candidates,
            roundtrip_cosine: None,
        }))
    }

    /// The output text of these phrases, post-processed as in [`Decoder::decode`].
    pub(crate) fn render(&self, phrase_ids: &[usize]) -> String {
        let segments = phrase_ids
            .iter()
            .map(|&id| self.bank.phrase(id).unwrap_or_default().to_string())
            .collect();
        self.postprocess.run(segments)
    }

    /// The normalised sum of the stored embeddings of the output phrases.
    pub(crate) fn output_embedding(&self, phrase_ids: &[usize]) -> Result<Vec<f32>> {
        let mut sum = vec![0f32; self.dim()];
        for &id in phrase_ids {
            for (s, v) in sum.iter_mut().zip(self.bank.embedding(id)?) {
                *s += v;
            }
        }
        embedding::normalize_in_place(&mut sum);
        Ok(sum)
    }

    /// Decodes an input already checked and normalised, recording it in `session` (and in the
    /// statistics: below the threshold in strict mode counts as an error).
    pub(crate) fn examine(
        &self,
        query: &UnitEmbedding,
        session: &mut Session,
    ) -> Result<BankOutcome> {
        let started = Instant::now();
        let result = self
            .hits(query)
            .and_then(|hits| self.finish(query, &hits, session, true));
        self.record(&result, started.elapsed());
        result
    }

    fn record(&self, result: &Result<BankOutcome>, latency: Duration) {
        match result {
            Ok(BankOutcome::Answer(d)) => {
                self.monitor
                    .record_success(latency, d.confidence, d.low_confidence)
            }
            _ => self.monitor.record_error(latency),
        }
    }
}

impl Decoder for PhraseBankDecoder {
    fn dim(&self) -> usize {
        self.bank.dim()
    }

    fn new_session(&self) -> Session {
        Session::new(self.config.context.window)
    }

    fn decode_in_session(&self, embedding: &[f32], session: &mut Session) -> Result<Decoded> {
        self.decode_one(embedding, session, true)
    }

    /// As [`Decoder::decode`]: a fresh session, which is dropped after, so nothing is recorded
    /// in it.
    fn decode(&self, embedding: &[f32]) -> Result<Decoded> {
        self.decode_one(embedding, &mut self.new_session(), false)
    }

    /// Searches all cache misses of the batch in one FAISS call (parallelised by FAISS), then
    /// assembles the sessions in parallel on the same OpenMP threads.
    fn batch_decode_with_sessions(
        &self,
        embeddings: ArrayView2<f32>,
        boundaries: &[usize],
    ) -> Result<Vec<Decoded>> {
        let started = Instant::now();
        let result = self.batch_decode_inner(embeddings, boundaries);
        let rows = embeddings.nrows().max(1);
        let per_row = started.elapsed() / rows as u32;
        match &result {
            Ok(decoded) => self.monitor.record_successes(
                per_row,
                decoded.iter().map(|d| (d.confidence, d.low_confidence)),
            ),
            Err(_) => self.monitor.record_error(per_row),
        }
        result
    }
}

impl PhraseBankDecoder {
    /// Checks, normalises and decodes one input in `session`, recording it there if `record`
    /// (and in the statistics).
    fn decode_one(
        &self,
        embedding: &[f32],
        session: &mut Session,
        record: bool,
    ) -> Result<Decoded> {
        let started = Instant::now();
        let result = UnitEmbedding::new(embedding, self.dim()).and_then(|query| {
            let hits = self.hits(&query)?;
            self.finish(&query, &hits, session, record)
        });
        self.record(&result, started.elapsed());
        result?.into_result()
    }

    fn batch_decode_inner(
        &self,
        embeddings: ArrayView2<f32>,
        boundaries: &[usize],
    ) -> Result<Vec<Decoded>> {
        check_batch(&embeddings, self.dim())?;
        let rows = embeddings.nrows();
        let ranges = session_ranges(rows, boundaries)?;
        let dim = self.dim();
        let queries = embedding::normalized_rows(&embeddings, dim)?;
        let hits = if self.cache.is_enabled() {
            self.cached_hits(&queries)?
        } else {
            self.bank.search(&queries, self.config.top_k)?
        };
        // a session is dropped after its last row: that row is not recorded
        let mut last = vec![false; rows];
        for range in ranges.iter().filter(|r| !r.is_empty()) {
            last[range.end - 1] = true;
        }
        // assembled on the OpenMP team that searched (`super::openmp`)
        decode_sessions_with(
            ranges,
            || self.new_session(),
            |row, session| {
                let query = &queries[row * dim..(row + 1) * dim];
                let row_hits = hits.get(row).map(Vec::as_slice).unwrap_or_default();
                self.finish(query, row_hits, session, !last[row])?
                    .into_result()
            },
            |n, session| super::openmp::map(n, session),
        )
    }

    /// Search results for unit-norm queries (row-major): from the cache where an equivalent
    /// input was seen, the rest in one search.
    fn cached_hits(&self, queries: &[f32]) -> Result<Vec<Vec<Hit>>> {
        let dim = self.dim();
        let signatures: Vec<_> = queries
            .chunks(dim)
            .map(|q| self.cache.signature(q))
            .collect();
        let mut hits: Vec<Option<Vec<Hit>>> =
            signatures.iter().map(|s| self.cache.get(s)).collect();
        let missing: Vec<usize> = (0..hits.len()).filter(|&r| hits[r].is_none()).collect();
        if !missing.is_empty() {
            let batch: Vec<f32> = missing
                .iter()
                .flat_map(|&r| &queries[r * dim..(r + 1) * dim])
                .copied()
                .collect();
            let found = self.bank.search(&batch, self.config.top_k)?;
            for (&row, row_hits) in missing.iter().zip(found) {
                self.cache.put(signatures[row].clone(), row_hits.clone());
                hits[row] = Some(row_hits);
            }
        }
        Ok(hits.into_iter().map(Option::unwrap_or_default).collect())
    }
}

impl std::fmt::Debug for PhraseBankDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhraseBankDecoder")
            .field("bank", &self.bank)
            .field("config", &self.config)
            .finish()
    }
}

/// The assembler of the config's method, with that method's settings.
fn assembler_for(config: &PhraseBankSettings) -> Arc<dyn Assembler> {
    match config.method {
        AssemblyMethod::Greedy => Arc::new(Greedy),
        AssemblyMethod::Weighted => Arc::new(Weighted::new(config.weighted.clone())),
        AssemblyMethod::Beam => Arc::new(Beam::new(config.beam.clone())),
        AssemblyMethod::ContextAware => Arc::new(ContextAware::new(config.context.clone())),
    }
}
