//! `Autoencoder.fit`: the engine's training loop on a worker thread, with
//! the GIL released; the calling thread wakes every 50 ms to run Python's
//! signal handlers (so Ctrl-C raises `KeyboardInterrupt` between two steps)
//! and to move the tqdm bar.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};
use sparse_ae::Result;
use sparse_ae::nn::{Autoencoder, LossParts};
use sparse_ae::train::{EpochMetrics, Observer, Trainer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// What the training thread shares with the calling thread.
#[derive(Default)]
pub struct Shared {
    /// Set to stop before the next step (Ctrl-C, a callback's request).
    pub stop: AtomicBool,
    /// Steps taken in this call.
    pub steps: AtomicU64,
    /// The last batch's loss, as f64 bits.
    pub loss: AtomicU64,
    done: Mutex<bool>,
    finished: Condvar,
}

/// Marks the training thread finished when dropped (also on a panic).
pub struct DoneGuard<'a>(&'a Shared);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.finished.notify_all();
    }
}

impl Shared {
    /// A guard that marks the training finished when it goes.
    pub fn done_on_drop(&self) -> DoneGuard<'_> {
        DoneGuard(self)
    }

    /// Waits up to `timeout` for the training to finish; whether it has.
    pub fn wait_done(&self, timeout: Duration) -> bool {
        let g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .finished
            .wait_timeout_while(g, timeout, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// The observer of a `fit` call: counts steps, asks the stop flag, keeps
/// the metrics and calls the Python callbacks after each epoch.
pub struct PyObserver<'a> {
    /// Gives the Python object the weights of the epoch just ended, before
    /// the callbacks see it.
    pub publish: &'a (dyn Fn(Python<'_>, &Autoencoder<f32>) + Sync),
    pub shared: &'a Shared,
    pub callbacks: &'a [Py<PyAny>],
    pub history: Vec<EpochMetrics>,
    /// The exception a callback raised.
    pub error: Option<PyErr>,
    pub with_val: bool,
}

impl Observer for PyObserver<'_> {
    fn on_step(&mut self, _epoch: usize, _k: usize, _spe: usize, loss: &LossParts) {
        self.shared.steps.fetch_add(1, Ordering::Relaxed);
        self.shared
            .loss
            .store(loss.total().to_bits(), Ordering::Relaxed);
    }

    fn keep_going(&mut self) -> bool {
        !self.shared.stop.load(Ordering::Relaxed)
    }

    fn on_epoch(&mut self, m: &EpochMetrics, t: &Trainer<f32>) -> Result<()> {
        self.history.push(m.clone());
        if self.callbacks.is_empty() {
            return Ok(());
        }
        let with_val = self.with_val;
        let outcome = Python::attach(|py| -> PyResult<bool> {
            (self.publish)(py, &t.model);
            let logs = logs(py, m, with_val)?;
            let mut stop = false;
            for (i, cb) in self.callbacks.iter().enumerate() {
                let cb = cb.bind(py);
                let method = cb.hasattr("on_epoch_end")?;
                let r = if method {
                    cb.call_method1("on_epoch_end", (m.epoch - 1, &logs))?
                } else {
                    cb.call1((m.epoch - 1, &logs))?
                };
                stop |= wants_stop(i, cb, method, &r)?;
            }
            Ok(stop)
        });
        match outcome {
            Ok(stop) => {
                if stop {
                    self.shared.stop.store(true, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) => {
                self.error = Some(e);
                Err(sparse_ae::Error::config(
                    "callbacks",
                    "a callback raised an exception",
                ))
            }
        }
    }
}

/// Whether the value `r` that callback `i` returned asks to stop: None and
/// False go on, True stops (NumPy's bool too).
///
/// # Errors
/// `TypeError` naming the callback for any other value: a NumPy array
/// raised NumPy's "truth value of an array is ambiguous", and a number, a
/// string or a list was taken by its truth.
fn wants_stop(
    i: usize,
    cb: &Bound<'_, PyAny>,
    method: bool,
    r: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = r.py();
    if r.is_none() {
        return Ok(false);
    }
    if let Ok(b) = r.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    if r.is_instance(&py.import("numpy")?.getattr("bool_")?)? {
        return r.is_truthy();
    }
    let type_name = |o: &Bound<'_, PyAny>| {
        o.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".to_owned())
    };
    let named = match method {
        true => format!("{}.on_epoch_end", type_name(cb)),
        false => cb
            .getattr("__name__")
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| type_name(cb)),
    };
    Err(PyTypeError::new_err(format!(
        "callbacks[{i}] ({named}) returned {}: a callback returns None (or False) to go on and True to stop training",
        type_name(r)
    )))
}

