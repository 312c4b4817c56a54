//! Times the fixed-order gradient exchange of `sparse_ae::dist::tree_sum`
//! over MPI for a vector of N parameters (one tree node per rank):
//! `mpirun -n P cargo run --release --features mpi --example mpi_exchange -- N [REPEATS]`.
//! Prints, on rank 0, the median time of one exchange and the bytes each
//! rank sent and received.

use sparse_ae::dist::mpi::MpiWorld;
use sparse_ae::dist::{Collective, MicroPlan, TreeBuffers, tree_sum};
use std::time::Instant;

fn main() -> sparse_ae::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_722_432);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut world = MpiWorld::init()?;
    let p = world.ranks();
    let plan = MicroPlan::new(p, p, p)?;
    let mine: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 1e-3).collect();
    let mut out = vec![0.0f32; n];
    let mut buf = TreeBuffers::default();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..=repeats {
        let t0 = Instant::now();
        tree_sum(&mut world, &plan, &mine, &mut out, &mut buf)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    times.remove(0);
    times.sort_by(f64::total_cmp);
    if world.rank() == 0 {
        let moved = 2.0 * (p - 1) as f64 / p as f64 * n as f64 * 4.0;
        println!(
            "{p} ranks, {n} parameters: median {:.2} ms per exchange (best {:.2}), {:.1} MB sent (and as many received) per rank",
            times[times.len() / 2] * 1e3,
            times[0] * 1e3,
            moved / 1e6
        );
    }
    Ok(())
}
