//! The microkernels of the 4-lane paths (NEON, SIMD128), written once over
//! [`Quad`], a vector of four `f32` with the handful of operations a tile
//! needs; `neon.rs` and `simd128.rs` give the instructions and the tile shape.
//!
//! Per step p the packed tile loads G vectors of Ã (4·G rows) and V vectors of
//! B̃ (4·V columns) and issues 4·G·V multiply-adds, each taking its A operand
//! from a lane of an Ã vector ([`Quad::fma_lane`]: NEON's `fmla v.4s, b.4s,
//! a.s[l]` needs no broadcast register). The strided tile (edge tiles and
//! the direct path) reads Ã one element at a time and loads the last partial
//! vector of a B̃ row through a zero-padded buffer, as neither ISA has masked
//! loads.

use super::direct::StridedTile;
use super::pack::{self, Strided};

/// Four `f32` lanes on one instruction set.
///
/// # Safety
/// Implementors' methods are sound only on a CPU (or build) with their
/// instruction set; the kernels here are called only through entry points
/// compiled with it.
pub(crate) unsafe trait Quad {
    /// A vector of 4 floats.
    type V: Copy;
    /// Every lane 0.
    fn zero() -> Self::V;
    /// Every lane `x`.
    fn splat(x: f32) -> Self::V;
    /// Lanes `p[0..4]`.
    ///
    /// # Safety
    /// 4 floats readable at `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `p[0..4]` ← lanes.
    ///
    /// # Safety
    /// 4 floats writable at `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `acc + b·a[L]`, lane by lane (`L` < 4): fused (one rounding) where
    /// the ISA has FMA (NEON), a product and a sum otherwise (SIMD128).
    fn fma_lane<const L: i32>(acc: Self::V, b: Self::V, a: Self::V) -> Self::V;
    /// `acc + b·splat(a)`.
    fn fma_scalar(acc: Self::V, b: Self::V, a: f32) -> Self::V;
    /// a·b, one rounding.
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// a + b, one rounding.
    fn add(a: Self::V, b: Self::V) -> Self::V;
    /// The transpose of the 4×4 matrix whose rows are `r`: lane i of result
    /// j is lane j of `r[i]`.
    fn transpose4(r: [Self::V; 4]) -> [Self::V; 4];
}

/// `acc + b·a[lane]` for a lane known after unrolling.
#[inline(always)]
fn fma_lane<Q: Quad>(acc: Q::V, b: Q::V, a: Q::V, lane: usize) -> Q::V {
    match lane {
        0 => Q::fma_lane::<0>(acc, b, a),
        1 => Q::fma_lane::<1>(acc, b, a),
        2 => Q::fma_lane::<2>(acc, b, a),
        _ => Q::fma_lane::<3>(acc, b, a),
    }
}

/// `C[4G×4V] ← α·Σ_p ã_p b̃_pᵀ + β·C` (C not read when β = 0) for packed
/// panels `ã[p·4G + i]`, `b̃[p·4V + j]`: the products summed in increasing p
/// (fused where the ISA has FMA), then stored as round(α·acc) + round(β·c), as
/// the scalar edge update does.
///
/// # Safety
/// `Q`'s instruction set; `a` has 4G·kc and `b` 4V·kc readable floats; `c`
/// is a 4G×4V tile with row stride ldc, writable and (when β ≠ 0) readable.
#[inline(always)]
pub(crate) unsafe fn packed<Q: Quad, const G: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let mut acc = [[[Q::zero(); V]; 4]; G];
    // SAFETY: every offset stays within the extents of the contract.
    unsafe {
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            let mut av = [Q::zero(); G];
            for (g, x) in av.iter_mut().enumerate() {
                *x = Q::load(ap.add(4 * g));
            }
            let mut bv = [Q::zero(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = Q::load(bp.add(4 * v));
            }
            for (g, rows) in acc.iter_mut().enumerate() {
                for (l, row) in rows.iter_mut().enumerate() {
                    for (x, bb) in row.iter_mut().zip(&bv) {
                        *x = fma_lane::<Q>(*x, *bb, av[g], l);
                    }
                }
            }
            ap = ap.add(4 * G);
            bp = bp.add(4 * V);
        }
        let va = Q::splat(alpha);
        let vb = Q::splat(beta);
        for (g, rows) in acc.iter().enumerate() {
            for (l, row) in rows.iter().enumerate() {
                let cr = c.add((4 * g + l) * ldc);
                for (v, x) in row.iter().enumerate() {
                    let mut r = Q::mul(va, *x);
                    if beta != 0.0 {
                        r = Q::add(r, Q::mul(vb, Q::load(cr.add(4 * v))));
                    }
                    Q::store(cr.add(4 * v), r);
                }
            }
        }
    }
}

