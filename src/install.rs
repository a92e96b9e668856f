//! [`install`]: the bundled bank and models copied into a data folder
//! ([`crate::data::user_data_dir`] by default in `lwdec data install`), verified before they
//! replace what was there.

use std::path::{Path, PathBuf};

use crate::data::{BANK, GENERATOR, LANGUAGE_MODEL};
use crate::error::{Error, Result};
use crate::generative::InferenceModel;
use crate::language_model::NgramModel;
use crate::phrase_bank::PhraseBank;

/// The files of a bank folder that an install copies.
const BANK_FILES: [&str; 4] = [
    "manifest.json",
    "index.faiss",
    "phrases.txt.zst",
    "corpus_sources.json",
];

/// What [`install`] copied.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The data folder written.
    pub dir: PathBuf,
    /// Files copied, relative to `dir`, with their sizes in bytes.
    pub files: Vec<(String, u64)>,
}

/// Copies the bank, the generator and the model of English from `from` (a checkout or another
/// data folder) into the data folder `into`, verifying each copy as its loader does (the
/// bank's manifest checksums, the models' SHA-256) before it replaces what was there. The
/// copies are written beside their destination and renamed into place, so an interrupted
/// install leaves the old files or the new ones, never a mixture within a file or the bank.
pub fn install(from: &Path, into: &Path) -> Result<Installed> {
    let mut files = Vec::new();
    let staging = into.join(".install");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| Error::io("remove the stale staging folder", &staging, e))?;
    }
    let staged_bank = staging.join(BANK);
    std::fs::create_dir_all(&staged_bank)
        .map_err(|e| Error::io("create the folder", &staged_bank, e))?;
    let result = (|| {
        for name in BANK_FILES {
            let source = from.join(BANK).join(name);
            if !source.exists() && name == "corpus_sources.json" {
                continue;
            }
            files.push((
                format!("{BANK}/{name}"),
                copy(&source, &staged_bank.join(name))?,
            ));
        }
        PhraseBank::load(&staged_bank)?;
        for relative in [GENERATOR, LANGUAGE_MODEL] {
            let staged = staging.join(relative);
            if let Some(parent) = staged.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the folder", parent, e))?;
            }
            files.push((relative.to_string(), copy(&from.join(relative), &staged)?));
        }
        InferenceModel::load(&staging.join(GENERATOR))?;
        NgramModel::load(&staging.join(LANGUAGE_MODEL))?;
        // verified: move into place, the bank as a whole folder
        let bank = into.join(BANK);
        let old = into.join(".install-old-bank");
        if bank.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
            }
            std::fs::rename(&bank, &old).map_err(|e| Error::io("move aside", &bank, e))?;
        }
        std::fs::rename(&staged_bank, &bank).map_err(|e| Error::io("move into place", &bank, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
        }
        for relative in [GENERATOR, LANGUAGE_MODEL] {
            let target = into.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("create the folder", parent, e))?;
            }
            std::fs::rename(staging.join(relative), &target)
                .map_err(|e| Error::io("move into place", &target, e))?;
        }
        Ok(())
    })();
    // the staging folder goes whether the install succeeded or not
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| Installed {
        dir: into.to_path_buf(),
        files,
    })
}

/// Copies one file, returning its size.
fn copy(source: &Path, target: &Path) -> Result<u64> {
    std::fs::copy(source, target).map_err(|e| Error::io("copy", source, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::checkout_dir;

    #[test]
    fn an_install_holds_loadable_data_and_a_corrupt_source_installs_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let into = tmp.path().join("data");
        let installed = install(&checkout_dir(), &into).unwrap();
        assert_eq!(installed.files.len(), 6);
        PhraseBank::load(&into.join(BANK)).unwrap();
        InferenceModel::load(&into.join(GENERATOR)).unwrap();
        assert!(!into.join(".install").exists());
        // a source whose model is corrupt: the install fails and the installed data stays
        let from = tmp.path().join("from");
        std::fs::create_dir_all(from.join("model")).unwrap();
        std::os::unix::fs::symlink(checkout_dir().join(BANK), from.join(BANK)).unwrap();
        let mut gguf = std::fs::read(checkout_dir().join(GENERATOR)).unwrap();
        let last = gguf.len() - 1;
        gguf[last] ^= 0x55;
        std::fs::write(from.join(GENERATOR), gguf).unwrap();
        std::fs::copy(
            checkout_dir().join(LANGUAGE_MODEL),
            from.join(LANGUAGE_MODEL),
        )
        .unwrap();
        let err = install(&from, &into).unwrap_err().to_string();
        assert!(err.contains("generative.q4.gguf"), "{err}");
        InferenceModel::load(&into.join(GENERATOR)).unwrap();
        assert!(!into.join(".install").exists());
    }
}
