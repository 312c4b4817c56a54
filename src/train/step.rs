//! One training step: corrupt the input, forward, loss, backward, update.

use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::{Autoencoder, LossParts, Noise, TopkPath, Workspace, apply_noise};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng::Rng;

/// The most values (f32) a trainer's workspace may hold: 4 GiB.
const MAX_WORKSPACE: usize = 1 << 30;

/// A model with everything a training step needs, allocated once:
/// workspace, gradient buffer, optimizer state, the noise generator and the
/// corrupted-input buffer. After the first step at a batch size, a step makes
/// no heap allocation.
#[derive(Clone, Debug)]
pub struct Trainer<T> {
    /// The model being trained.
    pub model: Autoencoder<T>,
    /// The optimizer and its state.
    pub opt: Optimizer<T>,
    /// The generator of input noise.
    pub noise_rng: Rng,
    ws: Workspace<T>,
    grads: Vec<T>,
    noisy: Vec<T>,
}

impl<T: Real> Trainer<T> {
    /// A trainer for `model` at batch size `batch`, noise drawn from `noise_seed`.
    ///
    /// # Errors
    /// [`Error::Config`] for bad optimizer settings or a zero batch size.
    pub fn new(
        model: Autoencoder<T>,
        opt: OptimizerConfig,
        batch: usize,
        noise_seed: u64,
    ) -> Result<Trainer<T>> {
        opt.validate()?;
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let cfg = model.config();
        let per_sample: usize = cfg.input
            + (0..cfg.layers.len())
                .map(|l| 2 * cfg.width(l))
                .sum::<usize>();
        if batch
            .checked_mul(per_sample)
            .is_none_or(|n| n > MAX_WORKSPACE)
        {
            return Err(Error::config(
                "batch_size",
                format!(
                    "{batch} samples would need a workspace of more than {} GiB for this model",
                    (MAX_WORKSPACE * 4) >> 30
                ),
            ));
        }
        crate::kernels::gemm::reserve_pack_buffers();
        let n = model.params.len();
        let noisy = match model.config().noise {
            Noise::None => Vec::new(),
            _ => vec![T::ZERO; batch * model.config().input],
        };
        Ok(Trainer {
            ws: model.workspace(batch),
            grads: vec![T::ZERO; n],
            opt: Optimizer::new(opt, n),
            noise_rng: Rng::new(noise_seed),
            noisy,
            model,
        })
    }

    /// The batch size the buffers are sized for.
    pub fn batch(&self) -> usize {
        self.ws.batch()
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.opt.t
    }

    /// The workspace of the last step (activations of the last batch).
    pub fn workspace(&self) -> &Workspace<T> {
        &self.ws
    }

    /// The gradient of the last step.
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    /// Chooses how a top-k code's neighbouring layers are computed
    /// (reallocates the workspace; see [`crate::nn::sparse_topk`]).
    pub fn set_topk_path(&mut self, path: TopkPath) {
        self.ws = self.model.workspace_with(self.ws.batch(), path);
    }

    /// Resizes the buffers for another batch size (allocates).
    pub fn set_batch(&mut self, batch: usize) {
        if batch != self.ws.batch() && batch > 0 {
            self.ws = self.model.workspace_with(batch, self.ws.topk_path());
            if !self.noisy.is_empty() {
                self.noisy = vec![T::ZERO; batch * self.model.config().input];
            }
        }
    }

    /// One step on a clean batch `x: (batch, in)`: noise (if configured),
    /// forward, loss, backward, optimizer update. Returns the loss before the
    /// update.
    ///
    /// # Errors
    /// [`Error::Shape`] if `x` is not one batch; [`Error::NonFinite`] if the
    /// loss is NaN or infinite (the parameters are then left unchanged).
    pub fn step(&mut self, x: &[T]) -> Result<LossParts> {
        let input: &[T] = if self.noisy.is_empty() {
            x
        } else {
            if x.len() != self.noisy.len() {
                return Err(Error::shape(
                    "Trainer::step",
                    format!("{} values", self.noisy.len()),
                    format!("{}", x.len()),
                ));
            }
            apply_noise(
                self.model.config().noise,
                &mut self.noise_rng,
                x,
                &mut self.noisy,
            );
            &self.noisy
        };
        let parts = self
            .model
            .loss_and_grad(&mut self.ws, input, x, Some(&mut self.grads))?;
        if !parts.total().is_finite() {
            return Err(Error::NonFinite {
                step: self.opt.t + 1,
                tensor: format!(
                    "the loss (recon {}, l1 {}, kl {}, l2 {})",
                    parts.recon, parts.l1, parts.kl, parts.l2
                ),
            });
        }
        self.opt.step(&mut self.model.params, &self.grads);
        Ok(parts)
    }
}
