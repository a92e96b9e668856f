//! Training: AdamW with warm-up and decay over length-bucketed batches, validation bits per
//! byte on the held-out split, JSON-lines log and resumable checkpoints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use super::candle_err;
use super::checkpoint::Checkpoint;
use super::decode::DecodeOptions;
use super::inference::InferenceModel;
use super::model::{Batch, GenerativeModel, PARAM_NAMES};
use super::quantized::Precision;
use crate::dataset::Dataset;
use crate::metrics::token_f1;
use crate::{Error, Result};

/// Shape of the learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half-cosine from `lr` down to `lr * min_lr_ratio`.
    Cosine,
    /// Straight line from `lr` down to `lr * min_lr_ratio`.
    Linear,
    /// Constant `lr`.
    Constant,
}

/// From step `from_step` on, apply the shared layer `depth` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthStage {
    /// First step (0-based) of this stage.
    pub from_step: usize,
    /// Depth used during this stage.
    pub depth: usize,
}

/// Hyper-parameters of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Total optimizer steps.
    pub steps: usize,
    /// Phrases per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Decay after warm-up.
    pub decay: Decay,
    /// AdamW decoupled weight decay (applied to weight matrices only, not to norms).
    pub weight_decay: f64,
    /// AdamW first-moment decay.
    pub beta1: f64,
    /// AdamW second-moment decay.
    pub beta2: f64,
    /// Clip the global gradient norm to this value (0 = no clipping).
    pub grad_clip: f64,
    /// Seed of the data order.
    pub seed: u64,
    /// Optional depth curriculum (empty: always the model's depth). Stages are sorted by step.
    pub depth_schedule: Vec<DepthStage>,
    /// Measure validation bits per byte (and log) every this many steps.
    pub eval_every: usize,
    /// Number of validation phrases measured (evenly spaced over the validation split).
    pub eval_phrases: usize,
    /// At every evaluation, also decode this many of those phrases' embeddings greedily and
    /// log the mean token F1 against the phrases (the metric the generator is judged by;
    /// 0 = off).
    pub eval_decodes: usize,
    /// Save a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Share of training rows whose embedding is perturbed, afresh at every step, to a random
    /// cosine in [`noise_min_cosine`, 1] with Gaussian noise orthogonal to it, so that the model
    /// learns to decode the inexact vectors an upstream network emits (0 = off; validation
    /// never sees noise).
    ///
    /// [`noise_min_cosine`]: TrainConfig::noise_min_cosine
    pub noise_share: f64,
    /// Lowest cosine of a perturbed training embedding with its clean one.
    pub noise_min_cosine: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 20_000,
            batch_size: 64,
            lr: 2e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 200,
            decay: Decay::Cosine,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.98,
            grad_clip: 1.0,
            seed: 0,
            depth_schedule: Vec::new(),
            eval_every: 500,
            eval_phrases: 512,
            eval_decodes: 200,
            checkpoint_every: 1000,
            noise_share: 0.0,
            noise_min_cosine: 0.8,
        }
    }
}

impl TrainConfig {
    /// Checks ranges; returns [`Error::InvalidConfig`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.steps == 0
            || self.batch_size == 0
            || self.eval_every == 0
            || self.checkpoint_every == 0
        {
            return bad(
                "steps, batch_size, eval_every and checkpoint_every must be positive".into(),
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be finite and positive, got {}", self.lr));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad(format!(
                "min_lr_ratio must be in [0, 1], got {}",
                self.min_lr_ratio
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad(format!(
                "beta1 and beta2 must be in [0, 1), got {} and {}",
                self.beta1, self.beta2
            ));
        }
        if !(self.weight_decay >= 0.0 && self.grad_clip >= 0.0) {
            return bad("weight_decay and grad_clip must be non-negative".into());
        }
        let noise_ok = (0.0..=1.0).contains(&self.noise_share)
            && self.noise_min_cosine > 0.0
            && self.noise_min_cosine <= 1.0;
        if !noise_ok {
            return bad(format!(
                "noise_share must be in [0, 1] and noise_min_cosine in (0, 1], got {} and {}",
                self.noise_share, self.noise_min_cosine
            ));
        }
        if self.depth_schedule.iter().any(|s| s.depth == 0)
            || self
                .depth_schedule
                .windows(2)
                .any(|w| w[0].from_step >= w[1].from_step)
        {
            return bad(
                "depth_schedule needs positive depths and strictly increasing steps".into(),
            );
        }
        Ok(())
    }

