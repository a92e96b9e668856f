//! The option groups several subcommands share (the decoder's options, the corpus, labelled
//! embeddings) and the checks of their values. It names no subcommand, so every subcommand's
//! file can use it without a cycle.

use std::path::PathBuf;

use clap::ValueEnum;
use lightweight_decoder::eval::samples::read_lines;
use lightweight_decoder::generative::DecodeOptions;
use lightweight_decoder::{
    load_config, load_embeddings, AssemblyMethod, DecoderBuilder, DecoderConfig, Result,
    VerifySettings,
};
use ndarray::Array2;

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
    /// Bank candidates pooled per input by --verify (default 10, or the config's
    /// `verify.pool_top_k`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub verify_top_k: Option<u16>,
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
            config.phrase_bank.method = m;
        }
        if let Some(k) = self.top_k {
            config.phrase_bank.top_k = usize::from(k);
        }
        if self.no_guide {
            config = config.without_guide();
        }
        config.validate()?;
        Ok(config)
    }

    /// The settings of `--verify` and `--refine`: the config's `verify` section (refinement
    /// on with `--refine`, [`DecoderConfig::verify_settings`]) with the flags applied,
    /// validated.
    pub fn verify_settings(&self) -> Result<VerifySettings> {
        let mut verify = self.decoder_config()?.verify_settings(self.refine);
        if let Some(k) = self.verify_top_k {
            verify.pool_top_k = usize::from(k);
        }
        if let Some(k) = self.reembed_top_k {
            verify.reembed_top_k = usize::from(k);
        }
        if let Some(refine) = verify.refine.as_mut() {
            let set = |value: &mut f32, flag: Option<f32>| *value = flag.unwrap_or(*value);
            if let Some(b) = self.budget {
                refine.budget = b as usize;
            }
            if let Some(n) = self.per_round {
                refine.per_round = usize::from(n);
            }
            if let Some(n) = self.refine_beam {
                refine.beam = usize::from(n);
            }
            set(&mut refine.fluency_weight, self.fluency_weight);
            set(&mut refine.language_model_weight, self.lm_weight);
            set(&mut refine.fluency_slack, self.fluency_slack);
            set(&mut refine.fluency_floor, self.fluency_floor);
            if self.no_function_words {
                refine.function_words = false;
            }
        }
        verify.validate()?;
        Ok(verify)
    }

    /// The generator's decoding options from `--beam`, `--mbr` and `--mbr-temperature`.
    pub fn decode_options(&self) -> Result<DecodeOptions> {
        DecodeOptions::with_search(
            usize::from(self.beam),
            usize::from(self.mbr),
            self.mbr_temperature,
        )
    }

    /// A builder with the bank, the model, the settings and the decoding options.
    pub fn builder(&self) -> Result<DecoderBuilder> {
        Ok(DecoderBuilder::new()
            .bank_dir(self.bank.clone())
            .model_path(self.model.clone())
            .language_model_path(self.language_model.clone())
            .config(self.decoder_config()?)
            .decode_options(self.decode_options()?))
    }
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
