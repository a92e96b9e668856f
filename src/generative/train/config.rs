//! Training settings ([`TrainConfig`]: schedule, batches, noise, validation) and the records
//! a run writes ([`TrainLogEntry`], [`TrainSummary`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
#[serde(deny_unknown_fields)]
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
    /// Parses and validates a JSON training config (unknown keys are errors).
    pub fn from_json(text: &str) -> Result<Self> {
        let config: TrainConfig = crate::json::parse_json(text)?;
        config.validate()?;
        Ok(config)
    }

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

/// What a call to [`Trainer::run`](super::Trainer::run) achieved.
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
