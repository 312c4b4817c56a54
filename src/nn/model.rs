//! The autoencoder: parameters, a preallocated workspace, forward and backward.

use super::auxk::AuxScratch;
use super::config::{LayerSpec, Loss, ModelConfig};
use super::conv::{Conv2dShape, ConvAlgo, ConvScratch, conv2d_backward, conv2d_forward};
use super::dense::{WeightUse, dense_backward, dense_forward};
use super::params::{ParamKind, ParamLayout, init_params};
use super::pool::{
    maxpool2d_backward, maxpool2d_forward, upsample_nearest2d_backward, upsample_nearest2d_forward,
};
use super::sae_ops::{center_input, init_sae_weights, pre_bias_backward};
use super::sparse_topk::{CodeTerms, SparseTopk, TopkPath};
use super::sparsity::{
    keep_above, kl_from_sums, kl_penalty, kl_sums, l1_penalty, topk_backward, topk_batch, topk_rows,
};
use crate::error::{Error, Result};
use crate::kernels::{Activation, Real};
use std::ops::Range;

/// The loss of one batch and its parts (all f64).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossParts {
    /// Reconstruction loss (BCE or MSE, mean over batch and features).
    pub recon: f64,
    /// L1 activity penalty.
    pub l1: f64,
    /// KL sparsity penalty.
    pub kl: f64,
    /// L2 weight decay.
    pub l2: f64,
    /// The AuxK auxiliary loss (see [`crate::nn::auxk`]).
    pub auxk: f64,
}

impl LossParts {
    /// The objective: the sum of the parts.
    pub fn total(&self) -> f64 {
        self.recon + self.l1 + self.kl + self.l2 + self.auxk
    }

    /// Every part with its name (the names of the fields), the
    /// reconstruction first.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("recon", self.recon),
            ("l1", self.l1),
            ("kl", self.kl),
            ("l2", self.l2),
            ("auxk", self.auxk),
        ]
    }

    /// The part named `name` (one of [`LossParts::named`]'s names; 0 for
    /// any other).
    pub fn part(&self, name: &str) -> f64 {
        self.named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, v)| v)
    }

    /// `f` applied to every part.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> LossParts {
        LossParts {
            recon: f(self.recon),
            l1: f(self.l1),
            kl: f(self.kl),
            l2: f(self.l2),
            auxk: f(self.auxk),
        }
    }
}

impl std::ops::Add for LossParts {
    type Output = LossParts;

    /// Part by part.
    fn add(self, o: LossParts) -> LossParts {
        LossParts {
            recon: self.recon + o.recon,
            l1: self.l1 + o.l1,
            kl: self.kl + o.kl,
            l2: self.l2 + o.l2,
            auxk: self.auxk + o.auxk,
        }
    }
}

/// What a layer computes, with every size worked out once.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Dense {
        inp: usize,
        out: usize,
    },
    Conv(Conv2dShape),
    MaxPool {
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
    },
    Upsample {
        c: usize,
        h: usize,
        w: usize,
        scale: usize,
    },
}

fn plan(cfg: &ModelConfig) -> Vec<Op> {
    let shapes = cfg.shapes();
    cfg.layers
        .iter()
        .enumerate()
        .map(|(l, spec)| {
            let (c, h, w) = cfg.in_shape(l);
            match *spec {
                LayerSpec::Dense { units, .. } => Op::Dense {
                    inp: c * h * w,
                    out: units,
                },
                LayerSpec::Conv2d {
                    channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => Op::Conv(
                    Conv2dShape::new(c, channels, kernel, kernel, stride, padding, h, w)
                        .expect("a validated configuration"),
                ),
                LayerSpec::MaxPool2d { kernel, stride } => Op::MaxPool {
                    c,
                    h,
                    w,
                    k: kernel,
                    stride,
                },
                LayerSpec::Upsample { scale } => {
                    let _ = shapes[l];
                    Op::Upsample { c, h, w, scale }
                }
            }
        })
        .collect()
}

/// Everything a forward and backward pass writes, allocated once per batch
/// size: each layer's output `h` (the logits `z` for a sigmoid+BCE output
/// layer), the gradients with respect to them, the convolutions' scratch,
/// the pooling argmax indices, the KL scratch, the SAE options' buffers
/// (the centred input of a pre-encoder bias, the AuxK scratch) and the
/// buffers of a top-k code's sparse path (see [`super::sparse_topk`]).
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    batch: usize,
    /// [`shape_key`] of the configuration it was made for.
    key: u64,
    /// Output of each layer, `(batch, width)` (NCHW for images).
    pub h: Vec<Vec<T>>,
    dh: Vec<Vec<T>>,
    conv: Vec<Option<ConvScratch<T>>>,
    argmax: Vec<Vec<u32>>,
    rho_hat: Vec<T>,
    kl_g: Vec<T>,
    topk_scratch: Vec<T>,
    centered: Vec<T>,
    /// The second of the two sums of a dense layer's `dx` (see
    /// [`super::dense::backward_cut`]).
    dx_part: Vec<T>,
    auxk: Option<AuxScratch<T>>,
    topk_path: TopkPath,
    sparse: Option<SparseTopk<T>>,
}

/// Where layer `l`'s weight rows are cut at batch `batch`: an untied dense
/// layer whose product back through it is summed in two parts (see
/// [`super::dense::backward_cut`]); `None` for any other layer.
fn layer_cut(cfg: &ModelConfig, ops: &[Op], l: usize, batch: usize) -> Option<usize> {
    match ops[l] {
        Op::Dense { inp, out } if cfg.tied_to(l).is_none() => {
            super::dense::backward_cut(batch, inp, out)
        }
        _ => None,
    }
}

/// The most values a dense layer's second `dx` sum takes at `batch` (see
/// [`super::dense::backward_cut`]; the first layer has no `dx`).
fn dx_part_len(cfg: &ModelConfig, ops: &[Op], batch: usize) -> usize {
    (1..ops.len())
        .filter(|&l| layer_cut(cfg, ops, l, batch).is_some())
        .map(|l| batch * cfg.fan_in(l))
        .max()
        .unwrap_or(0)
}

/// The error for a finite sample (sample `i`, of `of`, with values `row`)
/// whose code, reconstruction, score or loss is not finite
/// ([`Autoencoder::check_outputs`]); it names the row's largest magnitude.
pub fn non_finite_output<T: Real>(i: usize, of: Option<&str>, row: &[T]) -> Error {
    let largest = row.iter().map(|v| v.to_f64().abs()).fold(0.0f64, f64::max);
    let of = of.map(|o| format!(" of {o}")).unwrap_or_default();
    Error::Value {
        reason: format!(
            "sample {i}{of}: the model's result for it is not finite (inf or NaN; its largest value is {:e}): it lies beyond the range the model computes in f32\n---> HINT: scale the data down to the range the model was trained on (train with --normalize to have the model do it)",
            largest as f32
        ),
    }
}

