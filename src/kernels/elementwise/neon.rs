//! aarch64 NEON (Advanced SIMD) path: 4 lanes of `f32`. NEON has no masked
//! loads or stores, so a tail goes through a zero-padded 4-float buffer on
//! the stack; only the first `len` elements of the slice are read or written.
//!
//! NEON's own `fmax`/`fmin` return NaN when either operand is NaN; the trait
//! asks for the x86 rule (`b` unless `a > b`), so `max` and `min` are a
//! compare and a select.

use super::simd::Simd;
use std::arch::aarch64::*;

/// Proof that the CPU runs NEON: only a function compiled with it can build
/// one (every aarch64 CPU has it; the token keeps the dispatch uniform).
#[derive(Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// The token; callable (safely) only from code compiled with NEON.
    #[target_feature(enable = "neon")]
    #[inline]
    pub(crate) fn new() -> Neon {
        Neon(())
    }
}

/// The f64 accumulator: lanes 0–1 and 2–3.
#[derive(Clone, Copy)]
pub(crate) struct AccN(float64x2_t, float64x2_t);

/// The lanes 0, 1, 2, 3.
#[inline(always)]
fn iota() -> uint32x4_t {
    const I: [u32; 4] = [0, 1, 2, 3];
    // SAFETY: NEON is present (see `Neon`); `I` holds 4 words.
    unsafe { vld1q_u32(I.as_ptr()) }
}

// Every `unsafe` block below calls a NEON intrinsic; they are sound because a
// value of `Neon` exists only on a CPU with NEON (see `Neon::new`), and the
// pointer-taking ones check the slice length first.
impl Simd for Neon {
    const LANES: usize = 4;
    type V = float32x4_t;
    type B = uint32x4_t;
    type T = usize;
    type Acc = AccN;
    type U = uint32x4_t;

