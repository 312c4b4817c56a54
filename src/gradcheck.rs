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
//!    there, so what is left is noise, σ² = mean(Δ⁴f²)/70 over the windows
//!    of five points on one smooth piece of f (one kink fingerprint, below),
//!    and at least ε·Σ|L_k| over the parts the tensor moves (their own
//!    rounding). With fewer than [`NOISE_WINDOWS`] such windows, lines at
//!    h/8, h/64 and h/512 add theirs.
//! 2. **Sampled entries**: the fourth-order central difference
//!    `n = [8·(f(p+s) − f(p−s)) − (f(p+2s) − f(p−2s))] / 12s` (truncation
//!    O(s⁴)) at the largest step s of h, h/4, h/16 whose four points lie on
//!    the unperturbed point's piece, whose round-off is at most
//!    R_s = 10σ/s (ten standard deviations of 0.95σ/s). The error of an
//!    entry is `|a − n| / max(|a|, |n|, 10⁻³·g, R_s/10⁻⁶)`, where g is the
//!    largest analytic magnitude in the tensor: an entry is judged relative
//!    to its own size while a difference quotient can resolve it to six
//!    digits, and relative to R_s/10⁻⁶ (the smallest gradient a difference
//!    can resolve to 10⁻⁶) or to 10⁻³·g below that. An error above the
//!    tolerance is thus always larger than the quotient's round-off.
//! 3. **A directional derivative**: along a random ±1 direction v over the
//!    whole tensor, gᵀv against the difference quotient at steps s and s/2
//!    (s = h, divided by 4 while a perturbation crosses a kink, down to
//!    h/4⁹), judged against `max(|gᵀv|, |n|, E/10⁻⁶)` with
//!    E = |n(s) − n(s/2)| + 10σ/(s/2) (truncation estimated by Richardson,
//!    plus round-off). gᵀv sums every entry, so it is ~√len times larger
//!    than a typical entry and the check resolves errors spread over the
//!    whole tensor that sampling misses.
//!
//! Checks run the model in f64. The default tolerance is 10⁻⁶.
//!
//! ReLU and leaky ReLU are not differentiable at 0, max pooling is not
//! where two inputs of a window tie, and a difference quotient taken across
//! such a kink measures nothing. The loss function therefore also
//! returns a fingerprint of which side of every kink each pre-activation is
//! on ([`kink_fingerprint`]); points with one fingerprint lie on one smooth
//! piece of the loss. An entry whose perturbations change the fingerprint at
//! every step is skipped and counted in [`TensorCheck::skipped`], never
//! silently passed. A tensor of which every sampled entry and every
//! directional step crosses a kink, or along which kinks are too dense for
//! [`NOISE_WINDOWS`] kink-free windows even at h/512 (its round-off unknown),
//! measured nothing: its verdict is [`Verdict::AtKink`], neither a pass nor
//! a failure, and a report in which no tensor measured anything is
//! [`Verdict::AtKink`] as a whole. A non-finite analytic gradient or loss
//! fails whatever the kinks.
//!
//! So the gradient of a piecewise-smooth model is compared only with
//! differences taken on its own smooth piece, and every comparison allows
//! for the difference's measured round-off: a correct gradient passes
//! however many entries are sampled. (The round-off was once taken from
//! lines free of kinks only; a convolution's bias moves thousands of ReLU
//! pre-activations, none was found, and the unknown round-off counted as 0:
//! `sparse-ae gradcheck --preset conv` failed a correct gradient at 3 of 10
//! seeds.)

