//! [`Simd`]: the vector vocabulary the generic kernel bodies are written in.
//!
//! An implementor is a zero-sized token that exists only on a CPU with the
//! matching instruction set (its constructor is a `#[target_feature]` function),
//! so every method is safe: the token proves the instructions exist, and loads
//! and stores take slices and check their lengths. The kernel bodies in
//! [`super::body`] are `#[inline(always)]` and generic over the token; the thin
//! `#[target_feature]` wrappers in `avx2.rs`/`avx512.rs` instantiate them, so
//! the whole body is compiled with the wider instruction set.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Lanes of `f32` with the operations the elementwise kernels need.
///
/// Arithmetic is IEEE single precision, lane by lane, rounding to nearest:
/// `add`, `sub`, `mul`, `div` and `sqrt` round once and so give exactly the
/// scalar result; `fma` rounds once for `a·b + c`.
pub(crate) trait Simd: Copy {
    /// Number of `f32` lanes.
    const LANES: usize;
    /// A vector of `LANES` floats.
    type V: Copy;
    /// A per-lane predicate (result of a comparison).
    type B: Copy;
    /// A mask of the first `len < LANES` lanes, for the tail of a slice.
    type T: Copy;
    /// A pair-wise f64 accumulator of `LANES` lanes.
    type Acc: Copy;
    /// A vector of `LANES` 32-bit integers (wrapping arithmetic).
    type U: Copy;

    /// Every lane = `v`.
    fn splat(self, v: f32) -> Self::V;
    /// Lanes `x[0..LANES]`.
    ///
    /// # Panics
    /// If `x.len() < LANES`.
    fn load(self, x: &[f32]) -> Self::V;
    /// `x[0..LANES]` ← lanes.
    ///
    /// # Panics
    /// If `x.len() < LANES`.
    fn store(self, x: &mut [f32], v: Self::V);
    /// The mask of the first `len` lanes (`len < LANES`).
    fn tail(self, len: usize) -> Self::T;
    /// Lanes `x[0..len]` of the tail mask, zero beyond.
    ///
    /// # Panics
    /// If `x` is shorter than the mask.
    fn load_tail(self, x: &[f32], t: Self::T) -> Self::V;
    /// `x[0..len]` ← the first `len` lanes; nothing else is touched.
    ///
    /// # Panics
    /// If `x` is shorter than the mask.
    fn store_tail(self, x: &mut [f32], t: Self::T, v: Self::V);
    /// `v` with the lanes outside the tail mask set to +0.
    fn keep_tail(self, t: Self::T, v: Self::V) -> Self::V;
    /// Bytes `x[0..LANES]` widened to floats (exact).
    ///
    /// # Panics
    /// If `x.len() < LANES`.
    fn load_u8(self, x: &[u8]) -> Self::V;

    /// a + b.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// a − b.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// a·b.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// a / b.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// a·b + c, rounded once.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// √a.
    fn sqrt(self, a: Self::V) -> Self::V;
    /// 1/a: the hardware estimate refined by Newton's method, within 1 ulp
    /// of the correctly rounded reciprocal (relative error < 2⁻²²; measured
    /// in `tests/elementwise_paths.rs`); exactly ±0 for ±∞, ±∞ for ±0, NaN
    /// for NaN. Several times the throughput of `div` (which shares the
    /// divider with `sqrt`).
    fn recip(self, a: Self::V) -> Self::V;
    /// `a > b ? a : b`, and `b` when either is NaN (the x86 `max` rule), so
    /// `max(0, z)` propagates a NaN `z`.
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// |a| (clears the sign bit; NaN stays NaN).
    fn abs(self, a: Self::V) -> Self::V;
    /// |mag| with the sign bit of `sign`.
    fn copysign(self, mag: Self::V, sign: Self::V) -> Self::V;
    /// a rounded to the nearest integer (ties to even), as a float.
    fn round(self, a: Self::V) -> Self::V;
    /// p·2ⁿ for integer-valued n in [−150, 0] and p in [0.5, 2], with one
    /// rounding (subnormal results are rounded correctly). NaN propagates.
    fn ldexp(self, p: Self::V, n: Self::V) -> Self::V;

    /// `a < b ? a : b`, and `b` when either is NaN (the x86 `min` rule).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;

    /// a < b (ordered: false when either is NaN).
    fn lt(self, a: Self::V, b: Self::V) -> Self::B;
    /// a > b (ordered).
    fn gt(self, a: Self::V, b: Self::V) -> Self::B;
    /// a ≥ b (ordered).
    fn ge(self, a: Self::V, b: Self::V) -> Self::B;
    /// `c ? t : f` lane by lane.
    fn select(self, c: Self::B, t: Self::V, f: Self::V) -> Self::V;

