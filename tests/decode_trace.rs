//! A trace of verified + refined decodes (`lightweight_decoder::trace`): each input is
//! checked once, the bank is searched once per input, and no text is scored twice under the
//! generator (the hybrid's scores travel to refinement in the evidence). One test in its own
//! binary: the trace records every thread of the process.

use std::collections::HashMap;
use std::sync::Arc;

use lightweight_decoder::eval::samples::SampleSet;
use lightweight_decoder::trace::{self, Event};
use lightweight_decoder::{
    Decoder, DecoderBuilder, MpnetEncoder, RefineSettings, Source, VerifySettings,
};

#[test]
fn one_verified_refined_decode_checks_once_searches_once_and_scores_each_text_once() {
    let encoder = Arc::new(
        MpnetEncoder::from_default_location()
            .unwrap_or_else(|e| panic!("{e} (run `bash scripts/install-encoder.sh`)")),
    );
    let builder = DecoderBuilder::new();
    let rule = builder.decoder_config().hybrid;
    // refinement with the generator's prior on, so that refinement scores texts too
    let settings = VerifySettings {
        refine: Some(RefineSettings {
            fluency_weight: 0.05,
            budget: 32,
            ..RefineSettings::default()
        }),
        ..VerifySettings::default()
    };
    // rows on both sides of the rule's threshold: the bank alone decides (the generator runs
    // for verification's pool only), and the rule compares the generator's scores; chosen
    // with a bank decoder of their own (the traced one's pattern cache stays empty)
    let sample = SampleSet::bundled("ood2").expect("bundled sample");
    let chooser = builder.phrase_bank().expect("bank decoder");
    let best = |row: usize| {
        let v = sample.embeddings.row(row).to_vec();
        chooser.decode(&v).expect("decode").candidates[0].similarity
    };
    let rows = 0..sample.embeddings.nrows().min(200);
    let slow = rows.clone().find(|&r| best(r) < rule.bank_similarity);
    let fast = rows.clone().find(|&r| best(r) >= rule.bank_similarity);
    let (slow, fast) = (slow.expect("a row below"), fast.expect("a row above"));
    let verified = builder
        .verify(builder.hybrid().expect("hybrid"), encoder, settings)
        .expect("verified hybrid");
    let mut refined = 0;
    for (row, compared) in [(slow, true), (fast, false)] {
        let v = sample.embeddings.row(row).to_vec();
        trace::start();
        let decoded = verified.decode(&v).expect("decode");
        let events = trace::finish();
        let count = |f: &dyn Fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
        assert_eq!(
            count(&|e| *e == Event::InputCheck),
            1,
            "row {row}: {events:?}"
        );
        assert_eq!(
            count(&|e| *e == Event::BankSearch { rows: 1 }),
            1,
            "row {row}: one search of one query: {events:?}"
        );
        assert_eq!(count(&|e| matches!(e, Event::BankSearch { .. })), 1);
        let mut scored: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            if let Event::Score { text } = e {
                *scored.entry(text.as_str()).or_default() += 1;
            }
        }
        let twice: Vec<_> = scored.iter().filter(|(_, &n)| n > 1).collect();
        assert!(
            twice.is_empty(),
            "row {row}: scored more than once: {twice:?}"
        );
        // the rule's scores were computed (below its threshold) and refinement scored its own
        // texts (it ran: its starts and at least one round of edits)
        assert!(
            scored.len() >= if compared { 3 } else { 1 },
            "row {row}: {scored:?}"
        );
        refined += usize::from(decoded.source == Source::Refined);
        eprintln!(
            "row {row}: {} events, {} texts scored once each -> {:?}",
            events.len(),
            scored.len(),
            decoded.text
        );
    }
    assert!(refined > 0, "refinement changed neither text");
}
