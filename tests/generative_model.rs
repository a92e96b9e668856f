//! Tests of the generative model: its size, configuration, gradients, the inference engine against the training forward, quantisation and the GGUF file.
//!
//! Tests that need the real WordNet data look for it in `../shared/data` (relative to the crate
//! root) and are skipped, with a message, when it is absent.

mod common;
use common::generative::*;
use common::{argmax, max_abs_diff};

use lightweight_decoder::generative::{
    DecodeOptions, GenerativeConfig, GenerativeModel, InferenceModel, Precision, Strategy,
};
use lightweight_decoder::Error;

#[test]
fn default_model_has_exactly_722_944_parameters() {
    let model = GenerativeModel::new(GenerativeConfig::default(), 0).unwrap();
    assert_eq!(model.parameter_count(), 722_944);
    assert_eq!(GenerativeConfig::default().parameter_count(), 722_944);
    let deeper = GenerativeConfig {
        depth: 8,
        ..GenerativeConfig::default()
    };
    let model = GenerativeModel::new(deeper.clone(), 0).unwrap();
    assert_eq!(model.parameter_count(), deeper.parameter_count());
    let names = model.varmap().data().lock().unwrap().len();
    assert_eq!(names, 14);
}

#[test]
fn config_validation_rejects_bad_values() {
    assert!(GenerativeConfig::default().validate().is_ok());
    let bad = [
        GenerativeConfig {
            heads: 3,
            ..Default::default()
        },
        GenerativeConfig {
            vocab: 300,
            ..Default::default()
        },
        GenerativeConfig {
            depth: 0,
            ..Default::default()
        },
        GenerativeConfig {
            ln_eps: f32::NAN,
            ..Default::default()
        },
        GenerativeConfig {
            max_len: 0,
            ..Default::default()
        },
    ];
    for c in bad {
        assert!(
            matches!(c.validate(), Err(Error::InvalidConfig(_))),
            "{c:?}"
        );
        assert!(GenerativeModel::new(c, 0).is_err());
    }
    let json = serde_json::to_string(&GenerativeConfig::default()).unwrap();
    let back: GenerativeConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, GenerativeConfig::default());
}

#[test]
fn same_seed_gives_same_weights() {
    let a = GenerativeModel::new(small_config(), 7).unwrap();
    let b = GenerativeModel::new(small_config(), 7).unwrap();
    let c = GenerativeModel::new(small_config(), 8).unwrap();
    let e = vec![0.5f32; 768];
    let la = a.logits(&e, b"cat").unwrap();
    assert_eq!(la, b.logits(&e, b"cat").unwrap());
    assert_ne!(la, c.logits(&e, b"cat").unwrap());
}

#[test]
fn every_parameter_receives_a_gradient() {
    let Some(data) = wordnet() else { return };
    let model = GenerativeModel::new(GenerativeConfig::default(), 1).unwrap();
    let rows = validation_rows(data, 4);
    let batch = batch_of(&model, data, &rows);
    let expected: usize = rows.iter().map(|&i| data.phrase(i).len() + 1).sum();
    assert_eq!(batch.predicted_bytes(), expected);
    let loss = model.loss_sum(&batch, model.config().depth).unwrap();
    let mean = loss.to_scalar::<f32>().unwrap() / expected as f32;
    // An untrained model is close to uniform over 256 bytes (ln 256 = 5.55 nats).
    assert!((4.5..7.5).contains(&mean), "initial loss {mean}");
    let grads = loss.backward().unwrap();
    let vars = model.varmap().data().lock().unwrap();
    for (name, var) in vars.iter() {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name} has gradient norm {norm}"
        );
    }
}

#[test]
fn kv_cache_decoding_matches_training_forward() {
    let Some(data) = wordnet() else { return };
    let model = GenerativeModel::new(GenerativeConfig::default(), 3).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::F32).unwrap();
    for &row in &validation_rows(data, 3) {
        let text = data.phrase(row).as_bytes();
        let full = model.logits(data.embedding(row), text).unwrap();
        let cached = inference
            .teacher_forced_logits(data.embedding(row), text)
            .unwrap();
        assert_eq!(full.len(), text.len() + 1);
        assert_eq!(cached.len(), full.len());
        let worst = max_abs_diff(&full, &cached);
        assert!(worst < 1e-4, "max difference {worst}");
    }
}

#[test]
fn kv_cache_engine_matches_training_forward_without_data() {
    // Odd sizes exercise the scalar tails of the float32 kernels; both prefix modes.
    let configs = [
        GenerativeConfig {
            depth: 3,
            ..GenerativeConfig::default()
        },
        GenerativeConfig {
            embed_dim: 20,
            hidden: 36,
            heads: 2,
            mlp: 40,
            depth: 2,
            max_len: 40,
            inject_every_depth: false,
            ..GenerativeConfig::default()
        },
    ];
    for config in configs {
        let model = GenerativeModel::new(config.clone(), 5).unwrap();
        let inference = InferenceModel::from_model(&model, Precision::F32).unwrap();
        let e: Vec<f32> = (0..config.embed_dim)
            .map(|i| (i as f32 * 0.61).sin())
            .collect();
        let text = "caf\u{e9} au lait, twice".as_bytes();
        let full = model.logits(&e, text).unwrap();
        let cached = inference.teacher_forced_logits(&e, text).unwrap();
        assert_eq!(cached.len(), full.len());
        let worst = max_abs_diff(&full, &cached);
        assert!(worst < 1e-4, "max difference {worst}");
    }
}

