//! Sessions, the cache, the assembly methods, configs and monitoring, on real embeddings.

mod common;

use lightweight_decoder::eval::metrics::same_text;
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_TEST};
use lightweight_decoder::phrase_bank::CacheConfig;
use lightweight_decoder::HealthStatus;
use lightweight_decoder::UnitEmbedding;
use lightweight_decoder::{
    load_config, save_config, AssemblyMethod, Decoder, DecoderConfig, PhraseBankDecoder, Source,
};

#[test]
fn parallel_sessions_equal_sequential_decoding() {
    let s = SampleSet::bundled(SESSIONS_TEST).unwrap();
    let boundaries = s.boundaries.clone().unwrap();
    let inputs = perturb_rows(&s.embeddings, 0.3, 9);
    let d = common::default_decoder(AssemblyMethod::ContextAware);
    let parallel = d
        .batch_decode_with_sessions(inputs.view(), &boundaries)
        .unwrap();
    let mut sequential = Vec::new();
    let mut session = d.new_session();
    for row in 0..inputs.nrows() {
        if boundaries.contains(&row) {
            session = d.new_session();
        }
        sequential.push(
            d.decode_in_session(&inputs.row(row).to_vec(), &mut session)
                .unwrap(),
        );
    }
    assert!(
        parallel == sequential,
        "parallel sessions differ from sequential decoding"
    );
    // and context mattered: decoding every row alone gives different output somewhere
    let alone = d.batch_decode(inputs.view()).unwrap();
    let texts =
        |v: &[lightweight_decoder::Decoded]| v.iter().map(|d| d.text.clone()).collect::<Vec<_>>();
    assert_ne!(texts(&parallel), texts(&alone), "context changed no output");
}

#[test]
fn cache_hits_near_identical_inputs_and_clears_on_bank_change() {
    let config = lightweight_decoder::PhraseBankSettings {
        cache: CacheConfig {
            capacity: 16,
            ..Default::default()
        },
        ..lightweight_decoder::PhraseBankSettings::default()
    };
    let mut d = PhraseBankDecoder::new(common::small_bank(100), config).unwrap();
    let s = common::sample();
    let v = s.embeddings.row(3).to_vec();
    let first = d.decode(&v).unwrap();
    let nudged: Vec<f32> = v.iter().map(|x| x * 1.0001 + 1e-7).collect();
    let nudged = UnitEmbedding::new(&nudged, 768).unwrap().into_vec();
    let second = d.decode(&nudged).unwrap();
    assert_eq!(first.text, second.text);
    assert_eq!((d.cache().hits(), d.cache().misses()), (1, 1));
    assert!((d.statistics().cache_hit_rate - 0.5).abs() < 1e-9);
    assert_eq!(d.cache().len(), 1);
    d.set_bank(common::small_bank(50)).unwrap();
    assert_eq!(d.cache().len(), 0, "cache cleared when the bank changes");
    d.decode(&v).unwrap();
    assert_eq!(d.cache().misses(), 2);
}

#[test]
fn config_round_trips_through_json() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("decoder.json");
    let mut config = DecoderConfig::production();
    config.phrase_bank.method = AssemblyMethod::Beam;
    config.phrase_bank.beam.max_phrases = 2;
    config.verify.refine = Some(lightweight_decoder::RefineSettings {
        budget: 32,
        ..Default::default()
    });
    save_config(&config, &path).unwrap();
    assert_eq!(load_config(&path).unwrap(), config);
    // the file keeps the bank decoder's keys at its top level, beside the other decoders'
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["method"], "beam");
    assert_eq!(json["beam"]["max_phrases"], 2);
    assert_eq!(json["verify"]["refine"]["budget"], 32);
    assert!(json.get("phrase_bank").is_none());
    // a file of the earlier shape (no `verify`) loads with the default verification
    let mut old = json.clone();
    old.as_object_mut().unwrap().remove("verify");
    let loaded = DecoderConfig::from_json(&old.to_string()).unwrap();
    assert_eq!(loaded.phrase_bank, config.phrase_bank);
    assert_eq!(
        loaded.verify,
        lightweight_decoder::VerifySettings::default()
    );
    // refinement's settings are checked like the others'
    let mut bad_refine = json.clone();
    bad_refine["verify"]["refine"]["budget"] = serde_json::json!(0);
    let err = DecoderConfig::from_json(&bad_refine.to_string()).unwrap_err();
    assert!(err.to_string().contains("refine.budget"), "{err}");
    let bad = DecoderConfig {
        phrase_bank: lightweight_decoder::PhraseBankSettings {
            top_k: 0,
            ..lightweight_decoder::PhraseBankSettings::default()
        },
        ..Default::default()
    };
    assert!(save_config(&bad, &tmp.path().join("bad.json")).is_err());
    assert!(
        !tmp.path().join("bad.json").exists(),
        "nothing written for a bad config"
    );
}

#[test]
fn every_method_decodes_exact_embeddings_to_their_phrase() {
    let s = common::sample();
    let rows = s.embeddings.slice(ndarray::s![..200, ..]).to_owned();
    for method in [
        AssemblyMethod::Greedy,
        AssemblyMethod::Weighted,
        AssemblyMethod::Beam,
        AssemblyMethod::ContextAware,
    ] {
        let d = common::default_decoder(method);
        let out = d.batch_decode(rows.view()).unwrap();
        // Beam may join a second phrase when the pair matches the compressed vectors better;
        // the phrase itself must still be part of the output.
        let found = out
            .iter()
            .zip(&s.bank_ids)
            .filter(|(o, id)| matches!(&o.source, Source::PhraseBank { phrase_ids } if phrase_ids.contains(id)))
            .count();
        let same = out
            .iter()
            .zip(&s.texts)
            .filter(|(o, t)| same_text(&o.text, t))
            .count();
        eprintln!("{method:?}: phrase found {found}/200, output equal {same}/200");
        assert!(found >= 198, "{method:?}: {found}/200");
        if method != AssemblyMethod::Beam {
            assert!(same >= 198, "{method:?}: {same}/200");
        }
        assert!(out.iter().all(|o| (0.0..=1.0).contains(&o.confidence)));
        assert!(out.iter().all(|o| o.candidates.len() == d.config().top_k));
    }
}

