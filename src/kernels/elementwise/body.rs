//! The SIMD kernel bodies, written once over [`Simd`] and instantiated for
//! each instruction set by [`isa_kernels!`].
//!
//! Where the scalar twin is exact elementwise arithmetic (bias, ReLU, leaky
//! ReLU, every derivative, column sums, axpy, the error gradients, Adam, SGD,
//! byte conversion) these bodies perform the *same* IEEE operations in the
//! same order, without fused multiply-adds, so they give the scalar result bit
//! for bit. FMA is used only inside the approximations of [`approx`]. Sums
//! are accumulated in f64 in a fixed order (see [`sum_lanes`]) that differs
//! from the scalar loop only by reassociation.
//!
//! Every closure here is `#[inline(always)]`: a closure does not inherit the
//! `#[target_feature]` of the wrapper it ends up in, so without the attribute
//! LLVM may keep it out of line, where the intrinsics inside cannot inline.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::simd::{Simd, for_lanes, sum_lanes};
use super::{AdamHyper, approx, scalar};
use crate::kernels::Activation;

/// See [`super::bias_add`].
#[inline(always)]
pub(crate) fn bias_add<S: Simd>(s: S, x: &mut [f32], cols: usize, bias: &[f32]) {
    scalar::check_rows("bias_add", x.len(), cols, bias.len());
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact_mut(cols) {
        for_lanes(
            s,
            cols,
            #[inline(always)]
            |i, t| {
                let v = s.add(s.ld(row, i, t), s.ld(bias, i, t));
                s.st(row, i, t, v);
            },
        );
    }
}

/// See [`super::bias_act`].
#[inline(always)]
pub(crate) fn bias_act<S: Simd>(s: S, x: &mut [f32], bias: Option<&[f32]>, act: Activation) {
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            x.len(),
            "bias_act: bias length differs from the row's"
        );
    }
    let zero = s.zero();
    match act {
        Activation::Linear => {
            if bias.is_some() {
                map_row(
                    s,
                    x,
                    bias,
                    #[inline(always)]
                    |v| v,
                );
            }
        }
        Activation::Relu => map_row(
            s,
            x,
            bias,
            #[inline(always)]
            |v| s.max(zero, v),
        ),
        Activation::LeakyRelu(a) => {
            let a = s.splat(a);
            map_row(
                s,
                x,
                bias,
                #[inline(always)]
                |v| s.select(s.lt(v, zero), s.mul(a, v), v),
            );
        }
        Activation::Sigmoid => map_row(
            s,
            x,
            bias,
            #[inline(always)]
            |v| approx::sigmoid(s, v),
        ),
        Activation::Tanh => map_row(
            s,
            x,
            bias,
            #[inline(always)]
            |v| approx::tanh(s, v),
        ),
    }
}

/// `x ← f(x + bias)` (or `f(x)` without a bias); lengths already checked.
#[inline(always)]
fn map_row<S: Simd>(s: S, x: &mut [f32], bias: Option<&[f32]>, f: impl Fn(S::V) -> S::V) {
    let n = x.len();
    match bias {
        Some(b) => for_lanes(
            s,
            n,
            #[inline(always)]
            |i, t| {
                let v = s.add(s.ld(x, i, t), s.ld(b, i, t));
                s.st(x, i, t, f(v));
            },
        ),
        None => for_lanes(
            s,
            n,
            #[inline(always)]
            |i, t| {
                let v = s.ld(x, i, t);
                s.st(x, i, t, f(v));
            },
        ),
    }
}

/// See [`super::act_backward`].
#[inline(always)]
pub(crate) fn act_backward<S: Simd>(s: S, act: Activation, h: &[f32], dh: &mut [f32]) {
    assert_eq!(h.len(), dh.len(), "act_backward: length mismatch");
    let (zero, one) = (s.zero(), s.splat(1.0));
    match act {
        Activation::Linear => {}
        Activation::Relu => mul_deriv(
            s,
            h,
            dh,
            #[inline(always)]
            |hv| s.select(s.gt(hv, zero), one, zero),
        ),
        Activation::LeakyRelu(a) => {
            let a = s.splat(a);
            mul_deriv(
                s,
                h,
                dh,
                #[inline(always)]
                |hv| s.select(s.gt(hv, zero), one, a),
            );
        }
        Activation::Sigmoid => mul_deriv(
            s,
            h,
            dh,
            #[inline(always)]
            |hv| s.mul(hv, s.sub(one, hv)),
        ),
        Activation::Tanh => mul_deriv(
            s,
            h,
            dh,
            #[inline(always)]
            |hv| s.sub(one, s.mul(hv, hv)),
        ),
    }
}

