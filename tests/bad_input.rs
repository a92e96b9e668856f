//! Every kind of bad input gets a clear error naming the problem, never a panic.

mod common;

use std::path::Path;

use lightweight_decoder::load_embeddings;
use lightweight_decoder::phrase_bank::{
    BankBuildOptions, PhraseBank, INDEX_FILE, MANIFEST_FILE, PHRASES_FILE,
};
use lightweight_decoder::{
    AssemblyMethod, Decoder, DecoderConfig, Error, PhraseBankDecoder, ThresholdMode,
};
use ndarray::Array2;

fn small_decoder() -> PhraseBankDecoder {
    PhraseBankDecoder::new(common::small_bank(300), DecoderConfig::default()).unwrap()
}

#[test]
fn bad_vectors_are_rejected() {
    let d = small_decoder();
    let good = common::sample().embeddings.row(0).to_vec();
    let err = d.decode(&good[..700]).unwrap_err();
    assert!(matches!(
        err,
        Error::DimensionMismatch {
            expected: 768,
            got: 700
        }
    ));
    assert!(err.to_string().contains("dimension 700, expected 768"));
    let mut nan = good.clone();
    nan[5] = f32::NAN;
    assert!(matches!(
        d.decode(&nan),
        Err(Error::NonFinite { position: 5, .. })
    ));
    let mut inf = good.clone();
    inf[9] = f32::NEG_INFINITY;
    assert!(matches!(
        d.decode(&inf),
        Err(Error::NonFinite { position: 9, .. })
    ));
    let err = d.decode(&[0.0; 768]).unwrap_err();
    assert!(matches!(err, Error::ZeroVector { .. }), "{err}");
    assert!(d.decode(&good).is_ok());
    let s = d.statistics();
    assert_eq!((s.errors, s.decoded), (4, 1));
}

#[test]
fn bad_rows_in_a_batch_are_named() {
    let d = small_decoder();
    let mut batch = common::sample()
        .embeddings
        .slice(ndarray::s![..4, ..])
        .to_owned();
    batch[[2, 0]] = f32::INFINITY;
    let err = d.batch_decode(batch.view()).unwrap_err();
    assert!(matches!(err, Error::AtRow { row: 2, .. }), "{err}");
    let wrong = Array2::<f32>::ones((3, 10));
    assert!(matches!(
        d.batch_decode(wrong.view()),
        Err(Error::DimensionMismatch {
            expected: 768,
            got: 10
        })
    ));
}

#[test]
fn bad_boundaries_are_rejected() {
    let d = small_decoder();
    let batch = common::sample()
        .embeddings
        .slice(ndarray::s![..6, ..])
        .to_owned();
    for b in [vec![0, 3, 3], vec![4, 2], vec![0, 6], vec![9]] {
        let err = d.batch_decode_with_sessions(batch.view(), &b).unwrap_err();
        assert!(matches!(err, Error::InvalidBoundaries(_)), "{b:?}: {err}");
    }
}

#[test]
fn empty_bank_is_rejected() {
    let err = PhraseBank::build(
        vec![],
        Array2::<f32>::zeros((0, 768)).view(),
        &BankBuildOptions::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::EmptyBank(_)));
    assert!(err.to_string().contains("no phrases were given"), "{err}");
    let s = common::sample();
    let err = PhraseBank::build(
        s.texts[..3].to_vec(),
        s.embeddings.slice(ndarray::s![..2, ..]),
        &BankBuildOptions::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("3 phrases but 2 embedding rows"));
}

fn saved_bank(dir: &Path) {
    common::small_bank(200).save(dir).unwrap();
}

fn corrupt_and_load(change: impl FnOnce(&Path)) -> Error {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bank");
    saved_bank(&dir);
    assert!(PhraseBank::load(&dir).is_ok());
    change(&dir);
    PhraseBank::load(&dir).unwrap_err()
}

