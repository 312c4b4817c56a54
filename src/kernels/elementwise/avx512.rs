//! AVX-512F path: 16 lanes of `f32`; tails use masked loads and stores
//! (`_mm512_maskz_loadu_ps`/`_mm512_mask_storeu_ps`), which never touch the
//! masked-off lanes.

use super::simd::Simd;
use std::arch::x86_64::*;

/// Proof that the CPU runs AVX-512F: only a function compiled with it can
/// build one.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// The token; callable (safely) only from code compiled with AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn new() -> Avx512 {
        Avx512(())
    }
}

/// The f64 accumulator: lanes 0–7 and 8–15.
#[derive(Clone, Copy)]
pub(crate) struct Acc16(__m512d, __m512d);

/// A tail mask: its length and the lane mask.
#[derive(Clone, Copy)]
pub(crate) struct Tail16(usize, __mmask16);

// Every `unsafe` block below calls an AVX-512F intrinsic; they are sound
// because a value of `Avx512` exists only on a CPU with AVX-512F (see
// `Avx512::new`), and the pointer-taking ones check the slice length first.
impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;
    type B = __mmask16;
    type T = Tail16;
    type Acc = Acc16;
    type U = __m512i;

    #[inline(always)]
    fn splat(self, v: f32) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F (see the note above the impl).
        unsafe { _mm512_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m512 {
        assert!(x.len() >= 16);
        // SAFETY: AVX-512F is present and `x` holds 16 floats.
        unsafe { _mm512_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, x: &mut [f32], v: __m512) {
        assert!(x.len() >= 16);
        // SAFETY: AVX-512F is present and `x` holds 16 floats.
        unsafe { _mm512_storeu_ps(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn tail(self, len: usize) -> Tail16 {
        let len = len.min(16);
        Tail16(len, ((1u32 << len) - 1) as u16)
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], t: Tail16) -> __m512 {
        assert!(x.len() >= t.0);
        // SAFETY: AVX-512F is present; only the first `t.0 ≤ x.len()` lanes are read.
        unsafe { _mm512_maskz_loadu_ps(t.1, x.as_ptr()) }
    }
    #[inline(always)]
    fn store_tail(self, x: &mut [f32], t: Tail16, v: __m512) {
        assert!(x.len() >= t.0);
        // SAFETY: AVX-512F is present; only the first `t.0 ≤ x.len()` lanes are written.
        unsafe { _mm512_mask_storeu_ps(x.as_mut_ptr(), t.1, v) }
    }
    #[inline(always)]
    fn keep_tail(self, t: Tail16, v: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_maskz_mov_ps(t.1, v) }
    }
    #[inline(always)]
    fn load_u8(self, x: &[u8]) -> __m512 {
        assert!(x.len() >= 16);
        // SAFETY: AVX-512F is present and `x` holds the 16 bytes read.
        unsafe {
            let b = _mm_loadu_si128(x.as_ptr().cast());
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))
        }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn recip(self, a: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe {
            // 14-bit estimate, one Newton step r + r·(1 − a·r); where the
            // step gives NaN (a = ±0 or ±∞) the estimate is already exact.
            let r = _mm512_rcp14_ps(a);
            let e = _mm512_fnmadd_ps(a, r, _mm512_set1_ps(1.0));
            let n = _mm512_fmadd_ps(r, e, r);
            _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(n, n), r, n)
        }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn copysign(self, mag: __m512, sign: __m512) -> __m512 {
        // Bitwise `s ? sign : mag` with s the sign bit (truth table 0xCA).
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe {
            let s = _mm512_set1_epi32(i32::MIN);
            let r = _mm512_ternarylogic_epi32::<0xCA>(
                s,
                _mm512_castps_si512(sign),
                _mm512_castps_si512(mag),
            );
            _mm512_castsi512_ps(r)
        }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn ldexp(self, p: __m512, n: __m512) -> __m512 {
        // `vscalefps` computes p·2ⁿ with one rounding, subnormals included.
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_scalef_ps(p, n) }
    }

    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_min_ps(a, b) }
    }

    #[inline(always)]
    fn lt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m512, b: __m512) -> __mmask16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, c: __mmask16, t: __m512, f: __m512) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_mask_blend_ps(c, f, t) }
    }

    #[inline(always)]
    fn u_splat(self, v: u32) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_set1_epi32(v as i32) }
    }
    #[inline(always)]
    fn u_load(self, x: &[u32]) -> __m512i {
        assert!(x.len() >= 16);
        // SAFETY: AVX-512F is present and `x` holds 16 words.
        unsafe { _mm512_loadu_si512(x.as_ptr().cast()) }
    }
    #[inline(always)]
    fn u_store(self, x: &mut [u32], v: __m512i) {
        assert!(x.len() >= 16);
        // SAFETY: AVX-512F is present and `x` holds 16 words.
        unsafe { _mm512_storeu_si512(x.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn u_add(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_add_epi32(a, b) }
    }
    #[inline(always)]
    fn u_sub(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_sub_epi32(a, b) }
    }
    #[inline(always)]
    fn u_and(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_and_si512(a, b) }
    }
    #[inline(always)]
    fn u_or(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_or_si512(a, b) }
    }
    #[inline(always)]
    fn u_xor(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_xor_si512(a, b) }
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: __m512i) -> __m512i {
        // A constant count: compiled to the immediate form.
        // SAFETY: `Avx512` proves AVX-512F (and so SSE2).
        unsafe { _mm512_sll_epi32(a, _mm_cvtsi32_si128(N)) }
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: __m512i) -> __m512i {
        // A constant count: compiled to the immediate form.
        // SAFETY: `Avx512` proves AVX-512F (and so SSE2).
        unsafe { _mm512_srl_epi32(a, _mm_cvtsi32_si128(N)) }
    }
    #[inline(always)]
    fn u_rotl<const L: i32, const R: i32>(self, a: __m512i) -> __m512i {
        debug_assert_eq!(L + R, 32);
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_rol_epi32::<L>(a) }
    }
    #[inline(always)]
    fn u_to_f32(self, a: __m512i) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_cvtepi32_ps(a) }
    }
    #[inline(always)]
    fn u_none(self, a: __m512i, m: __m512i) -> __mmask16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_testn_epi32_mask(a, m) }
    }
    #[inline(always)]
    fn to_bits(self, v: __m512) -> __m512i {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_castps_si512(v) }
    }
    #[inline(always)]
    fn bits_to_float(self, a: __m512i) -> __m512 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { _mm512_castsi512_ps(a) }
    }

    #[inline(always)]
    fn acc_zero(self) -> Acc16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { Acc16(_mm512_setzero_pd(), _mm512_setzero_pd()) }
    }
    #[inline(always)]
    fn acc_add(self, acc: Acc16, v: __m512) -> Acc16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
            let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(hi));
            Acc16(_mm512_add_pd(acc.0, lo), _mm512_add_pd(acc.1, hi))
        }
    }
    #[inline(always)]
    fn acc_merge(self, a: Acc16, b: Acc16) -> Acc16 {
        // SAFETY: `Avx512` proves AVX-512F.
        unsafe { Acc16(_mm512_add_pd(a.0, b.0), _mm512_add_pd(a.1, b.1)) }
    }
    #[inline(always)]
    fn acc_sum(self, acc: Acc16) -> f64 {
        let mut l = [0.0f64; 8];
        // SAFETY: `Avx512` proves AVX-512F; `l` holds 8 doubles.
        unsafe { _mm512_storeu_pd(l.as_mut_ptr(), _mm512_add_pd(acc.0, acc.1)) };
        ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
    }
}

super::body::isa_kernels!("avx512f", Avx512::new());
