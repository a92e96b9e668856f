//! Where the decoders' data is found, and how it is installed for projects that depend on the
//! crate.
//!
//! The bundled bank (`phrase_bank/`), generator (`model/generative.q4.gguf`) and model of
//! English (`model/english.lm`) are looked for, in order:
//!
//! 1. the path you pass (`DecoderBuilder::bank_dir`, `PhraseBank::load`, ...);
//! 2. the file's own environment variable (`$LWDEC_BANK_DIR`, `$LWDEC_MODEL`,
//!    `$LWDEC_LANGUAGE_MODEL`);
//! 3. the crate's own checkout (a clone of the repository, or a git dependency's checkout), so
//!    that a checkout always uses its own data, never an older install;
//! 4. the user data folder ([`user_data_dir`]: `$LWDEC_DATA_DIR`, else
//!    `$XDG_DATA_HOME/lightweight-decoder`, else `~/.local/share/lightweight-decoder`), where
//!    `lwdec data install` (or [`install`]) puts them and `scripts/install-encoder.sh` puts the
//!    reference encoder: what a project that depends on a packaged crate (no data inside)
//!    uses.
//!
//! When none holds the file, the user data folder's path is returned, so the error names where
//! to install it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::generative::InferenceModel;
use crate::language_model::NgramModel;
use crate::phrase_bank::PhraseBank;

/// Environment variable naming the user data folder.
pub const DATA_DIR_ENV: &str = "LWDEC_DATA_DIR";

/// The bundled bank's folder, relative to a data folder or the checkout.
pub const BANK: &str = "phrase_bank";
/// The bundled generator, relative to a data folder or the checkout.
pub const GENERATOR: &str = "model/generative.q4.gguf";
/// The bundled model of English, relative to a data folder or the checkout.
pub const LANGUAGE_MODEL: &str = "model/english.lm";

/// The files of a bank folder that an install copies.
const BANK_FILES: [&str; 4] = [
    "manifest.json",
    "index.faiss",
    "phrases.txt.zst",
    "corpus_sources.json",
];

/// The user data folder: `$LWDEC_DATA_DIR`, else `$XDG_DATA_HOME/lightweight-decoder` (when
/// absolute), else `$HOME/.local/share/lightweight-decoder`.
pub fn user_data_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env(DATA_DIR_ENV) {
        return dir;
    }
    env("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".local").join("share")))
        .unwrap_or_else(|| PathBuf::from(".local/share"))
        .join("lightweight-decoder")
}

/// The crate's checkout, where the data lives in a clone of the repository.
pub fn checkout_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `relative` (one of [`BANK`], [`GENERATOR`], [`LANGUAGE_MODEL`]) is found: `$env` when
/// set, else the checkout if it holds it, else the user data folder (where the error then says
/// it is missing).
pub fn locate(relative: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let checkout = checkout_dir().join(relative);
    if checkout.exists() {
        return checkout;
    }
    user_data_dir().join(relative)
}

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
