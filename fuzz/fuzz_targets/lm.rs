//! A language model file (`.lm`; fuzzing builds skip the checksum so mutated bodies reach
//! the checks after it). A loaded model scores a sentence; the score must be finite.
//! Seed: `lwdec lm build` of three short sentences (`fuzz/corpus/lm/toy.lm`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lightweight_decoder::language_model::NgramModel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::folder(&[("m.lm", data)]);
    if let Ok(model) = NgramModel::load(&dir.path().join("m.lm")) {
        let score = model.score("the cat sat on the mat");
        assert!(score.log10_prob.is_finite());
    }
});
