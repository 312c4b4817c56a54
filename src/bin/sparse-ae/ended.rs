//! What `train` has written, for the message of rank 0 when `mpirun` ends
//! the job.
//!
//! When a rank dies (a signal, the OOM killer) or the job is cancelled,
//! Open MPI 4.1's `mpirun` sends the surviving ranks SIGCONT, SIGTERM
//! `odls_base_sigkill_timeout` seconds later (1 by default) and SIGKILL as
//! long again after that. Rank 0 is then usually waiting inside an MPI call
//! that never returns, so a thread of its own waits for the SIGTERM
//! ([`watch`], feature `mpi`), names the last whole checkpoint and ends the
//! process by that signal. Rank 0's writes hold [`written`] while they
//! write, so the process never ends with one half-done: the thread waits
//! for the write in progress and no other starts.
// Without the `mpi` feature the record is kept but nothing reads it.
#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

/// The last checkpoint written (or resumed from) and its step, and whether
/// training is over.
#[derive(Debug)]
pub struct Written {
    /// The checkpoint and the step it holds.
    pub checkpoint: Option<(PathBuf, u64)>,
    /// Rank 0 has reported the outcome of training: a signal after that
    /// ends the process without a message.
    pub done: bool,
}

static WRITTEN: Mutex<Written> = Mutex::new(Written {
    checkpoint: None,
    done: false,
});

/// The record, held for the duration of a write.
pub fn written() -> MutexGuard<'static, Written> {
    WRITTEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The line rank 0 prints when `mpirun` ends the job.
pub fn message(w: &Written) -> String {
    let last = match &w.checkpoint {
        Some((p, step)) => format!(
            "the last checkpoint, {} at step {step}, is whole",
            p.display()
        ),
        None => "no checkpoint was written".to_string(),
    };
    format!(
        "error: the job was ended by mpirun (another rank failed or the job was cancelled); {last}"
    )
}

/// Starts the thread that waits for SIGTERM: it takes [`written`] (after
/// any write in progress), prints [`message`] unless training is over, and
/// ends the process by the signal (a non-zero status).
///
/// # Errors
/// When the signal handler or the thread cannot be set up.
#[cfg(feature = "mpi")]
pub fn watch() -> std::io::Result<()> {
    use signal_hook::consts::SIGTERM;
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM])?;
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                let w = written();
                if !w.done {
                    note!("{}", message(&w));
                }
                let _ = signal_hook::low_level::emulate_default_handler(SIGTERM);
                std::process::exit(143);
            }
        })?;
    Ok(())
}

/// A write past the file-size limit (`ulimit -f`) raises SIGXFSZ, whose
/// default action ends the process without a word, the trained model and
/// the message naming the file with it. With a handler installed the write
/// fails with EFBIG instead, which the save reports naming its file, the
/// old file left in place. A handler that cannot be installed leaves the
/// default, as before.
#[cfg(unix)]
pub fn survive_file_size_limit() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag);
}
