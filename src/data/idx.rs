//! The IDX format of MNIST and similar data sets, raw or gzip-compressed.
//!
//! Layout: magic `00 00 <type> <ndims>`, then `ndims` big-endian u32
//! dimensions, then `d₀·d₁·…` big-endian elements of the type
//! (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), nothing after.
//!
//! The reader checks the header before it allocates: 1 ≤ ndims ≤ [`MAX_DIMS`],
//! no zero dimension, the byte count `Π dᵢ · size(type)` computed with checked
//! multiplication, compared with the bytes present (raw) or with a cap on the
//! decompressed size (gzip, [`DEFAULT_LIMIT`]), and read only as far as the
//! data really goes. A truncated body, trailing bytes or a gzip bomb is an
//! [`Error::Idx`] naming the file.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::Path;

use byteorder::{BigEndian, ByteOrder};

use super::gz;
use crate::io::atomic::write_atomic;
use crate::{Error, Result};

/// Most dimensions an IDX file may declare.
pub const MAX_DIMS: usize = 8;
/// Default cap on the element bytes of a gzip-compressed file (2 GiB).
pub const DEFAULT_LIMIT: u64 = 2 << 30;

/// The element data of an IDX array, in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Type code 0x08.
    U8(Vec<u8>),
    /// Type code 0x09.
    I8(Vec<i8>),
    /// Type code 0x0B.
    I16(Vec<i16>),
    /// Type code 0x0C.
    I32(Vec<i32>),
    /// Type code 0x0D.
    F32(Vec<f32>),
    /// Type code 0x0E.
    F64(Vec<f64>),
}

/// An n-dimensional IDX array: `data.len() == dims.iter().product()`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (MNIST images: `[n, rows, cols]`).
    pub dims: Vec<usize>,
    /// The elements.
    pub data: IdxData,
}

impl IdxData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The IDX type code (0x08 …).
    pub fn code(&self) -> u8 {
        match self {
            IdxData::U8(_) => 0x08,
            IdxData::I8(_) => 0x09,
            IdxData::I16(_) => 0x0B,
            IdxData::I32(_) => 0x0C,
            IdxData::F32(_) => 0x0D,
            IdxData::F64(_) => 0x0E,
        }
    }
}

/// (name, bytes per element) of a type code.
fn type_info(code: u8) -> Option<(&'static str, usize)> {
    Some(match code {
        0x08 => ("u8", 1),
        0x09 => ("i8", 1),
        0x0B => ("i16", 2),
        0x0C => ("i32", 4),
        0x0D => ("f32", 4),
        0x0E => ("f64", 8),
        _ => return None,
    })
}

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Idx {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn dims_text(dims: &[u64]) -> String {
    let mut s = String::new();
    for (i, d) in dims.iter().enumerate() {
        let _ = write!(s, "{}{d}", if i > 0 { "×" } else { "" });
    }
    s
}

/// Parses an IDX file held in memory, raw or gzip (errors name `<memory>`).
pub fn parse(bytes: &[u8]) -> Result<IdxArray> {
    decode(bytes, Path::new("<memory>"), DEFAULT_LIMIT)
}

/// Reads the IDX file at `path`, gzip-compressed or not (decided by the
/// magic bytes `1f 8b`), with the default cap on decompressed size.
pub fn read(path: &Path) -> Result<IdxArray> {
    read_with_limit(path, DEFAULT_LIMIT)
}

/// As [`read`], with `limit` bytes as the cap on decompressed element data.
pub fn read_with_limit(path: &Path, limit: u64) -> Result<IdxArray> {
    // The header (at most 4 + 4·255 bytes) and the data, or their gzip form,
    // which deflate's stored blocks keep within 1/16 of it.
    let cap = limit.saturating_add(limit / 16).saturating_add(1 << 20);
    let bytes = crate::io::read::read_capped(path, cap, "IDX file")?;
    super::row_file::count(bytes.len());
    decode(&bytes, path, limit)
}

/// Parses the file contents `bytes`, naming `path` in errors; gzip is
/// detected by its magic bytes and inflated at most to `limit` data bytes.
///
/// # Errors
/// [`Error::Idx`] for any malformed header or body (see the module doc).
pub fn decode(bytes: &[u8], path: &Path, limit: u64) -> Result<IdxArray> {
    if gz::is_gzip(bytes) {
        let r = gz::decoder(bytes, path)?;
        read_stream(r, path, None, limit)
    } else {
        read_stream(bytes, path, Some(bytes.len() as u64), u64::MAX)
    }
}

/// Maps a read error: inside a gzip stream it is corrupt data, not an OS error.
fn read_err(path: &Path, compressed: bool, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::OutOfMemory {
        return err(
            path,
            "out of memory while reading its data (the file is not corrupt; free memory, or use fewer samples)",
        );
    }
    match compressed {
        true => err(path, format!("corrupt gzip data: {e}")),
        false => Error::io(path, e),
    }
}

/// Reads as many bytes as fit in `buf`, returning how many (short only at EOF).
pub(crate) fn fill(
    r: &mut dyn Read,
    buf: &mut [u8],
    path: &Path,
    compressed: bool,
) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(path, compressed, e)),
        }
    }
    Ok(n)
}

