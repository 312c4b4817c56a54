//! General matrix multiply: `C ← act(α·op(A)·op(B) + β·C + bias)`.
//!
//! Row-major storage with leading dimensions, `op` = identity or transpose per
//! operand, and an optional fused epilogue (bias per column of C, then an
//! activation) applied while each block of C is still in cache.
//!
//! Two loop structures share the register tiles ([`Loops`]): the packed,
//! cache-blocked nest of `params` for large products, and the direct loops of
//! `direct`, which read the operands in place, for products with a small side
//! (the batch of a training step, or k = batch in a weight gradient). Each
//! path has a packed microkernel (`tile`) and a strided one (`tile_strided`,
//! also used on the packed path's edge tiles), with scalar twins in `scalar`.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod direct;
#[cfg(target_arch = "x86_64")]
mod dot;
#[cfg(target_arch = "aarch64")]
mod neon;
mod pack;
mod params;
#[cfg(any(
    target_arch = "aarch64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod quad;
pub mod reference;
mod scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
#[cfg(target_arch = "x86_64")]
mod wide;

use super::{Activation, Isa, Real};
use pack::Strided;
use params::Blocking;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// op(X) = X.
    No,
    /// op(X) = Xᵀ.
    Yes,
}

/// Whether a GEMM may split its work across the rayon pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// One thread.
    Sequential,
    /// Blocks of C on the rayon pool, when the product is large enough to pay.
    Rayon,
    /// As [`Parallelism::Rayon`], but C is always cut into strips of rows, the
    /// first half of them computed by the calling thread: a weight gradient
    /// `(out, in)` then ends up in the cache of the thread that owns those
    /// rows of the weight (see [`crate::parallel::owned_half`]).
    RayonRows,
}

/// A read-only row-major matrix view: `rows × cols` stored with row stride
/// `ld ≥ cols`, used as `op(X)` according to `trans`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The backing slice; element (r, c) is `data[r·ld + c]`.
    pub data: &'a [T],
    /// Stored rows.
    pub rows: usize,
    /// Stored columns.
    pub cols: usize,
    /// Row stride.
    pub ld: usize,
    /// Whether the operand is op(X) = Xᵀ.
    pub trans: Trans,
}

impl<'a, T: Copy> MatRef<'a, T> {
    /// A dense `rows × cols` view (ld = cols), used as stored.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            ld: cols,
            trans: Trans::No,
        }
    }

    /// The same storage with another row stride.
    pub fn with_ld(mut self, ld: usize) -> Self {
        self.ld = ld;
        self
    }

    /// The same storage used transposed (toggles `trans`).
    pub fn t(mut self) -> Self {
        self.trans = match self.trans {
            Trans::No => Trans::Yes,
            Trans::Yes => Trans::No,
        };
        self
    }

    /// Rows of op(X).
    pub fn op_rows(&self) -> usize {
        if self.trans == Trans::No {
            self.rows
        } else {
            self.cols
        }
    }

    /// Columns of op(X).
    pub fn op_cols(&self) -> usize {
        if self.trans == Trans::No {
            self.cols
        } else {
            self.rows
        }
    }

    /// Element (i, j) of op(X).
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> T {
        match self.trans {
            Trans::No => self.data[i * self.ld + j],
            Trans::Yes => self.data[j * self.ld + i],
        }
    }

    fn check(&self, name: &str) {
        assert!(
            self.ld >= self.cols,
            "gemm: {name}: ld {} < cols {}",
            self.ld,
            self.cols
        );
        if self.rows > 0 && self.cols > 0 {
            let need = (self.rows - 1)
                .checked_mul(self.ld)
                .and_then(|v| v.checked_add(self.cols))
                .expect("gemm: view size overflows usize");
            assert!(
                need <= self.data.len(),
                "gemm: {name}: {}×{} view with ld {} needs {need} elements, slice has {}",
                self.rows,
                self.cols,
                self.ld,
                self.data.len()
            );
        }
    }
}

/// A mutable row-major matrix view: `rows × cols` with row stride `ld ≥ cols`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// The backing slice; element (r, c) is `data[r·ld + c]`.
    pub data: &'a mut [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row stride.
    pub ld: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// A dense `rows × cols` view (ld = cols).
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld: cols,
        }
    }

    /// The same storage with another row stride.
    pub fn with_ld(mut self, ld: usize) -> Self {
        self.ld = ld;
        self
    }

    fn check(&self) {
        assert!(
            self.ld >= self.cols,
            "gemm: C: ld {} < cols {}",
            self.ld,
            self.cols
        );
        if self.rows > 0 && self.cols > 0 {
            let need = (self.rows - 1)
                .checked_mul(self.ld)
                .and_then(|v| v.checked_add(self.cols))
                .expect("gemm: view size overflows usize");
            assert!(
                need <= self.data.len(),
                "gemm: C: {}×{} view with ld {} needs {need} elements, slice has {}",
                self.rows,
                self.cols,
                self.ld,
                self.data.len()
            );
        }
    }
}

/// What happens to each element of C after the product:
/// `c ← act(α·Σ + β·c + bias[j])`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a, T> {
    /// A bias per column of C (length n), or none.
    pub bias: Option<&'a [T]>,
    /// The activation applied last.
    pub act: Activation,
}

impl<'a, T> Epilogue<'a, T> {
    /// No bias, linear activation: a plain GEMM.
    pub const NONE: Epilogue<'a, T> = Epilogue {
        bias: None,
        act: Activation::Linear,
    };

    /// Bias per column, then an activation: a dense layer's forward pass.
    pub fn bias_act(bias: &'a [T], act: Activation) -> Self {
        Epilogue {
            bias: Some(bias),
            act,
        }
    }

    /// Whether the epilogue does anything.
    pub fn is_none(&self) -> bool {
        self.bias.is_none() && self.act == Activation::Linear
    }
}

/// Checks the operand shapes and returns (m, n, k).
///
/// # Panics
/// If op(A) is not m×k, op(B) not k×n, C not m×n, a view does not fit its
/// slice, or the bias is not of length n.
pub fn check_shapes<T: Copy>(
    a: &MatRef<'_, T>,
    b: &MatRef<'_, T>,
    c: &MatMut<'_, T>,
    epi: &Epilogue<'_, T>,
) -> (usize, usize, usize) {
    a.check("A");
    b.check("B");
    c.check();
    let (m, k) = (a.op_rows(), a.op_cols());
    let n = b.op_cols();
    assert_eq!(
        b.op_rows(),
        k,
        "gemm: op(A) is {m}×{k} but op(B) is {}×{n}",
        b.op_rows()
    );
    assert!(
        c.rows == m && c.cols == n,
        "gemm: C is {}×{}, expected {m}×{n}",
        c.rows,
        c.cols
    );
    if let Some(bias) = epi.bias {
        assert_eq!(
            bias.len(),
            n,
            "gemm: bias has {} elements, C has {n} columns",
            bias.len()
        );
    }
    (m, n, k)
}

/// `C ← act(α·op(A)·op(B) + β·C + bias)` on the active path ([`Isa::active`]),
/// parallel over blocks of C when the product is large.
///
/// Shapes: op(A) is m×k, op(B) is k×n, C is m×n, bias has n elements. When
/// β = 0, C is only written, never read: NaN in C is ignored. Each element of C
/// is summed in the same order whatever the thread count, so results are
/// bit-identical on 1 or many threads.
///
/// # Panics
/// On any shape mismatch (see [`check_shapes`]).
pub fn gemm(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    gemm_with(Isa::active(), Parallelism::Rayon, alpha, a, b, beta, c, epi)
}

/// Whether an m×n×k product is large enough to be split between threads
/// kept awake ([`crate::parallel::awake`]): by its shape alone.
pub fn may_split(m: usize, n: usize, k: usize) -> bool {
    m.saturating_mul(n).saturating_mul(k).saturating_mul(2) >= params::PAR_MIN_FLOPS_AWAKE
}

/// [`gemm`] with C cut into strips of rows when split
/// ([`Parallelism::RayonRows`]). Bit-identical to [`gemm`].
///
/// # Panics
/// As [`gemm`].
pub fn gemm_rows(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    gemm_with(
        Isa::active(),
        Parallelism::RayonRows,
        alpha,
        a,
        b,
        beta,
        c,
        epi,
    )
}

