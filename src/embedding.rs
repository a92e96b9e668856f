//! Validation of query embeddings and loading of embedding matrices from `.npy` files.

use std::path::Path;

use ndarray::{Array1, Array2, ArrayView1};
use ndarray_npy::ReadNpyExt;

use crate::error::{Error, Result};

/// Norm under which a vector counts as the zero vector.
pub const MIN_NORM: f32 = 1e-6;

/// Checks that `embedding` has dimension `dim`, holds only finite values and is not the zero
/// vector, and returns it scaled to unit norm.
pub fn normalized(embedding: &[f32], dim: usize) -> Result<Vec<f32>> {
    if embedding.len() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: embedding.len(),
        });
    }
    if let Some((position, &value)) = embedding.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite { position, value });
    }
    let norm = norm(embedding);
    if !norm.is_finite() || norm < MIN_NORM {
        return Err(Error::ZeroVector { norm });
    }
    Ok(embedding.iter().map(|v| v / norm).collect())
}

/// Euclidean norm, accumulated in f64 so that large inputs do not overflow.
pub fn norm(v: &[f32]) -> f32 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt() as f32
}

/// Dot product of two equally long slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit norm in place; leaves a (near-)zero vector unchanged.
pub fn normalize_in_place(v: &mut [f32]) {
    let n = norm(v);
    if n >= MIN_NORM {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Loads an `N x D` embedding matrix.
///
/// `path` is a float32 `.npy`, or an int8 `.npy` when `scale` names the float32 per-row scale
/// file (row `i` = `i8[i] * scale[i]`, the format of the shared WordNet corpus). Rows are returned
/// as they are stored; callers validate and normalise them.
pub fn load_embeddings(path: &Path, scale: Option<&Path>) -> Result<Array2<f32>> {
    match scale {
        None => read_npy::<Array2<f32>>(path),
        Some(scale_path) => {
            let q: Array2<i8> = read_npy(path)?;
            let s: Array1<f32> = read_npy(scale_path)?;
            if s.len() != q.nrows() {
                return Err(Error::Npy {
                    path: scale_path.to_path_buf(),
                    reason: format!("{} scales for {} rows", s.len(), q.nrows()),
                });
            }
            let mut out = q.mapv(f32::from);
            for (mut row, &k) in out.rows_mut().into_iter().zip(s.iter()) {
                row.mapv_inplace(|v| v * k);
            }
            Ok(out)
        }
    }
}

/// Checks every row of a batch and returns the rows scaled to unit norm, row-major.
///
/// The error names the first bad row.
pub fn normalized_rows(rows: &ndarray::ArrayView2<f32>, dim: usize) -> Result<Vec<f32>> {
    if rows.ncols() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: rows.ncols(),
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for (row, view) in rows.rows().into_iter().enumerate() {
        out.extend(normalized_row(view, dim).map_err(|e| Error::AtRow {
            row,
            source: Box::new(e),
        })?);
    }
    Ok(out)
}

fn normalized_row(view: ArrayView1<f32>, dim: usize) -> Result<Vec<f32>> {
    match view.as_slice() {
        Some(s) => normalized(s, dim),
        None => normalized(&view.to_vec(), dim),
    }
}

fn read_npy<T: ReadNpyExt>(path: &Path) -> Result<T> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    T::read_npy(std::io::BufReader::new(file)).map_err(|e| Error::Npy {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_vectors() {
        assert!(matches!(
            normalized(&[1.0; 3], 4),
            Err(Error::DimensionMismatch {
                expected: 4,
                got: 3
            })
        ));
        assert!(matches!(
            normalized(&[1.0, f32::NAN], 2),
            Err(Error::NonFinite { position: 1, .. })
        ));
        assert!(matches!(
            normalized(&[f32::INFINITY, 0.0], 2),
            Err(Error::NonFinite { position: 0, .. })
        ));
        assert!(matches!(
            normalized(&[0.0; 4], 4),
            Err(Error::ZeroVector { .. })
        ));
        let v = normalized(&[3.0, 4.0], 2).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
