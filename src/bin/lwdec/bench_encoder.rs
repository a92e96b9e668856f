//! `lwdec bench --encoder`: sentences per second of the Rust encoder in each precision at
//! batch 1 and batch 64, and of PyTorch sentence-transformers on the same sentences in float32
//! and bf16 autocast (`scripts/bench_encoder_torch.py`), with the same number of threads; the
//! cosine of every precision's rows to sentence-transformers float32 beside the speeds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lightweight_decoder::encoder::{Encoder, EncoderPrecision, MpnetEncoder};
use lightweight_decoder::{load_embeddings, Error, Result};
use ndarray::Array2;
use serde_json::{json, Value};

use crate::bench_texts::{bundled, from_file};

/// The batch sizes timed.
const BATCHES: [usize; 2] = [1, 64];

/// Options of `lwdec bench --encoder`.
#[derive(clap::Args, Clone)]
pub struct EncoderBenchArgs {
    /// Benchmark the sentence encoder instead of a decoder; a model folder may follow
    /// (default: $LWDEC_ENCODER_DIR, else ~/.local/share/lightweight-decoder/all-mpnet-base-v2).
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub encoder: Option<Option<PathBuf>>,
    /// Sentences timed (the first N of the source, deduplicated).
    #[arg(long, default_value_t = 2000, requires = "encoder",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sentences: u32,
    /// Sentences, one per line (default: the bundled real texts in samples/).
    #[arg(long, requires = "encoder")]
    pub texts: Option<PathBuf>,
    /// Python with sentence-transformers for the PyTorch side (default: .venv/bin/python if
    /// present, else PyTorch is skipped).
    #[arg(long, requires = "encoder")]
    pub python: Option<PathBuf>,
    /// Threads of both encoders.
    #[arg(long, default_value_t = 2, requires = "encoder",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Time batch 1 on the first N sentences only, for Rust and PyTorch alike (default all).
    #[arg(long, requires = "encoder")]
    pub batch1_sentences: Option<u32>,
    /// Rust precisions timed (default: bf16 where the CPU has AVX512-BF16, and f32).
    #[arg(long, requires = "encoder", value_delimiter = ',')]
    pub precisions: Vec<EncoderPrecision>,
    /// Also time INT8 (candle Q8_0, slower than f32 here) on the first N sentences.
    #[arg(long, requires = "encoder")]
    pub int8_sentences: Option<u32>,
    /// PyTorch modes timed: f32, bf16 (autocast; default both where the CPU has AVX512-BF16).
    #[arg(long, requires = "encoder", value_delimiter = ',')]
    pub torch_modes: Vec<String>,
}

