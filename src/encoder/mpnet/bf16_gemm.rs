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

use std::arch::x86_64::*;

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
    /// Rows of `width` float32 values, converted (the model writes its bf16 inputs where it
    /// computes them: layer norms, attention).
    #[cfg(test)]
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

    /// `rows` rows of `pairs` pairs, every one to be written by the caller (a product's
    /// epilogue, attention, a layer norm): what the buffer held is kept, not zeroed again.
    pub(crate) fn reset(&mut self, rows: usize, pairs: usize) {
        self.data.resize(rows * pairs, 0);
        self.rows = rows;
        self.pairs = pairs;
    }

    /// The pairs, row-major: `pairs` per row (after [`Bf16Rows::reset`]).
    pub(crate) fn data_mut(&mut self) -> &mut [u32] {
        &mut self.data
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
    let end = Epilogue::new(w, panel, out, kind);
    // unrolled (R is a constant), so `acc` stays in registers: a loop indexing it at run time
    // would keep it on the stack, zeroed by a memset before every tile
    for (r, acc) in acc.into_iter().enumerate() {
        // SAFETY: as `matmul` promises: row `row + r` exists and the panel's columns are ours.
        unsafe { end.store(row + r, acc) };
    }
}

/// What a tile does with its sums: the bias, then float32 or GELU to bf16 pairs, for the
/// columns of one panel.
struct Epilogue {
    bias: [__m512; 2],
    /// Lanes of the panel's real columns, in each half.
    masks: [__mmask16; 2],
    /// Lanes of its bf16 pairs.
    pairs_mask: __mmask16,
    col0: usize,
    outputs: usize,
    out: *mut u8,
    kind: Kind,
}

impl Epilogue {
    /// The epilogue of `panel` of `w`, writing to `out` as `kind` says.
    #[target_feature(enable = "avx512f")]
    fn new(w: &PackedWeight, panel: usize, out: *mut u8, kind: Kind) -> Self {
        let col0 = panel * NR;
        let cols = (w.outputs - col0).min(NR);
        let masks = [lanes(cols), lanes(cols.saturating_sub(16))];
        // SAFETY: the masks cover the bias's `cols` floats from col0 only.
        let bias = unsafe {
            let b = w.bias.as_ptr().add(col0);
            [
                _mm512_maskz_loadu_ps(masks[0], b),
                _mm512_maskz_loadu_ps(masks[1], b.add(16)),
            ]
        };
        Self {
            bias,
            masks,
            pairs_mask: lanes(cols.div_ceil(2)),
            col0,
            outputs: w.outputs,
            out,
            kind,
        }
    }

    /// Writes output row `row` from its sums (`acc`, the panel's 32 columns).
    ///
    /// # Safety
    /// `out` holds `row + 1` rows of the output `Kind`, whose panel columns no one else writes.
    #[target_feature(enable = "avx512f")]
    unsafe fn store(&self, row: usize, acc: [__m512; 2]) {
        // the sums plus the bias, lane by lane (as a scalar `+=` would)
        let v = [
            _mm512_add_ps(acc[0], self.bias[0]),
            _mm512_add_ps(acc[1], self.bias[1]),
        ];
        let [m0, m1] = self.masks;
        match self.kind {
            // SAFETY (both arms): the caller's contract; the masks keep to the panel's columns.
            Kind::F32 => unsafe {
                let dst = (self.out as *mut f32).add(row * self.outputs + self.col0);
                store_ps(dst, m0, v[0]);
                store_ps(dst.add(16), m1, v[1]);
            },
            Kind::GeluBf16 => {
                // lanes past the columns are zeroed, so an odd last pair's upper half is 0
                let g = [
                    _mm512_maskz_mov_ps(m0, gelu16(v[0])),
                    _mm512_maskz_mov_ps(m1, gelu16(v[1])),
                ];
                let out_pairs = self.outputs.div_ceil(2);
                // NR is even, so this panel's pairs are whole and its own
                unsafe {
                    let dst = (self.out as *mut u32).add(row * out_pairs + self.col0 / 2);
                    store_pairs(dst, self.pairs_mask, bf16_pairs(g));
                }
            }
        }
    }
}

/// The mask of the first `n` of 16 lanes (all for `n >= 16`).
#[inline(always)]
pub(crate) fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Stores the lanes of `v` that `mask` selects at `dst` (a plain store when it selects all: a
/// masked store is slower on Zen 4, and holds up the loads after it).
///
/// # Safety
/// `dst` is valid for the selected lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn store_ps(dst: *mut f32, mask: __mmask16, v: __m512) {
    unsafe {
        match mask {
            0xffff => _mm512_storeu_ps(dst, v),
            _ => _mm512_mask_storeu_ps(dst, mask, v),
        }
    }
}

