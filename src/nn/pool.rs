//! Max pooling and nearest-neighbour upsampling over NCHW images (PyTorch
//! `MaxPool2d` without padding, floor mode, and `Upsample(mode="nearest")`
//! with an integer scale), forward and backward.
//!
//! Every plane (one channel of one sample, `h × w` row-major) is processed on
//! its own; samples run as rayon tasks (one plane is too little work for a
//! task). Max pooling has a fast path for the common 2×2 window at stride 2.

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
    // One task per sample (c planes): a plane alone is too little work.
    y.par_chunks_mut(c * oh * ow)
        .zip(argmax.par_chunks_mut(c * oh * ow))
        .zip(x.par_chunks(c * h * w))
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|((ys, as_), xs)| {
            for ((yp, ap), xp) in ys
                .chunks_exact_mut(oh * ow)
                .zip(as_.chunks_exact_mut(oh * ow))
                .zip(xs.chunks_exact(h * w))
            {
                if k == 2 && stride == 2 {
                    pool_plane_2x2(yp, ap, xp, w, ow);
                } else {
                    pool_plane(yp, ap, xp, w, ow, k, stride);
                }
            }
        });
}

/// `(best, at) ← (val, idx)` if `val > best` or `val` is NaN: the running
/// maximum of [`maxpool2d_forward`] (first of equal maxima, last NaN).
#[inline(always)]
fn take<T: Real>(best: &mut T, at: &mut usize, val: T, idx: usize) {
    // Branch-free select: on random data the comparison is unpredictable.
    let t = (val > *best) | val.is_nan();
    *best = if t { val } else { *best };
    *at = if t { idx } else { *at };
}

/// One plane of [`maxpool2d_forward`], any window and stride.
fn pool_plane<T: Real>(
    yp: &mut [T],
    ap: &mut [u32],
    xp: &[T],
    w: usize,
    ow: usize,
    k: usize,
    stride: usize,
) {
    for (i, (yr, ar)) in yp
        .chunks_exact_mut(ow)
        .zip(ap.chunks_exact_mut(ow))
        .enumerate()
    {
        for (j, (yv, av)) in yr.iter_mut().zip(ar).enumerate() {
            let first = i * stride * w + j * stride;
            let (mut best, mut at) = (xp[first], first);
            for u in 0..k {
                let row = (i * stride + u) * w + j * stride;
                for (idx, &val) in (row..row + k).zip(&xp[row..row + k]) {
                    take(&mut best, &mut at, val, idx);
                }
            }
            *yv = best;
            *av = at as u32;
        }
    }
}

/// One plane of [`maxpool2d_forward`] for 2×2 windows at stride 2: the
/// candidates x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1] in that
/// (row-major) order, as [`pool_plane`] visits them.
fn pool_plane_2x2<T: Real>(yp: &mut [T], ap: &mut [u32], xp: &[T], w: usize, ow: usize) {
    for (i, (yr, ar)) in yp
        .chunks_exact_mut(ow)
        .zip(ap.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = 2 * i * w;
        let r0 = &xp[top..top + 2 * ow];
        let r1 = &xp[top + w..top + w + 2 * ow];
        for (j, (((yv, av), p0), p1)) in yr
            .iter_mut()
            .zip(ar.iter_mut())
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
            .enumerate()
        {
            let at0 = top + 2 * j;
            let (mut best, mut at) = (p0[0], at0);
            take(&mut best, &mut at, p0[1], at0 + 1);
            take(&mut best, &mut at, p1[0], at0 + w);
            take(&mut best, &mut at, p1[1], at0 + w + 1);
            *yv = best;
            *av = at as u32;
        }
    }
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
    dx.par_chunks_mut(c * h * w)
        .zip(dy.par_chunks(c * oh * ow))
        .zip(argmax.par_chunks(c * oh * ow))
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|((dxs, dys), as_)| {
            dxs.fill(T::ZERO);
            for ((dxp, dyp), ap) in dxs
                .chunks_exact_mut(h * w)
                .zip(dys.chunks_exact(oh * ow))
                .zip(as_.chunks_exact(oh * ow))
            {
                for (&g, &a) in dyp.iter().zip(ap) {
                    dxp[a as usize] += g;
                }
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
    y.par_chunks_mut(c * oh * ow)
        .zip(x.par_chunks(c * h * w))
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|(ys, xs)| {
            // Each block of `scale` output rows: widen the input row once,
            // then copy it.
            for (yblk, xrow) in ys.chunks_exact_mut(scale * ow).zip(xs.chunks_exact(w)) {
                let (first, rest) = yblk.split_at_mut(ow);
                if scale == 2 {
                    for (pair, &v) in first.chunks_exact_mut(2).zip(xrow) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                } else {
                    for (yb, &v) in first.chunks_exact_mut(scale).zip(xrow) {
                        yb.fill(v);
                    }
                }
                for row in rest.chunks_exact_mut(ow) {
                    row.copy_from_slice(first);
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
    dx.par_chunks_mut(c * h * w)
        .zip(dy.par_chunks(c * oh * ow))
        .with_min_len(crate::parallel::min_len(1))
        .for_each(|(dxs, dys)| {
            dxs.fill(T::ZERO);
            for (dxrow, dyblk) in dxs.chunks_exact_mut(w).zip(dys.chunks_exact(scale * ow)) {
                for dyrow in dyblk.chunks_exact(ow) {
                    if scale == 2 {
                        for (d, pair) in dxrow.iter_mut().zip(dyrow.chunks_exact(2)) {
                            *d += pair[0] + pair[1];
                        }
                    } else {
                        for (d, blk) in dxrow.iter_mut().zip(dyrow.chunks_exact(scale)) {
                            *d += blk.iter().fold(T::ZERO, |a, &v| a + v);
                        }
                    }
                }
            }
        });
}
