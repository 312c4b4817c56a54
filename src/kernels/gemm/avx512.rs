//! AVX-512F microkernel: a 14×32 tile in 28 zmm accumulators, the bodies of
//! `wide` on 16-lane vectors with mask registers for the edge lanes; and the
//! packing of transposed panels by in-register transposes and gathers.

use super::MicroKernel;
use super::avx2::Avx2;
use super::direct::StridedTile;
use super::dot::DotTile;
use super::pack::{self, Strided};
use super::params::{self, Blocking};
use super::wide::{self, Wide};
use std::arch::x86_64::*;

const MR: usize = params::AVX512.mr;
const NR: usize = params::AVX512.nr;

/// The AVX-512F path.
pub(crate) struct Avx512;

// SAFETY: the methods use AVX-512F (and SSE's prefetch) only; the kernels run
// them only from entry points compiled with AVX-512F, on a CPU that has it.
unsafe impl Wide for Avx512 {
    const LANES: usize = 16;
    // One step per pass: unrolled, the 14×32 tile ran slower (up to 15 %).
    const UNROLL: bool = false;
    // 14 rows, the packed tile's MR: 28 accumulators, two vectors of B̃ and
    // a broadcast (31 of the 32 registers). Against 12 rows, one Zen 5 core,
    // 13×784·(32×784)ᵀ 125–130 → 173 GFLOP/s and 13×784·(128×784)ᵀ 163–165
    // → 174 (those rows ran on the packed B̃ before); 14×784·(1024×784)ᵀ
    // within the noise (153–165 against 170–173).
    const TRANSPOSED_ROWS: usize = 14;
    type V = __m512;
    type Row = [f32; 32];
    type M = __mmask16;

