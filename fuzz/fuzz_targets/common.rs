//! Shared by the fuzz targets: several files in one input, cut at [`SEPARATOR`].
#![allow(dead_code)] // each target uses a part

/// Separates the files of a multi-file input (a bank folder, an encoder folder).
pub const SEPARATOR: &[u8] = b"\n\x00--lwdec-fuzz-file--\x00\n";

/// The first `n` files of `data` (missing ones empty).
pub fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    while parts.len() < n {
        parts.push(&[]);
    }
    parts
}

/// Writes `files` (name, bytes) into a fresh temporary folder.
pub fn folder(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("a temporary file");
    }
    dir
}
