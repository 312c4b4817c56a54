//! AVX2 + FMA strided microkernel: tiles of up to 6×16 with the operands read
//! in place (see `direct`), one instance per (rows, vectors, layout of Ã).

use super::direct::StridedTile;
use super::params;
use std::arch::x86_64::*;

const MR: usize = params::AVX2.mr;

/// Runs `t` on the instance for its shape.
///
/// # Safety
/// avx2 and fma; the contract of `MicroKernel::tile_strided`, with MR = 6 and
/// NR = 16.
pub(crate) unsafe fn tile(t: &StridedTile) {
    assert!(
        (1..=MR).contains(&t.m) && (1..=16).contains(&t.n),
        "strided tile {}×{} exceeds {MR}×16",
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
                    _ => body::<6, $v, $rows>(t),
                }
            }
        };
    }
    match (t.n > 8, t.csa == 1) {
        (false, false) => by_m!(1, false),
        (false, true) => by_m!(1, true),
        (true, false) => by_m!(2, false),
        (true, true) => by_m!(2, true),
    }
}

/// `C̃[M×n] ← α·Σ_p ã(·,p)·b̃(p,·) + β·C̃` with n in (8·(V−1), 8·V]: M·V
/// accumulators, the last vector of each row masked to n. `ROWS`: Ã's rows
/// run along p (csa = 1), else its columns do (rsa = 1). Products are summed
/// with FMA in increasing p, then stored as round(α·acc) + round(β·c).
///
/// # Safety
/// avx2, fma and the contract of `MicroKernel::tile_strided` with t.m = M.
#[target_feature(enable = "avx2,fma")]
unsafe fn body<const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile) {
    let rem = (t.n - 8 * (V - 1)) as i32;
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), lanes);
    let mask = |v: usize| {
        if v + 1 < V {
            _mm256_set1_epi32(-1)
        } else {
            tail
        }
    };
    let (si, sp) = if ROWS { (t.rsa, 1) } else { (1, t.csa) };
    let mut acc = [[_mm256_setzero_ps(); V]; M];
    // SAFETY: every offset stays inside the extents of the contract: rows
    // i < M of Ã, columns < n of B̃ (the last vector masked), p < k.
    unsafe {
        let (mut ap, mut bp) = (t.a, t.b);
        for _ in 0..t.k {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_maskload_ps(bp.add(8 * v), mask(v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add(i * si));
                for (x, b) in row.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, *b, *x);
                }
            }
            ap = ap.add(sp);
            bp = bp.add(t.ldb);
        }
    }
    let va = _mm256_set1_ps(t.alpha);
    let vb = _mm256_set1_ps(t.beta);
    if t.csc == 1 {
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                // SAFETY: row i, columns 8·v.. masked to n, of C̃.
                unsafe {
                    let cp = t.c.add(i * t.rsc + 8 * v);
                    let mut r = _mm256_mul_ps(va, *x);
                    if t.beta != 0.0 {
                        let old = _mm256_maskload_ps(cp, mask(v));
                        r = _mm256_add_ps(r, _mm256_mul_ps(vb, old));
                    }
                    _mm256_maskstore_ps(cp, mask(v), r);
                }
            }
        }
        return;
    }
    // C̃ has strided rows (it is Cᵀ): scale in registers, then write element
    // by element.
    let mut tmp = [[0.0f32; 16]; M];
    for (row, out) in acc.iter().zip(tmp.iter_mut()) {
        for (v, x) in row.iter().enumerate() {
            // SAFETY: 8 floats at 8·v < 16 inside the row of `tmp`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), _mm256_mul_ps(va, *x)) };
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
