//! What an evaluation pass computes, defined over the whole set evaluated
//! so that neither the chunks it reads, the memory budget nor the thread
//! count change a bit of it.
//!
//! A pass runs the model over the samples in chunks of at most the batch
//! asked for ([`EVAL_BATCH`] for the CLI, the Python module and
//! [`crate::train::encode`] and its kind), fewer where the memory budget
//! cannot hold them. A sample's code and output have the same bits in any
//! batch (the kernels cut their sums by the shapes alone), and every chunk's
//! workspace takes the same top-k path (the one a batch of [`EVAL_BATCH`]
//! takes, whatever the batch asked for), so only what is summed over
//! samples could depend on the chunks:
//! each part of the loss is therefore summed per sample, in f64 and in
//! sample order, and divided once at the end:
//!
//! - the reconstruction loss: the mean over the N samples (and D features
//!   for `bce` and `mse`) of the per-sample sums;
//! - L1: λ/N · Σ_{i,j} |a_ij|, the batch formula with the whole set as the
//!   batch;
//! - KL: ρ̂_j the mean activation of unit j (of channel j, over its
//!   positions) **over the whole set**, then β Σ_j KL(ρ‖ρ̂_j) once. Training
//!   takes ρ̂ over each batch, so a training step's KL is a different
//!   quantity: the mean of per-batch KLs is larger (KL is convex in ρ̂, and
//!   a batch's ρ̂ scatters around the set's);
//! - L2: λ ΣW², once;
//! - AuxK: 0, as only training steps have a dead mask.
//!
//! A batch top-k code keeps the k·B largest values of a batch, so for such
//! a model the batch *is* part of the definition: it is evaluated (and
//! encoded, scored, reconstructed) in consecutive blocks of exactly the
//! batch asked for (the last block holds the rest), and a memory budget that
//! cannot hold a block is an error rather than smaller blocks.

use crate::error::Result;
use crate::kernels::Real;
use crate::nn::{Autoencoder, Loss, LossParts, TopkPath, Workspace, non_finite_output};

/// The batch of the evaluation passes of the CLI, the Python module and
/// [`crate::train::encode`], [`crate::train::score`] and the like: the
/// block a batch top-k model selects over, and otherwise the largest
/// chunk read at once (which changes no result).
pub const EVAL_BATCH: usize = 1000;

/// How a pass over `n` samples is cut: chunks of at most `chunk` samples,
/// every workspace on `path`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunks {
    pub chunk: usize,
    pub path: TopkPath,
}

impl Chunks {
    /// The chunks of a pass over `n` samples asking for batches of `batch`:
    /// for a batch top-k model blocks of exactly `batch` (or `n` if fewer);
    /// otherwise `batch`, or fewer where the memory budget cannot hold it.
    ///
    /// # Errors
    /// [`crate::Error::Memory`] if not one sample fits, or for a batch
    /// top-k model if one block does not.
    pub fn plan(model: &Autoencoder<f32>, batch: usize, n: usize) -> Result<Chunks> {
        let cfg = model.config();
        let want = batch.clamp(1, n.max(1));
        // The path of a batch of EVAL_BATCH whatever the chunks (the two
        // paths round the decoder differently).
        let path = match TopkPath::active().takes_sparse(cfg, EVAL_BATCH) {
            true => TopkPath::Sparse,
            false => TopkPath::Dense,
        };
        let chunk = if cfg.topk.is_some_and(|t| t.batch) {
            model.eval_batch_exact(
                want,
                &format!(
                    "a block of {want} samples of a BatchTopK model (the model keeps the k·B largest values of each block of {want} it evaluates, so the block cannot shrink without changing the results)"
                ),
            )?
        } else {
            model.eval_batch(want)?
        };
        Ok(Chunks { chunk, path })
    }

    /// A workspace for a chunk of `len` samples, reserved fallibly.
    ///
    /// # Errors
    /// As [`Workspace::try_with_topk_path`].
    pub fn workspace(&self, model: &Autoencoder<f32>, len: usize) -> Result<Workspace<f32>> {
        model.try_workspace_with(len, self.path)
    }
}

