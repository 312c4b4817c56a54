//! A small, strict JSON (RFC 8259) value, parser and writer.
//!
//! The parser accepts exactly the RFC grammar: no comments, no trailing
//! commas, no leading zeros, no control characters inside strings, no lone
//! UTF-16 surrogates in `\u` escapes, no duplicate keys in an object. Numbers
//! are read as `f64` (correctly rounded) and must be finite. Nesting is capped
//! at [`MAX_DEPTH`] and input size at [`MAX_INPUT`], so a hostile document
//! costs at most a constant times its own size in memory.
//!
//! The writer prints every finite `f64` so that parsing it back gives the same
//! bits: integers below 2⁵³ as integers, everything else with Rust's shortest
//! round-trip formatting. Non-finite numbers cannot be written.
//!
//! Why the engine has its own parser instead of serde_json: model configs,
//! safetensors headers and checkpoint metadata are read by the bare engine,
//! whose dependencies stay at five (rayon, matrixmultiply, rand, rand_distr,
//! byteorder) so that it embeds anywhere; and every parser of outside bytes
//! is fuzzed with a memory cap (`fuzz/`), which this one, at a few hundred
//! lines with explicit size and depth limits, is built for.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Maximum nesting depth of arrays and objects.
pub const MAX_DEPTH: usize = 64;
/// Maximum document size in bytes (100 MB, the safetensors header cap).
pub const MAX_INPUT: usize = 100_000_000;

/// A JSON value. Objects keep their keys in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A finite number.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, in document order, keys unique.
    Object(Vec<(String, Value)>),
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Number(v)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Number(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

fn memory() -> PathBuf {
    PathBuf::from("<memory>")
}

/// Parses a JSON document held in memory (errors name `<memory>`).
pub fn parse(bytes: &[u8]) -> Result<Value> {
    parse_named(bytes, &memory())
}

/// Parses a JSON document; errors name `path` and give line and column.
pub fn parse_named(bytes: &[u8], path: &Path) -> Result<Value> {
    parse_detailed(bytes).map_err(|reason| Error::Json {
        path: path.to_owned(),
        reason,
    })
}

/// Reads and parses the JSON file at `path` (a regular file of at most
/// [`MAX_INPUT`] bytes).
///
/// # Errors
/// [`Error::Io`] naming `path` for a missing, special or oversized file;
/// [`Error::Json`] for bad JSON.
pub fn read(path: &Path) -> Result<Value> {
    let bytes = crate::io::read::read_capped(path, MAX_INPUT as u64, "JSON document")?;
    parse_named(&bytes, path)
}

/// Parses and returns a bare reason string ("line 3, column 7: expected ':'"),
/// for formats that embed JSON and report it under their own error variant.
pub(crate) fn parse_detailed(bytes: &[u8]) -> std::result::Result<Value, String> {
    if bytes.len() > MAX_INPUT {
        return Err(format!(
            "{} bytes is more than the {MAX_INPUT}-byte limit",
            bytes.len()
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, col) = line_col(bytes, e.valid_up_to());
            return Err(format!("line {line}, column {col}: invalid UTF-8"));
        }
    };
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = p
        .ws_value_ws(0)
        .and_then(|v| match p.pos < p.s.len() {
            true => Err("unexpected data after the JSON value".to_owned()),
            false => Ok(v),
        })
        .map_err(|msg| {
            let (line, col) = line_col(p.s, p.pos);
            format!("line {line}, column {col}: {msg}")
        })?;
    Ok(v)
}

fn line_col(s: &[u8], pos: usize) -> (usize, usize) {
    let before = &s[..pos.min(s.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
    (line, col)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> PResult<()> {
        match self.peek() {
            Some(c) if c == b => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(format!("expected '{}', found {}", b as char, show(c))),
            None => Err(format!("expected '{}', found end of input", b as char)),
        }
    }

    fn ws_value_ws(&mut self, depth: usize) -> PResult<Value> {
        self.skip_ws();
        let v = self.value(depth)?;
        self.skip_ws();
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> PResult<Value> {
        match self.peek() {
            None => Err("expected a value, found end of input".to_owned()),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(c) => Err(format!("expected a value, found {}", show(c))),
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> PResult<Value> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(format!("invalid literal (expected `{word}`)"))
        }
    }

    fn check_depth(depth: usize) -> PResult<()> {
        match depth > MAX_DEPTH {
            true => Err(format!("nesting deeper than {MAX_DEPTH} levels")),
            false => Ok(()),
        }
    }

    fn array(&mut self, depth: usize) -> PResult<Value> {
        Self::check_depth(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.ws_value_ws(depth)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                Some(c) => return Err(format!("expected ',' or ']', found {}", show(c))),
                None => return Err("unterminated array".to_owned()),
            }
        }
    }

    fn object(&mut self, depth: usize) -> PResult<Value> {
        Self::check_depth(depth)?;
        self.pos += 1;
        let mut fields: Vec<(String, Value)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err("expected a string key".to_owned());
            }
            let key_pos = self.pos;
            let key = self.string()?;
            if !seen.insert(key.clone()) {
                self.pos = key_pos;
                return Err(format!("duplicate key {key:?}"));
            }
            self.skip_ws();
            self.expect(b':')?;
            let v = self.ws_value_ws(depth)?;
            fields.push((key, v));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(fields));
                }
                Some(c) => return Err(format!("expected ',' or '}}', found {}", show(c))),
                None => return Err("unterminated object".to_owned()),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> PResult<f64> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err("leading zeros are not allowed in numbers".to_owned());
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err("expected a digit".to_owned()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err("expected a digit after '.'".to_owned());
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err("expected a digit in the exponent".to_owned());
            }
        }
        // The grammar above admits only ASCII, so this slice is valid UTF-8.
        let text = std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
        let v: f64 = text
            .parse()
            .map_err(|e| format!("bad number {}: {e}", excerpt(text)))?;
        if !v.is_finite() {
            self.pos = start;
            return Err(format!(
                "number {} ({} characters) is out of the f64 range",
                excerpt(text),
                text.len()
            ));
        }
        Ok(v)
    }

    fn hex4(&mut self) -> PResult<u32> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or("truncated \\u escape")?;
        let mut v = 0u32;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or("bad hex digit in \\u escape")?;
            v = v * 16 + d;
        }
        self.pos += 4;
        Ok(v)
    }

    fn string(&mut self) -> PResult<String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            // Copy the run of plain characters at once.
            let run_start = self.pos;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Splitting only at ASCII bytes keeps the run valid UTF-8.
            out.push_str(
                std::str::from_utf8(&self.s[run_start..self.pos]).map_err(|e| e.to_string())?,
            );
            match self.peek() {
                None => return Err("unterminated string".to_owned()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let esc = self.peek().ok_or("unterminated escape")?;
                    self.pos += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        c => return Err(format!("invalid escape '\\{}'", c as char)),
                    }
                }
                Some(c) => {
                    return Err(format!(
                        "control character 0x{c:02x} inside a string must be escaped"
                    ));
                }
            }
        }
    }

    /// `\uXXXX`, or a surrogate pair `\uD8xx\uDCxx` (the leading `\u` is consumed).
    fn unicode_escape(&mut self) -> PResult<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.s[self.pos..].starts_with(b"\\u") {
                    return Err("high surrogate not followed by a low surrogate".to_owned());
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err("high surrogate not followed by a low surrogate".to_owned());
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err("lone low surrogate in \\u escape".to_owned()),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| "invalid code point".to_owned())
    }
}

fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("'{}'", c as char)
    } else {
        format!("byte 0x{c:02x}")
    }
}

impl Value {
    /// The value under `key` if `self` is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(v) => Some(*v),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(v) => Some(v),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }

    /// The fields in document order, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(v) => Some(v),
            _ => None,
        }
    }

    /// The number as a `usize`, if it is a non-negative integer below 2⁵³.
    pub fn as_usize(&self) -> Option<usize> {
        let v = self.as_f64()?;
        let exact = v >= 0.0 && v.fract() == 0.0 && v < MAX_EXACT_INT;
        exact
            .then_some(v as u64)
            .and_then(|u| usize::try_from(u).ok())
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// The value at a path such as `layers[2].activation`, or `None` if any
    /// step is missing. Keys are separated by `.`, array indices are `[i]`.
    ///
    /// # Errors
    /// [`Error::Config`] if the path itself is malformed.
    pub fn lookup(&self, path: &str) -> Result<Option<&Value>> {
        let mut cur = self;
        let mut rest = path;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| Error::config(path, "unclosed '[' in the field path"))?;
                let i: usize = r[..end]
                    .parse()
                    .map_err(|_| Error::config(path, "bad index in the field path"))?;
                match cur.as_array().and_then(|a| a.get(i)) {
                    Some(v) => cur = v,
                    None => return Ok(None),
                }
                rest = &r[end + 1..];
            } else {
                let r = rest.strip_prefix('.').unwrap_or(rest);
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(Error::config(path, "empty key in the field path"));
                }
                match cur.get(&r[..end]) {
                    Some(v) => cur = v,
                    None => return Ok(None),
                }
                rest = &r[end..];
            }
        }
        Ok(Some(cur))
    }

    /// The value at `path` (see [`Value::lookup`]); missing is an error.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing.
    pub fn at(&self, path: &str) -> Result<&Value> {
        self.lookup(path)?
            .ok_or_else(|| Error::config(path, "required field is missing"))
    }

    fn typed<'a, T>(
        &'a self,
        path: &str,
        want: &str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<T> {
        let v = self.at(path)?;
        f(v).ok_or_else(|| Error::config(path, format!("expected {want}, found {}", describe(v))))
    }

    /// The number at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not a number.
    pub fn f64_at(&self, path: &str) -> Result<f64> {
        self.typed(path, "a number", Value::as_f64)
    }

    /// The non-negative integer at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not such an integer.
    pub fn usize_at(&self, path: &str) -> Result<usize> {
        let v = self.at(path)?;
        // The largest integer read exactly: 2⁵³ − 1, or usize::MAX where
        // that is less (a 32-bit machine).
        let most = (MAX_EXACT_INT - 1.0).min(usize::MAX as f64);
        if let Some(x) = v.as_f64()
            && x > most
            && x.fract() == 0.0
        {
            let why = match most < MAX_EXACT_INT - 1.0 {
                true => "the largest size this machine can hold",
                false => "2^53 − 1",
            };
            return Err(Error::config(
                path,
                format!(
                    "the integer {} is too large: at most {why} = {most}",
                    short_number(x)
                ),
            ));
        }
        self.typed(path, "a non-negative integer", Value::as_usize)
    }

    /// The boolean at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not a boolean.
    pub fn bool_at(&self, path: &str) -> Result<bool> {
        self.typed(path, "a boolean", Value::as_bool)
    }

    /// The string at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not a string.
    pub fn str_at(&self, path: &str) -> Result<&str> {
        self.typed(path, "a string", Value::as_str)
    }

    /// The array at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not an array.
    pub fn array_at(&self, path: &str) -> Result<&[Value]> {
        self.typed(path, "an array", Value::as_array)
    }

    /// The object at `path`.
    ///
    /// # Errors
    /// [`Error::Config`] naming `path` if it is missing or not an object.
    pub fn object_at(&self, path: &str) -> Result<&[(String, Value)]> {
        self.typed(path, "an object", Value::as_object)
    }

    /// Compact JSON text (no whitespace).
    ///
    /// # Errors
    /// [`Error::Json`] if a number is NaN or infinite.
    pub fn to_json(&self) -> Result<String> {
        let mut out = String::new();
        write_value(&mut out, self, None, 0)?;
        Ok(out)
    }

    /// Indented JSON text (two spaces per level, trailing newline).
    ///
    /// # Errors
    /// [`Error::Json`] if a number is NaN or infinite.
    pub fn to_json_pretty(&self) -> Result<String> {
        let mut out = String::new();
        write_value(&mut out, self, Some(2), 0)?;
        out.push('\n');
        Ok(out)
    }
}

