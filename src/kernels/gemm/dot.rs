//! The dot-product loops, for a product whose operands both run along k in
//! memory (A stored m×k, B stored n×k: the forward product `x·Wᵀ` of a
//! weight kept `(out, in)`) when n is narrower than a vector: a batch into
//! a layer of a few units (a 10-unit code, say), and the last n mod lanes
//! columns of a wider layer (`super::dot_edge`), which the tiles would
//! give a vector of mostly idle lanes.
//!
//! The tile loops put one vector along n (or along m, packing a transposed
//! operand), so that such a product uses n lanes of each vector, or pays a
//! transposing copy for few products. Here each element of C is the dot
//! product of two contiguous runs of k floats, taken LANES at a time: lane
//! l of an accumulator sums the products at p ≡ l (mod LANES) with FMA in
//! increasing p, the last partial vector read masked (its other lanes add
//! 0·0). The lanes are then added in halves (lane l += lane l + LANES/2, and
//! so on down to one), and the sum stored as round(α·s) + round(β·c) as the
//! tiles do. `dot_twin` is the same sum in scalar code, which the tests
//! compare bit for bit against every x86 path.
//!
//! Each element is computed the same way whatever the register block, the
//! split between threads or the rows beside it, so results are
//! bit-identical on any number of threads and a row has the same bits in
//! any batch. The order differs from the tiles' (one FMA chain per
//! element), so a product taken here agrees with the other loops to
//! rounding only; the choice depends on n and k alone ([`wins`]).

use super::pack::Strided;
use super::wide::Wide;
use super::{CPtr, Job};
use crate::kernels::Activation;

/// A block of C computed from RA rows of A and RB rows of B, all along k.
pub(crate) struct DotTile {
    /// Row 0 of the block's A rows.
    pub a: *const f32,
    /// Step between A's rows: row i starts at `a + i·lda`.
    pub lda: usize,
    /// Row 0 of the block's B rows (columns of op(B)).
    pub b: *const f32,
    /// Step between B's rows: row j starts at `b + j·ldb`.
    pub ldb: usize,
    /// The depth of every dot product.
    pub k: usize,
    /// Element (0, 0) of the block of C.
    pub c: *mut f32,
    /// Step between C's rows: (i, j) is at `c + i·ldc + j`.
    pub ldc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old C (0: C is only written).
    pub beta: f32,
}

/// The most rows of A and of B one call of [`Wide::dot_tile`] takes (twice
/// as many of B with one of A).
const MAX_RA: usize = 4;
const MAX_RB: usize = 4;

/// The register block of path `S`: RA×RB accumulators with RB vectors of B
/// and one of A live; 4×4 fits AVX-512's 32 registers, 2×4 AVX2's 16.
fn block_of<S: Wide>() -> (usize, usize) {
    if S::LANES >= 16 {
        (MAX_RA, MAX_RB)
    } else {
        (MAX_RA / 2, MAX_RB)
    }
}

/// Whether the dot loops take this product on a path of `lanes` floats per
/// vector: both operands run along k (op(A)'s column stride and op(B)'s row
/// stride are 1), and C is narrower than a vector (n < `lanes`: a layer of
/// a few units) by enough that the tiles' vectors, which hold n useful
/// lanes, waste more than the dot loops spend on their sums. Per element of
/// C the tiles issue about k/n FMAs, the dot loops ⌈k/lanes⌉ and the
/// equivalent of 2.5 more for the lane sum and the store (measured on both
/// x86 paths: the dot loops 1.2–6× faster from 1 to lanes − 2 units at k
/// from 8 to 784, the tiles 10 % faster at 7 units and k = 128 on AVX2,
/// where this rule keeps them).
///
/// The choice does not depend on m: a sample's row of C has the same bits
/// in any batch, so a batch cut into micro-batches computes the codes the
/// whole batch would (a batch top-k selection relies on it). A few samples
/// through a wide layer (m small, n large) therefore stay on the tiles.
pub(crate) fn wins(a: &Strided<'_>, b: &Strided<'_>, n: usize, k: usize, lanes: usize) -> bool {
    if a.cs != 1 || b.rs != 1 || n >= lanes {
        return false;
    }
    // In half FMAs: (⌈k/lanes⌉ + 2.5)·n < k.
    (2 * k.div_ceil(lanes) + 5) * n < 2 * k
}

