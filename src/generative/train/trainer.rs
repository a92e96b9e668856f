//! Training: AdamW with warm-up and decay over length-bucketed batches, validation bits per
//! byte on the held-out split, JSON-lines log and resumable checkpoints.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::checkpoint::Checkpoint;
use super::config::{TrainConfig, TrainLogEntry, TrainSummary};
use super::dataset::Dataset;
use crate::embedding::UnitEmbedding;
use crate::eval::perturb_to_cosine;
use crate::generative::candle_err;
use crate::generative::generation::{generate, DecodeOptions};
use crate::generative::inference::InferenceModel;
use crate::generative::model::{Batch, GenerativeModel, PARAM_NAMES};
use crate::generative::precision::Precision;
use crate::text::token_f1;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

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
        Self::resume_from(Checkpoint::read(checkpoint)?, config, data)
    }

    /// Resumes from a checkpoint already read (its model possibly adjusted, e.g. by
    /// [`GenerativeModel::with_max_len`]), with its training configuration unless `config`
    /// overrides it.
    pub fn resume_from(
        checkpoint: Checkpoint,
        config: Option<TrainConfig>,
        data: &'a Dataset,
    ) -> Result<Self> {
        let Checkpoint { state, model } = checkpoint;
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

    /// AdamW over the matrices (decayed) and over the norm parameters (not decayed).
    fn optimizers(model: &GenerativeModel, config: &TrainConfig) -> Result<[AdamW; 2]> {
        let data = model
            .varmap()
            .data()
            .lock()
            .map_err(|_| Error::Internal("parameter store is poisoned".into()))?;
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
            rows.sort_by_cached_key(|&i| self.data.phrase(i).len());
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
            Ok(unit) => perturb_to_cosine(&unit, cosine, &mut rng),
            Err(_) => clean.to_vec(),
        }
    }

    /// Builds the batch of the given rows, with noisy embeddings in training (`epoch` given)
    /// if configured, clean ones in validation (`None`).
    fn batch(&self, rows: &[usize], epoch: Option<usize>) -> Result<Batch> {
        let phrases: Vec<&[u8]> = rows
            .iter()
            .map(|&i| self.data.phrase(i).as_bytes())
            .collect();
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
        Batch::new(
            self.model.config(),
            &phrases,
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
                            Err(Error::Internal("a training worker panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let err = candle_err("training step");
        let mut results = results.into_iter();
        let (mut nats, mut grads) = results
            .next()
            .unwrap_or_else(|| Err(Error::Internal("empty training batch".into())))?;
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
        rows.sort_by_cached_key(|&i| self.data.phrase(i).len());
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
            let embedding = UnitEmbedding::new(self.data.embedding(i), self.data.dim())?;
            let decoded = generate(&inference, &embedding, None, &options)?;
            total += token_f1(&decoded.text, self.data.phrase(i));
        }
        Ok(Some(total / n as f64))
    }

    /// Trains until `config.steps`, measuring validation bits per byte every `eval_every`
    /// steps (appended to `out_dir/train_log.jsonl`) and checkpointing into `out_dir` every
    /// `checkpoint_every` steps and at the end. Shows a progress bar if `progress` is true.
    pub fn run(&mut self, out_dir: &Path, progress: bool) -> Result<TrainSummary> {
        std::fs::create_dir_all(out_dir).map_err(|e| Error::io("create the folder", out_dir, e))?;
        let log_path = out_dir.join("train_log.jsonl");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io("open", &log_path, e))?;
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
            log.write_all(&line)
                .map_err(|e| Error::io("write", &log_path, e))
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
