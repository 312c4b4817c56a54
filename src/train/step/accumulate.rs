//! Gradient accumulation (several batches per optimizer step), how a step
//! in micro-batches holds its activations, and what such a step needs in
//! memory.

use super::micro::Micro;
use super::{MicroWorkspaces, Trainer, whole_batch_first};
use crate::dist::MicroPlan;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::memory::{bytes, show};
use crate::nn::Noise;
use crate::optim::OptimizerConfig;

impl<T: Real> Trainer<T> {
    /// Sums the gradients of `k` batches before each optimizer step: a step
    /// takes `k` batches one after another ([`Trainer::samples_per_step`]
    /// samples) cut into `k` times [`Trainer::micro_batches`] micro-batches,
    /// summed over the fixed tree of [`crate::dist`]. The result is the
    /// bits of a trainer at batch size `k·B` with `k·M` micro-batches, on
    /// any number of ranks; what differs is the memory: a model without a
    /// statistic of the whole batch ([`whole_batch_first`]) computes a
    /// rank's micro-batches one after another in one reused workspace
    /// ([`MicroWorkspaces::Reused`]), so accumulation costs one
    /// micro-batch's activations. `k = 1` is the plain step.
    ///
    /// # Errors
    /// [`Error::Config`] (field `accumulate`) for `k = 0`, for a step of
    /// more samples than memory can index. (A statistic of the whole batch,
    /// batch top-k's threshold, KL's ρ̂, AuxK's residual, is then the
    /// statistic of the step's `k·B` samples, as at batch size `k·B`.)
    pub fn set_accumulate(&mut self, k: usize) -> Result<()> {
        if k == 0 {
            return Err(Error::config(
                "accumulate",
                "must be at least 1 (batches per optimizer step), got 0",
            ));
        }
        if self.batch.checked_mul(k).is_none() {
            return Err(Error::config(
                "accumulate",
                format!(
                    "{k} batches of {} are more samples than a step can hold",
                    self.batch
                ),
            ));
        }
        self.accumulate = k;
        self.micro = None;
        Ok(())
    }

    /// Batches per optimizer step (1 unless [`Trainer::set_accumulate`]).
    pub fn accumulate(&self) -> usize {
        self.accumulate
    }

    /// Whether a step runs in micro-batches over the fixed tree (micro-batches
    /// set, or batches accumulated), rather than as the default step.
    pub fn micro_step(&self) -> bool {
        self.micro_batches.is_some() || self.accumulate > 1
    }

    /// The micro-batches of a step over `ranks` ranks: the step's
    /// [`Trainer::samples_per_step`] samples in `accumulate ×`
    /// [`Trainer::micro_batches`] micro-batches.
    ///
    /// # Errors
    /// [`Error::Config`] for `ranks = 0`.
    pub fn plan(&self, ranks: usize) -> Result<MicroPlan> {
        MicroPlan::new(
            self.samples_per_step(),
            self.accumulate * self.micro_batches(),
            ranks,
        )
    }

    /// Chooses how a step in micro-batches holds its activations (the
    /// default reuses one workspace where the model allows it); the bits
    /// are the same either way.
    pub fn set_micro_workspaces(&mut self, how: MicroWorkspaces) {
        if how != self.micro_ws {
            self.micro_ws = how;
            self.micro = None;
        }
    }

    /// Whether a step in micro-batches reuses one workspace for a rank's
    /// micro-batches ([`MicroWorkspaces::Reused`] and a model that allows
    /// it).
    pub fn reuses_workspaces(&self) -> bool {
        self.micro_ws == MicroWorkspaces::Reused && whole_batch_first(self.model.config()).is_none()
    }

    /// What a step in micro-batches on `rank` of `ranks` holds in memory,
    /// by part, in bytes: the parameters and optimizer state, the noisy
    /// input, the rank's input rows, then the buffers of the step (the
    /// workspaces, the tree nodes this rank computes, the scratch of their
    /// evaluation, the root and the exchange buffers; see [`crate::dist`]).
    /// The default step's buffers are released meanwhile.
    ///
    /// # Errors
    /// [`Error::Config`] for a rank outside `0..ranks`.
    pub fn memory_need(&self, rank: usize, ranks: usize) -> Result<Vec<(String, u64)>> {
        if rank >= ranks {
            return Err(Error::config(
                "rank",
                format!("{rank} is not in 0..{ranks}"),
            ));
        }
        let plan = self.plan(ranks)?;
        let cfg = self.model.config();
        let elem = std::mem::size_of::<T>();
        let n = self.model.params.len();
        let copies = match self.opt.config {
            OptimizerConfig::Adam(_) => 3,
            OptimizerConfig::Sgd(_) => 2,
        };
        let mut parts = vec![(
            "parameters and optimizer state".to_string(),
            bytes(n, elem).saturating_mul(copies),
        )];
        if cfg.noise != Noise::None {
            parts.push((
                "noisy input".into(),
                bytes(self.samples_per_step(), elem).saturating_mul(cfg.input as u64),
            ));
        }
        parts.push((
            "input rows".into(),
            bytes(plan.rows(rank).len(), elem).saturating_mul(cfg.input as u64),
        ));
        parts.extend(Micro::<T>::bytes(
            cfg,
            n,
            plan,
            rank,
            self.reuses_workspaces(),
        ));
        Ok(parts)
    }

    /// Refuses a step in micro-batches on `rank` of `ranks` whose buffers
    /// ([`Trainer::memory_need`]) exceed the memory budget, before they are
    /// allocated. Nothing to check for the default step in one process
    /// (checked by [`Trainer::new`]).
    ///
    /// # Errors
    /// [`Error::Memory`] naming each part; [`Error::Config`] as
    /// [`Trainer::memory_need`].
    pub fn check_memory(&self, rank: usize, ranks: usize) -> Result<()> {
        if ranks == 1 && !self.micro_step() {
            return Ok(());
        }
        let parts = self.memory_need(rank, ranks)?;
        let total = parts
            .iter()
            .fold(0u64, |acc, (_, b)| acc.saturating_add(*b));
        let plan = self.plan(ranks)?;
        let listed: Vec<String> = parts
            .iter()
            .filter(|(_, b)| *b > 0)
            .map(|(name, b)| format!("{name} {}", show(*b)))
            .collect();
        let accumulated = match self.accumulate {
            1 => String::new(),
            k => format!(" ({k} batches of {} per step)", self.batch),
        };
        crate::memory::check(
            &format!(
                "training {} samples per step{accumulated} in {} micro-batches, rank {rank} of {ranks} ({})",
                plan.batch,
                plan.m,
                listed.join(", ")
            ),
            total,
        )
    }
}
