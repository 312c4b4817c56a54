//! Finite-difference gradient checks.
//!
//! For each parameter tensor, entries are perturbed by ±h and ±2h and the
//! fourth-order central difference
//! `[8·(L(p+h) − L(p−h)) − (L(p+2h) − L(p−2h))] / 12h` is compared with the
//! analytic gradient (truncation error O(h⁴), so h = 10⁻⁴ keeps both the
//! truncation and the round-off of the f64 loss far below 10⁻⁶). The error of an entry is
//! `|a − n| / max(|a|, |n|, 10⁻³·s)`, where s is the largest analytic
//! magnitude in the tensor: entries far below their tensor's scale are judged
//! against that scale rather than against their own round-off. Checks run the
//! model in f64, where a correct gradient gives errors around 10⁻⁹; the
//! default tolerance is 10⁻⁶.
//!
//! ReLU and leaky ReLU are not differentiable at 0, max pooling is not
//! where two inputs of a window tie, and a difference quotient taken across
//! such a kink measures nothing. The loss function therefore also
//! returns a fingerprint of which side of every kink each pre-activation is
//! on; an entry whose perturbations change the fingerprint is skipped and
//! counted in [`TensorCheck::skipped`], never silently passed.

use crate::error::Result;
use crate::kernels::Activation;
use crate::nn::{Autoencoder, ParamLayout, Workspace};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use std::fmt;

/// How a check is run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckOptions {
    /// The finite-difference step h.
    pub step: f64,
    /// Entries checked per tensor (all of them when the tensor is smaller).
    pub max_entries: usize,
    /// Seed of the entry sampling.
    pub seed: u64,
    /// The largest acceptable error.
    pub tolerance: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            step: 1e-4,
            max_entries: 64,
            seed: 0,
            tolerance: 1e-6,
        }
    }
}

/// The result for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// The tensor's name.
    pub name: String,
    /// Its number of entries.
    pub len: usize,
    /// How many were checked.
    pub checked: usize,
    /// How many sampled entries were skipped because a perturbation crossed
    /// a kink of ReLU or leaky ReLU.
    pub skipped: usize,
    /// The largest error among them.
    pub max_rel_err: f64,
    /// The entry with that error, and its analytic and numeric gradients.
    pub worst: (usize, f64, f64),
}

/// The results for every tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// One row per tensor, in layout order.
    pub tensors: Vec<TensorCheck>,
    /// The tolerance the rows are judged against.
    pub tolerance: f64,
}

