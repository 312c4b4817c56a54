//! The memory budget: before a command allocates its large buffers
//! (parameters, gradients, optimizer state, workspaces at the batch size,
//! evaluation buffers), it works out what they need and refuses what exceeds
//! the budget with [`Error::Memory`], instead of aborting when the
//! allocation fails.
//!
//! The default budget is three quarters of the machine's memory (`MemTotal`
//! in `/proc/meminfo`) or half the process's address-space limit
//! (`ulimit -v`, from `/proc/self/limits`), whichever is smaller; where
//! neither can be read it is [`FALLBACK_BUDGET`]. [`set_budget`] replaces it
//! for the whole process (the command line's `--max-memory`). No budget is
//! more than [`MAX_BUDGET`], the most one allocation can hold: 2 GiB with
//! 32-bit pointers (wasm32), so a model or batch a 32-bit address space
//! cannot hold is refused by the check, never allocated.
//!
//! Under an address-space limit, a buffer must also fit in what the limit
//! leaves now ([`room`]): the address space the process already uses
//! (`VmSize` in `/proc/self/status`: the program, its threads' stacks, the
//! heaps the C library reserves for each thread, the buffers alive) is
//! taken off the limit, and a buffer may have half of the rest, the other
//! half being kept for what no check counts (temporaries, small buffers).
//! Large buffers are reserved fallibly ([`try_vec`], [`try_with_capacity`]):
//! one the system refuses anyway is an error naming it, not an abort; what
//! is allocated infallibly (a dependency's gzip or PNG state, the packing
//! buffers) is checked first with [`check_address_space`].

use crate::error::{Error, Result};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most a budget can be: `isize::MAX` bytes, the most one allocation
/// can hold. With 32-bit pointers (wasm32, 32-bit ARM and x86) that is
/// 2 GiB − 1 byte, half of what the address space can hold, whatever the
/// machine has (under WASI, `/proc/meminfo` is the host's: 19 GB was taken
/// as the budget of a 4 GiB address space); on a 64-bit target it is
/// beyond any machine.
pub const MAX_BUDGET: u64 = isize::MAX as u64;

/// The budget where the machine's memory cannot be read: 4 GiB (at most
/// [`MAX_BUDGET`]).
pub const FALLBACK_BUDGET: u64 = if MAX_BUDGET < 4 << 30 {
    MAX_BUDGET
} else {
    4 << 30
};

/// 0 = not set: the default applies.
static BUDGET: AtomicU64 = AtomicU64::new(0);

/// Bytes of the counted buffers alive now (see [`Held`]).
static HELD: AtomicU64 = AtomicU64::new(0);

/// The bytes of a large buffer that lives on once counted (a data set read
/// into memory, a trainer's parameters, state and workspaces): every later
/// [`check`] counts them against the budget until the `Held` is dropped, so
/// the budget bounds what the process holds at once, not each buffer alone.
/// A clone counts the bytes again, as a clone of the buffer would.
#[derive(Debug, Default)]
pub struct Held(u64);

impl Held {
    /// Counts `bytes` as held until the returned value is dropped.
    pub fn new(bytes: u64) -> Held {
        HELD.fetch_add(bytes, Ordering::Relaxed);
        Held(bytes)
    }

    /// The bytes this value holds.
    pub fn bytes(&self) -> u64 {
        self.0
    }
}

impl Clone for Held {
    fn clone(&self) -> Held {
        Held::new(self.0)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Bytes held now by the living [`Held`] values of this process.
pub fn held() -> u64 {
    HELD.load(Ordering::Relaxed)
}

/// The budget in bytes (at most [`MAX_BUDGET`]).
pub fn budget() -> u64 {
    match BUDGET.load(Ordering::Relaxed) {
        0 => default_budget(),
        b => b.min(MAX_BUDGET),
    }
}

/// Replaces the budget for the whole process (`bytes` ≥ 1; more than
/// [`MAX_BUDGET`] is taken as that).
pub fn set_budget(bytes: u64) {
    BUDGET.store(bytes.max(1), Ordering::Relaxed);
}

/// The machine's default budget (see the module doc), read once; at most
/// [`MAX_BUDGET`].
pub fn default_budget() -> u64 {
    static DEFAULT: OnceLock<u64> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| mem_total(&s))
            .map(|b| b / 4 * 3);
        let limit = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| address_space_limit(&s))
            .map(|b| b / 2);
        match (total, limit) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => FALLBACK_BUDGET,
        }
        .clamp(1, MAX_BUDGET)
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The soft "Max address space" of a `/proc/self/limits` text, in bytes
/// (`None` when unlimited).
fn address_space_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The address-space limit of this process (`ulimit -v`), read once, in
/// bytes; `None` when there is none or the system does not tell.
pub fn address_space_limit_now() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| address_space_limit(&s))
    })
}

