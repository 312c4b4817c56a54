//! Gradient accumulation (several batches per optimizer step) and how a
//! step in micro-batches holds its activations.

use super::{MicroWorkspaces, Trainer, whole_batch_first};
use crate::dist::MicroPlan;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::Noise;

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
    /// more samples than memory can index, or for `k > 1` with a model
    /// whose step needs the whole batch in one piece (batch top-k, AuxK).
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
        let cfg = self.model.config();
        let whole = cfg
            .batch_coupled()
            .or(cfg.sae.auxk.is_some().then_some("AuxK"));
        if let (true, Some(what)) = (k > 1, whole) {
            return Err(Error::config(
                "accumulate",
                format!(
                    "{what} needs the whole batch in one piece: no accumulation (1 batch per step), got {k}"
                ),
            ));
        }
        self.accumulate = k;
        self.micro = None;
        if cfg.noise != Noise::None {
            self.noisy = vec![T::ZERO; self.samples_per_step() * cfg.input];
        }
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
}
