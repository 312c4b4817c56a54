//! Samples per second of one training step for the seed workloads W1–W5
//! (criterion reports `elem/s` = samples/s).
//!
//! W1 deep 784-128-32-128-784 (ReLU, sigmoid out, BCE, Adam) at batch 32;
//! W2 the same at batch 256; W3 shallow 784-32-784 with L1 1e-5 at batch 32;
//! W4 overcomplete 784-1024-784, sigmoid, KL (ρ 0.05, β 3) at batch 256;
//! W5 = W1 with Gaussian noise 0.5, drawn inside the step, at batch 32;
//! W6 the `conv` preset (Conv 1→16→8 with pooling, L1 on the 8×7×7 code,
//! mirrored decoder with upsampling) at batch 64.
//!
//! Opt-in (a step takes about a second): the group `topk_768x16384`, a
//! 768 → 16384 → 768 autoencoder (ReLU code keeping k = 32 per sample,
//! linear decoder, MSE, Adam) at batch 1024, once on the dense path and once
//! on the sparse path of `nn::sparse_topk`. It runs only when a filter
//! names it: `cargo bench --bench train_step -- topk`.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sparse_ae::kernels::Activation::{Linear, Relu, Sigmoid};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig, TopkPath, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::parallel::{KeepAwake, Pace, Policy};
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;
use std::hint::black_box;
use std::time::Duration;
use std::time::Instant;

fn workloads() -> Vec<(&'static str, ModelConfig, usize)> {
    let w4 = ModelBuilder::new(784)
        .code(1024, Sigmoid)
        .decoder(784, Sigmoid)
        .kl(0.05, 3.0)
        .build()
        .unwrap();
    vec![
        ("W1_deep_b32", preset("deep", 784).unwrap(), 32),
        ("W2_deep_b256", preset("deep", 784).unwrap(), 256),
        ("W3_shallow_l1_b32", preset("sparse-l1", 784).unwrap(), 32),
        ("W4_overcomplete_kl_b256", w4, 256),
        ("W5_denoising_b32", preset("denoising", 784).unwrap(), 32),
        ("W6_conv_b64", preset("conv", 784).unwrap(), 64),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("train_step");
    for (name, cfg, batch) in workloads() {
        let model = Autoencoder::<f32>::new(cfg, 1).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 2).unwrap();
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..batch * 784).map(|_| rng.next_f32()).collect();
        g.throughput(Throughput::Elements(batch as u64));
        // Steps run on a thread of the pool, as `fit` runs them.
        // One pace for all of a workload's samples, as for one `fit`.
        let mut pace = Pace::new(Policy::active());
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rayon::scope(|_| {
                    let awake = KeepAwake::resume(pace.clone());
                    let start = Instant::now();
                    for _ in 0..iters {
                        awake.beat();
                        black_box(t.step(black_box(&x)).unwrap());
                    }
                    let took = start.elapsed();
                    pace = awake.pace();
                    took
                })
            })
        });
        let (steps, serial) = pace.counts();
        if steps > 0 {
            eprintln!(
                "{name}: {serial} of {steps} steps on one thread \
                 (SPARSE_AE_THREAD_POLICY=split never chooses it)"
            );
        }
    }
    g.finish();
}

/// The TopK autoencoder of issue 7 on both paths (see the module doc).
fn bench_topk(c: &mut Criterion) {
    if !std::env::args().skip(1).any(|a| a.contains("topk")) {
        return;
    }
    let (d, units, k, batch) = (768, 16384, 32, 1024);
    let cfg = ModelBuilder::new(d)
        .code(units, Relu)
        .decoder(d, Linear)
        .loss(Loss::Mse)
        .topk(k, false)
        .build()
        .unwrap();
    let mut rng = Rng::new(3);
    let x: Vec<f32> = (0..batch * d).map(|_| rng.next_f32()).collect();
    let mut g = c.benchmark_group("topk_768x16384");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(batch as u64));
    for path in [TopkPath::Dense, TopkPath::Sparse] {
        let model = Autoencoder::<f32>::new(cfg.clone(), 1).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 2).unwrap();
        t.set_topk_path(path).unwrap();
        assert_eq!(
            t.workspaces()[0].uses_sparse_topk(),
            path == TopkPath::Sparse
        );
        g.bench_function(format!("{}_b{batch}", path.name()), |b| {
            b.iter(|| black_box(t.step(black_box(&x)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_topk);
criterion_main!(benches);
