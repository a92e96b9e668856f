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

// ---- Round two (issue 28): the encoder folder, compressed phrases, manifests against their
// index, int8 scales, model weight magnitudes, `.npy` headers, errors that help.

/// A bank of the first `n` sample phrases with index `spec` and build-time `nprobe`, saved in
/// `dir`.
fn bank_of_kind(dir: &Path, n: usize, spec: &str, nprobe: usize) -> PhraseBank {
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    let options = BankBuildOptions {
        index_spec: spec.to_string(),
        nprobe,
        ..BankBuildOptions::default()
    };
    let mut bank = PhraseBank::build(
        s.texts[..n].to_vec(),
        s.embeddings.slice(ndarray::s![..n, ..]),
        &options,
        |_| {},
    )
    .unwrap();
    bank.save(dir).unwrap();
    bank
}

/// Rewrites the bank's manifest with `edit` applied, digests of the data files refreshed and
/// the checksum re-sealed: a forgery the checksums cannot catch.
fn reseal(dir: &Path, edit: impl FnOnce(&mut Manifest)) {
    let path = dir.join(MANIFEST_FILE);
    let mut m: Manifest = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    let names: Vec<String> = m.files.keys().cloned().collect();
    for name in names {
        m.files.insert(
            name.clone(),
            lightweight_decoder::phrase_bank::FileDigest::of_file(&dir.join(&name)).unwrap(),
        );
    }
    std::fs::write(&path, m.to_json().unwrap()).unwrap();
}

#[test]
fn nprobe_beyond_the_lists_is_capped_or_refused_for_every_index_kind() {
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (spec, nlist) in [
        ("Flat", None),
        ("IVF4,Flat", Some(4)),
        ("IVF4,PQ16x4", Some(4)),
        ("IVF4,PQ16x4fs", Some(4)),
    ] {
        let dir = tmp.path().join(spec.replace(',', "_"));
        // a build-time nprobe beyond the lists is capped at them
        let built = bank_of_kind(&dir, 300, spec, 1_000_000_000);
        assert_eq!(built.manifest().nprobe, nlist, "{spec}");
        // a config's nprobe beyond the lists is capped: decoding works (it used to abort)
        let bank = PhraseBank::load(&dir).unwrap();
        let config = lightweight_decoder::PhraseBankSettings {
            nprobe: Some(1_000_000_000),
            ..lightweight_decoder::PhraseBankSettings::default()
        };
        let d = PhraseBankDecoder::new(bank, config).unwrap();
        let decoded = d.decode(&s.embeddings.row(7).to_vec()).unwrap();
        assert!(!decoded.text.is_empty(), "{spec}");
        // a re-sealed manifest with nprobe 0, or beyond the lists, is refused at load
        for nprobe in [0, 1_000_000_000] {
            reseal(&dir, |m| m.nprobe = Some(nprobe));
            let err = PhraseBank::load(&dir).unwrap_err().to_string();
            match nlist {
                Some(n) => assert!(
                    err.contains(&format!("`nprobe` is {nprobe}"))
                        && err.contains(&format!("1..={n}")),
                    "{spec}: {err}"
                ),
                None => assert!(err.contains("no inverted lists"), "{spec}: {err}"),
            }
            assert!(err.contains("index.faiss"), "{spec}: {err}");
        }
    }
}

