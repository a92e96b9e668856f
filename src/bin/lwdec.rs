//! `lwdec`: the command line of lightweight-decoder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lightweight_decoder::dataset::{is_validation, Dataset};
use lightweight_decoder::embedding::load_embeddings;
use lightweight_decoder::eval::{evaluate, perturb_rows, same_text};
use lightweight_decoder::fsutil::write_atomic;
use lightweight_decoder::generative::{
    Checkpoint, DecodeOptions, GenerativeConfig, GenerativeModel, GuideSettings, InferenceModel,
    Precision, Strategy, TrainConfig, Trainer,
};
use lightweight_decoder::hybrid::{calibrate, measure};
use lightweight_decoder::metrics::token_f1;
use lightweight_decoder::monitoring::percentile;
use lightweight_decoder::phrase_bank::{BankBuildOptions, BuildProgress, PhraseBank};
use lightweight_decoder::samples::{
    read_lines, SampleSet, OUT_OF_DOMAIN, SESSIONS_TEST, VALIDATION, WORDNET_SAMPLE,
};
use lightweight_decoder::{
    load_config, save_config, AssemblyMethod, Decoded, Decoder, DecoderConfig, Error,
    GenerativeDecoder, HybridConfig, HybridDecoder, PhraseBankDecoder, Result,
};
use ndarray::{s, Array2};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "lwdec",
    version,
    about = "Decode sentence embeddings back into text"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which decoder to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DecoderKind {
    /// FAISS search over a phrase bank.
    PhraseBank,
    /// The byte-level transformer.
    Generative,
    /// Per input, the bank's phrase or the generator's text (rule from the config).
    Hybrid,
    /// Every decoder, one after the other (eval only).
    All,
}

/// Phrases and their embeddings, for building banks and training.
#[derive(clap::Args, Clone)]
struct CorpusArgs {
    /// Phrases, UTF-8, one per line.
    #[arg(long)]
    phrases: PathBuf,
    /// Embeddings: N x D float32 .npy, or int8 .npy together with --scale.
    #[arg(long)]
    embeddings: PathBuf,
    /// Per-row float32 scales for int8 embeddings.
    #[arg(long)]
    scale: Option<PathBuf>,
}

/// Embeddings with their reference texts, for evaluation and calibration.
#[derive(clap::Args, Clone)]
struct LabelledArgs {
    /// Input embeddings: N x D float32 .npy (or int8 with --scale).
    #[arg(long)]
    input: PathBuf,
    /// Per-row float32 scales when --input is int8.
    #[arg(long)]
    scale: Option<PathBuf>,
    /// Reference texts, one per row.
    #[arg(long)]
    reference: PathBuf,
    /// Use only the first N rows.
    #[arg(long)]
    limit: Option<usize>,
}

impl LabelledArgs {
    fn load(&self) -> Result<(Array2<f32>, Vec<String>)> {
        let mut embeddings = load_embeddings(&self.input, self.scale.as_deref())?;
        let mut references = read_lines(&self.reference)?;
        if let Some(n) = self.limit {
            let n = n.min(embeddings.nrows());
            embeddings = embeddings.slice(ndarray::s![..n, ..]).to_owned();
            references.truncate(n);
        }
        Ok((embeddings, references))
    }
}

