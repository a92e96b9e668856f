//! Building and extending a [`PhraseBank`]: the index kind, near-duplicates, training and adding.

use ndarray::ArrayView2;
use rand::SeedableRng;

use super::{PhraseBank, REFERENCE_ENCODER};
use crate::embedding;
use crate::error::{Error, Result};
use crate::phrase_bank::index::SharedIndex;
use crate::phrase_bank::manifest::{Manifest, FORMAT_VERSION};
use crate::phrase_bank::phrases::PhraseList;

/// Index spec that lets [`PhraseBank::build`] choose by bank size.
pub const AUTO_INDEX: &str = "auto";
/// The compressed index kind `auto` picks for large banks (the WordNet bank's).
pub const COMPRESSED_INDEX: &str = "IVF1024,PQ96";

/// Leaves near-duplicates out of a bank: phrases whose embeddings the encoder itself barely
/// tells apart cost space, and a compressed index cannot tell them apart at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearDuplicates {
    /// A row is left out when a row before it that is kept lies at this cosine or closer.
    pub cosine: f32,
    /// Rows before this one are always kept (a base bank whose ids must not move).
    pub from_row: usize,
    /// Index neighbours examined per row (their exact cosines decide).
    pub neighbours: usize,
    /// For [`PhraseBank::extend`] with an encoder: phrases already in the bank have only
    /// their compressed codes, which score even an exact copy low (about 0.7 for 4-bit
    /// codes), so those among a new row's neighbours scoring at least this are re-embedded
    /// and compared exactly (`docs/experiments.md`, session 18).
    pub recheck_above: f32,
}

/// Most index neighbours [`NearDuplicates`] may examine per row (a bound on the search's
/// buffers).
pub const MAX_NEAR_DUPLICATE_NEIGHBOURS: usize = 1024;

impl NearDuplicates {
    /// Checks the settings: cosines in (0, 1], neighbours in 1..=[`MAX_NEAR_DUPLICATE_NEIGHBOURS`].
    pub fn validate(&self) -> Result<()> {
        let in_range = |c: f32| c > 0.0 && c <= 1.0;
        let neighbours_ok = (1..=MAX_NEAR_DUPLICATE_NEIGHBOURS).contains(&self.neighbours);
        if !(in_range(self.cosine) && in_range(self.recheck_above) && neighbours_ok) {
            return Err(Error::InvalidConfig(format!(
                "near-duplicate cosines must be in (0, 1] and neighbours in 1..={}, got {}, {} \
                 and {}",
                MAX_NEAR_DUPLICATE_NEIGHBOURS, self.cosine, self.recheck_above, self.neighbours
            )));
        }
        Ok(())
    }
}

impl Default for NearDuplicates {
    fn default() -> Self {
        NearDuplicates {
            cosine: 0.98,
            from_row: 0,
            neighbours: 8,
            recheck_above: 0.6,
        }
    }
}

/// Settings for [`PhraseBank::build`].
#[derive(Debug, Clone, PartialEq)]
pub struct BankBuildOptions {
    /// FAISS factory string: `Flat` is exact, `IVF1024,PQ96` (the default bank's kind) stores
    /// 96 bytes per phrase, `HNSW32` is fast where memory allows. [`AUTO_INDEX`] picks `Flat`
    /// below [`BankBuildOptions::min_rows_for_compression`] rows (IVF/PQ training needs many
    /// more rows than centroids, and small banks are cheap to search exactly) and
    /// [`COMPRESSED_INDEX`] above.
    pub index_spec: String,
    /// Rows sampled to train the index (all rows when the bank is smaller).
    pub train_size: usize,
    /// Inverted lists probed per query for IVF kinds.
    pub nprobe: usize,
    /// Name of the encoder that produced the embeddings, stored in the manifest.
    pub encoder: String,
    /// Seed of the training sample.
    pub seed: u64,
    /// With [`AUTO_INDEX`], banks with fewer rows get an exact `Flat` index.
    pub min_rows_for_compression: usize,
    /// Leave near-duplicates out (`None`: keep every row).
    pub near_duplicates: Option<NearDuplicates>,
}

