//! sparse-ae from Python: the engine as the extension module
//! `sparse_ae._native`, wrapped by the package in `python/sparse_ae/`.
//!
//! This crate only converts: NumPy arrays into the engine's
//! [`Samples`](sparse_ae::train::Samples) (borrowed where the layout allows,
//! one converted copy otherwise), the engine's results back into arrays and
//! dicts, and its [`Error`](sparse_ae::Error)s into `ValueError`/`OSError`
//! with the engine's messages. The maths and the validation stay in the
//! library; training goes through the same calls as `sparse-ae train`, so
//! the same configuration, seed and data give the same bytes.

mod args;
mod arrays;
mod data;
mod errors;
mod fit;
mod model;

use pyo3::prelude::*;

/// The native part of the `sparse_ae` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::PyAutoencoder>()?;
    m.add_function(wrap_pyfunction!(data::load_idx_split, m)?)?;
    m.add_function(wrap_pyfunction!(data::locate_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(model::presets, m)?)?;
    m.add_function(wrap_pyfunction!(model::kernel_path, m)?)?;
    m.add_function(wrap_pyfunction!(model::set_max_memory, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
