//! Vector eˣ, σ(z), tanh z and ln(1 + y) for the SIMD paths, with their
//! measured error against the `f64` functions.
//!
//! Every function is built from one exponential of a non-positive argument,
//! e = e^(−|z|) ∈ [0, 1], so nothing overflows:
//! - σ(z) = 1/(1 + e) for z ≥ 0 and e/(1 + e) for z < 0;
//! - tanh z = sign(z)·(1 − e₂)/(1 + e₂) with e₂ = e^(−2|z|), or an odd
//!   polynomial z + z³·P(z²) for |z| < 0.625, where 1 − e₂ would cancel;
//! - ln(1 + e^(−|z|)) (the tail of BCE from logits) = 2·atanh(s) with
//!   s = e/(2 + e) ∈ [0, 1/3], a series in s² that needs no range reduction and
//!   keeps its relative accuracy for tiny e.
//!
//! The constants below bound the error of these vector functions *and* of the
//! scalar `f32` path against the exact (`f64`) value at the same `f32` input.
//! `tests/elementwise_paths.rs` measures them on every path over z in
//! [−100, 100] every 10⁻³, plus ±0, ±∞, NaN, subnormals and the extremes of
//! `f32`, and asserts these bounds (`bit_pattern_sweep`, run on demand,
//! checks them on 3.6·10⁷ more points). NaN propagates through every function; σ(+∞) = 1,
//! σ(−∞) = 0 and tanh(±∞) = ±1.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::simd::Simd;

// Measured maxima (AVX2 = AVX-512 | scalar libm), over the sweep and over
// every 61st f32 bit pattern with |z| ≤ 128 (`bit_pattern_sweep`):
// σ rel 1.76e-7 | 1.70e-7, σ abs 8.9e-8 | 8.9e-8; tanh abs 8.9e-8 | 1.03e-7,
// tanh rel 1.48e-7 | 1.65e-7; ln(1+e^−|z|) rel 2.18e-7 | 1.18e-7, abs
// 1.09e-7 | 5.5e-8. (2⁻²⁴ ≈ 5.96e-8, so these are 2–4 ulp.)

/// Max |σ̃(z) − σ(z)| / σ(z) where σ(z) ≥ 2⁻¹²⁶ (z ≥ −87.33).
pub const SIGMOID_MAX_REL_ERR: f64 = 2.0e-7;
/// Max |σ̃(z) − σ(z)| everywhere (below 2⁻¹²⁶ results are subnormal and only
/// absolutely accurate).
pub const SIGMOID_MAX_ABS_ERR: f64 = 1.0e-7;
/// Max |tanh̃ z − tanh z|.
pub const TANH_MAX_ABS_ERR: f64 = 1.2e-7;
/// Max |tanh̃ z − tanh z| / |tanh z| where |tanh z| ≥ 2⁻¹²⁶.
pub const TANH_MAX_REL_ERR: f64 = 2.0e-7;
/// Max relative error of ln(1 + e^(−|z|)) where it is ≥ 2⁻¹²⁶ (|z| ≤ 87.33).
pub const LN1P_EXP_MAX_REL_ERR: f64 = 2.5e-7;
/// Max absolute error of ln(1 + e^(−|z|)) everywhere.
pub const LN1P_EXP_MAX_ABS_ERR: f64 = 1.2e-7;

/// ln 2 split for Cody–Waite reduction: `LN2_HI` = 355/512 has 9 significant bits, so
/// n·`LN2_HI` is exact for |n| ≤ 2¹⁵.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Minimax coefficients of (eʳ − 1 − r)/r² on |r| ≤ ln2/2, highest first
/// (Cephes `expf`).
const EXP_P: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// Minimax coefficients of (tanh z − z)/z³ in z² on |z| < 0.625, highest first
/// (Cephes `tanhf`).
const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_909e-2,
    -5.373_971_6e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];
/// |z| below which tanh uses the odd polynomial.
const TANH_POLY_MAX: f32 = 0.625;
/// Taylor coefficients of (atanh(s)/s − 1)/s² = Σ s²ᵏ/(2k + 3), highest first;
/// on s² ≤ 1/9 the first omitted term is below 2·10⁻⁸ relative.
const ATANH_P: [f32; 7] = [
    1.0 / 15.0,
    1.0 / 13.0,
    1.0 / 11.0,
    1.0 / 9.0,
    1.0 / 7.0,
    1.0 / 5.0,
    1.0 / 3.0,
];

