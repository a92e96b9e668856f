//! Job 1: decode a batch of embeddings from a file.
//!
//! `cargo run --release --example decode_embeddings_file -- EMBEDDINGS.npy [SCALES.npy]`
//! decodes every row of an N x 768 float32 `.npy` (or int8 with per-row scales, as the bundled
//! samples are) with the hybrid decoder and prints one line per row. Without arguments it
//! decodes the bundled held-out sample `samples/ood2`.

use std::path::PathBuf;

use lightweight_decoder::{load_embeddings, Decoder, DecoderBuilder};

fn main() -> lightweight_decoder::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (file, scales) = match args.as_slice() {
        [] => (
            PathBuf::from("samples/ood2.i8.npy"),
            Some(PathBuf::from("samples/ood2.scale.npy")),
        ),
        [file] => (file.clone(), None),
        [file, scales, ..] => (file.clone(), Some(scales.clone())),
    };
    let embeddings = load_embeddings(&file, scales.as_deref())?;
    // the bundled bank and generator: found in the checkout, or where `lwdec data install`
    // put them (`lightweight_decoder::data`)
    let decoder = DecoderBuilder::new().hybrid()?;
    for (row, decoded) in decoder.batch_decode(embeddings.view())?.iter().enumerate() {
        println!("{row:>5}  {:.2}  {}", decoded.confidence, decoded.text);
    }
    Ok(())
}
