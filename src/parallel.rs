//! Keeping the rayon pool's other threads awake through a loop of short
//! parallel steps.
//!
//! A rayon thread with nothing to do sleeps after a few dozen idle rounds,
//! and waking it again costs 30–65 µs on the 2-core development machine —
//! more than a whole batch-32 product. A [`KeepAwake`] guard puts one
//! *spinner* task on each other thread of the pool: it polls the pool for
//! work with [`rayon::yield_now`], so a `rayon::join` started by the loop
//! is picked up within about a microsecond, and the parallel kernels lower
//! their size thresholds while [`awake`] says so (measured: a join of two
//! short tasks after a serial stretch costs ~1 µs with a spinner, 22–65 µs
//! without).
//!
//! Spinners never change a result: they only run tasks the kernels would
//! have run anyway, and the kernels split work the same way for any number
//! of threads. They stop when the guard is dropped, and on their own when
//! the loop has not called [`KeepAwake::beat`] for [`IDLE`], so a blocked or
//! finished loop never leaves a core spinning for long (and a spinner that
//! a waiting thread happens to pick up itself returns at once).
//!
//! `fit` holds one for its whole run; a program that calls
//! [`crate::train::Trainer::step`] in its own loop can do the same:
//!
//! ```
//! use sparse_ae::parallel::KeepAwake;
//! rayon::scope(|_| {
//!     let awake = KeepAwake::new();
//!     for _step in 0..3 {
//!         awake.beat();
//!         // trainer.step(&batch)?;
//!     }
//! });
//! ```
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a spinner keeps polling after the last [`KeepAwake::beat`].
pub const IDLE: Duration = Duration::from_millis(2);

/// Most spinners one guard keeps: the small operations split while the pool
/// is awake (a few MFLOP, a few hundred thousand parameters) gain nothing
/// from more threads, and each spinner holds a core at full load.
pub const MAX_SPINNERS: usize = 3;

/// Spinners running now, over all guards.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while this thread runs one of several parts of a job that already
    /// keep every thread busy (see [`as_part`]).
    static IN_PART: Cell<bool> = const { Cell::new(false) };
}

/// Whether some other pool thread is spinning for work right now, so that a
/// parallel task starts within about a microsecond instead of waiting for a
/// thread to wake up, and this thread is not inside [`as_part`] (the kernels
/// split smaller operations over [`awake_threads`] then).
pub fn awake() -> bool {
    awake_threads() > 1
}

/// The threads that can take part in a small operation right now: this one
/// and the spinners (1 when none spins, or inside [`as_part`]).
pub fn awake_threads() -> usize {
    if in_part() {
        return 1;
    }
    let spinning = SPINNING.load(Ordering::Relaxed);
    1 + spinning.min(rayon::current_num_threads().saturating_sub(1))
}

/// Runs `f` as one of the parts of a job that are run side by side on the
/// pool's threads (the two halves of a batch, say): inside it, [`in_part`]
/// is true and [`awake`] false, and the GEMM keeps each product on the
/// calling thread, since the other threads are busy with the other parts
/// (measured on the batch-256 784-1024-784 model: 36.5k → 37.2k samples/s
/// with its halves' products unsplit, whose strips each packed the half's
/// activations again; with the awake thresholds inside the halves, the
/// batch-256 deep model lost 10 %).
pub fn as_part<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the outer state on the way out, a panic in `f` included.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_PART.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(IN_PART.with(|p| p.replace(true)));
    f()
}

/// Whether this thread runs inside [`as_part`].
pub fn in_part() -> bool {
    IN_PART.with(Cell::get)
}

/// `rayon::join(a, b)`, except that while the pool is kept awake
/// ([`awake`]) the calling thread waits for `b` without going idle: after
/// `a` it runs `b` itself if no other thread took it, else it polls for
/// `b`'s end. rayon's own wait yields the core (`sched_yield`) some 32 times
/// and then sleeps on a condition variable, and a sleeping thread takes
/// 30–65 µs to wake on the 2-core machine, more than half a batch-32
/// product: a product whose halves end a few µs apart then cost a wake-up.
/// Measured on the W1 step (2 threads, `perf stat`): ~1.3 `futex` calls
/// and ~27 `sched_yield`s a step with `rayon::join`, against none with this
/// one. The work and its split are the same either way, so are the results.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if !awake() {
        return rayon::join(a, b);
    }
    /// Marks `b` ended when dropped, so that a panic in `b` ends the wait
    /// too (rayon then carries the panic on).
    struct Ended<'a>(&'a AtomicBool);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let ended = AtomicBool::new(false);
    rayon::join(
        || {
            let ra = a();
            // `b` is on top of this thread's deque unless another thread
            // took it: `yield_local` then runs it here (rayon's join finds
            // it done), else it is running elsewhere and this thread polls.
            while !ended.load(Ordering::Acquire) {
                if rayon::yield_local() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
            ra
        },
        || {
            let _ended = Ended(&ended);
            b()
        },
    )
}

/// Runs `f(0)`, …, `f(tasks − 1)`, side by side on the pool's threads, as
/// `(0..tasks).into_par_iter().with_max_len(1).for_each(f)` would, through
/// [`join`] (so a kept-awake pool never goes idle between tasks).
pub fn for_each_task(tasks: usize, f: impl Fn(usize) + Sync) {
    fn range(lo: usize, hi: usize, f: &(impl Fn(usize) + Sync)) {
        match hi - lo {
            0 => {}
            1 => f(lo),
            len => {
                let mid = lo + len / 2;
                join(|| range(lo, mid, f), || range(mid, hi, f));
            }
        }
    }
    range(0, tasks, &f);
}

