//! A step in fixed micro-batches, on one process or shared by several
//! ([`crate::dist`]): the same bits whichever rank computes which part.

use super::{Trainer, non_finite, parts};
use crate::dist::{
    Collective, MicroPlan, TreeBuffers, agree, node_value, segment, tree_depth, tree_sum,
};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::memory::bytes;
use crate::nn::sparsity::{kth_largest, largest_first};
use crate::nn::{Autoencoder, LossParts, ModelConfig, Workspace, apply_noise_at};

/// Bytes of one micro-batch's loss parts on the wire.
const LOSS_BYTES: usize = 5 * 8;

/// The buffers of a step in micro-batches on one rank.
#[derive(Clone, Debug)]
pub(super) struct Micro<T> {
    plan: MicroPlan,
    rank: usize,
    /// Whether the workspaces are reused: one per micro-batch size rather
    /// than one per micro-batch of this rank; `slots[j]` is the one of the
    /// rank's `j`-th micro-batch.
    reuse: bool,
    ws: Vec<Workspace<T>>,
    slots: Vec<usize>,
    /// The gradients summed over the tree.
    grad: TreeSum<T>,
    /// KL's ρ̂ sums per unit, summed the same way.
    rho: TreeSum<T>,
    /// AuxK's residual sums per feature, summed the same way.
    aux: TreeSum<T>,
    /// Every micro-batch's share of AuxK's denominator; the dead mask.
    spreads: Vec<f64>,
    dead_mask: Vec<bool>,
    cand: Candidates<T>,
    losses: Vec<LossParts>,
    fired: Vec<bool>,
    wire: Wire,
}

/// A vector summed over the tree of micro-batches: this rank's nodes (one
/// vector each), the scratch of their evaluation, the sum (the root) and the
/// exchange's buffers.
#[derive(Clone, Debug)]
struct TreeSum<T> {
    /// Values per node.
    len: usize,
    nodes: Vec<T>,
    stack: Vec<Vec<T>>,
    root: Vec<T>,
    tree: TreeBuffers<T>,
}

impl<T: Real> TreeSum<T> {
    /// Room for `nodes` nodes of `len` values, a tree `depth` deep and a
    /// root of `root` values.
    fn new(nodes: usize, len: usize, depth: usize, root: usize) -> Self {
        TreeSum {
            len,
            nodes: vec![T::ZERO; nodes * len],
            stack: vec![vec![T::ZERO; len]; depth],
            root: vec![T::ZERO; root],
            tree: TreeBuffers::default(),
        }
    }

    /// The values of this rank's `nodes` of `plan`'s tree, `leaf(i, out)`
    /// writing micro-batch `i`'s; the first error, after every node.
    fn eval(
        &mut self,
        plan: &MicroPlan,
        nodes: &[(usize, usize)],
        leaf: &mut dyn FnMut(usize, &mut [T]) -> Result<()>,
    ) -> Result<()> {
        let len = self.len;
        let mut first = Ok(());
        for (k, &node) in nodes.iter().enumerate() {
            let out = &mut self.nodes[k * len..(k + 1) * len];
            first = first.and(node_value(node, plan.m, out, &mut self.stack, leaf));
        }
        first
    }

    /// The sum over every rank's nodes, into the root.
    fn reduce(&mut self, comm: &mut dyn Collective<T>, plan: &MicroPlan) -> Result<()> {
        tree_sum(comm, plan, &self.nodes, &mut self.root, &mut self.tree)
    }
}

/// Batch top-k's candidates: this rank's, every rank's, a scratch copy.
#[derive(Clone, Debug, Default)]
struct Candidates<T> {
    mine: Vec<T>,
    all: Vec<T>,
    sel: Vec<T>,
}

/// Bytes exchanged between the ranks: this rank's, and every rank's.
#[derive(Clone, Debug, Default)]
struct Wire {
    out: Vec<u8>,
    all: Vec<u8>,
}

