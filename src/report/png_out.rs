//! PNG files of a [`Canvas`] (RGB8) or of a grey image (8-bit luma).

use super::canvas::Canvas;
use crate::io::atomic::write_atomic_bytes as write_atomic;
use crate::{Error, Result};
use std::path::Path;

/// Writes `canvas` to `path` as an 8-bit RGB PNG, atomically (temporary file
/// in the same directory, then rename).
///
/// # Errors
/// `Error::Shape` if the canvas is empty or `pixels.len() ≠ 3·w·h`;
/// `Error::Io` naming `path` if encoding or writing fails.
pub fn save_png(path: impl AsRef<Path>, canvas: &Canvas) -> Result<()> {
    let path = path.as_ref();
    let n = canvas
        .w
        .checked_mul(canvas.h)
        .and_then(|n| n.checked_mul(3));
    if n != Some(canvas.pixels.len()) {
        return Err(Error::shape(
            "save_png",
            format!("3*{}*{} RGB bytes", canvas.w, canvas.h),
            format!("{} bytes", canvas.pixels.len()),
        ));
    }
    let bytes = encode(
        path,
        canvas.w,
        canvas.h,
        png::ColorType::Rgb,
        &canvas.pixels,
    )?;
    write_atomic(path, &bytes)
}

/// Writes a `w × h` grey image (one byte per pixel, row-major, 0 = black) to
/// `path` as an 8-bit greyscale PNG, atomically.
///
/// # Errors
/// `Error::Shape` if the image is empty or `gray.len() ≠ w·h`; `Error::Io`
/// naming `path` if encoding or writing fails.
pub fn save_gray_png(path: impl AsRef<Path>, w: usize, h: usize, gray: &[u8]) -> Result<()> {
    let path = path.as_ref();
    if w.checked_mul(h) != Some(gray.len()) {
        return Err(Error::shape(
            "save_gray_png",
            format!("{w}*{h} grey bytes"),
            format!("{} bytes", gray.len()),
        ));
    }
    let bytes = encode(path, w, h, png::ColorType::Grayscale, gray)?;
    write_atomic(path, &bytes)
}

/// The PNG encoding of an 8-bit image whose data length was checked.
fn encode(path: &Path, w: usize, h: usize, color: png::ColorType, data: &[u8]) -> Result<Vec<u8>> {
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(Error::shape("PNG", "sides below 2^32", format!("{w}x{h}")));
    };
    if w == 0 || h == 0 {
        return Err(Error::shape("PNG", "a non-empty image", format!("{w}x{h}")));
    }
    // The encoder's own allocations are not fallible (a refused one ends
    // the process in the deflate code): what it will need is checked
    // against the address space left first (it is no buffer the budget
    // counts), and the file's buffer is reserved fallibly at its largest size.
    let row = data.len() / h;
    let bound = deflate_bound(data.len().saturating_add(h));
    let what = format!("encoding the PNG {}", path.display());
    crate::memory::check_address_space(&what, encoder_bytes(row, bound))?;
    let mut out = crate::memory::try_with_capacity(&what, bound.saturating_add(PNG_OVERHEAD))?;
    let as_io = |e: png::EncodingError| Error::io(path, std::io::Error::other(e.to_string()));
    let mut enc = png::Encoder::new(&mut out, w32, h32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(as_io)?;
    writer.write_image_data(data).map_err(as_io)?;
    writer.finish().map_err(as_io)?;
    Ok(out)
}

/// Bytes of a PNG file beside its compressed data, with room to spare: the
/// signature, header and end chunks, and the headers of the data chunks.
const PNG_OVERHEAD: usize = 1 << 12;

/// The most bytes deflate makes of `n` bytes (zlib's `deflateBound`, with
/// the zlib header and checksum and room to spare).
fn deflate_bound(n: usize) -> usize {
    n.saturating_add(n >> 10).saturating_add(64)
}

/// Bytes the encoder allocates beside the image for rows of `row` bytes and
/// at most `bound` bytes of compressed data: deflate's state at the default
/// level (window, hash chains and symbol buffer, about 270 kB; 1 MB is
/// counted), two rows (the previous and the filtered), the compressed data
/// as its buffer grows (up to twice its size while it is copied) and the
/// file's bytes.
fn encoder_bytes(row: usize, bound: usize) -> u64 {
    let rows = 2 * row as u64 + 2;
    (1u64 << 20)
        .saturating_add(rows)
        .saturating_add((bound as u64).saturating_mul(3))
        .saturating_add(PNG_OVERHEAD as u64)
}
