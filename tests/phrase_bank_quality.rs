//! Acceptance figures of the default bank on real all-mpnet-base-v2 embeddings.

mod common;

use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_DEV, SESSIONS_TEST};
use lightweight_decoder::eval::{exact_match_rate, perturb_rows};
use lightweight_decoder::{AssemblyMethod, Decoder, PhraseBank};

/// The stages the default bank was built in (`corpus/bank_stages.json`,
/// `scripts/build_default_bank.sh`).
fn stages() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/bank_stages.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn default_bank_holds_wordnet_then_the_corpus_stages_within_64_mb() {
    let bank = PhraseBank::load_default().unwrap();
    let stages = stages();
    let stages = stages["stages"].as_array().unwrap();
    let last = stages.last().unwrap();
    assert_eq!(
        bank.len() as u64,
        last["bank_phrases"].as_u64().unwrap(),
        "the bank is its last stage"
    );
    // WordNet's phrases first, in the shared corpus's order (ids of the WordNet bank)
    let wordnet = stages[0]["wordnet_rows"].as_u64().unwrap() as usize;
    assert_eq!(wordnet, 175_784);
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wordnet.txt");
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert!(bank.phrases().take(wordnet).eq(text.lines()));
    }
    // then the corpus rows of every stage, less the near-duplicates left out
    let corpus: u64 = stages
        .iter()
        .map(|s| s["corpus_rows"].as_u64().unwrap())
        .sum();
    let extra = bank.len() - wordnet;
    assert!(
        extra as u64 <= corpus && extra as u64 * 100 >= corpus * 98,
        "{extra} corpus phrases of {corpus} staged rows"
    );
    let dir = PhraseBank::default_dir();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes <= 64 * 1024 * 1024, "bank is {bytes} bytes");
}

fn recall_at(cosine: f32, seed: u64) -> f64 {
    let decoder = common::default_decoder(AssemblyMethod::Greedy);
    let s = common::sample();
    let inputs = perturb_rows(&s.embeddings, cosine, seed);
    let boundaries: Vec<usize> = (0..s.texts.len()).collect();
    let rate = exact_match_rate(&decoder, inputs.view(), &boundaries, &s.texts).unwrap();
    eprintln!("self-recall@1 at cosine {cosine}: {rate:.4}");
    rate
}

#[test]
fn exact_embeddings_decode_to_their_phrase() {
    assert!(recall_at(1.0, 0) >= 0.995);
}

#[test]
fn noisy_embeddings_still_decode_to_their_phrase() {
    assert!(recall_at(0.95, 11) >= 0.99);
    assert!(recall_at(0.80, 12) >= 0.97);
}

/// Sessions of related phrases (gloss and examples of one WordNet synset), noisy: re-ranking
/// with the session's context recovers more originals than greedy where noise makes the
/// choice ambiguous, and costs nothing measurable where it does not. The settings were chosen
/// on `sessions_dev` (`cargo run --release --example tune_context`); both sets are checked.
#[test]
fn context_aware_beats_greedy_on_related_sessions() {
    for name in [SESSIONS_DEV, SESSIONS_TEST] {
        let s = SampleSet::bundled(name).unwrap();
        let boundaries = s.boundaries.clone().unwrap();
        for (i, cosine) in [0.5f32, 0.4, 0.3, 0.25].into_iter().enumerate() {
            let inputs = perturb_rows(&s.embeddings, cosine, 100 + i as u64);
            let rate = |m| {
                let d = common::default_decoder(m);
                exact_match_rate(&d, inputs.view(), &boundaries, &s.texts).unwrap()
            };
            let greedy = rate(AssemblyMethod::Greedy);
            let context = rate(AssemblyMethod::ContextAware);
            eprintln!("{name} cosine {cosine}: greedy {greedy:.4} context_aware {context:.4}");
            if cosine <= 0.3 {
                assert!(context > greedy, "{name} at cosine {cosine}");
            } else {
                assert!(context >= greedy - 0.002, "{name} at cosine {cosine}");
            }
        }
    }
}

#[test]
fn context_never_overrides_a_clearly_better_match_without_context() {
    let s = common::sample();
    let greedy = common::default_decoder(AssemblyMethod::Greedy);
    let context = common::default_decoder(AssemblyMethod::ContextAware);
    let inputs = perturb_rows(&s.embeddings, 0.8, 5);
    let a = greedy.batch_decode(inputs.view()).unwrap();
    let b = context.batch_decode(inputs.view()).unwrap();
    assert_eq!(
        a.iter().map(|d| &d.text).collect::<Vec<_>>(),
        b.iter().map(|d| &d.text).collect::<Vec<_>>(),
        "with one row per session, context_aware equals greedy"
    );
}