#[test]
fn a_manifest_must_describe_the_index_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    bank_of_kind(&dir, 300, "IVF4,Flat", 2);
    // another kind than the file holds
    for spec in [
        "Flat",
        "IVF8,Flat",
        "IVF4,PQ16x4",
        "IVF4,PQ16x4fs",
        "HNSW32",
    ] {
        reseal(&dir, |m| {
            m.index_spec = spec.to_string();
            m.nprobe = (spec.starts_with("IVF")).then_some(2);
        });
        let err = PhraseBank::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("does not match the manifest's index_spec"),
            "{spec}: {err}"
        );
    }
    // a spec FAISS would size by gigabytes is refused before it is built
    reseal(&dir, |m| m.index_spec = "IVF1000000000,Flat".into());
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(err.contains("has a number above"), "{err}");
    // a dimension beyond any embedding's (the factory would size the reference index by
    // it; found by fuzzing)
    reseal(&dir, |m| m.dimension = 2_000_000_000);
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("dimension 2000000000 (expected 1..=65536)"),
        "{err}"
    );
    reseal(&dir, |m| m.dimension = 768);
    // the count and dimension too
    reseal(&dir, |m| {
        m.index_spec = "IVF4,Flat".into();
        m.count = 299;
    });
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(err.contains("manifest says 299"), "{err}");
    // an altered metric field of a Flat index (FAISS threw "Invalid metric" out of a search)
    let flat = tmp.path().join("flat");
    bank_of_kind(&flat, 50, "Flat", 16);
    let index = flat.join("index.faiss");
    let original = std::fs::read(&index).unwrap();
    // "IxFI", d (4 bytes), ntotal, two dummies (8 bytes each), is_trained (1), metric (4)
    assert_eq!(&original[..4], b"IxFI");
    for metric in [1u8, 23] {
        let mut bytes = original.clone();
        bytes[33] = metric;
        std::fs::write(&index, &bytes).unwrap();
        reseal(&flat, |_| {});
        let err = PhraseBank::load(&flat).unwrap_err().to_string();
        assert!(err.contains("index.faiss"), "metric {metric}: {err}");
    }
    let mut bytes = original.clone();
    bytes[33] = 1;
    std::fs::write(&index, &bytes).unwrap();
    reseal(&flat, |_| {});
    let err = PhraseBank::load(&flat).unwrap_err().to_string();
    assert!(err.contains("metric 1, expected 0"), "{err}");
}

#[test]
fn a_phrase_file_bomb_stops_at_the_first_excess_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    small_bank(&dir);
    // 256 MB of empty lines compress to a few kilobytes
    let lines = vec![b'\n'; 256 << 20];
    let bomb = zstd::bulk::compress(&lines, 3).unwrap();
    drop(lines);
    assert!(bomb.len() < 1 << 20);
    std::fs::write(dir.join(PHRASES_FILE), &bomb).unwrap();
    reseal(&dir, |_| {});
    let started = std::time::Instant::now();
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains(PHRASES_FILE) && err.contains("more than 50 lines"),
        "{err}"
    );
    // it stopped early: decompressing all 256 MB takes longer
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // too few lines are named too
    let short = zstd::bulk::compress(b"one\ntwo\n", 3).unwrap();
    std::fs::write(dir.join(PHRASES_FILE), &short).unwrap();
    reseal(&dir, |_| {});
    let err = PhraseBank::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("2 phrases, the manifest's `count` is 50"),
        "{err}"
    );
}

#[test]
fn an_empty_bank_names_its_manifest_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    small_bank(&dir);
    reseal(&dir, |m| m.count = 0);
    let err = PhraseBank::load(&dir).unwrap_err();
    assert!(matches!(err, Error::EmptyBank(_)), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("phrase bank is empty")
            && err.contains("manifest.json")
            && err.contains("`count` is 0"),
        "{err}"
    );
}

mod encoder_folder {
    use super::*;
    use lightweight_decoder::encoder::{Encoder, EncoderOrigin, EncoderPrecision, MpnetEncoder};

    use crate::common::encoder as tiny;

    fn load(dir: &Path) -> Result<MpnetEncoder, String> {
        MpnetEncoder::load(dir).map_err(|e| e.to_string())
    }

