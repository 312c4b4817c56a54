//! NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read as `f32`.
//!
//! Layout: `\x93NUMPY`, major, minor, header length (u16 LE for 1.x, u32 LE
//! for 2.x/3.x), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }`,
//! then exactly `Π shape · itemsize` bytes. `fortran_order` must be `False`.
//! The size is checked against the bytes present before anything is
//! allocated.
//!
//! Element types ([`Dtype`]), all widened to `f32`: `f2`, `f4`, `f8` in
//! either byte order (`<`/`>`, or `=` the machine's, as are NumPy's names
//! `float32`, `float64`, `float16`, `uint8`, `int8`, which `np.load` takes
//! too; f8 rounds to nearest), `i1`, `u1` (pixels,
//! scaled by 1/255 into [0, 1] as IDX bytes are, and as the Python module
//! scales uint8 arrays), and bfloat16. NumPy has no bfloat16 of its own: `np.save` of an
//! `ml_dtypes.bfloat16` array (JAX, TensorFlow, Keras) writes the descr
//! `'<V2'`, an opaque two-byte type, and the `ml_dtypes` workaround of
//! writing `str(array.dtype)` into the header gives `'bfloat16'`. Both are
//! read as bfloat16 (little-endian; `'>V2'` as big-endian), as is `'|V2'`,
//! NumPy's own spelling of a two-byte void: a two-byte opaque element is
//! taken to be bfloat16.
//!
//! [`parse`] and [`read`] hold a whole array in memory;
//! [`crate::data::npy_reader`] reads rows of a file of any size in pieces.

use std::io::{Read, Write};
use std::path::Path;

use crate::io::atomic::write_atomic;
use crate::io::half::{bf16_to_f32, f16_to_f32};
use crate::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header accepted, in bytes.
pub const MAX_HEADER: usize = 1 << 20;
/// Most dimensions accepted (NumPy's own limit).
pub const MAX_DIMS: usize = 64;

/// An n-dimensional array in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape; `[]` is a scalar holding one value.
    pub shape: Vec<usize>,
    /// `Π shape` values, row-major.
    pub data: Vec<f32>,
}

/// The element types read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary16 (`f2`).
    F16,
    /// bfloat16 (`'<V2'` or `'bfloat16'`; see the module doc).
    Bf16,
    /// IEEE binary32 (`f4`).
    F32,
    /// IEEE binary64 (`f8`), rounded to the nearest `f32`.
    F64,
    /// Unsigned bytes (`u1`).
    U8,
    /// Signed bytes (`i1`).
    I8,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// What a `.npy` header says about the data that follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The dtype string as written (`'<f4'`, `'bfloat16'`, …).
    pub descr: String,
    /// The element type.
    pub dtype: Dtype,
    /// Whether multi-byte elements are big-endian.
    pub big_endian: bool,
    /// The shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Byte offset of the data from the start of the file.
    pub data_start: usize,
    /// `Π shape · itemsize`, the exact length of the data.
    pub data_bytes: usize,
}

impl Header {
    /// Number of elements, `Π shape`.
    pub fn numel(&self) -> usize {
        self.data_bytes / self.dtype.size()
    }
}

pub(crate) fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a `.npy` file held in memory (errors name `<memory>`).
pub fn parse(bytes: &[u8]) -> Result<NpyArray> {
    parse_named(bytes, Path::new("<memory>"))
}

/// Reads the `.npy` file at `path` (the whole array, in memory).
pub fn read(path: &Path) -> Result<NpyArray> {
    let mut r = crate::data::npy_reader::NpyReader::open(path)?;
    let data = r.read_all()?;
    Ok(NpyArray {
        shape: r.header().shape.clone(),
        data,
    })
}

/// Every element type read: its code after the byte-order mark, how the
/// hint spells it, and whether `|` (no byte order) may mark it.
const DESCRS: [(&[u8], Dtype, &str, bool); 6] = [
    (b"f4", Dtype::F32, "<f4", false),
    (b"f8", Dtype::F64, "<f8", false),
    (b"f2", Dtype::F16, "<f2", false),
    (b"V2", Dtype::Bf16, "bfloat16 (<V2)", true),
    (b"u1", Dtype::U8, "|u1", true),
    (b"i1", Dtype::I8, "|i1", true),
];

