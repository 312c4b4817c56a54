//! One training step: corrupt the input, forward, loss, backward, update.

use super::dead::DeadLatents;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::sae_ops::{normalize_columns, remove_parallel_grad};
use crate::nn::{Autoencoder, LossParts, Noise, Workspace, apply_noise};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::rng::Rng;

/// The most values (f32) a trainer's workspace may hold: 4 GiB.
const MAX_WORKSPACE: usize = 1 << 30;

/// A model with everything a training step needs, allocated once:
/// workspace, gradient buffer, optimizer state, the noise generator, the
/// corrupted-input buffer, the dead-latent counters and the unit-norm
/// scratch. After the first step at a batch size, a step makes no heap
/// allocation.
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
    dead: DeadLatents,
    col_scratch: Vec<f64>,
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
        let sae = &cfg.sae;
        let per_sample: usize = cfg.input
            + (0..cfg.layers.len())
                .map(|l| 2 * cfg.width(l))
                .sum::<usize>()
            + usize::from(sae.pre_encoder_bias) * cfg.input
            + usize::from(sae.auxk.is_some()) * 3 * (cfg.input + cfg.width(cfg.code_layer));
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
        let sae = model.config().sae;
        let col_scratch = match sae.unit_norm_decoder {
            true => vec![0.0; 2 * model.config().width(0)],
            false => Vec::new(),
        };
        Ok(Trainer {
            dead: DeadLatents::new(model.config()),
            col_scratch,
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

    /// The dead-latent counters (see [`crate::train::dead`]).
    pub fn dead_latents(&self) -> &DeadLatents {
        &self.dead
    }

    /// The dead-latent counters, to restore them (from a checkpoint).
    pub fn dead_latents_mut(&mut self) -> &mut DeadLatents {
        &mut self.dead
    }

    /// The gradient of the last step.
    pub fn grads(&self) -> &[T] {
        &self.grads
    }

    /// Resizes the buffers for another batch size (allocates).
    pub fn set_batch(&mut self, batch: usize) {
        if batch != self.ws.batch() && batch > 0 {
            self.ws = self.model.workspace(batch);
            if !self.noisy.is_empty() {
                self.noisy = vec![T::ZERO; batch * self.model.config().input];
            }
        }
    }

    /// One step on a clean batch `x: (batch, in)`: noise (if configured),
    /// forward, loss, backward, optimizer update. Returns the loss before the
    /// update.
    ///
    /// With SAE options: the AuxK dead mask comes from the counters before
    /// the step; a unit-norm decoder has its gradient's column-parallel part
    /// removed before the update and its columns renormalised after it; the
    /// dead-latent counters then count the batch's code.
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
        if let Some(mask) = self.ws.dead_mask_mut() {
            self.dead.fill_mask(mask);
        }
        let parts = self
            .model
            .loss_and_grad(&mut self.ws, input, x, Some(&mut self.grads))?;
        if !parts.total().is_finite() {
            return Err(Error::NonFinite {
                step: self.opt.t + 1,
                tensor: format!(
                    "the loss (recon {}, l1 {}, kl {}, l2 {}, auxk {})",
                    parts.recon, parts.l1, parts.kl, parts.l2, parts.auxk
                ),
            });
        }
        let unit_norm = self.model.config().sae.unit_norm_decoder;
        if unit_norm {
            self.project_decoder_grad();
        }
        self.opt.step(&mut self.model.params, &self.grads);
        if unit_norm {
            self.renormalize_decoder();
        }
        self.dead.update(self.model.code(&self.ws));
        Ok(parts)
    }

    /// The decoder weight's range and d_sae (layer 1 of a validated SAE,
    /// `(d_in, d_sae)`).
    fn decoder(&self) -> (std::ops::Range<usize>, usize) {
        let dec = self.model.layout().weight(1);
        (dec.range(), dec.shape[1])
    }

    /// Unit-norm decoder, before the update: removes the gradient's part
    /// parallel to each decoder column (see [`crate::nn::sae_ops`]).
    fn project_decoder_grad(&mut self) {
        let (dec, d_sae) = self.decoder();
        let (w, g) = (&self.model.params[dec.clone()], &mut self.grads[dec]);
        remove_parallel_grad(w, g, d_sae, &mut self.col_scratch);
    }

    /// Unit-norm decoder, after the update: rescales the columns to norm 1.
    fn renormalize_decoder(&mut self) {
        let (dec, d_sae) = self.decoder();
        normalize_columns(&mut self.model.params[dec], d_sae, &mut self.col_scratch);
    }
}
