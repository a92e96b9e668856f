//! A tiny MPNet encoder folder (hidden 8, one layer, a 16-word vocabulary) with deterministic
//! weights: for tests of the encoder folder's loader that need no downloaded model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

/// The tiny model's `config.json`.
pub const CONFIG: &str = r#"{
  "vocab_size": 16,
  "hidden_size": 8,
  "num_hidden_layers": 1,
  "num_attention_heads": 2,
  "intermediate_size": 16,
  "hidden_act": "gelu",
  "max_position_embeddings": 40,
  "layer_norm_eps": 1e-5,
  "relative_attention_num_buckets": 32,
  "pad_token_id": 1
}"#;

/// Its `tokenizer.json`: whole words, 16 of them.
pub const TOKENIZER: &str = r#"{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [],
  "normalizer": null,
  "pre_tokenizer": {"type": "Whitespace"},
  "post_processor": null,
  "decoder": null,
  "model": {
    "type": "WordLevel",
    "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "dog": 5, "cat": 6,
              "runs": 7, "sleeps": 8, "the": 9, "big": 10, "small": 11, "red": 12,
              "house": 13, "tree": 14, "car": 15},
    "unk_token": "<unk>"
  }
}"#;

/// Its `sentence_bert_config.json` (the position table holds 38 positions).
pub const SBERT: &str = r#"{"max_seq_length": 32, "do_lower_case": false}"#;

/// The tensors of the tiny model, by name (with the `mpnet.` prefix real checkpoints have
/// left off), with deterministic values.
pub fn tensors() -> HashMap<String, Tensor> {
    let (h, i, v) = (8usize, 16usize, 16usize);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, h]),
        ("embeddings.position_embeddings.weight".into(), vec![40, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
        ("encoder.relative_attention_bias.weight".into(), vec![32, 2]),
    ];
    let p = "encoder.layer.0";
    for proj in ["q", "k", "v", "o"] {
        shapes.push((format!("{p}.attention.attn.{proj}.weight"), vec![h, h]));
        shapes.push((format!("{p}.attention.attn.{proj}.bias"), vec![h]));
    }
    for norm in ["attention.LayerNorm", "output.LayerNorm"] {
        shapes.push((format!("{p}.{norm}.weight"), vec![h]));
        shapes.push((format!("{p}.{norm}.bias"), vec![h]));
    }
    shapes.push((format!("{p}.intermediate.dense.weight"), vec![i, h]));
    shapes.push((format!("{p}.intermediate.dense.bias"), vec![i]));
    shapes.push((format!("{p}.output.dense.weight"), vec![h, i]));
    shapes.push((format!("{p}.output.dense.bias"), vec![h]));
    shapes
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("LayerNorm.weight") {
                vec![1.0; n]
            } else {
                (0..n)
                    .map(|j| ((j * 7 + k * 13) as f32 * 0.37).sin() * 0.2)
                    .collect()
            };
            let t = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
            (name, t)
        })
        .collect()
}

/// Writes the tiny model's folder into `dir` (created if needed).
pub fn write(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER).unwrap();
    std::fs::write(dir.join("sentence_bert_config.json"), SBERT).unwrap();
    candle_core::safetensors::save(&tensors(), dir.join("model.safetensors")).unwrap();
}
