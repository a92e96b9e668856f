//! The bank's on-disk format (zstd-compressed phrases, format 3; format 2 still read), the
//! 4-bit fast-scan index kind of the broad bank, near-duplicate thinning and banks grown in
//! stages (`PhraseBank::extend`), on real
//! all-mpnet-base-v2 embeddings of the bundled WordNet sample.

use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, WORDNET_SAMPLE};
use lightweight_decoder::phrase_bank::{
    BankBuildOptions, FileDigest, Manifest, NearDuplicates, FORMAT_VERSION, MANIFEST_FILE,
    PHRASES_FILE, PLAIN_PHRASES_FILE,
};
use lightweight_decoder::{Encoder, MpnetEncoder, PhraseBank};
use ndarray::{concatenate, s, Axis};

fn sample() -> SampleSet {
    SampleSet::bundled(WORDNET_SAMPLE).unwrap()
}

/// Ids of the best hit of each row of `queries`.
fn top_ids(bank: &PhraseBank, queries: &ndarray::Array2<f32>) -> Vec<usize> {
    let flat: Vec<f32> = queries.iter().copied().collect();
    bank.search(&flat, 1)
        .unwrap()
        .iter()
        .map(|hits| hits[0].id)
        .collect()
}

/// Rewrites the format-3 bank in `dir` as format 2 (plain phrases, sealed manifest), as
/// banks were saved before session 16 (the bundled WordNet bank is one).
fn downgrade_to_format_2(dir: &std::path::Path) {
    let text: String = PhraseBank::load(dir)
        .unwrap()
        .phrases()
        .map(|p| format!("{p}\n"))
        .collect();
    std::fs::write(dir.join(PLAIN_PHRASES_FILE), text).unwrap();
    std::fs::remove_file(dir.join(PHRASES_FILE)).unwrap();
    let path = dir.join(MANIFEST_FILE);
    let mut m: Manifest = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m.format_version = 2;
    m.files.remove(PHRASES_FILE);
    m.files.insert(
        PLAIN_PHRASES_FILE.into(),
        FileDigest::of_file(&dir.join(PLAIN_PHRASES_FILE)).unwrap(),
    );
    std::fs::write(&path, m.to_json().unwrap()).unwrap();
}

#[test]
fn format_2_banks_load_and_re_save_as_compressed_format_3_with_identical_results() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    let built = {
        let mut bank = PhraseBank::build(
            s.texts.clone(),
            s.embeddings.view(),
            &Default::default(),
            |_| {},
        )
        .unwrap();
        bank.save(&old).unwrap();
        bank
    };
    downgrade_to_format_2(&old);
    let plain_bytes = std::fs::metadata(old.join(PLAIN_PHRASES_FILE))
        .unwrap()
        .len();
    let mut v2 = PhraseBank::load(&old).unwrap();
    assert_eq!(v2.manifest().format_version, 2);
    assert!(v2.phrases().eq(built.phrases()));
    let queries = perturb_rows(&s.embeddings, 0.9, 5);
    assert_eq!(top_ids(&v2, &queries), top_ids(&built, &queries));

    let new = dir.path().join("new");
    v2.save(&new).unwrap();
    assert!(!new.join(PLAIN_PHRASES_FILE).exists());
    let compressed = std::fs::metadata(new.join(PHRASES_FILE)).unwrap().len();
    assert!(
        compressed * 2 < plain_bytes,
        "{compressed} compressed bytes against {plain_bytes} plain"
    );
    let v3 = PhraseBank::load(&new).unwrap();
    assert_eq!(v3.manifest().format_version, FORMAT_VERSION);
    assert!(v3.phrases().eq(built.phrases()));
    assert_eq!(top_ids(&v3, &queries), top_ids(&built, &queries));

    // a format-2 manifest naming the compressed file (or the reverse) is refused
    std::fs::copy(new.join(PHRASES_FILE), old.join(PHRASES_FILE)).unwrap();
    let path = old.join(MANIFEST_FILE);
    let mut m: Manifest = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let digest = m.files.remove(PLAIN_PHRASES_FILE).unwrap();
    m.files.insert(PHRASES_FILE.into(), digest);
    std::fs::write(&path, m.to_json().unwrap()).unwrap();
    let err = PhraseBank::load(&old).unwrap_err().to_string();
    assert!(err.contains("a bank of format 2 holds exactly"), "{err}");
}

