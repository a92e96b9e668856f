//! Matrix products with bfloat16 inputs and float32 sums on AVX512-BF16 (`vdpbf16ps`), for the
//! encoder's linear layers.
//!
//! No maintained Rust crate multiplies bf16 with these instructions (`gemm` has f16 only,
//! `matrixmultiply` f32/f64, candle's CPU bf16 matmul converts to f32), so the kernel is here:
//! a `MR x NR` register tile (8 rows x 32 columns, 16 accumulators), the weights packed once at
//! load into panels of 32 columns whose bf16 pairs along the inner dimension sit side by side,
//! the activations read in place as bf16 pairs and broadcast. Each instruction adds, in every
//! one of 16 float32 lanes, the products of two bf16 pairs: 32 multiply-adds, twice the f32
//! FMA's. Sums stay float32 (as PyTorch's bf16 autocast and oneDNN do). Panels are shared out
//! over rayon's threads.

use std::arch::x86_64::{
    __m512, __m512bh, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_ps,
    _mm512_storeu_ps,
};

use rayon::prelude::*;

/// Columns of a weight panel (two 16-lane registers).
const NR: usize = 32;
/// Rows of the register tile.
const MR: usize = 12;

/// Whether this CPU runs the kernel (AVX512F and AVX512-BF16).
pub(crate) fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// float32 to bfloat16, rounding to nearest even (the inputs are finite).
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let round = ((bits >> 16) & 1) + 0x7fff;
    (bits.wrapping_add(round) >> 16) as u16
}

/// bfloat16 to float32 (exact).
#[cfg(test)]
fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// Activations in bf16: `rows` rows of `pairs` bf16 pairs each (the inner dimension, padded
/// with a zero to an even length), row-major.
#[derive(Debug, Default)]
pub(crate) struct Bf16Rows {
    data: Vec<u32>,
    rows: usize,
    pairs: usize,
}

impl Bf16Rows {
    /// Rows of `width` float32 values, converted.
    pub(crate) fn fill_from(&mut self, src: &[f32], width: usize) {
        let rows = src.len() / width.max(1);
        let pairs = width.div_ceil(2);
        self.reset(rows, pairs);
        self.data
            .par_chunks_mut(pairs)
            .zip(src.par_chunks(width))
            .with_min_len(8)
            .for_each(|(dst, row)| {
                for (d, pair) in dst.iter_mut().zip(row.chunks(2)) {
                    let lo = to_bf16(pair[0]) as u32;
                    let hi = pair.get(1).map_or(0, |&v| to_bf16(v) as u32);
                    *d = lo | (hi << 16);
                }
            });
    }

    /// `rows` rows of `pairs` zero pairs, to be written by a product's epilogue.
    pub(crate) fn reset(&mut self, rows: usize, pairs: usize) {
        self.data.clear();
        self.data.resize(rows * pairs, 0);
        self.rows = rows;
        self.pairs = pairs;
    }
}

/// A weight matrix `[out, in]` (PyTorch's layout) packed for the kernel, with its bias.
#[derive(Debug)]
pub(crate) struct PackedWeight {
    /// `[panel][pair][NR][2]` bf16: column `c` of panel `p` is output `p * NR + c`.
    data: Vec<u16>,
    bias: Vec<f32>,
    outputs: usize,
    pairs: usize,
}

impl PackedWeight {
    /// Packs `weight` (`outputs x inputs`, row-major) and its `bias` (`outputs`).
    pub(crate) fn pack(weight: &[f32], bias: Vec<f32>, outputs: usize, inputs: usize) -> Self {
        debug_assert_eq!(weight.len(), outputs * inputs);
        let pairs = inputs.div_ceil(2);
        let panels = outputs.div_ceil(NR);
        let mut data = vec![0u16; panels * pairs * NR * 2];
        for (o, row) in weight.chunks(inputs).enumerate() {
            let (panel, c) = (o / NR, o % NR);
            for (i, &w) in row.iter().enumerate() {
                data[((panel * pairs + i / 2) * NR + c) * 2 + i % 2] = to_bf16(w);
            }
        }
        Self {
            data,
            bias,
            outputs,
            pairs,
        }
    }
}

/// What the product's epilogue writes.
pub(crate) enum Output<'a> {
    /// `x W^T + b` as float32, `[rows, outputs]`.
    F32(&'a mut [f32]),
    /// `gelu(x W^T + b)` as bf16 pairs, ready to be the next product's input.
    GeluBf16(&'a mut Bf16Rows),
}

/// A raw pointer the panels' tasks write through; each task owns its columns.
#[derive(Clone, Copy)]
struct SharedPtr<T>(*mut T);
// SAFETY: tasks write disjoint elements (their own columns) and the caller holds the borrow.
unsafe impl<T> Send for SharedPtr<T> {}
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
        self.0
    }
}

/// `x W^T + b` (or its GELU) for every row of `x`, written to `out`.
///
/// # Panics
/// If the shapes disagree or the CPU lacks AVX512-BF16 (callers check [`supported`] once, when
/// the encoder loads).
pub(crate) fn matmul(x: &Bf16Rows, w: &PackedWeight, out: Output<'_>) {
    assert!(supported(), "bf16 matmul on a CPU without AVX512-BF16");
    assert_eq!(x.pairs, w.pairs, "bf16 matmul: inner dimensions differ");
    let rows = x.rows;
    let panels = w.outputs.div_ceil(NR);
    let (ptr, kind) = match out {
        Output::F32(o) => {
            assert_eq!(o.len(), rows * w.outputs);
            (SharedPtr(o.as_mut_ptr() as *mut u8), Kind::F32)
        }
        Output::GeluBf16(o) => {
            o.reset(rows, w.outputs.div_ceil(2));
            (SharedPtr(o.data.as_mut_ptr() as *mut u8), Kind::GeluBf16)
        }
    };
    (0..panels).into_par_iter().for_each(|panel| {
        // SAFETY: CPU support checked above; shapes checked above; each panel writes only its
        // own columns of every row.
        unsafe { panel_product(x, w, panel, ptr.get(), kind) }
    });
}

