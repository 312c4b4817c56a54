//! Finite-difference gradient checks.
//!
//! The loss of a model is a sum of parts (reconstruction, L1, KL, L2, AuxK).
//! Every difference below is taken part by part, relative to the unperturbed
//! parts: `f(p) = Σ_k (L_k(p) − L_k(p₀))`. Each subtraction is exact
//! (Sterbenz), so a part that a tensor does not touch contributes exactly 0
//! and a large KL term (~1500 in `overcomplete-kl`) no longer drowns the
//! decoder's gradients in its rounding.
//!
//! Per tensor, three things are measured:
//!
//! 1. **The loss's round-off σ**, by Moré and Wild's ECnoise: f at 33
//!    equally spaced points h apart along a random unit direction of the
//!    tensor; the fourth differences of a smooth function nearly vanish
//!    there, so what is left is noise, σ² = mean(Δ⁴f²)/70, and at least
//!    ε·Σ|L_k| over the parts the tensor moves (their own rounding).
//! 2. **Sampled entries**: the fourth-order central difference
//!    `n = [8·(f(p+h) − f(p−h)) − (f(p+2h) − f(p−2h))] / 12h` (truncation
//!    O(h⁴)), whose round-off is at most R = 10σ/h (ten standard deviations
//!    of 0.95σ/h). The error of an entry is
//!    `|a − n| / max(|a|, |n|, 10⁻³·s, R/10⁻⁶)`, where s is the largest
//!    analytic magnitude in the tensor: an entry is judged relative to its
//!    own size while a difference quotient can resolve it to six digits,
//!    and relative to R/10⁻⁶ (the smallest gradient a difference can resolve
//!    to 10⁻⁶) or to 10⁻³·s below that.
//! 3. **A directional derivative**: along a random ±1 direction v over the
//!    whole tensor, gᵀv against the difference quotient at steps s and s/2
//!    (s = h, divided by 4 while a perturbation crosses a kink), judged
//!    against `max(|gᵀv|, |n|, E/10⁻⁶)` with E = |n(s) − n(s/2)| + 10σ/(s/2)
//!    (truncation estimated by Richardson, plus round-off). gᵀv sums every
//!    entry, so it is ~√len times larger than a typical entry and the
//!    check resolves errors spread over the whole tensor that sampling
//!    misses.
//!
//! Checks run the model in f64. The default tolerance is 10⁻⁶.
//!
//! ReLU and leaky ReLU are not differentiable at 0, max pooling is not
//! where two inputs of a window tie, and a difference quotient taken across
//! such a kink measures nothing. The loss function therefore also
//! returns a fingerprint of which side of every kink each pre-activation is
//! on; an entry whose perturbations change the fingerprint is skipped and
//! counted in [`TensorCheck::skipped`], never silently passed. A tensor of
//! which every sampled entry and every directional step crosses a kink
//! measured nothing: its verdict is [`Verdict::AtKink`], neither a pass nor
//! a failure, and a report in which no tensor measured anything is
//! [`Verdict::AtKink`] as a whole. A non-finite analytic gradient or loss
//! fails whatever the kinks.

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::nn::{
    Autoencoder, ModelConfig, ParamInfo, ParamKind, ParamLayout, Workspace, apply_noise,
};
use crate::rng::Rng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
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
    /// The estimated round-off σ of the loss differences (ECnoise).
    pub noise: f64,
    /// R = 10σ/h, the largest round-off of an entry's difference quotient.
    pub resolution: f64,
    /// The directional check's error (NaN when it crossed a kink at every
    /// step, see `dir_at_kink`).
    pub dir_err: f64,
    /// The directional derivative gᵀv, analytic and numeric.
    pub dir: (f64, f64),
    /// Whether every step of the directional check crossed a kink, so that
    /// it measured nothing.
    pub dir_at_kink: bool,
}

/// The outcome of a check, of one tensor or of a whole report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything measured is within tolerance, and something was measured.
    Pass,
    /// A measured error exceeds the tolerance or is NaN, or the analytic
    /// gradient or the loss is not finite.
    Fail,
    /// Nothing was measured: every sampled entry and every step of the
    /// directional check crossed a kink (for a report: in every tensor).
    AtKink,
}

