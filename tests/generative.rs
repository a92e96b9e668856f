//! Tests of the generative decoder and the dataset loader.
//!
//! Tests that need the real WordNet data look for it in `../shared/data` (relative to the crate
//! root) and are skipped, with a message, when it is absent.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_nn::Optimizer;
use lightweight_decoder::dataset::{fnv1a64, is_validation, load_phrases, Dataset, Split};
use lightweight_decoder::generative::{
    Batch, Checkpoint, DecodeOptions, Decoded, GenerativeConfig, GenerativeModel, InferenceModel,
    Precision, Strategy, TrainConfig, TrainLogEntry, Trainer,
};
use lightweight_decoder::Error;

mod common;
use common::{argmax, max_abs_diff};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// The WordNet dataset, loaded once per test binary; `None` (with a message) when absent.
fn wordnet() -> Option<&'static Dataset> {
    static DATA: OnceLock<Option<Dataset>> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = data_dir();
        let text = dir.join("wordnet.txt");
        if !text.exists() {
            eprintln!("skipping: real data not found at {}", dir.display());
            return None;
        }
        let data = Dataset::load_i8(
            &text,
            &dir.join("wordnet.i8.npy"),
            &dir.join("wordnet.scale.npy"),
        )
        .expect("the shared WordNet data loads");
        Some(data)
    })
    .as_ref()
}

/// A small model for fast tests.
fn small_config() -> GenerativeConfig {
    GenerativeConfig {
        depth: 2,
        ..GenerativeConfig::default()
    }
}

/// Rows of `data` whose phrase is in the validation split, first `n`.
fn validation_rows(data: &Dataset, n: usize) -> Vec<usize> {
    data.split().validation.into_iter().take(n).collect()
}

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
fn drafts_are_read_alike_in_training_and_inference() {
    let Some(data) = wordnet() else { return };
    let config = GenerativeConfig {
        max_draft: 24,
        ..GenerativeConfig::default()
    };
    let model = GenerativeModel::new(config.clone(), 4).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::F32).unwrap();
    let rows = validation_rows(data, 3);
    for (k, &row) in rows.iter().enumerate() {
        // another real phrase as the draft (cut to 24 bytes at a space); texts differ
        let draft = data.phrase(rows[(k + 1) % rows.len()]);
        let bytes = config.draft_bytes(draft);
        assert!(!bytes.is_empty() && bytes.len() <= 24);
        assert!(draft.as_bytes().starts_with(&bytes));
        let text = data.phrase(row).as_bytes();
        let e = data.embedding(row);
        let full = model.logits_with_draft(e, &bytes, text).unwrap();
        let cached = inference
            .teacher_forced_logits_with_draft(e, draft, text)
            .unwrap();
        assert_eq!(full.len(), text.len() + 1);
        assert_eq!(cached.len(), full.len());
        let worst = max_abs_diff(&full, &cached);
        assert!(worst < 1e-4, "max difference {worst}");
        // the draft changes what the model predicts
        let plain = inference.teacher_forced_logits(e, text).unwrap();
        assert!(max_abs_diff(&plain, &cached) > 1e-3);
        // a batch of rows with and without drafts gives each row its own logits
        let batch = Batch::with_drafts(
            &config,
            &[text, text],
            &[&bytes, &[]],
            &[e, e],
            model.device(),
        )
        .unwrap();
        assert_eq!(batch.predicted_bytes(), 2 * (text.len() + 1));
    }
    assert_eq!(config.draft_bytes("short"), b"short".to_vec());
    assert_eq!(
        GenerativeConfig::default().draft_bytes("anything"),
        Vec::<u8>::new()
    );
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

/// A depth-1 model trained for 40 steps on the first 8 validation phrases (shared by tests),
/// with those rows.
fn trained(data: &Dataset) -> &'static (GenerativeModel, Vec<usize>) {
    static TRAINED: OnceLock<(GenerativeModel, Vec<usize>)> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let config = GenerativeConfig {
            depth: 1,
            ..GenerativeConfig::default()
        };
        let model = GenerativeModel::new(config, 5).unwrap();
        let rows = validation_rows(data, 8);
        let batch = batch_of(&model, data, &rows);
        let params = candle_nn::ParamsAdamW {
            lr: 3e-3,
            ..Default::default()
        };
        let mut opt = candle_nn::AdamW::new(model.varmap().all_vars(), params).unwrap();
        for _ in 0..40 {
            let loss =
                (model.loss_sum(&batch, 1).unwrap() / batch.predicted_bytes() as f64).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        (model, rows)
    })
}

