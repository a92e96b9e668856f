//! The bundled generative model `model/generative.q4.gguf`: what it is, that it is the INT4
//! export of the committed training checkpoint, and how it and its twins decode real held-out
//! embeddings (the bundled validation sample, which training never saw).

use std::path::PathBuf;

use lightweight_decoder::eval::metrics::token_f1;
use lightweight_decoder::eval::samples::{SampleSet, VALIDATION};
use lightweight_decoder::generative::train::Checkpoint;
use lightweight_decoder::generative::{generate, DecodeOptions, InferenceModel, Precision};
use lightweight_decoder::{Decoder, GenerativeDecoder, Source, UnitEmbedding};

mod common;
use common::{argmax, max_abs_diff};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bundled_path() -> PathBuf {
    root().join("model/generative.q4.gguf")
}

/// The committed checkpoint the bundled model was exported from.
fn checkpoint() -> Checkpoint {
    Checkpoint::read(&root().join("training/checkpoints/run7/latest.json")).unwrap()
}

/// Mean token F1 of greedy outputs over the first `n` validation rows.
fn mean_f1(model: &InferenceModel, s: &SampleSet, n: usize) -> (f64, Vec<String>) {
    let options = DecodeOptions::default();
    let texts: Vec<String> = (0..n)
        .map(|r| {
            let e = UnitEmbedding::new(s.embeddings.row(r).as_slice().unwrap(), 768).unwrap();
            generate(model, &e, None, &options).unwrap().text
        })
        .collect();
    let f1 = texts
        .iter()
        .zip(&s.texts)
        .map(|(t, reference)| token_f1(t, reference))
        .sum::<f64>()
        / n as f64;
    (f1, texts)
}

#[test]
fn bundled_model_is_the_int4_export_of_the_committed_checkpoint() {
    let path = bundled_path();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size <= 1_000_000, "bundled model is {size} bytes");
    let bundled = InferenceModel::load(&path).unwrap();
    assert_eq!(bundled.precision(), Precision::Q4);
    assert_eq!(bundled.config().parameter_count(), 722_944);
    let exported = InferenceModel::from_model(&checkpoint().model, Precision::Q4).unwrap();
    let s = SampleSet::bundled(VALIDATION).unwrap();
    for r in 0..4 {
        let e = s.embeddings.row(r);
        let text = s.texts[r].as_bytes();
        let a = bundled
            .teacher_forced_logits(e.as_slice().unwrap(), text)
            .unwrap();
        let b = exported
            .teacher_forced_logits(e.as_slice().unwrap(), text)
            .unwrap();
        let worst = max_abs_diff(&a, &b);
        assert!(worst < 1e-5, "row {r}: logits differ by {worst}");
    }
}

#[test]
fn the_bundled_model_alone_decodes_held_out_embeddings() {
    let decoder = GenerativeDecoder::with_default_model(DecodeOptions::default()).unwrap();
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let n = 200;
    let mut f1 = 0.0;
    for r in 0..n {
        let d = decoder.decode(&s.embeddings.row(r).to_vec()).unwrap();
        assert_eq!(d.source, Source::Generative);
        f1 += token_f1(&d.text, &s.texts[r]);
    }
    f1 /= n as f64;
    // An untrained model scores about 0; the shipped one 0.2750 on the whole sample (plan.md).
    assert!(f1 > 0.15, "token F1 {f1:.4} on {n} held-out phrases");
}