/// The error for a binary cross-entropy target outside [0, 1]: `at` says
/// where it is.
pub fn bce_target_error(at: String, value: f64) -> Error {
    Error::Value {
        reason: format!(
            "binary cross-entropy needs targets in [0, 1], but {at} is {value}\n---> HINT: scale the data into [0, 1] (divide 0–255 pixels by 255), or use an mse or sse loss (a config with \"loss\": \"mse\" and a linear output, or train --linear-output)"
        ),
    }
}

/// What the buffers of a [`Workspace`] for `cfg` depend on, hashed: the
/// input, the layers, the code layer, tying, the KL layer, top-k, the image
/// shape and the SAE options. A model checks that a workspace it is given
/// was made for a configuration of the same key: one made for another
/// model has buffers of other lengths, which the kernels would index past
/// (a panic deep inside them) or read too little of (a wrong result).
fn shape_key(cfg: &ModelConfig) -> u64 {
    let parts = format!(
        "{:?}",
        (
            cfg.input,
            &cfg.layers,
            cfg.code_layer,
            cfg.tied,
            cfg.kl.map(|k| k.layer),
            cfg.topk,
            cfg.image,
            &cfg.sae,
        )
    );
    crate::io::fnv1a(crate::io::FNV1A_START, parts.as_bytes())
}

/// The index of the first value of `v` that is not finite (as
/// [`first_outside_unit`], vectorised).
pub fn first_non_finite<T: Real>(v: &[T]) -> Option<usize> {
    first_failing(v, |x| x.is_finite())
}

/// The index of the first value of `v` for which `ok` is false, checked in
/// blocks of 64 without a branch per value, so the loop vectorises: a step
/// checks its whole batch this way, and a per-value early exit cost as
/// much as the BCE loss itself at batch 32.
#[inline(always)]
fn first_failing<T: Real>(v: &[T], ok: impl Fn(T) -> bool) -> Option<usize> {
    const BLOCK: usize = 64;
    v.chunks(BLOCK).enumerate().find_map(|(b, c)| {
        if c.iter().fold(true, |all, &x| all & ok(x)) {
            None
        } else {
            c.iter().position(|&x| !ok(x)).map(|i| b * BLOCK + i)
        }
    })
}

/// The index of the first value of `v` outside [0, 1] (NaN included),
/// checked in blocks of 64 without a branch per value, so the loop
/// vectorises: a step checks its whole batch of targets this way.
pub fn first_outside_unit<T: Real>(v: &[T]) -> Option<usize> {
    first_failing(v, |x| (x >= T::ZERO) & (x <= T::ONE))
}

/// What a [`Workspace`] of `cfg` at batch size `batch` holds, in bytes of
/// `elem`-byte values: `(fixed, per_sample)`, an upper bound worked out from
/// the configuration alone (each layer's output and its gradient, the
/// convolutions' scratch with every buffer of the algorithm they take, im2col
/// or shifted planes ([`super::conv::scratch_bytes`]), pooling indices, the
/// top-k, pre-encoder-bias and AuxK buffers, a cut layer's second `dx` sum),
/// so a command can refuse a batch before allocating it (see
/// [`crate::memory`]).
///
/// # Panics
/// If `cfg` is invalid.
pub fn workspace_bytes(cfg: &ModelConfig, batch: usize, elem: usize) -> (u64, u64) {
    let e = elem as u64;
    let code = cfg.width(cfg.code_layer) as u64;
    let input = cfg.input as u64;
    let mut per: u64 = 0;
    let ops = plan(cfg);
    // The second sum of a cut layer's `dx`.
    let mut fixed = dx_part_len(cfg, &ops, batch) as u64;
    for (l, op) in ops.iter().enumerate() {
        let w = cfg.width(l) as u64;
        per = per.saturating_add(2 * w);
        match op {
            Op::Conv(s) => {
                // Every buffer of the algorithm the workspace's scratch
                // takes (im2col, shifted planes or both).
                let scratch = super::conv::scratch_bytes(batch, s, ConvAlgo::Auto, 1);
                fixed = fixed.saturating_add(scratch);
            }
            Op::MaxPool { .. } => per = per.saturating_add(w),
            _ => {}
        }
    }
    if let Some(t) = cfg.topk {
        per = per.saturating_add(4 * cfg.width(t.layer) as u64);
        fixed = fixed.saturating_add(2 * code * cfg.width(t.layer + 1) as u64);
    }
    if cfg.sae.pre_encoder_bias {
        per = per.saturating_add(input);
    }
    if cfg.sae.auxk.is_some() {
        per = per.saturating_add(3 * (input + code));
        fixed = fixed.saturating_add(2 * input * code + 2 * code + input);
    }
    (fixed.saturating_mul(e), per.saturating_mul(e))
}

impl<T: Real> Workspace<T> {
    /// A workspace for `cfg` at batch size `batch`, with the default top-k
    /// path ([`TopkPath::active`]).
    ///
    /// # Panics
    /// If `cfg` is invalid (every model validates its configuration), or
    /// the system refuses a buffer ([`Workspace::try_new`] returns the
    /// error instead).
    pub fn new(cfg: &ModelConfig, batch: usize) -> Workspace<T> {
        Workspace::with_topk_path(cfg, batch, TopkPath::active())
    }

