//! Parity of [`MpnetEncoder`] with PyTorch sentence-transformers on the bundled fixture
//! (`samples/encoder_parity.*`, made by `scripts/make_encoder_fixture.py`): token ids must be
//! identical and the embeddings agree to float32 rounding (f32: mean cosine >= 0.9999, min >=
//! 0.9995), and within the shipping bar for bf16 (mean >= 0.9999, min >= 0.999), the default
//! on CPUs with AVX512-BF16.
//!
//! The model folder is `$LWDEC_ENCODER_DIR` or the default location, which the test command
//! fills (`bash scripts/install-encoder.sh`, no torch); without it the test fails and names
//! that command.

use std::path::{Path, PathBuf};

use lightweight_decoder::encoder::{Encoder, EncoderPrecision, MpnetEncoder};

struct Fixture {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    emb: ndarray::Array2<f32>,
}

fn model_dir() -> Option<PathBuf> {
    let d = MpnetEncoder::default_location();
    if d.join("config.json").is_file() {
        return Some(d);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/all-mpnet-base-v2");
    venv.join("config.json").is_file().then_some(venv)
}

fn fixture() -> Option<Fixture> {
    let base = std::env::var("LWDEC_PARITY_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/encoder_parity"));
    let jsonl = std::fs::read_to_string(base.with_extension("jsonl")).ok()?;
    let emb: ndarray::Array2<f32> =
        ndarray_npy::read_npy(base.with_extension("f32.npy")).expect("fixture .npy");
    let (mut texts, mut ids) = (Vec::new(), Vec::new());
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("fixture line");
        texts.push(v["text"].as_str().expect("text").to_string());
        ids.push(
            v["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect(),
        );
    }
    assert_eq!(texts.len(), emb.nrows());
    Some(Fixture { texts, ids, emb })
}

fn setup() -> (PathBuf, Fixture) {
    match (model_dir(), fixture()) {
        (Some(d), Some(f)) => (d, f),
        (None, _) => panic!(
            "the encoder is not installed at {}: run `bash scripts/install-encoder.sh`",
            MpnetEncoder::default_location().display()
        ),
        (_, None) => panic!("the parity fixture samples/encoder_parity.* is missing"),
    }
}

fn cosines(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> Vec<f32> {
    a.rows()
        .into_iter()
        .zip(b.rows())
        .map(|(x, y)| x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt()))
        .collect()
}

fn summary(c: &[f32]) -> (f32, f64) {
    let min = c.iter().copied().fold(f32::INFINITY, f32::min);
    let mean = c.iter().map(|&v| v as f64).sum::<f64>() / c.len() as f64;
    (min, mean)
}

#[test]
fn parity_with_sentence_transformers() {
    let (dir, fx) = setup();
    let enc = MpnetEncoder::load_with_precision(&dir, EncoderPrecision::F32)
        .expect("load")
        .with_batch_size(16);
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();

    let ids = enc.tokenize(&texts).expect("tokenize");
    for (i, (got, want)) in ids.iter().zip(&fx.ids).enumerate() {
        assert_eq!(
            got, want,
            "token ids of fixture line {i} ({:?})",
            fx.texts[i]
        );
    }

    let emb = enc.embed(&texts).expect("embed");
    assert_eq!(emb.dim(), (texts.len(), 768));
    for row in emb.rows() {
        assert!((row.dot(&row).sqrt() - 1.0).abs() < 1e-5, "unit norm");
    }
    let cos = cosines(&emb, &fx.emb);
    let (min, mean) = summary(&cos);
    let long: Vec<f32> = (0..texts.len())
        .filter(|&i| fx.ids[i].len() == enc.max_seq_length())
        .map(|i| cos[i])
        .collect();
    eprintln!(
        "parity f32: n={} min={min:.7} (1-min {:.1e}) mean={mean:.7}; truncated n={} min={:.7}",
        cos.len(),
        1.0 - min,
        long.len(),
        summary(&long).0
    );
    assert!(long.len() >= 3, "fixture has truncated texts");
    assert!(mean >= 0.9999, "mean cosine {mean}");
    assert!(min >= 0.9995, "min cosine {min}");
    assert!(
        long.iter().all(|&c| c >= 0.9999),
        "truncated texts {long:?}"
    );

    // Batching and padding must not change a row: each text alone vs in a padded batch.
    let one = MpnetEncoder::load_with_precision(&dir, EncoderPrecision::F32)
        .expect("load")
        .with_batch_size(1);
    let picks = [0usize, 150, 190, 196];
    let sub: Vec<&str> = picks.iter().map(|&i| texts[i]).collect();
    let alone = one.embed(&sub).expect("embed");
    for (k, &i) in picks.iter().enumerate() {
        let c = alone.row(k).dot(&emb.row(i));
        assert!(c > 0.99999, "batch 1 vs batched, line {i}: {c}");
    }
}

