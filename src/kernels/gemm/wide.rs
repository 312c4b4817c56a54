//! The microkernels of the x86 paths (AVX2, AVX-512), written once over
//! [`Wide`], a register of `LANES` floats with masked loads and stores;
//! `avx2.rs` and `avx512.rs` give the instructions, the tile shape and the
//! `#[target_feature]` entry points ([`Wide::packed_tile`],
//! [`Wide::strided_tile`]) that the bodies inline into.
//!
//! Per step p the packed tile loads V vectors of B̃ (V·LANES columns) and, for
//! each of its M rows, broadcasts one element of Ã and issues V fused
//! multiply-adds: M·V accumulators, V B registers and one broadcast. The
//! strided tile (edge tiles and the direct path) has the same loop with Ã
//! read through its strides and the last vector of each row masked to n.

use super::direct::StridedTile;
use super::dot::DotTile;

/// A vector of `LANES` `f32` on one instruction set, with lane masks.
///
/// # Safety
/// Implementors' methods are sound only on a CPU with their instruction set;
/// the kernels here are called only through entry points compiled with it.
pub(crate) unsafe trait Wide {
    /// Floats per vector.
    const LANES: usize;
    /// Whether the packed tile's loop over p does two steps per pass.
    const UNROLL: bool;
    /// The most rows of [`transposed`] (at most 14): 2 accumulators a row,
    /// the two vectors of B̃ and a broadcast must fit the registers, beside
    /// the block transpose's where it is inlined (`.ci/spills.py` checks that
    /// no accumulator stays on the stack).
    const TRANSPOSED_ROWS: usize;
    /// A vector of `LANES` floats.
    type V: Copy;
    /// A set of lanes for masked loads and stores.
    type M: Copy;
    /// A row of the widest strided tile: 2·`LANES` floats.
    type Row: Copy + Default + AsRef<[f32]> + AsMut<[f32]>;
    /// Every lane 0.
    fn zero() -> Self::V;
    /// Every lane `x` (from memory: a broadcast load).
    fn splat(x: f32) -> Self::V;
    /// Lanes `p[0..LANES]`.
    ///
    /// # Safety
    /// `LANES` floats readable at `p`.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `p[0..LANES]` ← lanes.
    ///
    /// # Safety
    /// `LANES` floats writable at `p`.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The first `n` lanes, 1 ≤ n ≤ `LANES`.
    fn mask(n: usize) -> Self::M;
    /// Lanes `p[l]` for l in `m`, 0 elsewhere; the other lanes are not read.
    ///
    /// # Safety
    /// The floats of the lanes in `m` are readable at `p`.
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V;
    /// `p[l]` ← lane l for l in `m`; the other floats are not written.
    ///
    /// # Safety
    /// The floats of the lanes in `m` are writable at `p`.
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    /// The sum of the lanes, added in halves: lane l += lane l + LANES/2,
    /// then l += l + LANES/4, …, down to lane 0 (the order of
    /// `super::dot::dot_twin`).
    fn fold(v: Self::V) -> f32;
    /// a·b + c, one rounding.
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// a·b, one rounding.
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// a + b, one rounding.
    fn add(a: Self::V, b: Self::V) -> Self::V;
    /// Starts fetching the cache line at `p` into L1 before the tile stores
    /// to it; a no-op where that does not pay. Never faults.
    #[inline(always)]
    fn prefetch(p: *const f32) {
        let _ = p;
    }

