//! The model of English (`language_model`): the bundled model knows real sentences from
//! their scrambles on held-out text, the `.lm` file refuses corruption by name, and
//! `lwdec lm build | score | judge` work end to end on real sentences.

use std::path::Path;
use std::process::Command;

use lightweight_decoder::language_model::{tokens, NgramEstimator, NgramModel};

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .expect("sample text")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A fixed scramble of a sentence's words (reversed pairs), never the sentence itself.
fn scrambled(text: &str) -> String {
    let mut w: Vec<&str> = text.split_whitespace().collect();
    w.reverse();
    w.join(" ")
}

#[test]
fn the_bundled_model_prefers_held_out_sentences_to_their_scrambles() {
    let model = NgramModel::load(&NgramModel::default_path()).expect("bundled model/english.lm");
    assert_eq!(model.order(), 3);
    for sample in ["samples/ood2.txt", "samples/everyday.txt"] {
        let texts: Vec<String> = lines(sample)
            .into_iter()
            .filter(|t| t.split_whitespace().count() >= 4)
            .collect();
        let better = texts
            .iter()
            .filter(|t| model.score(t).mean() > model.score(&scrambled(t)).mean())
            .count();
        assert!(
            better * 100 >= texts.len() * 95,
            "{sample}: {better} of {} sentences score above their scramble",
            texts.len()
        );
    }
    // the word salad of issue 30 scores below the fluent text it came from
    for (fluent, salad) in [
        (
            "Never used at the same time as the callback.",
            "callbacks used at used the same time used as the callback.",
        ),
        (
            "This document describes how to write Rust code in the kernel.",
            "rust This document describes rust how rust to write Rust code rust the rust kernel.",
        ),
    ] {
        assert!(model.score(fluent).mean() > model.score(salad).mean() + 0.3);
    }
}

#[test]
fn a_model_built_from_real_sentences_round_trips_through_its_file() {
    let mut est = NgramEstimator::new(3)
        .expect("order 3")
        .min_counts(&[1, 2, 2]);
    for t in lines("samples/corpus_sample.txt") {
        est.add_sentence(&t);
    }
    let model = est.build().expect("estimate");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sample.lm");
    model.save(&path).expect("save");
    let back = NgramModel::load(&path).expect("load");
    assert_eq!(back.ngram_counts(), model.ngram_counts());
    for t in lines("samples/ood2.txt").iter().take(50) {
        let (a, b) = (model.score(t), back.score(t));
        // f16 values in the file
        assert!(
            (a.log10_prob - b.log10_prob).abs() <= 0.01 * a.tokens as f32,
            "{t}: {a:?} vs {b:?}"
        );
        assert_eq!(a.tokens, tokens(t).len() + 1);
    }
    // truncation and a flipped byte are refused, naming the file
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = NgramModel::load(&path).expect_err("truncated").to_string();
    assert!(err.contains("sample.lm"), "{err}");
    std::fs::write(&path, b"not a model").expect("write");
    let err = NgramModel::load(&path).expect_err("garbage").to_string();
    assert!(err.contains("sample.lm") && err.contains("magic"), "{err}");
}

#[test]
fn lwdec_lm_builds_scores_and_judges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = dir.path().join("m.lm");
    let arpa = dir.path().join("m.arpa");
    let lwdec = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(env!("CARGO_BIN_EXE_lwdec"))
            .args(args)
            .output()
            .expect("run lwdec");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf-8")
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let out = lwdec(&[
        os("lm").as_os_str(),
        os("build").as_os_str(),
        root.join("samples/corpus_sample.txt").as_os_str(),
        os("--out").as_os_str(),
        model.as_os_str(),
        os("--arpa").as_os_str(),
        arpa.as_os_str(),
        os("--exclude").as_os_str(),
        root.join("samples/corpus_validation.txt").as_os_str(),
    ]);
    assert!(out.contains("order 3"), "{out}");
    let arpa_text = std::fs::read_to_string(&arpa).expect("arpa");
    assert!(arpa_text.starts_with("\n\\data\\\nngram 1="));
    assert!(arpa_text.trim_end().ends_with("\\end\\"));
    let scores = lwdec(&[
        os("lm").as_os_str(),
        os("score").as_os_str(),
        os("--model").as_os_str(),
        model.as_os_str(),
        root.join("samples/ood2.txt").as_os_str(),
    ]);
    assert_eq!(scores.lines().count(), 200);
    let first: serde_json::Value =
        serde_json::from_str(scores.lines().next().expect("a line")).expect("json");
    assert!(first["mean"].as_f64().expect("mean") < 0.0);
    // the references judged against themselves: no repetition beyond theirs, 5% below p5
    let judged = lwdec(&[
        os("lm").as_os_str(),
        os("judge").as_os_str(),
        os("--model").as_os_str(),
        model.as_os_str(),
        os("--reference").as_os_str(),
        root.join("samples/ood2.txt").as_os_str(),
        root.join("samples/ood2.txt").as_os_str(),
        os("--json").as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&judged).expect("json");
    let r = &v[0]["report"];
    assert_eq!(r["repetition"].as_f64(), Some(0.0));
    assert!((r["below_reference_p5"].as_f64().expect("share") - 0.045).abs() < 0.011);
    assert_eq!(v[0]["token_f1"].as_f64(), Some(1.0));
}
