//! Data-parallel training that gives the same bits on any number of
//! processes: the batch as fixed micro-batches, their sums over a fixed tree.
//!
//! A batch of B samples is cut into M micro-batches ([`MicroPlan`]): the
//! first `B mod M` hold ⌈B/M⌉ samples, the others ⌊B/M⌋, in batch order.
//! The gradient of the batch is the sum of the micro-batches' gradients over
//! one fixed binary tree over the indices `0..M` (the aligned power-of-two
//! blocks of a perfect tree over 2^⌈log₂M⌉ leaves, with the leaves past M
//! left out): node `(lo, s)` covers micro-batches `lo..lo+s` and its value
//! is `left + right` (`left` alone when `right` is empty). Every node is
//! computed the same way wherever it is computed, so the root has the same
//! bits whichever process computed which leaves.
//!
//! P processes ("ranks", [`Collective`]) own contiguous ranges of
//! micro-batches ([`MicroPlan::owned`]). A rank computes the values of the
//! maximal tree nodes inside its range ([`MicroPlan::nodes`]); then
//! [`tree_sum`] finishes the tree: each rank owns a segment of the vector,
//! receives every rank's nodes restricted to that segment (all-to-all),
//! evaluates the top of the tree on it, and the segments are gathered on
//! every rank (all-gather). When M is P·2^j, each rank holds one node and a
//! rank sends and receives `(P−1)/P · n` values twice, as a ring
//! all-reduce does.
//!
//! [`Solo`] is the one-process case; `dist::mpi` (feature `mpi`) is MPI.

#[cfg(feature = "mpi")]
pub mod mpi;

use crate::error::{Error, Result};
use crate::kernels::Real;
use std::ops::Range;

/// The collective operations of a group of `ranks()` processes that train
/// one model. Every rank calls the same operations in the same order.
///
/// Counts are in elements; a buffer's parts are laid out in rank order.
pub trait Collective<T> {
    /// This process's index, `0..ranks()`.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn ranks(&self) -> usize;
    /// Sends `send`'s part `q` (`send_counts[q]` values, parts in rank
    /// order) to rank `q`; receives rank `r`'s part for this rank
    /// (`recv_counts[r]` values) into `recv`, parts in rank order.
    ///
    /// # Errors
    /// When the exchange fails (a rank gone, a count beyond the library's
    /// limits).
    fn all_to_all(
        &mut self,
        send: &[T],
        send_counts: &[usize],
        recv: &mut [T],
        recv_counts: &[usize],
    ) -> Result<()>;
    /// Every rank's `send` (`counts[r]` values from rank `r`) into `recv`
    /// on every rank, in rank order.
    ///
    /// # Errors
    /// As [`Collective::all_to_all`].
    fn all_gather(&mut self, send: &[T], recv: &mut [T], counts: &[usize]) -> Result<()>;
    /// [`Collective::all_gather`] of bytes.
    ///
    /// # Errors
    /// As [`Collective::all_to_all`].
    fn all_gather_bytes(&mut self, send: &[u8], recv: &mut [u8], counts: &[usize]) -> Result<()>;
}

/// One process alone: every collective is a copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl<T: Copy> Collective<T> for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn all_to_all(&mut self, send: &[T], _: &[usize], recv: &mut [T], _: &[usize]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather(&mut self, send: &[T], recv: &mut [T], _: &[usize]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather_bytes(&mut self, send: &[u8], recv: &mut [u8], _: &[usize]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
}

/// A batch of `batch` samples cut into `m` micro-batches, owned by `ranks`
/// ranks in contiguous ranges (the first `m mod ranks` ranks own one more).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MicroPlan {
    /// Samples per batch.
    pub batch: usize,
    /// Micro-batches per batch.
    pub m: usize,
    /// Ranks sharing the work.
    pub ranks: usize,
}

impl MicroPlan {
    /// The plan of `m` micro-batches of a batch of `batch` over `ranks`.
    ///
    /// # Errors
    /// [`Error::Config`] unless `1 ≤ m ≤ batch` and `ranks ≥ 1`.
    pub fn new(batch: usize, m: usize, ranks: usize) -> Result<MicroPlan> {
        if m == 0 || m > batch {
            return Err(Error::config(
                "micro_batches",
                format!("must be in 1..={batch} (the batch size), got {m}"),
            ));
        }
        if ranks == 0 {
            return Err(Error::config("ranks", "must be at least 1"));
        }
        Ok(MicroPlan { batch, m, ranks })
    }

