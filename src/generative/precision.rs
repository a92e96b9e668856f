//! Storage precisions of an [`InferenceModel`](super::InferenceModel) and the Q4_0 quantiser.
//!
//! Weight matrices are stored as float32, or block-quantized with GGML's types: Q8_0
//! (blocks of 32 weights, 8-bit integers + one f16 scale: 8.5 bits/weight) or Q4_0 (4-bit
//! integers + one f16 scale: 4.5 bits/weight, with per-block scales chosen by
//! `quantize_tensor`, with the `train` feature); the INT4 model keeps the byte embedding, the MLP and the attention
//! output at Q8_0, see [`Q4_KEPT_AT_Q8`]). Every matrix's inner dimension (256, 384 or 768
//! by default) is a multiple of the 32-weight block. Layer norms always stay float32.

#[cfg(feature = "train")]
use candle_core::quantized::QTensor;
use serde::{Deserialize, Serialize};

use super::gguf_file::GgmlType;
#[cfg(feature = "train")]
use super::gguf_file::RawTensor;

use crate::{Error, Result};

/// Matrices that the INT4 model stores at Q8_0, as llama.cpp's mixed 4-bit types keep some
/// matrices at higher precision: the tied byte embedding sets every logit, and the MLP and the
/// attention output write into the residual stream at each of the shared layer's depth
/// iterations, so their error compounds. Measured on the 2,000 held-out validation phrases with
/// the step-23000 model (greedy token F1 relative to float32): this mix -3.2% (578 KB); without
/// the attention output -4.2% (546 KB); with the QKV projection as well -2.8% on 400 rows
/// (644 KB). plan.md has the earlier mixes.
#[cfg(feature = "train")]
pub(crate) const Q4_KEPT_AT_Q8: &[&str] = &[
    "embed.weight",
    "layer.up.weight",
    "layer.down.weight",
    "layer.out.weight",
];

/// How the weight matrices of an [`InferenceModel`](super::InferenceModel) are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Float32: exact.
    F32,
    /// 8-bit blocks (GGML Q8_0).
    Q8,
    /// 4-bit blocks (GGML Q4_0); the byte embedding, the MLP and the attention output stay at
    /// Q8_0, whose error would compound over the shared layer's depth iterations.
    Q4,
}

impl Precision {
    /// The GGML storage type of the weight matrix `name`. INT4 keeps the tensors listed in
    /// [`Q4_KEPT_AT_Q8`] at Q8_0 (see there).
    #[cfg(feature = "train")]
    pub(crate) fn matrix_dtype(self, name: &str) -> GgmlType {
        match self {
            Precision::F32 => GgmlType::F32,
            Precision::Q8 => GgmlType::Q8_0,
            Precision::Q4 if Q4_KEPT_AT_Q8.contains(&name) => GgmlType::Q8_0,
            Precision::Q4 => GgmlType::Q4_0,
        }
    }

    /// The storage types a file of this precision may hold for a weight matrix: an INT4 file
    /// may keep any matrix at Q8_0 (files written with another mix than
    /// `Q4_KEPT_AT_Q8` stay readable).
    pub(crate) fn matrix_dtypes(self) -> &'static [GgmlType] {
        match self {
            Precision::F32 => &[GgmlType::F32],
            Precision::Q8 => &[GgmlType::Q8_0],
            Precision::Q4 => &[GgmlType::Q4_0, GgmlType::Q8_0],
        }
    }

    /// Short name: `f32`, `q8` or `q4`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Q8 => "q8",
            Precision::Q4 => "q4",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "q8" | "int8" | "q8_0" => Ok(Precision::Q8),
            "q4" | "int4" | "q4_0" => Ok(Precision::Q4),
            _ => Err(Error::InvalidArgument(format!(
                "unknown precision {s:?}: expected f32, q8 or q4"
            ))),
        }
    }
}

/// Weights per GGML Q4_0 block.
#[cfg(feature = "train")]
const Q4_BLOCK: usize = 32;

/// Quantizes `tensor` to `dtype` (F32 and Q8_0 as candle does). Q4_0 blocks get the scale
/// that minimises their squared error ([`q4_0_blocks`]) instead of ggml's reference choice
/// (the largest weight at -8), in the same format, so any GGML reader decodes them.
#[cfg(feature = "train")]
pub(crate) fn quantize_tensor(
    tensor: &candle_core::Tensor,
    dtype: GgmlType,
) -> candle_core::Result<RawTensor> {
    if dtype != GgmlType::Q4_0 {
        return RawTensor::from_qtensor(&QTensor::quantize(tensor, dtype.to_candle())?);
    }
    let values = tensor.flatten_all()?.to_vec1::<f32>()?;
    if values.len() % Q4_BLOCK != 0 {
        candle_core::bail!(
            "{} weights are not a whole number of Q4_0 blocks",
            values.len()
        );
    }
    Ok(RawTensor {
        dtype,
        dims: tensor.shape().dims().to_vec(),
        data: q4_0_blocks(&values),
    })
}

