//! Decodes the bundled WordNet and held-out samples (copied into `SAMPLES`, the first
//! argument) with the three decoders, as a project that depends on lightweight-decoder would,
//! and checks that the data came from `$LWDEC_DATA_DIR` and that the decoders work on it.

use std::path::PathBuf;
use std::process::ExitCode;

use lightweight_decoder::eval::exact_match_rate;
use lightweight_decoder::eval::metrics::token_f1;
use lightweight_decoder::eval::samples::SampleSet;
use lightweight_decoder::generative::GenerativeDecoder;
use lightweight_decoder::{Decoder, DecoderBuilder, PhraseBank};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("downstream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let samples = PathBuf::from(std::env::args().nth(1).ok_or("usage: downstream SAMPLES")?);
    let data = PathBuf::from(std::env::var("LWDEC_DATA_DIR")?);
    // found through the user data folder, not a checkout
    for (what, path) in [
        ("bank", PhraseBank::default_dir()),
        ("generator", GenerativeDecoder::default_model_path()),
    ] {
        println!("{what}: {}", path.display());
        if !path.starts_with(&data) {
            return Err(format!(
                "the {what} was found at {}, not in {}",
                path.display(),
                data.display()
            )
            .into());
        }
    }
    let wordnet = SampleSet::load(&samples, "wordnet_sample")?;
    let held_out = SampleSet::load(&samples, "ood2")?;
    let builder = DecoderBuilder::new();
    let bank = builder.phrase_bank()?;
    let generator = builder.generative()?;
    let hybrid = builder.hybrid()?;
    let rows = 200;
    let f1 = |decoded: &[lightweight_decoder::Decoded], set: &SampleSet| {
        decoded
            .iter()
            .zip(&set.texts)
            .map(|(d, t)| token_f1(&d.text, t))
            .sum::<f64>()
            / decoded.len() as f64
    };
    // each row its own session; texts compared as the evaluation does (case, spacing)
    let view = wordnet.embeddings.slice(ndarray::s![..rows, ..]);
    let sessions: Vec<usize> = (0..rows).collect();
    let exact = exact_match_rate(&bank, view, &sessions, &wordnet.texts[..rows])?;
    println!(
        "bank: {:.1}% of {rows} WordNet phrases exact",
        exact * 100.0
    );
    if exact < 0.95 {
        return Err(format!("the bank decoded {exact:.3} of the phrases exactly").into());
    }
    let held = held_out.embeddings.slice(ndarray::s![..50, ..]);
    for (name, decoder) in [
        ("generator", &generator as &dyn Decoder),
        ("hybrid", &hybrid as &dyn Decoder),
    ] {
        let decoded = decoder.batch_decode(held)?;
        let score = f1(&decoded, &held_out);
        println!(
            "{name}: token F1 {score:.3} on 50 held-out sentences; first: {:?}",
            decoded[0].text
        );
        if decoded.iter().any(|d| d.text.trim().is_empty()) || score < 0.05 {
            return Err(format!("the {name} decoded badly (token F1 {score:.3})").into());
        }
    }
    Ok(())
}
