//! Every GEMM path against the triple-loop oracle run in f64.
//!
//! Tolerance: for an element with inner dimension K,
//! `|c − c_ref| ≤ 2·γ_{K+3}·(|α|·Σₚ|a_ip||b_pj| + |β||c₀| + |bias_j|) + tiny`,
//! where `γ_n = n·u/(1 − n·u)` and u = 2⁻²⁴ is the f32 unit roundoff: the
//! standard bound for a K-term dot product, plus one rounding each for α, β·c,
//! the sum and the bias, doubled for safety. `tiny` = 1e-30 covers exact zeros;
//! a nonlinear activation is 1-Lipschitz and adds 1e-6 for its own f32 error.
//!
//! A path the CPU lacks prints "skipping <isa>"; when `SPARSE_AE_REQUIRE_ISA`
//! lists it the test fails instead, so a machine known to have a path cannot
//! silently skip it.

mod common;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::gemm::{Loops, gemm_loops, reference};
use sparse_ae::kernels::{Activation, Epilogue, Isa, MatMut, MatRef, Parallelism, gemm_with};
#[cfg(not(target_family = "wasm"))]
use sparse_ae::parallel::KeepAwake;

every_isa!(
    random_shapes,
    edge_shapes,
    large_shapes,
    non_finite_inputs,
    epilogues,
    matches_matrixmultiply,
    wide_layers,
    rows_keep_their_bits_in_any_batch,
    thin_edges,
);
// WebAssembly (wasm32-wasip1) runs one thread: no pool of two to compare.
#[cfg(not(target_family = "wasm"))]
every_isa!(threads_bit_identical);

/// A stored operand: `rows × cols` inside a slice with row stride `ld`, every
/// element outside the view a NaN sentinel.
struct Operand {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    ld: usize,
    trans: bool,
}

impl Operand {
    /// op(X) of shape `r × c` (stored transposed when `trans`), entries
    /// uniform in [−1, 1), `pad` extra columns of sentinel per stored row.
    fn random(rng: &mut StdRng, r: usize, c: usize, trans: bool, pad: usize) -> Operand {
        let (rows, cols) = if trans { (c, r) } else { (r, c) };
        let ld = cols + pad;
        let mut data = vec![f32::NAN; rows * ld + pad];
        for i in 0..rows {
            for j in 0..cols {
                data[i * ld + j] = rng.random_range(-1.0f32..1.0);
            }
        }
        Operand {
            data,
            rows,
            cols,
            ld,
            trans,
        }
    }

    fn view(&self) -> MatRef<'_, f32> {
        let v = MatRef::new(&self.data, self.rows, self.cols).with_ld(self.ld);
        if self.trans { v.t() } else { v }
    }

    fn map64(&self, f: impl Fn(f32) -> f64) -> Vec<f64> {
        self.data.iter().map(|&v| f(v)).collect()
    }

    fn view64<'a>(&self, data: &'a [f64]) -> MatRef<'a, f64> {
        let v = MatRef::new(data, self.rows, self.cols).with_ld(self.ld);
        if self.trans { v.t() } else { v }
    }
}

/// One product to check.
struct Case {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
    pad: usize,
    act: Option<Activation>,
    loops: Loops,
}

impl Case {
    fn plain(m: usize, n: usize, k: usize, ta: bool, tb: bool) -> Case {
        Case {
            m,
            n,
            k,
            ta,
            tb,
            alpha: 1.0,
            beta: 0.0,
            pad: 0,
            act: None,
            loops: Loops::Auto,
        }
    }
}

/// Runs `case` on `isa` and checks it against the f64 oracle: values within
/// the documented bound, NaN exactly where the oracle has NaN, and every
/// sentinel around the C view untouched.
fn check(isa: Isa, par: Parallelism, rng: &mut StdRng, case: &Case) {
    check_loops(isa, par, rng, case, &[case.loops]);
}