/// `dh ← dh ⊙ deriv(h)`; lengths already checked.
#[inline(always)]
fn mul_deriv<S: Simd>(s: S, h: &[f32], dh: &mut [f32], deriv: impl Fn(S::V) -> S::V) {
    for_lanes(
        s,
        h.len(),
        #[inline(always)]
        |i, t| {
            let d = s.mul(s.ld(dh, i, t), deriv(s.ld(h, i, t)));
            s.st(dh, i, t, d);
        },
    );
}

/// See [`super::col_sum`].
#[inline(always)]
pub(crate) fn col_sum<S: Simd>(s: S, x: &[f32], cols: usize, out: &mut [f32]) {
    scalar::check_rows("col_sum", x.len(), cols, out.len());
    out.fill(0.0);
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact(cols) {
        for_lanes(
            s,
            cols,
            #[inline(always)]
            |i, t| {
                let o = s.add(s.ld(out, i, t), s.ld(row, i, t));
                s.st(out, i, t, o);
            },
        );
    }
}

/// See [`super::bce_logits`].
#[inline(always)]
pub(crate) fn bce_logits<S: Simd>(
    s: S,
    z: &[f32],
    x: &[f32],
    dz: Option<&mut [f32]>,
    scale: f32,
) -> f64 {
    assert_eq!(z.len(), x.len(), "bce_logits: length mismatch");
    let n = z.len();
    match dz {
        Some(dz) => {
            assert_eq!(dz.len(), n, "bce_logits: gradient length mismatch");
            let scale = s.splat(scale);
            sum_lanes(
                s,
                n,
                #[inline(always)]
                |i, t| {
                    let (zv, xv) = (s.ld(z, i, t), s.ld(x, i, t));
                    let e = approx::exp_neg_abs(s, zv);
                    let sig = approx::sigmoid_from_exp(s, zv, e);
                    s.st(dz, i, t, s.mul(scale, s.sub(sig, xv)));
                    bce_term(s, zv, xv, e)
                },
            )
        }
        None => sum_lanes(
            s,
            n,
            #[inline(always)]
            |i, t| {
                let zv = s.ld(z, i, t);
                bce_term(s, zv, s.ld(x, i, t), approx::exp_neg_abs(s, zv))
            },
        ),
    }
}

/// max(z, 0) − z·x + ln(1 + e) with e = e^(−|z|), in the twin's order.
#[inline(always)]
fn bce_term<S: Simd>(s: S, z: S::V, x: S::V, e: S::V) -> S::V {
    let lin = s.sub(s.max(s.zero(), z), s.mul(z, x));
    s.add(lin, approx::ln_1p_unit(s, e))
}

/// See [`super::sq_err`].
#[inline(always)]
pub(crate) fn sq_err<S: Simd>(
    s: S,
    y: &[f32],
    x: &[f32],
    dy: Option<&mut [f32]>,
    scale: f32,
) -> f64 {
    assert_eq!(y.len(), x.len(), "sq_err: length mismatch");
    let n = y.len();
    match dy {
        Some(dy) => {
            assert_eq!(dy.len(), n, "sq_err: gradient length mismatch");
            let two = s.splat(2.0 * scale);
            sum_lanes(
                s,
                n,
                #[inline(always)]
                |i, t| {
                    let e = s.sub(s.ld(y, i, t), s.ld(x, i, t));
                    s.st(dy, i, t, s.mul(two, e));
                    s.mul(e, e)
                },
            )
        }
        None => sum_lanes(
            s,
            n,
            #[inline(always)]
            |i, t| {
                let e = s.sub(s.ld(y, i, t), s.ld(x, i, t));
                s.mul(e, e)
            },
        ),
    }
}

/// See [`super::l1`].
#[inline(always)]
pub(crate) fn l1<S: Simd>(s: S, h: &[f32], dh: Option<&mut [f32]>, scale: f32) -> f64 {
    let n = h.len();
    match dh {
        Some(dh) => {
            assert_eq!(dh.len(), n, "l1: gradient length mismatch");
            let (zero, scale) = (s.zero(), s.splat(scale));
            sum_lanes(
                s,
                n,
                #[inline(always)]
                |i, t| {
                    let (hv, d) = (s.ld(h, i, t), s.ld(dh, i, t));
                    // d + scale, d − scale or d itself (so −0 and NaN h leave d as is).
                    let neg = s.select(s.lt(hv, zero), s.sub(d, scale), d);
                    s.st(dh, i, t, s.select(s.gt(hv, zero), s.add(d, scale), neg));
                    s.abs(hv)
                },
            )
        }
        None => sum_lanes(
            s,
            n,
            #[inline(always)]
            |i, t| s.abs(s.ld(h, i, t)),
        ),
    }
}

