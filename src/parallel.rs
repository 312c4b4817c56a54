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
//! A second thread does not always pay. On a virtual machine whose two
//! vCPUs the host now and then places far apart (measured on the 2-core AMD
//! EPYC development VM: for seconds at a time, a two-thread batch-32 step
//! takes 1.0–1.4 ms against 0.41 ms, while one thread takes 0.45 ms and two
//! one-thread processes side by side run at full speed each), every hand-over
//! between the threads gets slow ([`round_trip`] measures how slow: on the
//! Zen 5 development VM 49–145 ns near, 320–700 ns and at times several µs
//! far). So a guard also times the loop between
//! beats and chooses, by that measure, whether the next steps split their
//! work over the pool or run on the loop's thread alone ([`Pace`]): it
//! tries the other choice for a few steps now and then, and when the
//! current one slows down. The choice never changes a result, since every
//! kernel splits its work the same way for any number of threads; it only
//! changes which thread computes which part.
//!
//! A spinner can also find itself on the same CPU as the loop's thread,
//! both busy while the other CPU idles: the two then take turns and a split
//! product runs at one thread's speed (measured on the Intel development
//! VM with `cargo run --release --example pool_placement`: 53 of 900 sets
//! of thirty 32×784·(1024×784)ᵀ products on two threads, each set about
//! 10 ms). A spinner notices it by a gap between two of its idle rounds (it
//! was preempted, [`PREEMPTED`]) and sleeps for a moment: the wake-up puts
//! it on an idle CPU. With that, 3 of 900 sets.
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
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a spinner keeps polling after the last [`KeepAwake::beat`].
pub const IDLE: Duration = Duration::from_millis(2);

/// A gap this long between two idle rounds of a spinner means it was
/// preempted, most likely by a busy thread on its CPU; it then sleeps for a
/// moment, to be woken on an idle CPU (see the module doc).
pub const PREEMPTED: Duration = Duration::from_micros(200);

/// Most spinners one guard keeps: the small operations split while the pool
/// is awake (a few MFLOP, a few hundred thousand parameters) gain nothing
/// from more threads, and each spinner holds a core at full load.
pub const MAX_SPINNERS: usize = 3;

/// Spinners running now, over all guards.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// How many parts of jobs this thread's work shares the pool with: 1
    /// outside [`as_part`], 2 inside one, 4 inside a part of a part.
    static PARTS: Cell<usize> = const { Cell::new(1) };
    /// Set on a loop's thread while its [`KeepAwake`] has chosen one-thread
    /// steps (see [`serial`]).
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Whether some other pool thread is spinning for work right now, so that a
/// parallel task starts within about a microsecond instead of waiting for a
/// thread to wake up, and this thread's share of the pool has more than one
/// thread (see [`as_part`]): the kernels split smaller operations over
/// [`awake_threads`] then.
pub fn awake() -> bool {
    awake_threads() > 1
}

/// The threads that can take part in a small operation right now: this one
/// and the spinners, at most this thread's share of the pool (1 when none
/// spins, while [`serial`], or inside [`as_part`] on a pool of fewer than
/// four threads).
pub fn awake_threads() -> usize {
    let share = pool_threads();
    if share == 1 {
        return 1;
    }
    let spinning = SPINNING.load(Ordering::Relaxed);
    (1 + spinning).min(share)
}

/// Runs `f` as one of two parts of a job that are run side by side on the
/// pool's threads (the two halves of a batch, say): inside it, [`in_part`]
/// is true and the kernels split their work over half the pool's threads
/// ([`pool_threads`], [`awake_threads`]), since the other half is busy with
/// the other part. On two threads each part thus keeps its products on its
/// own thread (measured on the batch-256 784-1024-784 model: 36.5k → 37.2k
/// samples/s with its halves' products unsplit, whose strips each packed the
/// half's activations again; with the awake thresholds inside the halves,
/// the batch-256 deep model lost 10 %); on four or more, each part splits
/// over its two or more threads instead of leaving them idle. A part of a
/// part has a quarter of the pool, and so on. The share changes only which
/// thread computes what, never a result.
pub fn as_part<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the outer state on the way out, a panic in `f` included.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            PARTS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PARTS.with(|p| {
        let outer = p.get();
        p.set(outer.saturating_mul(2));
        outer
    }));
    f()
}

/// Whether this thread runs inside [`as_part`].
pub fn in_part() -> bool {
    PARTS.with(Cell::get) > 1
}

/// Whether this thread's steps run on this thread alone now, as the
/// [`KeepAwake`] of its loop chose by measurement ([`Pace`]): [`join`] and
/// [`for_each_task`] then run their parts one after the other here, and the
/// kernels split nothing ([`pool_threads`], [`min_len`]).
pub fn serial() -> bool {
    SERIAL.with(Cell::get)
}

/// The current pool's threads and how a kept-awake loop's steps use them
/// (with [`Policy::from_env`]), for reports and start-up lines.
pub fn threads_summary() -> String {
    match (rayon::current_num_threads(), Policy::active()) {
        (1, _) => "1 thread".to_string(),
        (n, Policy::Measured) => {
            format!("{n} threads (a step runs on one while one measures faster)")
        }
        (n, Policy::Split) => {
            format!("{n} threads (every step split: SPARSE_AE_THREAD_POLICY=split)")
        }
        (n, Policy::Alternate) => format!(
            "{n} threads (split and one-thread steps in turn: SPARSE_AE_THREAD_POLICY=alternate)"
        ),
    }
}

