//! Hostile inputs (issue 13): each reproduces a failure found by trying malformed or extreme
//! inputs, and now gets a clear error (or correct output), never a panic, an abort, a hang or
//! a silently wrong result.

use std::path::Path;
use std::process::{Command, Output};

use lightweight_decoder::eval::samples::{SampleSet, VALIDATION, WORDNET_SAMPLE};
use lightweight_decoder::generative::{
    GenerativeConfig, GenerativeModel, InferenceModel, Precision,
};
use lightweight_decoder::phrase_bank::{BankBuildOptions, Manifest, MANIFEST_FILE, PHRASES_FILE};
use lightweight_decoder::{
    load_embeddings, Decoder, DecoderConfig, Error, PhraseBank, PhraseBankDecoder, UnitEmbedding,
};

mod common;
use common::write_raw_npy as npy;

fn lwdec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lwdec"))
        .args(args)
        .output()
        .expect("lwdec runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn npy_headers_claiming_more_rows_than_the_file_holds_are_errors_not_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let body = vec![0u8; 61_440];
    let scale = dir.path().join("s.npy");
    npy(
        &scale,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (80,), }",
        &[0; 320],
    );
    for rows in [10_000_000u64, 1_000_000_000_000] {
        let f32_path = dir.path().join("f.npy");
        let header =
            format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, 768), }}");
        npy(&f32_path, &header, &body);
        let err = load_embeddings(&f32_path, None).unwrap_err();
        assert!(matches!(err, Error::Npy { .. }), "{err}");
        assert!(err.to_string().contains("claims shape"), "{err}");
        let i8_path = dir.path().join("q.npy");
        let header =
            format!("{{'descr': '|i1', 'fortran_order': False, 'shape': ({rows}, 768), }}");
        npy(&i8_path, &header, &body);
        assert!(load_embeddings(&i8_path, Some(&scale)).is_err());
        // the same through the command line: decode and bank build
        let o = lwdec(&["decode", "--input", f32_path.to_str().unwrap()]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("claims shape"), "{}", stderr(&o));
        let phrases = dir.path().join("p.txt");
        std::fs::write(&phrases, "a\nb\n").unwrap();
        let out = dir.path().join("bank");
        let o = lwdec(&[
            "bank",
            "build",
            "--phrases",
            phrases.to_str().unwrap(),
            "--embeddings",
            f32_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("claims shape"), "{}", stderr(&o));
    }
}

#[test]
fn int8_embeddings_without_their_scales_say_so() {
    let s = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/ood.i8.npy");
    let err = load_embeddings(&s, None).unwrap_err().to_string();
    assert!(err.contains("--scale"), "{err}");
    assert!(!err.contains("descriptor"), "{err}");
}

