//! `lwdec bench --encoder`: sentences per second of the Rust encoder (float32 and INT8) at
//! batch 1 and batch 64, and of PyTorch sentence-transformers on the same sentences
//! (`scripts/bench_encoder_torch.py`), with the same number of threads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lightweight_decoder::encoder::{Encoder, MpnetEncoder, Precision};
use lightweight_decoder::eval::samples::{read_lines, samples_dir};
use lightweight_decoder::{load_embeddings, Error, Result};
use ndarray::Array2;
use serde_json::{json, Value};

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
    /// Sentences for the INT8 variant (the first N of the same ones; 0 skips it; default all).
    #[arg(long, requires = "encoder")]
    pub int8_sentences: Option<u32>,
}

/// The sentences and a description of where they came from.
struct Sentences {
    texts: Vec<String>,
    source: String,
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
    let (rust, f32_rows) = pool.install(|| time_rust(&dir, Precision::F32, &texts, batch1))?;
    let int8_n = args
        .int8_sentences
        .map_or(texts.len(), |k| (k as usize).min(texts.len()));
    let int8 = if int8_n > 0 {
        let (speed, rows) =
            pool.install(|| time_rust(&dir, Precision::Int8, &texts[..int8_n], batch1))?;
        let (min, mean) = cosine_summary(&rows, &f32_rows);
        Some(json!({"sentences": int8_n, "sentences_per_s": speed,
                    "cosine_to_f32": {"min": min, "mean": mean}}))
    } else {
        None
    };
    let torch = torch(&dir, args, threads, batch1, &sentences.texts, &f32_rows)?;
    let ratio = |b: &str| -> Value {
        match (rust[b].as_f64(), torch["sentences_per_s"][b].as_f64()) {
            (Some(r), Some(t)) if t > 0.0 => json!(r / t),
            _ => Value::Null,
        }
    };
    let report = json!({
        "sentences": texts.len(),
        "source": sentences.source,
        "threads": threads,
        "batch1_sentences": batch1,
        "model": dir.display().to_string(),
        "rust_f32": rust,
        "rust_int8": int8,
        "pytorch": torch,
        "rust_over_pytorch": {"batch1": ratio("batch1"), "batch64": ratio("batch64")},
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
    precision: Precision,
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
            "rust {precision:?} batch {batch}: {s:.1} s, {:.1} sentences/s",
            texts.len() as f64 / s
        );
        speeds.insert(format!("batch{batch}"), json!(texts.len() as f64 / s));
    }
    Ok((Value::Object(speeds), rows))
}

/// The PyTorch side: the script's JSON with the cosines of its rows to the Rust float32 rows,
/// or `{"skipped": why}` when no usable Python was given or found.
fn torch(
    dir: &Path,
    args: &EncoderBenchArgs,
    threads: usize,
    batch1: usize,
    texts: &[String],
    rust_rows: &Array2<f32>,
) -> Result<Value> {
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
                return Ok(json!({"skipped": why}));
            }
        },
    };
    if !script.is_file() {
        return Ok(json!({"skipped": format!("{} is missing", script.display())}));
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
        return Ok(json!({"skipped": why}));
    };
    let speeds: serde_json::Map<String, Value> = BATCHES
        .iter()
        .map(|b| format!("batch{b}"))
        .filter_map(|k| result.get(&k).map(|v| (k, v.clone())))
        .collect();
    result["sentences_per_s"] = Value::Object(speeds);
    result["python"] = json!(python.display().to_string());
    let torch_rows = load_embeddings(&rows_file, None)?;
    if torch_rows.dim() == rust_rows.dim() {
        let (min, mean) = cosine_summary(rust_rows, &torch_rows);
        result["cosine_to_rust_f32"] = json!({"min": min, "mean": mean});
    }
    Ok(result)
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

/// The first `n` distinct lines of `file`.
fn from_file(file: &Path, n: usize) -> Result<Sentences> {
    let texts = first_distinct(vec![read_lines(file)?], n);
    if texts.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} holds no sentences",
            file.display()
        )));
    }
    Ok(Sentences {
        source: format!("first distinct lines of {}", file.display()),
        texts,
    })
}