/// Runs `job` (op(A) m×k, op(B) k×n, both along k: see [`wins`]) on the dot
/// loops of `S`, the larger of m and n split between `threads` in whole
/// register blocks.
///
/// # Safety
/// `S`'s instruction set is available; the shapes of `job` were checked
/// (`check_shapes`) and C is borrowed mutably for the call; op(A)'s column
/// stride and op(B)'s row stride are 1.
pub(crate) unsafe fn run<S: Wide>(job: &Job<'_>, m: usize, n: usize, k: usize, threads: usize) {
    debug_assert!(job.a.cs == 1 && job.b.rs == 1);
    let (_, len, unit) = split_of::<S>(m, n);
    let tasks = threads.min(len.div_ceil(unit)).max(1);
    let strip = |t: usize| {
        // SAFETY: strips are disjoint blocks of C; the rest is forwarded.
        unsafe { run_strip::<S>(job, m, n, k, (t, tasks), threads) }
    };
    if tasks == 1 {
        strip(0);
    } else {
        crate::parallel::for_each_task(tasks, strip);
    }
}

/// The dimension [`run`] splits, the larger of m and n: whether it is m,
/// its length and its register block.
fn split_of<S: Wide>(m: usize, n: usize) -> (bool, usize, usize) {
    let (ra, rb) = block_of::<S>();
    if m >= n {
        (true, m, ra)
    } else {
        (false, n, rb)
    }
}

/// Strip `t` of `tasks` of [`run`]'s product on `threads` threads: the
/// larger of m and n cut in whole register blocks ([`super::strip`]). The
/// strips of `tasks` cover C once, whatever `tasks`, so another loop's task
/// t can take strip t of this product along with its own (the dot edge of
/// an odd-width layer within the tiles' tasks: one fork instead of two).
///
/// # Safety
/// As [`run`]; no other task touches strip t.
pub(crate) unsafe fn run_strip<S: Wide>(
    job: &Job<'_>,
    m: usize,
    n: usize,
    k: usize,
    (t, tasks): (usize, usize),
    threads: usize,
) {
    let (split_m, len, unit) = split_of::<S>(m, n);
    let (lo, hi) = super::strip(t, tasks, len, unit, threads);
    // SAFETY: forwarded; the strip is inside C.
    unsafe {
        if split_m {
            part::<S>(job, lo, hi - lo, 0, n, k)
        } else {
            part::<S>(job, 0, m, lo, hi - lo, k)
        }
    }
}

/// The `mb × nb` block of C at (i0, j0), then its epilogue.
///
/// # Safety
/// As [`run`], for that block, which no other task touches.
unsafe fn part<S: Wide>(job: &Job<'_>, i0: usize, mb: usize, j0: usize, nb: usize, k: usize) {
    let (ra, rb) = block_of::<S>();
    let c: CPtr = job.c;
    for i in (0..mb).step_by(ra) {
        let ri = ra.min(mb - i);
        // One row of A meets eight of B, so that eight sums are in flight
        // (four would wait on the FMA latency).
        let rb = if ri == 1 { 2 * rb } else { rb };
        for j in (0..nb).step_by(rb) {
            let rj = rb.min(nb - j);
            let (row, col) = (i0 + i, j0 + j);
            let t = DotTile {
                a: job.a.at(row, 0).data.as_ptr(),
                lda: job.a.rs,
                b: job.b.at(0, col).data.as_ptr(),
                ldb: job.b.cs,
                k,
                // SAFETY: (row, col) is inside C.
                c: unsafe { c.get().add(row * job.ldc + col) },
                ldc: job.ldc,
                alpha: job.alpha,
                beta: job.beta,
            };
            // SAFETY: rows row..row+ri of op(A) and columns col..col+rj of
            // op(B) hold k floats each along k (checked shapes, unit
            // strides); the ri×rj block of C is this task's.
            unsafe { tile::<S>(ri, rj, &t) };
        }
    }
    if job.bias.is_some() || job.act != Activation::Linear {
        let bias = job.bias.map(|b| &b[j0..j0 + nb]);
        for i in i0..i0 + mb {
            // SAFETY: the row segment is inside C and owned by this task.
            let crow = unsafe { std::slice::from_raw_parts_mut(c.get().add(i * job.ldc + j0), nb) };
            crate::kernels::elementwise::bias_act(job.isa, crow, bias, job.act);
        }
    }
}