/// The address space this process uses now (`VmSize` in
/// `/proc/self/status`), in bytes; `None` where the system does not tell.
pub fn address_space_used() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_size(&s))
}

/// `VmSize` of a `/proc/self/status` text, in bytes.
fn vm_size(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// What an address-space limit leaves now: the limit and the bytes of it in
/// use (`None` without a limit, or where the use cannot be read).
fn address_space() -> Option<(u64, u64)> {
    let limit = address_space_limit_now()?;
    Some((limit, address_space_used()?))
}

/// Bytes a new buffer may take now: what the budget leaves beside the
/// buffers [`Held`] and, under an address-space limit, half of what the
/// limit leaves beside the address space in use (the other half is kept for
/// what no check counts).
pub fn room() -> u64 {
    let budget_room = budget().saturating_sub(held());
    match address_space() {
        Some((limit, used)) => budget_room.min(limit.saturating_sub(used) / 2),
        None => budget_room,
    }
}

/// Refuses `needs` bytes for `what` when they exceed half of what the
/// address-space limit leaves beside the address space in use now.
///
/// # Errors
/// [`Error::Value`] naming `what`, the limit, what is in use and what to do.
pub fn check_address_space(what: &str, needs: u64) -> Result<()> {
    match address_space() {
        Some((limit, used)) => check_address_space_against(what, needs, limit, used),
        None => Ok(()),
    }
}

/// [`check_address_space`] with a `limit` of which `used` bytes are in use.
fn check_address_space_against(what: &str, needs: u64, limit: u64, used: u64) -> Result<()> {
    let left = limit.saturating_sub(used);
    if needs <= left / 2 {
        return Ok(());
    }
    Err(Error::Value {
        reason: format!(
            "{what} needs {}, more than the address-space limit (`ulimit -v`) of {} leaves: {} of it are in use (the program, its threads' stacks and heaps, the data and models in memory), and of the {} left half is kept for what no check counts\n---> HINT: raise the limit (`ulimit -v`), or use less: fewer threads (--threads N), a smaller batch or model, fewer samples",
            show(needs),
            show(limit),
            show(used.min(limit)),
            show(left)
        ),
    })
}

/// Refuses `needs` bytes for `what` beyond what this target's address space
/// can hold in one allocation ([`MAX_BUDGET`]: 2 GiB with 32-bit pointers),
/// whatever the budget: a length worked out for them could overflow, and
/// the allocation would panic (`capacity overflow`).
///
/// # Errors
/// [`Error::Value`] naming `what`, the need and the limit.
pub fn check_size(what: &str, needs: u64) -> Result<()> {
    if needs <= MAX_BUDGET {
        return Ok(());
    }
    Err(Error::Value {
        reason: format!(
            "{what} needs {}, more than this target's {}-bit address space can hold ({} at most, the most one allocation can be)\n---> HINT: a smaller model or batch size{}",
            match needs {
                u64::MAX => "more bytes than a 64-bit count holds".to_string(),
                n => show(n),
            },
            usize::BITS,
            show(MAX_BUDGET),
            if usize::BITS < 64 {
                ", or a 64-bit build"
            } else {
                ""
            }
        ),
    })
}

/// The error for a buffer of `needs` bytes for `what` that the system
/// refused to allocate ([`check_size`]'s, with 32-bit pointers, for one
/// larger than the address space can hold).
pub fn refused(what: &str, needs: u64) -> Error {
    if usize::BITS < 64
        && let Err(e) = check_size(what, needs)
    {
        return e;
    }
    let limit = match address_space_limit_now() {
        Some(l) => format!(" of {}", show(l)),
        None => String::new(),
    };
    Error::Value {
        reason: format!(
            "{what} needs {}, which the system refuses to allocate (out of memory, or the address-space limit `ulimit -v`{limit} reached)\n---> HINT: raise the limit, or use less: fewer threads (--threads N), a smaller batch or model, fewer samples",
            show(needs)
        ),
    }
}

/// An empty vector with room for `n` values, reserved fallibly: a size the
/// system refuses is an error naming `what` ([`refused`]), not an abort.
///
/// # Errors
/// [`Error::Value`] when the system refuses the buffer.
pub fn try_with_capacity<T>(what: &str, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| refused(what, bytes(n, std::mem::size_of::<T>())))?;
    Ok(v)
}

