//! The command line's arguments: subcommands and the option groups they share.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use lightweight_decoder::eval::samples::read_lines;
use lightweight_decoder::generative::{DecodeOptions, Precision, Strategy};
use lightweight_decoder::phrase_bank::{BankBuildOptions, NearDuplicates};
use lightweight_decoder::{
    load_config, load_embeddings, AssemblyMethod, DecoderBuilder, DecoderConfig, Result,
};
use ndarray::Array2;

#[derive(Parser)]
#[command(
    name = "lwdec",
    version,
    about = "Decode sentence embeddings back into text"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which decoder to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecoderChoice {
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
pub struct CorpusArgs {
    /// Phrases, UTF-8, one per line.
    #[arg(long)]
    pub phrases: PathBuf,
    /// Embeddings: N x D float32 .npy, or int8 .npy together with --scale. Without it the
    /// phrases are embedded with the encoder (`lwdec embed` does the same resumably).
    #[arg(long)]
    pub embeddings: Option<PathBuf>,
    /// Per-row float32 scales for int8 embeddings.
    #[arg(long, requires = "embeddings")]
    pub scale: Option<PathBuf>,
    /// Encoder model folder, used without --embeddings (default: $LWDEC_ENCODER_DIR, else
    /// ~/.local/share/lightweight-decoder/all-mpnet-base-v2).
    #[arg(long, value_name = "DIR", conflicts_with = "embeddings")]
    pub encoder: Option<PathBuf>,
}

impl CorpusArgs {
    /// The phrases and their embeddings: read from --embeddings, or embedded with the encoder.
    pub fn load(&self) -> Result<(Vec<String>, Array2<f32>)> {
        let phrases = read_lines(&self.phrases)?;
        let vectors = match &self.embeddings {
            Some(path) => load_embeddings(path, self.scale.as_deref())?,
            None => {
                eprintln!(
                    "no --embeddings: embedding {} phrases with the encoder",
                    phrases.len()
                );
                crate::embed::embed_texts(self.encoder.as_deref(), &phrases)?
            }
        };
        if phrases.len() != vectors.nrows() {
            return Err(lightweight_decoder::Error::InvalidArgument(format!(
                "{} phrases but {} embedding rows",
                phrases.len(),
                vectors.nrows()
            )));
        }
        Ok((phrases, vectors))
    }
}

/// Embeddings with their reference texts, for evaluation and calibration.
#[derive(clap::Args, Clone)]
pub struct LabelledArgs {
    /// Input embeddings: N x D float32 .npy (or int8 with --scale).
    #[arg(long)]
    pub input: PathBuf,
    /// Per-row float32 scales when --input is int8.
    #[arg(long)]
    pub scale: Option<PathBuf>,
    /// Reference texts, one per row.
    #[arg(long)]
    pub reference: PathBuf,
    /// Use only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
}

impl LabelledArgs {
    /// The embeddings and their references (the first `--limit` rows).
    pub fn load(&self) -> Result<(Array2<f32>, Vec<String>)> {
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

/// Options shared by the commands that build decoders.
#[derive(clap::Args, Clone)]
pub struct DecoderArgs {
    /// Decoder to use.
    #[arg(long, value_enum, default_value_t = DecoderChoice::PhraseBank)]
    pub decoder: DecoderChoice,
    /// Bank directory (default: the bundled bank, or $LWDEC_BANK_DIR).
    #[arg(long)]
    pub bank: Option<PathBuf>,
    /// Decoder config (JSON, see `DecoderConfig`); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Assembly method: greedy, weighted, beam or context-aware.
    #[arg(long)]
    pub method: Option<AssemblyMethod>,
    /// Candidates retrieved (and reported) per input.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top_k: Option<u16>,
    /// Generative model file (default: the bundled model, or $LWDEC_MODEL).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Beam width for the generative decoder (1 = greedy).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub beam: u16,
    /// Minimum-Bayes-risk decoding for the generative decoder: the consensus of the greedy
    /// output and this many seeded samples (0 = off).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub mbr: u16,
    /// Sampling temperature of --mbr.
    #[arg(long, default_value_t = 0.6, value_parser = finite_f32)]
    pub mbr_temperature: f32,
    /// Generate from the embedding alone. By default the generative decoder (and the hybrid's
    /// generator) is retrieval-guided: the bank's nearest phrases (`--bank`) propose
    /// continuations mixed into its next-byte distribution, with the config's `guide` settings
    /// (`GuideSettings::default()`, measured best with `--beam 8`). Without a config, the
    /// hybrid's rule then never lets the generator override the bank
    /// (`DecoderConfig::without_guide`).
    #[arg(long)]
    pub no_guide: bool,
    /// Verified decoding: re-embed the decoder's answer and its alternatives (the bank's top
    /// candidates, the hybrid's generated text) with the encoder and keep the closest to the
    /// input; its cosine is `roundtrip_cosine` and the confidence.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: improve the chosen text by a beam search over word edits, judged by the
    /// encoder for meaning and by the model of English (--language-model) for fluency.
    #[arg(long, requires = "verify")]
    pub refine: bool,
    /// Encoder calls per input that --refine may spend (default 64: `RefineSettings`).
    #[arg(long, requires = "refine", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub budget: Option<u32>,
    /// Weight of the generator's mean log-prob per byte given the input against the cosine
    /// in --refine's objective (default 0: off; the language model judges fluency).
    #[arg(long, requires = "refine", value_parser = finite_f32)]
    pub fluency_weight: Option<f32>,
    /// Texts --refine keeps per input between rounds (default 2; 1 is a hill climb).
    #[arg(long, requires = "refine", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub refine_beam: Option<u16>,
    /// Weight of the language model's mean log10 probability per token against the cosine
    /// in --refine's objective (default 0.015).
    #[arg(long, requires = "refine", value_parser = finite_f32)]
    pub lm_weight: Option<f32>,
    /// How far --refine's edits may fall below the starting text's fluency (the language
    /// model's mean log10 probability per token; default 0.6).
    #[arg(long, requires = "refine", value_parser = finite_f32)]
    pub fluency_slack: Option<f32>,
    /// The fluency --refine's edits may never fall below (default -2.9, about the 5th
    /// percentile of held-out real sentences).
    #[arg(long, requires = "refine", allow_hyphen_values = true, value_parser = finite_f32)]
    pub fluency_floor: Option<f32>,
    /// The model of English for --refine (default: the bundled model/english.lm, or
    /// $LWDEC_LANGUAGE_MODEL).
    #[arg(long, requires = "refine")]
    pub language_model: Option<PathBuf>,
    /// Edits re-embedded per input and round of --refine (default 8).
    #[arg(long, requires = "refine", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub per_round: Option<u16>,
    /// --refine edits only with the candidates' words, not the common function words.
    #[arg(long, requires = "refine")]
    pub no_function_words: bool,
    /// Bank candidates pooled per input by --verify.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub verify_top_k: u16,
    /// Of those, the best by the bank's own score that --verify re-embeds (the rest are
    /// refinement's material only).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub reembed_top_k: Option<u16>,
    /// Encoder model folder, for texts and --verify (default: $LWDEC_ENCODER_DIR, else
    /// ~/.local/share/lightweight-decoder/all-mpnet-base-v2).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
}

impl DecoderArgs {
    /// The settings: `--config` (or the defaults) with the flags applied, validated.
    pub fn decoder_config(&self) -> Result<DecoderConfig> {
        let mut config = match &self.config {
            Some(path) => load_config(path)?,
            None => DecoderConfig::default(),
        };
        if let Some(m) = self.method {
            config.method = m;
        }
        if let Some(k) = self.top_k {
            config.top_k = usize::from(k);
        }
        if self.no_guide {
            config = config.without_guide();
        }
        config.validate()?;
        Ok(config)
    }

    /// The generator's decoding options from `--beam` and `--mbr`.
    pub fn decode_options(&self) -> DecodeOptions {
        let strategy = if self.mbr > 0 {
            Strategy::Mbr {
                samples: usize::from(self.mbr),
                temperature: self.mbr_temperature,
                seed: 0,
            }
        } else if self.beam > 1 {
            Strategy::Beam {
                width: usize::from(self.beam),
            }
        } else {
            Strategy::Greedy
        };
        DecodeOptions {
            strategy,
            ..DecodeOptions::default()
        }
    }

    /// A builder with the bank, the model, the settings and the decoding options.
    pub fn builder(&self) -> Result<DecoderBuilder> {
        Ok(DecoderBuilder::new()
            .bank_dir(self.bank.clone())
            .model_path(self.model.clone())
            .language_model_path(self.language_model.clone())
            .config(self.decoder_config()?)
            .decode_options(self.decode_options()))
    }
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

/// What `lwdec calibrate` fits the hybrid's rule to maximise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibrationObjective {
    /// Mean token F1 of the chosen text against the reference.
    TokenF1,
    /// Mean round-trip cosine: the chosen text re-embedded, against the input.
    RoundTrip,
}

/// A number flag's value: a finite `f32` (NaN and infinities are refused when the command line
/// is read, before anything loads).
pub fn finite_f32(text: &str) -> std::result::Result<f32, String> {
    let v: f32 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text:?} is not a finite number"))
    }
}
