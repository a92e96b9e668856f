//! Helpers shared by the integration tests: the bundled bank and samples.

#![allow(dead_code)]

#[cfg(feature = "encoder")]
pub mod encoder;
#[cfg(feature = "train")]
pub mod generative;

use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::phrase_bank::CacheConfig;
use lightweight_decoder::phrase_bank::{BankBuildOptions, PhraseBank};
use lightweight_decoder::{AssemblyMethod, PhraseBankDecoder, PhraseBankSettings};

/// A decoder over the bundled default bank with the given method and no cache.
pub fn default_decoder(method: AssemblyMethod) -> PhraseBankDecoder {
    let config = PhraseBankSettings {
        method,
        cache: CacheConfig {
            capacity: 0,
            ..Default::default()
        },
        ..PhraseBankSettings::default()
    };
    PhraseBankDecoder::with_default_bank(config).expect("the bundled bank loads")
}

/// The bundled random sample of the default bank.
pub fn sample() -> SampleSet {
    SampleSet::bundled(WORDNET_SAMPLE).expect("bundled sample loads")
}

/// A small exact bank built from the first `n` sample phrases and their real embeddings.
pub fn small_bank(n: usize) -> PhraseBank {
    let s = sample();
    PhraseBank::build(
        s.texts[..n].to_vec(),
        s.embeddings.slice(ndarray::s![..n, ..]),
        &BankBuildOptions::default(),
        |_| {},
    )
    .expect("small bank builds")
}

/// Index of the largest value.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap_or(0)
}

/// Largest absolute difference between two tables of logits.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// Writes a `.npy` file with the given header dictionary and raw body, as numpy lays it out
/// (version 1, header padded to a multiple of 64 bytes): for files whose header lies.
pub fn write_raw_npy(path: &std::path::Path, header: &str, body: &[u8]) {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h.as_bytes());
    bytes.extend(body);
    std::fs::write(path, bytes).unwrap();
}
