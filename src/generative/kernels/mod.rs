//! Plain-Rust kernels of the incremental decoder: block-quantised matrix-vector products,
//! layer norm, GELU and small dot products, on slices.
//!
//! The float32 product and the portable block products are written so that the compiler
//! auto-vectorises them (fixed-size blocks, independent accumulator lanes, no bounds checks in
//! the inner loops). On x86-64 the same code is compiled a second time with AVX2 + FMA enabled
//! and chosen at run time, so the portable build still uses 256-bit vectors on machines that
//! have them; there the block-quantised products use explicit AVX2 kernels (module `avx2`),
//! because the integer block dot products did not auto-vectorise reliably.

// Index loops over fixed-size arrays are what auto-vectorises best here.
#![allow(clippy::needless_range_loop)]

use super::gguf_file::{GgmlType, RawTensor};

/// Weights per quantisation block (GGML Q8_0 / Q4_0).
pub(crate) const BLOCK: usize = 32;

/// Storage of a weight matrix `[rows, cols]`, row-major.
#[derive(Debug, Clone)]
enum Weights {
    /// Float32 values.
    F32(Vec<f32>),
    /// Q8_0: per block of 32 weights one scale and 32 signed bytes; weight = scale * q.
    Q8 {
        scales: Vec<f32>,
        quants: Vec<[i8; BLOCK]>,
    },
    /// Q4_0: per block one scale and 16 bytes; byte `j` holds weight `j` in its low nibble and
    /// weight `j + 16` in its high nibble; weight = scale * (nibble - 8).
    Q4 {
        scales: Vec<f32>,
        quants: Vec<[u8; BLOCK / 2]>,
    },
}

/// A weight matrix `[rows, cols]` applied to a vector as `W · x`.
#[derive(Debug, Clone)]
pub(crate) struct Matrix {
    rows: usize,
    cols: usize,
    weights: Weights,
}

/// IEEE half precision bits to f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    match exp {
        0 => {
            let v = man as f32 * (1.0 / 16_777_216.0);
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        31 => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

impl Matrix {
    /// Reads a stored 2-D tensor: float32 values, or the raw GGML Q8_0 / Q4_0 blocks as a GGUF
    /// file holds them (and as candle quantises them).
    pub(crate) fn from_raw(t: &RawTensor) -> std::result::Result<Self, String> {
        let &[rows, cols] = t.dims.as_slice() else {
            return Err(format!("expected a matrix, got shape {:?}", t.dims));
        };
        let data = &t.data;
        let weights = match t.dtype {
            GgmlType::F32 => {
                if data.len() != rows * cols * 4 {
                    return Err(format!("float32 tensor holds {} bytes", data.len()));
                }
                Weights::F32(f32_values(data))
            }
            GgmlType::Q8_0 | GgmlType::Q4_0 => {
                if !cols.is_multiple_of(BLOCK) {
                    return Err(format!("{cols} columns are not a multiple of {BLOCK}"));
                }
                let block_bytes = t.dtype.block_bytes();
                let blocks = rows * cols / BLOCK;
                if data.len() != blocks * block_bytes {
                    return Err(format!(
                        "quantised tensor holds {} bytes, expected {}",
                        data.len(),
                        blocks * block_bytes
                    ));
                }
                let scales = data
                    .chunks_exact(block_bytes)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect();
                if t.dtype == GgmlType::Q8_0 {
                    let quants = data
                        .chunks_exact(block_bytes)
                        .map(|b| std::array::from_fn(|j| b[2 + j] as i8))
                        .collect();
                    Weights::Q8 { scales, quants }
                } else {
                    let quants = data
                        .chunks_exact(block_bytes)
                        .map(|b| std::array::from_fn(|j| b[2 + j]))
                        .collect();
                    Weights::Q4 { scales, quants }
                }
            }
        };
        Ok(Self {
            rows,
            cols,
            weights,
        })
    }

    /// Number of output rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The matrix as float32 values `[rows * cols]` (dequantised).
    pub(crate) fn to_f32(&self) -> Vec<f32> {
        match &self.weights {
            Weights::F32(w) => w.clone(),
            Weights::Q8 { scales, quants } => scales
                .iter()
                .zip(quants)
                .flat_map(|(&s, q)| q.map(|v| s * f32::from(v)))
                .collect(),
            Weights::Q4 { scales, quants } => scales
                .iter()
                .zip(quants)
                .flat_map(|(&s, q)| {
                    let w: [f32; BLOCK] = std::array::from_fn(|j| {
                        let nib = if j < BLOCK / 2 {
                            q[j] & 0x0f
                        } else {
                            q[j - BLOCK / 2] >> 4
                        };
                        s * (f32::from(nib) - 8.0)
                    });
                    w
                })
                .collect(),
        }
    }

    /// `out = W · x` (`x.len() == cols`, `out.len() == rows`). For block-quantised weights
    /// `x` is first rounded to Q8_0-like blocks in `scratch` (f32 scale, as ggml and candle's
    /// quantised matmul do) and each block product is an integer dot product.
    pub(crate) fn matvec(&self, x: &[f32], out: &mut [f32], scratch: &mut QuantizedVector) {
        assert_eq!(x.len(), self.cols, "matvec input size");
        assert_eq!(out.len(), self.rows, "matvec output size");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { matvec_avx2(self, x, out, scratch) };
                return;
            }
        }
        matvec_generic::<false>(self, x, out, scratch);
    }
}