/// GGML Q4_0 blocks (an f16 scale `d`, then 16 bytes whose low nibbles hold weights 0-15 and
/// high nibbles 16-31, each `q` standing for `d * (q - 8)`) of `values`. Per block, the scale
/// is the best of a grid around the reference choice (the largest weight mapped to -8 or +7,
/// clipping allowed), each refined once by least squares: 11-12% less squared error than the
/// reference on the bundled model's Q4_0 matrices (tested in `tests/bundled_model.rs`).
#[cfg(feature = "train")]
pub(crate) fn q4_0_blocks(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q4_BLOCK * 18);
    for block in values.chunks_exact(Q4_BLOCK) {
        let codes = |d: f32| -> [u8; Q4_BLOCK] {
            let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
            std::array::from_fn(|j| ((block[j] * inv).round() + 8.0).clamp(0.0, 15.0) as u8)
        };
        let error = |d: f32, q: &[u8; Q4_BLOCK]| -> f32 {
            block
                .iter()
                .zip(q)
                .map(|(&x, &q)| (x - d * (f32::from(q) - 8.0)).powi(2))
                .sum()
        };
        let as_f16 = |d: f32| half::f16::from_f32(d).to_f32();
        let max = block
            .iter()
            .copied()
            .fold(0.0f32, |m, x| if x.abs() > m.abs() { x } else { m });
        let mut best_d = as_f16(max / -8.0);
        let mut best_q = codes(best_d);
        let mut best_err = error(best_d, &best_q);
        let grid = (0..=20)
            .map(|k| -(6.0 + 0.25 * k as f32))
            .chain((0..=8).map(|k| 6.0 + 0.25 * k as f32));
        for divisor in grid {
            let d = as_f16(max / divisor);
            let q = codes(d);
            // least squares for the scale, given these codes
            let (num, den) = block
                .iter()
                .zip(&q)
                .fold((0.0f32, 0.0f32), |(n, m), (&x, &q)| {
                    let c = f32::from(q) - 8.0;
                    (n + x * c, m + c * c)
                });
            let refined = if den > 0.0 { as_f16(num / den) } else { d };
            let refined_q = codes(refined);
            for (d, q) in [(d, q), (refined, refined_q)] {
                let e = error(d, &q);
                if e < best_err {
                    (best_d, best_q, best_err) = (d, q, e);
                }
            }
        }
        out.extend_from_slice(&half::f16::from_f32(best_d).to_le_bytes());
        for j in 0..Q4_BLOCK / 2 {
            out.push(best_q[j] | (best_q[j + Q4_BLOCK / 2] << 4));
        }
    }
    out
}

#[cfg(test)]
#[cfg(feature = "train")]
mod tests {
    use super::*;

    #[test]
    fn searched_q4_scales_cut_the_weight_error_in_the_ggml_format() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("training/checkpoints/run7/latest.json");
        let model = crate::generative::train::Checkpoint::read(&path)
            .unwrap()
            .model;
        let vars = model.varmap().data().lock().unwrap().clone();
        for name in ["bridge.weight", "layer.qkv.weight", "layer.out.weight"] {
            let weights = vars[name].as_tensor().clone();
            let exact = weights.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let squared_error = |q: &QTensor| {
                // candle's own Q4_0 reader decodes both
                let back = q.dequantize(&candle_core::Device::Cpu).unwrap();
                let back = back.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                exact
                    .iter()
                    .zip(&back)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f32>()
            };
            let searched = quantize_tensor(&weights, GgmlType::Q4_0).unwrap();
            assert_eq!(searched.dtype, GgmlType::Q4_0);
            assert_eq!(searched.dims, weights.shape().dims());
            let searched = searched.to_qtensor().unwrap();
            let reference = QTensor::quantize(&weights, GgmlType::Q4_0.to_candle()).unwrap();
            let (ours, theirs) = (squared_error(&searched), squared_error(&reference));
            eprintln!("{name}: squared error {ours:.4} against ggml's {theirs:.4}");
            assert!(ours < 0.9 * theirs, "{name}: {ours} against {theirs}");
        }
    }
}