/// Options shared by the commands that build a phrase-bank decoder.
#[derive(clap::Args, Clone)]
struct DecoderArgs {
    /// Decoder to use.
    #[arg(long, value_enum, default_value_t = DecoderKind::PhraseBank)]
    decoder: DecoderKind,
    /// Bank directory (default: the bundled bank, or $LWDEC_BANK_DIR).
    #[arg(long)]
    bank: Option<PathBuf>,
    /// Decoder config (JSON, see `DecoderConfig`); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Assembly method: greedy, weighted, beam or context-aware.
    #[arg(long)]
    method: Option<AssemblyMethod>,
    /// Candidates retrieved (and reported) per input.
    #[arg(long)]
    top_k: Option<usize>,
    /// Generative model file (default: the bundled model, or $LWDEC_MODEL).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Beam width for the generative decoder (1 = greedy).
    #[arg(long, default_value_t = 1)]
    beam: usize,
    /// Minimum-Bayes-risk decoding for the generative decoder: the consensus of the greedy
    /// output and this many seeded samples (0 = off).
    #[arg(long, default_value_t = 0)]
    mbr: usize,
    /// Sampling temperature of --mbr.
    #[arg(long, default_value_t = 0.6)]
    mbr_temperature: f32,
    /// Generate without drafts even if the model reads them (by default a retrieval-augmented
    /// model reads each input's nearest phrase of the bank, `--bank`, as its draft).
    #[arg(long)]
    no_drafts: bool,
    /// Generate from the embedding alone. By default the generative decoder (and the hybrid's
    /// generator) is retrieval-guided: the bank's nearest phrases (`--bank`) propose
    /// continuations mixed into its next-byte distribution, with the config's `guide` settings
    /// (`GuideSettings::default()`, measured best with `--beam 8`).
    #[arg(long)]
    no_guide: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Decode embeddings (N x D float32 .npy) to JSON lines, one per row, in row order.
    Decode {
        /// Input embeddings: N x D float32 .npy (or int8 with --scale).
        #[arg(long)]
        input: PathBuf,
        /// Per-row float32 scales when --input is int8.
        #[arg(long)]
        scale: Option<PathBuf>,
        /// First rows of sessions, comma-separated (e.g. 0,5,10); without it every row is its
        /// own session.
        #[arg(long, value_delimiter = ',')]
        boundaries: Option<Vec<usize>>,
        /// Output file (JSON lines); stdout when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
    /// Build, inspect and verify phrase banks.
    Bank {
        #[command(subcommand)]
        command: BankCommand,
    },
    /// Decode the bundled sample embeddings and show original and decoded text side by side.
    Demo {
        /// Rows of the bundled sample to show.
        #[arg(long, default_value_t = 12)]
        rows: usize,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
    /// Score decoders against reference texts: exact match, token F1, BLEU, chrF, confidence,
    /// latency; a table, and JSON with --output.
    Eval {
        #[command(flatten)]
        labelled: LabelledArgs,
        /// First rows of sessions, comma-separated; without it every row is its own session.
        #[arg(long, value_delimiter = ',')]
        boundaries: Option<Vec<usize>>,
        /// Perturb inputs to this cosine with their original first (1 = unchanged).
        #[arg(long, default_value_t = 1.0)]
        noise_cosine: f32,
        /// Write the report as JSON here.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write every decoded text as JSON lines here (decoder, row, text), for re-embedding.
        #[arg(long)]
        decoded: Option<PathBuf>,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
    /// Fit the hybrid's decision rule on labelled embeddings (maximising token F1) and write
    /// the decoder config with it.
    Calibrate {
        #[command(flatten)]
        labelled: LabelledArgs,
        /// Where to write the decoder config (JSON) with the fitted rule.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
    /// Train the generative decoder (resumable; checkpoints and a JSONL log go to --out).
    Train {
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
        #[arg(long)]
        depth: Option<usize>,
        /// Seed of the initial weights for a new model.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Data-parallel worker threads, each running its ops on one thread (default: the
        /// available cores).
        #[arg(long)]
        workers: Option<usize>,
        /// For a model that reads drafts (`max_draft` > 0): how often a training phrase goes
        /// without its draft (the nearest other training phrase, computed once and kept as
        /// `drafts.json` in the output directory).
        #[arg(long, default_value_t = 0.2)]
        draft_dropout: f64,
        /// How often a training phrase reads itself, with words dropped, as its draft (a
        /// denoising task that teaches the model to copy from drafts).
        #[arg(long, default_value_t = 0.3)]
        draft_self_share: f64,
    },
    /// Inspect generative model files.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Measure decode latency and throughput against the raw FAISS search.
    Bench {
        /// Single queries timed.
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Print the report as JSON too.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Export a training checkpoint as a GGUF model file (f32, q8 or q4).
    Export {
        /// Checkpoint JSON state (or a training output directory: its latest checkpoint).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Precision: f32, q8 (INT8 blocks) or q4 (INT4 blocks).
        #[arg(long, default_value = "q4")]
        precision: Precision,
        /// Output file (written atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print parameter count, file size, quantisation and depth of a model file (GGUF).
    Info {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
    },
}

#[derive(Subcommand)]
enum BankCommand {
    /// Build a bank from phrases (one per line) and their embeddings.
    Build {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Output bank directory (replaced atomically).
        #[arg(long)]
        out: PathBuf,
        /// FAISS factory string of the index, or `auto` (Flat below 50,000 rows, IVF1024,PQ96 above).
        #[arg(long, default_value_t = BankBuildOptions::default().index_spec)]
        index: String,
        /// Rows sampled to train the index.
        #[arg(long, default_value_t = BankBuildOptions::default().train_size)]
        train_size: usize,
        /// Inverted lists probed per query (IVF kinds).
        #[arg(long, default_value_t = BankBuildOptions::default().nprobe)]
        nprobe: usize,
        /// Leave out the generator's held-out validation phrases (for a baseline bank that
        /// never contains the phrase being decoded).
        #[arg(long)]
        exclude_validation: bool,
    },
    /// Show a bank's size, count and index kind; with --verify, measure self-recall@1.
    Info {
        /// Bank directory (default: the bundled bank).
        #[arg(long)]
        bank: Option<PathBuf>,
        /// Decode the bundled sample phrases found in the bank from their exact and noisy
        /// embeddings and report how often the phrase itself comes back.
        #[arg(long)]
        verify: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lwdec: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Decode {
            input,
            scale,
            boundaries,
            output,
            decoder,
        } => decode(
            &input,
            scale.as_deref(),
            boundaries,
            output.as_deref(),
            &decoder,
        ),
        Command::Bank { command } => match command {
            BankCommand::Build {
                corpus,
                out,
                index,
                train_size,
                nprobe,
                exclude_validation,
            } => bank_build(
                &corpus,
                &out,
                exclude_validation,
                BankBuildOptions {
                    index_spec: index,
                    train_size,
                    nprobe,
                    ..Default::default()
                },
            ),
            BankCommand::Info { bank, verify } => bank_info(bank.as_deref(), verify),
        },
        Command::Demo { rows, decoder } => demo(rows, &decoder),
        Command::Eval {
            labelled,
            boundaries,
            noise_cosine,
            output,
            decoded,
            decoder,
        } => eval(
            &labelled,
            boundaries,
            noise_cosine,
            output.as_deref(),
            decoded.as_deref(),
            &decoder,
        ),
        Command::Calibrate {
            labelled,
            out,
            decoder,
        } => {
            let (embeddings, references) = labelled.load()?;
            let mut config = decoder_config(&decoder)?;
            let hybrid = hybrid_decoder(&decoder, config.clone())?;
            let rows = measure(&hybrid, embeddings.view(), &references)?;
            let fit = calibrate(&rows, &config.hybrid);
            println!("{}", serde_json::to_string_pretty(&fit)?);
            config.hybrid = fit.rule;
            save_config(&config, &out)
        }
        Command::Train {
            corpus,
            out,
            train_config,
            resume,
            steps,
            batch_size,
            lr,
            depth,
            seed,
            workers,
            draft_dropout,
            draft_self_share,
        } => {
            let workers = workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            if workers > 1 {
                // one thread per op inside each worker (see Trainer::set_workers), unless the
                // user chose otherwise; set before candle starts its thread pool
                for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
                    if std::env::var_os(var).is_none() {
                        std::env::set_var(var, "1");
                    }
                }
            }
            tune_allocator_for_training();
            let data = match &corpus.scale {
                Some(scale) => Dataset::load_i8(&corpus.phrases, &corpus.embeddings, scale)?,
                None => Dataset::load_f32(&corpus.phrases, &corpus.embeddings)?,
            };
            let mut config = match &train_config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                    serde_json::from_str(&text)
                        .map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))?
                }
                None => TrainConfig::default(),
            };
            let overridden = steps.is_some() || batch_size.is_some() || lr.is_some();
            config.steps = steps.unwrap_or(config.steps);
            config.batch_size = batch_size.unwrap_or(config.batch_size);
            config.lr = lr.unwrap_or(config.lr);
            let mut trainer = match &resume {
                Some(checkpoint) => Trainer::resume(
                    checkpoint,
                    (train_config.is_some() || overridden).then_some(config),
                    &data,
                )?,
                None => {
                    let model_config = GenerativeConfig {
                        depth: depth.unwrap_or(GenerativeConfig::default().depth),
                        ..GenerativeConfig::default()
                    };
                    Trainer::new(GenerativeModel::new(model_config, seed)?, config, &data)?
                }
            };
            trainer.set_workers(workers);
            if trainer.model().config().max_draft > 0 {
                let drafts = training_drafts(&data, &out)?;
                trainer.set_drafts(drafts, draft_dropout, draft_self_share)?;
            }
            let summary = trainer.run(&out, true)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Model {
            command:
                ModelCommand::Export {
                    checkpoint,
                    precision,
                    out,
                },
        } => {
            let Checkpoint { model, state } = Checkpoint::read(&checkpoint)?;
            InferenceModel::from_model(&model, precision)?.save(&out)?;
            let bytes = std::fs::metadata(&out)
                .map_err(|e| Error::io(&out, e))?
                .len();
            println!(
                "exported step {} as {precision:?} to {} ({bytes} bytes)",
                state.step,
                out.display()
            );
            Ok(())
        }
        Command::Model {
            command: ModelCommand::Info { model },
        } => {
            let m = InferenceModel::load(&model)?;
            let bytes = std::fs::metadata(&model)
                .map_err(|e| Error::io(&model, e))?
                .len();
            let c = m.config();
            println!("model        {}", model.display());
            println!("parameters   {}", c.parameter_count());
            println!(
                "file size    {bytes} bytes ({:.1} KB)",
                bytes as f64 / 1024.0
            );
            println!("quantisation {:?}", m.precision());
            println!("depth        {}", c.depth);
            println!("config       {}", serde_json::to_string(c)?);
            Ok(())
        }
        Command::Bench {
            queries,
            json,
            decoder,
        } => bench(queries, json, &decoder),
    }
}

/// The nearest other training row of every row ([`Dataset::nearest_training_rows`]), read
/// from `out/drafts.json` if a previous run wrote it (so that a resumed run keeps its drafts),
/// else computed and written there.
fn training_drafts(data: &Dataset, out: &Path) -> Result<Vec<Option<usize>>> {
    let path = out.join("drafts.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        return serde_json::from_str(&text)
            .map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())));
    }
    eprintln!("finding the nearest other training phrase of every phrase ...");
    let drafts = data.nearest_training_rows(8)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_atomic(&path, serde_json::to_string(&drafts)?.as_bytes())?;
    Ok(drafts)
}

