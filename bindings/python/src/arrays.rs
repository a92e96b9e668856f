//! NumPy input: embeddings as float32 (used in place, any layout or strides), float64 (rounded
//! to float32), or int8 with a float32 `scale` per row (row `i` = `q[i] * scale[i]`, the format
//! of `lwdec`'s `--scale` files). Anything else is a `TypeError`; a wrong shape or a missing or
//! misplaced `scale` is a `ValueError`. Shapes are checked before anything is read or copied:
//! at most [`MAX_ROWS`] rows of the decoder's dimension (a zero-stride view of 10^12 rows is
//! refused, not copied).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use numpy::{
    dtype, PyArray2, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray2,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// Most rows one call takes (documented in the package's README): 16,777,216, 51 GB as
/// float32 at 768 columns. Larger inputs are decoded in chunks.
pub const MAX_ROWS: usize = 1 << 24;

/// Checks a batch's shape before any of it is read or copied: `rows` at most [`MAX_ROWS`],
/// `cols` equal to `dim` (when known) and positive.
fn check_shape(rows: usize, cols: usize, dim: Option<usize>) -> PyResult<()> {
    if rows > MAX_ROWS {
        return Err(PyValueError::new_err(format!(
            "{rows} rows: at most {MAX_ROWS} rows per call (decode larger inputs in chunks)"
        )));
    }
    match dim {
        Some(dim) if cols != dim => Err(PyValueError::new_err(format!(
            "embedding has dimension {cols}, expected {dim}"
        ))),
        _ if cols == 0 => Err(PyValueError::new_err(
            "embeddings have no columns (dimension 0)",
        )),
        _ => Ok(()),
    }
}

/// A batch of embeddings, borrowed from NumPy when it is float32, else converted.
pub enum Matrix<'py> {
    /// A float32 array, read in place.
    Borrowed(PyReadonlyArray2<'py, f32>),
    /// A float64 or int8 array converted to float32.
    Owned(Array2<f32>),
}

impl Matrix<'_> {
    /// The rows, whatever their storage.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        match self {
            Matrix::Borrowed(a) => a.as_array(),
            Matrix::Owned(a) => a.view(),
        }
    }
}

/// `obj` as a NumPy array (`numpy.asarray` for lists and other sequences).
fn as_ndarray<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        return Ok(a.clone());
    }
    let a = obj.py().import("numpy")?.call_method1("asarray", (obj,))?;
    Ok(a.cast_into::<PyUntypedArray>()?)
}

/// The batch `obj` (2-D: rows x dimension, `dim` columns when given), with `scale` for int8.
pub fn matrix<'py>(
    obj: &Bound<'py, PyAny>,
    scale: Option<&Bound<'py, PyAny>>,
    dim: Option<usize>,
) -> PyResult<Matrix<'py>> {
    let array = as_ndarray(obj)?;
    if array.ndim() != 2 {
        return Err(PyValueError::new_err(format!(
            "embeddings must be a 2-D array (rows x dimension), got shape {:?}",
            array.shape()
        )));
    }
    let rows = array.shape()[0];
    check_shape(rows, array.shape()[1], dim)?;
    matrix_of(&array, scale, rows)
}

/// One embedding `obj` (1-D, `dim` values), as a one-row batch, with `scale` (a number) for
/// int8.
pub fn vector<'py>(
    obj: &Bound<'py, PyAny>,
    scale: Option<&Bound<'py, PyAny>>,
    dim: usize,
) -> PyResult<Matrix<'py>> {
    let array = as_ndarray(obj)?;
    if array.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "an embedding must be a 1-D array, got shape {:?} (use batch_decode for 2-D)",
            array.shape()
        )));
    }
    check_shape(1, array.shape()[0], Some(dim))?;
    let row = array.call_method1("reshape", ((1usize, dim),))?;
    matrix_of(&row.cast_into::<PyUntypedArray>()?, scale, 1)
}

fn matrix_of<'py>(
    array: &Bound<'py, PyUntypedArray>,
    scale: Option<&Bound<'py, PyAny>>,
    rows: usize,
) -> PyResult<Matrix<'py>> {
    let py = array.py();
    let kind = array.dtype();
    if kind.is_equiv_to(&dtype::<f32>(py)) {
        no_scale(scale, "float32")?;
        return Ok(Matrix::Borrowed(array.cast::<PyArray2<f32>>()?.readonly()));
    }
    if kind.is_equiv_to(&dtype::<f64>(py)) {
        no_scale(scale, "float64")?;
        let typed = array.cast::<PyArray2<f64>>()?.readonly();
        return Ok(Matrix::Owned(typed.as_array().mapv(|v| v as f32)));
    }
    if kind.is_equiv_to(&dtype::<i8>(py)) {
        let Some(scale) = scale else {
            return Err(PyValueError::new_err(
                "int8 embeddings need `scale`: one float32 per row (row i = q[i] * scale[i])",
            ));
        };
        let scales = scales(scale, rows)?;
        let typed = array.cast::<PyArray2<i8>>()?.readonly();
        let mut out = typed.as_array().mapv(f32::from);
        for (mut row, &k) in out.axis_iter_mut(Axis(0)).zip(scales.iter()) {
            row.mapv_inplace(|v| v * k);
        }
        return Ok(Matrix::Owned(out));
    }
    Err(PyTypeError::new_err(format!(
        "embeddings must be float32, float64, or int8 with `scale`; got dtype {}",
        kind.str()?
    )))
}

fn no_scale(scale: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<()> {
    match scale {
        Some(s) if !s.is_none() => Err(PyValueError::new_err(format!(
            "`scale` is only for int8 embeddings; these are {what}"
        ))),
        _ => Ok(()),
    }
}

/// The per-row scales: a number (for one row) or `rows` float32/float64 values, all finite.
fn scales(scale: &Bound<'_, PyAny>, rows: usize) -> PyResult<Array1<f32>> {
    let array = as_ndarray(scale)?;
    let py = scale.py();
    let values: Array1<f32> = if array.dtype().is_equiv_to(&dtype::<f32>(py)) {
        flat(
            &array.cast::<PyArrayDyn<f32>>()?.readonly().as_array(),
            |v| v,
        )?
    } else if array.dtype().is_equiv_to(&dtype::<f64>(py)) {
        flat(
            &array.cast::<PyArrayDyn<f64>>()?.readonly().as_array(),
            |v| v as f32,
        )?
    } else {
        return Err(PyTypeError::new_err(format!(
            "`scale` must be float32 or float64, got dtype {}",
            array.dtype().str()?
        )));
    };
    if values.len() != rows {
        return Err(PyValueError::new_err(format!(
            "`scale` has {} values for {rows} rows",
            values.len()
        )));
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "`scale` contains a non-finite value ({bad})"
        )));
    }
    Ok(values)
}

/// A 0-d or 1-d array as a vector.
fn flat<T: Copy>(a: &ndarray::ArrayViewD<'_, T>, f: impl Fn(T) -> f32) -> PyResult<Array1<f32>> {
    if a.ndim() > 1 {
        return Err(PyValueError::new_err(format!(
            "`scale` must be a number or a 1-D array, got shape {:?}",
            a.shape()
        )));
    }
    Ok(a.iter().map(|&v| f(v)).collect())
}