/// [`store_ps`] for 16 bf16 pairs.
///
/// # Safety
/// `dst` is valid for the selected lanes.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn store_pairs(dst: *mut u32, mask: __mmask16, v: __m512i) {
    unsafe {
        match mask {
            0xffff => _mm512_storeu_si512(dst.cast(), v),
            _ => _mm512_mask_storeu_epi32(dst.cast(), mask, v),
        }
    }
}

/// [`to_bf16`] of 32 floats (two registers), packed as 16 pairs: lane `j` holds elements
/// `2j` (low half) and `2j + 1` (high half), as [`Bf16Rows`] stores them.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn bf16_pairs(v: [__m512; 2]) -> __m512i {
    let half = |x: __m512| {
        let bits = _mm512_castps_si512(x);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let round = _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff));
        _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(_mm512_add_epi32(bits, round)))
    };
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(half(v[0])), half(v[1]))
}

/// [`gelu`](super::model::gelu) of 16 lanes, the same operations in the same order (so
/// bit-identical to the scalar function).
#[target_feature(enable = "avx512f")]
#[inline]
fn gelu16(x: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    // erf_f32(x / sqrt 2): the clamp as max then min keeps a NaN, as f32::clamp does
    let e = _mm512_mul_ps(x, s(std::f32::consts::FRAC_1_SQRT_2));
    let e = _mm512_min_ps(s(4.0), _mm512_max_ps(s(-4.0), e));
    let x2 = _mm512_mul_ps(e, e);
    let horner = |c0: f32, cs: &[f32]| {
        cs.iter()
            .fold(s(c0), |p, &c| _mm512_add_ps(_mm512_mul_ps(p, x2), s(c)))
    };
    let p = horner(
        -2.726_142_3e-10,
        &[
            2.770_681_4e-8,
            -2.101_024e-6,
            -5.692_506_4e-5,
            -7.349_906_3e-4,
            -2.954_600_1e-3,
            -1.609_603_3e-2,
        ],
    );
    let q = horner(
        -1.456_607_2e-5,
        &[-2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2],
    );
    let r = _mm512_div_ps(_mm512_mul_ps(e, p), q);
    let sign = _mm512_and_si512(_mm512_castps_si512(e), _mm512_set1_epi32(i32::MIN));
    let one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(s(1.0)), sign));
    let abs = _mm512_castsi512_ps(_mm512_andnot_si512(
        _mm512_set1_epi32(i32::MIN),
        _mm512_castps_si512(e),
    ));
    let saturated = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(abs, s(3.92));
    let erf = _mm512_mask_blend_ps(saturated, r, one);
    _mm512_mul_ps(_mm512_mul_ps(s(0.5), x), _mm512_add_ps(s(1.0), erf))
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
    fn vector_gelu_and_rounding_equal_the_scalar_bits() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // every 997th float32 bit pattern (both signs, denormals, the erf cut at 3.92, huge
        // values, infinities and NaNs), 32 at a time
        let xs: Vec<f32> = (0..u32::MAX / 997)
            .map(|i| f32::from_bits(i * 997))
            .collect();
        for chunk in xs.chunks_exact(32) {
            // SAFETY: AVX512F is present (checked above); the loads read 32 floats.
            let (gelu, pairs) = unsafe {
                let v = [
                    _mm512_loadu_ps(chunk.as_ptr()),
                    _mm512_loadu_ps(chunk.as_ptr().add(16)),
                ];
                let mut gelu = [0f32; 32];
                _mm512_storeu_ps(gelu.as_mut_ptr(), gelu16(v[0]));
                _mm512_storeu_ps(gelu.as_mut_ptr().add(16), gelu16(v[1]));
                let mut pairs = [0u32; 16];
                _mm512_storeu_si512(pairs.as_mut_ptr().cast(), bf16_pairs(v));
                (gelu, pairs)
            };
            for (j, &x) in chunk.iter().enumerate() {
                let want = super::super::model::gelu(x);
                assert!(
                    gelu[j].to_bits() == want.to_bits() || (want.is_nan() && gelu[j].is_nan()),
                    "gelu({x:e}): {} vs {want}",
                    gelu[j]
                );
                assert_eq!((pairs[j / 2] >> (16 * (j % 2))) as u16, to_bf16(x), "{x:e}");
            }
        }
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