/// Training allocates and frees megabyte-sized tensors at every op. glibc's defaults return
/// that memory to the kernel and take it back again (page faults: with two workers, 38% of
/// the CPU time went to the kernel) and give each worker thread its own arena; with one arena
/// that keeps its memory two workers train 1.8x faster than one worker on two threads
/// (plan.md).
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

fn load_bank(dir: Option<&Path>) -> Result<PhraseBank> {
    match dir {
        Some(d) => PhraseBank::load(d),
        None => PhraseBank::load_default(),
    }
}

fn decoder_config(args: &DecoderArgs) -> Result<DecoderConfig> {
    let mut config = match &args.config {
        Some(path) => load_config(path)?,
        None => DecoderConfig::default(),
    };
    if let Some(m) = args.method {
        config.method = m;
    }
    if let Some(k) = args.top_k {
        config.top_k = k;
    }
    if args.no_guide {
        config.guide = GuideSettings::off();
        if args.config.is_none() {
            // the default rule was fitted for the guided generator
            config.hybrid = HybridConfig::bank_only();
        }
    }
    config.validate()?;
    Ok(config)
}

fn build_decoder(args: &DecoderArgs, config: DecoderConfig) -> Result<Box<dyn Decoder>> {
    match args.decoder {
        DecoderKind::PhraseBank => Ok(Box::new(PhraseBankDecoder::new(
            load_bank(args.bank.as_deref())?,
            config,
        )?)),
        DecoderKind::Generative => Ok(Box::new(generative_decoder(args, &config, None)?)),
        DecoderKind::Hybrid => Ok(Box::new(hybrid_decoder(args, config)?)),
        DecoderKind::All => Err(Error::InvalidArgument(
            "--decoder all is only for `lwdec eval`".into(),
        )),
    }
}

