//! The safetensors format, read and written without the `safetensors` crate.
//!
//! Layout: `N` (u64, little-endian), then `N` bytes of UTF-8 JSON, then the
//! byte buffer. The JSON maps each tensor name to
//! `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}` (offsets
//! relative to the buffer start) plus an optional `"__metadata__"` object of
//! string → string. The tensors must tile the buffer exactly: sorted by
//! `begin`, the first starts at 0, each starts where the previous ended, the
//! last ends at the end of the file, and `end − begin = numel · size(dtype)`.
//! The header may be padded with spaces; the writer pads it to a multiple of
//! 8 bytes and orders tensors by name, as the reference implementation does
//! for tensors of one dtype. Values are little-endian.
//!
//! Reading converts F32, F64, F16 and BF16 to `f32`; it does not reject NaN
//! or Inf (see [`SafeTensors::check_finite`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::io::atomic::write_atomic;
use crate::io::half::{bf16_to_f32, f16_to_f32};
use crate::io::json::{self, Value};
use crate::{Error, Result};

/// Largest header accepted, in bytes (the reference implementation's cap).
pub const MAX_HEADER: u64 = 100_000_000;

/// The largest safetensors file read (64 GiB: 16 G f32 values).
pub const MAX_FILE: u64 = 1 << 36;

/// Reads the bytes of the safetensors file at `path` (a regular file of at
/// most [`MAX_FILE`] bytes).
///
/// # Errors
/// [`Error::Io`] naming `path` (see [`crate::io::read::read_capped`]).
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    crate::io::read::read_capped(path, MAX_FILE, "safetensors file")
}

/// The element type a tensor was stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary32.
    F32,
    /// IEEE binary64 (read as the nearest f32).
    F64,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl Dtype {
    fn parse(s: &str) -> std::result::Result<Dtype, String> {
        Ok(match s {
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "BOOL" | "U8" | "I8" | "I16" | "U16" | "I32" | "U32" | "I64" | "U64" | "F8_E4M3"
            | "F8_E5M2" | "F8_E8M0" | "F4" | "F6_E2M3" | "F6_E3M2" | "C64" => {
                return Err(format!(
                    "dtype {s} is not supported (only F32, F64, F16 and BF16 are)"
                ));
            }
            _ => return Err(format!("unknown dtype {s:?}")),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 => 8,
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    /// The name used in the header ("F32", …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
        }
    }
}

/// One tensor read from a file, widened to `f32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Its name (e.g. `encoder.0.weight`).
    pub name: String,
    /// Its shape; `data.len()` is the product (1 for `[]`).
    pub shape: Vec<usize>,
    /// How it was stored.
    pub dtype: Dtype,
    /// Row-major values.
    pub data: Vec<f32>,
    /// The first F64 value that is finite but beyond f32's range (its
    /// index and value), which `data` holds as infinite.
    pub beyond_f32: Option<(usize, f64)>,
}

impl Tensor {
    /// The index of the first value that is not a finite `f32`, and what
    /// it is: `a non-finite value (inf)`, or for an F64 value beyond f32's
    /// range the value itself.
    pub fn non_finite(&self) -> Option<(usize, String)> {
        let i = self.data.iter().position(|v| !v.is_finite())?;
        Some(match self.beyond_f32 {
            Some((j, v)) if j == i => (
                i,
                format!(
                    "the F64 value {}, beyond f32's range (±3.4e38),",
                    crate::io::json::short_number(v)
                ),
            ),
            _ => (i, format!("a non-finite value ({})", self.data[i])),
        })
    }
}

