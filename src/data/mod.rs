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
}