use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::nn::sparsity::KL_CLAMP;
use crate::nn::{
    Autoencoder, ModelConfig, ParamInfo, ParamKind, ParamLayout, Workspace, apply_noise,
};
use crate::rng::Rng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use std::fmt;
use std::ops::Range;

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
    /// a kink (ReLU, leaky ReLU, an L1 penalty's |h|, a max-pool winner, a
    /// top-k or AuxK selection, a KL clamp) at each of the steps h, h/4 and
    /// h/16, or because the tensor's round-off could not be measured.
    pub skipped: usize,
    /// The largest error among them.
    pub max_rel_err: f64,
    /// The entry with that error, and its analytic and numeric gradients.
    pub worst: (usize, f64, f64),
    /// The estimated round-off σ of the loss differences (ECnoise); NaN if
    /// kinks left too few windows to measure it.
    pub noise: f64,
    /// R = 10σ/h, the largest round-off of an entry's difference quotient
    /// at step h (16·R at h/16).
    pub resolution: f64,
    /// The directional check's error (NaN when it crossed a kink at every
    /// step, see `dir_at_kink`).
    pub dir_err: f64,
    /// The directional derivative gᵀv, analytic and numeric.
    pub dir: (f64, f64),
    /// The step s of the directional check (NaN if it measured nothing): h,
    /// or h/4ᵏ when the larger steps crossed a kink.
    pub dir_step: f64,
    /// Whether every step of the directional check crossed a kink (or the
    /// round-off could not be measured), so that it measured nothing.
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
    /// directional check crossed a kink, or kinks were too dense to measure
    /// the round-off (for a report: in every tensor).
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
            "{:<22} {:>8} {:>8} {:>8} {:>11} {:>14} {:>14} {:>10} {:>8} {:>10}  status",
            "tensor",
            "entries",
            "checked",
            "at kink",
            "max rel err",
            "analytic",
            "numeric",
            "dir err",
            "dir step",
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
            let (dir, step) = if t.dir_at_kink {
                ("at kink".to_string(), "-".to_string())
            } else {
                (format!("{:.2e}", t.dir_err), format!("{:.1e}", t.dir_step))
            };
            writeln!(
                f,
                "{:<22} {:>8} {:>8} {:>8} {err:>11} {analytic:>14} {numeric:>14} {dir:>10} {step:>8} {resolves:>10}  {status}",
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

/// The steps a sampled entry is tried at: h, h/4, h/16.
const ENTRY_STEPS: usize = 3;

/// The steps the directional check is tried at: h, h/4, …, h/4⁹.
const DIR_STEPS: usize = 10;

/// The lines of 33 points measured for the round-off at most: τ = h, h/8,
/// h/64, h/512.
const NOISE_LINES: usize = 4;

/// The kink-free windows of five points the round-off is averaged over at
/// least.
pub const NOISE_WINDOWS: usize = 8;

/// Compares `analytic` with central differences of `loss` for every tensor of
/// `layout`. `params` is perturbed and restored entry by entry. `loss` returns
/// the loss and a fingerprint of the kink sides (0 for a smooth model):
/// equal fingerprints say two points are on one smooth piece. An entry is
/// differenced at the largest step whose perturbed fingerprints equal the
/// unperturbed one, and skipped if there is none (see the module doc).
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
    check_ranges(
        layout,
        params,
        analytic,
        |p, _| loss(p),
        opts,
        &mut |_, _| {},
    )
}

