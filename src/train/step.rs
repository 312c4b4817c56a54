//! One training step: corrupt the input, forward, loss, backward, update.

mod accumulate;
mod micro;

use super::dead::DeadLatents;
use super::metrics::EpochSoFar;
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::nn::sae_ops::{normalize_columns, remove_parallel_grad};
use crate::nn::{Autoencoder, LossParts, ModelConfig, Noise, TopkPath, Workspace, apply_noise};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::parallel::as_part;
use crate::rng::Rng;
use micro::Micro;

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
    /// One workspace and gradient buffer per part of the batch.
    ws: Vec<Workspace<T>>,
    grads: Vec<Vec<T>>,
    batch: usize,
    noisy: Vec<T>,
    dead: DeadLatents,
    col_scratch: Vec<f64>,
    topk_path: TopkPath,
    /// Micro-batches per batch when set ([`Trainer::set_micro_batches`]).
    micro_batches: Option<usize>,
    /// Batches per optimizer step ([`Trainer::set_accumulate`]).
    accumulate: usize,
    /// How a step in micro-batches keeps its activations.
    micro_ws: MicroWorkspaces,
    /// The buffers of a step in micro-batches (built at the first one).
    micro: Option<Box<Micro<T>>>,
    /// The parameters' tensors as the optimizer splits them ([`owned_rows`]).
    owned: Vec<(usize, usize)>,
    /// The bytes of the buffers above, counted against the memory budget
    /// of every later check while the trainer lives.
    held: crate::memory::Held,
    /// The statistics of an epoch stopped before its end, for the run that
    /// continues it ([`Trainer::epoch_so_far`]).
    epoch_so_far: Option<Box<EpochSoFar>>,
}

/// How a step in micro-batches holds the activations of a rank's
/// micro-batches ([`Trainer::set_micro_workspaces`]). Both give the same
/// bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MicroWorkspaces {
    /// One workspace reused for the micro-batches one after another (one per
    /// micro-batch size: one when the batch divides evenly, else two), so a
    /// step holds one micro-batch's activations whatever the number of
    /// micro-batches; unless the model needs a statistic of the whole batch
    /// before its backward passes ([`whole_batch_first`]), which keeps one
    /// per micro-batch.
    #[default]
    Reused,
    /// One workspace per micro-batch, all kept until the step ends.
    PerMicroBatch,
}

/// What makes a step in micro-batches run every forward pass before the
/// first backward pass, so each micro-batch keeps its own workspace: a KL
/// penalty (ρ̂ of the whole batch), AuxK (its residual and dead mask over
/// the whole batch) and batch top-k (one threshold over the whole batch).
pub fn whole_batch_first(cfg: &ModelConfig) -> Option<&'static str> {
    if cfg.kl.is_some() {
        return Some("the KL penalty");
    }
    if cfg.sae.auxk.is_some() {
        return Some("AuxK");
    }
    cfg.batch_coupled()
}

/// Smallest batch computed in two parts side by side: the first past the
/// batches whose products, loss and update the threads share as one part
/// ([`crate::nn::dense::SMALL_BATCH`]). At batch 256 the deep model trains
/// ~20 % faster in two halves than with each product split between the
/// threads; at 32 and 48 the halves are slower (W1 in halves of 16: 103k–
/// 124k samples/s against 176k; 48 samples 167k against 206k, two threads
/// on an AMD EPYC Zen 5). From 65 to 127 samples, where one part had
/// neither the small batches' shared sums nor the halves, the halves gain
/// (same machine, far placement, alternating builds; the limit was 128):
/// the deep model at 80 / 96 / 112 samples 182k–188k / 194k–198k / 201k–203k
/// → 212k / 220k–238k / 231k–234k, the shallow one at 100 465k → 708k, the
/// conv one at 100 25.0k → 31.4k; on one thread the halves cost 4–9 %
/// (deep at 100 174k → 167k), but the parts may not depend on the thread
/// count.
const SPLIT_MIN_BATCH: usize = crate::nn::dense::SMALL_BATCH + 1;