/// The generative decoder. A model that reads drafts gets `bank` (else `--bank` or the default
/// bank) as its draft bank unless `--no-drafts`; the same bank guides decoding when the config's
/// `guide` is on.
fn generative_decoder(
    args: &DecoderArgs,
    config: &DecoderConfig,
    bank: Option<Arc<PhraseBank>>,
) -> Result<GenerativeDecoder> {
    let options = DecodeOptions {
        strategy: if args.mbr > 0 {
            Strategy::Mbr {
                samples: args.mbr,
                temperature: args.mbr_temperature,
                seed: 0,
            }
        } else if args.beam > 1 {
            Strategy::Beam { width: args.beam }
        } else {
            Strategy::Greedy
        },
        ..DecodeOptions::default()
    };
    let path = args
        .model
        .clone()
        .unwrap_or_else(GenerativeDecoder::default_model_path);
    let mut decoder = GenerativeDecoder::load(&path, options)?;
    let drafts = decoder.model().config().max_draft > 0 && !args.no_drafts;
    if !drafts && !config.guide.enabled() {
        return Ok(decoder);
    }
    let bank = match bank {
        Some(bank) => bank,
        None => Arc::new(load_bank(args.bank.as_deref())?),
    };
    if drafts {
        decoder = decoder.with_draft_bank(bank.clone());
    }
    decoder.with_guide(bank, config.guide.clone())
}

fn hybrid_decoder(args: &DecoderArgs, config: DecoderConfig) -> Result<HybridDecoder> {
    let rule = config.hybrid.clone();
    let bank = PhraseBankDecoder::new(load_bank(args.bank.as_deref())?, config.clone())?;
    let generator = generative_decoder(args, &config, Some(bank.shared_bank()))?;
    HybridDecoder::new(bank, generator, rule)
}

