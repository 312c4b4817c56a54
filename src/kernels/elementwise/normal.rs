//! Standard normal draws from pairs of random 32-bit words by the Box–Muller
//! transform, branch-free over `Simd` lanes, with the measured error of the
//! vector path against the `f64` transform of the same uniforms.
//!
//! From the words a and b: u₁ = (⌊a/2⁸⌋ + 1)·2⁻²⁴ ∈ (0, 1] and
//! u₂ = ⌊b/2⁸⌋·2⁻²⁴ ∈ [0, 1) (exact in `f32`); then
//! r = √(−2 ln u₁), z₁ = r·cos 2πu₂, z₂ = r·sin 2πu₂, two independent N(0, 1)
//! draws. As u₁ ≥ 2⁻²⁴, |z| ≤ √(48 ln 2) ≈ 5.77: the normal's mass beyond
//! that (8·10⁻⁹) is not drawn.
//!
//! The vector path (here) computes
//! - ln u₁ = e·ln 2 + ln m with u₁ = m·2ᵉ, m ∈ (√½, √2] (exponent and
//!   mantissa from the bits; m − 1 is exact), ln(1 + f) by the minimax
//!   polynomial of Cephes `logf`;
//! - the angle from the integer k = ⌊b/2⁸⌋: quadrant q = round(k/2²²) and
//!   a = (k − q·2²²)·(π/2)/2²² ∈ [−π/4, π/4], sin a and cos a by the minimax
//!   polynomials of Cephes `sinf`/`cosf`, then the quarter turns q by
//!   swapping and negating (q = 4 is a full turn).
//!
//! The scalar twin (`scalar::box_muller`) evaluates the same formulas in
//! `f64` on the same uniforms, bit for bit. The error of a vector draw z̃
//! against it is bounded relative to the radius r (the error of r̃ plus that
//! of the rotation), |z̃ − z| ≤ [`NORMAL_MAX_REL_ERR`]·r; as r ≤ 5.77, also
//! |z̃ − z| ≤ [`NORMAL_MAX_ABS_ERR`]. `tests/noise_paths.rs` asserts the
//! bound on a strided sweep of u₁ and u₂ with the extremes
//! (`box_muller_error`, every path), and on demand measures r̃ on all 2²⁴
//! values of u₁ and the rotation on all 2²⁴ values of u₂
//! (`box_muller_exhaustive`).

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::simd::Simd;

// Measured maxima over all 2²⁴ values (AVX2 = AVX-512): |r̃ − r|/r 9.75e-8
// (|r̃ − r| 3.53e-7); |z̃ − r̃·(cos, sin)|/r̃ 1.42e-7 with the final
// product's rounding (the angle's own rounding is up to 2⁻²⁴·π/4, the
// polynomials about 1 ulp); each u₁ paired with one u₂, |z̃ − z| reached
// 7.0e-7 and |z̃ − z|/r 2.05e-7. (2⁻²⁴ ≈ 5.96e-8.)

/// Max |z̃ − z| / r of a vector draw against the `f64` transform of the same
/// uniforms, r = √(−2 ln u₁) the pair's radius: the sum of the measured
/// maxima of r̃'s relative error and of the rotation's.
pub const NORMAL_MAX_REL_ERR: f64 = 2.5e-7;
/// Max |z̃ − z| (= [`NORMAL_MAX_REL_ERR`] at the largest radius, 5.77).
pub const NORMAL_MAX_ABS_ERR: f64 = 1.45e-6;

/// 2⁻²⁴: one step of the 24-bit uniforms.
pub(crate) const UNIT: f32 = 1.0 / (1u32 << 24) as f32;

/// ln 2 split for exact e·`LN2_HI` (9 significant bits), Cephes `logf`.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// (ln(1 + f) − f + f²/2)/f³ on f ∈ [√½ − 1, √2 − 1], highest first (Cephes `logf`).
const LOG_P: [f32; 9] = [
    7.037_683_6e-2,
    -1.151_461e-1,
    1.167_699_9e-1,
    -1.242_014_1e-1,
    1.424_932_3e-1,
    -1.666_805_8e-1,
    2.000_071_5e-1,
    -2.499_999_4e-1,
    3.333_333e-1,
];
/// (sin a − a)/a³ in a² on |a| ≤ π/4, highest first (Cephes `sinf`).
const SIN_P: [f32; 3] = [-1.951_529_6e-4, 8.332_161e-3, -1.666_665_5e-1];
/// (cos a − 1 + a²/2)/a⁴ in a² on |a| ≤ π/4, highest first (Cephes `cosf`).
const COS_P: [f32; 3] = [2.443_315_7e-5, -1.388_731_6e-3, 4.166_664_6e-2];

