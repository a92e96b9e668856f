//! The trainable float32 model and its batched training forward pass.
//!
//! Everything here is written with plain tensor ops (no fused kernels), because candle's fused
//! softmax, layer norm and rotary kernels record no gradient.

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::candle_err;
use super::config::GenerativeConfig;
pub(crate) use super::params::{embed_scale, idx, param_shape, PARAM_NAMES};
use super::rope::Rope;
use crate::{Error, Result};

/// Layer norm over the last dimension, from plain ops (differentiable).
fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered
        .broadcast_div(&(var + f64::from(eps))?.sqrt()?)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// GELU (tanh approximation) as `x * sigmoid(x * (a + b x²))`, which equals
/// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`; built from ops whose gradients are cheaper
/// than candle's own `gelu` backward (no `powf`).
pub(crate) fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    const A: f64 = 1.595_769_121_605_730_7; // 2 √(2/π)
    const B: f64 = A * 0.044_715;
    let z = x.sqr()?.affine(B, A)?.mul(x)?;
    candle_nn::ops::sigmoid(&z)?.mul(x)
}

/// A padded, length-bucketed training batch: phrases, their embeddings and loss targets.
#[derive(Debug)]
pub struct Batch {
    /// `[rows, embed_dim]` unit-norm embeddings.
    embeddings: Tensor,
    /// `[rows, width]` input bytes (`b1..bn`, padded with 0), `width` = the longest row.
    inputs: Tensor,
    /// Flat indices into `rows * (width + 1)` of the positions that carry a target.
    positions: Tensor,
    /// Target byte of each selected position (the next byte, or 0 = end).
    targets: Tensor,
    /// Number of predicted bytes (text bytes + one end byte per phrase).
    predicted: usize,
}

impl Batch {
    /// Builds a batch from phrases and their embeddings (same length, at least one row).
    ///
    /// Fails if a phrase is longer than `config.max_len`, contains byte 0, or an embedding is
    /// invalid.
    pub fn new(
        config: &GenerativeConfig,
        phrases: &[&[u8]],
        embeddings: &[&[f32]],
        device: &Device,
    ) -> Result<Self> {
        if phrases.is_empty() || phrases.len() != embeddings.len() {
            return Err(Error::InvalidArgument(format!(
                "a batch needs as many embeddings ({}) as phrases ({}), at least one",
                embeddings.len(),
                phrases.len()
            )));
        }
        let rows = phrases.len();
        if let Some(p) = phrases.iter().find(|p| p.len() > config.max_len) {
            return Err(Error::InvalidArgument(format!(
                "phrase of {} bytes exceeds max_len {}",
                p.len(),
                config.max_len
            )));
        }
        let width = phrases.iter().map(|p| p.len()).max().unwrap_or(0);
        let mut emb = Vec::with_capacity(rows * config.embed_dim);
        for e in embeddings {
            emb.extend(crate::embedding::normalized(e, config.embed_dim)?);
        }
        let mut inputs = vec![0u32; rows * width];
        let mut positions = Vec::new();
        let mut targets = Vec::new();
        for (r, phrase) in phrases.iter().enumerate() {
            if phrase.contains(&0) {
                return Err(Error::InvalidArgument(
                    "phrase contains byte 0, which is reserved for the end of text".into(),
                ));
            }
            let row = &mut inputs[r * width..(r + 1) * width];
            for (t, &b) in phrase.iter().enumerate() {
                row[t] = u32::from(b);
            }
            // hidden state `t` has read the prefix and `t` phrase bytes
            let base = (r * (width + 1)) as u32;
            for t in 0..=phrase.len() {
                positions.push(base + t as u32);
                targets.push(phrase.get(t).map_or(0, |&b| u32::from(b)));
            }
        }
        let predicted = targets.len();
        let err = candle_err("building batch");
        Ok(Self {
            embeddings: Tensor::from_vec(emb, (rows, config.embed_dim), device).map_err(&err)?,
            inputs: Tensor::from_vec(inputs, (rows, width), device).map_err(&err)?,
            positions: Tensor::from_vec(positions, predicted, device).map_err(&err)?,
            targets: Tensor::from_vec(targets, predicted, device).map_err(&err)?,
            predicted,
        })
    }

    /// Number of phrases.
    pub fn rows(&self) -> usize {
        self.embeddings.dims()[0]
    }

    /// Number of predicted bytes: text bytes plus one end byte per phrase.
    pub fn predicted_bytes(&self) -> usize {
        self.predicted
    }
}

