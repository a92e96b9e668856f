//! Rotary position embeddings: the tables, and their application built from plain tensor ops
//! so that gradients flow through them.

#[cfg(feature = "train")]
use candle_core::{Device, Result, Tensor, D};

/// Rotary cosine and sine tables `[positions][head_dim]` ("rotate half" layout), shared by the
/// training forward ([`Rope`]) and the inference engine.
pub(crate) fn tables(head_dim: usize, positions: usize, theta: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(positions * head_dim);
    let mut sin = Vec::with_capacity(positions * head_dim);
    for p in 0..positions {
        let angles: Vec<f64> = (0..half)
            .map(|i| p as f64 * f64::from(theta).powf(-2.0 * i as f64 / head_dim as f64))
            .collect();
        for _ in 0..2 {
            cos.extend(angles.iter().map(|a| a.cos() as f32));
            sin.extend(angles.iter().map(|a| a.sin() as f32));
        }
    }
    (cos, sin)
}

/// Precomputed cosine and sine tables for positions `0..positions`, "rotate half" layout.
#[cfg(feature = "train")]
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    /// `[positions, head_dim]`.
    cos: Tensor,
    /// `[positions, head_dim]`.
    sin: Tensor,
}

#[cfg(feature = "train")]
impl Rope {
    /// Tables for `positions` positions of heads of size `head_dim` (even).
    pub(crate) fn new(
        head_dim: usize,
        positions: usize,
        theta: f32,
        device: &Device,
    ) -> Result<Self> {
        let (cos, sin) = tables(head_dim, positions, theta);
        Ok(Self {
            cos: Tensor::from_vec(cos, (positions, head_dim), device)?,
            sin: Tensor::from_vec(sin, (positions, head_dim), device)?,
        })
    }

    /// Rotates `x` of shape `[batch, heads, len, head_dim]` whose first row is position `start`.
    pub(crate) fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (_, _, len, head_dim) = x.dims4()?;
        let cos = self.cos.narrow(0, start, len)?;
        let sin = self.sin.narrow(0, start, len)?;
        let half = head_dim / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)?.add(&rotated.broadcast_mul(&sin)?)
    }
}
