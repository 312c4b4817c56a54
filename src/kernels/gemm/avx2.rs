//! AVX2 + FMA microkernel: a 6×16 tile in 12 ymm accumulators, the bodies of
//! `wide` on 8-lane vectors; edge lanes use `vmaskmovps`, which neither reads
//! nor writes the masked-off lanes. And the packing of transposed panels by
//! 8×8 in-register transposes.

use super::MicroKernel;
use super::direct::StridedTile;
use super::dot::DotTile;
use super::pack::{self, Strided};
use super::params::{self, Blocking};
use super::wide::{self, Wide};
use std::arch::x86_64::*;

const MR: usize = params::AVX2.mr;
const NR: usize = params::AVX2.nr;

/// The AVX2 + FMA path.
pub(crate) struct Avx2;

impl Avx2 {
    /// The sum of the 8 lanes, added in halves (l += l + 4, l += l + 2,
    /// l += l + 1): [`Wide::fold`] of both x86 paths ends here.
    #[inline(always)]
    pub(crate) fn fold_256(v: __m256) -> f32 {
        // SAFETY: AVX is present (both paths that call this have it).
        unsafe {
            let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2));
            _mm_cvtss_f32(s1)
        }
    }
}

// SAFETY: the methods use AVX, AVX2 and FMA only; the kernels run them only
// from entry points compiled with those features, on a CPU that has them.
unsafe impl Wide for Avx2 {
    const LANES: usize = 8;
    // Two steps per pass: the 6×16 tile's 12 FMAs a step leave the loop's
    // own instructions a visible share (1024³ and the batch-128 products).
    const UNROLL: bool = true;
    // 6 rows: 12 accumulators, two vectors of B̃ and a broadcast (15 of the
    // 16 registers). The compiler inlines this path's block transpose into
    // the tile all the same, and at 6 rows keeps every accumulator in a
    // register (`.ci/spills.py`). 6×784·(128×784)ᵀ on one Zen 5 core: 58.7
    // → 85.7 GFLOP/s (the packed loops 77); at 7 rows an accumulator spills
    // and the tile is slower than the packed loops.
    const TRANSPOSED_ROWS: usize = 6;
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
    fn fold(v: __m256) -> f32 {
        Avx2::fold_256(v)
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
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose_block(src: *const f32, rs: usize, rows: usize, cols: usize, dst: *mut f32) {
        // SAFETY: the instruction set is present (see the note above the
        // impl); the loads read columns q < cols of rows r < rows, the
        // stores write `cols` vectors at `dst`, as the contract allows.
        unsafe {
            if rows == 8 && cols == 8 {
                // A whole block: part of the transpose done by the loads.
                for (q, v) in transpose8_loads(src, rs).into_iter().enumerate() {
                    _mm256_storeu_ps(dst.add(q * 8), v);
                }
                return;
            }
            let m = Self::mask(cols);
            let mut r = [_mm256_setzero_ps(); 8];
            for (i, ri) in r.iter_mut().enumerate().take(rows) {
                *ri = Self::load_masked(src.add(i * rs), m);
            }
            for (q, v) in transpose8(r).into_iter().enumerate().take(cols) {
                _mm256_storeu_ps(dst.add(q * 8), v);
            }
        }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transposed_tile<const M: usize, const V: usize>(t: &StridedTile) {
        // SAFETY: forwarded contract.
        unsafe { wide::transposed_body::<Self, M, V>(t) }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_tile<const RA: usize, const RB: usize>(t: &DotTile) {
        // SAFETY: forwarded contract.
        unsafe { super::dot::dot_body::<Self, RA, RB>(t) }
    }
}

impl MicroKernel for Avx2 {
    const P: Blocking = params::AVX2;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        // SAFETY: the caller guarantees avx2.
        unsafe { panels_transposed::<MR>(dst, a, mc, kc) }
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        // SAFETY: the caller guarantees avx2.
        unsafe { panels_transposed::<NR>(dst, b.t(), nc, kc) }
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

    const TRANSPOSED_ROWS: usize = <Self as Wide>::TRANSPOSED_ROWS;

    unsafe fn tile_transposed(t: &StridedTile) {
        // SAFETY: the caller guarantees the instruction set and the tile
        // contract.
        unsafe { wide::transposed::<Self>(t) }
    }
}

/// [`pack::panels`], with the transposing case (rows running along p, cs = 1)
/// done by 8×8 in-register transposes instead of scalar moves: a product
/// x·Wᵀ packs both operands that way, and the scalar moves took a quarter of
/// the time of the 128×1024·(784×1024)ᵀ forward product on one Zen 4 core.
///
/// # Safety
/// avx2 is available.
///
/// # Panics
/// As [`pack::panels`].
unsafe fn panels_transposed<const W: usize>(
    dst: &mut [f32],
    x: Strided<'_>,
    rows: usize,
    depth: usize,
) {
    if x.cs != 1 || x.rs == 1 || rows == 0 || depth < 8 {
        return pack::panels::<W>(dst, x, rows, depth);
    }
    let need = (rows - 1) * x.rs + depth;
    assert!(need <= x.data.len(), "pack: view exceeds its slice");
    let dst = &mut dst[..rows.div_ceil(W) * W * depth];
    // SAFETY: avx2 by this function's contract; the source extent and the
    // dst length are checked above.
    unsafe { transpose_avx2::<W>(dst.as_mut_ptr(), x.data.as_ptr(), x.rs, rows, depth) }
}

/// The transpose of the 8×8 matrix whose rows are `r`: lane i of result j
/// is lane j of `r[i]`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // Pairs of rows interleaved per 128-bit lane, then pairs of pairs as
    // 64-bit units: s[4h + j] holds, in 128-bit lane L, column j + 4L of
    // rows 4h..4h+4. One 128-bit lane exchange joins each column's halves.
    let mut t = [_mm256_setzero_ps(); 8];
    for k in 0..4 {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let mut s = [_mm256_setzero_ps(); 8];
    for h in 0..2 {
        let (lo, hi) = (t[4 * h], t[4 * h + 1]);
        let (lo2, hi2) = (t[4 * h + 2], t[4 * h + 3]);
        s[4 * h] = _mm256_shuffle_ps::<0x44>(lo, lo2);
        s[4 * h + 1] = _mm256_shuffle_ps::<0xee>(lo, lo2);
        s[4 * h + 2] = _mm256_shuffle_ps::<0x44>(hi, hi2);
        s[4 * h + 3] = _mm256_shuffle_ps::<0xee>(hi, hi2);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2f128_ps::<0x20>(s[j], s[4 + j]);
        out[j + 4] = _mm256_permute2f128_ps::<0x31>(s[j], s[4 + j]);
    }
    out
}

/// The transpose of the 8×8 block at `src` (row stride `rs`): result q
/// holds column q. The loads do the exchange of 128-bit lanes: register
/// 4g + t holds, in lane L, the four floats of row 4L + t at columns
/// 4g..4g + 4 (a load and an insert from memory, which needs no shuffle
/// port); what is left is a 4×4 transpose within each lane, 16 shuffles
/// where [`transpose8`] takes 24.
///
/// # Safety
/// avx2; `src[r·rs + q]` readable for r, q < 8.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn transpose8_loads(src: *const f32, rs: usize) -> [__m256; 8] {
    let mut out = [_mm256_setzero_ps(); 8];
    for g in 0..2 {
        // SAFETY: rows t and 4 + t < 8, columns 4g..4g + 4 < 8, by the
        // contract.
        let (a, b, c, d) = unsafe {
            (
                quad(src, rs, g, 0),
                quad(src, rs, g, 1),
                quad(src, rs, g, 2),
                quad(src, rs, g, 3),
            )
        };
        let (t0, t1) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
        let (t2, t3) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
        let (t0, t1) = (_mm256_castps_pd(t0), _mm256_castps_pd(t1));
        let (t2, t3) = (_mm256_castps_pd(t2), _mm256_castps_pd(t3));
        out[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
        out[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
        out[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
        out[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
    }
    out
}

/// Lane L of the result: row 4L + t of the block at `src`, columns
/// 4g..4g + 4.
///
/// # Safety
/// avx (inlined into [`transpose8_loads`]); those floats readable.
#[inline(always)]
unsafe fn quad(src: *const f32, rs: usize, g: usize, t: usize) -> __m256 {
    // SAFETY: by the contract.
    unsafe {
        let lo = _mm256_castps128_ps256(_mm_loadu_ps(src.add(t * rs + 4 * g)));
        _mm256_insertf128_ps::<1>(lo, _mm_loadu_ps(src.add((4 + t) * rs + 4 * g)))
    }
}

/// Writes `⌈rows/W⌉` panels of W·depth floats at `dst`:
/// `dst[q·W·depth + p·W + i] = src[(q·W + i)·rs + p]`, zero for rows ≥ `rows`.
///
/// # Safety
/// avx2; `src` readable up to `(rows − 1)·rs + depth` floats, `dst`
/// writable for `⌈rows/W⌉·W·depth` floats.
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2<const W: usize>(
    dst: *mut f32,
    src: *const f32,
    rs: usize,
    rows: usize,
    depth: usize,
) {
    let blocks = depth / 8;
    for q in 0..rows.div_ceil(W) {
        let w = W.min(rows - q * W);
        for g in 0..W.div_ceil(8) {
            let lanes = 8.min(W - 8 * g);
            let valid = lanes.min(w.saturating_sub(8 * g));
            let mask = Avx2::mask(lanes);
            // SAFETY: rows q·W + 8·g + i for i < valid exist, so every load
            // reads inside the extent; every store covers `lanes` floats of
            // step p of panel q (masked when the group is narrower than 8),
            // or, for W < 8 and p below the last step, 8 floats that end
            // inside step p + 1 of the same panel.
            unsafe {
                let base = src.add((q * W + 8 * g) * rs);
                let out = dst.add(q * W * depth + 8 * g);
                // A panel narrower than 8 (the 6-row Ã) stores 8 lanes at
                // each p but the last; the lanes past W land on step p + 1,
                // which is stored after it (`vmaskmovps` stores were slower
                // than the scalar moves on Zen 4).
                let put = |p: usize, v: __m256| {
                    if lanes == 8 || (W < 8 && p + 1 < depth) {
                        _mm256_storeu_ps(out.add(p * W), v)
                    } else if W < 8 {
                        let mut last = [0.0f32; 8];
                        _mm256_storeu_ps(last.as_mut_ptr(), v);
                        std::ptr::copy_nonoverlapping(last.as_ptr(), out.add(p * W), lanes);
                    } else {
                        _mm256_maskstore_ps(out.add(p * W), mask, v)
                    }
                };
                if valid == 0 {
                    for p in 0..depth {
                        put(p, _mm256_setzero_ps());
                    }
                    continue;
                }
                for blk in 0..blocks {
                    let p0 = 8 * blk;
                    let t = if valid == 8 {
                        transpose8_loads(base.add(p0), rs)
                    } else {
                        let mut r = [_mm256_setzero_ps(); 8];
                        for (i, ri) in r.iter_mut().enumerate().take(valid) {
                            *ri = _mm256_loadu_ps(base.add(i * rs + p0));
                        }
                        transpose8(r)
                    };
                    for (j, tj) in t.into_iter().enumerate() {
                        put(p0 + j, tj);
                    }
                }
                for p in 8 * blocks..depth {
                    for i in 0..lanes {
                        *out.add(p * W + i) = if i < valid {
                            *base.add(i * rs + p)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}
