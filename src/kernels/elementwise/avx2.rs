//! AVX2 + FMA path: 8 lanes of `f32`; tails use `vmaskmovps`, which neither
//! reads nor writes the masked-off lanes.

use super::simd::Simd;
use std::arch::x86_64::*;

/// Proof that the CPU runs AVX2 and FMA: only a function compiled with those
/// features can build one.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token; callable (safely) only from code compiled with AVX2 + FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) fn new() -> Avx2 {
        Avx2(())
    }
}

/// The f64 accumulator: lanes 0–3 and 4–7.
#[derive(Clone, Copy)]
pub(crate) struct Acc2(__m256d, __m256d);

/// A tail mask: its length and the lane mask for `vmaskmovps`.
#[derive(Clone, Copy)]
pub(crate) struct Tail2(usize, __m256i);

// Every `unsafe` block below calls an AVX/AVX2/FMA intrinsic; they are sound
// because a value of `Avx2` exists only on a CPU with those features (see
// `Avx2::new`), and the pointer-taking ones check the slice length first.
impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;
    type B = __m256;
    type T = Tail2;
    type Acc = Acc2;
    type U = __m256i;

    #[inline(always)]
    fn splat(self, v: f32) -> __m256 {
        // SAFETY: `Avx2` proves AVX (see the note above the impl).
        unsafe { _mm256_set1_ps(v) }
    }
    #[inline(always)]
    fn load(self, x: &[f32]) -> __m256 {
        assert!(x.len() >= 8);
        // SAFETY: AVX is present and `x` holds 8 floats.
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, x: &mut [f32], v: __m256) {
        assert!(x.len() >= 8);
        // SAFETY: AVX is present and `x` holds 8 floats.
        unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn tail(self, len: usize) -> Tail2 {
        debug_assert!(len < 8);
        // SAFETY: AVX2 is present; lane k is all ones iff k < len.
        let m = unsafe {
            let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), iota)
        };
        Tail2(len.min(8), m)
    }
    #[inline(always)]
    fn load_tail(self, x: &[f32], t: Tail2) -> __m256 {
        assert!(x.len() >= t.0);
        // SAFETY: AVX is present; only the first `t.0 ≤ x.len()` lanes are read.
        unsafe { _mm256_maskload_ps(x.as_ptr(), t.1) }
    }
    #[inline(always)]
    fn store_tail(self, x: &mut [f32], t: Tail2, v: __m256) {
        assert!(x.len() >= t.0);
        // SAFETY: AVX is present; only the first `t.0 ≤ x.len()` lanes are written.
        unsafe { _mm256_maskstore_ps(x.as_mut_ptr(), t.1, v) }
    }
    #[inline(always)]
    fn keep_tail(self, t: Tail2, v: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_and_ps(_mm256_castsi256_ps(t.1), v) }
    }
    #[inline(always)]
    fn load_u8(self, x: &[u8]) -> __m256 {
        assert!(x.len() >= 8);
        // SAFETY: AVX2 is present and `x` holds the 8 bytes read.
        unsafe {
            let b = _mm_loadl_epi64(x.as_ptr().cast());
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))
        }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: `Avx2` proves FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn recip(self, a: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX2 and FMA.
        unsafe {
            // 12-bit estimate, two Newton steps r + r·(1 − a·r); where a step
            // gives NaN (a = ±0 or ±∞) the estimate is already exact.
            let one = _mm256_set1_ps(1.0);
            let r = _mm256_rcp_ps(a);
            let n = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(a, r, one), r);
            let n = _mm256_fmadd_ps(n, _mm256_fnmadd_ps(a, n, one), n);
            _mm256_blendv_ps(r, n, _mm256_cmp_ps::<_CMP_ORD_Q>(n, n))
        }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn copysign(self, mag: __m256, sign: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe {
            let s = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sign))
        }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    fn ldexp(self, p: __m256, n: __m256) -> __m256 {
        // p·2^⌊n/2⌋·2^(n−⌊n/2⌋): both factors are normal for n ≥ −150, so
        // only the last product rounds (to a subnormal when it must).
        // SAFETY: `Avx2` proves AVX2.
        unsafe {
            let n = _mm256_cvtps_epi32(n);
            let n1 = _mm256_srai_epi32::<1>(n);
            let n2 = _mm256_sub_epi32(n, n1);
            let bias = _mm256_set1_epi32(127);
            let f1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
            let f2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
            _mm256_mul_ps(_mm256_mul_ps(p, f1), f2)
        }
    }

    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_min_ps(a, b) }
    }

    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) }
    }
    #[inline(always)]
    fn gt(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) }
    }
    #[inline(always)]
    fn ge(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_cmp_ps::<_CMP_GE_OQ>(a, b) }
    }
    #[inline(always)]
    fn select(self, c: __m256, t: __m256, f: __m256) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_blendv_ps(f, t, c) }
    }

    #[inline(always)]
    fn u_splat(self, v: u32) -> __m256i {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_set1_epi32(v as i32) }
    }
    #[inline(always)]
    fn u_load(self, x: &[u32]) -> __m256i {
        assert!(x.len() >= 8);
        // SAFETY: AVX is present and `x` holds 8 words.
        unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
    }
    #[inline(always)]
    fn u_store(self, x: &mut [u32], v: __m256i) {
        assert!(x.len() >= 8);
        // SAFETY: AVX is present and `x` holds 8 words.
        unsafe { _mm256_storeu_si256(x.as_mut_ptr().cast(), v) }
    }
    #[inline(always)]
    fn u_add(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_add_epi32(a, b) }
    }
    #[inline(always)]
    fn u_sub(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_sub_epi32(a, b) }
    }
    #[inline(always)]
    fn u_and(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_and_si256(a, b) }
    }
    #[inline(always)]
    fn u_or(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_or_si256(a, b) }
    }
    #[inline(always)]
    fn u_xor(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_xor_si256(a, b) }
    }
    #[inline(always)]
    fn u_shl<const N: i32>(self, a: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_slli_epi32::<N>(a) }
    }
    #[inline(always)]
    fn u_shr<const N: i32>(self, a: __m256i) -> __m256i {
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_srli_epi32::<N>(a) }
    }
    #[inline(always)]
    fn u_rotl<const L: i32, const R: i32>(self, a: __m256i) -> __m256i {
        debug_assert_eq!(L + R, 32);
        // SAFETY: `Avx2` proves AVX2.
        unsafe { _mm256_or_si256(_mm256_slli_epi32::<L>(a), _mm256_srli_epi32::<R>(a)) }
    }
    #[inline(always)]
    fn u_to_f32(self, a: __m256i) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_cvtepi32_ps(a) }
    }
    #[inline(always)]
    fn u_none(self, a: __m256i, m: __m256i) -> __m256 {
        // SAFETY: `Avx2` proves AVX2.
        unsafe {
            let z = _mm256_cmpeq_epi32(_mm256_and_si256(a, m), _mm256_setzero_si256());
            _mm256_castsi256_ps(z)
        }
    }
    #[inline(always)]
    fn to_bits(self, v: __m256) -> __m256i {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_castps_si256(v) }
    }
    #[inline(always)]
    fn bits_to_float(self, a: __m256i) -> __m256 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { _mm256_castsi256_ps(a) }
    }

    #[inline(always)]
    fn acc_zero(self) -> Acc2 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { Acc2(_mm256_setzero_pd(), _mm256_setzero_pd()) }
    }
    #[inline(always)]
    fn acc_add(self, acc: Acc2, v: __m256) -> Acc2 {
        // SAFETY: `Avx2` proves AVX.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
            Acc2(_mm256_add_pd(acc.0, lo), _mm256_add_pd(acc.1, hi))
        }
    }
    #[inline(always)]
    fn acc_merge(self, a: Acc2, b: Acc2) -> Acc2 {
        // SAFETY: `Avx2` proves AVX.
        unsafe { Acc2(_mm256_add_pd(a.0, b.0), _mm256_add_pd(a.1, b.1)) }
    }
    #[inline(always)]
    fn acc_sum(self, acc: Acc2) -> f64 {
        let mut l = [0.0f64; 4];
        // SAFETY: `Avx2` proves AVX; `l` holds 4 doubles.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr(), _mm256_add_pd(acc.0, acc.1)) };
        (l[0] + l[2]) + (l[1] + l[3])
    }
}

super::body::isa_kernels!("avx2,fma", Avx2::new());