/// [`gemm`] on a chosen path and parallelism, the loops chosen by shape.
///
/// # Panics
/// On any shape mismatch, or if `isa` is not available on this CPU.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    isa: Isa,
    par: Parallelism,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    gemm_loops(isa, par, Loops::Auto, alpha, a, b, beta, c, epi)
}

/// The register tile and cache blocks a path uses on this CPU (its own
/// blocks fitted to the caches, `Blocking::fitted`), as one line (`tile
/// 14×32, MC 1680, KC 512, NC 512`), for benchmarks and reports.
pub fn blocking_summary(isa: Isa) -> String {
    let p = match isa {
        Isa::Scalar => params::SCALAR,
        Isa::Avx2 => params::AVX2,
        Isa::Avx512 => params::AVX512,
        Isa::Neon => params::NEON,
        Isa::Simd128 => params::SIMD128,
    };
    let f = p.for_this_cpu();
    let fitted = if f == p {
        String::new()
    } else {
        format!(
            " (cut from KC {}, NC {} to fit this CPU's caches)",
            p.kc, p.nc
        )
    };
    format!(
        "tile {}×{}, MC {}, KC {}, NC {}{fitted}",
        f.mr, f.nr, f.mc, f.kc, f.nc
    )
}

/// Which loop structure runs a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loops {
    /// On the x86 paths, the dot-product loops when both operands run along
    /// k and n is narrower than a vector (`dot`; also for the last n mod
    /// lanes columns of a wider such product, the rest on the tiles); else
    /// [`Loops::Direct`] when m, n or k is small (`params::DIRECT_SMALL`) and
    /// at most the small side needs packing, else [`Loops::Packed`].
    Auto,
    /// Packed and blocked: both operands copied into panels per cache block
    /// (see `params` for the loop nest and block sizes).
    Packed,
    /// Operands read in place, the vector operand packed only when its rows
    /// are strided; C or Cᵀ computed, whichever packs less (see `direct`).
    Direct,
}

