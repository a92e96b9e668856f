//! `lwdec bank build|extend|info`: phrase banks.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lightweight_decoder::eval::metrics::same_text;
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, CORPUS_SAMPLE, WORDNET_SAMPLE};
use lightweight_decoder::generative::train::is_validation;
use lightweight_decoder::phrase_bank::{
    BankBuildOptions, BuildProgress, CacheConfig, NearDuplicates,
};
use lightweight_decoder::{
    AssemblyMethod, Decoder, DecoderConfig, Encoder, Error, MpnetEncoder, PhraseBank,
    PhraseBankDecoder, Result,
};

use crate::options::CorpusArgs;

/// Builds a bank from phrases and their embeddings (read, or made with the encoder) and saves
/// it to `out`.
pub fn build(
    corpus: &CorpusArgs,
    out: &Path,
    exclude_validation: bool,
    options: BankBuildOptions,
) -> Result<()> {
    let (mut phrases, mut vectors) = corpus.load()?;
    if exclude_validation {
        let keep: Vec<usize> = (0..phrases.len())
            .filter(|&i| !is_validation(&phrases[i]))
            .collect();
        vectors = vectors.select(ndarray::Axis(0), &keep);
        phrases = keep
            .iter()
            .map(|&i| std::mem::take(&mut phrases[i]))
            .collect();
    }
    let bar = progress_bar(phrases.len());
    let started = Instant::now();
    let mut bank = PhraseBank::build(phrases, vectors.view(), &options, |p| show(&bar, p))?;
    bank.save(out)?;
    bar.finish_and_clear();
    report("built", &bank, out, started)
}

/// Adds phrases and their embeddings to the bank at `dir` and saves it to `out` (default:
/// `dir`).
pub fn extend(
    dir: &Path,
    corpus: &CorpusArgs,
    out: Option<&Path>,
    near_duplicates: Option<&NearDuplicates>,
    recheck_encoder: Option<&Path>,
) -> Result<()> {
    let (phrases, vectors) = corpus.load()?;
    let encoder = recheck_encoder
        .map(|dir| {
            let (dir, origin) = crate::embed::encoder_dir(Some(dir), "--recheck-encoder");
            MpnetEncoder::load_from(&dir, origin, crate::embed::precision())
        })
        .transpose()?;
    let mut bank = PhraseBank::load(dir)?;
    let before = bank.len();
    let bar = progress_bar(phrases.len());
    let started = Instant::now();
    let encoder = encoder.as_ref().map(|e| e as &dyn Encoder);
    let added = bank.extend(phrases, vectors.view(), near_duplicates, encoder, |p| {
        show(&bar, p)
    })?;
    let out = out.unwrap_or(dir);
    bank.save(out)?;
    bar.finish_and_clear();
    println!("added {added} phrases to the {before} of {}", dir.display());
    report("extended", &bank, out, started)
}

fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>20} [{bar:40}] {pos}/{len} {elapsed_precise}")
            .expect("static template"),
    );
    bar
}

fn show(bar: &ProgressBar, progress: BuildProgress) {
    match progress {
        BuildProgress::Training { vectors } => {
            bar.set_message(format!("training on {vectors}"));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        BuildProgress::Adding { done, .. } => {
            bar.set_message("adding");
            bar.set_position(done as u64);
        }
        BuildProgress::NearDuplicates { examined, dropped } => {
            eprintln!("near-duplicates: {dropped} of {examined} examined phrases left out");
        }
    }
}

/// "built 729,000 phrases, index ..., 59.0 MB in DIR (300 s)".
fn report(what: &str, bank: &PhraseBank, out: &Path, started: Instant) -> Result<()> {
    let m = bank.manifest();
    println!(
        "{what} {} phrases, index {}, {:.1} MB in {} ({:.0} s)",
        m.count,
        m.index_spec,
        bank_bytes(out)? as f64 / 1e6,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// "exact embeddings" or "noise to cosine C".
fn noise_label(cosine: f32) -> String {
    if cosine >= 1.0 {
        "exact embeddings".to_string()
    } else {
        format!("noise to cosine {cosine:.2}")
    }
}

/// "99.50% (1990/2000)".
fn percent(hits: usize, n: usize) -> String {
    format!("{:.2}% ({hits}/{n})", 100.0 * hits as f64 / n.max(1) as f64)
}

/// Size on disk of a bank directory: the sum of its files.
fn bank_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list the folder", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list the folder", dir, e))?;
        total += entry
            .metadata()
            .map_err(|e| Error::io("read the metadata of", entry.path(), e))?
            .len();
    }
    Ok(total)
}