impl TensorCheck {
    /// Whether any difference quotient was compared with the gradient.
    pub fn measured(&self) -> bool {
        self.checked > 0 || !self.dir_at_kink
    }

    /// The largest measured error, sampled entries and directional; NaN if
    /// one is NaN (a non-finite gradient counts, measured or not), `None`
    /// if nothing was measured.
    pub fn error(&self) -> Option<f64> {
        let mut errs = Vec::with_capacity(2);
        if self.checked > 0 || self.max_rel_err.is_nan() {
            errs.push(self.max_rel_err);
        }
        if !self.dir_at_kink {
            errs.push(self.dir_err);
        }
        errs.into_iter().reduce(|m, e| {
            if m.is_nan() || e.is_nan() {
                f64::NAN
            } else {
                m.max(e)
            }
        })
    }

    /// The tensor's verdict at `tolerance` (NaN fails).
    pub fn verdict(&self, tolerance: f64) -> Verdict {
        match self.error() {
            None => Verdict::AtKink,
            Some(e) if e <= tolerance => Verdict::Pass,
            Some(_) => Verdict::Fail,
        }
    }

    /// Whether the tensor was measured and is within `tolerance` (NaN
    /// fails; a tensor that measured nothing has not passed).
    pub fn passed(&self, tolerance: f64) -> bool {
        self.verdict(tolerance) == Verdict::Pass
    }
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
    /// The largest measured error over all tensors, sampled entries and
    /// directional (see [`TensorCheck::error`]); NaN if one is NaN or if
    /// nothing was measured.
    pub fn max_rel_err(&self) -> f64 {
        self.tensors
            .iter()
            .filter_map(TensorCheck::error)
            .reduce(|m, e| {
                if m.is_nan() || e.is_nan() {
                    f64::NAN
                } else {
                    m.max(e)
                }
            })
            .unwrap_or(f64::NAN)
    }

    /// The verdict of the whole check: [`Verdict::Fail`] if any tensor
    /// fails, else [`Verdict::Pass`] if any tensor was measured (the
    /// tensors at a kink are listed, and did not count), else
    /// [`Verdict::AtKink`].
    pub fn verdict(&self) -> Verdict {
        let mut any = Verdict::AtKink;
        for t in &self.tensors {
            match t.verdict(self.tolerance) {
                Verdict::Fail => return Verdict::Fail,
                Verdict::Pass => any = Verdict::Pass,
                Verdict::AtKink => {}
            }
        }
        any
    }

    /// Whether the check passed: no tensor fails and at least one was
    /// measured (NaN fails; a check that measured nothing has not passed).
    pub fn passed(&self) -> bool {
        self.verdict() == Verdict::Pass
    }

