//! The engine's errors as Python exceptions, with the engine's messages.

use pyo3::PyErr;
use pyo3::exceptions::{PyOSError, PyValueError};
use sparse_ae::Error;

/// `OSError` for files that cannot be read or written and data sets that
/// cannot be found or fetched; `ValueError` for everything the caller
/// passed or pointed at that is wrong (shapes, configurations, malformed
/// files, NaN, binary cross-entropy targets outside [0, 1]).
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { .. } | Error::Data { .. } => PyOSError::new_err(e.to_string()),
        // The hint names the command line's flag; Python's is a function.
        Error::Memory { .. } => PyValueError::new_err(
            e.to_string()
                .replace("--max-memory GB", "sparse_ae.set_max_memory(gb)"),
        ),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// `Result<T, Error>` → `PyResult<T>`.
pub trait IntoPy<T> {
    /// Converts the error with [`to_py`].
    fn py_err(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for sparse_ae::Result<T> {
    fn py_err(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
