//! AVX2 + FMA microkernel: a 6×16 tile in 12 ymm accumulators, the bodies of
//! `wide` on 8-lane vectors; edge lanes use `vmaskmovps`, which neither reads
//! nor writes the masked-off lanes.

use super::MicroKernel;
use super::direct::StridedTile;
use super::pack::{self, Strided};
use super::params::{self, Blocking};
use super::wide::{self, Wide};
use std::arch::x86_64::*;

const MR: usize = params::AVX2.mr;
const NR: usize = params::AVX2.nr;

/// The AVX2 + FMA path.
pub(crate) struct Avx2;

// SAFETY: the methods use AVX, AVX2 and FMA only; the kernels run them only
// from entry points compiled with those features, on a CPU that has them.
unsafe impl Wide for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    type Row = [f32; 16];
    type M = __m256i;

    #[inline(always)]
    fn zero() -> __m256 {
        // SAFETY: AVX is present (see the note above the impl).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m256 {
        // SAFETY: AVX is present.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: AVX is present; 8 floats readable by the contract.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: AVX is present; 8 floats writable by the contract.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn mask(n: usize) -> __m256i {
        // SAFETY: AVX2 is present; lane l is all ones iff l < n.
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
        }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: AVX is present; only the lanes in `m` are read.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: AVX is present; only the lanes in `m` are written.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA is present.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX is present.
        unsafe { _mm256_add_ps(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn packed_tile<const M: usize, const V: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) {
        // SAFETY: forwarded contract.
        unsafe { wide::packed::<Self, M, V>(kc, a, b, c, ldc, alpha, beta) }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn strided_tile<const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile) {
        // SAFETY: forwarded contract.
        unsafe { wide::strided_body::<Self, M, V, ROWS>(t) }
    }
}

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
        unsafe {
            Self::packed_tile::<MR, { NR / 8 }>(kc, a.as_ptr(), b.as_ptr(), c, ldc, alpha, beta)
        }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: the caller guarantees avx2 + fma and the tile contract.
        unsafe { wide::strided::<Self, MR>(t) }
    }
}