/// Lanes `p[0..n]`, zero beyond (n ≤ 4).
///
/// # Safety
/// `n` floats readable at `p`.
#[inline(always)]
unsafe fn load_n<Q: Quad>(p: *const f32, n: usize) -> Q::V {
    if n == 4 {
        // SAFETY: 4 floats readable.
        return unsafe { Q::load(p) };
    }
    let mut buf = [0.0f32; 4];
    // SAFETY: n < 4 floats readable at p; `buf` holds 4.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        Q::load(buf.as_ptr())
    }
}

/// `p[0..n]` ← the first n lanes (n ≤ 4).
///
/// # Safety
/// `n` floats writable at `p`.
#[inline(always)]
unsafe fn store_n<Q: Quad>(p: *mut f32, n: usize, v: Q::V) {
    if n == 4 {
        // SAFETY: 4 floats writable.
        return unsafe { Q::store(p, v) };
    }
    let mut buf = [0.0f32; 4];
    // SAFETY: `buf` holds 4 floats; n < 4 floats writable at p.
    unsafe {
        Q::store(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
    }
}

/// Runs `t` on the instance of [`strided_body`] for its shape: M = m rows
/// and V = ⌈n/4⌉ vectors.
///
/// # Safety
/// `Q`'s instruction set; the contract of `MicroKernel::tile_strided` with
/// MR = `mr` (at most 8) and NR = `nr` (at most 12).
#[inline(always)]
pub(crate) unsafe fn strided<Q: Quad>(t: &StridedTile, mr: usize, nr: usize) {
    assert!(
        (1..=mr.min(8)).contains(&t.m) && (1..=nr.min(12)).contains(&t.n),
        "strided tile {}×{} exceeds {mr}×{nr}",
        t.m,
        t.n,
    );
    macro_rules! by_m {
        ($v:literal, $rows:literal) => {
            // SAFETY: forwarded; m and n are in range (asserted above).
            unsafe {
                match t.m {
                    1 => strided_body::<Q, 1, $v, $rows>(t),
                    2 => strided_body::<Q, 2, $v, $rows>(t),
                    3 => strided_body::<Q, 3, $v, $rows>(t),
                    4 => strided_body::<Q, 4, $v, $rows>(t),
                    5 => strided_body::<Q, 5, $v, $rows>(t),
                    6 => strided_body::<Q, 6, $v, $rows>(t),
                    7 => strided_body::<Q, 7, $v, $rows>(t),
                    _ => strided_body::<Q, 8, $v, $rows>(t),
                }
            }
        };
    }
    match (t.n.div_ceil(4), t.csa == 1) {
        (1, false) => by_m!(1, false),
        (1, true) => by_m!(1, true),
        (2, false) => by_m!(2, false),
        (2, true) => by_m!(2, true),
        (_, false) => by_m!(3, false),
        (_, true) => by_m!(3, true),
    }
}

/// `C̃[M×n] ← α·Σ_p ã(·,p)·b̃(p,·) + β·C̃` with n in (4·(V−1), 4·V]: M·V
/// accumulators, the last vector of each row partial. `ROWS`: Ã's rows run
/// along p (csa = 1), else its columns do (rsa = 1). Products are summed in
/// increasing p (fused where the ISA has FMA), then stored as round(α·acc) +
/// round(β·c).
///
/// # Safety
/// `Q`'s instruction set and the contract of `MicroKernel::tile_strided`
/// with t.m = M.
#[inline(always)]
unsafe fn strided_body<Q: Quad, const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile) {
    let last = t.n - 4 * (V - 1);
    let width = |v: usize| if v + 1 < V { 4 } else { last };
    let (si, sp) = if ROWS { (t.rsa, 1) } else { (1, t.csa) };
    let mut acc = [[Q::zero(); V]; M];
    // SAFETY: every offset stays inside the extents of the contract: rows
    // i < M of Ã, columns < n of B̃, p < k.
    unsafe {
        let (mut ap, mut bp) = (t.a, t.b);
        for _ in 0..t.k {
            let mut bv = [Q::zero(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = load_n::<Q>(bp.add(4 * v), width(v));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let a = *ap.add(i * si);
                for (x, b) in row.iter_mut().zip(&bv) {
                    *x = Q::fma_scalar(*x, *b, a);
                }
            }
            ap = ap.add(sp);
            bp = bp.add(t.ldb);
        }
    }
    let va = Q::splat(t.alpha);
    let vb = Q::splat(t.beta);
    if t.csc == 1 {
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                // SAFETY: row i, columns 4·v .. 4·v + width(v) ≤ n, of C̃.
                unsafe {
                    let cp = t.c.add(i * t.rsc + 4 * v);
                    let mut r = Q::mul(va, *x);
                    if t.beta != 0.0 {
                        r = Q::add(r, Q::mul(vb, load_n::<Q>(cp, width(v))));
                    }
                    store_n::<Q>(cp, width(v), r);
                }
            }
        }
        return;
    }
    // C̃ has strided rows (it is Cᵀ): scale in registers, then write element
    // by element.
    let mut tmp = [[0.0f32; 12]; M];
    for (row, out) in acc.iter().zip(tmp.iter_mut()) {
        for (v, x) in row.iter().enumerate() {
            // SAFETY: 4 floats at 4·v < 12 inside the row of `tmp`.
            unsafe { Q::store(out.as_mut_ptr().add(4 * v), Q::mul(va, *x)) };
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

/// [`pack::panels`], with the transposing case (rows running along p, cs = 1)
/// done by 4×4 in-register transposes ([`Quad::transpose4`]) instead of a
/// scalar load and store per float: four rows of four steps loaded,
/// transposed, four steps stored. W (8 and 12 on NEON, 4 and 8 on SIMD128)
/// is a multiple of 4, so every store is a whole vector inside its panel.
///
/// # Safety
/// `Q`'s instruction set.
///
/// # Panics
/// As [`pack::panels`].
#[inline(always)]
pub(crate) unsafe fn transposed_panels<Q: Quad, const W: usize>(
    dst: &mut [f32],
    x: Strided<'_>,
    rows: usize,
    depth: usize,
) {
    if !W.is_multiple_of(4) || x.cs != 1 || x.rs == 1 || rows == 0 || depth < 4 {
        return pack::panels::<W>(dst, x, rows, depth);
    }
    let need = (rows - 1) * x.rs + depth;
    assert!(need <= x.data.len(), "pack: view exceeds its slice");
    let dst = &mut dst[..rows.div_ceil(W) * W * depth];
    let (dst, src, rs) = (dst.as_mut_ptr(), x.data.as_ptr(), x.rs);
    let blocks = depth / 4;
    for q in 0..rows.div_ceil(W) {
        let w = W.min(rows - q * W);
        for g in 0..W / 4 {
            let valid = 4.min(w.saturating_sub(4 * g));
            // SAFETY: `Q`'s instruction set by the contract; rows
            // q·W + 4·g + i for i < valid exist, so every load reads inside
            // the extent checked above; every store is the 4 floats of group
            // g at step p of panel q, inside the dst length checked above.
            unsafe {
                let base = src.add((q * W + 4 * g) * rs);
                let out = dst.add(q * W * depth + 4 * g);
                if valid == 0 {
                    for p in 0..depth {
                        Q::store(out.add(p * W), Q::zero());
                    }
                    continue;
                }
                for blk in 0..blocks {
                    let p0 = 4 * blk;
                    let mut r = [Q::zero(); 4];
                    for (i, ri) in r.iter_mut().enumerate().take(valid) {
                        *ri = Q::load(base.add(i * rs + p0));
                    }
                    for (j, tj) in Q::transpose4(r).into_iter().enumerate() {
                        Q::store(out.add((p0 + j) * W), tj);
                    }
                }
                for p in 4 * blocks..depth {
                    for i in 0..4 {
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