#[test]
fn bf16_parity_with_sentence_transformers() {
    let (dir, fx) = setup();
    if !EncoderPrecision::Bf16.is_available() {
        // the default is f32 on such a CPU, which the test above holds to parity
        eprintln!("bf16 parity not checked: this CPU lacks AVX512-BF16");
        assert_eq!(EncoderPrecision::default(), EncoderPrecision::F32);
        return;
    }
    assert_eq!(EncoderPrecision::default(), EncoderPrecision::Bf16);
    let enc = MpnetEncoder::load(&dir).expect("load").with_batch_size(16);
    assert_eq!(enc.precision(), EncoderPrecision::Bf16);
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let emb = enc.embed(&texts).expect("embed");
    for row in emb.rows() {
        assert!((row.dot(&row).sqrt() - 1.0).abs() < 1e-5, "unit norm");
    }
    let (min, mean) = summary(&cosines(&emb, &fx.emb));
    eprintln!("parity bf16: n={} min={min:.7} mean={mean:.7}", texts.len());
    assert!(mean >= 0.9999, "bf16 mean cosine {mean}");
    assert!(min >= 0.999, "bf16 min cosine {min}");

    // Texts are packed without padding and every row's sums run in the same order, so a
    // text's embedding is the same bits alone and in any batch.
    let one = MpnetEncoder::load(&dir).expect("load").with_batch_size(1);
    let picks = [0usize, 150, 190, 196];
    let sub: Vec<&str> = picks.iter().map(|&i| texts[i]).collect();
    let alone = one.embed(&sub).expect("embed");
    for (k, &i) in picks.iter().enumerate() {
        assert_eq!(alone.row(k), emb.row(i), "batch 1 vs batched, line {i}");
    }
}

#[test]
fn precision_names_round_trip() {
    for p in EncoderPrecision::ALL {
        assert_eq!(p.name().parse::<EncoderPrecision>().unwrap(), p);
    }
    assert_eq!(
        "auto".parse::<EncoderPrecision>().unwrap(),
        EncoderPrecision::fastest_available()
    );
    assert!("fp16".parse::<EncoderPrecision>().is_err());
}

#[test]
fn int8_close_to_f32() {
    let (dir, fx) = setup();
    let enc = MpnetEncoder::load_with_precision(&dir, EncoderPrecision::Int8)
        .expect("load")
        .with_batch_size(16);
    let texts: Vec<&str> = fx.texts.iter().map(String::as_str).collect();
    let emb = enc.embed(&texts).expect("embed");
    let (min, mean) = summary(&cosines(&emb, &fx.emb));
    eprintln!("parity int8: n={} min={min:.5} mean={mean:.5}", texts.len());
    assert!(mean >= 0.99, "int8 mean cosine {mean}");
}

#[test]
fn edge_cases_do_not_panic() {
    let (dir, _) = setup();
    let enc = MpnetEncoder::load(&dir).expect("load");
    assert_eq!(enc.embed(&[]).expect("empty batch").dim(), (0, 768));
    let huge = "word ".repeat(200_000);
    let e = enc.embed(&["", "\u{0}\u{1f}", &huge]).expect("edge texts");
    assert!(e.iter().all(|v| v.is_finite()));
    assert_eq!(enc.tokenize(&[""]).unwrap()[0], vec![0, 2]);
}

#[test]
fn load_errors_name_the_problem() {
    let tmp = std::env::temp_dir().join(format!("encdev-missing-{}", std::process::id()));
    let err = MpnetEncoder::load(&tmp).unwrap_err().to_string();
    assert!(err.contains("install-encoder.sh"), "{err}");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("config.json"), "{not json").unwrap();
    std::fs::write(tmp.join("tokenizer.json"), "{}").unwrap();
    let err = MpnetEncoder::load(&tmp).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}