#[test]
fn config_sizes_and_unknown_keys_are_rejected_with_reasons() {
    for (json, expect) in [
        (r#"{"cache": {"capacity": 1000000000}}"#, "cache.capacity"),
        (
            r#"{"cache": {"capacity": 18446744073709551615}}"#,
            "cache.capacity",
        ),
        (
            r#"{"cache": {"quantization_step": 0.5}}"#,
            "cache.quantization_step",
        ),
        (
            r#"{"similarity_treshold": 0.5}"#,
            "did you mean `similarity_threshold`?",
        ),
        (r#"{"beam": {"widht": 4}}"#, "did you mean `width`?"),
    ] {
        let err = DecoderConfig::from_json(json).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{json}: {err}");
        assert!(err.to_string().contains(expect), "{json}: {err}");
    }
    // the coarsest allowed step still tells the bundled sample phrases apart
    let config = DecoderConfig::from_json(r#"{"cache": {"quantization_step": 0.015625}}"#);
    let d = PhraseBankDecoder::with_default_bank(config.unwrap()).unwrap();
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    let rows = s.embeddings.slice(ndarray::s![..200, ..]);
    let decoded = d.batch_decode(rows).unwrap();
    let exact = decoded
        .iter()
        .zip(&s.texts)
        .filter(|(d, t)| d.text.eq_ignore_ascii_case(t))
        .count();
    assert!(exact >= 198, "{exact} of 200 in-bank phrases recovered");
}

#[test]
fn model_metadata_is_bounded_and_covered_by_the_checksum() {
    let bad = GenerativeConfig {
        depth: 1_000_000,
        ..GenerativeConfig::default()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("depth must be at most 64"), "{err}");
    // a file whose configuration was edited (depth 4 -> 1000) fails its checksum
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let model = GenerativeModel::new(GenerativeConfig::default(), 3).unwrap();
    InferenceModel::from_model(&model, Precision::Q8)
        .unwrap()
        .save(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let needle = b"\"depth\":4,";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the config is stored as JSON");
    let mut edited = bytes[..at].to_vec();
    edited.extend_from_slice(b"\"depth\":9,");
    edited.extend_from_slice(&bytes[at + needle.len()..]);
    std::fs::write(&path, &edited).unwrap();
    let err = InferenceModel::load(&path).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn non_finite_weights_are_rejected() {
    let model = GenerativeModel::new(GenerativeConfig::default(), 3).unwrap();
    {
        let vars = model.varmap().data().lock().unwrap();
        let w = &vars["layer.up.weight"];
        let nan = candle_core::Tensor::full(f32::NAN, w.shape(), w.device()).unwrap();
        w.set(&nan).unwrap();
    }
    for precision in [Precision::F32, Precision::Q8] {
        let err = InferenceModel::from_model(&model, precision)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("non-finite"), "{precision:?}: {err:?}");
    }
}

/// A bank of the first 50 sample phrases saved in `dir`.
fn small_bank(dir: &Path) -> PhraseBank {
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    let mut bank = PhraseBank::build(
        s.texts[..50].to_vec(),
        s.embeddings.slice(ndarray::s![..50, ..]),
        &BankBuildOptions::default(),
        |_| {},
    )
    .unwrap();
    bank.save(dir).unwrap();
    bank
}

#[test]
fn the_manifest_is_checksummed_and_confined_to_the_bank_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    small_bank(&dir);
    let path = dir.join(MANIFEST_FILE);
    let original = std::fs::read_to_string(&path).unwrap();
    // an edited index spec (it would shift the confidences) is detected
    let edited = original.replace("\"Flat\"", "\"IVF1024,PQ96\"");
    assert_ne!(edited, original);
    std::fs::write(&path, &edited).unwrap();
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(err.contains("manifest checksum mismatch"), "{err}");
    // a sealed manifest that lists files outside the bank is refused before any is opened
    let manifest: Manifest = serde_json::from_str(&original).unwrap();
    for name in ["/dev/zero", "../outside.txt", "extra.bin"] {
        let mut m = manifest.clone();
        let digest = m.files.values().next().unwrap().clone();
        m.files.insert(name.to_string(), digest);
        std::fs::write(&path, m.to_json().unwrap()).unwrap();
        let err = PhraseBank::load(&dir).unwrap_err().to_string();
        assert!(err.contains("holds exactly"), "{name}: {err}");
    }
    // a data file replaced by a link is refused
    std::fs::write(&path, &original).unwrap();
    assert!(PhraseBank::load(&dir).is_ok());
    let phrases = dir.join(PHRASES_FILE);
    let moved = tmp.path().join(PHRASES_FILE);
    std::fs::rename(&phrases, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &phrases).unwrap();
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_corrupt_index_names_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    small_bank(&dir);
    let index = dir.join("index.faiss");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&index, &bytes).unwrap();
    // the checksum catches it first; with a resealed manifest FAISS itself fails
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(err.contains("index.faiss"), "{err}");
    let path = dir.join(MANIFEST_FILE);
    let mut m: Manifest = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m.files.insert(
        "index.faiss".into(),
        lightweight_decoder::phrase_bank::FileDigest::of_file(&index).unwrap(),
    );
    std::fs::write(&path, m.to_json().unwrap()).unwrap();
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("index.faiss") && err.contains("FAISS"),
        "{err}"
    );
}

#[test]
fn a_bank_replaced_while_it_is_read_is_never_seen_half_done() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    let mut bank = small_bank(&dir);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                bank.save(&dir).unwrap();
            }
        });
        for i in 0..300 {
            let loaded = PhraseBank::load(&dir);
            assert!(loaded.is_ok(), "load {i}: {}", loaded.unwrap_err());
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["bank"], "no staging folder is left behind");
}