/// Runs `t` on the instance of [`Wide::dot_tile`] for an `ra × rb` block.
///
/// # Safety
/// `S`'s instruction set; 1 ≤ ra ≤ 4 (2 on paths of fewer than 16 lanes),
/// 1 ≤ rb ≤ 4 (8 when ra = 1); the contract of [`dot_body`] for that block.
///
/// # Panics
/// Outside those bounds.
unsafe fn tile<S: Wide>(ra: usize, rb: usize, t: &DotTile) {
    macro_rules! by_rb {
        ($ra:literal) => {
            // SAFETY: forwarded.
            unsafe {
                match rb {
                    1 => S::dot_tile::<$ra, 1>(t),
                    2 => S::dot_tile::<$ra, 2>(t),
                    3 => S::dot_tile::<$ra, 3>(t),
                    _ => S::dot_tile::<$ra, 4>(t),
                }
            }
        };
    }
    let most = if ra == 1 { 2 * MAX_RB } else { MAX_RB };
    assert!((1..=MAX_RA).contains(&ra) && (1..=most).contains(&rb));
    match ra {
        // SAFETY: forwarded.
        1 => unsafe {
            match rb {
                1 => S::dot_tile::<1, 1>(t),
                2 => S::dot_tile::<1, 2>(t),
                3 => S::dot_tile::<1, 3>(t),
                4 => S::dot_tile::<1, 4>(t),
                5 => S::dot_tile::<1, 5>(t),
                6 => S::dot_tile::<1, 6>(t),
                7 => S::dot_tile::<1, 7>(t),
                _ => S::dot_tile::<1, 8>(t),
            }
        },
        2 => by_rb!(2),
        // Three or four rows of A only where `block_of` deals them out: on
        // AVX2's 16 registers a 4×4 block would keep accumulators on the
        // stack, and its instance is not even built.
        3 if S::LANES >= 16 => by_rb!(3),
        4 if S::LANES >= 16 => by_rb!(4),
        _ => unreachable!("dot tile: {ra} rows of A on a {}-lane path", S::LANES),
    }
}

/// `C[i][j] ← α·(A row i · B row j) + β·C[i][j]` for i < RA, j < RB, summed as
/// the module doc says (C not read when β = 0).
///
/// # Safety
/// `S`'s instruction set; RA rows of `t.k` floats readable at `t.a + i·lda`,
/// RB at `t.b + j·ldb`; the RA×RB block of C at `t.c` writable (readable when
/// β ≠ 0) and not accessed concurrently.
#[inline(always)]
pub(crate) unsafe fn dot_body<S: Wide, const RA: usize, const RB: usize>(t: &DotTile) {
    let w = S::LANES;
    let mut acc = [[S::zero(); RB]; RA];
    let full = t.k / w;
    let rest = t.k - full * w;
    // SAFETY: every load reads lanes p < k of a row named in the contract;
    // the last, masked, reads only the lanes below k.
    unsafe {
        let all = S::mask(w);
        for q in 0..full {
            dot_step::<S, RA, RB, false>(&mut acc, t, q * w, all);
        }
        if rest > 0 {
            dot_step::<S, RA, RB, true>(&mut acc, t, full * w, S::mask(rest));
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            // SAFETY: (i, j) is in the block of C.
            unsafe {
                let cp = t.c.add(i * t.ldc + j);
                *cp = store_value(S::fold(*x), t.alpha, t.beta, cp);
            }
        }
    }
}

