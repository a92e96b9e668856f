//! The model folder's files, read and checked before anything is built from them:
//! `config.json`'s ranges, every tensor's declared shape and byte range against what the
//! config implies (before a byte of weights is read), then the weights themselves (finite,
//! the shapes the network needs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::model::{Config, INSTALL_HINT};
use crate::encoder::{EncoderError, Result};

pub(super) fn missing(path: &Path) -> EncoderError {
    EncoderError::Missing {
        dir: path.to_path_buf(),
        hint: INSTALL_HINT.into(),
    }
}

pub(super) fn corrupt(file: &Path, reason: impl std::fmt::Display) -> EncoderError {
    EncoderError::Corrupt {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(super) fn mismatch(what: &str, expected: impl ToString, found: impl ToString) -> EncoderError {
    EncoderError::Mismatch {
        what: what.into(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T> {
    let text = std::fs::read_to_string(file).map_err(|e| corrupt(file, e))?;
    serde_json::from_str(&text).map_err(|e| corrupt(file, e))
}

/// Most bytes a `model.safetensors` header may take (the real one is 26 KB).
const MAX_SAFETENSORS_HEADER: u64 = 16 << 20;

/// The tensors a `model.safetensors` file declares, from its header alone: (name, shape).
/// The header is bounded, and each tensor's byte range must match its shape and lie in the
/// file, so nothing is allocated by a size the file does not hold.
pub(super) fn safetensors_shapes(file: &Path) -> Result<Vec<(String, Vec<usize>)>> {
    use std::io::Read;
    let bad = |reason: String| corrupt(file, reason);
    let mut f =
        std::fs::File::open(file).map_err(|e| corrupt(file, format!("cannot open: {e}")))?;
    let len = f
        .metadata()
        .map_err(|e| corrupt(file, format!("cannot read its size: {e}")))?
        .len();
    let mut prefix = [0u8; 8];
    f.read_exact(&mut prefix)
        .map_err(|_| bad("too short for a safetensors header".into()))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_SAFETENSORS_HEADER || header_len > len - 8 {
        return Err(bad(format!(
            "the header claims {header_len} bytes (the file has {len}, the limit is \
             {MAX_SAFETENSORS_HEADER})"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header)
        .map_err(|e| bad(format!("cannot read the header: {e}")))?;
    let data_len = len - 8 - header_len;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("the header is not a JSON object: {e}")))?;
    let mut out = Vec::with_capacity(map.len());
    for (name, entry) in map {
        if name == "__metadata__" {
            continue;
        }
        #[derive(Deserialize)]
        struct Entry {
            dtype: String,
            shape: Vec<usize>,
            data_offsets: [u64; 2],
        }
        let entry: Entry = serde_json::from_value(entry)
            .map_err(|e| bad(format!("tensor `{name}` in the header: {e}")))?;
        let size = match entry.dtype.as_str() {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "U8" | "I8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
            other => return Err(bad(format!("tensor `{name}` has the unknown type {other}"))),
        };
        let bytes = entry
            .shape
            .iter()
            .try_fold(size as u64, |n, &d| n.checked_mul(d as u64));
        let [start, end] = entry.data_offsets;
        if bytes.is_none() || end < start || Some(end - start) != bytes || end > data_len {
            return Err(bad(format!(
                "tensor `{name}` of shape {:?} ({}) claims bytes {start}..{end} of {data_len}",
                entry.shape, entry.dtype
            )));
        }
        out.push((name, entry.shape));
    }
    Ok(out)
}

/// The shape `config.json` implies for each tensor the model reads (names without `mpnet.`).
pub(super) fn expected_shapes(cfg: &Config) -> HashMap<String, Vec<usize>> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let mut m: HashMap<String, Vec<usize>> = HashMap::new();
    m.insert(
        "embeddings.word_embeddings.weight".into(),
        vec![cfg.vocab_size, h],
    );
    m.insert(
        "embeddings.position_embeddings.weight".into(),
        vec![cfg.max_position_embeddings, h],
    );
    m.insert(
        "encoder.relative_attention_bias.weight".into(),
        vec![cfg.relative_attention_num_buckets, cfg.num_attention_heads],
    );
    let norm = |m: &mut HashMap<String, Vec<usize>>, prefix: &str| {
        m.insert(format!("{prefix}.weight"), vec![h]);
        m.insert(format!("{prefix}.bias"), vec![h]);
    };
    norm(&mut m, "embeddings.LayerNorm");
    for l in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for proj in ["q", "k", "v", "o"] {
            m.insert(format!("{p}.attention.attn.{proj}.weight"), vec![h, h]);
            m.insert(format!("{p}.attention.attn.{proj}.bias"), vec![h]);
        }
        norm(&mut m, &format!("{p}.attention.LayerNorm"));
        m.insert(format!("{p}.intermediate.dense.weight"), vec![i, h]);
        m.insert(format!("{p}.intermediate.dense.bias"), vec![i]);
        m.insert(format!("{p}.output.dense.weight"), vec![h, i]);
        m.insert(format!("{p}.output.dense.bias"), vec![h]);
        norm(&mut m, &format!("{p}.output.LayerNorm"));
    }
    m
}

/// Checks the shapes a weights file declares against those `config.json` implies, before any
/// tensor is read: a tensor the model uses must have its shape exactly, any other (a pooler,
/// position ids) may be no larger than the largest the model uses.
pub(super) fn check_declared_shapes(
    cfg: &Config,
    declared: &[(String, Vec<usize>)],
    file: &Path,
) -> Result<()> {
    let expected = expected_shapes(cfg);
    let largest = expected
        .values()
        .map(|s| s.iter().product::<usize>())
        .max()
        .unwrap_or(0);
    let file_name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    for (name, shape) in declared {
        let short = name.strip_prefix("mpnet.").unwrap_or(name);
        match expected.get(short) {
            Some(want) if want != shape => {
                return Err(mismatch(
                    &format!("shape of tensor `{name}` (config.json vs {file_name})"),
                    format!("{want:?}"),
                    format!("{shape:?}"),
                ))
            }
            Some(_) => {}
            None => {
                let elements = shape
                    .iter()
                    .try_fold(1usize, |n, &d| n.checked_mul(d))
                    .unwrap_or(usize::MAX);
                if elements > largest {
                    return Err(mismatch(
                        &format!(
                            "size of the unused tensor `{name}` ({file_name}; at most the \
                             largest tensor config.json implies)"
                        ),
                        format!("at most {largest} values"),
                        format!("{shape:?}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Reads the weights (`model.safetensors`, else `pytorch_model.bin`) into a name -> tensor map
/// without any `mpnet.` prefix, all float32, after checking the shapes each file declares
/// against `cfg` (nothing is allocated for a tensor the config does not allow).
pub(super) fn read_weights(dir: &Path, cfg: &Config) -> Result<(PathBuf, HashMap<String, Tensor>)> {
    let st = dir.join("model.safetensors");
    let bin = dir.join("pytorch_model.bin");
    let (file, raw) = if st.is_file() {
        check_declared_shapes(cfg, &safetensors_shapes(&st)?, &st)?;
        let t = candle_core::safetensors::load(&st, &Device::Cpu).map_err(|e| corrupt(&st, e))?;
        (st, t.into_iter().collect::<Vec<_>>())
    } else if bin.is_file() {
        let declared: Vec<(String, Vec<usize>)> =
            candle_core::pickle::read_pth_tensor_info(&bin, false, None)
                .map_err(|e| corrupt(&bin, e))?
                .into_iter()
                .map(|t| (t.name, t.layout.shape().dims().to_vec()))
                .collect();
        check_declared_shapes(cfg, &declared, &bin)?;
        let t = candle_core::pickle::read_all(&bin).map_err(|e| corrupt(&bin, e))?;
        (bin, t)
    } else {
        return Err(EncoderError::Missing {
            dir: dir.to_path_buf(),
            hint: format!(
                "no weights (model.safetensors or pytorch_model.bin) in the folder; {INSTALL_HINT}"
            ),
        });
    };
    let mut map = HashMap::with_capacity(raw.len());
    for (name, t) in raw {
        let name = name.strip_prefix("mpnet.").unwrap_or(&name).to_string();
        let t = t.to_dtype(DType::F32).map_err(|e| corrupt(&file, e))?;
        if expected_shapes_contains(cfg, &name) {
            let values = t.flatten_all()?.to_vec1::<f32>()?;
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(corrupt(
                    &file,
                    format!("tensor `{name}` holds a non-finite weight ({v})"),
                ));
            }
        }
        map.insert(name, t);
    }
    Ok((file, map))
}

/// Whether the model reads tensor `name` (without `mpnet.`).
pub(super) fn expected_shapes_contains(cfg: &Config, name: &str) -> bool {
    name.starts_with("embeddings.")
        || name == "encoder.relative_attention_bias.weight"
        || name
            .strip_prefix("encoder.layer.")
            .and_then(|r| r.split('.').next()?.parse::<usize>().ok())
            .is_some_and(|l| l < cfg.num_hidden_layers)
}

/// Checks the ranges of `config.json`'s values, before anything is sized by them.
pub(super) fn check_config(cfg: &Config, file: &Path) -> Result<()> {
    let range = |name: &str, v: usize, lo: usize, hi: usize| -> Result<()> {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(corrupt(
                file,
                format!("{name} is {v}, expected {lo}..={hi}"),
            ))
        }
    };
    range("vocab_size", cfg.vocab_size, 1, 1 << 20)?;
    range("hidden_size", cfg.hidden_size, 1, 8192)?;
    range("num_hidden_layers", cfg.num_hidden_layers, 1, 128)?;
    range(
        "num_attention_heads",
        cfg.num_attention_heads,
        1,
        cfg.hidden_size,
    )?;
    range("intermediate_size", cfg.intermediate_size, 1, 65_536)?;
    range(
        "max_position_embeddings",
        cfg.max_position_embeddings,
        2,
        65_536,
    )?;
    range(
        "relative_attention_num_buckets",
        cfg.relative_attention_num_buckets,
        2,
        4096,
    )?;
    range(
        "pad_token_id",
        cfg.pad_token_id as usize,
        0,
        cfg.vocab_size - 1,
    )?;
    if !(cfg.layer_norm_eps.is_finite() && cfg.layer_norm_eps > 0.0 && cfg.layer_norm_eps <= 1.0) {
        return Err(corrupt(
            file,
            format!(
                "layer_norm_eps is {:?}: it must be finite and in (0, 1]",
                cfg.layer_norm_eps
            ),
        ));
    }
    Ok(())
}

/// Checks the config against the weight shapes before anything is built from them.
pub(super) fn validate(cfg: &Config, weights: &HashMap<String, Tensor>, file: &Path) -> Result<()> {
    let shape = |name: &str| -> Result<Vec<usize>> {
        weights
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| corrupt(file, format!("tensor `{name}` is absent")))
    };
    let file_name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let vs = |what: &str| format!("{what} (config.json vs {file_name})");
    let word = shape("embeddings.word_embeddings.weight")?;
    if word.len() != 2 {
        return Err(corrupt(file, "word embeddings are not a matrix"));
    }
    if word[1] != cfg.hidden_size {
        return Err(mismatch(
            &vs("hidden size: word embeddings"),
            cfg.hidden_size,
            word[1],
        ));
    }
    if word[0] != cfg.vocab_size {
        return Err(mismatch(
            &vs("vocab size: word embeddings"),
            cfg.vocab_size,
            word[0],
        ));
    }
    let layers = weights
        .keys()
        .filter_map(|k| {
            k.strip_prefix("encoder.layer.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    if layers != cfg.num_hidden_layers {
        return Err(mismatch(&vs("layer count"), cfg.num_hidden_layers, layers));
    }
    // (checked_rem: MSRV 1.85 lacks is_multiple_of; also rejects zero heads)
    if cfg.hidden_size.checked_rem(cfg.num_attention_heads) != Some(0) {
        return Err(mismatch(
            "attention heads in config.json (must divide the hidden size)",
            format!("a divisor of {}", cfg.hidden_size),
            cfg.num_attention_heads,
        ));
    }
    for (name, want, what) in [
        (
            "encoder.relative_attention_bias.weight",
            vec![cfg.relative_attention_num_buckets, cfg.num_attention_heads],
            "relative attention bias shape",
        ),
        (
            "encoder.layer.0.intermediate.dense.weight",
            vec![cfg.intermediate_size, cfg.hidden_size],
            "intermediate size",
        ),
    ] {
        let found = shape(name)?;
        if found != want {
            return Err(mismatch(
                &vs(what),
                format!("{want:?}"),
                format!("{found:?}"),
            ));
        }
    }
    if cfg.hidden_act != "gelu" {
        return Err(mismatch(
            "hidden_act in config.json",
            "gelu",
            &cfg.hidden_act,
        ));
    }
    Ok(())
}
