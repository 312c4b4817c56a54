//! How often a product split over two threads runs at one thread's speed
//! because both threads share one CPU (Linux; see `sparse_ae::parallel`).
//!
//! Each set times 30 products `C = A·Bᵀ` (A m×k, B n×k) on a one-thread pool,
//! then 8 ms of other work on this thread (as a benchmark's reference does),
//! then 30 on a two-thread pool whose second thread is kept awake
//! (`KeepAwake`, split policy). Before each two-thread product, a join reads
//! the CPU each half runs on (`/proc/thread-self/stat`). A set is *slow*
//! when its best two-thread time is under 1.4× its best one-thread speed;
//! *shared* counts its joins whose halves ran on one CPU.
//!
//! `cargo run --release --example pool_placement -- [M K N SETS]`
//! (default 32 784 1024 200).

use sparse_ae::kernels::{Epilogue, MatMut, MatRef, gemm};
use sparse_ae::parallel::{KeepAwake, Policy};
use std::time::{Duration, Instant};

/// The CPU this thread last ran on, if `/proc` says.
fn cpu() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Field 39 ("processor"), counted after the parenthesized command name.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(36)?
        .parse()
        .ok()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("M K N SETS are whole numbers"))
        .collect();
    let [m, k, n, sets] = match args.as_slice() {
        [] => [32, 784, 1024, 200],
        &[m, k, n, sets] => [m, k, n, sets],
        _ => panic!("usage: pool_placement [M K N SETS]"),
    };
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * k).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; m * n];
    let pool = |t| rayon::ThreadPoolBuilder::new().num_threads(t).build();
    let (one, two) = (pool(1).expect("a pool"), pool(2).expect("a pool"));
    let gflops = |t: Duration| 2.0 * (m * n * k) as f64 / t.as_secs_f64() / 1e9;
    let product = |c: &mut [f32]| {
        let (av, bv) = (MatRef::new(&a, m, k), MatRef::new(&b, n, k).t());
        gemm(1.0, av, bv, 0.0, MatMut::new(c, m, n), Epilogue::NONE);
    };
    let best = |c: &mut [f32], before: &dyn Fn()| {
        (0..30)
            .map(|_| {
                before();
                let start = Instant::now();
                product(c);
                start.elapsed()
            })
            .min()
            .unwrap_or(Duration::MAX)
    };
    let (mut slow, mut shared_sets) = (0, 0);
    for set in 0..sets {
        let t1 = one.install(|| best(&mut c, &|| ()));
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(8) {
            product(&mut c);
            std::hint::black_box(&c);
        }
        let (t2, shared) = two.install(|| {
            rayon::scope(|_| {
                let awake = KeepAwake::with_policy(Policy::Split);
                awake.beat();
                let shared = std::cell::Cell::new(0);
                let t = best(&mut c, &|| {
                    awake.beat();
                    let (x, y) = rayon::join(cpu, || {
                        std::thread::sleep(Duration::from_micros(50));
                        cpu()
                    });
                    if x.is_some() && x == y {
                        shared.set(shared.get() + 1);
                    }
                });
                (t, shared.get())
            })
        });
        let (g1, g2) = (gflops(t1), gflops(t2));
        if g2 < 1.4 * g1 {
            slow += 1;
            println!("set {set}: 1 thread {g1:.1} GFLOP/s, 2 threads {g2:.1}, shared {shared}/30");
        }
        shared_sets += usize::from(shared > 15);
    }
    println!("{m}×{k}×{n}: {slow} of {sets} sets slow; {shared_sets} with most joins on one CPU");
}