/// Horner evaluation of the polynomial with coefficients `c` (highest first).
#[inline(always)]
fn horner<S: Simd>(s: S, x: S::V, c: &[f32]) -> S::V {
    let mut p = s.splat(c[0]);
    for &ci in &c[1..] {
        p = s.fma(p, x, s.splat(ci));
    }
    p
}

/// eˣ for x ≤ 0 (x < −104 gives 0; NaN propagates).
///
/// x = n·ln2 + r with n = round(x/ln2), |r| ≤ ln2/2; eʳ = 1 + r + r²·P(r);
/// eˣ = eʳ·2ⁿ. Subnormal results are rounded correctly. Relative error
/// ≤ 2 ulp for results ≥ 2⁻¹²⁶.
#[inline(always)]
pub(crate) fn exp_nonpos<S: Simd>(s: S, x: S::V) -> S::V {
    // `max` returns its second operand when it is NaN.
    let x = s.max(s.splat(-104.0), x);
    let n = s.round(s.mul(x, s.splat(std::f32::consts::LOG2_E)));
    let r = s.fma(n, s.splat(-LN2_HI), x);
    let r = s.fma(n, s.splat(-LN2_LO), r);
    let p = horner(s, r, &EXP_P);
    let er = s.add(s.fma(p, s.mul(r, r), r), s.splat(1.0));
    s.ldexp(er, n)
}

/// σ(z) = 1/(1 + e^(−z)), via e = e^(−|z|): 1/(1 + e) for z ≥ 0, e/(1 + e)
/// otherwise (one division). Error: [`SIGMOID_MAX_REL_ERR`],
/// [`SIGMOID_MAX_ABS_ERR`].
#[inline(always)]
pub(crate) fn sigmoid<S: Simd>(s: S, z: S::V) -> S::V {
    sigmoid_from_exp(s, z, exp_neg_abs(s, z))
}

/// e^(−|z|) (the shared first step of σ and of BCE from logits).
#[inline(always)]
pub(crate) fn exp_neg_abs<S: Simd>(s: S, z: S::V) -> S::V {
    exp_nonpos(s, s.copysign(z, s.splat(-1.0)))
}

/// σ(z) from e = e^(−|z|): 1/(1 + e) for z ≥ 0, e/(1 + e) otherwise.
#[inline(always)]
pub(crate) fn sigmoid_from_exp<S: Simd>(s: S, z: S::V, e: S::V) -> S::V {
    let one = s.splat(1.0);
    let num = s.select(s.ge(z, s.zero()), one, e);
    s.div(num, s.add(one, e))
}

/// tanh z: z + z·t·P(t) with t = z² for |z| < 0.625, else
/// sign(z)·(1 − e)/(1 + e) with e = e^(−2|z|). Error: [`TANH_MAX_ABS_ERR`],
/// [`TANH_MAX_REL_ERR`].
#[inline(always)]
pub(crate) fn tanh<S: Simd>(s: S, z: S::V) -> S::V {
    let one = s.splat(1.0);
    let a = s.abs(z);
    let t = s.mul(z, z);
    let small = s.fma(s.mul(horner(s, t, &TANH_P), t), z, z);
    let e = exp_nonpos(s, s.mul(a, s.splat(-2.0)));
    let large = s.copysign(s.div(s.sub(one, e), s.add(one, e)), z);
    s.select(s.lt(a, s.splat(TANH_POLY_MAX)), small, large)
}

/// ln(1 + y) for y ∈ [0, 1]: 2·atanh(s) with s = y/(2 + y),
/// = 2s + 2s·s²·A(s²). Keeps relative accuracy as y → 0. Error of
/// ln(1 + e^(−|z|)): [`LN1P_EXP_MAX_REL_ERR`], [`LN1P_EXP_MAX_ABS_ERR`].
#[inline(always)]
pub(crate) fn ln_1p_unit<S: Simd>(s: S, y: S::V) -> S::V {
    let sv = s.div(y, s.add(s.splat(2.0), y));
    let s2 = s.add(sv, sv);
    let t = s.mul(sv, sv);
    s.fma(s.mul(s2, t), horner(s, t, &ATANH_P), s2)
}
