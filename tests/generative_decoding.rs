//! Tests of generation: valid UTF-8, lengths, seeded sampling, beam search and bad inputs.
//!
//! Tests that need the real WordNet data look for it in `../shared/data` (relative to the crate
//! root) and are skipped, with a message, when it is absent.

mod common;
use common::generative::*;

use lightweight_decoder::generative::{
    Batch, DecodeOptions, GeneratedText, GenerativeModel, InferenceModel, Precision, Strategy,
};
use lightweight_decoder::Error;

fn assert_valid(d: &GeneratedText, max_len: usize) {
    assert!(d.text.len() <= max_len);
    assert!(!d.text.contains('\0'));
    assert!(
        d.mean_log_prob.is_finite() && d.mean_log_prob <= 0.0,
        "{d:?}"
    );
    assert_eq!(d.truncated, d.text.len() == max_len);
}

#[test]
fn decoding_yields_valid_utf8_and_respects_max_len() {
    // An untrained model emits near-uniform bytes: without masking most outputs would be
    // invalid UTF-8, so this exercises the mask.
    let model = GenerativeModel::new(small_config(), 11).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::F32).unwrap();
    let embedding: Vec<f32> = (0..768)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut non_ascii = false;
    for seed in 0..6 {
        for max_len in [0, 1, 5, 40] {
            let options = DecodeOptions {
                strategy: Strategy::Sample {
                    temperature: 2.0,
                    top_k: 0,
                    top_p: 1.0,
                    seed,
                },
                max_len,
                stop_on_repeated_words: 0,
            };
            let d = decode(&inference, &embedding, &options).unwrap();
            assert_valid(&d, max_len);
            non_ascii |= !d.text.is_ascii();
        }
    }
    assert!(
        non_ascii,
        "hot sampling never produced a multi-byte character"
    );
    for strategy in [Strategy::Greedy, Strategy::Beam { width: 3 }] {
        let d = decode(
            &inference,
            &embedding,
            &DecodeOptions {
                strategy,
                stop_on_repeated_words: 0,
                max_len: 12,
            },
        )
        .unwrap();
        assert_valid(&d, 12);
    }
}

#[test]
fn sampling_is_reproducible_and_beam_is_at_least_as_likely_as_greedy() {
    let Some(data) = wordnet() else { return };
    let (model, rows) = trained(data);
    let inference = InferenceModel::from_model(model, Precision::F32).unwrap();
    let e = data.embedding(rows[0]);
    let sample = |seed| DecodeOptions {
        strategy: Strategy::Sample {
            temperature: 1.5,
            top_k: 40,
            top_p: 0.95,
            seed,
        },
        max_len: 64,
        stop_on_repeated_words: 0,
    };
    let a = decode(&inference, e, &sample(1)).unwrap();
    assert_eq!(a, decode(&inference, e, &sample(1)).unwrap());
    let others: Vec<String> = (2..8)
        .map(|s| decode(&inference, e, &sample(s)).unwrap().text)
        .collect();
    assert!(
        others.iter().any(|t| *t != a.text),
        "six seeds all gave {:?}",
        a.text
    );
    let greedy = decode(&inference, e, &DecodeOptions::default()).unwrap();
    let beam = decode(
        &inference,
        e,
        &DecodeOptions {
            strategy: Strategy::Beam { width: 4 },
            max_len: 128,
            stop_on_repeated_words: 0,
        },
    )
    .unwrap();
    assert!(
        beam.mean_log_prob >= greedy.mean_log_prob - 1e-6,
        "{beam:?} vs {greedy:?}"
    );
    // The reported confidence is the model's mean log-probability of the text it returned.
    for d in [&a, &greedy, &beam] {
        let scored = inference.mean_log_prob(e, &d.text).unwrap();
        assert!((scored - d.mean_log_prob).abs() < 1e-4, "{scored} vs {d:?}");
    }
    // MBR returns the consensus: one of the outputs it drew (greedy, or a sample with top-p
    // 0.95 at seeds 3..6), reproducibly.
    let mbr_options = DecodeOptions {
        strategy: Strategy::Mbr {
            samples: 4,
            temperature: 1.5,
            seed: 3,
        },
        max_len: 64,
        stop_on_repeated_words: 0,
    };
    let mbr = decode(&inference, e, &mbr_options).unwrap();
    assert_eq!(mbr, decode(&inference, e, &mbr_options).unwrap());
    let drawn: Vec<String> = (3..7)
        .map(|seed| {
            let o = DecodeOptions {
                strategy: Strategy::Sample {
                    temperature: 1.5,
                    top_k: 0,
                    top_p: 0.95,
                    seed,
                },
                max_len: 64,
                stop_on_repeated_words: 0,
            };
            decode(&inference, e, &o).unwrap().text
        })
        .chain([decode(
            &inference,
            e,
            &DecodeOptions {
                max_len: 64,
                stop_on_repeated_words: 0,
                ..DecodeOptions::default()
            },
        )
        .unwrap()
        .text])
        .collect();
    assert!(drawn.contains(&mbr.text), "{mbr:?} not in {drawn:?}");
    // The trained phrase is more likely under its own embedding than under another's.
    let own = inference.mean_log_prob(e, data.phrase(rows[0])).unwrap();
    let other = inference
        .mean_log_prob(data.embedding(rows[4]), data.phrase(rows[0]))
        .unwrap();
    assert!(own > other, "{own} <= {other}");
    let bad = DecodeOptions {
        max_len: 500,
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode(&inference, e, &bad),
        Err(Error::InvalidArgument(_))
    ));
    for strategy in [
        Strategy::Beam { width: 0 },
        Strategy::Mbr {
            samples: 0,
            temperature: 1.0,
            seed: 0,
        },
        Strategy::Mbr {
            samples: 2,
            temperature: f32::NAN,
            seed: 0,
        },
        Strategy::Sample {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        },
        Strategy::Sample {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
            seed: 0,
        },
    ] {
        let options = DecodeOptions {
            strategy,
            stop_on_repeated_words: 0,
            max_len: 10,
        };
        assert!(matches!(
            decode(&inference, e, &options),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn invalid_embeddings_are_errors() {
    let model = GenerativeModel::new(small_config(), 0).unwrap();
    let inference = InferenceModel::from_model(&model, Precision::Q8).unwrap();
    let o = DecodeOptions::default();
    assert!(matches!(
        decode(&inference, &[0.1; 10], &o),
        Err(Error::DimensionMismatch {
            expected: 768,
            got: 10
        })
    ));
    let mut nan = vec![0.1f32; 768];
    nan[5] = f32::NAN;
    assert!(matches!(
        decode(&inference, &nan, &o),
        Err(Error::NonFinite { position: 5, .. })
    ));
    let mut inf = vec![0.1f32; 768];
    inf[700] = f32::NEG_INFINITY;
    assert!(matches!(
        decode(&inference, &inf, &o),
        Err(Error::NonFinite { position: 700, .. })
    ));
    assert!(matches!(
        decode(&inference, &[0.0; 768], &o),
        Err(Error::ZeroVector { .. })
    ));
    let e = vec![0.1f32; 768];
    let too_long = vec![b'a'; 129];
    assert!(matches!(
        Batch::new(model.config(), &[&too_long], &[&e], model.device()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Batch::new(model.config(), &[b"a\0b"], &[&e], model.device()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Batch::new(model.config(), &[b"ab"], &[&[0.0; 768]], model.device()),
        Err(Error::ZeroVector { .. })
    ));
}