/// 2⁵³: integers from here on are not all exact in a JSON number (an f64).
pub const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// `x` for a message: as Rust writes it when that is short, else in
/// scientific notation (`1e300`, not three hundred and one digits).
pub fn short_number(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{x:e}")
    }
}

/// At most the first 40 characters of `text` (then `…`), for quoting
/// outside text in a message.
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(x) => format!("the number {}", short_number(*x)),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::Bool(b) => format!("{b}"),
        _ => v.kind().to_owned(),
    }
}

/// Writes `v`; `indent` is `None` for compact output.
fn write_value(out: &mut String, v: &Value, indent: Option<usize>, level: usize) -> Result<()> {
    let newline = |out: &mut String, level: usize| {
        if let Some(step) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', step * level));
        }
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(x) => write_number(out, *x)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_value(out, item, indent, level + 1)?;
            }
            if !items.is_empty() {
                newline(out, level);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1);
                write_string(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, indent, level + 1)?;
            }
            if !fields.is_empty() {
                newline(out, level);
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Prints `x` so that parsing the text gives back the same bits.
fn write_number(out: &mut String, x: f64) -> Result<()> {
    if !x.is_finite() {
        return Err(Error::Json {
            path: memory(),
            reason: format!("cannot write the non-finite number {x}"),
        });
    }
    let is_neg_zero = x == 0.0 && x.is_sign_negative();
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 && !is_neg_zero {
        let _ = write!(out, "{}", x as i64);
    } else {
        // Debug of f64 is the shortest round-trip form and uses an exponent
        // for very large or small values ("1e-7", "1.5e300", "-0.0").
        let _ = write!(out, "{x:?}");
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers in messages stay short: a config's `1e300` or `1e-300` is
    /// not written out in hundreds of digits.
    #[test]
    fn numbers_in_messages_are_short() {
        assert_eq!(short_number(1e300), "1e300");
        assert_eq!(short_number(-1e-300), "-1e-300");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(1e10), "10000000000");
        let v = parse(br#"{"a": 1e300, "b": 1e-300}"#).unwrap();
        for key in ["a", "b"] {
            let e = v.usize_at(key).unwrap_err().to_string();
            assert!(e.len() < 120 && e.contains("e"), "{e}");
        }
    }

    fn p(s: &str) -> std::result::Result<Value, String> {
        parse_detailed(s.as_bytes())
    }

    #[test]
    fn parses_every_kind() {
        let v =
            p(r#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\ty\u00e9\ud83d\ude00"}} "#)
                .unwrap();
        assert_eq!(v.f64_at("a[1]").unwrap(), -2500.0);
        assert_eq!(v.str_at("b.c").unwrap(), "x\tyé😀");
        assert_eq!(v.at("a[4]").unwrap(), &Value::Null);
        assert!(v.bool_at("a[2]").unwrap());
    }

    #[test]
    fn rejects_what_the_rfc_rejects() {
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "'x'",
            "\"\t\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "tru",
            "nul",
            "[1 2]",
            "1 2",
            "{\"a\" 1}",
            "1e999",
            "-1e999",
            "\"abc",
            "[",
            "{",
            "{\"a\":1,\"a\":2}",
            "NaN",
            "Infinity",
            "[1,,2]",
            "//x\n1",
            "\u{feff}1",
        ] {
            assert!(p(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse_detailed(b"\"\xff\"").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn depth_limit_is_enforced() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(p(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(p(&deep).unwrap_err().contains("nesting deeper than 64"));
    }

    #[test]
    fn errors_give_line_and_column() {
        let e = p("{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        assert!(e.starts_with("line 3, column 7: expected ':'"), "{e}");
    }

    #[test]
    fn numbers_round_trip_bitwise() {
        let mut rng_state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            1e-7,
            1e300,
            -1e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        xs.extend([
            9_007_199_254_740_991.0,
            9_007_199_254_740_993.0,
            123456789.125,
        ]);
        for _ in 0..10_000 {
            rng_state = rng_state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = f64::from_bits(rng_state);
            if x.is_finite() {
                xs.push(x);
            }
        }
        for x in xs {
            let text = Value::Number(x).to_json().unwrap();
            let back = p(&text).unwrap().as_f64().unwrap();
            assert_eq!(back.to_bits(), x.to_bits(), "{x:?} printed as {text}");
        }
        assert_eq!(Value::Number(3.0).to_json().unwrap(), "3");
        assert!(Value::Number(f64::NAN).to_json().is_err());
        assert!(
            Value::Array(vec![Value::Number(f64::INFINITY)])
                .to_json_pretty()
                .is_err()
        );
    }

    #[test]
    fn writer_round_trips_strings_and_structure() {
        let v = Value::Object(vec![
            (
                "q\"\\\n\u{1}é😀".into(),
                Value::Array(vec![Value::Null, 2.5.into(), "s".into()]),
            ),
            ("empty".into(), Value::Object(vec![])),
            ("e2".into(), Value::Array(vec![])),
        ]);
        for text in [v.to_json().unwrap(), v.to_json_pretty().unwrap()] {
            assert_eq!(p(&text).unwrap(), v, "{text}");
        }
        assert_eq!(
            Value::Object(vec![("a".into(), Value::Array(vec![1.0.into()]))])
                .to_json_pretty()
                .unwrap(),
            "{\n  \"a\": [\n    1\n  ]\n}\n"
        );
    }

    #[test]
    fn typed_getters_name_the_path() {
        let v = p(r#"{"layers": [{"units": 64}, {"units": 32, "activation": 7}]}"#).unwrap();
        assert_eq!(v.usize_at("layers[0].units").unwrap(), 64);
        let e = v.str_at("layers[1].activation").unwrap_err().to_string();
        assert!(
            e.contains("layers[1].activation")
                && e.contains("expected a string, found the number 7"),
            "{e}"
        );
        let e = v.str_at("layers[2].activation").unwrap_err().to_string();
        assert!(
            e.contains("layers[2].activation: required field is missing"),
            "{e}"
        );
        assert!(v.lookup("layers[x]").is_err());
        assert_eq!(v.lookup("layers[5]").unwrap(), None);
        assert!(p("-1").unwrap().as_usize().is_none() && p("1.5").unwrap().as_usize().is_none());
    }

    #[test]
    fn integers_beyond_what_a_size_holds_are_named_as_such() {
        let v = p(r#"{"units": 4294967296, "big": 9007199254740992}"#).unwrap();
        let e = v.usize_at("big").unwrap_err().to_string();
        assert!(
            e.contains("big: the integer 9007199254740992 is too large"),
            "{e}"
        );
        match usize::BITS {
            32 => {
                let e = v.usize_at("units").unwrap_err().to_string();
                assert!(
                    e.contains("units: the integer 4294967296 is too large: at most the largest size this machine can hold = 4294967295"),
                    "{e}"
                );
            }
            _ => assert_eq!(v.usize_at("units").unwrap(), 1 << 32),
        }
    }
}