/// Little-endian float32 values.
pub(crate) fn f32_values(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The values of a stored tensor of any shape, dequantised as ggml (and candle) do: Q8_0
/// `scale * q`, Q4_0 `scale * (nibble - 8)`, the f16 scale widened exactly.
pub(crate) fn dequantize(t: &RawTensor) -> Vec<f32> {
    let block_bytes = t.dtype.block_bytes();
    match t.dtype {
        GgmlType::F32 => f32_values(&t.data),
        GgmlType::Q8_0 => t
            .data
            .chunks_exact(block_bytes)
            .flat_map(|b| {
                let s = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                let w: [f32; BLOCK] = std::array::from_fn(|j| s * f32::from(b[2 + j] as i8));
                w
            })
            .collect(),
        GgmlType::Q4_0 => t
            .data
            .chunks_exact(block_bytes)
            .flat_map(|b| {
                let s = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
                let w: [f32; BLOCK] = std::array::from_fn(|j| {
                    let nib = if j < BLOCK / 2 {
                        b[2 + j] & 0x0f
                    } else {
                        b[2 + j - BLOCK / 2] >> 4
                    };
                    s * (f32::from(nib) - 8.0)
                });
                w
            })
            .collect(),
    }
}

/// An activation vector rounded to blocks of 32 signed bytes with one scale each.
#[derive(Debug, Clone, Default)]
pub(crate) struct QuantizedVector {
    scales: Vec<f32>,
    quants: Vec<[i8; BLOCK]>,
}

impl QuantizedVector {
    /// Rounds `x` (length a multiple of 32) like GGML Q8_0: scale = max |x| / 127.
    #[inline(always)]
    fn quantize(&mut self, x: &[f32]) {
        let (blocks, _) = x.as_chunks::<BLOCK>();
        self.scales.clear();
        self.quants.clear();
        for b in blocks {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            self.scales.push(d);
            // Round to nearest (ties to even) by adding and removing 1.5 * 2^23: exact for
            // |v| <= 127 and, unlike `round`, never a library call.
            const MAGIC: f32 = 12_582_912.0;
            let mut q = [0i8; BLOCK];
            for l in 0..BLOCK {
                q[l] = ((b[l] * id + MAGIC) - MAGIC) as i8;
            }
            self.quants.push(q);
        }
    }
}

/// [`matvec_generic`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn matvec_avx2(m: &Matrix, x: &[f32], out: &mut [f32], scratch: &mut QuantizedVector) {
    matvec_generic::<true>(m, x, out, scratch);
}