    /// [`packed`] for `Self`, compiled with its instruction set.
    ///
    /// # Safety
    /// As [`packed`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn packed_tile<const M: usize, const V: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        alpha: f32,
        beta: f32,
    );

    /// [`strided_body`] for `Self`, compiled with its instruction set: one
    /// function per shape, whose registers are allocated on their own (with
    /// all shapes inlined into one function, the 28 accumulators of a
    /// 14×32 tile were also stored to the stack on every step).
    ///
    /// # Safety
    /// As [`strided_body`].
    unsafe fn strided_tile<const M: usize, const V: usize, const ROWS: bool>(t: &StridedTile);

    /// The `rows × cols` block at `src` (row stride `rs`), rows ≤ LANES and
    /// cols ≤ LANES, transposed into `cols` vectors at `dst`:
    /// `dst[q·LANES + r] = src[r·rs + q]` for q < cols, 0 for r ≥ rows.
    ///
    /// # Safety
    /// `src[r·rs + q]` readable for r < rows, q < cols; `cols·LANES` floats
    /// writable at `dst`.
    ///
    /// Marked never to be inlined: [`transposed_body`] keeps up to 28
    /// accumulators live across it, and inlined, the AVX-512 transpose's
    /// registers and those together exceeded the register file, so the
    /// allocator kept an accumulator on the stack through every step. Across
    /// a call every vector register is caller-saved, so the accumulators are
    /// stored and reloaded once per block instead. (The compiler still
    /// inlines the smaller AVX2 transpose, whose tiles of at most 6 rows keep
    /// their accumulators in registers; `.ci/spills.py` checks both.)
    unsafe fn transpose_block(src: *const f32, rs: usize, rows: usize, cols: usize, dst: *mut f32);

    /// [`transposed_body`] for `Self`, compiled with its instruction set.
    ///
    /// # Safety
    /// As [`transposed_body`].
    unsafe fn transposed_tile<const M: usize, const V: usize>(t: &StridedTile);

    /// [`super::dot::dot_body`] for `Self`, compiled with its instruction set.
    ///
    /// # Safety
    /// As [`super::dot::dot_body`].
    unsafe fn dot_tile<const RA: usize, const RB: usize>(t: &DotTile);
}

/// `C[M×LANES·V] ← α·Σ_p ã_p b̃_pᵀ + β·C` (C not read when β = 0) for packed
/// panels `ã[p·M + i]`, `b̃[p·LANES·V + j]`: the products summed with FMA in
/// increasing p, then scaled and added unfused (round(α·acc) + round(β·c))
/// exactly as the scalar edge update does.
///
/// # Safety
/// `S`'s instruction set; `a` has M·kc and `b` LANES·V·kc readable floats;
/// `c` is an M×LANES·V tile with row stride ldc, writable and (when β ≠ 0)
/// readable.
#[inline(always)]
pub(crate) unsafe fn packed<S: Wide, const M: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    let w = S::LANES;
    // SAFETY: every pointer offset stays within the extents in the contract.
    unsafe {
        for i in 0..M {
            for v in 0..V {
                S::prefetch(c.add(i * ldc + w * v));
            }
        }
        let mut acc = [[S::zero(); V]; M];
        let (mut ap, mut bp) = (a, b);
        if S::UNROLL {
            for _ in 0..kc / 2 {
                packed_step::<S, M, V>(&mut acc, ap, bp);
                packed_step::<S, M, V>(&mut acc, ap.add(M), bp.add(w * V));
                ap = ap.add(2 * M);
                bp = bp.add(2 * w * V);
            }
            if kc % 2 == 1 {
                packed_step::<S, M, V>(&mut acc, ap, bp);
            }
        } else {
            for _ in 0..kc {
                packed_step::<S, M, V>(&mut acc, ap, bp);
                ap = ap.add(M);
                bp = bp.add(w * V);
            }
        }
        let va = S::splat(alpha);
        if beta == 0.0 {
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    S::store(c.add(i * ldc + w * v), S::mul(va, *x));
                }
            }
        } else {
            let vb = S::splat(beta);
            for (i, row) in acc.iter().enumerate() {
                for (v, x) in row.iter().enumerate() {
                    let cp = c.add(i * ldc + w * v);
                    let old = S::mul(vb, S::load(cp));
                    S::store(cp, S::add(S::mul(va, *x), old));
                }
            }
        }
    }
}

/// One step p of [`packed`]: `acc[i][v] += ã[i]·b̃[v]` for the M floats of
/// Ã at `a` and the V vectors of B̃ at `b`.
///
/// # Safety
/// `S`'s instruction set; M floats readable at `a`, LANES·V at `b`.
#[inline(always)]
unsafe fn packed_step<S: Wide, const M: usize, const V: usize>(
    acc: &mut [[S::V; V]; M],
    a: *const f32,
    b: *const f32,
) {
    let mut bv = [S::zero(); V];
    for (v, x) in bv.iter_mut().enumerate() {
        // SAFETY: vector v of the LANES·V floats at `b`.
        *x = unsafe { S::load(b.add(S::LANES * v)) };
    }
    for (i, row) in acc.iter_mut().enumerate() {
        // SAFETY: float i of the M at `a`.
        let av = S::splat(unsafe { *a.add(i) });
        for (x, bb) in row.iter_mut().zip(&bv) {
            *x = S::fma(av, *bb, *x);
        }
    }
}

