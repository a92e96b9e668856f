//! [`PhraseList`]: a bank's phrases in one buffer, and their file (zstd-compressed lines).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Most bytes a phrases file may decompress to (a guard against decompression bombs; the
/// broad default bank's phrases are about 55 MB).
pub const MAX_PHRASES_BYTES: u64 = 1 << 31;

/// zstd level of saved phrases: the highest of the regular levels (long sentences of the
/// broad bank compress 3.9x; decompression speed does not depend on the level).
const ZSTD_LEVEL: i32 = 19;

/// Phrases in id order, stored as one UTF-8 buffer and the end offset of each phrase (4 bytes
/// of overhead per phrase instead of a `String` each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhraseList {
    text: String,
    ends: Vec<u32>,
}

impl PhraseList {
    /// Collects phrases; refuses line breaks (a phrase is one line on disk) and more than
    /// 4 GiB of text.
    pub fn new<S: AsRef<str>>(phrases: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut list = PhraseList::default();
        for (row, phrase) in phrases.into_iter().enumerate() {
            let phrase = phrase.as_ref();
            if phrase.contains(['\n', '\r']) {
                return Err(Error::InvalidArgument(format!(
                    "phrase {row} contains a line break"
                )));
            }
            list.text.push_str(phrase);
            let end = u32::try_from(list.text.len())
                .map_err(|_| Error::InvalidArgument("phrases exceed 4 GiB of text".to_string()))?;
            list.ends.push(end);
        }
        Ok(list)
    }

    /// Number of phrases.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The phrase with id `id`.
    pub fn get(&self, id: usize) -> Option<&str> {
        let end = *self.ends.get(id)? as usize;
        let start = if id == 0 {
            0
        } else {
            self.ends[id - 1] as usize
        };
        Some(&self.text[start..end])
    }

    /// The phrases in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|id| self.get(id).unwrap_or_default())
    }

    /// Only the phrases whose `keep` flag is set, in order.
    pub fn retain(&self, keep: &[bool]) -> Result<Self> {
        PhraseList::new(self.iter().zip(keep).filter_map(|(p, &k)| k.then_some(p)))
    }

    /// Writes the phrases, one per line, zstd-compressed (`compressed`) or as plain text.
    pub fn write(&self, path: &Path, compressed: bool) -> Result<()> {
        let mut text = String::with_capacity(self.text.len() + self.len());
        for phrase in self.iter() {
            text.push_str(phrase);
            text.push('\n');
        }
        let bytes = if compressed {
            zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL)
                .map_err(|e| Error::io("compress the phrases for", path, e))?
        } else {
            text.into_bytes()
        };
        std::fs::write(path, bytes).map_err(|e| Error::io("write", path, e))
    }

    /// Reads a file written by [`PhraseList::write`] that should hold `expected` phrases (the
    /// manifest's `count`). The text is checked while it is decompressed: more than
    /// `expected` lines stops the read at the first line too many (a decompression bomb of
    /// empty lines costs no memory), as does more than [`MAX_PHRASES_BYTES`] of text. A
    /// decompression error, invalid UTF-8, too many or too few lines is a
    /// [`Error::CorruptBank`] naming the file.
    pub fn read(path: &Path, compressed: bool, expected: usize) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptBank {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path)
            .map_err(|e| corrupt(format!("cannot open the phrases file: {e}")))?;
        let mut source: Box<dyn Read> = if compressed {
            Box::new(
                zstd::stream::read::Decoder::new(file)
                    .map_err(|e| corrupt(format!("cannot start decompressing: {e}")))?,
            )
        } else {
            Box::new(file)
        };
        let mut bytes = Vec::new();
        let mut block = vec![0u8; 1 << 16];
        let mut lines = 0usize;
        loop {
            let n = match source.read(&mut block) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(format!("cannot read the phrases: {e}"))),
            };
            let block = &block[..n];
            lines += block.iter().filter(|&&b| b == b'\n').count();
            if lines > expected {
                return Err(corrupt(format!(
                    "more than {expected} lines: the manifest's `count` is {expected}"
                )));
            }
            if (bytes.len() + n) as u64 > MAX_PHRASES_BYTES {
                return Err(corrupt(format!(
                    "the phrases exceed {MAX_PHRASES_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(block);
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| corrupt(format!("the phrases are not UTF-8: {e}")))?;
        let list = PhraseList::new(text.lines()).map_err(|e| corrupt(e.to_string()))?;
        if list.len() != expected {
            return Err(corrupt(format!(
                "{} phrases, the manifest's `count` is {expected}",
                list.len()
            )));
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compressed_and_plain() {
        let list = PhraseList::new(["a dog", "", "the cat, ça va"]).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(1), Some(""));
        assert_eq!(list.get(2), Some("the cat, ça va"));
        assert_eq!(list.get(3), None);
        let dir = tempfile::tempdir().unwrap();
        for compressed in [true, false] {
            let path = dir.path().join(format!("p{compressed}"));
            list.write(&path, compressed).unwrap();
            assert_eq!(PhraseList::read(&path, compressed, 3).unwrap(), list);
        }
        let kept = list.retain(&[true, false, true]).unwrap();
        assert_eq!(kept.iter().collect::<Vec<_>>(), ["a dog", "the cat, ça va"]);
    }

    #[test]
    fn refuses_line_breaks_and_corrupt_files() {
        assert!(PhraseList::new(["one\ntwo"]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.zst");
        std::fs::write(&path, b"not zstd at all").unwrap();
        let err = PhraseList::read(&path, true, 1).unwrap_err();
        assert!(
            matches!(&err, Error::CorruptBank { path: p, .. } if p == &path),
            "{err}"
        );
    }
}