/// [`check_parts`] with a loss that is also told which range of `params`
/// differs from the unperturbed point (the parameters outside it have their
/// unperturbed values), so it can copy that range alone.
fn check_ranges<const K: usize>(
    layout: &ParamLayout,
    params: &mut [f64],
    analytic: &[f64],
    mut loss: impl FnMut(&[f64], Range<usize>) -> ([f64; K], u64),
    opts: &CheckOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Report {
    assert_eq!(params.len(), layout.len, "check_fn: params length");
    assert_eq!(analytic.len(), layout.len, "check_fn: gradient length");
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let (base, base_print) = loss(params, 0..0);
    // f(p) relative to the base point, whether a kink was crossed, and the
    // size of the parts p moves (Σ|L_k(p₀)| over the parts that changed).
    let mut f = |p: &[f64], r: Range<usize>| {
        let (parts, print) = loss(p, r);
        let d: f64 = parts.iter().zip(&base).map(|(a, b)| a - b).sum();
        let moved: f64 = parts
            .iter()
            .zip(&base)
            .filter(|(a, b)| a != b)
            .map(|(_, b)| b.abs())
            .sum();
        Eval { d, print, moved }
    };
    let h = opts.step;
    let mut tensors = Vec::with_capacity(layout.tensors.len());
    let total: usize = layout
        .tensors
        .iter()
        .map(|t| t.len().min(opts.max_entries))
        .sum();
    let mut done = 0;
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
        let base_t = params[t.range()].to_vec();
        let line = Line {
            offset: t.offset,
            dir: &dir,
            base: &base_t,
        };
        let moved = match line.at(&mut f, params, 1.0).moved {
            // Nothing moves at all: judge it against every part's rounding.
            0.0 => base.iter().map(|b| b.abs()).sum(),
            m => m,
        };
        // None: no window along the tensor is free of kinks, and without
        // the round-off no difference quotient can be judged.
        let noise = noise_along(&mut f, params, &line, h, moved, base_print);
        let resolution = noise.map_or(f64::NAN, |n| SIGMAS * n / h);
        let mut row = TensorCheck {
            name: t.name.clone(),
            len,
            checked: 0,
            skipped: 0,
            max_rel_err: 0.0,
            worst: (0, 0.0, 0.0),
            noise: noise.unwrap_or(f64::NAN),
            resolution,
            dir_err: 0.0,
            dir: (0.0, 0.0),
            dir_step: f64::NAN,
            dir_at_kink: false,
        };
        for &i in &picks {
            done += 1;
            progress(done, total);
            let Some(noise) = noise else {
                row.skipped += 1;
                continue;
            };
            let k = t.offset + i;
            let saved = params[k];
            let quot = entry_quotient(&mut f, params, k, h, base_print);
            params[k] = saved;
            let Some((numeric, s)) = quot else {
                row.skipped += 1;
                continue;
            };
            row.checked += 1;
            let a = analytic[k];
            // The round-off of a quotient at step s: R·h/s.
            let denom = a
                .abs()
                .max(numeric.abs())
                .max(1e-3 * scale)
                .max(SIGMAS * noise / s / RESOLVE);
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
        // So does a non-finite loss at the point checked, or along the
        // round-off's line.
        if base.iter().any(|l| !l.is_finite()) || noise.is_some_and(f64::is_nan) {
            row.max_rel_err = f64::NAN;
        }
        let gv: f64 = a_t.iter().zip(&dir).map(|(g, v)| g * v).sum();
        let measured = noise.and_then(|n| directional(&mut f, params, &line, h, n, base_print));
        match measured {
            Some((numeric, bound, s)) => {
                let denom = gv.abs().max(numeric.abs()).max(bound / RESOLVE);
                row.dir = (gv, numeric);
                row.dir_step = s;
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
    /// The fingerprint of the kink sides there: points with equal prints
    /// lie on one smooth piece of the loss.
    print: u64,
    /// Σ|L_k(p₀)| over the parts the perturbation changed.
    moved: f64,
}

/// A line through the unperturbed point along `dir` on the tensor at
/// `offset`, whose unperturbed values are `base`.
struct Line<'a> {
    offset: usize,
    dir: &'a [f64],
    base: &'a [f64],
}

impl Line<'_> {
    /// f at `params + s·dir`, restoring `params`.
    fn at(
        &self,
        f: &mut impl FnMut(&[f64], Range<usize>) -> Eval,
        params: &mut [f64],
        s: f64,
    ) -> Eval {
        let r = self.offset..self.offset + self.dir.len();
        for ((p, b), d) in params[r.clone()].iter_mut().zip(self.base).zip(self.dir) {
            *p = b + s * d;
        }
        let out = f(params, r.clone());
        params[r].copy_from_slice(self.base);
        out
    }
}

/// The fourth-order quotient of f in entry `k` of `params` at the largest
/// step s of h, h/4, h/16 whose points ±s, ±2s stay on the unperturbed
/// point's side of every kink; `None` if each crosses one. Returns (quotient,
/// s). Leaves `params[k]` perturbed: the caller restores it.
fn entry_quotient(
    f: &mut impl FnMut(&[f64], Range<usize>) -> Eval,
    params: &mut [f64],
    k: usize,
    h: f64,
    base_print: u64,
) -> Option<(f64, f64)> {
    let saved = params[k];
    let mut s = h;
    for _ in 0..ENTRY_STEPS {
        let mut vals = [0.0; 4];
        let mut crossed = false;
        for (v, d) in vals.iter_mut().zip([s, -s, 2.0 * s, -2.0 * s]) {
            params[k] = saved + d;
            let e = f(params, k..k + 1);
            *v = e.d;
            if e.print != base_print {
                crossed = true;
                break;
            }
        }
        if !crossed {
            return Some((quotient(vals, s), s));
        }
        s /= 4.0;
    }
    None
}

/// The round-off σ of f near `params`, by ECnoise: 33 points τ apart along
/// the unit direction dir/√len (the unperturbed point first), σ² =
/// mean(Δ⁴f²)/70 over the windows of five consecutive points (Δ⁴ of
/// independent noise has variance 70σ²). τ = h, the scale of the steps the
/// noise is for: at much shorter spacings a deep stack's rounding errors are
/// not independent from point to point (its intermediate values move by a
/// few ulps or not at all) and Δ⁴ cancels them, so σ came out several times
/// too small for the steps of h. The smooth part of Δ⁴ (of order τ⁴·f⁗,
/// 10⁻¹⁶·f⁗) can only make σ larger, a less sensitive check, never a false
/// failure.
///
/// Only windows whose five points have one kink fingerprint count (they lie
/// on one smooth piece of f, not necessarily the unperturbed point's): a
/// window across a kink holds the kink's jump in slope, not noise. A
/// convolution's bias moves thousands of pre-activations, and then every
/// line h apart crosses kinks. While fewer than [`NOISE_WINDOWS`] windows are
/// clean, another line is measured at τ/8, and the windows of all lines
/// count, down to τ = h/512. `None` if fewer are found.
///
/// σ is at least ε·`moved` (`moved` being Σ|L_k| over the parts the tensor
/// changes): each part is rounded at its own magnitude, and a window that
/// does not change a part's rounded value (gradients of 10⁻²⁰, the first
/// layers of a 30-layer sigmoid stack) measures no noise at all. A loss
/// that is not finite on a clean window makes σ NaN.
fn noise_along(
    f: &mut impl FnMut(&[f64], Range<usize>) -> Eval,
    params: &mut [f64],
    line: &Line,
    h: f64,
    moved: f64,
    base_print: u64,
) -> Option<f64> {
    let unit = 1.0 / (line.dir.len() as f64).sqrt();
    let mut tau = h;
    let (mut sq, mut windows) = (0.0, 0usize);
    for _ in 0..NOISE_LINES {
        let mut pts = [(0.0, base_print); 33];
        for (i, v) in pts.iter_mut().enumerate().skip(1) {
            let e = line.at(f, params, i as f64 * tau * unit);
            *v = (e.d, e.print);
        }
        for w in pts.windows(5).filter(|w| w.iter().all(|p| p.1 == w[0].1)) {
            let d4 = w[0].0 - 4.0 * w[1].0 + 6.0 * w[2].0 - 4.0 * w[3].0 + w[4].0;
            sq += d4 * d4;
            windows += 1;
        }
        if windows >= NOISE_WINDOWS {
            let sigma = (sq / windows as f64 / 70.0).sqrt();
            // NaN (a loss not finite) stays NaN.
            return Some(if sigma.is_nan() {
                sigma
            } else {
                sigma.max(f64::EPSILON * moved)
            });
        }
        tau /= 8.0;
    }
    None
}

/// The directional derivative of f along dir (entries ±1) by fourth-order
/// differences at steps s and s/2, with s = h divided by 4 while a
/// perturbation crosses a kink. Returns the s/2 value, its error bound
/// |n(s) − n(s/2)| + SIGMAS·σ/(s/2) and s, or `None` if every step crosses a
/// kink (a NaN loss that crosses none is returned as it is, and fails).
fn directional(
    f: &mut impl FnMut(&[f64], Range<usize>) -> Eval,
    params: &mut [f64],
    line: &Line,
    h: f64,
    noise: f64,
    base_print: u64,
) -> Option<(f64, f64, f64)> {
    let mut s = h;
    'shrink: for _ in 0..DIR_STEPS {
        let mut q = [0.0; 2];
        for (qi, step) in q.iter_mut().zip([s, s / 2.0]) {
            let mut vals = [0.0; 4];
            for (v, d) in vals.iter_mut().zip([step, -step, 2.0 * step, -2.0 * step]) {
                let e = line.at(f, params, d);
                *v = e.d;
                if e.print != base_print {
                    s /= 4.0;
                    continue 'shrink;
                }
            }
            *qi = quotient(vals, step);
        }
        return Some((q[1], (q[0] - q[1]).abs() + SIGMAS * noise / (s / 2.0), s));
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
    check_model_with_progress(model, input, target, batch, opts, &mut |_, _| {})
}

/// [`check_model`] that tells `progress(n, total)` as it takes up the n-th
/// of the `total` entries it samples (over all tensors), for a display of
/// how far a long check is: a check of every entry of a wide model
/// evaluates the loss some ten times per entry.
///
/// # Errors
/// As [`check_model`].
pub fn check_model_with_progress(
    model: &Autoencoder<f64>,
    input: &[f64],
    target: &[f64],
    batch: usize,
    opts: &CheckOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report> {
    crate::parallel::start_global_pool(None)?;
    let mut grads = vec![0.0; model.params.len()];
    model.loss_and_grad(
        &mut model.try_workspace(batch)?,
        input,
        target,
        Some(&mut grads),
    )?;
    grads_checked(model, input, target, batch, &grads, opts, progress)
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
    grads_checked(model, input, target, batch, grads, opts, &mut |_, _| {})
}

/// [`check_model_grads`] with [`check_model_with_progress`]'s `progress`.
fn grads_checked(
    model: &Autoencoder<f64>,
    input: &[f64],
    target: &[f64],
    batch: usize,
    grads: &[f64],
    opts: &CheckOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Report> {
    crate::parallel::start_global_pool(None)?;
    let mut ws = model.try_workspace(batch)?;
    model.loss_and_grad(&mut ws, input, target, None)?;
    let mut probe = model.clone();
    let mut params = model.params.clone();
    let layout = model.layout().clone();
    // The range the probe's parameters last took from p: they are copied
    // range by range (a whole copy of a wide model's parameters for every
    // evaluation cost up to a third of the check's time).
    let mut last = 0..0;
    Ok(check_ranges(
        &layout,
        &mut params,
        grads,
        |p, r| {
            if last != r {
                // The last range is back at its unperturbed values in p.
                probe.params[last.clone()].copy_from_slice(&p[last.clone()]);
                last = r.clone();
            }
            probe.params[r.clone()].copy_from_slice(&p[r]);
            let l = probe
                .loss_and_grad(&mut ws, input, target, None)
                .map(|l| [l.recon, l.l1, l.kl, l.l2, l.auxk])
                .unwrap_or([f64::NAN; 5]);
            (l, kink_fingerprint(&probe, &ws))
        },
        opts,
        progress,
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
/// Those of [`Autoencoder::new`]; [`Error::Config`] when `batch` samples
/// of the model's input width overflow the address space, and
/// [`Error::Memory`] when the two batches exceed the memory budget or the
/// system refuses them.
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
    // Two batches of f64, checked against the memory budget and reserved
    // fallibly: a batch too large was an abort on the allocation.
    let what = format!("a gradient check's batch of {batch} samples");
    crate::memory::check(&what, crate::memory::bytes(values, 16))?;
    let mut clean = crate::memory::try_with_capacity(&what, values)?;
    clean.extend((0..values).map(|_| rng.next_f64()));
    let mut input = crate::memory::try_vec(&what, values, 0.0)?;
    input.copy_from_slice(&clean);
    apply_noise(cfg.noise, &mut rng, &clean, &mut input);
    Ok((model, input, clean))
}

/// A hash of which side of 0 every pre-activation of a ReLU or leaky-ReLU
/// layer is on, every value under an L1 penalty (|h| has its kink at 0,
/// whatever the activation), which values a top-k selection kept, which
/// input won every max-pooling window, which dead latents the AuxK loss
/// chose, and which KL ρ̂ are clamped. Two points with one fingerprint lie
/// on one smooth piece of the loss (but for a kink crossed and crossed back
/// between them).
pub fn kink_fingerprint(model: &Autoencoder<f64>, ws: &Workspace<f64>) -> u64 {
    let mut bits = Bits::new(ws.pool_fingerprint() ^ ws.auxk_fingerprint().rotate_left(17));
    let cfg = model.config();
    for (l, spec) in cfg.layers.iter().enumerate() {
        let topk = cfg.topk.is_some_and(|t| t.layer == l);
        let l1 = cfg.l1.is_some_and(|p| p.layer == l);
        if topk {
            for &v in &ws.h[l] {
                bits.push(v > 0.0);
                bits.push(v != 0.0);
            }
        } else if l1 || matches!(spec.act(), Activation::Relu | Activation::LeakyRelu(_)) {
            for &v in &ws.h[l] {
                bits.push(v > 0.0);
            }
        }
    }
    if cfg.kl.is_some() {
        for &r in ws.rho_hat() {
            bits.push(r < KL_CLAMP);
            bits.push(r > 1.0 - KL_CLAMP);
        }
    }
    bits.finish()
}

/// Bits packed 64 to a word, each word mixed into an FNV-style hash (one
/// multiplication per 64 values, not per value).
struct Bits {
    hash: u64,
    word: u64,
    n: u32,
}

impl Bits {
    fn new(seed: u64) -> Bits {
        Bits {
            hash: seed,
            word: 0,
            n: 0,
        }
    }

    fn push(&mut self, bit: bool) {
        self.word |= u64::from(bit) << self.n;
        self.n += 1;
        if self.n == 64 {
            self.mix();
        }
    }

    fn mix(&mut self) {
        self.hash = (self.hash ^ self.word)
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(29);
        self.word = 0;
        self.n = 0;
    }

    fn finish(mut self) -> u64 {
        // The count of bits in the last word tells 0-padding from values.
        self.word ^= u64::from(self.n) << 56;
        self.mix();
        self.hash
    }
}