/// The sizes of the parts a batch is computed in: two halves, side by side
/// on two threads ([`crate::parallel::join`]), for batches of at least
/// [`SPLIT_MIN_BATCH`] samples of models without a term coupling the samples'
/// forward passes ([`ModelConfig::batch_coupled`]; with a KL penalty the
/// halves first run up to the KL layer and combine their ρ̂) and without SAE
/// options that act on the whole batch's gradient; otherwise one. The
/// gradients of the halves are summed in a fixed order, and the split
/// depends on the model, the batch size and the top-k path only, never on
/// the number of threads: the result is the same on any number of threads.
///
/// A batch on the sparse top-k path ([`crate::nn::sparse_topk`]) is one
/// part: its products are split between the threads already, and each half
/// would copy the decoder weight transposed and write both weight gradients
/// whole (on the 768-16384-768 TopK SAE at batch 1024, one part takes 138–142
/// ms a step where two took 155–157).
fn parts(cfg: &ModelConfig, batch: usize, path: TopkPath) -> Vec<usize> {
    if batch >= SPLIT_MIN_BATCH
        && cfg.batch_coupled().is_none()
        && !whole_step(cfg)
        && !path.takes_sparse(cfg, batch)
    {
        vec![batch.div_ceil(2), batch / 2]
    } else {
        vec![batch]
    }
}

/// Refuses a trainer whose buffers at batch size `batch` exceed the memory
/// budget, before they are allocated: the parameters, a gradient per part
/// of the batch, the state of the optimizer `opt`, the workspaces and the noisy
/// input, in `elem`-byte values. Returns their bytes.
fn check_step_memory(
    cfg: &ModelConfig,
    n: usize,
    batch: usize,
    path: TopkPath,
    opt: &OptimizerConfig,
    elem: usize,
) -> Result<u64> {
    // Adam keeps two moments, SGD one velocity.
    let moments = if matches!(opt, OptimizerConfig::Adam(_)) {
        2
    } else {
        1
    };
    let sizes = parts(cfg, batch, path);
    let mut needs = crate::memory::bytes(n, elem)
        .saturating_mul(1 + sizes.len() as u64 + moments)
        .saturating_add(crate::memory::bytes(batch, elem).saturating_mul(cfg.input as u64));
    for &b in &sizes {
        let (fixed, per) = crate::nn::workspace_bytes(cfg, b, elem);
        needs = needs.saturating_add(fixed.saturating_add(per.saturating_mul(b as u64)));
    }
    crate::memory::check(&format!("training at batch size {batch}"), needs)?;
    Ok(needs)
}

/// The noisy copy of an input of `len` values: `buf`, sized to `len` the
/// first time (and after a change of batch size or accumulation), so that
/// no setting allocates a copy of a step's input before a step has one.
fn noisy_buffer<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::ZERO);
    }
    &mut buf[..len]
}

/// The optimizer's update of `model` with the batch's gradient `grads`. A
/// unit-norm decoder (layer 1 of a validated SAE, `(d_in, d_sae)`): the
/// gradient's part along each column goes before the update, the columns are
/// rescaled to norm 1 after it (see `crate::nn::sae_ops`).
fn update<T: Real>(
    model: &mut Autoencoder<T>,
    opt: &mut Optimizer<T>,
    grads: &mut [T],
    col_scratch: &mut [f64],
    owned: &[(usize, usize)],
) {
    let unit_norm = model.config().sae.unit_norm_decoder.then(|| {
        let w = model.layout().weight(1);
        (w.range(), w.shape[1])
    });
    if let Some((dec, d_sae)) = &unit_norm {
        let (w, g) = (&model.params[dec.clone()], &mut grads[dec.clone()]);
        remove_parallel_grad(w, g, *d_sae, col_scratch);
    }
    opt.step_owned(&mut model.params, grads, owned);
    if let Some((dec, d_sae)) = unit_norm {
        normalize_columns(&mut model.params[dec], d_sae, col_scratch);
    }
}

/// Each tensor of `layout` as [`Optimizer::step_owned`] takes it: its length
/// and, for a weight matrix of at least 16k values, the values of its rows
/// that the first thread owns ([`crate::parallel::owned_half`]).
fn owned_rows(layout: &crate::nn::ParamLayout) -> Vec<(usize, usize)> {
    layout
        .tensors
        .iter()
        .map(|t| match t.shape[..] {
            [rows, cols] if t.kind == crate::nn::ParamKind::Weight && t.len() >= 1 << 14 => {
                (t.len(), crate::parallel::owned_half(rows) * cols)
            }
            _ => (t.len(), 0),
        })
        .collect()
}

/// Whether a step must see the whole batch at once: the SAE options (a
/// unit-norm decoder's projection of the summed gradient, AuxK's residual
/// variance over the whole batch, the pre-encoder bias kept with them).
fn whole_step(cfg: &ModelConfig) -> bool {
    let sae = &cfg.sae;
    sae.unit_norm_decoder || sae.auxk.is_some() || sae.pre_encoder_bias
}