/// One step p of [`strided_body`]: `acc[i][v] += ã(i)·b̃[v]` for Ã's
/// elements `a[i·si]` and the V vectors of B̃ at `b`, the last one masked
/// with `tail` (the others with `full`).
///
/// # Safety
/// `S`'s instruction set; the floats at `a[i·si]` (i < M) and the lanes of
/// the masks at `b` readable.
#[inline(always)]
unsafe fn strided_step<S: Wide, const M: usize, const V: usize>(
    acc: &mut [[S::V; V]; M],
    a: *const f32,
    si: usize,
    b: *const f32,
    full: S::M,
    tail: S::M,
) {
    let mut bv = [S::zero(); V];
    for (v, x) in bv.iter_mut().enumerate() {
        let m = if v + 1 < V { full } else { tail };
        // SAFETY: the lanes of `m` of vector v at `b`.
        *x = unsafe { S::load_masked(b.add(S::LANES * v), m) };
    }
    for (i, row) in acc.iter_mut().enumerate() {
        // SAFETY: element i of Ã's column.
        let av = S::splat(unsafe { *a.add(i * si) });
        for (x, bb) in row.iter_mut().zip(&bv) {
            *x = S::fma(av, *bb, *x);
        }
    }
}

/// Runs `t` on the instance of [`Wide::strided_tile`] for its shape: M = m rows
/// and V = ⌈n/LANES⌉ vectors (1 or 2).
///
/// # Safety
/// `S`'s instruction set; the contract of `MicroKernel::tile_strided` with
/// MR = `MR` (at most 14) and NR = 2·LANES.
pub(crate) unsafe fn strided<S: Wide, const MR: usize>(t: &StridedTile) {
    const { assert!(MR <= 14) };
    assert!(
        (1..=MR).contains(&t.m) && (1..=2 * S::LANES).contains(&t.n),
        "strided tile {}×{} exceeds {MR}×{}",
        t.m,
        t.n,
        2 * S::LANES
    );
    macro_rules! by_m {
        ($v:literal, $rows:literal) => {
            // SAFETY: forwarded; m and n are in range (asserted above).
            unsafe {
                match t.m {
                    1 => S::strided_tile::<1, $v, $rows>(t),
                    2 => S::strided_tile::<2, $v, $rows>(t),
                    3 => S::strided_tile::<3, $v, $rows>(t),
                    4 => S::strided_tile::<4, $v, $rows>(t),
                    5 => S::strided_tile::<5, $v, $rows>(t),
                    6 => S::strided_tile::<6, $v, $rows>(t),
                    7 => S::strided_tile::<7, $v, $rows>(t),
                    8 => S::strided_tile::<8, $v, $rows>(t),
                    9 => S::strided_tile::<9, $v, $rows>(t),
                    10 => S::strided_tile::<10, $v, $rows>(t),
                    11 => S::strided_tile::<11, $v, $rows>(t),
                    12 => S::strided_tile::<12, $v, $rows>(t),
                    13 => S::strided_tile::<13, $v, $rows>(t),
                    _ => S::strided_tile::<14, $v, $rows>(t),
                }
            }
        };
    }
    match (t.n > S::LANES, t.csa == 1) {
        (false, false) => by_m!(1, false),
        (false, true) => by_m!(1, true),
        (true, false) => by_m!(2, false),
        (true, true) => by_m!(2, true),
    }
}