/// [`check`] on each of `loops` in turn (instead of `case.loops`), with the
/// same operands and one evaluation of the oracle.
fn check_loops(isa: Isa, par: Parallelism, rng: &mut StdRng, case: &Case, loops: &[Loops]) {
    let Case { m, n, k, .. } = *case;
    let a = Operand::random(rng, m, k, case.ta, case.pad);
    let b = Operand::random(rng, k, n, case.tb, case.pad);
    let ldc = n + case.pad;
    let mut c0 = vec![f32::NAN; m * ldc + case.pad];
    if case.beta != 0.0 {
        for i in 0..m {
            for j in 0..n {
                c0[i * ldc + j] = rng.random_range(-1.0f32..1.0);
            }
        }
    }
    let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let epi = match case.act {
        Some(act) => Epilogue::bias_act(&bias[..], act),
        None => Epilogue::NONE,
    };

    // The oracle in f64, and Σ|a||b| for the bound.
    let (a64, b64) = (a.map64(f64::from), b.map64(f64::from));
    let (aa, ba) = (a.map64(|v| v.abs() as f64), b.map64(|v| v.abs() as f64));
    let mut want: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
    let mut mag = vec![0.0f64; want.len()];
    let bias64: Vec<f64> = bias.iter().map(|&v| v as f64).collect();
    let epi64 = match case.act {
        Some(act) => Epilogue::bias_act(&bias64[..], act),
        None => Epilogue::NONE,
    };
    reference::gemm(
        case.alpha as f64,
        a.view64(&a64),
        b.view64(&b64),
        case.beta as f64,
        MatMut::new(&mut want, m, n).with_ld(ldc),
        epi64,
    );
    reference::gemm(
        1.0,
        a.view64(&aa),
        b.view64(&ba),
        0.0,
        MatMut::new(&mut mag, m, n).with_ld(ldc),
        Epilogue::NONE,
    );
    let u = 2f64.powi(-24);
    let kk = (k + 3) as f64;
    let gamma = 2.0 * kk * u / (1.0 - kk * u);
    let act_slack = match case.act {
        Some(Activation::Sigmoid | Activation::Tanh) => 1e-6,
        _ => 0.0,
    };
    for &structure in loops {
        let mut c = c0.clone();
        let cv = MatMut::new(&mut c, m, n).with_ld(ldc);
        gemm_loops(
            isa,
            par,
            structure,
            case.alpha,
            a.view(),
            b.view(),
            case.beta,
            cv,
            epi,
        );
        for i in 0..c.len() {
            let (r, col) = (i / ldc, i % ldc);
            if r >= m || col >= n {
                assert!(c[i].is_nan(), "{isa}: sentinel at {i} overwritten");
                continue;
            }
            let got = c[i] as f64;
            let w = want[i];
            let mut bound = case.alpha.abs() as f64 * mag[i] + 1e-30;
            if case.beta != 0.0 {
                bound += (case.beta as f64 * c0[i] as f64).abs();
            }
            if case.act.is_some() {
                bound += bias64[col].abs();
            }
            let tol = gamma * bound + act_slack;
            assert!(
                (got - w).abs() <= tol || (got.is_nan() && w.is_nan()) || got == w,
                "{isa} {structure:?}: m {m} n {n} k {k} ta {} tb {} α {} β {} act {:?}: C({r},{col}) = {got}, want {w} (tol {tol:e})",
                case.ta,
                case.tb,
                case.alpha,
                case.beta,
                case.act,
            );
        }
    }
}

const SCALES: [f32; 3] = [0.0, 1.0, 2.5];

/// Every loop structure: the shape-based choice and both forced.
const LOOPS: [Loops; 3] = [Loops::Auto, Loops::Packed, Loops::Direct];

/// 60 seeded shapes with every dimension in 1..=70, random transposes, α, β
/// and row padding (strided views with NaN sentinels around them), each on
/// every loop structure.
fn random_shapes(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for t in 0..3 * 60 {
        let case = Case {
            m: rng.random_range(1..=70),
            n: rng.random_range(1..=70),
            k: rng.random_range(1..=70),
            ta: rng.random(),
            tb: rng.random(),
            alpha: SCALES[rng.random_range(0..3)],
            beta: SCALES[rng.random_range(0..3)],
            pad: rng.random_range(0..4),
            act: None,
            loops: LOOPS[t % 3],
        };
        check(isa, Parallelism::Sequential, &mut rng, &case);
    }
}

/// Dimensions at and around every tile size (MR, NR of all paths ± 1),
/// 0, 1 and primes, with all four transpose combinations, on every loop
/// structure.
fn edge_shapes(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let dims = [0, 1, 3, 5, 7, 13, 15, 17, 31, 33, 47];
    let ks = [0, 1, 2, 17, 385];
    let mut t = 0usize;
    for &m in &dims {
        for &n in &dims {
            for &k in &ks {
                t += 1;
                let mut case = Case::plain(m, n, k, t % 2 == 1, (t / 2) % 2 == 1);
                case.alpha = SCALES[t % 3];
                case.beta = SCALES[(t / 3) % 3];
                case.pad = t % 3;
                for loops in LOOPS {
                    case.loops = loops;
                    check(isa, Parallelism::Sequential, &mut rng, &case);
                }
            }
        }
    }
}