/// The first `n` distinct texts of the bundled samples, taken round-robin: the texts of
/// `samples/encoder_parity.jsonl`, then each `samples/*.txt` (sorted, ids and boundaries
/// files excluded).
fn bundled(n: usize) -> Result<Sentences> {
    let dir = samples_dir();
    let parity_file = dir.join("encoder_parity.jsonl");
    let mut names = vec!["encoder_parity.jsonl".to_string()];
    let mut sources = vec![read_lines(&parity_file)?
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["text"].as_str().map(str::to_string))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("{}: bad line", parity_file.display()))
                })
        })
        .collect::<Result<Vec<String>>>()?];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io("list the folder", &dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
            name.ends_with(".txt")
                && !name.ends_with(".ids.txt")
                && !name.ends_with(".boundaries.txt")
        })
        .collect();
    files.sort();
    for f in files {
        names.push(
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        sources.push(read_lines(&f)?);
    }
    let texts = first_distinct(sources.clone(), n);
    let chosen: std::collections::HashSet<&String> = texts.iter().collect();
    let taken: Vec<String> = names
        .iter()
        .zip(&sources)
        .map(|(name, lines)| {
            let k = lines.iter().filter(|l| chosen.contains(l)).count();
            format!("{name} {k}")
        })
        .collect();
    Ok(Sentences {
        source: format!(
            "bundled samples/, round-robin, deduplicated: {}",
            taken.join(", ")
        ),
        texts,
    })
}

/// The first `n` distinct lines, taking one from each source in turn; line breaks inside a
/// text become spaces (the PyTorch side reads one sentence per line).
fn first_distinct(sources: Vec<Vec<String>>, n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n.min(sources.iter().map(Vec::len).sum()));
    let mut iters: Vec<_> = sources.into_iter().map(Vec::into_iter).collect();
    while out.len() < n {
        let mut any = false;
        for it in &mut iters {
            if let Some(line) = it.next() {
                any = true;
                let line = line.replace(['\r', '\n'], " ");
                if out.len() < n && seen.insert(line.clone()) {
                    out.push(line);
                }
            }
        }
        if !any {
            break;
        }
    }
    out
}

/// The report as a small table.
fn print_table(report: &Value) {
    let cell = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    println!("{:<34}{:>12}{:>12}", "sentences/s", "batch 1", "batch 64");
    let rows = [
        ("Rust candle f32", &report["rust_f32"]),
        (
            "Rust candle INT8 (Q8_0)",
            &report["rust_int8"]["sentences_per_s"],
        ),
        (
            "PyTorch sentence-transformers",
            &report["pytorch"]["sentences_per_s"],
        ),
        ("Rust f32 / PyTorch", &report["rust_over_pytorch"]),
    ];
    for (name, v) in rows {
        println!(
            "{name:<34}{:>12}{:>12}",
            cell(&v["batch1"]),
            cell(&v["batch64"])
        );
    }
    if let Some(n) = report["batch1_sentences"]
        .as_u64()
        .filter(|&n| Some(n) != report["sentences"].as_u64())
    {
        println!("batch 1 timed on the first {n} sentences");
    }
    if let Some(n) = report["rust_int8"]["sentences"].as_u64() {
        println!(
            "INT8 on {n} sentences; cosine to f32 mean {:.5}, min {:.5}",
            report["rust_int8"]["cosine_to_f32"]["mean"]
                .as_f64()
                .unwrap_or(f64::NAN),
            report["rust_int8"]["cosine_to_f32"]["min"]
                .as_f64()
                .unwrap_or(f64::NAN)
        );
    }
    if let Some(c) = report["pytorch"].get("cosine_to_rust_f32") {
        println!(
            "PyTorch rows vs Rust f32 rows: cosine mean {:.7}, min {:.7}",
            c["mean"].as_f64().unwrap_or(f64::NAN),
            c["min"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(why) = report["pytorch"]["skipped"].as_str() {
        println!("PyTorch: skipped ({why})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_deduplicates_and_stops_at_n() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let got = first_distinct(vec![s(&["a", "b", "c"]), s(&["a", "x"]), s(&["y"])], 10);
        assert_eq!(got, s(&["a", "y", "b", "x", "c"]));
        let got = first_distinct(vec![s(&["a", "b", "c"]), s(&["x"])], 2);
        assert_eq!(got, s(&["a", "x"]));
    }

    #[test]
    fn bundled_sentences_are_real_texts() {
        let s = bundled(2000).unwrap();
        assert_eq!(s.texts.len(), 2000);
        assert!(s.texts.iter().all(|t| t.parse::<u64>().is_err()));
        assert!(
            s.source.contains("encoder_parity.jsonl 199"),
            "{}",
            s.source
        );
    }
}