#[test]
fn missing_or_corrupt_bank_files_are_detected() {
    let err = PhraseBank::load(Path::new("/nonexistent/bank")).unwrap_err();
    assert!(matches!(err, Error::CorruptBank { .. }), "{err}");

    let err = corrupt_and_load(|d| {
        let p = d.join(INDEX_FILE);
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    });
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    let err = corrupt_and_load(|d| {
        let p = d.join(PHRASES_FILE);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    });
    assert!(err.to_string().contains("size"), "{err}");

    let err = corrupt_and_load(|d| std::fs::remove_file(d.join(INDEX_FILE)).unwrap());
    assert!(err.to_string().contains("missing file"), "{err}");

    let err = corrupt_and_load(|d| std::fs::write(d.join(MANIFEST_FILE), "{not json").unwrap());
    assert!(err.to_string().contains("malformed manifest"), "{err}");

    // an edited count breaks the manifest's own checksum
    let err = corrupt_and_load(|d| {
        let p = d.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"count\": 200", "\"count\": 201")).unwrap();
    });
    assert!(
        err.to_string().contains("manifest checksum mismatch"),
        "{err}"
    );
    // a resealed manifest with the wrong count disagrees with the files
    let err = corrupt_and_load(|d| {
        let p = d.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&p).unwrap();
        let mut m: lightweight_decoder::phrase_bank::Manifest =
            serde_json::from_str(&text).unwrap();
        m.count = 201;
        std::fs::write(&p, m.to_json().unwrap()).unwrap();
    });
    assert!(err.to_string().contains("manifest says 201"), "{err}");
}

#[test]
fn saving_is_atomic_and_refuses_foreign_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("notes");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("todo.txt"), "keep me").unwrap();
    let mut bank = common::small_bank(50);
    let err = bank.save(&foreign).unwrap_err();
    assert!(err.to_string().contains("not a phrase bank"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("todo.txt")).unwrap(),
        "keep me"
    );
    let dir = tmp.path().join("bank");
    bank.save(&dir).unwrap();
    bank.save(&dir).unwrap(); // replacing a bank works
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(PhraseBank::load(&dir).unwrap().len(), 50);
}

#[test]
fn malformed_npy_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.npy");
    std::fs::write(&p, b"\x93NUMPY garbage").unwrap();
    let err = load_embeddings(&p, None).unwrap_err();
    assert!(matches!(err, Error::Npy { .. }), "{err}");
    let err = load_embeddings(&tmp.path().join("absent.npy"), None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn bad_config_values_are_rejected() {
    for (json, what) in [
        (r#"{"top_k": 0}"#, "top_k"),
        (r#"{"similarity_threshold": 2.5}"#, "similarity_threshold"),
        (r#"{"beam": {"width": 0}}"#, "beam.width"),
        (r#"{"context": {"decay": 1.5}}"#, "context.decay"),
        (r#"{"guide": {"weight": 1.5}}"#, "guide.weight"),
        (r#"{"guide": {"temperature": 0}}"#, "guide.temperature"),
        (r#"{"method": "telepathy"}"#, "malformed"),
        (r#"{"top_k": "#, "malformed"),
    ] {
        let err = DecoderConfig::from_json(json).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{json}: {err}");
        assert!(err.to_string().contains(what), "{json}: {err}");
    }
    let bad = lightweight_decoder::PhraseBankSettings {
        top_k: 0,
        ..lightweight_decoder::PhraseBankSettings::default()
    };
    assert!(PhraseBankDecoder::new(common::small_bank(20), bad).is_err());
}

#[test]
fn strict_threshold_errors_and_lenient_flags() {
    let s = common::sample();
    let strict = lightweight_decoder::PhraseBankSettings {
        similarity_threshold: 0.9,
        threshold_mode: ThresholdMode::Strict,
        method: AssemblyMethod::Greedy,
        ..lightweight_decoder::PhraseBankSettings::default()
    };
    // The bank lacks row 500, so its best match is another phrase, well below 0.9.
    let row = s.embeddings.row(500).to_vec();
    let d = PhraseBankDecoder::new(common::small_bank(300), strict.clone()).unwrap();
    let err = d.decode(&row).unwrap_err();
    assert!(matches!(err, Error::BelowThreshold { .. }), "{err}");
    assert!(
        d.decode(&s.embeddings.row(10).to_vec()).is_ok(),
        "in-bank phrase passes"
    );
    let lenient = lightweight_decoder::PhraseBankSettings {
        threshold_mode: ThresholdMode::Lenient,
        ..strict
    };
    let d = PhraseBankDecoder::new(common::small_bank(300), lenient).unwrap();
    let out = d.decode(&row).unwrap();
    assert!(out.low_confidence && out.confidence < 0.45, "{out:?}");
    let good = d.decode(&s.embeddings.row(10).to_vec()).unwrap();
    assert!(!good.low_confidence && good.confidence > 0.9, "{good:?}");
}