/// The threads an operation large enough for the whole pool splits over:
/// the pool's, this thread's share of them inside [`as_part`] (at least 1),
/// or 1 while [`serial`].
pub fn pool_threads() -> usize {
    if serial() {
        1
    } else {
        (rayon::current_num_threads() / PARTS.with(Cell::get)).max(1)
    }
}

/// The least items per task for a rayon parallel iterator that would take
/// `n`: `n`, or all of them in one task (no split) while [`serial`].
pub fn min_len(n: usize) -> usize {
    if serial() { usize::MAX } else { n }
}

/// The rows of a weight `(rows, …)` that the first of two threads owns when
/// a step is split: about half, a multiple of 16 (0 below 32 rows: all
/// rows stay with the first thread).
///
/// A weight's rows are what its forward product's column strips, its
/// gradient's row strips ([`crate::kernels::gemm::Parallelism::RayonRows`]),
/// the two halves of the product through it backward and the optimizer's
/// halves ([`crate::optim::Optimizer::step_owned`]) all split at, so that
/// each thread keeps its rows of the weight, their gradient and moments in
/// its own cache through the step. Measured on the W1 step (784-128-32-128-784,
/// batch 32, 2 threads, AMD EPYC Zen 4): Adam's half on 50k parameters took
/// 76 µs whose rows the other core had read last, against 20 µs on its own
/// rows.
pub fn owned_half(rows: usize) -> usize {
    (rows / 2) & !15
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
    if serial() {
        let ra = a();
        return (ra, b());
    }
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
    /// The one-thread-or-split choice and the time of the last beat.
    pace: RefCell<(Pace, Option<Instant>)>,
    /// [`serial`] on the guard's thread before the guard, restored on drop.
    was_serial: bool,
}

/// How a [`KeepAwake`] chooses between split and one-thread steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// By measurement ([`Pace`]); the default.
    Measured,
    /// Always split (as before the choice existed; for benchmarks of the
    /// split itself).
    Split,
    /// One-thread and split steps in turn, whatever they cost: for tests
    /// that results do not depend on the choice.
    Alternate,
}

/// The environment variable naming a [`Policy`].
pub const POLICY_ENV: &str = "SPARSE_AE_THREAD_POLICY";

impl Policy {
    /// The policy named `measured`, `split` or `alternate`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for any other name.
    pub fn from_name(name: &str) -> crate::Result<Policy> {
        match name.trim() {
            "measured" => Ok(Policy::Measured),
            "split" => Ok(Policy::Split),
            "alternate" => Ok(Policy::Alternate),
            other => Err(crate::Error::config(
                POLICY_ENV,
                format!("unknown thread policy `{other}`; use measured, split or alternate"),
            )),
        }
    }

    /// The policy named by `SPARSE_AE_THREAD_POLICY`, or `Measured` when it
    /// is unset.
    ///
    /// # Errors
    /// As [`Policy::from_name`].
    pub fn from_env() -> crate::Result<Policy> {
        match crate::Error::env_text(POLICY_ENV)? {
            Some(v) => Policy::from_name(&v),
            None => Ok(Policy::Measured),
        }
    }

    /// [`Policy::from_env`], with `Measured` for a bad value (programs that
    /// want the error call [`Policy::from_env`] first; the library's entry points do,
    /// through [`check_env`]).
    pub fn active() -> Policy {
        Policy::from_env().unwrap_or(Policy::Measured)
    }
}

/// The environment variables rayon sizes its global pool by, in the order
/// it reads them (the second is its deprecated spelling of the first).
pub const THREADS_ENV: [&str; 2] = ["RAYON_NUM_THREADS", "RAYON_RS_NUM_CPUS"];

/// How long a value takes to go from one thread to another and back, as
/// two threads of their own pass a counter to and fro: the best of
/// [`ROUND_TRIP_ROUNDS`] rounds of up to [`ROUND_TRIP_TRIPS`] trips, each
/// round stopped after [`ROUND_TRIP_ROUND_LIMIT`]. It tells how far apart
/// the CPUs the threads run on are, which bounds every hand-over of a split
/// step: on the 2-core AMD EPYC Zen 5 development VM, 49–145 ns while the
/// host keeps the two vCPUs close (a two-thread W1 step then runs at about
/// 250k samples/s) and 320–700 ns, at times several µs, while it keeps them
/// far apart (165k–187k); one thread, 155k–159k either way. `None` on a
/// machine of one CPU, or when no trip ended within a round (the two
/// threads then shared one CPU).
///
/// # Errors
/// [`crate::Error::Value`] naming the thread when the system will not start
/// it ([`thread_refused`]).
pub fn round_trip() -> crate::Result<Option<Duration>> {
    if cpus() < 2 {
        return Ok(None);
    }
    let mut best = None;
    for _ in 0..ROUND_TRIP_ROUNDS {
        if let Some(d) = round_trip_round(true)? {
            best = Some(best.map_or(d, |b: Duration| b.min(d)));
        }
    }
    Ok(best)
}

