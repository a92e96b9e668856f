//! Chooses the `context_aware` settings on the dev sessions (`samples/sessions_dev.*`).
//!
//! Sweeps coherence weight and margin at several noise levels and prints the exact-match rate
//! of each against greedy. The held-out `sessions_test` set is only used by the test suite.
//! Run with `cargo run --release --example tune_context`.

use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_DEV};
use lightweight_decoder::eval::{exact_match_rate, perturb_rows};
use lightweight_decoder::phrase_bank::CacheConfig;
use lightweight_decoder::{AssemblyMethod, DecoderConfig, PhraseBank, PhraseBankDecoder, Result};

fn main() -> Result<()> {
    let s = SampleSet::bundled(SESSIONS_DEV)?;
    let boundaries = s.boundaries.clone().unwrap_or_default();
    let noise = [0.5f32, 0.4, 0.3, 0.25];
    let inputs: Vec<_> = noise
        .iter()
        .enumerate()
        .map(|(i, &c)| perturb_rows(&s.embeddings, c, 1000 + i as u64))
        .collect();
    let base = DecoderConfig {
        phrase_bank: lightweight_decoder::PhraseBankSettings {
            cache: CacheConfig {
                capacity: 0,
                ..Default::default()
            },
            ..lightweight_decoder::PhraseBankSettings::default()
        },
        ..DecoderConfig::default()
    };
    let run = |config: &DecoderConfig| -> Result<Vec<f64>> {
        let d = PhraseBankDecoder::new(PhraseBank::load_default()?, config.clone())?;
        inputs
            .iter()
            .map(|x| exact_match_rate(&d, x.view(), &boundaries, &s.texts))
            .collect()
    };
    let greedy = run(&DecoderConfig {
        phrase_bank: lightweight_decoder::PhraseBankSettings {
            method: AssemblyMethod::Greedy,
            ..base.clone().phrase_bank.clone()
        },
        ..base.clone()
    })?;
    println!("noise cosines {noise:?}");
    println!("greedy                                    {greedy:.4?}");
    for weight in [5.0f32, 10.0, 15.0, 20.0] {
        for margin in [0.03f32, 0.06] {
            for penalty in [0.02f32, 0.1] {
                let mut config = base.clone();
                config.phrase_bank.method = AssemblyMethod::ContextAware;
                config.phrase_bank.context.prior_strength = weight;
                config.phrase_bank.context.max_margin = margin;
                config.phrase_bank.context.repetition_penalty = penalty;
                let rates = run(&config)?;
                println!("prior {weight:<5} margin {margin:<5} penalty {penalty:<5} {rates:.4?}");
            }
        }
    }
    Ok(())
}