    #[inline(always)]
    fn zero() -> __m512 {
        // SAFETY: AVX-512F is present (see the note above the impl).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m512 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: AVX-512F is present; 16 floats readable by the contract.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: AVX-512F is present; 16 floats writable by the contract.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: AVX-512F is present; only the lanes in `m` are read.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: AVX-512F is present; only the lanes in `m` are written.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    fn fold(v: __m512) -> f32 {
        // SAFETY: AVX-512F (and the AVX and SSE it implies) is present.
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            Avx2::fold_256(_mm256_add_ps(_mm512_castps512_ps256(v), hi))
        }
    }
    #[inline(always)]
    fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F is present.
        unsafe { _mm512_add_ps(a, b) }
    }
    /// The C tile's lines, fetched before the k loop, are in L1 when the sums
    /// are stored (a store to a missing line waits for it).
    #[inline(always)]
    fn prefetch(p: *const f32) {
        // SAFETY: a prefetch is a hint (SSE, part of x86-64) and never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
    }

    #[target_feature(enable = "avx512f")]
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
    #[target_feature(enable = "avx512f")]
    unsafe fn strided_tile<const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile) {
        // SAFETY: forwarded contract.
        unsafe { wide::strided_body::<Self, M, V, ROWS>(t) }
    }
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_block(src: *const f32, rs: usize, rows: usize, cols: usize, dst: *mut f32) {
        // SAFETY: the instruction set is present (see the note above the
        // impl); the loads read columns q < cols of rows r < rows, the
        // stores write `cols` vectors at `dst`, as the contract allows.
        unsafe {
            if cols == 16 {
                // Whole rows: part of the transpose done by the loads.
                let t = if rows == 16 {
                    transpose16_loads(src, rs)
                } else {
                    transpose16_first(src, rs, rows)
                };
                for (q, v) in t.into_iter().enumerate() {
                    _mm512_storeu_ps(dst.add(q * 16), v);
                }
                return;
            }
            let m = Self::mask(cols);
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, ri) in r.iter_mut().enumerate().take(rows) {
                *ri = _mm512_maskz_loadu_ps(m, src.add(i * rs));
            }
            for (q, v) in transpose16(r).into_iter().enumerate().take(cols) {
                _mm512_storeu_ps(dst.add(q * 16), v);
            }
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn transposed_tile<const M: usize, const V: usize>(t: &StridedTile) {
        // SAFETY: forwarded contract.
        unsafe { wide::transposed_body::<Self, M, V>(t) }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_tile<const RA: usize, const RB: usize>(t: &DotTile) {
        // SAFETY: forwarded contract.
        unsafe { super::dot::dot_body::<Self, RA, RB>(t) }
    }
}

impl MicroKernel for Avx512 {
    const P: Blocking = params::AVX512;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        // SAFETY: the caller guarantees avx512f.
        unsafe { panels_gather::<MR>(dst, a, mc, kc) }
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        // SAFETY: the caller guarantees avx512f.
        unsafe { panels_gather::<NR>(dst, b.t(), nc, kc) }
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
        // SAFETY: the caller guarantees avx512f and the C tile; the packed
        // lengths are checked above.
        unsafe {
            Self::packed_tile::<MR, { NR / 16 }>(kc, a.as_ptr(), b.as_ptr(), c, ldc, alpha, beta)
        }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: the caller guarantees avx512f and the tile contract.
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
/// done by one 16-lane gather per row group and step p instead of scalar
/// moves.
///
/// # Safety
/// avx512f is available.
///
/// # Panics
/// As [`pack::panels`].
unsafe fn panels_gather<const W: usize>(
    dst: &mut [f32],
    x: Strided<'_>,
    rows: usize,
    depth: usize,
) {
    if x.cs != 1 || x.rs == 1 || x.rs > (i32::MAX / 16) as usize || rows == 0 || depth == 0 {
        // SAFETY: avx512f by this function's contract.
        return unsafe { panels_avx512f::<W>(dst, x, rows, depth) };
    }
    let need = (rows - 1) * x.rs + depth;
    assert!(need <= x.data.len(), "pack: view exceeds its slice");
    let dst = &mut dst[..rows.div_ceil(W) * W * depth];
    // SAFETY: avx512f by this function's contract; the source extent and the
    // dst length are checked above.
    unsafe { gather_avx512f::<W>(dst.as_mut_ptr(), x.data.as_ptr(), x.rs, rows, depth) }
}

/// [`pack::panels`] compiled with AVX-512, so that its runs of W floats move
/// as whole zmm registers.
///
/// # Safety
/// avx512f is available.
#[target_feature(enable = "avx512f")]
unsafe fn panels_avx512f<const W: usize>(
    dst: &mut [f32],
    x: Strided<'_>,
    rows: usize,
    depth: usize,
) {
    pack::panels::<W>(dst, x, rows, depth)
}

/// The transpose of the 16×16 matrix whose rows are `r`: lane i of result j
/// is lane j of `r[i]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved per 128-bit lane, then pairs of pairs as
    // 64-bit units: u[4k + j] holds, in 128-bit lane L, column j + 4L of rows
    // 4k..4k+4. Two rounds of 128-bit lane shuffles gather each column.
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for k in 0..4 {
        let (a, b) = (_mm512_castps_pd(t[4 * k]), _mm512_castps_pd(t[4 * k + 2]));
        let (c, d) = (
            _mm512_castps_pd(t[4 * k + 1]),
            _mm512_castps_pd(t[4 * k + 3]),
        );
        u[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        let v1 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        let w1 = _mm512_shuffle_f32x4::<0xdd>(u[j], u[4 + j]);
        let w2 = _mm512_shuffle_f32x4::<0xdd>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(v1, v2);
        out[j + 8] = _mm512_shuffle_f32x4::<0xdd>(v1, v2);
        out[j + 4] = _mm512_shuffle_f32x4::<0x88>(w1, w2);
        out[j + 12] = _mm512_shuffle_f32x4::<0xdd>(w1, w2);
    }
    out
}

/// The transpose of the 16×16 block at `src` (row stride `rs`): result q
/// holds column q. The exchange between 128-bit lanes is done by the loads:
/// register 4g + t gathers, in lane L, the four floats of row 4L + t at
/// columns 4g..4g + 4 (128-bit loads and inserts, which mostly leave the
/// one shuffle port of these cores free); what is left is a 4×4 transpose
/// within each lane, 32 shuffles where [`transpose16`] takes 64.
///
/// # Safety
/// avx512f; `src[r·rs + q]` readable for r, q < 16.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16_loads(src: *const f32, rs: usize) -> [__m512; 16] {
    // SAFETY: row r at src + r·rs, 16 floats readable, by the contract.
    unsafe { transpose16_rows(|r| src.wrapping_add(r * rs)) }
}

/// Sixteen zeros: the rows past the last of a partial block read here.
static ZEROS: [f32; 16] = [0.0; 16];

/// [`transpose16_loads`] of a block with only its first `rows` rows in
/// memory, the others zero: the last block of a weight whose rows (the
/// layer's units) are no multiple of 16, in the transposed tiles.
///
/// # Safety
/// avx512f; `src[r·rs + q]` readable for r < rows, q < 16.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16_first(src: *const f32, rs: usize, rows: usize) -> [__m512; 16] {
    // SAFETY: rows r < `rows` as the contract says, the others [`ZEROS`].
    unsafe {
        transpose16_rows(|r| {
            if r < rows {
                src.wrapping_add(r * rs)
            } else {
                ZEROS.as_ptr()
            }
        })
    }
}