/// The loss of an evaluation pass, summed sample by sample (see the module
/// doc).
#[derive(Clone, Debug)]
pub(crate) struct SplitLoss {
    /// Σ of each sample's reconstruction loss, unscaled.
    recon: f64,
    /// Σ |a| over the samples of the L1 layer.
    l1: f64,
    /// Σ of each unit of the KL layer over the samples.
    kl: Vec<f64>,
    samples: usize,
}

impl SplitLoss {
    pub fn new(model: &Autoencoder<f32>) -> SplitLoss {
        let cfg = model.config();
        SplitLoss {
            recon: 0.0,
            l1: 0.0,
            kl: vec![0.0; cfg.kl.map_or(0, |p| cfg.width(p.layer))],
            samples: 0,
        }
    }

    /// Adds the samples `target` of the last forward pass in `ws` (clean
    /// inputs, so the targets), the first of them sample `first` of `of`.
    ///
    /// # Errors
    /// [`crate::Error::Value`] naming the first sample whose loss is not
    /// finite though its outputs are.
    pub fn add(
        &mut self,
        model: &Autoencoder<f32>,
        ws: &Workspace<f32>,
        target: &[f32],
        first: usize,
        of: Option<&str>,
    ) -> Result<()> {
        let cfg = model.config();
        let d = cfg.input;
        let out = &ws.h[cfg.layers.len() - 1];
        let l1 = cfg.l1.map(|p| (&ws.h[p.layer], cfg.width(p.layer)));
        for (i, (o, t)) in out.chunks_exact(d).zip(target.chunks_exact(d)).enumerate() {
            let r = match cfg.loss {
                Loss::Bce => f32::bce_logits(o, t, None, 1.0),
                Loss::Mse | Loss::Sse => f32::sq_err(o, t, None, 1.0),
            };
            let a = l1.map_or(0.0, |(h, w)| f32::l1(&h[i * w..(i + 1) * w], None, 1.0));
            if !(r + a).is_finite() {
                return Err(non_finite_output(first + i, of, t));
            }
            self.recon += r;
            self.l1 += a;
        }
        if let Some(p) = cfg.kl {
            for row in ws.h[p.layer].chunks_exact(self.kl.len()) {
                for (s, &v) in self.kl.iter_mut().zip(row) {
                    *s += f64::from(v);
                }
            }
        }
        self.samples += target.len() / d;
        Ok(())
    }

    /// The loss parts over the samples added.
    pub fn parts(&self, model: &Autoencoder<f32>) -> LossParts {
        let cfg = model.config();
        let n = self.samples.max(1) as f64;
        let scale = match cfg.loss {
            Loss::Bce | Loss::Mse => 1.0 / (n * cfg.input as f64),
            Loss::Sse => 0.5 / n,
        };
        let mut parts = LossParts {
            recon: self.recon * scale,
            l2: model.weight_decay_term(),
            ..LossParts::default()
        };
        if let Some(p) = cfg.l1 {
            parts.l1 = self.l1 * (p.lambda / n);
        }
        if let Some(p) = cfg.kl {
            parts.kl = kl_over_set(&self.kl, model.groups(p.layer), self.samples, p.rho, p.beta);
        }
        parts
    }
}

/// β Σ_c KL(ρ‖ρ̂_c) with ρ̂_c the mean of channel c over `samples` samples
/// and its positions, from `sums`, each unit's sum over the samples
/// (`(channels, positions)` per sample).
fn kl_over_set(
    sums: &[f64],
    (channels, positions): (usize, usize),
    samples: usize,
    rho: f64,
    beta: f64,
) -> f64 {
    let mut per_channel: Vec<f64> = sums
        .chunks_exact(positions)
        .take(channels)
        .map(|c| c.iter().sum())
        .collect();
    let mut g = vec![0.0f64; channels];
    crate::nn::sparsity::kl_from_sums(
        &mut per_channel,
        samples.max(1) * positions,
        rho,
        beta,
        &mut g,
    )
}
