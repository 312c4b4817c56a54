//! Samples per second of one training step for the seed workloads W1–W5
//! (criterion reports `elem/s` = samples/s).
//!
//! W1 deep 784-128-32-128-784 (ReLU, sigmoid out, BCE, Adam) at batch 32;
//! W2 the same at batch 256; W3 shallow 784-32-784 with L1 1e-5 at batch 32;
//! W4 overcomplete 784-1024-784, sigmoid, KL (ρ 0.05, β 3) at batch 256;
//! W5 = W1 with Gaussian noise 0.5, drawn inside the step, at batch 32;
//! W6 the `conv` preset (Conv 1→16→8 with pooling, L1 on the 8×7×7 code,
//! mirrored decoder with upsampling) at batch 64.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sparse_ae::kernels::Activation::Sigmoid;
use sparse_ae::nn::{Autoencoder, ModelBuilder, ModelConfig, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;
use std::hint::black_box;
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
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rayon::scope(|_| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(t.step(black_box(&x)).unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
