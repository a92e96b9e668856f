//! `lwdec embed`: the lines of a text file embedded with the sentence encoder into an
//! N x D float32 `.npy`, resumably; also the in-memory embedding that `decode --text`,
//! `bank build` and `train` use when they are given texts without embeddings.
//!
//! A long file is embedded in chunks of lines. Each finished chunk is written atomically to
//! `OUT.parts/CHUNK-KEY.npy`, where KEY hashes the chunk's lines with the encoder's name and
//! settings, so a rerun after an interruption embeds only the chunks it lacks, and a chunk
//! whose lines (or encoder) changed is embedded again. The parts are then merged atomically
//! into OUT and removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use lightweight_decoder::encoder::{Encoder, EncoderOrigin, EncoderPrecision, MpnetEncoder};
use lightweight_decoder::eval::samples::read_lines;
use lightweight_decoder::io::{write_atomic, AtomicFile, EmbeddingReader};
use lightweight_decoder::{Error, Result};
use ndarray::Array2;
use sha2::{Digest, Sha256};

/// Options of `lwdec embed`.
#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Texts, UTF-8, one per line (each line is one row of the output).
    #[arg(long)]
    pub phrases: PathBuf,
    /// Output: N x D float32 .npy (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Encoder model folder (default: $LWDEC_ENCODER_DIR, else
    /// ~/.local/share/lightweight-decoder/all-mpnet-base-v2).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
    /// Texts per forward pass (at most 256: attention memory grows with it).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Lines per resumable chunk, cached in OUT.parts/ until the merge (at most 65,536: a
    /// chunk's rows are held in memory).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub chunk: u32,
}

/// Texts per forward pass when a command embeds texts for itself.
pub const DEFAULT_BATCH: usize = 64;

/// The precision every command loads the encoder in: `--encoder-precision`, set once by
/// `main` (the flag is global, so each subcommand need not carry it).
static PRECISION: std::sync::OnceLock<EncoderPrecision> = std::sync::OnceLock::new();

/// Sets the encoder precision of this run (the first call wins).
pub fn set_precision(precision: EncoderPrecision) {
    let _ = PRECISION.set(precision);
}

/// The encoder precision of this run: `--encoder-precision`, else the fastest this CPU runs.
pub fn precision() -> EncoderPrecision {
    PRECISION.get().copied().unwrap_or_default()
}

/// Loads the encoder from `dir` (default: [`MpnetEncoder::default_location`]) with `batch`
/// texts per forward pass, in [`precision`]. A missing model folder is an error naming
/// `bash scripts/install-encoder.sh`.
pub fn load_encoder(dir: Option<&Path>, batch: usize) -> Result<MpnetEncoder> {
    let (dir, origin) = encoder_dir(dir, "--encoder");
    Ok(MpnetEncoder::load_from(&dir, origin, precision())?.with_batch_size(batch))
}

/// The encoder folder `flag` names, else the environment's or the default, with where it came
/// from (for error messages).
pub fn encoder_dir(dir: Option<&Path>, flag: &'static str) -> (PathBuf, EncoderOrigin) {
    match dir {
        Some(dir) => (dir.to_path_buf(), EncoderOrigin::Flag(flag)),
        None => MpnetEncoder::locate(),
    }
}

/// A progress bar over `len` texts (hidden when stderr is not a terminal).
pub fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "embedding [{bar:40}] {pos}/{len} {per_sec} {elapsed_precise} (eta {eta})",
        )
        .expect("static template"),
    );
    bar
}

/// Embeds `texts` in input order with [`MpnetEncoder::embed_with_progress`] (sorted by token
/// count, longest first, and cut into batches of the encoder's batch size, so padding is
/// small; tokenized once); `bar` advances per batch. The rows equal those of
/// `encoder.embed(texts)` bit for bit (the same batches).
pub fn embed_sorted(
    encoder: &MpnetEncoder,
    texts: &[&str],
    bar: &ProgressBar,
) -> Result<Array2<f32>> {
    Ok(encoder.embed_with_progress(texts, &mut |n| bar.inc(n as u64))?)
}

/// Embeds `texts` in memory with the encoder in `dir` (see [`load_encoder`]), with a progress
/// bar: for the commands that take texts without embeddings.
pub fn embed_texts(dir: Option<&Path>, texts: &[String]) -> Result<Array2<f32>> {
    let encoder = load_encoder(dir, DEFAULT_BATCH)?;
    embed_texts_with(&encoder, texts)
}

/// Embeds `texts` with a loaded `encoder` (as [`embed_texts`]).
pub fn embed_texts_with(encoder: &MpnetEncoder, texts: &[String]) -> Result<Array2<f32>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = progress_bar(refs.len());
    let embedded = embed_sorted(encoder, &refs, &bar)?;
    bar.finish_and_clear();
    Ok(embedded)
}