fn batch_of(model: &GenerativeModel, data: &Dataset, rows: &[usize]) -> Batch {
    let phrases: Vec<&[u8]> = rows.iter().map(|&i| data.phrase(i).as_bytes()).collect();
    let embs: Vec<&[f32]> = rows.iter().map(|&i| data.embedding(i)).collect();
    Batch::new(model.config(), &phrases, &embs, model.device()).unwrap()
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
            let text = float.decode(e, &greedy).unwrap().text;
            same_text += usize::from(q.decode(e, &greedy).unwrap().text == text);
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
fn training_reduces_loss_on_a_batch() {
    let Some(data) = wordnet() else { return };
    let (model, rows) = trained(data);
    let fresh = GenerativeModel::new(model.config().clone(), 5).unwrap();
    let batch = batch_of(model, data, rows);
    let before = fresh
        .loss_sum(&batch, 1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let after = model
        .loss_sum(&batch, 1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(after < 0.5 * before, "loss {before} -> {after}");
    // The same model on held-out phrases it never saw improved much less.
    let others: Vec<usize> = validation_rows(data, 200)[100..108].to_vec();
    let held_out = batch_of(model, data, &others);
    let unseen_before = fresh
        .loss_sum(&held_out, 1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let unseen_after = model
        .loss_sum(&held_out, 1)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        unseen_after / unseen_before > after / before,
        "held-out {unseen_before} -> {unseen_after}"
    );
}

fn assert_valid(d: &Decoded, max_len: usize) {
    assert!(d.text.len() <= max_len);
    assert!(!d.text.contains('\0'));
    assert!(
        d.mean_log_prob.is_finite() && d.mean_log_prob <= 0.0,
        "{d:?}"
    );
    assert_eq!(d.truncated, d.text.len() == max_len);
}

#[test]
fn decoding_yields_valid_utf8_and_respects_max_len() {
    // An untrained model emits near-uniform bytes: without masking most outputs would be
    // invalid UTF-8, so this exercises the mask.
    let model = GenerativeModel::new(small_config(), 11).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::F32).unwrap();
    let embedding: Vec<f32> = (0..768)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut non_ascii = false;
    for seed in 0..6 {
        for max_len in [0, 1, 5, 40] {
            let options = DecodeOptions {
                strategy: Strategy::Sample {
                    temperature: 2.0,
                    top_k: 0,
                    top_p: 1.0,
                    seed,
                },
                max_len,
                stop_on_repeated_words: 0,
            };
            let d = inference.decode(&embedding, &options).unwrap();
            assert_valid(&d, max_len);
            non_ascii |= !d.text.is_ascii();
        }
    }
    assert!(
        non_ascii,
        "hot sampling never produced a multi-byte character"
    );
    for strategy in [Strategy::Greedy, Strategy::Beam { width: 3 }] {
        let d = inference
            .decode(
                &embedding,
                &DecodeOptions {
                    strategy,
                    stop_on_repeated_words: 0,
                    max_len: 12,
                },
            )
            .unwrap();
        assert_valid(&d, 12);
    }
}

#[test]
fn sampling_is_reproducible_and_beam_is_at_least_as_likely_as_greedy() {
    let Some(data) = wordnet() else { return };
    let (model, rows) = trained(data);
    let inference = InferenceModel::from_model(model, Precision::F32).unwrap();
    let e = data.embedding(rows[0]);
    let sample = |seed| DecodeOptions {
        strategy: Strategy::Sample {
            temperature: 1.5,
            top_k: 40,
            top_p: 0.95,
            seed,
        },
        max_len: 64,
        stop_on_repeated_words: 0,
    };
    let a = inference.decode(e, &sample(1)).unwrap();
    assert_eq!(a, inference.decode(e, &sample(1)).unwrap());
    let others: Vec<String> = (2..8)
        .map(|s| inference.decode(e, &sample(s)).unwrap().text)
        .collect();
    assert!(
        others.iter().any(|t| *t != a.text),
        "six seeds all gave {:?}",
        a.text
    );
    let greedy = inference.decode(e, &DecodeOptions::default()).unwrap();
    let beam = inference
        .decode(
            e,
            &DecodeOptions {
                strategy: Strategy::Beam { width: 4 },
                max_len: 128,
                stop_on_repeated_words: 0,
            },
        )
        .unwrap();
    assert!(
        beam.mean_log_prob >= greedy.mean_log_prob - 1e-6,
        "{beam:?} vs {greedy:?}"
    );
    // The reported confidence is the model's mean log-probability of the text it returned.
    for d in [&a, &greedy, &beam] {
        let scored = inference.mean_log_prob(e, &d.text).unwrap();
        assert!((scored - d.mean_log_prob).abs() < 1e-4, "{scored} vs {d:?}");
    }
    // MBR returns the consensus: one of the outputs it drew (greedy, or a sample with top-p
    // 0.95 at seeds 3..6), reproducibly.
    let mbr_options = DecodeOptions {
        strategy: Strategy::Mbr {
            samples: 4,
            temperature: 1.5,
            seed: 3,
        },
        max_len: 64,
        stop_on_repeated_words: 0,
    };
    let mbr = inference.decode(e, &mbr_options).unwrap();
    assert_eq!(mbr, inference.decode(e, &mbr_options).unwrap());
    let drawn: Vec<String> = (3..7)
        .map(|seed| {
            let o = DecodeOptions {
                strategy: Strategy::Sample {
                    temperature: 1.5,
                    top_k: 0,
                    top_p: 0.95,
                    seed,
                },
                max_len: 64,
                stop_on_repeated_words: 0,
            };
            inference.decode(e, &o).unwrap().text
        })
        .chain([inference
            .decode(
                e,
                &DecodeOptions {
                    max_len: 64,
                    stop_on_repeated_words: 0,
                    ..DecodeOptions::default()
                },
            )
            .unwrap()
            .text])
        .collect();
    assert!(drawn.contains(&mbr.text), "{mbr:?} not in {drawn:?}");
    // The trained phrase is more likely under its own embedding than under another's.
    let own = inference.mean_log_prob(e, data.phrase(rows[0])).unwrap();
    let other = inference
        .mean_log_prob(data.embedding(rows[4]), data.phrase(rows[0]))
        .unwrap();
    assert!(own > other, "{own} <= {other}");
    let bad = DecodeOptions {
        max_len: 500,
        ..DecodeOptions::default()
    };
    assert!(matches!(
        inference.decode(e, &bad),
        Err(Error::InvalidArgument(_))
    ));
    for strategy in [
        Strategy::Beam { width: 0 },
        Strategy::Mbr {
            samples: 0,
            temperature: 1.0,
            seed: 0,
        },
        Strategy::Mbr {
            samples: 2,
            temperature: f32::NAN,
            seed: 0,
        },
        Strategy::Sample {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        Strategy::Sample {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            seed: 0,
        },
    ] {
        let options = DecodeOptions {
            strategy,
            stop_on_repeated_words: 0,
            max_len: 10,
        };
        assert!(matches!(
            inference.decode(e, &options),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn invalid_embeddings_are_errors() {
    let model = GenerativeModel::new(small_config(), 0).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::Q8).unwrap();
    let o = DecodeOptions::default();
    assert!(matches!(
        inference.decode(&[0.1; 10], &o),
        Err(Error::DimensionMismatch {
            expected: 768,
            got: 10
        })
    ));
    let mut nan = vec![0.1f32; 768];
    nan[5] = f32::NAN;
    assert!(matches!(
        inference.decode(&nan, &o),
        Err(Error::NonFinite { position: 5, .. })
    ));
    let mut inf = vec![0.1f32; 768];
    inf[700] = f32::NEG_INFINITY;
    assert!(matches!(
        inference.decode(&inf, &o),
        Err(Error::NonFinite { position: 700, .. })
    ));
    assert!(matches!(
        inference.decode(&[0.0; 768], &o),
        Err(Error::ZeroVector { .. })
    ));
    let e = vec![0.1f32; 768];
    let too_long = vec![b'a'; 129];
    assert!(matches!(
        Batch::new(model.config(), &[&too_long], &[&e], model.device()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Batch::new(model.config(), &[b"a\0b"], &[&e], model.device()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Batch::new(model.config(), &[b"ab"], &[&[0.0; 768]], model.device()),
        Err(Error::ZeroVector { .. })
    ));
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
            loaded.decode(&e, &beam).unwrap(),
            q.decode(&e, &beam).unwrap()
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
fn learning_rate_schedule_and_depth_curriculum() {
    let c = TrainConfig {
        steps: 1000,
        warmup_steps: 100,
        lr: 1e-3,
        min_lr_ratio: 0.1,
        depth_schedule: vec![
            lightweight_decoder::generative::DepthStage {
                from_step: 0,
                depth: 1,
            },
            lightweight_decoder::generative::DepthStage {
                from_step: 500,
                depth: 3,
            },
        ],
        ..TrainConfig::default()
    };
    assert!(c.validate().is_ok());
    assert!((c.learning_rate(0) - 1e-5).abs() < 1e-12);
    assert!((c.learning_rate(99) - 1e-3).abs() < 1e-12);
    assert!((c.learning_rate(550) - 0.55e-3).abs() < 1e-9);
    assert!((c.learning_rate(1000) - 1e-4).abs() < 1e-12);
    assert!(c.learning_rate(300) > c.learning_rate(700));
    assert_eq!((c.depth(0, 4), c.depth(499, 4), c.depth(500, 4)), (1, 1, 3));
    assert_eq!(TrainConfig::default().depth(10, 4), 4);
    let linear = TrainConfig {
        decay: lightweight_decoder::generative::Decay::Linear,
        ..c.clone()
    };
    assert!((linear.learning_rate(550) - 0.55e-3).abs() < 1e-9);
    assert!(TrainConfig {
        batch_size: 0,
        ..TrainConfig::default()
    }
    .validate()
    .is_err());
    assert!(TrainConfig {
        lr: f64::NAN,
        ..TrainConfig::default()
    }
    .validate()
    .is_err());
    let reversed = TrainConfig {
        depth_schedule: c.depth_schedule.iter().rev().copied().collect(),
        ..c
    };
    assert!(reversed.validate().is_err());
}

#[test]
fn trainer_logs_checkpoints_and_resumes() {
    let Some(data) = wordnet() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        steps: 4,
        batch_size: 8,
        warmup_steps: 2,
        eval_every: 2,
        eval_phrases: 16,
        checkpoint_every: 2,
        ..TrainConfig::default()
    };
    let model_config = GenerativeConfig {
        depth: 1,
        ..GenerativeConfig::default()
    };
    // Straight through: 4 steps.
    let mut straight = Trainer::new(
        GenerativeModel::new(model_config.clone(), 9).unwrap(),
        config.clone(),
        data,
    )
    .unwrap();
    let summary = straight.run(&dir.path().join("a"), false).unwrap();
    assert_eq!(summary.steps, 4);
    assert!(
        summary.final_val_bpb < summary.initial_val_bpb,
        "{summary:?}"
    );
    assert!(summary.bytes_per_s > 0.0);
    let log = std::fs::read_to_string(dir.path().join("a/train_log.jsonl")).unwrap();
    let entries: Vec<TrainLogEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.step).collect::<Vec<_>>(),
        vec![0, 2, 4]
    );
    assert!(entries[1..]
        .iter()
        .all(|e| e.train_bpb.is_some() && e.lr > 0.0));
    // greedy decodes of the 16 measured validation phrases, scored by token F1
    assert!(entries
        .iter()
        .all(|e| e.val_token_f1.is_some_and(|f1| (0.0..=1.0).contains(&f1))));
    // Two steps, then resume from the step-2 checkpoint for two more: same weights.
    let mut first = Trainer::new(
        GenerativeModel::new(model_config, 9).unwrap(),
        TrainConfig {
            steps: 2,
            ..config.clone()
        },
        data,
    )
    .unwrap();
    first.run(&dir.path().join("b"), false).unwrap();
    let mut resumed = Trainer::resume(&dir.path().join("b"), Some(config.clone()), data).unwrap();
    assert_eq!(resumed.step(), 2);
    resumed.run(&dir.path().join("b"), false).unwrap();
    let e = data.embedding(0);
    let a = straight.model().logits(e, b"dog").unwrap();
    let b = resumed.model().logits(e, b"dog").unwrap();
    // The optimizer moments restart on resume, so weights are close but not identical.
    let worst = max_abs_diff(&a, &b);
    assert!(worst < 0.5, "resumed run drifted by {worst}");
    // Checkpoints are readable and checked.
    let ck = Checkpoint::read(&dir.path().join("a/step-0000004.json")).unwrap();
    assert_eq!(ck.state.step, 4);
    assert_eq!(ck.model.logits(e, b"dog").unwrap(), a);
    let weights = dir.path().join("a").join(&ck.state.weights);
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    assert!(matches!(
        Checkpoint::read(&dir.path().join("a/step-0000004.json")),
        Err(Error::InvalidModel { .. })
    ));
}

#[test]
fn data_parallel_workers_give_the_same_update() {
    let Some(data) = wordnet() else { return };
    let config = TrainConfig {
        steps: 3,
        batch_size: 8,
        warmup_steps: 1,
        ..TrainConfig::default()
    };
    let trainer = |workers| {
        let model = GenerativeModel::new(small_config(), 4).unwrap();
        let mut t = Trainer::new(model, config.clone(), data).unwrap();
        t.set_workers(workers);
        let stats: Vec<_> = (0..3).map(|_| t.train_step().unwrap()).collect();
        (t, stats)
    };
    let (one, one_stats) = trainer(1);
    // 8 rows in 3 shards of 3, 3 and 2 rows
    let (three, three_stats) = trainer(3);
    for (a, b) in one_stats.iter().zip(&three_stats) {
        assert_eq!(a.bytes, b.bytes);
        assert!((a.nats - b.nats).abs() < 1e-3 * a.nats, "{a:?} vs {b:?}");
    }
    let e = data.embedding(0);
    let a = one.model().logits(e, b"the sea").unwrap();
    let b = three.model().logits(e, b"the sea").unwrap();
    let worst = max_abs_diff(&a, &b);
    assert!(worst < 1e-3, "sharded training drifted by {worst}");
}

#[test]
fn training_noise_is_validated_seeded_and_reaches_the_model() {
    for bad in [
        TrainConfig {
            noise_share: 1.5,
            ..TrainConfig::default()
        },
        TrainConfig {
            noise_min_cosine: 0.0,
            ..TrainConfig::default()
        },
    ] {
        assert!(matches!(bad.validate(), Err(Error::InvalidConfig(_))));
    }
    let Some(data) = wordnet() else { return };
    let first_loss = |noise_share: f64| {
        let config = TrainConfig {
            steps: 1,
            batch_size: 8,
            warmup_steps: 1,
            noise_share,
            noise_min_cosine: 0.3,
            ..TrainConfig::default()
        };
        let model = GenerativeModel::new(small_config(), 4).unwrap();
        let mut t = Trainer::new(model, config, data).unwrap();
        t.train_step().unwrap().nats
    };
    let (clean, noisy) = (first_loss(0.0), first_loss(1.0));
    assert_ne!(clean, noisy, "perturbed embeddings change the loss");
    assert_eq!(noisy, first_loss(1.0), "the noise is seeded");
}

#[test]
fn validation_split_is_fixed_by_fnv1a() {
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    let phrases = ["a", "b", "the cat sat", "dog"];
    let split = Split::of(phrases);
    let mut all: Vec<usize> = split
        .train
        .iter()
        .chain(&split.validation)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    for &v in &split.validation {
        assert!(is_validation(phrases[v]));
    }
    let Some(data) = wordnet() else { return };
    let split = data.split();
    let fraction = split.validation.len() as f64 / data.len() as f64;
    assert!(
        (fraction - 1.0 / 64.0).abs() < 0.002,
        "validation fraction {fraction}"
    );
    assert_eq!(split.train.len() + split.validation.len(), data.len());
}

#[test]
fn dataset_loads_real_data_with_unit_norm_rows() {
    let Some(data) = wordnet() else { return };
    assert_eq!(data.len(), 175_784);
    assert_eq!(data.dim(), 768);
    for i in [0, 1000, data.len() - 1] {
        let norm: f32 = data.embedding(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "row {i} has norm {norm}");
    }
    let phrases = load_phrases(&data_dir().join("wordnet.txt")).unwrap();
    assert_eq!(phrases[0], data.phrase(0));
    // Similar phrases have similar embeddings: a phrase is closer to itself than to others.
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(
        dot(data.embedding(0), data.embedding(0)) > dot(data.embedding(0), data.embedding(90_000))
    );
}

#[test]
fn dataset_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("p.txt");
    std::fs::write(&text, "one\ntwo\n").unwrap();
    let npy = dir.path().join("e.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::ones((2, 4))).unwrap();
    let ok = Dataset::load_f32(&text, &npy).unwrap();
    assert_eq!((ok.len(), ok.dim()), (2, 4));
    assert!((ok.embedding(1)[0] - 0.5).abs() < 1e-6);
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::ones((3, 4))).unwrap();
    assert!(matches!(
        Dataset::load_f32(&text, &npy),
        Err(Error::Npy { .. })
    ));
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::zeros((2, 4))).unwrap();
    assert!(matches!(
        Dataset::load_f32(&text, &npy),
        Err(Error::Npy { .. })
    ));
    std::fs::write(&npy, b"not an npy file").unwrap();
    assert!(matches!(
        Dataset::load_f32(&text, &npy),
        Err(Error::Npy { .. })
    ));
    assert!(matches!(
        Dataset::load_f32(&dir.path().join("missing.txt"), &npy),
        Err(Error::Io { .. })
    ));
    let i8_path = dir.path().join("q.npy");
    let scale = dir.path().join("s.npy");
    ndarray_npy::write_npy(&i8_path, &ndarray::array![[1i8, 2], [3, -4]]).unwrap();
    ndarray_npy::write_npy(&scale, &ndarray::array![0.5f32, 2.0]).unwrap();
    let q = Dataset::load_i8(&text, &i8_path, &scale).unwrap();
    assert!((q.embedding(1)[1] + 0.8).abs() < 1e-6);
    ndarray_npy::write_npy(&scale, &ndarray::array![0.5f32]).unwrap();
    assert!(matches!(
        Dataset::load_i8(&text, &i8_path, &scale),
        Err(Error::Npy { .. })
    ));
    assert!(matches!(
        Dataset::new(vec!["a".into()], vec![1.0; 3], 2),
        Err(Error::InvalidArgument(_))
    ));
}

/// Smoke training on the real data: `LWDEC_SMOKE_STEPS` (default 300) steps of 64 phrases at
/// depth 2; prints the validation bits per byte before and after and the throughput.
#[test]
#[ignore = "several minutes: run with --ignored to smoke-train"]
fn smoke_training() {
    let Some(data) = wordnet() else { return };
    let steps = std::env::var("LWDEC_SMOKE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let out = std::env::var("LWDEC_SMOKE_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("lwdec-smoke"));
    let config = TrainConfig {
        steps,
        batch_size: 64,
        lr: 2e-3,
        warmup_steps: steps / 10,
        eval_every: (steps / 6).max(1),
        eval_phrases: 512,
        checkpoint_every: steps,
        ..TrainConfig::default()
    };
    let model = GenerativeModel::new(
        GenerativeConfig {
            depth: 2,
            ..GenerativeConfig::default()
        },
        0,
    )
    .unwrap();
    let mut trainer = Trainer::new(model, config, data).unwrap();
    let summary = trainer.run(&out, true).unwrap();
    println!(
        "{}",
        std::fs::read_to_string(out.join("train_log.jsonl")).unwrap()
    );
    println!("{summary:?}");
    let inference = InferenceModel::from_model(trainer.model(), Precision::F32).unwrap();
    for &r in &validation_rows(data, 5) {
        let d = inference
            .decode(data.embedding(r), &DecodeOptions::default())
            .unwrap();
        println!(
            "{:?} -> {:?} ({:.2})",
            data.phrase(r),
            d.text,
            d.mean_log_prob
        );
    }
    assert!(summary.final_val_bpb < summary.initial_val_bpb);
}

#[test]
fn drafts_are_checked_and_trained_on() {
    let Some(data) = wordnet() else { return };
    let train = TrainConfig {
        steps: 2,
        batch_size: 4,
        eval_phrases: 4,
        eval_decodes: 0,
        ..TrainConfig::default()
    };
    let plain = GenerativeModel::new(
        GenerativeConfig {
            depth: 1,
            ..small_config()
        },
        1,
    )
    .unwrap();
    let mut trainer = Trainer::new(plain, train.clone(), data).unwrap();
    let neighbours: Vec<Option<usize>> = (0..data.len())
        .map(|r| Some((r + 1) % data.len()))
        .collect();
    // a model without drafts refuses them
    assert!(matches!(
        trainer.set_drafts(neighbours.clone(), 0.2, 0.3),
        Err(Error::InvalidConfig(_))
    ));
    let config = GenerativeConfig {
        depth: 1,
        max_draft: 32,
        ..small_config()
    };
    let model = GenerativeModel::new(config, 1).unwrap();
    let mut trainer = Trainer::new(model, train, data).unwrap();
    assert!(trainer
        .set_drafts(neighbours[1..].to_vec(), 0.2, 0.3)
        .is_err());
    let mut out_of_range = neighbours.clone();
    out_of_range[0] = Some(data.len());
    assert!(trainer.set_drafts(out_of_range, 0.2, 0.3).is_err());
    assert!(trainer.set_drafts(neighbours.clone(), 0.8, 0.3).is_err());
    trainer.set_drafts(neighbours, 0.2, 0.3).unwrap();
    let before = trainer.validation_bpb().unwrap();
    let stats = trainer.train_step().unwrap();
    assert!(stats.nats.is_finite() && stats.bytes > 0);
    assert!(trainer.validation_bpb().unwrap().is_finite() && before.is_finite());
}
