//! The inference network: the same computation as the training forward, one position at a time
//! with a key/value cache, on float32 or block-quantized weights.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

use super::config::GenerativeConfig;
use super::model::{embed_scale, gelu, idx, param_shape, GenerativeModel, PARAM_NAMES};
use super::quantized::Precision;
use super::rope::Rope;
use super::{candle_err, normalized_embedding};
use crate::{Error, Result};

/// A weight matrix `[out, in]` applied as `x · Wᵀ`, kept together with its stored form.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    stored: Arc<QTensor>,
    matmul: QMatMul,
}

impl Projection {
    fn new(stored: QTensor) -> candle_core::Result<Self> {
        let stored = Arc::new(stored);
        Ok(Self {
            matmul: QMatMul::from_arc(stored.clone())?,
            stored,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.matmul.forward(&x.contiguous()?)
    }
}

/// Layer-norm weight and bias.
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn forward(&self, x: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, eps)
    }
}

/// Key/value cache of a group of sequences decoded in lock-step (one row per sequence).
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    /// `[rows, hidden]` embedding prefix of each row.
    prefix: Tensor,
    /// Per depth iteration: keys and values `[rows, heads, positions, head_dim]`.
    keys: Vec<Option<Tensor>>,
    values: Vec<Option<Tensor>>,
    /// Number of positions already processed.
    len: usize,
}

/// A generative decoder ready for incremental decoding, with float32 or quantized weights.
#[derive(Debug, Clone)]
pub struct InferenceModel {
    config: GenerativeConfig,
    precision: Precision,
    bridge: Projection,
    /// Dequantized byte embedding table `[vocab, hidden]`, pre-multiplied by the input scale.
    embed_in: Tensor,
    /// The tied byte embedding as output projection.
    unembed: Projection,
    qkv: Projection,
    out: Projection,
    up: Projection,
    down: Projection,
    bridge_norm: Norm,
    attn_norm: Norm,
    mlp_norm: Norm,
    final_norm: Norm,
    rope: Rope,
    device: Device,
}

impl InferenceModel {
    /// Snapshot of a trained model's weights, stored at the given precision.
    pub fn from_model(model: &GenerativeModel, precision: Precision) -> Result<Self> {
        let config = model.config().clone();
        let tensors = PARAM_NAMES
            .iter()
            .zip(model.params())
            .map(|(name, t)| {
                let dtype = if t.rank() == 2 {
                    precision.ggml_dtype()
                } else {
                    GgmlDType::F32
                };
                let q = QTensor::quantize(&t.detach().contiguous()?, dtype)?;
                Ok((name.to_string(), q))
            })
            .collect::<candle_core::Result<Vec<_>>>()
            .map_err(candle_err("quantizing weights"))?;
        Self::from_tensors(config, precision, tensors).map_err(|reason| {
            Error::InvalidConfig(format!("cannot build inference model: {reason}"))
        })
    }