/// Describes a bank (the bundled one when `dir` is `None`); with `verify`, measures how often
/// the bundled sample phrases in it (WordNet and corpus sentences, matched by text) decode to
/// themselves from exact and noisy embeddings.
pub fn info(dir: Option<&Path>, verify: bool) -> Result<()> {
    let dir = dir.map_or_else(PhraseBank::default_dir, Path::to_path_buf);
    let bank = PhraseBank::load(&dir)?;
    let m = bank.manifest();
    println!("bank        {}", dir.display());
    println!("phrases     {}", m.count);
    println!("dimension   {}", m.dimension);
    println!("encoder     {}", m.encoder);
    println!(
        "index       {} (nprobe {})",
        m.index_spec,
        m.nprobe.map_or("-".to_string(), |n| n.to_string())
    );
    println!(
        "size        {:.2} MB on disk",
        bank_bytes(&dir)? as f64 / 1e6
    );
    println!("checksums   ok (sha256 of {} files)", m.files.len());
    if !verify {
        return Ok(());
    }
    let in_bank: HashSet<&str> = bank.phrases().collect();
    let mut samples = Vec::new();
    for name in [WORDNET_SAMPLE, CORPUS_SAMPLE] {
        let sample = SampleSet::bundled(name)?;
        let rows: Vec<usize> = (0..sample.texts.len())
            .filter(|&i| in_bank.contains(sample.texts[i].as_str()))
            .collect();
        if !rows.is_empty() {
            let refs: Vec<String> = rows.iter().map(|&i| sample.texts[i].clone()).collect();
            samples.push((
                name,
                sample.embeddings.select(ndarray::Axis(0), &rows),
                refs,
            ));
        }
    }
    drop(in_bank);
    if samples.is_empty() {
        return Err(Error::InvalidArgument(
            "none of the bundled sample phrases is in this bank".into(),
        ));
    }
    let config = DecoderConfig {
        phrase_bank: lightweight_decoder::PhraseBankSettings {
            method: AssemblyMethod::Greedy,
            cache: CacheConfig {
                capacity: 0,
                ..Default::default()
            },
            ..lightweight_decoder::PhraseBankSettings::default()
        },
        ..DecoderConfig::default()
    };
    let decoder = PhraseBankDecoder::new(bank, config)?;
    println!("self-recall@1 (decoded text equals the phrase), per bundled sample in the bank:");
    let mut total = [(0usize, 0usize); 3];
    for (name, embeddings, refs) in &samples {
        println!("  {name}: {} phrases", refs.len());
        for (slot, cosine) in [1.0f32, 0.95, 0.8].into_iter().enumerate() {
            let noisy = perturb_rows(embeddings, cosine, 42);
            let decoded = decoder.batch_decode(noisy.view())?;
            let hits = decoded
                .iter()
                .zip(refs)
                .filter(|(d, r)| same_text(&d.text, r))
                .count();
            total[slot].0 += hits;
            total[slot].1 += refs.len();
            println!(
                "    {:<22} {}",
                noise_label(cosine),
                percent(hits, refs.len())
            );
        }
    }
    if samples.len() > 1 {
        println!("  all samples:");
        for (slot, cosine) in [1.0f32, 0.95, 0.8].into_iter().enumerate() {
            let (hits, n) = total[slot];
            println!("    {:<22} {}", noise_label(cosine), percent(hits, n));
        }
    }
    Ok(())
}
