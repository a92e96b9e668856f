//! The MPNet network with bf16 linear layers ([`Precision::Bf16`](super::Precision::Bf16)),
//! over packed tokens: the texts of a batch are laid end to end, so no linear layer, attention
//! or norm works on padding (a batch of mixed lengths costs its tokens, not `batch x longest`).
//!
//! The four products of each layer (fused q/k/v, attention output, feed-forward up with its
//! GELU, down) run on [`bf16_gemm`](super::bf16_gemm) with float32 sums; attention, the
//! relative position bias, softmax, residuals, layer norms and pooling stay float32, as under
//! PyTorch's bf16 autocast. The arithmetic is the reference network's (`model.rs`) with bf16
//! rounding of the products' inputs only.

use std::collections::HashMap;

use candle_core::Tensor;
use rayon::prelude::*;

use super::bf16_gemm::{matmul, Bf16Rows, Output, PackedWeight};
use super::model::{relative_position_bucket, Config};
use crate::encoder::{EncoderError, Result};

/// Largest pass (in tokens) whose buffers are kept for the next call.
const MAX_SPARE_TOKENS: usize = 1024;

/// A layer norm's weight, bias and epsilon.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// `row = norm(row + residual)` in place (`residual` may be absent).
    fn apply(&self, row: &mut [f32], residual: Option<&[f32]>) {
        if let Some(res) = residual {
            row.iter_mut().zip(res).for_each(|(v, r)| *v += r);
        }
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }

    /// [`Norm::apply`] to every row of `x` (width `h`), in parallel.
    fn apply_rows(&self, x: &mut [f32], residual: Option<&[f32]>, h: usize) {
        match residual {
            Some(res) => x
                .par_chunks_mut(h)
                .zip(res.par_chunks(h))
                .with_min_len(16)
                .for_each(|(row, r)| self.apply(row, Some(r))),
            None => x
                .par_chunks_mut(h)
                .with_min_len(16)
                .for_each(|row| self.apply(row, None)),
        }
    }
}

struct Layer {
    /// q, k and v in one product; q pre-scaled by 1/sqrt(head_dim).
    qkv: PackedWeight,
    out: PackedWeight,
    attention_norm: Norm,
    up: PackedWeight,
    down: PackedWeight,
    output_norm: Norm,
}

/// all-mpnet-base-v2 with bf16 products, ready to run on a CPU with AVX512-BF16.
pub(crate) struct Bf16Model {
    word: Vec<f32>,
    position: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    /// `[buckets, heads]`.
    relative_bias: Vec<f32>,
    cfg: Config,
    /// Buffers of finished passes, reused so that a call does not fault in fresh pages.
    spare: std::sync::Mutex<Vec<Scratch>>,
}

/// Scratch buffers of one forward pass.
#[derive(Default)]
struct Scratch {
    hidden: Vec<f32>,
    input: Bf16Rows,
    middle: Bf16Rows,
    qkv: Vec<f32>,
    context: Vec<f32>,
    product: Vec<f32>,
}

#[derive(Clone, Copy)]
struct SharedPtr(*mut f32);
// SAFETY: each attention task writes its own (token, head) slices only.
unsafe impl Send for SharedPtr {}
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

