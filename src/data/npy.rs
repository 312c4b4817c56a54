//! NumPy `.npy` arrays (format versions 1.0, 2.0 and 3.0), read as `f32`.
//!
//! Layout: `\x93NUMPY`, major, minor, header length (u16 LE for 1.x, u32 LE
//! for 2.x/3.x), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }`,
//! then exactly `Π shape · itemsize` bytes. Supported dtypes: `f2`, `f4`,
//! `f8` in either byte order (`<`/`>`) and `u1`/`i1`; all become `f32`
//! (f8 rounds to nearest). `fortran_order` must be `False`. The size is
//! checked against the bytes present before anything is allocated.

use std::io::Write;
use std::path::Path;

use crate::io::atomic::write_atomic;
use crate::io::half::f16_to_f32;
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

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Parses a `.npy` file held in memory (errors name `<memory>`).
pub fn parse(bytes: &[u8]) -> Result<NpyArray> {
    parse_named(bytes, Path::new("<memory>"))
}

/// Reads the `.npy` file at `path`.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_named(&bytes, path)
}

/// Element kind: (bytes, big-endian, kind char).
struct Descr {
    size: usize,
    big: bool,
    kind: u8,
}

fn parse_descr(s: &str) -> std::result::Result<Descr, String> {
    let b = s.as_bytes();
    let (order, rest) = match b.first() {
        Some(c @ (b'<' | b'>' | b'|')) => (*c, &b[1..]),
        _ => return Err(format!("dtype {s:?} has no byte-order mark")),
    };
    let d = match rest {
        b"f2" => Descr {
            size: 2,
            big: false,
            kind: b'f',
        },
        b"f4" => Descr {
            size: 4,
            big: false,
            kind: b'f',
        },
        b"f8" => Descr {
            size: 8,
            big: false,
            kind: b'f',
        },
        b"u1" => Descr {
            size: 1,
            big: false,
            kind: b'u',
        },
        b"i1" => Descr {
            size: 1,
            big: false,
            kind: b'i',
        },
        _ => {
            return Err(format!(
                "dtype {s:?} is not supported (use <f4, <f8, <f2 or |u1)"
            ));
        }
    };
    match (order, d.size) {
        (b'|', 1) | (b'<' | b'>', _) => Ok(Descr {
            big: order == b'>',
            ..d
        }),
        _ => Err(format!("dtype {s:?} needs a byte order '<' or '>'")),
    }
}

/// Parses `bytes`, naming `path` in errors.
///
/// # Errors
/// [`Error::Npy`] for a wrong magic or version, a truncated or malformed
/// header, an unsupported dtype, Fortran order, or a data size that does not
/// match the shape.
pub fn parse_named(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        let shown = &bytes[..bytes.len().min(6)];
        return Err(err(
            path,
            format!("wrong magic {shown:02x?} (expected \\x93NUMPY)"),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            let Some(l) = bytes.get(8..12) else {
                return Err(err(path, "truncated header length"));
            };
            (
                u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize,
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
    let Some(header) = bytes.get(start..start + hlen) else {
        return Err(err(
            path,
            format!(
                "header length {hlen} is more than the {} bytes that follow",
                bytes.len() - start
            ),
        ));
    };
    let header = std::str::from_utf8(header).map_err(|_| err(path, "header is not UTF-8 text"))?;
    let (descr, fortran, shape) =
        parse_header(header).map_err(|e| err(path, format!("header {header:?}: {e}")))?;
    if fortran {
        return Err(err(
            path,
            "fortran_order: True is not supported; save with np.ascontiguousarray first",
        ));
    }
    let d = parse_descr(&descr).map_err(|e| err(path, e))?;
    let body = &bytes[start + hlen..];
    let numel = shape.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    let nbytes = numel.and_then(|n| n.checked_mul(d.size));
    let Some(nbytes) = nbytes else {
        return Err(err(
            path,
            format!("shape {shape:?} of {descr} overflows the byte count"),
        ));
    };
    if nbytes != body.len() {
        return Err(err(
            path,
            format!(
                "shape {shape:?} of {descr} needs {nbytes} bytes of data but {} follow",
                body.len()
            ),
        ));
    }
    Ok(NpyArray {
        data: convert(&d, body),
        shape,
    })
}

fn convert(d: &Descr, body: &[u8]) -> Vec<f32> {
    let fix = |c: &[u8]| -> Vec<u8> {
        let mut v = c.to_vec();
        if d.big {
            v.reverse();
        }
        v
    };
    match (d.kind, d.size) {
        (b'u', _) => body.iter().map(|&b| f32::from(b)).collect(),
        (b'i', _) => body.iter().map(|&b| f32::from(b as i8)).collect(),
        (_, 2) => body
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes(fix(c).try_into().expect("2"))))
            .collect(),
        (_, 4) => body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(fix(c).try_into().expect("4")))
            .collect(),
        _ => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(fix(c).try_into().expect("8")) as f32)
            .collect(),
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
        let v = t.value()?;
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
                    let w = self.word();
                    // Python 2 wrote longs as `3L`.
                    let digits = w.strip_suffix(b"L").unwrap_or(w);
                    let text = std::str::from_utf8(digits).map_err(|e| e.to_string())?;
                    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
                        return Err(format!("bad dimension {:?}", String::from_utf8_lossy(w)));
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
            _ => match self.word() {
                b"True" => Ok(Lit::Bool(true)),
                b"False" => Ok(Lit::Bool(false)),
                w => Err(format!("unexpected value {:?}", String::from_utf8_lossy(w))),
            },
        }
    }
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
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
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

    #[test]
    fn reads_other_dtypes() {
        let cases: [(&str, Vec<u8>, f32); 6] = [
            ("<f8", 2.5f64.to_le_bytes().to_vec(), 2.5),
            (">f4", 1.25f32.to_be_bytes().to_vec(), 1.25),
            ("<f2", vec![0x00, 0x3c], 1.0),
            (">f2", vec![0xc0, 0x00], -2.0),
            ("|u1", vec![200], 200.0),
            ("|i1", vec![0xff], -1.0),
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
                "bad dimension",
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
