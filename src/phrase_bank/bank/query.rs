//! Searching a [`PhraseBank`]: FAISS, then each hit's norm correction.

use super::{Hit, PhraseBank};
use crate::embedding;
use crate::error::{Error, Result};
use crate::phrase_bank::index::Neighbours;

/// Batches of at least this many queries re-score their hits in parallel.
const PARALLEL_RESCORE_ROWS: usize = 64;

/// Rows whose hits are re-scored together (one reconstruction call, in chunks of this many
/// rows: about 240 KB of vectors for 10 hits of 768 dimensions).
const RESCORE_CHUNK_ROWS: usize = 8;

impl PhraseBank {
    /// Searches the `k` most similar phrases for each query.
    ///
    /// `queries` are unit-norm rows of [`PhraseBank::dim`] values, row-major. Similarities are
    /// cosines to the stored vectors: compressed indexes return inner products with
    /// reconstructions whose norms stray from 1 by a few percent, so each hit's score is divided
    /// by its reconstruction's norm and the hits are re-sorted.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>> {
        crate::trace::record(|| crate::trace::Event::BankSearch {
            rows: queries.len() / self.dim().max(1),
        });
        let found = self.index.search(queries, k)?;
        let exact = self.manifest.index_spec == "Flat";
        let width = k.max(1);
        let dim = self.dim();
        // the stored vectors' norms, once a batch has computed them (single queries do not
        // wait for them: they reconstruct their few hits)
        let norms = if exact {
            None
        } else if queries.len() / dim >= PARALLEL_RESCORE_ROWS {
            self.index.stored_norms()
        } else {
            self.index.stored_norms_if_computed()
        };
        // the hits of some rows, with the norm correction of all of them done at once
        // (`buffers`: their ids and reconstructions when no norm table exists; the sequential
        // path reuses them from chunk to chunk)
        let rescore = |buffers: &mut RescoreBuffers,
                       (ids, scores): (&[i64], &[f32])|
         -> Result<Vec<Vec<Hit>>> {
            let mut rows: Vec<Vec<Hit>> = ids
                .chunks(width)
                .zip(scores.chunks(width))
                .map(|(ids, scores)| {
                    ids.iter()
                        .zip(scores)
                        .filter(|(&id, _)| id >= 0)
                        .map(|(&id, &score)| Hit {
                            id: id as usize,
                            similarity: score,
                        })
                        .collect()
                })
                .collect();
            if let (false, Some(table)) = (exact, norms) {
                for hit in rows.iter_mut().flatten() {
                    let norm = table.get(hit.id).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "phrase id {} out of range 0..{}",
                            hit.id,
                            table.len()
                        ))
                    })?;
                    hit.similarity /= norm.max(embedding::MIN_NORM);
                }
            } else if !exact {
                let RescoreBuffers { ids, vectors } = buffers;
                ids.clear();
                ids.extend(rows.iter().flatten().map(|h| h.id as i64));
                vectors.resize(ids.len() * dim, 0.0);
                self.index.reconstruct_into(ids, vectors)?;
                for (hit, v) in rows.iter_mut().flatten().zip(vectors.chunks(dim)) {
                    hit.similarity /= embedding::norm(v).max(embedding::MIN_NORM);
                }
            }
            for hits in &mut rows {
                hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
            }
            Ok(rows)
        };
        let nq = queries.len() / dim;
        let (ids, scores) = (&found.ids[..nq * width], &found.scores[..nq * width]);
        let chunk = RESCORE_CHUNK_ROWS * width;
        let chunks: Vec<Vec<Vec<Hit>>> = if nq >= PARALLEL_RESCORE_ROWS {
            // on the OpenMP team that just searched (awake, where rayon's threads would
            // compete with its spinning ones); the reconstructions are const, thread-safe and
            // open no OpenMP region of their own (`SharedIndex::reconstruct_into`)
            let (ids, scores): (Vec<&[i64]>, Vec<&[f32]>) =
                (ids.chunks(chunk).collect(), scores.chunks(chunk).collect());
            crate::phrase_bank::openmp::map(ids.len(), |c| {
                rescore(&mut RescoreBuffers::default(), (ids[c], scores[c]))
            })
            .into_iter()
            .collect::<Result<_>>()?
        } else {
            let mut buffers = RescoreBuffers::default();
            ids.chunks(chunk)
                .zip(scores.chunks(chunk))
                .map(|rows| rescore(&mut buffers, rows))
                .collect::<Result<_>>()?
        };
        Ok(chunks.into_iter().flatten().collect())
    }

    /// The raw FAISS search of the index, without the norm correction of
    /// [`PhraseBank::search`] (benchmarks compare against it).
    pub fn search_raw(&self, queries: &[f32], k: usize) -> Result<Neighbours> {
        self.index.search(queries, k)
    }

    /// Changes the number of inverted lists probed per query (IVF kinds).
    pub fn set_nprobe(&mut self, nprobe: usize) {
        self.index.set_nprobe(nprobe);
        self.manifest.nprobe = self.index.nprobe();
    }
}

/// Scratch space of [`PhraseBank::search`]'s norm correction for a chunk of rows.
#[derive(Default)]
struct RescoreBuffers {
    ids: Vec<i64>,
    vectors: Vec<f32>,
}