impl Wire {
    /// All-gathers every rank's `out` (`per_leaf` bytes for each
    /// micro-batch it owns, then `extra` bytes) into `all`, in rank order;
    /// returns each rank's byte count.
    fn gather<T: Real>(
        &mut self,
        comm: &mut dyn Collective<T>,
        plan: &MicroPlan,
        per_leaf: usize,
        extra: usize,
    ) -> Result<Vec<usize>> {
        let counts: Vec<usize> = (0..plan.ranks)
            .map(|r| plan.owned(r).len() * per_leaf + extra)
            .collect();
        self.all.resize(counts.iter().sum(), 0);
        comm.all_gather_bytes(&self.out, &mut self.all, &counts)?;
        Ok(counts)
    }
}

/// The sizes of `rank`'s micro-batches and how many have each (the sizes of
/// a range of micro-batches fall once at most: one or two), worked out
/// without a value per micro-batch, so that a plan of billions of them can
/// be counted and refused.
fn size_counts(plan: &MicroPlan, rank: usize) -> Vec<(usize, usize)> {
    let own = plan.owned(rank);
    if own.is_empty() {
        return Vec::new();
    }
    let (q, r) = (plan.batch / plan.m, plan.batch % plan.m);
    // Micro-batches before `r` have q + 1 samples, the others q.
    let larger = own.end.min(r).saturating_sub(own.start);
    let smaller = own.len() - larger;
    [(q + 1, larger), (q, smaller)]
        .into_iter()
        .filter(|&(_, count)| count > 0)
        .collect()
}

