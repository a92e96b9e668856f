//! The crate's [`Error`] as Python exceptions: bad input is a `ValueError`, files an `OSError`
//! (with `errno` and `filename` when the operating system reported it, so a missing file is a
//! `FileNotFoundError`), a failing model or index a `RuntimeError`. Messages are the crate's.

use lightweight_decoder::Error;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// The Python exception for `e`.
pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match innermost(&e) {
        Error::Io { path, source, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string(), path.to_path_buf())),
            None => PyOSError::new_err(message),
        },
        Error::CorruptBank { .. } | Error::InvalidModel { .. } | Error::Npy { .. } => {
            PyOSError::new_err(message)
        }
        Error::Encoder(_) => PyOSError::new_err(message),
        Error::Model(_) | Error::Faiss(_) | Error::Internal(_) => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

/// The error a row error wraps (its class decides the exception; the message keeps the row).
fn innermost(e: &Error) -> &Error {
    match e {
        Error::AtRow { source, .. } => innermost(source),
        other => other,
    }
}

/// `Result` conversion for the bindings: `crate_call().map_err(to_py)` in short.
pub trait IntoPyResult<T> {
    /// The value, or the Python exception for the crate's error.
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPyResult<T> for lightweight_decoder::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
