//! The bundled sample embeddings (`samples/`): real phrases of the bank with their embeddings.
//!
//! Regenerate them with `scripts/make_samples.py`. A sample set `NAME` is the files
//! `NAME.txt` (one phrase per row), `NAME.i8.npy` + `NAME.scale.npy` (int8 rows and per-row
//! scales, embedding = i8 * scale), `NAME.ids.txt` (bank ids) and optionally
//! `NAME.boundaries.txt` (first row of each session).

use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::npy::load_embeddings;

/// Random phrases of the default bank, for the demo, self-recall checks, tests and benches.
pub const WORDNET_SAMPLE: &str = "wordnet_sample";
/// 2,000 random sentences of the broad corpus's train split, which the broad default bank
/// holds (`scripts/corpus/make_corpus_sample.py`): in-bank recovery on real sentences.
pub const CORPUS_SAMPLE: &str = "corpus_sample";
/// Sessions of related phrases (one WordNet synset each) used to choose context settings.
pub const SESSIONS_DEV: &str = "sessions_dev";
/// Sessions of related phrases held out from tuning, for reported figures.
pub const SESSIONS_TEST: &str = "sessions_test";
/// Phrases of the generator's held-out validation split (never trained on).
pub const VALIDATION: &str = "validation";
/// Texts unlike WordNet that no bank holds (crate descriptions, Python docstrings;
/// `scripts/make_ood_sample.sh`), for out-of-domain checks only: never trained on or banked.
pub const OUT_OF_DOMAIN: &str = "ood";

/// One sample set: texts, their embeddings, bank ids and optional session boundaries.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The phrase of each row.
    pub texts: Vec<String>,
    /// Embeddings, one row per phrase (not normalised).
    pub embeddings: Array2<f32>,
    /// Row of each phrase in the default bank (empty for a set the bank does not hold).
    pub bank_ids: Vec<usize>,
    /// First row of each session, when the set is grouped into sessions.
    pub boundaries: Option<Vec<usize>>,
}

/// The directory of the bundled samples: the crate's `samples/`.
pub fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

impl SampleSet {
    /// Loads the set `name` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let file = |ext: &str| dir.join(format!("{name}.{ext}"));
        let texts = read_lines(&file("txt"))?;
        let embeddings = load_embeddings(&file("i8.npy"), Some(&file("scale.npy")))?;
        let ids_path = file("ids.txt");
        let bank_ids = if ids_path.exists() {
            parse_numbers(&ids_path)?
        } else {
            Vec::new()
        };
        let boundaries_path = file("boundaries.txt");
        let boundaries = if boundaries_path.exists() {
            Some(parse_numbers(&boundaries_path)?)
        } else {
            None
        };
        if texts.len() != embeddings.nrows()
            || !(bank_ids.is_empty() || bank_ids.len() == texts.len())
        {
            return Err(Error::InvalidArgument(format!(
                "sample set {name}: {} texts, {} embeddings, {} ids",
                texts.len(),
                embeddings.nrows(),
                bank_ids.len()
            )));
        }
        Ok(SampleSet {
            texts,
            embeddings,
            bank_ids,
            boundaries,
        })
    }

    /// Loads the bundled set `name`.
    pub fn bundled(name: &str) -> Result<Self> {
        Self::load(&samples_dir(), name)
    }
}

/// Reads a UTF-8 text file as lines.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    Ok(text.lines().map(str::to_owned).collect())
}

fn parse_numbers(path: &Path) -> Result<Vec<usize>> {
    read_lines(path)?
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.trim().parse().map_err(|_| {
                Error::InvalidArgument(format!("{}:{}: not a number: {l:?}", path.display(), i + 1))
            })
        })
        .collect()
}
