//! Helpers shared by the integration tests: the bundled bank and samples.

#![allow(dead_code)]

use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::phrase_bank::CacheConfig;
use lightweight_decoder::phrase_bank::{BankBuildOptions, PhraseBank};
use lightweight_decoder::{AssemblyMethod, DecoderConfig, PhraseBankDecoder};

/// A decoder over the bundled default bank with the given method and no cache.
pub fn default_decoder(method: AssemblyMethod) -> PhraseBankDecoder {
    let config = DecoderConfig {
        method,
        cache: CacheConfig {
            capacity: 0,
            ..Default::default()
        },
        ..DecoderConfig::default()
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
pub mod generative;