impl<T: Real> Trainer<T> {
    /// A trainer for `model` at batch size `batch`, noise drawn from `noise_seed`.
    ///
    /// It waits for no thread of the rayon pool: each reserves its packing
    /// buffers when it is free ([`crate::kernels::gemm::reserve_pack_buffers`]),
    /// so a trainer is made while other threads' work (say, another
    /// trainer's loop blocked in a callback) holds pool threads, and steps
    /// after the first allocate nothing once every pool thread has run its
    /// reservation (at once, for an idle pool).
    ///
    /// # Errors
    /// [`Error::Config`] for bad optimizer settings or a zero batch size;
    /// [`Error::Memory`] or [`Error::Value`] when its buffers or the
    /// threads' packing buffers do not fit the memory budget or the
    /// address-space limit.
    pub fn new(
        model: Autoencoder<T>,
        opt: OptimizerConfig,
        batch: usize,
        noise_seed: u64,
    ) -> Result<Trainer<T>> {
        opt.validate()?;
        crate::parallel::start_global_pool(None)?;
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        let cfg = model.config();
        let path = TopkPath::active();
        let (n, sizes) = (model.params.len(), parts(cfg, batch, path));
        let held = check_step_memory(cfg, n, batch, path, &opt, std::mem::size_of::<T>())?;
        crate::kernels::gemm::reserve_pack_buffers()?;
        // Sized by the first noisy step, to the input it is given.
        let noisy = Vec::new();
        let col_scratch = match cfg.sae.unit_norm_decoder {
            true => vec![0.0; 2 * cfg.width(0)],
            false => Vec::new(),
        };
        let ws: Vec<Workspace<T>> = sizes
            .iter()
            .map(|&b| model.try_workspace_with(b, path))
            .collect::<Result<_>>()?;
        Ok(Trainer {
            held: crate::memory::Held::new(held),
            epoch_so_far: None,
            dead: DeadLatents::new(cfg),
            col_scratch,
            topk_path: path,
            micro_batches: None,
            accumulate: 1,
            micro_ws: MicroWorkspaces::default(),
            micro: None,
            owned: owned_rows(model.layout()),
            ws,
            grads: (0..sizes.len())
                .map(|_| crate::memory::try_vec("the gradients", n, T::ZERO))
                .collect::<Result<_>>()?,
            batch,
            opt: Optimizer::try_new(opt, n)?,
            noise_rng: Rng::new(noise_seed),
            noisy,
            model,
        })
    }

    /// The statistics of the epoch this trainer stopped inside of, if it
    /// did ([`crate::train::fit()`] keeps them here when a step limit or an
    /// observer ends it before the epoch's last step, and adds to them
    /// when it continues that epoch; a checkpoint saves them).
    pub fn epoch_so_far(&self) -> Option<&EpochSoFar> {
        self.epoch_so_far.as_deref()
    }

    /// Sets (or clears) what [`Trainer::epoch_so_far`] returns: for a
    /// trainer read from a checkpoint. [`crate::train::fit()`] uses it only
    /// when it was taken at the trainer's step count, inside an epoch, over
    /// the samples the steps of that epoch so far took.
    pub fn set_epoch_so_far(&mut self, so_far: Option<EpochSoFar>) {
        self.epoch_so_far = so_far.map(Box::new);
    }

    /// Takes what [`Trainer::epoch_so_far`] returns, leaving nothing.
    pub fn take_epoch_so_far(&mut self) -> Option<EpochSoFar> {
        self.epoch_so_far.take().map(|s| *s)
    }

    /// The batch size the buffers are sized for (one of the
    /// [`Trainer::accumulate`] batches of a step).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Samples per optimizer step: the batch size times the batches
    /// accumulated ([`Trainer::set_accumulate`]).
    pub fn samples_per_step(&self) -> usize {
        self.batch * self.accumulate
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.opt.t
    }

    /// The workspaces of the last step, in batch order: one per part of the
    /// batch (together the activations of the last batch), or, for a step
    /// in reused workspaces ([`MicroWorkspaces::Reused`]), the last
    /// micro-batch of each size this rank computed
    /// ([`Trainer::step_on_with`] sees every micro-batch's code).
    pub fn workspaces(&self) -> &[Workspace<T>] {
        match &self.micro {
            Some(m) => m.workspaces(),
            None => &self.ws,
        }
    }

    /// The dead-latent counters (see [`crate::train::dead`]).
    pub fn dead_latents(&self) -> &DeadLatents {
        &self.dead
    }

