//! The generative decoder behind the `Decoder` trait, and the hybrid's rule and calibration.
//!
//! The generator here is an untrained model (seeded weights): these tests check the mechanics
//! (inputs, sessions, the decision rule, calibration), not generation quality.

use lightweight_decoder::eval::samples::{SampleSet, VALIDATION};
use lightweight_decoder::generative::{
    DecodeOptions, GenerativeConfig, GenerativeModel, InferenceModel, Precision, Strategy,
};
use lightweight_decoder::hybrid::{calibrate, evaluate_rule, measure, Objective};
use lightweight_decoder::{
    Decoder, DecoderConfig, Error, GenerativeDecoder, HybridConfig, HybridDecoder, PhraseBank,
    PhraseBankDecoder, Source,
};

fn options() -> DecodeOptions {
    DecodeOptions {
        strategy: Strategy::Greedy,
        stop_on_repeated_words: 0,
        max_len: 24,
    }
}

fn model_file(dir: &std::path::Path) -> std::path::PathBuf {
    let model = GenerativeModel::new(GenerativeConfig::default(), 7).unwrap();
    let path = dir.join("model.q8.gguf");
    InferenceModel::from_model(&model, Precision::Q8)
        .unwrap()
        .save(&path)
        .unwrap();
    path
}

fn hybrid(rule: HybridConfig, dir: &std::path::Path) -> HybridDecoder {
    let bank = PhraseBankDecoder::new(
        PhraseBank::load_default().unwrap(),
        DecoderConfig::default(),
    )
    .unwrap();
    let generator = GenerativeDecoder::load(&model_file(dir), options()).unwrap();
    HybridDecoder::new(bank, generator, rule).unwrap()
}

#[test]
fn generative_decoder_validates_inputs_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = model_file(tmp.path());
    let d = GenerativeDecoder::load(&path, options()).unwrap();
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let out = d.decode(&s.embeddings.row(0).to_vec()).unwrap();
    assert_eq!(out.source, Source::Generative);
    assert!((0.0..=1.0).contains(&out.confidence));
    assert!(out.text.len() <= 24);
    assert!(matches!(
        d.decode(&[0.1; 10]),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(matches!(
        d.decode(&[f32::NAN; 768]),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        d.decode(&[0.0; 768]),
        Err(Error::ZeroVector { .. })
    ));
    let bytes = std::fs::read(&path).unwrap();
    let cut = tmp.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        GenerativeDecoder::load(&cut, options()),
        Err(Error::InvalidModel { .. })
    ));
}

#[test]
fn hybrid_follows_its_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let rows = s.embeddings.slice(ndarray::s![..6, ..]);
    let never = HybridConfig {
        bank_similarity: 2.0,
        generator_margin: f32::MAX,
        rerank_weight: 0.0,
        overlap_weight: 0.0,
        ..HybridConfig::default()
    };
    let bank_only = hybrid(never, tmp.path());
    let out = bank_only.batch_decode(rows).unwrap();
    let bank = PhraseBankDecoder::new(
        PhraseBank::load_default().unwrap(),
        DecoderConfig::default(),
    )
    .unwrap();
    for (d, b) in out.iter().zip(bank.batch_decode(rows).unwrap()) {
        assert_eq!(d.text, b.text);
        assert!(matches!(d.source, Source::PhraseBank { .. }));
    }
    let always = HybridConfig {
        bank_similarity: 2.0,
        generator_margin: f32::MIN,
        ..HybridConfig::default()
    };
    let gen_only = hybrid(always, tmp.path());
    let generator = GenerativeDecoder::load(&model_file(tmp.path()), options()).unwrap();
    let out = gen_only.batch_decode_with_sessions(rows, &[0, 3]).unwrap();
    for (i, d) in out.iter().enumerate() {
        assert_eq!(d.source, Source::Generative);
        assert_eq!(
            d.text,
            generator.decode(&rows.row(i).to_vec()).unwrap().text
        );
    }
}