/// The transpose by loads ([`transpose16_loads`]) of the 16×16 block whose
/// row r starts at `row(r)`.
///
/// # Safety
/// avx512f; 16 floats readable at each `row(r)`, r < 16.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16_rows(row: impl Fn(usize) -> *const f32) -> [__m512; 16] {
    let mut out = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        // SAFETY: rows 4L + t < 16, columns 4g..4g + 4 < 16, by the
        // contract.
        let (a, b, c, d) = unsafe {
            (
                quad(&row, g, 0),
                quad(&row, g, 1),
                quad(&row, g, 2),
                quad(&row, g, 3),
            )
        };
        let (t0, t1) = (_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        let (t2, t3) = (_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
        out[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(
            _mm512_castps_pd(t0),
            _mm512_castps_pd(t2),
        ));
        out[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(
            _mm512_castps_pd(t0),
            _mm512_castps_pd(t2),
        ));
        out[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(
            _mm512_castps_pd(t1),
            _mm512_castps_pd(t3),
        ));
        out[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(
            _mm512_castps_pd(t1),
            _mm512_castps_pd(t3),
        ));
    }
    out
}

/// Lane L of the result: row 4L + t of the block whose rows start at
/// `row(r)`, columns 4g..4g + 4.
///
/// # Safety
/// avx512f (inlined into [`transpose16_rows`]); those floats readable.
#[inline(always)]
unsafe fn quad(row: &impl Fn(usize) -> *const f32, g: usize, t: usize) -> __m512 {
    // SAFETY: by the contract.
    unsafe {
        let at = |l: usize| row(4 * l + t).add(4 * g);
        let v = _mm512_castps128_ps512(_mm_loadu_ps(at(0)));
        let v = _mm512_insertf32x4::<1>(v, _mm_loadu_ps(at(1)));
        let v = _mm512_insertf32x4::<2>(v, _mm_loadu_ps(at(2)));
        _mm512_insertf32x4::<3>(v, _mm_loadu_ps(at(3)))
    }
}

/// Writes `⌈rows/W⌉` panels of W·depth floats at `dst`:
/// `dst[q·W·depth + p·W + i] = src[(q·W + i)·rs + p]`, zero for rows ≥ `rows`.
///
/// # Safety
/// avx512f; `src` readable up to `(rows − 1)·rs + depth` floats, `dst`
/// writable for `⌈rows/W⌉·W·depth` floats, `16·rs` fits in i32.
#[target_feature(enable = "avx512f")]
unsafe fn gather_avx512f<const W: usize>(
    dst: *mut f32,
    src: *const f32,
    rs: usize,
    rows: usize,
    depth: usize,
) {
    let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32(rs as i32));
    for q in 0..rows.div_ceil(W) {
        let w = W.min(rows - q * W);
        for g in 0..W.div_ceil(16) {
            let lanes = 16.min(W - 16 * g);
            let valid = lanes.min(w.saturating_sub(16 * g));
            let load: __mmask16 = ((1u32 << valid) - 1) as __mmask16;
            let store: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
            // SAFETY: rows q·W + 16·g + i for i < valid exist, so each lane
            // that loads reads inside the extent; every store lies in panel q.
            unsafe {
                let base = src.add((q * W + 16 * g) * rs);
                let out = dst.add(q * W * depth + 16 * g);
                if valid == 0 {
                    for p in 0..depth {
                        _mm512_mask_storeu_ps(out.add(p * W), store, _mm512_setzero_ps());
                    }
                    continue;
                }
                // Whole 16×16 blocks by an in-register transpose (a quarter
                // of a cycle per float; a gather takes about one), the rest
                // of the depth by gathers.
                let blocks = depth / 16;
                for blk in 0..blocks {
                    let p0 = 16 * blk;
                    let t = if valid == 16 {
                        transpose16_loads(base.add(p0), rs)
                    } else {
                        let mut r = [_mm512_setzero_ps(); 16];
                        for (i, ri) in r.iter_mut().enumerate().take(valid) {
                            *ri = _mm512_loadu_ps(base.add(i * rs + p0));
                        }
                        transpose16(r)
                    };
                    for (j, tj) in t.iter().enumerate() {
                        _mm512_mask_storeu_ps(out.add((p0 + j) * W), store, *tj);
                    }
                }
                for p in 16 * blocks..depth {
                    let v = _mm512_mask_i32gather_ps::<4>(
                        _mm512_setzero_ps(),
                        load,
                        idx,
                        base.add(p).cast(),
                    );
                    _mm512_mask_storeu_ps(out.add(p * W), store, v);
                }
            }
        }
    }
}
