//! `lwdec decode`: embeddings in, JSON lines out.

use std::io::Write;
use std::path::Path;

use lightweight_decoder::{load_embeddings, write_atomic, Error, Result};
use serde_json::json;

use crate::args::DecoderArgs;

/// Decodes every row of `input` (sessions from `boundaries`) and writes one JSON line per row.
pub fn run(
    input: &Path,
    scale: Option<&Path>,
    boundaries: Option<Vec<usize>>,
    output: Option<&Path>,
    args: &DecoderArgs,
) -> Result<()> {
    let embeddings = load_embeddings(input, scale)?;
    let decoder = crate::build_decoder(args)?;
    let decoded = match boundaries {
        Some(b) => decoder.batch_decode_with_sessions(embeddings.view(), &b)?,
        None => decoder.batch_decode(embeddings.view())?,
    };
    let mut text = String::new();
    for (row, d) in decoded.iter().enumerate() {
        let line = json!({
            "row": row,
            "text": d.text,
            "confidence": d.confidence,
            "low_confidence": d.low_confidence,
            "source": d.source,
            "candidates": d.candidates,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    match output {
        Some(path) => write_atomic(path, text.as_bytes()),
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("<stdout>", e)),
    }
}