/// [`gemm`] on a chosen path, parallelism and loop structure.
///
/// With [`Parallelism::Rayon`], C is cut into column (or row) strips of whole
/// register tiles, one rayon task each: for every thread of the pool from
/// `PAR_MIN_FLOPS` flops on, for the threads spinning for work
/// ([`crate::parallel::awake_threads`]) from `PAR_MIN_FLOPS_AWAKE` on;
/// inside [`crate::parallel::as_part`] over the part's share of the pool
/// (none on two threads), and never while [`crate::parallel::serial`].
/// The k-dimension is never split, so every element of C is summed in the same
/// order for any thread count. Both loop structures compute each element as
/// the same chain of products in increasing p, cut at the same k-blocks
/// (`k_block`, by k alone), so they agree bit for bit, and a row of C has
/// the same bits in any batch. The dot loops, chosen by n and k alone, sum
/// an element in another order (see `dot`); with [`Loops::Auto`] they also
/// take the last n mod lanes columns of a product whose operands both run
/// along k (a 17-unit layer: 16 columns on the tiles, one on the dot loops).
///
/// # Panics
/// On any shape mismatch, or if `isa` is not available on this CPU.
#[allow(clippy::too_many_arguments)]
pub fn gemm_loops(
    isa: Isa,
    par: Parallelism,
    loops: Loops,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epi: Epilogue<'_, f32>,
) {
    assert!(
        isa.is_available(),
        "gemm: kernel path {isa} is not available on this CPU"
    );
    let (m, n, k) = check_shapes(&a, &b, &c, &epi);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: C ← α·0 + β·C, then the epilogue.
        for i in 0..m {
            for v in &mut c.data[i * c.ld..i * c.ld + n] {
                *v = if beta == 0.0 {
                    alpha * 0.0
                } else {
                    alpha * 0.0 + beta * *v
                };
            }
        }
        for i in 0..m {
            let row = &mut c.data[i * c.ld..i * c.ld + n];
            super::elementwise::bias_act(isa, row, epi.bias, epi.act);
        }
        return;
    }
    let job = Job {
        isa,
        alpha,
        beta,
        a: Strided::of(&a),
        b: Strided::of(&b),
        c: CPtr(c.data.as_mut_ptr()),
        ldc: c.ld,
        bias: epi.bias,
        act: epi.act,
    };
    #[cfg(target_arch = "x86_64")]
    let (n, r) = if loops == Loops::Auto {
        dot_edge(&job, n, k)
    } else {
        (n, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let r = 0;
    let threads = threads_for(par, m, n, k);
    let rows = par == Parallelism::RayonRows;
    // The last r columns of an odd-width layer as a product of their own on
    // the dot loops, strip t of it run by the tiles' task t (one fork for
    // both; on one thread, after the tiles). Being narrower, the edge never
    // wants more threads than the tiles (`threads_for` grows with n).
    #[cfg(target_arch = "x86_64")]
    let edge = Job {
        b: job.b.at(0, n),
        // SAFETY: column n ≤ the full width of C's rows; with r > 0, inside C.
        c: CPtr(unsafe { job.c.get().add(n) }),
        bias: job.bias.map(|b| &b[n..]),
        ..job
    };
    let edge_strip = |t: usize, tasks: usize| {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as for the dot loops below; `dot_edge` checked that both
        // operands run along k, and the edge's columns of C are disjoint
        // from the first n, which the tiles compute; strip t is this task's.
        unsafe {
            match isa {
                Isa::Avx512 => {
                    dot::run_strip::<avx512::Avx512>(&edge, m, r, k, (t, tasks), threads)
                }
                _ => dot::run_strip::<avx2::Avx2>(&edge, m, r, k, (t, tasks), threads),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (t, tasks);
    };
    let extra: Option<&(dyn Fn(usize, usize) + Sync)> =
        if r > 0 { Some(&edge_strip) } else { None };
    #[cfg(target_arch = "x86_64")]
    if loops == Loops::Auto {
        let (sa, sb) = (&job.a, &job.b);
        match isa {
            // SAFETY: avx512f was asserted available; `check_shapes` proved
            // the operands and C hold the product, and `wins` that both
            // operands run along k.
            // (No dot edge then: the edge leaves n a multiple of a vector.)
            Isa::Avx512 if dot::wins(sa, sb, n, k, lanes(isa)) => {
                return unsafe { dot::run::<avx512::Avx512>(&job, m, n, k, threads) };
            }
            // SAFETY: as above, with avx2 + fma.
            Isa::Avx2 if dot::wins(sa, sb, n, k, lanes(isa)) => {
                return unsafe { dot::run::<avx2::Avx2>(&job, m, n, k, threads) };
            }
            _ => {}
        }
    }
    let plan = match loops {
        Loops::Auto => direct::plan(&job.a, &job.b, m, n, k, isa),
        Loops::Packed => None,
        Loops::Direct => Some(direct::orient(&job.a, &job.b, m, n, k, isa)),
    };
    if let Some(plan) = plan {
        match isa {
            // SAFETY: as below.
            Isa::Scalar => unsafe {
                direct::run::<scalar::Scalar>(&job, plan, m, n, k, threads, rows, extra)
            },
            // SAFETY: as below, and avx2 + fma were asserted available.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe {
                direct::run::<avx2::Avx2>(&job, plan, m, n, k, threads, rows, extra)
            },
            // SAFETY: as below, and avx512f was asserted available.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                direct::run::<avx512::Avx512>(&job, plan, m, n, k, threads, rows, extra)
            },
            // SAFETY: as below, and NEON was asserted available.
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe {
                direct::run::<neon::Neon>(&job, plan, m, n, k, threads, rows, extra)
            },
            // SAFETY: as below; SIMD128 is compiled in.
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => unsafe {
                direct::run::<simd128::Simd128>(&job, plan, m, n, k, threads, rows, extra)
            },
            #[allow(unreachable_patterns)]
            _ => unreachable!("kernel path {isa} is not built for this target"),
        }
        return;
    }
    match isa {
        // SAFETY: `check_shapes` proved that C holds an m×n view with row
        // stride ldc and that A, B and the bias fit; `c` is borrowed mutably
        // for the whole call.
        Isa::Scalar => unsafe { run::<scalar::Scalar>(&job, m, n, k, threads, rows, extra) },
        // SAFETY: as above, and avx2 + fma were asserted available.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { run::<avx2::Avx2>(&job, m, n, k, threads, rows, extra) },
        // SAFETY: as above, and avx512f was asserted available.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { run::<avx512::Avx512>(&job, m, n, k, threads, rows, extra) },
        // SAFETY: as above, and NEON was asserted available.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { run::<neon::Neon>(&job, m, n, k, threads, rows, extra) },
        // SAFETY: as above; SIMD128 is compiled in.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Isa::Simd128 => unsafe { run::<simd128::Simd128>(&job, m, n, k, threads, rows, extra) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("kernel path {isa} is not built for this target"),
    }
}

/// A register-tile kernel with its packing routines and block sizes.
pub(crate) trait MicroKernel {
    /// Tile and block sizes.
    const P: Blocking;

    /// Packs `mc × kc` of op(A) into MR-row panels (`pack::panels`).
    ///
    /// # Safety
    /// The CPU has the kernel's features.
    unsafe fn pack_a(dst: &mut [f32], a: Strided<'_>, mc: usize, kc: usize);

    /// Packs `kc × nc` of op(B) into NR-column panels (`pack::panels` of
    /// op(B)ᵀ).
    ///
    /// # Safety
    /// The CPU has the kernel's features.
    unsafe fn pack_b(dst: &mut [f32], b: Strided<'_>, kc: usize, nc: usize);

    /// `C[MR×NR] ← α·Ã·B̃ + β·C` for one packed A micro-panel (`ã[p·MR + i]`)
    /// and one packed B micro-panel (`b̃[p·NR + j]`), p < kc. Each element is
    /// Σₚ summed in increasing p, then stored as round(α·Σ) + round(β·c);
    /// C is not read when β = 0.
    ///
    /// # Safety
    /// The CPU has the kernel's features; `c` points at an MR×NR tile with row
    /// stride ldc that is writable, readable when β ≠ 0, and not accessed
    /// concurrently.
    ///
    /// # Panics
    /// If `a` has fewer than MR·kc or `b` fewer than NR·kc elements.
    unsafe fn tile(kc: usize, a: &[f32], b: &[f32], c: *mut f32, ldc: usize, alpha: f32, beta: f32);

    /// The strided tile product of [`direct::StridedTile`]: at most MR×NR,
    /// operands read in place. Each element is Σₚ summed in increasing p
    /// (fused where the path has FMA), then stored as round(α·Σ) + round(β·c).
    ///
    /// # Safety
    /// The CPU has the kernel's features; `t.m ≤ MR`, `t.n ≤ NR`; Ã holds
    /// `t.m × t.k` and B̃ `t.k × t.n` readable elements through their strides;
    /// C̃ is `t.m × t.n` through its strides, writable, readable when β ≠ 0, and
    /// not accessed concurrently.
    unsafe fn tile_strided(t: &direct::StridedTile);

    /// The most rows of [`MicroKernel::tile_transposed`] (0: the path has
    /// none, and the direct loops pack such a B̃ instead).
    const TRANSPOSED_ROWS: usize = 0;

    /// The strided tile of [`direct::StridedTile`] for a B̃ whose columns
    /// run along p, `b̃(p, j) = b[j·ldb + p]`, and at most
    /// [`MicroKernel::TRANSPOSED_ROWS`] rows: B̃ is transposed block by block
    /// in registers as the steps reach it, instead of packed. The same sums,
    /// stores and bits as [`MicroKernel::tile_strided`] on a packed B̃.
    ///
    /// # Safety
    /// As [`MicroKernel::tile_strided`], with `t.m ≤ TRANSPOSED_ROWS` and
    /// `b[j·ldb + p]` readable for j < t.n, p < t.k.
    unsafe fn tile_transposed(t: &direct::StridedTile) {
        let _ = t;
        unreachable!("this kernel path has no transposed tile (TRANSPOSED_ROWS = 0)")
    }
}

/// The base pointer of C, shared by tasks that write disjoint blocks.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);

// SAFETY: tasks only write disjoint strips of C (see `run`), and the `&mut`
// borrow of C outlives them.
unsafe impl Send for CPtr {}
// SAFETY: as above.
unsafe impl Sync for CPtr {}

impl CPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// One GEMM call, its operands as strided views.
struct Job<'a> {
    isa: Isa,
    alpha: f32,
    beta: f32,
    a: Strided<'a>,
    b: Strided<'a>,
    c: CPtr,
    ldc: usize,
    bias: Option<&'a [f32]>,
    act: Activation,
}

impl<'a> Strided<'a> {
    fn of(x: &MatRef<'a, f32>) -> Strided<'a> {
        match x.trans {
            Trans::No => Strided {
                data: x.data,
                rs: x.ld,
                cs: 1,
            },
            Trans::Yes => Strided {
                data: x.data,
                rs: 1,
                cs: x.ld,
            },
        }
    }
}

/// Splits C into strips of whole tiles and runs them on the rayon pool;
/// task t of `tasks` then also runs `extra(t, tasks)` (on one thread,
/// `extra(0, 1)` after the tiles).
///
/// The strips run along the dimension whose operand is larger, so the smaller
/// one is what each task packs again: n when m ≤ n (tasks share A), m
/// otherwise; along m whenever `rows` ([`Parallelism::RayonRows`]).
///
/// # Safety
/// As for [`MicroKernel::tile`], for the whole m×n matrix C of `job`, and the
/// views of `job` hold op(A) m×k, op(B) k×n and a bias of n.
unsafe fn run<K: MicroKernel>(
    job: &Job<'_>,
    m: usize,
    n: usize,
    k: usize,
    threads: usize,
    rows: bool,
    extra: Option<&(dyn Fn(usize, usize) + Sync)>,
) {
    // A thin last strip of columns runs on the direct loops as Cᵀ.
    let edge = thin_edge(job, m, n);
    let n = n - edge;
    // Rows i0..i0 + mb of C: the packed loops up to column n, then the edge.
    let rows_of = |i0: usize, mb: usize| {
        // SAFETY: forwarded; the two parts of the rows are disjoint.
        unsafe {
            run_block::<K>(job, i0, 0, mb, n, k);
            if edge > 0 {
                direct::run_edge::<K>(job, (n, edge), (i0, mb), k);
            }
        }
    };
    if threads <= 1 {
        rows_of(0, m);
        if let Some(extra) = extra {
            extra(0, 1);
        }
        return;
    }
    let split_n = m <= n && !rows;
    let (len, unit) = if split_n { (n, K::P.nr) } else { (m, K::P.mr) };
    // Two strips per thread balance the load of mid-sized products; above
    // about a GFLOP each strip is long enough on its own, and fewer strips
    // pack the shared operand fewer times (1024³ on two threads: 1.69× → 1.89×
    // one thread).
    let per_thread = if m.saturating_mul(n).saturating_mul(k) >= params::PAR_ONE_STRIP_FLOPS / 2 {
        1
    } else {
        2
    };
    // Whole tiles dealt out as evenly as possible (784 columns in strips of
    // 224 left the last task half idle: 1.63× one thread at 256×1024×784).
    let tiles = len.div_ceil(unit);
    let tasks = strips_of(per_thread * threads, tiles, threads);
    crate::parallel::for_each_task(tasks, |t| {
        let (lo, hi) = strip(t, tasks, len, unit, threads);
        // SAFETY: strips [lo, hi) are disjoint, so no two tasks touch the same
        // element of C; the rest is forwarded.
        unsafe {
            if split_n {
                run_block::<K>(job, 0, lo, m, hi - lo, k);
                if hi == n && edge > 0 {
                    direct::run_edge::<K>(job, (n, edge), (0, m), k);
                }
            } else {
                rows_of(lo, hi - lo)
            }
        }
        if let Some(extra) = extra {
            extra(t, tasks);
        }
    });
}

/// How many strips a product of `tiles` register tiles along its split
/// dimension is cut into: `want`, at most one a tile, and on two threads an
/// even number, so that [`strip`] can end the first thread's half at its
/// owned rows. (Three strips of 32 columns, a 96-unit layer at batch 64,
/// gave one thread two of them: 1.19× one thread's speed on two; two
/// strips of 48 columns, 1.5×.)
pub(crate) fn strips_of(want: usize, tiles: usize, threads: usize) -> usize {
    let tasks = want.min(tiles);
    if threads == 2 && tasks > 2 && !tasks.is_multiple_of(2) {
        tasks - 1
    } else {
        tasks
    }
}

/// Strip `t` of `tasks` over `0..len`, as `lo..hi`, in whole units of
/// `unit` (register tiles or blocks) dealt out as evenly as possible. With
/// two threads and an even number of tasks, the first half of the tasks
/// (which [`crate::parallel::for_each_task`] runs on the calling thread)
/// covers `0..owned_half(len)` and the rest the other rows
/// ([`crate::parallel::owned_half`]): a weight's rows, as the columns of its
/// forward product or the rows of its gradient, then stay with the thread
/// whose optimizer half updates them. (Dealt out as one run, 128 rows of 14
/// split at 70 and 784 at 392, against 64 and 384 owned: each W1 step sent
/// 716 cache lines of weights and gradients from one core to the other.)
/// Not where the owned rows are less than 7/16 of the run (34–63 rows, say
/// a batch of 40 samples: 16 of 40), which would leave one thread most of
/// the work. Which thread computes a strip changes no result.
pub(crate) fn strip(
    t: usize,
    tasks: usize,
    len: usize,
    unit: usize,
    threads: usize,
) -> (usize, usize) {
    let split = threads == 2 && tasks >= 2 && tasks.is_multiple_of(2);
    let (base, span, t, tasks) = match owned_split(len).filter(|_| split) {
        Some(owned) if t < tasks / 2 => (0, owned, t, tasks / 2),
        Some(owned) => (owned, len - owned, t - tasks / 2, tasks / 2),
        None => (0, len, t, tasks),
    };
    let units = span.div_ceil(unit);
    let lo = (t * units / tasks * unit).min(span);
    let hi = ((t + 1) * units / tasks * unit).min(span);
    (base + lo, base + hi)
}

/// Where [`strip`] ends the first thread's half of a run of `len`: at its
/// owned rows when it has some, at least 7/16 of the run.
fn owned_split(len: usize) -> Option<usize> {
    let owned = crate::parallel::owned_half(len);
    (owned > 0 && 16 * owned >= 7 * len).then_some(owned)
}

/// The threads an m×n×k product runs on under `par` (see [`gemm_loops`]).
/// The thresholds weigh a product by its time on one thread, so a product
/// of fewer than [`params::FEW_ROWS`] rows counts as that many: it reads
/// all of op(B) for a few steps per element, and one to five rows through a
/// 784×128 weight take 6.5–8.4 µs on one AVX-512 core, as long as a
/// 32-row product of twice the flops.
fn threads_for(par: Parallelism, m: usize, n: usize, k: usize) -> usize {
    let rows = m.max(params::FEW_ROWS);
    let work = rows.saturating_mul(n).saturating_mul(k).saturating_mul(2);
    match par {
        Parallelism::Sequential => 1,
        _ if work >= params::PAR_MIN_FLOPS => crate::parallel::pool_threads(),
        // Small products only on the threads that spin for work now.
        _ if may_split(rows, n, k) => crate::parallel::awake_threads(),
        _ => 1,
    }
}

/// Where the dot loops take over the last columns of a product, as
/// `(n0, r)`: columns n0..n0 + r = n go to [`dot::run`], the first n0 to the
/// tiles. On the x86 paths, when both operands run along k (the forward
/// product x·Wᵀ of a weight stored `(out, in)`) and n is no multiple of a
/// vector, the r = n mod lanes columns past the last whole vector would
/// take a vector of their own with r useful lanes; they go to the dot loops
/// by the rule that takes a whole narrow product there ([`dot::wins`] with
/// r for n). A 17-unit layer is 16 columns on the tiles and one on the dot
/// loops. Like [`dot::wins`], the choice depends on n, k and the layouts
/// alone, so a row of C has the same bits in any batch.
#[cfg(target_arch = "x86_64")]
fn dot_edge(job: &Job<'_>, n: usize, k: usize) -> (usize, usize) {
    if !matches!(job.isa, Isa::Avx2 | Isa::Avx512) {
        return (n, 0);
    }
    let l = lanes(job.isa);
    let r = n % l;
    if n > l && r > 0 && dot::wins(&job.a, &job.b, r, k, l) {
        (n - r, r)
    } else {
        (n, 0)
    }
}

/// How many last columns of a packed product to leave to
/// [`direct::run_edge`]: the columns past the last whole vector, when they
/// leave at least a tenth of the vectors along n empty (50 columns on
/// AVX-512 take 4 vectors, 22 % of their lanes idle: the weight gradient of
/// a 50-unit layer), op(A) can be read along its columns in place, and C has
/// rows enough to fill vectors along them (x86 paths only, whose edge tiles
/// are whole vectors). The split changes no bits.
fn thin_edge(job: &Job<'_>, m: usize, n: usize) -> usize {
    if !matches!(job.isa, Isa::Avx2 | Isa::Avx512) {
        return 0;
    }
    let l = lanes(job.isa);
    let r = n % l;
    let idle = if r == 0 { 0 } else { l - r };
    let wide = 10 * idle >= l * n.div_ceil(l);
    if r > 0 && n > l && wide && job.a.rs == 1 && m >= 4 * l {
        r
    } else {
        0
    }
}

/// Floats reserved in each pack buffer: the largest A block (AVX-512's
/// MC·KC); every B block and direct-path buffer is smaller.
const RESERVED_FLOATS: usize = params::AVX512.mc * params::AVX512.kc + 16;

/// Pool threads that have yet to run the reservation job of
/// [`reserve_pack_buffers`] (the jobs of one broadcast at most are queued at
/// a time).
static RESERVATIONS_PENDING: AtomicUsize = AtomicUsize::new(0);

/// Whether every thread of the global pool has run a reservation job (its
/// threads live as long as the process, and their buffers with them).
static GLOBAL_POOL_RESERVED: AtomicBool = AtomicBool::new(false);

/// Reserves the pack buffers of the calling thread and of every thread of
/// the current rayon pool at their full size, so that no later product
/// allocates — whichever thread happens to run it — and waits for no
/// thread. The room for them all (a few MB a thread, not counted in the
/// memory budget) is checked first against the address space left
/// ([`check_room_for_pack_buffers`]), so that a limit too tight for them is
/// an error, not an abort. The calling thread's pair is allocated now; each
/// pool thread's by a job queued on it ([`rayon::spawn_broadcast`]), which
/// an idle thread runs at once and a busy one as soon as it is free, before
/// it steals work from any other thread (rayon runs a thread's broadcasts
/// first), so before it takes part in the caller's products. The pairs are
/// all allocated by the caller (so no pool thread allocates, and the
/// address space they take is in use from the start); the jobs move them in.
///
/// A trainer must not wait for the pool's threads: one may be held for as
/// long as it takes by other work (in Python, another thread's `fit` whose
/// callback waits for this one), and a blocking broadcast to every thread
/// waited as long, for ever when that work waited for the caller.
///
/// A thread's buffers, once allocated, live as long as it does, so while
/// jobs of an earlier call are still queued (some thread is busy) no more
/// are: that thread will run the one queued for it. (The threads of another
/// pool, which such a call would have reached, allocate theirs at their
/// first product.) The buffers are allocated zeroed, so that their pages
/// are touched only when used, which only an infallible allocation does
/// without `unsafe`. Once every thread of the global pool has run its job,
/// a call from outside any pool (which the global pool's threads serve)
/// queues none: the trainers, evaluations and inference calls that follow
/// only check the room and reserve the caller's pair; so do those made on
/// a thread of another pool whose every thread has run its job.
///
/// # Errors
/// As [`crate::memory::check_address_space`].
pub fn reserve_pack_buffers() -> crate::Result<()> {
    check_room_for_pack_buffers()?;
    reserve_here();
    let global = rayon::current_thread_index().is_none();
    // Without threads the caller is the pool's only thread.
    let done = match global {
        true => GLOBAL_POOL_RESERVED.load(Ordering::Acquire),
        // A thread of another pool: the token its pool's last reservation
        // gave every thread counts down to 0 once all have run their job.
        false => POOL_RESERVATION.with(|t| {
            t.borrow()
                .as_ref()
                .is_some_and(|t| t.load(Ordering::Acquire) == 0)
        }),
    };
    if cfg!(target_family = "wasm") || done {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let queue = RESERVATIONS_PENDING
        .compare_exchange(0, threads, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    if queue {
        let token = std::sync::Arc::new(AtomicUsize::new(threads));
        // Every thread's pair is allocated here, on the calling thread, and
        // the jobs only move them in: a pool thread that allocates makes the
        // C library try to give it a heap of its own, and under an
        // address-space limit too tight for one, glibc tries again at each
        // of that thread's allocations, mapping 64 MB for a moment every
        // time, which fails any other thread's allocation made meanwhile
        // (about one `eval` in 60 under `ulimit -v 100000` aborted so).
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = (0..threads)
            .map(|_| (vec![0.0; RESERVED_FLOATS], vec![0.0; RESERVED_FLOATS]))
            .collect();
        let pairs = std::sync::Mutex::new(pairs);
        rayon::spawn_broadcast(move |_| {
            let pair = pairs.lock().ok().and_then(|mut p| p.pop());
            if let Some(pair) = pair {
                install_here(pair);
            }
            token.fetch_sub(1, Ordering::AcqRel);
            // Replacing an earlier token frees it; nothing is allocated.
            POOL_RESERVATION.with(|t| *t.borrow_mut() = Some(token.clone()));
            if RESERVATIONS_PENDING.fetch_sub(1, Ordering::AcqRel) == 1 && global {
                GLOBAL_POOL_RESERVED.store(true, Ordering::Release);
            }
        });
    }
    Ok(())
}

/// Makes `pair` (two zeroed buffers of [`RESERVED_FLOATS`]) this thread's
/// pack buffers where they are smaller and not in use further up the stack;
/// what is not kept is freed.
fn install_here(pair: (Vec<f32>, Vec<f32>)) {
    BUFFERS.with(|cell| {
        if let Ok(mut bufs) = cell.try_borrow_mut() {
            let (a, b) = &mut *bufs;
            for (v, new) in [(a, pair.0), (b, pair.1)] {
                if v.len() < new.len() {
                    *v = new;
                }
            }
        }
    });
}

/// How many pool threads have yet to run the reservation of their pack
/// buffers that [`reserve_pack_buffers`] queued (0 once every job queued
/// has run: from then on no product on those threads allocates). For
/// programs and tests that measure a steady state.
pub fn pack_buffers_pending() -> usize {
    RESERVATIONS_PENDING.load(Ordering::Acquire)
}

/// Allocates this thread's pack buffers at their full size if they are not
/// yet (buffers in use further up the stack are: [`aligned`] allocates them
/// whole).
fn reserve_here() {
    BUFFERS.with(|cell| {
        if let Ok(mut bufs) = cell.try_borrow_mut() {
            let (a, b) = &mut *bufs;
            for v in [a, b] {
                aligned(v, RESERVED_FLOATS - 16);
            }
        }
    });
}

/// Checks that the address space left holds a pair of packing buffers for
/// every thread of the pool and the calling one (the products allocate
/// them, infallibly, on first use), so that a limit too tight for them is
/// an error, not an abort. Nothing is allocated and no pool thread is
/// waited for: an evaluation may run while a pool thread is blocked (a
/// Python callback inside `fit` waiting for another thread's `encode`), and
/// a broadcast to every thread would wait for it for ever. The trainers,
/// evaluations and inference calls go on to [`reserve_pack_buffers`].
///
/// # Errors
/// As [`crate::memory::check_address_space`].
pub fn check_room_for_pack_buffers() -> crate::Result<()> {
    let threads = rayon::current_num_threads() + 1;
    crate::memory::check_address_space(
        "the threads' packing buffers for the matrix products",
        crate::memory::f32_bytes(threads * 2 * RESERVED_FLOATS),
    )
}

thread_local! {
    /// For a thread of a pool other than the global one: the count of its
    /// pool's threads that have yet to run the reservation job that gave it
    /// this token (0: every thread of the pool holds its pair, and a later
    /// [`reserve_pack_buffers`] from this pool allocates none).
    static POOL_RESERVATION: RefCell<Option<std::sync::Arc<AtomicUsize>>> = const { RefCell::new(None) };
    /// Reusable pack buffers of this thread: (A block, B block).
    static BUFFERS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The first `len` elements of `v` starting at a 64-byte boundary, growing `v`
/// when needed.
fn aligned(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len + 16 {
        // A fresh zeroed buffer (its pages are only touched when used) at
        // least as large as the largest block of any path, so a thread's
        // buffers are allocated once, at its first product.
        *v = vec![0.0; (len + 16).max(RESERVED_FLOATS)];
    }
    let off = v.as_ptr().align_offset(64).min(16);
    &mut v[off..off + len]
}

/// The blocked product for the `mb × nb` block of C at (i0, j0), on this
/// thread.
///
/// # Safety
/// As for [`run`], for that block.
unsafe fn run_block<K: MicroKernel>(
    job: &Job<'_>,
    i0: usize,
    j0: usize,
    mb: usize,
    nb: usize,
    k: usize,
) {
    with_buffers(|abuf, bbuf| {
        // SAFETY: forwarded.
        unsafe { block_loops::<K>(job, i0, j0, mb, nb, k, abuf, bbuf) }
    })
}

/// Runs `f` on this thread's pack buffers (A block, B block), or on fresh
/// ones if they are in use further up the stack.
fn with_buffers<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<f32>) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let (abuf, bbuf) = &mut *bufs;
            f(abuf, bbuf)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// The five loops of the blocked product over one block of C (see `params`),
/// with the epilogue applied to each register tile after its last k-block.
///
/// # Safety
/// As for [`run_block`].
#[allow(clippy::too_many_arguments)]
unsafe fn block_loops<K: MicroKernel>(
    job: &Job<'_>,
    i0: usize,
    j0: usize,
    mb: usize,
    nb: usize,
    k: usize,
    abuf: &mut Vec<f32>,
    bbuf: &mut Vec<f32>,
) {
    let Blocking { mr, nr, mc, kc, nc } = K::P.for_this_cpu();
    let abuf = aligned(abuf, mc * kc);
    let bbuf = aligned(bbuf, kc * nc);
    let has_epi = job.bias.is_some() || job.act != Activation::Linear;
    let kcb = k_block(k, kc);
    for ic in (0..mb).step_by(mc) {
        let mc_e = mc.min(mb - ic);
        for pc in (0..k).step_by(kcb) {
            let kc_e = kcb.min(k - pc);
            let beta = if pc == 0 { job.beta } else { 1.0 };
            let last = pc + kc_e == k;
            // SAFETY: the caller guarantees K's features.
            unsafe { K::pack_a(abuf, job.a.at(i0 + ic, pc), mc_e, kc_e) };
            for jc in (0..nb).step_by(nc) {
                let nc_e = nc.min(nb - jc);
                // SAFETY: the caller guarantees K's features.
                unsafe { K::pack_b(bbuf, job.b.at(pc, j0 + jc), kc_e, nc_e) };
                for ir in (0..mc_e).step_by(mr) {
                    let mr_e = mr.min(mc_e - ir);
                    let ap = &abuf[ir * kc_e..(ir + mr) * kc_e];
                    for jr in (0..nc_e).step_by(nr) {
                        let nr_e = nr.min(nc_e - jr);
                        let bp = &bbuf[jr * kc_e..(jr + nr) * kc_e];
                        let (row, col) = (i0 + ic + ir, j0 + jc + jr);
                        // SAFETY: (row, col) is inside C, so the offset is too.
                        let ct = unsafe { job.c.get().add(row * job.ldc + col) };
                        if mr_e == mr && nr_e == nr {
                            // SAFETY: a full tile inside C; the caller owns it.
                            unsafe { K::tile(kc_e, ap, bp, ct, job.ldc, job.alpha, beta) };
                        } else {
                            // An edge tile: only its m×n part is computed.
                            let t = direct::StridedTile {
                                m: mr_e,
                                n: nr_e,
                                k: kc_e,
                                a: ap.as_ptr(),
                                rsa: 1,
                                csa: mr,
                                b: bp.as_ptr(),
                                ldb: nr,
                                c: ct,
                                rsc: job.ldc,
                                csc: 1,
                                alpha: job.alpha,
                                beta,
                            };
                            // SAFETY: the packed panels hold MR×kc and
                            // kc×NR floats; the m×n part of the tile is inside
                            // C and owned by the caller.
                            unsafe { K::tile_strided(&t) };
                        }
                        if last && has_epi {
                            let bias = job.bias.map(|b| &b[col..col + nr_e]);
                            for i in 0..mr_e {
                                // SAFETY: the row of the tile is inside C and
                                // owned by this task; no other reference to it
                                // is alive.
                                let crow = unsafe {
                                    std::slice::from_raw_parts_mut(ct.add(i * job.ldc), nr_e)
                                };
                                super::elementwise::bias_act(job.isa, crow, bias, job.act);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The most rows of path `isa`'s transposed tile
/// ([`MicroKernel::TRANSPOSED_ROWS`]; 0 where it has none).
fn transposed_rows(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => <avx2::Avx2 as MicroKernel>::TRANSPOSED_ROWS,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => <avx512::Avx512 as MicroKernel>::TRANSPOSED_ROWS,
        _ => 0,
    }
}

/// Floats per vector of path `isa` (1 on the scalar path).
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => 1,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
        Isa::Neon | Isa::Simd128 => 4,
    }
}

/// The depth of the k-blocks of a product of depth `k` on a path whose
/// blocks hold at most `kc` steps: ⌈k/kc⌉ blocks of about the same depth
/// (784 → 392 + 392 at KC 512). Both loop structures cut k here, so the
/// partial sums of an element round at the same places in any batch.
pub(crate) fn k_block(k: usize, kc: usize) -> usize {
    k.div_ceil(k.div_ceil(kc))
}

/// Applies the epilogue `c ← act(c + bias[j])` to a finished row-major block.
pub(crate) fn apply_epilogue<T: Real>(c: &mut MatMut<'_, T>, epi: &Epilogue<'_, T>) {
    if epi.is_none() {
        return;
    }
    for i in 0..c.rows {
        let row = &mut c.data[i * c.ld..i * c.ld + c.cols];
        crate::kernels::elementwise::scalar::bias_act(row, epi.bias, epi.act);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A·I = A and I·B = B exactly through one packed tile, with sentinels
    /// beside the tile left alone.
    fn identity<K: MicroKernel>() {
        let Blocking { mr, nr, .. } = K::P;
        let val = |i: usize, j: usize| (i * 97 + j) as f32 * 0.5 - 7.0;
        let eye = |r: usize, c: usize| -> Vec<f32> {
            (0..r * c)
                .map(|x| if x / c == x % c { 1.0 } else { 0.0 })
                .collect()
        };
        // (op(A), op(B), k, expected value at (i, j)).
        let a1: Vec<f32> = (0..mr * nr).map(|x| val(x / nr, x % nr)).collect();
        let b2: Vec<f32> = (0..mr * nr).map(|x| val(x / nr, x % nr)).collect();
        for (a, b, k) in [(a1, eye(nr, nr), nr), (eye(mr, mr), b2, mr)] {
            let mut ap = vec![f32::NAN; mr * k];
            let mut bp = vec![f32::NAN; nr * k];
            let av = Strided {
                data: &a,
                rs: k,
                cs: 1,
            };
            let bv = Strided {
                data: &b,
                rs: nr,
                cs: 1,
            };
            let ldc = nr + 3;
            let mut c = vec![f32::NAN; mr * ldc];
            // SAFETY: the caller checked the kernel's features; C is an
            // mr × nr tile with stride ldc inside `c`.
            unsafe {
                K::pack_a(&mut ap, av, mr, k);
                K::pack_b(&mut bp, bv, k, nr);
                K::tile(k, &ap, &bp, c.as_mut_ptr(), ldc, 1.0, 0.0);
            }
            for i in 0..mr {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j < nr {
                        assert_eq!(got, val(i, j), "{:?} ({i},{j})", K::P);
                    } else {
                        assert!(got.is_nan(), "{:?}: sentinel overwritten", K::P);
                    }
                }
            }
        }
    }

    /// `pack_a` and `pack_b` lay out `pack::panels` exactly at depths around
    /// and far past the block sizes, whole and partial panels, from both
    /// layouts of each operand (a strided or a contiguous run per step p).
    fn packs_any_depth<K: MicroKernel>() {
        let Blocking { mr, nr, .. } = K::P;
        // X(i, p), exact in f32 for these sizes.
        let val = |i: usize, p: usize| (i * 20011 + p + 1) as f32;
        for depth in [1, 8, 17, 255, 1023, 1024, 1025, 2000, 3072, 16384] {
            for (w, rows) in [(mr, mr), (mr, 2 * mr + 1), (nr, nr - 1), (nr, nr + 3)] {
                for col_major in [false, true] {
                    // X is rows × depth; as op(B) (pack_b) it is used as
                    // Xᵀ, depth × rows.
                    let (rs, cs, len) = if col_major {
                        (1, rows + 2, depth * (rows + 2))
                    } else {
                        (depth + 3, 1, rows * (depth + 3))
                    };
                    let mut data = vec![f32::NAN; len];
                    for i in 0..rows {
                        for p in 0..depth {
                            data[i * rs + p * cs] = val(i, p);
                        }
                    }
                    let x = Strided {
                        data: &data,
                        rs,
                        cs,
                    };
                    let size = rows.div_ceil(w) * w * depth;
                    let mut dst = vec![f32::NAN; size + 7];
                    // SAFETY: the caller checked the kernel's features.
                    unsafe {
                        if w == mr {
                            K::pack_a(&mut dst, x, rows, depth);
                        } else {
                            K::pack_b(&mut dst, x.t(), depth, rows);
                        }
                    }
                    for (e, &got) in dst[..size].iter().enumerate() {
                        let (q, p, i) = (e / (w * depth), e % (w * depth) / w, e % w);
                        let r = q * w + i;
                        let want = if r < rows { val(r, p) } else { 0.0 };
                        assert!(
                            got == want,
                            "{:?} W {w} rows {rows} depth {depth} col-major {col_major}: \
                             panel {q} ({p}, {i}) = {got}, want {want}",
                            K::P
                        );
                    }
                    assert!(dst[size..].iter().all(|v| v.is_nan()), "{:?}", K::P);
                }
            }
        }
    }

    /// Whether to run a path: yes when available; otherwise it is reported
    /// as skipped, or fails the test when `SPARSE_AE_REQUIRE_ISA` lists it.
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    ))]
    fn runs(isa: Isa) -> bool {
        let run = isa.check_required().unwrap_or_else(|e| panic!("{e}"));
        if !run {
            crate::io::warn(format_args!("skipping {isa}: not available on this CPU"));
        }
        run
    }

    /// Seeded values uniform in [−1, 1) on a 2⁻²³ grid (xorshift32), so that
    /// sums in another order round differently.
    fn uniform(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        }
    }

    /// One tile kernel: runs a strided tile, on the B̃ (pointer and step) it
    /// is handed.
    type TileRun<'a> = &'a dyn Fn(&direct::StridedTile);

    /// Runs `want` and `got` on the m×n×k tile over an Ã of `a_rows` rows
    /// (`a`, read along its rows or its columns), each on its own copy of B̃,
    /// for C̃ as C and as Cᵀ, β = 0 over NaN and β = 2.5 over `fill()`: the
    /// whole buffer around C̃ must have the same bits (NaN as NaN) in both,
    /// and `got` must leave every float outside C̃ as it was.
    fn same_tile_bits(
        what: &str,
        (m, n, k, a_rows, nr): (usize, usize, usize, usize, usize),
        a: &[f32],
        want: (&[f32], usize, TileRun<'_>),
        got: (&[f32], usize, TileRun<'_>),
        fill: &mut dyn FnMut() -> f32,
    ) {
        for (rsa, csa) in [(k, 1), (1, a_rows)] {
            for (rsc, csc) in [(nr + 2, 1), (1, a_rows + 3)] {
                for beta in [0.0, 2.5] {
                    let len = (m - 1) * rsc + (n - 1) * csc + 1 + 8;
                    let c0: Vec<f32> = (0..len)
                        .map(|_| if beta == 0.0 { f32::NAN } else { fill() })
                        .collect();
                    let run = |(b, ldb, kernel): (&[f32], usize, TileRun<'_>)| {
                        let mut c = c0.clone();
                        kernel(&direct::StridedTile {
                            m,
                            n,
                            k,
                            a: a.as_ptr(),
                            rsa,
                            csa,
                            b: b.as_ptr(),
                            ldb,
                            c: c.as_mut_ptr(),
                            rsc,
                            csc,
                            alpha: 1.5,
                            beta,
                        });
                        c
                    };
                    let (w, g) = (run(want), run(got));
                    let at = format!("{what} m {m} n {n} k {k} rsa {rsa} rsc {rsc} β {beta}");
                    let same =
                        |x: &f32, y: &f32| x.to_bits() == y.to_bits() || x.is_nan() && y.is_nan();
                    for (x, (w, g)) in w.iter().zip(&g).enumerate() {
                        assert!(same(w, g), "{at}: [{x}] {g} vs {w}");
                    }
                    // One of the steps is 1 and the other exceeds the
                    // extent along the first, so x splits into (i, j).
                    let inside = |x: usize| {
                        let (i, j) = if csc == 1 {
                            (x / rsc, x % rsc)
                        } else {
                            (x % csc, x / csc)
                        };
                        i < m && j < n
                    };
                    for (x, (g, c)) in g.iter().zip(&c0).enumerate() {
                        assert!(
                            inside(x) || same(g, c),
                            "{at}: [{x}] written outside the tile"
                        );
                    }
                }
            }
        }
    }

    /// Every strided tile shape (1..=MR × 1..=NR), both layouts of Ã, C̃ as C
    /// and as Cᵀ, β = 0 over NaN and β = 2.5: the same values as the scalar
    /// twin, exactly (small integers make every sum exact), and nothing
    /// written outside the tile.
    fn strided_matches_scalar<K: MicroKernel>() {
        let Blocking { mr, nr, .. } = K::P;
        let k = 37;
        let int = |x: usize| ((x * 7919) % 9) as f32 - 4.0;
        let a: Vec<f32> = (0..mr * k).map(int).collect();
        let b: Vec<f32> = (0..k * (nr + 5)).map(|x| int(x + 3)).collect();
        let mut x = 0;
        let mut fill = || {
            x += 1;
            int(x)
        };
        // SAFETY: Ã (mr×k either way), B̃ (k×(nr+5)) and C̃ (its buffer
        // covers its last element) hold the tile.
        let twin = |t: &direct::StridedTile| unsafe { scalar::strided(t) };
        // SAFETY: as above; the caller checked the features.
        let path = |t: &direct::StridedTile| unsafe { K::tile_strided(t) };
        for m in 1..=mr {
            for n in 1..=nr {
                same_tile_bits(
                    &format!("{:?}", K::P),
                    (m, n, k, mr, nr),
                    &a,
                    (&b, nr + 5, &twin),
                    (&b, nr + 5, &path),
                    &mut fill,
                );
            }
        }
    }

    /// [`MicroKernel::tile_transposed`] (B̃ read as W:
    /// `b̃(p, j) = w[j·ldw + p]`) gives [`MicroKernel::tile_strided`]'s bits
    /// on the same B̃ stored along its rows, for every row count it takes,
    /// every width up to NR, depths around the transposed block (a vector),
    /// both layouts of Ã and of C̃, β = 0 over NaN and β ≠ 0, and writes
    /// nothing outside C̃. Random values, so a sum in another order shows.
    fn transposed_matches_strided<K: MicroKernel>() {
        let (rows, nr) = (K::TRANSPOSED_ROWS, K::P.nr);
        if rows == 0 {
            return;
        }
        let lanes = nr / 2;
        let mut rnd = uniform(0x2545_f491);
        // SAFETY: Ã (rows×k either way), B̃ (k×nr along its rows) and C̃
        // (its buffer covers its last element) hold the tile; the caller
        // checked the features.
        let strided = |t: &direct::StridedTile| unsafe { K::tile_strided(t) };
        // SAFETY: as above, with B̃ as W (nr rows of ldw ≥ k) and
        // m ≤ TRANSPOSED_ROWS.
        let transposed = |t: &direct::StridedTile| unsafe { K::tile_transposed(t) };
        for k in [1, lanes - 1, lanes, lanes + 1, 3 * lanes + 5] {
            let ldw = k + 3;
            let a: Vec<f32> = (0..rows * k).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..nr * ldw).map(|_| rnd()).collect();
            // The same B̃ along its rows, for the strided tile.
            let mut bt = vec![0.0; k * nr];
            for p in 0..k {
                for j in 0..nr {
                    bt[p * nr + j] = w[j * ldw + p];
                }
            }
            for m in 1..=rows {
                for n in 1..=nr {
                    same_tile_bits(
                        &format!("{:?}", K::P),
                        (m, n, k, rows, nr),
                        &a,
                        (&bt, nr, &strided),
                        (&w, ldw, &transposed),
                        &mut rnd,
                    );
                }
            }
        }
    }

    /// Runs a generic check on every kernel path: the scalar one, and each
    /// SIMD path this CPU has (reporting the others).
    macro_rules! on_every_kernel {
        ($check:ident) => {{
            $check::<scalar::Scalar>();
            #[cfg(target_arch = "x86_64")]
            {
                if runs(Isa::Avx2) {
                    $check::<avx2::Avx2>();
                }
                if runs(Isa::Avx512) {
                    $check::<avx512::Avx512>();
                }
            }
            #[cfg(target_arch = "aarch64")]
            if runs(Isa::Neon) {
                $check::<neon::Neon>();
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            if runs(Isa::Simd128) {
                $check::<simd128::Simd128>();
            }
        }};
    }

    /// `rows` runs of k random floats, `ld` apart, NaN between them.
    #[cfg(target_arch = "x86_64")]
    fn padded_rows(rnd: &mut impl FnMut() -> f32, rows: usize, k: usize, ld: usize) -> Vec<f32> {
        (0..rows * ld)
            .map(|x| if x % ld < k { rnd() } else { f32::NAN })
            .collect()
    }

    /// A product whose operands both run along k and whose n is no multiple
    /// of a vector puts its last n mod lanes columns on the dot loops: those
    /// columns are the scalar twin's sums (with the bias) bit for bit, the
    /// others the tiles' chains (the packed loops' bits), on one thread and
    /// two, and nothing outside C is written.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn dot_edges_take_the_last_columns() {
        use crate::kernels::{Activation, Epilogue, MatMut, MatRef};
        let mut rnd = uniform(0x51ab_c0de);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (isa, lanes) in [(Isa::Avx2, 8), (Isa::Avx512, 16)] {
            if !runs(isa) {
                continue;
            }
            let shapes = [
                (1, 784, 17),
                (6, 784, 20),
                (14, 784, 33),
                (37, 300, 500),
                (150, 784, 100),
                (2400, 1100, 23),
            ];
            // The last shape's edge (7 columns) is split between the threads.
            const { assert!(2 * 2400 * 1100 * 7 >= params::PAR_MIN_FLOPS) };
            for (m, k, n) in shapes {
                let (lda, ldb, ldc) = (k + 3, k + 5, n + 2);
                let a = padded_rows(&mut rnd, m, k, lda);
                let b = padded_rows(&mut rnd, n, k, ldb);
                let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
                let av = MatRef::new(&a, m, k).with_ld(lda);
                let bv = MatRef::new(&b, n, k).with_ld(ldb).t();
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.75)] {
                    let c0: Vec<f32> = (0..m * ldc)
                        .map(|x| if x % ldc >= n { f32::NAN } else { rnd() })
                        .collect();
                    let run = |par: Parallelism, loops: Loops| {
                        let mut c = c0.clone();
                        pool.install(|| {
                            let cv = MatMut::new(&mut c, m, n).with_ld(ldc);
                            let epi = Epilogue::bias_act(&bias, Activation::Linear);
                            gemm_loops(isa, par, loops, alpha, av, bv, beta, cv, epi)
                        });
                        c
                    };
                    let chains = run(Parallelism::Sequential, Loops::Packed);
                    let job = Job {
                        isa,
                        alpha,
                        beta,
                        a: Strided::of(&av),
                        b: Strided::of(&bv),
                        c: CPtr(std::ptr::null_mut()),
                        ldc,
                        bias: None,
                        act: Activation::Linear,
                    };
                    let (n0, r) = dot_edge(&job, n, k);
                    assert!(r > 0 && n0 + r == n && n0 % lanes == 0, "{isa} {m}×{k}×{n}");
                    for par in [Parallelism::Sequential, Parallelism::Rayon] {
                        let c = run(par, Loops::Auto);
                        for i in 0..m {
                            for j in 0..ldc {
                                let got = c[i * ldc + j];
                                if j >= n {
                                    assert!(got.is_nan(), "{isa}: C[{i}][{j}] written");
                                    continue;
                                }
                                let want = if j < n0 {
                                    chains[i * ldc + j]
                                } else {
                                    let (ra, rb) = (&a[i * lda..][..k], &b[j * ldb..][..k]);
                                    let old = c0[i * ldc + j];
                                    dot::dot_twin(lanes, ra, rb, alpha, beta, old) + bias[j]
                                };
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{isa} {m}×{k}×{n} α {alpha} β {beta} {par:?}: C[{i}][{j}] {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Products the dot loops take (C a few columns wide, both operands
    /// along k, any k, one row of A or many, padded strides, β = 0 over NaN
    /// and β ≠ 0) give the scalar twin's sums bit for bit on every x86 path
    /// (random values, so the order of the sum shows), on one thread and
    /// split between two (the last shape is large enough to split), and
    /// write nothing outside C.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn dot_loops_match_twin() {
        use crate::kernels::{Epilogue, MatMut, MatRef};
        let mut rnd = uniform(0x9e37_79b9);
        for (isa, lanes) in [(Isa::Avx2, 8), (Isa::Avx512, 16)] {
            if !runs(isa) {
                continue;
            }
            let shapes = [
                (1, 784, 6),
                (5, 784, 7),
                (1, 20, 1),
                (37, 1000, 5),
                (100, 33, 1),
                (1200, 2048, 7),
            ];
            const { assert!(2 * 1200 * 2048 * 7 >= params::PAR_MIN_FLOPS) };
            for (m, k, n) in shapes {
                for (alpha, beta) in [(1.0, 0.0), (-0.5, 0.75)] {
                    let (lda, ldb, ldc) = (k + 3, k + 5, n + 2);
                    let a = padded_rows(&mut rnd, m, k, lda);
                    let b = padded_rows(&mut rnd, n, k, ldb);
                    let c0: Vec<f32> = (0..m * ldc)
                        .map(|x| {
                            if beta == 0.0 || x % ldc >= n {
                                f32::NAN
                            } else {
                                rnd()
                            }
                        })
                        .collect();
                    let av = MatRef::new(&a, m, k).with_ld(lda);
                    let bv = MatRef::new(&b, n, k).with_ld(ldb).t();
                    let (sa, sb) = (Strided::of(&av), Strided::of(&bv));
                    assert!(dot::wins(&sa, &sb, n, k, lanes), "{isa} {m}×{k}×{n}");
                    for par in [Parallelism::Sequential, Parallelism::Rayon] {
                        let mut c = c0.clone();
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(2)
                            .build()
                            .unwrap();
                        pool.install(|| {
                            let cv = MatMut::new(&mut c, m, n).with_ld(ldc);
                            gemm_loops(
                                isa,
                                par,
                                Loops::Auto,
                                alpha,
                                av,
                                bv,
                                beta,
                                cv,
                                Epilogue::NONE,
                            )
                        });
                        for i in 0..m {
                            for j in 0..ldc {
                                let (got, old) = (c[i * ldc + j], c0[i * ldc + j]);
                                if j >= n {
                                    assert!(got.is_nan(), "{isa}: C[{i}][{j}] written");
                                    continue;
                                }
                                let (ra, rb) = (&a[i * lda..][..k], &b[j * ldb..][..k]);
                                let want = dot::dot_twin(lanes, ra, rb, alpha, beta, old);
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{isa} {m}×{k}×{n} α {alpha} β {beta} {par:?}: C[{i}][{j}] {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn strided_tiles_match_scalar() {
        on_every_kernel!(strided_matches_scalar);
    }

    #[test]
    fn transposed_tiles_match_strided() {
        on_every_kernel!(transposed_matches_strided);
    }

    #[test]
    fn packing_of_any_depth() {
        on_every_kernel!(packs_any_depth);
    }

    #[test]
    fn microkernels_identity() {
        on_every_kernel!(identity);
    }

    /// Strips cover 0..len in order without gaps or overlaps, in whole
    /// units from the start of their half; on two threads the first half of
    /// the tasks ends at the rows the first thread owns (W1's 128 and 784
    /// rows of 14-row tiles at 64 and 384, not 70 and 392) unless that
    /// gives one thread much more than half, and otherwise the whole run is
    /// dealt out as one.
    #[test]
    fn strips_end_at_the_owned_half() {
        for len in [1, 5, 31, 32, 33, 40, 47, 63, 64, 100, 128, 129, 784, 1000] {
            for unit in [1, 4, 6, 14, 16, 32] {
                for (tasks, threads) in [(1, 1), (2, 2), (4, 2), (3, 2), (6, 3), (8, 4)] {
                    let strips: Vec<_> = (0..tasks)
                        .map(|t| strip(t, tasks, len, unit, threads))
                        .collect();
                    let at =
                        |s: &[(usize, usize)]| format!("{len} {unit} {tasks} {threads}: {s:?}");
                    assert_eq!(strips[0].0, 0, "{}", at(&strips));
                    assert_eq!(strips[tasks - 1].1, len, "{}", at(&strips));
                    for w in strips.windows(2) {
                        assert_eq!(w[0].1, w[1].0, "{}", at(&strips));
                    }
                    let owned = crate::parallel::owned_half(len);
                    let split =
                        threads == 2 && tasks % 2 == 0 && owned > 0 && 16 * owned >= 7 * len;
                    if split {
                        assert_eq!(strips[tasks / 2 - 1].1, owned, "{}", at(&strips));
                    }
                    if threads == 2 && tasks % 2 == 0 {
                        // Neither thread gets more than 9/16 of the run.
                        let first = strips[tasks / 2 - 1].1;
                        assert!(16 * first <= 9 * len + 16 * unit, "{}", at(&strips));
                        assert!(16 * (len - first) <= 9 * len + 16 * unit, "{}", at(&strips));
                    }
                    for &(lo, hi) in &strips {
                        assert!(lo <= hi, "{}", at(&strips));
                        let base = if split && lo >= owned { owned } else { 0 };
                        assert!((lo - base) % unit == 0 || lo == len, "{}", at(&strips));
                    }
                }
            }
        }
        assert_eq!(strip(1, 4, 128, 14, 2), (28, 64));
        assert_eq!(strip(2, 4, 784, 14, 2), (384, 580));
    }

    /// On two threads a product is cut into an even number of strips, so
    /// that each thread's half ends at its owned rows: 96 columns in tiles
    /// of 32 (three tiles) as two strips of 48, not three of 32 of which
    /// one thread would run two. Elsewhere, as many as wanted, at most one
    /// a tile.
    #[test]
    fn strips_are_even_on_two_threads() {
        for tiles in 1..40 {
            for want in [1, 2, 4, 8] {
                let t = strips_of(want, tiles, 2);
                assert!(t >= 1 && t <= want.min(tiles), "{want} {tiles}: {t}");
                assert!(t == 1 || t.is_multiple_of(2), "{want} {tiles}: {t}");
                assert!(t + 1 >= want.min(tiles), "{want} {tiles}: {t}");
                assert_eq!(strips_of(want, tiles, 3), want.min(tiles));
            }
        }
        let tasks = strips_of(4, 96usize.div_ceil(32), 2);
        let halves: Vec<_> = (0..tasks).map(|t| strip(t, tasks, 96, 32, 2)).collect();
        assert_eq!(halves, [(0, 48), (48, 96)]);
    }

    #[test]
    fn aligned_buffers() {
        let mut v = Vec::new();
        for len in [1, 100, 5000] {
            let s = aligned(&mut v, len);
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % 64, 0);
        }
    }
}
