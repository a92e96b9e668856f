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
/// copies are written to a private staging folder beside their destination, synced, and
/// renamed into place, so an interrupted install leaves the old files or the new ones, never
/// a mixture within a file or the bank.
pub fn install(from: &Path, into: &Path) -> Result<Installed> {
    std::fs::create_dir_all(into).map_err(|e| Error::io("create the folder", into, e))?;
    // private to this install (removed when dropped, whatever happens)
    let staging = tempfile::Builder::new()
        .prefix(".install")
        .tempdir_in(into)
        .map_err(|e| Error::io("create a staging folder in", into, e))?;
    let staged_bank = staging.path().join(BANK);
    std::fs::create_dir_all(&staged_bank)
        .map_err(|e| Error::io("create the folder", &staged_bank, e))?;
    let mut files = Vec::new();
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
        let staged = staging.path().join(relative);
        create_parent(&staged)?;
        files.push((relative.to_string(), copy(&from.join(relative), &staged)?));
    }
    InferenceModel::load(&staging.path().join(GENERATOR))?;
    NgramModel::load(&staging.path().join(LANGUAGE_MODEL))?;
    sync(&staged_bank)?;
    // verified and on disk: the bank replaces the installed one as a whole folder, as a
    // bank's save does
    crate::fsutil::replace_dir(&staged_bank, &into.join(BANK))?;
    for relative in [GENERATOR, LANGUAGE_MODEL] {
        let target = into.join(relative);
        create_parent(&target)?;
        std::fs::rename(staging.path().join(relative), &target)
            .map_err(|e| Error::io("move into place", &target, e))?;
        if let Some(parent) = target.parent() {
            sync(parent)?;
        }
    }
    sync(into)?;
    Ok(Installed {
        dir: into.to_path_buf(),
        files,
    })
}

/// Copies one file and syncs it, returning its size. A missing source says where the data
/// comes from.
fn copy(source: &Path, target: &Path) -> Result<u64> {
    let bytes = std::fs::copy(source, target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InvalidArgument(format!(
                "{} is missing: install from a checkout of the repository, which holds the \
                 bank and models (`lwdec data install --from CHECKOUT`)",
                source.display()
            ))
        } else {
            Error::io("copy", source, e)
        }
    })?;
    sync(target)?;
    Ok(bytes)
}

/// Creates the folder that will hold `path`.
fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create the folder", parent, e))
        }
        None => Ok(()),
    }
}

/// Flushes a file, or a folder's entries, to disk.
fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("sync", path, e))
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
        let staged = |dir: &Path| {
            std::fs::read_dir(dir).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".install")
            })
        };
        assert!(!staged(&into));
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
        assert!(!staged(&into));
        // a source without data says where to install from
        let err = install(tmp.path(), &tmp.path().join("other")).unwrap_err();
        assert!(err.to_string().contains("--from CHECKOUT"), "{err}");
    }
}
