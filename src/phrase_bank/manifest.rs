//! The JSON manifest that describes a saved phrase bank and guards it against corruption.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Version of the on-disk bank layout this crate writes (3: the phrases are zstd-compressed).
/// Version 2 (the manifest carries its own checksum, plain phrases) is still read.
pub const FORMAT_VERSION: u32 = 3;
/// Oldest layout version this crate reads.
pub const OLDEST_FORMAT_VERSION: u32 = 2;
/// File name of the manifest inside a bank directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the FAISS index inside a bank directory.
pub const INDEX_FILE: &str = "index.faiss";
/// File name of the phrases (UTF-8, one per line, in id order, zstd-compressed) inside a bank
/// directory.
pub const PHRASES_FILE: &str = "phrases.txt.zst";
/// File name of the phrases in banks of format version 2 (plain UTF-8 lines).
pub const PLAIN_PHRASES_FILE: &str = "phrases.txt";

/// Size and SHA-256 of one file of a bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

impl FileDigest {
    /// Reads `path` and computes its size and digest.
    pub fn of_file(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io("read", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(FileDigest { bytes, sha256 })
    }
}

/// Describes a saved bank: what it holds, how it was indexed and the digests of its files.
///
/// The manifest carries a SHA-256 of its own other fields, so an edited or corrupt manifest is
/// detected like an edited data file; it may list only the bank's two data files, which must
/// be regular files inside the bank directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Embedding dimension.
    pub dimension: usize,
    /// Similarity metric; always `"inner_product"` over unit vectors (cosine).
    pub metric: String,
    /// Number of phrases.
    pub count: usize,
    /// Name of the encoder that produced the embeddings.
    pub encoder: String,
    /// FAISS factory string of the index.
    pub index_spec: String,
    /// Inverted lists probed per query (IVF kinds), as tuned at build time.
    pub nprobe: Option<usize>,
    /// Size and digest of every data file, by file name.
    pub files: BTreeMap<String, FileDigest>,
    /// Lower-case hex SHA-256 of the manifest's JSON with this field empty.
    #[serde(default)]
    pub sha256: String,
}

impl Manifest {
    /// The checksum of the other fields (compact JSON with `sha256` empty).
    fn checksum(&self) -> Result<String> {
        let unsealed = Manifest {
            sha256: String::new(),
            ..self.clone()
        };
        let json = serde_json::to_string(&unsealed)?;
        Ok(Sha256::digest(json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// The manifest as pretty JSON, sealed with its checksum.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(&self.sealed()?)? + "\n")
    }

    /// File name of the phrases for this manifest's format version, and whether it is
    /// compressed.
    pub fn phrases_file(&self) -> (&'static str, bool) {
        if self.format_version >= 3 {
            (PHRASES_FILE, true)
        } else {
            (PLAIN_PHRASES_FILE, false)
        }
    }

    /// A copy with `sha256` set to the checksum of the other fields.
    pub fn sealed(&self) -> Result<Self> {
        Ok(Manifest {
            sha256: self.checksum()?,
            ..self.clone()
        })
    }

    /// Reads and parses `dir/manifest.json`, checking the format version, its checksum and
    /// that it lists exactly the bank's data files.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::CorruptBank {
            path: path.clone(),
            reason: format!("cannot read the manifest: {e}"),
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::CorruptBank {
            path: path.clone(),
            reason: format!("malformed manifest: {e}"),
        })?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&manifest.format_version) {
            return Err(Error::CorruptBank {
                path,
                reason: format!(
                    "format version {} is not supported (expected {OLDEST_FORMAT_VERSION} to \
                     {FORMAT_VERSION}): rebuild the bank with `lwdec bank build`",
                    manifest.format_version
                ),
            });
        }
        // (fuzzing builds skip the checksums, so that mutated banks reach the checks after
        // them)
        if manifest.sha256 != manifest.checksum()? && !cfg!(fuzzing) {
            return Err(Error::CorruptBank {
                path,
                reason: "manifest checksum mismatch: the manifest was edited or is corrupt".into(),
            });
        }
        if !(1..=crate::npy::MAX_DIM).contains(&manifest.dimension) {
            return Err(Error::CorruptBank {
                path,
                reason: format!(
                    "dimension {} (expected 1..={})",
                    manifest.dimension,
                    crate::npy::MAX_DIM
                ),
            });
        }
        if manifest.metric != "inner_product" {
            return Err(Error::CorruptBank {
                path,
                reason: format!("unsupported metric {:?}", manifest.metric),
            });
        }
        let listed: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        let phrases = manifest.phrases_file().0;
        if listed != [INDEX_FILE, phrases] {
            return Err(Error::CorruptBank {
                path,
                reason: format!(
                    "the manifest lists the files {listed:?}; a bank of format {} holds \
                     exactly {INDEX_FILE:?} and {phrases:?}",
                    manifest.format_version
                ),
            });
        }
        Ok(manifest)
    }

    /// Checks that every data file exists with the recorded size and digest.
    pub fn verify_files(&self, dir: &Path) -> Result<()> {
        for name in [INDEX_FILE, self.phrases_file().0] {
            if !self.files.contains_key(name) {
                return Err(Error::CorruptBank {
                    path: dir.join(MANIFEST_FILE),
                    reason: format!("the manifest lists no digest for {name}"),
                });
            }
        }
        for (name, expected) in &self.files {
            let path = dir.join(name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::CorruptBank {
                path: path.clone(),
                reason: format!("missing file: {e}"),
            })?;
            if !meta.is_file() {
                return Err(Error::CorruptBank {
                    path,
                    reason: "not a regular file (a bank's files are plain files, no links)".into(),
                });
            }
            if cfg!(fuzzing) {
                continue;
            }
            if meta.len() != expected.bytes {
                return Err(Error::CorruptBank {
                    path,
                    reason: format!(
                        "size {} bytes, manifest says {}",
                        meta.len(),
                        expected.bytes
                    ),
                });
            }
            let actual = FileDigest::of_file(&path)?;
            if actual.sha256 != expected.sha256 {
                return Err(Error::CorruptBank {
                    path,
                    reason: format!(
                        "checksum mismatch: sha256 {}, manifest says {}",
                        actual.sha256, expected.sha256
                    ),
                });
            }
        }
        Ok(())
    }
}