#[test]
fn fast_scan_index_recovers_phrases_and_survives_a_round_trip() {
    let s = sample();
    let options = BankBuildOptions {
        index_spec: "IVF16,PQ96x4fs".into(),
        nprobe: 4,
        ..Default::default()
    };
    let mut bank =
        PhraseBank::build(s.texts.clone(), s.embeddings.view(), &options, |_| {}).unwrap();
    let exact = top_ids(&bank, &s.embeddings);
    let recovered = exact.iter().enumerate().filter(|(i, id)| i == *id).count();
    assert!(
        recovered * 100 >= s.texts.len() * 99,
        "fast-scan recovered {recovered} of {}",
        s.texts.len()
    );
    let noisy = perturb_rows(&s.embeddings, 0.95, 7);
    let before = top_ids(&bank, &noisy);
    let dir = tempfile::tempdir().unwrap();
    bank.save(dir.path()).unwrap();
    let loaded = PhraseBank::load(dir.path()).unwrap();
    assert_eq!(loaded.manifest().index_spec, "IVF16,PQ96x4fs");
    assert_eq!(loaded.manifest().nprobe, Some(4));
    assert_eq!(top_ids(&loaded, &noisy), before);
    // reconstruction works on a loaded fast-scan index (FAISS 1.12 needs the crate's repair;
    // the norm correction of `search` and context-aware assembly use it): each of 50
    // reconstructions is nearest to its own row
    let own = (0..50)
        .filter(|&i| {
            let v = ndarray::Array1::from(loaded.embedding(i).unwrap());
            let scores = s.embeddings.dot(&v);
            let best = scores
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            best == i
        })
        .count();
    assert!(
        own >= 48,
        "{own} of 50 reconstructions nearest to their own row"
    );
}

