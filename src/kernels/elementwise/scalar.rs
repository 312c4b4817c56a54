//! Portable scalar twins of the elementwise kernels, generic over [`Real`].
//!
//! These are the specification the SIMD paths are tested against, and the
//! kernels of the `f64` model used by gradient checks.

use super::AdamHyper;
use super::noise::{NoiseStreams, STREAMS, mask_threshold};
use super::normal::UNIT;
use crate::kernels::{Activation, Real, sigmoid};

/// Asserts that a `(rows, cols)` matrix of `len` elements matches a vector of
/// `vec_len`.
pub(crate) fn check_rows(op: &str, len: usize, cols: usize, vec_len: usize) {
    assert!(
        vec_len == cols && (cols == 0 || len.is_multiple_of(cols)),
        "{op}: matrix of {len} elements with {cols} columns and vector of {vec_len}"
    );
}

/// See [`super::bias_add`].
pub fn bias_add<T: Real>(x: &mut [T], cols: usize, bias: &[T]) {
    check_rows("bias_add", x.len(), cols, bias.len());
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact_mut(cols) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// See [`super::bias_act`].
pub fn bias_act<T: Real>(x: &mut [T], bias: Option<&[T]>, act: Activation) {
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            x.len(),
            "bias_act: bias length differs from the row's"
        );
        for (v, &bv) in x.iter_mut().zip(b) {
            *v += bv;
        }
    }
    act_forward(act, x);
}

/// See [`super::act_forward`].
pub fn act_forward<T: Real>(act: Activation, x: &mut [T]) {
    if act == Activation::Linear {
        return;
    }
    for v in x.iter_mut() {
        *v = act.apply(*v);
    }
}

/// See [`super::act_backward`].
pub fn act_backward<T: Real>(act: Activation, h: &[T], dh: &mut [T]) {
    assert_eq!(h.len(), dh.len(), "act_backward: length mismatch");
    if act == Activation::Linear {
        return;
    }
    for (d, &hv) in dh.iter_mut().zip(h) {
        *d *= act.deriv_from_output(hv);
    }
}

/// See [`super::col_sum`].
pub fn col_sum<T: Real>(x: &[T], cols: usize, out: &mut [T]) {
    check_rows("col_sum", x.len(), cols, out.len());
    out.iter_mut().for_each(|o| *o = T::ZERO);
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact(cols) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// One element of binary cross-entropy from a logit: max(z,0) − z·x + ln(1 + e^(−|z|)).
#[inline(always)]
pub fn bce_one<T: Real>(z: T, x: T) -> T {
    z.max(T::ZERO) - z * x + (-z.abs()).exp().ln_1p()
}

/// See [`super::bce_logits`].
pub fn bce_logits<T: Real>(z: &[T], x: &[T], dz: Option<&mut [T]>, scale: T) -> f64 {
    assert_eq!(z.len(), x.len(), "bce_logits: length mismatch");
    let mut sum = 0.0f64;
    match dz {
        Some(dz) => {
            assert_eq!(dz.len(), z.len(), "bce_logits: gradient length mismatch");
            for ((d, &zv), &xv) in dz.iter_mut().zip(z).zip(x) {
                sum += bce_one(zv, xv).to_f64();
                *d = scale * (sigmoid(zv) - xv);
            }
        }
        None => {
            for (&zv, &xv) in z.iter().zip(x) {
                sum += bce_one(zv, xv).to_f64();
            }
        }
    }
    sum
}

/// See [`super::sq_err`].
pub fn sq_err<T: Real>(y: &[T], x: &[T], dy: Option<&mut [T]>, scale: T) -> f64 {
    assert_eq!(y.len(), x.len(), "sq_err: length mismatch");
    let mut sum = 0.0f64;
    let two = T::from_f64(2.0) * scale;
    match dy {
        Some(dy) => {
            assert_eq!(dy.len(), y.len(), "sq_err: gradient length mismatch");
            for ((d, &yv), &xv) in dy.iter_mut().zip(y).zip(x) {
                let e = yv - xv;
                sum += (e * e).to_f64();
                *d = two * e;
            }
        }
        None => {
            for (&yv, &xv) in y.iter().zip(x) {
                let e = yv - xv;
                sum += (e * e).to_f64();
            }
        }
    }
    sum
}

/// See [`super::l1`].
pub fn l1<T: Real>(h: &[T], dh: Option<&mut [T]>, scale: T) -> f64 {
    let mut sum = 0.0f64;
    match dh {
        Some(dh) => {
            assert_eq!(dh.len(), h.len(), "l1: gradient length mismatch");
            for (d, &v) in dh.iter_mut().zip(h) {
                sum += v.abs().to_f64();
                if v > T::ZERO {
                    *d += scale;
                } else if v < T::ZERO {
                    *d -= scale;
                }
            }
        }
        None => {
            for &v in h {
                sum += v.abs().to_f64();
            }
        }
    }
    sum
}

/// See [`super::axpy`].
pub fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// See [`super::sum_sq`].
pub fn sum_sq<T: Real>(x: &[T]) -> f64 {
    x.iter().map(|&v| (v * v).to_f64()).sum()
}

/// See [`super::adam_step`].
pub fn adam_step<T: Real>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], h: &AdamHyper) {
    assert!(g.len() == p.len(), "adam_step: length mismatch");
    adam_with(p, m, v, h, |i| g[i]);
}

