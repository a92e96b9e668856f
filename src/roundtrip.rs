//! Round-trip cosine: each decoded text re-embedded by an [`Encoder`] and compared with the
//! embedding it was decoded from (the field's measure of semantic fidelity). Below the
//! decoders: `lwdec decode --text` and Python's `decode_text` report it per row
//! ([`crate::verify::fill_roundtrip_cosines`]), `lwdec eval --round-trip` per decoder (what
//! `scripts/reembed.py` computes with sentence-transformers).

use ndarray::ArrayView2;

use crate::embedding::{dot, normalized_rows};
use crate::encoder::Encoder;
use crate::error::{Error, Result};

/// The cosine of each text's embedding with its input row, in row order. The inputs are
/// checked and scaled to unit norm first; the encoder's embeddings are unit norm.
pub fn roundtrip_cosines(
    encoder: &dyn Encoder,
    inputs: ArrayView2<f32>,
    texts: &[String],
) -> Result<Vec<f32>> {
    if inputs.nrows() != texts.len() {
        return Err(Error::InvalidArgument(format!(
            "{} inputs for {} texts",
            inputs.nrows(),
            texts.len()
        )));
    }
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let dim = inputs.ncols();
    if encoder.dimension() != dim {
        return Err(Error::InvalidArgument(format!(
            "the encoder {} writes {}-d embeddings, the inputs have {dim} columns",
            encoder.name(),
            encoder.dimension()
        )));
    }
    let rows = normalized_rows(&inputs, dim)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let again = encoder.embed(&refs)?;
    if again.dim() != (texts.len(), dim) {
        return Err(Error::InvalidArgument(format!(
            "the encoder returned {} x {} for {} texts",
            again.nrows(),
            again.ncols(),
            texts.len()
        )));
    }
    Ok(rows
        .chunks(dim)
        .zip(again.rows())
        .map(|(input, output)| dot(input, &output.to_vec()))
        .collect())
}
