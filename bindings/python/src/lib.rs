//! `lightweight_decoder._native`: the Python bindings of the lightweight-decoder crate
//! (PyO3). The package `lightweight_decoder` re-exports these names; see its `__init__.py`.

mod arrays;
mod decoders;
mod encoder;
mod errors;
mod results;

use std::path::PathBuf;

use lightweight_decoder as ld;
use lightweight_decoder::phrase_bank::BankBuildOptions;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

use crate::errors::IntoPyResult;

/// Builds a phrase bank from phrases and their embeddings and saves it to ``out`` atomically
/// (an existing bank there is replaced; any other non-empty folder is refused).
///
/// ``phrases``: a list of str, or the path of a UTF-8 file with one phrase per line.
/// ``embeddings``: rows x dim (float32, float64, or int8 with ``scale``), or the path of an
/// ``.npy`` file (float32, or int8 with ``scale`` the path of its per-row scales).
/// ``index``: a FAISS factory string (``"Flat"``, ``"IVF1024,PQ96"``, ``"HNSW32"``) or
/// ``"auto"`` (exact below 50,000 rows, ``IVF1024,PQ96`` above). Returns the manifest as a
/// dict.
#[pyfunction]
#[pyo3(signature = (phrases, embeddings, out, *, index="auto", scale=None, nprobe=16,
                    train_size=65_536, seed=2026))]
#[allow(clippy::too_many_arguments)]
fn bank_build<'py>(
    py: Python<'py>,
    phrases: &Bound<'py, PyAny>,
    embeddings: &Bound<'py, PyAny>,
    out: PathBuf,
    index: &str,
    scale: Option<&Bound<'py, PyAny>>,
    nprobe: usize,
    train_size: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let phrases: Vec<String> = if is_path(phrases)? {
        let path: PathBuf = phrases.extract()?;
        py.detach(|| ld::eval::samples::read_lines(&path)).py()?
    } else if phrases.cast::<pyo3::types::PyList>().is_ok() || phrases.cast::<PyTuple>().is_ok() {
        phrases.extract()?
    } else {
        return Err(PyTypeError::new_err(
            "phrases must be a list of str or the path of a text file",
        ));
    };
    let options = BankBuildOptions {
        index_spec: index.to_string(),
        nprobe,
        train_size,
        seed,
        ..BankBuildOptions::default()
    };
    let save = |rows: ndarray::ArrayView2<'_, f32>| -> ld::Result<ld::phrase_bank::Manifest> {
        let mut bank = ld::PhraseBank::build(phrases, rows, &options, |_| {})?;
        bank.save(&out)?;
        Ok(bank.manifest().clone())
    };
    let manifest = if is_path(embeddings)? {
        let path: PathBuf = embeddings.extract()?;
        let scale: Option<PathBuf> = scale.map(|s| s.extract()).transpose()?;
        py.detach(|| {
            let rows = ld::load_embeddings(&path, scale.as_deref())?;
            save(rows.view())
        })
    } else {
        let rows = arrays::matrix(embeddings, scale, None)?;
        let view = rows.view();
        py.detach(|| save(view))
    }
    .py()?;
    results::to_python(py, &manifest)
}

/// Whether `obj` is a str or an `os.PathLike`.
fn is_path(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.cast::<PyString>().is_ok() || obj.hasattr("__fspath__")?)
}

/// The default settings (the keys a ``config`` dict may hold) as a dict.
#[pyfunction]
fn default_config(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    results::to_python(py, &ld::DecoderConfig::default())
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<decoders::PhraseBankDecoder>()?;
    m.add_class::<decoders::GenerativeDecoder>()?;
    m.add_class::<decoders::HybridDecoder>()?;
    m.add_class::<decoders::Session>()?;
    m.add_class::<encoder::MpnetEncoder>()?;
    m.add_class::<results::Decoded>()?;
    m.add_class::<results::Candidate>()?;
    m.add_function(wrap_pyfunction!(bank_build, m)?)?;
    m.add_function(wrap_pyfunction!(default_config, m)?)?;
    m.add("CRATE_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
