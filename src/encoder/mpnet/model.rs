//! The MPNet network of all-mpnet-base-v2 on candle: configuration, layers, the GELU and the
//! relative position buckets.
//!
//! MPNet is a BERT-like encoder whose self-attention adds a relative position bias (T5-style
//! buckets, one table shared by all layers); its embeddings number positions from
//! `padding_idx + 1` like RoBERTa. The sentence embedding is the mean of the last hidden states
//! over the attention mask, L2-normalised, exactly as the sentence-transformers pipeline
//! `Transformer -> Pooling(mean) -> Normalize` computes it.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

use crate::encoder::Result;

/// The folder name of the model, also its [`Encoder::name`](crate::Encoder::name).
pub const MODEL_NAME: &str = "all-mpnet-base-v2";
/// sentence-transformers' `max_seq_length` for this model, used when
/// `sentence_bert_config.json` is absent.
pub const DEFAULT_MAX_SEQ_LENGTH: usize = 384;
/// Texts per forward pass unless [`MpnetEncoder::with_batch_size`](super::MpnetEncoder::with_batch_size) says otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub(crate) const INSTALL_HINT: &str = "install it with `bash scripts/install-encoder.sh` \
     (or point LWDEC_ENCODER_DIR at a folder holding config.json, tokenizer.json and the weights)";

/// The fields of the Hugging Face `config.json` that the model needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Rows of the word-embedding table.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation; only `gelu` (the exact, erf-based one) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the absolute position-embedding table.
    pub max_position_embeddings: usize,
    /// Epsilon of every layer norm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Buckets of the relative attention bias.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// Id of the padding token, also the embeddings' `padding_idx`.
    #[serde(default = "default_pad")]
    pub pad_token_id: u32,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_buckets() -> usize {
    32
}
fn default_pad() -> u32 {
    1
}

/// Largest relative distance with its own bucket range (fixed in MPNet).
const MAX_DISTANCE: i64 = 128;

/// Numeric precision of the encoder's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderPrecision {
    /// Float32 weights and products on candle: the reference, equal to PyTorch's float32 to
    /// its rounding.
    F32,
    /// bfloat16 products with float32 sums on AVX512-BF16 (`vdpbf16ps`), over texts packed
    /// end to end without padding; everything else float32. Needs a CPU with AVX512-BF16.
    Bf16,
    /// Linear-layer weights quantized to Q8_0 (8-bit, blocks of 32 with one f16 scale) on
    /// candle; embeddings, layer norms and biases stay float32. Slower than F32 on the CPUs
    /// measured; kept for comparison.
    Int8,
}

impl EncoderPrecision {
    /// Every precision, fastest first.
    pub const ALL: [EncoderPrecision; 3] = [Self::Bf16, Self::F32, Self::Int8];

    /// Whether this CPU can run it (`Bf16` needs AVX512F and AVX512-BF16).
    pub fn is_available(self) -> bool {
        match self {
            Self::Bf16 => super::bf16_gemm::supported(),
            Self::F32 | Self::Int8 => true,
        }
    }

    /// The default, chosen at run time: the fastest precision this CPU runs that keeps parity
    /// with sentence-transformers float32 (mean cosine >= 0.9999, minimum >= 0.999 on
    /// `samples/encoder_parity`, tested): `Bf16` with AVX512-BF16, else `F32`.
    pub fn fastest_available() -> Self {
        if Self::Bf16.is_available() {
            Self::Bf16
        } else {
            Self::F32
        }
    }

    /// The lowercase name the command line uses: `f32`, `bf16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
        }
    }
}

impl Default for EncoderPrecision {
    /// [`EncoderPrecision::fastest_available`].
    fn default() -> Self {
        Self::fastest_available()
    }
}

impl std::fmt::Display for EncoderPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EncoderPrecision {
    type Err = String;

    /// `f32`, `bf16`, `int8`, or `auto` ([`EncoderPrecision::fastest_available`]).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(Self::fastest_available()),
            _ => Self::ALL
                .into_iter()
                .find(|p| p.name() == s)
                .ok_or_else(|| {
                    format!("unknown encoder precision `{s}` (f32, bf16, int8 or auto)")
                }),
        }
    }
}

