//! Chooses the `context_aware` settings on the dev sessions (`samples/sessions_dev.*`).
//!
//! Sweeps coherence weight and margin at several noise levels and prints the exact-match rate
//! of each against greedy. The held-out `sessions_test` set is only used by the test suite.
//! Run with `cargo run --release --example tune_context`.

use lightweight_decoder::config::CacheConfig;
use lightweight_decoder::eval::{exact_match_rate, perturb_rows};
use lightweight_decoder::samples::{SampleSet, SESSIONS_DEV};
use lightweight_decoder::{AssemblyMethod, DecoderConfig, PhraseBank, PhraseBankDecoder, Result};

fn main() -> Result<()> {
    let s = SampleSet::bundled(SESSIONS_DEV)?;
    let boundaries = s.boundaries.clone().unwrap_or_default();
    let noise = [0.6f32, 0.5, 0.4];
    let inputs: Vec<_> = noise
        .iter()
        .enumerate()
        .map(|(i, &c)| perturb_rows(&s.embeddings, c, 1000 + i as u64))
        .collect();
    let base = DecoderConfig {
        cache: CacheConfig {
            capacity: 0,
            ..Default::default()
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
        method: AssemblyMethod::Greedy,
        ..base.clone()
    })?;
    println!("noise cosines {noise:?}");
    println!("greedy                         {greedy:.4?}");
    for weight in [0.1f32, 0.25, 0.5, 1.0] {
        for margin in [0.02f32, 0.04, 0.08] {
            let mut config = base.clone();
            config.method = AssemblyMethod::ContextAware;
            config.context.coherence_weight = weight;
            config.context.max_margin = margin;
            let rates = run(&config)?;
            println!("weight {weight:<5} margin {margin:<5}     {rates:.4?}");
        }
    }
    Ok(())
}