impl Default for BankBuildOptions {
    fn default() -> Self {
        BankBuildOptions {
            index_spec: AUTO_INDEX.to_string(),
            train_size: 65_536,
            nprobe: 16,
            encoder: REFERENCE_ENCODER.to_string(),
            seed: 2026,
            min_rows_for_compression: 50_000,
            near_duplicates: None,
        }
    }
}

/// Progress of a bank build, reported to the caller's callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildProgress {
    /// The index is being trained on this many vectors (one opaque step).
    Training {
        /// Vectors in the training sample.
        vectors: usize,
    },
    /// `done` of `total` vectors have been added.
    Adding {
        /// Vectors added so far.
        done: usize,
        /// Vectors to add.
        total: usize,
    },
    /// Near-duplicates were looked for ([`BankBuildOptions::near_duplicates`]): `dropped` of
    /// `examined` rows are left out and the index is refilled with the rest.
    NearDuplicates {
        /// Rows examined (those at or after `from_row`).
        examined: usize,
        /// Rows left out.
        dropped: usize,
    },
}

impl PhraseBank {
    /// Builds a bank from phrases and their embeddings (one row per phrase; rows are normalised),
    /// leaving out near-duplicates if the options ask for it.
    pub fn build(
        phrases: Vec<String>,
        embeddings: ArrayView2<f32>,
        options: &BankBuildOptions,
        mut progress: impl FnMut(BuildProgress),
    ) -> Result<Self> {
        if phrases.is_empty() {
            return Err(Error::EmptyBank(
                "no phrases were given to build it from".into(),
            ));
        }
        if phrases.len() != embeddings.nrows() {
            return Err(Error::InvalidArgument(format!(
                "{} phrases but {} embedding rows",
                phrases.len(),
                embeddings.nrows()
            )));
        }
        let mut phrases = PhraseList::new(&phrases)?;
        let dim = embeddings.ncols();
        if dim == 0 {
            return Err(Error::InvalidArgument("embeddings have no columns".into()));
        }
        if options.nprobe == 0 || options.train_size == 0 {
            return Err(Error::InvalidConfig(
                "nprobe and train_size must be positive".into(),
            ));
        }
        if let Some(nd) = &options.near_duplicates {
            nd.validate()?;
        }
        let mut vectors = embedding::normalized_rows(&embeddings, dim)?;
        let n = phrases.len();
        let spec = match options.index_spec.as_str() {
            AUTO_INDEX if n < options.min_rows_for_compression => "Flat",
            AUTO_INDEX => COMPRESSED_INDEX,
            explicit => explicit,
        };
        let mut index = SharedIndex::from_factory(dim, spec)?;
        if !index.is_trained() {
            let sample = training_sample(&vectors, dim, options.train_size, options.seed);
            progress(BuildProgress::Training {
                vectors: sample.len() / dim,
            });
            index.train(&sample)?;
        }
        add_all(&mut index, &vectors, dim, &mut progress)?;
        index.set_nprobe(options.nprobe);
        if let Some(nd) = &options.near_duplicates {
            let keep = distinct_rows(&index, &vectors, dim, nd)?;
            let dropped = keep.iter().filter(|&&k| !k).count();
            progress(BuildProgress::NearDuplicates {
                examined: n.saturating_sub(nd.from_row),
                dropped,
            });
            if dropped > 0 {
                phrases = phrases.retain(&keep)?;
                vectors = kept_rows(&vectors, dim, &keep);
                index.reset()?;
                add_all(&mut index, &vectors, dim, &mut progress)?;
            }
        }
        let n = phrases.len();
        index.enable_reconstruct()?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            dimension: dim,
            metric: "inner_product".into(),
            count: n,
            encoder: options.encoder.clone(),
            index_spec: spec.to_string(),
            nprobe: index.nprobe(),
            files: Default::default(),
            sha256: String::new(),
        };
        Ok(PhraseBank {
            manifest,
            phrases,
            index,
        })
    }

    /// Adds phrases with their embeddings to a built bank, after its current ids (which do
    /// not move), with the index's existing training; returns how many were added.
    ///
    /// This is how a bank grows in stages, each with only its own rows' embeddings at hand.
    /// With `near_duplicates`, a new row is left out when a kept new row before it lies at
    /// exact cosine `cosine` or closer, or a phrase already in the bank does (`from_row` is
    /// ignored: old rows are always kept). The bank's phrases are compared exactly in a
    /// `Flat` bank; in a compressed one, only with an `encoder` (the bank's own), which
    /// re-embeds those scoring [`NearDuplicates::recheck_above`]; without it they are not
    /// compared.
    pub fn extend(
        &mut self,
        phrases: Vec<String>,
        embeddings: ArrayView2<f32>,
        near_duplicates: Option<&NearDuplicates>,
        encoder: Option<&dyn crate::Encoder>,
        mut progress: impl FnMut(BuildProgress),
    ) -> Result<usize> {
        if phrases.len() != embeddings.nrows() {
            return Err(Error::InvalidArgument(format!(
                "{} phrases but {} embedding rows",
                phrases.len(),
                embeddings.nrows()
            )));
        }
        let dim = self.dim();
        if embeddings.ncols() != dim {
            return Err(Error::DimensionMismatch {
                expected: dim,
                got: embeddings.ncols(),
            });
        }
        if phrases.is_empty() {
            return Ok(0);
        }
        let added = PhraseList::new(&phrases)?;
        let mut vectors = embedding::normalized_rows(&embeddings, dim)?;
        let n = added.len();
        let mut keep = vec![true; n];
        if let Some(nd) = near_duplicates {
            nd.validate()?;
            self.mark_stored_duplicates(&vectors, nd, encoder, &mut keep)?;
            // among themselves: exactly, in an index of their own
            let spec = if n >= 50_000 { "IVF1024,Flat" } else { "Flat" };
            let mut own = SharedIndex::from_factory(dim, spec)?;
            if !own.is_trained() {
                own.train(&training_sample(&vectors, dim, 65_536, 2026))?;
            }
            own.set_nprobe(16);
            add_all(&mut own, &vectors, dim, &mut progress)?;
            let among = NearDuplicates { from_row: 0, ..*nd };
            let distinct = distinct_rows_where(&own, &vectors, dim, &among, &keep)?;
            drop(own);
            let dropped = distinct.iter().filter(|&&k| !k).count();
            progress(BuildProgress::NearDuplicates {
                examined: n,
                dropped,
            });
            keep = distinct;
        }
        let kept = keep.iter().filter(|&&k| k).count();
        if kept < n {
            vectors = kept_rows(&vectors, dim, &keep);
        }
        let phrases = PhraseList::new(
            self.phrases
                .iter()
                .chain(added.iter().zip(&keep).filter_map(|(p, &k)| k.then_some(p))),
        )?;
        add_all(&mut self.index, &vectors, dim, &mut progress)?;
        self.index.enable_reconstruct()?;
        self.phrases = phrases;
        self.manifest.count = self.phrases.len();
        Ok(kept)
    }

    /// Clears `keep` for new rows with a phrase of the bank at exact cosine `nd.cosine` or
    /// closer ([`PhraseBank::extend`]).
    fn mark_stored_duplicates(
        &self,
        vectors: &[f32],
        nd: &NearDuplicates,
        encoder: Option<&dyn crate::Encoder>,
        keep: &mut [bool],
    ) -> Result<()> {
        let dim = self.dim();
        let exact = self.manifest.index_spec == "Flat";
        if !exact && encoder.is_none() {
            return Ok(());
        }
        if let Some(e) = encoder {
            if e.dimension() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: e.dimension(),
                });
            }
        }
        let chunk = 8192;
        for (start, rows) in (0..keep.len())
            .step_by(chunk)
            .zip(vectors.chunks(chunk * dim))
        {
            let found = self.search(rows, nd.neighbours)?;
            let duplicate: Vec<bool> = match encoder.filter(|_| !exact) {
                // a Flat bank's similarities are exact already
                None => found
                    .iter()
                    .map(|hits| hits.iter().any(|h| h.similarity >= nd.cosine))
                    .collect(),
                Some(encoder) => {
                    let mut candidates: Vec<usize> = found
                        .iter()
                        .flatten()
                        .filter(|h| h.similarity >= nd.recheck_above)
                        .map(|h| h.id)
                        .collect();
                    candidates.sort_unstable();
                    candidates.dedup();
                    let mut stored = std::collections::HashMap::with_capacity(candidates.len());
                    for ids in candidates.chunks(256) {
                        let texts: Vec<&str> = ids
                            .iter()
                            .map(|&id| self.phrase(id).unwrap_or(""))
                            .collect();
                        let embedded = encoder.embed(&texts)?;
                        for (&id, row) in ids.iter().zip(embedded.rows()) {
                            stored.insert(id, row.to_vec());
                        }
                    }
                    found
                        .iter()
                        .enumerate()
                        .map(|(r, hits)| {
                            let row = &rows[r * dim..(r + 1) * dim];
                            hits.iter().any(|h| {
                                stored
                                    .get(&h.id)
                                    .is_some_and(|v| embedding::dot(row, v) >= nd.cosine)
                            })
                        })
                        .collect()
                }
            };
            for (r, &dup) in duplicate.iter().enumerate() {
                if dup {
                    keep[start + r] = false;
                }
            }
        }
        Ok(())
    }
}