/// Runs `lwdec embed`.
pub fn run(args: &EmbedArgs) -> Result<()> {
    let started = Instant::now();
    let lines = read_lines(&args.phrases)?;
    let batch = usize::from(args.batch);
    let encoder = load_encoder(args.encoder.as_deref(), batch)?;
    let parts = parts_dir(&args.out);
    std::fs::create_dir_all(&parts).map_err(|e| Error::io("create the folder", &parts, e))?;
    let salt = format!(
        "lwdec-embed-v1\0{}\0{}\0{}\0{}\0",
        encoder.name(),
        encoder.dimension(),
        encoder.max_seq_length(),
        encoder.precision()
    );
    let chunk = args.chunk as usize;
    let chunks: Vec<&[String]> = lines.chunks(chunk).collect();
    let bar = progress_bar(lines.len());
    let (mut resumed, mut embedded_rows) = (0usize, 0usize);
    let mut files = Vec::with_capacity(chunks.len());
    for (index, texts) in chunks.iter().enumerate() {
        let file = parts.join(format!("{index:06}-{}.npy", chunk_key(&salt, texts)));
        if is_part(&file, texts.len(), encoder.dimension()) {
            resumed += 1;
            bar.inc(texts.len() as u64);
        } else {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let rows = embed_sorted(&encoder, &refs, &bar)?;
            write_atomic(&file, &npy_bytes(&rows))?;
            embedded_rows += texts.len();
        }
        files.push(file);
    }
    bar.finish_and_clear();
    merge(&files, lines.len(), encoder.dimension(), &args.out)?;
    std::fs::remove_dir_all(&parts).map_err(|e| Error::io("remove", &parts, e))?;
    let seconds = started.elapsed().as_secs_f64();
    if resumed > 0 {
        eprintln!(
            "lwdec embed: resumed {resumed} of {} chunks from {}",
            chunks.len(),
            parts.display()
        );
    }
    println!(
        "embedded {} lines ({embedded_rows} now, {} resumed) -> {} ({} x {} float32) in {seconds:.1} s",
        lines.len(),
        lines.len() - embedded_rows,
        args.out.display(),
        lines.len(),
        encoder.dimension(),
    );
    Ok(())
}

/// The work folder of the chunks of `out`: `OUT.parts` beside it.
pub fn parts_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    out.with_file_name(name)
}

/// The first 16 hex digits of the SHA-256 of `salt` and the chunk's lines.
fn chunk_key(salt: &str, texts: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    for t in texts {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True if `file` is a complete part: a float32 `.npy` of `rows` x `dim`.
fn is_part(file: &Path, rows: usize, dim: usize) -> bool {
    file.is_file()
        && EmbeddingReader::open(file, None).is_ok_and(|r| r.rows() == rows && r.dim() == dim)
}

/// The `.npy` (version 1.0) header of a little-endian float32 `rows` x `dim` array, padded so
/// the data starts at a multiple of 64 bytes.
fn npy_header(rows: usize, dim: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let header_len = (dict.len() + pad + 1) as u16; // a few hundred bytes at most
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// A float32 array as `.npy` bytes.
fn npy_bytes(rows: &Array2<f32>) -> Vec<u8> {
    let mut out = npy_header(rows.nrows(), rows.ncols());
    out.reserve(rows.len() * 4);
    for v in rows.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Concatenates the parts (each checked again) into `out`, atomically, one part in memory at
/// a time.
fn merge(files: &[PathBuf], rows: usize, dim: usize, out: &Path) -> Result<()> {
    let mut file = AtomicFile::create(out)?;
    file.write_all(&npy_header(rows, dim))
        .map_err(|e| Error::io("write", out, e))?;
    let mut written = 0;
    for part in files {
        let mut reader = EmbeddingReader::open(part, None)?;
        let n = reader.rows();
        if let Some(chunk) = reader.read_chunk(n.max(1))? {
            if chunk.ncols() != dim {
                return Err(Error::DimensionMismatch {
                    expected: dim,
                    got: chunk.ncols(),
                });
            }
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&bytes)
                .map_err(|e| Error::io("write", out, e))?;
            written += chunk.nrows();
        }
    }
    if written != rows {
        return Err(Error::Internal(format!(
            "merged {written} rows, expected {rows}"
        )));
    }
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_readable() {
        for (rows, dim) in [(0, 768), (3, 768), (123_456_789, 4)] {
            let h = npy_header(rows, dim);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
        }
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.npy");
        let a = Array2::from_shape_fn((3, 5), |(i, j)| (i * 5 + j) as f32 - 4.5);
        write_atomic(&file, &npy_bytes(&a)).unwrap();
        let back = lightweight_decoder::load_embeddings(&file, None).unwrap();
        assert_eq!(back, a);
        assert!(is_part(&file, 3, 5));
        assert!(!is_part(&file, 4, 5));
    }

    #[test]
    fn keys_depend_on_lines_and_salt() {
        let a = vec!["x".to_string(), "yz".to_string()];
        let b = vec!["xy".to_string(), "z".to_string()];
        assert_ne!(chunk_key("s", &a), chunk_key("s", &b));
        assert_ne!(chunk_key("s", &a), chunk_key("t", &a));
        assert_eq!(chunk_key("s", &a), chunk_key("s", &a.clone()));
        assert_eq!(chunk_key("s", &a).len(), 16);
    }

    #[test]
    fn parts_sit_beside_the_output() {
        assert_eq!(
            parts_dir(Path::new("d/E.npy")),
            PathBuf::from("d/E.npy.parts")
        );
    }
}
