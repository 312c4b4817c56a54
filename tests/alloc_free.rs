//! After the first step at a batch size, a training step makes no heap
//! allocation (counted by a global allocator wrapper), when it runs on a
//! thread of the rayon pool as `fit` runs it.
//!
//! Counted once every pool thread holds its packing buffers: `Trainer::new`
//! waits for no pool thread, it queues a job on each that reserves them
//! (`kernels::gemm::reserve_pack_buffers`). An idle thread runs it at once
//! and a busy one before it takes part in a step's products, so in a run
//! the steady state starts with the first steps; here the count waits for
//! the jobs ([`pool_reserved`]), so that a thread the system schedules late
//! does not allocate its buffers within the counted steps.

mod common;
#[path = "common/counting.rs"]
mod counting;

use sparse_ae::nn::{Autoencoder, ModelConfig, TopK, TopkPath, preset};
use sparse_ae::optim::{OptimizerConfig, SgdConfig};
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;

/// Waits (on a thread of the pool, running its own jobs meanwhile) until
/// every pool thread has reserved its packing buffers.
fn pool_reserved() {
    let start = std::time::Instant::now();
    while sparse_ae::kernels::gemm::pack_buffers_pending() > 0 {
        assert!(
            start.elapsed().as_secs() < 60,
            "the pool threads' packing buffers were not reserved"
        );
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::thread::yield_now();
        }
    }
}

/// Allocations in 10 steps after two warm-up steps.
fn allocations(t: &mut Trainer<f32>, x: &[f32]) -> usize {
    // Steps run inside the rayon pool, as `fit` runs them: called from a
    // thread outside the pool, parallel products go through the pool's
    // injection queue, which allocates a block per 63 jobs.
    rayon::scope(|_| {
        t.step(x).unwrap();
        t.step(x).unwrap();
        pool_reserved();
        let before = counting::count();
        for _ in 0..10 {
            t.step(x).unwrap();
        }
        counting::count() - before
    })
}

fn batch_of(batch: usize) -> Vec<f32> {
    let mut rng = Rng::new(3);
    (0..batch * 784).map(|_| rng.next_f32()).collect()
}

#[test]
fn steps_after_the_first_do_not_allocate() {
    let mut cases: Vec<(&str, ModelConfig, usize, OptimizerConfig)> = [
        ("deep", 32, OptimizerConfig::default()),
        // Computed in two halves side by side, the gradients summed.
        ("deep", 256, OptimizerConfig::default()),
        ("sparse-l1", 128, OptimizerConfig::Sgd(SgdConfig::default())),
        ("denoising", 32, OptimizerConfig::default()),
        ("sparse-kl", 64, OptimizerConfig::Sgd(SgdConfig::default())),
        ("overcomplete-kl", 256, OptimizerConfig::default()),
        ("topk", 64, OptimizerConfig::default()),
        ("conv-kl", 16, OptimizerConfig::default()),
    ]
    .into_iter()
    .map(|(name, batch, opt)| (name, preset(name, 784).unwrap(), batch, opt))
    .collect();
    // The `topk` shape as an SAE with every option on; a dead window of one
    // batch makes most latents dead after the first step, so AuxK runs.
    cases.push((
        "sae auxk",
        common::full_sae(784, 1024, 32, 64),
        64,
        OptimizerConfig::default(),
    ));
    for (name, cfg, batch, opt) in cases {
        let model = Autoencoder::<f32>::new(cfg, 1).unwrap();
        let mut t = Trainer::new(model, opt, batch, 2).unwrap();
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..batch * 784).map(|_| rng.next_f32()).collect();
        // Steps run inside the rayon pool, as `fit` runs them: called from a
        // thread outside the pool, parallel products go through the pool's
        // injection queue, which allocates a block per 63 jobs.
        let (n, auxk) = rayon::scope(|_| {
            t.step(&x).unwrap();
            t.step(&x).unwrap();
            pool_reserved();
            let before = counting::count();
            let mut auxk = 0.0;
            for _ in 0..10 {
                auxk += t.step(&x).unwrap().auxk;
            }
            (counting::count() - before, auxk)
        });
        assert_eq!(n, 0, "{name} at batch {batch}: {n} allocations in 10 steps");
        if name == "sae auxk" {
            assert!(auxk > 0.0, "the AuxK loss did not run");
            assert!(t.dead_latents().dead() > 0);
        }
    }
    topk_steps_do_not_allocate_on_either_path();
}

/// The `topk` preset on both paths, and BatchTopK on the sparse path (in
/// the same test: the counter is global, so no other test may run).
fn topk_steps_do_not_allocate_on_either_path() {
    for (path, batch_topk) in [
        (TopkPath::Dense, false),
        (TopkPath::Sparse, false),
        (TopkPath::Sparse, true),
    ] {
        let mut cfg = preset("topk", 784).unwrap();
        cfg.topk = cfg.topk.map(|t| TopK {
            batch: batch_topk,
            ..t
        });
        let model = Autoencoder::<f32>::new(cfg, 1).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), 64, 2).unwrap();
        t.set_topk_path(path).unwrap();
        assert_eq!(
            t.workspaces()[0].uses_sparse_topk(),
            path == TopkPath::Sparse
        );
        let n = allocations(&mut t, &batch_of(64));
        assert_eq!(
            n, 0,
            "{path:?} batch={batch_topk}: {n} allocations in 10 steps"
        );
    }
}