#[derive(Clone, Copy)]
enum Kind {
    F32,
    GeluBf16,
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn panel_product(x: &Bf16Rows, w: &PackedWeight, panel: usize, out: *mut u8, kind: Kind) {
    let b = unsafe { w.data.as_ptr().add(panel * w.pairs * NR * 2) };
    let mut row = 0;
    while row < x.rows {
        let n = (x.rows - row).min(MR);
        unsafe {
            match n {
                12 => tile::<12>(x, w, b, row, panel, out, kind),
                11 => tile::<11>(x, w, b, row, panel, out, kind),
                10 => tile::<10>(x, w, b, row, panel, out, kind),
                9 => tile::<9>(x, w, b, row, panel, out, kind),
                8 => tile::<8>(x, w, b, row, panel, out, kind),
                7 => tile::<7>(x, w, b, row, panel, out, kind),
                6 => tile::<6>(x, w, b, row, panel, out, kind),
                5 => tile::<5>(x, w, b, row, panel, out, kind),
                4 => tile::<4>(x, w, b, row, panel, out, kind),
                3 => tile::<3>(x, w, b, row, panel, out, kind),
                2 => tile::<2>(x, w, b, row, panel, out, kind),
                _ => tile::<1>(x, w, b, row, panel, out, kind),
            }
        }
        row += n;
    }
}

/// One `R x NR` tile: rows `row..row + R`, the columns of `panel`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize>(
    x: &Bf16Rows,
    w: &PackedWeight,
    b: *const u16,
    row: usize,
    panel: usize,
    out: *mut u8,
    kind: Kind,
) {
    let pairs = w.pairs;
    let a = unsafe { x.data.as_ptr().add(row * x.pairs) };
    let mut acc: [[__m512; 2]; R] = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..pairs {
        // SAFETY: `b` holds `pairs * NR * 2` bf16 of this panel; `a` holds R rows of `pairs`.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR * 2).cast()));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b.add(p * NR * 2 + NR).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(r * x.pairs + p) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
    }
    let col0 = panel * NR;
    let cols = (w.outputs - col0).min(NR);
    let bias = &w.bias[col0..col0 + cols];
    let mut tmp = [0f32; NR];
    for (r, acc) in acc.iter().enumerate() {
        unsafe {
            _mm512_storeu_ps(tmp.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(tmp.as_mut_ptr().add(16), acc[1]);
        }
        for (t, &b) in tmp.iter_mut().zip(bias) {
            *t += b;
        }
        let out_row = row + r;
        match kind {
            Kind::F32 => {
                // SAFETY: the output has `rows * outputs` floats; columns col0..col0+cols are this panel's.
                let dst = unsafe { (out as *mut f32).add(out_row * w.outputs + col0) };
                unsafe { std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, cols) };
            }
            Kind::GeluBf16 => {
                for t in tmp.iter_mut().take(cols) {
                    *t = super::model::gelu(*t);
                }
                let out_pairs = w.outputs.div_ceil(2);
                // SAFETY: NR is even, so this panel's pairs are whole and its own.
                let dst = unsafe { (out as *mut u32).add(out_row * out_pairs + col0 / 2) };
                for (j, pair) in tmp[..cols].chunks(2).enumerate() {
                    let lo = to_bf16(pair[0]) as u32;
                    let hi = pair.get(1).map_or(0, |&v| to_bf16(v) as u32);
                    unsafe { *dst.add(j) = lo | (hi << 16) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product of bf16-rounded inputs, summed in f64.
    fn reference(x: &[f32], w: &[f32], bias: &[f32], rows: usize, n: usize, k: usize) -> Vec<f32> {
        let r = |v: f32| from_bf16(to_bf16(v)) as f64;
        let mut out = vec![0f32; rows * n];
        for i in 0..rows {
            for j in 0..n {
                let s: f64 = (0..k).map(|t| r(x[i * k + t]) * r(w[j * k + t])).sum();
                out[i * n + j] = (s + bias[j] as f64) as f32;
            }
        }
        out
    }

    #[test]
    fn bf16_rounding_is_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0)
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }

    #[test]
    fn product_matches_reference_for_every_tail() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // odd inner size, outputs not a multiple of 32, every row tail 1..=8
        for (rows, n, k) in [(1, 5, 3), (7, 33, 17), (13, 64, 64), (20, 70, 9)] {
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
                .collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 1.0).collect();
            let packed = PackedWeight::pack(&w, bias.clone(), n, k);
            let mut xb = Bf16Rows::default();
            xb.fill_from(&x, k);
            let mut out = vec![0f32; rows * n];
            matmul(&xb, &packed, Output::F32(&mut out));
            let want = reference(&x, &w, &bias, rows, n, k);
            for (got, want) in out.iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{got} vs {want}"
                );
            }
            let mut gelu = Bf16Rows::default();
            matmul(&xb, &packed, Output::GeluBf16(&mut gelu));
            assert_eq!(gelu.rows, rows);
            for i in 0..rows {
                for j in 0..n {
                    let pair = gelu.data[i * gelu.pairs + j / 2];
                    let got = from_bf16((pair >> (16 * (j % 2))) as u16);
                    let want = super::super::model::gelu(want[i * n + j]);
                    assert!(
                        (got - want).abs() <= 8e-3 * (1.0 + want.abs()),
                        "{got} vs {want}"
                    );
                }
            }
        }
    }
}