/// Rounds of [`round_trip`].
pub const ROUND_TRIP_ROUNDS: usize = 5;
/// Most trips in a round of [`round_trip`].
pub const ROUND_TRIP_TRIPS: u64 = 2000;
/// Longest round of [`round_trip`].
pub const ROUND_TRIP_ROUND_LIMIT: Duration = Duration::from_millis(20);

/// One round of [`round_trip`]: the mean time of its trips, `None` if none
/// ended in time. Without `echo` the other thread only waits for the stop
/// (as if it never got a CPU).
fn round_trip_round(echo: bool) -> crate::Result<Option<Duration>> {
    // Odd values go out, even values come back; `u64::MAX` stops the echo.
    let ball = AtomicU64::new(0);
    std::thread::scope(|s| {
        let echoing = std::thread::Builder::new().spawn_scoped(s, || {
            let mut seen = 0;
            loop {
                let v = ball.load(Ordering::Acquire);
                if v == u64::MAX {
                    return;
                }
                if echo && v % 2 == 1 && v != seen {
                    seen = v;
                    // Not over a stop that came meanwhile.
                    let _ = ball.compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Acquire);
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        if let Err(e) = echoing {
            return Err(thread_refused("a thread to time round trips", &e));
        }
        let start = Instant::now();
        let mut trips = 0;
        'trips: while trips < ROUND_TRIP_TRIPS {
            let serve = 2 * trips + 1;
            ball.store(serve, Ordering::Release);
            let mut spins = 0u32;
            while ball.load(Ordering::Acquire) != serve + 1 {
                // The clock read now and then only: it costs about as much
                // as a trip between near CPUs.
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(1024) && start.elapsed() > ROUND_TRIP_ROUND_LIMIT {
                    break 'trips;
                }
                std::hint::spin_loop();
            }
            trips += 1;
        }
        let took = start.elapsed();
        ball.store(u64::MAX, Ordering::Release);
        Ok((trips > 0).then(|| took / trips as u32))
    })
}

/// The CPUs this process may run on (1 when the system cannot tell).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most threads a pool may have: 4 per core, and at least 1024.
/// Starting more only wastes time (100,000 threads took 26 s to start, and
/// rayon starts at most 65,535 however many are asked for), and no machine
/// has that many cores.
pub fn max_threads() -> usize {
    cpus().saturating_mul(4).max(1024)
}

/// `n` threads asked for by `what` (a flag, a variable), if within
/// 1..=[`max_threads`].
///
/// # Errors
/// [`crate::Error::Config`] naming `what`, the bounds and `n`.
pub fn check_threads(what: &str, n: usize) -> crate::Result<usize> {
    if (1..=max_threads()).contains(&n) {
        Ok(n)
    } else {
        Err(crate::Error::config(what, outside_bound(n)))
    }
}

/// Why a thread count `shown` is refused: outside 1..=[`max_threads`].
fn outside_bound(shown: impl std::fmt::Display) -> String {
    format!(
        "must be between 1 and {} threads (at least 1024, or 4 per core), got {shown}",
        max_threads()
    )
}

/// The thread count the environment asks the global pool for
/// ([`THREADS_ENV`], read as rayon reads them): `None` when neither is set
/// (or set empty, or to 0, rayon's "one per core").
///
/// # Errors
/// [`crate::Error::Config`] naming the variable when its value is not a
/// whole number (rayon would ignore it without a word) or is more than
/// [`max_threads`] (rayon would try to start them all: 100,000 took minutes
/// or failed half way).
pub fn env_threads() -> crate::Result<Option<usize>> {
    threads_from(|name| std::env::var_os(name))
}

/// [`env_threads`] of the variables `var` gives.
fn threads_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> crate::Result<Option<usize>> {
    for name in THREADS_ENV {
        let Some(raw) = var(name) else { continue };
        let text = raw.to_string_lossy();
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let shown = match text.chars().count() {
            0..=40 => text.to_string(),
            n => format!(
                "{}… ({n} characters)",
                text.chars().take(40).collect::<String>()
            ),
        };
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::Error::config(
                name,
                format!(
                    "must be a whole number of threads (0 or unset: one per core), got `{shown}`"
                ),
            ));
        }
        let most = max_threads();
        return match text.parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) if n <= most => Ok(Some(n)),
            _ => Err(crate::Error::config(
                name,
                format!("{}; unset it for one thread per core", outside_bound(shown)),
            )),
        };
    }
    Ok(None)
}

/// Checks every `SPARSE_AE_*` variable the engine reads as it runs:
/// `SPARSE_AE_KERNEL`, `SPARSE_AE_MAX_ISA` and `SPARSE_AE_REQUIRE_ISA`
/// ([`crate::kernels::Isa::from_env`]), `SPARSE_AE_TOPK_PATH`
/// ([`crate::nn::TopkPath::from_env`]) and `SPARSE_AE_THREAD_POLICY`
/// ([`Policy::from_env`]), and that those read once per process (the kernel
/// path, its cap and the top-k default) still say what they said when read
/// ([`crate::kernels::Isa::check_unchanged`],
/// [`crate::nn::TopkPath::check_unchanged`]). Where they are read, a bad
/// value can only be reported on stderr and replaced by the default (or
/// passed over without a word), so [`start_global_pool`], which every training, evaluation,
/// inference and gradient-check entry point calls, checks them first; the
/// CLI and the Python module thus refuse the same values with the same
/// error. (The data and cache directories and the mirrors are read, and
/// refused, where data is looked for.)
///
/// # Errors
/// [`crate::Error::Config`] naming the variable, its value and the values
/// it takes; [`crate::Error::KernelUnavailable`] for a kernel path this CPU
/// lacks.
pub fn check_env() -> crate::Result<()> {
    crate::kernels::Isa::check_unchanged()?;
    crate::nn::TopkPath::check_unchanged()?;
    Policy::from_env()?;
    Ok(())
}

