//! Max pooling and nearest-neighbour upsampling over NCHW images (PyTorch
//! `MaxPool2d` without padding, floor mode, and `Upsample(mode="nearest")`
//! with an integer scale), forward and backward.
//!
//! Every plane (one channel of one sample, `h × w` row-major) is processed on
//! its own; samples run as rayon tasks.

use crate::error::{Error, Result};
use crate::kernels::Real;
use rayon::prelude::*;

/// Output size of a pooling window `k` with `stride` over `n` values in floor
/// mode: `⌊(n − k)/stride⌋ + 1`.
///
/// # Errors
/// [`Error::Config`] if `k` or `stride` is 0 or `k > n`.
pub fn pool_out(n: usize, k: usize, stride: usize) -> Result<usize> {
    if k == 0 || stride == 0 {
        return Err(Error::config(
            "pool",
            format!("kernel {k} and stride {stride} must be at least 1"),
        ));
    }
    if k > n {
        return Err(Error::config(
            "pool.kernel",
            format!("window {k} is larger than the input {n}"),
        ));
    }
    Ok((n - k) / stride + 1)
}

fn out_dims(h: usize, w: usize, k: usize, stride: usize, op: &str) -> (usize, usize) {
    match (pool_out(h, k, stride), pool_out(w, k, stride)) {
        (Ok(oh), Ok(ow)) => (oh, ow),
        (Err(e), _) | (_, Err(e)) => panic!("{op}: {e}"),
    }
}

/// Forward: `y[n,c,i,j] = max_{0≤u,v<k} x[n, c, i·s + u, j·s + v]`, writing
/// `y: (batch, c, oh, ow)` with `oh = ⌊(h − k)/s⌋ + 1` (likewise ow) and the
/// position of each maximum in `argmax` (same shape): the flat index `iy·w +
/// ix` inside its `h × w` plane, as PyTorch's `return_indices`. Ties keep the
/// first maximum in row-major order; if a window holds a NaN the output is NaN
/// (the last NaN's index), as in PyTorch.
///
/// # Panics
/// If `k` or `stride` is 0, `k > h` or `k > w`, `h·w > u32::MAX`, or a slice
/// does not have its shape's length.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2d_forward<T: Real>(
    y: &mut [T],
    argmax: &mut [u32],
    x: &[T],
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
) {
    let (oh, ow) = out_dims(h, w, k, stride, "maxpool2d_forward");
    assert!(
        u32::try_from(h * w).is_ok(),
        "maxpool2d_forward: plane too large"
    );
    assert_eq!(x.len(), batch * c * h * w, "maxpool2d_forward: x length");
    assert_eq!(y.len(), batch * c * oh * ow, "maxpool2d_forward: y length");
    assert_eq!(argmax.len(), y.len(), "maxpool2d_forward: argmax length");
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(oh * ow)
        .zip(argmax.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((yp, ap), xp)| {
            for i in 0..oh {
                for j in 0..ow {
                    let first = i * stride * w + j * stride;
                    let (mut best, mut at) = (xp[first], first);
                    for u in 0..k {
                        let row = (i * stride + u) * w + j * stride;
                        for (idx, &val) in (row..row + k).zip(&xp[row..row + k]) {
                            // Branch-free select: on random data the
                            // comparison is unpredictable.
                            let take = (val > best) | val.is_nan();
                            best = if take { val } else { best };
                            at = if take { idx } else { at };
                        }
                    }
                    yp[i * ow + j] = best;
                    ap[i * ow + j] = at as u32;
                }
            }
        });
}

/// Backward: `dx ← 0`, then `dx[n, c, argmax] += dy[n, c, i, j]` for every
/// output position (overlapping windows add up). `dy` and `argmax` are
/// `(batch, c, oh, ow)`, `dx` is `(batch, c, h, w)` (overwritten).
///
/// # Panics
/// As [`maxpool2d_forward`], or if an index in `argmax` is outside its plane.
#[allow(clippy::too_many_arguments)]
pub fn maxpool2d_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    argmax: &[u32],
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
) {
    let (oh, ow) = out_dims(h, w, k, stride, "maxpool2d_backward");
    assert_eq!(dx.len(), batch * c * h * w, "maxpool2d_backward: dx length");
    assert_eq!(
        dy.len(),
        batch * c * oh * ow,
        "maxpool2d_backward: dy length"
    );
    assert_eq!(argmax.len(), dy.len(), "maxpool2d_backward: argmax length");
    if dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(oh * ow))
        .zip(argmax.par_chunks(oh * ow))
        .for_each(|((dxp, dyp), ap)| {
            dxp.fill(T::ZERO);
            for (&g, &a) in dyp.iter().zip(ap) {
                dxp[a as usize] += g;
            }
        });
}

/// Forward: `y[n, c, i, j] = x[n, c, ⌊i/s⌋, ⌊j/s⌋]`, writing `y: (batch, c,
/// h·s, w·s)` from `x: (batch, c, h, w)`.
///
/// # Panics
/// If `scale` is 0 or a slice does not have its shape's length.
pub fn upsample_nearest2d_forward<T: Real>(
    y: &mut [T],
    x: &[T],
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    scale: usize,
) {
    assert!(scale > 0, "upsample_nearest2d_forward: scale must be ≥ 1");
    let (oh, ow) = (h * scale, w * scale);
    assert_eq!(
        x.len(),
        batch * c * h * w,
        "upsample_nearest2d_forward: x length"
    );
    assert_eq!(
        y.len(),
        batch * c * oh * ow,
        "upsample_nearest2d_forward: y length"
    );
    if y.is_empty() {
        return;
    }
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(yp, xp)| {
            for (i, yrow) in yp.chunks_exact_mut(ow).enumerate() {
                let xrow = &xp[(i / scale) * w..(i / scale + 1) * w];
                for (yb, &v) in yrow.chunks_exact_mut(scale).zip(xrow) {
                    yb.fill(v);
                }
            }
        });
}

/// Backward: `dx[n, c, i, j] = Σ_{0≤a,b<s} dy[n, c, i·s + a, j·s + b]`, the sum
/// over each `s × s` block; `dx: (batch, c, h, w)` is overwritten.
///
/// # Panics
/// If `scale` is 0 or a slice does not have its shape's length.
pub fn upsample_nearest2d_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    scale: usize,
) {
    assert!(scale > 0, "upsample_nearest2d_backward: scale must be ≥ 1");
    let (oh, ow) = (h * scale, w * scale);
    assert_eq!(
        dx.len(),
        batch * c * h * w,
        "upsample_nearest2d_backward: dx length"
    );
    assert_eq!(
        dy.len(),
        batch * c * oh * ow,
        "upsample_nearest2d_backward: dy length"
    );
    if dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(oh * ow))
        .for_each(|(dxp, dyp)| {
            dxp.fill(T::ZERO);
            for (i, dyrow) in dyp.chunks_exact(ow).enumerate() {
                let dxrow = &mut dxp[(i / scale) * w..(i / scale + 1) * w];
                for (d, blk) in dxrow.iter_mut().zip(dyrow.chunks_exact(scale)) {
                    *d += blk.iter().fold(T::ZERO, |a, &v| a + v);
                }
            }
        });
}
