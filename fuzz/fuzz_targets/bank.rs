//! A bank folder: manifest, FAISS index and phrases (fuzzing builds skip the checksums, so a
//! mutated index reaches FAISS and the checks after it). A loaded bank is searched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lightweight_decoder::phrase_bank::{INDEX_FILE, MANIFEST_FILE, PHRASES_FILE};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let parts = common::split(data, 3);
    let dir = common::folder(&[
        (MANIFEST_FILE, parts[0]),
        (INDEX_FILE, parts[1]),
        (PHRASES_FILE, parts[2]),
    ]);
    if let Ok(bank) = lightweight_decoder::PhraseBank::load(dir.path()) {
        let mut query = vec![0f32; bank.dim()];
        if let Some(q) = query.first_mut() {
            *q = 1.0;
        }
        if let Ok(hits) = bank.search(&query, 5) {
            for hit in hits.iter().flatten() {
                assert!(bank.phrase(hit.id).is_some());
            }
        }
        for id in 0..bank.len().min(4) {
            let _ = bank.embedding(id);
        }
    }
});
