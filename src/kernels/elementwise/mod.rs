//! Elementwise kernels of the training step, dispatched by [`Isa`].
//!
//! Every function here has a scalar twin in [`scalar`] with the same name,
//! generic over [`Real`](super::Real); the `f64` model uses those directly.
//! Matrices are contiguous row-major `(rows, cols)` slices.
//!
//! The `isa` argument picks the path: [`Isa::Scalar`] runs the twin, and
//! [`Isa::Avx2`] / [`Isa::Avx512`] / [`Isa::Neon`] run 8-, 16- or 4-lane
//! bodies (`body.rs`, over the vocabulary of `simd.rs`) with masked tails. Every function **panics if
//! `isa` is not available on this CPU** ([`Isa::is_available`]); pass
//! [`Isa::active`] unless testing a path on purpose.
//!
//! Agreement with the twin: the SIMD paths do the twin's IEEE operations in
//! the twin's order with no fused multiply-add, so `bias_add`, `col_sum`,
//! `axpy`, `act_backward`, `adam_step`, `adam_step_sum`, `sgd_momentum_step`,
//! `u8_to_f32_scaled`, the gradients of `sq_err` and `l1`, and the linear,
//! ReLU and leaky-ReLU activations are **bit-identical** to it. σ, tanh and
//! the BCE terms use the vector approximations of [`approx`] (error bounds
//! there). The f64 sums of `bce_logits`, `sq_err`, `l1` and `sum_sq` add the
//! same f32 terms in a different but fixed order (deterministic run to run),
//! so they differ from the twin by at most about 2·n·2⁻⁵³·Σ|termᵢ|.

pub mod approx;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;
mod body;
#[cfg(target_arch = "aarch64")]
pub(super) mod neon;
mod noise;
pub mod normal;
pub mod scalar;
pub(super) mod simd;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) mod simd128;

pub use noise::{NoiseStreams, STREAMS};

use super::{Activation, Isa};

/// Returns `isa` after asserting that this CPU can run it.
#[inline]
fn checked(isa: Isa) -> Isa {
    assert!(
        isa.is_available(),
        "kernel path {isa} is not available on this CPU"
    );
    isa
}

