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
//!    `lwdec data install` (or [`crate::install::install`]) puts them and `scripts/install-encoder.sh` puts the
//!    reference encoder: what a project that depends on a packaged crate (no data inside)
//!    uses.
//!
//! When none holds the file, the user data folder's path is returned, so the error names where
//! to install it.

use std::path::PathBuf;

/// Environment variable naming the user data folder.
pub const DATA_DIR_ENV: &str = "LWDEC_DATA_DIR";

/// The bundled bank's folder, relative to a data folder or the checkout.
pub const BANK: &str = "phrase_bank";
/// The bundled generator, relative to a data folder or the checkout.
pub const GENERATOR: &str = "model/generative.q4.gguf";
/// The bundled model of English, relative to a data folder or the checkout.
pub const LANGUAGE_MODEL: &str = "model/english.lm";

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
