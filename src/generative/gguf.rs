//! The GGUF file format of an [`InferenceModel`](super::InferenceModel): the configuration as
//! JSON, the precision, and a SHA-256 of every tensor, so that a truncated or corrupted file,
//! or one whose tensors do not match its configuration, is rejected with
//! [`Error::InvalidModel`]. Files are read by our own GGUF reader ([`super::gguf_file`]), and
//! written (with the `train` feature) by candle's.

use std::io::BufReader;
use std::path::Path;
#[cfg(feature = "train")]
use std::sync::Arc;

#[cfg(feature = "train")]
use candle_core::quantized::{gguf_file as candle_gguf, GgmlDType, QTensor};
use sha2::{Digest, Sha256};

use super::config::GenerativeConfig;
#[cfg(feature = "train")]
use super::gguf_file::GgmlType;
use super::gguf_file::{read_header, read_tensor, RawTensor, Value};
use super::params::PARAM_NAMES;
use super::precision::Precision;
#[cfg(feature = "train")]
use crate::fsutil::AtomicFile;
use crate::{Error, Result};

/// Value of `general.architecture` in the files this module writes.
const ARCHITECTURE: &str = "lwdec-generative";
/// Version of the file layout: 2 since the checksum covers the metadata too.
const FORMAT_VERSION: u32 = 2;

/// SHA-256 over the metadata (architecture, configuration JSON, precision) and the names,
/// types (as candle's `GgmlDType` prints them: `F32`, `Q8_0`, `Q4_0`), shapes and bytes of
/// `tensors`, as lowercase hex.
fn digest<'a>(
    config: &str,
    precision: &str,
    tensors: impl Iterator<Item = (&'a str, &'a RawTensor)>,
) -> String {
    let mut hash = Sha256::new();
    for text in [ARCHITECTURE, config, precision] {
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    for (name, t) in tensors {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update(format!("{:?}", t.dtype).as_bytes());
        for &d in &t.dims {
            hash.update((d as u64).to_le_bytes());
        }
        hash.update(&t.data);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "train")]
impl GgmlType {
    /// candle's name of the type.
    pub(crate) fn to_candle(self) -> GgmlDType {
        match self {
            GgmlType::F32 => GgmlDType::F32,
            GgmlType::Q8_0 => GgmlDType::Q8_0,
            GgmlType::Q4_0 => GgmlDType::Q4_0,
        }
    }
}

#[cfg(feature = "train")]
impl RawTensor {
    /// The tensor as candle's (same bytes).
    pub(crate) fn to_qtensor(&self) -> candle_core::Result<QTensor> {
        let storage = candle_core::quantized::QStorage::from_data(
            std::borrow::Cow::Borrowed(&self.data),
            &candle_core::Device::Cpu,
            self.dtype.to_candle(),
        )?;
        QTensor::new(storage, self.dims.as_slice())
    }

    /// A candle tensor of type F32, Q8_0 or Q4_0 (same bytes).
    pub(crate) fn from_qtensor(t: &QTensor) -> candle_core::Result<Self> {
        let dtype = match t.dtype() {
            GgmlDType::F32 => GgmlType::F32,
            GgmlDType::Q8_0 => GgmlType::Q8_0,
            GgmlDType::Q4_0 => GgmlType::Q4_0,
            other => candle_core::bail!("unsupported storage type {other:?}"),
        };
        Ok(Self {
            dtype,
            dims: t.shape().dims().to_vec(),
            data: t.data()?.into_owned(),
        })
    }
}

/// What a model file holds: its configuration, precision and named tensors.
pub(crate) type StoredModel = (GenerativeConfig, Precision, Vec<(String, RawTensor)>);

/// Writes a model as a GGUF file (with candle's writer), atomically (temporary file in the
/// same folder, then rename).
#[cfg(feature = "train")]
pub(crate) fn write(
    path: &Path,
    config: &GenerativeConfig,
    precision: Precision,
    tensors: &[(&'static str, Arc<RawTensor>)],
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
    );
    let metadata = [
        (
            "general.architecture",
            candle_gguf::Value::String(ARCHITECTURE.into()),
        ),
        (
            "lwdec.format_version",
            candle_gguf::Value::U32(FORMAT_VERSION),
        ),
        ("lwdec.config", candle_gguf::Value::String(config)),
        (
            "lwdec.precision",
            candle_gguf::Value::String(precision.name().into()),
        ),
        ("lwdec.sha256", candle_gguf::Value::String(sha)),
    ];
    let metadata: Vec<(&str, &candle_gguf::Value)> =
        metadata.iter().map(|(k, v)| (*k, v)).collect();
    let qtensors = tensors
        .iter()
        .map(|(_, t)| t.to_qtensor())
        .collect::<candle_core::Result<Vec<QTensor>>>()
        .map_err(|e| invalid(format!("cannot serialise: {e}")))?;
    let tensor_refs: Vec<(&str, &QTensor)> =
        tensors.iter().map(|(n, _)| *n).zip(&qtensors).collect();
    let mut file = AtomicFile::create(path)?;
    candle_gguf::write(&mut file, &metadata, &tensor_refs)
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
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("read the metadata of", path, e))?
        .len();
    let mut reader = BufReader::new(file);
    // every declared tensor is checked against the file's length before any is read (nothing
    // is allocated by a size the file does not hold)
    let header = read_header(&mut reader, file_len)
        .map_err(|e| invalid(format!("not a readable GGUF file: {e}")))?;
    let text = |key: &str| -> Result<String> {
        match header.metadata.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
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
    match header.metadata.get("lwdec.format_version") {
        Some(Value::U32(FORMAT_VERSION)) => {}
        Some(Value::U32(1)) => {
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
    let precision_text = text("lwdec.precision")?;
    let precision: Precision = precision_text
        .parse()
        .map_err(|e: Error| invalid(e.to_string()))?;
    // every tensor is checked against the configuration before any is read
    for info in &header.tensors {
        let name = &info.name;
        let expected = super::params::param_shape(&config, name)
            .ok_or_else(|| invalid(format!("unexpected tensor {name}")))?;
        if info.dims != expected {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, the configuration needs {expected:?}",
                info.dims
            )));
        }
    }
    let mut infos: Vec<_> = header.tensors.iter().collect();
    infos.sort_by_key(|info| PARAM_NAMES.iter().position(|p| *p == info.name));
    let mut tensors = Vec::with_capacity(infos.len());
    for info in infos {
        let t = read_tensor(&mut reader, info)
            .map_err(|e| invalid(format!("tensor {}: {e}", info.name)))?;
        tensors.push((info.name.clone(), t));
    }
    let sha = digest(
        &config_text,
        &precision_text,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
    );
    // (fuzzing builds skip the checksum, so that mutated files reach the checks after it)
    if sha != text("lwdec.sha256")? && !cfg!(fuzzing) {
        return Err(invalid("checksum mismatch: the file is corrupt".into()));
    }
    Ok((config, precision, tensors))
}