/// See [`super::adam_step_sum`].
pub fn adam_step_sum<T: Real>(
    p: &mut [T],
    g0: &[T],
    g1: &[T],
    m: &mut [T],
    v: &mut [T],
    h: &AdamHyper,
) {
    assert!(
        g0.len() == p.len() && g1.len() == p.len(),
        "adam_step_sum: length mismatch"
    );
    adam_with(p, m, v, h, |i| g0[i] + g1[i]);
}

/// The Adam update with gradient `grad(i)` for parameter i.
#[inline(always)]
fn adam_with<T: Real>(
    p: &mut [T],
    m: &mut [T],
    v: &mut [T],
    h: &AdamHyper,
    grad: impl Fn(usize) -> T,
) {
    let n = p.len();
    assert!(m.len() == n && v.len() == n, "adam_step: length mismatch");
    // Every constant is computed in f64 and rounded once: 1 − f32(0.999)
    // would be 1.3e-5 smaller than 1 − 0.999.
    let (b1, b2) = (T::from_f64(h.beta1), T::from_f64(h.beta2));
    let (c1, c2) = (T::from_f64(1.0 - h.beta1), T::from_f64(1.0 - h.beta2));
    let (lr, eps) = (T::from_f64(h.lr_t), T::from_f64(h.eps));
    // Moments below these are set to zero, so that neither their decay nor
    // lr·m is subnormal (see `AdamHyper`).
    let (m_min, v_min) = h.floors(T::MIN_POSITIVE.to_f64());
    let (m_min, v_min) = (T::from_f64(m_min), T::from_f64(v_min));
    for i in 0..n {
        let gi = grad(i);
        let mut mi = b1 * m[i] + c1 * gi;
        let mut vi = b2 * v[i] + c2 * gi * gi;
        if mi.abs() < m_min {
            mi = T::ZERO;
        }
        if vi < v_min {
            vi = T::ZERO;
        }
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * mi / (vi.sqrt() + eps);
    }
}

/// See [`super::sgd_momentum_step`].
pub fn sgd_momentum_step<T: Real>(p: &mut [T], g: &[T], vel: &mut [T], lr: f64, momentum: f64) {
    let n = p.len();
    assert!(
        g.len() == n && vel.len() == n,
        "sgd_momentum_step: length mismatch"
    );
    let (lr, mu) = (T::from_f64(lr), T::from_f64(momentum));
    for i in 0..n {
        let vi = mu * vel[i] - lr * g[i];
        vel[i] = vi;
        p[i] += vi;
    }
}

/// See [`super::u8_to_f32_scaled`].
pub fn u8_to_f32_scaled<T: Real>(src: &[u8], dst: &mut [T], scale: T) {
    assert_eq!(src.len(), dst.len(), "u8_to_f32_scaled: length mismatch");
    for (d, &b) in dst.iter_mut().zip(src) {
        *d = T::from_f64(f64::from(b)) * scale;
    }
}

/// The Box–Muller pair of the words `a`, `b` in `f64` (the uniforms u₁, u₂
/// exactly as the vector paths form them; see [`super::normal`]).
#[inline]
pub fn box_muller_f64(a: u32, b: u32) -> (f64, f64) {
    let unit = f64::from(UNIT);
    let u1 = f64::from((a >> 8) + 1) * unit;
    let u2 = f64::from(b >> 8) * unit;
    let r = (-2.0 * u1.ln()).sqrt();
    let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
    (r * cos, r * sin)
}

/// See [`super::box_muller`].
pub fn box_muller<T: Real>(a: &[u32], b: &[u32], z1: &mut [T], z2: &mut [T]) {
    let n = a.len();
    assert!(
        b.len() == n && z1.len() == n && z2.len() == n,
        "box_muller: length mismatch"
    );
    for i in 0..n {
        let (c, s) = box_muller_f64(a[i], b[i]);
        z1[i] = T::from_f64(c);
        z2[i] = T::from_f64(s);
    }
}

/// See [`super::gaussian_noise`]: blocks of 32 elements; stream k draws u₁
/// then u₂, and its pair goes to elements k and 16 + k of the block.
pub fn gaussian_noise<T: Real>(st: &mut NoiseStreams, x: &[T], out: &mut [T], std: T) {
    assert_eq!(x.len(), out.len(), "gaussian_noise: length mismatch");
    let n = x.len();
    let mut blk = 0;
    while blk < n {
        for k in 0..STREAMS {
            let a = st.next_u32(k);
            let b = st.next_u32(k);
            let (z1, z2) = box_muller_f64(a, b);
            for (i, z) in [(blk + k, z1), (blk + STREAMS + k, z2)] {
                if i < n {
                    out[i] = (x[i] + std * T::from_f64(z)).max(T::ZERO).min(T::ONE);
                }
            }
        }
        blk += 2 * STREAMS;
    }
}

/// See [`super::mask_noise`]: blocks of 16 elements, one word per stream.
pub fn mask_noise<T: Real>(st: &mut NoiseStreams, x: &[T], out: &mut [T], p: f64) {
    assert_eq!(x.len(), out.len(), "mask_noise: length mismatch");
    let (n, limit) = (x.len(), mask_threshold(p));
    let mut blk = 0;
    while blk < n {
        for k in 0..STREAMS {
            let w = st.next_u32(k);
            if let Some(&xi) = x.get(blk + k) {
                out[blk + k] = if w >> 8 < limit { T::ZERO } else { xi };
            }
        }
        blk += STREAMS;
    }
}
