//! The unpacked ("direct") GEMM for products with a small side.
//!
//! The packed loop nest copies a KC×NC block of op(B) and an MC×KC block of
//! op(A) before using them. When m (or n, or k) is small, say the batch of 32
//! rows in a training step, each packed element of B is read only ⌈m/MR⌉
//! times, and packing a transposed operand can cost a third of the product.
//! Here the microkernel reads the operands where they are:
//!
//! - the broadcast operand Ã (m′×k) is read in place through its strides: its
//!   elements are loaded one at a time, so any layout with one unit stride is
//!   as fast as a packed panel;
//! - the vector operand B̃ (k×n′) is read in place when its rows are contiguous
//!   (unit column stride), else it is packed into NR-wide panels;
//! - the product may be computed as `Cᵀ = op(B)ᵀ·op(A)ᵀ` (Ã = op(B)ᵀ,
//!   B̃ = op(A)ᵀ, C̃ = Cᵀ written through swapped strides) when that leaves the
//!   smaller operand, or none, to pack.
//!
//! The k-dimension is cut into the same blocks as the packed path
//! (`super::k_block`, by k alone) and never split between threads, so every
//! element of C is the same FMA chain in increasing p, whatever the tiling,
//! the orientation, the loops or the thread count: results are bit-identical
//! on any number of threads, and a row of C has the same bits in any batch.

use super::pack::Strided;
use super::params;
use super::{CPtr, Job, MicroKernel};
use crate::kernels::Activation;
use crate::kernels::Isa;

/// One strided tile product for [`MicroKernel::tile_strided`]:
/// `C̃(i, j) ← α·Σ_{p<k} ã(i, p)·b̃(p, j) + β·C̃(i, j)` for i < m, j < n, with
/// `ã(i, p) = a[i·rsa + p·csa]` (rsa = 1 or csa = 1), `b̃(p, j) = b[p·ldb + j]`
/// and `C̃(i, j) = c[i·rsc + j·csc]`. C̃ is not read when β = 0.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StridedTile {
    /// Rows of the tile, 1 ≤ m ≤ MR.
    pub m: usize,
    /// Columns of the tile, 1 ≤ n ≤ NR.
    pub n: usize,
    /// Depth of the sum.
    pub k: usize,
    /// Ã at (0, 0).
    pub a: *const f32,
    /// Step of Ã between rows.
    pub rsa: usize,
    /// Step of Ã between columns.
    pub csa: usize,
    /// B̃ at (0, 0).
    pub b: *const f32,
    /// Step of B̃ between rows (its columns are adjacent).
    pub ldb: usize,
    /// C̃ at (0, 0).
    pub c: *mut f32,
    /// Step of C̃ between rows.
    pub rsc: usize,
    /// Step of C̃ between columns.
    pub csc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old C̃ (0: C̃ is only written).
    pub beta: f32,
}

/// How a product runs on the direct path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Compute Cᵀ = op(B)ᵀ·op(A)ᵀ.
    pub swap: bool,
    /// B̃ has strided rows and is packed.
    pub pack: bool,
}

/// The orientation of an m×n×k product on the direct path that packs the
/// fewest elements, counting each element of C written through a transpose
/// (C̃ = Cᵀ) as half a packed one; a tie keeps C, whose rows are then written
/// by whole vectors. Swapped, the vectors run along m, so a product whose n
/// fills a vector keeps C when m is at most a quarter of a vector (a sample
/// or two through a wide layer: swapped vectors would be three quarters
/// empty) or when it runs on transposed tiles ([`transposes`]: a few samples
/// through a layer whose weight is stored `(out, in)`, which then costs no
/// packing). The orientation never changes a result's bits: each element is
/// the same chain of FMAs, cut at the same k-blocks.
pub(crate) fn orient(
    a: &Strided<'_>,
    b: &Strided<'_>,
    m: usize,
    n: usize,
    k: usize,
    isa: Isa,
) -> Plan {
    let lanes = super::lanes(isa);
    let keep = Plan {
        swap: false,
        pack: b.cs != 1,
    };
    if (4 * m <= lanes || transposes(keep, a, b, m, n, isa)) && n >= lanes {
        return keep;
    }
    let swap = Plan {
        swap: true,
        pack: a.rs != 1,
    };
    let cost = |p: Plan| {
        let packed = if p.pack {
            k * if p.swap { m } else { n }
        } else {
            0
        };
        packed + if p.swap { m * n / 2 } else { 0 }
    };
    if cost(swap) < cost(keep) { swap } else { keep }
}

