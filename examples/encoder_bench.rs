//! Sentences per second at batch 1 and batch 64 on 2,000 real sentences (the same ones as
//! `scripts/bench_encoder_torch.py`): all 200 lines of samples/ood.txt,
//! the first 1,000 of samples/validation.txt and the first 800 of samples/wordnet_sample.txt.
//!
//! `cargo run --release --example encoder_bench -- [SAMPLES_DIR] [precision=f32|bf16|int8|auto] [n=N] [batches=1,64]` prints
//! `{"batch1": s_per_s, "batch64": s_per_s}`; `n=N` times the first N sentences only.
//! Threads: RAYON_NUM_THREADS (default: all cores).

use std::path::PathBuf;
use std::time::Instant;

use lightweight_decoder::encoder::{Encoder, EncoderPrecision, MpnetEncoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |key: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(key).map(str::to_string))
    };
    let n: usize = flag("n=").map_or(Ok(2000), |v| v.parse())?;
    let batches: Vec<usize> = flag("batches=")
        .unwrap_or_else(|| "1,64".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let samples = args
        .iter()
        .find(|a| !a.contains('='))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/samples")));
    let precision: EncoderPrecision =
        flag("precision=").map_or(Ok(EncoderPrecision::default()), |v| v.parse())?;
    let read = |name: &str, n: usize| -> std::io::Result<Vec<String>> {
        let text = std::fs::read_to_string(samples.join(name))?;
        Ok(text.lines().take(n).map(str::to_string).collect())
    };
    let mut sents = read("ood.txt", 200)?;
    sents.extend(read("validation.txt", 1000)?);
    sents.extend(read("wordnet_sample.txt", 800)?);
    let texts: Vec<&str> = sents.iter().take(n).map(String::as_str).collect();

    let dir = {
        let d = MpnetEncoder::default_location();
        if d.join("config.json").is_file() {
            d
        } else {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/.venv/all-mpnet-base-v2"
            ))
        }
    };
    let t = Instant::now();
    let enc = MpnetEncoder::load_with_precision(&dir, precision)?;
    eprintln!(
        "loaded {} ({precision:?}) in {:.2} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    for batch in batches {
        let enc = MpnetEncoder::load_with_precision(&dir, precision)?.with_batch_size(batch);
        enc.embed(&texts[..64])?; // warm-up
        let t = Instant::now();
        let e = enc.embed(&texts)?;
        let s = t.elapsed().as_secs_f64();
        assert_eq!(e.nrows(), texts.len());
        eprintln!(
            "batch {batch}: {:.1} s, {:.1} sentences/s",
            s,
            texts.len() as f64 / s
        );
        out.push(format!("\"batch{batch}\": {:.2}", texts.len() as f64 / s));
    }
    drop(enc);
    println!("{{{}}}", out.join(", "));
    Ok(())
}
