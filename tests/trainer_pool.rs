//! Making a trainer waits for no thread of the pool. Each pool thread's
//! packing buffers used to be allocated by a blocking broadcast, which waited
//! for every thread: a thread held by other work (in Python, another fit's
//! callback, waiting for this thread) made `Trainer::new` wait as long, for
//! ever when that work waited for the trainer's thread.
//!
//! One test in this file: it holds a thread of the global pool.

use sparse_ae::nn::{Autoencoder, preset};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::rng::Rng;
use sparse_ae::train::Trainer;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longer than making a trainer and taking two steps of a 16-feature model
/// takes on the slowest machine; only a trainer that waits for the held
/// thread reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn a_trainer_is_made_and_steps_while_a_pool_thread_is_held() {
    // Two threads: one held, one to run the steps' products.
    sparse_ae::parallel::start_global_pool(Some(2)).unwrap();
    assert_eq!(rayon::current_num_threads(), 2);
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    rayon::spawn(move || {
        held_tx.send(()).unwrap();
        // Until the test is done with the trainer (or has given up on it).
        let _ = release_rx.recv();
    });
    held_rx
        .recv_timeout(PATIENCE)
        .expect("a pool thread took the holding task");

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let model = Autoencoder::<f32>::new(preset("shallow", 16).unwrap(), 1).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), 8, 2).unwrap();
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..8 * 16).map(|_| rng.next_f32()).collect();
        for _ in 0..2 {
            t.step(&x).unwrap();
        }
        done_tx.send(t.steps()).unwrap();
    });
    let steps = done_rx.recv_timeout(PATIENCE);
    // Whatever happened, the held thread goes free (so a trainer that
    // waited for it ends, and the process with it).
    release_tx.send(()).unwrap();
    assert_eq!(
        steps,
        Ok(2),
        "making a trainer and stepping it did not end within {PATIENCE:?} while a pool thread was held"
    );

    // The held thread reserves its buffers once it is free (before it takes
    // other work).
    let start = Instant::now();
    while sparse_ae::kernels::gemm::pack_buffers_pending() > 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the pool's threads did not reserve their packing buffers"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
