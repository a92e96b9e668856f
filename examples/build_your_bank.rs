//! Job 3: build a bank from your own sentences and decode against it.
//!
//! `cargo run --release --example build_your_bank -- SENTENCES.txt [BANK_DIR]` embeds every
//! line of the file with the reference encoder, builds a bank (an exact FAISS index below
//! 50,000 lines, a compressed one above), saves it to BANK_DIR (default `target/my_bank`) and
//! decodes a few of its own sentences, slightly perturbed, back to text. Without arguments it
//! uses the bundled `samples/everyday.txt`. Needs the encoder's weights:
//! `bash scripts/install-encoder.sh`. `lwdec bank build` does the same from the command line.

use std::path::PathBuf;

use lightweight_decoder::eval::perturb_rows;
use lightweight_decoder::phrase_bank::BankBuildOptions;
use lightweight_decoder::{
    Decoder, DecoderConfig, Encoder, MpnetEncoder, PhraseBank, PhraseBankDecoder,
};

fn main() -> lightweight_decoder::Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let file = args.next().unwrap_or_else(|| "samples/everyday.txt".into());
    let dir = args.next().unwrap_or_else(|| "target/my_bank".into());
    let text = std::fs::read_to_string(&file)
        .map_err(|e| lightweight_decoder::Error::io("read", &file, e))?;
    let sentences: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let encoder = MpnetEncoder::load(&MpnetEncoder::default_location())?;
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let embeddings = encoder.embed(&refs)?;
    let mut bank = PhraseBank::build(
        sentences.clone(),
        embeddings.view(),
        &BankBuildOptions::default(),
        |_| {},
    )?;
    bank.save(&dir)?;
    println!("{} sentences -> {}", bank.len(), dir.display());
    // an upstream network's vectors are never exact: decode at cosine 0.9 to the originals
    let noisy = perturb_rows(&embeddings, 0.9, 7);
    let decoder = PhraseBankDecoder::new(PhraseBank::load(&dir)?, DecoderConfig::default())?;
    for (row, decoded) in decoder
        .batch_decode(noisy.view())?
        .iter()
        .enumerate()
        .take(5)
    {
        println!("{:<50}  -> {}", sentences[row], decoded.text);
    }
    Ok(())
}
