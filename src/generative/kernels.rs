//! Plain-Rust kernels of the incremental decoder: block-quantised matrix-vector products,
//! layer norm, GELU and small dot products, on slices.
//!
//! The matrix-vector products are written so that the compiler auto-vectorises them (fixed-size
//! blocks, independent accumulator lanes, no bounds checks in the inner loops). On x86-64 the
//! same code is compiled a second time with AVX2 + FMA enabled and chosen at run time, so the
//! portable build still uses 256-bit vectors on machines that have them.

// Index loops over fixed-size arrays are what auto-vectorises best here.
#![allow(clippy::needless_range_loop)]

use candle_core::quantized::{GgmlDType, QTensor};

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
    /// Reads a stored 2-D tensor: float32 values, or the raw GGML Q8_0 / Q4_0 blocks exactly as
    /// candle quantised them.
    pub(crate) fn from_qtensor(t: &QTensor) -> std::result::Result<Self, String> {
        let dims = t.shape().dims();
        let &[rows, cols] = dims else {
            return Err(format!("expected a matrix, got shape {dims:?}"));
        };
        let data = t.data().map_err(|e| e.to_string())?;
        let weights = match t.dtype() {
            GgmlDType::F32 => {
                if data.len() != rows * cols * 4 {
                    return Err(format!("float32 tensor holds {} bytes", data.len()));
                }
                Weights::F32(
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                )
            }
            GgmlDType::Q8_0 | GgmlDType::Q4_0 => {
                if !cols.is_multiple_of(BLOCK) {
                    return Err(format!("{cols} columns are not a multiple of {BLOCK}"));
                }
                let q8 = t.dtype() == GgmlDType::Q8_0;
                let block_bytes = if q8 { 2 + BLOCK } else { 2 + BLOCK / 2 };
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
                if q8 {
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
            other => return Err(format!("unsupported storage type {other:?}")),
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

    /// `out = W · x` (`x.len() == cols`, `out.len() == rows`).
    pub(crate) fn matvec(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), self.cols, "matvec input size");
        assert_eq!(out.len(), self.rows, "matvec output size");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { matvec_avx2(self, x, out) };
                return;
            }
        }
        matvec_generic(self, x, out);
    }
}

/// [`matvec_generic`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn matvec_avx2(m: &Matrix, x: &[f32], out: &mut [f32]) {
    matvec_generic(m, x, out);
}

#[inline(always)]
fn matvec_generic(m: &Matrix, x: &[f32], out: &mut [f32]) {
    let cols = m.cols;
    match &m.weights {
        Weights::F32(w) => {
            for (o, row) in out.iter_mut().zip(w.chunks_exact(cols)) {
                *o = dot(row, x);
            }
        }
        Weights::Q8 { scales, quants } => {
            let (xb, _) = x.as_chunks::<BLOCK>();
            let nb = cols / BLOCK;
            for ((o, s), q) in out
                .iter_mut()
                .zip(scales.chunks_exact(nb))
                .zip(quants.chunks_exact(nb))
            {
                *o = dot_q8(s, q, xb);
            }
        }
        Weights::Q4 { scales, quants } => {
            let (xb, _) = x.as_chunks::<BLOCK>();
            let nb = cols / BLOCK;
            for ((o, s), q) in out
                .iter_mut()
                .zip(scales.chunks_exact(nb))
                .zip(quants.chunks_exact(nb))
            {
                *o = dot_q4(s, q, xb);
            }
        }
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
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// `y += w * x`.
#[inline(always)]
pub(crate) fn axpy(y: &mut [f32], w: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += w * x;
    }
}

#[inline(always)]
fn dot_q8(scales: &[f32], quants: &[[i8; BLOCK]], x: &[[f32; BLOCK]]) -> f32 {
    let mut acc = [0f32; BLOCK];
    for ((&s, q), x) in scales.iter().zip(quants).zip(x) {
        for l in 0..BLOCK {
            acc[l] += s * (f32::from(q[l]) * x[l]);
        }
    }
    reduce(acc)
}

#[inline(always)]
fn dot_q4(scales: &[f32], quants: &[[u8; BLOCK / 2]], x: &[[f32; BLOCK]]) -> f32 {
    const HALF: usize = BLOCK / 2;
    let mut acc = [0f32; BLOCK];
    for ((&s, q), x) in scales.iter().zip(quants).zip(x) {
        for l in 0..HALF {
            let lo = f32::from(q[l] & 0x0f) - 8.0;
            let hi = f32::from(q[l] >> 4) - 8.0;
            acc[l] += s * (lo * x[l]);
            acc[l + HALF] += s * (hi * x[l + HALF]);
        }
    }
    reduce(acc)
}

/// Layer norm of `x` into `out` (biased variance, like the training forward).
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
    use candle_core::{Device, Tensor};

    fn weights(rows: usize, cols: usize) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32) * 0.7311).sin() * 0.3)
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
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
    fn blocks_dequantise_like_candle_and_matvec_matches() {
        let w = weights(40, 96);
        let x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.19).cos()).collect();
        for dtype in [GgmlDType::F32, GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let q = QTensor::quantize(&w, dtype).unwrap();
            let m = Matrix::from_qtensor(&q).unwrap();
            let theirs: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let ours = m.to_f32();
            assert_eq!(ours, theirs, "{dtype:?}");
            let mut out = vec![0.0; 40];
            m.matvec(&x, &mut out);
            let mut generic = vec![0.0; 40];
            matvec_generic(&m, &x, &mut generic);
            for r in 0..40 {
                let want: f32 = (0..96).map(|c| theirs[r * 96 + c] * x[c]).sum();
                assert!((out[r] - want).abs() < 1e-4, "{dtype:?} row {r}");
                assert!((generic[r] - want).abs() < 1e-4, "{dtype:?} row {r}");
            }
        }
    }
}