/// One vector of every row of the block at offset `off` along k: all LANES
/// lanes, or only those of `mask` (the others read as 0) when MASKED.
///
/// # Safety
/// As [`dot_body`]; `off + LANES ≤ k` unless MASKED, and then the lanes of
/// `mask` lie below k.
#[inline(always)]
unsafe fn dot_step<S: Wide, const RA: usize, const RB: usize, const MASKED: bool>(
    acc: &mut [[S::V; RB]; RA],
    t: &DotTile,
    off: usize,
    mask: S::M,
) {
    let mut bv = [S::zero(); RB];
    for (j, x) in bv.iter_mut().enumerate() {
        // SAFETY: row j of B at `off`, inside k (or masked to it).
        *x = unsafe {
            let p = t.b.add(j * t.ldb + off);
            if MASKED {
                S::load_masked(p, mask)
            } else {
                S::load(p)
            }
        };
    }
    for (i, row) in acc.iter_mut().enumerate() {
        // SAFETY: row i of A at `off`, inside k (or masked to it).
        let av = unsafe {
            let p = t.a.add(i * t.lda + off);
            if MASKED {
                S::load_masked(p, mask)
            } else {
                S::load(p)
            }
        };
        for (x, bb) in row.iter_mut().zip(&bv) {
            *x = S::fma(av, *bb, *x);
        }
    }
}

#[cfg(test)]
/// The lanes of `v` added in halves: `v[l] += v[l + h]` for h = len/2, len/4,
/// …, 1; returns `v[0]`. `len` is a power of two.
fn fold(v: &mut [f32]) -> f32 {
    let mut h = v.len() / 2;
    while h > 0 {
        for l in 0..h {
            v[l] += v[l + h];
        }
        h /= 2;
    }
    v[0]
}

/// round(α·s) + round(β·c), C read only when β ≠ 0.
///
/// # Safety
/// `cp` is readable when β ≠ 0.
#[inline(always)]
unsafe fn store_value(s: f32, alpha: f32, beta: f32, cp: *const f32) -> f32 {
    let r = alpha * s;
    if beta == 0.0 {
        r
    } else {
        // SAFETY: readable by the contract.
        r + beta * unsafe { *cp }
    }
}

/// The scalar twin of the dot loops on a path of `lanes` floats per vector:
/// `α·(a · b) + β·c` with the products summed exactly as [`dot_body`] sums
/// them (lane by lane with FMA in increasing p, the lanes past k adding 0·0,
/// then the lanes folded in halves).
///
/// # Panics
/// If `a` and `b` differ in length or `lanes` is not a power of two at most 16.
#[cfg(test)]
pub(crate) fn dot_twin(lanes: usize, a: &[f32], b: &[f32], alpha: f32, beta: f32, c: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "dot_twin: runs of different lengths");
    assert!(
        lanes.is_power_of_two() && lanes <= 16,
        "dot_twin: {lanes} lanes"
    );
    let mut acc = [0.0f32; 16];
    let k = a.len();
    for q in 0..k.div_ceil(lanes) {
        for (l, s) in acc[..lanes].iter_mut().enumerate() {
            let p = q * lanes + l;
            let (x, y) = if p < k { (a[p], b[p]) } else { (0.0, 0.0) };
            *s = x.mul_add(y, *s);
        }
    }
    let s = fold(&mut acc[..lanes]);
    let r = alpha * s;
    if beta == 0.0 { r } else { r + beta * c }
}
