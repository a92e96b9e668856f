//! Property tests of every loader (issue 13): `.npy` arrays, bank directories and their
//! manifests, GGUF model files and JSON configs, fed random bytes and random corruptions of
//! valid files. Each must answer with a value or an `Error`, never panic, abort or hang.
//! Bounded: a fixed number of cases each, seeded by proptest (failures are kept in
//! `proptest-regressions/` and replayed first).

use std::path::Path;
use std::sync::OnceLock;

use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::generative::{
    GenerativeConfig, GenerativeModel, InferenceModel, Precision,
};
use lightweight_decoder::phrase_bank::{BankBuildOptions, INDEX_FILE, MANIFEST_FILE, PHRASES_FILE};
use lightweight_decoder::{load_embeddings, DecoderConfig, PhraseBank};
use proptest::prelude::*;

mod common;

/// A valid small float32 `.npy` (3 x 4).
fn valid_npy() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        ndarray_npy::write_npy(&path, &ndarray::Array2::<f32>::ones((3, 4))).unwrap();
        std::fs::read(path).unwrap()
    })
}

/// The files of a valid bank of 20 sample phrases: (name, bytes).
fn valid_bank() -> &'static Vec<(&'static str, Vec<u8>)> {
    static FILES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank");
        PhraseBank::build(
            s.texts[..20].to_vec(),
            s.embeddings.slice(ndarray::s![..20, ..]),
            &BankBuildOptions::default(),
            |_| {},
        )
        .unwrap()
        .save(&path)
        .unwrap();
        [MANIFEST_FILE, INDEX_FILE, PHRASES_FILE]
            .into_iter()
            .map(|name| (name, std::fs::read(path.join(name)).unwrap()))
            .collect()
    })
}

/// A valid small model file (hidden 32, depth 1), Q8.
fn valid_model() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let config = GenerativeConfig {
            embed_dim: 32,
            hidden: 32,
            heads: 2,
            mlp: 32,
            depth: 1,
            max_len: 16,
            ..GenerativeConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let model = GenerativeModel::new(config, 1).unwrap();
        InferenceModel::from_model(&model, Precision::Q8)
            .unwrap()
            .save(&path)
            .unwrap();
        std::fs::read(path).unwrap()
    })
}

/// `bytes` with the given (position, value) edits (positions taken modulo the length) and cut
/// to `keep` of its length when `truncate`.
fn corrupt(bytes: &[u8], edits: &[(usize, u8)], truncate: Option<f64>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if !out.is_empty() {
        for &(at, value) in edits {
            let n = out.len();
            out[at % n] = value;
        }
    }
    if let Some(keep) = truncate {
        out.truncate((out.len() as f64 * keep) as usize);
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)
}

fn truncation() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(0.0f64..1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn npy_loading_never_panics(
        edits in edits(),
        cut in truncation(),
        header in "\\{'descr': '(<f4|\\|i1|<f8)', 'fortran_order': (False|True), 'shape': \\(([0-9]{1,20}, ?){0,3}\\), \\}",
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.npy", &corrupt(valid_npy(), &edits, cut));
        if let Ok(a) = load_embeddings(&path, None) {
            prop_assert_eq!(a.len(), a.nrows() * a.ncols());
        }
        // a made-up header over a random body
        let path = dir.path().join("b.npy");
        common::write_raw_npy(&path, &header, &body);
        let scale = write(dir.path(), "s.npy", valid_npy());
        let _ = load_embeddings(&path, None);
        let _ = load_embeddings(&path, Some(&scale));
    }

    #[test]
    fn bank_loading_never_panics(
        which in 0usize..3,
        edits in edits(),
        cut in truncation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, bytes)) in valid_bank().iter().enumerate() {
            let bytes = if i == which { corrupt(bytes, &edits, cut) } else { bytes.clone() };
            write(dir.path(), name, &bytes);
        }
        let unchanged = edits.is_empty() && cut.is_none();
        let loaded = PhraseBank::load(dir.path());
        if unchanged {
            prop_assert!(loaded.is_ok());
        }
    }

    #[test]
    fn model_loading_never_panics(edits in edits(), cut in truncation()) {
        let dir = tempfile::tempdir().unwrap();
        let bytes = corrupt(valid_model(), &edits, cut);
        let path = write(dir.path(), "m.gguf", &bytes);
        let loaded = InferenceModel::load(&path);
        if bytes == valid_model() {
            prop_assert!(loaded.is_ok());
        }
    }

    #[test]
    fn config_parsing_never_panics(
        edits in prop::collection::vec((any::<usize>(), 32u8..127), 0..6),
        cut in truncation(),
        text in "\\PC{0,200}",
    ) {
        let valid = serde_json::to_string_pretty(&DecoderConfig::default()).unwrap();
        let mutated = String::from_utf8_lossy(&corrupt(valid.as_bytes(), &edits, cut)).into_owned();
        let parsed = DecoderConfig::from_json(&mutated);
        if mutated == valid {
            prop_assert!(parsed.is_ok());
        }
        let _ = DecoderConfig::from_json(&text);
    }
}
