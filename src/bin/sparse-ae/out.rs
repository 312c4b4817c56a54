//! Everything the tool prints goes through here. Results go to stdout by
//! [`out`], which turns a failed write into an error (a full device is
//! reported and the exit status is non-zero; a closed pipe ends the program
//! quietly, see `main`) instead of panicking as `println!` does. Messages go
//! to stderr by [`note!`] and [`note_part!`], which ignore a failed write:
//! there is nowhere left to report it.

use sparse_ae::{Error, Result};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Whether messages are off: a rank other than 0 of a data-parallel job
/// (rank 0 speaks for the job).
static SILENT: AtomicBool = AtomicBool::new(false);

/// Turns [`note!`] and [`note_part!`] off for the rest of the process.
pub fn silence() {
    SILENT.store(true, Ordering::Relaxed);
}

/// Whether [`silence`] was called.
pub fn silenced() -> bool {
    SILENT.load(Ordering::Relaxed)
}

/// `eprintln!` that never panics, in one write (a line is never cut by
/// another process's on a shared stderr), and prints nothing after
/// [`silence`].
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        if !$crate::out::silenced() {
            sparse_ae::io::warn(format_args!($($arg)*));
        }
    }};
}

/// `eprint!` that never panics, in one write, and prints nothing after
/// [`silence`].
#[macro_export]
macro_rules! note_part {
    ($($arg:tt)*) => {{
        if !$crate::out::silenced() {
            sparse_ae::io::warn_part(format_args!($($arg)*));
        }
    }};
}