#[inline(always)]
fn matvec_generic<const AVX2: bool>(
    m: &Matrix,
    x: &[f32],
    out: &mut [f32],
    scratch: &mut QuantizedVector,
) {
    let cols = m.cols;
    match &m.weights {
        Weights::F32(w) => {
            #[cfg(target_arch = "x86_64")]
            if AVX2 {
                // SAFETY: `AVX2` is only set by `matvec_avx2`, called once AVX2 and FMA are
                // detected.
                unsafe { avx2::matvec_f32(w, cols, x, out) };
                return;
            }
            for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
                *o = dot_lanes(row, x);
            }
        }
        Weights::Q8 { scales, quants } => block_matvec::<AVX2, _>(scales, quants, x, out, scratch),
        Weights::Q4 { scales, quants } => block_matvec::<AVX2, _>(scales, quants, x, out, scratch),
    }
}

/// Sum of the lanes, pairwise.
#[inline(always)]
fn reduce<const N: usize>(lanes: [f32; N]) -> f32 {
    let mut v = lanes;
    let mut n = N;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            v[i] += v[i + n];
        }
    }
    v[0]
}

/// Dot product of two equally long slices, 16 independent lanes.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ac, at) = a.as_chunks::<16>();
    let (bc, bt) = b.as_chunks::<16>();
    let mut acc = [0f32; 16];
    for (a, b) in ac.iter().zip(bc) {
        for l in 0..16 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut tail = 0.0;
    for (a, b) in at.iter().zip(bt) {
        tail += a * b;
    }
    reduce(acc) + tail
}

/// Dot product of two equally long slices; `AVX2` may only be set where the CPU has AVX2 and
/// FMA.
#[inline(always)]
pub(crate) fn dot<const AVX2: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: the caller only sets `AVX2` after detecting AVX2 and FMA.
        return unsafe { avx2::dot(a, b) };
    }
    dot_lanes(a, b)
}

/// `y += w * x`.
#[inline(always)]
pub(crate) fn axpy(y: &mut [f32], w: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += w * x;
    }
}

/// A block-quantised weight block (Q8_0 or Q4_0 quants) and its row products.
trait WeightBlock: Sized {
    /// Portable row · quantised vector (integer block sums, then scaled).
    fn dot(ws: &[f32], wq: &[Self], xs: &[f32], xq: &[[i8; BLOCK]]) -> f32;

    /// `out = W · x` with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn matvec_avx2(rows: BlockRows<'_, Self>, x: &QuantizedVector, out: &mut [f32]);
}

/// Block-quantised rows: `nb` blocks per row, a scale per block.
#[derive(Clone, Copy)]
struct BlockRows<'a, B> {
    nb: usize,
    scales: &'a [f32],
    quants: &'a [B],
}

/// Implements [`WeightBlock`] for a block type with its portable and AVX2 row products.
macro_rules! weight_block {
    ($block:ty, $dot:ident, $avx2:ident) => {
        impl WeightBlock for $block {
            #[inline(always)]
            fn dot(ws: &[f32], wq: &[Self], xs: &[f32], xq: &[[i8; BLOCK]]) -> f32 {
                $dot(ws, wq, xs, xq)
            }

            #[cfg(target_arch = "x86_64")]
            unsafe fn matvec_avx2(rows: BlockRows<'_, Self>, x: &QuantizedVector, out: &mut [f32]) {
                // SAFETY: the caller guarantees AVX2 and FMA.
                unsafe { avx2::$avx2(rows.nb, rows.scales, rows.quants, x, out) }
            }
        }
    };
}

weight_block!([i8; BLOCK], dot_q8, matvec_q8);
weight_block!([u8; BLOCK / 2], dot_q4, matvec_q4);

