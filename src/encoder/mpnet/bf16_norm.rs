//! Layer norms of the bf16 encoder, 16 rows at once (a row a lane, each row's sums in their
//! serial order: the bits of one row at a time), writing the next product's bf16 input in the
//! same pass.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::bf16_gemm::{bf16_pairs, lanes, store_pairs, store_ps, Bf16Rows};
use super::bf16_simd::{for_each_column, SharedPtr};

/// A layer norm's weight, bias and epsilon.
pub(super) struct Norm {
    pub(super) weight: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) eps: f32,
}

/// Rows a layer norm sums together, one per lane: each lane's sums keep the serial order of
/// a row on its own, so the results are the bits of one row at a time (whose sums, one long
/// chain of additions each, waited on every addition).
const NORM_ROWS: usize = 16;

impl Norm {
    /// `x = norm(x + residual)` for every row of `x` (width `h`; `residual` may be absent),
    /// in parallel, also written as bf16 to `bf16` (the next product's input) if given.
    pub(super) fn apply_rows(
        &self,
        x: &mut [f32],
        residual: Option<&[f32]>,
        h: usize,
        bf16: Option<&mut Bf16Rows>,
    ) {
        let rows = x.len() / h;
        let pairs = h.div_ceil(2);
        let out = bf16.map(|b| {
            b.reset(rows, pairs);
            SharedPtr(b.data_mut().as_mut_ptr())
        });
        x.par_chunks_mut(h * NORM_ROWS)
            .enumerate()
            .for_each(|(block, x)| {
                let first = block * NORM_ROWS;
                let res = residual.map(|r| &r[first * h..first * h + x.len()]);
                // SAFETY: the model exists only where AVX512F was detected; this block writes
                // its own rows of `out` (`rows * pairs` pairs) only.
                unsafe {
                    let out = out.map(|o| o.get().add(first * pairs));
                    self.apply_block(x, res, h, out)
                }
            });
    }

    /// [`Norm::apply_rows`] on up to [`NORM_ROWS`] rows; the bf16 pairs go to `out`,
    /// `h.div_ceil(2)` a row, if given.
    ///
    /// # Safety
    /// AVX512F; `out`, if given, is valid for the rows' pairs.
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_block(
        &self,
        x: &mut [f32],
        residual: Option<&[f32]>,
        h: usize,
        out: Option<*mut u32>,
    ) {
        // (here, so that it is compiled for AVX512F)
        if let Some(res) = residual {
            x.iter_mut().zip(res).for_each(|(v, r)| *v += r);
        }
        let count = _mm512_set1_ps(h as f32);
        // the sums of `Iterator::sum`: from -0.0, in order
        let mut sum = _mm512_set1_ps(-0.0);
        for_each_column(x, h, |c| sum = _mm512_add_ps(sum, c));
        let mean = _mm512_div_ps(sum, count);
        let mut sum = _mm512_set1_ps(-0.0);
        for_each_column(x, h, |c| {
            let d = _mm512_sub_ps(c, mean);
            sum = _mm512_add_ps(sum, _mm512_mul_ps(d, d));
        });
        let var = _mm512_div_ps(sum, count);
        let eps = _mm512_set1_ps(self.eps);
        let inv = _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_sqrt_ps(_mm512_add_ps(var, eps)));
        let (mut means, mut invs) = ([0f32; 16], [0f32; 16]);
        // SAFETY: 16 floats each.
        unsafe {
            _mm512_storeu_ps(means.as_mut_ptr(), mean);
            _mm512_storeu_ps(invs.as_mut_ptr(), inv);
        }
        let pairs = h.div_ceil(2);
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            let (mean, inv) = (_mm512_set1_ps(means[r]), _mm512_set1_ps(invs[r]));
            for c in (0..h).step_by(32) {
                let m = [lanes(h - c), lanes((h - c).saturating_sub(16))];
                // SAFETY: the masks keep to the row's columns c..h (and the weights', bias's).
                unsafe {
                    let at = |p: *const f32, half: usize| {
                        _mm512_maskz_loadu_ps(m[half], p.add(c + 16 * half))
                    };
                    let v = [0, 1].map(|half| {
                        let v = _mm512_sub_ps(at(row.as_ptr(), half), mean);
                        let v =
                            _mm512_mul_ps(_mm512_mul_ps(v, inv), at(self.weight.as_ptr(), half));
                        _mm512_add_ps(v, at(self.bias.as_ptr(), half))
                    });
                    store_ps(row.as_mut_ptr().add(c), m[0], v[0]);
                    store_ps(row.as_mut_ptr().add(c + 16), m[1], v[1]);
                    if let Some(out) = out {
                        let dst = out.add(r * pairs + c / 2);
                        let keep = lanes((h - c).div_ceil(2));
                        store_pairs(dst, keep, bf16_pairs(v));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::bf16_gemm::supported;
    use super::super::bf16_simd::test_values as values;
    use super::*;

    #[test]
    fn norm_equals_the_scalar_bits() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        for h in [5, 40, 768] {
            for rows in [1, 15, 16, 35] {
                let norm = Norm {
                    weight: values(h, 1),
                    bias: values(h, 2),
                    eps: 1e-5,
                };
                let x0 = values(rows * h, h + rows);
                let residual = values(rows * h, 3);
                let mut x = x0.clone();
                let mut bf16 = Bf16Rows::default();
                norm.apply_rows(&mut x, Some(&residual), h, Some(&mut bf16));
                let mut want = x0;
                for (row, res) in want.chunks_mut(h).zip(residual.chunks(h)) {
                    row.iter_mut().zip(res).for_each(|(v, r)| *v += r);
                    let n = row.len() as f32;
                    let mean = row.iter().sum::<f32>() / n;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                    let inv = 1.0 / (var + norm.eps).sqrt();
                    for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
                        *v = (*v - mean) * inv * w + b;
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&x), bits(&want), "h {h}, rows {rows}");
                let mut expected = Bf16Rows::default();
                expected.fill_from(&want, h);
                assert_eq!(bf16.data_mut(), expected.data_mut(), "h {h}, rows {rows}");
            }
        }
    }
}
