//! Reading whole input files with a cap: only a regular file is opened (a
//! FIFO would block forever, `/dev/zero` never ends), its length is checked
//! against the format's limit before a byte is read, and the buffer is
//! reserved fallibly, so a file too large for memory is an error, not an
//! abort.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::io::atomic::kind_of;
use crate::{Error, Result};

fn refuse(path: &Path, kind: io::ErrorKind, why: String) -> Error {
    Error::io(path, io::Error::new(kind, why))
}

/// Opens `path` (symbolic links followed) for reading if it is a regular
/// file, and returns it with its length.
///
/// # Errors
/// [`Error::Io`] naming `path` if it is missing, unreadable, or a
/// directory, device, FIFO or socket.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !m.is_file() {
        return Err(refuse(
            path,
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_of(&m)),
        ));
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    // The name may have changed between the two looks.
    let m = f.metadata().map_err(|e| Error::io(path, e))?;
    if !m.is_file() {
        return Err(refuse(
            path,
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_of(&m)),
        ));
    }
    Ok((f, m.len()))
}

/// Reads the regular file at `path` whole, refusing one longer than `limit`
/// bytes (`what` names the format in the message).
///
/// # Errors
/// As [`open_regular`]; [`Error::Io`] for a file over the limit or a failed
/// read; [`Error::Value`] ([`crate::memory::try_with_capacity`]) for one
/// whose buffer the system refuses.
pub fn read_capped(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let (f, len) = open_regular(path)?;
    let too_long = |len: u64| {
        refuse(
            path,
            io::ErrorKind::InvalidData,
            format!("{len} bytes is more than the {limit}-byte limit of a {what}"),
        )
    };
    if len > limit {
        return Err(too_long(len));
    }
    let want = usize::try_from(len).map_err(|_| too_long(len))?;
    let mut bytes =
        crate::memory::try_with_capacity::<u8>(&format!("reading {}", path.display()), want)?;
    f.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_long(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn devices_and_directories_are_refused_before_reading() {
        for (p, kind) in [
            ("/dev/zero", "character device"),
            ("/dev/urandom", "character device"),
            ("/", "directory"),
        ] {
            let e = read_capped(Path::new(p), 1 << 30, "test file")
                .unwrap_err()
                .to_string();
            assert!(e.contains(p) && e.contains(kind), "{e}");
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let p = std::env::temp_dir().join(format!("sparse-ae-read-{}", std::process::id()));
        std::fs::write(&p, [1u8; 11]).unwrap();
        assert_eq!(read_capped(&p, 11, "x").unwrap(), [1u8; 11]);
        let e = read_capped(&p, 10, "tiny file").unwrap_err().to_string();
        assert!(
            e.contains("11 bytes") && e.contains("10-byte limit of a tiny file"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
    }
}
