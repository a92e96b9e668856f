//! [`MpnetEncoder`]: sentence-transformers `all-mpnet-base-v2` in pure Rust on candle.
//!
//! MPNet is a BERT-like encoder whose self-attention adds a relative position bias (T5-style
//! buckets, one table shared by all layers); its embeddings number positions from
//! `padding_idx + 1` like RoBERTa. The sentence embedding is the mean of the last hidden states
//! over the attention mask, L2-normalised, exactly as the sentence-transformers pipeline
//! `Transformer -> Pooling(mean) -> Normalize` computes it. The network is in `model.rs`.

mod bf16_attention;
mod bf16_gemm;
mod bf16_model;
mod bf16_norm;
mod bf16_simd;
mod model;
mod weights;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use self::bf16_model::Bf16Model;
pub use self::model::{
    Config, EncoderPrecision, DEFAULT_BATCH_SIZE, DEFAULT_MAX_SEQ_LENGTH, MODEL_NAME,
};
use self::model::{MpnetModel, INSTALL_HINT};
use self::weights::{check_config, corrupt, mismatch, missing, read_json, read_weights, validate};
use crate::encoder::{Encoder, EncoderError, EncoderOrigin, Result, ENCODER_DIR_ENV};

/// `sentence-transformers/all-mpnet-base-v2`: 768-d unit-norm sentence embeddings, matching
/// PyTorch sentence-transformers to float32 rounding.
pub struct MpnetEncoder {
    network: Network,
    cfg: Config,
    precision: EncoderPrecision,
    tokenizer: Tokenizer,
    batch_size: usize,
    max_seq_length: usize,
}

impl std::fmt::Debug for MpnetEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpnetEncoder")
            .field("config", &self.cfg)
            .field("precision", &self.precision)
            .field("batch_size", &self.batch_size)
            .field("max_seq_length", &self.max_seq_length)
            .finish()
    }
}

/// An error unless `available` (whether this CPU runs `precision`).
fn check_available(precision: EncoderPrecision, available: bool) -> Result<()> {
    match available {
        true => Ok(()),
        false => Err(EncoderError::Unsupported {
            precision: precision.name(),
            reason: "this CPU lacks AVX512-BF16 (use f32)",
        }),
    }
}

/// The network a precision runs on.
enum Network {
    /// candle, float32 or Q8_0, over padded batches.
    Candle(MpnetModel),
    /// bf16 products over packed tokens.
    Bf16(Bf16Model),
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl MpnetEncoder {
    /// Loads the model folder: `config.json`, `tokenizer.json`, and `model.safetensors` or
    /// `pytorch_model.bin`; `sentence_bert_config.json` (optional) gives the truncation length.
    /// The config is checked against the weight shapes before use. The precision is
    /// [`EncoderPrecision::fastest_available`] on this CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with_precision(dir, EncoderPrecision::fastest_available())
    }

    /// [`MpnetEncoder::load`] with a choice of precision for the linear layers.
    pub fn load_with_precision(dir: &Path, precision: EncoderPrecision) -> Result<Self> {
        Self::load_from(dir, EncoderOrigin::Argument, precision)
    }

    /// [`MpnetEncoder::load_with_precision`], saying in every error which folder it was and
    /// where that folder came from (`origin`).
    pub fn load_from(
        dir: &Path,
        origin: EncoderOrigin,
        precision: EncoderPrecision,
    ) -> Result<Self> {
        Self::load_folder(dir, precision).map_err(|source| EncoderError::Folder {
            dir: dir.to_path_buf(),
            origin,
            source: Box::new(source),
        })
    }

    /// The folder to load when none is named, and where it comes from: `$LWDEC_ENCODER_DIR`
    /// ([`EncoderOrigin::Environment`]) or the default location ([`EncoderOrigin::Default`]).
    pub fn locate() -> (PathBuf, EncoderOrigin) {
        let from_env = std::env::var_os(ENCODER_DIR_ENV).is_some_and(|v| !v.is_empty());
        let origin = if from_env {
            EncoderOrigin::Environment
        } else {
            EncoderOrigin::Default
        };
        (Self::default_location(), origin)
    }

