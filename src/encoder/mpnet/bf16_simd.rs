//! SIMD helpers of the bf16 encoder (AVX512F): a pointer that parallel tasks share, and a
//! 16 x 16 register transpose with the column walk built on it (layer norms and attention
//! keep a row, or a key, a lane).

use std::arch::x86_64::*;

use super::bf16_gemm::lanes;

/// A raw pointer that parallel tasks write through, each to its own elements.
#[derive(Clone, Copy)]
pub(super) struct SharedPtr<T>(pub(super) *mut T);
// SAFETY: each attention task writes its own (token, head) pairs only, each norm block its own
// rows.
unsafe impl<T> Send for SharedPtr<T> {}
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    pub(super) fn get(self) -> *mut T {
        self.0
    }
}

/// Calls `f` with the columns of the rows of `x` (width `h`, at most 16 rows) in order, a row a
/// lane (lanes past the rows hold zeros).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn for_each_column(x: &[f32], h: usize, mut f: impl FnMut(__m512)) {
    let n = x.len() / h;
    for k0 in (0..h).step_by(16) {
        let m = lanes(h - k0);
        let rows: [__m512; 16] = std::array::from_fn(|r| match r < n {
            // SAFETY: the mask keeps to row r's columns k0..h.
            true => unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(r * h + k0)) },
            false => _mm512_setzero_ps(),
        });
        for &c in &transpose16(rows)[..(h - k0).min(16)] {
            f(c);
        }
    }
}

/// The 16 x 16 transpose of `r`: lane `i` of column `c` is lane `c` of `r[i]` (moves only).
#[target_feature(enable = "avx512f")]
pub(super) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // pairs of rows interleaved, then fours: u[4g + c] holds, in each 128-bit lane L, column
    // 4L + c of rows 4g..4g + 4
    let mut t = [_mm512_setzero_ps(); 16];
    for p in 0..8 {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (4 * g, 4 * g + 1);
        u[4 * g] = _mm512_shuffle_ps::<0x44>(t[lo], t[lo + 2]);
        u[4 * g + 1] = _mm512_shuffle_ps::<0xee>(t[lo], t[lo + 2]);
        u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(t[hi], t[hi + 2]);
        u[4 * g + 3] = _mm512_shuffle_ps::<0xee>(t[hi], t[hi + 2]);
    }
    // then the 128-bit lanes gathered: column 4L + c from lane L of u[c], u[4 + c], ...
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v = [
            _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]),
            _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]),
        ];
        let w = [
            _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]),
            _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]),
        ];
        out[c] = _mm512_shuffle_f32x4::<0x88>(v[0], w[0]);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(v[0], w[0]);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(v[1], w[1]);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(v[1], w[1]);
    }
    out
}

#[cfg(test)]
/// Deterministic values in about -2..2 (the tests' inputs).
pub(super) fn test_values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 4001) as f32 / 1000.0 - 2.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::bf16_gemm::supported;
    use super::*;

    #[test]
    fn transpose16_transposes() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut got = [0f32; 256];
        // SAFETY: AVX512F is present; 16 loads and stores of 16 floats in 256.
        unsafe {
            let rows = std::array::from_fn(|r| _mm512_loadu_ps(m.as_ptr().add(16 * r)));
            for (c, col) in transpose16(rows).into_iter().enumerate() {
                _mm512_storeu_ps(got.as_mut_ptr().add(16 * c), col);
            }
        }
        for (c, col) in got.chunks(16).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                assert_eq!(v, m[16 * r + c], "column {c}, row {r}");
            }
        }
    }
}