/// `C̃[M×n] ← α·Σ_p ã(·,p)·b̃(p,·) + β·C̃` with n in (LANES·(V−1), LANES·V]:
/// M·V accumulators, the last vector of each row masked to n. `ROWS`: Ã's
/// rows run along p (csa = 1), else its columns do (rsa = 1). Products are
/// summed with FMA in increasing p, then stored as round(α·acc) + round(β·c).
///
/// # Safety
/// `S`'s instruction set and the contract of `MicroKernel::tile_strided`
/// with t.m = M.
#[inline(always)]
pub(crate) unsafe fn strided_body<S: Wide, const M: usize, const V: usize, const ROWS: bool>(
    t: &StridedTile,
) {
    let w = S::LANES;
    let (full, tail) = (S::mask(w), S::mask(t.n - w * (V - 1)));
    let (si, sp) = if ROWS { (t.rsa, 1) } else { (1, t.csa) };
    let mut acc = [[S::zero(); V]; M];
    // SAFETY: every offset stays inside the extents of the contract: rows
    // i < M of Ã, columns < n of B̃ (the last vector masked), p < k; a
    // prefetch of C̃ at column LANES·v < n never faults.
    unsafe {
        if t.csc == 1 {
            for i in 0..M {
                for v in 0..V {
                    S::prefetch(t.c.add(i * t.rsc + w * v));
                }
            }
        }
        let (mut ap, mut bp) = (t.a, t.b);
        for _ in 0..t.k {
            strided_step::<S, M, V>(&mut acc, ap, si, bp, full, tail);
            ap = ap.add(sp);
            bp = bp.add(t.ldb);
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store_acc::<S, M, V>(t, &acc) }
}

/// The largest `LANES` of a path: 16 floats (AVX-512).
const MAX_LANES: usize = 16;

/// Scratch for [`transposed_body`]: V ≤ 2 transposed blocks of
/// `LANES × LANES` floats, on the stack and so in L1.
#[repr(align(64))]
struct Blocks([f32; 2 * MAX_LANES * MAX_LANES]);

/// [`strided_body`] for a B̃ whose columns run along p instead of its rows:
/// `b̃(p, j) = b[j·ldb + p]` (op(B) = Wᵀ of `x·Wᵀ`, W stored `(out, in)`),
/// with Ã's rows along p (csa = 1) or its columns (rsa = 1), and few rows.
/// Instead of a packed copy of whole panels of B̃ (written to L2 and read
/// back), each `LANES × LANES` block of W is transposed in registers
/// ([`Wide::transpose_block`]) into a scratch that stays in L1 just before
/// its steps p run. The chains are [`strided_body`]'s — zeroed
/// accumulators, one FMA per p in increasing p, then [`store_acc`] — so
/// every element has the same bits.
///
/// # Safety
/// `S`'s instruction set and the contract of `MicroKernel::tile_strided`
/// with t.m = M, t.n in (LANES·(V−1), LANES·V], V ≤ 2, and B̃ readable at
/// `b[j·ldb + p]` for j < n, p < k.
#[inline(always)]
pub(crate) unsafe fn transposed_body<S: Wide, const M: usize, const V: usize>(t: &StridedTile) {
    const { assert!(V <= 2) };
    let w = S::LANES;
    assert!(w <= MAX_LANES && t.n > w * (V - 1) && t.n <= w * V);
    let mut blocks = Blocks([0.0; 2 * MAX_LANES * MAX_LANES]);
    let scratch = blocks.0.as_mut_ptr();
    let mut acc = [[S::zero(); V]; M];
    let mut p0 = 0;
    while p0 < t.k {
        let q = w.min(t.k - p0);
        // SAFETY: columns j < n of B̃ at depths p0..p0 + q are readable by
        // the contract; block v of the scratch holds LANES² floats.
        unsafe {
            for v in 0..V {
                let rows = w.min(t.n - w * v);
                let src = t.b.add(w * v * t.ldb + p0);
                S::transpose_block(src, t.ldb, rows, q, scratch.add(v * w * w));
            }
        }
        for s in 0..q {
            let mut bv = [S::zero(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                // SAFETY: vector s of block v, inside the scratch.
                *x = unsafe { S::load(scratch.add(v * w * w + s * w)) };
            }
            let p = p0 + s;
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: element (i, p) of Ã, inside its extent.
                let av = S::splat(unsafe { *t.a.add(i * t.rsa + p * t.csa) });
                for (x, bb) in row.iter_mut().zip(&bv) {
                    *x = S::fma(av, *bb, *x);
                }
            }
        }
        p0 += q;
    }
    // SAFETY: forwarded contract.
    unsafe { store_acc::<S, M, V>(t, &acc) }
}

/// Runs `t` on the instance of [`Wide::transposed_tile`] for its shape: M =
/// m rows (at most [`Wide::TRANSPOSED_ROWS`]) and V = ⌈n/LANES⌉ vectors (1
/// or 2).
///
/// # Safety
/// As [`transposed_body`] with m ≤ `S::TRANSPOSED_ROWS`, n ≤ 2·LANES.
pub(crate) unsafe fn transposed<S: Wide>(t: &StridedTile) {
    const { assert!(S::TRANSPOSED_ROWS <= 14) };
    assert!(
        (1..=S::TRANSPOSED_ROWS).contains(&t.m) && (1..=2 * S::LANES).contains(&t.n),
        "transposed tile {}×{} exceeds {}×{}",
        t.m,
        t.n,
        S::TRANSPOSED_ROWS,
        2 * S::LANES
    );
    macro_rules! by_m {
        ($v:literal) => {
            // SAFETY: forwarded; m and n are in range (asserted above).
            unsafe {
                match t.m {
                    1 => S::transposed_tile::<1, $v>(t),
                    2 => S::transposed_tile::<2, $v>(t),
                    3 => S::transposed_tile::<3, $v>(t),
                    4 => S::transposed_tile::<4, $v>(t),
                    5 => S::transposed_tile::<5, $v>(t),
                    6 => S::transposed_tile::<6, $v>(t),
                    7 => S::transposed_tile::<7, $v>(t),
                    8 => S::transposed_tile::<8, $v>(t),
                    9 => S::transposed_tile::<9, $v>(t),
                    10 => S::transposed_tile::<10, $v>(t),
                    11 => S::transposed_tile::<11, $v>(t),
                    12 => S::transposed_tile::<12, $v>(t),
                    13 => S::transposed_tile::<13, $v>(t),
                    _ => S::transposed_tile::<14, $v>(t),
                }
            }
        };
    }
    if t.n > S::LANES { by_m!(2) } else { by_m!(1) }
}

/// Stores the accumulators of a strided tile: C̃ ← round(α·acc) +
/// round(β·C̃) over its `t.m × t.n` elements (C̃ not read when β = 0), along
/// C̃'s rows when they are contiguous, else element by element.
///
/// # Safety
/// `S`'s instruction set; C̃ as in the contract of
/// `MicroKernel::tile_strided`, with t.m = M and t.n in (LANES·(V−1),
/// LANES·V].
#[inline(always)]
unsafe fn store_acc<S: Wide, const M: usize, const V: usize>(
    t: &StridedTile,
    acc: &[[S::V; V]; M],
) {
    let w = S::LANES;
    let (full, tail) = (S::mask(w), S::mask(t.n - w * (V - 1)));
    let mask = |v: usize| if v + 1 < V { full } else { tail };
    let va = S::splat(t.alpha);
    let vb = S::splat(t.beta);
    if t.csc == 1 {
        for (i, row) in acc.iter().enumerate() {
            for (v, x) in row.iter().enumerate() {
                // SAFETY: row i, columns LANES·v.. masked to n, of C̃.
                unsafe {
                    let cp = t.c.add(i * t.rsc + w * v);
                    let mut r = S::mul(va, *x);
                    if t.beta != 0.0 {
                        let old = S::load_masked(cp, mask(v));
                        r = S::add(r, S::mul(vb, old));
                    }
                    S::store_masked(cp, mask(v), r);
                }
            }
        }
        return;
    }
    // C̃ has strided rows (it is Cᵀ): scale in registers, then write element
    // by element.
    let mut tmp = [S::Row::default(); M];
    for (row, out) in acc.iter().zip(tmp.iter_mut()) {
        let out = out.as_mut();
        assert!(out.len() >= w * V);
        for (v, x) in row.iter().enumerate() {
            // SAFETY: LANES floats at LANES·v inside the row of `tmp`
            // (asserted above).
            unsafe { S::store(out.as_mut_ptr().add(w * v), S::mul(va, *x)) };
        }
    }
    for j in 0..t.n {
        for (i, out) in tmp.iter().enumerate() {
            // SAFETY: (i, j) of C̃ is inside the tile.
            unsafe {
                let out = out.as_ref()[j];
                let cij = t.c.add(i * t.rsc + j * t.csc);
                *cij = if t.beta == 0.0 {
                    out
                } else {
                    out + t.beta * *cij
                };
            }
        }
    }
}
