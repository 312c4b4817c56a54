//! Crash-safe file replacement: a reader of `path` sees either the old file
//! or the complete new one, never a torn mix.
//!
//! Steps: write to a uniquely named temporary file in the same directory
//! (`.<name>.tmp-<pid>-<n>`), flush and fsync it, rename it over `path`
//! (atomic on POSIX within one file system), then fsync the directory so the
//! rename itself survives a power cut. If anything fails before the rename,
//! the temporary file is removed and `path` is untouched. A process killed
//! mid-write leaves its temporary file behind but never damages `path`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file on drop unless the rename succeeded.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Replaces `path` atomically with the bytes that `fill` writes.
///
/// `fill` receives a buffered writer; returning an error (or panicking)
/// aborts the replacement and leaves the old file as it was. This is also the
/// failure-injection point tests use.
///
/// # Errors
/// Whatever `fill` returns, or [`Error::Io`] naming `path` (or the temporary
/// file) if creating, writing, syncing or renaming fails.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let (file, tmp) = create_temp(&dir, &name.to_string_lossy())?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    let mut w = BufWriter::with_capacity(1 << 20, file);
    fill(&mut w)?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    guard.armed = false;
    sync_dir(&dir)
}

/// Replaces `path` atomically with `bytes` (see [`write_atomic`]).
///
/// # Errors
/// [`Error::Io`] naming the file if any step fails; the old file then stays.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| Error::io(path, e)))
}

fn create_temp(dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            // Left behind by an earlier crashed process with a reused pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // Some file systems cannot fsync a directory; the rename is done anyway.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("sparse-ae-atomic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp() {
        let d = scratch("replace");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        write_atomic_bytes(&p, b"new contents").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn error_midway_keeps_old_file_and_removes_temp() {
        let d = scratch("fail");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(&[7u8; 3 << 20]).unwrap();
            Err(Error::config("test", "injected failure"))
        });
        assert!(r.unwrap_err().to_string().contains("injected failure"));
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn panic_midway_keeps_old_file_and_removes_temp() {
        let d = scratch("panic");
        let p = d.join("f.bin");
        write_atomic_bytes(&p, b"old").unwrap();
        let r = std::panic::catch_unwind(|| {
            write_atomic(&p, |w| {
                w.write_all(b"partial").unwrap();
                panic!("injected panic")
            })
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(&d), ["f.bin"]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_it() {
        let p = std::env::temp_dir().join("sparse-ae-no-such-dir-x9/f.bin");
        let e = write_atomic_bytes(&p, b"x").unwrap_err().to_string();
        assert!(e.contains("sparse-ae-no-such-dir-x9"), "{e}");
    }
}