    /// A workspace for `cfg` at batch size `batch` whose top-k code (if
    /// any) takes `path`.
    ///
    /// # Panics
    /// If `cfg` is invalid (every model validates its configuration), or
    /// the system refuses a buffer ([`Workspace::try_with_topk_path`]
    /// returns the error instead).
    pub fn with_topk_path(cfg: &ModelConfig, batch: usize, path: TopkPath) -> Workspace<T> {
        Workspace::try_with_topk_path(cfg, batch, path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Workspace::new`], its large buffers reserved fallibly.
    ///
    /// # Errors
    /// As [`Workspace::try_with_topk_path`].
    pub fn try_new(cfg: &ModelConfig, batch: usize) -> Result<Workspace<T>> {
        Workspace::try_with_topk_path(cfg, batch, TopkPath::active())
    }

    /// [`Workspace::with_topk_path`], its buffers reserved fallibly.
    ///
    /// # Errors
    /// [`Error::Value`] for a workspace larger than this target's address
    /// space holds ([`workspace_bytes`] past [`crate::memory::MAX_BUDGET`]:
    /// 2 GiB with 32-bit pointers), or naming the buffer the system
    /// refuses.
    ///
    /// # Panics
    /// If `cfg` is invalid (every model validates its configuration).
    pub fn try_with_topk_path(
        cfg: &ModelConfig,
        batch: usize,
        path: TopkPath,
    ) -> Result<Workspace<T>> {
        // Every buffer's length below is at most its bytes in this count,
        // so none of their products overflows once it fits.
        let what = format!("a workspace at batch size {batch}");
        let (fixed, per) = workspace_bytes(cfg, batch, std::mem::size_of::<T>());
        crate::memory::check_size(
            &what,
            fixed.saturating_add(per.saturating_mul(batch as u64)),
        )?;
        let z = |n: usize| crate::memory::try_vec(&what, n, T::ZERO);
        let ops = plan(cfg);
        let conv = ops
            .iter()
            .map(|op| match op {
                Op::Conv(s) => ConvScratch::try_new(batch, s).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        let layers = || {
            (0..cfg.layers.len())
                .map(|l| z(batch * cfg.width(l)))
                .collect::<Result<Vec<_>>>()
        };
        let kl_units = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        Ok(Workspace {
            batch,
            key: shape_key(cfg),
            h: layers()?,
            dh: layers()?,
            conv,
            argmax: (0..cfg.layers.len())
                .map(|l| match ops[l] {
                    Op::MaxPool { .. } => crate::memory::try_vec(&what, batch * cfg.width(l), 0),
                    _ => Ok(Vec::new()),
                })
                .collect::<Result<_>>()?,
            rho_hat: z(kl_units)?,
            kl_g: z(kl_units)?,
            topk_scratch: z(cfg.topk.map_or(0, |t| batch * cfg.width(t.layer)))?,
            centered: z(if cfg.sae.pre_encoder_bias {
                batch * cfg.input
            } else {
                0
            })?,
            dx_part: z(dx_part_len(cfg, &ops, batch))?,
            auxk: match cfg.sae.auxk {
                Some(_) => Some(AuxScratch::try_new(
                    batch,
                    cfg.input,
                    cfg.width(cfg.code_layer),
                )?),
                None => None,
            },
            topk_path: path,
            sparse: SparseTopk::try_new(cfg, batch, path)?,
        })
    }

    /// Bytes the buffers hold (their capacities): what
    /// [`workspace_bytes`] bounds at this batch size.
    pub fn heap_bytes(&self) -> u64 {
        use crate::memory::vec_bytes;
        let layers = |v: &Vec<Vec<T>>| v.iter().map(vec_bytes).sum::<u64>();
        layers(&self.h)
            + layers(&self.dh)
            + self
                .conv
                .iter()
                .flatten()
                .map(|c| c.heap_bytes())
                .sum::<u64>()
            + self.argmax.iter().map(vec_bytes).sum::<u64>()
            + [
                &self.rho_hat,
                &self.kl_g,
                &self.topk_scratch,
                &self.centered,
                &self.dx_part,
            ]
            .map(vec_bytes)
            .iter()
            .sum::<u64>()
            + self.auxk.as_ref().map_or(0, |a| a.heap_bytes())
            + self.sparse.as_ref().map_or(0, |s| s.heap_bytes())
    }

    /// The dead-latent mask the AuxK loss of the next pass uses (one entry
    /// per code unit; all false in a fresh workspace), `None` without AuxK.
    pub fn dead_mask_mut(&mut self) -> Option<&mut [bool]> {
        self.auxk.as_mut().map(|a| &mut a.dead[..])
    }

    /// Holds the AuxK residual of the last pass fixed in later passes (for
    /// gradient checks; see [`AuxScratch::hold_residual`]).
    pub fn hold_auxk_residual(&mut self, hold: bool) {
        if let Some(a) = self.auxk.as_mut() {
            a.hold_residual(hold);
        }
    }

    /// A hash of the AuxK selection of the last pass (0 without AuxK): a
    /// finite difference is only valid where it does not change.
    pub fn auxk_fingerprint(&self) -> u64 {
        self.auxk.as_ref().map_or(0, AuxScratch::fingerprint)
    }

    /// The batch size this workspace holds.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The top-k path this workspace was made with.
    pub fn topk_path(&self) -> TopkPath {
        self.topk_path
    }

    /// Whether the top-k code runs on the sparse path.
    pub fn uses_sparse_topk(&self) -> bool {
        self.sparse.is_some()
    }

    /// On the sparse top-k path, the layer of the code and its non-zero
    /// entries by sample after the last forward pass
    /// ([`SparseTopk::code`]); `None` on the dense path.
    pub fn sparse_code(&self) -> Option<(usize, crate::kernels::Csr<'_, T>)> {
        self.sparse.as_ref().map(|s| (s.code_layer(), s.code()))
    }

    /// A hash of the max-pooling choices of the last forward pass (which
    /// input won each window): a finite difference is only valid where it
    /// does not change.
    pub fn pool_fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &i in self.argmax.iter().flatten() {
            hash = (hash ^ u64::from(i)).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// ρ̂ of the KL layer (per unit, or per channel for images) from the
    /// last forward pass with a KL penalty.
    pub fn rho_hat(&self) -> &[T] {
        &self.rho_hat
    }
}

/// An autoencoder (dense and/or convolutional) with its parameters in one
/// flat buffer.
#[derive(Clone, Debug)]
pub struct Autoencoder<T> {
    cfg: ModelConfig,
    layout: ParamLayout,
    ops: Vec<Op>,
    /// Output shape (c, h, w) of each layer, worked out once.
    shapes: Vec<(usize, usize, usize)>,
    /// The flat parameter buffer (see [`ParamLayout`]).
    pub params: Vec<T>,
    /// [`shape_key`] of `cfg`: the workspaces this model takes.
    key: u64,
}

impl<T: Real> Autoencoder<T> {
    /// A model with fresh Glorot-uniform weights drawn from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] if the configuration is invalid.
    pub fn new(cfg: ModelConfig, seed: u64) -> Result<Autoencoder<T>> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        crate::memory::check(
            "the model",
            crate::memory::bytes(layout.len, std::mem::size_of::<T>()),
        )?;
        let mut params = init_params(&layout, seed)?;
        init_sae_weights(&cfg.sae, &layout, &mut params);
        Ok(Autoencoder {
            ops: plan(&cfg),
            shapes: cfg.shapes(),
            key: shape_key(&cfg),
            cfg,
            layout,
            params,
        })
    }

    /// A model with the given flat parameters.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::Shape`] if the
    /// buffer does not have the layout's length.
    pub fn with_params(cfg: ModelConfig, params: Vec<T>) -> Result<Autoencoder<T>> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        if params.len() != layout.len {
            return Err(Error::shape(
                "Autoencoder::with_params",
                format!("{} parameters", layout.len),
                format!("{}", params.len()),
            ));
        }
        Ok(Autoencoder {
            ops: plan(&cfg),
            shapes: cfg.shapes(),
            key: shape_key(&cfg),
            cfg,
            layout,
            params,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// The batch size to evaluate or run this model at: `want`, or less
    /// where the memory budget ([`crate::memory`]) cannot hold a workspace
    /// and an input buffer of `want` samples beside the parameters.
    ///
    /// # Errors
    /// [`Error::Memory`] if not even one sample fits.
    pub fn eval_batch(&self, want: usize) -> Result<usize> {
        let (fixed, per) = self.run_bytes(want);
        crate::memory::fitting_batch("running the model on one sample", want, fixed, per)
    }

    /// [`Self::eval_batch`] for a batch that must not shrink (a batch
    /// top-k code selects over its batch, so the batch defines the result):
    /// `batch` if the memory budget holds a workspace and an input buffer
    /// of `batch` samples beside the parameters.
    ///
    /// # Errors
    /// [`Error::Memory`] naming `what` and the budget otherwise.
    pub fn eval_batch_exact(&self, batch: usize, what: &str) -> Result<usize> {
        let (fixed, per) = self.run_bytes(batch);
        crate::memory::check(what, fixed.saturating_add(per.saturating_mul(batch as u64)))?;
        Ok(batch)
    }

    /// The bytes of running this model at batch `batch`: `(fixed,
    /// per_sample)`, the parameters and a workspace and an input buffer.
    fn run_bytes(&self, batch: usize) -> (u64, u64) {
        let elem = std::mem::size_of::<T>();
        let (fixed, per) = workspace_bytes(&self.cfg, batch, elem);
        let fixed = fixed.saturating_add(crate::memory::bytes(self.params.len(), elem));
        let per = per.saturating_add(crate::memory::bytes(self.cfg.input, elem));
        (fixed, per)
    }

    /// The weight-decay term λ·ΣW² over the weights (not the biases); 0
    /// without weight decay.
    pub(crate) fn weight_decay_term(&self) -> f64 {
        if self.cfg.weight_decay <= 0.0 {
            return 0.0;
        }
        let s: f64 = self
            .layout
            .tensors
            .iter()
            .filter(|t| t.kind == ParamKind::Weight)
            .map(|t| T::sum_sq(&self.params[t.range()]))
            .sum();
        self.cfg.weight_decay * s
    }

    /// A workspace for this model at batch size `batch`.
    ///
    /// # Panics
    /// If the system refuses a buffer (a batch too large to hold):
    /// [`Self::try_workspace`] returns the error instead.
    pub fn workspace(&self, batch: usize) -> Workspace<T> {
        Workspace::new(&self.cfg, batch)
    }

    /// [`Self::workspace`], its large buffers reserved fallibly: a batch
    /// the memory budget or the system cannot hold is an error naming it.
    ///
    /// # Errors
    /// As [`Workspace::try_new`].
    pub fn try_workspace(&self, batch: usize) -> Result<Workspace<T>> {
        Workspace::try_new(&self.cfg, batch)
    }

    /// A workspace at batch size `batch` with the top-k code on `path`.
    ///
    /// # Panics
    /// As [`Self::workspace`] ([`Self::try_workspace_with`] returns the
    /// error instead).
    pub fn workspace_with(&self, batch: usize, path: TopkPath) -> Workspace<T> {
        Workspace::with_topk_path(&self.cfg, batch, path)
    }

    /// [`Self::workspace_with`], its large buffers reserved fallibly.
    ///
    /// # Errors
    /// As [`Workspace::try_with_topk_path`].
    pub fn try_workspace_with(&self, batch: usize, path: TopkPath) -> Result<Workspace<T>> {
        Workspace::try_with_topk_path(&self.cfg, batch, path)
    }

    /// The same model in another float type (values converted by rounding).
    pub fn cast<U: Real>(&self) -> Autoencoder<U> {
        Autoencoder {
            cfg: self.cfg.clone(),
            layout: self.layout.clone(),
            ops: self.ops.clone(),
            shapes: self.shapes.clone(),
            key: self.key,
            params: self
                .params
                .iter()
                .map(|v| U::from_f64(v.to_f64()))
                .collect(),
        }
    }

    /// Whether the last layer stores logits (sigmoid output trained with BCE).
    fn logits_out(&self) -> bool {
        self.cfg.loss == Loss::Bce
    }

    /// Where the output layer's columns are cut between the threads at
    /// batch `b` (its rows of the weight, see [`super::dense::backward_cut`]).
    fn output_cut(&self, b: usize) -> Option<usize> {
        layer_cut(&self.cfg, &self.ops, self.cfg.layers.len() - 1, b)
    }

    fn weight_use(&self, l: usize) -> WeightUse {
        if self.cfg.tied_to(l).is_some() {
            WeightUse::Tied
        } else {
            WeightUse::Own
        }
    }

    /// Refuses a workspace made for another model, or for a batch of no
    /// samples (whose loss would be the NaN of a mean over nothing).
    fn check_ws(&self, ws: &Workspace<T>, what: &'static str) -> Result<()> {
        if ws.key != self.key {
            return Err(Error::shape(
                what,
                "a workspace made for this model (Autoencoder::workspace)",
                "one made for another model (of other widths or layers)",
            ));
        }
        if ws.batch == 0 {
            return Err(Error::shape(
                what,
                "a workspace of at least one sample",
                "one of batch size 0",
            ));
        }
        Ok(())
    }

    /// Checks `ws` ([`Self::check_ws`]) and that `x` holds its batch of
    /// samples, finite ones when `finite` (a pass over the batch, which a
    /// caller whose later check covers it skips).
    fn check_batch(
        &self,
        ws: &Workspace<T>,
        x: &[T],
        what: &'static str,
        finite: bool,
    ) -> Result<()> {
        self.check_ws(ws, what)?;
        let want = ws.batch * self.cfg.input;
        if x.len() != want {
            return Err(Error::shape(
                what,
                format!("{} × {} = {want} values", ws.batch, self.cfg.input),
                format!("{}", x.len()),
            ));
        }
        if finite && let Some(i) = first_non_finite(x) {
            let d = self.cfg.input;
            return Err(Error::Value {
                reason: format!(
                    "{what}: feature {} of sample {} of the batch is {}: a model computes on finite values only (one NaN in a batch top-k code would blank every sample's code)",
                    i % d,
                    i / d,
                    x[i].to_f64()
                ),
            });
        }
        Ok(())
    }

    /// Forward pass of a batch `input: (batch, in)` into `ws.h`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `input` does not hold `ws.batch()` samples, or
    /// `ws` was made for another model or a batch of 0; [`Error::Value`]
    /// for a value of `input` that is not finite; [`Error::Config`] when
    /// the pool cannot start as the environment asks
    /// ([`crate::parallel::ensure_global_pool`]).
    pub fn forward(&self, ws: &mut Workspace<T>, input: &[T]) -> Result<()> {
        crate::parallel::ensure_global_pool()?;
        self.check_batch(ws, input, "Autoencoder::forward", true)?;
        self.forward_layers(ws, input, 0..self.cfg.layers.len());
        Ok(())
    }

    /// The forward pass through `layers` (those below already computed).
    fn forward_layers(&self, ws: &mut Workspace<T>, input: &[T], layers: Range<usize>) {
        self.forward_range(ws, input, layers, false);
    }

    /// The forward pass of one part of a batch through `layers` (those below
    /// already computed), a batch top-k code left unselected for
    /// [`Self::select_code`] (its threshold is the whole batch's; see
    /// [`crate::dist`]).
    ///
    /// # Errors
    /// [`Error::Shape`] if `input` does not hold `ws.batch()` samples.
    pub(crate) fn forward_part(
        &self,
        ws: &mut Workspace<T>,
        input: &[T],
        layers: Range<usize>,
    ) -> Result<()> {
        self.check_batch(ws, input, "Autoencoder::forward", true)?;
        self.forward_range(ws, input, layers, true);
        Ok(())
    }

    /// The batch top-k selection of a part of a batch after
    /// [`Self::forward_part`]: keeps the values above `t` and the first
    /// `ties` equal to it (`cut = Some((t, ties))`, batch row-major order),
    /// or every value (`None`), and records the code for the sparse path.
    pub(crate) fn select_code(&self, ws: &mut Workspace<T>, cut: Option<(T, usize)>) {
        let Some(t) = self.cfg.topk.filter(|t| t.batch) else {
            return;
        };
        let h = &mut ws.h[t.layer];
        if let Some(a) = ws.auxk.as_mut() {
            a.pre_topk.copy_from_slice(h);
        }
        if let Some(sp) = ws.sparse.as_mut() {
            sp.select_cut(h, cut);
        } else if let Some((t, ties)) = cut {
            keep_above(h, t, ties);
        }
    }

    /// The forward pass through `layers`; with `defer`, a batch top-k code
    /// is left unselected.
    fn forward_range(&self, ws: &mut Workspace<T>, input: &[T], layers: Range<usize>, defer: bool) {
        let last = self.cfg.layers.len() - 1;
        let b = ws.batch;
        // With a pre-encoder bias the first layer sees x − b_dec.
        let input: &[T] = if self.cfg.sae.pre_encoder_bias {
            if layers.start == 0 {
                let b_dec = &self.params[self.layout.bias(last).range()];
                center_input(&mut ws.centered, input, b_dec);
            }
            &ws.centered
        } else {
            input
        };
        for l in layers {
            let mut act = self.cfg.layers[l].act();
            if l == last && self.logits_out() {
                act = Activation::Linear;
            }
            let (before, rest) = ws.h.split_at_mut(l);
            let x: &[T] = if l == 0 { input } else { &before[l - 1] };
            let h = &mut rest[0];
            if let Some(sp) = ws.sparse.as_mut().filter(|s| s.code_layer() + 1 == l) {
                let (w, b) = (self.layout.weight(l), self.layout.bias(l));
                sp.decoder_forward(h, &self.params[w.range()], &self.params[b.range()], act);
                continue;
            }
            match self.ops[l] {
                Op::Dense { inp, out } => dense_forward(
                    h,
                    x,
                    &self.params[self.layout.weight(l).range()],
                    &self.params[self.layout.bias(l).range()],
                    b,
                    inp,
                    out,
                    act,
                    self.weight_use(l),
                ),
                Op::Conv(s) => conv2d_forward(
                    h,
                    x,
                    &self.params[self.layout.weight(l).range()],
                    &self.params[self.layout.bias(l).range()],
                    b,
                    &s,
                    act,
                    ws.conv[l].as_mut().expect("conv scratch"),
                ),
                Op::MaxPool {
                    c,
                    h: ih,
                    w: iw,
                    k,
                    stride,
                } => maxpool2d_forward(h, &mut ws.argmax[l], x, b, c, ih, iw, k, stride),
                Op::Upsample {
                    c,
                    h: ih,
                    w: iw,
                    scale,
                } => upsample_nearest2d_forward(h, x, b, c, ih, iw, scale),
            }
            if let Some(t) = self.cfg.topk
                && t.layer == l
                && !(defer && t.batch)
            {
                let (units, _, _) = self.shapes[l];
                if let Some(a) = ws.auxk.as_mut() {
                    a.pre_topk.copy_from_slice(h);
                }
                if let Some(sp) = ws.sparse.as_mut() {
                    sp.select(h, &mut ws.topk_scratch);
                } else if t.batch {
                    topk_batch(h, t.k * b, &mut ws.topk_scratch);
                } else {
                    topk_rows(h, units, t.k, &mut ws.topk_scratch);
                }
            }
        }
    }

    /// The decoder alone: the layers after the code layer on `code: (batch,
    /// code units)` (NCHW for a convolutional code), into `ws.h`; read x̂
    /// with [`Autoencoder::reconstruction`]. The code is used as given (no
    /// top-k selection), so the workspace must compute top-k codes densely
    /// ([`TopkPath::Dense`]).
    ///
    /// # Errors
    /// [`Error::Shape`] if `code` does not hold `ws.batch()` codes, or `ws`
    /// was made for another model or a batch of 0;
    /// [`Error::Config`] for a workspace on the sparse top-k path, or when
    /// the pool cannot start as the environment asks
    /// ([`crate::parallel::ensure_global_pool`]).
    pub fn decode(&self, ws: &mut Workspace<T>, code: &[T]) -> Result<()> {
        crate::parallel::ensure_global_pool()?;
        self.check_ws(ws, "Autoencoder::decode")?;
        let c = self.cfg.code_layer;
        let want = ws.batch * self.cfg.width(c);
        if code.len() != want {
            return Err(Error::shape(
                "Autoencoder::decode",
                format!("{} × {} = {want} values", ws.batch, self.cfg.width(c)),
                format!("{}", code.len()),
            ));
        }
        if ws.sparse.is_some() {
            return Err(Error::config(
                "Autoencoder::decode",
                "the workspace takes the sparse top-k path; decode needs one made with TopkPath::Dense",
            ));
        }
        ws.h[c].copy_from_slice(code);
        self.forward_layers(ws, &[], c + 1..self.cfg.layers.len());
        Ok(())
    }

    /// The reconstruction x̂ of the last forward pass, `(batch, in)`, written
    /// into `out` (applies the sigmoid to stored logits). Before any forward
    /// pass the workspace holds zeros.
    ///
    /// # Panics
    /// If `ws` was made for another model, or `out` is not `batch × in`
    /// long.
    pub fn reconstruction(&self, ws: &Workspace<T>, out: &mut [T]) {
        assert!(
            ws.key == self.key,
            "Autoencoder::reconstruction: the workspace was made for another model"
        );
        assert_eq!(
            out.len(),
            ws.batch * self.cfg.input,
            "Autoencoder::reconstruction: `out` must hold batch × input = {} × {} values",
            ws.batch,
            self.cfg.input
        );
        let last = ws.h.len() - 1;
        out.copy_from_slice(&ws.h[last]);
        if self.logits_out() {
            T::act_forward(Activation::Sigmoid, out);
        }
    }

    /// Checks that the last forward pass of finite samples `input` gave a
    /// finite code and output: samples far beyond the range the model was
    /// trained on can overflow f32 inside it, and a code or reconstruction
    /// of inf or NaN (or a score or loss computed from one) would be
    /// reported as a result. `first` is the place of the batch's first
    /// sample among those the caller reads, `of` what they are (say, "the
    /// test split").
    ///
    /// # Errors
    /// [`Error::Value`] naming the first such sample, its largest value and
    /// the remedy; [`Error::Shape`] if `ws` was made for another model or
    /// `input` does not hold its batch.
    pub fn check_outputs(
        &self,
        ws: &Workspace<T>,
        input: &[T],
        first: usize,
        of: Option<&str>,
    ) -> Result<()> {
        self.check_ws(ws, "Autoencoder::check_outputs")?;
        let want = ws.batch * self.cfg.input;
        if input.len() != want {
            return Err(Error::shape(
                "Autoencoder::check_outputs",
                format!("{} × {} = {want} values", ws.batch, self.cfg.input),
                format!("{}", input.len()),
            ));
        }
        let last = self.cfg.layers.len() - 1;
        let row_of = |v: &[T]| {
            let width = v.len() / ws.batch.max(1);
            v.iter()
                .position(|x| !x.is_finite())
                .map(|i| i / width.max(1))
        };
        let bad = [self.cfg.code_layer, last]
            .iter()
            .filter_map(|&l| row_of(&ws.h[l]))
            .min();
        let Some(i) = bad else { return Ok(()) };
        let d = self.cfg.input;
        Err(non_finite_output(first + i, of, &input[i * d..(i + 1) * d]))
    }

    /// The code (output of the code layer) of the last forward pass.
    ///
    /// # Panics
    /// If `ws` was made for another model.
    pub fn code<'w>(&self, ws: &'w Workspace<T>) -> &'w [T] {
        assert!(
            ws.key == self.key,
            "Autoencoder::code: the workspace was made for another model"
        );
        &ws.h[self.cfg.code_layer]
    }

    /// (channels, positions per channel) of layer `l`'s output.
    pub(crate) fn groups(&self, l: usize) -> (usize, usize) {
        match self.cfg.layers[l] {
            LayerSpec::Dense { units, .. } => (units, 1),
            _ => {
                let (c, h, w) = self.shapes[l];
                (c, h * w)
            }
        }
    }

    /// Forward pass, loss, and — when `grads` is given — the backward pass.
    ///
    /// `input` is what the model sees (possibly corrupted), `target` the clean
    /// batch to reconstruct, both `(batch, in)`. Gradients are written into
    /// `grads` (same layout as the parameters), overwriting it.
    ///
    /// # Errors
    /// [`Error::Shape`] if a buffer has the wrong length, or `ws` was made
    /// for another model or a batch of 0; [`Error::Value`] for an input or
    /// target value that is not finite, or if the model's loss is binary
    /// cross-entropy and a target is outside [0, 1]; [`Error::Config`] when
    /// the pool cannot start as the environment asks
    /// ([`crate::parallel::ensure_global_pool`]).
    pub fn loss_and_grad(
        &self,
        ws: &mut Workspace<T>,
        input: &[T],
        target: &[T],
        grads: Option<&mut [T]>,
    ) -> Result<LossParts> {
        crate::parallel::ensure_global_pool()?;
        if let Some(g) = &grads {
            self.check_grads(g)?;
        }
        let parts = self.loss_with(ws, input, target, grads.is_some(), Part::WHOLE)?;
        if let Some(g) = grads {
            self.backward_with(ws, input, g, Part::WHOLE);
        }
        Ok(parts)
    }

    /// [`Autoencoder::loss_and_grad`] (with a gradient) on one part of a
    /// batch of `whole` samples: the loss, the L1 penalty and their
    /// gradients are normalised by `whole`, so the parts' losses and
    /// gradients add up to the whole batch's. The weight-decay term and its
    /// gradient are included only when `decay` is set (in one part). The
    /// part's first sample is sample `first` of the batch (errors name
    /// samples by their place in the batch). The layers below `from` have
    /// been computed already (by [`Self::forward_to_kl`] or
    /// [`Self::forward_part`]). With a KL penalty, the parts' ρ̂ have been
    /// combined by [`Self::combine_kl`] or [`Self::set_kl_total`], whose
    /// value is `kl` (counted in the part with `decay`). A batch top-k code
    /// has been selected with the whole batch's threshold
    /// ([`Self::select_code`]), and an AuxK denominator set for the whole
    /// batch ([`Self::set_auxk_denominator`]) when a latent is dead.
    ///
    /// # Errors
    /// [`Error::Shape`] for a buffer of the wrong length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loss_and_grad_part(
        &self,
        ws: &mut Workspace<T>,
        input: &[T],
        target: &[T],
        grads: &mut [T],
        (whole, first): (usize, usize),
        decay: bool,
        kl: Option<f64>,
        from: usize,
    ) -> Result<LossParts> {
        self.check_grads(grads)?;
        let part = Part {
            whole: Some(whole),
            first,
            decay,
            kl: kl.map(|v| if decay { v } else { 0.0 }),
            from,
        };
        let parts = self.loss_with(ws, input, target, true, part)?;
        self.backward_with(ws, input, grads, part);
        Ok(parts)
    }

