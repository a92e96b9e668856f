//! The GGUF file format of an [`InferenceModel`](super::InferenceModel): the configuration as
//! JSON, the precision, and a SHA-256 of every tensor, so that a truncated or corrupted file,
//! or one whose tensors do not match its configuration, is rejected with
//! [`Error::InvalidModel`].

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, QTensor};
use sha2::{Digest, Sha256};

use super::config::GenerativeConfig;
use super::model::PARAM_NAMES;
use super::precision::Precision;
use crate::fsutil::AtomicFile;
use crate::{Error, Result};

/// Value of `general.architecture` in the files this module writes.
const ARCHITECTURE: &str = "lwdec-generative";
/// Version of the file layout: 2 since the checksum covers the metadata too.
const FORMAT_VERSION: u32 = 2;

/// SHA-256 over the metadata (architecture, configuration JSON, precision) and the names,
/// types, shapes and bytes of `tensors`, as lowercase hex.
fn digest<'a>(
    config: &str,
    precision: &str,
    tensors: impl Iterator<Item = (&'a str, &'a QTensor)>,
) -> candle_core::Result<String> {
    let mut hash = Sha256::new();
    for text in [ARCHITECTURE, config, precision] {
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    for (name, t) in tensors {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update(format!("{:?}", t.dtype()).as_bytes());
        for &d in t.shape().dims() {
            hash.update((d as u64).to_le_bytes());
        }
        hash.update(t.data()?.as_ref());
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What a model file holds: its configuration, precision and named tensors.
pub(crate) type StoredModel = (GenerativeConfig, Precision, Vec<(String, QTensor)>);

/// Writes a model as a GGUF file, atomically (temporary file in the same folder, then
/// rename).
pub(crate) fn write(
    path: &Path,
    config: &GenerativeConfig,
    precision: Precision,
    tensors: &[(&'static str, Arc<QTensor>)],
) -> Result<()> {
    let invalid = |reason: String| Error::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };
    let config = serde_json::to_string(config)?;
    let sha = digest(
        &config,
        precision.name(),
        tensors.iter().map(|(n, t)| (*n, t.as_ref())),
    )
    .map_err(|e| invalid(format!("cannot serialise: {e}")))?;
    let metadata = [
        (
            "general.architecture",
            gguf_file::Value::String(ARCHITECTURE.into()),
        ),
        (
            "lwdec.format_version",
            gguf_file::Value::U32(FORMAT_VERSION),
        ),
        ("lwdec.config", gguf_file::Value::String(config)),
        (
            "lwdec.precision",
            gguf_file::Value::String(precision.name().into()),
        ),
        ("lwdec.sha256", gguf_file::Value::String(sha)),
    ];
    let metadata: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        tensors.iter().map(|(n, t)| (*n, t.as_ref())).collect();
    let mut file = AtomicFile::create(path)?;
    gguf_file::write(&mut file, &metadata, &tensor_refs)
        .map_err(|e| invalid(format!("cannot write: {e}")))?;
    file.commit()
}

/// Reads a GGUF file written by [`write`], verifying its checksum: the configuration, the
/// precision and the tensors in [`PARAM_NAMES`] order.
pub(crate) fn read(path: &Path) -> Result<StoredModel> {
    let invalid = |reason: String| Error::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| invalid(format!("not a readable GGUF file: {e}")))?;
    let text = |key: &str| -> Result<String> {
        match content.metadata.get(key) {
            Some(gguf_file::Value::String(s)) => Ok(s.clone()),
            _ => Err(invalid(format!(
                "metadata {key} is missing or not a string"
            ))),
        }
    };
    let arch = text("general.architecture")?;
    if arch != ARCHITECTURE {
        return Err(invalid(format!(
            "architecture is {arch:?}, expected {ARCHITECTURE:?}"
        )));
    }
    match content.metadata.get("lwdec.format_version") {
        Some(gguf_file::Value::U32(FORMAT_VERSION)) => {}
        Some(gguf_file::Value::U32(1)) => {
            return Err(invalid(
                "format version 1, whose checksum does not cover the configuration: \
                 re-export it (`lwdec model export`)"
                    .into(),
            ))
        }
        other => return Err(invalid(format!("unsupported format version {other:?}"))),
    }
    let config_text = text("lwdec.config")?;
    let config: GenerativeConfig = serde_json::from_str(&config_text)
        .map_err(|e| invalid(format!("bad configuration: {e}")))?;
    config
        .validate()
        .map_err(|e| invalid(format!("bad configuration: {e}")))?;
    let precision: Precision = text("lwdec.precision")?
        .parse()
        .map_err(|e: Error| invalid(e.to_string()))?;
    let precision_text = text("lwdec.precision")?;
    // every declared tensor is checked against the configuration and the file's length
    // before any is read (nothing is allocated by a size the file does not hold)
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io("read the metadata of", path, e))?
        .len();
    for (name, info) in &content.tensor_infos {
        let expected = super::model::param_shape(&config, name)
            .ok_or_else(|| invalid(format!("unexpected tensor {name}")))?;
        if info.shape.dims() != expected.as_slice() {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, the configuration needs {expected:?}",
                info.shape.dims()
            )));
        }
        let dtype = info.ggml_dtype;
        let elements = info.shape.elem_count();
        let bytes = (elements / dtype.block_size().max(1)) as u64 * dtype.type_size() as u64;
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|start| start.checked_add(bytes));
        if !elements.is_multiple_of(dtype.block_size().max(1)) || end.is_none_or(|e| e > file_len) {
            return Err(invalid(format!(
                "tensor {name} ({dtype:?}, {elements} values) lies beyond the end of the file"
            )));
        }
    }
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| PARAM_NAMES.iter().position(|p| p == n));
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = content
            .tensor(&mut reader, name, &candle_core::Device::Cpu)
            .map_err(|e| invalid(format!("tensor {name}: {e}")))?;
        tensors.push((name.clone(), t));
    }
    let sha = digest(
        &config_text,
        &precision_text,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
    )
    .map_err(|e| invalid(e.to_string()))?;
    // (fuzzing builds skip the checksum, so that mutated files reach the checks after it)
    if sha != text("lwdec.sha256")? && !cfg!(fuzzing) {
        return Err(invalid("checksum mismatch: the file is corrupt".into()));
    }
    Ok((config, precision, tensors))
}