    /// Learning rate of step `step` (0-based).
    pub fn learning_rate(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        match self.decay {
            Decay::Cosine => {
                min + (self.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Decay::Linear => self.lr - (self.lr - min) * progress,
            Decay::Constant => self.lr,
        }
    }

    /// Depth of step `step` given the model's configured depth.
    pub fn depth(&self, step: usize, model_depth: usize) -> usize {
        self.depth_schedule
            .iter()
            .rev()
            .find(|s| s.from_step <= step)
            .map_or(model_depth, |s| s.depth)
    }
}

/// One line of the training log (`train_log.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLogEntry {
    /// Steps completed.
    pub step: usize,
    /// Mean training bits per byte since the previous entry (None before the first step).
    pub train_bpb: Option<f64>,
    /// Validation bits per byte.
    pub val_bpb: f64,
    /// Mean token F1 of greedy decodes of validation embeddings (see
    /// [`TrainConfig::eval_decodes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_token_f1: Option<f64>,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Depth of the last step.
    pub depth: usize,
    /// Seconds since this run (or resumption) started.
    pub elapsed_s: f64,
    /// Training throughput since the previous entry: predicted bytes per second of step time.
    pub bytes_per_s: f64,
}

/// What a call to [`Trainer::run`] achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Steps completed in total.
    pub steps: usize,
    /// Validation bits per byte when the run (or resumption) started.
    pub initial_val_bpb: f64,
    /// Validation bits per byte at the end.
    pub final_val_bpb: f64,
    /// Training throughput over the run: predicted bytes per second of step time.
    pub bytes_per_s: f64,
    /// JSON state of the last checkpoint.
    pub checkpoint: PathBuf,
}

/// Loss of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Summed cross-entropy in nats.
    pub nats: f64,
    /// Predicted bytes (text bytes and end bytes).
    pub bytes: usize,
}

/// Trains a [`GenerativeModel`] on a [`Dataset`].
pub struct Trainer<'a> {
    model: GenerativeModel,
    config: TrainConfig,
    data: &'a Dataset,
    /// AdamW over the weight matrices (with weight decay) and over the norms (without).
    optimizers: [AdamW; 2],
    vars: Vec<Var>,
    step: usize,
    /// Training rows that fit the model (at most `max_len` bytes, no byte 0).
    train_rows: Vec<usize>,
    /// Validation rows measured by [`Trainer::validation_bpb`].
    val_rows: Vec<usize>,
    /// Batches of the current epoch, and which epoch they are.
    epoch: Option<(usize, Vec<Vec<usize>>)>,
    /// Data-parallel threads ([`Trainer::set_workers`]).
    workers: usize,
    /// Drafts read before each phrase ([`Trainer::set_drafts`]).
    drafts: Option<Drafts>,
}

/// Per dataset row, the row whose phrase is its draft, and how often training leaves it out.
#[derive(Debug, Clone)]
struct Drafts {
    rows: Vec<Option<usize>>,
    dropout: f64,
    self_share: f64,
}

impl<'a> Trainer<'a> {
    /// A trainer starting at step 0.
    pub fn new(model: GenerativeModel, config: TrainConfig, data: &'a Dataset) -> Result<Self> {
        Self::at_step(model, config, data, 0)
    }

    /// Resumes from a checkpoint (JSON state or folder), with its training configuration
    /// unless `config` overrides it (e.g. more steps).
    pub fn resume(
        checkpoint: &Path,
        config: Option<TrainConfig>,
        data: &'a Dataset,
    ) -> Result<Self> {
        let Checkpoint { state, model } = Checkpoint::read(checkpoint)?;
        Self::at_step(model, config.unwrap_or(state.train), data, state.step)
    }