/// The contents of a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct SafeTensors {
    /// Tensors in the order of their data in the file.
    pub tensors: Vec<Tensor>,
    /// The `__metadata__` pairs, in header order.
    pub metadata: Vec<(String, String)>,
}

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Safetensors {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl SafeTensors {
    /// Parses a file held in memory (errors name `<memory>`).
    pub fn parse(bytes: &[u8]) -> Result<SafeTensors> {
        Self::parse_named(bytes, Path::new("<memory>"))
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<SafeTensors> {
        Self::parse_named(&read_bytes(path)?, path)
    }

    /// Parses `bytes`, naming `path` in errors.
    ///
    /// # Errors
    /// [`Error::Safetensors`] for a truncated or oversized header, bad JSON,
    /// an unknown or unsupported dtype, a shape whose size overflows, or
    /// offsets that do not tile the buffer exactly.
    pub fn parse_named(bytes: &[u8], path: &Path) -> Result<SafeTensors> {
        let Some(len_bytes) = bytes.get(..8) else {
            return Err(err(
                path,
                format!(
                    "{} bytes is too short for the 8-byte header length",
                    bytes.len()
                ),
            ));
        };
        let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        if n > MAX_HEADER {
            return Err(err(
                path,
                format!("header length {n} is more than the {MAX_HEADER}-byte limit"),
            ));
        }
        let avail = bytes.len() as u64 - 8;
        if n > avail {
            return Err(err(
                path,
                format!("header length {n} is more than the {avail} bytes that follow"),
            ));
        }
        let (header, buffer) = bytes[8..].split_at(n as usize);
        if header.first() != Some(&b'{') {
            return Err(err(path, "header does not start with '{'"));
        }
        let root =
            json::parse_detailed(header).map_err(|e| err(path, format!("header JSON: {e}")))?;
        let Value::Object(fields) = root else {
            return Err(err(path, "header is not a JSON object"));
        };
        let mut metadata = Vec::new();
        // (begin, end, name, dtype, shape)
        let mut infos: Vec<(usize, usize, String, Dtype, Vec<usize>)> = Vec::new();
        for (name, v) in fields {
            if name == "__metadata__" {
                metadata = parse_metadata(&v).map_err(|e| err(path, e))?;
                continue;
            }
            let info = parse_info(&v).map_err(|e| err(path, format!("tensor {name:?}: {e}")))?;
            infos.push((info.0, info.1, name, info.2, info.3));
        }
        infos.sort_by_key(|t| (t.0, t.1));
        let mut at = 0usize;
        for (begin, end, name, ..) in &infos {
            if *begin != at {
                let what = if *begin < at {
                    "overlaps the previous tensor"
                } else {
                    "leaves a hole before it"
                };
                return Err(err(
                    path,
                    format!(
                        "tensor {name:?} starts at {begin} but the previous data ends at {at}: it {what}"
                    ),
                ));
            }
            at = *end;
        }
        if at != buffer.len() {
            return Err(err(
                path,
                format!(
                    "tensors cover {at} bytes of data but {} bytes follow the header",
                    buffer.len()
                ),
            ));
        }
        let tensors = infos
            .into_iter()
            .map(|(begin, end, name, dtype, shape)| {
                let raw = &buffer[begin..end];
                Ok(Tensor {
                    data: decode(dtype, raw, path, &name)?,
                    beyond_f32: match dtype {
                        Dtype::F64 => raw
                            .chunks_exact(8)
                            .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                            .enumerate()
                            .find(|(_, v)| v.is_finite() && !(*v as f32).is_finite()),
                        _ => None,
                    },
                    name,
                    shape,
                    dtype,
                })
            })
            .collect::<Result<_>>()?;
        Ok(SafeTensors { tensors, metadata })
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The metadata value under `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Checks that no tensor holds NaN or ±Inf.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the first tensor and index that does.
    pub fn check_finite(&self) -> Result<()> {
        self.tensors
            .iter()
            .try_for_each(|t| crate::data::check_finite(&t.name, &t.data))
    }
}

fn parse_metadata(v: &Value) -> std::result::Result<Vec<(String, String)>, String> {
    let fields = v.as_object().ok_or("__metadata__ is not an object")?;
    fields
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("__metadata__.{k} is {}, not a string", v.kind())),
        })
        .collect()
}

/// Validates one tensor entry: (begin, end, dtype, shape).
fn parse_info(v: &Value) -> std::result::Result<(usize, usize, Dtype, Vec<usize>), String> {
    let fields = v.as_object().ok_or("entry is not an object")?;
    if let Some((k, _)) = fields
        .iter()
        .find(|(k, _)| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
    {
        return Err(format!("unknown field {k:?}"));
    }
    let dtype = v
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or("dtype missing or not a string")?;
    let dtype = Dtype::parse(dtype)?;
    let shape = usize_list(v.get("shape"), "shape")?;
    let offsets = usize_list(v.get("data_offsets"), "data_offsets")?;
    let &[begin, end] = offsets.as_slice() else {
        return Err(format!("data_offsets has {} numbers, not 2", offsets.len()));
    };
    if begin > end {
        return Err(format!("data_offsets [{begin}, {end}] run backwards"));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} × {} bytes overflows", dtype.size()))?;
    if end - begin != bytes {
        return Err(format!(
            "shape {shape:?} of {} needs {bytes} bytes but data_offsets [{begin}, {end}] span {}",
            dtype.name(),
            end - begin
        ));
    }
    Ok((begin, end, dtype, shape))
}

fn usize_list(v: Option<&Value>, what: &str) -> std::result::Result<Vec<usize>, String> {
    let items = v
        .and_then(Value::as_array)
        .ok_or(format!("{what} missing or not an array"))?;
    items
        .iter()
        .map(|x| {
            x.as_usize().ok_or_else(|| match x.as_f64() {
                // A JSON number holds integers exactly up to 2^53.
                Some(n) if n.fract() == 0.0 && n >= crate::io::json::MAX_EXACT_INT => format!(
                    "{what} holds {}, too large: at most 2^53 − 1 (a JSON number is exact only that far)",
                    crate::io::json::short_number(n)
                ),
                Some(n) => format!(
                    "{what} holds the number {}, not a non-negative integer",
                    crate::io::json::short_number(n)
                ),
                None => format!("{what} holds {}, not a non-negative integer", x.kind()),
            })
        })
        .collect()
}

/// The values of a tensor's bytes `raw`, in a buffer reserved fallibly (a
/// refused one is an error naming the tensor and `path`).
fn decode(dtype: Dtype, raw: &[u8], path: &Path, name: &str) -> Result<Vec<f32>> {
    fn values<const N: usize>(raw: &[u8], what: &str, f: fn([u8; N]) -> f32) -> Result<Vec<f32>> {
        let mut out = crate::memory::try_with_capacity(what, raw.len() / N)?;
        out.extend(
            raw.chunks_exact(N)
                .map(|c| f(c.try_into().expect("N bytes"))),
        );
        Ok(out)
    }
    let what = format!("reading tensor {name:?} of {}", path.display());
    match dtype {
        Dtype::F32 => values(raw, &what, f32::from_le_bytes),
        Dtype::F64 => values(raw, &what, |c| f64::from_le_bytes(c) as f32),
        Dtype::F16 => values(raw, &what, |c| f16_to_f32(u16::from_le_bytes(c))),
        Dtype::BF16 => values(raw, &what, |c| bf16_to_f32(u16::from_le_bytes(c))),
    }
}

/// A tensor to write: (name, shape, row-major data).
pub type TensorRef<'a> = (&'a str, &'a [usize], &'a [f32]);

/// Builds the padded header for F32 tensors sorted by name, checking shapes.
fn header(
    tensors: &[TensorRef],
    metadata: &[(&str, &str)],
    path: &Path,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| tensors[a].0.cmp(tensors[b].0));
    // The reader refuses a key given twice, so the writer does too.
    let mut keys: Vec<&str> = metadata.iter().map(|&(k, _)| k).collect();
    keys.sort_unstable();
    if let Some(k) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(err(path, format!("metadata key {:?} is given twice", k[0])));
    }
    let mut fields = Vec::with_capacity(tensors.len() + 1);
    if !metadata.is_empty() {
        let meta = metadata
            .iter()
            .map(|&(k, v)| (k.to_owned(), Value::from(v)))
            .collect();
        fields.push(("__metadata__".to_owned(), Value::Object(meta)));
    }
    let mut at = 0usize;
    for (i, &t) in order.iter().enumerate() {
        let (name, shape, data) = tensors[t];
        if name == "__metadata__" || (i > 0 && tensors[order[i - 1]].0 == name) {
            return Err(err(
                path,
                format!("tensor name {name:?} is reserved or used twice"),
            ));
        }
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(err(
                path,
                format!(
                    "tensor {name:?}: shape {shape:?} does not hold {} values",
                    data.len()
                ),
            ));
        }
        let end = at + 4 * data.len();
        let shape_v = shape.iter().map(|&d| Value::from(d)).collect::<Vec<_>>();
        fields.push((
            name.to_owned(),
            Value::Object(vec![
                ("dtype".to_owned(), "F32".into()),
                ("shape".to_owned(), Value::Array(shape_v)),
                (
                    "data_offsets".to_owned(),
                    Value::Array(vec![at.into(), end.into()]),
                ),
            ]),
        ));
        at = end;
    }
    let mut text = Value::Object(fields).to_json()?.into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    Ok((text, order))
}

/// Writes the safetensors bytes of F32 `tensors` (sorted by name) and
/// `metadata` to `w`.
///
/// # Errors
/// [`Error::Safetensors`] if a shape does not match its data or a name is
/// repeated or `__metadata__`; [`Error::Io`] if writing fails.
pub fn write_to(
    w: &mut dyn Write,
    tensors: &[TensorRef],
    metadata: &[(&str, &str)],
    path: &Path,
) -> Result<()> {
    let (head, order) = header(tensors, metadata, path)?;
    write_parts(w, &head, &order, tensors, path)
}

/// Writes a file of the padded header `head` and the data of `tensors` in
/// `order` (as [`header`] returns them) to `w`.
fn write_parts(
    w: &mut dyn Write,
    head: &[u8],
    order: &[usize],
    tensors: &[TensorRef],
    path: &Path,
) -> Result<()> {
    let io = |e| Error::io(path, e);
    w.write_all(&(head.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(head).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for &t in order {
        for chunk in tensors[t].2.chunks(1 << 14) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            w.write_all(&buf).map_err(io)?;
        }
    }
    Ok(())
}

/// The safetensors bytes of `tensors` and `metadata`, in memory (a buffer
/// of the file's exact size, reserved fallibly).
///
/// # Errors
/// As [`write_to`]; [`Error::Value`] when the system refuses the buffer
/// ([`crate::memory::try_with_capacity`]).
pub fn to_bytes(tensors: &[TensorRef], metadata: &[(&str, &str)]) -> Result<Vec<u8>> {
    let path = PathBuf::from("<memory>");
    let (head, order) = header(tensors, metadata, &path)?;
    let data = tensors
        .iter()
        .fold(0usize, |n, t| n.saturating_add(t.2.len()))
        .saturating_mul(4);
    let len = data.saturating_add(8 + head.len());
    let mut out = crate::memory::try_with_capacity("a safetensors file", len)?;
    write_parts(&mut out, &head, &order, tensors, &path)?;
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

/// Writes `tensors` and `metadata` to `path` atomically (see
/// [`crate::io::atomic`]): the old file stays whole if anything fails.
///
/// # Errors
/// As [`write_to`].
pub fn write(path: &Path, tensors: &[TensorRef], metadata: &[(&str, &str)]) -> Result<()> {
    write_atomic(path, |w| write_to(w, tensors, metadata, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    /// An offset or dimension past 2^53 says it is too large (it was "a
    /// number, not a non-negative integer"); a fraction says what it is.
    #[test]
    fn huge_and_fractional_numbers_are_named() {
        for (field, want) in [
            (
                r#""shape": [1], "data_offsets": [0, 18446744073709551615]"#,
                "too large",
            ),
            (
                r#""shape": [9223372036854775808], "data_offsets": [0, 4]"#,
                "too large",
            ),
            (
                r#""shape": [1.5], "data_offsets": [0, 4]"#,
                "the number 1.5",
            ),
        ] {
            let header = format!(r#"{{"w": {{"dtype": "F32", {field}}}}}"#);
            let e = SafeTensors::parse(&file(&header, &[0; 4]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{field}: {e}");
        }
    }

    #[test]
    fn write_then_read_round_trips() {
        let w = [1.0f32, -2.0, 3.5, f32::NAN, 0.0, 1e-30];
        let b = [0.25f32, 0.5];
        let tensors: [TensorRef; 3] = [
            ("encoder.weight", &[3, 2], &w),
            ("a.bias", &[2], &b),
            ("scalar", &[], &[7.0]),
        ];
        let bytes = to_bytes(&tensors, &[("format", "pt")]).unwrap();
        // The same bytes as a file written with them.
        let mut streamed = Vec::new();
        write_to(&mut streamed, &tensors, &[("format", "pt")], Path::new("f")).unwrap();
        assert_eq!(bytes, streamed);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(n % 8, 0, "header padded to a multiple of 8 bytes");
        assert_eq!(bytes.len() as u64, 8 + n + 4 * 9);
        let st = SafeTensors::parse(&bytes).unwrap();
        let names: Vec<_> = st.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a.bias", "encoder.weight", "scalar"]);
        let got = &st.get("encoder.weight").unwrap().data;
        assert!(got.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(st.get("scalar").unwrap().shape, Vec::<usize>::new());
        assert_eq!(st.meta("format"), Some("pt"));
        assert!(
            st.check_finite()
                .unwrap_err()
                .to_string()
                .contains("encoder.weight")
        );
    }

    #[test]
    fn reads_other_float_dtypes() {
        let mut data = Vec::new();
        data.extend(1.5f64.to_le_bytes());
        data.extend(0x3c00u16.to_le_bytes()); // f16 1.0
        data.extend(0xc040u16.to_le_bytes()); // bf16 -3.0
        let h = r#"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[10,12]}}  "#;
        let st = SafeTensors::parse(&file(h, &data)).unwrap();
        let vals: Vec<f32> = st.tensors.iter().map(|t| t.data[0]).collect();
        assert_eq!(vals, [1.5, 1.0, -3.0]);
    }

    /// An F64 value beyond f32's range is named as that value, not as the
    /// infinity it narrows to; a stored infinity is named as one.
    #[test]
    fn an_f64_value_beyond_f32_is_named_as_itself() {
        let mut data = Vec::new();
        for v in [1.5f64, 1e300, f64::INFINITY, -2e39] {
            data.extend(v.to_le_bytes());
        }
        data.extend(f64::INFINITY.to_le_bytes());
        let h = r#"{"a":{"dtype":"F64","shape":[4],"data_offsets":[0,32]},"b":{"dtype":"F64","shape":[1],"data_offsets":[32,40]}}  "#;
        let st = SafeTensors::parse(&file(h, &data)).unwrap();
        let (i, what) = st.get("a").unwrap().non_finite().unwrap();
        assert_eq!(i, 1);
        assert!(
            what.contains("1e300") && what.contains("beyond f32's range"),
            "{what}"
        );
        let (i, what) = st.get("b").unwrap().non_finite().unwrap();
        assert_eq!((i, what.as_str()), (0, "a non-finite value (inf)"));
    }

    #[test]
    fn rejects_bad_layouts() {
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                12,
                "overlaps",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                8,
                "hole",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                8,
                "cover 4 bytes",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
                "needs 12 bytes",
            ),
            (
                r#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                8,
                "not supported",
            ),
            (
                r#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,8]}}"#,
                8,
                "unknown dtype",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                8,
                "overflows",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#,
                4,
                "unknown field",
            ),
            (r#"{"__metadata__":{"k":1}}"#, 0, "not a string"),
            (r#"{"a":1,}"#, 0, "header JSON"),
            (r#"[1]"#, 0, "start with"),
        ];
        for (h, n, want) in cases {
            let e = SafeTensors::parse(&file(h, &vec![0; n]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{h}: {e}");
        }
    }
}
