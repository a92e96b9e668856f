//! The reference sentence encoder (all-mpnet-base-v2, the crate's `MpnetEncoder`) as a Python
//! class, and `decode_text`: texts embedded, decoded, and the output re-embedded for the
//! round-trip cosine, as `lwdec decode --text` does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lightweight_decoder as ld;
use lightweight_decoder::encoder::{EncoderError, EncoderOrigin, EncoderPrecision};
use lightweight_decoder::{Decoded, Decoder, Encoder};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Texts per forward pass by default: `lwdec`'s (`decode --text`, `embed`), so that the
/// embeddings equal the command line's bit for bit (padding depends on the batches).
pub const DEFAULT_BATCH: usize = 64;
const _: () = assert!(DEFAULT_BATCH == 64, "update MpnetEncoder's signature");

/// The exception for an encoder error: a missing folder or file is a `FileNotFoundError`
/// naming it, an unreadable or inconsistent folder an `OSError`, a text the tokenizer refuses
/// a `ValueError`, anything else (non-finite output, tensor errors) a `RuntimeError`. The
/// message is the crate's, which names the folder.
fn to_py(e: EncoderError) -> PyErr {
    let message = e.to_string();
    let (inner, dir) = match &e {
        EncoderError::Folder { source, dir, .. } => (source.as_ref(), Some(dir.as_path())),
        other => (other, None),
    };
    match inner {
        EncoderError::Missing { dir: missing, .. } => PyFileNotFoundError::new_err((
            2, // ENOENT
            message,
            missing.to_path_buf(),
        )),
        EncoderError::Corrupt { .. } | EncoderError::Mismatch { .. } => {
            PyOSError::new_err(match dir {
                Some(dir) if !message.contains(&dir.display().to_string()) => {
                    format!("{message} (encoder folder {})", dir.display())
                }
                _ => message,
            })
        }
        EncoderError::Tokenizer(_) => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// The folder `path` names (given by the caller), else `$LWDEC_ENCODER_DIR` or the default
/// location, as `lwdec` finds it.
fn locate(path: Option<PathBuf>) -> (PathBuf, EncoderOrigin) {
    match path {
        Some(dir) => (dir, EncoderOrigin::Argument),
        None => ld::MpnetEncoder::locate(),
    }
}

/// The sentence encoder all-mpnet-base-v2 (sentence-transformers' reference model), in Rust:
/// texts in, unit-norm 768-d float32 embeddings out, no PyTorch needed.
///
/// ``MpnetEncoder(path=None, *, batch_size=64, precision="auto")``: the model folder (None: ``$LWDEC_ENCODER_DIR``,
/// else ``all-mpnet-base-v2`` in the user data folder: ``$LWDEC_DATA_DIR``, else
/// ``$XDG_DATA_HOME/lightweight-decoder``, else ``~/.local/share/lightweight-decoder``, where
/// ``bash scripts/install-encoder.sh`` puts it and ``lwdec`` looks) and the texts per forward
/// pass; ``precision`` is ``"f32"``, ``"bf16"`` (a CPU with AVX512-BF16), ``"int8"`` or
/// ``"auto"`` (bf16 where the CPU has it, else f32), as ``lwdec --encoder-precision``. The
/// weights are not in the package. A missing folder raises ``FileNotFoundError``, an
/// unreadable or inconsistent one ``OSError``, each naming the folder.
#[pyclass(frozen, module = "lightweight_decoder")]
pub struct MpnetEncoder {
    inner: Arc<ld::MpnetEncoder>,
    path: PathBuf,
    batch_size: usize,
}

#[pymethods]
impl MpnetEncoder {
    #[new]
    // the literal shows in the signature (`help()`); it is DEFAULT_BATCH (checked below)
    #[pyo3(signature = (path=None, *, batch_size=64, precision="auto"))]
    fn py_new(
        py: Python<'_>,
        path: Option<PathBuf>,
        batch_size: usize,
        precision: &str,
    ) -> PyResult<Self> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let precision: EncoderPrecision = precision.parse().map_err(PyValueError::new_err)?;
        let (dir, origin) = locate(path);
        let inner = py
            .detach(|| ld::MpnetEncoder::load_from(&dir, origin, precision))
            .map_err(to_py)?
            .with_batch_size(batch_size);
        Ok(MpnetEncoder {
            inner: Arc::new(inner),
            path: dir,
            batch_size,
        })
    }

    /// Embeds ``texts`` (a list of str): a float32 array of shape (len(texts), 768), one
    /// unit-norm row per text in input order (texts longer than 384 tokens are truncated, as
    /// sentence-transformers does). The GIL is released while encoding.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows = embed(py, &self.inner, &texts)?;
        Ok(rows.into_pyarray(py))
    }

    /// Length of every embedding (768).
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dimension()
    }

    /// The model folder the weights were loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Texts per forward pass.
    #[getter]
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The precision the encoder runs in (``"bf16"`` or ``"f32"`` under ``"auto"``).
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// The truncation length in tokens, special tokens included (384).
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.inner.max_seq_length()
    }

    /// The folder ``MpnetEncoder()`` loads when no path is given: ``$LWDEC_ENCODER_DIR``, else
    /// the default location (whether or not the model is installed there).
    #[staticmethod]
    fn default_path() -> PathBuf {
        ld::MpnetEncoder::default_location()
    }

    fn __repr__(&self) -> String {
        format!(
            "MpnetEncoder(path={:?}, batch_size={}, precision={:?})",
            self.path.display().to_string(),
            self.batch_size,
            self.inner.precision().name()
        )
    }
}

