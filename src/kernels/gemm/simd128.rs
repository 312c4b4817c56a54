//! WebAssembly SIMD128 microkernel: a 4×8 tile (8 accumulators).
//!
//! SIMD128 has no fused multiply-add (that is the relaxed-SIMD proposal, whose
//! results may differ between engines), so each step is a product and a sum,
//! two roundings, as the scalar twin does. The A operand of a row is one lane
//! of the Ã vector, splat by a shuffle. The tile is small because the engine
//! maps each v128 onto a host register and an x86-64 host has only 16:
//! 8 accumulators + 2 B + 1 A + 1 splat fit without spilling.

use super::MicroKernel;
use super::direct::StridedTile;
use super::pack::Strided;
use super::params::{self, Blocking};
use super::quad::{self, Quad};
use core::arch::wasm32::*;

const MR: usize = params::SIMD128.mr;
const NR: usize = params::SIMD128.nr;

/// The SIMD128 path.
pub(crate) struct Simd128;

// SAFETY: the methods use SIMD128 only, which this module is compiled with
// (`target_feature = "simd128"`); loads and stores follow their contracts.
unsafe impl Quad for Simd128 {
    type V = v128;

    #[inline(always)]
    fn zero() -> v128 {
        f32x4_splat(0.0)
    }
    #[inline(always)]
    fn splat(x: f32) -> v128 {
        f32x4_splat(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> v128 {
        // SAFETY: 4 floats readable by the contract (no alignment needed).
        unsafe { v128_load(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: v128) {
        // SAFETY: 4 floats writable by the contract (no alignment needed).
        unsafe { v128_store(p.cast(), v) }
    }
    #[inline(always)]
    fn fma_lane<const L: i32>(acc: v128, b: v128, a: v128) -> v128 {
        let s = match L {
            0 => i32x4_shuffle::<0, 0, 0, 0>(a, a),
            1 => i32x4_shuffle::<1, 1, 1, 1>(a, a),
            2 => i32x4_shuffle::<2, 2, 2, 2>(a, a),
            _ => i32x4_shuffle::<3, 3, 3, 3>(a, a),
        };
        f32x4_add(acc, f32x4_mul(b, s))
    }
    #[inline(always)]
    fn fma_scalar(acc: v128, b: v128, a: f32) -> v128 {
        f32x4_add(acc, f32x4_mul(b, f32x4_splat(a)))
    }
    #[inline(always)]
    fn mul(a: v128, b: v128) -> v128 {
        f32x4_mul(a, b)
    }
    #[inline(always)]
    fn add(a: v128, b: v128) -> v128 {
        f32x4_add(a, b)
    }
    #[inline(always)]
    fn transpose4(r: [v128; 4]) -> [v128; 4] {
        // (a0 b0 a1 b1), (a2 b2 a3 b3) and the same of rows c, d; then
        // their halves paired.
        let t0 = i32x4_shuffle::<0, 4, 1, 5>(r[0], r[1]);
        let t1 = i32x4_shuffle::<2, 6, 3, 7>(r[0], r[1]);
        let t2 = i32x4_shuffle::<0, 4, 1, 5>(r[2], r[3]);
        let t3 = i32x4_shuffle::<2, 6, 3, 7>(r[2], r[3]);
        [
            i32x4_shuffle::<0, 1, 4, 5>(t0, t2),
            i32x4_shuffle::<2, 3, 6, 7>(t0, t2),
            i32x4_shuffle::<0, 1, 4, 5>(t1, t3),
            i32x4_shuffle::<2, 3, 6, 7>(t1, t3),
        ]
    }
}

impl MicroKernel for Simd128 {
    const P: Blocking = params::SIMD128;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        // SAFETY: this module is compiled with SIMD128.
        unsafe { quad::transposed_panels::<Self, MR>(dst, a, mc, kc) }
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        // SAFETY: this module is compiled with SIMD128.
        unsafe { quad::transposed_panels::<Self, NR>(dst, b.t(), nc, kc) }
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
        // SAFETY: the caller guarantees the C tile; the packed lengths are
        // checked above; SIMD128 is compiled in.
        unsafe {
            quad::packed::<Simd128, { MR / 4 }, { NR / 4 }>(
                kc,
                a.as_ptr(),
                b.as_ptr(),
                c,
                ldc,
                alpha,
                beta,
            )
        }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: the caller guarantees the tile contract; SIMD128 is
        // compiled in.
        unsafe { quad::strided::<Simd128>(t, MR, NR) }
    }
}
