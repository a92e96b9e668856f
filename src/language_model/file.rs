//! The `.lm` file of an [`NgramModel`]: a checked header, then one zstd frame.
//!
//! Layout: the magic `LWDLM\0\0\x01`, the compressed body's length (u64, little endian), its
//! SHA-256, the body. The body: the order (u32); the vocabulary (u64 count, then each word as
//! u32 byte length + UTF-8); the unigrams (f32 log10 probability, f32 backoff each); then for
//! each order from 2, the count (u64), the packed keys in ascending order as LEB128 deltas,
//! the log10 probabilities as f16, and below the highest order the backoffs as f16. Every
//! count is checked against the bytes left before anything is allocated.

use std::io::Read;
use std::path::Path;

use half::f16;
use sha2::{Digest, Sha256};

use super::model::{id_bits, Entry, KeyMap, NgramModel, BOS, EOS, UNK};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"LWDLM\0\0\x01";
/// Largest file accepted (the bundled model is a few MB).
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest decompressed body accepted.
const MAX_BODY_BYTES: u64 = 4 << 30;
/// zstd level of saved models.
const ZSTD_LEVEL: i32 = 19;

impl NgramModel {
    /// Saves the model to `path` (atomically: readers see the old file or the new one).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.order as u32).to_le_bytes());
        body.extend_from_slice(&(self.words.len() as u64).to_le_bytes());
        for w in &self.words {
            body.extend_from_slice(&(w.len() as u32).to_le_bytes());
            body.extend_from_slice(w.as_bytes());
        }
        for e in &self.unigrams {
            body.extend_from_slice(&e.log_prob.to_le_bytes());
            body.extend_from_slice(&e.backoff.to_le_bytes());
        }
        for (i, table) in self.tables.iter().enumerate() {
            let n = i + 2;
            let mut rows: Vec<(&u64, &Entry)> = table.iter().collect();
            rows.sort_unstable_by_key(|r| *r.0);
            body.extend_from_slice(&(rows.len() as u64).to_le_bytes());
            let mut last = 0u64;
            for (&k, _) in &rows {
                write_varint(&mut body, k - last);
                last = k;
            }
            for (_, e) in &rows {
                body.extend_from_slice(&f16::from_f32(e.log_prob).to_le_bytes());
            }
            if n < self.order {
                for (_, e) in &rows {
                    body.extend_from_slice(&f16::from_f32(e.backoff).to_le_bytes());
                }
            }
        }
        let compressed = zstd::bulk::compress(&body, ZSTD_LEVEL)
            .map_err(|e| Error::io("compress the language model for", path, e))?;
        let mut out = Vec::with_capacity(compressed.len() + 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&compressed));
        out.extend_from_slice(&compressed);
        crate::fsutil::write_atomic(path, &out)
    }

    /// Loads a model saved by [`NgramModel::save`], checking its checksum, every size and
    /// every value.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::InvalidLanguageModel {
            path: path.to_path_buf(),
            reason,
        };
        let meta =
            std::fs::metadata(path).map_err(|e| Error::io("read the language model", path, e))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(bad(format!(
                "{} bytes, more than the limit of {MAX_FILE_BYTES}",
                meta.len()
            )));
        }
        let bytes =
            std::fs::read(path).map_err(|e| Error::io("read the language model", path, e))?;
        if bytes.len() < 48 || &bytes[..8] != MAGIC {
            return Err(bad("not a language model file (bad magic)".into()));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| bad("header".into()))?);
        if len != (bytes.len() - 48) as u64 {
            return Err(bad(format!(
                "the header says {len} bytes of data, the file holds {}",
                bytes.len() - 48
            )));
        }
        let compressed = &bytes[48..];
        // (fuzzing builds skip the checksum, so that mutated files reach the checks after it)
        if Sha256::digest(compressed).as_slice() != &bytes[16..48] && !cfg!(fuzzing) {
            return Err(bad("checksum mismatch: the file is corrupt".into()));
        }
        let mut body = Vec::new();
        zstd::stream::read::Decoder::new(compressed)
            .map_err(|e| bad(format!("cannot decompress: {e}")))?
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| bad(format!("cannot decompress: {e}")))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            return Err(bad(format!(
                "decompresses to more than {MAX_BODY_BYTES} bytes"
            )));
        }
        parse(&body).map_err(bad)
    }
}

