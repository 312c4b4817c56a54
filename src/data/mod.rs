//! Readers and writers for outside data sets: IDX (MNIST and friends, raw or
//! gzip), `.npy` arrays (whole, or rows of a file larger than memory), rows
//! of either read where they lie ([`row_file`]), and the MNIST directory
//! layout.
//!
//! Every reader validates the header against the bytes actually present
//! before it allocates, so a hostile file costs at most a small multiple of
//! its own size in memory, and every error names the file and the problem.

#[cfg(feature = "download")]
pub mod download;
mod gz;
pub mod idx;
pub mod mnist;
pub mod npy;
pub mod npy_reader;
pub mod row_file;
#[cfg(feature = "download")]
pub mod sha256;

use crate::{Error, Result};

/// Checks that `data` holds no NaN or ±Inf.
///
/// # Errors
/// [`Error::NonFinite`] (step 0) naming `what`, the first bad index and its value.
pub fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::NonFinite {
            step: 0,
            tensor: format!("{what} at index {i} (value {})", data[i]),
        }),
    }
}

/// Whether `x` is a finite value that becomes ±Inf as an `f32`: beyond
/// f32's range (|x| > 3.4028235e38, after rounding).
pub fn beyond_f32(x: f64) -> bool {
    x.is_finite() && (x as f32).is_infinite()
}

/// The error for a finite value `x` of `where_` (file and position) that
/// does not fit in an `f32`, every value's type in the engine.
pub fn beyond_f32_error(where_: String, x: f64) -> Error {
    Error::Value {
        reason: format!(
            "{where_} is {x:e}, outside f32's range (±{:e}): values are used as f32\n---> HINT: scale the data down (or standardise it) before saving it",
            f32::MAX
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_finite_names_the_first_bad_index() {
        assert!(super::check_finite("x", &[0.0, 1.0, -3.0]).is_ok());
        let e = super::check_finite("x.npy", &[0.0, f32::INFINITY, f32::NAN]).unwrap_err();
        assert!(
            e.to_string().contains("x.npy at index 1 (value inf)"),
            "{e}"
        );
    }

    /// f32's range ends where rounding to f32 gives ±Inf, half an ulp
    /// (2¹⁰³) past f32::MAX; NaN and ±Inf are not beyond it.
    #[test]
    fn beyond_f32_is_where_rounding_overflows() {
        let max = f64::from(f32::MAX);
        for x in [
            0.0,
            max,
            -max,
            max + 2f64.powi(102),
            f64::NAN,
            f64::INFINITY,
        ] {
            assert!(!super::beyond_f32(x), "{x:e}");
        }
        for x in [1e300, -4e38, max + 2f64.powi(103), f64::MAX] {
            assert!(super::beyond_f32(x), "{x:e}");
        }
        let e = super::beyond_f32_error("a.npy: row 1, feature 2".into(), -1e300).to_string();
        assert!(
            e.starts_with("a.npy: row 1, feature 2 is -1e300, outside f32's range (±3.4028235e38)"),
            "{e}"
        );
    }
}
