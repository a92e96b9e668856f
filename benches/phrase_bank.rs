//! Criterion benches of the phrase-bank decoder on the bundled default bank.
//!
//! Inputs are bundled sample embeddings perturbed to cosine 0.95 (realistic upstream noise); the
//! cache is off so every decode searches. `raw_faiss_search` times the bank's index alone on the
//! same queries, so the decoder's overhead reads as a ratio.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_TEST, WORDNET_SAMPLE};
use lightweight_decoder::phrase_bank::CacheConfig;
use lightweight_decoder::{AssemblyMethod, Decoder, PhraseBankDecoder, PhraseBankSettings};

fn decoder(method: AssemblyMethod) -> PhraseBankDecoder {
    let config = PhraseBankSettings {
        method,
        cache: CacheConfig {
            capacity: 0,
            ..Default::default()
        },
        ..PhraseBankSettings::default()
    };
    PhraseBankDecoder::with_default_bank(config).expect("bundled bank")
}

fn benches(c: &mut Criterion) {
    let sample = SampleSet::bundled(WORDNET_SAMPLE).expect("bundled sample");
    let inputs = perturb_rows(&sample.embeddings, 0.95, 1);
    let rows: Vec<Vec<f32>> = inputs.rows().into_iter().map(|r| r.to_vec()).collect();
    let d = decoder(AssemblyMethod::ContextAware);
    let k = d.config().top_k;

    let mut single = c.benchmark_group("single");
    let mut i = 0;
    single.bench_function("raw_faiss_search", |b| {
        b.iter(|| {
            i = (i + 1) % rows.len();
            d.bank().search_raw(&rows[i], k).unwrap()
        })
    });
    for method in [
        AssemblyMethod::Greedy,
        AssemblyMethod::ContextAware,
        AssemblyMethod::Weighted,
        AssemblyMethod::Beam,
    ] {
        let dm = decoder(method);
        let mut i = 0;
        single.bench_function(format!("decode_{method:?}"), |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                dm.decode(&rows[i]).unwrap()
            })
        });
    }
    single.finish();

    let batch = inputs.slice(ndarray::s![..256, ..]).to_owned();
    let mut group = c.benchmark_group("batch256");
    group.throughput(Throughput::Elements(256));
    group.sample_size(20);
    group.bench_function("raw_faiss_search", |b| {
        b.iter(|| d.bank().search_raw(batch.as_slice().unwrap(), k).unwrap())
    });
    group.bench_function("batch_decode", |b| {
        b.iter(|| d.batch_decode(batch.view()).unwrap())
    });
    group.finish();

    let sessions = SampleSet::bundled(SESSIONS_TEST).expect("bundled sessions");
    let boundaries = sessions.boundaries.clone().unwrap_or_default();
    let session_inputs = perturb_rows(&sessions.embeddings, 0.95, 2);
    let mut group = c.benchmark_group("sessions");
    group.throughput(Throughput::Elements(sessions.texts.len() as u64));
    group.sample_size(10);
    group.bench_function("batch_decode_with_sessions", |b| {
        b.iter_batched(
            || session_inputs.clone(),
            |x| d.batch_decode_with_sessions(x.view(), &boundaries).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(phrase_bank, benches);
criterion_main!(phrase_bank);
