//! NEON microkernel: an 8×12 tile in 24 of the 32 128-bit registers.
//!
//! Per step p: two vectors of Ã (8 rows), three of B̃ (12 columns), and 24
//! `fmla v.4s, b.4s, a.s[l]` taking the A operand from a lane, so no register
//! holds a broadcast: 24 accumulators + 3 B + 2 A = 29 of 32 registers. This
//! is the shape of BLIS's and OpenBLAS's ARMv8 sgemm kernels: 24 FMAs per 5
//! loads keeps two to four FMA pipes busy while the loads (one or two per
//! cycle) have slack, and 24 independent chains cover a latency of 4 cycles
//! on 4 pipes (16 in flight). 12×8 would do as well for the registers; 8×12
//! keeps the B panel (streamed from L2) the wider one.
//!
//! Transposed panels (a row-major Ã, or the W of x·Wᵀ as B̃) are packed by
//! 4×4 in-register transposes, as the x86 paths do with 8×8 and 16×16 ones.

use super::MicroKernel;
use super::direct::StridedTile;
use super::pack::Strided;
use super::params::{self, Blocking};
use super::quad::{self, Quad};
use std::arch::aarch64::*;

const MR: usize = params::NEON.mr;
const NR: usize = params::NEON.nr;

/// The NEON path.
pub(crate) struct Neon;

// SAFETY: the methods use NEON only; the kernels run them only from entry
// points compiled with NEON, on a CPU that has it.
unsafe impl Quad for Neon {
    type V = float32x4_t;

    #[inline(always)]
    fn zero() -> float32x4_t {
        // SAFETY: NEON is present (see the note above the impl).
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> float32x4_t {
        // SAFETY: NEON is present.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        // SAFETY: NEON is present; 4 floats readable by the contract.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        // SAFETY: NEON is present; 4 floats writable by the contract.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    fn fma_lane<const L: i32>(acc: float32x4_t, b: float32x4_t, a: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present.
        unsafe { vfmaq_laneq_f32::<L>(acc, b, a) }
    }
    #[inline(always)]
    fn fma_scalar(acc: float32x4_t, b: float32x4_t, a: f32) -> float32x4_t {
        // SAFETY: NEON is present.
        unsafe { vfmaq_n_f32(acc, b, a) }
    }
    #[inline(always)]
    fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: NEON is present.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn transpose4(r: [float32x4_t; 4]) -> [float32x4_t; 4] {
        // SAFETY: NEON is present. (a0 b0 a2 b2), (a1 b1 a3 b3) and the
        // same of rows c, d; then their 64-bit halves paired.
        unsafe {
            let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
            let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
            let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
            let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
            [
                vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
                vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
                vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
                vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)),
            ]
        }
    }
}

impl MicroKernel for Neon {
    const P: Blocking = params::NEON;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        // SAFETY: the caller guarantees NEON.
        unsafe { panels_neon::<MR>(dst, a, mc, kc) }
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        // SAFETY: the caller guarantees NEON.
        unsafe { panels_neon::<NR>(dst, b.t(), nc, kc) }
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
        // SAFETY: the caller guarantees NEON and the C tile; the packed
        // lengths are checked above.
        unsafe { tile_neon(kc, a.as_ptr(), b.as_ptr(), c, ldc, alpha, beta) }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: the caller guarantees NEON and the tile contract.
        unsafe { strided_neon(t) }
    }
}

/// The packed 8×12 tile, compiled with NEON.
///
/// # Safety
/// NEON and the contract of `MicroKernel::tile` (8×12).
#[target_feature(enable = "neon")]
#[inline(never)]
pub(crate) unsafe fn tile_neon(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: forwarded contract of `tile`.
    unsafe { quad::packed::<Neon, { MR / 4 }, { NR / 4 }>(kc, a, b, c, ldc, alpha, beta) }
}

/// The strided tile, compiled with NEON.
///
/// # Safety
/// NEON and the contract of `MicroKernel::tile_strided` (up to 8×12).
#[target_feature(enable = "neon")]
unsafe fn strided_neon(t: &StridedTile) {
    // SAFETY: forwarded.
    unsafe { quad::strided::<Neon>(t, MR, NR) }
}

/// [`quad::transposed_panels`] compiled with NEON.
///
/// # Safety
/// NEON is available.
///
/// # Panics
/// As [`super::pack::panels`].
#[target_feature(enable = "neon")]
unsafe fn panels_neon<const W: usize>(dst: &mut [f32], x: Strided<'_>, rows: usize, depth: usize) {
    // SAFETY: NEON by this function's contract.
    unsafe { quad::transposed_panels::<Neon, W>(dst, x, rows, depth) }
}