    /// How many tensors measured nothing, every entry and step at a kink.
    pub fn at_kink(&self) -> usize {
        self.tensors.iter().filter(|t| !t.measured()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<22} {:>8} {:>8} {:>8} {:>11} {:>14} {:>14} {:>10} {:>10}  status",
            "tensor",
            "entries",
            "checked",
            "at kink",
            "max rel err",
            "analytic",
            "numeric",
            "dir err",
            "resolves"
        )?;
        for t in &self.tensors {
            let status = match t.verdict(self.tolerance) {
                Verdict::Pass => "ok",
                Verdict::Fail => "FAIL",
                Verdict::AtKink => "skipped: every entry at a kink",
            };
            // What was not measured is shown as `-` (entries) or `at kink`
            // (the directional check), never as a number.
            let (err, analytic, numeric) = if t.checked > 0 || t.max_rel_err.is_nan() {
                (
                    format!("{:.3e}", t.max_rel_err),
                    format!("{:.6e}", t.worst.1),
                    format!("{:.6e}", t.worst.2),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            // NaN when no window along the tensor was free of kinks.
            let resolves = if t.resolution.is_finite() {
                format!("{:.2e}", t.resolution / RESOLVE)
            } else {
                "-".into()
            };
            let dir = if t.dir_at_kink {
                "at kink".to_string()
            } else {
                format!("{:.2e}", t.dir_err)
            };
            writeln!(
                f,
                "{:<22} {:>8} {:>8} {:>8} {err:>11} {analytic:>14} {numeric:>14} {dir:>10} {resolves:>10}  {status}",
                t.name, t.len, t.checked, t.skipped,
            )?;
        }
        let skipped = match self.at_kink() {
            0 => String::new(),
            1 => "; 1 tensor skipped, every entry at a kink".into(),
            n => format!("; {n} tensors skipped, every entry at a kink"),
        };
        match self.verdict() {
            Verdict::AtKink => write!(
                f,
                "nothing measured: every sampled entry and directional step of every tensor crosses a kink: INCONCLUSIVE"
            ),
            v => write!(
                f,
                "max relative error {:.3e} (tolerance {:.1e}{skipped}): {}",
                self.max_rel_err(),
                self.tolerance,
                if v == Verdict::Pass { "PASS" } else { "FAIL" }
            ),
        }
    }
}

/// The relative accuracy a difference quotient must reach for an entry to be
/// judged relative to its own size: gradients smaller than R/RESOLVE are
/// judged relative to R/RESOLVE.
pub const RESOLVE: f64 = 1e-6;

/// Standard deviations of round-off allowed (R = SIGMAS·σ/h; the fourth-order
/// quotient's round-off has standard deviation √130/12·σ/h ≈ 0.95σ/h, and
/// σ is itself an estimate: 6 was exceeded once in the 90 preset runs).
const SIGMAS: f64 = 10.0;

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
    check_parts(
        layout,
        params,
        analytic,
        |p| {
            let (l, print) = loss(p);
            ([l], print)
        },
        opts,
    )
}

/// [`check_fn`] for a loss given as parts whose sum is the objective: each
/// part is differenced on its own (see the module doc).
///
/// # Panics
/// If `params` or `analytic` do not have the layout's length.
pub fn check_parts<const K: usize>(
    layout: &ParamLayout,
    params: &mut [f64],
    analytic: &[f64],
    mut loss: impl FnMut(&[f64]) -> ([f64; K], u64),
    opts: &CheckOptions,
) -> Report {
    assert_eq!(params.len(), layout.len, "check_fn: params length");
    assert_eq!(analytic.len(), layout.len, "check_fn: gradient length");
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (base, base_print) = loss(params);
    // f(p) relative to the base point, whether a kink was crossed, and the
    // size of the parts p moves (Σ|L_k(p₀)| over the parts that changed).
    let mut f = |p: &[f64]| {
        let (parts, print) = loss(p);
        let d: f64 = parts.iter().zip(&base).map(|(a, b)| a - b).sum();
        let moved: f64 = parts
            .iter()
            .zip(&base)
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b.abs())
            .sum();
        Eval {
            d,
            crossed: print != base_print,
            moved,
        }
    };
    let h = opts.step;
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
        let dir: Vec<f64> = (0..len)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect();
        let a_t = &analytic[t.range()];
        let scale = a_t.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        // The parts the tensor moves (a part it does not touch stays the
        // same bits; one it touches moves under a step of 1 in every entry,
        // however flat it is at the steps of h): their own rounding is the
        // least round-off its differences can have.
        let moved = match along(&mut f, params, t.offset, &dir, 1.0).moved {
            // Nothing moves at all: judge it against every part's rounding.
            0.0 => base.iter().map(|b| b.abs()).sum(),
            m => m,
        };
        let noise = noise_along(&mut f, params, t.offset, &dir, h, moved);
        let resolution = SIGMAS * noise / h;
        let mut row = TensorCheck {
            name: t.name.clone(),
            len,
            checked: 0,
            skipped: 0,
            max_rel_err: 0.0,
            worst: (0, 0.0, 0.0),
            noise,
            resolution,
            dir_err: 0.0,
            dir: (0.0, 0.0),
            dir_at_kink: false,
        };
        for &i in &picks {
            let k = t.offset + i;
            let saved = params[k];
            let mut vals = [0.0; 4];
            let mut crossed = false;
            for (v, d) in vals.iter_mut().zip([h, -h, 2.0 * h, -2.0 * h]) {
                params[k] = saved + d;
                let e = f(params);
                *v = e.d;
                crossed |= e.crossed;
            }
            params[k] = saved;
            if crossed {
                row.skipped += 1;
                continue;
            }
            row.checked += 1;
            let numeric = quotient(vals, h);
            let a = analytic[k];
            let denom = a
                .abs()
                .max(numeric.abs())
                .max(1e-3 * scale)
                .max(resolution / RESOLVE);
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
        // A non-finite gradient fails, whether or not its entry was sampled
        // or sits at a kink.
        if !row.max_rel_err.is_nan()
            && let Some(i) = a_t.iter().position(|g| !g.is_finite())
        {
            row.max_rel_err = f64::NAN;
            row.worst = (i, a_t[i], f64::NAN);
        }
        // So does a non-finite loss at the point checked.
        if base.iter().any(|l| !l.is_finite()) {
            row.max_rel_err = f64::NAN;
        }
        let gv: f64 = a_t.iter().zip(&dir).map(|(g, v)| g * v).sum();
        match directional(&mut f, params, t.offset, &dir, h, noise) {
            Some((numeric, bound)) => {
                let denom = gv.abs().max(numeric.abs()).max(bound / RESOLVE);
                row.dir = (gv, numeric);
                row.dir_err = if denom == 0.0 {
                    0.0
                } else {
                    (gv - numeric).abs() / denom
                };
            }
            None => {
                row.dir = (gv, f64::NAN);
                row.dir_err = f64::NAN;
                row.dir_at_kink = true;
            }
        }
        tensors.push(row);
    }
    Report {
        tensors,
        tolerance: opts.tolerance,
    }
}

