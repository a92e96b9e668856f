//! Files in and out, for programs that stream many rows as `lwdec` does: embeddings read in
//! chunks (`.npy`, float32 or int8 with a scale), session boundaries turned into row ranges,
//! and writes that never leave a half-written file (a temporary sibling renamed into place,
//! removed on error or on a signal).

pub use crate::decoder::session_ranges;
pub use crate::fsutil::{remove_temporary_files, write_atomic, AtomicFile};
pub use crate::npy::EmbeddingReader;
