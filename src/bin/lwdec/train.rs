//! `lwdec train`: train the generative decoder, resumably.

use std::path::PathBuf;

use lightweight_decoder::generative::train::{Checkpoint, Dataset, TrainConfig, Trainer};
use lightweight_decoder::generative::{GenerativeConfig, GenerativeModel};
use lightweight_decoder::{Error, Result};

use crate::options::CorpusArgs;

/// Options of `lwdec train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Output directory for checkpoints and train_log.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Training settings (JSON `TrainConfig`); flags below override it.
    #[arg(long)]
    train_config: Option<PathBuf>,
    /// Resume from a checkpoint (its JSON state file, or the output directory).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Total optimizer steps (counting steps before a resume).
    #[arg(long)]
    steps: Option<usize>,
    /// Phrases per batch.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Model depth (layer applications) for a new model.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=64))]
    depth: Option<u8>,
    /// Longest text in bytes the model trains on (and later generates): for a new model, or
    /// to change a resumed one's (rotary positions add no parameters). Longer phrases are
    /// left out of training.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4096))]
    max_len: Option<u16>,
    /// Seed of the initial weights for a new model.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Data-parallel worker threads, each running its ops on one thread (default: the
    /// available cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
}

/// Trains (or resumes) and prints the run's summary.
pub fn run(args: &TrainArgs) -> Result<()> {
    let workers = args.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        usize::from,
    );
    if workers > 1 {
        // one thread per op inside each worker (see Trainer::set_workers), unless the user
        // chose otherwise; set before candle starts its thread pool
        for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                std::env::set_var(var, "1");
            }
        }
    }
    tune_allocator_for_training();
    let corpus = &args.corpus;
    let data = match &corpus.embeddings {
        Some(embeddings) => Dataset::load(&corpus.phrases, embeddings, corpus.scale.as_deref())?,
        None => {
            let (phrases, vectors) = corpus.load()?;
            let dim = vectors.ncols();
            let values = vectors.as_standard_layout().iter().copied().collect();
            Dataset::new(phrases, values, dim)?
        }
    };
    let mut config = match &args.train_config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
            TrainConfig::from_json(&text)
                .map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))?
        }
        None => TrainConfig::default(),
    };
    let overridden = args.steps.is_some() || args.batch_size.is_some() || args.lr.is_some();
    config.steps = args.steps.unwrap_or(config.steps);
    config.batch_size = args.batch_size.unwrap_or(config.batch_size);
    config.lr = args.lr.unwrap_or(config.lr);
    let mut trainer = match &args.resume {
        Some(path) => {
            let mut checkpoint = Checkpoint::read(path)?;
            if let Some(max_len) = args.max_len {
                checkpoint.model = checkpoint.model.with_max_len(usize::from(max_len))?;
            }
            Trainer::resume_from(
                checkpoint,
                (args.train_config.is_some() || overridden).then_some(config),
                &data,
            )?
        }
        None => {
            let defaults = GenerativeConfig::default();
            let model_config = GenerativeConfig {
                depth: args.depth.map_or(defaults.depth, usize::from),
                max_len: args.max_len.map_or(defaults.max_len, usize::from),
                ..defaults
            };
            Trainer::new(
                GenerativeModel::new(model_config, args.seed)?,
                config,
                &data,
            )?
        }
    };
    trainer.set_workers(workers);
    let summary = trainer.run(&args.out, true)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Training allocates and frees megabyte-sized tensors at every op. glibc's defaults return
/// that memory to the kernel and take it back again (page faults: with two workers, 38% of
/// the CPU time went to the kernel) and give each worker thread its own arena; with one arena
/// that keeps its memory two workers train 1.8x faster than one worker on two threads
/// (docs/experiments.md).
fn tune_allocator_for_training() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters, which is sound at any time;
    // it is called before the worker threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