/// The batch sizes of a rank's workspaces and the workspace of each of its
/// micro-batches: one per micro-batch, or, `reuse`d, one per size (the
/// sizes of a range of micro-batches fall once at most: one or two).
fn workspace_slots(plan: &MicroPlan, rank: usize, reuse: bool) -> (Vec<usize>, Vec<usize>) {
    let sizes: Vec<usize> = plan.owned(rank).map(|i| plan.rows_of(i).len()).collect();
    if !reuse {
        return (sizes.clone(), (0..sizes.len()).collect());
    }
    let mut distinct: Vec<usize> = Vec::new();
    let slots = sizes
        .iter()
        .map(|&b| {
            distinct.iter().position(|&d| d == b).unwrap_or_else(|| {
                distinct.push(b);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, slots)
}

impl<T: Real> Micro<T> {
    fn new(
        model: &Autoencoder<T>,
        plan: MicroPlan,
        rank: usize,
        path: crate::nn::TopkPath,
        reuse: bool,
    ) -> Result<Self> {
        let n = model.params.len();
        let own = plan.owned(rank);
        let k = plan.nodes(rank).len();
        let depth = tree_depth(plan.m);
        let cfg = model.config();
        let rho = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        let aux = if cfg.sae.auxk.is_some() { cfg.input } else { 0 };
        let (sizes, slots) = workspace_slots(&plan, rank, reuse);
        let ws = sizes
            .iter()
            .map(|&b| model.try_workspace_with(b, path))
            .collect::<Result<_>>()?;
        Ok(Micro {
            plan,
            rank,
            reuse,
            ws,
            slots,
            grad: TreeSum::new(k, n, depth, if plan.ranks > 1 { n } else { 0 }),
            rho: TreeSum::new(k, rho, depth, rho),
            aux: TreeSum::new(k, aux, depth, aux),
            spreads: vec![0.0; plan.m],
            dead_mask: vec![false; cfg.width(cfg.code_layer)],
            cand: Candidates::default(),
            losses: vec![LossParts::default(); own.len()],
            fired: vec![false; cfg.width(cfg.code_layer)],
            wire: Wire::default(),
        })
    }

    pub(super) fn workspaces(&self) -> &[Workspace<T>] {
        &self.ws
    }

    /// The bytes of what [`Micro::new`] and the exchange allocate, by part
    /// (an upper bound for the workspaces, as [`crate::nn::workspace_bytes`]).
    pub(super) fn bytes(
        cfg: &ModelConfig,
        n: usize,
        plan: MicroPlan,
        rank: usize,
        reuse: bool,
    ) -> Vec<(String, u64)> {
        let e = std::mem::size_of::<T>();
        // One workspace per micro-batch, or `reuse`d, one per size.
        let sizes = size_counts(&plan, rank);
        let work = sizes.iter().fold(0u64, |acc, &(b, count)| {
            let (fixed, per) = crate::nn::workspace_bytes(cfg, b, e);
            let one = fixed.saturating_add(per.saturating_mul(b as u64));
            let copies = if reuse { 1 } else { count as u64 };
            acc.saturating_add(one.saturating_mul(copies))
        });
        let rho = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        let aux = if cfg.sae.auxk.is_some() { cfg.input } else { 0 };
        let (k, depth, p) = (plan.nodes(rank).len(), tree_depth(plan.m), plan.ranks);
        // The tree's vectors: gradients (n values) and, with KL, ρ̂ sums,
        // with AuxK, the residual's sums.
        let vectors = |count: usize| bytes(count, e).saturating_mul((n + rho + aux) as u64);
        // Batch top-k: this rank's code values, every rank's candidates and
        // their scratch copy.
        let candidates = cfg.topk.filter(|t| t.batch).map_or(0, |t| {
            let units = cfg.width(t.layer);
            let kk = t.k.min(units).saturating_mul(plan.batch);
            let all: usize = (0..p)
                .map(|r| plan.rows(r).len().saturating_mul(units).min(kk))
                .fold(0, usize::saturating_add);
            let mine = plan.rows(rank).len().saturating_mul(units);
            bytes(mine.saturating_add(all.saturating_mul(2)), e)
        });
        let mut exchange = candidates;
        if p > 1 {
            // tree_sum's send, receive, segment and stack buffers.
            let all_nodes: usize = (0..p).map(|r| plan.nodes(r).len()).sum();
            for len in [n, rho, aux] {
                let seg = segment(len, p, rank).len();
                let values = (k * len)
                    .saturating_add(all_nodes.saturating_mul(seg))
                    .saturating_add((depth + 2).saturating_mul(seg));
                exchange = exchange.saturating_add(bytes(values, e));
            }
            // The losses and fired flags, this rank's and everyone's.
            let units = cfg.width(cfg.code_layer);
            let wire = (plan.owned(rank).len() + plan.m) * LOSS_BYTES + (p + 1) * units;
            exchange = exchange.saturating_add(wire as u64);
        }
        let count = if reuse {
            sizes.len()
        } else {
            sizes.iter().map(|&(_, c)| c).sum()
        };
        vec![
            (
                format!("{count} workspace{}", if count == 1 { "" } else { "s" }),
                work,
            ),
            (format!("{k} gradient tree node(s)"), vectors(k)),
            (format!("tree scratch ({depth} levels)"), vectors(depth)),
            ("root".into(), if p > 1 { vectors(1) } else { 0 }),
            ("exchange buffers".into(), exchange),
            (
                "per-micro-batch records".into(),
                per_micro_batch(plan.m, plan.owned(rank).len()),
            ),
        ]
    }
}

/// The bytes [`Micro::new`] keeps for each micro-batch of a plan of `m`,
/// `own` of them this rank's: every one's spread (AuxK), this rank's losses
/// and its workspace slot (and the sizes the slots are worked out from).
fn per_micro_batch(m: usize, own: usize) -> u64 {
    let mine = (std::mem::size_of::<LossParts>() + 2 * std::mem::size_of::<usize>()) as u64;
    (m as u64)
        .saturating_mul(std::mem::size_of::<f64>() as u64)
        .saturating_add((own as u64).saturating_mul(mine))
}

/// The value of node `(lo, s)` of the tree over `leaves` (losses, AuxK's
/// denominator), added as the gradients are.
fn loss_node<V: Copy + std::ops::Add<Output = V>>((lo, s): (usize, usize), leaves: &[V]) -> V {
    if s == 1 {
        return leaves[lo];
    }
    let half = s / 2;
    let left = loss_node((lo, half), leaves);
    if lo + half < leaves.len() {
        left + loss_node((lo + half, half), leaves)
    } else {
        left
    }
}

/// The forward pass of every micro-batch of this rank through `layers`
/// (a batch top-k code left unselected); the first error, after all ran.
fn forward_all<T: Real>(
    model: &Autoencoder<T>,
    ws: &mut [Workspace<T>],
    input: &[T],
    parts: impl Iterator<Item = std::ops::Range<usize>>,
    layers: std::ops::Range<usize>,
) -> Result<()> {
    let mut first = Ok(());
    for (w, r) in ws.iter_mut().zip(parts) {
        first = first.and(model.forward_part(w, &input[r], layers.clone()));
    }
    first
}

/// Selects the code of this rank's micro-batches `ws` (rows `own` of
/// `plan`) at layer `l` by the whole batch's top-k threshold: each rank's
/// k·B largest values hold the batch's k·B largest, so the ranks exchange
/// those, and the ties at the threshold go to the earliest micro-batches.
#[allow(clippy::too_many_arguments)]
fn batch_topk<T: Real>(
    model: &Autoencoder<T>,
    comm: &mut dyn Collective<T>,
    plan: &MicroPlan,
    own: std::ops::Range<usize>,
    ws: &mut [Workspace<T>],
    l: usize,
    cand: &mut Candidates<T>,
    wire: &mut Wire,
) -> Result<()> {
    let units = model.config().width(l);
    let kk = model.config().topk.map_or(0, |t| t.k.min(units)) * plan.batch;
    if kk >= plan.batch * units {
        ws.iter_mut().for_each(|w| model.select_code(w, None));
        return Ok(());
    }
    cand.mine.clear();
    ws.iter().for_each(|w| cand.mine.extend_from_slice(&w.h[l]));
    let mine = cand.mine.len().min(kk);
    largest_first(&mut cand.mine, mine);
    let counts: Vec<usize> = (0..plan.ranks)
        .map(|r| (plan.rows(r).len() * units).min(kk))
        .collect();
    cand.all.resize(counts.iter().sum(), T::ZERO);
    comm.all_gather(&cand.mine[..mine], &mut cand.all, &counts)?;
    cand.sel.resize(cand.all.len(), T::ZERO);
    let (t, ties) = kth_largest(&cand.all, kk, &mut cand.sel);
    wire.out.clear();
    for w in ws.iter() {
        let equal = w.h[l].iter().filter(|&&v| v == t).count() as u64;
        wire.out.extend_from_slice(&equal.to_le_bytes());
    }
    wire.gather(comm, plan, 8, 0)?;
    let mut left = ties;
    for (i, c) in wire.all.chunks_exact(8).enumerate() {
        let equal = u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize;
        let keep = equal.min(left);
        left -= keep;
        if own.contains(&i) {
            model.select_code(&mut ws[i - own.start], Some((t, keep)));
        }
    }
    Ok(())
}

/// Every micro-batch's loss and the code units that fired, gathered from
/// every rank: `fired` becomes the whole batch's, and the batch's loss is
/// the sum of the micro-batches' over the tree.
fn gather_losses<T: Real>(
    comm: &mut dyn Collective<T>,
    plan: &MicroPlan,
    losses: &[LossParts],
    fired: &mut [bool],
    wire: &mut Wire,
) -> Result<LossParts> {
    wire.out.clear();
    for l in losses {
        for v in [l.recon, l.l1, l.kl, l.l2, l.auxk] {
            wire.out.extend_from_slice(&v.to_le_bytes());
        }
    }
    wire.out.extend(fired.iter().map(|&f| u8::from(f)));
    let units = fired.len();
    let counts = wire.gather(comm, plan, LOSS_BYTES, units)?;
    let mut leaf_losses = Vec::with_capacity(plan.m);
    fired.iter_mut().for_each(|f| *f = false);
    let mut at = 0;
    for c in &counts {
        let part = &wire.all[at..at + c];
        let (loss, flags) = part.split_at(c - units);
        for l in loss.chunks_exact(LOSS_BYTES) {
            let v = |k: usize| f64::from_le_bytes(l[8 * k..8 * k + 8].try_into().expect("8"));
            leaf_losses.push(LossParts {
                recon: v(0),
                l1: v(1),
                kl: v(2),
                l2: v(3),
                auxk: v(4),
            });
        }
        for (f, &b) in fired.iter_mut().zip(flags) {
            *f |= b != 0;
        }
        at += c;
    }
    Ok(loss_node((0, plan.span()), &leaf_losses))
}

impl<T: Real> Trainer<T> {
    /// Cuts each batch into `m` micro-batches whose gradients are summed
    /// over a fixed tree ([`crate::dist`]), so that any number of processes
    /// sharing the step gives the same bits; `None` keeps the default
    /// (one or two parts, see [`Trainer::micro_batches`]). The statistics of
    /// the whole batch (KL's ρ̂, a batch top-k threshold, AuxK's residual
    /// mean and denominator) are exchanged before the backward passes.
    ///
    /// # Errors
    /// [`Error::Config`] if `m` is not in `1..=batch`.
    pub fn set_micro_batches(&mut self, m: Option<usize>) -> Result<()> {
        if let Some(m) = m {
            MicroPlan::new(self.batch, m, 1).map_err(|e| match e {
                Error::Config { reason, .. } => Error::config("micro_batches", reason),
                e => e,
            })?;
        }
        self.micro_batches = m;
        self.micro = None;
        Ok(())
    }

    /// Micro-batches per batch: as set, or by default the parts a step
    /// computes side by side (two halves from batch 65 for models that
    /// allow it, else one), so a default run keeps its bits.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
            .unwrap_or_else(|| parts(self.model.config(), self.batch, self.topk_path).len())
    }

    /// The micro-batch count if one was set ([`Trainer::set_micro_batches`]).
    pub fn micro_batches_set(&self) -> Option<usize> {
        self.micro_batches
    }

    /// Rebuilds the buffers of the default step if a step in micro-batches
    /// released them.
    pub(super) fn default_parts(&mut self) -> Result<()> {
        if self.ws.is_empty() {
            let sizes = parts(self.model.config(), self.batch, self.topk_path);
            self.ws = sizes
                .iter()
                .map(|&b| self.model.try_workspace_with(b, self.topk_path))
                .collect::<Result<_>>()?;
            let n = self.model.params.len();
            self.grads = (0..sizes.len())
                .map(|_| crate::memory::try_vec("the gradients", n, T::ZERO))
                .collect::<Result<_>>()?;
            self.micro = None;
        }
        Ok(())
    }

    /// One step of the batch shared by the ranks of `comm`, each given its
    /// own rows `x` (positions [`MicroPlan::rows`] of the step's samples, of
    /// [`Trainer::plan`] over the ranks). Every rank applies the same
    /// update; the result is the same bits for any number of ranks. On one
    /// rank without micro-batches set or accumulation, this is
    /// [`Trainer::step`].
    ///
    /// # Errors
    /// As [`Trainer::step`]; an error on another rank as [`Error::Rank`];
    /// any error of `comm`.
    pub fn step_on(&mut self, x: &[T], comm: &mut dyn Collective<T>) -> Result<LossParts> {
        self.step_on_with(x, comm, &mut |_| {})
    }

    /// [`Trainer::step_on`], calling `on_code` with the code of each part
    /// of the batch this rank computes, in batch order, as soon as it is
    /// computed (a step in reused workspaces keeps only the last ones).
    ///
    /// # Errors
    /// As [`Trainer::step_on`]; [`Error::Memory`] (on every rank, as
    /// [`Error::Rank`] on the others) when the buffers of the step would
    /// exceed the memory budget ([`Trainer::check_memory`]).
    pub fn step_on_with(
        &mut self,
        x: &[T],
        comm: &mut dyn Collective<T>,
        on_code: &mut dyn FnMut(&[T]),
    ) -> Result<LossParts> {
        if comm.ranks() == 1 && !self.micro_step() {
            let parts = self.step(x)?;
            for w in &self.ws {
                on_code(self.model.code(w));
            }
            return Ok(parts);
        }
        let plan = self.plan(comm.ranks())?;
        let (rank, reuse) = (comm.rank(), self.reuses_workspaces());
        if self
            .micro
            .as_ref()
            .is_none_or(|m| m.plan != plan || m.rank != rank || m.reuse != reuse)
        {
            if let Err(e) = self.check_memory(rank, comm.ranks()) {
                // The other ranks hear of it at their first agreement.
                agree(comm, Err(e), true)?;
                unreachable!("agree returns this rank's own error");
            }
            // The default step's buffers are not needed meanwhile.
            self.ws.clear();
            self.grads.clear();
            match Micro::new(&self.model, plan, rank, self.topk_path, reuse) {
                Ok(m) => self.micro = Some(Box::new(m)),
                Err(e) => {
                    // A buffer the system refused: as a failed check.
                    agree(comm, Err(e), true)?;
                    unreachable!("agree returns this rank's own error");
                }
            }
        }
        let mut st = self.micro.take().expect("built above");
        let out = self.step_micro(x, comm, &mut st, on_code);
        self.micro = Some(st);
        out
    }

    fn step_micro(
        &mut self,
        x: &[T],
        comm: &mut dyn Collective<T>,
        st: &mut Micro<T>,
        on_code: &mut dyn FnMut(&[T]),
    ) -> Result<LossParts> {
        let cfg = self.model.config();
        let (d, plan, rank) = (cfg.input, st.plan, st.rank);
        let rows = plan.rows(rank);
        let shape = if x.len() == rows.len() * d {
            Ok(())
        } else {
            Err(Error::shape(
                "Trainer::step_on",
                format!("{} × {d} values (rows {rows:?} of the batch)", rows.len()),
                format!("{}", x.len()),
            ))
        };
        agree(comm, shape, true)?;
        // Each rank draws the noise of its own rows, as one process drawing
        // the whole batch would, and every rank's generator advances alike.
        let input: &[T] = match cfg.noise {
            crate::nn::Noise::None => x,
            noise => {
                let noisy = super::noisy_buffer(&mut self.noisy, x.len());
                apply_noise_at(noise, &mut self.noise_rng, x, noisy, rows.start * d);
                noisy
            }
        };
        let model = &self.model;
        let own = plan.owned(rank);
        let local = |i: usize| {
            let r = plan.rows_of(i);
            (r.start - rows.start) * d..(r.end - rows.start) * d
        };
        let Micro {
            ws,
            slots,
            grad,
            rho,
            aux,
            spreads,
            dead_mask,
            cand,
            losses,
            fired,
            wire,
            ..
        } = st;
        let my_nodes = plan.nodes(rank);
        let dead = &self.dead;
        dead.fill_mask(dead_mask);
        for w in ws.iter_mut() {
            if let Some(mask) = w.dead_mask_mut() {
                mask.copy_from_slice(dead_mask);
            }
        }
        // The statistics of the whole batch, in layer order: a batch top-k
        // threshold, KL's ρ̂, AuxK's residual mean and denominator. For each,
        // every rank runs its micro-batches up to its layer, then the ranks
        // exchange.
        let (layers, mut done, mut kl) = (cfg.layers.len(), 0, None);
        let topk_at = cfg.topk.filter(|t| t.batch).map(|t| t.layer);
        let kl_at = cfg.kl.map(|p| p.layer);
        let any_dead = dead_mask.iter().any(|&d| d);
        let aux_at = (cfg.sae.auxk.is_some() && any_dead).then_some(layers - 1);
        let parts = || own.clone().map(local);
        for l in (0..layers).filter(|_| plan.m > 1) {
            if topk_at == Some(l) {
                let r = forward_all(model, ws, input, parts(), done..l + 1);
                agree(comm, r, true)?;
                done = l + 1;
                batch_topk(model, comm, &plan, own.clone(), ws, l, cand, wire)?;
            }
            if kl_at == Some(l) {
                let r = forward_all(model, ws, input, parts(), done..l + 1);
                done = done.max(l + 1);
                ws.iter_mut().for_each(|w| model.kl_part_sums(w));
                let sums = &*ws;
                rho.eval(&plan, &my_nodes, &mut |i, o| {
                    o.copy_from_slice(sums[slots[i - own.start]].rho_hat());
                    Ok(())
                })?;
                agree(comm, r, true)?;
                rho.reduce(comm, &plan)?;
                let mut value = 0.0;
                for w in ws.iter_mut() {
                    value = model.set_kl_total(w, &rho.root, plan.batch);
                }
                kl = Some(value);
            }
            if aux_at == Some(l) {
                let r = forward_all(model, ws, input, parts(), done..layers);
                agree(comm, r, true)?;
                done = layers;
                // The residual's sums per feature over the tree, then each
                // micro-batch's Σ‖e − ē‖², added over the tree too.
                aux.eval(&plan, &my_nodes, &mut |i, o| {
                    let sums = model.auxk_residual(&mut ws[i - own.start], &x[local(i)]);
                    o.copy_from_slice(sums.expect("AuxK scratch"));
                    Ok(())
                })?;
                aux.reduce(comm, &plan)?;
                wire.out.clear();
                for w in ws.iter() {
                    let v = model.auxk_spread(w, &aux.root, plan.batch);
                    wire.out.extend_from_slice(&v.to_le_bytes());
                }
                wire.gather(comm, &plan, 8, 0)?;
                for (v, c) in spreads.iter_mut().zip(wire.all.chunks_exact(8)) {
                    *v = f64::from_le_bytes(c.try_into().expect("8 bytes"));
                }
                let denom = loss_node((0, plan.span()), spreads);
                ws.iter_mut()
                    .for_each(|w| model.set_auxk_denominator(w, denom));
            }
        }
        // The gradients of this rank's tree nodes, leaf by leaf.
        fired.iter_mut().for_each(|f| *f = false);
        let leaves = grad.eval(&plan, &my_nodes, &mut |i, g| {
            let j = i - own.start;
            let w = &mut ws[slots[j]];
            let r = local(i);
            losses[j] = if plan.m == 1 {
                model.loss_and_grad(w, &input[r.clone()], &x[r], Some(g))?
            } else {
                model.loss_and_grad_part(
                    w,
                    &input[r.clone()],
                    &x[r],
                    g,
                    (plan.batch, plan.rows_of(i).start),
                    i == 0,
                    kl,
                    done,
                )?
            };
            // The units that fired, and the code, before the workspace
            // is reused.
            dead.mark_fired_in(model, w, fired);
            on_code(model.code(w));
            Ok(())
        });
        agree(comm, leaves, true)?;
        let total = gather_losses(comm, &plan, losses, fired, wire)?;
        non_finite(&total, self.opt.t + 1)?;
        // The gradient of the batch, then the update (as in `Trainer::step`).
        let grads: &mut [T] = if plan.ranks == 1 {
            &mut grad.nodes
        } else {
            grad.reduce(comm, &plan)?;
            &mut grad.root
        };
        super::update(
            &mut self.model,
            &mut self.opt,
            grads,
            &mut self.col_scratch,
            &self.owned,
        );
        self.dead.update_fired(plan.batch as u64, fired);
        Ok(total)
    }
}