impl Bf16Model {
    /// Packs the float32 weights (already checked against `cfg` by the loader).
    pub(crate) fn load(weights: &HashMap<String, Tensor>, cfg: &Config) -> Result<Self> {
        let get = |name: &str| -> Result<Vec<f32>> {
            let t = weights.get(name).ok_or_else(|| EncoderError::Mismatch {
                what: format!("tensor `{name}`"),
                expected: "present".into(),
                found: "absent".into(),
            })?;
            Ok(t.flatten_all()?.to_vec1::<f32>()?)
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let eps = cfg.layer_norm_eps as f32;
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm {
                weight: get(&format!("{prefix}.weight"))?,
                bias: get(&format!("{prefix}.bias"))?,
                eps,
            })
        };
        let head_dim = h / cfg.num_attention_heads;
        let scale = (1.0 / (head_dim as f64).sqrt()) as f32;
        // the layers packed in parallel (a third of the load's time on one thread)
        let layer = |l: usize| -> Result<Layer> {
            let p = format!("encoder.layer.{l}");
            let attn = format!("{p}.attention.attn");
            let mut w = Vec::with_capacity(3 * h * h);
            let mut b = Vec::with_capacity(3 * h);
            for (proj, s) in [("q", scale), ("k", 1.0), ("v", 1.0)] {
                w.extend(get(&format!("{attn}.{proj}.weight"))?.iter().map(|v| v * s));
                b.extend(get(&format!("{attn}.{proj}.bias"))?.iter().map(|v| v * s));
            }
            let dense = |name: &str, outputs: usize, inputs: usize| -> Result<PackedWeight> {
                Ok(PackedWeight::pack(
                    &get(&format!("{name}.weight"))?,
                    get(&format!("{name}.bias"))?,
                    outputs,
                    inputs,
                ))
            };
            Ok(Layer {
                qkv: PackedWeight::pack(&w, b, 3 * h, h),
                out: dense(&format!("{attn}.o"), h, h)?,
                attention_norm: norm(&format!("{p}.attention.LayerNorm"))?,
                up: dense(&format!("{p}.intermediate.dense"), i, h)?,
                down: dense(&format!("{p}.output.dense"), h, i)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            })
        };
        let layers = (0..cfg.num_hidden_layers)
            .into_par_iter()
            .map(layer)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: get("embeddings.word_embeddings.weight")?,
            position: get("embeddings.position_embeddings.weight")?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            relative_bias: get("encoder.relative_attention_bias.weight")?,
            cfg: cfg.clone(),
            spare: Default::default(),
        })
    }

    /// Mean-pooled, L2-normalised embeddings of `seqs` (token ids with special tokens),
    /// `[seqs.len(), hidden]` row-major.
    pub(crate) fn embed(&self, seqs: &[&[u32]]) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        let mut spans = Vec::with_capacity(seqs.len());
        let mut tokens = 0;
        for s in seqs {
            spans.push((tokens, s.len()));
            tokens += s.len();
        }
        let mut scratch = self
            .spare
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default();
        let mut x = std::mem::take(&mut scratch.hidden);
        self.embeddings(seqs, tokens, &mut x);
        for layer in &self.layers {
            self.layer(layer, &mut x, &spans, &mut scratch);
        }
        let mut out = vec![0f32; seqs.len() * h];
        for (row, &(start, len)) in out.chunks_mut(h).zip(&spans) {
            for t in start..start + len {
                row.iter_mut()
                    .zip(&x[t * h..(t + 1) * h])
                    .for_each(|(o, v)| *o += v);
            }
            let count = (len as f32).max(1e-9);
            row.iter_mut().for_each(|v| *v /= count);
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        scratch.hidden = x;
        // small passes (refinement's) reuse their buffers; a large batch's (~25 MB per
        // 1,024 tokens) are freed rather than kept for the process's life
        if tokens <= MAX_SPARE_TOKENS {
            if let Ok(mut spare) = self.spare.lock() {
                spare.push(scratch);
            }
        }
        out
    }

    /// Word plus position embeddings, normalised, into `x`: `[tokens, hidden]`. Positions count the
    /// non-padding tokens from `padding_idx + 1`, as `create_position_ids_from_input_ids` does.
    fn embeddings(&self, seqs: &[&[u32]], tokens: usize, x: &mut Vec<f32>) {
        let h = self.cfg.hidden_size;
        let pad = self.cfg.pad_token_id as usize;
        x.clear();
        x.resize(tokens * h, 0.0);
        let mut rows = x.chunks_mut(h);
        for s in seqs {
            let mut seen = 0;
            for &id in s.iter() {
                let id = id as usize;
                let position = if id != pad {
                    seen += 1;
                    pad + seen
                } else {
                    pad
                };
                let row = rows.next().expect("one row per token");
                let word = &self.word[id * h..(id + 1) * h];
                let pos = &self.position[position * h..(position + 1) * h];
                for ((o, w), p) in row.iter_mut().zip(word).zip(pos) {
                    *o = w + p;
                }
            }
        }
        self.embedding_norm.apply_rows(x, None, h);
    }

    fn layer(&self, layer: &Layer, x: &mut Vec<f32>, spans: &[(usize, usize)], s: &mut Scratch) {
        let h = self.cfg.hidden_size;
        let tokens = x.len() / h;
        s.input.fill_from(x, h);
        s.qkv.resize(tokens * 3 * h, 0.0);
        matmul(&s.input, &layer.qkv, Output::F32(&mut s.qkv));
        s.context.resize(tokens * h, 0.0);
        self.attention(&s.qkv, spans, &mut s.context);
        s.input.fill_from(&s.context, h);
        s.product.resize(tokens * h, 0.0);
        matmul(&s.input, &layer.out, Output::F32(&mut s.product));
        layer.attention_norm.apply_rows(&mut s.product, Some(x), h);
        std::mem::swap(x, &mut s.product);
        s.input.fill_from(x, h);
        matmul(&s.input, &layer.up, Output::GeluBf16(&mut s.middle));
        matmul(&s.middle, &layer.down, Output::F32(&mut s.product));
        layer.output_norm.apply_rows(&mut s.product, Some(x), h);
        std::mem::swap(x, &mut s.product);
    }

    /// Self-attention of every text and head with the relative position bias; `qkv` is
    /// `[tokens, 3 * hidden]`, `context` `[tokens, hidden]`.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], context: &mut [f32]) {
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let buckets = self.cfg.relative_attention_num_buckets as i64;
        let stride = 3 * h;
        let out = SharedPtr(context.as_mut_ptr());
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .flat_map(|s| (0..heads).map(move |head| (s, head)))
            .collect();
        tasks.par_iter().for_each(|&(s, head)| {
            let (start, len) = spans[s];
            // bias by key - query, from -(len - 1) to len - 1
            let table: Vec<f32> = (0..(2 * len).saturating_sub(1))
                .map(|d| {
                    let b = relative_position_bucket(d as i64 - (len as i64 - 1), buckets);
                    self.relative_bias[b as usize * heads + head]
                })
                .collect();
            let head = Head {
                qkv,
                start,
                len,
                stride,
                hidden: h,
                offset: head * hd,
                width: hd,
                table: &table,
            };
            // SAFETY: the model exists only where AVX512-BF16 (hence AVX512F) was detected;
            // the task writes rows start..start + len, columns of its head, of `context`
            // (`tokens * hidden` floats), which no other task writes.
            unsafe { head.attend(out.get()) };
        });
    }
}

