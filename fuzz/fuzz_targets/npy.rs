//! `.npy` embeddings: float32, or int8 with a scale file (the input's second file).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let parts = common::split(data, 2);
    let dir = common::folder(&[("a.npy", parts[0]), ("s.npy", parts[1])]);
    let (a, s) = (dir.path().join("a.npy"), dir.path().join("s.npy"));
    if let Ok(rows) = lightweight_decoder::load_embeddings(&a, None) {
        assert_eq!(rows.len(), rows.nrows() * rows.ncols());
    }
    let _ = lightweight_decoder::load_embeddings(&a, Some(&s));
    if let Ok(mut reader) = lightweight_decoder::io::EmbeddingReader::open(&a, Some(&s)) {
        while let Ok(Some(_)) = reader.read_chunk(3) {}
    }
});