/// The first `n` validation embeddings with noise to cosine 0.3 (the bank is unsure there).
fn noisy_rows(s: &SampleSet, n: usize, seed: u64) -> ndarray::Array2<f32> {
    lightweight_decoder::eval::perturb_rows(
        &s.embeddings.slice(ndarray::s![..n, ..]).to_owned(),
        0.3,
        seed,
    )
}

#[test]
fn calibration_is_never_worse_than_either_decoder() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, n) = (SampleSet::bundled(VALIDATION).unwrap(), 12);
    let inputs = noisy_rows(&s, n, 5);
    let h = hybrid(HybridConfig::default(), tmp.path());
    let rows = measure(&h, inputs.view(), &s.texts[..n], Objective::TokenF1).unwrap();
    let fit = calibrate(&rows, &HybridConfig::default());
    assert!(
        fit.hybrid_score + 1e-12 >= fit.bank_score.max(fit.generator_score),
        "{fit:?}"
    );
    assert!(fit.rule.validate().is_ok());
    assert!(measure(&h, inputs.view(), &s.texts[..n - 1], Objective::TokenF1).is_err());
}

#[test]
fn decisions_match_the_rule_applied_to_measurements() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, n) = (SampleSet::bundled(VALIDATION).unwrap(), 10);
    let inputs = noisy_rows(&s, n, 9);
    // Always below the threshold, re-ranking weighted strongly, the generator never chosen.
    let rule = HybridConfig {
        bank_similarity: 2.0,
        generator_margin: f32::MAX,
        rerank_top_k: 5,
        rerank_weight: 1.0,
        overlap_weight: 0.5,
        rerank_max_gap: f32::MAX,
    };
    let h = hybrid(rule, tmp.path());
    let rows = measure(&h, inputs.view(), &s.texts[..n], Objective::TokenF1).unwrap();
    let outcome = evaluate_rule(&rule, &rows);
    assert!(outcome.reranked_share > 0.0, "{outcome:?}");
    for (i, row) in inputs.rows().into_iter().enumerate() {
        let decoded = h.decode(&row.to_vec()).unwrap();
        let f1 = lightweight_decoder::eval::metrics::token_f1(&decoded.text, &s.texts[i]);
        assert!(
            (f1 - outcome.row_scores[i]).abs() < 1e-9,
            "row {i}: {}",
            decoded.text
        );
        assert!(
            matches!(decoded.source, Source::PhraseBank { ref phrase_ids } if phrase_ids.len() == 1)
        );
    }
    let bad = HybridConfig {
        rerank_weight: -1.0,
        ..HybridConfig::default()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn round_trip_calibration_scores_the_re_embedded_choice() {
    use lightweight_decoder::{Encoder, MpnetEncoder};

    let encoder = MpnetEncoder::from_default_location()
        .expect("the encoder is installed by `bash scripts/install-encoder.sh`");
    let tmp = tempfile::tempdir().unwrap();
    let (s, n) = (SampleSet::bundled(VALIDATION).unwrap(), 6);
    let inputs = noisy_rows(&s, n, 11);
    let rule = HybridConfig {
        bank_similarity: 2.0,
        generator_margin: 0.0,
        ..HybridConfig::default()
    };
    let h = hybrid(rule, tmp.path());
    let rows = measure(
        &h,
        inputs.view(),
        &s.texts[..n],
        Objective::RoundTrip(&encoder),
    )
    .unwrap();
    let outcome = evaluate_rule(&rule, &rows);
    for (i, row) in inputs.rows().into_iter().enumerate() {
        let text = h.decode(&row.to_vec()).unwrap().text;
        let e = encoder.embed(&[text.as_str()]).unwrap();
        let norm = row.dot(&row).sqrt();
        let cosine = f64::from(e.row(0).dot(&row) / norm);
        assert!(
            (cosine - outcome.row_scores[i]).abs() < 1e-4,
            "row {i} ({text}): {cosine} vs {}",
            outcome.row_scores[i]
        );
    }
    let fit = calibrate(&rows, &rule);
    assert!(fit.hybrid_score + 1e-12 >= fit.bank_score.max(fit.generator_score));
    assert!((-1.0..=1.0).contains(&fit.hybrid_score), "{fit:?}");
}

#[test]
fn in_strict_mode_the_generator_answers_what_the_bank_is_not_sure_of() {
    use lightweight_decoder::ThresholdMode;

    let tmp = tempfile::tempdir().unwrap();
    let strict = lightweight_decoder::PhraseBankSettings {
        similarity_threshold: 0.99,
        threshold_mode: ThresholdMode::Strict,
        ..lightweight_decoder::PhraseBankSettings::default()
    };
    let bank = PhraseBankDecoder::new(PhraseBank::load_default().unwrap(), strict).unwrap();
    let s = SampleSet::bundled(lightweight_decoder::eval::samples::OUT_OF_DOMAIN).unwrap();
    let input = s.embeddings.row(0).to_vec();
    // no bank phrase is within 0.99 of a crate description: the bank alone refuses it
    assert!(matches!(
        bank.decode(&input),
        Err(Error::BelowThreshold { .. })
    ));
    let generator = GenerativeDecoder::load(&model_file(tmp.path()), options()).unwrap();
    let h = HybridDecoder::new(bank, generator, HybridConfig::default()).unwrap();
    let out = h.decode(&input).unwrap();
    assert_eq!(out.source, Source::Generative);
    let mut session = h.new_session();
    h.decode_in_session(&input, &mut session).unwrap();
    assert_eq!(
        session.entries().len(),
        1,
        "the generated answer is recorded"
    );
}

#[test]
fn bank_sentences_longer_than_the_generators_max_len_are_scored_by_their_head() {
    use lightweight_decoder::eval::samples::CORPUS_SAMPLE;
    let tmp = tempfile::tempdir().unwrap();
    let s = SampleSet::bundled(CORPUS_SAMPLE).unwrap();
    // real corpus sentences, among them some longer than max_len (128 bytes)
    let rows: Vec<usize> = (0..s.texts.len()).take(300).collect();
    let long: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&i| s.texts[i].len() > GenerativeConfig::default().max_len)
        .collect();
    assert!(long.len() >= 10, "only {} long sentences", long.len());
    let bank = PhraseBank::build(
        rows.iter().map(|&i| s.texts[i].clone()).collect(),
        s.embeddings.select(ndarray::Axis(0), &rows).view(),
        &Default::default(),
        |_| {},
    )
    .unwrap();
    let bank = PhraseBankDecoder::new(bank, DecoderConfig::default()).unwrap();
    let generator = GenerativeDecoder::load(&model_file(tmp.path()), options()).unwrap();
    let h = HybridDecoder::new(bank, generator, HybridConfig::default()).unwrap();
    for &i in &long {
        let out = h.decode(s.embeddings.row(i).as_slice().unwrap()).unwrap();
        assert!(!out.text.is_empty(), "row {i}");
    }
    // the score of a long text is the mean over its head's predictions: a text that shares
    // the long sentence's first max_len bytes gets the same score
    let model = InferenceModel::load(&model_file(tmp.path())).unwrap();
    let row = *long.iter().find(|&&i| s.texts[i].is_ascii()).unwrap();
    let (text, e) = (&s.texts[row], s.embeddings.row(row).to_vec());
    let mut other = text.as_bytes()[..GenerativeConfig::default().max_len].to_vec();
    other.extend_from_slice(b" and then something else entirely");
    let other = String::from_utf8_lossy(&other).into_owned();
    let (a, b) = (
        model.mean_log_prob(&e, text).unwrap(),
        model.mean_log_prob(&e, &other).unwrap(),
    );
    assert!(a.is_finite() && a < 0.0 && a == b, "{a} vs {b}");
}
