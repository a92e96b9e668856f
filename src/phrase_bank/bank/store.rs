//! Saving and loading a [`PhraseBank`] directory: manifest, checksums, atomic replacement.

use std::path::{Path, PathBuf};

use super::{PhraseBank, BANK_DIR_ENV};
use crate::error::{Error, Result};
use crate::phrase_bank::index::SharedIndex;
use crate::phrase_bank::manifest::{
    FileDigest, Manifest, FORMAT_VERSION, INDEX_FILE, MANIFEST_FILE,
};
use crate::phrase_bank::phrases::PhraseList;

impl PhraseBank {
    /// Loads a bank directory, verifying the manifest, the checksums and the counts.
    ///
    /// A bank replaced while it loads ([`PhraseBank::save`] over it) is read again, whole, so
    /// a reader never mixes the files of two versions.
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let mut attempts = 0;
        loop {
            let before = std::fs::read(&manifest_path).ok();
            let loaded = Self::load_once(dir);
            // a save that swapped the bank in mid-load changed the manifest: read it again
            let swapped = std::fs::read(&manifest_path).ok() != before;
            match loaded {
                Err(Error::CorruptBank { .. }) | Ok(_) if swapped && attempts < 10 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn load_once(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::CorruptBank {
                path: dir.to_path_buf(),
                reason:
                    "not a directory (no phrase bank here; `lwdec data install` puts the bundled \
                         one in the user data folder)"
                        .into(),
            });
        }
        let manifest = Manifest::read(dir)?;
        manifest.verify_files(dir)?;
        if manifest.count == 0 {
            return Err(Error::EmptyBank(format!(
                "{}: `count` is 0",
                dir.join(MANIFEST_FILE).display()
            )));
        }
        let index_path = dir.join(INDEX_FILE);
        let mut index = SharedIndex::read(&index_path).map_err(|e| Error::CorruptBank {
            path: index_path.clone(),
            reason: format!("cannot read the FAISS index: {e}"),
        })?;
        // every manifest field that shapes a search is checked against the index actually
        // read, before any search (a re-sealed manifest cannot describe another index)
        let index_error = |reason: String| Error::CorruptBank {
            path: index_path.clone(),
            reason,
        };
        if index.len() != manifest.count || index.dim() != manifest.dimension {
            return Err(index_error(format!(
                "index holds {} vectors of dimension {}, manifest says {} of dimension {}",
                index.len(),
                index.dim(),
                manifest.count,
                manifest.dimension
            )));
        }
        index
            .check_kind(&manifest.index_spec)
            .map_err(index_error)?;
        match (manifest.nprobe, index.nlist()) {
            (None, None) => {}
            (Some(nprobe), Some(nlist)) if (1..=nlist).contains(&nprobe) => {
                index.set_nprobe(nprobe)
            }
            (Some(nprobe), Some(nlist)) => {
                return Err(index_error(format!(
                    "the manifest's `nprobe` is {nprobe}; this index has {nlist} inverted \
                     lists, so it must be in 1..={nlist}"
                )))
            }
            (None, Some(nlist)) => {
                return Err(index_error(format!(
                    "the index has {nlist} inverted lists but the manifest gives no `nprobe`"
                )))
            }
            (Some(nprobe), None) => {
                return Err(index_error(format!(
                    "the manifest gives `nprobe` {nprobe} but the index has no inverted lists"
                )))
            }
        }
        let (name, compressed) = manifest.phrases_file();
        let phrases = PhraseList::read(&dir.join(name), compressed, manifest.count)?;
        Ok(PhraseBank {
            manifest,
            phrases,
            index,
        })
    }

    /// Location of the bundled default bank: `$LWDEC_BANK_DIR`, else `phrase_bank/` in the user
    /// data folder or the crate's checkout ([`crate::data::locate`]).
    pub fn default_dir() -> PathBuf {
        crate::data::locate(crate::data::BANK, BANK_DIR_ENV)
    }

    /// Loads the bundled default bank (every phrase of the WordNet corpus).
    pub fn load_default() -> Result<Self> {
        Self::load(&Self::default_dir())
    }

    /// Saves the bank to `dir` atomically: files are written to a temporary sibling directory
    /// that then replaces `dir`, so a failure never leaves a half-written bank behind.
    ///
    /// An existing `dir` is replaced only if it is empty or a bank (holds a manifest).
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "cannot save a phrase bank to {}: it exists and is not a folder",
                dir.display()
            )));
        }
        if dir.exists() {
            let is_bank = dir.join(MANIFEST_FILE).is_file();
            let is_empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io("list the folder", dir, e))?
                .next()
                .is_none();
            if !is_bank && !is_empty {
                return Err(Error::InvalidArgument(format!(
                    "{} exists and is not a phrase bank; refusing to replace it",
                    dir.display()
                )));
            }
        }
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("create the folder", &parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".bank-tmp-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io("create a temporary folder in", &parent, e))?;
        let staging = tmp.path().to_path_buf();
        crate::fsutil::register(&staging);
        let _forget = Unregister(&staging);
        self.index.write(&tmp.path().join(INDEX_FILE))?;
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            ..self.manifest.clone()
        };
        let (phrases_file, compressed) = manifest.phrases_file();
        self.phrases
            .write(&tmp.path().join(phrases_file), compressed)?;
        manifest.files.clear();
        for name in [INDEX_FILE, phrases_file] {
            manifest.files.insert(
                name.to_string(),
                FileDigest::of_file(&tmp.path().join(name))?,
            );
        }
        let manifest = manifest.sealed()?;
        let manifest_path = tmp.path().join(MANIFEST_FILE);
        std::fs::write(&manifest_path, manifest.to_json()?)
            .map_err(|e| Error::io("write", &manifest_path, e))?;
        let staged = tmp.keep();
        crate::fsutil::replace_dir(&staged, dir)?;
        self.manifest = manifest;
        Ok(())
    }
}

/// Unregisters a temporary path when dropped (every way out of [`PhraseBank::save`]).
struct Unregister<'a>(&'a Path);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        crate::fsutil::unregister(self.0);
    }
}
