//! The command line: `lwdec`'s global flags and its subcommands. The option groups several
//! subcommands share are in `options.rs`; each subcommand's own options sit in its file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lightweight_decoder::encoder::EncoderPrecision;
use lightweight_decoder::generative::Precision;
use lightweight_decoder::phrase_bank::{BankBuildOptions, NearDuplicates};

use crate::options::{finite_f32, CalibrationObjective, CorpusArgs, DecoderArgs, LabelledArgs};

#[derive(Parser)]
#[command(
    name = "lwdec",
    version,
    about = "Decode sentence embeddings back into text"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Precision of the sentence encoder wherever a command runs it: f32 (the reference),
    /// bf16 (needs AVX512-BF16), int8, or auto (bf16 where the CPU has it, else f32).
    #[arg(long, global = true, default_value = "auto", value_name = "PRECISION")]
    pub encoder_precision: EncoderPrecision,
}

#[derive(Subcommand)]
pub enum Command {
    /// Decode embeddings (N x D float32 .npy), or texts embedded with the encoder, to JSON
    /// lines, one per row, in row order.
    Decode {
        /// Input embeddings: N x D float32 .npy (or int8 with --scale).
        #[arg(long, required_unless_present_any = ["text", "texts"])]
        input: Option<PathBuf>,
        /// Per-row float32 scales when --input is int8.
        #[arg(long, requires = "input")]
        scale: Option<PathBuf>,
        /// A text to embed with the encoder and decode (repeatable; instead of --input). Each
        /// output line then has `input`, the text.
        #[arg(long = "text", value_name = "TEXT", conflicts_with = "input")]
        text: Vec<String>,
        /// More texts to embed and decode, after those of --text.
        #[arg(value_name = "TEXT", conflicts_with = "input")]
        texts: Vec<String>,
        /// First rows of sessions, comma-separated (e.g. 0,5,10); without it every row is its
        /// own session.
        #[arg(long, value_delimiter = ',')]
        boundaries: Option<Vec<usize>>,
        /// Output file (JSON lines); stdout when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// `text`: input and output side by side, with the confidence and the round-trip
        /// cosine; `jsonl`: one JSON object per row. Default: text when standard output is a
        /// terminal, JSON lines otherwise (a file, a pipe).
        #[arg(long, value_enum)]
        format: Option<crate::decode::OutputFormat>,
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
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u16).range(1..=2000))]
        rows: u16,
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
        #[arg(long, default_value_t = 1.0, value_parser = finite_f32)]
        noise_cosine: f32,
        /// Write the report as JSON here.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Write every decoded text as JSON lines here (decoder, row, text), for re-embedding.
        #[arg(long)]
        decoded: Option<PathBuf>,
        /// Also judge fluency, word repetition and BLEU's 95% interval with this language
        /// model (`.lm`; one decoding never uses: scripts/build_fluency_judge.sh).
        #[arg(long)]
        judge: Option<PathBuf>,
        /// Also report the round-trip cosine: each decoded text re-embedded by the encoder
        /// (the default one, or --encoder's, which turns this on) against its clean input.
        #[arg(long)]
        round_trip: bool,
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
        /// What the rule maximises: token F1 against the references, or the round-trip cosine
        /// of the chosen text re-embedded by the encoder (--encoder) against the input.
        #[arg(long, value_enum, default_value_t = CalibrationObjective::TokenF1)]
        objective: CalibrationObjective,
        /// Fit on every row at each of these cosines to its embedding (seeded noise; 1 = the
        /// clean rows), e.g. 1,0.9,0.8 for inputs as inexact as an upstream network's.
        #[arg(long, value_delimiter = ',', default_value = "1", value_parser = finite_f32)]
        noise_cosine: Vec<f32>,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
    /// Train the generative decoder (resumable; checkpoints and a JSONL log go to --out).
    Train(crate::train::TrainArgs),
    /// Export and inspect generative model files.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Embed the lines of a text file with the sentence encoder into an N x D float32 .npy
    /// (resumable: finished chunks are kept in OUT.parts/ until the merge).
    Embed(crate::embed::EmbedArgs),
    /// Build and query word n-gram language models (the decoders' model of English, and the
    /// evaluation's fluency judge).
    Lm(crate::lm::LmArgs),
    /// Show where the bank and models are found, and install them into the user data folder
    /// for projects that depend on the crate.
    Data(crate::data::DataArgs),
    /// Measure decode latency and throughput against the raw FAISS search; with --encoder, the
    /// sentence encoder's throughput beside PyTorch sentence-transformers.
    Bench {
        /// Single queries timed.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        queries: u32,
        /// Print the report as JSON too.
        #[arg(long)]
        json: bool,
        /// Interleaved runs of the decoder's measurements (single queries, then the batch,
        /// each beside the raw FAISS search of the same queries); ratios are their medians.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        #[command(flatten)]
        encoder: crate::bench_encoder::EncoderBenchArgs,
        #[command(flatten)]
        decoder: DecoderArgs,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
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
        /// The model file (default: the bundled model, or $LWDEC_MODEL).
        #[arg(long)]
        model: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum BankCommand {
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
        /// Leave out a phrase when a phrase before it that is kept lies at this cosine or
        /// closer (near-duplicates the encoder barely tells apart; off by default).
        #[arg(long, value_name = "COSINE", value_parser = finite_f32)]
        drop_near_duplicates: Option<f32>,
        /// With --drop-near-duplicates: the first ROWS phrases are always kept (a base bank
        /// whose ids must not move).
        #[arg(
            long,
            value_name = "ROWS",
            default_value_t = 0,
            requires = "drop_near_duplicates"
        )]
        keep_first: usize,
    },
    /// Add phrases (one per line) and their embeddings to a built bank, after its ids, with
    /// its index's training (a bank grown in stages).
    Extend {
        /// The bank to extend.
        #[arg(long)]
        bank: PathBuf,
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Output bank directory (default: the bank itself, replaced atomically).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave out a new phrase when a kept new phrase before it lies at this exact cosine
        /// or closer (off by default).
        #[arg(long, value_name = "COSINE", value_parser = finite_f32)]
        drop_near_duplicates: Option<f32>,
        /// With --drop-near-duplicates: the bank's own encoder (a model folder), which
        /// re-embeds the bank's phrases near a new one so that they are compared exactly too;
        /// without it only new phrases are compared with each other.
        #[arg(long, value_name = "DIR", requires = "drop_near_duplicates")]
        recheck_encoder: Option<PathBuf>,
        /// With --recheck-encoder: the bank's phrases whose code similarity to a new phrase
        /// reaches this are re-embedded.
        #[arg(
            long,
            value_name = "SIMILARITY",
            default_value_t = NearDuplicates::default().recheck_above,
            requires = "recheck_encoder",
            value_parser = finite_f32
        )]
        recheck_above: f32,
    },
    /// Show a bank's size, count and index kind; with --verify, measure self-recall@1.
    Info {
        /// Bank directory (default: the bundled bank, or $LWDEC_BANK_DIR).
        #[arg(long)]
        bank: Option<PathBuf>,
        /// Decode the bundled sample phrases found in the bank from their exact and noisy
        /// embeddings and report how often the phrase itself comes back.
        #[arg(long)]
        verify: bool,
    },
}