/// The decoders `--decoder` names, each with its name (several for `all`).
fn build_decoders(args: &DecoderArgs) -> Result<Vec<(String, Box<dyn Decoder>)>> {
    let kinds = match args.decoder {
        DecoderKind::All => vec![
            DecoderKind::PhraseBank,
            DecoderKind::Generative,
            DecoderKind::Hybrid,
        ],
        one => vec![one],
    };
    kinds
        .into_iter()
        .map(|kind| {
            let args = DecoderArgs {
                decoder: kind,
                ..args.clone()
            };
            let name = kind
                .to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_string());
            Ok((name, build_decoder(&args, decoder_config(&args)?)?))
        })
        .collect()
}

fn decode(
    input: &Path,
    scale: Option<&Path>,
    boundaries: Option<Vec<usize>>,
    output: Option<&Path>,
    args: &DecoderArgs,
) -> Result<()> {
    let embeddings = load_embeddings(input, scale)?;
    let decoder = build_decoder(args, decoder_config(args)?)?;
    let decoded = match boundaries {
        Some(b) => decoder.batch_decode_with_sessions(embeddings.view(), &b)?,
        None => decoder.batch_decode(embeddings.view())?,
    };
    let mut text = String::new();
    for (row, d) in decoded.iter().enumerate() {
        let line = json!({
            "row": row,
            "text": d.text,
            "confidence": d.confidence,
            "low_confidence": d.low_confidence,
            "source": d.source,
            "candidates": d.candidates,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    match output {
        Some(path) => write_atomic(path, text.as_bytes()),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("<stdout>", e)),
    }
}

fn eval(
    labelled: &LabelledArgs,
    boundaries: Option<Vec<usize>>,
    noise_cosine: f32,
    output: Option<&Path>,
    decoded_path: Option<&Path>,
    args: &DecoderArgs,
) -> Result<()> {
    if !(noise_cosine > 0.0 && noise_cosine <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "--noise-cosine must be in (0, 1], got {noise_cosine}"
        )));
    }
    let (clean, references) = labelled.load()?;
    let embeddings = perturb_rows(&clean, noise_cosine, 2026);
    let boundaries = boundaries.unwrap_or_else(|| (0..embeddings.nrows()).collect());
    let mut reports = Vec::new();
    let mut lines = String::new();
    for (name, decoder) in build_decoders(args)? {
        let report = evaluate(
            &name,
            decoder.as_ref(),
            embeddings.view(),
            &boundaries,
            &references,
        )?;
        for (row, text) in report.texts.iter().enumerate() {
            lines.push_str(&json!({"decoder": name, "row": row, "text": text}).to_string());
            lines.push('\n');
        }
        reports.push(report);
    }
    println!(
        "{:<14}{:>7}{:>9}{:>10}{:>8}{:>8}{:>7}{:>10}{:>10}  sources",
        "decoder", "rows", "exact", "token F1", "BLEU", "chrF", "conf", "p50 us", "p99 us"
    );
    for r in &reports {
        println!(
            "{:<14}{:>7}{:>8.2}%{:>10.4}{:>8.2}{:>8.2}{:>7.3}{:>10.0}{:>10.0}  {:?}",
            r.decoder,
            r.rows,
            100.0 * r.exact_match,
            r.token_f1,
            r.bleu,
            r.chrf,
            r.mean_confidence,
            r.latency_us[0],
            r.latency_us[2],
            r.sources
        );
    }
    if let Some(path) = output {
        let report = json!({
            "input": labelled.input,
            "reference": labelled.reference,
            "noise_cosine": noise_cosine,
            "decoders": reports,
        });
        write_atomic(
            path,
            (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
        )?;
    }
    if let Some(path) = decoded_path {
        write_atomic(path, lines.as_bytes())?;
    }
    Ok(())
}

/// Greedy (or beam) decoding of validation embeddings: one at a time on one thread, then the
/// batch over every core.
fn bench_generative(queries: usize, as_json: bool, args: &DecoderArgs) -> Result<()> {
    let decoder = build_decoder(args, decoder_config(args)?)?;
    let sample = SampleSet::bundled(VALIDATION)?;
    let n = queries.clamp(1, sample.texts.len());
    let inputs = sample.embeddings.slice(s![..n, ..]).to_owned();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("thread pool: {e}")))?;
    let mut us = Vec::with_capacity(n);
    let mut bytes = 0usize;
    one_thread.install(|| -> Result<()> {
        for row in inputs.rows() {
            let q = row.to_vec();
            let t = Instant::now();
            bytes += decoder.decode(&q)?.text.len();
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    })?;
    us.sort_by(f64::total_cmp);
    let single_s: f64 = us.iter().sum::<f64>() / 1e6;
    let t = Instant::now();
    decoder.batch_decode(inputs.view())?;
    let batch_s = t.elapsed().as_secs_f64();
    let report = json!({
        "decoder": "generative",
        "rows": n,
        "mean_output_bytes": bytes as f64 / n as f64,
        "single_thread_us": {"p50": percentile(&us, 50.0), "p95": percentile(&us, 95.0), "p99": percentile(&us, 99.0)},
        "single_thread_rows_per_s": n as f64 / single_s,
        "batch_rows_per_s": n as f64 / batch_s,
        "batch_threads": rayon::current_num_threads(),
        "speedup": single_s / batch_s,
    });
    println!("lwdec bench --decoder generative: {n} validation embeddings");
    println!(
        "one thread: p50 {:.0} us, p95 {:.0} us, p99 {:.0} us ({:.1} bytes per output)",
        percentile(&us, 50.0),
        percentile(&us, 95.0),
        percentile(&us, 99.0),
        bytes as f64 / n as f64
    );
    println!(
        "batch over {} threads: {:.1} rows/s, {:.2}x one thread",
        rayon::current_num_threads(),
        n as f64 / batch_s,
        single_s / batch_s
    );
    if as_json {
        println!("{report}");
    }
    Ok(())
}

