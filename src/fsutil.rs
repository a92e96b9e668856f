//! Atomic file writes: a temporary file beside the target, renamed over it when complete.
//!
//! Temporary paths of writes in progress are registered, so that a process stopped by a
//! signal can remove them ([`remove_temporary_files`]) instead of leaving them behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Temporary files and folders of writes in progress.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held while a write is renamed into place, so that a signal's cleanup waits for it.
static SWAPPING: Mutex<()> = Mutex::new(());

/// Holds off [`remove_temporary_files`] until dropped: for the renames that put a write in
/// place.
pub(crate) fn critical_section() -> std::sync::MutexGuard<'static, ()> {
    SWAPPING.lock().unwrap_or_else(|e| e.into_inner())
}

fn registry() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a temporary path until [`unregister`].
pub(crate) fn register(path: &Path) {
    registry().push(path.to_path_buf());
}

/// Forgets a temporary path (committed or removed).
pub(crate) fn unregister(path: &Path) {
    registry().retain(|p| p != path);
}

/// Removes the temporary files and folders of every write in progress: for a process that is
/// about to exit on a signal (`lwdec` does this on SIGINT and SIGTERM).
pub fn remove_temporary_files() {
    let _no_swap_in_progress = critical_section();
    for path in registry().drain(..) {
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A file being written atomically: readers of `path` see the old content or the new one,
/// never a half-written file. [`AtomicFile::commit`] renames it into place; dropping it
/// uncommitted removes the temporary file.
///
/// An existing target keeps its permissions; a symbolic link is followed, so the file it
/// points to is replaced and the link stays.
pub struct AtomicFile {
    /// `Some` until [`AtomicFile::commit`] takes it.
    writer: Option<BufWriter<tempfile::NamedTempFile>>,
    target: PathBuf,
    temp: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let target = resolve_links(path)?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".lwdec-tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("create a temporary file in", &dir, e))?;
        let permissions = match std::fs::metadata(&target) {
            Ok(meta) => Some(meta.permissions()),
            Err(_) => default_permissions(),
        };
        if let Some(permissions) = permissions {
            tmp.as_file()
                .set_permissions(permissions)
                .map_err(|e| Error::io("set the permissions of", tmp.path(), e))?;
        }
        let temp = tmp.path().to_path_buf();
        register(&temp);
        Ok(AtomicFile {
            writer: Some(BufWriter::new(tmp)),
            target,
            temp,
        })
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let target = self.target.clone();
        let tmp = self
            .writer
            .take()
            .ok_or_else(|| Error::Internal(format!("{} committed twice", target.display())))?
            .into_inner()
            .map_err(|e| Error::io("write", &target, e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io("flush to disk", &target, e))?;
        let _renaming = critical_section();
        let persisted = tmp.persist(&target);
        unregister(&self.temp);
        persisted
            .map_err(|e| Error::io("move the finished file to", &target, e.error))
            .map(drop)
    }

    fn writer(&mut self) -> std::io::Result<&mut BufWriter<tempfile::NamedTempFile>> {
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the file was committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer()?.flush()
    }
}

impl std::io::Seek for AtomicFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.writer()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // an uncommitted file: the NamedTempFile removes itself
        unregister(&self.temp);
    }
}

/// `path` with symbolic links followed (at most 16), so that writing replaces the file a link
/// points to rather than the link.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=16 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = std::fs::read_link(&current)
                    .map_err(|e| Error::io("follow the link", &current, e))?;
                current = match current.parent() {
                    Some(parent) if next.is_relative() => parent.join(next),
                    _ => next,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(Error::InvalidArgument(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Permissions of a new file: 0666 less the process's umask, as for an ordinary file
/// (tempfile's own default is 0600); `None` off Unix.
fn default_permissions() -> Option<std::fs::Permissions> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(0o666 & !umask()))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))?;
    file.commit()
}

/// The process's umask (Linux: `/proc/self/status`; 022 where it cannot be read).
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
        })
        .unwrap_or(0o022)
}

/// Puts the folder `staged` in the place of `dir` (a sibling on the same file system; `dir`
/// may not exist yet) and removes what was there. Where the system can, the two are exchanged
/// atomically (a reader sees the old folder or the new one); elsewhere by two renames, the old
/// folder put back if the second fails. `staged` is removed on failure too. A signal's cleanup
/// waits until the swap is over (it would otherwise delete `staged` or strand the old folder).
pub(crate) fn replace_dir(staged: &Path, dir: &Path) -> Result<()> {
    let _swapping = critical_section();
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| Error::io("move a folder to", to, e))
    };
    if dir.exists() && exchange(staged, dir) {
        // `staged` now holds the previous folder: the new one is in place even if the old one
        // cannot be removed
        let _ = std::fs::remove_dir_all(staged);
    } else if dir.exists() {
        let name = dir
            .file_name()
            .map_or_else(|| "dir".into(), |n| n.to_string_lossy());
        let old = dir.with_file_name(format!(".{name}-old-{}", std::process::id()));
        rename(dir, &old)?;
        if let Err(e) = rename(staged, dir) {
            let _ = std::fs::rename(&old, dir);
            let _ = std::fs::remove_dir_all(staged);
            return Err(e);
        }
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
    } else if let Err(e) = rename(staged, dir) {
        let _ = std::fs::remove_dir_all(staged);
        return Err(e);
    }
    Ok(())
}

/// Atomically exchanges two directories (Linux `renameat2(RENAME_EXCHANGE)`); false where the
/// system or file system does not support it, and the caller falls back to two renames.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(a), Ok(b)) = (
        CString::new(a.as_os_str().as_bytes()),
        CString::new(b.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; renameat2
    // only reads them.
    let code = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    code == 0
}

/// No atomic exchange off Linux: the caller renames twice.
#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn keeps_the_mode_and_follows_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.txt");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("real.txt", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let fresh = dir.path().join("fresh.txt");
        write_atomic(&fresh, b"x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
        // an uncommitted file leaves nothing behind
        let names = |d: &Path| std::fs::read_dir(d).unwrap().count();
        let before = names(dir.path());
        drop(AtomicFile::create(&dir.path().join("never.txt")).unwrap());
        assert_eq!(names(dir.path()), before);
    }
}
