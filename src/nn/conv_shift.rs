//! Stride-1 convolution on zero-padded planes ("shifted planes"), without the
//! im2col matrix of the input; used by [`super::conv`] for the layers where
//! im2col + GEMM wastes most of its work (one output channel, few output
//! channels in the backward pass).
//!
//! Pad every input plane to `Hp × Wp` (`Hp = in_h + 2p`, `Wp = in_w + 2p`) and
//! flatten it to `S = Hp·Wp` values: `xp_c[(y + p)·Wp + x + p] = x[c, y, x]`,
//! 0 on the border. Output pixel (i, j) sits at `t = i·Wp + j` and tap (u, v)
//! reads `xp_c[t + u·Wp + v]`, so one tap of one channel is a shifted copy of
//! the whole plane and the convolution is a sum of `in_c·kh·kw` axpys of
//! length `L = (oh − 1)·Wp + ow`:
//!
//! ```text
//! z'_o[t] = b_o + Σ_{c,u,v} W[o,c,u,v] · xp_c[t + u·Wp + v],   z[o,i,j] = z'_o[i·Wp + j]
//! ```
//!
//! (the `t` with `t mod Wp ≥ ow` fall between rows and are dropped).
//! Backward: place dz at every shift, `D[(o,u,v), (i+u)·Wp + j + v] = dz[o,i,j]`
//! (0 elsewhere; a `(out_c·kh·kw) × S` matrix). Then
//!
//! ```text
//! dW[o,c,u,v] = Σ_s D[(o,u,v), s] · xp_c[s]          (D·Xpᵀ, one GEMM)
//! dxp_c[s]    = Σ_{o,u,v} W[o,c,u,v] · D[(o,u,v), s]  (W'·D, one GEMM)
//! ```
//!
//! with `W'[c, (o,u,v)] = W[o,c,u,v]`, and dx is the interior of dxp. D has
//! `out_c·kh·kw` rows where im2col has `in_c·kh·kw`, and no col2im is needed.
//! The zero entries of xp and D are the same for every sample, so the buffers
//! are zeroed once and only their interiors are rewritten.

use super::conv::Conv2dShape;
use crate::error::Result;
use crate::kernels::{Activation, Epilogue, MatMut, MatRef, Real};

/// Padded-plane geometry of a stride-1 shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    /// Padded row length `Wp = in_w + 2p`.
    pub wp: usize,
    /// Padded plane size `S = (in_h + 2p)·Wp`.
    pub s: usize,
    /// Span of the output in padded coordinates, `L = (oh − 1)·Wp + ow`.
    pub len: usize,
}

impl Planes {
    pub fn of(s: &Conv2dShape) -> Planes {
        debug_assert_eq!(s.stride, 1);
        let wp = s.in_w + 2 * s.pad;
        Planes {
            wp,
            s: (s.in_h + 2 * s.pad) * wp,
            len: (s.out_h() - 1) * wp + s.out_w(),
        }
    }
}

/// One sample group's buffers: the padded input (`in_c × S`), the forward
/// accumulator (`out_c × L`) and, with more than one output channel, the
/// shifted copies of the input (`in_c·kh·kw × L`); for the backward pass D (`out_c·kh·kw × S`), the
/// padded input gradient (`in_c × S`) and the transposed weight gradient
/// (`out_c·kh·kw × in_c`).
#[derive(Clone, Debug)]
pub(crate) struct ShiftBufs<T> {
    xp: Vec<T>,
    acc: Vec<T>,
    xsh: Vec<T>,
    d: Vec<T>,
    dxp: Vec<T>,
    dwt: Vec<T>,
}

/// The lengths of the buffers [`ShiftBufs::try_new`] reserves for `s`, for
/// the forward pass if `fwd` and the backward pass if `bwd`: `[xp, acc,
/// xsh, d, dxp, dwt]` (see [`ShiftBufs`]), worked out in u64 and saturating,
/// as a padded plane of a large padding holds more values than the image
/// (`S = (in_h + 2p)·(in_w + 2p)`, times `out_c·kh·kw` for D).
pub(crate) fn buffer_lens(s: &Conv2dShape, fwd: bool, bwd: bool) -> [u64; 6] {
    if !(fwd || bwd) {
        return [0; 6];
    }
    let u = |v: usize| v as u64;
    let wp = u(s.in_w).saturating_add(2 * u(s.pad));
    let plane = u(s.in_h).saturating_add(2 * u(s.pad)).saturating_mul(wp);
    let len = (u(s.out_h()) - 1)
        .saturating_mul(wp)
        .saturating_add(u(s.out_w()));
    let okk = u(s.out_c).saturating_mul(u(s.kh) * u(s.kw));
    let on = |on: bool, n: u64| if on { n } else { 0 };
    [
        u(s.in_c).saturating_mul(plane),
        on(fwd, u(s.out_c).saturating_mul(len)),
        on(fwd && s.out_c > 1, u(s.k()).saturating_mul(len)),
        on(bwd, okk.saturating_mul(plane)),
        on(bwd, u(s.in_c).saturating_mul(plane)),
        on(bwd, okk.saturating_mul(u(s.in_c))),
    ]
}