/// `match` on the checked `isa`: the scalar twin, or the `#[target_feature]`
/// entry point of the SIMD path with the same name and arguments.
macro_rules! dispatch {
    ($isa:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match checked($isa) {
            Isa::Scalar => scalar::$f($($arg),*),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: `checked` asserted that this CPU runs AVX2 + FMA.
                unsafe { avx2::$f($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                // SAFETY: `checked` asserted that this CPU runs AVX-512F.
                unsafe { avx512::$f($($arg),*) }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                // SAFETY: `checked` asserted that this CPU runs NEON.
                unsafe { neon::$f($($arg),*) }
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => {
                // SAFETY: `checked` asserted the path, which this build
                // compiles in (SIMD128 is a compile-time feature).
                #[allow(unused_unsafe)]
                unsafe { simd128::$f($($arg),*) }
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("kernel path {} is not built for this target", $isa),
        }
    };
}

/// The per-step constants of one Adam update (Keras semantics).
///
/// With t the 1-based step, `lr_t = lr·√(1 − β2ᵗ)/(1 − β1ᵗ)` and the update is
/// `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, `p ← p − lr_t·m/(√v + ε)`.
/// This is Keras' `Adam` (ε is added to √v, not to the bias-corrected √v̂ as in
/// PyTorch); defaults lr 1e-3, β1 0.9, β2 0.999, ε 1e-7. A moment that
/// decays below its floor ([`AdamHyper::floors`]: where its next decay, or
/// lr_t·m, would be subnormal) is set to zero: subnormal arithmetic is slow
/// (an update of moments decaying through that band took 1.6 µs per 4,096
/// values instead of 0.65 on an AMD Zen 5; two orders of magnitude slower
/// on older x86), and such moments move nothing. (A gradient below about
/// 3·10⁻¹⁸, whose square is subnormal, is still taken as it is: testing
/// for it cost every update 25 %.)
/// Every constant (β1, β2, 1 − β1, 1 − β2, lr_t, ε, the floors) is computed
/// in f64 and rounded once to the parameters' type.
///
/// The scalar path divides. The SIMD paths divide too when [`divide`] is
/// set, and then give the scalar path's values bit for bit; otherwise they
/// multiply by the reciprocal of `√v + ε` from the hardware estimate and
/// Newton's method (within 1 ulp, so the step lr_t·m/(√v + ε) is within
/// 2 ulp of the divided one: tested), for CPUs whose divider, shared by `/`
/// and `√`, would bound the update's speed. [`AdamHyper::at_step`] chooses
/// by the running CPU ([`crate::kernels::CpuInfo::adam_divides`]). The
/// moments m and v are the same, bit for bit, on every path.
///
/// [`divide`]: AdamHyper::divide
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// Bias-corrected step size lr·√(1 − β2ᵗ)/(1 − β1ᵗ).
    pub lr_t: f64,
    /// First-moment decay β1.
    pub beta1: f64,
    /// Second-moment decay β2.
    pub beta2: f64,
    /// ε added to √v.
    pub eps: f64,
    /// Whether the SIMD paths divide by `√v + ε` (as the scalar path always
    /// does) rather than multiply by its Newton-refined reciprocal.
    pub divide: bool,
}

impl AdamHyper {
    /// The constants for 1-based step `t`, dividing where the running CPU
    /// divides fast ([`crate::kernels::CpuInfo::adam_divides`]).
    pub fn at_step(lr: f64, beta1: f64, beta2: f64, eps: f64, t: u64) -> AdamHyper {
        // βᵗ is 0 in f64 long before 2³¹ for any β < 1: clamping keeps the
        // exponent an i32 without wrapping (a wrapped t gave 1/(1 − β⁰)).
        let t = t.clamp(1, i32::MAX as u64) as i32;
        let lr_t = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
        AdamHyper {
            lr_t,
            beta1,
            beta2,
            eps,
            divide: crate::kernels::CpuInfo::get().adam_divides(),
        }
    }

    /// The least |m| and v an update keeps, for values whose smallest normal
    /// number is `tiny` (below them: zero): from a first moment of at least
    /// the first, β1·m and lr_t·m are normal, from a second moment of at
    /// least the second, β2·v (each bound raised by 2⁻²⁰ so that rounding it
    /// to the parameters' type keeps it). For f32 and the defaults:
    /// 1.2·10⁻³⁵ and 1.2·10⁻³⁸.
    ///
    /// A bound above `tiny`·2²⁰ is left out (its products may then be
    /// subnormal): a moment that large takes part in the update, and
    /// zeroing it would change training — with β1 = 0 every m, with β2 = 0
    /// every v (a step of lr·m/ε), with β1 = 10⁻³⁷ every |m| < 0.12.
    pub fn floors(&self, tiny: f64) -> (f64, f64) {
        let up = 1.0 + f64::powi(2.0, -20);
        let cap = tiny * f64::powi(2.0, 20);
        // tiny/by where that is small enough to zero (by = 0: none).
        let bound = |by: f64| {
            let b = tiny / by;
            if b <= cap { b } else { tiny }
        };
        let m = tiny.max(bound(self.beta1)).max(bound(self.lr_t)) * up;
        let v = tiny.max(bound(self.beta2)) * up;
        (m, v)
    }
}

/// `x[r, c] += bias[c]` for every row of the row-major `(rows, cols)` slice `x`.
///
/// # Panics
/// If `bias.len() != cols` or `x.len()` is not a multiple of `cols`.
pub fn bias_add(isa: Isa, x: &mut [f32], cols: usize, bias: &[f32]) {
    dispatch!(isa, bias_add(x, cols, bias))
}

/// In place `x[j] ← act(x[j] + bias[j])` on one row: the GEMM epilogue of a
/// dense layer, run on a row of C while it is in cache.
///
/// # Panics
/// If a bias is given and its length differs from the row's.
pub fn bias_act(isa: Isa, x: &mut [f32], bias: Option<&[f32]>, act: Activation) {
    dispatch!(isa, bias_act(x, bias, act))
}

/// In place `x ← act(x)`. NaN propagates through every activation.
pub fn act_forward(isa: Isa, act: Activation, x: &mut [f32]) {
    dispatch!(isa, act_forward(act, x))
}

/// In place `dh ← dh ⊙ act′`, with act′ computed from the activation output `h`
/// (see [`Activation`]).
///
/// # Panics
/// If the lengths differ.
pub fn act_backward(isa: Isa, act: Activation, h: &[f32], dh: &mut [f32]) {
    dispatch!(isa, act_backward(act, h, dh))
}

/// `out[c] = Σ_r x[r, c]`, rows added in increasing order (overwrites `out`).
///
/// # Panics
/// If `out.len() != cols` or `x.len()` is not a multiple of `cols`.
pub fn col_sum(isa: Isa, x: &[f32], cols: usize, out: &mut [f32]) {
    dispatch!(isa, col_sum(x, cols, out))
}

/// Binary cross-entropy from logits, summed: Σᵢ [max(zᵢ,0) − zᵢ·xᵢ + ln(1 + e^(−|zᵢ|))],
/// returned in f64; if `dz` is given, `dzᵢ = scale·(σ(zᵢ) − xᵢ)` (overwritten).
///
/// # Panics
/// If the lengths differ.
pub fn bce_logits(isa: Isa, z: &[f32], x: &[f32], dz: Option<&mut [f32]>, scale: f32) -> f64 {
    dispatch!(isa, bce_logits(z, x, dz, scale))
}

/// Σᵢ (yᵢ − xᵢ)² in f64; if `dy` is given, `dyᵢ = 2·scale·(yᵢ − xᵢ)` (overwritten).
///
/// # Panics
/// If the lengths differ.
pub fn sq_err(isa: Isa, y: &[f32], x: &[f32], dy: Option<&mut [f32]>, scale: f32) -> f64 {
    dispatch!(isa, sq_err(y, x, dy, scale))
}

/// Σᵢ |hᵢ| in f64; if `dh` is given, `dhᵢ += scale·sign(hᵢ)` (accumulates; sign(0) = 0).
///
/// # Panics
/// If the lengths differ.
pub fn l1(isa: Isa, h: &[f32], dh: Option<&mut [f32]>, scale: f32) -> f64 {
    dispatch!(isa, l1(h, dh, scale))
}

/// `y ← y + a·x`.
///
/// # Panics
/// If the lengths differ.
pub fn axpy(isa: Isa, a: f32, x: &[f32], y: &mut [f32]) {
    dispatch!(isa, axpy(a, x, y))
}

/// Σᵢ xᵢ² in f64.
pub fn sum_sq(isa: Isa, x: &[f32]) -> f64 {
    dispatch!(isa, sum_sq(x))
}

/// How kernel path `isa` computes Adam's step on this CPU, for reports:
/// "Adam divides" or "Adam multiplies by reciprocals" ([`AdamHyper::divide`];
/// the scalar path always divides).
pub fn adam_summary(isa: Isa) -> &'static str {
    if isa == Isa::Scalar || crate::kernels::CpuInfo::get().adam_divides() {
        "Adam divides"
    } else {
        "Adam multiplies by reciprocals"
    }
}

/// One fused Adam update over flat slices (see [`AdamHyper`]).
///
/// # Panics
/// If the lengths differ.
pub fn adam_step(isa: Isa, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], h: &AdamHyper) {
    dispatch!(isa, adam_step(p, g, m, v, h))
}

