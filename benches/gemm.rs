//! GEMM throughput: `C ← op(A)·op(B)` for the shapes of a training step and
//! some squares, every available path beside `matrixmultiply::sgemm`.
//!
//! Throughput is `Elements(2·m·n·k)` (one multiply and one add per term), so
//! criterion's "elem/s" reads as FLOP/s. Group `<shape>/1t` runs on a rayon
//! pool of one thread; `<shape>/all` on the global pool. matrixmultiply is
//! built without its `threading` feature, so it is single-threaded and appears
//! in the `1t` groups only. `fma_peak` measures one core's FMA peak on each
//! SIMD path the CPU has (AVX-512 and AVX2, printed in GFLOP/s), the ceiling
//! the `1t` numbers are read against. The first lines name the CPU, its
//! caches and the blocking each path uses on it.
//!
//! `<isa>-packed` and `<isa>-direct` force one loop structure on the fastest
//! path (`Loops`), to place the crossover `params::DIRECT_SMALL`.
//!
//! `GEMM_BEST_OF=<n>` also prints a best-of-n table (see `best_of_table`);
//! `GEMM_BEST_OF=200 cargo bench --bench gemm -- fma_peak` prints only it and
//! the peak. `GEMM_BEST_OF_TSV=<file>` writes the same table as TSV (with
//! each shape's m, k, n and transposes), which `benches/compare_blas.sh`
//! sets beside numpy's BLAS timed the same way.
//!
//! Quick run: `cargo bench --bench gemm -- --warm-up-time 0.3
//! --measurement-time 1 --sample-size 10 --noplot <filter>`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
#[cfg(target_arch = "x86_64")]
use sparse_ae::kernels::CpuInfo;
use sparse_ae::kernels::gemm::{Loops, gemm_loops};
use sparse_ae::kernels::{Epilogue, Isa, MatMut, MatRef, Parallelism};
use sparse_ae::parallel::{KeepAwake, Policy};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A benchmarked product: op(A) is m×k, op(B) is k×n.
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
}

const fn shape(name: &'static str, m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Shape {
    Shape {
        name,
        m,
        k,
        n,
        ta,
        tb,
    }
}

/// Batch 32, 784 inputs, 128 hidden units; weights stored (out, in).
const SHAPES: &[Shape] = &[
    // Encoder forward x·W₁ᵀ: (32×784)·(128×784)ᵀ.
    shape("enc_fwd_32x784x128_ABt", 32, 784, 128, false, true),
    // Decoder forward h·W₂ᵀ: (32×128)·(784×128)ᵀ.
    shape("dec_fwd_32x128x784_ABt", 32, 128, 784, false, true),
    // Backward to the hidden layer dz₂·W₂: (32×784)·(784×128).
    shape("dec_bwd_32x784x128_AB", 32, 784, 128, false, false),
    // Backward to the input dz₁·W₁: (32×128)·(128×784).
    shape("enc_bwd_32x128x784_AB", 32, 128, 784, false, false),
    // Weight gradient dW₁ = dz₁ᵀ·x: (32×128)ᵀ·(32×784).
    shape("enc_dw_128x32x784_AtB", 128, 32, 784, true, false),
    // Weight gradient dW₂ = dz₂ᵀ·h: (32×784)ᵀ·(32×128).
    shape("dec_dw_784x32x128_AtB", 784, 32, 128, true, false),
    // Batch 32 into a 1024-wide layer, forward and weight gradient.
    shape("w1024_fwd_32x784x1024_ABt", 32, 784, 1024, false, true),
    shape("w1024_dw_1024x32x784_AtB", 1024, 32, 784, true, false),
    // Batch 64 and 128: where the direct and the packed loops cross over.
    shape("b64_fwd_64x784x1024_ABt", 64, 784, 1024, false, true),
    shape("b64_bwd_64x1024x784_AB", 64, 1024, 784, false, false),
    shape("b128_fwd_128x784x1024_ABt", 128, 784, 1024, false, true),
    // The other products of one half (128 samples) of a batch-256 step of
    // the 784-1024-784 model: decoder forward, backward to the code, and
    // both weight gradients.
    shape("b128_dec_fwd_128x1024x784_ABt", 128, 1024, 784, false, true),
    shape("b128_bwd_128x784x1024_AB", 128, 784, 1024, false, false),
    shape("b128_dw2_784x128x1024_AtB", 784, 128, 1024, true, false),
    shape("b128_dw1_1024x128x784_AtB", 1024, 128, 784, true, false),
    // Batch 256: forward, backward, weight gradient of a 784 → 1024 layer.
    shape("b256_fwd_256x784x1024_ABt", 256, 784, 1024, false, true),
    shape("b256_dw_1024x256x784_AtB", 1024, 256, 784, true, false),
    shape("256x784x1024", 256, 784, 1024, false, false),
    shape("256x1024x784", 256, 1024, 784, false, false),
    shape("1024x256x784", 1024, 256, 784, false, false),
    shape("sq256", 256, 256, 256, false, false),
    shape("sq512", 512, 512, 512, false, false),
    shape("sq1024", 1024, 1024, 1024, false, false),
    shape("sq2048", 2048, 2048, 2048, false, false),
    // Any width, any batch: sides that are no multiple of a tile.
    shape("odd_fwd_100x300x500_ABt", 100, 300, 500, false, true),
    shape("odd_257x1023x781_AB", 257, 1023, 781, false, false),
    shape("odd_dw_783x200x50_AtB", 783, 200, 50, true, false),
    shape("odd_fwd_1000x784x17_ABt", 1000, 784, 17, false, true),
    // Into a code of 10 units (narrower than a vector: the dot loops), at
    // batch 32 and 7.
    shape("code10_fwd_32x784x10_ABt", 32, 784, 10, false, true),
    shape("code10_fwd_7x784x10_ABt", 7, 784, 10, false, true),
    // A few samples through wider layers (encode of 1 and of 5 samples).
    shape("one_fwd_1x784x32_ABt", 1, 784, 32, false, true),
    shape("five_fwd_5x784x128_ABt", 5, 784, 128, false, true),
];

