//! Phrases with their sentence embeddings, loaded from a text file and `.npy` arrays, and the
//! fixed train/validation split.

use std::path::Path;

use ndarray::{Array1, Array2};
use ndarray_npy::ReadNpyExt;

use crate::{Error, Result};

/// FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// True if `phrase` belongs to the validation split: its FNV-1a 64-bit hash is a multiple of
/// 64. The rule depends only on the phrase, so the split never changes.
pub fn is_validation(phrase: &str) -> bool {
    fnv1a64(phrase.as_bytes()).is_multiple_of(64)
}

/// Row indices of the training and validation phrases of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows used for training.
    pub train: Vec<usize>,
    /// Rows held out for validation ([`is_validation`]).
    pub validation: Vec<usize>,
}

impl Split {
    /// Splits phrases (in row order) by [`is_validation`].
    pub fn of<'a>(phrases: impl IntoIterator<Item = &'a str>) -> Self {
        let (validation, train) = phrases
            .into_iter()
            .enumerate()
            .partition::<Vec<_>, _>(|(_, p)| is_validation(p));
        Self {
            train: train.into_iter().map(|(i, _)| i).collect(),
            validation: validation.into_iter().map(|(i, _)| i).collect(),
        }
    }
}

/// Reads a UTF-8 text file with one phrase per line (a trailing `\r` is dropped).
pub fn load_phrases(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect())
}

/// Phrases and their unit-norm embeddings, row-aligned.
#[derive(Debug, Clone)]
pub struct Dataset {
    phrases: Vec<String>,
    /// Row-major `[len, dim]`.
    embeddings: Vec<f32>,
    dim: usize,
}

impl Dataset {
    /// Builds a dataset from phrases and row-major embeddings `[phrases.len(), dim]`; every row
    /// must be finite and non-zero and is scaled to unit norm.
    pub fn new(phrases: Vec<String>, mut embeddings: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || embeddings.len() != phrases.len() * dim {
            return Err(Error::InvalidArgument(format!(
                "{} phrases need {} embedding values of dimension {dim}, got {}",
                phrases.len(),
                phrases.len() * dim,
                embeddings.len()
            )));
        }
        for (row, chunk) in embeddings.chunks_mut(dim).enumerate() {
            let unit = crate::embedding::normalized(chunk, dim).map_err(|e| {
                Error::InvalidArgument(format!("embedding of row {row} ({:?}): {e}", phrases[row]))
            })?;
            chunk.copy_from_slice(&unit);
        }
        Ok(Self {
            phrases,
            embeddings,
            dim,
        })
    }

    /// Loads phrases and a float32 `.npy` array `[N, dim]`.
    pub fn load_f32(phrases: &Path, embeddings: &Path) -> Result<Self> {
        let texts = load_phrases(phrases)?;
        let array: Array2<f32> = read_npy(embeddings)?;
        let (rows, dim) = array.dim();
        check_rows(embeddings, rows, texts.len())?;
        let values = array.as_standard_layout().iter().copied().collect();
        Self::new(texts, values, dim).map_err(|e| npy_error(embeddings, e.to_string()))
    }

    /// Loads phrases, an int8 `.npy` array `[N, dim]` and a float32 `.npy` per-row scale `[N]`:
    /// embedding `i` is `int8[i] * scale[i]`, re-normalised to unit norm.
    pub fn load_i8(phrases: &Path, int8: &Path, scale: &Path) -> Result<Self> {
        let texts = load_phrases(phrases)?;
        let array: Array2<i8> = read_npy(int8)?;
        let scales: Array1<f32> = read_npy(scale)?;
        let (rows, dim) = array.dim();
        check_rows(int8, rows, texts.len())?;
        check_rows(scale, scales.len(), texts.len())?;
        let mut values = Vec::with_capacity(rows * dim);
        for (row, &s) in array.rows().into_iter().zip(scales.iter()) {
            values.extend(row.iter().map(|&q| f32::from(q) * s));
        }
        Self::new(texts, values, dim).map_err(|e| npy_error(int8, e.to_string()))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Phrase of row `i` (panics if out of range, like slice indexing).
    pub fn phrase(&self, i: usize) -> &str {
        &self.phrases[i]
    }

    /// Every phrase, in row order.
    pub fn phrases(&self) -> &[String] {
        &self.phrases
    }

    /// Unit-norm embedding of row `i` (panics if out of range, like slice indexing).
    pub fn embedding(&self, i: usize) -> &[f32] {
        &self.embeddings[i * self.dim..(i + 1) * self.dim]
    }

    /// The fixed train/validation split of this dataset's rows.
    pub fn split(&self) -> Split {
        Split::of(self.phrases.iter().map(String::as_str))
    }
}

/// Reads a `.npy` file as the array type `A`.
fn read_npy<A: ReadNpyExt>(path: &Path) -> Result<A> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    A::read_npy(std::io::BufReader::new(file)).map_err(|e| npy_error(path, e.to_string()))
}

/// An [`Error::Npy`] for `path`.
fn npy_error(path: &Path, reason: String) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        reason,
    }
}

/// Checks that an array has one row per phrase.
fn check_rows(path: &Path, rows: usize, phrases: usize) -> Result<()> {
    if rows == phrases {
        Ok(())
    } else {
        Err(npy_error(
            path,
            format!("{rows} rows for {phrases} phrases"),
        ))
    }
}

impl Dataset {
    /// For every row, the nearest *training* row by embedding (inner product) whose phrase
    /// differs from the row's own: what a bank of the training phrases, which never holds a
    /// validation phrase, retrieves for it. Used as the draft a retrieval-augmented generator
    /// reads. `None` where no such row is found among the `k` nearest.
    ///
    /// Exact search (`Flat`) below 50,000 training rows, else `IVF1024,Flat` searching 16
    /// lists (FAISS parallelises the batch itself).
    pub fn nearest_training_rows(&self, k: usize) -> Result<Vec<Option<usize>>> {
        use crate::phrase_bank::SharedIndex;
        let train = self.split().train;
        if train.is_empty() {
            return Err(Error::InvalidArgument(
                "the dataset has no training rows".into(),
            ));
        }
        let spec = if train.len() < 50_000 {
            "Flat"
        } else {
            "IVF1024,Flat"
        };
        let mut index = SharedIndex::from_factory(self.dim, spec)?;
        let mut vectors = Vec::with_capacity(train.len() * self.dim);
        for &i in &train {
            vectors.extend_from_slice(self.embedding(i));
        }
        index.train(&vectors)?;
        index.add(&vectors)?;
        index.set_nprobe(16);
        let mut nearest = Vec::with_capacity(self.len());
        for start in (0..self.len()).step_by(8192) {
            let end = (start + 8192).min(self.len());
            let hits = index.search(&self.embeddings[start * self.dim..end * self.dim], k)?;
            for (q, ids) in (start..end).zip(hits.ids.chunks(k)) {
                nearest.push(
                    ids.iter()
                        .filter_map(|&id| usize::try_from(id).ok().map(|id| train[id]))
                        .find(|&row| row != q && self.phrases[row] != self.phrases[q]),
                );
            }
        }
        Ok(nearest)
    }
}
