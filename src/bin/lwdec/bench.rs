//! `lwdec bench`: latency and throughput, beside the raw FAISS search for the bank.

use std::time::Instant;

use lightweight_decoder::eval::percentile;
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_TEST, VALIDATION, WORDNET_SAMPLE};
use lightweight_decoder::{Decoder, Error, PhraseBankDecoder, Result, UnitEmbedding};
use ndarray::{s, Array2};
use serde_json::json;

use crate::options::{DecoderArgs, DecoderChoice};

/// p50, p95 and p99 of sorted microseconds, as JSON.
fn percentiles(sorted_us: &[f64]) -> serde_json::Value {
    json!({
        "p50": percentile(sorted_us, 50.0),
        "p95": percentile(sorted_us, 95.0),
        "p99": percentile(sorted_us, 99.0),
    })
}

/// Microseconds of `f`.
fn time_us(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

/// The median of some values (the mean of the middle two for an even count); 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each run times this many batches of each kind, alternating, and keeps the fastest of each
/// (a batch takes tens of milliseconds: one preemption by another process would decide a
/// single one).
const BATCH_REPEATS: usize = 3;

/// One run's measurements of the bank decoder beside the raw FAISS search.
struct Run {
    /// Single-query p50 of the decode over that of the raw search.
    single_ratio: f64,
    /// Rows per second of the batch decode and of the raw batch search.
    batch_rows_per_s: f64,
    raw_batch_rows_per_s: f64,
    /// Rows per second of the session batch.
    sessions_rows_per_s: f64,
}

/// Benchmarks the decoder `--decoder` names (the bank decoder's cache off), `runs` times.
///
/// The decoder and the raw FAISS search (`PhraseBank::search_raw`) see the same unit-norm
/// queries and the same `k`; single queries alternate between the two, and a run's batches
/// alternate too, [`BATCH_REPEATS`] of each (the fastest of each kind counts), which kind
/// goes first alternating from run to run.
/// FAISS's OpenMP threads are whatever `OMP_NUM_THREADS` sets (reported; fix it to compare).
pub fn run(queries: usize, runs: usize, as_json: bool, args: &DecoderArgs) -> Result<()> {
    if args.decoder == DecoderChoice::Generative {
        return generative(queries, as_json, args);
    }
    let runs = runs.max(1);
    let mut config = args.decoder_config()?;
    config.phrase_bank.cache.capacity = 0; // measure search + assembly, not cache hits
    let decoder = PhraseBankDecoder::new(args.builder()?.load_bank()?, config)?;
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let n = queries.clamp(1, sample.texts.len());
    let dim = decoder.dim();
    // unit norm up front, so that the raw search sees the very values the decoder searches
    // (the decoder's normalisation leaves a unit embedding as it is)
    let perturbed = perturb_rows(&sample.embeddings.slice(s![..n, ..]).to_owned(), 0.95, 3);
    let mut unit = Vec::with_capacity(n * dim);
    for row in perturbed.rows() {
        unit.extend_from_slice(&UnitEmbedding::new(&row.to_vec(), dim)?);
    }
    let inputs = Array2::from_shape_vec((n, dim), unit)
        .map_err(|e| Error::Internal(format!("query matrix: {e}")))?;
    let bank = decoder.bank();
    let k = decoder.config().top_k;
    let rows: Vec<Vec<f32>> = inputs.rows().into_iter().map(|r| r.to_vec()).collect();
    let flat: Vec<f32> = rows.concat();
    for q in rows.iter().take(50) {
        // warm up
        decoder.decode(q)?;
        bank.search_raw(q, k)?;
    }
    // the first batch also computes what the bank computes once (the stored vectors' norms)
    let first_batch_us = time_us(|| decoder.batch_decode(inputs.view()).map(drop))?;
    bank.search_raw(&flat, k)?;
    let sessions = SampleSet::bundled(SESSIONS_TEST)?;
    let boundaries = sessions.boundaries.clone().unwrap_or_default();
    let session_inputs = perturb_rows(&sessions.embeddings, 0.95, 4);
    let mut raw_us = Vec::with_capacity(n * runs);
    let mut decode_us = Vec::with_capacity(n * runs);
    let mut measured = Vec::with_capacity(runs);
    for r in 0..runs {
        let (mut raw, mut dec) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for q in &rows {
            raw.push(time_us(|| bank.search_raw(q, k).map(drop))?);
            dec.push(time_us(|| decoder.decode(q).map(drop))?);
        }
        raw.sort_by(f64::total_cmp);
        dec.sort_by(f64::total_cmp);
        let single_ratio = percentile(&dec, 50.0) / percentile(&raw, 50.0);
        raw_us.extend(raw);
        decode_us.extend(dec);
        let raw_batch = || time_us(|| bank.search_raw(&flat, k).map(drop));
        let decode_batch = || time_us(|| decoder.batch_decode(inputs.view()).map(drop));
        let (mut raw_batch_us, mut batch_us) = (f64::INFINITY, f64::INFINITY);
        for rep in 0..BATCH_REPEATS {
            // the raw search first in even runs' even repeats and odd runs' odd ones
            if (r + rep) % 2 == 0 {
                raw_batch_us = raw_batch_us.min(raw_batch()?);
                batch_us = batch_us.min(decode_batch()?);
            } else {
                batch_us = batch_us.min(decode_batch()?);
                raw_batch_us = raw_batch_us.min(raw_batch()?);
            }
        }
        let sessions_us = time_us(|| {
            decoder
                .batch_decode_with_sessions(session_inputs.view(), &boundaries)
                .map(drop)
        })?;
        measured.push(Run {
            single_ratio,
            batch_rows_per_s: n as f64 / (batch_us / 1e6),
            raw_batch_rows_per_s: n as f64 / (raw_batch_us / 1e6),
            sessions_rows_per_s: sessions.texts.len() as f64 / (sessions_us / 1e6),
        });
    }
    raw_us.sort_by(f64::total_cmp);
    decode_us.sort_by(f64::total_cmp);
    let of = |f: fn(&Run) -> f64| measured.iter().map(f).collect::<Vec<f64>>();
    let single_ratios = of(|r| r.single_ratio);
    let batch_ratios = of(|r| r.batch_rows_per_s / r.raw_batch_rows_per_s);
    let batch_rows_per_s = median(&of(|r| r.batch_rows_per_s));
    let raw_batch_rows_per_s = median(&of(|r| r.raw_batch_rows_per_s));
    let sessions_rows_per_s = median(&of(|r| r.sessions_rows_per_s));
    let omp_threads = std::env::var("OMP_NUM_THREADS").ok();
    let report = json!({
        "bank": decoder.bank().manifest().index_spec,
        "method": decoder.config().method,
        "top_k": k,
        "dim": dim,
        "threads": rayon::current_num_threads(),
        "omp_num_threads": omp_threads,
        "cache": "off",
        "runs": runs,
        "single": {
            "queries": n,
            "decode_us": percentiles(&decode_us),
            "raw_search_us": percentiles(&raw_us),
            "overhead_ratio_p50": median(&single_ratios),
            "overhead_ratio_p50_per_run": single_ratios,
        },
        "batch": {
            "rows": n,
            "decode_rows_per_s": batch_rows_per_s,
            "raw_search_rows_per_s": raw_batch_rows_per_s,
            "repeats_per_run": BATCH_REPEATS,
            "first_batch_ms": first_batch_us / 1e3,
            "ratio": median(&batch_ratios),
            "ratio_per_run": batch_ratios,
        },
        "sessions": {
            "rows": sessions.texts.len(),
            "sessions": boundaries.len(),
            "decode_rows_per_s": sessions_rows_per_s,
        },
    });
    println!(
        "lwdec bench: bank {} method {:?} top_k {k}, {} threads, OMP_NUM_THREADS {}, cache off, \
         {runs} run{}",
        report["bank"],
        decoder.config().method,
        report["threads"],
        omp_threads.as_deref().unwrap_or("unset"),
        if runs == 1 { "" } else { "s" }
    );
    println!(
        "{:<28}{:>10}{:>10}{:>10}",
        "single query (us)", "p50", "p95", "p99"
    );
    for (name, v) in [("decode", &decode_us), ("raw FAISS search", &raw_us)] {
        println!(
            "{name:<28}{:>10.1}{:>10.1}{:>10.1}",
            percentile(v, 50.0),
            percentile(v, 95.0),
            percentile(v, 99.0)
        );
    }
    println!(
        "decode / raw search (p50)   {:>10.2}x (median of the runs' p50 ratios)",
        median(&single_ratios)
    );
    println!(
        "batch of {n}: decode {batch_rows_per_s:.0} rows/s, raw search {raw_batch_rows_per_s:.0} \
         rows/s, decode / raw {:.2}x (median of the runs' ratios; each run the best of \
         {BATCH_REPEATS} batches of each)",
        median(&batch_ratios)
    );
    println!(
        "  the first batch (untimed above): {:.1} ms",
        first_batch_us / 1e3
    );
    if runs > 1 {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("  per run: single {}", list(&single_ratios));
        println!("           batch  {}", list(&batch_ratios));
    }
    println!(
        "{} sessions ({} rows): {sessions_rows_per_s:.0} rows/s",
        boundaries.len(),
        sessions.texts.len(),
    );
    if as_json {
        println!("{report}");
    }
    Ok(())
}

/// Greedy (or beam) decoding of validation embeddings: one at a time on one thread, then the
/// batch over every core.
fn generative(queries: usize, as_json: bool, args: &DecoderArgs) -> Result<()> {
    let decoder = crate::build_decoder(args)?;
    let sample = SampleSet::bundled(VALIDATION)?;
    let n = queries.clamp(1, sample.texts.len());
    let inputs = sample.embeddings.slice(s![..n, ..]).to_owned();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let mut us = Vec::with_capacity(n);
    let mut bytes = 0usize;
    one_thread.install(|| -> Result<()> {
        for row in inputs.rows() {
            let q = row.to_vec();
            us.push(time_us(|| {
                bytes += decoder.decode(&q)?.text.len();
                Ok(())
            })?);
        }
        Ok(())
    })?;
    us.sort_by(f64::total_cmp);
    let single_s: f64 = us.iter().sum::<f64>() / 1e6;
    let batch_s = time_us(|| decoder.batch_decode(inputs.view()).map(drop))? / 1e6;
    let report = json!({
        "decoder": "generative",
        "rows": n,
        "mean_output_bytes": bytes as f64 / n as f64,
        "single_thread_us": percentiles(&us),
        "single_thread_rows_per_s": n as f64 / single_s,
        "batch_rows_per_s": n as f64 / batch_s,
        "batch_threads": rayon::current_num_threads(),
        "speedup": single_s / batch_s,
    });
    println!("lwdec bench --decoder generative: {n} validation embeddings");
    println!(
        "one thread: p50 {:.0} us, p95 {:.0} us, p99 {:.0} us ({:.1} bytes per output)",
        percentile(&us, 50.0),
        percentile(&us, 95.0),
        percentile(&us, 99.0),
        bytes as f64 / n as f64
    );
    println!(
        "batch over {} threads: {:.1} rows/s, {:.2}x one thread",
        rayon::current_num_threads(),
        n as f64 / batch_s,
        single_s / batch_s
    );
    if as_json {
        println!("{report}");
    }
    Ok(())
}