    /// The dead-latent counters, to restore them (from a checkpoint).
    pub fn dead_latents_mut(&mut self) -> &mut DeadLatents {
        &mut self.dead
    }

    /// Chooses how a top-k code's neighbouring layers are computed
    /// (reallocates the workspaces; see [`crate::nn::sparse_topk`]). The
    /// path decides the parts a batch is computed in (one on the sparse
    /// path, whose products split between the threads already).
    ///
    /// # Errors
    /// [`Error::Memory`] when the step's buffers on `path` exceed the memory
    /// budget (the trainer is then unchanged).
    pub fn set_topk_path(&mut self, path: TopkPath) -> Result<()> {
        self.rebuild(self.batch, path)
    }

    /// Resizes the buffers for another batch size (allocates).
    ///
    /// # Errors
    /// [`Error::Config`] for a zero batch size; [`Error::Memory`] when the
    /// step's buffers at `batch` exceed the memory budget, as
    /// [`Trainer::new`] (the trainer is then unchanged).
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if batch != self.batch {
            self.rebuild(batch, self.topk_path)?;
        }
        Ok(())
    }

    /// Remakes the workspaces and gradient buffers for `batch` on `path`.
    fn rebuild(&mut self, batch: usize, path: TopkPath) -> Result<()> {
        let needs = check_step_memory(
            self.model.config(),
            self.model.params.len(),
            batch,
            path,
            &self.opt.config,
            std::mem::size_of::<T>(),
        )?;
        self.micro = None;
        self.topk_path = path;
        let sizes = parts(self.model.config(), batch, path);
        self.ws = sizes
            .iter()
            .map(|&b| self.model.try_workspace_with(b, path))
            .collect::<Result<_>>()?;
        self.grads
            .resize(sizes.len(), vec![T::ZERO; self.model.params.len()]);
        self.batch = batch;
        // (Checked with the old buffers still counted: both exist while
        // the new ones are made.)
        self.held = crate::memory::Held::new(needs);
        Ok(())
    }

    /// One step on clean samples `x: (samples, in)`, `samples` =
    /// [`Trainer::samples_per_step`] (one batch, or the accumulated batches
    /// one after another): noise (if configured), forward, loss, backward,
    /// optimizer update. Returns the loss before the update.
    ///
    /// With SAE options: the AuxK dead mask comes from the counters before
    /// the step; a unit-norm decoder has its gradient's column-parallel part
    /// removed before the update and its columns renormalised after it. The
    /// dead-latent counters then count the batch's code.
    ///
    /// # Errors
    /// [`Error::Shape`] if `x` is not one batch; [`Error::NonFinite`] if the
    /// loss is NaN or infinite (the parameters are then left unchanged).
    pub fn step(&mut self, x: &[T]) -> Result<LossParts> {
        if self.micro_step() {
            return self.step_on(x, &mut crate::dist::Solo);
        }
        self.default_parts()?;
        let d = self.model.config().input;
        if x.len() != self.batch * d {
            return Err(Error::shape(
                "Trainer::step",
                format!("{} × {d} values", self.batch),
                format!("{}", x.len()),
            ));
        }
        let input: &[T] = match self.model.config().noise {
            Noise::None => x,
            noise => {
                let noisy = noisy_buffer(&mut self.noisy, x.len());
                apply_noise(noise, &mut self.noise_rng, x, noisy);
                noisy
            }
        };
        if let ([ws0, ws1], [g0, g1]) = (&mut self.ws[..], &mut self.grads[..]) {
            let (model, whole) = (&self.model, self.batch);
            let ws0_batch = ws0.batch();
            let cut = ws0_batch * d;
            let kl = match model.config().kl {
                None => None,
                Some(_) => {
                    let (a, b) = crate::parallel::join(
                        || as_part(|| model.forward_to_kl(ws0, &input[..cut])),
                        || as_part(|| model.forward_to_kl(ws1, &input[cut..])),
                    );
                    a?;
                    b?;
                    Some(model.combine_kl(ws0, ws1, whole))
                }
            };
            let (p0, p1) = crate::parallel::join(
                || {
                    as_part(|| {
                        let from = model.after_kl();
                        model.loss_and_grad_part(
                            ws0,
                            &input[..cut],
                            &x[..cut],
                            g0,
                            (whole, 0),
                            true,
                            kl,
                            from,
                        )
                    })
                },
                || {
                    as_part(|| {
                        model.loss_and_grad_part(
                            ws1,
                            &input[cut..],
                            &x[cut..],
                            g1,
                            (whole, ws0_batch),
                            false,
                            kl,
                            model.after_kl(),
                        )
                    })
                },
            );
            let parts = p0? + p1?;
            non_finite(&parts, self.opt.t + 1)?;
            self.opt.step_sum(&mut self.model.params, g0, g1);
            self.dead.update_from(&self.model, &self.ws);
            return Ok(parts);
        }
        let ([ws], [grads]) = (&mut self.ws[..], &mut self.grads[..]) else {
            unreachable!("a batch is computed in one or two parts")
        };
        if let Some(mask) = ws.dead_mask_mut() {
            self.dead.fill_mask(mask);
        }
        let parts = self.model.loss_and_grad(ws, input, x, Some(grads))?;
        non_finite(&parts, self.opt.t + 1)?;
        update(
            &mut self.model,
            &mut self.opt,
            grads,
            &mut self.col_scratch,
            &self.owned,
        );
        self.dead.update_from(&self.model, std::slice::from_ref(ws));
        Ok(parts)
    }
}