/// `out = W · x` for block-quantised rows: `x` is rounded to blocks once, then each row is an
/// integer block product per block.
#[inline(always)]
fn block_matvec<const AVX2: bool, B: WeightBlock>(
    scales: &[f32],
    quants: &[B],
    x: &[f32],
    out: &mut [f32],
    scratch: &mut QuantizedVector,
) {
    scratch.quantize(x);
    let nb = x.len() / BLOCK;
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        let rows = BlockRows { nb, scales, quants };
        // SAFETY: `AVX2` is only set by `matvec_avx2`, called once AVX2 and FMA are detected.
        unsafe { B::matvec_avx2(rows, scratch, out) };
        return;
    }
    for ((o, s), q) in out
        .iter_mut()
        .zip(scales.chunks_exact(nb))
        .zip(quants.chunks_exact(nb))
    {
        *o = B::dot(s, q, &scratch.scales, &scratch.quants);
    }
}

/// Portable Q8_0 row · quantised vector (integer block sums, then scaled).
#[inline(always)]
fn dot_q8(ws: &[f32], wq: &[[i8; BLOCK]], xs: &[f32], xq: &[[i8; BLOCK]]) -> f32 {
    let mut acc = 0f32;
    for (((&ws, w), &xs), x) in ws.iter().zip(wq).zip(xs).zip(xq) {
        let mut sum = 0i32;
        for l in 0..BLOCK {
            sum += i32::from(w[l]) * i32::from(x[l]);
        }
        acc += ws * xs * sum as f32;
    }
    acc
}

/// Portable Q4_0 row · quantised vector.
#[inline(always)]
fn dot_q4(ws: &[f32], wq: &[[u8; BLOCK / 2]], xs: &[f32], xq: &[[i8; BLOCK]]) -> f32 {
    const HALF: usize = BLOCK / 2;
    let mut acc = 0f32;
    for (((&ws, w), &xs), x) in ws.iter().zip(wq).zip(xs).zip(xq) {
        let mut sum = 0i32;
        for l in 0..HALF {
            let lo = i32::from(w[l] & 0x0f) - 8;
            let hi = i32::from(w[l] >> 4) - 8;
            sum += lo * i32::from(x[l]) + hi * i32::from(x[l + HALF]);
        }
        acc += ws * xs * sum as f32;
    }
    acc
}

/// AVX2 block products (`avx2.rs`). The compiler did not reliably auto-vectorise the integer block dot
/// products (the Q4 nibble unpacking ended up scalar: 120 ms for 96 bytes), so these use the
/// ggml scheme: `maddubs(|w|, sign(x, w))` then `madd` with ones, 32 products per block in a
/// handful of instructions. |w|, |x| ≤ 127, so the 16-bit pair sums cannot saturate.
#[cfg(target_arch = "x86_64")]
mod avx2;

/// Layer norm of `x` into `out` (biased variance, like the training forward).
#[inline(always)]
pub(crate) fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &v), &w), &b) in out.iter_mut().zip(x).zip(weight).zip(bias) {
        *o = (v - mean) * inv * w + b;
    }
}

