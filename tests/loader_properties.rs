//! Property tests of every loader (issue 13): `.npy` arrays, bank directories and their
//! manifests, GGUF model files and JSON configs, and (issue 28) the encoder folder (config,
//! tokenizer, safetensors header) and the compressed phrase file, fed random bytes and random
//! corruptions of valid files. Each must answer with a value or an `Error`, never panic, abort or hang.
//! Bounded: a fixed number of cases each, seeded by proptest (failures are kept in
//! `proptest-regressions/` and replayed first).

use std::path::Path;
use std::sync::OnceLock;

use lightweight_decoder::encoder::{Encoder, MpnetEncoder};
use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::generative::{
    GenerativeConfig, GenerativeModel, InferenceModel, Precision,
};
use lightweight_decoder::phrase_bank::{
    BankBuildOptions, FileDigest, Manifest, PhraseList, INDEX_FILE, MANIFEST_FILE, PHRASES_FILE,
};
use lightweight_decoder::{load_embeddings, DecoderConfig, PhraseBank};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

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

/// The tiny encoder folder's files (issue 28): (name, bytes).
fn valid_encoder() -> &'static Vec<(&'static str, Vec<u8>)> {
    static FILES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        common::encoder::write(dir.path());
        ["config.json", "tokenizer.json", "model.safetensors"]
            .into_iter()
            .map(|name| (name, std::fs::read(dir.path().join(name)).unwrap()))
            .collect()
    })
}

/// Loads the encoder folder in `dir`; a loaded encoder must embed (or refuse) without a panic
/// and give finite unit rows when it succeeds.
fn load_and_embed(dir: &Path) -> Result<(), TestCaseError> {
    if let Ok(e) = MpnetEncoder::load(dir) {
        if let Ok(rows) = e.embed(&["the big dog runs", ""]) {
            prop_assert!(rows.iter().all(|v| v.is_finite()));
        }
    }
    Ok(())
}

/// A safetensors header entry: a tensor name the model reads (or another), a type, a shape
/// and a byte range, each sometimes consistent and sometimes not.
fn header_entry() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "embeddings.word_embeddings.weight",
            "mpnet.embeddings.position_embeddings.weight",
            "encoder.layer.0.attention.attn.q.weight",
            "encoder.relative_attention_bias.weight",
            "pooler.dense.weight",
            "__metadata__",
        ]),
        prop::sample::select(vec!["F32", "F16", "BF16", "I64", "U8", "X9"]),
        prop::collection::vec(
            prop::sample::select(vec![0usize, 1, 2, 8, 16, 40, 1 << 20, usize::MAX]),
            0..4,
        ),
        any::<u64>(),
        0u64..4096,
    )
        .prop_map(|(name, dtype, shape, start, len)| {
            let start = start % 4096;
            format!(
                r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{start},{}]}}"#,
                start.saturating_add(len)
            )
        })
}

/// `bytes` (a valid phrases file, or not) as a bank's phrases, with the digests and the
/// manifest re-sealed around it and `count` phrases claimed.
fn bank_with_phrases(dir: &Path, phrases: &[u8], count: usize) {
    for (name, bytes) in valid_bank() {
        write(dir, name, bytes);
    }
    write(dir, PHRASES_FILE, phrases);
    let mut m: Manifest = serde_json::from_slice(&valid_bank()[0].1).unwrap();
    m.count = count;
    m.files.insert(
        PHRASES_FILE.to_string(),
        FileDigest::of_file(&dir.join(PHRASES_FILE)).unwrap(),
    );
    write(dir, MANIFEST_FILE, m.to_json().unwrap().as_bytes());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn encoder_folder_loading_never_panics(
        which in 0usize..3,
        edits in edits(),
        cut in truncation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, bytes)) in valid_encoder().iter().enumerate() {
            let bytes = if i == which { corrupt(bytes, &edits, cut) } else { bytes.clone() };
            write(dir.path(), name, &bytes);
        }
        write(dir.path(), "sentence_bert_config.json", common::encoder::SBERT.as_bytes());
        let unchanged = edits.is_empty() && cut.is_none();
        if unchanged {
            prop_assert!(MpnetEncoder::load(dir.path()).is_ok());
        }
        load_and_embed(dir.path())?;
    }

    #[test]
    fn encoder_config_values_never_panic(
        key in prop::sample::select(vec![
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings", "layer_norm_eps",
            "relative_attention_num_buckets", "pad_token_id", "hidden_act",
        ]),
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            (0u64..70_000).prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| serde_json::to_string(&v).unwrap_or("0".into())),
            Just("-1e308".to_string()),
            Just("\"relu\"".to_string()),
            Just("null".to_string()),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        common::encoder::write(dir.path());
        let mut config: serde_json::Value = serde_json::from_str(common::encoder::CONFIG).unwrap();
        config[key] = serde_json::from_str(&value).unwrap();
        write(dir.path(), "config.json", config.to_string().as_bytes());
        load_and_embed(dir.path())?;
    }

    #[test]
    fn safetensors_headers_never_panic_or_allocate_by_their_claims(
        entries in prop::collection::vec(header_entry(), 0..5),
        body in 0usize..4096,
        header_len_lie in prop::option::of(any::<u64>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        common::encoder::write(dir.path());
        let header = format!("{{{}}}", entries.join(","));
        let len = header_len_lie.unwrap_or(header.len() as u64);
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0u8; body]);
        write(dir.path(), "model.safetensors", &bytes);
        prop_assert!(MpnetEncoder::load(dir.path()).is_err());
    }

    #[test]
    fn tokenizer_files_never_panic(text in "\\PC{0,300}") {
        let dir = tempfile::tempdir().unwrap();
        common::encoder::write(dir.path());
        write(dir.path(), "tokenizer.json", text.as_bytes());
        prop_assert!(MpnetEncoder::load(dir.path()).is_err() || serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }

    #[test]
    fn compressed_phrase_files_never_panic(
        lines in prop::collection::vec("[a-z ]{0,12}", 0..40),
        newlines in 0usize..100_000,
        count in 1usize..60,
        edits in edits(),
        cut in truncation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = lines.join("\n").into_bytes();
        text.extend(std::iter::repeat_n(b'\n', newlines));
        let valid = zstd::bulk::compress(&text, 3).unwrap();
        let bytes = corrupt(&valid, &edits, cut);
        // the reader itself, with any claimed count
        let path = write(dir.path(), "p.zst", &bytes);
        if let Ok(list) = PhraseList::read(&path, true, count) {
            prop_assert_eq!(list.len(), count);
        }
        // and in a bank (whose index holds 20 vectors) with the manifest re-sealed around it
        let bank = dir.path().join("bank");
        std::fs::create_dir(&bank).unwrap();
        bank_with_phrases(&bank, &bytes, 20);
        if let Ok(bank) = PhraseBank::load(&bank) {
            prop_assert_eq!(bank.len(), 20);
        }
    }
}
