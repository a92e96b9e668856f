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

use super::bf16_attention::{Head, HeadScratch};
use super::bf16_gemm::{matmul, Bf16Rows, Output, PackedWeight};
use super::bf16_norm::Norm;
use super::bf16_simd::SharedPtr;
use super::model::{relative_position_bucket, Config};
use crate::encoder::{EncoderError, Result};

/// Largest pass (in tokens) whose buffers are kept for the next call.
const MAX_SPARE_TOKENS: usize = 1024;

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
    /// The next product's input in bf16: the normalised hidden states or attention's context.
    input: Bf16Rows,
    middle: Bf16Rows,
    qkv: Vec<f32>,
    product: Vec<f32>,
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
        // attention writes its context as bf16 pairs, a head's whole
        if !head_dim.is_multiple_of(2) || head_dim * cfg.num_attention_heads != h {
            return Err(EncoderError::Mismatch {
                what: "bf16 attention heads (hidden_size / num_attention_heads)".into(),
                expected: "an even whole number".into(),
                found: format!("{h} / {}", cfg.num_attention_heads),
            });
        }
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
        self.embeddings(seqs, tokens, &mut x, &mut scratch.input);
        for (l, layer) in self.layers.iter().enumerate() {
            let last = l + 1 == self.layers.len();
            self.layer(layer, &mut x, &spans, &mut scratch, last);
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
        // kept for the next pass (the next batch of a run, or refinement's small passes); a
        // large batch's are freed by `release_large` when its run of batches ends
        if let Ok(mut spare) = self.spare.lock() {
            spare.push(scratch);
        }
        out
    }

    /// Frees the kept buffers of passes over [`MAX_SPARE_TOKENS`] tokens (~25 MB per 1,024
    /// tokens), so that a large batch's serve the batches after it (no fresh pages to fault in)
    /// but are not held for the process's life: for the end of a run of batches.
    pub(crate) fn release_large(&self) {
        let most = MAX_SPARE_TOKENS * self.cfg.hidden_size;
        if let Ok(mut spare) = self.spare.lock() {
            spare.retain(|s| s.hidden.capacity() <= most);
        }
    }

    /// Word plus position embeddings, normalised, into `x`: `[tokens, hidden]`, and in bf16 into
    /// `input`. Positions count the non-padding tokens from `padding_idx + 1`, as
    /// `create_position_ids_from_input_ids` does.
    fn embeddings(&self, seqs: &[&[u32]], tokens: usize, x: &mut Vec<f32>, input: &mut Bf16Rows) {
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
        self.embedding_norm.apply_rows(x, None, h, Some(input));
    }

    /// One layer on `x` (whose bf16 copy is in `s.input`); it leaves the next layer's input
    /// in `s.input` unless `last`.
    fn layer(
        &self,
        layer: &Layer,
        x: &mut Vec<f32>,
        spans: &[(usize, usize)],
        s: &mut Scratch,
        last: bool,
    ) {
        let h = self.cfg.hidden_size;
        let tokens = x.len() / h;
        s.qkv.resize(tokens * 3 * h, 0.0);
        matmul(&s.input, &layer.qkv, Output::F32(&mut s.qkv));
        self.attention(&s.qkv, spans, &mut s.input);
        s.product.resize(tokens * h, 0.0);
        matmul(&s.input, &layer.out, Output::F32(&mut s.product));
        let input = Some(&mut s.input);
        layer
            .attention_norm
            .apply_rows(&mut s.product, Some(x), h, input);
        std::mem::swap(x, &mut s.product);
        matmul(&s.input, &layer.up, Output::GeluBf16(&mut s.middle));
        matmul(&s.middle, &layer.down, Output::F32(&mut s.product));
        let input = (!last).then_some(&mut s.input);
        layer
            .output_norm
            .apply_rows(&mut s.product, Some(x), h, input);
        std::mem::swap(x, &mut s.product);
    }

    /// Self-attention of every text and head with the relative position bias; `qkv` is
    /// `[tokens, 3 * hidden]`; the context, `[tokens, hidden]`, goes to `context` in bf16
    /// (the next product's input).
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)], context: &mut Bf16Rows) {
        let h = self.cfg.hidden_size;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let buckets = self.cfg.relative_attention_num_buckets as i64;
        let stride = 3 * h;
        context.reset(qkv.len() / stride, h / 2);
        let out = SharedPtr(context.data_mut().as_mut_ptr());
        let tasks: Vec<(usize, usize)> = (0..spans.len())
            .flat_map(|s| (0..heads).map(move |head| (s, head)))
            .collect();
        tasks
            .par_iter()
            .for_each_init(HeadScratch::default, |scratch, &(s, head)| {
                let (start, len) = spans[s];
                // bias by key - query, from -(len - 1) to len - 1, then zeros for the loads of
                // 16 keys that run past the text
                let table = &mut scratch.table;
                table.clear();
                table.extend((0..(2 * len).saturating_sub(1)).map(|d| {
                    let b = relative_position_bucket(d as i64 - (len as i64 - 1), buckets);
                    self.relative_bias[b as usize * heads + head]
                }));
                table.resize(table.len() + 16, 0.0);
                let head = Head {
                    qkv,
                    start,
                    len,
                    stride,
                    hidden: h,
                    offset: head * hd,
                    width: hd,
                };
                // SAFETY: the model exists only where AVX512-BF16 (hence AVX512F) was detected;
                // the task writes rows start..start + len, the pairs of its head's columns
                // (whole: the head size is even), of `context` (`tokens * hidden / 2` pairs),
                // which no other task writes.
                unsafe { head.attend(out.get(), scratch) };
            });
    }
}