/// The names of an epoch's record, in the order of the history dict.
pub const KEYS: [&str; 13] = [
    "epoch",
    "step",
    "loss",
    "recon",
    "l1",
    "kl",
    "l2",
    "auxk",
    "l0",
    "dead_units",
    "dead_fraction",
    "seconds",
    "one_thread_steps",
];

/// Indices of the counters among [`KEYS`] (ints in Python, the rest floats).
fn is_count(i: usize) -> bool {
    matches!(i, 0 | 1 | 9 | 12)
}

fn values(m: &EpochMetrics) -> [f64; 13] {
    let t = &m.train;
    [
        m.epoch as f64,
        m.step as f64,
        t.total(),
        t.recon,
        t.l1,
        t.kl,
        t.l2,
        t.auxk,
        m.l0,
        m.dead_units as f64,
        m.dead_fraction,
        m.seconds,
        m.one_thread_steps as f64,
    ]
}

fn put<'py>(d: &Bound<'py, PyDict>, key: &str, i: usize, v: f64) -> PyResult<()> {
    // Counters as int, measurements as float.
    if is_count(i) {
        d.set_item(key, v as u64)
    } else {
        d.set_item(key, v)
    }
}

/// One epoch's record as a dict (Keras' `logs`): the training loss and its
/// parts, `val_loss` and `val_recon` with validation data, L0, dead units,
/// seconds.
pub fn logs<'py>(
    py: Python<'py>,
    m: &EpochMetrics,
    with_val: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (i, (k, v)) in KEYS.iter().zip(values(m)).enumerate() {
        put(&d, k, i, v)?;
    }
    if with_val {
        let t = m.test.unwrap_or_default();
        d.set_item("val_loss", t.total())?;
        d.set_item("val_recon", t.recon)?;
    }
    Ok(d)
}

/// The per-epoch records as a dict of lists (Keras' `History.history`).
pub fn history<'py>(
    py: Python<'py>,
    h: &[EpochMetrics],
    with_val: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (i, k) in KEYS.iter().enumerate() {
        let col: Vec<f64> = h.iter().map(|m| values(m)[i]).collect();
        if is_count(i) {
            d.set_item(k, col.iter().map(|&v| v as u64).collect::<Vec<u64>>())?;
        } else {
            d.set_item(k, col)?;
        }
    }
    if with_val {
        let t: Vec<LossParts> = h.iter().map(|m| m.test.unwrap_or_default()).collect();
        d.set_item(
            "val_loss",
            t.iter().map(|p| p.total()).collect::<Vec<f64>>(),
        )?;
        d.set_item("val_recon", t.iter().map(|p| p.recon).collect::<Vec<f64>>())?;
    }
    Ok(d)
}

/// A tqdm bar over `total` steps when tqdm is installed and `verbose`.
pub struct Bar<'py> {
    bar: Option<Bound<'py, PyAny>>,
    shown: u64,
}

impl<'py> Bar<'py> {
    pub fn new(py: Python<'py>, total: u64, verbose: bool) -> Bar<'py> {
        let bar = verbose
            .then(|| py.import("tqdm").ok())
            .flatten()
            .and_then(|m| {
                let kw = PyDict::new(py);
                kw.set_item("total", total).ok()?;
                kw.set_item("unit", "step").ok()?;
                kw.set_item("desc", "fit").ok()?;
                m.call_method("tqdm", (), Some(&kw)).ok()
            });
        Bar { bar, shown: 0 }
    }

    /// Moves the bar to `steps` done, showing `loss`.
    pub fn update(&mut self, steps: u64, loss: f64) {
        if let Some(b) = &self.bar
            && steps > self.shown
        {
            let _ = b.call_method1("set_postfix_str", (format!("loss={loss:.5}"), false));
            let _ = b.call_method1("update", (steps - self.shown,));
            self.shown = steps;
        }
    }

    pub fn close(&mut self) {
        if let Some(b) = self.bar.take() {
            let _ = b.call_method0("close");
        }
    }
}
