//! Whole-number arguments: any Python integer (or object with `__index__`)
//! is taken, and one out of range raises `ValueError` naming the argument
//! and its range, where PyO3's own conversion raised `OverflowError: can't
//! convert negative int to unsigned`, which names neither.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

/// `obj` as a whole number in `min..=u64::MAX` (`name` in errors).
///
/// # Errors
/// `TypeError` for what is not an integer; `ValueError` below `min` or
/// above 2⁶⁴ − 1.
pub fn whole(obj: &Bound<'_, PyAny>, name: &str, min: u64) -> PyResult<u64> {
    let py = obj.py();
    let i = py
        .import("operator")?
        .call_method1("index", (obj,))
        .map_err(|_| {
            let ty = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".to_owned());
            PyTypeError::new_err(format!("{name}: expected a whole number, got {ty}"))
        })?;
    let range = || format!("{min} to 2**64 - 1");
    match i.extract::<u64>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(PyValueError::new_err(format!(
            "{name}: must be a whole number from {}, got {}",
            range(),
            short(&i)
        ))),
    }
}

/// [`whole`] as a `usize`.
///
/// # Errors
/// As [`whole`]; `ValueError` beyond `usize::MAX`.
pub fn count(obj: &Bound<'_, PyAny>, name: &str, min: u64) -> PyResult<usize> {
    let v = whole(obj, name, min)?;
    usize::try_from(v).map_err(|_| {
        PyValueError::new_err(format!("{name}: must be at most {}, got {v}", usize::MAX))
    })
}

/// An integer's text, its first digits and length when long.
fn short(i: &Bound<'_, PyAny>) -> String {
    let s = i
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    if s.len() > 40 {
        format!("{}… ({} digits)", &s[..40], s.trim_start_matches('-').len())
    } else {
        s
    }
}