/// `texts` embedded with the GIL released.
fn embed(py: Python<'_>, encoder: &ld::MpnetEncoder, texts: &[String]) -> PyResult<Array2<f32>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    py.detach(|| encoder.embed(&refs)).map_err(to_py)
}

/// The encoder a `decode_text` without `encoder=` uses, loaded once per folder and process.
static DEFAULT_ENCODER: Mutex<Option<(PathBuf, Arc<ld::MpnetEncoder>)>> = Mutex::new(None);

/// `encoder`, else the default one (`MpnetEncoder()`), loaded on first use and kept while
/// `$LWDEC_ENCODER_DIR` names the same folder.
pub fn encoder_or_default(
    py: Python<'_>,
    encoder: Option<&Bound<'_, MpnetEncoder>>,
) -> PyResult<Arc<ld::MpnetEncoder>> {
    if let Some(e) = encoder {
        return Ok(e.get().inner.clone());
    }
    let (dir, origin) = ld::MpnetEncoder::locate();
    let cached = |dir: &Path| {
        DEFAULT_ENCODER
            .lock()
            .ok()
            .and_then(|c| c.as_ref().filter(|(d, _)| d == dir).map(|(_, e)| e.clone()))
    };
    if let Some(e) = cached(&dir) {
        return Ok(e);
    }
    let loaded = py
        .detach(|| ld::MpnetEncoder::load_from(&dir, origin, EncoderPrecision::default()))
        .map_err(to_py)?
        .with_batch_size(DEFAULT_BATCH);
    let loaded = Arc::new(loaded);
    if let Ok(mut c) = DEFAULT_ENCODER.lock() {
        *c = Some((dir, loaded.clone()));
    }
    Ok(loaded)
}

/// `lwdec decode --text`: `texts` embedded with the encoder, decoded (sessions from
/// `boundaries`, else one per text), and each output re-embedded: its cosine with the input's
/// embedding is the result's `roundtrip_cosine` (a verified result keeps its own).
pub fn decode_texts(
    py: Python<'_>,
    decoder: &dyn Decoder,
    texts: &[String],
    encoder: Option<&Bound<'_, MpnetEncoder>>,
    boundaries: Option<Vec<usize>>,
) -> PyResult<Vec<Decoded>> {
    if let Some(b) = &boundaries {
        ld::io::session_ranges(texts.len(), b).map_err(crate::errors::to_py)?;
    }
    let encoder = encoder_or_default(py, encoder)?;
    let inputs = embed(py, &encoder, texts)?;
    py.detach(|| -> PyResult<Vec<Decoded>> {
        let mut decoded = match &boundaries {
            Some(b) => decoder.batch_decode_with_sessions(inputs.view(), b),
            None => decoder.batch_decode(inputs.view()),
        }
        .map_err(crate::errors::to_py)?;
        ld::verify::fill_roundtrip_cosines(&*encoder, inputs.view(), &mut decoded)
            .map_err(crate::errors::to_py)?;
        Ok(decoded)
    })
}
