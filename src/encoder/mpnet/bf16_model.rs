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

use std::arch::x86_64::*;

use super::bf16_gemm::{
    bf16_pairs, lanes, matmul, store_pairs, store_ps, Bf16Rows, Output, PackedWeight,
};
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

/// Rows a layer norm sums together, one per lane: each lane's sums keep the serial order of
/// a row on its own, so the results are the bits of one row at a time (whose sums, one long
/// chain of additions each, waited on every addition).
const NORM_ROWS: usize = 16;

impl Norm {
    /// `x = norm(x + residual)` for every row of `x` (width `h`; `residual` may be absent),
    /// in parallel, also written as bf16 to `bf16` (the next product's input) if given.
    fn apply_rows(
        &self,
        x: &mut [f32],
        residual: Option<&[f32]>,
        h: usize,
        bf16: Option<&mut Bf16Rows>,
    ) {
        let rows = x.len() / h;
        let pairs = h.div_ceil(2);
        let out = bf16.map(|b| {
            b.reset(rows, pairs);
            SharedPtr(b.data_mut().as_mut_ptr())
        });
        x.par_chunks_mut(h * NORM_ROWS)
            .enumerate()
            .for_each(|(block, x)| {
                let first = block * NORM_ROWS;
                let res = residual.map(|r| &r[first * h..first * h + x.len()]);
                // SAFETY: the model exists only where AVX512F was detected; this block writes
                // its own rows of `out` (`rows * pairs` pairs) only.
                unsafe {
                    let out = out.map(|o| o.get().add(first * pairs));
                    self.apply_block(x, res, h, out)
                }
            });
    }

