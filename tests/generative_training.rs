//! Tests of training: the loss falls, schedules, logs, checkpoints and resumes, data-parallel workers, noise, and the dataset with its fixed split.
//!
//! Tests that need the real WordNet data look for it in `../shared/data` (relative to the crate
//! root) and are skipped, with a message, when it is absent.

mod common;
use common::generative::*;
use common::max_abs_diff;

use std::path::PathBuf;

use lightweight_decoder::generative::train::{
    is_validation, load_phrases, Checkpoint, Dataset, Decay, DepthStage, Split, TrainConfig,
    TrainLogEntry, Trainer,
};
use lightweight_decoder::generative::{
    DecodeOptions, GenerativeConfig, GenerativeModel, InferenceModel, Precision,
};
use lightweight_decoder::Error;

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

#[test]
fn learning_rate_schedule_and_depth_curriculum() {
    let c = TrainConfig {
        steps: 1000,
        warmup_steps: 100,
        lr: 1e-3,
        min_lr_ratio: 0.1,
        depth_schedule: vec![
            DepthStage {
                from_step: 0,
                depth: 1,
            },
            DepthStage {
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
        decay: Decay::Linear,
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
    let ok = Dataset::load(&text, &npy, None).unwrap();
    assert_eq!((ok.len(), ok.dim()), (2, 4));
    assert!((ok.embedding(1)[0] - 0.5).abs() < 1e-6);
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::ones((3, 4))).unwrap();
    assert!(matches!(
        Dataset::load(&text, &npy, None),
        Err(Error::Npy { .. })
    ));
    ndarray_npy::write_npy(&npy, &ndarray::Array2::<f32>::zeros((2, 4))).unwrap();
    assert!(matches!(
        Dataset::load(&text, &npy, None),
        Err(Error::Npy { .. })
    ));
    std::fs::write(&npy, b"not an npy file").unwrap();
    assert!(matches!(
        Dataset::load(&text, &npy, None),
        Err(Error::Npy { .. })
    ));
    assert!(matches!(
        Dataset::load(&dir.path().join("missing.txt"), &npy, None),
        Err(Error::Io { .. })
    ));
    let i8_path = dir.path().join("q.npy");
    let scale = dir.path().join("s.npy");
    ndarray_npy::write_npy(&i8_path, &ndarray::array![[1i8, 2], [3, -4]]).unwrap();
    ndarray_npy::write_npy(&scale, &ndarray::array![0.5f32, 2.0]).unwrap();
    let q = Dataset::load(&text, &i8_path, Some(&scale)).unwrap();
    assert!((q.embedding(1)[1] + 0.8).abs() < 1e-6);
    ndarray_npy::write_npy(&scale, &ndarray::array![0.5f32]).unwrap();
    assert!(matches!(
        Dataset::load(&text, &i8_path, Some(&scale)),
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
        let d = decode(&inference, data.embedding(r), &DecodeOptions::default()).unwrap();
        println!(
            "{:?} -> {:?} ({:.2})",
            data.phrase(r),
            d.text,
            d.mean_log_prob
        );
    }
    assert!(summary.final_val_bpb < summary.initial_val_bpb);
}
