//! Elementwise kernel throughput, in elements per second, on every path this
//! CPU has, at the sizes of one training step: n = 32·784 (a batch of 32
//! MNIST images) and n = 256·1024 (a batch of 256 through a 1024-wide layer);
//! the optimizers at n = 218,000 (about the deep model's parameter count).
//!
//! Group `kernel[/activation]`, id `isa/n`. Kernels that would drift their own
//! input into a different regime when repeated (activations, derivatives)
//! get a fresh copy per call via `iter_batched_ref`, outside the timing.
//!
//! Quick run: `cargo bench --bench kernels -- --warm-up-time 0.2
//! --measurement-time 0.5 --sample-size 10 --noplot`.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::elementwise::{self as ew, NoiseStreams};
use sparse_ae::kernels::{Activation, AdamHyper, Isa};
use sparse_ae::rng::Rng;
use std::hint::black_box;

/// (rows, cols) of the two step shapes.
const SHAPES: [(usize, usize); 2] = [(32, 784), (256, 1024)];
/// Parameters updated by one optimizer step.
const PARAMS: usize = 218_000;

fn data(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut r = StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// Runs `f(isa, n)` as benchmark `isa/n` of group `name` for every path and size.
fn sweep(
    c: &mut Criterion,
    name: &str,
    sizes: &[usize],
    mut f: impl FnMut(&mut Bencher, Isa, usize),
) {
    let mut g = c.benchmark_group(name);
    for &n in sizes {
        g.throughput(Throughput::Elements(n as u64));
        for isa in Isa::available() {
            g.bench_function(BenchmarkId::new(isa.name(), n), |b| f(b, isa, n));
        }
    }
    g.finish();
}

type Bencher<'a> = criterion::Bencher<'a, criterion::measurement::WallTime>;

fn step_sizes() -> Vec<usize> {
    SHAPES.iter().map(|&(r, c)| r * c).collect()
}

fn activations(c: &mut Criterion) {
    let acts = [
        Activation::Relu,
        Activation::LeakyRelu(0.01),
        Activation::Sigmoid,
        Activation::Tanh,
    ];
    for act in acts {
        sweep(
            c,
            &format!("act_forward/{}", act.name()),
            &step_sizes(),
            |b, isa, n| {
                let z = data(n, -6.0, 6.0, 1);
                b.iter_batched_ref(
                    || z.clone(),
                    |x| ew::act_forward(isa, act, x),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        sweep(
            c,
            &format!("act_backward/{}", act.name()),
            &step_sizes(),
            |b, isa, n| {
                let mut h = data(n, -6.0, 6.0, 2);
                ew::act_forward(Isa::Scalar, act, &mut h);
                let dh = data(n, -1.0, 1.0, 3);
                b.iter_batched_ref(
                    || dh.clone(),
                    |d| ew::act_backward(isa, act, &h, d),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    // The GEMM epilogue: one call per row of C.
    for act in [Activation::Relu, Activation::Sigmoid] {
        sweep(
            c,
            &format!("bias_act/{}", act.name()),
            &step_sizes(),
            |b, isa, n| {
                let cols = if n == 32 * 784 { 784 } else { 1024 };
                let z = data(n, -6.0, 6.0, 4);
                let bias = data(cols, -1.0, 1.0, 5);
                b.iter_batched_ref(
                    || z.clone(),
                    |x| {
                        for row in x.chunks_exact_mut(cols) {
                            ew::bias_act(isa, row, Some(&bias), act);
                        }
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
}

fn rows_and_sums(c: &mut Criterion) {
    let cols_of = |n: usize| if n == 32 * 784 { 784 } else { 1024 };
    sweep(c, "bias_add", &step_sizes(), |b, isa, n| {
        let cols = cols_of(n);
        let mut x = data(n, -1.0, 1.0, 6);
        let bias = data(cols, -1e-3, 1e-3, 7);
        b.iter(|| ew::bias_add(isa, &mut x, cols, &bias))
    });
    sweep(c, "col_sum", &step_sizes(), |b, isa, n| {
        let cols = cols_of(n);
        let x = data(n, -1.0, 1.0, 8);
        let mut out = vec![0.0; cols];
        b.iter(|| ew::col_sum(isa, black_box(&x), cols, &mut out))
    });
    sweep(c, "bce_logits", &step_sizes(), |b, isa, n| {
        let z = data(n, -8.0, 8.0, 9);
        let x = data(n, 0.0, 1.0, 10);
        let mut dz = vec![0.0; n];
        b.iter(|| ew::bce_logits(isa, black_box(&z), &x, Some(&mut dz), 1.0 / 32.0))
    });
    sweep(c, "sq_err", &step_sizes(), |b, isa, n| {
        let y = data(n, 0.0, 1.0, 11);
        let x = data(n, 0.0, 1.0, 12);
        let mut dy = vec![0.0; n];
        b.iter(|| ew::sq_err(isa, black_box(&y), &x, Some(&mut dy), 1.0 / 32.0))
    });
    sweep(c, "l1", &step_sizes(), |b, isa, n| {
        let h = data(n, -1.0, 1.0, 13);
        let mut dh = vec![0.0; n];
        b.iter(|| ew::l1(isa, black_box(&h), Some(&mut dh), 1e-6))
    });
    sweep(c, "sum_sq", &step_sizes(), |b, isa, n| {
        let x = data(n, -1.0, 1.0, 14);
        b.iter(|| ew::sum_sq(isa, black_box(&x)))
    });
    sweep(c, "axpy", &step_sizes(), |b, isa, n| {
        let x = data(n, -1.0, 1.0, 15);
        let mut y = data(n, -1.0, 1.0, 16);
        b.iter(|| ew::axpy(isa, 1e-3, &x, &mut y))
    });
    sweep(c, "u8_to_f32_scaled", &step_sizes(), |b, isa, n| {
        let mut r = StdRng::seed_from_u64(17);
        let src: Vec<u8> = (0..n).map(|_| r.random()).collect();
        let mut dst = vec![0.0; n];
        b.iter(|| ew::u8_to_f32_scaled(isa, black_box(&src), &mut dst, 1.0 / 255.0))
    });
}

fn optimizers(c: &mut Criterion) {
    // The update this CPU uses, then the other one (`AdamHyper::divide`):
    // 4,096 values run from L1, so the two differ only in their arithmetic.
    let chosen = AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, 10);
    for (name, divide) in [
        ("adam_step", chosen.divide),
        (
            if chosen.divide {
                "adam_step_reciprocal"
            } else {
                "adam_step_divide"
            },
            !chosen.divide,
        ),
    ] {
        sweep(c, name, &[4096, PARAMS], |b, isa, n| {
            let mut p = data(n, -0.1, 0.1, 18);
            let g = data(n, -1.0, 1.0, 19);
            let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
            let h = AdamHyper { divide, ..chosen };
            b.iter(|| ew::adam_step(isa, &mut p, black_box(&g), &mut m, &mut v, &h))
        });
    }
    sweep(c, "sgd_momentum_step", &[PARAMS], |b, isa, n| {
        let mut p = data(n, -0.1, 0.1, 20);
        let g = data(n, -1.0, 1.0, 21);
        let mut vel = vec![0.0; n];
        b.iter(|| ew::sgd_momentum_step(isa, &mut p, black_box(&g), &mut vel, 0.01, 0.9))
    });
}

/// Denoising input noise on a batch of 32 images (n = 32·784), per path,
/// including the seeding of the 16 streams from the noise generator that
/// `apply_noise` does on every call; `noise/gaussian/ziggurat` is the former
/// one-draw-at-a-time loop (`rand_distr`'s ziggurat on xoshiro256++), for
/// comparison.
fn noise(c: &mut Criterion) {
    let n = 32 * 784;
    let x = data(n, 0.0, 1.0, 9);
    let mut out = vec![0.0f32; n];
    let mut rng = Rng::new(1);
    let mut g = c.benchmark_group("noise");
    g.throughput(Throughput::Elements(n as u64));
    for isa in Isa::available() {
        g.bench_function(BenchmarkId::new("gaussian", isa.name()), |b| {
            b.iter(|| {
                let mut st = NoiseStreams::from_rng(&mut rng);
                ew::gaussian_noise(isa, &mut st, black_box(&x), &mut out, 0.5)
            })
        });
        g.bench_function(BenchmarkId::new("masking", isa.name()), |b| {
            b.iter(|| {
                let mut st = NoiseStreams::from_rng(&mut rng);
                ew::mask_noise(isa, &mut st, black_box(&x), &mut out, 0.3)
            })
        });
    }
    g.bench_function(BenchmarkId::new("gaussian", "ziggurat"), |b| {
        b.iter(|| {
            for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                *o = (v + 0.5 * rng.normal() as f32).clamp(0.0, 1.0);
            }
        })
    });
    g.finish();
}

/// The transposes of a TopK step (768 → 16384 → 768, see `nn::sparse_topk`)
/// on one thread, per path: `decoder` copies the 768×16384 decoder weight
/// transposed in strips of 64 of its columns; `tiles` writes 64×64 tiles
/// of a weight gradient transposed into 64 rows of 16,384 (a stride of 64 KiB).
fn transposes(c: &mut Criterion) {
    use sparse_ae::kernels::sparse;
    use sparse_ae::kernels::{MatMut, MatRef};
    let (rows, cols, strip) = (768, 16384, 64);
    let w = data(rows * cols, -1.0, 1.0, 11);
    let mut wt = vec![0.0f32; rows * cols];
    let tile = data(strip * strip, -1.0, 1.0, 12);
    let mut g = c.benchmark_group("transpose");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    for isa in Isa::available() {
        g.bench_function(BenchmarkId::new("decoder_768x16384", isa.name()), |b| {
            b.iter(|| {
                for (k, dst) in wt.chunks_mut(strip * rows).enumerate() {
                    let src = MatRef::new(&w[k * strip..], rows, strip).with_ld(cols);
                    sparse::transpose(isa, src, MatMut::new(dst, strip, rows));
                }
            })
        });
    }
    g.throughput(Throughput::Elements((strip * cols) as u64));
    for isa in Isa::available() {
        g.bench_function(BenchmarkId::new("tiles_64x64_ld16384", isa.name()), |b| {
            b.iter(|| {
                for j0 in (0..cols).step_by(strip) {
                    let dst = MatMut::new(&mut wt[j0..], strip, strip).with_ld(cols);
                    sparse::transpose(isa, MatRef::new(black_box(&tile), strip, strip), dst);
                }
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    activations,
    rows_and_sums,
    optimizers,
    noise,
    transposes
);
criterion_main!(benches);
