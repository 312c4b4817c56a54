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

/// Refuses a hyper-parameter `v` of `field` (a learning rate, a penalty's
/// weight, a noise's std, …) that training would not see as given, since it
/// computes in f32: a finite value beyond f32's range, which would be
/// infinite there, or a non-zero one below f32's smallest, which would be 0.
///
/// # Errors
/// [`Error::Config`] naming `field`, the value and what it would become.
pub fn check_f32_param(field: &str, v: f64) -> Result<()> {
    if beyond_f32(v) {
        return Err(Error::config(
            field,
            format!(
                "{v:e} is beyond f32's range (±{:e}): training computes in f32, where it would be infinite",
                f32::MAX
            ),
        ));
    }
    if v != 0.0 && v.is_finite() && (v as f32) == 0.0 {
        return Err(Error::config(
            field,
            format!(
                "{v:e} is below f32's smallest value (about 1.4e-45): training computes in f32, where it would be 0"
            ),
        ));
    }
    Ok(())
}

/// [`check_f32_param`] for a value in [0, 1) that must stay below 1 in f32
/// (a decay rate, a momentum, a target activation): one that rounds to 1
/// there is refused too.
///
/// # Errors
/// [`Error::Config`] naming `field`, the value and what it would become.
pub fn check_f32_fraction(field: &str, v: f64) -> Result<()> {
    check_f32_param(field, v)?;
    if v < 1.0 && (v as f32) >= 1.0 {
        return Err(Error::config(
            field,
            format!(
                "{v} is 1 in f32, which training computes in (the largest f32 below 1 is {})",
                1.0 - f32::EPSILON / 2.0
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn f32_params_that_would_be_infinite_zero_or_one_are_refused() {
        use super::{check_f32_fraction, check_f32_param};
        for v in [0.0, 1e-3, 1e30, f64::from(f32::MAX), 1e-45, -2.5] {
            assert!(check_f32_param("lr", v).is_ok(), "{v}");
        }
        for (v, says) in [
            (1e39, "lr: 1e39 is beyond f32's range"),
            (-1e300, "lr: -1e300 is beyond f32's range"),
            (1e-50, "lr: 1e-50 is below f32's smallest value"),
            (-1e-46, "lr: -1e-46 is below f32's smallest value"),
        ] {
            let e = check_f32_param("lr", v).unwrap_err().to_string();
            assert!(e.contains(says), "{v}: {e}");
        }
        for v in [0.0, 0.9, 0.999, 0.99999994] {
            assert!(check_f32_fraction("beta2", v).is_ok(), "{v}");
        }
        for (v, says) in [
            (0.99999999, "beta2: 0.99999999 is 1 in f32"),
            (1e-60, "beta2: 1e-60 is below f32's smallest value"),
        ] {
            let e = check_f32_fraction("beta2", v).unwrap_err().to_string();
            assert!(e.contains(says), "{v}: {e}");
        }
    }

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
