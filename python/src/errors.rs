//! The engine's errors as Python exceptions, with the engine's messages.

use pyo3::PyErr;
use pyo3::exceptions::{PyOSError, PyValueError};
use sparse_ae::Error;

/// Pieces of the engine's messages that send the reader to the command
/// line (its flags, checkpoints, `train`), and what Python has instead.
const FOR_PYTHON: &[(&str, &str)] = &[
    // The memory budget (Error::Memory's hint), and the hint for data
    // read whole.
    (" (it is read whole, --limit or not)", " (it is read whole)"),
    ("--max-memory GB", "sparse_ae.set_max_memory(gb)"),
    // Memory or threads the system refuses (memory::refused,
    // parallel::thread_refused).
    (
        "fewer threads (--threads N)",
        "fewer threads (RAYON_NUM_THREADS)",
    ),
    // A step that went NaN (Error::NonFinite's hint): Python's fit writes
    // no checkpoint, and gives the model back as it was.
    (
        "lower the learning rate, check the data for NaN, or resume from the last checkpoint if the run wrote any (--checkpoint)",
        "lower the learning rate (fit's lr), or check the data for NaN; the model keeps the weights it had before this fit",
    ),
    // Binary cross-entropy targets outside [0, 1].
    (", or train --linear-output)", ")"),
    // A convolutional preset on inputs that are not a square image.
    (
        "(IDX data gives its images' shape; for a .npy matrix, describe the model with --config and its `image`)",
        "(give it: Autoencoder.preset(name, image=(height, width)), or a configuration with its `image` to Autoencoder.from_config)",
    ),
    // fit's epochs whose records exceed the memory budget.
    (
        " (ask for fewer epochs, or give --steps)",
        " (ask for fewer epochs)",
    ),
    // A sample beyond the range the model computes in: Python's fit does
    // not normalise.
    (" (train with --normalize to have the model do it)", ""),
    // fit's validation data is the engine's test split.
    ("the test split", "validation_data"),
    // A data set not found or not downloaded.
    ("pass `--data DIR`", "pass path=DIR"),
    // Autoencoder.load of a safetensors file without a configuration.
    (
        "a plain state dict needs `train --init` with a matching --preset or --config",
        "a plain state dict goes with its configuration to Autoencoder.from_state_dict(config, state_dict)",
    ),
];

/// `e`'s message, with what it says of the command line said of Python.
pub fn message(e: &Error) -> String {
    FOR_PYTHON
        .iter()
        .fold(e.to_string(), |m, (cli, py)| m.replace(cli, py))
}

/// `OSError` for files that cannot be read or written and data sets that
/// cannot be found or fetched; `ValueError` for everything the caller
/// passed or pointed at that is wrong (shapes, configurations, malformed
/// files, NaN, binary cross-entropy targets outside [0, 1]).
pub fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { .. } | Error::Data { .. } => PyOSError::new_err(message(&e)),
        _ => PyValueError::new_err(message(&e)),
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