    fn at_step(
        model: GenerativeModel,
        config: TrainConfig,
        data: &'a Dataset,
        step: usize,
    ) -> Result<Self> {
        config.validate()?;
        let mc = model.config();
        if let Some(last) = config.depth_schedule.last() {
            if last.depth != mc.depth {
                return Err(Error::InvalidConfig(format!(
                    "the last depth stage uses depth {}, but the model (and inference) uses {}",
                    last.depth, mc.depth
                )));
            }
        }
        if data.dim() != mc.embed_dim {
            return Err(Error::DimensionMismatch {
                expected: mc.embed_dim,
                got: data.dim(),
            });
        }
        let usable = |&i: &usize| {
            let p = data.phrase(i).as_bytes();
            p.len() <= mc.max_len && !p.contains(&0)
        };
        let split = data.split();
        let train_rows: Vec<usize> = split.train.into_iter().filter(usable).collect();
        let validation: Vec<usize> = split.validation.into_iter().filter(usable).collect();
        if train_rows.is_empty() || validation.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "need training and validation phrases of at most {} bytes; got {} and {}",
                mc.max_len,
                train_rows.len(),
                validation.len()
            )));
        }
        let n = config.eval_phrases.clamp(1, validation.len());
        let val_rows = (0..n)
            .map(|i| validation[i * validation.len() / n])
            .collect();
        let vars = model.varmap().all_vars();
        let optimizers = Self::optimizers(&model, &config)?;
        Ok(Self {
            model,
            config,
            data,
            optimizers,
            vars,
            step,
            train_rows,
            val_rows,
            epoch: None,
            workers: 1,
            drafts: None,
        })
    }

    /// Splits every batch into `workers` shards (alternate rows) whose gradients are computed
    /// on as many threads and summed: the same update as one shard, up to rounding. With
    /// this model's small matrices candle's op-level threads mostly wait, so two workers
    /// whose ops each run on one thread (`CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1`, as
    /// `lwdec train` sets them) train faster than one worker on two threads (plan.md).
    pub fn set_workers(&mut self, workers: usize) {
        self.workers = workers.max(1);
    }

    /// Gives every row the phrase of row `rows[i]` as its draft (see
    /// [`GenerativeConfig::max_draft`](super::GenerativeConfig::max_draft)), for example its
    /// nearest other training phrase; in training, a row goes without its draft with
    /// probability `dropout`, so that the model also decodes without one, and reads its own
    /// phrase with words dropped with probability `self_share` (see `Trainer::draft`).
    /// Validation always reads the given drafts.
    ///
    /// Fails if the model takes no drafts, `rows` does not have one entry per dataset row or
    /// names a row out of range, or `dropout` and `self_share` are negative or sum to more
    /// than 1.
    pub fn set_drafts(
        &mut self,
        rows: Vec<Option<usize>>,
        dropout: f64,
        self_share: f64,
    ) -> Result<()> {
        if self.model.config().max_draft == 0 {
            return Err(Error::InvalidConfig(
                "the model takes no drafts (max_draft is 0)".into(),
            ));
        }
        if rows.len() != self.data.len() || rows.iter().flatten().any(|&r| r >= self.data.len()) {
            return Err(Error::InvalidArgument(format!(
                "drafts need one row index (< {0}) per dataset row, got {1} entries",
                self.data.len(),
                rows.len()
            )));
        }
        if !(dropout >= 0.0 && self_share >= 0.0 && dropout + self_share <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "draft dropout ({dropout}) and self share ({self_share}) must be non-negative \
                 with a sum of at most 1"
            )));
        }
        self.drafts = Some(Drafts {
            rows,
            dropout,
            self_share,
        });
        self.epoch = None;
        Ok(())
    }

    /// The draft bytes of `row` in `epoch` (`None`: validation, which always reads the
    /// nearest other phrase). In training a row draws, afresh every epoch: no draft
    /// (`dropout`), its own phrase with each word kept with probability 0.7 (`self_share`: a
    /// denoising task meant to teach copying from the draft, which nearest phrases alone did
    /// not in 5,000 steps; plan.md), or its nearest other phrase.
    fn draft(&self, row: usize, epoch: Option<usize>) -> Vec<u8> {
        let Some(drafts) = &self.drafts else {
            return Vec::new();
        };
        let config = self.model.config();
        let nearest =
            || drafts.rows[row].map_or_else(Vec::new, |r| config.draft_bytes(self.data.phrase(r)));
        let Some(epoch) = epoch else {
            return nearest();
        };
        let draw = |salt: u64| {
            let key = crate::dataset::fnv1a64(
                &[
                    self.config.seed.to_le_bytes(),
                    (epoch as u64).to_le_bytes(),
                    (row as u64).to_le_bytes(),
                    salt.to_le_bytes(),
                ]
                .concat(),
            );
            (key >> 11) as f64 / (1u64 << 53) as f64
        };
        let u = draw(u64::MAX);
        if u < drafts.dropout {
            return Vec::new();
        }
        if u < drafts.dropout + drafts.self_share {
            let words: Vec<&str> = self
                .data
                .phrase(row)
                .split(' ')
                .enumerate()
                .filter(|&(i, _)| draw(i as u64) < 0.7)
                .map(|(_, w)| w)
                .collect();
            return config.draft_bytes(&words.join(" "));
        }
        nearest()
    }

    /// AdamW over the matrices (decayed) and over the norm parameters (not decayed).
    fn optimizers(model: &GenerativeModel, config: &TrainConfig) -> Result<[AdamW; 2]> {
        let data = model
            .varmap()
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("parameter store is poisoned".into()))?;
        let (mut matrices, mut norms) = (Vec::new(), Vec::new());
        for name in PARAM_NAMES {
            if let Some(v) = data.get(name) {
                if v.rank() == 2 {
                    matrices.push(v.clone());
                } else {
                    norms.push(v.clone());
                }
            }
        }
        let params = |weight_decay| ParamsAdamW {
            lr: config.lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: 1e-8,
            weight_decay,
        };
        let err = candle_err("creating optimizer");
        Ok([
            AdamW::new(matrices, params(config.weight_decay)).map_err(&err)?,
            AdamW::new(norms, params(0.0)).map_err(&err)?,
        ])
    }

    /// Steps completed so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The model being trained.
    pub fn model(&self) -> &GenerativeModel {
        &self.model
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Consumes the trainer, returning the model.
    pub fn into_model(self) -> GenerativeModel {
        self.model
    }

    /// Row indices of batch `index` of `epoch`: rows are shuffled, sorted by byte length (so
    /// a batch holds phrases of nearly equal length and little padding), cut into batches, and
    /// the batches shuffled. Deterministic in (seed, epoch).
    fn batch_rows(&mut self, epoch: usize, index: usize) -> &[usize] {
        if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
            let mut rng = StdRng::seed_from_u64(
                self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut rows = self.train_rows.clone();
            rows.shuffle(&mut rng);
            rows.sort_by_cached_key(|&i| {
                self.data.phrase(i).len() + self.draft(i, Some(epoch)).len()
            });
            let mut batches: Vec<Vec<usize>> = rows
                .chunks(self.config.batch_size)
                .map(<[usize]>::to_vec)
                .collect();
            batches.shuffle(&mut rng);
            self.epoch = Some((epoch, batches));
        }
        self.epoch
            .as_ref()
            .and_then(|(_, b)| b.get(index))
            .map_or(&[], Vec::as_slice)
    }

    /// The embedding of training row `i` at this step: with probability `noise_share`
    /// perturbed to a cosine drawn uniformly from [`noise_min_cosine`, 1]; deterministic in
    /// (seed, step, row).
    ///
    /// [`noise_min_cosine`]: TrainConfig::noise_min_cosine
    fn noisy_embedding(&self, i: usize) -> Vec<f32> {
        let clean = self.data.embedding(i);
        let mut rng = StdRng::seed_from_u64(
            self.config.seed
                ^ (self.step as u64).wrapping_mul(0xA24B_AED4_963E_E407)
                ^ (i as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25),
        );
        if rng.random::<f64>() >= self.config.noise_share {
            return clean.to_vec();
        }
        let low = self.config.noise_min_cosine;
        let cosine = low + (1.0 - low) * rng.random::<f32>();
        match crate::embedding::normalized(clean, clean.len()) {
            Ok(unit) => crate::eval::perturb_to_cosine(&unit, cosine, &mut rng),
            Err(_) => clean.to_vec(),
        }
    }

    /// Builds the batch of the given rows, with their drafts of `epoch` (`None`: validation).
    fn batch(&self, rows: &[usize], epoch: Option<usize>) -> Result<Batch> {
        let phrases: Vec<&[u8]> = rows
            .iter()
            .map(|&i| self.data.phrase(i).as_bytes())
            .collect();
        let owned: Vec<Vec<u8>> = match self.drafts {
            Some(_) => rows.iter().map(|&i| self.draft(i, epoch)).collect(),
            None => Vec::new(),
        };
        let drafts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let vectors: Vec<Vec<f32>> = match epoch {
            Some(_) if self.config.noise_share > 0.0 => {
                rows.iter().map(|&i| self.noisy_embedding(i)).collect()
            }
            _ => rows
                .iter()
                .map(|&i| self.data.embedding(i).to_vec())
                .collect(),
        };
        let embeddings: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        Batch::with_drafts(
            self.model.config(),
            &phrases,
            &drafts,
            &embeddings,
            self.model.device(),
        )
    }

    /// Runs one optimizer step on the next batch and returns its loss.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let per_epoch = self.train_rows.len().div_ceil(self.config.batch_size);
        let (epoch, index) = (self.step / per_epoch, self.step % per_epoch);
        let rows = self.batch_rows(epoch, index).to_vec();
        // shards of alternating rows: equal sizes and, rows being sorted by length, equal work
        let shards = self.workers.min(rows.len()).max(1);
        let batches = (0..shards)
            .map(|k| {
                let shard: Vec<usize> = rows.iter().skip(k).step_by(shards).copied().collect();
                self.batch(&shard, Some(epoch))
            })
            .collect::<Result<Vec<Batch>>>()?;
        let bytes: usize = batches.iter().map(Batch::predicted_bytes).sum();
        let depth = self.config.depth(self.step, self.model.config().depth);
        let lr = self.config.learning_rate(self.step);
        let model = &self.model;
        // each shard's summed loss over the whole batch's byte count: the gradients add up
        // to the gradient of the batch mean
        let shard_grads = |batch: &Batch| -> Result<(f64, GradStore)> {
            let loss_sum = model.loss_sum(batch, depth)?;
            let err = candle_err("training step");
            let nats = f64::from(loss_sum.to_scalar::<f32>().map_err(&err)?);
            let grads = (loss_sum / bytes as f64)
                .and_then(|mean| mean.backward())
                .map_err(&err)?;
            Ok((nats, grads))
        };
        let results: Vec<Result<(f64, GradStore)>> = if shards == 1 {
            vec![shard_grads(&batches[0])]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = batches
                    .iter()
                    .map(|b| scope.spawn(move || shard_grads(b)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::InvalidArgument("a training worker panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let err = candle_err("training step");
        let mut results = results.into_iter();
        let (mut nats, mut grads) = results
            .next()
            .unwrap_or_else(|| Err(Error::InvalidArgument("empty training batch".into())))?;
        for result in results {
            let (shard_nats, shard_grads) = result?;
            nats += shard_nats;
            for v in &self.vars {
                if let (Some(a), Some(b)) = (grads.get(v), shard_grads.get(v)) {
                    let sum = (a + b).map_err(&err)?;
                    grads.insert(v, sum);
                }
            }
        }
        if !nats.is_finite() {
            return Err(Error::InvalidConfig(format!(
                "training diverged at step {} (loss {nats}): lower the learning rate",
                self.step
            )));
        }
        if self.config.grad_clip > 0.0 {
            self.clip(&mut grads).map_err(&err)?;
        }
        for opt in &mut self.optimizers {
            opt.set_learning_rate(lr);
            opt.step(&grads).map_err(&err)?;
        }
        self.step += 1;
        Ok(StepStats { nats, bytes })
    }

    /// Scales the gradients so that their global norm is at most `grad_clip`.
    fn clip(&self, grads: &mut GradStore) -> candle_core::Result<()> {
        let mut sum = 0.0f64;
        for v in &self.vars {
            if let Some(g) = grads.get(v) {
                sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        let norm = sum.sqrt();
        if norm > self.config.grad_clip {
            let scale = self.config.grad_clip / norm;
            for v in &self.vars {
                if let Some(g) = grads.get(v) {
                    let scaled: Tensor = (g * scale)?;
                    grads.insert(v, scaled);
                }
            }
        }
        Ok(())
    }

    /// Bits per byte (text bytes and end bytes) on the validation subset, at the depth of the
    /// current step.
    pub fn validation_bpb(&self) -> Result<f64> {
        let mut rows = self.val_rows.clone();
        rows.sort_by_cached_key(|&i| self.data.phrase(i).len() + self.draft(i, None).len());
        let depth = self.config.depth(self.step, self.model.config().depth);
        let (mut nats, mut bytes) = (0.0f64, 0usize);
        for chunk in rows.chunks(self.config.batch_size) {
            let batch = self.batch(chunk, None)?;
            let loss = self.model.loss_sum(&batch, depth)?;
            nats += f64::from(loss.to_scalar::<f32>().map_err(candle_err("validation"))?);
            bytes += batch.predicted_bytes();
        }
        Ok(nats / bytes as f64 / std::f64::consts::LN_2)
    }

    /// Mean token F1 of greedy decodes (float32, default [`DecodeOptions`]) of `eval_decodes`
    /// of the validation rows measured by [`Trainer::validation_bpb`], evenly spaced; `None`
    /// when `eval_decodes` is 0.
    pub fn validation_token_f1(&self) -> Result<Option<f64>> {
        let n = self.config.eval_decodes.min(self.val_rows.len());
        if n == 0 {
            return Ok(None);
        }
        let inference = InferenceModel::from_model(&self.model, Precision::F32)?;
        let options = DecodeOptions::default();
        let mut total = 0.0;
        let len = self.val_rows.len();
        for i in (0..n).map(|k| self.val_rows[k * len / n]) {
            let draft = self
                .drafts
                .as_ref()
                .and_then(|d| d.rows[i])
                .map_or("", |r| self.data.phrase(r));
            let decoded = inference.decode_with_draft(self.data.embedding(i), draft, &options)?;
            total += token_f1(&decoded.text, self.data.phrase(i));
        }
        Ok(Some(total / n as f64))
    }

    /// Trains until `config.steps`, measuring validation bits per byte every `eval_every`
    /// steps (appended to `out_dir/train_log.jsonl`) and checkpointing into `out_dir` every
    /// `checkpoint_every` steps and at the end. Shows a progress bar if `progress` is true.
    pub fn run(&mut self, out_dir: &Path, progress: bool) -> Result<TrainSummary> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
        let log_path = out_dir.join("train_log.jsonl");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        let start = Instant::now();
        let total = self.config.steps as u64;
        let bar = if progress {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(self.step as u64);
        let initial_val_bpb = self.validation_bpb()?;
        let mut write_log = |entry: &TrainLogEntry| -> Result<()> {
            let mut line = serde_json::to_vec(entry)?;
            line.push(b'\n');
            log.write_all(&line).map_err(|e| Error::io(&log_path, e))
        };
        if self.step == 0 {
            write_log(&TrainLogEntry {
                step: 0,
                train_bpb: None,
                val_bpb: initial_val_bpb,
                val_token_f1: self.validation_token_f1()?,
                lr: 0.0,
                depth: self.config.depth(0, self.model.config().depth),
                elapsed_s: 0.0,
                bytes_per_s: 0.0,
            })?;
        }
        let (mut nats, mut bytes, mut all_bytes) = (0.0f64, 0usize, 0usize);
        // Time spent in training steps only (not validation or checkpoints).
        let (mut step_time, mut all_step_time) = (0.0f64, 0.0f64);
        let mut val_bpb = initial_val_bpb;
        let mut checkpoint = None;
        while self.step < self.config.steps {
            let t = Instant::now();
            let stats = self.train_step()?;
            let dt = t.elapsed().as_secs_f64();
            step_time += dt;
            all_step_time += dt;
            nats += stats.nats;
            bytes += stats.bytes;
            all_bytes += stats.bytes;
            bar.set_position(self.step as u64);
            let done = self.step == self.config.steps;
            if self.step.is_multiple_of(self.config.eval_every) || done {
                val_bpb = self.validation_bpb()?;
                let train_bpb = nats / bytes.max(1) as f64 / std::f64::consts::LN_2;
                let val_token_f1 = self.validation_token_f1()?;
                let entry = TrainLogEntry {
                    step: self.step,
                    train_bpb: Some(train_bpb),
                    val_bpb,
                    val_token_f1,
                    lr: self.config.learning_rate(self.step - 1),
                    depth: self.config.depth(self.step - 1, self.model.config().depth),
                    elapsed_s: start.elapsed().as_secs_f64(),
                    bytes_per_s: bytes as f64 / step_time.max(1e-9),
                };
                write_log(&entry)?;
                bar.set_message(format!(
                    "train {train_bpb:.3} val {val_bpb:.3} bpb, F1 {:.3}, {:.0} B/s",
                    val_token_f1.unwrap_or(f64::NAN),
                    entry.bytes_per_s
                ));
                (nats, bytes, step_time) = (0.0, 0, 0.0);
            }
            if self.step.is_multiple_of(self.config.checkpoint_every) || done {
                checkpoint = Some(Checkpoint::write(
                    out_dir,
                    &self.model,
                    &self.config,
                    self.step,
                    Some(val_bpb),
                )?);
            }
        }
        bar.finish();
        let checkpoint = match checkpoint {
            Some(c) => c,
            None => {
                Checkpoint::write(out_dir, &self.model, &self.config, self.step, Some(val_bpb))?
            }
        };
        Ok(TrainSummary {
            steps: self.step,
            initial_val_bpb,
            final_val_bpb: val_bpb,
            bytes_per_s: all_bytes as f64 / all_step_time.max(1e-9),
            checkpoint,
        })
    }
}
