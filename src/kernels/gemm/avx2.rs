//! AVX2 + FMA microkernel: a 6×16 tile in 12 ymm accumulators.

use super::MicroKernel;
use super::direct::StridedTile;
use super::pack::{self, Strided};
use super::params::{self, Blocking};
use std::arch::x86_64::*;

const MR: usize = params::AVX2.mr;
const NR: usize = params::AVX2.nr;
const NV: usize = NR / 8;

/// The AVX2 + FMA path.
pub(crate) struct Avx2;

impl MicroKernel for Avx2 {
    const P: Blocking = params::AVX2;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        pack::panels::<MR>(dst, a, mc, kc)
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        pack::panels::<NR>(dst, b.t(), nc, kc)
    }

    unsafe fn tile(
        kc: usize,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        assert!(a.len() >= kc * MR && b.len() >= kc * NR);
        // SAFETY: the caller guarantees avx2 + fma and the C tile; the packed
        // lengths are checked above.
        unsafe { tile_avx2_fma(kc, a.as_ptr(), b.as_ptr(), c, ldc, alpha, beta) }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: the caller guarantees avx2 + fma and the tile contract.
        unsafe { super::avx2_strided::tile(t) }
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2_fma(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: forwarded contract of `tile`.
    unsafe { body::<MR, NV>(kc, a, b, c, ldc, alpha, beta) }
}

/// `C[M×8·V] ← α·Σ_p ã_p b̃_pᵀ + β·C` (C not read when β = 0), the products
/// summed with FMA in increasing p, then scaled and added unfused (round(α·acc)
/// + round(β·c)) exactly as the scalar edge update does.
///
/// # Safety
/// avx2 and fma; `a` has M·kc and `b` 8·V·kc readable floats; `c` is an M×8·V
/// tile with row stride ldc, writable and (when β ≠ 0) readable.
#[inline(always)]
unsafe fn body<const M: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: every pointer offset stays within the extents in the contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; M];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(8 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add(i));
                for (x, bvv) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, *bvv, *x);
                }
            }
            ap = ap.add(M);
            bp = bp.add(8 * V);
        }
        let va = _mm256_set1_ps(alpha);
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    _mm256_storeu_ps(c.add(i * ldc + 8 * v), _mm256_mul_ps(va, *x));
                }
            }
        } else {
            let vb = _mm256_set1_ps(beta);
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    let cp = c.add(i * ldc + 8 * v);
                    let old = _mm256_mul_ps(vb, _mm256_loadu_ps(cp));
                    _mm256_storeu_ps(cp, _mm256_add_ps(_mm256_mul_ps(va, *x), old));
                }
            }
        }
    }
}