#[test]
fn beam_assembles_two_phrases_from_a_combined_embedding() {
    let s = common::sample();
    let d = common::default_decoder(AssemblyMethod::Beam);
    let greedy = common::default_decoder(AssemblyMethod::Greedy);
    let mut both_found = 0;
    let pairs = 40;
    for i in 0..pairs {
        let (a, b) = (2 * i, 2 * i + 1);
        let v: Vec<f32> = s
            .embeddings
            .row(a)
            .iter()
            .zip(s.embeddings.row(b))
            .map(|(x, y)| x + y)
            .collect();
        let v = UnitEmbedding::new(&v, 768).unwrap().into_vec();
        let out = d.decode(&v).unwrap();
        let Source::PhraseBank { phrase_ids } = &out.source else {
            panic!("bank source expected")
        };
        if phrase_ids.contains(&s.bank_ids[a]) && phrase_ids.contains(&s.bank_ids[b]) {
            both_found += 1;
        }
        assert!(out.confidence + 1e-4 >= greedy.decode(&v).unwrap().confidence);
    }
    assert!(
        both_found >= pairs * 3 / 4,
        "both phrases found for {both_found}/{pairs}"
    );
}

#[test]
fn statistics_and_health_follow_traffic() {
    let d = common::default_decoder(AssemblyMethod::Greedy);
    assert_eq!(d.health().status, HealthStatus::Healthy);
    let s = common::sample();
    for row in s.embeddings.rows().into_iter().take(20) {
        d.decode(&row.to_vec()).unwrap();
    }
    for _ in 0..5 {
        assert!(d.decode(&[f32::NAN; 768]).is_err());
    }
    let stats = d.statistics();
    assert_eq!((stats.decoded, stats.errors), (20, 5));
    assert!((stats.error_rate - 0.2).abs() < 1e-9);
    assert!(stats.latency_p50_us > 0.0 && stats.latency_p50_us <= stats.latency_p99_us);
    let health = d.health();
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.reasons.iter().any(|r| r.contains("error rate")));
}

#[test]
fn banks_use_the_requested_index_kind() {
    let s = common::sample();
    let n = 500;
    for (spec, expected) in [("auto", "Flat"), ("HNSW16", "HNSW16")] {
        let options = lightweight_decoder::phrase_bank::BankBuildOptions {
            index_spec: spec.into(),
            ..Default::default()
        };
        let bank = lightweight_decoder::PhraseBank::build(
            s.texts[..n].to_vec(),
            s.embeddings.slice(ndarray::s![..n, ..]),
            &options,
            |_| {},
        )
        .unwrap();
        assert_eq!(bank.manifest().index_spec, expected);
        let d = PhraseBankDecoder::new(bank, DecoderConfig::default()).unwrap();
        let out = d
            .batch_decode(s.embeddings.slice(ndarray::s![..n, ..]))
            .unwrap();
        let same = out
            .iter()
            .zip(&s.texts)
            .filter(|(o, t)| same_text(&o.text, t))
            .count();
        assert!(same >= n - 2, "{spec}: {same}/{n}");
    }
}

/// An assembler and a post-processing stage of a user's own, given to the builder, decide the
/// bank decoder's output and the hybrid's bank answers.
#[test]
fn a_custom_assembler_and_postprocessor_plug_in_through_the_builder() {
    use lightweight_decoder::phrase_bank::assembly::{Assembler, Assembly, AssemblyInput};
    use lightweight_decoder::phrase_bank::postprocess::PostProcessor;
    use lightweight_decoder::DecoderBuilder;
    use std::sync::Arc;

    /// Always the second-best phrase.
    struct Second;
    impl Assembler for Second {
        fn assemble(&self, input: &AssemblyInput<'_>) -> lightweight_decoder::Result<Assembly> {
            let hit = input.hits.get(1).unwrap_or(&input.hits[0]);
            Ok(Assembly {
                phrase_ids: vec![hit.id],
                similarity: hit.similarity,
                support: 1.0,
            })
        }
    }
    /// Upper case.
    struct Shout;
    impl PostProcessor for Shout {
        fn process(&self, segments: &mut Vec<String>) {
            segments.iter_mut().for_each(|s| *s = s.to_uppercase());
        }
    }
    let sample = SampleSet::bundled("validation").unwrap();
    let builder = DecoderBuilder::new()
        .assembler(Arc::new(Second))
        .postprocessor(Arc::new(Shout));
    let bank = builder.phrase_bank().unwrap();
    let hybrid = builder.hybrid().unwrap();
    for row in 0..20 {
        let v = sample.embeddings.row(row).to_vec();
        let d = bank.decode(&v).unwrap();
        let second = d.candidates[1].phrase_id.unwrap();
        assert_eq!(
            d.source,
            Source::PhraseBank {
                phrase_ids: vec![second]
            }
        );
        assert_eq!(d.text, d.text.to_uppercase(), "row {row}");
        assert_eq!(
            d.text,
            bank.bank().phrase(second).unwrap().to_uppercase(),
            "row {row}"
        );
        // exact bank phrases are above the hybrid's similarity: its answer is the bank's
        let h = hybrid.decode(&v).unwrap();
        assert_eq!(h.text, d.text, "row {row}");
    }
}