    /// [`Norm::apply_rows`] on up to [`NORM_ROWS`] rows; the bf16 pairs go to `out`,
    /// `h.div_ceil(2)` a row, if given.
    ///
    /// # Safety
    /// AVX512F; `out`, if given, is valid for the rows' pairs.
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_block(
        &self,
        x: &mut [f32],
        residual: Option<&[f32]>,
        h: usize,
        out: Option<*mut u32>,
    ) {
        // (here, so that it is compiled for AVX512F)
        if let Some(res) = residual {
            x.iter_mut().zip(res).for_each(|(v, r)| *v += r);
        }
        let count = _mm512_set1_ps(h as f32);
        // the sums of `Iterator::sum`: from -0.0, in order
        let mut sum = _mm512_set1_ps(-0.0);
        for_each_column(x, h, |c| sum = _mm512_add_ps(sum, c));
        let mean = _mm512_div_ps(sum, count);
        let mut sum = _mm512_set1_ps(-0.0);
        for_each_column(x, h, |c| {
            let d = _mm512_sub_ps(c, mean);
            sum = _mm512_add_ps(sum, _mm512_mul_ps(d, d));
        });
        let var = _mm512_div_ps(sum, count);
        let eps = _mm512_set1_ps(self.eps);
        let inv = _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_sqrt_ps(_mm512_add_ps(var, eps)));
        let (mut means, mut invs) = ([0f32; 16], [0f32; 16]);
        // SAFETY: 16 floats each.
        unsafe {
            _mm512_storeu_ps(means.as_mut_ptr(), mean);
            _mm512_storeu_ps(invs.as_mut_ptr(), inv);
        }
        let pairs = h.div_ceil(2);
        for (r, row) in x.chunks_exact_mut(h).enumerate() {
            let (mean, inv) = (_mm512_set1_ps(means[r]), _mm512_set1_ps(invs[r]));
            for c in (0..h).step_by(32) {
                let m = [lanes(h - c), lanes((h - c).saturating_sub(16))];
                // SAFETY: the masks keep to the row's columns c..h (and the weights', bias's).
                unsafe {
                    let at = |p: *const f32, half: usize| {
                        _mm512_maskz_loadu_ps(m[half], p.add(c + 16 * half))
                    };
                    let v = [0, 1].map(|half| {
                        let v = _mm512_sub_ps(at(row.as_ptr(), half), mean);
                        let v =
                            _mm512_mul_ps(_mm512_mul_ps(v, inv), at(self.weight.as_ptr(), half));
                        _mm512_add_ps(v, at(self.bias.as_ptr(), half))
                    });
                    store_ps(row.as_mut_ptr().add(c), m[0], v[0]);
                    store_ps(row.as_mut_ptr().add(c + 16), m[1], v[1]);
                    if let Some(out) = out {
                        let dst = out.add(r * pairs + c / 2);
                        let keep = lanes((h - c).div_ceil(2));
                        store_pairs(dst, keep, bf16_pairs(v));
                    }
                }
            }
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
    /// The next product's input in bf16: the normalised hidden states or attention's context.
    input: Bf16Rows,
    middle: Bf16Rows,
    qkv: Vec<f32>,
    product: Vec<f32>,
}

/// A raw pointer that parallel tasks write through, each to its own elements.
#[derive(Clone, Copy)]
struct SharedPtr<T>(*mut T);
// SAFETY: each attention task writes its own (token, head) pairs only, each norm block its own
// rows.
unsafe impl<T> Send for SharedPtr<T> {}
unsafe impl<T> Sync for SharedPtr<T> {}

impl<T> SharedPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut T {
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

/// Buffers of one thread's attention tasks, reused from task to task.
#[derive(Default)]
struct HeadScratch {
    /// Bias by `key - query + len - 1`, padded with 16 zeros.
    table: Vec<f32>,
    /// The keys transposed, by 16: `[keys / 16][width][16]`, keys padded with zeros to a
    /// multiple of 16 (a group's elements at fixed offsets from one address).
    keys: Vec<f32>,
    /// One query's scores, `keys` long.
    scores: Vec<f32>,
}

/// One head of one text: its slices of the fused q/k/v rows.
struct Head<'a> {
    qkv: &'a [f32],
    start: usize,
    len: usize,
    stride: usize,
    hidden: usize,
    /// First column of the head within q (and within k and v, past `hidden`, `2 * hidden`).
    offset: usize,
    width: usize,
}

impl Head<'_> {
    /// `softmax(q k^T + bias) v` for every query of the text (the bias in `s.table`), written
    /// to `out` as bf16 pairs (row-major, `hidden / 2` a row).
    ///
    /// Each score is the former scalar dot product (16 partial sums over 16-column chunks,
    /// then summed in lane order; the tests keep it), computed for 16 keys at once, a key a
    /// lane, with the same additions in the same order, over the keys transposed once per
    /// task. The value sum keeps 64 columns in four registers.
    ///
    /// # Safety
    /// AVX512F; `out` holds the text's rows, whose pairs of this head no one else writes.
    #[target_feature(enable = "avx512f")]
    unsafe fn attend(&self, out: *mut u32, s: &mut HeadScratch) {
        let (len, hd) = (self.len, self.width);
        let row = |t: usize, part: usize| {
            let at = (self.start + t) * self.stride + part * self.hidden + self.offset;
            &self.qkv[at..at + hd]
        };
        let keys = len.next_multiple_of(16);
        s.keys.resize(hd * keys, 0.0);
        s.scores.resize(keys, 0.0);
        // the keys transposed, 16 by 16 (keys past the text hold zeros)
        let first = self.start * self.stride + self.hidden + self.offset;
        for j0 in (0..len).step_by(16) {
            for d0 in (0..hd).step_by(16) {
                let m = lanes(hd - d0);
                let rows: [__m512; 16] = std::array::from_fn(|r| match j0 + r < len {
                    // SAFETY: the mask keeps to elements d0..hd of key j0 + r's head.
                    true => unsafe {
                        let at = first + (j0 + r) * self.stride + d0;
                        _mm512_maskz_loadu_ps(m, self.qkv.as_ptr().wrapping_add(at))
                    },
                    false => _mm512_setzero_ps(),
                });
                let columns = transpose16(rows);
                for (d, &c) in columns[..(hd - d0).min(16)].iter().enumerate() {
                    // SAFETY: s.keys has `hd * keys` floats; j0 + 16 <= keys, d0 + d < hd.
                    unsafe {
                        _mm512_storeu_ps(s.keys.as_mut_ptr().add(j0 * hd + (d0 + d) * 16), c)
                    };
                }
            }
        }
        let (chunks, kt) = (hd / 16, s.keys.as_ptr());
        for i in 0..len {
            let q = row(i, 0);
            let bias = &s.table[len - 1 - i..];
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for j0 in (0..len).step_by(16) {
                // SAFETY: d < hd, j0 + 16 <= keys.
                let k = |d: usize| unsafe { _mm512_loadu_ps(kt.add(j0 * hd + d * 16)) };
                // SAFETY: d < hd, q's length.
                let term =
                    |d: usize| _mm512_mul_ps(_mm512_set1_ps(unsafe { *q.as_ptr().add(d) }), k(d));
                // `dot`: 16 partial sums over the 16-column chunks, summed in lane order (as
                // `Iterator::sum` from -0.0, which adds nothing), plus the tail's sum
                let mut acc = [_mm512_setzero_ps(); 16];
                for c in 0..chunks {
                    for (l, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_add_ps(*acc, term(16 * c + l));
                    }
                }
                let mut dot = acc[1..].iter().fold(acc[0], |d, &a| _mm512_add_ps(d, a));
                if !hd.is_multiple_of(16) {
                    let tail = (16 * chunks..hd)
                        .fold(_mm512_set1_ps(-0.0), |t, d| _mm512_add_ps(t, term(d)));
                    dot = _mm512_add_ps(dot, tail);
                }
                // SAFETY: the table has 16 padding zeros, the scores `keys` floats.
                let score = unsafe {
                    let score = _mm512_add_ps(dot, _mm512_loadu_ps(bias.as_ptr().add(j0)));
                    _mm512_storeu_ps(s.scores.as_mut_ptr().add(j0), score);
                    score
                };
                // max is exact, so its order does not matter (a zero's sign aside, which
                // leaves every `score - max`'s exp unchanged)
                max = _mm512_mask_max_ps(max, lanes(len - j0), max, score);
            }
            let max = _mm512_reduce_max_ps(max);
            let scores = &mut s.scores[..len];
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            let inv = _mm512_set1_ps(1.0 / sum);
            // SAFETY: the caller's contract: query i's row is in `out`.
            let dst = unsafe { out.add(((self.start + i) * self.hidden + self.offset) / 2) };
            for c0 in (0..hd).step_by(64) {
                let m: [__mmask16; 4] =
                    std::array::from_fn(|k| lanes((hd - c0).saturating_sub(16 * k)));
                let mut ctx = [_mm512_setzero_ps(); 4];
                for (j, &p) in scores.iter().enumerate() {
                    let (p, v) = (_mm512_set1_ps(p), row(j, 2)[c0..].as_ptr());
                    for (k, ctx) in ctx.iter_mut().enumerate() {
                        // SAFETY: the mask keeps to the head's columns c0..hd.
                        let v = unsafe { _mm512_maskz_loadu_ps(m[k], v.wrapping_add(16 * k)) };
                        *ctx = _mm512_add_ps(*ctx, _mm512_mul_ps(p, v));
                    }
                }
                let ctx = ctx.map(|c| _mm512_mul_ps(c, inv));
                for half in 0..2 {
                    let pairs = lanes((hd - c0).saturating_sub(32 * half).min(32) / 2);
                    let packed = bf16_pairs([ctx[2 * half], ctx[2 * half + 1]]);
                    // SAFETY: the caller's contract; the mask keeps to this head's pairs.
                    unsafe { store_pairs(dst.add(c0 / 2 + 16 * half), pairs, packed) };
                }
            }
        }
    }
}

