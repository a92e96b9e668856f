//! The input contract: [`UnitEmbedding`], an embedding checked (dimension, finite, non-zero)
//! and scaled to unit norm once per decode, and the vector helpers the decoders share.

use std::ops::Deref;

use ndarray::ArrayView1;
use rayon::prelude::*;

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
        crate::trace::record(|| crate::trace::Event::InputCheck);
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
///
/// The value is that of the sum of squares taken in order ([`sequential_norm`]), bit for
/// bit. The squares of f32 values are exact in f64, so any order of summing them is within
/// `(n - 1) * 2^-53` (relative) of the exact sum, as is the sum in order; eight partial sums
/// (which the compiler vectorises, where the sum in order waits on each addition) decide
/// whenever the f32 norm is the same across twice that distance on both sides, and the sum in
/// order is taken otherwise (rarely: an f32 rounding boundary must lie within about 1e-13,
/// relative, of the norm).
pub fn norm(v: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut partial = [0f64; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (p, &x) in partial.iter_mut().zip(chunk) {
            *p += f64::from(x) * f64::from(x);
        }
    }
    let mut sum = ((partial[0] + partial[4]) + (partial[1] + partial[5]))
        + ((partial[2] + partial[6]) + (partial[3] + partial[7]));
    for &x in rest {
        sum += f64::from(x) * f64::from(x);
    }
    // 4 n 2^-53 of the sum: twice the bound of each order's error, and the roundings of
    // these two bounds' own arithmetic
    let slack = sum * v.len() as f64 * f64::EPSILON * 2.0;
    let low = (sum - slack).max(0.0).sqrt() as f32;
    let high = (sum + slack).sqrt() as f32;
    // (an empty sum in order is -0.0)
    if sum.is_finite() && low == high && !v.is_empty() {
        return low;
    }
    sequential_norm(v)
}

/// [`norm`] as the sum of squares in order gives it (its reference).
fn sequential_norm(v: &[f32]) -> f32 {
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

/// Batches of at least this many rows are normalised in parallel.
const PARALLEL_NORMALIZE_ROWS: usize = 64;

/// Checks every row of a batch and returns the rows scaled to unit norm, row-major (in
/// parallel for large batches; the same values either way).
///
/// The error names the first bad row.
pub fn normalized_rows(rows: &ndarray::ArrayView2<f32>, dim: usize) -> Result<Vec<f32>> {
    if rows.ncols() != dim {
        return Err(Error::DimensionMismatch {
            expected: dim,
            got: rows.ncols(),
        });
    }
    let at_row = |row: usize| {
        move |e: Error| Error::AtRow {
            row,
            source: Box::new(e),
        }
    };
    if rows.nrows() < PARALLEL_NORMALIZE_ROWS || dim == 0 {
        let mut out = Vec::with_capacity(rows.len());
        for (row, view) in rows.rows().into_iter().enumerate() {
            out.extend(normalized_row(view, dim).map_err(at_row(row))?);
        }
        return Ok(out);
    }
    let mut out = vec![0f32; rows.len()];
    let checked: Vec<Result<()>> = out
        .par_chunks_mut(dim)
        .enumerate()
        .map(|(row, slot)| {
            normalized_row(rows.row(row), dim)
                .map(|unit| slot.copy_from_slice(&unit))
                .map_err(at_row(row))
        })
        .collect();
    // the first bad row in row order, as the sequential check reports it
    checked.into_iter().collect::<Result<()>>()?;
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
    fn norm_equals_the_sum_in_order_bit_for_bit() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut tried = 0;
        for len in [0usize, 1, 3, 7, 8, 9, 17, 384, 768, 769, 1536] {
            for scale in [1e-30f32, 1e-3, 1.0, 3e4, 1e18] {
                for _ in 0..200 {
                    let v: Vec<f32> = (0..len)
                        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
                        .collect();
                    assert_eq!(norm(&v).to_bits(), sequential_norm(&v).to_bits());
                    tried += 1;
                }
            }
        }
        // unit vectors (normalisation's fixed point) and values that do not round at all
        for len in [2usize, 768] {
            for _ in 0..2000 {
                let mut v: Vec<f32> = (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let n = sequential_norm(&v);
                v.iter_mut().for_each(|x| *x /= n);
                assert_eq!(norm(&v).to_bits(), sequential_norm(&v).to_bits());
            }
        }
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert!(norm(&[f32::NAN, 1.0]).is_nan());
        assert!(tried > 10_000);
    }

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