/// A linear layer, float32 or Q8_0.
#[derive(Debug, Clone)]
enum Proj {
    /// `weight_t` is the transposed weight `[in, out]`, stored contiguous (row-major), the
    /// layout the gemm kernel reads with the least repacking.
    F32 {
        weight_t: Tensor,
        bias: Tensor,
    },
    Q8 {
        weight: QMatMul,
        bias: Tensor,
    },
}

impl Proj {
    fn new(weight: Tensor, bias: Tensor, quantize: bool) -> Result<Self> {
        Ok(match quantize {
            false => Proj::F32 {
                weight_t: weight.t()?.contiguous()?,
                bias,
            },
            true => {
                let q = QTensor::quantize(&weight, GgmlDType::Q8_0)?;
                Proj::Q8 {
                    weight: QMatMul::from_qtensor(q)?,
                    bias,
                }
            }
        })
    }

    /// `x` is 2-D: `[tokens, in]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Proj::F32 { weight_t, bias } => x.matmul(weight_t)?.broadcast_add(bias)?,
            Proj::Q8 { weight, bias } => weight.forward(x)?.broadcast_add(bias)?,
        })
    }
}

fn linear(vb: &VarBuilder, in_dim: usize, out_dim: usize, quantize: bool) -> Result<Proj> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    let b = vb.get(out_dim, "bias")?;
    Proj::new(w, b, quantize)
}

fn layer_norm(vb: &VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
    let w = vb.get(dim, "weight")?;
    let b = vb.get(dim, "bias")?;
    Ok(LayerNorm::new(w, b, eps))
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word: Embedding::new(vb.get((cfg.vocab_size, h), "word_embeddings.weight")?, h),
            position: Embedding::new(
                vb.get(
                    (cfg.max_position_embeddings, h),
                    "position_embeddings.weight",
                )?,
                h,
            ),
            norm: layer_norm(&vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }

    fn forward(&self, ids: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let x = self
            .word
            .forward(ids)?
            .add(&self.position.forward(positions)?)?;
        Ok(self.norm.forward(&x)?)
    }
}

struct Attention {
    /// q, k and v fused into one projection; q is pre-scaled by 1/sqrt(head_dim).
    qkv: Proj,
    o: Proj,
    norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    pub(crate) fn load(vb: VarBuilder, cfg: &Config, quantize: bool) -> Result<Self> {
        let h = cfg.hidden_size;
        let heads = cfg.num_attention_heads;
        let head_dim = h / heads;
        let attn = vb.pp("attn");
        let get = |name: &str| -> Result<(Tensor, Tensor)> {
            let v = attn.pp(name);
            Ok((v.get((h, h), "weight")?, v.get(h, "bias")?))
        };
        let (qw, qb) = get("q")?;
        let (kw, kb) = get("k")?;
        let (vw, vbias) = get("v")?;
        // 1/sqrt(64) = 1/8 is a power of two, so pre-scaling q is exact.
        let scale = 1.0 / (head_dim as f64).sqrt();
        let w = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let b = Tensor::cat(&[(qb * scale)?, kb, vbias], 0)?;
        Ok(Self {
            qkv: Proj::new(w, b, quantize)?,
            o: linear(&attn.pp("o"), h, h, quantize)?,
            norm: layer_norm(&vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
            heads,
            head_dim,
        })
    }

    /// `x`: `[batch * len, hidden]`; `bias`: `[batch, heads, len, len]` (position bias plus mask).
    fn forward(&self, x: &Tensor, bias: &Tensor, batch: usize, len: usize) -> Result<Tensor> {
        let hidden = self.heads * self.head_dim;
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((batch, len, 3, self.heads, self.head_dim))?;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i, 1)?
                .squeeze(2)?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?.add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch * len, hidden))?;
        let out = self.o.forward(&ctx)?;
        Ok(self.norm.forward(&out.add(x)?)?)
    }
}

struct Layer {
    attention: Attention,
    intermediate: Proj,
    output: Proj,
    norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config, quantize: bool) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: Attention::load(vb.pp("attention"), cfg, quantize)?,
            intermediate: linear(&vb.pp("intermediate.dense"), h, i, quantize)?,
            output: linear(&vb.pp("output.dense"), i, h, quantize)?,
            norm: layer_norm(&vb.pp("output.LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor, batch: usize, len: usize) -> Result<Tensor> {
        let a = self.attention.forward(x, bias, batch, len)?;
        let f = self.intermediate.forward(&a)?.apply_op1_no_bwd(&GeluErf)?;
        let f = self.output.forward(&f)?;
        Ok(self.norm.forward(&f.add(&a)?)?)
    }
}

