//! Verified decoding and refinement give the outputs recorded by
//! `tests/fixtures/golden/record_verified.sh` (`lwdec decode --verify [--refine]`, default
//! settings, bf16 encoder) on the first rows of `samples/ood2` and `samples/everyday`: texts
//! and sources exactly, confidences and round-trip cosines to 1e-5. The baseline against which
//! a refactoring of the verified path is checked; the library and the CLI agree through it.
//!
//! The encoder's bf16 sums run in a fixed order on every CPU with AVX512-BF16; on a CPU
//! without it the default encoder is f32 and this test says so and checks nothing.

use std::path::Path;
use std::sync::Arc;

use lightweight_decoder::encoder::{EncoderPrecision, MpnetEncoder};
use lightweight_decoder::eval::samples::SampleSet;
use lightweight_decoder::{Decoded, DecoderBuilder, DecoderKind, RefineSettings, VerifySettings};
use serde_json::Value;

fn encoder() -> Option<Arc<MpnetEncoder>> {
    if !EncoderPrecision::Bf16.is_available() {
        eprintln!("golden verified outputs not checked: they are the bf16 encoder's, and this CPU lacks AVX512-BF16");
        return None;
    }
    let dir = MpnetEncoder::default_location();
    let encoder = MpnetEncoder::load_with_precision(&dir, EncoderPrecision::Bf16)
        .unwrap_or_else(|e| panic!("the encoder is needed (bash scripts/install-encoder.sh): {e}"));
    Some(Arc::new(encoder.with_batch_size(64)))
}

fn check(name: &str, sample: &str, refine: bool, encoder: Arc<MpnetEncoder>) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/golden/{name}.jsonl"));
    let expected: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let s = SampleSet::bundled(sample).unwrap();
    let rows = s.embeddings.slice(ndarray::s![..expected.len(), ..]);
    let settings = VerifySettings {
        refine: refine.then(RefineSettings::default),
        ..VerifySettings::default()
    };
    let decoder = DecoderBuilder::new()
        .verified(DecoderKind::Hybrid, encoder, settings)
        .unwrap();
    let decoded: Vec<Decoded> = decoder.batch_decode(rows).unwrap();
    let mut differ = Vec::new();
    for (row, (d, e)) in decoded.iter().zip(&expected).enumerate() {
        assert_eq!(e["row"], row, "{name}");
        let close = |got: Option<f32>, want: &Value| match (got, want.as_f64()) {
            (Some(g), Some(w)) => (f64::from(g) - w).abs() < 1e-5,
            (None, None) => true,
            _ => false,
        };
        let same = d.text == e["text"].as_str().unwrap()
            && close(Some(d.confidence), &e["confidence"])
            && close(d.roundtrip_cosine, &e["roundtrip_cosine"])
            && d.low_confidence == e["low_confidence"].as_bool().unwrap()
            && serde_json::to_value(&d.source).unwrap() == e["source"];
        if !same {
            differ.push(format!(
                "row {row}: {:?} ({}) against {} ({})",
                d.text, d.confidence, e["text"], e["confidence"]
            ));
        }
    }
    assert_eq!(decoded.len(), expected.len(), "{name}");
    assert!(
        differ.is_empty(),
        "{name}: {} of {} rows differ:\n{}",
        differ.len(),
        decoded.len(),
        differ.join("\n")
    );
}

#[test]
fn verified_hybrid_matches_the_recorded_outputs() {
    let Some(encoder) = encoder() else { return };
    check("verified_hybrid_ood2", "ood2", false, encoder.clone());
    check("verified_hybrid_everyday", "everyday", false, encoder);
}

#[test]
fn refined_hybrid_matches_the_recorded_outputs() {
    let Some(encoder) = encoder() else { return };
    check("refine_hybrid_ood2", "ood2", true, encoder.clone());
    check("refine_hybrid_everyday", "everyday", true, encoder);
}