/// What an IDX header declares about the data that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    /// The element type code (0x08 u8 …).
    pub code: u8,
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Bytes of the header (the data's offset in a raw file).
    pub data_start: u64,
    /// `Π dims · size(type)`, the exact length of the data.
    pub data_bytes: u64,
    /// The header's words for errors: `header declares 60000×28×28 u8 = … bytes`.
    pub(crate) declared: String,
}

/// Reads and checks the header of the IDX data in `r`, positioned at its
/// start; leaves `r` at the first data byte. `total` is the whole stream's
/// length when known (a raw file: the data must fill it exactly);
/// otherwise the data is capped at `limit` bytes.
///
/// # Errors
/// [`Error::Idx`] for a malformed header, or a declared size that does not
/// match `total` or exceeds `limit` (see the module doc).
pub fn read_header(
    r: &mut dyn Read,
    path: &Path,
    total: Option<u64>,
    limit: u64,
) -> Result<IdxHeader> {
    let compressed = total.is_none();
    let mut magic = [0u8; 4];
    let got = fill(r, &mut magic, path, compressed)?;
    if got < 4 {
        return Err(err(
            path,
            format!("truncated header: {got} bytes, the magic number alone needs 4"),
        ));
    }
    if magic[..2] != [0, 0] {
        let hint = if gz::has_gz_name(path) {
            " (the name ends in .gz but the file does not start with the gzip magic 1f 8b)"
        } else {
            ""
        };
        return Err(err(
            path,
            format!(
                "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with 00 00 <type> <ndims>{hint}",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    let (tname, size) = type_info(magic[2]).ok_or_else(|| {
        err(path, format!(
            "unknown element type code 0x{:02x} (known: 08 u8, 09 i8, 0B i16, 0C i32, 0D f32, 0E f64)",
            magic[2]
        ))
    })?;
    let ndims = usize::from(magic[3]);
    if ndims == 0 || ndims > MAX_DIMS {
        return Err(err(
            path,
            format!("{ndims} dimensions declared; 1 to {MAX_DIMS} are supported"),
        ));
    }
    let mut raw_dims = [0u8; 4 * MAX_DIMS];
    let header_dims = &mut raw_dims[..4 * ndims];
    let got = fill(r, header_dims, path, compressed)?;
    if got < header_dims.len() {
        return Err(err(
            path,
            format!(
                "truncated header: {ndims} dimensions need {} bytes after the magic but only {got} follow",
                4 * ndims
            ),
        ));
    }
    let dims: Vec<u64> = header_dims
        .chunks_exact(4)
        .map(|c| u64::from(BigEndian::read_u32(c)))
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(err(
            path,
            format!("dimension {i} of {} is 0", dims_text(&dims)),
        ));
    }
    let nbytes = dims
        .iter()
        .try_fold(size as u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            err(
                path,
                format!(
                    "{} {tname} elements overflow a 64-bit byte count",
                    dims_text(&dims)
                ),
            )
        })?;
    let declared = format!(
        "header declares {} {tname} = {nbytes} bytes",
        dims_text(&dims)
    );
    if let Some(total) = total {
        let remaining = total - 4 - 4 * ndims as u64;
        if nbytes > remaining {
            return Err(err(path, format!("{declared} but only {remaining} follow")));
        }
        if nbytes < remaining {
            return Err(err(
                path,
                format!(
                    "{declared} but {remaining} follow ({} trailing bytes)",
                    remaining - nbytes
                ),
            ));
        }
    }
    if nbytes > limit {
        return Err(err(
            path,
            format!("{declared}, more than the {limit}-byte limit on decompressed data"),
        ));
    }
    usize::try_from(nbytes)
        .map_err(|_| err(path, format!("{declared}, too many for this platform")))?;
    Ok(IdxHeader {
        code: magic[2],
        dims: dims.iter().map(|&d| d as usize).collect(),
        data_start: 4 + 4 * ndims as u64,
        data_bytes: nbytes,
        declared,
    })
}

/// Reads one IDX array from `r`. `total` is the whole stream's length when
/// known (raw files); otherwise the data is capped at `limit` bytes.
fn read_stream<R: Read>(mut r: R, path: &Path, total: Option<u64>, limit: u64) -> Result<IdxArray> {
    let compressed = total.is_none();
    let r: &mut dyn Read = &mut r;
    let IdxHeader {
        code,
        dims,
        data_bytes: nbytes,
        declared,
        ..
    } = read_header(r, path, total, limit)?;
    let len = nbytes as usize;
    // The data, and its conversion from big-endian for wider types.
    let copies = if code == 0x08 { 1 } else { 2 };
    crate::memory::check(
        &format!("reading {}", path.display()),
        nbytes.saturating_mul(copies),
    )?;
    // Raw: the bytes are known to be present. Gzip: grow with the real data.
    let buf = read_data(r, path, compressed, len)?;
    if buf.len() < len {
        return Err(err(
            path,
            format!(
                "{declared} but only {} follow after decompression",
                buf.len()
            ),
        ));
    }
    if compressed && fill(r, &mut [0u8; 1], path, compressed)? > 0 {
        return Err(err(
            path,
            format!("{declared} but more data follows after decompression"),
        ));
    }
    Ok(IdxArray {
        dims,
        data: from_be(code, buf, path)?,
    })
}

/// The elements of `buf`, converted from big-endian (into a buffer
/// reserved fallibly, for the wider types).
/// Reads up to `len` bytes of data from `r` (fewer only at its end), into
/// a buffer reserved fallibly as it grows: raw data at once, gzip data 16 MB
/// at a time and then doubling, as the real data comes (`read_to_end` would
/// grow it infallibly).
fn read_data(r: &mut dyn Read, path: &Path, compressed: bool, len: usize) -> Result<Vec<u8>> {
    let what = format!("reading {}", path.display());
    let first = if compressed { len.min(1 << 24) } else { len };
    let mut buf: Vec<u8> = crate::memory::try_with_capacity(&what, first)?;
    while buf.len() < len {
        let start = buf.len();
        if start == buf.capacity() {
            let more = start.min(len - start);
            buf.try_reserve_exact(more)
                .map_err(|_| crate::memory::refused(&what, (start + more) as u64))?;
        }
        let end = buf.capacity().min(len);
        buf.resize(end, 0);
        let n = fill(r, &mut buf[start..end], path, compressed)?;
        buf.truncate(start + n);
        if start + n < end {
            break;
        }
    }
    Ok(buf)
}

fn from_be(code: u8, buf: Vec<u8>, path: &Path) -> Result<IdxData> {
    fn conv<T: Default + Clone>(
        buf: &[u8],
        size: usize,
        f: fn(&[u8], &mut [T]),
        path: &Path,
    ) -> Result<Vec<T>> {
        let what = format!("reading {}", path.display());
        let mut out = crate::memory::try_vec(&what, buf.len() / size, T::default())?;
        f(buf, &mut out);
        Ok(out)
    }
    Ok(match code {
        0x08 => IdxData::U8(buf),
        0x09 => IdxData::I8(buf.into_iter().map(|b| b as i8).collect()),
        0x0B => IdxData::I16(conv(&buf, 2, BigEndian::read_i16_into, path)?),
        0x0C => IdxData::I32(conv(&buf, 4, BigEndian::read_i32_into, path)?),
        0x0D => IdxData::F32(conv(&buf, 4, BigEndian::read_f32_into, path)?),
        _ => IdxData::F64(conv(&buf, 8, BigEndian::read_f64_into, path)?),
    })
}

/// Checks `a` for what the format can hold, before anything is written.
fn validate(a: &IdxArray, path: &Path) -> Result<()> {
    if a.dims.is_empty() || a.dims.len() > MAX_DIMS {
        return Err(err(
            path,
            format!(
                "{} dimensions; 1 to {MAX_DIMS} can be written",
                a.dims.len()
            ),
        ));
    }
    if let Some(&d) = a
        .dims
        .iter()
        .find(|&&d| d == 0 || u32::try_from(d).is_err())
    {
        return Err(err(path, format!("dimension {d} is not in 1..=2³²−1")));
    }
    let numel = a.dims.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
    if numel != Some(a.data.len()) {
        return Err(err(
            path,
            format!("dims {:?} do not hold {} elements", a.dims, a.data.len()),
        ));
    }
    Ok(())
}

/// Writes `a` as raw IDX to `w`.
///
/// # Errors
/// [`Error::Idx`] if `a` cannot be represented (no or too many dims, a zero
/// or > u32 dimension, a length mismatch); [`Error::Io`] if writing fails.
pub fn write_to(w: &mut dyn Write, a: &IdxArray, path: &Path) -> Result<()> {
    validate(a, path)?;
    let io = |e| Error::io(path, e);
    let mut head = vec![0, 0, a.data.code(), a.dims.len() as u8];
    for &d in &a.dims {
        head.extend((d as u32).to_be_bytes());
    }
    w.write_all(&head).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    macro_rules! chunks {
        ($v:expr) => {
            for c in $v.chunks(1 << 13) {
                buf.clear();
                buf.extend(c.iter().flat_map(|x| x.to_be_bytes()));
                w.write_all(&buf).map_err(io)?;
            }
        };
    }
    match &a.data {
        IdxData::U8(v) => w.write_all(v).map_err(io)?,
        IdxData::I8(v) => chunks!(v),
        IdxData::I16(v) => chunks!(v),
        IdxData::I32(v) => chunks!(v),
        IdxData::F32(v) => chunks!(v),
        IdxData::F64(v) => chunks!(v),
    }
    Ok(())
}

/// The raw IDX bytes of `a`.
///
/// # Errors
/// As [`write_to`].
pub fn to_bytes(a: &IdxArray) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_to(&mut out, a, Path::new("<memory>"))?;
    Ok(out)
}

/// The gzip-compressed IDX bytes of `a`.
///
/// # Errors
/// As [`write_to`], or [`Error::Idx`] if built without the `gzip` feature.
pub fn to_gz_bytes(a: &IdxArray) -> Result<Vec<u8>> {
    let path = Path::new("<memory>");
    validate(a, path)?;
    let mut out = Vec::new();
    gz::compress(&mut out, path, |w| write_to(w, a, path))?;
    Ok(out)
}

/// Writes `a` to `path` atomically, gzip-compressed if the name ends in `.gz`.
///
/// # Errors
/// As [`write_to`]; the old file at `path` stays whole on any error.
pub fn write(path: &Path, a: &IdxArray) -> Result<()> {
    validate(a, path)?;
    if gz::has_gz_name(path) {
        write_atomic(path, |w| gz::compress(w, path, |z| write_to(z, a, path)))
    } else {
        write_atomic(path, |w| write_to(w, a, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<IdxArray> {
        let d = |dims: &[usize], data| IdxArray {
            dims: dims.to_vec(),
            data,
        };
        vec![
            d(&[3], IdxData::U8(vec![0, 7, 255])),
            d(&[2, 2], IdxData::I8(vec![-128, -1, 0, 127])),
            d(&[1, 3], IdxData::I16(vec![-32768, 258, 32767])),
            d(&[2, 1, 1], IdxData::I32(vec![i32::MIN, 16_909_060])),
            d(&[2], IdxData::F32(vec![1.5, f32::NAN])),
            d(&[1, 1, 1, 1, 1, 1, 1, 2], IdxData::F64(vec![-0.0, 1e300])),
        ]
    }

    #[test]
    fn every_type_round_trips_bit_exactly() {
        for a in all_kinds() {
            let bytes = to_bytes(&a).unwrap();
            assert_eq!(bytes[2], a.data.code());
            let back = parse(&bytes).unwrap();
            assert_eq!(to_bytes(&back).unwrap(), bytes);
        }
    }

    #[test]
    fn big_endian_on_disk() {
        let a = IdxArray {
            dims: vec![1],
            data: IdxData::I32(vec![0x0102_0304]),
        };
        assert_eq!(
            to_bytes(&a).unwrap(),
            [0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4]
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_round_trips_and_is_capped() {
        let a = IdxArray {
            dims: vec![1000, 10],
            data: IdxData::U8(vec![0; 10_000]),
        };
        let gz = to_gz_bytes(&a).unwrap();
        assert!(gz::is_gzip(&gz) && gz.len() < 200);
        assert_eq!(parse(&gz).unwrap(), a);
        let e = decode(&gz, Path::new("x.gz"), 9_999)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 9999-byte limit"), "{e}");
    }

    #[test]
    fn writer_rejects_unrepresentable_arrays() {
        let bad = [
            IdxArray {
                dims: vec![],
                data: IdxData::U8(vec![1]),
            },
            IdxArray {
                dims: vec![0],
                data: IdxData::U8(vec![]),
            },
            IdxArray {
                dims: vec![3],
                data: IdxData::U8(vec![1]),
            },
        ];
        for a in bad {
            assert!(to_bytes(&a).is_err(), "{a:?}");
        }
    }
}