#[test]
fn quantized_twins_keep_the_float_models_quality() {
    let model = checkpoint().model;
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let n = s.texts.len();
    let float = InferenceModel::from_model(&model, Precision::F32).unwrap();
    let (f32_f1, f32_texts) = mean_f1(&float, &s, n);
    // (precision, largest relative token-F1 loss, smallest share of agreeing greedy decisions;
    // measured on all 2,000 rows with the step-23000 model: Q8 -0.8%, 98.3%; Q4 -3.2%, 93.6%)
    for (precision, max_loss, min_agree) in
        [(Precision::Q8, 0.03, 0.97), (Precision::Q4, 0.05, 0.85)]
    {
        let q = InferenceModel::from_model(&model, precision).unwrap();
        let (f1, texts) = mean_f1(&q, &s, n);
        let same = texts.iter().zip(&f32_texts).filter(|(a, b)| a == b).count();
        // Every greedy decision of the float model, replayed on the quantized one: whole
        // outputs diverge after a single different byte, decisions measure the agreement.
        let (mut agree, mut total) = (0usize, 0usize);
        for (r, text) in f32_texts.iter().enumerate().take(100) {
            let e = s.embeddings.row(r);
            let a = float
                .teacher_forced_logits(e.as_slice().unwrap(), text.as_bytes())
                .unwrap();
            let b = q
                .teacher_forced_logits(e.as_slice().unwrap(), text.as_bytes())
                .unwrap();
            for (x, y) in a.iter().zip(&b) {
                agree += usize::from(argmax(x) == argmax(y));
                total += 1;
            }
        }
        let rate = agree as f64 / total as f64;
        eprintln!(
            "{precision:?}: token F1 {f1:.4} (f32 {f32_f1:.4}), {same}/{n} outputs equal, \
             {agree}/{total} greedy decisions agree"
        );
        assert!(
            f1 >= f32_f1 * (1.0 - max_loss),
            "{precision:?}: token F1 {f1:.4} vs f32 {f32_f1:.4}"
        );
        assert!(
            rate >= min_agree,
            "{precision:?}: decisions agree {rate:.3}"
        );
    }
}

#[test]
fn retrieval_guided_decoding_beats_the_unguided_generator_on_held_out_rows() {
    use lightweight_decoder::generative::{Guide, GuideSettings, Strategy};
    use lightweight_decoder::phrase_bank::PhraseBank;

    // the default bank holds every WordNet phrase: leaving each row's own phrase out of its
    // candidates makes it held out, as for the baseline bank of training phrases only
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let model = InferenceModel::load(&bundled_path()).unwrap();
    let bank = PhraseBank::load_default().unwrap();
    let n = 120;
    let settings = GuideSettings::default();
    let beam = DecodeOptions {
        strategy: Strategy::Beam { width: 8 },
        ..DecodeOptions::default()
    };
    let (unguided, _) = mean_f1(&model, &s, n);
    let (mut guided, mut top1) = (0.0, 0.0);
    for r in 0..n {
        let q = UnitEmbedding::new(s.embeddings.row(r).as_slice().unwrap(), 768).unwrap();
        let hits = bank.search(&q, 9).unwrap().remove(0);
        let cands: Vec<(&str, f32)> = hits
            .iter()
            .filter(|h| h.id != s.bank_ids[r])
            .map(|h| (bank.phrase(h.id).unwrap(), h.similarity))
            .take(8)
            .collect();
        top1 += token_f1(cands[0].0, &s.texts[r]);
        let guide = Guide::new(cands.iter().copied(), &settings).unwrap();
        let out = generate(&model, &q, Some(&guide), &beam).unwrap();
        assert!(!out.text.is_empty());
        guided += token_f1(&out.text, &s.texts[r]);
    }
    let (guided, top1) = (guided / n as f64, top1 / n as f64);
    eprintln!("unguided {unguided:.4} guided {guided:.4} nearest other phrase {top1:.4}");
    assert!(
        guided > unguided + 0.05,
        "guided {guided:.3} against unguided {unguided:.3}"
    );
    assert!(
        guided > 0.95 * top1,
        "guided {guided:.3} against the nearest other phrase {top1:.3}"
    );
}

