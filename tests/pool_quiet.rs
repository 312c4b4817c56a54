//! Once the global pool has started, its threads allocate nothing while
//! trainers are made and steps run: every allocation is made by the
//! calling thread (counted by a global allocator wrapper).
//!
//! A pool thread that allocates makes the C library try to give it a heap
//! of its own; under an address-space limit too tight for one, glibc tries
//! again at each of that thread's allocations, mapping 64 MB for a moment
//! every time, and any other thread's allocation made meanwhile fails. The
//! packing buffers of the pool's threads were allocated by jobs on those
//! threads, and about one `eval` in 60 under `ulimit -v 100000` aborted on
//! one of them (tests/limits.rs saw it); now the caller allocates them and
//! the jobs only move them in.

#[path = "common/counting.rs"]
mod counting;

use sparse_ae::nn::{Autoencoder, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;

/// The tests count the process's allocations: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn pool_threads_allocate_nothing_after_the_pool_starts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    sparse_ae::parallel::start_global_pool(Some(2)).unwrap();
    // The threads start on their own: each has run a job (and made its
    // start-up allocations, rayon's and the C library's) once this returns.
    rayon::broadcast(|_| ());
    let before = counting::pool_count();
    for (name, batch) in [("deep", 32), ("overcomplete-kl", 256), ("topk", 64)] {
        let model = Autoencoder::<f32>::new(preset(name, 784).unwrap(), 1).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 2).unwrap();
        let start = std::time::Instant::now();
        while sparse_ae::kernels::gemm::pack_buffers_pending() > 0 {
            assert!(
                start.elapsed().as_secs() < 60,
                "the reservations did not run"
            );
            std::thread::yield_now();
        }
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..batch * 784).map(|_| rng.next_f32()).collect();
        for _ in 0..3 {
            t.step(&x).unwrap();
        }
    }
    let n = counting::pool_count() - before;
    assert_eq!(n, 0, "the pool's threads made {n} allocations");
}

/// Waits for the pack-buffer reservation jobs queued so far to run, the
/// calling pool thread's own among them.
fn wait_for_reservations() {
    let start = std::time::Instant::now();
    while sparse_ae::kernels::gemm::pack_buffers_pending() > 0 {
        let left = sparse_ae::kernels::gemm::pack_buffers_pending();
        assert!(
            start.elapsed().as_secs() < 60,
            "{left} reservations did not run"
        );
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::thread::yield_now();
        }
    }
}

/// In a pool of the caller's own, the trainers and evaluations after the
/// first find every thread's buffers reserved and allocate no more (each
/// allocated and freed a pair of a few MB per thread before).
#[test]
fn a_pool_of_the_callers_own_is_reserved_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| {
        sparse_ae::kernels::gemm::reserve_pack_buffers().unwrap();
        wait_for_reservations();
        let before = counting::bytes();
        for _ in 0..3 {
            sparse_ae::kernels::gemm::reserve_pack_buffers().unwrap();
        }
        let bytes = counting::bytes() - before;
        assert!(
            bytes < 1 << 20,
            "three reservations allocated {bytes} bytes"
        );
    });
}
