//! A step in fixed micro-batches, on one process or shared by several
//! ([`crate::dist`]): the same bits whichever rank computes which part.

use super::{Trainer, non_finite, parts};
use crate::dist::{
    Collective, MicroPlan, TreeBuffers, agree, node_value, segment, tree_depth, tree_sum,
};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::memory::bytes;
use crate::nn::{Autoencoder, LossParts, ModelConfig, Noise, Workspace, apply_noise};

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
    /// This rank's tree nodes (gradients), `n` values each; the scratch of
    /// their evaluation; the root.
    nodes: Vec<T>,
    stack: Vec<Vec<T>>,
    root: Vec<T>,
    tree: TreeBuffers<T>,
    /// The same for the KL sums per unit.
    rho_nodes: Vec<T>,
    rho_stack: Vec<Vec<T>>,
    rho_root: Vec<T>,
    rho_tree: TreeBuffers<T>,
    losses: Vec<LossParts>,
    fired: Vec<bool>,
    wire: Vec<u8>,
    wire_all: Vec<u8>,
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
    ) -> Self {
        let n = model.params.len();
        let own = plan.owned(rank);
        let k = plan.nodes(rank).len();
        let depth = tree_depth(plan.m);
        let cfg = model.config();
        let rho = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        let (sizes, slots) = workspace_slots(&plan, rank, reuse);
        Micro {
            plan,
            rank,
            reuse,
            ws: sizes
                .iter()
                .map(|&b| model.workspace_with(b, path))
                .collect(),
            slots,
            nodes: vec![T::ZERO; k * n],
            stack: vec![vec![T::ZERO; n]; depth],
            root: if plan.ranks > 1 {
                vec![T::ZERO; n]
            } else {
                Vec::new()
            },
            tree: TreeBuffers::default(),
            rho_nodes: vec![T::ZERO; k * rho],
            rho_stack: vec![vec![T::ZERO; rho]; depth],
            rho_root: vec![T::ZERO; rho],
            rho_tree: TreeBuffers::default(),
            losses: vec![LossParts::default(); own.len()],
            fired: vec![false; cfg.width(cfg.code_layer)],
            wire: Vec::new(),
            wire_all: Vec::new(),
        }
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
        let (sizes, _) = workspace_slots(&plan, rank, reuse);
        let work = sizes.iter().fold(0u64, |acc, &b| {
            let (fixed, per) = crate::nn::workspace_bytes(cfg, b, e);
            acc.saturating_add(fixed.saturating_add(per.saturating_mul(b as u64)))
        });
        let rho = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        let (k, depth, p) = (plan.nodes(rank).len(), tree_depth(plan.m), plan.ranks);
        // The tree's vectors: gradients (n values) and, with KL, ρ̂ sums.
        let vectors = |count: usize| bytes(count, e).saturating_mul((n + rho) as u64);
        let mut exchange = 0u64;
        if p > 1 {
            // tree_sum's send, receive, segment and stack buffers.
            let all_nodes: usize = (0..p).map(|r| plan.nodes(r).len()).sum();
            for len in [n, rho] {
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
        let count = sizes.len();
        vec![
            (
                format!("{count} workspace{}", if count == 1 { "" } else { "s" }),
                work,
            ),
            (format!("{k} gradient tree node(s)"), vectors(k)),
            (format!("tree scratch ({depth} levels)"), vectors(depth)),
            ("root".into(), if p > 1 { vectors(1) } else { 0 }),
            ("exchange buffers".into(), exchange),
        ]
    }
}

/// The loss of node `(lo, s)` of the tree over `leaves`, added as the
/// gradients are.
fn loss_node((lo, s): (usize, usize), leaves: &[LossParts]) -> LossParts {
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

impl<T: Real> Trainer<T> {
    /// Cuts each batch into `m` micro-batches whose gradients are summed
    /// over a fixed tree ([`crate::dist`]), so that any number of processes
    /// sharing the step gives the same bits; `None` keeps the default
    /// (one or two parts, see [`Trainer::micro_batches`]).
    ///
    /// # Errors
    /// [`Error::Config`] if `m` is not in `1..=batch`, or if `m > 1` for a
    /// model whose step needs the whole batch in one piece (batch top-k's
    /// threshold, AuxK's dead-latent residual).
    pub fn set_micro_batches(&mut self, m: Option<usize>) -> Result<()> {
        if let Some(m) = m {
            MicroPlan::new(self.batch, m, 1).map_err(|e| match e {
                Error::Config { reason, .. } => Error::config("micro_batches", reason),
                e => e,
            })?;
            let cfg = self.model.config();
            let whole = cfg
                .batch_coupled()
                .or(cfg.sae.auxk.is_some().then_some("AuxK"));
            if let (true, Some(what)) = (m > 1, whole) {
                return Err(Error::config(
                    "micro_batches",
                    format!(
                        "{what} needs the whole batch in one piece: only 1 micro-batch, got {m}"
                    ),
                ));
            }
        }
        self.micro_batches = m;
        self.micro = None;
        Ok(())
    }

    /// Micro-batches per batch: as set, or by default the parts a step
    /// computes side by side (two halves from batch 128 for models that
    /// allow it, else one), so a default run keeps its bits.
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
            .unwrap_or_else(|| parts(self.model.config(), self.batch).len())
    }

    /// The micro-batch count if one was set ([`Trainer::set_micro_batches`]).
    pub fn micro_batches_set(&self) -> Option<usize> {
        self.micro_batches
    }

    /// Rebuilds the buffers of the default step if a step in micro-batches
    /// released them.
    pub(super) fn default_parts(&mut self) {
        if self.ws.is_empty() {
            let sizes = parts(self.model.config(), self.batch);
            self.ws = sizes
                .iter()
                .map(|&b| self.model.workspace_with(b, self.topk_path))
                .collect();
            self.grads = vec![vec![T::ZERO; self.model.params.len()]; sizes.len()];
            self.micro = None;
        }
    }

    /// One step of the batch shared by the ranks of `comm`, each given its
    /// own rows `x` (positions [`MicroPlan::rows`] of the step's samples, of
    /// [`Trainer::plan`] over the ranks). Every rank applies the same
    /// update; the result is the same bits for any number of ranks. On one
    /// rank without micro-batches set or accumulation, this is
    /// [`Trainer::step`].
    ///
    /// # Errors
    /// As [`Trainer::step`]; [`Error::Config`] for input noise over more
    /// than one rank (drawn over the whole batch); an error on another rank
    /// as [`Error::Rank`]; any error of `comm`.
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
            self.micro = Some(Box::new(Micro::new(
                &self.model,
                plan,
                rank,
                self.topk_path,
                reuse,
            )));
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
        let noise = match (cfg.noise, plan.ranks) {
            (Noise::None, _) | (_, 1) => Ok(()),
            _ => Err(Error::config(
                "noise",
                "input noise is drawn over the whole batch: train models with noise in one process",
            )),
        };
        agree(comm, shape.and(noise), true)?;
        let input: &[T] = if self.noisy.is_empty() {
            x
        } else {
            apply_noise(cfg.noise, &mut self.noise_rng, x, &mut self.noisy);
            &self.noisy
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
            nodes,
            stack,
            root,
            tree,
            rho_nodes,
            rho_stack,
            rho_root,
            rho_tree,
            losses,
            fired,
            wire,
            wire_all,
            ..
        } = st;
        let my_nodes = plan.nodes(rank);
        // KL: the sums of ρ̂ over the micro-batches first, by the same tree.
        let kl = match (cfg.kl, plan.m) {
            (Some(_), 2..) => {
                let mut first = Ok(());
                for (j, i) in own.clone().enumerate() {
                    first = first.and(model.forward_to_kl(&mut ws[slots[j]], &input[local(i)]));
                }
                let c = rho_root.len();
                for (k, &node) in my_nodes.iter().enumerate() {
                    let out = &mut rho_nodes[k * c..(k + 1) * c];
                    let ws = &*ws;
                    node_value(node, plan.m, out, rho_stack, &mut |i, o| {
                        o.copy_from_slice(ws[slots[i - own.start]].rho_hat());
                        Ok(())
                    })?;
                }
                agree(comm, first, true)?;
                tree_sum(comm, &plan, rho_nodes, rho_root, rho_tree)?;
                let mut value = 0.0;
                for w in ws.iter_mut() {
                    value = model.set_kl_total(w, rho_root, plan.batch);
                }
                Some(value)
            }
            _ => None,
        };
        // The gradients of this rank's tree nodes, leaf by leaf.
        let n = model.params.len();
        let dead = &self.dead;
        fired.iter_mut().for_each(|f| *f = false);
        let mut leaves = Ok(());
        for (k, &node) in my_nodes.iter().enumerate() {
            let out = &mut nodes[k * n..(k + 1) * n];
            let r = node_value(node, plan.m, out, stack, &mut |i, g| {
                let j = i - own.start;
                let w = &mut ws[slots[j]];
                let r = local(i);
                losses[j] = if plan.m == 1 {
                    if let Some(mask) = w.dead_mask_mut() {
                        dead.fill_mask(mask);
                    }
                    model.loss_and_grad(w, &input[r.clone()], &x[r], Some(g))?
                } else {
                    model.loss_and_grad_part(
                        w,
                        &input[r.clone()],
                        &x[r],
                        g,
                        plan.batch,
                        i == 0,
                        kl,
                    )?
                };
                // The units that fired, and the code, before the workspace
                // is reused.
                dead.mark_fired(model.code(w), fired);
                on_code(model.code(w));
                Ok(())
            });
            leaves = leaves.and(r);
        }
        agree(comm, leaves, true)?;
        // Every micro-batch's loss and the units that fired, on every rank.
        wire.clear();
        for l in losses.iter() {
            for v in [l.recon, l.l1, l.kl, l.l2, l.auxk] {
                wire.extend_from_slice(&v.to_le_bytes());
            }
        }
        wire.extend(fired.iter().map(|&f| u8::from(f)));
        let units = fired.len();
        let counts: Vec<usize> = (0..plan.ranks)
            .map(|r| plan.owned(r).len() * LOSS_BYTES + units)
            .collect();
        wire_all.resize(counts.iter().sum(), 0);
        comm.all_gather_bytes(wire, wire_all, &counts)?;
        let mut leaf_losses = Vec::with_capacity(plan.m);
        fired.iter_mut().for_each(|f| *f = false);
        let mut at = 0;
        for c in &counts {
            let part = &wire_all[at..at + c];
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
        let total = loss_node((0, plan.span()), &leaf_losses);
        non_finite(&total, self.opt.t + 1)?;
        // The gradient of the batch, then the update (as in `Trainer::step`).
        let grads: &mut [T] = if plan.ranks == 1 {
            nodes
        } else {
            tree_sum(comm, &plan, nodes, root, tree)?;
            root
        };
        super::update(&mut self.model, &mut self.opt, grads, &mut self.col_scratch);
        self.dead.update_fired(plan.batch as u64, fired);
        Ok(total)
    }
}