fn bank_build(
    corpus: &CorpusArgs,
    out: &Path,
    exclude_validation: bool,
    options: BankBuildOptions,
) -> Result<()> {
    let mut phrases = read_lines(&corpus.phrases)?;
    let mut vectors = load_embeddings(&corpus.embeddings, corpus.scale.as_deref())?;
    if phrases.len() != vectors.nrows() {
        return Err(Error::InvalidArgument(format!(
            "{} phrases but {} embedding rows",
            phrases.len(),
            vectors.nrows()
        )));
    }
    if exclude_validation {
        let keep: Vec<usize> = (0..phrases.len())
            .filter(|&i| !is_validation(&phrases[i]))
            .collect();
        vectors = vectors.select(ndarray::Axis(0), &keep);
        phrases = keep
            .iter()
            .map(|&i| std::mem::take(&mut phrases[i]))
            .collect();
    }
    let bar = ProgressBar::new(phrases.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} {elapsed_precise}")
            .expect("static template"),
    );
    let started = Instant::now();
    let mut bank = PhraseBank::build(phrases, vectors.view(), &options, |p| match p {
        BuildProgress::Training { vectors } => {
            bar.set_message(format!("training on {vectors}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        BuildProgress::Adding { done, .. } => {
            bar.set_message("adding");
            bar.set_position(done as u64);
        }
    })?;
    bank.save(out)?;
    bar.finish_and_clear();
    let m = bank.manifest();
    println!(
        "built {} phrases, index {}, {:.1} MB in {} ({:.0} s)",
        m.count,
        m.index_spec,
        bank_bytes(out)? as f64 / 1e6,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Size on disk of a bank directory: the sum of its files.
fn bank_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        total += entry
            .metadata()
            .map_err(|e| Error::io(entry.path(), e))?
            .len();
    }
    Ok(total)
}

fn bank_info(dir: Option<&Path>, verify: bool) -> Result<()> {
    let dir = dir.map_or_else(PhraseBank::default_dir, Path::to_path_buf);
    let bank = PhraseBank::load(&dir)?;
    let m = bank.manifest();
    println!("bank        {}", dir.display());
    println!("phrases     {}", m.count);
    println!("dimension   {}", m.dimension);
    println!("encoder     {}", m.encoder);
    println!(
        "index       {} (nprobe {})",
        m.index_spec,
        m.nprobe.map_or("-".to_string(), |n| n.to_string())
    );
    println!(
        "size        {:.2} MB on disk",
        bank_bytes(&dir)? as f64 / 1e6
    );
    println!("checksums   ok (sha256 of {} files)", m.files.len());
    if !verify {
        return Ok(());
    }
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let (rows, refs): (Vec<usize>, Vec<String>) = sample
        .texts
        .iter()
        .enumerate()
        .filter(|(i, t)| bank.phrase(sample.bank_ids[*i]) == Some(t.as_str()))
        .map(|(i, t)| (i, t.clone()))
        .unzip();
    if rows.is_empty() {
        return Err(Error::InvalidArgument(
            "none of the bundled sample phrases is in this bank".into(),
        ));
    }
    let embeddings = sample.embeddings.select(ndarray::Axis(0), &rows);
    let config = DecoderConfig {
        method: AssemblyMethod::Greedy,
        cache: lightweight_decoder::config::CacheConfig {
            capacity: 0,
            ..Default::default()
        },
        ..DecoderConfig::default()
    };
    let decoder = PhraseBankDecoder::new(bank, config)?;
    println!(
        "self-recall@1 of {} sample phrases (decoded text equals the phrase):",
        rows.len()
    );
    for cosine in [1.0f32, 0.95, 0.8] {
        let noisy = perturb_rows(&embeddings, cosine, 42);
        let decoded = decoder.batch_decode(noisy.view())?;
        let hits = decoded
            .iter()
            .zip(&refs)
            .filter(|(d, r)| same_text(&d.text, r))
            .count();
        let label = if cosine >= 1.0 {
            "exact embeddings".to_string()
        } else {
            format!("noise to cosine {cosine:.2}")
        };
        println!(
            "  {label:<22} {:.2}% ({hits}/{})",
            100.0 * hits as f64 / refs.len() as f64,
            refs.len()
        );
    }
    Ok(())
}

fn demo(rows: usize, args: &DecoderArgs) -> Result<()> {
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let rows = rows.min(sample.texts.len());
    let decoder = build_decoder(args, decoder_config(args)?)?;
    let embeddings = sample.embeddings.slice(s![..rows, ..]).to_owned();
    let noisy = perturb_rows(&embeddings, 0.8, 7);
    let exact = decoder.batch_decode(embeddings.view())?;
    let perturbed = decoder.batch_decode(noisy.view())?;
    println!(
        "Decoding {rows} bundled all-mpnet-base-v2 embeddings of WordNet phrases with the bundled bank."
    );
    println!("Each row: the original text, the decoded text, and the text decoded after noise to cosine 0.80.\n");
    for i in 0..rows {
        let mark = |t: &str| {
            if same_text(t, &sample.texts[i]) {
                "="
            } else {
                "~"
            }
        };
        println!("original : {}", sample.texts[i]);
        println!(
            "decoded  : {} {} (confidence {:.2})",
            mark(&exact[i].text),
            exact[i].text,
            exact[i].confidence
        );
        println!(
            "noisy    : {} {} (confidence {:.2})\n",
            mark(&perturbed[i].text),
            perturbed[i].text,
            perturbed[i].confidence
        );
    }
    let same = |d: &[lightweight_decoder::Decoded]| {
        d.iter()
            .zip(&sample.texts)
            .filter(|(d, t)| same_text(&d.text, t))
            .count()
    };
    println!(
        "recovered exactly: {}/{rows} from exact embeddings, {}/{rows} from noisy ones (= same text, ~ different)",
        same(&exact),
        same(&perturbed)
    );
    demo_generator(rows, args)
}

/// The demo's second part: the bundled generative model alone on held-out validation
/// embeddings, then guided by the bank (the default) on text unlike WordNet that no bank holds.
fn demo_generator(rows: usize, args: &DecoderArgs) -> Result<()> {
    // alone: the bundled bank holds the validation phrases, a guide would copy them
    let alone = DecoderConfig {
        guide: GuideSettings::off(),
        ..DecoderConfig::default()
    };
    let generator = generative_decoder(args, &alone, None)?;
    let held_out = SampleSet::bundled(VALIDATION)?;
    let n = rows.min(held_out.texts.len());
    let config = generator.model().config();
    println!(
        "\nThe generative decoder ({} parameters, {:?}, depth {}) writes text byte by byte; \
         here alone, on {n} held-out phrases that training never saw:\n",
        config.parameter_count(),
        generator.model().precision(),
        config.depth
    );
    let decoded = generator.batch_decode(held_out.embeddings.slice(s![..n, ..]))?;
    let mut f1 = 0.0;
    for (d, reference) in decoded.iter().zip(&held_out.texts) {
        f1 += token_f1(&d.text, reference);
        println!("original : {reference}");
        println!("generated: {}\n", d.text);
    }
    println!("mean token F1 {:.3} over these rows", f1 / n.max(1) as f64);

    let config = decoder_config(args)?;
    if !config.guide.enabled() {
        return Ok(());
    }
    let bank = PhraseBankDecoder::new(load_bank(args.bank.as_deref())?, config.clone())?;
    let guided = generative_decoder(args, &config, Some(bank.shared_bank()))?;
    let unlike = SampleSet::bundled(OUT_OF_DOMAIN)?;
    let n = rows.min(unlike.texts.len());
    println!(
        "\nBy default it is guided by the bank's nearest phrases, which it weighs, copies from and \
         splices; here on texts unlike WordNet that no bank holds (samples/ood), the first {n} \
         of {}:\n",
        unlike.texts.len()
    );
    let nearest = bank.batch_decode(unlike.embeddings.view())?;
    let written = guided.batch_decode(unlike.embeddings.view())?;
    for ((b, g), reference) in nearest.iter().zip(&written).zip(&unlike.texts).take(n) {
        println!("original : {reference}");
        println!("bank     : {}", b.text);
        println!("guided   : {}\n", g.text);
    }
    let mean_f1 = |decoded: &[Decoded], rows: usize| {
        decoded
            .iter()
            .zip(&unlike.texts)
            .take(rows)
            .map(|(d, reference)| token_f1(&d.text, reference))
            .sum::<f64>()
            / rows.max(1) as f64
    };
    let all = unlike.texts.len();
    println!(
        "mean token F1, nearest bank phrase / guided generator: {:.3} / {:.3} over these rows, \
         {:.3} / {:.3} over all {all} (`--beam 8` writes better, slower)",
        mean_f1(&nearest, n),
        mean_f1(&written, n),
        mean_f1(&nearest, all),
        mean_f1(&written, all)
    );
    Ok(())
}

fn bench(queries: usize, as_json: bool, args: &DecoderArgs) -> Result<()> {
    if args.decoder == DecoderKind::Generative {
        return bench_generative(queries, as_json, args);
    }
    let mut config = decoder_config(args)?;
    config.cache.capacity = 0; // measure search + assembly, not cache hits
    let bank = load_bank(args.bank.as_deref())?;
    let decoder = PhraseBankDecoder::new(bank, config)?;
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let n = queries.clamp(1, sample.texts.len());
    let inputs: Array2<f32> =
        perturb_rows(&sample.embeddings.slice(s![..n, ..]).to_owned(), 0.95, 3);
    let dim = decoder.dim();
    let index = decoder.bank().index();
    let k = decoder.config().top_k;
    // warm up
    for row in inputs.rows().into_iter().take(50) {
        decoder.decode(row.as_slice().expect("contiguous"))?;
        index.search(row.as_slice().expect("contiguous"), k)?;
    }
    let mut raw_us = Vec::with_capacity(n);
    let mut decode_us = Vec::with_capacity(n);
    for row in inputs.rows() {
        let q = row.as_slice().expect("contiguous");
        let t = Instant::now();
        index.search(q, k)?;
        raw_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        decoder.decode(q)?;
        decode_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    raw_us.sort_by(f64::total_cmp);
    decode_us.sort_by(f64::total_cmp);
    let t = Instant::now();
    index.search(inputs.as_slice().expect("contiguous"), k)?;
    let raw_batch_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    decoder.batch_decode(inputs.view())?;
    let batch_s = t.elapsed().as_secs_f64();
    let sessions = SampleSet::bundled(SESSIONS_TEST)?;
    let boundaries = sessions.boundaries.clone().unwrap_or_default();
    let session_inputs = perturb_rows(&sessions.embeddings, 0.95, 4);
    let t = Instant::now();
    decoder.batch_decode_with_sessions(session_inputs.view(), &boundaries)?;
    let sessions_s = t.elapsed().as_secs_f64();
    let p = |v: &[f64], q: f64| percentile(v, q);
    let report = json!({
        "bank": decoder.bank().manifest().index_spec,
        "method": decoder.config().method,
        "top_k": k,
        "dim": dim,
        "threads": rayon::current_num_threads(),
        "single": {
            "queries": n,
            "decode_us": {"p50": p(&decode_us, 50.0), "p95": p(&decode_us, 95.0), "p99": p(&decode_us, 99.0)},
            "raw_search_us": {"p50": p(&raw_us, 50.0), "p95": p(&raw_us, 95.0), "p99": p(&raw_us, 99.0)},
            "overhead_ratio_p50": p(&decode_us, 50.0) / p(&raw_us, 50.0),
        },
        "batch": {
            "rows": n,
            "decode_rows_per_s": n as f64 / batch_s,
            "raw_search_rows_per_s": n as f64 / raw_batch_s,
        },
        "sessions": {
            "rows": sessions.texts.len(),
            "sessions": boundaries.len(),
            "decode_rows_per_s": sessions.texts.len() as f64 / sessions_s,
        },
    });
    println!(
        "lwdec bench: bank {} method {:?} top_k {k}, {} threads",
        report["bank"],
        decoder.config().method,
        report["threads"]
    );
    println!(
        "{:<28}{:>10}{:>10}{:>10}",
        "single query (us)", "p50", "p95", "p99"
    );
    for (name, v) in [("decode", &decode_us), ("raw FAISS search", &raw_us)] {
        println!(
            "{name:<28}{:>10.1}{:>10.1}{:>10.1}",
            p(v, 50.0),
            p(v, 95.0),
            p(v, 99.0)
        );
    }
    println!(
        "decode / raw search (p50)   {:>10.2}x",
        report["single"]["overhead_ratio_p50"]
            .as_f64()
            .unwrap_or(0.0)
    );
    println!(
        "batch of {n}: decode {:.0} rows/s, raw search {:.0} rows/s",
        n as f64 / batch_s,
        n as f64 / raw_batch_s
    );
    println!(
        "{} sessions ({} rows): {:.0} rows/s",
        boundaries.len(),
        sessions.texts.len(),
        sessions.texts.len() as f64 / sessions_s
    );
    if as_json {
        println!("{report}");
    }
    Ok(())
}