/// Products whose last columns fill a fraction of a vector (50 columns on
/// AVX-512 or AVX2: the weight gradient of a 50-unit layer), op(A) stored
/// transposed and C tall, so that the packed loops leave those columns to
/// the direct loops as Cᵀ: against the oracle, with α, β, a bias and an
/// activation, on every loop structure and on the pool in strips of columns
/// and of rows.
fn thin_edges(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0009);
    let acts = [None, Some(Activation::Relu), Some(Activation::Sigmoid)];
    for (t, &(m, n, k)) in [(783, 50, 200), (300, 66, 100), (64, 17, 30), (130, 49, 513)]
        .iter()
        .enumerate()
    {
        for tb in [false, true] {
            let mut case = Case::plain(m, n, k, true, tb);
            case.alpha = SCALES[1 + t % 2];
            case.beta = SCALES[t % 3];
            case.pad = t % 2;
            case.act = acts[t % 3];
            for loops in LOOPS {
                case.loops = loops;
                check(isa, Parallelism::Sequential, &mut rng, &case);
            }
            for par in [Parallelism::Rayon, Parallelism::RayonRows] {
                case.loops = Loops::Auto;
                check(isa, par, &mut rng, &case);
            }
        }
    }
}

/// Shapes spanning several cache blocks in every dimension, on the pool.
fn large_shapes(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    for (t, &(ta, tb)) in [(false, false), (false, true), (true, false), (true, true)]
        .iter()
        .enumerate()
    {
        let mut case = Case::plain(300, 257, 513, ta, tb);
        case.alpha = SCALES[1 + t % 2];
        case.beta = SCALES[t % 3];
        case.pad = t;
        for loops in LOOPS {
            case.loops = loops;
            check(isa, Parallelism::Rayon, &mut rng, &case);
        }
    }
    // Row strips (m > n) on the pool, and a product past one MC block.
    check(
        isa,
        Parallelism::Rayon,
        &mut rng,
        &Case::plain(901, 40, 100, false, true),
    );
}

/// NaN and ±Inf in A reach exactly the rows of C the oracle says.
fn non_finite_inputs(isa: Isa) {
    let (m, n, k) = (23, 37, 29);
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    let a = Operand::random(&mut rng, m, k, false, 0);
    let b = Operand::random(&mut rng, k, n, false, 0);
    let mut ad = a.data.clone();
    ad[3 * k + 5] = f32::NAN;
    ad[11 * k + 7] = f32::INFINITY;
    ad[17 * k] = f32::NEG_INFINITY;
    let mut c = vec![0.0f32; m * n];
    let av = MatRef::new(&ad, m, k);
    gemm_with(
        isa,
        Parallelism::Sequential,
        1.0,
        av,
        b.view(),
        0.0,
        MatMut::new(&mut c, m, n),
        Epilogue::NONE,
    );
    let mut want = vec![0.0f32; m * n];
    reference::gemm(
        1.0,
        av,
        b.view(),
        0.0,
        MatMut::new(&mut want, m, n),
        Epilogue::NONE,
    );
    for i in 0..m * n {
        if want[i].is_finite() {
            assert!(c[i].is_finite(), "{isa}: C[{i}] = {}", c[i]);
        } else if want[i].is_nan() {
            assert!(c[i].is_nan(), "{isa}: C[{i}] = {}, want NaN", c[i]);
        } else {
            assert_eq!(c[i], want[i], "{isa}: C[{i}]");
        }
    }
    assert!((0..n).all(|j| c[3 * n + j].is_nan()));
    assert!((0..n).all(|j| c[11 * n + j].is_infinite()));
}

/// Bias plus each activation, fused into the product, on several shapes.
fn epilogues(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);
    let acts = [
        Activation::Linear,
        Activation::Relu,
        Activation::LeakyRelu(0.1),
        Activation::Sigmoid,
        Activation::Tanh,
    ];
    for (t, &act) in acts.iter().enumerate() {
        for &(m, n, k) in &[(1, 1, 1), (15, 33, 40), (32, 128, 784), (70, 65, 400)] {
            let mut case = Case::plain(m, n, k, t % 2 == 0, t % 3 == 0);
            case.act = Some(act);
            case.beta = SCALES[t % 3];
            case.alpha = SCALES[1 + t % 2];
            case.pad = t % 2;
            for loops in LOOPS {
                case.loops = loops;
                check(isa, Parallelism::Sequential, &mut rng, &case);
            }
        }
        // On the pool, with a small side (the direct path, as C and as Cᵀ)
        // and more columns than one block of B̃ holds: the epilogue reaches
        // every block of every strip exactly once.
        for &(m, n, k) in &[(32, 2100, 300), (2100, 24, 300), (9, 1500, 700)] {
            let mut case = Case::plain(m, n, k, t % 2 == 1, t % 3 == 1);
            case.act = Some(act);
            case.beta = SCALES[(t + 1) % 3];
            check(isa, Parallelism::Rayon, &mut rng, &case);
        }
    }
}