/// `n` copies of `value` in a buffer reserved fallibly ([`try_with_capacity`]).
///
/// # Errors
/// [`Error::Value`] when the system refuses the buffer.
pub fn try_vec<T: Clone>(what: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_with_capacity(what, n)?;
    v.resize(n, value);
    Ok(v)
}

/// [`try_vec`] of a length worked out in u64 (saturating): one beyond
/// `usize` is refused as the system would refuse it.
///
/// # Errors
/// [`Error::Value`] when the system refuses the buffer.
pub fn try_vec_u64<T: Clone>(what: &str, n: u64, value: T) -> Result<Vec<T>> {
    match usize::try_from(n) {
        Ok(n) => try_vec(what, n, value),
        Err(_) => Err(refused(
            what,
            n.saturating_mul(std::mem::size_of::<T>() as u64),
        )),
    }
}

/// Bytes of `n` values of `elem` bytes each (saturating).
pub fn bytes(n: usize, elem: usize) -> u64 {
    (n as u64).saturating_mul(elem as u64)
}

/// Bytes a vector's buffer holds (its capacity).
pub fn vec_bytes<V>(v: &Vec<V>) -> u64 {
    bytes(v.capacity(), std::mem::size_of::<V>())
}

/// Bytes of `n` f32 values (saturating).
pub fn f32_bytes(n: usize) -> u64 {
    bytes(n, 4)
}

/// A size for a message: `1.25 GB`, `310 MB` or `12 kB` (decimal units).
pub fn show(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes == u64::MAX {
        // Sizes are added and multiplied saturating: this one overflowed.
        "more bytes than a 64-bit address space holds".to_string()
    } else if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else if bytes >= 1000 {
        format!("{:.0} kB", b / 1e3)
    } else {
        // Below a kilobyte: in bytes (a budget of 1 B and a need of 600 B
        // both read "1 kB" rounded up).
        format!("{bytes} B")
    }
}

/// Refuses `needs` bytes for `what` if they exceed what the budget leaves
/// beside the buffers already [`Held`], or what the address-space limit
/// leaves ([`check_address_space`]).
///
/// # Errors
/// [`Error::Memory`] naming `what`, the need, the budget and what is held;
/// [`Error::Value`] naming the address-space limit.
pub fn check(what: &str, needs: u64) -> Result<()> {
    check_against(what, needs, budget(), held())?;
    check_address_space(what, needs)?;
    // Past the machine's own budget (a budget raised by hand), ask the
    // system first: a refused allocation would abort the process.
    if needs > default_budget() {
        check_system(what, needs)?;
    }
    Ok(())
}

/// Refuses `needs` bytes for `what` when the system will not reserve them
/// (the address-space limit, `ulimit -v`, or more than an allocation can
/// be): a buffer that large would abort the process, not fail.
///
/// # Errors
/// [`Error::Value`] naming `what` and the size.
pub fn check_system(what: &str, needs: u64) -> Result<()> {
    let mut probe: Vec<u8> = Vec::new();
    let fits = usize::try_from(needs).is_ok_and(|n| probe.try_reserve_exact(n).is_ok());
    if fits {
        return Ok(());
    }
    Err(Error::Value {
        reason: format!(
            "{what} needs {}, which the system refuses to reserve (its memory, or the address-space limit `ulimit -v`); the memory budget was raised past what this machine has\n---> HINT: lower --max-memory GB, or use less (a smaller batch, fewer samples or units)",
            show(needs)
        ),
    })
}

/// [`check`] against an explicit budget of which `held` bytes are taken.
///
/// # Errors
/// [`Error::Memory`] if `needs > budget − held`.
pub fn check_against(what: &str, needs: u64, budget: u64, held: u64) -> Result<()> {
    if needs > budget.saturating_sub(held) {
        return Err(Error::Memory {
            what: what.to_owned(),
            needs,
            budget,
            held,
        });
    }
    Ok(())
}

