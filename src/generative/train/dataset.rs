//! Phrases with their sentence embeddings, loaded from a text file and `.npy` arrays, and the
//! fixed train/validation split.

use std::path::Path;

use crate::npy::load_embeddings;
use crate::{Error, Result};

/// FNV-1a 64-bit hash of `bytes`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
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
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
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

    /// Loads phrases and their embeddings: a float32 `.npy` array `[N, dim]`, or an int8 one
    /// with a float32 per-row `scale` `[N]` (embedding `i` is `int8[i] * scale[i]`), each row
    /// re-normalised to unit norm.
    pub fn load(phrases: &Path, embeddings: &Path, scale: Option<&Path>) -> Result<Self> {
        let texts = load_phrases(phrases)?;
        let array = load_embeddings(embeddings, scale)?;
        let (rows, dim) = array.dim();
        if rows != texts.len() {
            return Err(npy_error(
                embeddings,
                format!("{rows} rows for {} phrases", texts.len()),
            ));
        }
        let values = array.as_standard_layout().iter().copied().collect();
        Self::new(texts, values, dim).map_err(|e| npy_error(embeddings, e.to_string()))
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

/// An [`Error::Npy`] for `path`.
fn npy_error(path: &Path, reason: String) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    #[test]
    fn fnv1a64_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