/// Runs the encoder benchmark with the model in `dir` (default location when `None`).
pub fn run(dir: Option<&Path>, args: &EncoderBenchArgs, as_json: bool) -> Result<()> {
    let threads = usize::from(args.threads);
    // candle's matmuls and the tokenizer size their work from RAYON_NUM_THREADS
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
    let dir = dir.map_or_else(MpnetEncoder::default_location, Path::to_path_buf);
    let n = args.sentences as usize;
    let sentences = match &args.texts {
        Some(file) => from_file(file, n)?,
        None => bundled(n)?,
    };
    let texts: Vec<&str> = sentences.texts.iter().map(String::as_str).collect();
    println!(
        "lwdec bench --encoder: {} sentences ({}), {threads} threads, model {}",
        texts.len(),
        sentences.source,
        dir.display()
    );
    let batch1 = args
        .batch1_sentences
        .map_or(texts.len(), |k| (k as usize).clamp(1, texts.len()));
    let default = EncoderPrecision::default();
    let mut precisions = args.precisions.clone();
    if precisions.is_empty() {
        precisions = [EncoderPrecision::Bf16, EncoderPrecision::F32]
            .into_iter()
            .filter(|p| p.is_available())
            .collect();
    }
    let mut timed: Vec<(EncoderPrecision, usize)> =
        precisions.iter().map(|&p| (p, texts.len())).collect();
    if let Some(n) = args.int8_sentences.filter(|&n| n > 0) {
        timed.retain(|(p, _)| *p != EncoderPrecision::Int8);
        timed.push((EncoderPrecision::Int8, (n as usize).min(texts.len())));
    }
    let mut rust = serde_json::Map::new();
    let mut rust_rows = Vec::new();
    for &(precision, n) in &timed {
        let (speed, rows) = pool.install(|| time_rust(&dir, precision, &texts[..n], batch1))?;
        rust.insert(
            precision.name().into(),
            json!({"sentences": n, "sentences_per_s": speed}),
        );
        rust_rows.push((precision, rows));
    }
    let mut modes = args.torch_modes.clone();
    if modes.is_empty() {
        modes.push("f32".into());
        if EncoderPrecision::Bf16.is_available() {
            modes.push("bf16".into());
        }
    }
    let (torch, torch_rows) = torch(&dir, args, threads, batch1, &sentences.texts, &modes)?;
    // parity: every precision's rows against sentence-transformers float32 (else Rust f32)
    let reference_name = match torch_rows {
        Some(_) => "sentence-transformers f32",
        None => "Rust f32",
    };
    let reference = torch_rows.or_else(|| {
        rust_rows
            .iter()
            .find(|(p, _)| *p == EncoderPrecision::F32)
            .map(|(_, r)| r.clone())
    });
    for (precision, rows) in &rust_rows {
        if let Some(reference) = &reference {
            let n = rows.nrows().min(reference.nrows());
            let (min, mean) = cosine_summary(
                &rows.slice(ndarray::s![..n, ..]).to_owned(),
                &reference.slice(ndarray::s![..n, ..]).to_owned(),
            );
            rust[precision.name()]["cosine_to_reference"] = json!({"min": min, "mean": mean});
        }
    }
    let fastest_torch = |b: &str| -> Option<(String, f64)> {
        torch["modes"]
            .as_object()?
            .iter()
            .filter_map(|(m, v)| Some((m.clone(), v[b].as_f64()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let mut ratios = serde_json::Map::new();
    for b in BATCHES.map(|b| format!("batch{b}")) {
        let ours = rust[default.name()]["sentences_per_s"][&b].as_f64();
        let f32_torch = torch["modes"]["f32"][&b].as_f64();
        ratios.insert(
            b.clone(),
            json!({
                "over_fastest_pytorch": ours.zip(fastest_torch(&b)).map(|(o, (m, t))| json!({"mode": m, "ratio": o / t})),
                "over_pytorch_f32": ours.zip(f32_torch).map(|(o, t)| o / t),
            }),
        );
    }
    let report = json!({
        "sentences": texts.len(),
        "source": sentences.source,
        "threads": threads,
        "batch1_sentences": batch1,
        "model": dir.display().to_string(),
        "default_precision": default.name(),
        "rust": rust,
        "parity_reference": reference_name,
        "pytorch": torch,
        "default_over_pytorch": ratios,
    });
    print_table(&report);
    if as_json {
        println!("{report}");
    }
    Ok(())
}

/// Texts embedded before timing batch size `batch` (as in the PyTorch script).
fn warm_up(batch: usize) -> usize {
    if batch == 1 {
        8
    } else {
        64
    }
}

/// Sentences per second at each of [`BATCHES`] (after a [`warm_up`]; batch 1 on
/// the first `batch1` texts), and the rows of the last batch size.
fn time_rust(
    dir: &Path,
    precision: EncoderPrecision,
    texts: &[&str],
    batch1: usize,
) -> Result<(Value, Array2<f32>)> {
    let mut encoder = MpnetEncoder::load_with_precision(dir, precision)?;
    let mut speeds = serde_json::Map::new();
    let mut rows = Array2::zeros((0, encoder.dimension()));
    for batch in BATCHES {
        encoder = encoder.with_batch_size(batch);
        encoder.embed(&texts[..texts.len().min(warm_up(batch))])?;
        let texts = if batch == 1 {
            &texts[..batch1.min(texts.len())]
        } else {
            texts
        };
        let t = Instant::now();
        rows = encoder.embed(texts)?;
        let s = t.elapsed().as_secs_f64();
        eprintln!(
            "rust {precision} batch {batch}: {s:.1} s, {:.1} sentences/s",
            texts.len() as f64 / s
        );
        speeds.insert(format!("batch{batch}"), json!(texts.len() as f64 / s));
    }
    Ok((Value::Object(speeds), rows))
}

/// The PyTorch side: the script's JSON and its float32 rows (the parity reference), or
/// `{"skipped": why}` when no usable Python was given or found.
fn torch(
    dir: &Path,
    args: &EncoderBenchArgs,
    threads: usize,
    batch1: usize,
    texts: &[String],
    modes: &[String],
) -> Result<(Value, Option<Array2<f32>>)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_encoder_torch.py");
    let python = match &args.python {
        Some(p) => p.clone(),
        None => match [
            PathBuf::from(".venv/bin/python"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        {
            Some(p) => p,
            None => {
                let why = "no .venv/bin/python (give --python; `bash scripts/install-encoder.sh \
                           --python` makes one)";
                eprintln!("PyTorch skipped: {why}");
                return Ok((json!({"skipped": why}), None));
            }
        },
    };
    if !script.is_file() {
        let why = format!("{} is missing", script.display());
        return Ok((json!({ "skipped": why }), None));
    }
    let work = tempfile::tempdir()
        .map_err(|e| Error::io("create a temporary folder in", std::env::temp_dir(), e))?;
    let list = work.path().join("sentences.txt");
    let mut file = std::fs::File::create(&list).map_err(|e| Error::io("create", &list, e))?;
    for t in texts {
        writeln!(file, "{t}").map_err(|e| Error::io("write", &list, e))?;
    }
    drop(file);
    let rows_file = work.path().join("torch.npy");
    let batches = BATCHES.map(|b| b.to_string()).join(",");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg("--model")
        .arg(dir)
        .args(["--threads", &threads.to_string(), "--batches", &batches])
        .args(["--batch1-n", &batch1.to_string()])
        .args(["--modes", &modes.join(",")])
        .arg("--texts")
        .arg(&list)
        .arg("--out")
        .arg(&rows_file)
        .env("HF_HUB_OFFLINE", "1")
        .env("OMP_NUM_THREADS", threads.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::io("run", &python, e))?;
    let parsed = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok());
    let Some(mut result) = parsed.filter(|_| output.status.success()) else {
        let why = format!(
            "{} {} failed ({}); is sentence-transformers installed?",
            python.display(),
            script.display(),
            output.status
        );
        if args.python.is_some() {
            return Err(Error::InvalidArgument(why));
        }
        eprintln!("PyTorch skipped: {why}");
        return Ok((json!({ "skipped": why }), None));
    };
    result["python"] = json!(python.display().to_string());
    let rows = match rows_file.is_file() {
        true => Some(load_embeddings(&rows_file, None)?),
        false => None,
    };
    Ok((result, rows))
}

/// Min and mean cosine of matching rows (over the rows of `a`).
fn cosine_summary(a: &Array2<f32>, b: &Array2<f32>) -> (f64, f64) {
    let cos: Vec<f64> = a
        .rows()
        .into_iter()
        .zip(b.rows())
        .map(|(x, y)| f64::from(x.dot(&y)) / f64::from(x.dot(&x).sqrt() * y.dot(&y).sqrt()))
        .collect();
    let min = cos.iter().copied().fold(f64::INFINITY, f64::min);
    (min, cos.iter().sum::<f64>() / cos.len().max(1) as f64)
}

/// The report as a small table.
fn print_table(report: &Value) {
    let cell = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    let parity = |c: &Value| match (c["mean"].as_f64(), c["min"].as_f64()) {
        (Some(mean), Some(min)) => format!("{mean:.7} / {min:.7}"),
        _ => "-".into(),
    };
    println!(
        "{:<40}{:>10}{:>10}  cosine mean / min (to {})",
        "sentences/s",
        "batch 1",
        "batch 64",
        report["parity_reference"].as_str().unwrap_or("-")
    );
    let default = report["default_precision"].as_str().unwrap_or_default();
    for (name, v) in report["rust"].as_object().into_iter().flatten() {
        let mark = if name == default { " (default)" } else { "" };
        let speeds = &v["sentences_per_s"];
        println!(
            "{:<40}{:>10}{:>10}  {}",
            format!("Rust {name}{mark}, {} sentences", v["sentences"]),
            cell(&speeds["batch1"]),
            cell(&speeds["batch64"]),
            parity(&v["cosine_to_reference"])
        );
    }
    for (mode, v) in report["pytorch"]["modes"].as_object().into_iter().flatten() {
        let label = match mode.as_str() {
            "bf16" => "PyTorch bf16 autocast".to_string(),
            m => format!("PyTorch {m}"),
        };
        println!(
            "{label:<40}{:>10}{:>10}  {}",
            cell(&v["batch1"]),
            cell(&v["batch64"]),
            parity(&v["cosine_to_f32"])
        );
    }
    let ratios = &report["default_over_pytorch"];
    let fastest = |b: &str| cell(&ratios[b]["over_fastest_pytorch"]["ratio"]);
    println!(
        "{:<40}{:>10}{:>10}",
        format!("Rust {default} / fastest PyTorch"),
        fastest("batch1"),
        fastest("batch64")
    );
    println!(
        "{:<40}{:>10}{:>10}",
        format!("Rust {default} / PyTorch f32"),
        cell(&ratios["batch1"]["over_pytorch_f32"]),
        cell(&ratios["batch64"]["over_pytorch_f32"])
    );
    if let Some(n) = report["batch1_sentences"]
        .as_u64()
        .filter(|&n| Some(n) != report["sentences"].as_u64())
    {
        println!("batch 1 timed on the first {n} sentences");
    }
    if let Some(why) = report["pytorch"]["skipped"].as_str() {
        println!("PyTorch: skipped ({why})");
    }
}