/// The trainable float32 generative decoder; its parameters live in a candle [`VarMap`].
pub struct GenerativeModel {
    config: GenerativeConfig,
    varmap: VarMap,
    device: Device,
    /// Parameter tensors in [`PARAM_NAMES`] order (they share storage with the `VarMap`).
    params: Vec<Tensor>,
    rope: Rope,
}

impl std::fmt::Debug for GenerativeModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerativeModel")
            .field("config", &self.config)
            .field("parameters", &self.parameter_count())
            .finish()
    }
}

impl GenerativeModel {
    /// A freshly initialised model on the CPU; the same `seed` gives the same weights.
    pub fn new(config: GenerativeConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let device = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(seed);
        let varmap = VarMap::new();
        let residual_scale = 1.0 / (2.0 * config.depth as f64).sqrt();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Internal("parameter store is poisoned".into()))?;
            for name in PARAM_NAMES {
                let shape = param_shape(&config, name).unwrap_or_default();
                let count: usize = shape.iter().product();
                let values: Vec<f32> = if name.ends_with("norm.weight") {
                    vec![1.0; count]
                } else if name.ends_with("norm.bias") {
                    vec![0.0; count]
                } else {
                    let fan_in = shape[1] as f64;
                    let std = match name {
                        "layer.out.weight" | "layer.down.weight" => residual_scale / fan_in.sqrt(),
                        "embed.weight" => 1.0 / (config.hidden as f64).sqrt(),
                        _ => 1.0 / fan_in.sqrt(),
                    };
                    let normal = Normal::new(0.0, std)
                        .map_err(|e| Error::InvalidConfig(format!("init of {name}: {e}")))?;
                    (0..count).map(|_| normal.sample(&mut rng) as f32).collect()
                };
                let tensor = Tensor::from_vec(values, shape, &device)
                    .map_err(candle_err("initialising parameters"))?;
                let var =
                    Var::from_tensor(&tensor).map_err(candle_err("initialising parameters"))?;
                data.insert(name.to_string(), var);
            }
        }
        Self::from_varmap(config, varmap)
    }

    /// Wraps an existing `VarMap` holding every parameter with its expected shape.
    fn from_varmap(config: GenerativeConfig, varmap: VarMap) -> Result<Self> {
        let device = Device::Cpu;
        let params = {
            let data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Internal("parameter store is poisoned".into()))?;
            PARAM_NAMES
                .iter()
                .map(|name| {
                    let var = data.get(*name).ok_or_else(|| {
                        Error::InvalidConfig(format!("parameter {name} is missing"))
                    })?;
                    let expected = param_shape(&config, name).unwrap_or_default();
                    if var.dims() != expected.as_slice() {
                        return Err(Error::InvalidConfig(format!(
                            "parameter {name} has shape {:?}, config needs {expected:?}",
                            var.dims()
                        )));
                    }
                    Ok(var.as_tensor().clone())
                })
                .collect::<Result<Vec<_>>>()?
        };
        let rope = Rope::new(
            config.head_dim(),
            config.positions(),
            config.rope_theta,
            &device,
        )
        .map_err(candle_err("building rotary tables"))?;
        Ok(Self {
            config,
            varmap,
            device,
            params,
            rope,
        })
    }

    /// The same weights for texts of up to `max_len` bytes: rotary positions have no learned
    /// parameters, so only the tables change (to train or generate longer texts).
    pub fn with_max_len(self, max_len: usize) -> Result<Self> {
        let config = GenerativeConfig {
            max_len,
            ..self.config
        };
        config.validate()?;
        Self::from_varmap(config, self.varmap)
    }

    /// Loads the parameters from a safetensors file written by [`GenerativeModel::save_weights`].
    pub fn load_weights(config: GenerativeConfig, path: &std::path::Path) -> Result<Self> {
        let mut model = Self::new(config, 0)?;
        let invalid = |reason: String| Error::InvalidModel {
            path: path.to_path_buf(),
            reason,
        };
        let tensors = candle_core::safetensors::load(path, &model.device)
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(extra) = tensors.keys().find(|k| !PARAM_NAMES.contains(&k.as_str())) {
            return Err(invalid(format!("unexpected tensor {extra}")));
        }
        for name in PARAM_NAMES {
            let t = tensors
                .get(name)
                .ok_or_else(|| invalid(format!("tensor {name} is missing")))?;
            let expected = param_shape(&model.config, name).unwrap_or_default();
            if t.dims() != expected.as_slice() || t.dtype() != DType::F32 {
                return Err(invalid(format!(
                    "tensor {name} is {:?} {:?}, config needs F32 {expected:?}",
                    t.dtype(),
                    t.dims()
                )));
            }
        }
        model
            .varmap
            .set(tensors.iter())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(model)
    }

    /// Writes the parameters as safetensors to `path` (directly; callers make it atomic).
    pub fn save_weights(&self, path: &std::path::Path) -> Result<()> {
        self.varmap.save(path).map_err(|e| Error::InvalidModel {
            path: path.to_path_buf(),
            reason: format!("cannot save: {e}"),
        })
    }

    /// The architecture this model was built with.
    pub fn config(&self) -> &GenerativeConfig {
        &self.config
    }

    /// The parameter store (for the optimizer and for saving).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trainable scalars, counted from the parameter store.
    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Parameter tensors in [`PARAM_NAMES`] order.
    pub(crate) fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Final hidden states `[rows * (width + 1), hidden]` (after the final norm).
    fn hidden(
        &self,
        embeddings: &Tensor,
        inputs: &Tensor,
        depth: usize,
    ) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (rows, width) = inputs.dims2()?;
        let len = width + 1;
        let (h, heads, hd) = (c.hidden, c.heads, c.head_dim());
        let eps = c.ln_eps;
        let p = &self.params;

        let prefix = embeddings.matmul(&p[idx::BRIDGE].t()?)?;
        let prefix = layer_norm(&prefix, &p[idx::BRIDGE_NORM_W], &p[idx::BRIDGE_NORM_B], eps)?
            .unsqueeze(1)?;
        let bytes = p[idx::EMBED]
            .index_select(&inputs.flatten_all()?, 0)?
            .reshape((rows, width, h))?
            .affine(embed_scale(c), 0.0)?;
        let mut x = Tensor::cat(&[&prefix, &bytes], 1)?;

        let mask: Vec<f32> = (0..len)
            .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (len, len), &self.device)?;
        let scale = 1.0 / (hd as f64).sqrt();

        for _ in 0..depth {
            if c.inject_every_depth {
                x = x.broadcast_add(&prefix)?;
            }
            let flat = x.reshape((rows * len, h))?;
            let a = layer_norm(&flat, &p[idx::ATTN_NORM_W], &p[idx::ATTN_NORM_B], eps)?;
            let qkv = a
                .matmul(&p[idx::QKV].t()?)?
                .reshape((rows, len, 3, heads, hd))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?;
            let q = self.rope.apply(&qkv.get(0)?, 0)?;
            let k = self.rope.apply(&qkv.get(1)?, 0)?;
            let v = qkv.get(2)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let y = attn
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((rows * len, h))?
                .matmul(&p[idx::OUT].t()?)?;
            let flat = (flat + y)?;
            let m = layer_norm(&flat, &p[idx::MLP_NORM_W], &p[idx::MLP_NORM_B], eps)?
                .matmul(&p[idx::UP].t()?)?
                .apply(&gelu)?
                .matmul(&p[idx::DOWN].t()?)?;
            x = (flat + m)?.reshape((rows, len, h))?;
        }
        let flat = x.reshape((rows * len, h))?;
        layer_norm(&flat, &p[idx::FINAL_NORM_W], &p[idx::FINAL_NORM_B], eps)
    }

    /// Summed cross-entropy (nats) over every predicted byte of `batch`, differentiable.
    ///
    /// `depth` overrides the configured depth (the layer is shared, so any depth works).
    pub fn loss_sum(&self, batch: &Batch, depth: usize) -> Result<Tensor> {
        let run = || -> candle_core::Result<Tensor> {
            let hidden = self.hidden(&batch.embeddings, &batch.inputs, depth)?;
            let selected = hidden.index_select(&batch.positions, 0)?;
            let logits = selected.matmul(&self.params[idx::EMBED].t()?)?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let picked = log_probs.gather(&batch.targets.unsqueeze(1)?, 1)?;
            picked.sum_all()?.neg()
        };
        run().map_err(candle_err("training forward"))
    }

    /// Teacher-forced logits `[text.len() + 1][vocab]` for one embedding and text: row `t`
    /// predicts byte `t + 1` of the text (or the end byte after the last one).
    pub fn logits(&self, embedding: &[f32], text: &[u8]) -> Result<Vec<Vec<f32>>> {
        let batch = Batch::new(&self.config, &[text], &[embedding], &self.device)?;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let hidden = self.hidden(&batch.embeddings, &batch.inputs, self.config.depth)?;
            let hidden = hidden.index_select(&batch.positions, 0)?;
            hidden.matmul(&self.params[idx::EMBED].t()?)?.to_vec2()
        };
        run().map_err(candle_err("forward"))
    }
}