/// The dtypes read, as the error for any other lists them.
fn supported_descrs() -> String {
    let names: Vec<&str> = DESCRS.iter().map(|d| d.2).collect();
    let (last, rest) = names.split_last().expect("DESCRS is not empty");
    format!("{} or {last}, '>' for big-endian", rest.join(", "))
}

/// Parses a dtype string (see the module doc for the accepted forms).
fn parse_descr(s: &str) -> std::result::Result<(Dtype, bool), String> {
    if s == "bfloat16" {
        return Ok((Dtype::Bf16, false));
    }
    // NumPy's names of the types (`np.load` takes them; `np.save` writes
    // codes), in the machine's byte order, as `=` says.
    let native = cfg!(target_endian = "big");
    let named = [
        ("float32", Dtype::F32),
        ("float64", Dtype::F64),
        ("float16", Dtype::F16),
        ("uint8", Dtype::U8),
        ("int8", Dtype::I8),
    ];
    if let Some(&(_, dtype)) = named.iter().find(|(n, _)| *n == s) {
        return Ok((dtype, native));
    }
    let b = s.as_bytes();
    let (order, rest) = match b.first() {
        Some(c @ (b'<' | b'>' | b'|' | b'=')) => (*c, &b[1..]),
        _ => return Err(format!("dtype {s:?} has no byte-order mark")),
    };
    let Some(&(_, dtype, _, bar_too)) = DESCRS.iter().find(|d| d.0 == rest) else {
        return Err(format!(
            "dtype {s:?} is not supported (use {})",
            supported_descrs()
        ));
    };
    match order {
        b'|' if !bar_too => Err(format!("dtype {s:?} needs a byte order '<' or '>'")),
        b'=' => Ok((dtype, native)),
        _ => Ok((dtype, order == b'>')),
    }
}

/// Reads and checks the header of a `.npy` file of `file_len` bytes from
/// `r`, positioned at its start; leaves `r` at the first data byte. Checks
/// that the shape's byte count does not overflow, not that the data is
/// there (the caller compares [`Header::data_bytes`] with what follows).
///
/// # Errors
/// [`Error::Npy`] for a wrong magic or version, a truncated or malformed
/// header, an unsupported dtype or Fortran order; [`Error::Io`] if reading
/// fails.
pub fn read_header(r: &mut dyn Read, file_len: u64, path: &Path) -> Result<Header> {
    let io = |e| Error::io(path, e);
    let mut pre = [0u8; 12];
    let got = file_len.min(10) as usize;
    r.read_exact(&mut pre[..got]).map_err(io)?;
    if got < 10 && pre[..got.min(6)] == MAGIC[..got.min(6)] {
        return Err(err(
            path,
            format!(
                "truncated: {got} bytes, shorter than the 10-byte .npy preamble (magic, version, header length)"
            ),
        ));
    }
    if got < 10 || &pre[..6] != MAGIC {
        let shown = &pre[..got.min(6)];
        return Err(err(
            path,
            format!("wrong magic {shown:02x?} (expected \\x93NUMPY)"),
        ));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, start) = match major {
        1 => (usize::from(u16::from_le_bytes([pre[8], pre[9]])), 10),
        2 | 3 => {
            if file_len < 12 {
                return Err(err(path, "truncated header length"));
            }
            r.read_exact(&mut pre[10..12]).map_err(io)?;
            (
                u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize,
                12,
            )
        }
        _ => {
            return Err(err(
                path,
                format!("format version {major}.{minor} is not supported (1.0, 2.0, 3.0 are)"),
            ));
        }
    };
    if hlen > MAX_HEADER {
        return Err(err(
            path,
            format!("header length {hlen} is more than the {MAX_HEADER}-byte limit"),
        ));
    }
    let follow = file_len - start as u64;
    if hlen as u64 > follow {
        return Err(err(
            path,
            format!("header length {hlen} is more than the {follow} bytes that follow"),
        ));
    }
    let mut header = vec![0u8; hlen];
    r.read_exact(&mut header).map_err(io)?;
    let header = std::str::from_utf8(&header).map_err(|_| err(path, "header is not UTF-8 text"))?;
    let (descr, fortran, shape) = parse_header(header).map_err(|e| {
        // Quote a header of up to 200 characters whole, a longer one in part.
        let shown = match header.char_indices().nth(200) {
            Some((i, _)) => format!("{:?}… ({} bytes)", &header[..i], header.len()),
            None => format!("{header:?}"),
        };
        err(path, format!("header {shown}: {e}"))
    })?;
    if fortran {
        return Err(err(
            path,
            "fortran_order: True is not supported; save with np.ascontiguousarray first",
        ));
    }
    let (dtype, big_endian) = parse_descr(&descr).map_err(|e| err(path, e))?;
    // The dimensions other than zeros must multiply without overflow too, so
    // that a row of an empty array (`(0, 2^40, 2^40)`) still has a size, and
    // at the largest item size (8 bytes), so that the array can be written
    // again as f4 whatever it was read as.
    let mut nonzero = shape.iter().filter(|&&d| d != 0);
    let fits = nonzero.try_fold(8usize, |a, &x| a.checked_mul(x));
    let numel = shape.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    let data_bytes = numel.and_then(|n| n.checked_mul(dtype.size()));
    let (Some(data_bytes), Some(_)) = (data_bytes, fits) else {
        return Err(err(
            path,
            format!("shape {shape:?} of {descr} overflows the byte count"),
        ));
    };
    Ok(Header {
        descr,
        dtype,
        big_endian,
        shape,
        data_start: start + hlen,
        data_bytes,
    })
}