    /// Assembles the network from stored tensors, checking names, shapes and storage types.
    pub(crate) fn from_tensors(
        config: GenerativeConfig,
        precision: Precision,
        tensors: Vec<(String, QTensor)>,
    ) -> std::result::Result<Self, String> {
        config.validate().map_err(|e| e.to_string())?;
        let device = Device::Cpu;
        let mut slots: Vec<Option<QTensor>> = PARAM_NAMES.iter().map(|_| None).collect();
        for (name, t) in tensors {
            let i = PARAM_NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| format!("unexpected tensor {name}"))?;
            let expected = param_shape(&config, &name).unwrap_or_default();
            if t.shape().dims() != expected.as_slice() {
                return Err(format!(
                    "tensor {name} has shape {:?}, the configuration needs {expected:?}",
                    t.shape().dims()
                ));
            }
            let want = if expected.len() == 2 {
                precision.ggml_dtype()
            } else {
                GgmlDType::F32
            };
            if t.dtype() != want {
                return Err(format!(
                    "tensor {name} is stored as {:?}, expected {want:?}",
                    t.dtype()
                ));
            }
            slots[i] = Some(t);
        }
        let mut take = |i: usize| {
            slots[i]
                .take()
                .ok_or_else(|| format!("tensor {} is missing", PARAM_NAMES[i]))
        };
        let bridge = take(idx::BRIDGE)?;
        let embed = take(idx::EMBED)?;
        let qkv = take(idx::QKV)?;
        let out = take(idx::OUT)?;
        let up = take(idx::UP)?;
        let down = take(idx::DOWN)?;
        let mut norm = |w: usize, b: usize| -> std::result::Result<Norm, String> {
            let weight = take(w)?.dequantize(&device).map_err(|e| e.to_string())?;
            let bias = take(b)?.dequantize(&device).map_err(|e| e.to_string())?;
            Ok(Norm { weight, bias })
        };
        let bridge_norm = norm(idx::BRIDGE_NORM_W, idx::BRIDGE_NORM_B)?;
        let attn_norm = norm(idx::ATTN_NORM_W, idx::ATTN_NORM_B)?;
        let mlp_norm = norm(idx::MLP_NORM_W, idx::MLP_NORM_B)?;
        let final_norm = norm(idx::FINAL_NORM_W, idx::FINAL_NORM_B)?;
        let build = || -> candle_core::Result<Self> {
            let embed_in = embed
                .dequantize(&device)?
                .affine(embed_scale(&config), 0.0)?;
            let rope = Rope::new(
                config.head_dim(),
                config.max_len + 1,
                config.rope_theta,
                &device,
            )?;
            Ok(Self {
                precision,
                bridge: Projection::new(bridge)?,
                embed_in,
                unembed: Projection::new(embed)?,
                qkv: Projection::new(qkv)?,
                out: Projection::new(out)?,
                up: Projection::new(up)?,
                down: Projection::new(down)?,
                bridge_norm,
                attn_norm,
                mlp_norm,
                final_norm,
                rope,
                device: device.clone(),
                config: config.clone(),
            })
        };
        build().map_err(|e| e.to_string())
    }

    /// The architecture.
    pub fn config(&self) -> &GenerativeConfig {
        &self.config
    }

    /// How the weight matrices are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Every parameter in stored form, in the fixed parameter order (for saving).
    pub(crate) fn stored_tensors(&self) -> candle_core::Result<Vec<(&'static str, Arc<QTensor>)>> {
        let norm = |t: &Tensor| QTensor::quantize(t, GgmlDType::F32).map(Arc::new);
        let matrix = |p: &Projection| -> candle_core::Result<Arc<QTensor>> { Ok(p.stored.clone()) };
        let tensors = [
            matrix(&self.bridge)?,
            norm(&self.bridge_norm.weight)?,
            norm(&self.bridge_norm.bias)?,
            matrix(&self.unembed)?,
            norm(&self.attn_norm.weight)?,
            norm(&self.attn_norm.bias)?,
            matrix(&self.qkv)?,
            matrix(&self.out)?,
            norm(&self.mlp_norm.weight)?,
            norm(&self.mlp_norm.bias)?,
            matrix(&self.up)?,
            matrix(&self.down)?,
            norm(&self.final_norm.weight)?,
            norm(&self.final_norm.bias)?,
        ];
        Ok(PARAM_NAMES.into_iter().zip(tensors).collect())
    }

    /// Starts decoding one row per embedding: validates and normalises the embeddings, runs
    /// the prefix position and returns the cache and the logits `[rows, vocab]` of the first
    /// byte.
    pub(crate) fn start(&self, embeddings: &[&[f32]]) -> Result<(Cache, Tensor)> {
        let mut flat = Vec::with_capacity(embeddings.len() * self.config.embed_dim);
        for e in embeddings {
            flat.extend(normalized_embedding(e, self.config.embed_dim)?);
        }
        let run = || -> candle_core::Result<(Cache, Tensor)> {
            let rows = embeddings.len();
            let emb = Tensor::from_vec(flat, (rows, self.config.embed_dim), &self.device)?;
            let prefix = self
                .bridge_norm
                .forward(&self.bridge.forward(&emb)?, self.config.ln_eps)?;
            let mut cache = Cache {
                prefix: prefix.clone(),
                keys: vec![None; self.config.depth],
                values: vec![None; self.config.depth],
                len: 0,
            };
            let logits = self.position(prefix, &mut cache)?;
            Ok((cache, logits))
        };
        run().map_err(candle_err("decoding"))
    }

    /// Feeds one byte per row and returns the logits `[rows, vocab]` of the next byte.
    pub(crate) fn step(&self, cache: &mut Cache, bytes: &[u8]) -> Result<Tensor> {
        if cache.len > self.config.max_len {
            return Err(Error::InvalidArgument(format!(
                "cannot decode beyond max_len {} bytes",
                self.config.max_len
            )));
        }
        let mut run = || -> candle_core::Result<Tensor> {
            let ids: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
            let ids = Tensor::from_vec(ids, bytes.len(), &self.device)?;
            let x = self.embed_in.index_select(&ids, 0)?;
            self.position(x, cache)
        };
        run().map_err(candle_err("decoding"))
    }

    /// Teacher-forced logits `[text.len() + 1][vocab]` computed incrementally with the cache:
    /// row `t` predicts byte `t + 1` of `text` (the end byte after the last one).
    pub fn teacher_forced_logits(&self, embedding: &[f32], text: &[u8]) -> Result<Vec<Vec<f32>>> {
        if text.len() > self.config.max_len {
            return Err(Error::InvalidArgument(format!(
                "text of {} bytes exceeds max_len {}",
                text.len(),
                self.config.max_len
            )));
        }
        let (mut cache, logits) = self.start(&[embedding])?;
        let to_row = |t: Tensor| -> Result<Vec<f32>> {
            t.squeeze(0)
                .and_then(|t| t.to_vec1())
                .map_err(candle_err("decoding"))
        };
        let mut rows = vec![to_row(logits)?];
        for &b in text {
            rows.push(to_row(self.step(&mut cache, &[b])?)?);
        }
        Ok(rows)
    }

    /// Mean natural-log probability per byte (text bytes and end byte) of `text` given
    /// `embedding`: how well the text explains the embedding, comparable with
    /// [`Decoded::mean_log_prob`](super::Decoded::mean_log_prob).
    pub fn mean_log_prob(&self, embedding: &[f32], text: &str) -> Result<f32> {
        let bytes = text.as_bytes();
        if bytes.contains(&0) {
            return Err(Error::InvalidArgument("text contains byte 0".into()));
        }
        let rows = self.teacher_forced_logits(embedding, bytes)?;
        let mut total = 0.0f64;
        for (row, target) in rows.iter().zip(bytes.iter().copied().chain([0])) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = f64::from(max)
                + row
                    .iter()
                    .map(|&l| f64::from(l - max).exp())
                    .sum::<f64>()
                    .ln();
            total += f64::from(row[usize::from(target)]) - log_sum;
        }
        Ok((total / rows.len() as f64) as f32)
    }

    /// A cache holding the given rows of `cache`, in that order (rows may repeat).
    pub(crate) fn select(&self, cache: &Cache, rows: &[usize]) -> Result<Cache> {
        let run = || -> candle_core::Result<Cache> {
            let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
            let ids = Tensor::from_vec(ids, rows.len(), &self.device)?;
            let pick = |t: &Option<Tensor>| t.as_ref().map(|t| t.index_select(&ids, 0)).transpose();
            Ok(Cache {
                prefix: cache.prefix.index_select(&ids, 0)?,
                keys: cache
                    .keys
                    .iter()
                    .map(pick)
                    .collect::<candle_core::Result<_>>()?,
                values: cache
                    .values
                    .iter()
                    .map(pick)
                    .collect::<candle_core::Result<_>>()?,
                len: cache.len,
            })
        };
        run().map_err(candle_err("decoding"))
    }

    /// Runs one new position `x` `[rows, hidden]` through every depth iteration.
    fn position(&self, mut x: Tensor, cache: &mut Cache) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let (rows, hidden) = x.dims2()?;
        let (heads, hd) = (c.heads, c.head_dim());
        let pos = cache.len;
        let scale = 1.0 / (hd as f64).sqrt();
        for d in 0..c.depth {
            if c.inject_every_depth {
                x = (x + &cache.prefix)?;
            }
            let a = self.attn_norm.forward(&x, c.ln_eps)?;
            let qkv = self.qkv.forward(&a)?.reshape((rows, 3, heads, 1, hd))?;
            let q = self.rope.apply(&qkv.narrow(1, 0, 1)?.squeeze(1)?, pos)?;
            let k = self.rope.apply(&qkv.narrow(1, 1, 1)?.squeeze(1)?, pos)?;
            let v = qkv.narrow(1, 2, 1)?.squeeze(1)?;
            let k = match &cache.keys[d] {
                Some(prev) => Tensor::cat(&[prev, &k], 2)?.contiguous()?,
                None => k.contiguous()?,
            };
            let v = match &cache.values[d] {
                Some(prev) => Tensor::cat(&[prev, &v], 2)?.contiguous()?,
                None => v.contiguous()?,
            };
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let attn = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = attn.matmul(&v)?.reshape((rows, hidden))?;
            cache.keys[d] = Some(k);
            cache.values[d] = Some(v);
            x = (x + self.out.forward(&y)?)?;
            let m = self.mlp_norm.forward(&x, c.ln_eps)?;
            let m = self.down.forward(&gelu(&self.up.forward(&m)?)?)?;
            x = (x + m)?;
        }
        cache.len += 1;
        let h = self.final_norm.forward(&x, c.ln_eps)?;
        self.unembed.forward(&h)
    }
}
