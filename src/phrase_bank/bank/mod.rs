//! [`PhraseBank`]: phrases with known embeddings, searchable by similarity with FAISS.
//!
//! A bank is saved as a directory holding a JSON [`Manifest`], the FAISS index and the phrases
//! (one per line, in id order, zstd-compressed). Loading verifies the manifest and the files'
//! checksums.

//!
//! * `build.rs`: building and extending (index kind, near-duplicates);
//! * `store.rs`: saving and loading a bank directory;
//! * `query.rs`: searching, with the norm correction of compressed indexes.

mod build;
mod query;
mod store;

pub use build::{
    BankBuildOptions, BuildProgress, NearDuplicates, AUTO_INDEX, COMPRESSED_INDEX,
    MAX_NEAR_DUPLICATE_NEIGHBOURS,
};

use super::index::SharedIndex;
use super::manifest::Manifest;
use super::phrases::PhraseList;
use crate::embedding;
use crate::error::Result;

/// Name recorded for banks built from the reference encoder's embeddings.
pub const REFERENCE_ENCODER: &str = "sentence-transformers/all-mpnet-base-v2";

/// Environment variable that overrides the location of the default bank.
pub const BANK_DIR_ENV: &str = "LWDEC_BANK_DIR";

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
}
