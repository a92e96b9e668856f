//! `lwdec demo`: the bundled samples decoded, original and decoded text side by side.

use lightweight_decoder::eval::metrics::{same_text, token_f1};
use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::eval::samples::{SampleSet, OUT_OF_DOMAIN, VALIDATION, WORDNET_SAMPLE};
use lightweight_decoder::generative::GuideSettings;
use lightweight_decoder::{Decoded, Decoder, DecoderConfig, Result};
use ndarray::s;

use crate::options::DecoderArgs;

/// Mean token F1 of the first `rows` outputs against their references.
fn mean_f1(decoded: &[Decoded], references: &[String], rows: usize) -> f64 {
    decoded
        .iter()
        .zip(references)
        .take(rows)
        .map(|(d, reference)| token_f1(&d.text, reference))
        .sum::<f64>()
        / rows.max(1) as f64
}

/// The demo: the bank on bundled WordNet phrases (exact and noisy), then the generator.
pub fn run(rows: usize, args: &DecoderArgs) -> Result<()> {
    let sample = SampleSet::bundled(WORDNET_SAMPLE)?;
    let rows = rows.min(sample.texts.len());
    let decoder = crate::build_decoder(args)?;
    let embeddings = sample.embeddings.slice(s![..rows, ..]).to_owned();
    let noisy = perturb_rows(&embeddings, 0.8, 7);
    let exact = decoder.batch_decode(embeddings.view())?;
    let perturbed = decoder.batch_decode(noisy.view())?;
    println!(
        "Decoding {rows} bundled all-mpnet-base-v2 embeddings of WordNet phrases with the bundled bank."
    );
    println!("Each row: the original text, the decoded text, and the text decoded after noise to cosine 0.80.\n");
    for i in 0..rows {
        let mark = |t: &str| {
            if same_text(t, &sample.texts[i]) {
                "="
            } else {
                "~"
            }
        };
        println!("original : {}", sample.texts[i]);
        println!(
            "decoded  : {} {} (confidence {:.2})",
            mark(&exact[i].text),
            exact[i].text,
            exact[i].confidence
        );
        println!(
            "noisy    : {} {} (confidence {:.2})\n",
            mark(&perturbed[i].text),
            perturbed[i].text,
            perturbed[i].confidence
        );
    }
    let same = |d: &[Decoded]| {
        d.iter()
            .zip(&sample.texts)
            .filter(|(d, t)| same_text(&d.text, t))
            .count()
    };
    println!(
        "recovered exactly: {}/{rows} from exact embeddings, {}/{rows} from noisy ones (= same text, ~ different)",
        same(&exact),
        same(&perturbed)
    );
    generator(rows, args)
}

/// The demo's second part: the bundled generative model alone on held-out validation
/// embeddings, then guided by the bank (the default) on text unlike WordNet that no bank holds.
fn generator(rows: usize, args: &DecoderArgs) -> Result<()> {
    let builder = args.builder()?;
    // alone: the bundled bank holds the validation phrases, a guide would copy them
    let alone = DecoderConfig {
        guide: GuideSettings::off(),
        ..DecoderConfig::default()
    };
    let generator = builder.clone().config(alone).generative()?;
    let held_out = SampleSet::bundled(VALIDATION)?;
    let n = rows.min(held_out.texts.len());
    let config = generator.model().config();
    println!(
        "\nThe generative decoder ({} parameters, {:?}, depth {}) writes text byte by byte; \
         here alone, on {n} held-out phrases that training never saw:\n",
        config.parameter_count(),
        generator.model().precision(),
        config.depth
    );
    let decoded = generator.batch_decode(held_out.embeddings.slice(s![..n, ..]))?;
    for (d, reference) in decoded.iter().zip(&held_out.texts) {
        println!("original : {reference}");
        println!("generated: {}\n", d.text);
    }
    println!(
        "mean token F1 {:.3} over these rows",
        mean_f1(&decoded, &held_out.texts, n)
    );

    if !args.decoder_config()?.guide.enabled() {
        return Ok(());
    }
    let bank = builder.phrase_bank()?;
    let guided = builder.generative_with_bank(bank.shared_bank())?;
    let unlike = SampleSet::bundled(OUT_OF_DOMAIN)?;
    let n = rows.min(unlike.texts.len());
    println!(
        "\nBy default it is guided by the bank's nearest phrases, which it weighs, copies from and \
         splices; here on texts unlike WordNet that no bank holds (samples/ood), the first {n} \
         of {}:\n",
        unlike.texts.len()
    );
    let nearest = bank.batch_decode(unlike.embeddings.view())?;
    let written = guided.batch_decode(unlike.embeddings.view())?;
    for ((b, g), reference) in nearest.iter().zip(&written).zip(&unlike.texts).take(n) {
        println!("original : {reference}");
        println!("bank     : {}", b.text);
        println!("guided   : {}\n", g.text);
    }
    let all = unlike.texts.len();
    println!(
        "mean token F1, nearest bank phrase / guided generator: {:.3} / {:.3} over these rows, \
         {:.3} / {:.3} over all {all} (`--beam 8` writes better, slower)",
        mean_f1(&nearest, &unlike.texts, n),
        mean_f1(&written, &unlike.texts, n),
        mean_f1(&nearest, &unlike.texts, all),
        mean_f1(&written, &unlike.texts, all)
    );
    Ok(())
}