/// Whether (and how) the direct path should run an m×n×k product with these
/// operand views: when m or n is at most `params::DIRECT_SMALL` and the side
/// it packs, if any, is small too (packing a large side is what the packed
/// path does better). A product with only k small (a weight gradient at
/// batch 32) goes packed (see `params::DIRECT_SMALL`).
pub(crate) fn plan(
    a: &Strided<'_>,
    b: &Strided<'_>,
    m: usize,
    n: usize,
    k: usize,
    isa: Isa,
) -> Option<Plan> {
    let small = params::DIRECT_SMALL;
    if m.min(n) > small {
        return None;
    }
    let best = orient(a, b, m, n, k, isa);
    let packed_side = if best.swap { m } else { n };
    let cheap = transposes(best, a, b, m, n, isa);
    (!best.pack || packed_side <= small || k <= small || cheap).then_some(best)
}

/// Whether `plan` runs on transposed tiles ([`MicroKernel::tile_transposed`])
/// instead of packing B̃: B̃'s columns run along p and C̃ has at most the
/// path's `TRANSPOSED_ROWS` rows. [`block`] decides the same from the block
/// it is given, whose rows are never more than the product's.
pub(crate) fn transposes(
    plan: Plan,
    a: &Strided<'_>,
    b: &Strided<'_>,
    m: usize,
    n: usize,
    isa: Isa,
) -> bool {
    let (b_rs, rows) = if plan.swap { (a.cs, n) } else { (b.rs, m) };
    plan.pack && b_rs == 1 && rows <= super::transposed_rows(isa)
}

/// The product in the orientation of `plan`: Ã (m′×k), B̃ (k×n′), C̃ = C or Cᵀ.
struct Oriented<'a> {
    a: Strided<'a>,
    b: Strided<'a>,
    rsc: usize,
    csc: usize,
    m: usize,
    n: usize,
}

/// Runs the product of `job` (op(A) m×k, op(B) k×n) on the direct path,
/// split as `super::run` splits it (along C's rows whenever `rows`), in
/// strips of whole tiles dealt out evenly; task t of `tasks` then also runs
/// `extra(t, tasks)` (on one thread, `extra(0, 1)` after the tiles).
///
/// # Safety
/// As for `super::run`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run<K: MicroKernel>(
    job: &Job<'_>,
    plan: Plan,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    rows: bool,
    extra: Option<&(dyn Fn(usize, usize) + Sync)>,
) {
    let o = if plan.swap {
        Oriented {
            a: job.b.t(),
            b: job.a.t(),
            rsc: 1,
            csc: job.ldc,
            m: n,
            n: m,
        }
    } else {
        Oriented {
            a: job.a,
            b: job.b,
            rsc: job.ldc,
            csc: 1,
            m,
            n,
        }
    };
    let (mr, nr) = (K::P.mr, K::P.nr);
    if threads <= 1 {
        // SAFETY: forwarded.
        unsafe { block::<K>(job, &o, plan, 0, 0, o.m, o.n, k) };
        if let Some(extra) = extra {
            extra(0, 1);
        }
        return;
    }
    // C's rows are C̃'s columns when swapped.
    let split_n = if rows { plan.swap } else { o.m <= o.n };
    let (len, unit) = if split_n { (o.n, nr) } else { (o.m, mr) };
    // Whole tiles dealt out evenly, two strips per thread (784 columns in
    // strips of 224 gave the first thread 448 of them), each thread's half
    // ending where `parallel::owned_half` says (`super::strip`).
    let tiles = len.div_ceil(unit);
    let tasks = super::strips_of(2 * threads, tiles, threads);
    crate::parallel::for_each_task(tasks, |t| {
        let (lo, hi) = super::strip(t, tasks, len, unit, threads);
        // SAFETY: strips [lo, hi) of C̃ are disjoint, so no two tasks touch the
        // same element of C; the rest is forwarded.
        unsafe {
            if split_n {
                block::<K>(job, &o, plan, 0, lo, o.m, hi - lo, k)
            } else {
                block::<K>(job, &o, plan, lo, 0, hi - lo, o.n, k)
            }
        }
        if let Some(extra) = extra {
            extra(t, tasks);
        }
    });
}

