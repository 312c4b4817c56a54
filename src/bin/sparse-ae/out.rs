//! Everything the tool prints goes through here. Results go to stdout by
//! [`out`], which turns a failed write into an error (a full device is
//! reported and the exit status is non-zero; a closed pipe ends the program
//! quietly, see `main`) instead of panicking as `println!` does. Messages go
//! to stderr by [`note!`] and [`note_part!`], which ignore a failed write:
//! there is nowhere left to report it.

use sparse_ae::{Error, Result};
use std::io::Write;

/// The name errors give stdout.
pub const STDOUT: &str = "standard output";

/// Writes `text` and a newline to stdout and flushes it.
///
/// # Errors
/// [`Error::Io`] naming [`STDOUT`] if the write fails.
pub fn out(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.write_all(b"\n"))
        .and_then(|()| o.flush())
        .map_err(|e| Error::io(STDOUT, e))
}

/// Whether `e` is a write to a closed stdout pipe (`sparse-ae … | head -1`).
pub fn is_closed_stdout(e: &Error) -> bool {
    matches!(e, Error::Io { path, source }
        if path.as_os_str() == STDOUT && source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! note_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}