/// The largest batch in `1..=want` whose `fixed + batch·per_sample` bytes
/// fit the budget and the address space left ([`room`]), for evaluation and
/// inference, which may run in batches of any size.
///
/// # Errors
/// As [`check`], if not even one sample fits.
pub fn fitting_batch(what: &str, want: usize, fixed: u64, per_sample: u64) -> Result<usize> {
    let (budget, held) = (budget(), held());
    check_against(what, fixed.saturating_add(per_sample), budget, held)?;
    check_address_space(what, fixed.saturating_add(per_sample))?;
    let room = (room().saturating_sub(fixed)) / per_sample.max(1);
    Ok(want.clamp(1, usize::try_from(room).unwrap_or(usize::MAX).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A size the system cannot reserve is an error, not an abort; one it
    /// can passes.
    #[test]
    fn sizes_the_system_refuses_are_errors() {
        let e = check_system("the test's buffer", u64::MAX / 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the test's buffer") && e.contains("refuses"),
            "{e}"
        );
        check_system("a small buffer", 1 << 20).unwrap();
    }

    /// `VmSize` is read from the status text; this process's own is there
    /// on Linux.
    #[test]
    fn reads_the_address_space_in_use() {
        let status = "Name:\tsparse-ae\nVmPeak:\t  300000 kB\nVmSize:\t  245940 kB\n";
        assert_eq!(vm_size(status), Some(245_940 * 1024));
        assert_eq!(vm_size("nothing"), None);
        if cfg!(target_os = "linux") {
            assert!(address_space_used().is_some_and(|b| b > 0));
        }
        assert!(room() <= budget());
    }

    /// A buffer may have half of what the limit leaves beside the address
    /// space in use; the error names the need, the limit, the use and what
    /// to do; a use past the limit leaves nothing.
    #[test]
    fn what_the_address_space_limit_leaves_is_checked() {
        check_address_space_against("x", 50, 200, 100).unwrap();
        assert!(check_address_space_against("x", 51, 200, 100).is_err());
        let e = check_address_space_against("reading t10k", 6_000_000, 150_000_000, 140_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("reading t10k needs 6 MB, more than the address-space limit (`ulimit -v`) of 150 MB leaves: 140 MB of it are in use")
                && e.contains("raise the limit")
                && e.contains("--threads"),
            "{e}"
        );
        assert!(check_address_space_against("x", 1, 100, 200).is_err());
    }

    /// No budget is past what one allocation can hold; a size past it is
    /// refused by name whatever the budget.
    #[test]
    fn sizes_past_an_allocation_are_refused() {
        assert!(budget() <= MAX_BUDGET && default_budget() <= MAX_BUDGET);
        check_size("x", MAX_BUDGET).unwrap();
        for needs in [MAX_BUDGET + 1, u64::MAX] {
            let e = check_size("the test's buffer", needs)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("the test's buffer needs") && e.contains("address space can hold ("),
                "{e}"
            );
        }
    }

    /// A buffer the system refuses is an error naming it, not an abort.
    #[test]
    fn refused_buffers_are_errors() {
        let e = try_vec::<u64>("the test's buffer", usize::MAX / 4, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the test's buffer") && e.contains("refuses to allocate"),
            "{e}"
        );
        assert!(try_with_capacity::<f32>("x", usize::MAX / 8).is_err());
        assert_eq!(try_vec("a small buffer", 3, 1u8).unwrap(), [1, 1, 1]);
    }

    #[test]
    fn reads_the_machine_and_the_limit() {
        let meminfo = "MemTotal:       24683792 kB\nMemFree:        12153096 kB\n";
        assert_eq!(mem_total(meminfo), Some(24683792 * 1024));
        assert_eq!(mem_total("nothing"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax address space         4096000000           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(4_096_000_000));
        let unlimited =
            "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(unlimited), None);
        assert!(default_budget() >= 1);
    }

    #[test]
    fn refuses_beyond_the_budget_and_says_by_how_much() {
        assert!(check_against("x", 10, 10, 0).is_ok());
        let e = check_against("training", 627_000_000_000, 4_000_000_000, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("training needs 627.00 GB, more than the memory budget of 4.00 GB\n"),
            "{e}"
        );
        assert_eq!(show(310_000_000), "310 MB");
        assert_eq!(show(12), "12 B");
        assert_eq!(show(999), "999 B");
        assert_eq!(show(1000), "1 kB");
    }

    /// What is held counts against the budget: a need that fits alone is
    /// refused beside it, naming both; the budget never underflows.
    #[test]
    fn what_is_held_counts_against_the_budget() {
        assert!(check_against("x", 60, 100, 40).is_ok());
        let e = check_against("training", 80_000_000, 100_000_000, 55_000_000)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("training needs 80 MB, more than the memory budget of 100 MB leaves beside the 55 MB held"),
            "{e}"
        );
        assert!(check_against("x", 1, 100, 200).is_err());
    }

    /// A `Held` counts its bytes while it lives, a clone counts them again.
    /// (Other tests' trainers come and go meanwhile, so only what this test
    /// holds, a sum no other test reaches, is looked for.)
    #[test]
    fn held_bytes_come_and_go_with_their_values() {
        const B: u64 = 1 << 50;
        let a = Held::new(B);
        assert!(held() >= B);
        let b = a.clone();
        assert!(held() >= 2 * B);
        drop(a);
        drop(b);
        assert!(held() < B);
    }
}