impl<T: Real> ShiftBufs<T> {
    /// Buffers for the forward pass if `fwd`, the backward pass if `bwd`
    /// ([`buffer_lens`]), reserved fallibly. Neither: no buffers (and no
    /// planes, which only a stride of 1 has).
    ///
    /// # Errors
    /// [`crate::Error::Value`] naming `what` when the system refuses a
    /// buffer ([`crate::memory::try_vec`]).
    pub fn try_new(s: &Conv2dShape, fwd: bool, bwd: bool, what: &str) -> Result<ShiftBufs<T>> {
        let [xp, acc, xsh, d, dxp, dwt] = buffer_lens(s, fwd, bwd);
        let z = |n: u64| crate::memory::try_vec_u64(what, n, T::ZERO);
        Ok(ShiftBufs {
            xp: z(xp)?,
            acc: z(acc)?,
            xsh: z(xsh)?,
            d: z(d)?,
            dxp: z(dxp)?,
            dwt: z(dwt)?,
        })
    }

    /// Bytes the buffers hold (their capacities).
    pub fn heap_bytes(&self) -> u64 {
        [
            &self.xp, &self.acc, &self.xsh, &self.d, &self.dxp, &self.dwt,
        ]
        .iter()
        .map(|v| crate::memory::vec_bytes(v))
        .sum()
    }
}

/// `dst ← src` for a short row (an image row of a few dozen values). Rows of
/// up to 32 values are copied in fixed-size pieces (16, 8, 4, 2, 1), which
/// compile to a few vector moves; `copy_from_slice` calls `memcpy`, whose
/// set-up costs as much as such a row. Longer rows use `copy_from_slice`.
///
/// # Panics
/// If the lengths differ.
#[inline]
pub(crate) fn copy_row<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy_row: lengths differ");
    if dst.len() > 32 {
        dst.copy_from_slice(src);
        return;
    }
    let (mut d, mut s) = (dst, src);
    for piece in [16, 16, 8, 4, 2, 1] {
        if d.len() >= piece {
            let (dh, dt) = d.split_at_mut(piece);
            let (sh, st) = s.split_at(piece);
            dh.copy_from_slice(sh);
            (d, s) = (dt, st);
        }
    }
}

/// `xp ← pad(x)` for one sample: writes the interior, leaves the border
/// (zero since allocation).
fn pad_input<T: Real>(xp: &mut [T], x: &[T], s: &Conv2dShape, pl: &Planes) {
    let (p, w) = (s.pad, s.in_w);
    for (xpc, xc) in xp.chunks_exact_mut(pl.s).zip(x.chunks_exact(s.in_h * w)) {
        for (y, row) in xc.chunks_exact(w).enumerate() {
            let at = (y + p) * pl.wp + p;
            copy_row(&mut xpc[at..at + w], row);
        }
    }
}

/// Forward of one sample: `y ← act(conv(x, W) + b)` as in the module doc.
/// One output channel: one axpy per tap. More: the shifted copies
/// `X[(c,u,v), t] = xp_c[t + u·Wp + v]` (one contiguous copy per row, where
/// im2col copies every output row separately) and one GEMM `W·X`.
pub(crate) fn forward_sample<T: Real>(
    y: &mut [T],
    x: &[T],
    w: &[T],
    b: &[T],
    s: &Conv2dShape,
    act: Activation,
    bufs: &mut ShiftBufs<T>,
) {
    let pl = Planes::of(s);
    let (oh, ow, kk) = (s.out_h(), s.out_w(), s.kh * s.kw);
    pad_input(&mut bufs.xp, x, s, &pl);
    let off = |uv: usize| (uv / s.kw) * pl.wp + uv % s.kw;
    for (acc, &bo) in bufs.acc.chunks_exact_mut(pl.len).zip(b) {
        acc.fill(bo);
    }
    if s.out_c == 1 {
        let acc = &mut bufs.acc[..];
        for (xpc, wc) in bufs.xp.chunks_exact(pl.s).zip(w.chunks_exact(kk)) {
            for (uv, &wt) in wc.iter().enumerate() {
                T::axpy(wt, &xpc[off(uv)..off(uv) + pl.len], acc);
            }
        }
    } else {
        for (c, xpc) in bufs.xp.chunks_exact(pl.s).enumerate() {
            for uv in 0..kk {
                let row = (c * kk + uv) * pl.len;
                bufs.xsh[row..row + pl.len].copy_from_slice(&xpc[off(uv)..off(uv) + pl.len]);
            }
        }
        T::gemm(
            T::ONE,
            MatRef::new(w, s.out_c, s.k()),
            MatRef::new(&bufs.xsh, s.k(), pl.len),
            T::ONE,
            MatMut::new(&mut bufs.acc, s.out_c, pl.len),
            Epilogue::NONE,
        );
    }
    for (yo, acc) in y
        .chunks_exact_mut(oh * ow)
        .zip(bufs.acc.chunks_exact(pl.len))
    {
        for (i, row) in yo.chunks_exact_mut(ow).enumerate() {
            copy_row(row, &acc[i * pl.wp..i * pl.wp + ow]);
        }
        T::act_forward(act, yo);
    }
}