impl Report {
    /// The largest error over all tensors.
    pub fn max_rel_err(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_rel_err)
            .fold(0.0, f64::max)
    }

    /// Whether every tensor is within tolerance (NaN fails).
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.max_rel_err <= self.tolerance)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<22} {:>8} {:>8} {:>8} {:>12} {:>14} {:>14}  status",
            "tensor", "entries", "checked", "at kink", "max rel err", "analytic", "numeric"
        )?;
        for t in &self.tensors {
            let ok = if t.max_rel_err <= self.tolerance {
                "ok"
            } else {
                "FAIL"
            };
            writeln!(
                f,
                "{:<22} {:>8} {:>8} {:>8} {:>12.3e} {:>14.6e} {:>14.6e}  {ok}",
                t.name, t.len, t.checked, t.skipped, t.max_rel_err, t.worst.1, t.worst.2
            )?;
        }
        write!(
            f,
            "max relative error {:.3e} (tolerance {:.1e}): {}",
            self.max_rel_err(),
            self.tolerance,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// Compares `analytic` with central differences of `loss` for every tensor of
/// `layout`. `params` is perturbed and restored entry by entry. `loss` returns
/// the loss and a fingerprint of the kink sides (0 for a smooth model); an
/// entry whose perturbed fingerprints differ from the unperturbed one is
/// skipped.
///
/// # Panics
/// If `params` or `analytic` do not have the layout's length.
pub fn check_fn(
    layout: &ParamLayout,
    params: &mut [f64],
    analytic: &[f64],
    mut loss: impl FnMut(&[f64]) -> (f64, u64),
    opts: &CheckOptions,
) -> Report {
    assert_eq!(params.len(), layout.len, "check_fn: params length");
    assert_eq!(analytic.len(), layout.len, "check_fn: gradient length");
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let base_print = loss(params).1;
    let mut tensors = Vec::with_capacity(layout.tensors.len());
    for t in &layout.tensors {
        let len = t.len();
        let picks: Vec<usize> = if len <= opts.max_entries {
            (0..len).collect()
        } else {
            let mut v = sample(&mut rng, len, opts.max_entries).into_vec();
            v.sort_unstable();
            v
        };
        let a_t = &analytic[t.range()];
        let scale = a_t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut row = TensorCheck {
            name: t.name.clone(),
            len,
            checked: 0,
            skipped: 0,
            max_rel_err: 0.0,
            worst: (0, 0.0, 0.0),
        };
        for &i in &picks {
            let k = t.offset + i;
            let saved = params[k];
            let h = opts.step;
            let mut vals = [0.0; 4];
            let mut crossed = false;
            for (v, d) in vals.iter_mut().zip([h, -h, 2.0 * h, -2.0 * h]) {
                params[k] = saved + d;
                let (l, print) = loss(params);
                *v = l;
                crossed |= print != base_print;
            }
            params[k] = saved;
            if crossed {
                row.skipped += 1;
                continue;
            }
            row.checked += 1;
            let (near, far) = (vals[0] - vals[1], vals[2] - vals[3]);
            let numeric = (8.0 * near - far) / (12.0 * h);
            let a = analytic[k];
            let denom = a.abs().max(numeric.abs()).max(1e-3 * scale);
            let err = if denom == 0.0 {
                0.0
            } else {
                (a - numeric).abs() / denom
            };
            // NaN is recorded as the worst error.
            if err.is_nan() || err > row.max_rel_err {
                row.max_rel_err = err;
                row.worst = (i, a, numeric);
            }
        }
        tensors.push(row);
    }
    Report {
        tensors,
        tolerance: opts.tolerance,
    }
}

/// Checks a model's backward pass on one batch: `input` is what the model
/// sees (apply any noise beforehand, so it stays fixed), `target` the clean
/// batch, both `(batch, in)`.
///
/// # Errors
/// [`crate::Error::Shape`] if the batch buffers have the wrong length.
pub fn check_model(
    model: &Autoencoder<f64>,
    input: &[f64],
    target: &[f64],
    batch: usize,
    opts: &CheckOptions,
) -> Result<Report> {
    let mut ws = model.workspace(batch);
    let mut grads = vec![0.0; model.params.len()];
    model.loss_and_grad(&mut ws, input, target, Some(&mut grads))?;
    let mut probe = model.clone();
    let mut params = model.params.clone();
    let layout = model.layout().clone();
    Ok(check_fn(
        &layout,
        &mut params,
        &grads,
        |p| {
            probe.params.copy_from_slice(p);
            let l = probe
                .loss_and_grad(&mut ws, input, target, None)
                .map(|l| l.total())
                .unwrap_or(f64::NAN);
            (l, kink_fingerprint(&probe, &ws))
        },
        opts,
    ))
}

/// A hash of which side of 0 every pre-activation of a ReLU or leaky-ReLU
/// layer is on, which values a top-k selection kept, which input won
/// every max-pooling window, and which dead latents the AuxK loss chose.
pub fn kink_fingerprint(model: &Autoencoder<f64>, ws: &Workspace<f64>) -> u64 {
    let mut hash: u64 = ws.pool_fingerprint() ^ ws.auxk_fingerprint().rotate_left(17);
    for (l, spec) in model.config().layers.iter().enumerate() {
        let topk = model.config().topk.is_some_and(|t| t.layer == l);
        if topk || matches!(spec.act(), Activation::Relu | Activation::LeakyRelu(_)) {
            for &v in &ws.h[l] {
                let side = u64::from(v > 0.0) + 2 * u64::from(topk && v != 0.0);
                hash = (hash ^ side).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}
