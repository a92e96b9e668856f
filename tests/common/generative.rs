//! Helpers of the generative tests: the shared WordNet data (skipped when absent), small
//! configurations and a briefly trained model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_nn::Optimizer;
use lightweight_decoder::generative::train::Dataset;
use lightweight_decoder::generative::{
    generate, Batch, DecodeOptions, GeneratedText, GenerativeConfig, GenerativeModel,
    InferenceModel,
};
use lightweight_decoder::{Result, UnitEmbedding};

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// The WordNet dataset, loaded once per test binary; `None` (with a message) when absent.
pub fn wordnet() -> Option<&'static Dataset> {
    static DATA: OnceLock<Option<Dataset>> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = data_dir();
        let text = dir.join("wordnet.txt");
        if !text.exists() {
            eprintln!("skipping: real data not found at {}", dir.display());
            return None;
        }
        let data = Dataset::load(
            &text,
            &dir.join("wordnet.i8.npy"),
            Some(&dir.join("wordnet.scale.npy")),
        )
        .expect("the shared WordNet data loads");
        Some(data)
    })
    .as_ref()
}

/// A small model for fast tests.
pub fn small_config() -> GenerativeConfig {
    GenerativeConfig {
        depth: 2,
        ..GenerativeConfig::default()
    }
}

/// Rows of `data` whose phrase is in the validation split, first `n`.
pub fn validation_rows(data: &Dataset, n: usize) -> Vec<usize> {
    data.split().validation.into_iter().take(n).collect()
}

/// A depth-1 model trained for 40 steps on the first 8 validation phrases (shared by tests),
/// with those rows.
pub fn trained(data: &Dataset) -> &'static (GenerativeModel, Vec<usize>) {
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

pub fn batch_of(model: &GenerativeModel, data: &Dataset, rows: &[usize]) -> Batch {
    let phrases: Vec<&[u8]> = rows.iter().map(|&i| data.phrase(i).as_bytes()).collect();
    let embs: Vec<&[f32]> = rows.iter().map(|&i| data.embedding(i)).collect();
    Batch::new(model.config(), &phrases, &embs, model.device()).unwrap()
}

/// Generates from a raw embedding, checked and normalised first.
pub fn decode(
    model: &InferenceModel,
    embedding: &[f32],
    options: &DecodeOptions,
) -> Result<GeneratedText> {
    let e = UnitEmbedding::new(embedding, model.config().embed_dim)?;
    generate(model, &e, None, options)
}
