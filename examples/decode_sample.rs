//! Decode a few bundled sample embeddings with the default bank, alone and in a session.
//!
//! Run with `cargo run --release --example decode_sample`.

use lightweight_decoder::eval::samples::{SampleSet, SESSIONS_TEST};
use lightweight_decoder::{Decoder, DecoderConfig, PhraseBankDecoder, Result};

fn main() -> Result<()> {
    let decoder = PhraseBankDecoder::with_default_bank(DecoderConfig::default())?;
    let sessions = SampleSet::bundled(SESSIONS_TEST)?;
    let boundaries = sessions.boundaries.clone().unwrap_or_default();
    let rows = boundaries.get(3).copied().unwrap_or(sessions.texts.len());
    let batch = sessions.embeddings.slice(ndarray::s![..rows, ..]);
    let decoded = decoder.batch_decode_with_sessions(batch, &boundaries[..3])?;
    for (i, d) in decoded.iter().enumerate() {
        if boundaries.contains(&i) {
            println!("--- session starting at row {i}");
        }
        println!("{:.2}  {}", d.confidence, d.text);
    }
    println!("{:#?}", decoder.statistics());
    Ok(())
}