/// Deterministic data in [−1, 1).
fn filled(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Shape {
    fn operands(&self) -> Operands {
        Operands {
            a: filled(self.m * self.k, 1),
            b: filled(self.k * self.n, 2),
            c: vec![0.0; self.m * self.n],
        }
    }

    fn views<'a>(&self, a: &'a [f32], b: &'a [f32]) -> (MatRef<'a, f32>, MatRef<'a, f32>) {
        let av = if self.ta {
            MatRef::new(a, self.k, self.m).t()
        } else {
            MatRef::new(a, self.m, self.k)
        };
        let bv = if self.tb {
            MatRef::new(b, self.n, self.k).t()
        } else {
            MatRef::new(b, self.k, self.n)
        };
        (av, bv)
    }

    fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }

    fn run(&self, isa: Isa, par: Parallelism, loops: Loops, ops: &mut Operands) {
        let (av, bv) = self.views(&ops.a, &ops.b);
        let cv = MatMut::new(&mut ops.c, self.m, self.n);
        gemm_loops(isa, par, loops, 1.0, av, bv, 0.0, cv, Epilogue::NONE);
    }

    fn run_matrixmultiply(&self, ops: &mut Operands) {
        let (rsa, csa) = if self.ta { (1, self.m) } else { (self.k, 1) };
        let (rsb, csb) = if self.tb { (1, self.k) } else { (self.n, 1) };
        // SAFETY: the strides describe op(A) m×k and op(B) k×n inside their
        // vectors, and C is a dense m×n vector.
        unsafe {
            matrixmultiply::sgemm(
                self.m,
                self.k,
                self.n,
                1.0,
                ops.a.as_ptr(),
                rsa as isize,
                csa as isize,
                ops.b.as_ptr(),
                rsb as isize,
                csb as isize,
                0.0,
                ops.c.as_mut_ptr(),
                self.n as isize,
                1,
            );
        }
    }
}

fn bench_shapes(c: &mut Criterion) {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for s in SHAPES {
        let mut ops = s.operands();
        // The scalar path only where it finishes in reasonable time.
        let isas: Vec<Isa> = Isa::available()
            .into_iter()
            .filter(|&i| i != Isa::Scalar || s.flops() <= 1 << 28)
            .collect();

        let mut g = c.benchmark_group(format!("{}/1t", s.name));
        g.throughput(Throughput::Elements(s.flops()));
        for &isa in &isas {
            g.bench_function(BenchmarkId::from_parameter(isa.name()), |bch| {
                one.install(|| {
                    bch.iter(|| s.run(isa, Parallelism::Rayon, Loops::Auto, black_box(&mut ops)))
                })
            });
        }
        // Both loop structures forced, on the fastest path.
        let best = *isas.last().expect("the scalar path is always available");
        for (name, loops) in [("packed", Loops::Packed), ("direct", Loops::Direct)] {
            let id = format!("{}-{name}", best.name());
            g.bench_function(BenchmarkId::from_parameter(id), |bch| {
                one.install(|| {
                    bch.iter(|| s.run(best, Parallelism::Rayon, loops, black_box(&mut ops)))
                })
            });
        }
        g.bench_function(BenchmarkId::from_parameter("matrixmultiply"), |bch| {
            bch.iter(|| s.run_matrixmultiply(black_box(&mut ops)))
        });
        g.finish();

        let mut g = c.benchmark_group(format!("{}/all", s.name));
        g.throughput(Throughput::Elements(s.flops()));
        for &isa in &isas {
            g.bench_function(BenchmarkId::from_parameter(isa.name()), |bch| {
                bch.iter(|| s.run(isa, Parallelism::Rayon, Loops::Auto, black_box(&mut ops)))
            });
        }
        g.finish();
    }
}