/// See [`super::axpy`].
#[inline(always)]
pub(crate) fn axpy<S: Simd>(s: S, a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    let a = s.splat(a);
    for_lanes(
        s,
        x.len(),
        #[inline(always)]
        |i, t| {
            let v = s.add(s.ld(y, i, t), s.mul(a, s.ld(x, i, t)));
            s.st(y, i, t, v);
        },
    );
}

/// See [`super::sum_sq`].
#[inline(always)]
pub(crate) fn sum_sq<S: Simd>(s: S, x: &[f32]) -> f64 {
    sum_lanes(
        s,
        x.len(),
        #[inline(always)]
        |i, t| {
            let v = s.ld(x, i, t);
            s.mul(v, v)
        },
    )
}

/// See [`super::adam_step`]: the scalar twin's operations, in its order,
/// except that the division is a multiplication by [`Simd::recip`] unless
/// [`AdamHyper::divide`] is set.
#[inline(always)]
pub(crate) fn adam_step<S: Simd>(
    s: S,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
) {
    assert!(g.len() == p.len(), "adam_step: length mismatch");
    adam_with(
        s,
        p,
        m,
        v,
        h,
        #[inline(always)]
        |i, t| s.ld(g, i, t),
    );
}

/// See [`super::adam_step_sum`]: [`adam_step`] on `g0 + g1`, added lane by
/// lane as the scalar twin adds them.
#[inline(always)]
pub(crate) fn adam_step_sum<S: Simd>(
    s: S,
    p: &mut [f32],
    g0: &[f32],
    g1: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
) {
    assert!(
        g0.len() == p.len() && g1.len() == p.len(),
        "adam_step_sum: length mismatch"
    );
    adam_with(
        s,
        p,
        m,
        v,
        h,
        #[inline(always)]
        |i, t| s.add(s.ld(g0, i, t), s.ld(g1, i, t)),
    );
}

/// The Adam update with the gradient's lanes at `i` given by `grad`, in
/// the loop that divides or the one that multiplies by the reciprocal
/// ([`AdamHyper::divide`]).
#[inline(always)]
fn adam_with<S: Simd>(
    s: S,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
    grad: impl Fn(usize, Option<S::T>) -> S::V,
) {
    if h.divide {
        adam_loop::<S, true>(s, p, m, v, h, grad)
    } else {
        adam_loop::<S, false>(s, p, m, v, h, grad)
    }
}

/// [`adam_with`]'s loop; `DIVIDE` picks the step's division.
#[inline(always)]
fn adam_loop<S: Simd, const DIVIDE: bool>(
    s: S,
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    h: &AdamHyper,
    grad: impl Fn(usize, Option<S::T>) -> S::V,
) {
    let n = p.len();
    assert!(m.len() == n && v.len() == n, "adam_step: length mismatch");
    // The scalar twin's constants: each computed in f64, rounded once.
    let (c1, c2) = (
        s.splat((1.0 - h.beta1) as f32),
        s.splat((1.0 - h.beta2) as f32),
    );
    let (b1, b2) = (s.splat(h.beta1 as f32), s.splat(h.beta2 as f32));
    let (lr, eps) = (s.splat(h.lr_t as f32), s.splat(h.eps as f32));
    // The scalar twin's floors (see `AdamHyper::floors`).
    let (m_min, v_min) = h.floors(f64::from(f32::MIN_POSITIVE));
    let (m_min, v_min) = (s.splat(m_min as f32), s.splat(v_min as f32));
    let zero = s.splat(0.0);
    for_lanes(
        s,
        n,
        #[inline(always)]
        |i, t| {
            let gi = grad(i, t);
            let mi = s.add(s.mul(b1, s.ld(m, i, t)), s.mul(c1, gi));
            let vi = s.add(s.mul(b2, s.ld(v, i, t)), s.mul(s.mul(c2, gi), gi));
            let mi = s.select(s.lt(s.abs(mi), m_min), zero, mi);
            let vi = s.select(s.lt(vi, v_min), zero, vi);
            s.st(m, i, t, mi);
            s.st(v, i, t, vi);
            let step = if DIVIDE {
                s.div(s.mul(lr, mi), s.add(s.sqrt(vi), eps))
            } else {
                s.mul(s.mul(lr, mi), s.recip(s.add(s.sqrt(vi), eps)))
            };
            s.st(p, i, t, s.sub(s.ld(p, i, t), step));
        },
    );
}