    /// The samples of micro-batch `i`, as positions in the batch.
    ///
    /// # Panics
    /// Unless `i < m` (as a slice's index does).
    pub fn rows_of(&self, i: usize) -> Range<usize> {
        assert!(
            i < self.m,
            "MicroPlan::rows_of: micro-batch {i} of a plan of {}",
            self.m
        );
        self.row_start(i)..self.row_start(i + 1)
    }

    /// The first sample of micro-batch `i ≤ m` (`batch` for `m`).
    fn row_start(&self, i: usize) -> usize {
        let (q, r) = (self.batch / self.m, self.batch % self.m);
        i * q + i.min(r)
    }

    /// The micro-batches of `rank`.
    ///
    /// # Panics
    /// Unless `rank < ranks` (as a slice's index does).
    pub fn owned(&self, rank: usize) -> Range<usize> {
        assert!(
            rank < self.ranks,
            "MicroPlan: rank {rank} of a plan of {} ranks",
            self.ranks
        );
        let (q, r) = (self.m / self.ranks, self.m % self.ranks);
        let start = |k: usize| k * q + k.min(r);
        start(rank)..start(rank + 1)
    }

    /// The samples of `rank`'s micro-batches, as positions in the batch.
    ///
    /// # Panics
    /// Unless `rank < ranks`.
    pub fn rows(&self, rank: usize) -> Range<usize> {
        let own = self.owned(rank);
        self.row_start(own.start)..self.row_start(own.end)
    }

    /// The width of the tree: the smallest power of two ≥ m.
    pub fn span(&self) -> usize {
        self.m.next_power_of_two()
    }

    /// The maximal tree nodes `(lo, s)` inside `rank`'s micro-batches, in
    /// order: the aligned power-of-two blocks, a block reaching past `m`
    /// counting as one when the range ends at `m`.
    ///
    /// # Panics
    /// Unless `rank < ranks` (a rank past the last once looped for ever).
    pub fn nodes(&self, rank: usize) -> Vec<(usize, usize)> {
        let own = self.owned(rank);
        let mut out = Vec::new();
        let mut lo = own.start;
        while lo < own.end {
            let mut s = 1;
            while s < self.span()
                && lo.is_multiple_of(2 * s)
                && (lo + 2 * s).min(self.m) <= own.end
                && lo + s < self.m
            {
                s *= 2;
            }
            out.push((lo, s));
            lo = (lo + s).min(self.m);
        }
        out
    }