    #[inline(always)]
    fn splat(self, v: f32) -> float32x4_t {
        // SAFETY: `Neon` proves NEON (see the note above the impl).
        unsafe { vdupq_n_f32(v) }
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> float32x4_t {
        assert!(x.len() >= 4);
        // SAFETY: NEON is present and `x` holds 4 floats.
        unsafe { vld1q_f32(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, x: &mut [f32], v: float32x4_t) {
        assert!(x.len() >= 4);
        // SAFETY: NEON is present and `x` holds 4 floats.
        unsafe { vst1q_f32(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn tail(self, len: usize) -> usize {
        debug_assert!(len < 4);
        len
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], t: usize) -> float32x4_t {
        let mut buf = [0.0f32; 4];
        buf[..t].copy_from_slice(&x[..t]);
        self.load(&buf)
    }
    #[inline(always)]
    fn store_tail(self, x: &mut [f32], t: usize, v: float32x4_t) {
        let mut buf = [0.0f32; 4];
        self.store(&mut buf, v);
        x[..t].copy_from_slice(&buf[..t]);
    }
    #[inline(always)]
    fn keep_tail(self, t: usize, v: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe {
            let m = vcltq_u32(iota(), vdupq_n_u32(t as u32));
            vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v)))
        }
    }
    #[inline(always)]
    fn load_u8(self, x: &[u8]) -> float32x4_t {
        let w = [
            u32::from(x[0]),
            u32::from(x[1]),
            u32::from(x[2]),
            u32::from(x[3]),
        ];
        // SAFETY: NEON is present and `w` holds 4 words.
        unsafe { vcvtq_f32_u32(vld1q_u32(w.as_ptr())) }
    }

    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    fn div(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vdivq_f32(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    fn recip(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe {
            // 8-bit estimate, one `frecps` step (which maps 0·∞ to 2, so ±0
            // and ±∞ stay exact), then two fused Newton steps r + r·(1 − a·r);
            // where those give NaN (a = ±0 or ±∞) the estimate is kept.
            let one = vdupq_n_f32(1.0);
            let r = vrecpeq_f32(a);
            let r = vmulq_f32(r, vrecpsq_f32(a, r));
            let n = vfmaq_f32(r, r, vfmsq_f32(one, a, r));
            let n = vfmaq_f32(n, n, vfmsq_f32(one, a, n));
            vbslq_f32(vceqq_f32(n, n), n, r)
        }
    }
    #[inline(always)]
    fn sqrt(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vsqrtq_f32(a) }
    }
    #[inline(always)]
    fn max(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vbslq_f32(vcgtq_f32(a, b), a, b) }
    }
    #[inline(always)]
    fn abs(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vabsq_f32(a) }
    }
    #[inline(always)]
    fn copysign(self, mag: float32x4_t, sign: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vbslq_f32(vdupq_n_u32(0x8000_0000), sign, mag) }
    }
    #[inline(always)]
    fn round(self, a: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vrndnq_f32(a) }
    }
    #[inline(always)]
    fn ldexp(self, p: float32x4_t, n: float32x4_t) -> float32x4_t {
        // p·2^⌊n/2⌋·2^(n−⌊n/2⌋): both factors are normal for n ≥ −150, so
        // only the last product rounds (to a subnormal when it must).
        // SAFETY: `Neon` proves NEON.
        unsafe {
            let n = vcvtnq_s32_f32(n);
            let n1 = vshrq_n_s32::<1>(n);
            let n2 = vsubq_s32(n, n1);
            let bias = vdupq_n_s32(127);
            let f1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
            let f2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
            vmulq_f32(vmulq_f32(p, f1), f2)
        }
    }

    #[inline(always)]
    fn min(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vbslq_f32(vcltq_f32(a, b), a, b) }
    }

    #[inline(always)]
    fn lt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vcltq_f32(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vcgtq_f32(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: float32x4_t, b: float32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vcgeq_f32(a, b) }
    }
    #[inline(always)]
    fn select(self, c: uint32x4_t, t: float32x4_t, f: float32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vbslq_f32(c, t, f) }
    }

    #[inline(always)]
    fn u_splat(self, v: u32) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vdupq_n_u32(v) }
    }
    #[inline(always)]
    fn u_load(self, x: &[u32]) -> uint32x4_t {
        assert!(x.len() >= 4);
        // SAFETY: NEON is present and `x` holds 4 words.
        unsafe { vld1q_u32(x.as_ptr()) }
    }
    #[inline(always)]
    fn u_store(self, x: &mut [u32], v: uint32x4_t) {
        assert!(x.len() >= 4);
        // SAFETY: NEON is present and `x` holds 4 words.
        unsafe { vst1q_u32(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn u_add(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vaddq_u32(a, b) }
    }
    #[inline(always)]
    fn u_sub(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vsubq_u32(a, b) }
    }
    #[inline(always)]
    fn u_and(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vandq_u32(a, b) }
    }
    #[inline(always)]
    fn u_or(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vorrq_u32(a, b) }
    }
    #[inline(always)]
    fn u_xor(self, a: uint32x4_t, b: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { veorq_u32(a, b) }
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: uint32x4_t) -> uint32x4_t {
        // `ushl` by a register: a shift count of 0..32 needs no const bound.
        // SAFETY: `Neon` proves NEON.
        unsafe { vshlq_u32(a, vdupq_n_s32(N)) }
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: uint32x4_t) -> uint32x4_t {
        // `ushl` by a negative count shifts right, logically.
        // SAFETY: `Neon` proves NEON.
        unsafe { vshlq_u32(a, vdupq_n_s32(-N)) }
    }
    #[inline(always)]
    fn u_rotl<const L: i32, const R: i32>(self, a: uint32x4_t) -> uint32x4_t {
        debug_assert_eq!(L + R, 32);
        self.u_or(self.u_shl::<L>(a), self.u_shr::<R>(a))
    }
    #[inline(always)]
    fn u_to_f32(self, a: uint32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vcvtq_f32_s32(vreinterpretq_s32_u32(a)) }
    }
    #[inline(always)]
    fn u_none(self, a: uint32x4_t, m: uint32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vceqq_u32(vandq_u32(a, m), vdupq_n_u32(0)) }
    }
    #[inline(always)]
    fn to_bits(self, v: float32x4_t) -> uint32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vreinterpretq_u32_f32(v) }
    }
    #[inline(always)]
    fn bits_to_float(self, a: uint32x4_t) -> float32x4_t {
        // SAFETY: `Neon` proves NEON.
        unsafe { vreinterpretq_f32_u32(a) }
    }

    #[inline(always)]
    fn acc_zero(self) -> AccN {
        // SAFETY: `Neon` proves NEON.
        unsafe { AccN(vdupq_n_f64(0.0), vdupq_n_f64(0.0)) }
    }
    #[inline(always)]
    fn acc_add(self, acc: AccN, v: float32x4_t) -> AccN {
        // SAFETY: `Neon` proves NEON.
        unsafe {
            let lo = vcvt_f64_f32(vget_low_f32(v));
            let hi = vcvt_high_f64_f32(v);
            AccN(vaddq_f64(acc.0, lo), vaddq_f64(acc.1, hi))
        }
    }
    #[inline(always)]
    fn acc_merge(self, a: AccN, b: AccN) -> AccN {
        // SAFETY: `Neon` proves NEON.
        unsafe { AccN(vaddq_f64(a.0, b.0), vaddq_f64(a.1, b.1)) }
    }
    #[inline(always)]
    fn acc_sum(self, acc: AccN) -> f64 {
        let mut l = [0.0f64; 2];
        // SAFETY: `Neon` proves NEON; `l` holds 2 doubles.
        unsafe { vst1q_f64(l.as_mut_ptr(), vaddq_f64(acc.0, acc.1)) };
        l[0] + l[1]
    }
}

super::body::isa_kernels!("neon", Neon::new());
