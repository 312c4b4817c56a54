//! Portable microkernel: the specification the SIMD tiles are tested against.

use super::MicroKernel;
use super::direct::StridedTile;
use super::pack::{self, Strided};
use super::params::{self, Blocking};

const MR: usize = params::SCALAR.mr;
const NR: usize = params::SCALAR.nr;

/// The scalar path.
pub(crate) struct Scalar;

impl MicroKernel for Scalar {
    const P: Blocking = params::SCALAR;

    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize) {
        pack::panels::<MR>(dst, a, mc, kc)
    }

    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize) {
        pack::panels::<NR>(dst, b.t(), nc, kc)
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
        let acc = body::<MR, NR>(kc, a, b);
        for (i, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // SAFETY: the caller guarantees an MR×NR tile at c with row
                // stride ldc, writable, and readable when β ≠ 0.
                unsafe {
                    let cij = c.add(i * ldc + j);
                    *cij = if beta == 0.0 {
                        alpha * v
                    } else {
                        alpha * v + beta * *cij
                    };
                }
            }
        }
    }

    unsafe fn tile_strided(t: &StridedTile) {
        // SAFETY: forwarded contract of `tile_strided`.
        unsafe { strided(t) }
    }
}

/// [`StridedTile`] by the definition: `acc = Σ_p ã(i,p)·b̃(p,j)` in increasing
/// p, then `c ← α·acc + β·c` (C not read when β = 0).
///
/// # Safety
/// As [`MicroKernel::tile_strided`].
pub(crate) unsafe fn strided(t: &StridedTile) {
    for i in 0..t.m {
        for j in 0..t.n {
            let mut acc = 0.0f32;
            for p in 0..t.k {
                // SAFETY: (i, p) of Ã and (p, j) of B̃ are inside their
                // extents by the contract.
                unsafe {
                    acc += *t.a.add(i * t.rsa + p * t.csa) * *t.b.add(p * t.ldb + j);
                }
            }
            // SAFETY: (i, j) of C̃ is inside the tile.
            unsafe {
                let cij = t.c.add(i * t.rsc + j * t.csc);
                *cij = if t.beta == 0.0 {
                    t.alpha * acc
                } else {
                    t.alpha * acc + t.beta * *cij
                };
            }
        }
    }
}

/// `acc[i][j] = Σ_{p<kc} ã[p·MR + i]·b̃[p·NR + j]`, p increasing.
///
/// # Panics
/// If `a` has fewer than MR·kc or `b` fewer than NR·kc elements.
#[inline(always)]
pub(crate) fn body<const M: usize, const N: usize>(
    kc: usize,
    a: &[f32],
    b: &[f32],
) -> [[f32; N]; M] {
    let (a, b) = (&a[..kc * M], &b[..kc * N]);
    let mut acc = [[0.0f32; N]; M];
    for (ap, bp) in a.chunks_exact(M).zip(b.chunks_exact(N)) {
        for i in 0..M {
            for j in 0..N {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    acc
}