#[test]
fn near_duplicates_after_the_kept_prefix_are_left_out() {
    let s = sample();
    let base = 1_000;
    // 50 phrases whose embeddings are real rows moved to cosine 0.99, then 50 at cosine 0.90
    let near = perturb_rows(&s.embeddings.slice(s![..50, ..]).to_owned(), 0.99, 3);
    let far = perturb_rows(&s.embeddings.slice(s![50..100, ..]).to_owned(), 0.90, 4);
    let embeddings = concatenate(
        Axis(0),
        &[s.embeddings.slice(s![..base, ..]), near.view(), far.view()],
    )
    .unwrap();
    let mut texts = s.texts[..base].to_vec();
    texts.extend((0..100).map(|i| format!("copy {i} of {}", s.texts[i % 100])));

    let thinned = |from_row| {
        let options = BankBuildOptions {
            near_duplicates: Some(NearDuplicates {
                cosine: 0.98,
                from_row,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut dropped = None;
        let bank = PhraseBank::build(texts.clone(), embeddings.view(), &options, |p| {
            if let lightweight_decoder::phrase_bank::BuildProgress::NearDuplicates {
                dropped: d,
                ..
            } = p
            {
                dropped = Some(d);
            }
        })
        .unwrap();
        (bank, dropped.expect("a near-duplicate report"))
    };

    let (bank, dropped) = thinned(0);
    assert_eq!(dropped, 50, "exactly the 50 copies at cosine 0.99 go");
    assert_eq!(bank.len(), base + 50);
    let kept: Vec<&str> = bank.phrases().collect();
    assert_eq!(&kept[..base], &s.texts[..base]);
    assert!(kept[base..].iter().all(|t| {
        let i: usize = t["copy ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        i >= 50
    }));
    // the bank's own phrases still decode to themselves
    let ids = top_ids(&bank, &s.embeddings.slice(s![..base, ..]).to_owned());
    assert!(ids.iter().enumerate().all(|(i, &id)| i == id));

    // a kept prefix covering every row drops nothing
    let (bank, dropped) = thinned(base + 100);
    assert_eq!((dropped, bank.len()), (0, base + 100));
}

#[test]
fn invalid_near_duplicate_settings_are_refused() {
    let s = sample();
    for (cosine, neighbours) in [(0.0, 8), (1.5, 8), (f32::NAN, 8), (0.98, 0), (0.98, 1025)] {
        let options = BankBuildOptions {
            near_duplicates: Some(NearDuplicates {
                cosine,
                from_row: 0,
                neighbours,
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = PhraseBank::build(
            s.texts[..10].to_vec(),
            s.embeddings.slice(s![..10, ..]),
            &options,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("near-duplicate"), "{err}");
    }
}

#[test]
fn a_loaded_fast_scan_bank_extended_in_a_second_stage_keeps_its_ids_and_finds_the_new_rows() {
    let s = sample();
    let first = 1_200;
    let options = BankBuildOptions {
        index_spec: "IVF16,PQ96x4fs".into(),
        nprobe: 4,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut staged = PhraseBank::build(
        s.texts[..first].to_vec(),
        s.embeddings.slice(s![..first, ..]),
        &options,
        |_| {},
    )
    .unwrap();
    staged.save(dir.path()).unwrap();
    let mut bank = PhraseBank::load(dir.path()).unwrap();

    // the second stage: the remaining 800 rows, then 40 copies of first-stage rows and 40 of
    // second-stage rows moved to cosine 0.99, then 40 rows moved to 0.90 (distinct phrases)
    let rest = s.embeddings.slice(s![first.., ..]);
    let old_copies = perturb_rows(&s.embeddings.slice(s![..40, ..]).to_owned(), 0.99, 11);
    let new_copies = perturb_rows(
        &s.embeddings.slice(s![first..first + 40, ..]).to_owned(),
        0.99,
        12,
    );
    let far = perturb_rows(&s.embeddings.slice(s![40..80, ..]).to_owned(), 0.90, 13);
    let added = concatenate(
        Axis(0),
        &[rest, old_copies.view(), new_copies.view(), far.view()],
    )
    .unwrap();
    let mut texts = s.texts[first..].to_vec();
    texts.extend((0..40).map(|i| format!("old copy {i}")));
    texts.extend((0..40).map(|i| format!("new copy {i}")));
    texts.extend((0..40).map(|i| format!("far {i}")));
    let extend = |bank: &mut PhraseBank, encoder: Option<&dyn Encoder>| {
        let mut dropped = None;
        let kept = bank
            .extend(
                texts.clone(),
                added.view(),
                Some(&NearDuplicates::default()),
                encoder,
                |p| {
                    if let lightweight_decoder::phrase_bank::BuildProgress::NearDuplicates {
                        dropped: d,
                        ..
                    } = p
                    {
                        dropped = Some(d);
                    }
                },
            )
            .unwrap();
        (kept, dropped)
    };
    // without an encoder the bank's own phrases have only codes: only new copies go
    let rest_rows = s.texts.len() - first;
    let (kept, dropped) = extend(&mut PhraseBank::load(dir.path()).unwrap(), None);
    assert_eq!((kept, dropped), (rest_rows + 80, Some(40)));
    // with the encoder, the first-stage phrases near a new row are re-embedded and compared
    let encoder = MpnetEncoder::from_default_location().unwrap();
    let (kept, dropped) = extend(&mut bank, Some(&encoder));
    assert_eq!(dropped, Some(80), "both kinds of copies go");
    assert_eq!(kept, rest_rows + 40);
    assert_eq!(bank.len(), s.texts.len() + 40);
    let phrases: Vec<&str> = bank.phrases().collect();
    assert_eq!(&phrases[..s.texts.len()], &s.texts[..]);
    assert!(phrases[s.texts.len()..]
        .iter()
        .all(|p| p.starts_with("far ")));

    // saved and loaded again, old and new rows decode to themselves as in a one-stage bank
    let out = dir.path().join("extended");
    bank.save(&out).unwrap();
    let loaded = PhraseBank::load(&out).unwrap();
    assert_eq!(loaded.manifest().count, s.texts.len() + 40);
    let ids = top_ids(&loaded, &s.embeddings);
    let recovered = ids.iter().enumerate().filter(|(i, id)| i == *id).count();
    assert!(
        recovered * 100 >= s.texts.len() * 99,
        "the extended bank recovered {recovered} of {}",
        s.texts.len()
    );

    // rows of the wrong width are refused, and the bank is unchanged
    let mut bank = loaded;
    let wide = ndarray::Array2::<f32>::ones((2, 769));
    let err = bank
        .extend(
            vec!["a".into(), "b".into()],
            wide.view(),
            None,
            None,
            |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("dimension"), "{err}");
    assert_eq!(bank.len(), s.texts.len() + 40);
}