    /// A note for the person running the job when the work does not split
    /// evenly (`None` when it does).
    pub fn unevenness(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.m < self.ranks {
            notes.push(format!(
                "{} micro-batches for {} ranks: ranks {}..{} compute nothing (give --micro-batches {} or more)",
                self.m,
                self.ranks,
                self.m,
                self.ranks,
                self.ranks
            ));
        } else if !self.m.is_multiple_of(self.ranks) {
            let (q, r) = (self.m / self.ranks, self.m % self.ranks);
            notes.push(format!(
                "{} micro-batches do not divide among {} ranks: ranks 0..{r} compute {} each, the others {q} (a multiple of {} keeps every rank busy)",
                self.m,
                self.ranks,
                q + 1,
                self.ranks
            ));
        }
        if !self.batch.is_multiple_of(self.m) {
            let (q, r) = (self.batch / self.m, self.batch % self.m);
            notes.push(format!(
                "batch {} does not divide into {} micro-batches: the first {r} hold {} samples, the others {q}",
                self.batch,
                self.m,
                q + 1
            ));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// Evaluates node `(lo, s)` of the tree over leaves `0..m` into `out`,
/// leaf `i` written by `leaf(i, out)` in index order; `stack` holds one
/// scratch buffer per level below the node (`out`'s length each).
///
/// # Errors
/// The first error of `leaf`.
pub fn node_value<T: Real>(
    (lo, s): (usize, usize),
    m: usize,
    out: &mut [T],
    stack: &mut [Vec<T>],
    leaf: &mut dyn FnMut(usize, &mut [T]) -> Result<()>,
) -> Result<()> {
    if s == 1 {
        return leaf(lo, out);
    }
    let half = s / 2;
    node_value((lo, half), m, out, stack, leaf)?;
    if lo + half < m {
        let (tmp, rest) = stack
            .split_first_mut()
            .expect("a scratch buffer per tree level");
        node_value((lo + half, half), m, &mut tmp[..out.len()], rest, leaf)?;
        add_into(out, &tmp[..out.len()]);
    }
    Ok(())
}

/// `out ← out + x`, elementwise.
fn add_into<T: Real>(out: &mut [T], x: &[T]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += v;
    }
}

/// Levels of scratch a node of a tree over `m` leaves needs.
pub fn tree_depth(m: usize) -> usize {
    m.next_power_of_two().trailing_zeros() as usize
}

/// The buffers of [`tree_sum`], kept between steps.
#[derive(Clone, Debug, Default)]
pub struct TreeBuffers<T> {
    send: Vec<T>,
    recv: Vec<T>,
    seg: Vec<T>,
    stack: Vec<Vec<T>>,
}

/// The bounds of rank `q`'s segment of a vector of `n` values over
/// `ranks` ranks (multiples of 16 values, the last one to `n`).
pub fn segment(n: usize, ranks: usize, q: usize) -> Range<usize> {
    let cut = |q: usize| {
        if q >= ranks { n } else { (n * q / ranks) & !15 }
    };
    cut(q)..cut(q + 1)
}

/// The root of the tree of `plan` on every rank, into `out` (`n` values):
/// `mine` holds the values of this rank's [`MicroPlan::nodes`], `n` each,
/// one after another. See the module doc for the exchange.
///
/// # Errors
/// [`Error::Shape`] for buffers of the wrong size; any error of `comm`.
pub fn tree_sum<T: Real>(
    comm: &mut dyn Collective<T>,
    plan: &MicroPlan,
    mine: &[T],
    out: &mut [T],
    buf: &mut TreeBuffers<T>,
) -> Result<()> {
    let (n, me, p) = (out.len(), comm.rank(), comm.ranks());
    let nodes: Vec<Vec<(usize, usize)>> = (0..p).map(|r| plan.nodes(r)).collect();
    if mine.len() != nodes[me].len() * n {
        return Err(Error::shape(
            "tree_sum",
            format!("{} node values of {n}", nodes[me].len()),
            format!("{} values", mine.len()),
        ));
    }
    if p == 1 {
        out.copy_from_slice(mine);
        return Ok(());
    }
    let seg_len = |q: usize| segment(n, p, q).len();
    // This rank's nodes cut into the segments of their owners, in rank order.
    buf.send.clear();
    for q in 0..p {
        let r = segment(n, p, q);
        for j in 0..nodes[me].len() {
            buf.send
                .extend_from_slice(&mine[j * n + r.start..j * n + r.end]);
        }
    }
    let send_counts: Vec<usize> = (0..p).map(|q| nodes[me].len() * seg_len(q)).collect();
    let recv_counts: Vec<usize> = (0..p).map(|r| nodes[r].len() * seg_len(me)).collect();
    buf.recv.resize(recv_counts.iter().sum(), T::ZERO);
    comm.all_to_all(&buf.send, &send_counts, &mut buf.recv, &recv_counts)?;
    // The top of the tree on this rank's segment: a node some rank computed
    // is read from what it sent.
    let len = seg_len(me);
    let mut at = std::collections::HashMap::new();
    let mut off = 0;
    for rank_nodes in &nodes {
        for &node in rank_nodes {
            at.insert(node, off);
            off += len;
        }
    }
    buf.seg.resize(len, T::ZERO);
    buf.stack.resize(tree_depth(plan.m) + 1, Vec::new());
    for s in &mut buf.stack {
        s.resize(len, T::ZERO);
    }
    top_value(
        (0, plan.span()),
        plan.m,
        &at,
        &buf.recv,
        &mut buf.seg,
        &mut buf.stack,
    );
    let counts: Vec<usize> = (0..p).map(seg_len).collect();
    comm.all_gather(&buf.seg, out, &counts)
}

/// Node `(lo, s)` into `out` from the received node values `recv` (at
/// offsets `at`), adding children as [`node_value`] does.
fn top_value<T: Real>(
    (lo, s): (usize, usize),
    m: usize,
    at: &std::collections::HashMap<(usize, usize), usize>,
    recv: &[T],
    out: &mut [T],
    stack: &mut [Vec<T>],
) {
    if let Some(&o) = at.get(&(lo, s)) {
        out.copy_from_slice(&recv[o..o + out.len()]);
        return;
    }
    assert!(s > 1, "every leaf lies in some rank's nodes");
    let half = s / 2;
    top_value((lo, half), m, at, recv, out, stack);
    if lo + half < m {
        let (tmp, rest) = stack
            .split_first_mut()
            .expect("a scratch buffer per tree level");
        top_value((lo + half, half), m, at, recv, tmp, rest);
        add_into(out, tmp);
    }
}

/// Whether every rank can go on: each rank gives its own outcome and
/// whether it wants to continue. Returns `Ok(true)` when all succeeded and
/// all continue, `Ok(false)` when all succeeded and some rank stops, and
/// on every rank an error when some rank failed (the failing rank gets its
/// own error back, the others [`Error::Rank`] with the first failure's
/// message).
///
/// # Errors
/// As above, and any error of `comm`.
pub fn agree<T>(comm: &mut dyn Collective<T>, own: Result<()>, go: bool) -> Result<bool> {
    let p = comm.ranks();
    let code = match (&own, go) {
        (Err(_), _) => 2u8,
        (Ok(()), false) => 1,
        (Ok(()), true) => 0,
    };
    let mut codes = vec![0u8; p];
    comm.all_gather_bytes(&[code], &mut codes, &vec![1; p])?;
    if let Some(bad) = codes.iter().position(|&c| c == 2) {
        let text = match &own {
            Err(e) if comm.rank() == bad => e.to_string(),
            _ => String::new(),
        };
        let message = broadcast_text(comm, bad, &text)?;
        return match own {
            Err(e) if comm.rank() == bad => Err(e),
            _ => Err(Error::Rank {
                rank: bad,
                reason: message,
            }),
        };
    }
    Ok(codes.iter().all(|&c| c == 0))
}

/// Refuses a job whose ranks were given different settings: every rank
/// compares its `settings` (name, value) with rank 0's, and a difference
/// is an error on every rank naming the setting and both values (ranks
/// that disagree on the data's size, the model or a flag ran collectives
/// of different sizes: a crash, a hang, or a model of no single run).
///
/// # Errors
/// [`Error::Config`] on a rank whose settings differ, [`Error::Rank`] on
/// the others; any error of `comm`.
pub fn agree_on<T>(comm: &mut dyn Collective<T>, settings: &[(&str, String)]) -> Result<()> {
    let text: String = settings
        .iter()
        .map(|(name, value)| format!("{name}\u{1f}{value}\u{1e}"))
        .collect();
    let zero = broadcast_text(comm, 0, &text)?;
    let theirs: Vec<(&str, &str)> = zero
        .split_terminator('\u{1e}')
        .filter_map(|kv| kv.split_once('\u{1f}'))
        .collect();
    let rank = comm.rank();
    let own = match settings
        .iter()
        .zip(theirs.iter().map(Some).chain(std::iter::repeat(None)))
        .find(|((name, value), t)| *t != Some(&(*name, value.as_str())))
    {
        None if theirs.len() == settings.len() => Ok(()),
        None => Err(Error::config(
            "mpi",
            format!(
                "rank {rank} compares {} settings, rank 0 {}: the ranks run different versions of sparse-ae",
                settings.len(),
                theirs.len()
            ),
        )),
        Some(((name, value), t)) => Err(Error::config(
            *name,
            format!(
                "rank {rank} has {}, rank 0 has {}: every rank of a job must be given the same settings and data",
                excerpt(value),
                t.map_or("nothing".into(), |(_, v)| excerpt(v))
            ),
        )),
    };
    agree(comm, own, true).map(|_| ())
}

/// `text` cut to its first 120 characters, for a message.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Rank `from`'s `text` on every rank.
fn broadcast_text<T>(comm: &mut dyn Collective<T>, from: usize, text: &str) -> Result<String> {
    let p = comm.ranks();
    let mine = text.len() as u64;
    let mut lens = vec![0u8; 8 * p];
    comm.all_gather_bytes(&mine.to_le_bytes(), &mut lens, &vec![8; p])?;
    let counts: Vec<usize> = lens
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
        .collect();
    let mut all = vec![0u8; counts.iter().sum()];
    comm.all_gather_bytes(text.as_bytes(), &mut all, &counts)?;
    let start: usize = counts[..from].iter().sum();
    Ok(String::from_utf8_lossy(&all[start..start + counts[from]]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_and_ranks_cover_the_batch_in_order() {
        let p = MicroPlan::new(10, 4, 3).unwrap();
        let sizes: Vec<usize> = (0..4).map(|i| p.rows_of(i).len()).collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
        assert_eq!([p.owned(0), p.owned(1), p.owned(2)], [0..2, 2..3, 3..4]);
        assert_eq!([p.rows(0), p.rows(1), p.rows(2)], [0..6, 6..8, 8..10]);
        assert!(p.unevenness().is_some());
        assert!(MicroPlan::new(8, 4, 2).unwrap().unevenness().is_none());
        assert!(MicroPlan::new(3, 4, 1).is_err() && MicroPlan::new(3, 0, 1).is_err());
    }

    #[test]
    fn nodes_are_maximal_aligned_blocks() {
        let p = MicroPlan::new(100, 7, 1).unwrap();
        assert_eq!(p.nodes(0), [(0, 8)]);
        let p = MicroPlan::new(100, 7, 2).unwrap();
        assert_eq!(p.nodes(0), [(0, 4)]);
        assert_eq!(p.nodes(1), [(4, 4)]);
        let p = MicroPlan::new(100, 7, 3).unwrap();
        assert_eq!(p.owned(1), 3..5);
        assert_eq!(p.nodes(0), [(0, 2), (2, 1)]);
        assert_eq!(p.nodes(1), [(3, 1), (4, 1)]);
        assert_eq!(p.nodes(2), [(5, 1), (6, 1)]);
        let p = MicroPlan::new(100, 8, 4).unwrap();
        assert_eq!(p.nodes(3), [(6, 2)]);
    }

    /// A rank or micro-batch past the plan's is refused by every method,
    /// as a slice's index is: `nodes` of such a rank looped for ever
    /// (growing its list until memory ran out), and `owned`, `rows` and
    /// `rows_of` gave ranges outside the batch.
    #[test]
    fn indices_past_the_plan_panic() {
        let p = MicroPlan::new(4, 2, 1).unwrap();
        let panics =
            |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
        assert!(panics(&|| drop(p.nodes(1))));
        assert!(panics(&|| {
            let _ = p.owned(1);
        }));
        assert!(panics(&|| {
            let _ = p.rows(1);
        }));
        assert!(panics(&|| {
            let _ = p.rows_of(2);
        }));
        assert_eq!((p.rows(0), p.rows_of(1)), (0..4, 2..4));
        // Made without `new`, a plan of no ranks or micro-batches panics too.
        let bare = MicroPlan {
            batch: 4,
            m: 0,
            ranks: 0,
        };
        assert!(panics(&|| drop(bare.nodes(0))));
        assert!(panics(&|| {
            let _ = bare.rows_of(0);
        }));
    }

    /// Sums that round differently in different orders: the tree's order.
    #[test]
    fn node_values_follow_the_tree() {
        let leaves = [1e8f32, 1.0, -1e8, 1.0, 3.0];
        let mut stack = vec![vec![0.0f32; 1]; tree_depth(5)];
        let mut out = [0.0f32];
        let mut leaf = |i: usize, o: &mut [f32]| {
            o[0] = leaves[i];
            Ok(())
        };
        node_value((0, 8), 5, &mut out, &mut stack, &mut leaf).unwrap();
        let want = ((1e8f32 + 1.0) + (-1e8 + 1.0)) + 3.0;
        assert_eq!(out[0].to_bits(), want.to_bits());
        assert_ne!(want, leaves.iter().sum::<f32>());
    }
}