/// Columns `j0..j0 + r` of C, rows `i0..i0 + mb`, computed as Cᵀ (vectors
/// along C's rows) over op(A)ᵀ read in place: the thin last columns of a
/// product whose other columns the packed loops compute ([`super::thin_edge`]).
/// The same chains and k-blocks as any other loops, so the same bits.
///
/// # Safety
/// As for `super::run`, for that block of C; op(A) has unit row step (its
/// columns are contiguous).
pub(crate) unsafe fn run_edge<K: MicroKernel>(
    job: &Job<'_>,
    (j0, r): (usize, usize),
    (i0, mb): (usize, usize),
    k: usize,
) {
    let o = Oriented {
        a: job.b.t(),
        b: job.a.t(),
        rsc: 1,
        csc: job.ldc,
        m: j0 + r,
        n: i0 + mb,
    };
    let plan = Plan {
        swap: true,
        pack: job.a.rs != 1,
    };
    // SAFETY: forwarded; C̃ rows j0..j0 + r are C's columns, its columns
    // i0..i0 + mb C's rows.
    unsafe { block::<K>(job, &o, plan, j0, i0, r, mb, k) }
}

/// The direct product for the `mb × nb` block of C̃ at (i0, j0).
///
/// Loops, outermost first: the packed path's k-blocks ([`super::k_block`]);
/// column blocks of B̃ that fit `DIRECT_B_BYTES` (L2), packed here when B̃'s
/// rows are strided; then
/// either (Ã block within `DIRECT_A_L1_BYTES`) column tiles of NR outside row
/// tiles, so each B̃ panel is loaded once against an L1-resident Ã, or row
/// tiles outside column tiles, each row tile of Ã (at most MR·KC) copied to a
/// compact buffer and kept in L1 while it meets every column tile, with C
/// written along its rows. Row tiles hold at most MR rows, shared out evenly
/// so no tile is much thinner than the others (32 rows → 10 + 11 + 11 rather
/// than 14 + 14 + 4).
///
/// # Safety
/// As for [`run`], for that block.
#[allow(clippy::too_many_arguments)]
unsafe fn block<K: MicroKernel>(
    job: &Job<'_>,
    o: &Oriented<'_>,
    plan: Plan,
    i0: usize,
    j0: usize,
    mb: usize,
    nb: usize,
    k: usize,
) {
    let (mr, nr) = (K::P.mr, K::P.nr);
    // A B̃ whose columns run along p (the transposed weight of x·Wᵀ) through
    // few rows is transposed block by block inside the tile, in L1, rather
    // than packed to L2 and read back for so little use.
    let transposed = plan.pack && o.b.rs == 1 && mb <= K::TRANSPOSED_ROWS;
    let pack = plan.pack && !transposed;
    // The packed path's k-blocks, which depend on k alone: each element of
    // C is then the same chain of sums whichever loops, orientation, strip
    // or batch computes it.
    let kcb = super::k_block(k, K::P.for_this_cpu().kc);
    let ncb = (params::DIRECT_B_BYTES / 4 / kcb / nr).max(1) * nr;
    let has_epi = job.bias.is_some() || job.act != Activation::Linear;
    let row_tiles = mb.div_ceil(mr);
    let lda = kcb.next_multiple_of(16);
    super::with_buffers(|abuf, buf| {
        // Row tiles of Ã are copied only when they meet several column
        // tiles.
        let abuf = if nb > nr {
            super::aligned(abuf, mr * lda)
        } else {
            &mut []
        };
        let bbuf = if pack {
            super::aligned(buf, ncb.min(nb.div_ceil(nr) * nr) * kcb)
        } else {
            &mut []
        };
        for pc in (0..k).step_by(kcb) {
            let kc = kcb.min(k - pc);
            let beta = if pc == 0 { job.beta } else { 1.0 };
            let last = pc + kc == k;
            for jc in (0..nb).step_by(ncb) {
                let nc = ncb.min(nb - jc);
                if pack {
                    // SAFETY: the caller guarantees K's features.
                    unsafe { K::pack_b(bbuf, o.b.at(pc, j0 + jc), kc, nc) };
                }
                // One tile: rows [row, row + m_t) of C̃ from Ã at (a; rsa,
                // csa), columns [jr, jr + NR) of the block.
                let tile_at = |row: usize, m_t: usize, a: *const f32, rsa, csa, jr: usize| {
                    let n_t = nr.min(nc - jr);
                    let col = j0 + jc + jr;
                    let (b, ldb) = if pack {
                        (bbuf[jr * kc..].as_ptr(), nr)
                    } else if transposed {
                        (o.b.at(pc, col).data.as_ptr(), o.b.cs)
                    } else {
                        (o.b.at(pc, col).data.as_ptr(), o.b.rs)
                    };
                    let tile = StridedTile {
                        m: m_t,
                        n: n_t,
                        k: kc,
                        a,
                        rsa,
                        csa,
                        b,
                        ldb,
                        // SAFETY: (row, col) is inside C̃, so the offset is
                        // inside C.
                        c: unsafe { job.c.get().add(row * o.rsc + col * o.csc) },
                        rsc: o.rsc,
                        csc: o.csc,
                        alpha: job.alpha,
                        beta,
                    };
                    // SAFETY: the tile lies inside C̃ and this task owns it;
                    // Ã and B̃ hold it (checked shapes, or the packed block of
                    // nc columns); the caller guarantees K's features; a
                    // transposed tile has at most TRANSPOSED_ROWS rows.
                    unsafe {
                        if transposed {
                            K::tile_transposed(&tile)
                        } else {
                            K::tile_strided(&tile)
                        }
                    };
                };
                let row_tile = |t: usize| {
                    let lo = mb * t / row_tiles;
                    (i0 + lo, mb * (t + 1) / row_tiles - lo)
                };
                if mb * kc * 4 <= params::DIRECT_A_L1_BYTES {
                    // The whole Ã block stays in L1: each column tile of B̃
                    // is loaded once and meets every row tile.
                    for jr in (0..nc).step_by(nr) {
                        for t in 0..row_tiles {
                            let (row, m_t) = row_tile(t);
                            let src = o.a.at(row, pc);
                            tile_at(row, m_t, src.data.as_ptr(), src.rs, src.cs, jr);
                        }
                    }
                } else {
                    for t in 0..row_tiles {
                        let (row, m_t) = row_tile(t);
                        let src = o.a.at(row, pc);
                        // A row tile met by several column tiles is copied to
                        // a compact buffer first (cheap: runs of contiguous
                        // floats), so that its rows or columns do not collide in
                        // L1 when the stored stride is a multiple of 4 KiB.
                        // Met by two, it is copied only for such a stride:
                        // otherwise the copy costs what it saves (the AVX2
                        // W3 step, n = 32 = 2·NR: 199 → 182 µs without it).
                        let stride = src.rs.max(src.cs);
                        let (a, rsa, csa) =
                            if nc <= nr || nc <= 2 * nr && !(stride * 4).is_multiple_of(4096) {
                                (src.data.as_ptr(), src.rs, src.cs)
                            } else if src.cs == 1 {
                                for i in 0..m_t {
                                    abuf[i * lda..i * lda + kc]
                                        .copy_from_slice(&src.data[i * src.rs..][..kc]);
                                }
                                (abuf.as_ptr(), lda, 1)
                            } else {
                                for p in 0..kc {
                                    abuf[p * m_t..(p + 1) * m_t]
                                        .copy_from_slice(&src.data[p * src.cs..][..m_t]);
                                }
                                (abuf.as_ptr(), 1, m_t)
                            };
                        for jr in (0..nc).step_by(nr) {
                            tile_at(row, m_t, a, rsa, csa, jr);
                        }
                    }
                }
                if last && has_epi {
                    // Once over the finished mb × nc block, along C's rows:
                    // per tile it was a call for every 6–32 values, 13 % of
                    // the one-thread AVX2 W3 step.
                    // SAFETY: the block lies inside C̃ and this task owns it.
                    unsafe { epilogue(job, plan.swap, i0, j0 + jc, mb, nc) };
                }
            }
        }
    })
}

/// The epilogue on the finished `m_t × n_t` tile of C̃ at (row, col), row by
/// row of C.
///
/// # Safety
/// The tile lies inside C̃ and no other reference to it is alive.
unsafe fn epilogue(job: &Job<'_>, swap: bool, row: usize, col: usize, m_t: usize, n_t: usize) {
    // In C's coordinates: rows r0.., columns c0.. .
    let (r0, c0, rows, cols) = if swap {
        (col, row, n_t, m_t)
    } else {
        (row, col, m_t, n_t)
    };
    let bias = job.bias.map(|b| &b[c0..c0 + cols]);
    let c: CPtr = job.c;
    for i in r0..r0 + rows {
        // SAFETY: the row segment is inside C and owned by the caller.
        let crow = unsafe { std::slice::from_raw_parts_mut(c.get().add(i * job.ldc + c0), cols) };
        crate::kernels::elementwise::bias_act(job.isa, crow, bias, job.act);
    }
}
