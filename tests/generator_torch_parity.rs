//! Parity of the Rust generative model with its PyTorch mirror (`scripts/generator_torch/`,
//! the GPU trainer) on the fixture `tests/fixtures/generator_torch/` written by
//! `scripts/generator_torch/make_parity_fixture.py`: on four real `samples/ood` phrases and
//! their embeddings, a torch-written checkpoint loads here and gives the same logits, summed
//! loss and parameter gradients, and the committed run7 checkpoint gives the same logits and
//! loss in both. The trainer's pieces agree too: one training step (AdamW groups, clipping,
//! learning rate) from the same weights on the same rows, the learning-rate and depth
//! schedule, and the FNV-1a validation split.

use std::path::{Path, PathBuf};

use lightweight_decoder::eval::samples::{SampleSet, OUT_OF_DOMAIN};
use lightweight_decoder::generative::train::{
    is_validation, Checkpoint, Dataset, TrainConfig, Trainer,
};
use lightweight_decoder::generative::{Batch, GenerativeModel};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/generator_torch")
}

struct Inputs {
    texts: Vec<String>,
    embeddings: Vec<Vec<f32>>,
    meta: serde_json::Value,
    /// The whole of `samples/ood` (texts and embeddings).
    ood: SampleSet,
}

fn inputs() -> Inputs {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("parity.json")).expect("parity.json"),
    )
    .expect("parity.json is JSON");
    let ood = SampleSet::bundled(OUT_OF_DOMAIN).expect("samples/ood");
    let rows: Vec<usize> = meta["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_u64().expect("row") as usize)
        .collect();
    let texts: Vec<String> = rows.iter().map(|&r| ood.texts[r].clone()).collect();
    let fixture_texts: Vec<&str> = meta["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text"))
        .collect();
    assert_eq!(
        texts, fixture_texts,
        "samples/ood changed: regenerate the fixture"
    );
    let embeddings = rows
        .iter()
        .map(|&r| ood.embeddings.row(r).to_vec())
        .collect();
    Inputs {
        texts,
        embeddings,
        meta,
        ood,
    }
}

/// Largest absolute difference between the Rust teacher-forced logits of every row and the
/// fixture's padded `[rows, width + 1, 256]` logits (only each row's own positions).
fn max_logit_diff(model: &GenerativeModel, inputs: &Inputs, npy: &Path) -> f32 {
    let torch: ndarray::Array3<f32> = ndarray_npy::read_npy(npy).expect("fixture logits");
    assert_eq!(torch.dim().0, inputs.texts.len());
    let mut worst = 0.0f32;
    for (r, (text, emb)) in inputs.texts.iter().zip(&inputs.embeddings).enumerate() {
        let rust = model.logits(emb, text.as_bytes()).expect("logits");
        assert_eq!(rust.len(), text.len() + 1);
        for (t, row) in rust.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                worst = worst.max((x - torch[[r, t, v]]).abs());
            }
        }
    }
    worst
}

fn loss_sum(model: &GenerativeModel, inputs: &Inputs) -> (candle_core::Tensor, f64) {
    let phrases: Vec<&[u8]> = inputs.texts.iter().map(|t| t.as_bytes()).collect();
    let embs: Vec<&[f32]> = inputs.embeddings.iter().map(Vec::as_slice).collect();
    let batch = Batch::new(model.config(), &phrases, &embs, model.device()).expect("batch");
    let loss = model
        .loss_sum(&batch, model.config().depth)
        .expect("loss_sum");
    let value = f64::from(loss.to_scalar::<f32>().expect("scalar"));
    (loss, value)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-6)
}