/// See [`super::sgd_momentum_step`].
#[inline(always)]
pub(crate) fn sgd_momentum_step<S: Simd>(
    s: S,
    p: &mut [f32],
    g: &[f32],
    vel: &mut [f32],
    lr: f64,
    momentum: f64,
) {
    let n = p.len();
    assert!(
        g.len() == n && vel.len() == n,
        "sgd_momentum_step: length mismatch"
    );
    let (lr, mu) = (s.splat(lr as f32), s.splat(momentum as f32));
    for_lanes(
        s,
        n,
        #[inline(always)]
        |i, t| {
            let vi = s.sub(s.mul(mu, s.ld(vel, i, t)), s.mul(lr, s.ld(g, i, t)));
            s.st(vel, i, t, vi);
            s.st(p, i, t, s.add(s.ld(p, i, t), vi));
        },
    );
}

/// See [`super::u8_to_f32_scaled`].
#[inline(always)]
pub(crate) fn u8_to_f32_scaled<S: Simd>(s: S, src: &[u8], dst: &mut [f32], scale: f32) {
    assert_eq!(src.len(), dst.len(), "u8_to_f32_scaled: length mismatch");
    let k = s.splat(scale);
    let mut d = dst.chunks_exact_mut(S::LANES);
    let mut b = src.chunks_exact(S::LANES);
    for (dv, bv) in (&mut d).zip(&mut b) {
        s.store(dv, s.mul(s.load_u8(bv), k));
    }
    for (dv, &bv) in d.into_remainder().iter_mut().zip(b.remainder()) {
        *dv = f32::from(bv) * scale;
    }
}

/// Defines the `#[target_feature]` entry points of one instruction set: each
/// builds the token (`$token`, a `#[target_feature]` constructor) and runs the
/// generic body above, compiled with `$feat`.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )),
    allow(unused_macros)
)]
macro_rules! isa_kernels {
    ($feat:literal, $token:expr) => {
        use crate::kernels::Activation;
        use crate::kernels::elementwise::{AdamHyper, NoiseStreams, body, noise};

        #[target_feature(enable = $feat)]
        pub(crate) fn bias_add(x: &mut [f32], cols: usize, bias: &[f32]) {
            body::bias_add($token, x, cols, bias)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn bias_act(x: &mut [f32], bias: Option<&[f32]>, act: Activation) {
            body::bias_act($token, x, bias, act)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn act_forward(act: Activation, x: &mut [f32]) {
            body::bias_act($token, x, None, act)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn act_backward(act: Activation, h: &[f32], dh: &mut [f32]) {
            body::act_backward($token, act, h, dh)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn col_sum(x: &[f32], cols: usize, out: &mut [f32]) {
            body::col_sum($token, x, cols, out)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn bce_logits(z: &[f32], x: &[f32], dz: Option<&mut [f32]>, scale: f32) -> f64 {
            body::bce_logits($token, z, x, dz, scale)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn sq_err(y: &[f32], x: &[f32], dy: Option<&mut [f32]>, scale: f32) -> f64 {
            body::sq_err($token, y, x, dy, scale)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn l1(h: &[f32], dh: Option<&mut [f32]>, scale: f32) -> f64 {
            body::l1($token, h, dh, scale)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
            body::axpy($token, a, x, y)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn sum_sq(x: &[f32]) -> f64 {
            body::sum_sq($token, x)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn adam_step(
            p: &mut [f32],
            g: &[f32],
            m: &mut [f32],
            v: &mut [f32],
            h: &AdamHyper,
        ) {
            body::adam_step($token, p, g, m, v, h)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn adam_step_sum(
            p: &mut [f32],
            g0: &[f32],
            g1: &[f32],
            m: &mut [f32],
            v: &mut [f32],
            h: &AdamHyper,
        ) {
            body::adam_step_sum($token, p, g0, g1, m, v, h)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn sgd_momentum_step(
            p: &mut [f32],
            g: &[f32],
            vel: &mut [f32],
            lr: f64,
            momentum: f64,
        ) {
            body::sgd_momentum_step($token, p, g, vel, lr, momentum)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn u8_to_f32_scaled(src: &[u8], dst: &mut [f32], scale: f32) {
            body::u8_to_f32_scaled($token, src, dst, scale)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn gaussian_noise(st: &mut NoiseStreams, x: &[f32], out: &mut [f32], std: f32) {
            noise::gaussian_noise($token, st, x, out, std)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn mask_noise(st: &mut NoiseStreams, x: &[f32], out: &mut [f32], p: f64) {
            noise::mask_noise($token, st, x, out, p)
        }
        #[target_feature(enable = $feat)]
        pub(crate) fn box_muller(a: &[u32], b: &[u32], z1: &mut [f32], z2: &mut [f32]) {
            noise::box_muller($token, a, b, z1, z2)
        }
    };
}
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
pub(crate) use isa_kernels;
