//! [`PhraseBank`]: phrases with known embeddings, searchable by similarity with FAISS.
//!
//! A bank is saved as a directory holding a JSON [`Manifest`], the FAISS index and the phrases
//! (one per line, in id order, zstd-compressed). Loading verifies the manifest and the files'
//! checksums.

use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use rand::SeedableRng;

use super::index::{Neighbours, SharedIndex};
use super::manifest::{FileDigest, Manifest, FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE};
use super::phrases::PhraseList;
use crate::embedding;
use crate::error::{Error, Result};

/// Name recorded for banks built from the reference encoder's embeddings.
pub const REFERENCE_ENCODER: &str = "sentence-transformers/all-mpnet-base-v2";

/// Environment variable that overrides the location of the default bank.
pub const BANK_DIR_ENV: &str = "LWDEC_BANK_DIR";

/// Batches of at least this many queries re-score their hits in parallel.
const PARALLEL_RESCORE_ROWS: usize = 64;

/// Rows whose hits are re-scored together (one reconstruction call, in chunks of this many
/// rows: about 240 KB of vectors for 10 hits of 768 dimensions).
const RESCORE_CHUNK_ROWS: usize = 8;

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

/// One search result: a phrase id and its similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Phrase id (row of the bank).
    pub id: usize,
    /// Inner product with the query (cosine for unit vectors, approximate for compressed kinds).
    pub similarity: f32,
}

/// Phrases with known embeddings, searchable by cosine similarity.
///
/// Searching takes `&self` and is safe from many threads (FAISS CPU search is thread-safe; `index.rs`); share one bank
/// behind an `Arc` rather than loading it per thread.
#[derive(Debug)]
pub struct PhraseBank {
    manifest: Manifest,
    phrases: PhraseList,
    index: SharedIndex,
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

    /// Loads a bank directory, verifying the manifest, the checksums and the counts.
    ///
    /// A bank replaced while it loads ([`PhraseBank::save`] over it) is read again, whole, so
    /// a reader never mixes the files of two versions.
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let mut attempts = 0;
        loop {
            let before = std::fs::read(&manifest_path).ok();
            let loaded = Self::load_once(dir);
            // a save that swapped the bank in mid-load changed the manifest: read it again
            let swapped = std::fs::read(&manifest_path).ok() != before;
            match loaded {
                Err(Error::CorruptBank { .. }) | Ok(_) if swapped && attempts < 10 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn load_once(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::CorruptBank {
                path: dir.to_path_buf(),
                reason:
                    "not a directory (no phrase bank here; `lwdec data install` puts the bundled \
                         one in the user data folder)"
                        .into(),
            });
        }
        let manifest = Manifest::read(dir)?;
        manifest.verify_files(dir)?;
        if manifest.count == 0 {
            return Err(Error::EmptyBank(format!(
                "{}: `count` is 0",
                dir.join(MANIFEST_FILE).display()
            )));
        }
        let index_path = dir.join(INDEX_FILE);
        let mut index = SharedIndex::read(&index_path).map_err(|e| Error::CorruptBank {
            path: index_path.clone(),
            reason: format!("cannot read the FAISS index: {e}"),
        })?;
        // every manifest field that shapes a search is checked against the index actually
        // read, before any search (a re-sealed manifest cannot describe another index)
        let index_error = |reason: String| Error::CorruptBank {
            path: index_path.clone(),
            reason,
        };
        if index.len() != manifest.count || index.dim() != manifest.dimension {
            return Err(index_error(format!(
                "index holds {} vectors of dimension {}, manifest says {} of dimension {}",
                index.len(),
                index.dim(),
                manifest.count,
                manifest.dimension
            )));
        }
        index
            .check_kind(&manifest.index_spec)
            .map_err(index_error)?;
        match (manifest.nprobe, index.nlist()) {
            (None, None) => {}
            (Some(nprobe), Some(nlist)) if (1..=nlist).contains(&nprobe) => {
                index.set_nprobe(nprobe)
            }
            (Some(nprobe), Some(nlist)) => {
                return Err(index_error(format!(
                    "the manifest's `nprobe` is {nprobe}; this index has {nlist} inverted \
                     lists, so it must be in 1..={nlist}"
                )))
            }
            (None, Some(nlist)) => {
                return Err(index_error(format!(
                    "the index has {nlist} inverted lists but the manifest gives no `nprobe`"
                )))
            }
            (Some(nprobe), None) => {
                return Err(index_error(format!(
                    "the manifest gives `nprobe` {nprobe} but the index has no inverted lists"
                )))
            }
        }
        let (name, compressed) = manifest.phrases_file();
        let phrases = PhraseList::read(&dir.join(name), compressed, manifest.count)?;
        Ok(PhraseBank {
            manifest,
            phrases,
            index,
        })
    }