    fn load_folder(dir: &Path, precision: EncoderPrecision) -> Result<Self> {
        if !dir.is_dir() {
            return Err(missing(dir));
        }
        let config_file = dir.join("config.json");
        let tokenizer_file = dir.join("tokenizer.json");
        for f in [&config_file, &tokenizer_file] {
            if !f.is_file() {
                return Err(EncoderError::Missing {
                    dir: f.clone(),
                    hint: format!("the model folder lacks this file; {INSTALL_HINT}"),
                });
            }
        }
        let cfg: Config = read_json(&config_file)?;
        check_config(&cfg, &config_file)?;
        let sbert_file = dir.join("sentence_bert_config.json");
        let max_seq_length = if sbert_file.is_file() {
            read_json::<SentenceBertConfig>(&sbert_file)?
                .max_seq_length
                .unwrap_or(DEFAULT_MAX_SEQ_LENGTH)
        } else {
            DEFAULT_MAX_SEQ_LENGTH
        };
        // Positions run from padding_idx + 1, so the table bounds the sequence length.
        let max_positions = cfg
            .max_position_embeddings
            .saturating_sub(cfg.pad_token_id as usize + 1);
        if max_seq_length == 0 || max_seq_length > max_positions {
            return Err(mismatch(
                "max_seq_length (sentence_bert_config.json vs position table)",
                format!("1..={max_positions}"),
                max_seq_length,
            ));
        }

        // the tokenizers crate panics on some malformed JSON (a syntax error inside
        // `decoder`, found by fuzzing): the file must parse as JSON before it sees it
        let tokenizer_text =
            std::fs::read_to_string(&tokenizer_file).map_err(|e| corrupt(&tokenizer_file, e))?;
        serde_json::from_str::<serde_json::Value>(&tokenizer_text)
            .map_err(|e| corrupt(&tokenizer_file, format!("not JSON: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_text.as_bytes())
            .map_err(|e| corrupt(&tokenizer_file, e))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| corrupt(&tokenizer_file, e))?;
        tokenizer.with_padding(None);
        let vocab = tokenizer.get_vocab_size(true);
        if vocab > cfg.vocab_size {
            return Err(mismatch(
                "vocab size (tokenizer.json vs config.json)",
                format!("at most {}", cfg.vocab_size),
                vocab,
            ));
        }

        check_available(precision, precision.is_available())?;
        let (weights_file, weights) = read_weights(dir, &cfg)?;
        validate(&cfg, &weights, &weights_file)?;
        let network = match precision {
            EncoderPrecision::Bf16 => Network::Bf16(
                Bf16Model::load(&weights, &cfg).map_err(|e| corrupt(&weights_file, e))?,
            ),
            EncoderPrecision::F32 | EncoderPrecision::Int8 => {
                let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
                let quantize = precision == EncoderPrecision::Int8;
                Network::Candle(
                    MpnetModel::load(vb, &cfg, quantize).map_err(|e| corrupt(&weights_file, e))?,
                )
            }
        };
        Ok(Self {
            network,
            cfg,
            precision,
            tokenizer,
            batch_size: DEFAULT_BATCH_SIZE,
            max_seq_length,
        })
    }

    /// The folder the model is looked for in: `$LWDEC_ENCODER_DIR` if set, else
    /// `all-mpnet-base-v2` in the user data folder ([`crate::data::user_data_dir`]:
    /// `$LWDEC_DATA_DIR`, `$XDG_DATA_HOME/lightweight-decoder` or
    /// `~/.local/share/lightweight-decoder`).
    pub fn default_location() -> PathBuf {
        match std::env::var_os(ENCODER_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => crate::data::user_data_dir().join(MODEL_NAME),
        }
    }

    /// [`MpnetEncoder::load`] from [`MpnetEncoder::default_location`] (errors say whether it
    /// came from the environment).
    pub fn from_default_location() -> Result<Self> {
        let (dir, origin) = Self::locate();
        Self::load_from(&dir, origin, EncoderPrecision::fastest_available())
    }

    /// Texts per forward pass (at least 1). Texts are sorted by token count before batching,
    /// to minimise padding, and the rows come back in input order.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// The precision the linear layers run in.
    pub fn precision(&self) -> EncoderPrecision {
        self.precision
    }

    /// The truncation length in tokens, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Token ids of each text after truncation, as fed to the model (special tokens included).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EncoderError::Tokenizer(e.to_string()))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// [`Encoder::embed`], calling `progress` with the number of texts of each batch done.
    /// The texts are tokenized once, sorted by token count (longest first, stable) and cut
    /// into batches of [`MpnetEncoder::with_batch_size`]; the rows come back in input order.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        progress: &mut dyn FnMut(usize),
    ) -> Result<ndarray::Array2<f32>> {
        let dim = self.dimension();
        let mut out = ndarray::Array2::<f32>::zeros((texts.len(), dim));
        if texts.is_empty() {
            return Ok(out);
        }
        let seqs = self.tokenize(texts)?;
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let mut run = || -> Result<()> {
            for chunk in order.chunks(self.batch_size) {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_slice()).collect();
                let rows = self.embed_batch(&batch)?;
                for (row, &i) in rows.chunks(dim).zip(chunk) {
                    out.row_mut(i)
                        .iter_mut()
                        .zip(row)
                        .for_each(|(o, &v)| *o = v);
                }
                progress(chunk.len());
            }
            Ok(())
        };
        let done = run();
        // the batches shared one set of buffers; a large one's are not kept past the run
        if let Network::Bf16(model) = &self.network {
            model.release_large();
        }
        done.map(|()| out)
    }