/// Independent accumulators in the AVX-512 peak loop: enough to cover FMA
/// latency (4) times the FMA ports (2) three times over.
#[cfg(target_arch = "x86_64")]
const PEAK_ACC: usize = 24;

/// Independent accumulators in the AVX2 peak loop: 12 of the 16 ymm
/// registers, 1.5× the 8 in flight that two pipes of latency 4 need (Zen 3:
/// two 256-bit FMA pipes; Intel: two ports).
#[cfg(target_arch = "x86_64")]
const PEAK_ACC_AVX2: usize = 12;

/// `iters` rounds of PEAK_ACC_AVX2 independent 8-lane FMAs:
/// 2·8·PEAK_ACC_AVX2·iters flops, nothing else in the loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop_avx2(iters: u64, x: f32) -> f32 {
    use std::arch::x86_64::*;
    let (va, vb) = (_mm256_set1_ps(x), _mm256_set1_ps(0.999_999));
    let mut acc = [_mm256_setzero_ps(); PEAK_ACC_AVX2];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm256_set1_ps(i as f32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, vb, va);
        }
    }
    let mut s = _mm256_setzero_ps();
    for a in acc {
        s = _mm256_add_ps(s, a);
    }
    let h = _mm256_hadd_ps(s, s);
    let h = _mm256_hadd_ps(h, h);
    _mm_cvtss_f32(_mm_add_ss(
        _mm256_castps256_ps128(h),
        _mm256_extractf128_ps::<1>(h),
    ))
}

/// `iters` rounds of PEAK_ACC independent 16-lane FMAs: 2·16·PEAK_ACC·iters
/// flops, nothing else in the loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_loop(iters: u64, x: f32) -> f32 {
    use std::arch::x86_64::*;
    let (va, vb) = (_mm512_set1_ps(x), _mm512_set1_ps(0.999_999));
    let mut acc = [_mm512_setzero_ps(); PEAK_ACC];
    for (i, a) in acc.iter_mut().enumerate() {
        *a = _mm512_set1_ps(i as f32);
    }
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, vb, va);
        }
    }
    let mut s = _mm512_setzero_ps();
    for a in acc {
        s = _mm512_add_ps(s, a);
    }
    _mm512_reduce_add_ps(s)
}

/// Best-of-200 GFLOP/s of `run`, which does `flops` flops, printed and
/// benchmarked under `fma_peak/<name>`.
#[cfg(target_arch = "x86_64")]
fn peak_of(c: &mut Criterion, name: &str, flops: u64, run: &dyn Fn() -> f32) {
    let mut best = Duration::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        black_box(run());
        best = best.min(t.elapsed());
    }
    eprintln!(
        "fma_peak: {name} single-core FMA peak ≈ {:.1} GFLOP/s (best of 200 runs of {flops} flops)",
        flops as f64 / best.as_secs_f64() / 1e9
    );
    let mut g = c.benchmark_group("fma_peak");
    g.throughput(Throughput::Elements(flops));
    g.bench_function(name, |b| b.iter(|| black_box(run())));
    g.finish();
}