/// The same product on 1 and 2 rayon threads (and sequentially) gives the
/// same bits, for column strips and for row strips, on every loop structure
/// (the small shapes run on the direct path as C and as Cᵀ). The two-thread
/// runs keep the other thread awake, so the batch-32 shapes are split too
/// (strips down to a single tile). The packed and the direct loops give the
/// same bits as well (the same k-blocks).
#[cfg(not(target_family = "wasm"))]
fn threads_bit_identical(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0006);
    for &(m, n, k, ta, tb) in &[
        (256, 1024, 784, false, false),
        (1000, 130, 600, true, true),
        (64, 1000, 300, false, false),
        (48, 700, 400, false, true),
        (900, 200, 32, true, false),
        (32, 128, 784, false, true),
        (32, 784, 128, false, false),
        (32, 128, 784, false, false),
        (784, 128, 32, true, false),
        (128, 784, 32, true, false),
        (32, 60, 1100, false, true),
        (40, 33, 2000, false, false),
        // Small batches of wide layers (see `wide_layers`): a single column
        // tile whose rows are split, with and without a packed operand.
        (33, 20, 16384, false, true),
        (7, 3072, 2000, true, true),
        (7, 784, 2000, false, true),
        (2000, 784, 7, true, false),
        // Thin last columns, left to the direct loops (see `thin_edges`).
        (783, 50, 200, true, false),
        (300, 66, 100, true, true),
        // An odd-width layer: three tiles of columns as two strips, and
        // the dot edge's strips run with the tiles'.
        (64, 100, 784, false, true),
        // A few samples through a layer, split from `FEW_ROWS` on.
        (1, 128, 784, false, true),
        (5, 128, 784, false, true),
        (3, 200, 784, false, false),
        (2, 784, 128, true, false),
    ] {
        let a = Operand::random(&mut rng, m, k, ta, 1);
        let b = Operand::random(&mut rng, k, n, tb, 0);
        let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let run = |threads: usize, par: Parallelism, loops: Loops| {
            let mut c = c0.clone();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let awake = KeepAwake::new();
                let t = std::time::Instant::now();
                while threads > 1 && !sparse_ae::parallel::awake() {
                    assert!(t.elapsed().as_secs() < 10, "no spinner started");
                    awake.beat();
                    std::thread::yield_now();
                }
                gemm_loops(
                    isa,
                    par,
                    loops,
                    1.5,
                    a.view(),
                    b.view(),
                    0.5,
                    MatMut::new(&mut c, m, n),
                    Epilogue::bias_act(&bias, Activation::Relu),
                )
            });
            c
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Both loop structures cut k at the same blocks: the same bits.
        assert!(
            bits(&run(1, Parallelism::Sequential, Loops::Packed))
                == bits(&run(1, Parallelism::Sequential, Loops::Direct)),
            "{isa} {m}×{n}×{k}: the packed and the direct loops differ"
        );
        for loops in LOOPS {
            let one = run(1, Parallelism::Rayon, loops);
            let two = run(2, Parallelism::Rayon, loops);
            let seq = run(2, Parallelism::Sequential, loops);
            let rows = run(2, Parallelism::RayonRows, loops);
            assert!(
                bits(&one) == bits(&two),
                "{isa} {loops:?} {m}×{n}×{k}: 1 vs 2 threads differ"
            );
            assert!(
                bits(&one) == bits(&rows),
                "{isa} {loops:?} {m}×{n}×{k}: strips of rows differ"
            );
            assert!(
                bits(&one) == bits(&seq),
                "{isa} {loops:?} {m}×{n}×{k}: sequential differs"
            );
        }
    }
}

