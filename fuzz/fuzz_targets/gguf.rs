//! A generative model file (GGUF; fuzzing builds skip the checksum so mutated tensors and
//! metadata reach the checks after it). A loaded model scores a text; its logits must be
//! finite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lightweight_decoder::generative::InferenceModel;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::folder(&[("m.gguf", data)]);
    if let Ok(model) = InferenceModel::load(&dir.path().join("m.gguf")) {
        let mut v = vec![0f32; model.config().embed_dim];
        if let Some(x) = v.first_mut() {
            *x = 1.0;
        }
        if let Ok(rows) = model.teacher_forced_logits(&v, b"a dog") {
            assert!(rows.iter().flatten().all(|x| x.is_finite()));
        }
    }
});
