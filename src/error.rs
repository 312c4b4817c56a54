//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sparse-ae, with enough context to act on.
///
/// Every variant names the thing that failed (a file, an operation, a
/// configuration field) and what was expected.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a file.
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A malformed or hostile IDX file.
    Idx {
        /// The file involved (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed `.npy` file.
    Npy {
        /// The file involved (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed or mismatching safetensors model or checkpoint.
    Safetensors {
        /// The file involved (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Malformed JSON (a configuration or metadata file).
    Json {
        /// The file involved (or `<memory>`).
        path: PathBuf,
        /// What is wrong with it, with line and column.
        reason: String,
    },
    /// A tensor or matrix of the wrong shape was passed to an operation.
    Shape {
        /// The operation.
        op: &'static str,
        /// What it expected.
        expected: String,
        /// What it got.
        got: String,
    },
    /// An impossible or inconsistent configuration.
    Config {
        /// The offending field.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
    /// NaN or Inf appeared in a loss, a parameter or input data.
    NonFinite {
        /// The training step (0 for data checks).
        step: u64,
        /// The tensor or quantity that became non-finite.
        tensor: String,
    },
    /// A SIMD kernel path was requested that this CPU (or build) does not have.
    KernelUnavailable {
        /// The requested path.
        requested: String,
    },
    /// What a command would allocate exceeds the memory budget
    /// ([`crate::memory`]).
    Memory {
        /// What needs the memory (a model, training at a batch size, …).
        what: String,
        /// Bytes it needs.
        needs: u64,
        /// The budget in bytes.
        budget: u64,
        /// Bytes of it already taken by the buffers alive
        /// ([`crate::memory::Held`]).
        held: u64,
    },
    /// Values an operation cannot take, in data that is otherwise well
    /// formed: binary cross-entropy targets outside [0, 1], or no samples
    /// where some are needed.
    Value {
        /// Which value, where, and what would be accepted.
        reason: String,
    },
    /// A data set could not be found or fetched.
    Data {
        /// What is missing and how to get it.
        reason: String,
    },
    /// Another process of a data-parallel job failed ([`crate::dist`]).
    Rank {
        /// The process (rank) that failed.
        rank: usize,
        /// Its error.
        reason: String,
    },
}

impl Error {
    /// The value of the environment variable `name`, `None` when it is unset
    /// or blank.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when its value is not UTF-8
    /// (it would otherwise be taken as unset without a word).
    pub fn env_text(name: &str) -> Result<Option<String>> {
        match std::env::var(name) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(raw)) => {
                Err(Error::config(name, format!("{raw:?} is not UTF-8 text")))
            }
        }
    }

    /// Shorthand for an [`Error::Config`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error of a part, said of the whole `field` it belongs to: a
    /// configuration error keeps its own field in the reason
    /// (`layers[1]: pool.kernel: …`) instead of repeating "invalid
    /// configuration"; any other error becomes the reason.
    pub fn within(self, field: &str) -> Error {
        match self {
            Error::Config {
                field: part,
                reason,
            } => Error::config(field, format!("{part}: {reason}")),
            e => Error::config(field, e.to_string()),
        }
    }

    /// Shorthand for an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Shape`].
    pub fn shape(op: &'static str, expected: impl Into<String>, got: impl Into<String>) -> Error {
        Error::Shape {
            op,
            expected: expected.into(),
            got: got.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            Error::Idx { path, reason } => {
                write!(f, "{}: not a valid IDX file: {}", path.display(), reason)
            }
            Error::Npy { path, reason } => {
                write!(f, "{}: not a valid .npy file: {}", path.display(), reason)
            }
            Error::Safetensors { path, reason } => {
                write!(f, "{}: bad safetensors file: {}", path.display(), reason)
            }
            Error::Json { path, reason } => {
                write!(f, "{}: invalid JSON: {}", path.display(), reason)
            }
            Error::Shape { op, expected, got } => {
                write!(f, "{op}: shape mismatch: expected {expected}, got {got}")
            }
            Error::Config { field, reason } => {
                write!(f, "invalid configuration: {field}: {reason}")
            }
            // Step 0: a check of the data, before any training.
            Error::NonFinite { step: 0, tensor } => write!(
                f,
                "non-finite value (NaN or Inf) in {tensor}\n---> HINT: the data must hold finite numbers: replace or drop the samples with missing (NaN) or infinite values"
            ),
            Error::NonFinite { step, tensor } => write!(
                f,
                "non-finite value (NaN or Inf) in {tensor} at step {step}\n---> HINT: lower the learning rate, check the data for NaN, or resume from the last checkpoint if the run wrote any (--checkpoint)"
            ),
            Error::KernelUnavailable { requested } => write!(
                f,
                "{}: kernel path `{requested}` is not available on this CPU or build (it has {})\n---> HINT: set {} to one of those, or unset it for the fastest",
                crate::kernels::dispatch::KERNEL_ENV,
                crate::kernels::Isa::available()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                crate::kernels::dispatch::KERNEL_ENV,
            ),
            Error::Memory {
                what,
                needs,
                budget,
                held,
            } => write!(
                f,
                "{what} needs {}, more than the memory budget of {}{}\n---> HINT: {}, or another budget with --max-memory GB (default: 3/4 of the machine's memory{})",
                crate::memory::show(*needs),
                crate::memory::show(*budget),
                match held {
                    0 => String::new(),
                    h => format!(
                        " leaves beside the {} held by the data and models already in memory",
                        crate::memory::show(*h)
                    ),
                },
                // Reading data takes room for the data, whatever the model.
                match what.starts_with("reading ") {
                    true => "a file of fewer samples (it is read whole, --limit or not)",
                    false => "a smaller model or batch size",
                },
                match usize::BITS {
                    64.. => String::new(),
                    bits => format!(
                        ", at most {} with this target's {bits}-bit pointers",
                        crate::memory::show(crate::memory::MAX_BUDGET)
                    ),
                }
            ),
            Error::Value { reason } | Error::Data { reason } => write!(f, "{reason}"),
            Error::Rank { rank, reason } => write!(f, "rank {rank} of the job failed: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// The memory budget's hint names what would help: for data read
    /// whole, a smaller file (`--limit` does not shrink the read); for
    /// anything else, a smaller model or batch.
    #[test]
    fn the_memory_hint_fits_what_needed_the_memory() {
        let e = |what: &str| {
            Error::Memory {
                what: what.into(),
                needs: 8 << 20,
                budget: 1 << 20,
                held: 0,
            }
            .to_string()
        };
        let reading = e("reading t10k-images-idx3-ubyte.gz");
        assert!(
            reading.contains("HINT: a file of fewer samples (it is read whole, --limit or not), or another budget"),
            "{reading}"
        );
        assert!(!reading.contains("batch size"), "{reading}");
        let training = e("training at batch size 256");
        assert!(
            training.contains("HINT: a smaller model or batch size, or another budget"),
            "{training}"
        );
    }
}