/// A second oracle: `matrixmultiply::sgemm`, within the same bound.
fn matches_matrixmultiply(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0007);
    for &(m, n, k, ta, tb) in &[
        (32, 128, 784, false, true),
        (32, 784, 128, false, false),
        (784, 128, 32, true, false),
        (67, 45, 93, true, true),
    ] {
        let a = Operand::random(&mut rng, m, k, ta, 0);
        let b = Operand::random(&mut rng, k, n, tb, 0);
        let mut c = vec![f32::NAN; m * n];
        gemm_with(
            isa,
            Parallelism::Rayon,
            1.0,
            a.view(),
            b.view(),
            0.0,
            MatMut::new(&mut c, m, n),
            Epilogue::NONE,
        );
        let (rsa, csa) = if ta { (1, a.ld) } else { (a.ld, 1) };
        let (rsb, csb) = if tb { (1, b.ld) } else { (b.ld, 1) };
        let mut want = vec![0.0f32; m * n];
        // SAFETY: the strides describe op(A) m×k and op(B) k×n inside their
        // vectors, and C is a dense m×n vector.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                a.data.as_ptr(),
                rsa as isize,
                csa as isize,
                b.data.as_ptr(),
                rsb as isize,
                csb as isize,
                0.0,
                want.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        // Both sides are within γ_K·Σ|a||b| of the exact value.
        let u = 2f32.powi(-24);
        for i in 0..m {
            for j in 0..n {
                let mag: f32 = (0..k)
                    .map(|p| (a.view().at(i, p) * b.view().at(p, j)).abs())
                    .sum();
                let tol = 4.0 * (k as f32 + 3.0) * u * mag + 1e-30;
                let (g, w) = (c[i * n + j], want[i * n + j]);
                assert!((g - w).abs() <= tol, "{isa}: ({i},{j}) {g} vs {w}");
            }
        }
    }
}

/// Layer widths at and far past the block sizes (KC = 256 and 512, the
/// 1024-float runs of the packing) with the batch sizes of a small step:
/// every product of a dense layer between a `w`-wide side and a narrow one
/// (`p` = 5 columns, a single register tile, or 33) at batch `b`: the
/// forward pass and input gradient, (b × p × w) and (b × w × p), and the
/// weight gradients, (p × w × b) and (w × p × b), each in all four
/// transposition cases (dense layers use NT, NN and TN, tied and
/// convolutional ones the rest), α and β varied, on every loop structure.
/// Width 16384 is run at batches 1 and 7 only, to keep the test short.
fn wide_layers(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0008);
    let mut t = 0usize;
    for w in [1023, 1024, 1025, 2000, 3072, 16384] {
        for b in [1, 7, 31, 33] {
            if w > 4096 && b > 7 {
                continue;
            }
            let p = [5, 33][(w + b) % 2];
            for (m, n, k) in [(b, p, w), (b, w, p), (p, w, b), (w, p, b)] {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    t += 1;
                    let mut case = Case::plain(m, n, k, ta, tb);
                    case.alpha = SCALES[1 + t % 2];
                    case.beta = SCALES[t % 3];
                    case.pad = t % 3;
                    check_loops(isa, Parallelism::Rayon, &mut rng, &case, &LOOPS);
                }
            }
        }
    }
}

/// A sample's row of a product through a layer (op(A) = the batch, one
/// sample per row; op(B) a weight, stored either way) has the same bits
/// whatever batch it is computed in: alone, among a few, among many, at
/// any depth and width. Micro-batches rely on it (a batch top-k selection
/// over micro-batches is the whole batch's only if every code is).
fn rows_keep_their_bits_in_any_batch(isa: Isa) {
    let mut rng = StdRng::seed_from_u64(0x5eed_0009);
    let batch = 150;
    for &(k, n) in &[
        (20, 48),
        (784, 10),
        (784, 32),
        (784, 128),
        (300, 500),
        (1100, 64),
        (128, 784),
        (784, 17),
        (128, 100),
    ] {
        for tb in [false, true] {
            let a = Operand::random(&mut rng, batch, k, false, 0);
            let b = Operand::random(&mut rng, k, n, tb, 0);
            let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let rows = |lo: usize, m: usize| {
                let mut c = vec![0.0f32; m * n];
                let av = MatRef::new(&a.data[lo * k..(lo + m) * k], m, k);
                gemm_with(
                    isa,
                    Parallelism::Sequential,
                    1.0,
                    av,
                    b.view(),
                    0.0,
                    MatMut::new(&mut c, m, n),
                    Epilogue::bias_act(&bias, Activation::Linear),
                );
                c
            };
            let whole = rows(0, batch);
            for (lo, m) in [(0, 1), (5, 1), (3, 7), (10, 33), (40, 49), (20, 100)] {
                let part = rows(lo, m);
                for (i, (g, w)) in part.chunks(n).zip(whole[lo * n..].chunks(n)).enumerate() {
                    let same = g.iter().zip(w).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "{isa} k {k} n {n} tb {tb}: row {} of {m} differs from the batch of {batch}",
                        lo + i
                    );
                }
            }
        }
    }
}
