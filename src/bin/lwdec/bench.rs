//! `lwdec bench`: latency and throughput, beside the raw FAISS search for the bank.

use std::time::Instant;

use lightweight_decoder::eval::percentile;
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_TEST, VALIDATION, WORDNET_SAMPLE};
use lightweight_decoder::{Decoder, Error, PhraseBankDecoder, Result};
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

/// Benchmarks the decoder `--decoder` names (the bank decoder's cache off).
pub fn run(queries: usize, as_json: bool, args: &DecoderArgs) -> Result<()> {
    if args.decoder == DecoderChoice::Generative {
        return generative(queries, as_json, args);
    }
    let mut config = args.decoder_config()?;
    config.cache.capacity = 0; // measure search + assembly, not cache hits
    let decoder = PhraseBankDecoder::new(args.builder()?.load_bank()?, config)?;
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let n = queries.clamp(1, sample.texts.len());
    let inputs: Array2<f32> =
        perturb_rows(&sample.embeddings.slice(s![..n, ..]).to_owned(), 0.95, 3);
    let bank = decoder.bank();
    let k = decoder.config().top_k;
    let rows: Vec<Vec<f32>> = inputs.rows().into_iter().map(|r| r.to_vec()).collect();
    for q in rows.iter().take(50) {
        // warm up
        decoder.decode(q)?;
        bank.search_raw(q, k)?;
    }
    let mut raw_us = Vec::with_capacity(n);
    let mut decode_us = Vec::with_capacity(n);
    for q in &rows {
        raw_us.push(time_us(|| bank.search_raw(q, k).map(drop))?);
        decode_us.push(time_us(|| decoder.decode(q).map(drop))?);
    }
    raw_us.sort_by(f64::total_cmp);
    decode_us.sort_by(f64::total_cmp);
    let flat: Vec<f32> = rows.concat();
    let raw_batch_s = time_us(|| bank.search_raw(&flat, k).map(drop))? / 1e6;
    let batch_s = time_us(|| decoder.batch_decode(inputs.view()).map(drop))? / 1e6;
    let sessions = SampleSet::bundled(SESSIONS_TEST)?;
    let boundaries = sessions.boundaries.clone().unwrap_or_default();
    let session_inputs = perturb_rows(&sessions.embeddings, 0.95, 4);
    let sessions_s = time_us(|| {
        decoder
            .batch_decode_with_sessions(session_inputs.view(), &boundaries)
            .map(drop)
    })? / 1e6;
    let p50 = |v: &[f64]| percentile(v, 50.0);
    let report = json!({
        "bank": decoder.bank().manifest().index_spec,
        "method": decoder.config().method,
        "top_k": k,
        "dim": decoder.dim(),
        "threads": rayon::current_num_threads(),
        "single": {
            "queries": n,
            "decode_us": percentiles(&decode_us),
            "raw_search_us": percentiles(&raw_us),
            "overhead_ratio_p50": p50(&decode_us) / p50(&raw_us),
        },
        "batch": {
            "rows": n,
            "decode_rows_per_s": n as f64 / batch_s,
            "raw_search_rows_per_s": n as f64 / raw_batch_s,
        },
        "sessions": {
            "rows": sessions.texts.len(),
            "sessions": boundaries.len(),
            "decode_rows_per_s": sessions.texts.len() as f64 / sessions_s,
        },
    });
    println!(
        "lwdec bench: bank {} method {:?} top_k {k}, {} threads",
        report["bank"],
        decoder.config().method,
        report["threads"]
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
        "decode / raw search (p50)   {:>10.2}x",
        p50(&decode_us) / p50(&raw_us)
    );
    println!(
        "batch of {n}: decode {:.0} rows/s, raw search {:.0} rows/s",
        n as f64 / batch_s,
        n as f64 / raw_batch_s
    );
    println!(
        "{} sessions ({} rows): {:.0} rows/s",
        boundaries.len(),
        sessions.texts.len(),
        sessions.texts.len() as f64 / sessions_s
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