    /// The layer a part's loss pass starts from after
    /// [`Self::forward_to_kl`]: the one above the KL layer (0 without KL).
    pub(crate) fn after_kl(&self) -> usize {
        self.cfg.kl.map_or(0, |p| p.layer + 1)
    }

    /// The AuxK residual of a part of a batch after its whole forward pass
    /// ([`Self::forward_part`]): `e = target − x̂` kept in `ws`, and its
    /// column sums returned (`None` without AuxK).
    pub(crate) fn auxk_residual<'w>(
        &self,
        ws: &'w mut Workspace<T>,
        target: &[T],
    ) -> Option<&'w [T]> {
        let last = self.cfg.layers.len() - 1;
        let (h, sc) = (&ws.h[last], ws.auxk.as_mut()?);
        Some(sc.residual(target, h))
    }

    /// A part's share of the AuxK denominator, Σ‖e − ē‖² over its rows,
    /// with ē = `total`/`whole` the residual's mean over the whole batch.
    pub(crate) fn auxk_spread(&self, ws: &Workspace<T>, total: &[T], whole: usize) -> f64 {
        ws.auxk.as_ref().map_or(0.0, |sc| sc.spread(total, whole))
    }

    /// Sets the AuxK denominator of the whole batch for a part's next loss
    /// pass.
    pub(crate) fn set_auxk_denominator(&self, ws: &mut Workspace<T>, denom: f64) {
        if let Some(sc) = ws.auxk.as_mut() {
            sc.set_denominator(denom);
        }
    }

    /// The first phase of a part of a batch for a model with a KL penalty:
    /// the forward pass up to the KL layer and that layer's sums per
    /// channel (see [`Self::combine_kl`]).
    ///
    /// # Errors
    /// [`Error::Shape`] if `input` does not hold `ws.batch()` samples.
    pub(crate) fn forward_to_kl(&self, ws: &mut Workspace<T>, input: &[T]) -> Result<()> {
        self.check_batch(ws, input, "Autoencoder::forward", true)?;
        if let Some(p) = self.cfg.kl {
            self.forward_layers(ws, input, 0..p.layer + 1);
            let (c, hw) = self.groups(p.layer);
            kl_sums(&ws.h[p.layer], c, hw, &mut ws.rho_hat);
        }
        Ok(())
    }

    /// A part's KL sums per channel after its forward pass up to the KL
    /// layer (see [`Self::forward_to_kl`]).
    pub(crate) fn kl_part_sums(&self, ws: &mut Workspace<T>) {
        if let Some(p) = self.cfg.kl {
            let (c, hw) = self.groups(p.layer);
            kl_sums(&ws.h[p.layer], c, hw, &mut ws.rho_hat);
        }
    }

    /// ρ̂ and the KL gradient of a batch of `whole` samples from its two
    /// parts' sums (added in part order), into both workspaces; returns the
    /// KL value.
    pub(crate) fn combine_kl(
        &self,
        ws0: &mut Workspace<T>,
        ws1: &mut Workspace<T>,
        whole: usize,
    ) -> f64 {
        let Some(p) = self.cfg.kl else {
            return 0.0;
        };
        let (_, hw) = self.groups(p.layer);
        for (a, &b) in ws0.rho_hat.iter_mut().zip(&ws1.rho_hat) {
            *a += b;
        }
        let value = kl_from_sums(&mut ws0.rho_hat, whole * hw, p.rho, p.beta, &mut ws0.kl_g);
        ws1.rho_hat.copy_from_slice(&ws0.rho_hat);
        ws1.kl_g.copy_from_slice(&ws0.kl_g);
        value
    }

    /// ρ̂ and the KL gradient of a batch of `whole` samples from the sums
    /// of all its parts (`total`, as [`Self::forward_to_kl`] leaves them in
    /// each part's workspace, added over the parts), into `ws`; returns the
    /// KL value (see [`crate::dist`]).
    pub(crate) fn set_kl_total(&self, ws: &mut Workspace<T>, total: &[T], whole: usize) -> f64 {
        let Some(p) = self.cfg.kl else {
            return 0.0;
        };
        let (_, hw) = self.groups(p.layer);
        ws.rho_hat.copy_from_slice(total);
        kl_from_sums(&mut ws.rho_hat, whole * hw, p.rho, p.beta, &mut ws.kl_g)
    }

    fn check_grads(&self, g: &[T]) -> Result<()> {
        if g.len() != self.layout.len {
            return Err(Error::shape(
                "Autoencoder::loss_and_grad (grads)",
                format!("{} values", self.layout.len),
                format!("{}", g.len()),
            ));
        }
        Ok(())
    }

    /// Forward pass and loss; with `want_grad`, ∂L/∂z of the
    /// output layer is left in the workspace for [`Self::backward_with`].
    fn loss_with(
        &self,
        ws: &mut Workspace<T>,
        input: &[T],
        target: &[T],
        want_grad: bool,
        part: Part,
    ) -> Result<LossParts> {
        // A binary cross-entropy target is checked for [0, 1] below, which
        // refuses NaN and ±inf too; an input that is the target (no noise)
        // is checked with it.
        let bce = self.cfg.loss == Loss::Bce;
        self.check_batch(ws, target, "Autoencoder::loss_and_grad (target)", !bce)?;
        let same = std::ptr::eq(input, target);
        self.check_batch(ws, input, "Autoencoder::forward", !same)?;
        if self.cfg.loss == Loss::Bce
            && let Some(i) = first_outside_unit(target)
        {
            // (Callers that know where the batch came from check it
            // themselves, naming the sample among theirs.)
            let d = self.cfg.input;
            return Err(bce_target_error(
                format!(
                    "feature {} of sample {} of the batch",
                    i % d,
                    part.first + i / d
                ),
                target[i].to_f64(),
            ));
        }
        self.forward_layers(ws, input, part.from..self.cfg.layers.len());
        let cfg = &self.cfg;
        let (b, last) = (ws.batch, cfg.layers.len() - 1);
        let whole = part.whole.unwrap_or(b);
        let scale = match cfg.loss {
            Loss::Bce | Loss::Mse => 1.0 / (whole * cfg.input) as f64,
            Loss::Sse => 0.5 / whole as f64,
        };
        let mut parts = LossParts::default();

        // Output layer: ∂L/∂z.
        {
            let dz = want_grad.then_some(&mut ws.dh[last][..]);
            let h = &ws.h[last];
            let s = T::from_f64(scale);
            parts.recon = match cfg.loss {
                Loss::Bce => match self.output_cut(b) {
                    Some(c) => super::dense::bce_in_halves(h, target, dz, s, cfg.input, c),
                    None => T::bce_logits(h, target, dz, s),
                },
                Loss::Mse | Loss::Sse => T::sq_err(h, target, dz, s),
            } * scale;
            if cfg.loss != Loss::Bce && want_grad {
                T::act_backward(cfg.layers[last].act(), h, &mut ws.dh[last]);
            }
        }
        // The penalties' gradients are added to dh of their layer during the
        // backward pass, after the layer above has written it.
        if let Some(p) = cfg.l1 {
            parts.l1 = l1_penalty(&ws.h[p.layer], None, whole, p.lambda);
        }
        if let Some(v) = part.kl {
            parts.kl = v;
        } else if let Some(p) = cfg.kl {
            let (c, hw) = self.groups(p.layer);
            parts.kl = kl_penalty(
                &ws.h[p.layer],
                None,
                b,
                c,
                hw,
                p.rho,
                p.beta,
                &mut ws.rho_hat,
                &mut ws.kl_g,
            );
        }
        if let (Some(ax), Some(sc)) = (cfg.sae.auxk, ws.auxk.as_mut()) {
            let w_dec = &self.params[self.layout.weight(last).range()];
            parts.auxk = sc.forward(ax.coef, ax.k, w_dec, target, &ws.h[last]);
        }
        if part.decay {
            parts.l2 = self.weight_decay_term();
        }
        Ok(parts)
    }

    /// The backward pass after [`Self::loss_with`] (with `want_grad`): every
    /// gradient into `grads`, overwriting it. A tensor's gradient is complete
    /// after the backward step of the layer that owns it (a tied weight's
    /// encoder layer, below its decoder mirror); then its weight decay is
    /// added.
    fn backward_with(&self, ws: &mut Workspace<T>, input: &[T], grads: &mut [T], part: Part) {
        let cfg = &self.cfg;
        let (b, last) = (ws.batch, cfg.layers.len() - 1);
        let whole = part.whole.unwrap_or(b);
        let two_l = T::from_f64(2.0 * cfg.weight_decay);
        for l in (0..=last).rev() {
            // The sparse path handles the code layer's penalties and derivatives.
            let sparse = ws
                .sparse
                .as_mut()
                .filter(|s| l == s.code_layer() || l == s.code_layer() + 1);
            if l != last && sparse.as_ref().is_none_or(|s| s.code_layer() != l) {
                if let Some(p) = cfg.l1
                    && p.layer == l
                {
                    l1_penalty(&ws.h[l], Some(&mut ws.dh[l]), whole, p.lambda);
                }
                if let Some(p) = cfg.kl
                    && p.layer == l
                {
                    // ρ̂ and the per-unit gradient were computed in the forward part.
                    let (c, hw) = self.groups(l);
                    super::sparsity::add_per_channel(&mut ws.dh[l], c, hw, &ws.kl_g);
                }
                if cfg.topk.is_some_and(|t| t.layer == l) {
                    topk_backward(&ws.h[l], &mut ws.dh[l]);
                }
                T::act_backward(cfg.layers[l].act(), &ws.h[l], &mut ws.dh[l]);
                if l == cfg.code_layer
                    && let Some(sc) = ws.auxk.as_mut()
                {
                    let dw_dec = &mut grads[self.layout.weight(last).range()];
                    sc.backward(cfg.layers[l].act(), &mut ws.dh[l], dw_dec);
                }
            }
            let (dh_below, dh_rest) = ws.dh.split_at_mut(l);
            let dx = dh_below.last_mut().map(|v| &mut v[..]);
            let dz = &dh_rest[0];
            let x: &[T] = match l {
                0 if cfg.sae.pre_encoder_bias => &ws.centered,
                0 => input,
                _ => &ws.h[l - 1],
            };
            if let Some(sp) = sparse {
                let (w_info, b_info) = (self.layout.weight(l), self.layout.bias(l));
                let (dw, db) = split_two(grads, w_info.range(), b_info.range());
                let terms = CodeTerms::of_layer(cfg, l, whole, &ws.kl_g);
                let w = &self.params[w_info.range()];
                sp.backward(l, dw, db, dx, dz, x, w, terms);
            } else {
                match self.ops[l] {
                    Op::Dense { inp, out } => {
                        let w_info = self.layout.weight(l);
                        let b_info = self.layout.bias(l);
                        let use_ = self.weight_use(l);
                        // A tied encoder weight already holds its decoder mirror's gradient.
                        let accumulate = use_ == WeightUse::Own
                            && cfg.tied
                            && cfg.tied_to(cfg.layers.len() - 1 - l).is_some();
                        let (dw, db) = split_two(grads, w_info.range(), b_info.range());
                        dense_backward(
                            dw,
                            db,
                            dx,
                            &mut ws.dx_part,
                            dz,
                            x,
                            &self.params[w_info.range()],
                            b,
                            inp,
                            out,
                            use_,
                            accumulate,
                        );
                    }
                    Op::Conv(s) => {
                        let w_info = self.layout.weight(l);
                        let b_info = self.layout.bias(l);
                        let (dw, db) = split_two(grads, w_info.range(), b_info.range());
                        conv2d_backward(
                            dw,
                            db,
                            dx,
                            dz,
                            x,
                            &self.params[w_info.range()],
                            b,
                            &s,
                            ws.conv[l].as_mut().expect("conv scratch"),
                        );
                    }
                    Op::MaxPool { c, h, w, k, stride } => {
                        if let Some(dx) = dx {
                            maxpool2d_backward(dx, dz, &ws.argmax[l], b, c, h, w, k, stride);
                        }
                    }
                    Op::Upsample { c, h, w, scale } => {
                        if let Some(dx) = dx {
                            upsample_nearest2d_backward(dx, dz, b, c, h, w, scale);
                        }
                    }
                }
            }
            for t in self.layout.tensors.iter().filter(|t| t.layer == l) {
                let r = t.range();
                if part.decay && cfg.weight_decay > 0.0 && t.kind == ParamKind::Weight {
                    T::axpy(two_l, &self.params[r.clone()], &mut grads[r.clone()]);
                }
            }
        }
        // b_dec's part through the centred input.
        if cfg.sae.pre_encoder_bias {
            let (b_enc, b_dec) = (self.layout.bias(0).range(), self.layout.bias(last).range());
            let (db_enc, db_dec) = split_two(grads, b_enc, b_dec);
            pre_bias_backward(db_dec, db_enc, &self.params[self.layout.weight(0).range()]);
        }
    }
}