    /// Every integer lane = `v`.
    fn u_splat(self, v: u32) -> Self::U;
    /// Integer lanes `x[0..LANES]`.
    ///
    /// # Panics
    /// If `x.len() < LANES`.
    fn u_load(self, x: &[u32]) -> Self::U;
    /// `x[0..LANES]` ← integer lanes.
    ///
    /// # Panics
    /// If `x.len() < LANES`.
    fn u_store(self, x: &mut [u32], v: Self::U);
    /// a + b (mod 2³²).
    fn u_add(self, a: Self::U, b: Self::U) -> Self::U;
    /// a − b (mod 2³²).
    fn u_sub(self, a: Self::U, b: Self::U) -> Self::U;
    /// a & b.
    fn u_and(self, a: Self::U, b: Self::U) -> Self::U;
    /// a | b.
    fn u_or(self, a: Self::U, b: Self::U) -> Self::U;
    /// a ^ b.
    fn u_xor(self, a: Self::U, b: Self::U) -> Self::U;
    /// a << N (N in 0..32).
    fn u_shl<const N: i32>(self, a: Self::U) -> Self::U;
    /// a >> N, logical (N in 0..32).
    fn u_shr<const N: i32>(self, a: Self::U) -> Self::U;
    /// a rotated left by L; `R` must be 32 − L (spelled out because a const
    /// generic cannot be computed from another on stable Rust).
    fn u_rotl<const L: i32, const R: i32>(self, a: Self::U) -> Self::U;
    /// The lanes read as `i32`, converted to `f32` (exact for |a| ≤ 2²⁴).
    fn u_to_f32(self, a: Self::U) -> Self::V;
    /// Lanes where `a & m == 0`.
    fn u_none(self, a: Self::U, m: Self::U) -> Self::B;
    /// The bits of each float lane.
    fn to_bits(self, v: Self::V) -> Self::U;
    /// Floats with the bits of each integer lane.
    fn bits_to_float(self, a: Self::U) -> Self::V;

    /// An accumulator of zeros.
    fn acc_zero(self) -> Self::Acc;
    /// acc + v, each lane widened to f64 exactly.
    fn acc_add(self, acc: Self::Acc, v: Self::V) -> Self::Acc;
    /// Lane-wise a + b.
    fn acc_merge(self, a: Self::Acc, b: Self::Acc) -> Self::Acc;
    /// The sum of all lanes, in a fixed order.
    fn acc_sum(self, acc: Self::Acc) -> f64;

    /// +0 in every lane.
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.splat(0.0)
    }

    /// Lanes of `x[i..]`: a full vector, or the tail `t` when given.
    #[inline(always)]
    fn ld(self, x: &[f32], i: usize, t: Option<Self::T>) -> Self::V {
        match t {
            None => self.load(&x[i..]),
            Some(t) => self.load_tail(&x[i..], t),
        }
    }

    /// Stores `v` to `x[i..]`: a full vector, or the tail `t` when given.
    #[inline(always)]
    fn st(self, x: &mut [f32], i: usize, t: Option<Self::T>, v: Self::V) {
        match t {
            None => self.store(&mut x[i..], v),
            Some(t) => self.store_tail(&mut x[i..], t, v),
        }
    }
}

/// Runs `f(i, tail)` over `0..n` in steps of `LANES`: `tail` is `None` for
/// full vectors and the mask of the last `n mod LANES` elements otherwise.
#[inline(always)]
pub(crate) fn for_lanes<S: Simd>(s: S, n: usize, mut f: impl FnMut(usize, Option<S::T>)) {
    let full = n - n % S::LANES;
    let mut i = 0;
    while i < full {
        f(i, None);
        i += S::LANES;
    }
    if i < n {
        f(i, Some(s.tail(n - i)));
    }
}

/// Σ over `0..n` of the lanes `f(i, tail)` returns, accumulated in f64.
///
/// Lanes outside the tail are zeroed before they are added. The order is
/// fixed: two accumulators take alternate vectors, then merge lane-wise, then
/// [`Simd::acc_sum`]; so the result depends only on the data and `LANES`.
/// The loop computes four vectors before adding them (in that order), which
/// gives the core four independent chains of a long body such as the BCE's
/// to overlap: `bce_logits` on 25,088 values took 29–31 µs on the AVX2 path
/// against 34–36 µs two vectors at a time (Zen 4; AVX-512 unchanged at
/// 18–20 µs).
#[inline(always)]
pub(crate) fn sum_lanes<S: Simd>(
    s: S,
    n: usize,
    mut f: impl FnMut(usize, Option<S::T>) -> S::V,
) -> f64 {
    let l = S::LANES;
    let full = n - n % l;
    let (mut a0, mut a1) = (s.acc_zero(), s.acc_zero());
    let mut i = 0;
    while i + 4 * l <= full {
        let (v0, v1, v2, v3) = (
            f(i, None),
            f(i + l, None),
            f(i + 2 * l, None),
            f(i + 3 * l, None),
        );
        a0 = s.acc_add(a0, v0);
        a1 = s.acc_add(a1, v1);
        a0 = s.acc_add(a0, v2);
        a1 = s.acc_add(a1, v3);
        i += 4 * l;
    }
    while i + 2 * l <= full {
        a0 = s.acc_add(a0, f(i, None));
        a1 = s.acc_add(a1, f(i + l, None));
        i += 2 * l;
    }
    if i < full {
        a0 = s.acc_add(a0, f(i, None));
        i += l;
    }
    if i < n {
        let t = s.tail(n - i);
        a1 = s.acc_add(a1, s.keep_tail(t, f(i, Some(t))));
    }
    s.acc_sum(s.acc_merge(a0, a1))
}