    /// Mean-pooled, L2-normalised embeddings of one batch, `[batch, hidden]`.
    fn embed_batch(&self, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let rows = match &self.network {
            Network::Candle(model) => Self::embed_padded(model, seqs)?,
            Network::Bf16(model) => model.embed(seqs),
        };
        if let Some(at) = rows.iter().position(|v| !v.is_finite()) {
            let dim = self.cfg.hidden_size.max(1);
            return Err(EncoderError::NonFinite {
                row: at / dim,
                value: rows[at],
            });
        }
        Ok(rows)
    }

    /// [`MpnetEncoder::embed_batch`] on candle: the batch padded to its longest text.
    fn embed_padded(model: &MpnetModel, seqs: &[&[u32]]) -> Result<Vec<f32>> {
        let batch = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let pad = model.cfg.pad_token_id;
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, len - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, len - s.len()));
        }
        let hidden = model.forward(&ids, &mask, batch, len)?;
        let m: Vec<f32> = mask.iter().map(|&v| v as f32).collect();
        let m = Tensor::from_vec(m, (batch, len, 1), &Device::Cpu)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?; // [batch, hidden]
        let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?; // [batch, 1]
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(D::Minus1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        Ok(mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()?)
    }
}

impl Encoder for MpnetEncoder {
    fn embed(&self, texts: &[&str]) -> Result<ndarray::Array2<f32>> {
        self.embed_with_progress(texts, &mut |_| {})
    }

    fn dimension(&self) -> usize {
        self.cfg.hidden_size
    }

    fn name(&self) -> &str {
        MODEL_NAME
    }
}

#[cfg(test)]
mod tests {
    use super::model::{erf_f32, relative_position_bucket, GeluErf};
    use super::*;

    #[test]
    fn buckets_match_pytorch_table() {
        // (first relative position, bucket) change points of
        // `MPNetEncoder.relative_position_bucket(torch.arange(-520, 521))`.
        let points: [(i64, i64); 31] = [
            (-520, 15),
            (-90, 14),
            (-63, 13),
            (-45, 12),
            (-31, 11),
            (-22, 10),
            (-15, 9),
            (-11, 8),
            (-7, 7),
            (-6, 6),
            (-5, 5),
            (-4, 4),
            (-3, 3),
            (-2, 2),
            (-1, 1),
            (0, 0),
            (1, 17),
            (2, 18),
            (3, 19),
            (4, 20),
            (5, 21),
            (6, 22),
            (7, 23),
            (8, 24),
            (12, 25),
            (16, 26),
            (23, 27),
            (32, 28),
            (46, 29),
            (64, 30),
            (91, 31),
        ];
        for r in -520..=520i64 {
            let want = points
                .iter()
                .rev()
                .find(|&&(start, _)| start <= r)
                .unwrap()
                .1;
            assert_eq!(
                relative_position_bucket(r, 32),
                want,
                "relative position {r}"
            );
        }
    }

    #[test]
    fn fast_gelu_matches_candle_gelu_erf() {
        let xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-4).collect();
        let t = Tensor::from_vec(xs, 400_001, &Device::Cpu).unwrap();
        let want = t.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        let got = t
            .apply_op1_no_bwd(&GeluErf)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Absolute error for tiny outputs (1 + erf cancels there in both), relative elsewhere.
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "worst error {worst}");
        let e = t.erf().unwrap().to_vec1::<f32>().unwrap();
        let xs = t.to_vec1::<f32>().unwrap();
        let erf_worst = xs
            .iter()
            .zip(&e)
            .map(|(&x, &w)| (erf_f32(x) - w).abs())
            .fold(0f32, f32::max);
        assert!(erf_worst < 5e-7, "worst erf error {erf_worst}");
    }

    #[test]
    fn unavailable_precision_is_a_clear_error() {
        let err = check_available(EncoderPrecision::Bf16, false).unwrap_err();
        assert!(err.to_string().contains("bf16"), "{err}");
        assert!(err.to_string().contains("AVX512-BF16"), "{err}");
        assert!(check_available(EncoderPrecision::F32, true).is_ok());
    }

    #[test]
    fn buckets_match_t5_rule() {
        // Small distances are exact; keys after the query go to the upper half.
        assert_eq!(relative_position_bucket(0, 32), 0);
        assert_eq!(relative_position_bucket(-3, 32), 3);
        assert_eq!(relative_position_bucket(3, 32), 19);
        // Far distances saturate at the last bucket of each half.
        assert_eq!(relative_position_bucket(-1000, 32), 15);
        assert_eq!(relative_position_bucket(1000, 32), 31);
    }

    #[test]
    fn default_location_prefers_env() {
        // Only reads the environment; does not modify it (tests run in parallel).
        let p = MpnetEncoder::default_location();
        assert!(p.ends_with(MODEL_NAME) || std::env::var_os("LWDEC_ENCODER_DIR").is_some());
    }
}