/// The error for a data region of `present` bytes where the header asks for
/// another length.
pub(crate) fn length_mismatch(h: &Header, present: u64, path: &Path) -> Error {
    err(
        path,
        format!(
            "shape {:?} of {} needs {} bytes of data but {present} follow",
            h.shape, h.descr, h.data_bytes
        ),
    )
}

/// Parses `bytes`, naming `path` in errors.
///
/// # Errors
/// [`Error::Npy`] for a wrong magic or version, a truncated or malformed
/// header, an unsupported dtype, Fortran order, or a data size that does not
/// match the shape.
pub fn parse_named(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let h = read_header(&mut &bytes[..], bytes.len() as u64, path)?;
    let body = &bytes[h.data_start..];
    if h.data_bytes != body.len() {
        return Err(length_mismatch(&h, body.len() as u64, path));
    }
    let mut data = vec![0.0f32; h.numel()];
    decode(h.dtype, h.big_endian, body, &mut data);
    Ok(NpyArray {
        data,
        shape: h.shape,
    })
}

/// Widens the elements in `bytes` into `out`.
///
/// # Panics
/// If `bytes` does not hold exactly `out.len()` elements.
pub fn decode(dtype: Dtype, big_endian: bool, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        bytes.len(),
        out.len() * dtype.size(),
        "npy::decode: lengths"
    );
    let u16_at = |c: &[u8]| match big_endian {
        true => u16::from_be_bytes([c[0], c[1]]),
        false => u16::from_le_bytes([c[0], c[1]]),
    };
    match dtype {
        // Bytes are pixels, scaled into [0, 1] as IDX bytes and the Python
        // module's uint8 arrays are: one file gives one model everywhere.
        Dtype::U8 => crate::kernels::u8_to_unit(bytes, out),
        Dtype::I8 => out
            .iter_mut()
            .zip(bytes)
            .for_each(|(o, &b)| *o = f32::from(b as i8)),
        Dtype::F16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| *o = f16_to_f32(u16_at(c))),
        Dtype::Bf16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, c)| *o = bf16_to_f32(u16_at(c))),
        Dtype::F32 => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, c)| {
                let w = [c[0], c[1], c[2], c[3]];
                *o = match big_endian {
                    true => f32::from_be_bytes(w),
                    false => f32::from_le_bytes(w),
                };
            }),
        Dtype::F64 => out
            .iter_mut()
            .zip(bytes.chunks_exact(8))
            .for_each(|(o, c)| {
                let w: [u8; 8] = c.try_into().expect("chunks of 8");
                *o = match big_endian {
                    true => f64::from_be_bytes(w),
                    false => f64::from_le_bytes(w),
                } as f32;
            }),
    }
}