    #[test]
    fn the_tiny_fixture_loads_and_embeds() {
        let tmp = tempfile::tempdir().unwrap();
        tiny::write(tmp.path());
        let e = load(tmp.path()).unwrap();
        let rows = e.embed(&["the big dog runs", "a cat", ""]).unwrap();
        assert_eq!(rows.dim(), (3, 8));
        assert!(rows.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn config_ranges_are_checked() {
        for (key, value, expect) in [
            ("layer_norm_eps", "-1", "layer_norm_eps is -1"),
            ("layer_norm_eps", "0", "layer_norm_eps is 0"),
            ("layer_norm_eps", "1e308", "layer_norm_eps is 1e308"),
            ("hidden_size", "0", "hidden_size is 0"),
            ("vocab_size", "100000000", "vocab_size is 100000000"),
            ("num_hidden_layers", "100000", "num_hidden_layers is 100000"),
            ("pad_token_id", "99", "pad_token_id is 99"),
            (
                "max_position_embeddings",
                "1",
                "max_position_embeddings is 1",
            ),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            tiny::write(tmp.path());
            let mut config: serde_json::Value = serde_json::from_str(tiny::CONFIG).unwrap();
            config[key] = serde_json::from_str(value).unwrap();
            std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
            let err = load(tmp.path()).unwrap_err();
            assert!(
                err.contains(expect)
                    && err.contains("config.json")
                    && err.contains(&tmp.path().display().to_string()),
                "{key}={value}: {err}"
            );
        }
    }

    #[test]
    fn safetensors_shapes_are_checked_against_the_config_before_reading() {
        // a header declaring a 3 GB tensor the file does not hold
        let tmp = tempfile::tempdir().unwrap();
        tiny::write(tmp.path());
        let header = r#"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[1000000,768],"data_offsets":[0,3072000000]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 64]);
        std::fs::write(tmp.path().join("model.safetensors"), &bytes).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            err.contains("model.safetensors") && err.contains("claims bytes"),
            "{err}"
        );
        // a consistent file whose word table is larger than config.json implies
        let mut tensors = tiny::tensors();
        tensors.insert(
            "embeddings.word_embeddings.weight".into(),
            candle_core::Tensor::zeros((64, 8), candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        );
        candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            err.contains("embeddings.word_embeddings.weight")
                && err.contains("config.json vs model.safetensors")
                && err.contains("[16, 8]")
                && err.contains("[64, 8]"),
            "{err}"
        );
        // an unused tensor larger than anything the model reads
        let mut tensors = tiny::tensors();
        tensors.insert(
            "pooler.dense.weight".into(),
            candle_core::Tensor::zeros(
                (100, 100),
                candle_core::DType::F32,
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        );
        candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            err.contains("pooler.dense.weight") && err.contains("at most"),
            "{err}"
        );
    }

    #[test]
    fn non_finite_weights_and_embeddings_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        tiny::write(tmp.path());
        let mut tensors = tiny::tensors();
        let nan = candle_core::Tensor::full(f32::NAN, (8,), &candle_core::Device::Cpu).unwrap();
        tensors.insert("embeddings.LayerNorm.bias".into(), nan);
        candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            err.contains("non-finite weight") && err.contains("model.safetensors"),
            "{err}"
        );
        // finite weights whose sums overflow give non-finite embeddings: refused, not written
        let mut tensors = tiny::tensors();
        let huge = candle_core::Tensor::full(3e38f32, (16, 8), &candle_core::Device::Cpu).unwrap();
        tensors.insert("embeddings.word_embeddings.weight".into(), huge);
        candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
        let e = load(tmp.path()).unwrap();
        let err = e.embed(&["the dog"]).unwrap_err().to_string();
        assert!(err.contains("non-finite embedding"), "{err}");
    }

    #[test]
    fn errors_name_the_folder_and_where_it_came_from() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no-such-encoder");
        let err = MpnetEncoder::load_from(
            &missing,
            EncoderOrigin::Flag("--encoder"),
            EncoderPrecision::F32,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("given by --encoder"),
            "{err}"
        );
        // through the command line: the flag, then the environment variable
        let o = Command::new(env!("CARGO_BIN_EXE_lwdec"))
            .args(["decode", "--text", "a dog", "--encoder"])
            .arg(&missing)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("no-such-encoder") && e.contains("given by --encoder"),
            "{e}"
        );
        let o = Command::new(env!("CARGO_BIN_EXE_lwdec"))
            .args(["decode", "--text", "a dog"])
            .env("LWDEC_ENCODER_DIR", &missing)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains("no-such-encoder") && e.contains("from $LWDEC_ENCODER_DIR"),
            "{e}"
        );
        // a syntax error inside the tokenizer's `decoder` made the tokenizers crate panic
        // (found by fuzzing): refused as a corrupt tokenizer.json
        tiny::write(tmp.path());
        let broken = tiny::TOKENIZER.replace(r#""decoder": null"#, r#""decoder": {"type": nul}"#);
        assert_ne!(broken, tiny::TOKENIZER);
        std::fs::write(tmp.path().join("tokenizer.json"), broken).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            err.contains("tokenizer.json") && err.contains("not JSON"),
            "{err}"
        );
        // a vocabulary mismatch names both files
        tiny::write(tmp.path());
        let mut config: serde_json::Value = serde_json::from_str(tiny::CONFIG).unwrap();
        config["hidden_size"] = 16.into();
        std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(err.contains("config.json vs model.safetensors"), "{err}");
    }
}