/// Whether [`start_global_pool`] has seen the global pool started.
static GLOBAL_STARTED: AtomicBool = AtomicBool::new(false);

/// Starts rayon's global pool with `threads` threads, or as many as the
/// environment asks for ([`env_threads`]; one per core when it asks for
/// none), unless it is running already; outside any pool only (a call from
/// a thread of a pool, as inside `pool.install`, works on that pool and
/// does nothing here).
///
/// The training, evaluation, inference and gradient-check entry points of
/// the library call it before they touch the pool (and the model's forward,
/// decode and loss passes, through [`ensure_global_pool`]), so that an absurd
/// `RAYON_NUM_THREADS` is an error rather than rayon starting every thread
/// it asks for; a program that uses rayon before them, or builds the global
/// pool itself, decides its size itself. A wasm32 build has one thread and
/// nothing to start.
///
/// It first checks the engine's own variables ([`check_env`]), every call.
///
/// # Errors
/// As [`check_env`]; [`crate::Error::Config`] for a `threads` or an
/// environment outside 1..=[`max_threads`] (see [`env_threads`]);
/// [`crate::Error::Value`] naming the threads when the system will not
/// start them ([`thread_refused`]).
pub fn start_global_pool(threads: Option<usize>) -> crate::Result<()> {
    check_env()?;
    if cfg!(target_family = "wasm")
        || GLOBAL_STARTED.load(Ordering::Acquire)
        || rayon::current_thread_index().is_some()
    {
        return Ok(());
    }
    let n = match threads {
        Some(n) => check_threads("threads", n)?,
        None => match env_threads()? {
            Some(n) => n,
            None => cpus(),
        },
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
    {
        Ok(()) => {
            // Under an address-space limit, every thread has started and
            // taken its heap (the C library reserves up to 64 MB of address
            // space for each) before the memory checks measure what the
            // limit leaves (`memory::room`).
            if crate::memory::address_space_limit_now().is_some() {
                rayon::broadcast(|_| drop(std::hint::black_box(Vec::<u8>::with_capacity(64))));
            }
        }
        // Started already (by the program, or by rayon on first use): its
        // size is what it is. (Only a failure to start threads has a source.)
        Err(e) if std::error::Error::source(&e).is_none() => {}
        Err(e) => {
            let e = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
            return Err(thread_refused(&format!("{n} worker threads"), &e));
        }
    }
    GLOBAL_STARTED.store(true, Ordering::Release);
    Ok(())
}

/// The error for `what` (threads) that the system would not start, `e` its
/// reason.
pub fn thread_refused(what: &str, e: &dyn std::fmt::Display) -> crate::Error {
    crate::Error::Value {
        reason: format!(
            "cannot start {what}: {e}: the system refuses another thread (the process limit `ulimit -u`, or the memory a thread's stack and heap take under the address-space limit `ulimit -v`)\n---> HINT: use fewer threads (--threads N), or raise the limit"
        ),
    }
}

/// [`start_global_pool`]`(None)` the first time, then only an atomic load:
/// what the model's own entry points ([`crate::nn::Autoencoder::forward`],
/// `decode`, `loss_and_grad`) call, so that a program that uses the model
/// directly gets the same error for an absurd `RAYON_NUM_THREADS` as one
/// that trains through [`crate::train`] (they run far more often than the
/// training entry points, so the engine's variables are checked only when
/// the pool starts). Nothing on a pool's thread, as [`start_global_pool`].
///
/// # Errors
/// As [`start_global_pool`].
pub fn ensure_global_pool() -> crate::Result<()> {
    if GLOBAL_STARTED.load(Ordering::Acquire) || rayon::current_thread_index().is_some() {
        return Ok(());
    }
    start_global_pool(None)
}

/// The choice, step by step, between splitting a loop's steps over the pool
/// and running them on the loop's thread alone, by the time each step took.
///
/// It stays with one choice (its *home*) and now and then tries the other
/// for [`Pace::PROBE`] steps: after [`Pace::MIN_GAP`] steps at first, the gap
/// doubling up to [`Pace::MAX_GAP`] while the home stays the faster (and at
/// least long enough that a probe's extra time is about 1 % of the time
/// between probes: a probe twice as slow as the home waits 300 steps), and
/// at once when the median of the home's last three steps is 25 % above what
/// it was when the home was chosen and above what the other choice took
/// when last tried. It moves home when the other choice's
/// fastest probe step beats that median by 5 % (the fastest and the median,
/// so that one step that also read a chunk of data or ran an evaluation
/// decides nothing). Pure bookkeeping: the caller times the steps.
#[derive(Clone, Debug)]
pub struct Pace {
    policy: Policy,
    /// The choice for the step now starting.
    serial: bool,
    home_serial: bool,
    /// The home's last step times, newest last (seconds).
    home: Vec<f64>,
    /// The probed choice's step times so far.
    probe: Vec<f64>,
    /// The home's median step when it was last chosen or confirmed.
    home_ref: f64,
    /// The other choice's fastest step when it was last tried.
    other_ref: f64,
    until_probe: u32,
    gap: u32,
    steps: u64,
    serial_steps: u64,
}

impl Pace {
    /// Steps in a probe of the other choice.
    pub const PROBE: usize = 3;
    /// Home steps before the first probe, and after a move.
    pub const MIN_GAP: u32 = 16;
    /// Most home steps between probes.
    pub const MAX_GAP: u32 = 1024;
    /// Home step times kept.
    const KEEP: usize = 3;

    /// A pace that starts with split steps.
    pub fn new(policy: Policy) -> Self {
        Pace {
            policy,
            serial: false,
            home_serial: false,
            home: Vec::new(),
            probe: Vec::new(),
            home_ref: f64::INFINITY,
            other_ref: 0.0,
            until_probe: Self::MIN_GAP,
            gap: Self::MIN_GAP,
            steps: 0,
            serial_steps: 0,
        }
    }

    /// Whether the step now starting runs on one thread.
    pub fn serial(&self) -> bool {
        self.serial
    }

    /// Steps counted so far, and how many of them ran on one thread.
    pub fn counts(&self) -> (u64, u64) {
        (self.steps, self.serial_steps)
    }

    /// Ends the step now running, which took `secs` (`None` for the first
    /// beat, which ends no step), and chooses the next one's way.
    pub fn next(&mut self, secs: Option<f64>) -> bool {
        if let Some(t) = secs {
            self.steps += 1;
            self.serial_steps += u64::from(self.serial);
            match self.policy {
                Policy::Split => {}
                Policy::Alternate => self.serial = !self.serial,
                Policy::Measured => self.measured(t),
            }
        }
        self.serial
    }

    fn measured(&mut self, t: f64) {
        let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        // (Of the home's at most KEEP times, in place: a beat allocates
        // nothing.)
        let median = |v: &[f64]| {
            let mut a = [0.0; Self::KEEP];
            let a = &mut a[..v.len()];
            a.copy_from_slice(v);
            a.sort_by(f64::total_cmp);
            a[a.len() / 2]
        };
        if self.serial != self.home_serial {
            self.probe.push(t);
            if self.probe.len() < Self::PROBE {
                return;
            }
            let (tried, home) = (fastest(&self.probe), median(&self.home));
            if tried < 0.95 * home {
                self.home_serial = !self.home_serial;
                std::mem::swap(&mut self.home, &mut self.probe);
                self.home
                    .drain(..self.home.len().saturating_sub(Self::KEEP));
                self.home_ref = tried;
                self.other_ref = home;
                self.gap = Self::MIN_GAP;
            } else {
                self.home_ref = home;
                self.other_ref = tried;
                // A probe costs its steps' extra time: keep it near 1 % of
                // the home steps between probes.
                let cost = Self::PROBE as f64 * (tried / home - 1.0) * 100.0;
                let cost_gap = if cost.is_finite() {
                    cost.clamp(0.0, Self::MAX_GAP as f64) as u32
                } else {
                    Self::MAX_GAP
                };
                self.gap = (self.gap * 2).max(cost_gap).min(Self::MAX_GAP);
            }
            self.probe.clear();
            self.until_probe = self.gap;
            self.serial = self.home_serial;
            return;
        }
        if self.home.len() == Self::KEEP {
            self.home.remove(0);
        }
        self.home.push(t);
        if self.home.len() < Self::KEEP {
            return;
        }
        if self.home_ref.is_infinite() {
            self.home_ref = median(&self.home);
        }
        self.until_probe = self.until_probe.saturating_sub(1);
        // (A home grown slow only calls a probe once it is slower than the
        // other choice was: a 40 % slower split step is still faster than
        // one thread at half the speed.)
        if median(&self.home) > (1.25 * self.home_ref).max(0.95 * self.other_ref) {
            self.until_probe = 0;
        }
        if self.until_probe == 0 {
            self.serial = !self.home_serial;
        }
    }
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
        Self::with_policy(Policy::active())
    }

    /// A guard whose steps split or not as `policy` says.
    pub fn with_policy(policy: Policy) -> Self {
        Self::resume(Pace::new(policy))
    }

    /// A guard that goes on with the choices of `pace` (from
    /// [`KeepAwake::pace`] of an earlier guard of the same loop, say one per
    /// `rayon::scope`).
    pub fn resume(pace: Pace) -> Self {
        KeepAwake {
            pace: RefCell::new((pace, None)),
            was_serial: serial(),
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
    ///
    /// A beat also ends the step since the last one, times it, and chooses
    /// the next step's way ([`Pace`]): on this thread, [`serial`] says which.
    /// While steps run on one thread the spinners get no beats, so they stop
    /// after [`IDLE`]. On a one-thread pool a beat does nothing (there is
    /// nothing to choose, nor to keep awake).
    pub fn beat(&self) {
        if self.want == 0 {
            return;
        }
        let serial_now = {
            let (pace, last) = &mut *self.pace.borrow_mut();
            let now = Instant::now();
            let took = last.map(|t| now.duration_since(t).as_secs_f64());
            *last = Some(now);
            pace.next(took)
        };
        SERIAL.with(|c| c.set(serial_now));
        if serial_now {
            return;
        }
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

impl KeepAwake {
    /// Steps beaten so far, and how many of them ran on one thread.
    pub fn counts(&self) -> (u64, u64) {
        self.pace.borrow().0.counts()
    }

    /// The choices so far, for [`KeepAwake::resume`].
    pub fn pace(&self) -> Pace {
        self.pace.borrow().0.clone()
    }

    /// Leaves the steps for a while (a validation pass, say): until the next
    /// beat this thread splits its work as it did before the guard, and the
    /// time until then is no step's.
    pub fn rest(&self) {
        self.pace.borrow_mut().1 = None;
        SERIAL.with(|c| c.set(self.was_serial));
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        SERIAL.with(|c| c.set(self.was_serial));
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
    let mut last_idle: Option<Instant> = None;
    while !s.stop.load(Ordering::Relaxed) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
            let now = Instant::now();
            if last_idle.is_some_and(|t| now.duration_since(t) > PREEMPTED) {
                // Preempted between two idle rounds: this thread shares its
                // CPU with another busy one (the loop's, say). A short
                // sleep hands the CPU back, and the wake-up places this
                // thread on an idle CPU if there is one.
                std::thread::sleep(Duration::from_micros(20));
                last_idle = None;
                continue;
            }
            last_idle = Some(now);
        } else {
            last_idle = None;
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

    /// A round trip between two threads takes some time, less than a round's
    /// limit; a round whose trips never come back ends at the limit with
    /// `None` instead of waiting for ever.
    #[test]
    fn round_trips_end() {
        if cpus() >= 2 {
            let d = round_trip().unwrap().expect("two CPUs, some trip ended");
            assert!(d > Duration::ZERO && d < ROUND_TRIP_ROUND_LIMIT, "{d:?}");
        } else {
            assert_eq!(round_trip().unwrap(), None);
        }
        let start = Instant::now();
        assert_eq!(round_trip_round(false).unwrap(), None);
        let took = start.elapsed();
        assert!(
            took >= ROUND_TRIP_ROUND_LIMIT && took < 50 * ROUND_TRIP_ROUND_LIMIT,
            "{took:?}"
        );
    }

    /// The thread count of an environment holding `vars`.
    fn threads_of(vars: &[(&str, &str)]) -> crate::Result<Option<usize>> {
        threads_from(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        })
    }

    /// Thread counts from the environment are read as rayon reads them, and
    /// one rayon would ignore or take to start a hundred thousand threads
    /// is refused by name.
    #[test]
    fn thread_counts_from_the_environment() {
        assert_eq!(threads_of(&[]).unwrap(), None);
        assert_eq!(threads_of(&[("RAYON_NUM_THREADS", "3")]).unwrap(), Some(3));
        assert_eq!(threads_of(&[("RAYON_NUM_THREADS", " 0 ")]).unwrap(), None);
        assert_eq!(threads_of(&[("RAYON_NUM_THREADS", "")]).unwrap(), None);
        assert_eq!(threads_of(&[("RAYON_RS_NUM_CPUS", "2")]).unwrap(), Some(2));
        assert_eq!(
            threads_of(&[("RAYON_NUM_THREADS", "4"), ("RAYON_RS_NUM_CPUS", "9")]).unwrap(),
            Some(4)
        );
        let most = max_threads();
        assert!(most >= 1024);
        assert_eq!(
            threads_of(&[("RAYON_NUM_THREADS", &most.to_string())]).unwrap(),
            Some(most)
        );
        for (name, value, says) in [
            ("RAYON_NUM_THREADS", "100000", "got 100000"),
            (
                "RAYON_NUM_THREADS",
                "18446744073709551616",
                "got 18446744073709551616",
            ),
            ("RAYON_NUM_THREADS", "-4", "got `-4`"),
            ("RAYON_NUM_THREADS", "four", "got `four`"),
            ("RAYON_RS_NUM_CPUS", "100000", "got 100000"),
        ] {
            let e = threads_of(&[(name, value)]).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(says), "{value}: {e}");
        }
        let e = check_threads("threads", 0).unwrap_err().to_string();
        assert!(e.contains("threads: must be between 1 and"), "{e}");
    }

    /// Runs `f` on a new pool of `threads` threads.
    fn on_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// A spinner starts on the other thread, runs joined work, and stops
    /// after IDLE without beats and when the guard goes.
    #[test]
    fn spinners_start_serve_and_stop() {
        on_pool(2, || {
            let guard = KeepAwake::with_policy(Policy::Split);
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
        on_pool(2, || {
            let guard = KeepAwake::with_policy(Policy::Split);
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

    /// Inside a part of a job the kernels see their share of the pool: none
    /// to spare on two or three threads, half of four, a quarter of eight
    /// in a part of a part; the outer share comes back after the part, and
    /// a one-thread step sees one thread whatever the part.
    #[test]
    fn parts_share_the_pool() {
        for (threads, half, quarter) in [(1, 1, 1), (2, 1, 1), (3, 1, 1), (4, 2, 1), (8, 4, 2)] {
            on_pool(threads, || {
                assert!(!in_part());
                assert_eq!(pool_threads(), threads);
                let (a, b) = join(
                    || as_part(|| (pool_threads(), as_part(pool_threads), in_part())),
                    || as_part(pool_threads),
                );
                assert_eq!((a, b), ((half, quarter, true), half), "{threads} threads");
                assert!(!in_part());
                assert_eq!(pool_threads(), threads);
                SERIAL.with(|c| c.set(true));
                assert_eq!(as_part(|| (pool_threads(), awake_threads())), (1, 1));
                SERIAL.with(|c| c.set(false));
            });
        }
    }

    /// A part's small operations split over the spinners only within its
    /// share: with four threads kept awake, a part splits over two.
    #[test]
    fn awake_parts_split_within_their_share() {
        on_pool(4, || {
            let guard = KeepAwake::with_policy(Policy::Split);
            guard.beat();
            let t = Instant::now();
            // This guard's three spinners run (each counted in SPINNING).
            let running = || {
                guard.shared.started.load(Ordering::Relaxed) >= 3
                    && guard.shared.live.load(Ordering::Acquire) == 3
                    && SPINNING.load(Ordering::Relaxed) >= 3
            };
            while !running() && t.elapsed() < Duration::from_secs(20) {
                guard.beat();
                std::thread::yield_now();
            }
            assert!(running(), "the spinners did not start");
            guard.beat();
            assert_eq!(awake_threads(), 4);
            assert_eq!(as_part(awake_threads), 2);
            assert_eq!(as_part(|| as_part(awake_threads)), 1);
        });
    }

    /// A large pool gets at most MAX_SPINNERS spinners.
    #[test]
    fn spinners_are_capped() {
        on_pool(MAX_SPINNERS + 3, || {
            let guard = KeepAwake::with_policy(Policy::Split);
            assert_eq!(guard.want, MAX_SPINNERS);
            for _ in 0..100 {
                guard.beat();
                assert!(guard.shared.live.load(Ordering::Acquire) <= MAX_SPINNERS);
                std::thread::yield_now();
            }
        });
    }

    /// Runs `steps` steps through `pace`, step `i` taking `cost(i, serial)`:
    /// the total time and the steps run on one thread.
    fn simulate(pace: &mut Pace, steps: usize, cost: impl Fn(usize, bool) -> f64) -> (f64, u64) {
        let mut total = 0.0;
        let mut serial = pace.next(None);
        let before = pace.counts().1;
        for i in 0..steps {
            let t = cost(i, serial);
            total += t;
            serial = pace.next(Some(t));
        }
        (total, pace.counts().1 - before)
    }

    /// Where split steps are the faster, only the probes run on one thread,
    /// and they thin out: well under 1 % of the steps, under 0.1 % of the time.
    #[test]
    fn pace_keeps_splitting_where_it_pays() {
        let mut pace = Pace::new(Policy::Measured);
        let cost = |_, serial| if serial { 1.10 } else { 1.0 };
        let (total, serial) = simulate(&mut pace, 20_000, cost);
        assert!(serial > 0, "never tried one thread");
        assert!(serial < 200, "{serial} of 20000 steps on one thread");
        assert!(total < 20_000.0 * 1.001, "{total}");
    }

    /// Where split steps are three times slower, steps move to one thread
    /// within the first probe, and probes of the split thin out.
    #[test]
    fn pace_moves_to_one_thread_where_splitting_is_slow() {
        let mut pace = Pace::new(Policy::Measured);
        let cost = |_, serial| if serial { 1.10 } else { 3.0 };
        let (_, first) = simulate(&mut pace, 40, cost);
        assert!(
            first >= 40 - (Pace::MIN_GAP as u64 + 2 * Pace::PROBE as u64 + 2),
            "{first}"
        );
        let (total, serial) = simulate(&mut pace, 20_000, cost);
        assert!(serial > 20_000 - 100, "{serial}");
        assert!(total < 20_000.0 * 1.10 * 1.01, "{total}");
    }

    /// A slow episode in the middle of a run (the split three times slower
    /// for 3000 steps): it is seen within a few steps, and the split is back
    /// within the longest gap between probes after it ends. Against the
    /// best choice step by step, the run loses under 5 %.
    #[test]
    fn pace_follows_an_episode() {
        let mut pace = Pace::new(Policy::Measured);
        let slow = 5_000..8_000;
        let cost = |i, serial| match (serial, slow.contains(&i)) {
            (true, _) => 1.10,
            (false, false) => 1.0,
            (false, true) => 3.0,
        };
        let mut serial_at = Vec::new();
        let mut s = pace.next(None);
        let mut total = 0.0;
        for i in 0..12_000 {
            serial_at.push(s);
            let t = cost(i, s);
            total += t;
            s = pace.next(Some(t));
        }
        let share = |r: std::ops::Range<usize>, one: bool| {
            serial_at[r.clone()].iter().filter(|&&x| x == one).count() as f64 / r.len() as f64
        };
        let onset = (slow.start..slow.end).find(|&i| serial_at[i]);
        assert!(onset.is_some_and(|i| i < slow.start + 10), "{onset:?}");
        assert!(share(slow.clone(), true) > 0.97);
        let most = Pace::MAX_GAP as usize + Pace::KEEP + Pace::PROBE;
        assert!(share(slow.end + most..12_000, false) > 0.99);
        let best: f64 = (0..12_000).map(|i| cost(i, false).min(cost(i, true))).sum();
        assert!(total < best * 1.05, "{total} against {best}");
    }

    /// Where one thread takes twice as long as the split, a probe costs as
    /// much as a whole step, so probes come rarely: 2 in the first 600 steps
    /// (the doubling gap alone made 5: 3 % of the time), and a split grown
    /// 40 % slower for a while (still faster than one thread) calls no probe
    /// before its time, where one grown slower than one thread moves the
    /// steps at once.
    #[test]
    fn pace_probes_rarely_where_one_thread_is_far_slower() {
        let mut pace = Pace::new(Policy::Measured);
        let cost = |_, serial| if serial { 2.0 } else { 1.0 };
        let (total, serial) = simulate(&mut pace, 600, cost);
        assert_eq!(serial, 2 * Pace::PROBE as u64);
        assert!(total < 600.0 * 1.011, "{total}");
        let episode = |slow: f64| {
            move |i: usize, serial| match (serial, (100..300).contains(&i)) {
                (true, _) => 2.0,
                (false, false) => 1.0,
                (false, true) => slow,
            }
        };
        // No step of the slow stretch on one thread (the probe due anyway
        // comes after it).
        let mut calm = pace.clone();
        let mut one = calm.next(None);
        for i in 0..400 {
            assert!(!(one && (100..300).contains(&i)), "a probe at step {i}");
            one = calm.next(Some(episode(1.4)(i, one)));
        }
        let (_, moved) = simulate(&mut pace, 400, episode(2.5));
        assert!(moved > 150, "{moved} of the 200 slow steps on one thread");
    }

    /// One slow step now and then (a validation pass, a chunk read from
    /// disk) moves nothing: the split stays home.
    #[test]
    fn pace_ignores_single_slow_steps() {
        let mut pace = Pace::new(Policy::Measured);
        let cost = |i: usize, serial| match (serial, i.is_multiple_of(97)) {
            (_, true) => 50.0,
            (true, false) => 1.10,
            (false, false) => 1.0,
        };
        let (_, serial) = simulate(&mut pace, 20_000, cost);
        assert!(serial < 200, "{serial}");
    }

    /// `Split` never chooses one thread, `Alternate` every other step.
    #[test]
    fn fixed_policies() {
        let mut pace = Pace::new(Policy::Split);
        assert_eq!(
            simulate(&mut pace, 100, |_, s| if s { 1.0 } else { 9.0 }).1,
            0
        );
        let mut pace = Pace::new(Policy::Alternate);
        assert_eq!(simulate(&mut pace, 100, |_, _| 1.0).1, 50);
    }

    /// While a guard has chosen one thread, every part of a join, every task
    /// and every item of a parallel iterator limited by `min_len` runs on
    /// the loop's own thread, and the kernels see one thread; `rest` and
    /// the guard's end restore the split.
    #[test]
    fn one_thread_steps_stay_on_the_loop_thread() {
        use rayon::prelude::*;
        on_pool(2, || {
            let me = rayon::current_thread_index();
            let guard = KeepAwake::with_policy(Policy::Alternate);
            let mut serial_steps = 0;
            for _ in 0..40 {
                guard.beat();
                if !serial() {
                    assert_eq!(pool_threads(), 2);
                    continue;
                }
                serial_steps += 1;
                assert_eq!((pool_threads(), awake_threads(), awake()), (1, 1, false));
                let seen: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
                let mark = |k: usize| {
                    assert_eq!(rayon::current_thread_index(), me);
                    seen[k].fetch_add(1, Ordering::Relaxed);
                };
                // The first part is long enough (1 ms, within IDLE of the
                // last split step's beat) for a spinner to take the second.
                join(
                    || {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(1) {
                            std::hint::spin_loop();
                        }
                        mark(0)
                    },
                    || mark(1),
                );
                for_each_task(8, |_| mark(2));
                let mut v = vec![0u8; 4096];
                v.par_chunks_mut(16).with_min_len(min_len(1)).for_each(|c| {
                    assert_eq!(rayon::current_thread_index(), me);
                    c[0] = 1;
                });
                let hits: Vec<usize> = seen.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                assert_eq!(hits, [1, 1, 8]);
                assert!(v.chunks(16).all(|c| c[0] == 1));
            }
            // (The 40th step has not ended yet.)
            assert_eq!((serial_steps, guard.counts()), (20, (39, 19)));
            // The 40th beat chose one thread; a rest splits until the next.
            guard.rest();
            assert!(!serial());
            assert_eq!(pool_threads(), 2);
            guard.beat();
            assert!(serial());
            drop(guard);
            assert!(!serial());
        });
    }

    /// On a one-thread pool there is nobody to keep awake.
    #[test]
    fn one_thread_spawns_nothing() {
        on_pool(1, || {
            let guard = KeepAwake::with_policy(Policy::Split);
            guard.beat();
            assert_eq!(guard.shared.live.load(Ordering::Acquire), 0);
        });
    }
}