/// The fourth-order central difference from f(±h), f(±2h) (in that order:
/// +h, −h, +2h, −2h).
fn quotient(vals: [f64; 4], h: f64) -> f64 {
    (8.0 * (vals[0] - vals[1]) - (vals[2] - vals[3])) / (12.0 * h)
}

/// One evaluation of the loss at a perturbed point.
struct Eval {
    /// The loss relative to the unperturbed point, part by part.
    d: f64,
    /// Whether the perturbation crossed a kink.
    crossed: bool,
    /// Σ|L_k(p₀)| over the parts the perturbation changed.
    moved: f64,
}

/// f at `params + s·dir` (on the tensor at `offset`), restoring `params`.
fn along(
    f: &mut impl FnMut(&[f64]) -> Eval,
    params: &mut [f64],
    offset: usize,
    dir: &[f64],
    s: f64,
) -> Eval {
    let part = &mut params[offset..offset + dir.len()];
    let saved = part.to_vec();
    for (p, d) in part.iter_mut().zip(dir) {
        *p += s * d;
    }
    let out = f(params);
    params[offset..offset + dir.len()].copy_from_slice(&saved);
    out
}

/// The round-off σ of f near `params`, by ECnoise: 33 points τ apart along
/// the unit direction dir/√len, σ² = mean(Δ⁴f²)/70 (Δ⁴ of independent
/// noise has variance 70σ²). τ = h, the scale of the steps the noise is
/// for: at much shorter spacings a deep stack's rounding errors are not
/// independent from point to point (its intermediate values move by a few
/// ulps or not at all) and Δ⁴ cancels them, so σ came out several times
/// too small for the steps of h. The smooth part of Δ⁴ (of order τ⁴·f⁗,
/// 10⁻¹⁶·f⁗) can only make σ larger, a less sensitive check, never a false
/// failure. τ is divided by 8 while a point crosses a kink. NaN if no clean
/// window is found.
///
/// σ is at least ε·`moved` (`moved` being Σ|L_k| over the parts the tensor
/// changes): each part is rounded at its own magnitude, and a window that
/// does not change a part's rounded value (gradients of 10⁻²⁰, the first
/// layers of a 30-layer sigmoid stack) measures no noise at all.
fn noise_along(
    f: &mut impl FnMut(&[f64]) -> Eval,
    params: &mut [f64],
    offset: usize,
    dir: &[f64],
    h: f64,
    moved: f64,
) -> f64 {
    let unit = 1.0 / (dir.len() as f64).sqrt();
    let mut tau = h;
    for _ in 0..4 {
        let mut pts = [0.0; 33];
        let mut clean = true;
        for (i, v) in pts.iter_mut().enumerate().skip(1) {
            let e = along(f, params, offset, dir, i as f64 * tau * unit);
            *v = e.d;
            clean &= !e.crossed;
        }
        if clean {
            let sq: f64 = pts
                .windows(5)
                .map(|w| {
                    let d4 = w[0] - 4.0 * w[1] + 6.0 * w[2] - 4.0 * w[3] + w[4];
                    d4 * d4
                })
                .sum();
            let sigma = (sq / 29.0 / 70.0).sqrt();
            return sigma.max(f64::EPSILON * moved);
        }
        tau /= 8.0;
    }
    f64::NAN
}

