//! WebAssembly SIMD128 path: 4 lanes of `f32`, compiled in when the module is
//! built with `target_feature = "simd128"` (WebAssembly has no run-time
//! detection). Tails go through a zero-padded 4-float buffer.
//!
//! SIMD128 has neither a fused multiply-add nor a reciprocal estimate:
//! `fma` is done lane by lane with `f32::mul_add` (correctly rounded, in
//! software, so the approximations that use it run slower than on NEON),
//! and `recip` is a true division, exact to the rounding.

use super::simd::Simd;
use core::arch::wasm32::*;

/// The SIMD128 token; it exists only in a build with SIMD128.
#[derive(Clone, Copy)]
pub(crate) struct Simd128(());

impl Simd128 {
    /// The token.
    #[inline(always)]
    pub(crate) fn new() -> Simd128 {
        Simd128(())
    }
}

/// The f64 accumulator: lanes 0–1 and 2–3.
#[derive(Clone, Copy)]
pub(crate) struct AccW(v128, v128);

impl Simd for Simd128 {
    const LANES: usize = 4;
    type V = v128;
    type B = v128;
    type T = usize;
    type Acc = AccW;
    type U = v128;

    #[inline(always)]
    fn splat(self, v: f32) -> v128 {
        f32x4_splat(v)
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> v128 {
        assert!(x.len() >= 4);
        // SAFETY: `x` holds 4 floats; v128_load needs no alignment.
        unsafe { v128_load(x.as_ptr().cast()) }
    }
    #[inline(always)]
    fn store(self, x: &mut [f32], v: v128) {
        assert!(x.len() >= 4);
        // SAFETY: `x` holds 4 floats; v128_store needs no alignment.
        unsafe { v128_store(x.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn tail(self, len: usize) -> usize {
        debug_assert!(len < 4);
        len
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], t: usize) -> v128 {
        let mut buf = [0.0f32; 4];
        buf[..t].copy_from_slice(&x[..t]);
        self.load(&buf)
    }
    #[inline(always)]
    fn store_tail(self, x: &mut [f32], t: usize, v: v128) {
        let mut buf = [0.0f32; 4];
        self.store(&mut buf, v);
        x[..t].copy_from_slice(&buf[..t]);
    }
    #[inline(always)]
    fn keep_tail(self, t: usize, v: v128) -> v128 {
        let m = u32x4_lt(u32x4(0, 1, 2, 3), u32x4_splat(t as u32));
        v128_and(m, v)
    }
    #[inline(always)]
    fn load_u8(self, x: &[u8]) -> v128 {
        f32x4_convert_u32x4(u32x4(
            u32::from(x[0]),
            u32::from(x[1]),
            u32::from(x[2]),
            u32::from(x[3]),
        ))
    }

    #[inline(always)]
    fn add(self, a: v128, b: v128) -> v128 {
        f32x4_add(a, b)
    }
    #[inline(always)]
    fn sub(self, a: v128, b: v128) -> v128 {
        f32x4_sub(a, b)
    }
    #[inline(always)]
    fn mul(self, a: v128, b: v128) -> v128 {
        f32x4_mul(a, b)
    }
    #[inline(always)]
    fn div(self, a: v128, b: v128) -> v128 {
        f32x4_div(a, b)
    }
    #[inline(always)]
    fn fma(self, a: v128, b: v128, c: v128) -> v128 {
        let l = |x: v128| {
            [
                f32x4_extract_lane::<0>(x),
                f32x4_extract_lane::<1>(x),
                f32x4_extract_lane::<2>(x),
                f32x4_extract_lane::<3>(x),
            ]
        };
        let (a, b, c) = (l(a), l(b), l(c));
        f32x4(
            a[0].mul_add(b[0], c[0]),
            a[1].mul_add(b[1], c[1]),
            a[2].mul_add(b[2], c[2]),
            a[3].mul_add(b[3], c[3]),
        )
    }
    #[inline(always)]
    fn recip(self, a: v128) -> v128 {
        f32x4_div(f32x4_splat(1.0), a)
    }
    #[inline(always)]
    fn sqrt(self, a: v128) -> v128 {
        f32x4_sqrt(a)
    }
    #[inline(always)]
    fn max(self, a: v128, b: v128) -> v128 {
        v128_bitselect(a, b, f32x4_gt(a, b))
    }
    #[inline(always)]
    fn abs(self, a: v128) -> v128 {
        f32x4_abs(a)
    }
    #[inline(always)]
    fn copysign(self, mag: v128, sign: v128) -> v128 {
        v128_bitselect(sign, mag, u32x4_splat(0x8000_0000))
    }
    #[inline(always)]
    fn round(self, a: v128) -> v128 {
        f32x4_nearest(a)
    }
    #[inline(always)]
    fn ldexp(self, p: v128, n: v128) -> v128 {
        // p·2^⌊n/2⌋·2^(n−⌊n/2⌋): both factors are normal for n ≥ −150, so
        // only the last product rounds (to a subnormal when it must).
        let n = i32x4_trunc_sat_f32x4(n);
        let n1 = i32x4_shr(n, 1);
        let n2 = i32x4_sub(n, n1);
        let bias = i32x4_splat(127);
        let f1 = i32x4_shl(i32x4_add(n1, bias), 23);
        let f2 = i32x4_shl(i32x4_add(n2, bias), 23);
        f32x4_mul(f32x4_mul(p, f1), f2)
    }

    #[inline(always)]
    fn min(self, a: v128, b: v128) -> v128 {
        v128_bitselect(a, b, f32x4_lt(a, b))
    }

    #[inline(always)]
    fn lt(self, a: v128, b: v128) -> v128 {
        f32x4_lt(a, b)
    }
    #[inline(always)]
    fn gt(self, a: v128, b: v128) -> v128 {
        f32x4_gt(a, b)
    }
    #[inline(always)]
    fn ge(self, a: v128, b: v128) -> v128 {
        f32x4_ge(a, b)
    }
    #[inline(always)]
    fn select(self, c: v128, t: v128, f: v128) -> v128 {
        v128_bitselect(t, f, c)
    }

    #[inline(always)]
    fn u_splat(self, v: u32) -> v128 {
        u32x4_splat(v)
    }
    #[inline(always)]
    fn u_load(self, x: &[u32]) -> v128 {
        assert!(x.len() >= 4);
        // SAFETY: `x` holds 4 words; v128_load needs no alignment.
        unsafe { v128_load(x.as_ptr().cast()) }
    }
    #[inline(always)]
    fn u_store(self, x: &mut [u32], v: v128) {
        assert!(x.len() >= 4);
        // SAFETY: `x` holds 4 words; v128_store needs no alignment.
        unsafe { v128_store(x.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn u_add(self, a: v128, b: v128) -> v128 {
        i32x4_add(a, b)
    }
    #[inline(always)]
    fn u_sub(self, a: v128, b: v128) -> v128 {
        i32x4_sub(a, b)
    }
    #[inline(always)]
    fn u_and(self, a: v128, b: v128) -> v128 {
        v128_and(a, b)
    }
    #[inline(always)]
    fn u_or(self, a: v128, b: v128) -> v128 {
        v128_or(a, b)
    }
    #[inline(always)]
    fn u_xor(self, a: v128, b: v128) -> v128 {
        v128_xor(a, b)
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: v128) -> v128 {
        i32x4_shl(a, N as u32)
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: v128) -> v128 {
        u32x4_shr(a, N as u32)
    }
    #[inline(always)]
    fn u_rotl<const L: i32, const R: i32>(self, a: v128) -> v128 {
        debug_assert_eq!(L + R, 32);
        v128_or(i32x4_shl(a, L as u32), u32x4_shr(a, R as u32))
    }
    #[inline(always)]
    fn u_to_f32(self, a: v128) -> v128 {
        f32x4_convert_i32x4(a)
    }
    #[inline(always)]
    fn u_none(self, a: v128, m: v128) -> v128 {
        i32x4_eq(v128_and(a, m), i32x4_splat(0))
    }
    #[inline(always)]
    fn to_bits(self, v: v128) -> v128 {
        v
    }
    #[inline(always)]
    fn bits_to_float(self, a: v128) -> v128 {
        a
    }

    #[inline(always)]
    fn acc_zero(self) -> AccW {
        AccW(f64x2_splat(0.0), f64x2_splat(0.0))
    }
    #[inline(always)]
    fn acc_add(self, acc: AccW, v: v128) -> AccW {
        let lo = f64x2_promote_low_f32x4(v);
        let hi = f64x2_promote_low_f32x4(i32x4_shuffle::<2, 3, 2, 3>(v, v));
        AccW(f64x2_add(acc.0, lo), f64x2_add(acc.1, hi))
    }
    #[inline(always)]
    fn acc_merge(self, a: AccW, b: AccW) -> AccW {
        AccW(f64x2_add(a.0, b.0), f64x2_add(a.1, b.1))
    }
    #[inline(always)]
    fn acc_sum(self, acc: AccW) -> f64 {
        let s = f64x2_add(acc.0, acc.1);
        f64x2_extract_lane::<0>(s) + f64x2_extract_lane::<1>(s)
    }
}

super::body::isa_kernels!("simd128", Simd128::new());
