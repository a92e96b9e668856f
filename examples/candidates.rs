//! Dump the generator's greedy output and N seeded samples per row as JSON lines (research aid).
//!
//! `cargo run --release --example candidates -- MODEL INPUT.npy SCALE.npy ROWS SAMPLES TEMP > out.jsonl`

use std::path::Path;

use lightweight_decoder::embedding::load_embeddings;
use lightweight_decoder::generative::{DecodeOptions, InferenceModel, Strategy};
use rayon::prelude::*;

fn main() -> lightweight_decoder::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let model = InferenceModel::load(Path::new(&a[1]))?;
    let emb = load_embeddings(Path::new(&a[2]), Some(Path::new(&a[3])))?;
    let rows: usize = a[4].parse().unwrap();
    let samples: u64 = a[5].parse().unwrap();
    let temperature: f32 = a[6].parse().unwrap();
    let out: Vec<String> = (0..rows.min(emb.nrows()))
        .into_par_iter()
        .map(|r| {
            let e: Vec<f32> = emb.row(r).to_vec();
            let mut lines = Vec::new();
            for k in 0..=samples {
                let strategy = if k == 0 {
                    Strategy::Greedy
                } else {
                    Strategy::Sample {
                        temperature,
                        top_k: 0,
                        top_p: 0.95,
                        seed: k,
                    }
                };
                let o = DecodeOptions {
                    strategy,
                    ..DecodeOptions::default()
                };
                let d = model.decode(&e, &o).unwrap();
                lines.push(
                    serde_json::json!({"row": r, "k": k, "text": d.text, "lp": d.mean_log_prob})
                        .to_string(),
                );
            }
            lines.join("\n")
        })
        .collect();
    println!("{}", out.join("\n"));
    Ok(())
}
