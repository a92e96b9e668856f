//! The input contract: [`UnitEmbedding`], an embedding checked (dimension, finite, non-zero)
//! and scaled to unit norm once per decode, and the vector helpers the decoders share.

use std::ops::Deref;

use ndarray::ArrayView1;

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
    if norm < MIN_NORM {
        return Err(Error::ZeroVector { norm });
    }
    if !norm.is_finite() {
        // finite components whose norm exceeds f32 (above about 1.8e19 each): scale in f64
        let wide = embedding
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        return Ok(embedding
            .iter()
            .map(|&v| (f64::from(v) / wide) as f32)
            .collect());
    }
    Ok(embedding.iter().map(|v| v / norm).collect())
}

/// An embedding that has been checked (the expected dimension, only finite values, not the
/// zero vector) and scaled to unit norm: what every decoder works on, made once per input.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitEmbedding(Vec<f32>);

impl UnitEmbedding {
    /// Checks `embedding` against dimension `dim` and scales it to unit norm; the error names
    /// what is wrong ([`Error::DimensionMismatch`], [`Error::NonFinite`],
    /// [`Error::ZeroVector`]).
    ///
    /// Scaling by `1 / norm` in f32 can leave the norm an ulp or two from 1, so the scaling is
    /// repeated until the norm is exactly 1 (at most three times; once or twice in practice):
    /// a unit embedding is a fixed point of normalisation, and every part of a decoder that
    /// reads it sees the same bits.
    pub fn new(embedding: &[f32], dim: usize) -> Result<Self> {
        let mut v = normalized(embedding, dim)?;
        for _ in 0..3 {
            let n = norm(&v);
            if n == 1.0 {
                break;
            }
            v.iter_mut().for_each(|x| *x /= n);
        }
        Ok(UnitEmbedding(v))
    }

    /// Wraps a vector the caller has just normalised (crate-internal: search results and
    /// batches already checked row by row).
    pub(crate) fn from_normalized(v: Vec<f32>) -> Self {
        UnitEmbedding(v)
    }

    /// The components.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The components as an owned vector.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }
}

impl Deref for UnitEmbedding {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
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
    let unit = match view.as_slice() {
        Some(s) => UnitEmbedding::new(s, dim),
        None => UnitEmbedding::new(&view.to_vec(), dim),
    };
    unit.map(UnitEmbedding::into_vec)
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
        // finite but huge: a direction, not a zero vector
        let v = UnitEmbedding::new(&[3e38, 3e38], 2).unwrap();
        assert!((v[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
