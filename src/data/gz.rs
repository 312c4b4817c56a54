//! gzip plumbing shared by the data readers, behind the `gzip` feature.
//!
//! Decompression is streamed: callers read only as many bytes as a header
//! declares (after checking that against a hard cap), so a small file that
//! inflates to gigabytes costs no more memory than the cap allows.

use std::io::{Read, Write};
use std::path::Path;

use crate::{Error, Result};

/// The first two bytes of every gzip member.
pub(crate) const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True if `bytes` start like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// True if the file name ends in `.gz`.
pub(crate) fn has_gz_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

#[cfg_attr(feature = "gzip", allow(dead_code))]
fn no_gzip(path: &Path, what: &str) -> Error {
    Error::Idx {
        path: path.to_owned(),
        reason: format!(
            "{what} gzip, but sparse-ae was built without gzip support\n---> HINT: enable the `gzip` feature, or gunzip the file first"
        ),
    }
}

/// A decoder over all gzip members of `r`. Zero bytes after the last
/// member are padding; other bytes that do not start another member are an
/// error that says so (they read as a member cut short: "unexpected end of
/// file").
///
/// The decompressor allocates infallibly (a refused allocation is a panic
/// in the inflate code): its memory is checked against the address space
/// left first.
#[cfg(feature = "gzip")]
pub(crate) fn decoder<'a, R: Read + 'a>(r: R, path: &Path) -> Result<Box<dyn Read + 'a>> {
    crate::memory::check_address_space(
        &format!("decompressing {}", path.display()),
        INFLATE_BYTES,
    )?;
    let r = std::io::BufReader::new(r);
    Ok(Box::new(Members {
        dec: Some(flate2::bufread::GzDecoder::new(r)),
    }))
}

/// The gzip members of a stream, one after the other.
#[cfg(feature = "gzip")]
struct Members<R: std::io::BufRead> {
    /// The member being read (`None` at the end).
    dec: Option<flate2::bufread::GzDecoder<R>>,
}

#[cfg(feature = "gzip")]
impl<R: std::io::BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended: the end of the stream, or another member.
            let mut r = self.dec.take().map(flate2::bufread::GzDecoder::into_inner);
            let Some(rest) = r.as_mut() else {
                return Ok(0);
            };
            let head = rest.fill_buf()?;
            if head.is_empty() {
                return Ok(0);
            }
            // Zero bytes to the end are padding (tape blocks), which GNU
            // gzip and Python's gzip accept too.
            if head[0] == 0 && only_zeros(rest)? {
                return Ok(0);
            }
            let head = rest.fill_buf()?;
            let next = head[0] == MAGIC[0] && (head.len() < 2 || head[1] == MAGIC[1]);
            if !next {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "bytes after the end of the gzip data that are not another gzip member (trailing garbage)",
                ));
            }
            self.dec = r.map(flate2::bufread::GzDecoder::new);
        }
    }
}

/// Whether `r` holds only zero bytes from here to its end; the zeros are
/// consumed, anything else is left at the front.
#[cfg(feature = "gzip")]
fn only_zeros<R: std::io::BufRead>(r: &mut R) -> std::io::Result<bool> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        let zeros = buf.iter().take_while(|&&b| b == 0).count();
        let all = zeros == buf.len();
        r.consume(zeros);
        if !all {
            return Ok(false);
        }
    }
}

/// Without the `gzip` feature: a clear error.
#[cfg(not(feature = "gzip"))]
pub(crate) fn decoder<'a, R: Read + 'a>(_r: R, path: &Path) -> Result<Box<dyn Read + 'a>> {
    Err(no_gzip(path, "the file is"))
}

/// Bytes a gzip decompressor allocates, with room to spare: its state and
/// 32 kB window (about 50 kB) and the 8 kB buffer of its reader.
#[cfg(feature = "gzip")]
const INFLATE_BYTES: u64 = 1 << 18;

/// Bytes a gzip compressor allocates at the default level, with room to
/// spare: its window, hash chains and symbol buffer (about 270 kB) and its
/// output buffer.
#[cfg(feature = "gzip")]
const DEFLATE_BYTES: u64 = 1 << 20;

/// Writes what `fill` produces gzip-compressed to `w`. (The compressor's
/// memory is checked against the address space left first, as the
/// decompressor's.)
#[cfg(feature = "gzip")]
pub(crate) fn compress(
    w: &mut dyn Write,
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    crate::memory::check_address_space(&format!("compressing {}", path.display()), DEFLATE_BYTES)?;
    let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::default());
    fill(&mut enc)?;
    enc.finish().map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Without the `gzip` feature: a clear error.
#[cfg(not(feature = "gzip"))]
pub(crate) fn compress(
    _w: &mut dyn Write,
    path: &Path,
    _fill: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    Err(no_gzip(path, "writing"))
}
