//! `lwdec decode`: embeddings in (or texts, embedded with the encoder), JSON lines out,
//! streamed in chunks of rows.

use std::io::{IsTerminal, Write};
use std::path::Path;

use lightweight_decoder::io::{session_ranges, AtomicFile, EmbeddingReader};
use lightweight_decoder::{Candidate, Decoded, Error, Result, Source};

use crate::options::DecoderArgs;
use lightweight_decoder::verify::fill_roundtrip_cosines;

/// Rows decoded per chunk: memory holds one chunk of inputs and outputs, whatever the file's
/// size (a session longer than this is decoded whole).
const CHUNK_ROWS: usize = 4096;

/// How decoded rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Input and output side by side, for a person.
    Text,
    /// One JSON object per row, for a program.
    Jsonl,
}

impl OutputFormat {
    /// The format asked for, else text on a terminal and JSON lines otherwise.
    pub fn choose(asked: Option<OutputFormat>, output: Option<&Path>) -> OutputFormat {
        asked.unwrap_or(if output.is_none() && std::io::stdout().is_terminal() {
            OutputFormat::Text
        } else {
            OutputFormat::Jsonl
        })
    }
}

/// Decodes every row of `input` (sessions from `boundaries`) and writes one line per row (or a
/// block in the text format), in row order, reading, decoding and writing a chunk of rows at a
/// time. A file output is written atomically; a run stopped by SIGINT or SIGTERM leaves no
/// partial file (`main.rs`).
pub fn run(
    input: &Path,
    scale: Option<&Path>,
    boundaries: Option<Vec<usize>>,
    (output, format): (Option<&Path>, OutputFormat),
    args: &DecoderArgs,
) -> Result<()> {
    let mut reader = EmbeddingReader::open(input, scale)?;
    let rows = reader.rows();
    // session starts (validated against the row count); without boundaries every row is one
    let starts: Option<Vec<usize>> = match boundaries {
        Some(b) => Some(session_ranges(rows, &b)?.iter().map(|r| r.start).collect()),
        None => None,
    };
    let decoder = crate::build_decoder(args)?;
    let mut out: Box<dyn Sink> = match output {
        Some(path) => Box::new(AtomicFile::create(path)?),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let name = sink_name(output);
    let mut start = 0;
    while start < rows {
        let end = chunk_end(start, rows, starts.as_deref());
        let chunk = reader
            .read_chunk(end - start)?
            .ok_or_else(|| Error::Internal("the input ended early".into()))?;
        let decoded = match &starts {
            Some(starts) => {
                let local: Vec<usize> = starts
                    .iter()
                    .filter(|&&s| (start..end).contains(&s))
                    .map(|s| s - start)
                    .collect();
                decoder.batch_decode_with_sessions(chunk.view(), &local)
            }
            None => decoder.batch_decode(chunk.view()),
        }
        .map_err(|e| match e {
            // rows are numbered in the file, not in the chunk
            Error::AtRow { row, source } => Error::AtRow {
                row: row + start,
                source,
            },
            other => other,
        })?;
        write_rows(out.as_mut(), format, start, &decoded, None)
            .map_err(|e| Error::io("write", &name, e))?;
        start = end;
    }
    out.finish()
}

/// Embeds `texts` with the encoder in `encoder` (default location when `None`), decodes them
/// (sessions from `boundaries`) and writes one row per text, with the text as `input`.
pub fn run_texts(
    texts: &[String],
    encoder: Option<&Path>,
    boundaries: Option<Vec<usize>>,
    (output, format): (Option<&Path>, OutputFormat),
    args: &DecoderArgs,
) -> Result<()> {
    if let Some(b) = &boundaries {
        session_ranges(texts.len(), b)?;
    }
    // one encoder embeds the texts, verifies (with --verify) and re-embeds the answers
    let encoder = std::sync::Arc::new(crate::embed::load_encoder(
        encoder,
        crate::embed::DEFAULT_BATCH,
    )?);
    let decoder = crate::build_decoder_with(args, Some(encoder.clone()))?;
    let embeddings = crate::embed::embed_texts_with(encoder.as_ref(), texts)?;
    let mut decoded = match &boundaries {
        Some(b) => decoder.batch_decode_with_sessions(embeddings.view(), b),
        None => decoder.batch_decode(embeddings.view()),
    }?;
    // every answer's round-trip cosine (a verified decoder has set it already)
    fill_roundtrip_cosines(encoder.as_ref(), embeddings.view(), &mut decoded)?;
    let mut out: Box<dyn Sink> = match output {
        Some(path) => Box::new(AtomicFile::create(path)?),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    write_rows(out.as_mut(), format, 0, &decoded, Some(texts))
        .map_err(|e| Error::io("write", sink_name(output), e))?;
    out.finish()
}

/// The output's name in messages.
fn sink_name(output: Option<&Path>) -> String {
    output.map_or_else(|| "<stdout>".into(), |p| p.display().to_string())
}

/// The end of the chunk that starts at row `start`: about [`CHUNK_ROWS`] rows, cut at a
/// session start so that no session is split.
fn chunk_end(start: usize, rows: usize, starts: Option<&[usize]>) -> usize {
    let target = (start + CHUNK_ROWS).min(rows);
    let Some(starts) = starts else {
        return target;
    };
    if target == rows {
        return rows;
    }
    // the last session start in (start, target], else the first after target
    let after = starts.partition_point(|&s| s <= target);
    match starts[..after].last() {
        Some(&s) if s > start => s,
        _ => starts.get(after).copied().unwrap_or(rows),
    }
}

/// One JSON line per row, its fields in reading order: `row`, `input` (the row's text, when
/// `inputs` is given), `text`, `confidence`, `low_confidence`, `source`, `roundtrip_cosine`
/// (when verified), then the `candidates`.
#[derive(serde::Serialize)]
struct Line<'a> {
    row: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    text: &'a str,
    confidence: f32,
    low_confidence: bool,
    source: &'a Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    roundtrip_cosine: Option<f32>,
    candidates: &'a [Candidate],
}

/// Writes `decoded` (rows from `first_row`) in `format`.
fn write_rows(
    out: &mut dyn Sink,
    format: OutputFormat,
    first_row: usize,
    decoded: &[Decoded],
    inputs: Option<&[String]>,
) -> std::io::Result<()> {
    for (i, d) in decoded.iter().enumerate() {
        let input = inputs.and_then(|t| t.get(i)).map(String::as_str);
        match format {
            OutputFormat::Jsonl => {
                let line = Line {
                    row: first_row + i,
                    input,
                    text: &d.text,
                    confidence: d.confidence,
                    low_confidence: d.low_confidence,
                    source: &d.source,
                    roundtrip_cosine: d.roundtrip_cosine,
                    candidates: &d.candidates,
                };
                serde_json::to_writer(&mut *out, &line)?;
                writeln!(out)?;
            }
            OutputFormat::Text => {
                let mut facts = format!("confidence {:.2}", d.confidence);
                if let Some(cosine) = d.roundtrip_cosine {
                    facts.push_str(&format!(", round trip {cosine:.3}"));
                }
                match input {
                    Some(input) => writeln!(out, "{input}\n  -> {}   ({facts})", d.text)?,
                    None => writeln!(out, "{:>6}  {}   ({facts})", first_row + i, d.text)?,
                }
            }
        }
    }
    Ok(())
}

/// Where the lines go: an atomically written file, or standard output.
trait Sink: Write {
    /// Completes the output.
    fn finish(self: Box<Self>) -> Result<()>;
}

impl Sink for AtomicFile {
    fn finish(self: Box<Self>) -> Result<()> {
        (*self).commit()
    }
}

impl<W: Write> Sink for std::io::BufWriter<W> {
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.flush().map_err(|e| Error::io("write", "<stdout>", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_session_starts() {
        assert_eq!(chunk_end(0, 10_000, None), CHUNK_ROWS);
        assert_eq!(chunk_end(0, 100, None), 100);
        let starts = [0, 3000, 5000, 9000];
        assert_eq!(chunk_end(0, 10_000, Some(&starts)), 3000);
        assert_eq!(chunk_end(3000, 10_000, Some(&starts)), 5000);
        // a session longer than a chunk is decoded whole
        assert_eq!(chunk_end(5000, 10_000, Some(&starts)), 9000);
        assert_eq!(chunk_end(9000, 10_000, Some(&starts)), 10_000);
    }
}