#[test]
fn a_guided_decoder_copies_the_bank_phrase_of_an_input_in_its_bank() {
    use std::sync::Arc;

    use lightweight_decoder::generative::GuideSettings;
    use lightweight_decoder::phrase_bank::PhraseBank;

    // the validation phrases are in the default bank: guidance should find and copy them
    let s = SampleSet::bundled(VALIDATION).unwrap();
    let bank = Arc::new(PhraseBank::load_default().unwrap());
    let settings = GuideSettings {
        candidates: 8,
        temperature: 0.03,
        weight: 0.7,
        ..GuideSettings::default()
    };
    let plain = GenerativeDecoder::with_default_model(DecodeOptions::default()).unwrap();
    let guided = GenerativeDecoder::with_default_model(DecodeOptions::default())
        .unwrap()
        .with_guide(bank.clone(), settings.clone())
        .unwrap();
    let n = 40;
    let f1 = |d: &GenerativeDecoder| {
        (0..n)
            .map(|r| {
                let out = d.decode(s.embeddings.row(r).as_slice().unwrap()).unwrap();
                assert_eq!(out.source, Source::Generative);
                token_f1(&out.text, &s.texts[r])
            })
            .sum::<f64>()
            / n as f64
    };
    let (plain_f1, guided_f1) = (f1(&plain), f1(&guided));
    eprintln!("plain {plain_f1:.4} guided {guided_f1:.4}");
    assert!(guided_f1 > 0.8, "guided {guided_f1:.3}");
    assert!(guided_f1 > plain_f1 + 0.3, "plain {plain_f1:.3}");
    let off = GuideSettings {
        weight: 0.0,
        ..settings
    };
    let unguided = GenerativeDecoder::with_default_model(DecodeOptions::default())
        .unwrap()
        .with_guide(bank.clone(), off)
        .unwrap();
    assert_eq!(f1(&unguided), plain_f1, "weight 0 turns guidance off");
    let bad = GuideSettings {
        weight: 2.0,
        ..GuideSettings::default()
    };
    assert!(
        GenerativeDecoder::with_default_model(DecodeOptions::default())
            .unwrap()
            .with_guide(bank, bad)
            .is_err()
    );
}

#[test]
fn on_text_unlike_wordnet_guidance_carries_the_banks_content_into_the_generator() {
    use std::sync::Arc;

    use lightweight_decoder::eval::samples::OUT_OF_DOMAIN;
    use lightweight_decoder::generative::Strategy;
    use lightweight_decoder::phrase_bank::PhraseBank;

    // crate descriptions and Python docstrings (scripts/make_ood_sample.sh): no bank phrase
    // says them, so every decoder paraphrases at best
    let unlike = SampleSet::bundled(OUT_OF_DOMAIN).unwrap();
    let (texts, x) = (unlike.texts, unlike.embeddings);
    assert!(unlike.bank_ids.is_empty());
    let bank = Arc::new(PhraseBank::load_default().unwrap());
    let f1 = |outs: Vec<lightweight_decoder::Decoded>| {
        outs.iter()
            .zip(&texts)
            .map(|(d, t)| token_f1(&d.text, t))
            .sum::<f64>()
            / texts.len() as f64
    };
    let nearest = (0..x.nrows())
        .map(|r| {
            let q = UnitEmbedding::new(x.row(r).as_slice().unwrap(), 768).unwrap();
            let hit = bank.search(&q, 1).unwrap().remove(0).remove(0);
            token_f1(bank.phrase(hit.id).unwrap(), &texts[r])
        })
        .sum::<f64>()
        / texts.len() as f64;
    let plain = f1(
        GenerativeDecoder::with_default_model(DecodeOptions::default())
            .unwrap()
            .batch_decode(x.view())
            .unwrap(),
    );
    let beam = DecodeOptions {
        strategy: Strategy::Beam { width: 8 },
        ..DecodeOptions::default()
    };
    // the shipped configuration: the bundled model guided by the bundled bank
    let guided = f1(GenerativeDecoder::bundled(beam)
        .unwrap()
        .batch_decode(x.view())
        .unwrap());
    eprintln!(
        "{} rows: nearest bank phrase {nearest:.4} plain {plain:.4} guided {guided:.4}",
        texts.len()
    );
    assert!(
        guided > plain + 0.02,
        "guided {guided:.3} against plain {plain:.3}"
    );
    // With the WordNet bank the guided generator also beat the bank's nearest phrase (0.153
    // against 0.130); the broad bank holds sentences close to these texts and the
    // WordNet-trained generator no longer adds to them (0.230 against 0.240, session 18):
    // the guide still carries most of the bank's content into the generated text.
    assert!(
        guided > 0.8 * nearest,
        "guided {guided:.3} against the bank's {nearest:.3}"
    );
}