/// Which part of a batch a loss covers: the batch size the loss is
/// normalised by (`None`: the workspace's) and whether it includes the
/// weight decay.
#[derive(Clone, Copy, Debug)]
struct Part {
    whole: Option<usize>,
    /// The position in the whole batch of the part's first sample.
    first: usize,
    decay: bool,
    /// The KL value when the parts' ρ̂ was combined beforehand.
    kl: Option<f64>,
    /// The first layer still to compute.
    from: usize,
}

impl Part {
    const WHOLE: Part = Part {
        whole: None,
        first: 0,
        decay: true,
        kl: None,
        from: 0,
    };
}

/// Two disjoint mutable sub-slices of one buffer.
fn split_two<T>(
    buf: &mut [T],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&mut [T], &mut [T]) {
    if a.start < b.start {
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a], &mut hi[..b.end - b.start])
    } else {
        let (lo, hi) = buf.split_at_mut(a.start);
        let (bs, be) = (b.start, b.end);
        (&mut hi[..a.end - a.start], &mut lo[bs..be])
    }
}

#[cfg(test)]
mod tests {
    use super::first_outside_unit;

    #[test]
    fn the_first_value_outside_the_unit_interval_is_found_wherever_it_is() {
        for n in [0, 1, 63, 64, 65, 200] {
            let mut v = vec![0.5f32; n];
            v.iter_mut().step_by(3).for_each(|x| *x = 1.0);
            v.iter_mut().step_by(5).for_each(|x| *x = -0.0);
            assert_eq!(first_outside_unit(&v), None, "n {n}");
            for at in 0..n {
                for bad in [1.000_001f32, -1e-30, f32::NAN, f32::INFINITY, 2.0] {
                    let mut w = v.clone();
                    w[at] = bad;
                    if at + 7 < n {
                        w[at + 7] = -3.0;
                    }
                    assert_eq!(first_outside_unit(&w), Some(at), "n {n}, {bad} at {at}");
                }
            }
        }
        assert_eq!(first_outside_unit(&[0.0f64, 1.0, 1.5]), Some(2));
    }
}