/// The directional derivative of f along dir (entries ±1) by fourth-order
/// differences at steps s and s/2, with s = h divided by 4 while a
/// perturbation crosses a kink. Returns the s/2 value and its error bound
/// |n(s) − n(s/2)| + SIGMAS·σ/(s/2), or `None` if every step crosses a
/// kink (a NaN loss that crosses none is returned as it is, and fails).
fn directional(
    f: &mut impl FnMut(&[f64]) -> Eval,
    params: &mut [f64],
    offset: usize,
    dir: &[f64],
    h: f64,
    noise: f64,
) -> Option<(f64, f64)> {
    let mut s = h;
    for _ in 0..10 {
        let mut q = [0.0; 2];
        let mut crossed = false;
        for (qi, step) in q.iter_mut().zip([s, s / 2.0]) {
            let mut vals = [0.0; 4];
            for (v, d) in vals.iter_mut().zip([step, -step, 2.0 * step, -2.0 * step]) {
                let e = along(f, params, offset, dir, d);
                *v = e.d;
                crossed |= e.crossed;
            }
            *qi = quotient(vals, step);
        }
        if !crossed {
            return Some((q[1], (q[0] - q[1]).abs() + SIGMAS * noise / (s / 2.0)));
        }
        s /= 4.0;
    }
    None
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
    crate::parallel::start_global_pool(None)?;
    let mut grads = vec![0.0; model.params.len()];
    model.loss_and_grad(&mut model.workspace(batch), input, target, Some(&mut grads))?;
    check_model_grads(model, input, target, batch, &grads, opts)
}

/// [`check_model`] for a given gradient `grads` (layout order), e.g. one
/// with an error put in on purpose.
///
/// # Errors
/// [`crate::Error::Shape`] if the batch buffers have the wrong length.
///
/// # Panics
/// If `grads` does not have the model's parameter count.
pub fn check_model_grads(
    model: &Autoencoder<f64>,
    input: &[f64],
    target: &[f64],
    batch: usize,
    grads: &[f64],
    opts: &CheckOptions,
) -> Result<Report> {
    crate::parallel::start_global_pool(None)?;
    let mut ws = model.workspace(batch);
    model.loss_and_grad(&mut ws, input, target, None)?;
    let mut probe = model.clone();
    let mut params = model.params.clone();
    let layout = model.layout().clone();
    Ok(check_parts(
        &layout,
        &mut params,
        grads,
        |p| {
            probe.params.copy_from_slice(p);
            let l = probe
                .loss_and_grad(&mut ws, input, target, None)
                .map(|l| [l.recon, l.l1, l.kl, l.l2, l.auxk])
                .unwrap_or([f64::NAN; 5]);
            (l, kink_fingerprint(&probe, &ws))
        },
        opts,
    ))
}

/// The names a gradient check's arguments go by in errors: the command
/// line's flags or a binding's keywords.
#[derive(Clone, Copy, Debug)]
pub struct ArgNames {
    /// The batch size (`--batch`).
    pub batch: &'static str,
    /// The entries checked per tensor (`--entries`).
    pub entries: &'static str,
    /// The tolerance (`--tolerance`).
    pub tolerance: &'static str,
}

