//! Criterion benches of the generative decoder: greedy decoding of one validation embedding
//! (at most 96 bytes) on one thread, per precision, and a batch over every core.
//!
//! Uses the bundled model when present (`model/generative.q4.gguf` or `$LWDEC_MODEL`); until one
//! is bundled, a seeded untrained model, which runs to the 96-byte limit: the worst case.
//! With the bundled model and bank, also retrieval-guided greedy and beam-8 decoding.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lightweight_decoder::eval::samples::{SampleSet, VALIDATION};
use lightweight_decoder::generative::{
    DecodeOptions, GenerativeConfig, GenerativeModel, GuideSettings, InferenceModel, Precision,
    Strategy,
};
use lightweight_decoder::{Decoder, GenerativeDecoder};

fn options() -> DecodeOptions {
    DecodeOptions {
        strategy: Strategy::Greedy,
        stop_on_repeated_words: 0,
        max_len: 96,
    }
}

fn decoders() -> Vec<(String, GenerativeDecoder)> {
    if let Ok(d) = GenerativeDecoder::with_default_model(options()) {
        return vec![("bundled".into(), d)];
    }
    let model = GenerativeModel::new(GenerativeConfig::default(), 1).expect("model");
    [Precision::F32, Precision::Q8, Precision::Q4]
        .into_iter()
        .map(|p| {
            let m = InferenceModel::from_model(&model, p).expect("quantise");
            (
                format!("untrained_{p:?}"),
                GenerativeDecoder::new(m, options()),
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let sample = SampleSet::bundled(VALIDATION).expect("bundled validation sample");
    let rows: Vec<Vec<f32>> = sample
        .embeddings
        .rows()
        .into_iter()
        .take(64)
        .map(|r| r.to_vec())
        .collect();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let mut group = c.benchmark_group("generative");
    group.sample_size(10);
    for (name, d) in decoders() {
        let mut i = 0;
        group.bench_function(format!("greedy_one_thread_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                one_thread.install(|| d.decode(&rows[i]).expect("decode"))
            })
        });
    }
    // retrieval-guided decoding with the bundled bank (a quality mode): greedy and beam 8
    if let Ok(bank) = lightweight_decoder::PhraseBank::load_default() {
        let bank = std::sync::Arc::new(bank);
        for (name, strategy) in [
            ("guided_greedy", Strategy::Greedy),
            ("guided_beam8", Strategy::Beam { width: 8 }),
        ] {
            let options = DecodeOptions {
                strategy,
                ..options()
            };
            let Ok(d) = GenerativeDecoder::with_default_model(options) else {
                break;
            };
            let d = d
                .with_guide(bank.clone(), GuideSettings::default())
                .expect("fitted settings are valid");
            let mut i = 0;
            group.bench_function(format!("{name}_one_thread_bundled"), |b| {
                b.iter(|| {
                    i = (i + 1) % rows.len();
                    one_thread.install(|| d.decode(&rows[i]).expect("decode"))
                })
            });
        }
    }
    group.finish();
    let batch = sample.embeddings.slice(ndarray::s![..32, ..]).to_owned();
    let mut group = c.benchmark_group("generative_batch32");
    group.sample_size(10);
    group.throughput(Throughput::Elements(32));
    if let Some((name, d)) = decoders().into_iter().last() {
        group.bench_function(format!("batch_decode_{name}"), |b| {
            b.iter(|| d.batch_decode(batch.view()).expect("decode"))
        });
    }
    group.finish();
}

criterion_group!(generative, benches);
criterion_main!(generative);