/// A value of the header dict.
enum Lit {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'descr': .., 'fortran_order': .., 'shape': (..), }`.
fn parse_header(h: &str) -> std::result::Result<(String, bool, Vec<usize>), String> {
    let mut t = Tok {
        s: h.as_bytes(),
        pos: 0,
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    t.expect(b'{')?;
    loop {
        if t.eat(b'}') {
            break;
        }
        let key = t.string()?;
        t.expect(b':')?;
        if t.peek_list() {
            return Err(match key.as_str() {
                "shape" => {
                    "`shape` is written as a list; NumPy writes it as a tuple, such as (4, 2)"
                        .to_owned()
                }
                "descr" => "structured dtypes are not supported (`descr` holds a list)".to_owned(),
                k => format!(
                    "`{}` holds a list, which no .npy header key takes",
                    crate::io::json::excerpt(k)
                ),
            });
        }
        if key == "descr" && t.peek(b'(') {
            return Err("subarray dtypes are not supported (`descr` holds a tuple)".to_owned());
        }
        let v = t
            .value()
            .map_err(|e| format!("`{}`: {e}", crate::io::json::excerpt(&key)))?;
        match (key.as_str(), v) {
            ("descr", Lit::Str(s)) if descr.is_none() => descr = Some(s),
            ("fortran_order", Lit::Bool(b)) if fortran.is_none() => fortran = Some(b),
            ("shape", Lit::Tuple(s)) if shape.is_none() => shape = Some(s),
            (k, _) => return Err(format!("unexpected, repeated or ill-typed key {k:?}")),
        }
        if !t.eat(b',') {
            t.expect(b'}')?;
            break;
        }
    }
    t.ws();
    if t.pos != t.s.len() {
        return Err("text after the closing '}'".to_owned());
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("needs exactly the keys 'descr', 'fortran_order' and 'shape'".to_owned()),
    }
}

struct Tok<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Tok<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.s.get(self.pos) == Some(&c);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        match self.eat(c) {
            true => Ok(()),
            false => Err(format!("expected '{}' at byte {}", c as char, self.pos)),
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.pos)),
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q || c == b'\\')
            .ok_or("unterminated string")?;
        if self.s[start + len] == b'\\' {
            return Err("escapes in header strings are not supported".to_owned());
        }
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn word(&mut self) -> &[u8] {
        self.ws();
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// Whether the next value is a list (`[`).
    fn peek_list(&mut self) -> bool {
        self.peek(b'[')
    }

    /// Whether the next byte after white space is `c`.
    fn peek(&mut self, c: u8) -> bool {
        self.ws();
        self.s.get(self.pos) == Some(&c)
    }

    /// The text from here to the next separator (`,`, `)`, `}` or white
    /// space), at most 24 bytes, for an error that quotes what it found.
    fn here(&self) -> String {
        let rest = self.s.get(self.pos..).unwrap_or_default();
        let end = rest
            .iter()
            .position(|c| matches!(c, b',' | b')' | b'}') || c.is_ascii_whitespace())
            .unwrap_or(rest.len())
            .clamp(1, 24)
            .min(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    }

    fn value(&mut self) -> std::result::Result<Lit, String> {
        self.ws();
        match self.s.get(self.pos) {
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'(') => {
                self.pos += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    if dims.len() == MAX_DIMS {
                        return Err(format!("more than {MAX_DIMS} dimensions"));
                    }
                    self.ws();
                    let found = self.here();
                    let w = self.word();
                    // Python 2 wrote longs as `3L`.
                    let digits = w.strip_suffix(b"L").unwrap_or(w);
                    let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
                    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(format!(
                            "bad dimension {found:?} (a dimension is a whole number ≥ 0)"
                        ));
                    }
                    dims.push(
                        text.parse::<usize>()
                            .map_err(|_| format!("dimension {text} is too large"))?,
                    );
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(Lit::Tuple(dims))
            }
            Some(b'[') => Err("structured dtypes are not supported".to_owned()),
            _ => {
                let found = self.here();
                match self.word() {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    _ => Err(format!("unexpected value {found:?}")),
                }
            }
        }
    }
}

/// The bytes of a version 1.0 `.npy` header for C-ordered data of dtype
/// `descr` (for example `'<f4'`, or `'<V2'` for bfloat16) and `shape`, padded
/// with spaces so that the data starts at a multiple of 64 bytes; the data
/// follows it directly.
///
/// # Panics
/// If `shape` has more than [`MAX_DIMS`] dimensions or `descr` is longer
/// than 64 bytes (the header would not fit version 1.0's length field).
pub fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    assert!(
        shape.len() <= MAX_DIMS && descr.len() <= 64,
        "npy::header_bytes: too large"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    // Pad with spaces so that magic + version + length + header is a multiple
    // of 64. With at most 64 dims of ≤ 20 digits the header stays far below
    // the 65 535 bytes that version 1.0 can describe.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.extend(std::iter::repeat_n(' ', total - 10 - header.len() - 1));
    header.push('\n');
    let mut head = MAGIC.to_vec();
    head.extend([1, 0]);
    head.extend((header.len() as u16).to_le_bytes());
    head.extend(header.as_bytes());
    head
}

/// Writes `data` with `shape` as a little-endian f32 `.npy` (version 1.0) to `w`.
///
/// # Errors
/// [`Error::Npy`] if `shape` does not hold `data.len()` values;
/// [`Error::Io`] if writing fails.
pub fn write_to(w: &mut dyn Write, shape: &[usize], data: &[f32], path: &Path) -> Result<()> {
    let numel = shape.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    if numel != Some(data.len()) || shape.len() > MAX_DIMS {
        return Err(err(
            path,
            format!("shape {shape:?} does not hold {} values", data.len()),
        ));
    }
    let head = header_bytes("<f4", shape);
    let io = |e| Error::io(path, e);
    w.write_all(&head).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for c in data.chunks(1 << 14) {
        buf.clear();
        buf.extend(c.iter().flat_map(|x| x.to_le_bytes()));
        w.write_all(&buf).map_err(io)?;
    }
    Ok(())
}

/// The `.npy` bytes of `data` with `shape` (see [`write_to`]).
///
/// # Errors
/// As [`write_to`].
pub fn to_bytes(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_to(&mut out, shape, data, Path::new("<memory>"))?;
    Ok(out)
}

/// Writes a `(rows, cols)` f32 matrix to `path` atomically.
///
/// # Errors
/// As [`write_to`]; the old file at `path` stays whole on any error.
pub fn write(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    write_atomic(path, |w| write_to(w, &[rows, cols], data, path))
}

/// Writes a vector of `data.len()` f32 values, shape `(n,)`, to `path`
/// atomically.
///
/// # Errors
/// As [`write()`].
pub fn write_vector(path: &Path, data: &[f32]) -> Result<()> {
    write_atomic(path, |w| write_to(w, &[data.len()], data, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, body: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend([1, 0]);
        v.extend((header.len() as u16).to_le_bytes());
        v.extend(header.as_bytes());
        v.extend(body);
        v
    }

    #[test]
    fn round_trips_and_aligns_to_64() {
        for shape in [vec![], vec![3], vec![2, 3], vec![1, 2, 1, 3]] {
            let data: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|i| i as f32 - 2.5)
                .collect();
            let bytes = to_bytes(&shape, &data).unwrap();
            let hlen = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
            assert_eq!((10 + hlen) % 64, 0);
            assert_eq!(parse(&bytes).unwrap(), NpyArray { shape, data });
        }
    }

    /// The error for a dtype not read lists exactly the ones that are:
    /// each spelling it shows is read, and each dtype read is shown.
    #[test]
    fn the_dtype_hint_lists_what_is_read() {
        let e = parse_descr("<c8").unwrap_err();
        let list = &e[e.find("(use ").unwrap() + 5..e.find(", '>'").unwrap()];
        let shown: Vec<&str> = list
            .split([',', ' ', '(', ')'])
            .filter(|w| !w.is_empty() && *w != "or")
            .collect();
        assert_eq!(
            shown,
            ["<f4", "<f8", "<f2", "bfloat16", "<V2", "|u1", "|i1"],
            "{e}"
        );
        for d in shown {
            assert!(parse_descr(d).is_ok(), "{d}");
        }
        for (code, dtype, _, _) in DESCRS {
            let d = format!("<{}", std::str::from_utf8(code).unwrap());
            assert_eq!(parse_descr(&d).unwrap().0, dtype);
            let byte = dtype.size() == 1;
            assert!(
                e.contains(&d[1..]) && (!byte || e.contains(&format!("|{}", &d[1..]))),
                "{e}"
            );
        }
        assert!(parse_descr("|f4").is_err());
    }

    #[test]
    fn reads_other_dtypes() {
        let cases: [(&str, Vec<u8>, f32); 15] = [
            ("<f8", 2.5f64.to_le_bytes().to_vec(), 2.5),
            (">f8", (-0.75f64).to_be_bytes().to_vec(), -0.75),
            // bfloat16 as np.save writes ml_dtypes.bfloat16, and as named.
            ("<V2", vec![0x80, 0x3f], 1.0),
            ("|V2", vec![0x40, 0xc0], -3.0),
            (">V2", vec![0x3f, 0xc0], 1.5),
            ("bfloat16", vec![0x49, 0x40], 3.140_625),
            (">f4", 1.25f32.to_be_bytes().to_vec(), 1.25),
            ("<f2", vec![0x00, 0x3c], 1.0),
            (">f2", vec![0xc0, 0x00], -2.0),
            ("|u1", vec![200], 200.0 * (1.0 / 255.0)),
            ("|i1", vec![0xff], -1.0),
            // The machine's order ('=') and NumPy's names, which np.load
            // takes too.
            ("=f4", 1.25f32.to_ne_bytes().to_vec(), 1.25),
            ("float32", (-0.5f32).to_ne_bytes().to_vec(), -0.5),
            ("float64", 2.5f64.to_ne_bytes().to_vec(), 2.5),
            ("uint8", vec![255], 1.0),
        ];
        for (descr, body, want) in cases {
            let h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}\n");
            assert_eq!(parse(&npy(&h, &body)).unwrap().data, [want], "{descr}");
        }
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L)}";
        assert_eq!(parse(&npy(h, &[0; 8])).unwrap().shape, [1, 2]);
    }

    #[test]
    fn rejects_bad_headers() {
        let cases = [
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
                4,
                "fortran_order",
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
                8,
                "not supported",
            ),
            (
                "{'descr': 'f4', 'fortran_order': False, 'shape': (1,), }",
                4,
                "byte-order",
            ),
            (
                "{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }",
                4,
                "needs a byte order",
            ),
            (
                "{'descr': '<V4', 'fortran_order': False, 'shape': (1,), }",
                4,
                "not supported",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                4,
                "needs 8 bytes",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False}",
                4,
                "exactly the keys",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'shape': (1,)}",
                4,
                "repeated",
            ),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
                4,
                "structured",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                4,
                "`shape`: bad dimension \"-1\"",
            ),
            // What was found is quoted, and the key it was found under named.
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (+20, 4)}",
                4,
                "`shape`: bad dimension \"+20\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': ((20, 4))}",
                4,
                "`shape`: bad dimension \"(20\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x)}",
                4,
                "`shape`: bad dimension \"x\"",
            ),
            (
                "{'descr': ('<f4', (4,)), 'fortran_order': False, 'shape': (1,)}",
                4,
                "subarray dtypes are not supported",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'foo': 1}",
                4,
                "`foo`: unexpected value \"1\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': None, 'shape': (1,)}",
                4,
                "`fortran_order`: unexpected value \"None\"",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
                4,
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
                4,
                "overflows",
            ),
        ];
        for (h, n, want) in cases {
            let e = parse(&npy(h, &vec![0; n])).unwrap_err().to_string();
            assert!(e.contains(want), "{h}: {e}");
        }
        assert!(
            parse(b"\x93NUMPY\x04\x00\x00\x00")
                .unwrap_err()
                .to_string()
                .contains("version 4.0")
        );
        assert!(
            parse(b"PK\x03\x04 not npy")
                .unwrap_err()
                .to_string()
                .contains("wrong magic")
        );
    }
}