/// Calls `f` with the columns of the rows of `x` (width `h`, at most 16 rows) in order, a row a
/// lane (lanes past the rows hold zeros).
#[target_feature(enable = "avx512f")]
#[inline]
fn for_each_column(x: &[f32], h: usize, mut f: impl FnMut(__m512)) {
    let n = x.len() / h;
    for k0 in (0..h).step_by(16) {
        let m = lanes(h - k0);
        let rows: [__m512; 16] = std::array::from_fn(|r| match r < n {
            // SAFETY: the mask keeps to row r's columns k0..h.
            true => unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(r * h + k0)) },
            false => _mm512_setzero_ps(),
        });
        for &c in &transpose16(rows)[..(h - k0).min(16)] {
            f(c);
        }
    }
}

/// The 16 x 16 transpose of `r`: lane `i` of column `c` is lane `c` of `r[i]` (moves only).
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // pairs of rows interleaved, then fours: u[4g + c] holds, in each 128-bit lane L, column
    // 4L + c of rows 4g..4g + 4
    let mut t = [_mm512_setzero_ps(); 16];
    for p in 0..8 {
        t[2 * p] = _mm512_unpacklo_ps(r[2 * p], r[2 * p + 1]);
        t[2 * p + 1] = _mm512_unpackhi_ps(r[2 * p], r[2 * p + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (4 * g, 4 * g + 1);
        u[4 * g] = _mm512_shuffle_ps::<0x44>(t[lo], t[lo + 2]);
        u[4 * g + 1] = _mm512_shuffle_ps::<0xee>(t[lo], t[lo + 2]);
        u[4 * g + 2] = _mm512_shuffle_ps::<0x44>(t[hi], t[hi + 2]);
        u[4 * g + 3] = _mm512_shuffle_ps::<0xee>(t[hi], t[hi + 2]);
    }
    // then the 128-bit lanes gathered: column 4L + c from lane L of u[c], u[4 + c], ...
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v = [
            _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]),
            _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]),
        ];
        let w = [
            _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]),
            _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]),
        ];
        out[c] = _mm512_shuffle_f32x4::<0x88>(v[0], w[0]);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(v[0], w[0]);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(v[1], w[1]);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(v[1], w[1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::bf16_gemm::{supported, to_bf16};
    use super::*;

    /// Dot product in 16 lanes, then the lanes summed in order: the order of additions
    /// [`Head::attend`] reproduces (the former scalar code).
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

    /// Deterministic values in about -2..2.
    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 4001) as f32 / 1000.0 - 2.0)
            .collect()
    }

    #[test]
    fn attention_equals_the_scalar_bits() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // head sizes with a tail past the 16-lane chunks and a partial block of 64 columns
        for (heads, hd) in [(2, 24), (3, 64), (2, 80)] {
            let h = heads * hd;
            for len in [1, 5, 16, 17, 40] {
                let start = 3; // a text after others
                let qkv = values((start + len) * 3 * h, len + hd);
                let mut out = vec![0u32; (start + len) * h / 2];
                for head in 0..heads {
                    let mut scratch = HeadScratch {
                        table: values(2 * len - 1, head),
                        ..Default::default()
                    };
                    scratch.table.resize(2 * len - 1 + 16, 0.0);
                    let table = scratch.table.clone();
                    let at = Head {
                        qkv: &qkv,
                        start,
                        len,
                        stride: 3 * h,
                        hidden: h,
                        offset: head * hd,
                        width: hd,
                    };
                    // SAFETY: AVX512F is present; `out` holds every row of the text.
                    unsafe { at.attend(out.as_mut_ptr(), &mut scratch) };
                    let row = |t: usize, part: usize| {
                        let at = (start + t) * 3 * h + part * h + head * hd;
                        &qkv[at..at + hd]
                    };
                    for i in 0..len {
                        let mut scores: Vec<f32> = (0..len)
                            .map(|j| dot(row(i, 0), row(j, 1)) + table[j + len - 1 - i])
                            .collect();
                        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        let mut sum = 0.0;
                        for score in scores.iter_mut() {
                            *score = (*score - max).exp();
                            sum += *score;
                        }
                        let mut ctx = vec![0f32; hd];
                        for (j, &p) in scores.iter().enumerate() {
                            ctx.iter_mut().zip(row(j, 2)).for_each(|(c, v)| *c += p * v);
                        }
                        let inv = 1.0 / sum;
                        for (c, &v) in ctx.iter().enumerate() {
                            let col = head * hd + c;
                            let pair = out[((start + i) * h + col) / 2];
                            let got = (pair >> (16 * (col % 2))) as u16;
                            assert_eq!(got, to_bf16(v * inv), "hd {hd}, len {len}, {i}, {c}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transpose16_transposes() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut got = [0f32; 256];
        // SAFETY: AVX512F is present; 16 loads and stores of 16 floats in 256.
        unsafe {
            let rows = std::array::from_fn(|r| _mm512_loadu_ps(m.as_ptr().add(16 * r)));
            for (c, col) in transpose16(rows).into_iter().enumerate() {
                _mm512_storeu_ps(got.as_mut_ptr().add(16 * c), col);
            }
        }
        for (c, col) in got.chunks(16).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                assert_eq!(v, m[16 * r + c], "column {c}, row {r}");
            }
        }
    }

    #[test]
    fn norm_equals_the_scalar_bits() {
        if !supported() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        for h in [5, 40, 768] {
            for rows in [1, 15, 16, 35] {
                let norm = Norm {
                    weight: values(h, 1),
                    bias: values(h, 2),
                    eps: 1e-5,
                };
                let x0 = values(rows * h, h + rows);
                let residual = values(rows * h, 3);
                let mut x = x0.clone();
                let mut bf16 = Bf16Rows::default();
                norm.apply_rows(&mut x, Some(&residual), h, Some(&mut bf16));
                let mut want = x0;
                for (row, res) in want.chunks_mut(h).zip(residual.chunks(h)) {
                    row.iter_mut().zip(res).for_each(|(v, r)| *v += r);
                    let n = row.len() as f32;
                    let mean = row.iter().sum::<f32>() / n;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                    let inv = 1.0 / (var + norm.eps).sqrt();
                    for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
                        *v = (*v - mean) * inv * w + b;
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&x), bits(&want), "h {h}, rows {rows}");
                let mut expected = Bf16Rows::default();
                expected.fill_from(&want, h);
                assert_eq!(bf16.data_mut(), expected.data_mut(), "h {h}, rows {rows}");
            }
        }
    }
}
