//! Job 2: decode what your own sentence-transformers model emits.
//!
//! In Python, your pipeline does
//! `np.save("vectors.npy", SentenceTransformer("all-mpnet-base-v2").encode(texts))`;
//! `cargo run --release --example decode_your_encoder -- vectors.npy` decodes that file, with
//! verified decoding: each answer is re-embedded by the reference encoder (the same model, in
//! Rust) and the closest to your vector wins, its round-trip cosine printed beside it.
//! Without an argument the example embeds a few sentences itself, standing in for your model.
//! Needs the encoder's weights: `bash scripts/install-encoder.sh`.

use std::sync::Arc;

use lightweight_decoder::verify::VerifySettings;
use lightweight_decoder::{load_embeddings, DecoderBuilder, DecoderKind, Encoder, MpnetEncoder};

fn main() -> lightweight_decoder::Result<()> {
    let encoder = Arc::new(MpnetEncoder::load(&MpnetEncoder::default_location())?);
    let vectors = match std::env::args_os().nth(1) {
        Some(file) => load_embeddings(std::path::Path::new(&file), None)?,
        None => encoder.embed(&[
            "The meeting was moved to Thursday afternoon.",
            "Boil the pasta in salted water for nine minutes.",
            "The library is closed on public holidays.",
        ])?,
    };
    let decoder =
        DecoderBuilder::new().verified(DecoderKind::Hybrid, encoder, VerifySettings::default())?;
    for decoded in decoder.batch_decode(vectors.view())? {
        let cosine = decoded.roundtrip_cosine.unwrap_or(f32::NAN);
        println!("{cosine:.3}  {}", decoded.text);
    }
    Ok(())
}