/// `D ← shift(dz)` for one sample (see the module doc). Row (o, 0, 0) is dz_o
/// in padded coordinates (`dz[o,i,j]` at `i·Wp + j`, zeros between rows);
/// row (o, u, v) is the same `L` values shifted right by `u·Wp + v`, copied in
/// one piece. Positions no shift reaches stay zero.
fn place_dz<T: Real>(d: &mut [T], dz: &[T], s: &Conv2dShape, pl: &Planes) {
    let (oh, ow, kk) = (s.out_h(), s.out_w(), s.kh * s.kw);
    for (dzo, rows) in dz.chunks_exact(oh * ow).zip(d.chunks_exact_mut(kk * pl.s)) {
        let (first, rest) = rows.split_at_mut(pl.s);
        for (i, src) in dzo.chunks_exact(ow).enumerate() {
            copy_row(&mut first[i * pl.wp..i * pl.wp + ow], src);
        }
        for (uv, row) in rest.chunks_exact_mut(pl.s).enumerate() {
            let off = ((uv + 1) / s.kw) * pl.wp + (uv + 1) % s.kw;
            row[off..off + pl.len].copy_from_slice(&first[..pl.len]);
        }
    }
}

/// `W'[c, (o,u,v)] = W[o,c,u,v]`: the weight arranged for the dx GEMM
/// (`in_c × out_c·kh·kw`).
pub(crate) fn transpose_weight<T: Real>(wt: &mut [T], w: &[T], s: &Conv2dShape) {
    let kk = s.kh * s.kw;
    let okk = s.out_c * kk;
    for (o, wo) in w.chunks_exact(s.in_c * kk).enumerate() {
        for (c, wc) in wo.chunks_exact(kk).enumerate() {
            wt[c * okk + o * kk..c * okk + (o + 1) * kk].copy_from_slice(wc);
        }
    }
}

/// Backward of one sample, accumulating the transposed weight gradient
/// `dwt[(o,u,v), c] (+)= Σ_s D[(o,u,v), s]·xp_c[s]` (overwrites when
/// `first`) and, when `dx` is given, `dx ← interior(W'·D)` (overwrites).
/// `wt` is [`transpose_weight`] of W.
pub(crate) fn backward_sample<T: Real>(
    dx: Option<&mut [T]>,
    dz: &[T],
    x: &[T],
    wt: &[T],
    s: &Conv2dShape,
    first: bool,
    bufs: &mut ShiftBufs<T>,
) {
    let pl = Planes::of(s);
    let okk = s.out_c * s.kh * s.kw;
    pad_input(&mut bufs.xp, x, s, &pl);
    place_dz(&mut bufs.d, dz, s, &pl);
    let d = MatRef::new(&bufs.d, okk, pl.s);
    T::gemm(
        T::ONE,
        d,
        MatRef::new(&bufs.xp, s.in_c, pl.s).t(),
        if first { T::ZERO } else { T::ONE },
        MatMut::new(&mut bufs.dwt, okk, s.in_c),
        Epilogue::NONE,
    );
    if let Some(dx) = dx {
        T::gemm(
            T::ONE,
            MatRef::new(wt, s.in_c, okk),
            d,
            T::ZERO,
            MatMut::new(&mut bufs.dxp, s.in_c, pl.s),
            Epilogue::NONE,
        );
        let (p, w) = (s.pad, s.in_w);
        for (dxc, dxpc) in dx
            .chunks_exact_mut(s.in_h * w)
            .zip(bufs.dxp.chunks_exact(pl.s))
        {
            for (y, row) in dxc.chunks_exact_mut(w).enumerate() {
                let at = (y + p) * pl.wp + p;
                copy_row(row, &dxpc[at..at + w]);
            }
        }
    }
}

/// `dw[o,c,u,v] = dwt[(o,u,v), c]`: the group's weight gradient in the
/// PyTorch layout.
pub(crate) fn untranspose_dw<T: Real>(dw: &mut [T], bufs: &ShiftBufs<T>, s: &Conv2dShape) {
    let kk = s.kh * s.kw;
    for (o, dwo) in dw.chunks_exact_mut(s.in_c * kk).enumerate() {
        for (c, dwc) in dwo.chunks_exact_mut(kk).enumerate() {
            for (uv, d) in dwc.iter_mut().enumerate() {
                *d = bufs.dwt[(o * kk + uv) * s.in_c + c];
            }
        }
    }
}