/// Exact (erf-based) GELU of one value, with [`erf_f32`].
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Exact (erf-based) GELU, `0.5 x (1 + erf(x / sqrt 2))`, with a branch-free rational erf
/// that the compiler vectorises (candle's `gelu_erf` calls scalar libm `erff`, 12% of the
/// batch-64 profile); erf within 5e-7, GELU within 2e-6 of candle's (see the tests).
pub(crate) struct GeluErf;

/// erf(x) for f32: the odd rational minimax approximation used by Eigen and XLA for float on
/// [-3.92, 3.92]; beyond, erf(x) rounds to +-1 in f32.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_600_1e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    let r = x * p / q;
    if x.abs() >= 3.92 {
        1f32.copysign(x)
    } else {
        r
    }
}

impl candle_core::CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-rational"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("gelu: f32 only");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu: contiguous input only");
        };
        let out: Vec<f32> = data[start..end].iter().map(|&x| gelu(x)).collect();
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// T5-style bucket of a relative position (`key - query`), computed in f32 as PyTorch does.
pub(crate) fn relative_position_bucket(relative_position: i64, num_buckets: i64) -> i64 {
    let n = -relative_position;
    let half = num_buckets / 2;
    let mut ret = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        ret += n;
    } else {
        let log_ratio = (n as f32 / max_exact as f32).ln();
        let scaled = log_ratio / ((MAX_DISTANCE as f32) / (max_exact as f32)).ln()
            * (half - max_exact) as f32;
        ret += (max_exact + scaled as i64).min(half - 1);
    }
    ret
}

/// The MPNet transformer (no pooler): token ids in, last hidden states out.
pub(crate) struct MpnetModel {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// `[buckets, heads]`.
    relative_attention_bias: Tensor,
    pub(crate) cfg: Config,
}

impl MpnetModel {
    pub(crate) fn load(vb: VarBuilder, cfg: &Config, quantize: bool) -> Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg, quantize))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), cfg)?,
            layers,
            relative_attention_bias: vb.get(
                (cfg.relative_attention_num_buckets, cfg.num_attention_heads),
                "encoder.relative_attention_bias.weight",
            )?,
            cfg: cfg.clone(),
        })
    }

    /// `[1, heads, len, len]` relative position bias.
    fn position_bias(&self, len: usize) -> Result<Tensor> {
        let buckets = self.cfg.relative_attention_num_buckets as i64;
        let idx: Vec<u32> = (0..len as i64)
            .flat_map(|q| (0..len as i64).map(move |k| (q, k)))
            .map(|(q, k)| relative_position_bucket(k - q, buckets) as u32)
            .collect();
        let idx = Tensor::from_vec(idx, len * len, &Device::Cpu)?;
        let values = self.relative_attention_bias.index_select(&idx, 0)?; // [len*len, heads]
        Ok(values
            .reshape((len, len, self.cfg.num_attention_heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()?)
    }

    /// `ids`, `mask`: row-major `[batch, len]`. Returns `[batch, len, hidden]`.
    pub(crate) fn forward(
        &self,
        ids: &[u32],
        mask: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Tensor> {
        let pad = self.cfg.pad_token_id;
        // Position ids exactly as `create_position_ids_from_input_ids`: non-pad tokens count
        // up from padding_idx + 1, pad tokens sit at padding_idx.
        let mut positions = Vec::with_capacity(ids.len());
        for row in ids.chunks(len) {
            let mut seen = 0u32;
            for &id in row {
                if id != pad {
                    seen += 1;
                    positions.push(pad + seen);
                } else {
                    positions.push(pad);
                }
            }
        }
        let dev = Device::Cpu;
        let ids_t = Tensor::from_slice(ids, (batch, len), &dev)?;
        let pos_t = Tensor::from_vec(positions, (batch, len), &dev)?;
        let x = self.embeddings.forward(&ids_t, &pos_t)?;
        let mut x = x.reshape((batch * len, self.cfg.hidden_size))?;
        // Additive mask: 0 where attended, the most negative f32 where padded (as HF does).
        let additive: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        let additive = Tensor::from_vec(additive, (batch, 1, 1, len), &dev)?;
        let bias = self.position_bias(len)?.broadcast_add(&additive)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, batch, len)?;
        }
        Ok(x.reshape((batch, len, self.cfg.hidden_size))?)
    }
}