    /// Location of the bundled default bank: `$LWDEC_BANK_DIR`, else `phrase_bank/` in the user
    /// data folder or the crate's checkout ([`crate::data::locate`]).
    pub fn default_dir() -> PathBuf {
        crate::data::locate(crate::data::BANK, BANK_DIR_ENV)
    }

    /// Loads the bundled default bank (every phrase of the WordNet corpus).
    pub fn load_default() -> Result<Self> {
        Self::load(&Self::default_dir())
    }

    /// Saves the bank to `dir` atomically: files are written to a temporary sibling directory
    /// that then replaces `dir`, so a failure never leaves a half-written bank behind.
    ///
    /// An existing `dir` is replaced only if it is empty or a bank (holds a manifest).
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "cannot save a phrase bank to {}: it exists and is not a folder",
                dir.display()
            )));
        }
        if dir.exists() {
            let is_bank = dir.join(MANIFEST_FILE).is_file();
            let is_empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io("list the folder", dir, e))?
                .next()
                .is_none();
            if !is_bank && !is_empty {
                return Err(Error::InvalidArgument(format!(
                    "{} exists and is not a phrase bank; refusing to replace it",
                    dir.display()
                )));
            }
        }
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("create the folder", &parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".bank-tmp-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io("create a temporary folder in", &parent, e))?;
        let staging = tmp.path().to_path_buf();
        crate::fsutil::register(&staging);
        let _forget = Unregister(&staging);
        self.index.write(&tmp.path().join(INDEX_FILE))?;
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            ..self.manifest.clone()
        };
        let (phrases_file, compressed) = manifest.phrases_file();
        self.phrases
            .write(&tmp.path().join(phrases_file), compressed)?;
        manifest.files.clear();
        for name in [INDEX_FILE, phrases_file] {
            manifest.files.insert(
                name.to_string(),
                FileDigest::of_file(&tmp.path().join(name))?,
            );
        }
        let manifest = manifest.sealed()?;
        let manifest_path = tmp.path().join(MANIFEST_FILE);
        std::fs::write(&manifest_path, manifest.to_json()?)
            .map_err(|e| Error::io("write", &manifest_path, e))?;
        let staged = tmp.keep();
        crate::fsutil::replace_dir(&staged, dir)?;
        self.manifest = manifest;
        Ok(())
    }

    /// Searches the `k` most similar phrases for each query.
    ///
    /// `queries` are unit-norm rows of [`PhraseBank::dim`] values, row-major. Similarities are
    /// cosines to the stored vectors: compressed indexes return inner products with
    /// reconstructions whose norms stray from 1 by a few percent, so each hit's score is divided
    /// by its reconstruction's norm and the hits are re-sorted.
    pub fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>> {
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
            super::openmp::map(ids.len(), |c| {
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

    /// The phrase with id `id`.
    pub fn phrase(&self, id: usize) -> Option<&str> {
        self.phrases.get(id)
    }

    /// All phrases, in id order.
    pub fn phrases(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.phrases.iter()
    }

    /// The stored embedding of phrase `id`, scaled to unit norm (compressed indexes return an
    /// approximation; every bank embedding is unit norm).
    pub fn embedding(&self, id: usize) -> Result<Vec<f32>> {
        let mut v = self.index.reconstruct(id as i64)?;
        embedding::normalize_in_place(&mut v);
        Ok(v)
    }

    /// Number of phrases.
    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    /// Whether the bank holds no phrase (never true for a built or loaded bank).
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.manifest.dimension
    }

    /// The bank's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
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

/// Unregisters a temporary path when dropped (every way out of [`PhraseBank::save`]).
struct Unregister<'a>(&'a Path);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        crate::fsutil::unregister(self.0);
    }
}