#[test]
fn quantized_models_track_the_float_model() {
    let Some(data) = wordnet() else { return };
    let (model, rows) = trained(data);
    let float = InferenceModel::from_model(model, Precision::F32).unwrap();
    let greedy = DecodeOptions {
        max_len: 64,
        ..DecodeOptions::default()
    };
    for (precision, min_agree, max_err) in [(Precision::Q8, 0.97, 0.02), (Precision::Q4, 0.9, 0.1)]
    {
        let q = InferenceModel::from_model(model, precision).unwrap();
        let (mut agree, mut total, mut err2, mut norm2) = (0, 0, 0.0f64, 0.0f64);
        let mut same_text = 0;
        for &r in rows {
            let e = data.embedding(r);
            let text = decode(&float, e, &greedy).unwrap().text;
            same_text += usize::from(decode(&q, e, &greedy).unwrap().text == text);
            // Every greedy decision of the float model, replayed on the quantized one.
            let fl = float.teacher_forced_logits(e, text.as_bytes()).unwrap();
            let ql = q.teacher_forced_logits(e, text.as_bytes()).unwrap();
            for (a, b) in fl.iter().zip(&ql) {
                agree += usize::from(argmax(a) == argmax(b));
                total += 1;
                err2 += a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum::<f64>();
                norm2 += a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
            }
        }
        let rate = agree as f64 / total as f64;
        let rel = (err2 / norm2).sqrt();
        eprintln!("{precision:?}: {agree}/{total} greedy steps agree, {same_text}/8 texts equal, relative RMS logit error {rel:.4}");
        assert!(
            rate >= min_agree,
            "{precision:?}: greedy decisions agree {rate:.3}"
        );
        assert!(
            rel <= max_err,
            "{precision:?}: relative RMS logit error {rel}"
        );
    }
}

#[test]
fn gguf_round_trip_and_corruption_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let model = GenerativeModel::new(small_config(), 2).unwrap();
    let e: Vec<f32> = (0..768).map(|i| (i as f32 * 0.37).sin()).collect();
    let beam = DecodeOptions {
        strategy: Strategy::Beam { width: 2 },
        max_len: 24,
        stop_on_repeated_words: 0,
    };
    let mut sizes = Vec::new();
    for precision in [Precision::F32, Precision::Q8, Precision::Q4] {
        let q = InferenceModel::from_model(&model, precision).unwrap();
        let path = dir.path().join(format!("model-{}.gguf", precision.name()));
        q.save(&path).unwrap();
        let loaded = InferenceModel::load(&path).unwrap();
        assert_eq!(loaded.precision(), precision);
        assert_eq!(loaded.config(), model.config());
        assert_eq!(
            decode(&loaded, &e, &beam).unwrap(),
            decode(&q, &e, &beam).unwrap()
        );
        assert_eq!(
            loaded.teacher_forced_logits(&e, b"a phrase").unwrap(),
            q.teacher_forced_logits(&e, b"a phrase").unwrap()
        );
        sizes.push(std::fs::metadata(&path).unwrap().len());
    }
    // Q8_0 is 8.5 bits and Q4_0 4.5 bits per matrix weight, against 32 (the INT4 model keeps
    // the byte embedding, the MLP's two matrices and the attention output at Q8_0: 6.3 bits on
    // average with the default config).
    assert!(
        sizes[1] * 3 < sizes[0] && sizes[2] * 4 < sizes[0],
        "{sizes:?}"
    );
    assert!(sizes[2] < sizes[1]);

    let good = std::fs::read(dir.path().join("model-q8.gguf")).unwrap();
    let bad_path = dir.path().join("bad.gguf");
    let expect_invalid = |bytes: &[u8], what: &str| {
        std::fs::write(&bad_path, bytes).unwrap();
        match InferenceModel::load(&bad_path) {
            Err(Error::InvalidModel { path, reason }) => {
                assert_eq!(path, bad_path);
                eprintln!("{what}: {reason}");
            }
            other => panic!("{what}: expected InvalidModel, got {other:?}"),
        }
    };
    expect_invalid(&good[..good.len() / 2], "truncated");
    expect_invalid(&good[..100], "truncated header");
    expect_invalid(b"", "empty");
    let mut flipped = good.clone();
    let at = good.len() - 5000;
    flipped[at] ^= 0x40;
    expect_invalid(&flipped, "flipped byte");
    // A file whose configuration disagrees with its tensors.
    let text = String::from_utf8_lossy(&good).into_owned();
    let needle = "\"mlp\":384";
    assert!(text.contains(needle));
    let pos = good
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap();
    let mut mismatched = good.clone();
    mismatched[pos..pos + needle.len()].copy_from_slice(b"\"mlp\":320");
    expect_invalid(&mismatched, "config mismatch");
    assert!(matches!(
        InferenceModel::load(&dir.path().join("missing.gguf")),
        Err(Error::Io { .. })
    ));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".gguf"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_longer_max_len_keeps_the_weights_and_accepts_longer_texts() {
    let model = GenerativeModel::new(small_config(), 3).unwrap();
    let e = vec![0.25f32; 768];
    let long = vec![b'a'; 150];
    assert!(matches!(
        model.logits(&e, &long),
        Err(Error::InvalidArgument(_))
    ));
    let short = model.logits(&e, b"a short text").unwrap();
    let longer = model.with_max_len(200).unwrap();
    assert_eq!(longer.config().max_len, 200);
    assert_eq!(longer.parameter_count(), small_config().parameter_count());
    assert!(max_abs_diff(&short, &longer.logits(&e, b"a short text").unwrap()) < 1e-5);
    assert_eq!(longer.logits(&e, &long).unwrap().len(), 151);
    assert!(matches!(
        longer.with_max_len(0),
        Err(Error::InvalidConfig(_))
    ));
}