/// Refuses a gradient check of `cfg` that cannot run: a batch or entry
/// count of 0, a tolerance that is not a finite number ≥ 0, and a batch
/// whose f64 buffers (clean and noisy inputs, workspace, parameters and
/// gradients) exceed the memory budget. Run before anything is allocated.
///
/// # Errors
/// [`Error::Config`] naming the argument by `names`; [`Error::Memory`].
pub fn check_request(
    cfg: &ModelConfig,
    batch: usize,
    entries: usize,
    tolerance: f64,
    names: ArgNames,
) -> Result<()> {
    if batch == 0 {
        return Err(Error::config(names.batch, "must be at least 1"));
    }
    if entries == 0 {
        return Err(Error::config(
            names.entries,
            "must be at least 1 (entries checked per tensor)",
        ));
    }
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(Error::config(
            names.tolerance,
            format!("must be a finite number ≥ 0, got {tolerance}"),
        ));
    }
    // The inputs (clean and noisy), the workspace and the gradients, in f64.
    let (fixed, per) = crate::nn::workspace_bytes(cfg, batch, 8);
    let per = per.saturating_add(2 * 8 * cfg.input as u64);
    let params = crate::memory::bytes(ParamLayout::new(cfg).len, 8);
    crate::memory::check(
        &format!("gradcheck at batch {batch}"),
        per.saturating_mul(batch as u64)
            .saturating_add(fixed)
            .saturating_add(params.saturating_mul(3)),
    )
}

/// The model and batch `sparse-ae gradcheck` checks: weights from `seed`,
/// biases uniform in [−0.2, 0.2), a clean batch uniform in [0, 1) and its
/// noisy input (the model's noise, drawn once). Returns (model, input,
/// clean).
///
/// The biases are random rather than the training start's zeros: with zero
/// biases, a unit that sees only zeros (an all-zero ReLU code, a
/// convolution position over padding alone) sits exactly on its ReLU kink,
/// and no difference quotient of its tensor measures anything.
///
/// # Errors
/// Those of [`Autoencoder::new`], and [`Error::Config`] when `batch` samples
/// of the model's input width overflow the address space.
pub fn random_setup(
    cfg: &ModelConfig,
    seed: u64,
    batch: usize,
) -> Result<(Autoencoder<f64>, Vec<f64>, Vec<f64>)> {
    let values = batch.checked_mul(cfg.input).ok_or_else(|| {
        Error::config(
            "--batch",
            format!(
                "{batch} samples of {} features overflow the address space",
                cfg.input
            ),
        )
    })?;
    let mut model = Autoencoder::<f64>::new(cfg.clone(), seed)?;
    let mut bias_rng = Rng::new(seed ^ 0xb1a5);
    let biases: Vec<_> = model
        .layout()
        .tensors
        .iter()
        .filter(|t| t.kind == ParamKind::Bias)
        .map(ParamInfo::range)
        .collect();
    for r in biases {
        for v in &mut model.params[r] {
            *v = 0.4 * bias_rng.next_f64() - 0.2;
        }
    }
    let mut rng = Rng::new(seed ^ 0xda7a);
    let clean: Vec<f64> = (0..values).map(|_| rng.next_f64()).collect();
    let mut input = clean.clone();
    apply_noise(cfg.noise, &mut rng, &clean, &mut input);
    Ok((model, input, clean))
}

/// A hash of which side of 0 every pre-activation of a ReLU or leaky-ReLU
/// layer is on, every value under an L1 penalty (|h| has its kink at 0,
/// whatever the activation), which values a top-k selection kept, which
/// input won every max-pooling window, and which dead latents the AuxK
/// loss chose.
pub fn kink_fingerprint(model: &Autoencoder<f64>, ws: &Workspace<f64>) -> u64 {
    let mut hash: u64 = ws.pool_fingerprint() ^ ws.auxk_fingerprint().rotate_left(17);
    for (l, spec) in model.config().layers.iter().enumerate() {
        let topk = model.config().topk.is_some_and(|t| t.layer == l);
        let l1 = model.config().l1.is_some_and(|p| p.layer == l);
        if topk || l1 || matches!(spec.act(), Activation::Relu | Activation::LeakyRelu(_)) {
            for &v in &ws.h[l] {
                let side = u64::from(v > 0.0) + 2 * u64::from(topk && v != 0.0);
                hash = (hash ^ side).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    hash
}
