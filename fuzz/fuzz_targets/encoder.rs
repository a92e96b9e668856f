//! The encoder folder: config.json, tokenizer.json and model.safetensors (the input's three
//! files). A loaded encoder embeds two texts; its rows must be finite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lightweight_decoder::encoder::{Encoder, MpnetEncoder};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let parts = common::split(data, 3);
    let dir = common::folder(&[
        ("config.json", parts[0]),
        ("tokenizer.json", parts[1]),
        ("model.safetensors", parts[2]),
        ("sentence_bert_config.json", br#"{"max_seq_length": 32}"#),
    ]);
    if let Ok(encoder) = MpnetEncoder::load(dir.path()) {
        if let Ok(rows) = encoder.embed(&["the big dog runs", ""]) {
            assert!(rows.iter().all(|v| v.is_finite()));
        }
    }
});