/// Reads the body; the error says what is wrong.
fn parse(body: &[u8]) -> std::result::Result<NgramModel, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let order = r.u32()? as usize;
    if !(1..=5).contains(&order) {
        return Err(format!("order {order} is not in 1..=5"));
    }
    let bits = id_bits(order);
    let vocab = r.count(5, "words")?;
    if vocab < 3 || vocab as u64 > (1u64 << bits.min(32)) {
        return Err(format!("{vocab} words do not fit an order-{order} model"));
    }
    let mut words = Vec::with_capacity(vocab);
    let mut seen = std::collections::HashSet::with_capacity(vocab);
    for i in 0..vocab {
        let len = r.u32()? as usize;
        let raw = r.take(len, "a word")?;
        let w = std::str::from_utf8(raw).map_err(|_| format!("word {i} is not UTF-8"))?;
        if w.is_empty() || w.chars().any(char::is_whitespace) {
            return Err(format!("word {i} is empty or holds whitespace"));
        }
        if !seen.insert(w) {
            return Err(format!("word {i} ({w:?}) appears twice"));
        }
        words.push(w.to_string());
    }
    if words[UNK as usize] != "<unk>"
        || words[BOS as usize] != "<s>"
        || words[EOS as usize] != "</s>"
    {
        return Err("the vocabulary does not start with <unk> <s> </s>".into());
    }
    let mut unigrams = Vec::with_capacity(vocab);
    for i in 0..vocab {
        let log_prob = r.f32()?;
        let backoff = r.f32()?;
        check_values(log_prob, backoff, || format!("unigram {i}"))?;
        unigrams.push(Entry { log_prob, backoff });
    }
    let mut tables = Vec::with_capacity(order.saturating_sub(1));
    for n in 2..=order {
        let per_row = 3 + if n < order { 2 } else { 0 };
        let count = r.count(per_row, "n-grams")?;
        let mut keys = Vec::with_capacity(count);
        let mut last = 0u64;
        for j in 0..count {
            let delta = r.varint()?;
            if j > 0 && delta == 0 {
                return Err(format!("{n}-gram keys are not strictly ascending"));
            }
            last = last
                .checked_add(delta)
                .ok_or_else(|| format!("{n}-gram key {j} overflows"))?;
            for p in 0..n {
                let id = (last >> (bits * p as u32)) & ((1u64 << bits) - 1);
                if id >= vocab as u64 {
                    return Err(format!("{n}-gram {j} names word {id} of {vocab}"));
                }
            }
            if n < 5 && bits * (n as u32) < 64 && last >> (bits * n as u32) != 0 {
                return Err(format!("{n}-gram key {j} has bits beyond its {n} words"));
            }
            keys.push(last);
        }
        let probs = r.take(2 * count, "probabilities")?;
        let backoffs = if n < order {
            Some(r.take(2 * count, "backoffs")?)
        } else {
            None
        };
        let mut table: KeyMap<Entry> = KeyMap::default();
        table.reserve(count);
        for (j, &k) in keys.iter().enumerate() {
            let log_prob = f16::from_le_bytes([probs[2 * j], probs[2 * j + 1]]).to_f32();
            let backoff = backoffs.map_or(0.0, |b| {
                f16::from_le_bytes([b[2 * j], b[2 * j + 1]]).to_f32()
            });
            check_values(log_prob, backoff, || format!("{n}-gram {j}"))?;
            table.insert(k, Entry { log_prob, backoff });
        }
        tables.push(table);
    }
    if r.at != body.len() {
        return Err(format!("{} bytes after the last table", body.len() - r.at));
    }
    NgramModel::from_parts(order, words, unigrams, tables).map_err(|e| e.to_string())
}

/// A log10 probability must be finite and at most 0 (the sentence start's -99 included); a
/// backoff finite and within [-99, 99].
fn check_values(
    log_prob: f32,
    backoff: f32,
    what: impl Fn() -> String,
) -> std::result::Result<(), String> {
    if !(log_prob.is_finite() && (-100.0..=1e-3).contains(&log_prob)) {
        return Err(format!(
            "{}: log10 probability {log_prob} is not in [-100, 0]",
            what()
        ));
    }
    if !(backoff.is_finite() && (-99.0..=99.0).contains(&backoff)) {
        return Err(format!("{}: backoff {backoff} is not in [-99, 99]", what()));
    }
    Ok(())
}

/// LEB128 of `v`.
fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if self.bytes.len() - self.at < n {
            return Err(format!("truncated in {what}"));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4, "a number")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self) -> std::result::Result<f32, String> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A u64 count of items that need at least `min_bytes` each, checked against what is left.
    fn count(&mut self, min_bytes: usize, what: &str) -> std::result::Result<usize, String> {
        let b = self.take(8, what)?;
        let n = u64::from_le_bytes(b.try_into().map_err(|_| what.to_string())?);
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(format!("{n} {what} cannot fit in the {left} bytes left"));
        }
        Ok(n as usize)
    }
    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, "a key")?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a key's varint runs past 64 bits".into())
    }
}

#[cfg(test)]
mod tests {
    use crate::language_model::{NgramEstimator, NgramModel};

    #[test]
    fn a_saved_model_loads_with_the_same_scores_and_corruption_is_named() {
        let mut est = NgramEstimator::new(3).unwrap();
        for s in [
            "the cat sat on the mat",
            "a dog sat on a log",
            "the dog ran",
        ] {
            est.add_sentence(s);
        }
        let m = est.build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("toy.lm");
        m.save(&path).unwrap();
        let back = NgramModel::load(&path).unwrap();
        for s in ["the cat sat on a log", "dog the", "unseen words here"] {
            let (a, b) = (m.score(s), back.score(s));
            assert!(
                (a.log10_prob - b.log10_prob).abs() < 0.01 * a.tokens as f32,
                "{s}"
            );
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = NgramModel::load(&path).unwrap_err().to_string();
        assert!(err.contains("toy.lm") && err.contains("checksum"), "{err}");
    }
}