/// Horner evaluation of the polynomial with coefficients `c` (highest first).
#[inline(always)]
fn horner<S: Simd>(s: S, x: S::V, c: &[f32]) -> S::V {
    let mut p = s.splat(c[0]);
    for &ci in &c[1..] {
        p = s.fma(p, x, s.splat(ci));
    }
    p
}

/// ln x for positive normal x (here u₁ ∈ [2⁻²⁴, 1]).
#[inline(always)]
fn ln_normal<S: Simd>(s: S, x: S::V) -> S::V {
    let one = s.splat(1.0);
    let bits = s.to_bits(x);
    let mant = s.u_or(s.u_and(bits, s.u_splat(0x007f_ffff)), s.to_bits(one));
    let m = s.bits_to_float(mant);
    // m ∈ [1, 2); halve it above √2 and count one more in the exponent.
    let big = s.gt(m, s.splat(std::f32::consts::SQRT_2));
    let m = s.select(big, s.mul(m, s.splat(0.5)), m);
    let biased = s.u_to_f32(s.u_shr::<23>(bits));
    let e = s.sub(biased, s.select(big, s.splat(126.0), s.splat(127.0)));
    let f = s.sub(m, one);
    let z = s.mul(f, f);
    let y = s.mul(s.mul(f, z), horner(s, f, &LOG_P));
    let y = s.fma(e, s.splat(LN2_LO), y);
    let y = s.fma(z, s.splat(-0.5), y);
    s.fma(e, s.splat(LN2_HI), s.add(f, y))
}

/// The Box–Muller pair (z₁, z₂) = r·(cos 2πu₂, sin 2πu₂), r = √(−2 ln u₁),
/// from the words `a` (u₁) and `b` (u₂); see the module doc.
/// Error: [`NORMAL_MAX_REL_ERR`], [`NORMAL_MAX_ABS_ERR`].
#[inline(always)]
pub(crate) fn box_muller<S: Simd>(s: S, a: S::U, b: S::U) -> (S::V, S::V) {
    let one = s.splat(1.0);
    let u1 = s.mul(
        s.u_to_f32(s.u_add(s.u_shr::<8>(a), s.u_splat(1))),
        s.splat(UNIT),
    );
    let r = s.sqrt(s.mul(s.splat(-2.0), ln_normal(s, u1)));
    // k ∈ [0, 2²⁴), q = round(k/2²²) ∈ 0..=4, k − q·2²² ∈ [−2²¹, 2²¹) as i32.
    let k = s.u_shr::<8>(b);
    let q = s.u_shr::<22>(s.u_add(k, s.u_splat(1 << 21)));
    let f = s.u_to_f32(s.u_sub(k, s.u_shl::<22>(q)));
    let x = s.mul(
        f,
        s.splat((std::f64::consts::FRAC_PI_2 / (1u32 << 22) as f64) as f32),
    );
    let x2 = s.mul(x, x);
    let sin = s.fma(s.mul(x, x2), horner(s, x2, &SIN_P), x);
    let cos = s.fma(
        s.mul(x2, x2),
        horner(s, x2, &COS_P),
        s.fma(x2, s.splat(-0.5), one),
    );
    // Odd q: a quarter turn, (cos, sin) → (−sin, cos); q & 2: a half turn,
    // both negated (as a flip of the sign bit).
    let even = s.u_none(q, s.u_splat(1));
    let neg_sin = s.bits_to_float(s.u_xor(s.to_bits(sin), s.u_splat(1 << 31)));
    let c = s.select(even, cos, neg_sin);
    let sn = s.select(even, sin, cos);
    let half = s.u_shl::<30>(s.u_and(q, s.u_splat(2)));
    let c = s.bits_to_float(s.u_xor(s.to_bits(c), half));
    let sn = s.bits_to_float(s.u_xor(s.to_bits(sn), half));
    (s.mul(r, c), s.mul(r, sn))
}
