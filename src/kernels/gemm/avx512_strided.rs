//! AVX-512F strided microkernel: tiles of up to 14×32 with the operands read
//! in place (see `direct`), one instance per (rows, vectors, layout of Ã).

use super::direct::StridedTile;
use super::params;
use std::arch::x86_64::*;

const MR: usize = params::AVX512.mr;

/// Runs `t` on the instance for its shape.
///
/// # Safety
/// avx512f; the contract of `MicroKernel::tile_strided`, with MR = 14 and
/// NR = 32.
pub(crate) unsafe fn tile(t: &StridedTile) {
    assert!(
        (1..=MR).contains(&t.m) && (1..=32).contains(&t.n),
        "strided tile {}×{} exceeds {MR}×32",
        t.m,
        t.n
    );
    macro_rules! by_m {
        ($v:literal, $rows:literal) => {
            // SAFETY: forwarded; m and n are in range (asserted above).
            unsafe {
                match t.m {
                    1 => body::<1, $v, $rows>(t),
                    2 => body::<2, $v, $rows>(t),
                    3 => body::<3, $v, $rows>(t),
                    4 => body::<4, $v, $rows>(t),
                    5 => body::<5, $v, $rows>(t),
                    6 => body::<6, $v, $rows>(t),
                    7 => body::<7, $v, $rows>(t),
                    8 => body::<8, $v, $rows>(t),
                    9 => body::<9, $v, $rows>(t),
                    10 => body::<10, $v, $rows>(t),
                    11 => body::<11, $v, $rows>(t),
                    12 => body::<12, $v, $rows>(t),
                    13 => body::<13, $v, $rows>(t),
                    _ => body::<14, $v, $rows>(t),
                }
            }
        };
    }
    match (t.n > 16, t.csa == 1) {
        (false, false) => by_m!(1, false),
        (false, true) => by_m!(1, true),
        (true, false) => by_m!(2, false),
        (true, true) => by_m!(2, true),
    }
}

/// `C̃[M×n] ← α·Σ_p ã(·,p)·b̃(p,·) + β·C̃` with n in (16·(V−1), 16·V]: M·V
/// accumulators, the last vector of each row masked to n. `ROWS`: Ã's rows
/// run along p (csa = 1), else its columns do (rsa = 1). Products are summed
/// with FMA in increasing p, then stored as round(α·acc) + round(β·c).
///
/// # Safety
/// avx512f and the contract of `MicroKernel::tile_strided` with t.m = M.
#[target_feature(enable = "avx512f")]
unsafe fn body<const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile) {
    let rem = t.n - 16 * (V - 1);
    let tail = ((1u32 << rem) - 1) as __mmask16;
    let mask = |v: usize| if v + 1 < V { 0xffff } else { tail };
    let (si, sp) = if ROWS { (t.rsa, 1) } else { (1, t.csa) };
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    // SAFETY: every offset stays inside the extents of the contract: rows
    // i < M of Ã, columns < n of B̃ (the last vector masked), p < k; a
    // prefetch of C̃ at column 16·v < n never faults.
    unsafe {
        // Start fetching the C̃ rows now, so that the stores find them in L1.
        if t.csc == 1 {
            for i in 0..M {
                for v in 0..V {
                    _mm_prefetch::<_MM_HINT_T0>(t.c.add(i * t.rsc + 16 * v).cast());
                }
            }
        }
        let (mut ap, mut bp) = (t.a, t.b);
        for _ in 0..t.k {
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm512_maskz_loadu_ps(mask(v), bp.add(16 * v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i * si));
                for (x, b) in row.iter_mut().zip(&bv) {
                    *x = _mm512_fmadd_ps(av, *b, *x);
                }
            }
            ap = ap.add(sp);
            bp = bp.add(t.ldb);
        }
    }
    let va = _mm512_set1_ps(t.alpha);
    let vb = _mm512_set1_ps(t.beta);
    if t.csc == 1 {
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                // SAFETY: row i, columns 16·v.. masked to n, of C̃.
                unsafe {
                    let cp = t.c.add(i * t.rsc + 16 * v);
                    let mut r = _mm512_mul_ps(va, *x);
                    if t.beta != 0.0 {
                        let old = _mm512_maskz_loadu_ps(mask(v), cp);
                        r = _mm512_add_ps(r, _mm512_mul_ps(vb, old));
                    }
                    _mm512_mask_storeu_ps(cp, mask(v), r);
                }
            }
        }
        return;
    }
    // C̃ has strided rows (it is Cᵀ): scale in registers, then write element
    // by element.
    let mut tmp = [[0.0f32; 32]; M];
    for (row, out) in acc.iter().zip(tmp.iter_mut()) {
        for (v, x) in row.iter().enumerate() {
            // SAFETY: 16 floats at 16·v < 32 inside the row of `tmp`.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * v), _mm512_mul_ps(va, *x)) };
        }
    }
    for j in 0..t.n {
        for (i, out) in tmp.iter().enumerate() {
            // SAFETY: (i, j) of C̃ is inside the tile.
            unsafe {
                let cij = t.c.add(i * t.rsc + j * t.csc);
                *cij = if t.beta == 0.0 {
                    out[j]
                } else {
                    out[j] + t.beta * *cij
                };
            }
        }
    }
}
