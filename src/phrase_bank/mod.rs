//! The phrase-bank decoder: FAISS similarity search over phrases with known embeddings.
//!
//! * [`PhraseBank`] (`bank.rs`): phrases ([`PhraseList`], `phrases.rs`), their FAISS index
//!   (`index.rs`) and a checksummed manifest (`manifest.rs`); build, save, load and search.
//! * [`PhraseBankDecoder`] (`decoder.rs`): cache, search, assembly, threshold,
//!   post-processing, statistics and health.
//! * [`assembly`]: the [`Assembler`](assembly::Assembler) methods (greedy, weighted, beam,
//!   context-aware), each with its settings.
//! * [`postprocess`]: the [`PostProcessor`](postprocess::PostProcessor) stages.
//! * [`PhraseBankSettings`] (`settings.rs`): the decoder's settings.
//! * [`PatternCache`] (`cache.rs`): an LRU of search results keyed by a quantised signature.

pub mod assembly;
mod bank;
mod cache;
mod decoder;
mod index;
mod index_layout;
mod manifest;
mod openmp;
mod phrases;
pub mod postprocess;
mod settings;

pub use assembly::{AssemblyMethod, BeamConfig, ContextConfig, WeightedConfig};
pub use bank::{
    BankBuildOptions, BuildProgress, Hit, NearDuplicates, PhraseBank, AUTO_INDEX, BANK_DIR_ENV,
    COMPRESSED_INDEX, MAX_NEAR_DUPLICATE_NEIGHBOURS, REFERENCE_ENCODER,
};
pub use cache::{CacheConfig, PatternCache};
pub(crate) use decoder::BankOutcome;
pub use decoder::PhraseBankDecoder;
pub use index::Neighbours;
pub use manifest::{
    FileDigest, Manifest, FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE, OLDEST_FORMAT_VERSION,
    PHRASES_FILE, PLAIN_PHRASES_FILE,
};
pub use phrases::{PhraseList, MAX_PHRASES_BYTES};
pub use postprocess::PostProcessConfig;
pub use settings::{PhraseBankSettings, ThresholdMode};