/// One head of one text: its slices of the fused q/k/v rows and its position bias.
struct Head<'a> {
    qkv: &'a [f32],
    start: usize,
    len: usize,
    stride: usize,
    hidden: usize,
    /// First column of the head within q (and within k and v, past `hidden`, `2 * hidden`).
    offset: usize,
    width: usize,
    /// Bias by `key - query + len - 1`.
    table: &'a [f32],
}

impl Head<'_> {
    /// `softmax(q k^T + bias) v` for every query of the text, written to `out` (row-major,
    /// `hidden` wide). Compiled for AVX512F so the 16-lane loops use whole registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn attend(&self, out: *mut f32) {
        let (len, hd) = (self.len, self.width);
        let row = |t: usize, part: usize| {
            let at = (self.start + t) * self.stride + part * self.hidden + self.offset;
            &self.qkv[at..at + hd]
        };
        let mut scores = vec![0f32; len];
        let mut ctx = vec![0f32; hd];
        for i in 0..len {
            let q = row(i, 0);
            let mut max = f32::NEG_INFINITY;
            for (j, score) in scores.iter_mut().enumerate() {
                *score = dot(q, row(j, 1)) + self.table[j + len - 1 - i];
                max = max.max(*score);
            }
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            ctx.iter_mut().for_each(|c| *c = 0.0);
            for (j, &p) in scores.iter().enumerate() {
                ctx.iter_mut().zip(row(j, 2)).for_each(|(c, v)| *c += p * v);
            }
            let inv = 1.0 / sum;
            // SAFETY: the caller's contract: this row's head columns are ours to write.
            let dst = unsafe { out.add((self.start + i) * self.hidden + self.offset) };
            for (c, &v) in ctx.iter().enumerate() {
                unsafe { *dst.add(c) = v * inv };
            }
        }
    }
}

/// Dot product in 16 lanes (so that it vectorises without reassociating a serial sum).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}