#[test]
fn torch_written_checkpoint_computes_the_same_logits_loss_and_gradients() {
    let inputs = inputs();
    let model = Checkpoint::read(&fixture_dir().join("tiny"))
        .expect("the torch-written checkpoint loads")
        .model;
    assert_eq!(model.config().hidden, 16);
    let diff = max_logit_diff(&model, &inputs, &fixture_dir().join("tiny.logits.f32.npy"));
    assert!(diff < 1e-3, "logits differ by up to {diff}");

    let (loss, value) = loss_sum(&model, &inputs);
    let expected = inputs.meta["tiny"]["loss_sum"].as_f64().expect("loss_sum");
    assert!(
        close(value, expected, 1e-5),
        "loss {value} vs torch {expected}"
    );

    let grads = loss.backward().expect("backward");
    let vars = model.varmap().data().lock().expect("varmap");
    let norms = inputs.meta["tiny"]["grad_norms"]
        .as_object()
        .expect("grad_norms");
    assert_eq!(norms.len(), vars.len());
    for (name, torch_norm) in norms {
        let g = grads
            .get(&vars[name.as_str()])
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = f64::from(
            g.sqr()
                .and_then(|s| s.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .expect("norm"),
        )
        .sqrt();
        let torch_norm = torch_norm.as_f64().expect("norm");
        assert!(
            close(norm, torch_norm, 1e-3),
            "{name}: gradient norm {norm} vs torch {torch_norm}"
        );
    }
}

#[test]
fn committed_checkpoint_computes_the_same_logits_and_loss_in_torch() {
    let inputs = inputs();
    let path = root().join(
        inputs.meta["run7"]["checkpoint"]
            .as_str()
            .expect("checkpoint"),
    );
    let model = Checkpoint::read(&path).expect("run7 checkpoint").model;
    assert_eq!(model.parameter_count(), 722_944);
    let diff = max_logit_diff(&model, &inputs, &fixture_dir().join("run7.logits.f32.npy"));
    assert!(diff < 2e-3, "logits differ by up to {diff}");
    let (_, value) = loss_sum(&model, &inputs);
    let expected = inputs.meta["run7"]["loss_sum"].as_f64().expect("loss_sum");
    assert!(
        close(value, expected, 1e-5),
        "loss {value} vs torch {expected}"
    );
}

/// Every parameter of `model`, flattened, by name.
fn weights(model: &GenerativeModel) -> Vec<(String, Vec<f32>)> {
    let vars = model.varmap().data().lock().expect("varmap");
    let mut out: Vec<(String, Vec<f32>)> = vars
        .iter()
        .map(|(name, var)| {
            let flat = var.as_tensor().flatten_all().expect("flatten");
            (name.clone(), flat.to_vec1::<f32>().expect("values"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn one_training_step_matches_the_torch_trainer() {
    let inputs = inputs();
    let step = &inputs.meta["step"];
    let config: TrainConfig =
        TrainConfig::from_json(&step["config"].to_string()).expect("step config");
    let lr = config.learning_rate(0);
    // the fixture rows, and one validation phrase (the trainer needs one; it never trains on it)
    let validation_row = step["validation_row"].as_u64().expect("row") as usize;
    let mut phrases = inputs.texts.clone();
    phrases.push(inputs.ood.texts[validation_row].clone());
    let mut values: Vec<f32> = inputs.embeddings.concat();
    values.extend(inputs.ood.embeddings.row(validation_row));
    let data = Dataset::new(phrases, values, 768).expect("dataset");
    assert_eq!(data.split().train.len(), inputs.texts.len());

    let start = Checkpoint::read(&fixture_dir().join("tiny"))
        .expect("tiny")
        .model;
    let mut trainer = Trainer::new(start, config, &data).expect("trainer");
    trainer.train_step().expect("one step");
    let torch = Checkpoint::read(&fixture_dir().join("tiny_step1"))
        .expect("the torch trainer's step")
        .model;
    let (rust, torch) = (weights(trainer.model()), weights(&torch));
    assert_eq!(rust.len(), 14);
    let (mut total, mut off, mut worst) = (0usize, 0usize, 0.0f32);
    for ((name, a), (other, b)) in rust.iter().zip(&torch) {
        assert_eq!(name, other);
        for (x, y) in a.iter().zip(b) {
            let d = (x - y).abs();
            worst = worst.max(d);
            off += usize::from(d > 0.01 * lr as f32);
            total += 1;
        }
    }
    // Adam's first step moves each weight by about lr * sign(gradient): a gradient at rounding
    // level may flip sign between the two, so a few weights may differ by up to 2 lr.
    assert!(
        worst <= 2.1 * lr as f32,
        "a weight differs by {worst} (lr {lr})"
    );
    assert!(
        (off as f64) < 1e-3 * total as f64,
        "{off} of {total} weights differ by more than 1% of lr"
    );
}

#[test]
fn schedule_and_split_match_the_torch_trainer() {
    let inputs = inputs();
    let schedule = &inputs.meta["schedule"];
    let config = TrainConfig::from_json(&schedule["config"].to_string()).expect("schedule");
    for point in schedule["at"].as_array().expect("at") {
        let step = point[0].as_u64().expect("step") as usize;
        let lr = point[1].as_f64().expect("lr");
        let rust = config.learning_rate(step);
        assert!(
            close(rust, lr, 1e-12),
            "step {step}: lr {rust} vs torch {lr}"
        );
        assert_eq!(
            config.depth(step, 3) as u64,
            point[2].as_u64().expect("depth"),
            "depth at step {step}"
        );
    }
    let split = inputs.meta["validation_split"].as_array().expect("split");
    assert!(split.iter().any(|v| v.as_bool() == Some(true)));
    for (line, held_out) in inputs.ood.texts.iter().zip(split) {
        assert_eq!(
            is_validation(line),
            held_out.as_bool().expect("bool"),
            "{line}"
        );
    }
}
