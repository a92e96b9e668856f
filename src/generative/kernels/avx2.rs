//! AVX2 block products. The compiler did not reliably auto-vectorise the integer block dot
//! products (the Q4 nibble unpacking ended up scalar: 120 ms for 96 bytes), so these use the
//! ggml scheme: `maddubs(|w|, sign(x, w))` then `madd` with ones, 32 products per block in a
//! handful of instructions. |w|, |x| ≤ 127, so the 16-bit pair sums cannot saturate.

use std::arch::x86_64::*;

use super::BLOCK;

/// Eight f32 lanes of the products of two blocks of 32 signed bytes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn block_dot(w: __m256i, x: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(w, w);
    let sx = _mm256_sign_epi8(x, w);
    let pairs = _mm256_maddubs_epi16(ax, sx);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// Sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Float32 dot product of equally long slices, four 8-lane accumulators. (The
/// auto-vectorised [`super::dot_lanes`] came out only 2 lanes wide under AVX2.)
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut c = 0;
    while c + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let off = c + 8 * k;
            *acc = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(off)),
                _mm256_loadu_ps(bp.add(off)),
                *acc,
            );
        }
        c += 32;
    }
    while c + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(ap.add(c)),
            _mm256_loadu_ps(bp.add(c)),
            acc[0],
        );
        c += 8;
    }
    let both = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut sum = hsum(both);
    for (x, y) in a[c..n].iter().zip(&b[c..n]) {
        sum += x * y;
    }
    sum
}

/// Float32 `out = W · x`, rows of `cols` values.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matvec_f32(w: &[f32], cols: usize, x: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
        *o = dot(row, x);
    }
}

/// Block-quantised weight rows.
trait Rows {
    /// Weight block `i` (row-major block index) as 32 signed bytes.
    unsafe fn load(&self, i: usize) -> __m256i;
}

struct Q8Rows<'a>(&'a [[i8; BLOCK]]);
struct Q4Rows<'a>(&'a [[u8; BLOCK / 2]]);

impl Rows for Q8Rows<'_> {
    #[inline(always)]
    unsafe fn load(&self, i: usize) -> __m256i {
        _mm256_loadu_si256(self.0[i].as_ptr().cast())
    }
}

impl Rows for Q4Rows<'_> {
    #[inline(always)]
    unsafe fn load(&self, i: usize) -> __m256i {
        let packed = _mm_loadu_si128(self.0[i].as_ptr().cast());
        // Low nibbles are weights 0..16, high nibbles weights 16..32.
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_sub_epi8(
            _mm256_and_si256(both, _mm256_set1_epi8(0x0f)),
            _mm256_set1_epi8(8),
        )
    }
}

/// `out = W · x` for block-quantised rows of `nb` blocks, four rows at a time (four
/// independent accumulators hide the multiply-add latency and share the loads of `x`).
#[inline(always)]
unsafe fn matvec<R: Rows>(
    nb: usize,
    scales: &[f32],
    rows: &R,
    x: &super::QuantizedVector,
    out: &mut [f32],
) {
    let xs = &x.scales[..nb];
    let xq = &x.quants[..nb];
    let mut r = 0;
    while r + 4 <= out.len() {
        let mut acc = [_mm256_setzero_ps(); 4];
        for b in 0..nb {
            let xv = _mm256_loadu_si256(xq[b].as_ptr().cast());
            for (k, acc) in acc.iter_mut().enumerate() {
                let i = (r + k) * nb + b;
                let w = rows.load(i);
                let s = _mm256_set1_ps(scales[i] * xs[b]);
                *acc = _mm256_fmadd_ps(s, block_dot(w, xv), *acc);
            }
        }
        for (k, acc) in acc.into_iter().enumerate() {
            out[r + k] = hsum(acc);
        }
        r += 4;
    }
    while r < out.len() {
        let mut acc = _mm256_setzero_ps();
        for b in 0..nb {
            let i = r * nb + b;
            let xv = _mm256_loadu_si256(xq[b].as_ptr().cast());
            let s = _mm256_set1_ps(scales[i] * xs[b]);
            acc = _mm256_fmadd_ps(s, block_dot(rows.load(i), xv), acc);
        }
        out[r] = hsum(acc);
        r += 1;
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matvec_q8(
    nb: usize,
    scales: &[f32],
    quants: &[[i8; BLOCK]],
    x: &super::QuantizedVector,
    out: &mut [f32],
) {
    matvec(nb, scales, &Q8Rows(quants), x, out);
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn matvec_q4(
    nb: usize,
    scales: &[f32],
    quants: &[[u8; BLOCK / 2]],
    x: &super::QuantizedVector,
    out: &mut [f32],
) {
    matvec(nb, scales, &Q4Rows(quants), x, out);
}
