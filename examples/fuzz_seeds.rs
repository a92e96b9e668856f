//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/`): small valid inputs
//! of every loader, which libFuzzer then mutates. Run from the repository root:
//! `cargo run --release --example fuzz_seeds` (the committed corpus was made this way).

use std::path::Path;

use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::generative::{
    GenerativeConfig, GenerativeModel, InferenceModel, Precision,
};
use lightweight_decoder::phrase_bank::{
    BankBuildOptions, PhraseList, INDEX_FILE, MANIFEST_FILE, PHRASES_FILE,
};
use lightweight_decoder::{DecoderConfig, PhraseBank};

#[path = "../tests/common/encoder.rs"]
#[allow(dead_code)]
mod tiny_encoder;

/// The fuzz targets' separator between the files of one input (`fuzz/fuzz_targets/common.rs`).
const SEPARATOR: &[u8] = b"\n\x00--lwdec-fuzz-file--\x00\n";

fn joined(files: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(f);
    }
    out
}

fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn npy(header: &str, body: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    bytes.extend(body);
    bytes
}

fn main() {
    // .npy: float32 3 x 4; int8 2 x 8 with its scales
    let f32_body: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    let f32_file = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
        &f32_body,
    );
    seed("npy", "f32", &f32_file);
    let i8_file = npy(
        "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 8), }",
        &[1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xfe, 3, 4, 5, 6, 7, 8],
    );
    let scales: Vec<u8> = [0.5f32, 0.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let scale_file = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        &scales,
    );
    seed("npy", "i8-with-scales", &joined(&[i8_file, scale_file]));
    let fortran = npy(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
        &f32_body,
    );
    seed("npy", "f32-fortran", &fortran);

    // banks: exact (20 phrases), IVF fast-scan (300), PQ fast-scan and IVF-PQ
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    for (name, spec, n) in [
        ("flat", "Flat", 20),
        ("ivf-fastscan", "IVF4,PQ16x4fs", 300),
        ("pq-fastscan", "PQ16x4fs", 100),
        ("ivf-pq", "IVF4,PQ16x4", 300),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("bank");
        let options = BankBuildOptions {
            index_spec: spec.into(),
            nprobe: 2,
            ..Default::default()
        };
        PhraseBank::build(
            s.texts[..n].to_vec(),
            s.embeddings.slice(ndarray::s![..n, ..]),
            &options,
            |_| {},
        )
        .unwrap()
        .save(&dir)
        .unwrap();
        let files: Vec<Vec<u8>> = [MANIFEST_FILE, INDEX_FILE, PHRASES_FILE]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect();
        seed("bank", name, &joined(&files));
        if name == "pq-fastscan" {
            // found by CI's fuzzing: a product quantizer of 0 sub-quantizers (FAISS divided
            // by it); "IPfs", the header (37 bytes), then the quantizer's d and M
            let mut forged = files.clone();
            forged[1][45..53].copy_from_slice(&0u64.to_le_bytes());
            seed("bank", "regression-pq-zero-subquantizers", &joined(&forged));
        }
    }

    // phrases: the first byte is (count << 1) | compressed
    let tmp = tempfile::tempdir().unwrap();
    let list = PhraseList::new(s.texts[..20].iter()).unwrap();
    for (name, compressed) in [("compressed-20", true), ("plain-20", false)] {
        let path = tmp.path().join(name);
        list.write(&path, compressed).unwrap();
        let mut bytes = vec![(20u8 << 1) | u8::from(compressed)];
        bytes.extend(std::fs::read(&path).unwrap());
        seed("phrases", name, &bytes);
    }

    // model files: a small model, Q8 and F32
    let config = GenerativeConfig {
        embed_dim: 32,
        hidden: 32,
        heads: 2,
        mlp: 32,
        depth: 1,
        max_len: 16,
        ..GenerativeConfig::default()
    };
    let model = GenerativeModel::new(config, 1).unwrap();
    for (name, precision) in [("q8", Precision::Q8), ("f32", Precision::F32)] {
        let path = tmp.path().join(name);
        InferenceModel::from_model(&model, precision)
            .unwrap()
            .save(&path)
            .unwrap();
        seed("gguf", name, &std::fs::read(&path).unwrap());
    }

    // configs: the decoder's default, the generator's, the shipped hybrid rule
    let decoder = serde_json::to_string_pretty(&DecoderConfig::default()).unwrap();
    seed("configs", "decoder-default", decoder.as_bytes());
    let generator = serde_json::to_string_pretty(&GenerativeConfig::default()).unwrap();
    seed("configs", "generator-default", generator.as_bytes());
    let hybrid = std::fs::read("docs/hybrid_default_config.json").unwrap();
    seed("configs", "decoder-hybrid-default", &hybrid);

    // the encoder folder: the tiny MPNet of the tests
    let dir = tmp.path().join("encoder");
    tiny_encoder::write(&dir);
    let files: Vec<Vec<u8>> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    seed("encoder", "tiny-mpnet", &joined(&files));
    println!("seed corpus written to fuzz/corpus/");
}