/// The error for a non-finite loss at `step`.
fn non_finite(parts: &LossParts, step: u64) -> Result<()> {
    if parts.total().is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            step,
            tensor: format!(
                "the loss (recon {}, l1 {}, kl {}, l2 {}, auxk {})",
                parts.recon, parts.l1, parts.kl, parts.l2, parts.auxk
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Activation::{Relu, Sigmoid};
    use crate::nn::ModelBuilder;

    /// A batch computed in two halves gives the loss and the update of the
    /// whole batch (L1 and weight decay included), up to rounding.
    #[test]
    fn halves_add_up_to_the_whole_batch() {
        let l1 = ModelBuilder::new(20)
            .encoder(12, Relu)
            .code(6, Relu)
            .decoder(12, Relu)
            .decoder(20, Sigmoid)
            .l1(1e-2)
            .weight_decay(1e-3)
            .build()
            .unwrap();
        let kl = ModelBuilder::new(20)
            .encoder(12, Relu)
            .code(30, Sigmoid)
            .decoder(12, Relu)
            .decoder(20, Sigmoid)
            .kl(0.05, 3.0)
            .weight_decay(1e-3)
            .build()
            .unwrap();
        halves_match(l1);
        halves_match(kl);
    }

    /// One part up to the small batches' limit, whose shared sums
    /// ([`crate::nn::dense::bce_in_halves`]) hold that many rows; two halves
    /// from the next batch on, with nothing in between.
    #[test]
    fn halves_start_past_the_small_batches() {
        let cfg = crate::nn::presets::preset("deep", 784).unwrap();
        for batch in 1..=300 {
            let p = parts(&cfg, batch, TopkPath::Auto);
            if batch <= crate::nn::dense::SMALL_BATCH {
                assert_eq!(p, [batch]);
            } else {
                assert_eq!(p, [batch.div_ceil(2), batch / 2]);
            }
        }
    }

    fn halves_match(cfg: ModelConfig) {
        let batch = 131;
        assert_eq!(parts(&cfg, batch, TopkPath::Auto), [66, 65]);
        let model = Autoencoder::<f64>::new(cfg, 5).unwrap();
        let mut r = Rng::new(9);
        let x: Vec<f64> = (0..batch * 20).map(|_| f64::from(r.next_f32())).collect();

        let mut split = Trainer::new(model.clone(), OptimizerConfig::default(), batch, 1).unwrap();
        let got = split.step(&x).unwrap();

        let mut ws = model.workspace(batch);
        let mut g = vec![0.0; model.params.len()];
        let want = model.loss_and_grad(&mut ws, &x, &x, Some(&mut g)).unwrap();
        let mut whole = model.clone();
        let mut opt = Optimizer::new(OptimizerConfig::default(), g.len());
        opt.step(&mut whole.params, &g);

        for (a, b) in [
            (got.recon, want.recon),
            (got.l1, want.l1),
            (got.kl, want.kl),
            (got.l2, want.l2),
        ] {
            assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} vs {b}");
        }
        assert!(want.l1 + want.kl > 0.0 && want.l2 > 0.0);
        // Adam's first step moves each parameter by ±lr·(1 − ε-ish) whatever
        // the gradient's size, so compare the gradients through the moments.
        let m_want: Vec<f64> = g.iter().map(|v| 0.1 * v).collect();
        for (i, (a, b)) in split.opt.m.iter().zip(&m_want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1e-9),
                "m[{i}]: {a} vs {b}"
            );
        }
        for (a, b) in split.model.params.iter().zip(&whole.params) {
            assert!((a - b).abs() <= 1e-9, "{a} vs {b}");
        }
    }
}