/// Adds `vectors` to `index` in chunks, reporting progress.
fn add_all(
    index: &mut SharedIndex,
    vectors: &[f32],
    dim: usize,
    progress: &mut impl FnMut(BuildProgress),
) -> Result<()> {
    let chunk = 8192;
    let n = vectors.len() / dim;
    for (i, rows) in vectors.chunks(chunk * dim).enumerate() {
        index.add(rows)?;
        progress(BuildProgress::Adding {
            done: (i * chunk + rows.len() / dim).min(n),
            total: n,
        });
    }
    Ok(())
}

/// Which rows to keep: row `r >= nd.from_row` is dropped when one of its index neighbours
/// before it is kept and lies at exact cosine `>= nd.cosine`. Rows are decided in order, so a
/// chain of near-duplicates keeps its first row. One batched search per chunk of rows.
fn distinct_rows(
    index: &SharedIndex,
    vectors: &[f32],
    dim: usize,
    nd: &NearDuplicates,
) -> Result<Vec<bool>> {
    distinct_rows_where(index, vectors, dim, nd, &vec![true; vectors.len() / dim])
}

/// [`distinct_rows`] among the rows whose `eligible` flag is set: the others are left out and
/// never count as a kept row before another.
fn distinct_rows_where(
    index: &SharedIndex,
    vectors: &[f32],
    dim: usize,
    nd: &NearDuplicates,
    eligible: &[bool],
) -> Result<Vec<bool>> {
    let n = vectors.len() / dim;
    let row = |i: usize| &vectors[i * dim..(i + 1) * dim];
    let mut keep = eligible.to_vec();
    let chunk = 8192;
    let k = nd.neighbours;
    let mut start = nd.from_row.min(n);
    while start < n {
        let end = (start + chunk).min(n);
        let found = index.search(&vectors[start * dim..end * dim], k)?;
        for (r, ids) in (start..end).zip(found.ids.chunks(k)) {
            if !keep[r] {
                continue;
            }
            let duplicate = ids.iter().any(|&c| {
                let c = c as usize;
                // ids are -1 (usize::MAX here) where fewer than k neighbours exist
                c < r && keep[c] && embedding::dot(row(r), row(c)) >= nd.cosine
            });
            keep[r] = !duplicate;
        }
        start = end;
    }
    Ok(keep)
}

/// The rows of `vectors` (`dim` columns) whose `keep` flag is set, in order.
fn kept_rows(vectors: &[f32], dim: usize, keep: &[bool]) -> Vec<f32> {
    vectors
        .chunks(dim)
        .zip(keep)
        .filter(|(_, &k)| k)
        .flat_map(|(row, _)| row)
        .copied()
        .collect()
}

/// A seeded random sample of `size` rows (all rows when there are fewer).
fn training_sample(vectors: &[f32], dim: usize, size: usize, seed: u64) -> Vec<f32> {
    let n = vectors.len() / dim;
    if size >= n {
        return vectors.to_vec();
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, n, size).into_vec();
    rows.sort_unstable();
    rows.iter()
        .flat_map(|&r| &vectors[r * dim..(r + 1) * dim])
        .copied()
        .collect()
}