/// GELU, tanh approximation, as `x * sigmoid(x * (a + b x²))` (same formula as the training
/// forward).
#[inline(always)]
pub(crate) fn gelu_in_place(x: &mut [f32]) {
    const A: f32 = 1.595_769_2; // 2 √(2/π)
    const B: f32 = A * 0.044_715;
    for v in x {
        let z = *v * (A + B * *v * *v);
        *v /= 1.0 + (-z).exp();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "train")]
    fn weights(rows: usize, cols: usize) -> candle_core::Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32) * 0.7311).sin() * 0.3)
            .collect();
        candle_core::Tensor::from_vec(v, (rows, cols), &candle_core::Device::Cpu).unwrap()
    }

    #[test]
    fn portable_and_avx2_dot_products_agree() {
        let a: Vec<f32> = (0..301).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..301).map(|i| (i as f32 * 0.11).cos()).collect();
        for n in [0, 7, 8, 31, 32, 128, 301] {
            let want: f32 = a[..n].iter().zip(&b[..n]).map(|(x, y)| x * y).sum();
            assert!((dot::<false>(&a[..n], &b[..n]) - want).abs() < 1e-4, "{n}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                assert!((dot::<true>(&a[..n], &b[..n]) - want).abs() < 1e-4, "{n}");
            }
        }
    }

    #[test]
    fn half_conversion_is_exact() {
        for (bits, want) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x0001, 1.0 / 16_777_216.0),
            (0x7bff, 65504.0),
            (0x0000, 0.0),
            (0x3555, 1365.0 / 4096.0),
        ] {
            assert_eq!(f16_to_f32(bits), want, "{bits:#x}");
        }
    }

    #[test]
    fn hand_made_blocks_dequantise_as_ggml_lays_them_out() {
        // scale 0.5 (f16 0x3800); Q8_0 bytes -3, 0, 127, ...; Q4_0 byte j = j | (15 - j) << 4
        let mut q8 = vec![0x00, 0x38];
        q8.extend((0..32).map(|j: i32| ((j * 9) % 256 - 128) as i8 as u8));
        let mut q4 = vec![0x00, 0x38];
        q4.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let t8 = RawTensor {
            dtype: GgmlType::Q8_0,
            dims: vec![1, 32],
            data: q8,
        };
        let t4 = RawTensor {
            dtype: GgmlType::Q4_0,
            dims: vec![1, 32],
            data: q4,
        };
        let want8: Vec<f32> = (0..32)
            .map(|j: i32| 0.5 * ((j * 9) % 256 - 128) as i8 as f32)
            .collect();
        let want4: Vec<f32> = (0..32)
            .map(|j: i32| 0.5 * (if j < 16 { j } else { 15 - (j - 16) } - 8) as f32)
            .collect();
        assert_eq!(dequantize(&t8), want8);
        assert_eq!(Matrix::from_raw(&t8).unwrap().to_f32(), want8);
        assert_eq!(dequantize(&t4), want4);
        assert_eq!(Matrix::from_raw(&t4).unwrap().to_f32(), want4);
        let f = RawTensor {
            dtype: GgmlType::F32,
            dims: vec![2],
            data: [1.5f32, -3.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        assert_eq!(dequantize(&f), vec![1.5, -3.0]);
        assert!(Matrix::from_raw(&f)
            .unwrap_err()
            .contains("expected a matrix"));
    }

    #[cfg(feature = "train")]
    #[test]
    fn blocks_dequantise_like_candle_and_matvec_matches() {
        use candle_core::quantized::{GgmlDType, QTensor};
        use candle_core::Device;

        let w = weights(40, 96);
        let x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.19).cos()).collect();
        for dtype in [GgmlDType::F32, GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let raw = RawTensor::from_qtensor(&q).unwrap();
            let m = Matrix::from_raw(&raw).unwrap();
            let theirs: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let ours = m.to_f32();
            assert_eq!(ours, theirs, "{dtype:?}");
            assert_eq!(dequantize(&raw), theirs, "{dtype:?}");
            let mut scratch = QuantizedVector::default();
            let mut out = vec![0.0; 40];
            m.matvec(&x, &mut out, &mut scratch);
            let mut generic = vec![0.0; 40];
            matvec_generic::<false>(&m, &x, &mut generic, &mut scratch);
            // Float32 weights see exact activations; quantised ones see x rounded to 8 bits.
            let tol = if dtype == GgmlDType::F32 { 1e-4 } else { 2e-2 };
            for r in 0..40 {
                let want: f32 = (0..96).map(|c| theirs[r * 96 + c] * x[c]).sum();
                assert!((out[r] - want).abs() < tol, "{dtype:?} row {r}");
                assert!((generic[r] - want).abs() < tol, "{dtype:?} row {r}");
            }
        }
    }
}