#[cfg(target_arch = "x86_64")]
fn fma_peak(c: &mut Criterion) {
    eprintln!("cpu: {}", CpuInfo::get().summary());
    for isa in Isa::available() {
        eprintln!(
            "blocking {isa}: {}",
            sparse_ae::kernels::gemm::blocking_summary(isa)
        );
    }
    const ITERS: u64 = 1 << 16;
    if Isa::Avx512.is_available() {
        // SAFETY: avx512f is available (checked above).
        let run = || unsafe { fma_loop(black_box(ITERS), black_box(0.5)) };
        peak_of(c, "avx512", 2 * 16 * PEAK_ACC as u64 * ITERS, &run);
    } else {
        eprintln!("fma_peak: no AVX-512 on this CPU");
    }
    if Isa::Avx2.is_available() {
        // SAFETY: avx2 and fma are available (checked above).
        let run = || unsafe { fma_loop_avx2(black_box(ITERS), black_box(0.5)) };
        peak_of(c, "avx2", 2 * 8 * PEAK_ACC_AVX2 as u64 * ITERS, &run);
    } else {
        eprintln!("fma_peak: no AVX2+FMA on this CPU");
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_c: &mut Criterion) {}

/// Untimed calls before each best-of set. A pool thread woken at the start
/// of a set may be placed on the CPU of the thread that woke it and share it
/// for 10–40 ms (measured on the AMD EPYC VMs, whose kernel packs woken
/// threads onto busy vCPUs): a set of thirty short products then ran at one
/// thread's speed in 5–15 % of sets, 0 of 200 after 50 ms of calls
/// (docs/benchmarks.md, "Waking a thread"). Training keeps its threads
/// awake for the whole run, so the sets measure that steady state.
/// `benches/blas_time.py` warms numpy's BLAS up the same way.
const WARM_UP: Duration = Duration::from_millis(50);

/// With `GEMM_BEST_OF=<n>` set: prints, for every shape, the best of n timed
/// runs (wall clock) of the active path's `Loops::Auto` on 1 thread, of
/// matrixmultiply, their ratio, and the 2-thread speed-up (two threads with
/// the second kept awake, as in training), each set after [`WARM_UP`] of
/// untimed calls. On a machine shared
/// with other jobs the fastest run is the one least disturbed, so these ratios
/// are steadier than criterion's means.
fn best_of_table(_c: &mut Criterion) {
    let Some(n) = std::env::var("GEMM_BEST_OF")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    let pool = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    let (one, two) = (pool(1), pool(2));
    let isa = Isa::active();
    let mut tsv = String::from("name\tm\tk\tn\tta\ttb\tisa\tours_1t\tmatrixmultiply_1t\tours_2t\n");
    eprintln!(
        "{:30} {:>9} {:>9} {:>6} {:>9} {:>6}",
        "best of runs, GFLOP/s",
        format!("{}-1t", isa.name()),
        "mm-1t",
        "ratio",
        "2t",
        "2t/1t"
    );
    for s in SHAPES {
        let mut ops = s.operands();
        let runs = n.min(((40e9 / s.flops() as f64) as usize).max(3));
        // Best GFLOP/s of `runs` calls of `f`, timed one by one, after
        // `WARM_UP` of untimed calls.
        let best = |ops: &mut Operands, f: &dyn Fn(&mut Operands)| {
            let warm = Instant::now();
            while warm.elapsed() < WARM_UP {
                f(ops);
            }
            let mut t = Duration::MAX;
            for _ in 0..runs {
                let start = Instant::now();
                f(ops);
                t = t.min(start.elapsed());
            }
            s.flops() as f64 / t.as_secs_f64() / 1e9
        };
        let ours = |o: &mut Operands| s.run(isa, Parallelism::Rayon, Loops::Auto, o);
        let one_t = one.install(|| best(&mut ops, &ours));
        let mm = best(&mut ops, &|o| s.run_matrixmultiply(o));
        // Two threads as training runs them: inside a scope whose other
        // thread is kept awake (`parallel::KeepAwake`, as `fit` does).
        let two_t = two.install(|| {
            rayon::scope(|_| {
                let awake = KeepAwake::with_policy(Policy::Split);
                awake.beat();
                best(&mut ops, &|o: &mut Operands| {
                    awake.beat();
                    ours(o)
                })
            })
        });
        let (ours, par) = (one_t, two_t);
        eprintln!(
            "{:30} {ours:9.1} {mm:9.1} {:6.2} {par:9.1} {:6.2}",
            s.name,
            ours / mm,
            par / ours
        );
        tsv.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{isa}\t{ours:.2}\t{mm:.2}\t{par:.2}\n",
            s.name, s.m, s.k, s.n, s.ta as u8, s.tb as u8
        ));
    }
    if let Some(path) = std::env::var_os("GEMM_BEST_OF_TSV") {
        std::fs::write(&path, tsv).expect("GEMM_BEST_OF_TSV names a writable file");
    }
}

criterion_group!(benches, fma_peak, best_of_table, bench_shapes);
criterion_main!(benches);
