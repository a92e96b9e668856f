//! `lwdec embed` on real bundled texts: the rows equal the library's [`MpnetEncoder`] rows
//! (the same batches, so bit for bit), an interrupted run resumes from its chunk parts to the
//! same file, and a chunk whose lines changed is embedded again rather than resumed.
//! `lwdec decode --text` decodes a text through the encoder, and `lwdec bank build` without
//! `--embeddings` embeds its phrases with it.
//!
//! Skips with a note only when the encoder's model folder is missing (the test command
//! installs it: `bash scripts/install-encoder.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lightweight_decoder::encoder::{Encoder, MpnetEncoder};
use lightweight_decoder::eval::samples::samples_dir;
use ndarray::Array2;

/// Lines per chunk in these runs: the texts make [`CHUNKS`] chunks.
const CHUNK: usize = 12;
const CHUNKS: usize = 4;

fn encoder_dir() -> Option<PathBuf> {
    let d = MpnetEncoder::default_location();
    if d.join("config.json").is_file() {
        Some(d)
    } else {
        eprintln!(
            "SKIPPED: the encoder is not installed at {} (run `bash scripts/install-encoder.sh`)",
            d.display()
        );
        None
    }
}

/// 48 real texts: WordNet glosses of the validation sample and software descriptions (ood).
fn texts() -> Vec<String> {
    let read = |name: &str, n: usize| -> Vec<String> {
        std::fs::read_to_string(samples_dir().join(name))
            .unwrap()
            .lines()
            .take(n)
            .map(str::to_string)
            .collect()
    };
    let mut t = read("validation.txt", 36);
    t.extend(read("ood.txt", 12));
    assert_eq!(t.len(), CHUNK * CHUNKS);
    t
}

fn embed_cmd(dir: &Path, phrases: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lwdec"));
    c.args(["embed", "--phrases"])
        .arg(phrases)
        .arg("--out")
        .arg(out)
        .arg("--encoder")
        .arg(dir)
        .args(["--batch", "64", "--chunk", &CHUNK.to_string()]);
    c
}

fn run(mut c: Command) -> Output {
    let o = c.output().expect("lwdec runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn read(path: &Path) -> Array2<f32> {
    lightweight_decoder::load_embeddings(path, None).expect("an N x 768 float32 .npy")
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// The library's rows, chunk by chunk as `lwdec embed` batches them.
fn library(enc: &MpnetEncoder, texts: &[String]) -> Array2<f32> {
    let mut rows = Vec::new();
    for chunk in texts.chunks(CHUNK) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        rows.push(enc.embed(&refs).unwrap());
    }
    let views: Vec<_> = rows.iter().map(|a| a.view()).collect();
    ndarray::concatenate(ndarray::Axis(0), &views).unwrap()
}

fn min_cosine(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    a.rows()
        .into_iter()
        .zip(b.rows())
        .map(|(x, y)| x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt()))
        .fold(f32::INFINITY, f32::min)
}

fn resumed(o: &Output) -> usize {
    let err = String::from_utf8_lossy(&o.stderr);
    err.split("resumed ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn part_files(parts: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(parts)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.starts_with('.') && name.ends_with(".npy")
    });
    v.sort();
    v
}