/// [`adam_step`] on the gradient `g0 + g1` (the two halves of a batch),
/// summed as it is read: one pass instead of a sum and an update.
///
/// # Panics
/// If the lengths differ.
pub fn adam_step_sum(
    isa: Isa,
    p: &mut [f32],
    g0: &[f32],
    g1: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
) {
    dispatch!(isa, adam_step_sum(p, g0, g1, m, v, h))
}

/// One SGD-with-momentum update (Keras semantics):
/// `vel ← momentum·vel − lr·g`, `p ← p + vel`.
///
/// # Panics
/// If the lengths differ.
pub fn sgd_momentum_step(
    isa: Isa,
    p: &mut [f32],
    g: &[f32],
    vel: &mut [f32],
    lr: f64,
    momentum: f64,
) {
    dispatch!(isa, sgd_momentum_step(p, g, vel, lr, momentum))
}

/// `dst[i] = src[i]·scale` (bytes to floats, e.g. `scale` = 1/255 maps image
/// bytes onto [0, 1]); exact conversion, one rounding for the product.
///
/// # Panics
/// If the lengths differ.
pub fn u8_to_f32_scaled(isa: Isa, src: &[u8], dst: &mut [f32], scale: f32) {
    dispatch!(isa, u8_to_f32_scaled(src, dst, scale))
}

/// Gaussian input noise: `out[i] = clip(x[i] + std·zᵢ, 0, 1)` with zᵢ a
/// standard normal draw of stream i mod 16 of `streams` (which advance).
///
/// The elements go in blocks of 32: each stream draws two words and turns
/// them into a Box–Muller pair (see [`normal`]), for elements k and 16 + k of
/// the block (a last partial block still steps every stream twice). The
/// words are the same on every path; the scalar twin computes the normals in
/// `f64` and the SIMD paths in `f32` within [`normal::NORMAL_MAX_ABS_ERR`].
/// A NaN `x[i]` gives 0, as `f32::max` does.
///
/// # Panics
/// If the lengths differ.
pub fn gaussian_noise(isa: Isa, streams: &mut NoiseStreams, x: &[f32], out: &mut [f32], std: f32) {
    dispatch!(isa, gaussian_noise(streams, x, out, std))
}

/// Masking noise: `out[i] = 0` with probability p, else `x[i]`, from the
/// word of stream i mod 16 (blocks of 16, one word per stream; a last
/// partial block still steps every stream). Element i is zeroed iff its
/// word's top 24 bits are below ⌈p·2²⁴⌉, so the probability is p to within
/// 2⁻²⁴. Identical on every path.
///
/// # Panics
/// If the lengths differ.
pub fn mask_noise(isa: Isa, streams: &mut NoiseStreams, x: &[f32], out: &mut [f32], p: f64) {
    dispatch!(isa, mask_noise(streams, x, out, p))
}

/// The Box–Muller transform of the words `a[i]`, `b[i]`:
/// `z1[i] = r·cos 2πu₂`, `z2[i] = r·sin 2πu₂`, r = √(−2 ln u₁), with
/// u₁ = (⌊a/2⁸⌋ + 1)·2⁻²⁴ and u₂ = ⌊b/2⁸⌋·2⁻²⁴ (see [`normal`]; the normals
/// of [`gaussian_noise`], exposed to measure their error).
///
/// # Panics
/// If the lengths differ.
pub fn box_muller(isa: Isa, a: &[u32], b: &[u32], z1: &mut [f32], z2: &mut [f32]) {
    dispatch!(isa, box_muller(a, b, z1, z2))
}