#[test]
fn negative_int8_scales_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("q.npy");
    let s = dir.path().join("s.npy");
    npy(
        &q,
        "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 768), }",
        &[1u8; 2 * 768],
    );
    let scales: Vec<u8> = [0.5f32, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    npy(
        &s,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
        &scales,
    );
    let err = load_embeddings(&q, Some(&s)).unwrap_err().to_string();
    assert!(
        err.contains("s.npy") && err.contains("row 1 has scale -0.5"),
        "{err}"
    );
    // the column-major path too
    npy(
        &q,
        "{'descr': '|i1', 'fortran_order': True, 'shape': (2, 768), }",
        &[1u8; 2 * 768],
    );
    let err = load_embeddings(&q, Some(&s)).unwrap_err().to_string();
    assert!(err.contains("row 1 has scale -0.5"), "{err}");
    npy(
        &q,
        "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 768), }",
        &[1u8; 2 * 768],
    );
    let o = lwdec(&[
        "decode",
        "--input",
        q.to_str().unwrap(),
        "--scale",
        s.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("row 1 has scale -0.5"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_npy_header_must_be_a_whole_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    npy(
        &path,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 768), ",
        &[0u8; 768 * 4],
    );
    let err = load_embeddings(&path, None).unwrap_err().to_string();
    assert!(err.contains("is not a dictionary"), "{err}");
}

#[test]
fn absurd_model_weights_are_refused_at_export() {
    let model = GenerativeModel::new(GenerativeConfig::default(), 3).unwrap();
    {
        let vars = model.varmap().data().lock().unwrap();
        let w = &vars["layer.up.weight"];
        let huge = candle_core::Tensor::full(3e38f32, w.shape(), w.device()).unwrap();
        w.set(&huge).unwrap();
    }
    for precision in [Precision::F32, Precision::Q8] {
        let err = InferenceModel::from_model(&model, precision)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("magnitude 3e38") && err.contains("bound 1024"),
            "{precision:?}: {err:?}"
        );
    }
    // the bundled model is well inside the bound
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model/generative.q4.gguf");
    assert!(InferenceModel::load(&bundled).is_ok());
}

#[test]
fn os_errors_say_what_was_being_done_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // an output under a path that is a file
    let input = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/ood.i8.npy");
    let scale = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/ood.scale.npy");
    let out = file.join("out.jsonl");
    let mut args = vec!["decode", "--input", input.to_str().unwrap()];
    if scale.exists() {
        args.extend(["--scale", scale.to_str().unwrap()]);
    }
    args.extend(["--output", out.to_str().unwrap()]);
    let o = lwdec(&args);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("cannot create a temporary file in") && e.contains("a-file"),
        "{e}"
    );
    // a bank saved over a file
    let s = SampleSet::bundled(WORDNET_SAMPLE).unwrap();
    let mut bank = PhraseBank::build(
        s.texts[..20].to_vec(),
        s.embeddings.slice(ndarray::s![..20, ..]),
        &BankBuildOptions::default(),
        |_| {},
    )
    .unwrap();
    let err = bank.save(&file).unwrap_err().to_string();
    assert!(
        err.contains("a-file") && err.contains("exists and is not a folder"),
        "{err}"
    );
}

#[test]
fn numeric_flags_are_checked_before_anything_loads() {
    // the input does not exist: a flag error must come first, and name the flag
    for (value, expect) in [
        ("NaN", "not a finite number"),
        ("inf", "not a finite number"),
        ("-1", "refine.fluency_weight must be in [0, 10]"),
    ] {
        let o = lwdec(&[
            "decode",
            "--input",
            "/nonexistent/in.npy",
            "--verify",
            "--refine",
            &format!("--fluency-weight={value}"),
        ]);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains(expect), "{value}: {e}");
        assert!(
            !e.contains("in.npy") || e.contains("--fluency-weight"),
            "{value}: {e}"
        );
        assert!(!e.contains("encoder"), "{value}: {e}");
    }
    let o = lwdec(&[
        "decode",
        "--input",
        "/nonexistent/in.npy",
        "--mbr-temperature",
        "nan",
    ]);
    assert!(stderr(&o).contains("not a finite number"), "{}", stderr(&o));
}