#[test]
fn embed_matches_the_library_and_resumes() {
    let Some(dir) = encoder_dir() else { return };
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut lines = texts();
    let phrases = tmp.path().join("p.txt");
    write_lines(&phrases, &lines);
    let enc = MpnetEncoder::load(&dir).unwrap().with_batch_size(64);
    let want = library(&enc, &lines);

    // an uninterrupted run: the library's rows, bit for bit; the parts are gone
    let a = tmp.path().join("a.npy");
    let o = run(embed_cmd(&dir, &phrases, &a));
    assert_eq!(resumed(&o), 0);
    let got = read(&a);
    assert_eq!(got.dim(), (lines.len(), 768));
    assert!(min_cosine(&got, &want) >= 0.99999);
    assert_eq!(got, want, "rows differ from MpnetEncoder::embed");
    assert!(!tmp.path().join("a.npy.parts").exists());

    // a run that fails at the merge (the output path is a folder) keeps every chunk part
    let b = tmp.path().join("b.npy");
    std::fs::create_dir(&b).unwrap();
    let o = embed_cmd(&dir, &phrases, &b).output().unwrap();
    assert!(!o.status.success());
    let parts = tmp.path().join("b.npy.parts");
    let files = part_files(&parts);
    assert_eq!(files.len(), CHUNKS, "{files:?}");
    std::fs::remove_dir(&b).unwrap();
    // as if interrupted during chunk 2: chunks 2.. absent, a half-written temporary file
    for f in &files[2..] {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::write(parts.join(".lwdec-tmp-half"), b"\x93NUMPY").unwrap();
    // and the first line changed since: chunk 0 must be embedded again, not resumed
    lines[0] = "a small boat propelled by oars".to_string();
    write_lines(&phrases, &lines);
    let o = run(embed_cmd(&dir, &phrases, &b));
    assert_eq!(resumed(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let got = read(&b);
    let mut want = want;
    let chunk0: Vec<&str> = lines[..CHUNK].iter().map(String::as_str).collect();
    want.slice_mut(ndarray::s![..CHUNK, ..])
        .assign(&enc.embed(&chunk0).unwrap());
    assert_eq!(got, want, "resumed rows differ");
    assert!(!parts.exists(), "parts removed after the merge");

    // a run killed after its first part resumes from what it left to the same file
    let c = tmp.path().join("c.npy");
    let parts = tmp.path().join("c.npy.parts");
    let mut child = embed_cmd(&dir, &phrases, &c)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while part_files(&parts).is_empty() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let left = part_files(&parts).len();
    let o = run(embed_cmd(&dir, &phrases, &c));
    assert_eq!(resumed(&o), left, "every part the kill left is resumed");
    assert_eq!(read(&c), want, "rows after a kill and a resume");
    eprintln!(
        "embed test: {} rows, kill left {left} parts, {:.1} s",
        lines.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn embed_rejects_bad_input_cleanly() {
    let Some(dir) = encoder_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e.npy");
    // not UTF-8
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, b"ok\n\xff\xfe\n").unwrap();
    let o = embed_cmd(&dir, &bad, &out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.txt"));
    // a missing encoder names the install script
    let empty = tmp.path().join("no-model");
    let good = tmp.path().join("good.txt");
    std::fs::write(&good, "a line\n").unwrap();
    let o = embed_cmd(&empty, &good, &out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("install-encoder.sh"));
    assert!(!out.exists());
    // an empty file gives 0 x 768
    let none = tmp.path().join("none.txt");
    std::fs::write(&none, "").unwrap();
    run(embed_cmd(&dir, &none, &out));
    assert_eq!(read(&out).dim(), (0, 768));
}

#[test]
fn decode_text_goes_through_the_encoder() {
    let Some(dir) = encoder_dir() else { return };
    // phrases of the bundled bank decode to themselves from their own embedding
    let sample = std::fs::read_to_string(samples_dir().join("wordnet_sample.txt")).unwrap();
    let phrases: Vec<&str> = sample.lines().take(2).collect();
    let o = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_lwdec"));
        c.args(["decode", "--encoder"])
            .arg(&dir)
            .args(["--text", phrases[0], phrases[1]]);
        c
    });
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (i, (line, phrase)) in lines.iter().zip(&phrases).enumerate() {
        assert_eq!(line["row"], i);
        assert_eq!(line["input"], *phrase);
        assert_eq!(
            line["text"].as_str().unwrap().to_lowercase(),
            phrase.to_lowercase()
        );
        assert_eq!(line["source"]["decoder"], "phrase_bank");
    }
}

#[test]
fn bank_build_embeds_phrases_without_embeddings() {
    let Some(dir) = encoder_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ood = std::fs::read_to_string(samples_dir().join("ood.txt")).unwrap();
    let phrases: Vec<String> = ood.lines().skip(100).take(12).map(str::to_string).collect();
    let file = tmp.path().join("p.txt");
    write_lines(&file, &phrases);
    let bank = tmp.path().join("bank");
    let mut c = Command::new(env!("CARGO_BIN_EXE_lwdec"));
    c.args(["bank", "build", "--phrases"])
        .arg(&file)
        .arg("--encoder")
        .arg(&dir)
        .args(["--index", "Flat", "--out"])
        .arg(&bank);
    run(c);
    // each phrase, embedded again by `decode --text`, finds itself in the new bank
    let mut c = Command::new(env!("CARGO_BIN_EXE_lwdec"));
    c.args(["decode", "--method", "greedy", "--encoder"])
        .arg(&dir)
        .arg("--bank")
        .arg(&bank)
        .args(&phrases[..3]);
    let o = run(c);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, phrase) in lines.iter().zip(&phrases) {
        assert_eq!(line["input"], phrase.as_str());
        assert_eq!(line["candidates"][0]["text"], phrase.as_str(), "{line}");
    }
    // a missing encoder is an error naming the install script
    let mut c = Command::new(env!("CARGO_BIN_EXE_lwdec"));
    c.args(["bank", "build", "--phrases"])
        .arg(&file)
        .arg("--encoder")
        .arg(tmp.path().join("absent"))
        .arg("--out")
        .arg(tmp.path().join("bank2"));
    let o = c.output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("install-encoder.sh"));
}

/// `lwdec eval --encoder DIR` reports the round-trip cosine of each decoder's texts as the
/// library's encoder computes it (`eval::roundtrip_cosines`): the figure `scripts/reembed.py`
/// computes with sentence-transformers (within 3e-5 on samples/ood2's 200 rows in bf16, 2e-8
/// in f32; session 24).
#[test]
fn eval_reports_the_round_trip_of_the_librarys_encoder() {
    use lightweight_decoder::eval::samples::SampleSet;
    use lightweight_decoder::eval::{roundtrip_cosines, CosineSummary};
    let Some(dir) = encoder_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (report, decoded) = (tmp.path().join("r.json"), tmp.path().join("d.jsonl"));
    let s = samples_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_lwdec"))
        .arg("eval")
        .arg("--input")
        .arg(s.join("ood2.i8.npy"))
        .arg("--scale")
        .arg(s.join("ood2.scale.npy"))
        .arg("--reference")
        .arg(s.join("ood2.txt"))
        .args(["--limit", "24", "--decoder", "phrase-bank", "--encoder"])
        .arg(&dir)
        .arg("--output")
        .arg(&report)
        .arg("--decoded")
        .arg(&decoded)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("round trip"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let printed = &report["decoders"][0]["roundtrip_cosine"];
    let texts: Vec<String> = std::fs::read_to_string(&decoded)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].to_string())
        .map(|t| serde_json::from_str::<String>(&t).unwrap())
        .collect();
    assert_eq!(texts.len(), 24);
    let sample = SampleSet::bundled("ood2").unwrap();
    let rows = sample.embeddings.slice(ndarray::s![..24, ..]);
    let encoder = MpnetEncoder::load(&dir).unwrap();
    let cosines = roundtrip_cosines(&encoder, rows, &texts).unwrap();
    let ours = CosineSummary::of(&cosines);
    for (key, value) in [
        ("mean", ours.mean),
        ("p10", ours.p10),
        ("median", ours.median),
        ("p90", ours.p90),
    ] {
        let shown = printed[key].as_f64().unwrap();
        assert!(
            (shown - value).abs() < 1e-6,
            "{key}: {shown} against {value}"
        );
    }
    assert_eq!(printed["rows"], 24);
    assert!(ours.mean > 0.4 && ours.mean < 1.0, "{ours:?}");
}