#[test]
fn huge_finite_values_have_a_direction() {
    let mut v = vec![0f32; 768];
    v[0] = 3e38;
    v[1] = -3e38;
    let unit = UnitEmbedding::new(&v, 768).unwrap();
    assert!((unit[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    let d = PhraseBankDecoder::with_default_bank(DecoderConfig::default()).unwrap();
    let s = SampleSet::bundled(VALIDATION).unwrap();
    // a norm of about 5e38, beyond f32: scaled in f64
    let scaled: Vec<f32> = s
        .embeddings
        .row(0)
        .iter()
        .map(|x| x * 1e19 * 5e19)
        .collect();
    assert!(scaled.iter().all(|v| v.is_finite()));
    let plain = d.decode(&s.embeddings.row(0).to_vec()).unwrap();
    assert_eq!(d.decode(&scaled).unwrap().text, plain.text);
}

#[test]
fn calibrate_and_eval_refuse_empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.npy");
    npy(
        &input,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 768), }",
        &[],
    );
    let refs = dir.path().join("refs.txt");
    std::fs::write(&refs, "").unwrap();
    let out = dir.path().join("config.json");
    let (input, refs) = (input.to_str().unwrap(), refs.to_str().unwrap());
    let o = lwdec(&["eval", "--input", input, "--reference", refs]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no rows"), "{}", stderr(&o));
    let o = lwdec(&[
        "calibrate",
        "--input",
        input,
        "--reference",
        refs,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no labelled rows"), "{}", stderr(&o));
    assert!(!out.exists(), "no rule fitted on nothing is written");
}

#[test]
fn a_stopped_decode_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    // 40,000 distinct rows: several seconds of decoding
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let rows = lightweight_decoder::eval::perturb_rows(
        &ndarray::concatenate(ndarray::Axis(0), &vec![s.embeddings.view(); 20]).unwrap(),
        0.95,
        1,
    );
    let input = dir.path().join("in.npy");
    ndarray_npy::write_npy(&input, &rows).unwrap();
    let output = dir.path().join("out.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lwdec"))
        .args(["decode", "--input", input.to_str().unwrap()])
        .args(["--output", output.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: sending SIGTERM to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["in.npy"], "only the input remains: {names:?}");
}

#[test]
fn streamed_decoding_gives_the_same_lines_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = SampleSet::bundled(lightweight_decoder::eval::samples::SESSIONS_TEST).unwrap();
    // 5 copies: 5,205 rows, more than one chunk, sessions kept whole
    let copies = 5;
    let x = ndarray::concatenate(ndarray::Axis(0), &vec![s.embeddings.view(); copies]).unwrap();
    let n = s.embeddings.nrows();
    let boundaries: Vec<usize> = (0..copies)
        .flat_map(|c| {
            s.boundaries
                .clone()
                .unwrap()
                .into_iter()
                .map(move |b| b + c * n)
        })
        .collect();
    let input = dir.path().join("in.npy");
    ndarray_npy::write_npy(&input, &x).unwrap();
    let output = dir.path().join("out.jsonl");
    let joined = boundaries
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let o = lwdec(&[
        "decode",
        "--input",
        input.to_str().unwrap(),
        "--boundaries",
        &joined,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d = PhraseBankDecoder::with_default_bank(DecoderConfig::default()).unwrap();
    let whole = d.batch_decode_with_sessions(x.view(), &boundaries).unwrap();
    assert_eq!(lines.len(), whole.len());
    for (row, (line, d)) in lines.iter().zip(&whole).enumerate() {
        assert_eq!(line["row"], row);
        assert_eq!(line["text"], d.text.as_str(), "row {row}");
    }
}