/// While alive (and beaten at least every [`IDLE`]), keeps the other threads
/// of the current rayon pool polling for work. See the module doc.
pub struct KeepAwake {
    shared: Arc<Shared>,
    /// Spinners to keep running: the pool's threads but the caller's own, at
    /// most [`MAX_SPINNERS`].
    want: usize,
}

struct Shared {
    stop: AtomicBool,
    beats: AtomicU64,
    live: AtomicUsize,
    /// Spinners that got past the start (for tests).
    started: AtomicUsize,
    /// The pool index of the thread that made the guard, if it is in the pool.
    owner: Option<usize>,
}

impl KeepAwake {
    /// A guard for the current rayon pool (the global one outside any pool).
    /// Spinners start at the first [`KeepAwake::beat`].
    pub fn new() -> Self {
        KeepAwake {
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                beats: AtomicU64::new(0),
                live: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                owner: rayon::current_thread_index(),
            }),
            want: rayon::current_num_threads()
                .saturating_sub(1)
                .min(MAX_SPINNERS),
        }
    }

    /// Marks the loop as still running, and restarts spinners that stopped
    /// (a restart is one `rayon::spawn`, which allocates; a loop that beats
    /// more often than every [`IDLE`] restarts none).
    pub fn beat(&self) {
        let s = &self.shared;
        s.beats.fetch_add(1, Ordering::Relaxed);
        while s.live.load(Ordering::Acquire) < self.want {
            s.live.fetch_add(1, Ordering::AcqRel);
            let shared = Arc::clone(s);
            rayon::spawn(move || spin(&shared));
        }
    }
}

impl Default for KeepAwake {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// The spinner task: runs whatever the pool offers until stopped or idle.
fn spin(s: &Shared) {
    let mine = rayon::current_thread_index();
    if mine.is_some() && mine == s.owner || s.stop.load(Ordering::Acquire) {
        // Picked up by the guard's own thread (waiting in a join, say): that
        // thread has its loop to get back to.
        s.live.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    SPINNING.fetch_add(1, Ordering::Relaxed);
    s.started.fetch_add(1, Ordering::Relaxed);
    let mut seen = s.beats.load(Ordering::Relaxed);
    let mut since = Instant::now();
    let mut rounds = 0u32;
    while !s.stop.load(Ordering::Relaxed) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(64) {
            let now = s.beats.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                since = Instant::now();
            } else if since.elapsed() > IDLE {
                break;
            }
        }
    }
    SPINNING.fetch_sub(1, Ordering::Relaxed);
    s.live.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spinner starts on the other thread, runs joined work, and stops
    /// after IDLE without beats and when the guard goes.
    #[test]
    fn spinners_start_serve_and_stop() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let guard = KeepAwake::new();
            guard.beat();
            let t = Instant::now();
            // (A spinner this thread picks up itself returns at once, and one
            // descheduled past IDLE stops: beats restart them.)
            while guard.shared.started.load(Ordering::Relaxed) == 0 || !awake() {
                assert!(t.elapsed() < Duration::from_secs(10), "no spinner");
                guard.beat();
                std::thread::yield_now();
            }
            let (a, b) = rayon::join(|| 1, || 2);
            assert_eq!(a + b, 3);
            // No beats: the spinner gives up on its own.
            let t = Instant::now();
            while guard.shared.live.load(Ordering::Acquire) > 0 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "spinner never idled out"
                );
                std::thread::yield_now();
            }
            guard.beat();
            let shared = Arc::clone(&guard.shared);
            drop(guard);
            let t = Instant::now();
            while shared.live.load(Ordering::Acquire) > 0 {
                assert!(
                    t.elapsed() < Duration::from_secs(10),
                    "spinner outlived its guard"
                );
                std::thread::yield_now();
            }
        });
    }

    /// `join` and `for_each_task` with the pool kept awake: every task runs
    /// once, results come back in place, nested joins work, and a panic in
    /// the second closure reaches the caller instead of leaving it waiting.
    #[test]
    fn join_and_tasks_while_awake() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let guard = KeepAwake::new();
            let t = Instant::now();
            while !awake() {
                assert!(t.elapsed() < Duration::from_secs(10), "no spinner");
                guard.beat();
                std::thread::yield_now();
            }
            for round in 0..200 {
                guard.beat();
                let (a, (b, c)) = join(|| round, || join(|| round + 1, || round + 2));
                assert_eq!((a, b, c), (round, round + 1, round + 2));
                for tasks in 0..10 {
                    let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                    for_each_task(tasks, |t| {
                        hits[t].fetch_add(1, Ordering::Relaxed);
                    });
                    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                }
            }
            guard.beat();
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                join(|| 1, || -> i32 { panic!("second half") })
            }));
            assert!(caught.is_err());
        });
    }

    /// A large pool gets at most MAX_SPINNERS spinners.
    #[test]
    fn spinners_are_capped() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(MAX_SPINNERS + 3)
            .build()
            .unwrap();
        pool.install(|| {
            let guard = KeepAwake::new();
            assert_eq!(guard.want, MAX_SPINNERS);
            for _ in 0..100 {
                guard.beat();
                assert!(guard.shared.live.load(Ordering::Acquire) <= MAX_SPINNERS);
                std::thread::yield_now();
            }
        });
    }

    /// On a one-thread pool there is nobody to keep awake.
    #[test]
    fn one_thread_spawns_nothing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| {
            let guard = KeepAwake::new();
            guard.beat();
            assert_eq!(guard.shared.live.load(Ordering::Acquire), 0);
        });
    }
}
