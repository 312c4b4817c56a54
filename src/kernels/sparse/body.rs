//! The SIMD bodies of the sparse products, written once over [`Simd`] and
//! compiled per instruction set by the `#[target_feature]` wrappers in
//! `avx2.rs` and `avx512.rs`. The callers have run the shape checks of
//! [`super::scalar`]; every access here still goes through a checked slice.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::Csr;
use crate::kernels::elementwise::simd::{Simd, sum_lanes};
use crate::kernels::{MatMut, MatRef};

/// Vectors per block of columns in [`spmm`]: four accumulators stay in
/// registers while the row's entries stream past (16 registers on AVX2, 32 on
/// AVX-512, so both have room for the operands).
const UNROLL: usize = 4;

/// See [`super::spmm`]. Columns are taken in blocks of `UNROLL` vectors; for
/// each block the row's entries are added in order into zeroed accumulators,
/// with a multiply and an add (no FMA), exactly as the scalar twin.
#[inline(always)]
pub(super) fn spmm<S: Simd>(s: S, sp: Csr<'_, f32>, a: MatRef<'_, f32>, c: MatMut<'_, f32>) {
    let (width, l) = (c.cols, S::LANES);
    let src = |e: usize| gathered_row(&a, sp.cols[e], width);
    for r in 0..c.rows {
        let out = &mut c.data[r * c.ld..r * c.ld + width];
        let entries = sp.starts[r]..sp.starts[r + 1];
        let mut i = 0;
        while i + UNROLL * l <= width {
            let mut acc = [s.zero(); UNROLL];
            for e in entries.clone() {
                let v = s.splat(sp.vals[e]);
                let row = &src(e)[i..i + UNROLL * l];
                for (u, a) in acc.iter_mut().enumerate() {
                    *a = s.add(*a, s.mul(v, s.load(&row[u * l..])));
                }
            }
            for (u, a) in acc.into_iter().enumerate() {
                s.store(&mut out[i + u * l..], a);
            }
            i += UNROLL * l;
        }
        while i < width {
            let t = (width - i < l).then(|| s.tail(width - i));
            let mut acc = s.zero();
            for e in entries.clone() {
                acc = s.add(acc, s.mul(s.splat(sp.vals[e]), s.ld(src(e), i, t)));
            }
            s.st(out, i, t, acc);
            i += l;
        }
    }
}

/// Row `j` of `a`, `width` values.
#[inline(always)]
fn gathered_row<'a>(a: &MatRef<'a, f32>, j: u32, width: usize) -> &'a [f32] {
    let j = j as usize;
    &a.data[j * a.ld..j * a.ld + width]
}

/// See [`super::sddmm`]: each dot product is [`sum_lanes`] of the f32
/// products, accumulated in f64.
#[inline(always)]
pub(super) fn sddmm<S: Simd>(
    s: S,
    starts: &[usize],
    cols: &[u32],
    x: MatRef<'_, f32>,
    y: MatRef<'_, f32>,
    out: &mut [f32],
) {
    let (width, base) = (x.cols, starts[0]);
    for r in 0..starts.len() - 1 {
        let xr = &x.data[r * x.ld..r * x.ld + width];
        for e in starts[r]..starts[r + 1] {
            let yr = gathered_row(&y, cols[e], width);
            let sum = sum_lanes(
                s,
                width,
                #[inline(always)]
                |i, t| s.mul(s.ld(xr, i, t), s.ld(yr, i, t)),
            );
            out[e - base] = sum as f32;
        }
    }
}

/// Defines the `#[target_feature]` entry points of one instruction set.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )),
    allow(unused_macros)
)]
macro_rules! isa_entry_points {
    ($feat:literal, $token:expr) => {
        use super::{Csr, body};
        use crate::kernels::{MatMut, MatRef};

        #[target_feature(enable = $feat)]
        pub(super) fn spmm(s: Csr<'_, f32>, a: MatRef<'_, f32>, c: MatMut<'_, f32>) {
            body::spmm($token, s, a, c)
        }
        #[target_feature(enable = $feat)]
        pub(super) fn sddmm(
            starts: &[usize],
            cols: &[u32],
            x: MatRef<'_, f32>,
            y: MatRef<'_, f32>,
            out: &mut [f32],
        ) {
            body::sddmm($token, starts, cols, x, y, out)
        }
    };
}
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
pub(super) use isa_entry_points;