#[test]
fn a_caller_that_searched_the_guide_bank_lends_its_candidates_and_no_other_bank_does() {
    use std::sync::Arc;

    use lightweight_decoder::phrase_bank::PhraseBank;
    use lightweight_decoder::Candidate;

    let generator = GenerativeDecoder::bundled(DecodeOptions::default()).unwrap();
    let (bank, settings) = generator.guide().unwrap();
    let (bank, k) = (Arc::clone(bank), settings.candidates);
    let other_bank = Arc::new(PhraseBank::load_default().unwrap());
    let s = SampleSet::bundled(VALIDATION).unwrap();
    // as many as the generator's own search asks for: a compressed bank re-sorts its hits by
    // the codes' norms, so the first k of a wider search can differ
    let found = |r: usize| -> Vec<Candidate> {
        let q = UnitEmbedding::new(s.embeddings.row(r).as_slice().unwrap(), 768).unwrap();
        bank.search(&q, k).unwrap()[0]
            .iter()
            .map(|h| Candidate {
                text: bank.phrase(h.id).unwrap().to_string(),
                similarity: h.similarity,
                phrase_id: Some(h.id),
            })
            .collect()
    };
    let mut moved = 0;
    for r in 0..6 {
        let input = s.embeddings.row(r).to_vec();
        let own = generator.decode(&input).unwrap().text;
        let lent = generator
            .decode_with_found(&input, &bank, &found(r))
            .unwrap();
        assert_eq!(
            lent.text, own,
            "row {r}: the same candidates, the same text"
        );
        // another row's candidates: used when they come from the guide bank, ignored otherwise
        let wrong = found(r + 100);
        let elsewhere = generator
            .decode_with_found(&input, &other_bank, &wrong)
            .unwrap();
        assert_eq!(
            elsewhere.text, own,
            "row {r}: another bank is searched again"
        );
        let misled = generator.decode_with_found(&input, &bank, &wrong).unwrap();
        moved += usize::from(misled.text != own);
    }
    assert!(moved >= 5, "lent candidates changed {moved} of 6 outputs");
}

#[test]
fn the_default_hybrid_is_at_least_the_better_decoder_on_text_unlike_wordnet_and_in_the_bank() {
    use lightweight_decoder::eval::samples::{OUT_OF_DOMAIN, WORDNET_SAMPLE};
    use lightweight_decoder::DecoderBuilder;

    let hybrid = DecoderBuilder::new().hybrid().unwrap();
    let (bank, generator) = (hybrid.bank(), hybrid.generator());
    for (name, rows) in [(OUT_OF_DOMAIN, 200), (WORDNET_SAMPLE, 100)] {
        let s = SampleSet::bundled(name).unwrap();
        let x = s.embeddings.slice(ndarray::s![..rows, ..]);
        let f1 = |decoded: Vec<lightweight_decoder::Decoded>| {
            decoded
                .iter()
                .zip(&s.texts)
                .map(|(d, t)| token_f1(&d.text, t))
                .sum::<f64>()
                / rows as f64
        };
        let (b, g, h) = (
            f1(bank.batch_decode(x).unwrap()),
            f1(generator.batch_decode(x).unwrap()),
            f1(hybrid.batch_decode(x).unwrap()),
        );
        eprintln!("{name}: bank {b:.4} guided generator {g:.4} hybrid {h:.4}");
        assert!(
            h >= b.max(g) - 1e-9,
            "{name}: hybrid {h:.4}, bank {b:.4}, generator {g:.4}"
        );
    }
}
