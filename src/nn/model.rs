//! The autoencoder: parameters, a preallocated workspace, forward and backward.

use super::config::{LayerSpec, Loss, ModelConfig};
use super::conv::{Conv2dShape, ConvScratch, conv2d_backward, conv2d_forward};
use super::dense::{WeightUse, dense_backward, dense_forward};
use super::params::{ParamKind, ParamLayout, init_params};
use super::pool::{
    maxpool2d_backward, maxpool2d_forward, upsample_nearest2d_backward, upsample_nearest2d_forward,
};
use super::sparse_topk::{CodeTerms, SparseTopk, TopkPath};
use super::sparsity::{kl_penalty, l1_penalty, topk_backward, topk_batch, topk_rows};
use crate::error::{Error, Result};
use crate::kernels::{Activation, Real};

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
}

impl LossParts {
    /// The objective: the sum of the parts.
    pub fn total(&self) -> f64 {
        self.recon + self.l1 + self.kl + self.l2
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
/// the pooling argmax indices, the KL scratch, and the buffers of a top-k
/// code's sparse path (see [`super::sparse_topk`]).
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    batch: usize,
    /// Output of each layer, `(batch, width)` (NCHW for images).
    pub h: Vec<Vec<T>>,
    dh: Vec<Vec<T>>,
    conv: Vec<Option<ConvScratch<T>>>,
    argmax: Vec<Vec<u32>>,
    rho_hat: Vec<T>,
    kl_g: Vec<T>,
    topk_scratch: Vec<T>,
    topk_path: TopkPath,
    sparse: Option<SparseTopk<T>>,
}

impl<T: Real> Workspace<T> {
    /// A workspace for `cfg` at batch size `batch`, with the default top-k
    /// path ([`TopkPath::active`]).
    ///
    /// # Panics
    /// If `cfg` is invalid (every model validates its configuration).
    pub fn new(cfg: &ModelConfig, batch: usize) -> Workspace<T> {
        Workspace::with_topk_path(cfg, batch, TopkPath::active())
    }

    /// A workspace for `cfg` at batch size `batch` whose top-k code (if
    /// any) takes `path`.
    ///
    /// # Panics
    /// If `cfg` is invalid (every model validates its configuration).
    pub fn with_topk_path(cfg: &ModelConfig, batch: usize, path: TopkPath) -> Workspace<T> {
        let ops = plan(cfg);
        let h: Vec<Vec<T>> = (0..cfg.layers.len())
            .map(|l| vec![T::ZERO; batch * cfg.width(l)])
            .collect();
        let kl_units = cfg.kl.map_or(0, |k| cfg.shapes()[k.layer].0);
        Workspace {
            batch,
            dh: h.clone(),
            conv: ops
                .iter()
                .map(|op| match op {
                    Op::Conv(s) => Some(ConvScratch::new(batch, s)),
                    _ => None,
                })
                .collect(),
            argmax: (0..cfg.layers.len())
                .map(|l| match ops[l] {
                    Op::MaxPool { .. } => vec![0; batch * cfg.width(l)],
                    _ => Vec::new(),
                })
                .collect(),
            h,
            rho_hat: vec![T::ZERO; kl_units],
            kl_g: vec![T::ZERO; kl_units],
            topk_scratch: vec![T::ZERO; cfg.topk.map_or(0, |t| batch * cfg.width(t.layer))],
            topk_path: path,
            sparse: SparseTopk::new(cfg, batch, path),
        }
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
}

impl<T: Real> Autoencoder<T> {
    /// A model with fresh Glorot-uniform weights drawn from `seed`.
    ///
    /// # Errors
    /// [`Error::Config`] if the configuration is invalid.
    pub fn new(cfg: ModelConfig, seed: u64) -> Result<Autoencoder<T>> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        let params = init_params(&layout, seed);
        Ok(Autoencoder {
            ops: plan(&cfg),
            shapes: cfg.shapes(),
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

    /// A workspace for this model at batch size `batch`.
    pub fn workspace(&self, batch: usize) -> Workspace<T> {
        Workspace::new(&self.cfg, batch)
    }

    /// A workspace at batch size `batch` with the top-k code on `path`.
    pub fn workspace_with(&self, batch: usize, path: TopkPath) -> Workspace<T> {
        Workspace::with_topk_path(&self.cfg, batch, path)
    }

    /// The same model in another float type (values converted by rounding).
    pub fn cast<U: Real>(&self) -> Autoencoder<U> {
        Autoencoder {
            cfg: self.cfg.clone(),
            layout: self.layout.clone(),
            ops: self.ops.clone(),
            shapes: self.shapes.clone(),
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

    fn weight_use(&self, l: usize) -> WeightUse {
        if self.cfg.tied_to(l).is_some() {
            WeightUse::Tied
        } else {
            WeightUse::Own
        }
    }

    fn check_batch(&self, ws: &Workspace<T>, x: &[T], what: &'static str) -> Result<()> {
        let want = ws.batch * self.cfg.input;
        if x.len() != want || ws.h.len() != self.cfg.layers.len() {
            return Err(Error::shape(
                what,
                format!("{} × {} = {want} values", ws.batch, self.cfg.input),
                format!("{}", x.len()),
            ));
        }
        Ok(())
    }

    /// Forward pass of a batch `input: (batch, in)` into `ws.h`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `input` does not hold `ws.batch()` samples.
    pub fn forward(&self, ws: &mut Workspace<T>, input: &[T]) -> Result<()> {
        self.check_batch(ws, input, "Autoencoder::forward")?;
        let last = self.cfg.layers.len() - 1;
        let b = ws.batch;
        for l in 0..=last {
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
            {
                let (units, _, _) = self.shapes[l];
                if let Some(sp) = ws.sparse.as_mut() {
                    sp.select(h, &mut ws.topk_scratch);
                } else if t.batch {
                    topk_batch(h, t.k * b, &mut ws.topk_scratch);
                } else {
                    topk_rows(h, units, t.k, &mut ws.topk_scratch);
                }
            }
        }
        Ok(())
    }

    /// The reconstruction x̂ of the last forward pass, `(batch, in)`, written
    /// into `out` (applies the sigmoid to stored logits).
    pub fn reconstruction(&self, ws: &Workspace<T>, out: &mut [T]) {
        let last = ws.h.len() - 1;
        out.copy_from_slice(&ws.h[last]);
        if self.logits_out() {
            T::act_forward(Activation::Sigmoid, out);
        }
    }

    /// The code (output of the code layer) of the last forward pass.
    pub fn code<'w>(&self, ws: &'w Workspace<T>) -> &'w [T] {
        &ws.h[self.cfg.code_layer]
    }

    /// (channels, positions per channel) of layer `l`'s output.
    fn groups(&self, l: usize) -> (usize, usize) {
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
    /// [`Error::Shape`] if a buffer has the wrong length.
    pub fn loss_and_grad(
        &self,
        ws: &mut Workspace<T>,
        input: &[T],
        target: &[T],
        grads: Option<&mut [T]>,
    ) -> Result<LossParts> {
        self.check_batch(ws, target, "Autoencoder::loss_and_grad (target)")?;
        if let Some(g) = &grads
            && g.len() != self.params.len()
        {
            return Err(Error::shape(
                "Autoencoder::loss_and_grad (grads)",
                format!("{} values", self.params.len()),
                format!("{}", g.len()),
            ));
        }
        self.forward(ws, input)?;
        let cfg = &self.cfg;
        let (b, last) = (ws.batch, cfg.layers.len() - 1);
        let want_grad = grads.is_some();
        let scale = match cfg.loss {
            Loss::Bce | Loss::Mse => 1.0 / (b * cfg.input) as f64,
            Loss::Sse => 0.5 / b as f64,
        };
        let mut parts = LossParts::default();

        // Output layer: ∂L/∂z.
        {
            let dz = want_grad.then_some(&mut ws.dh[last][..]);
            let h = &ws.h[last];
            let s = T::from_f64(scale);
            parts.recon = match cfg.loss {
                Loss::Bce => T::bce_logits(h, target, dz, s),
                Loss::Mse | Loss::Sse => T::sq_err(h, target, dz, s),
            } * scale;
            if cfg.loss != Loss::Bce && want_grad {
                T::act_backward(cfg.layers[last].act(), h, &mut ws.dh[last]);
            }
        }
        // The penalties' gradients are added to dh of their layer during the
        // backward pass, after the layer above has written it.
        if let Some(p) = cfg.l1 {
            parts.l1 = l1_penalty(&ws.h[p.layer], None, b, p.lambda);
        }
        if let Some(p) = cfg.kl {
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
        if cfg.weight_decay > 0.0 {
            let s: f64 = self
                .layout
                .tensors
                .iter()
                .filter(|t| t.kind == ParamKind::Weight)
                .map(|t| T::sum_sq(&self.params[t.range()]))
                .sum();
            parts.l2 = cfg.weight_decay * s;
        }
        let Some(grads) = grads else {
            return Ok(parts);
        };

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
                    l1_penalty(&ws.h[l], Some(&mut ws.dh[l]), b, p.lambda);
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
            }
            let (dh_below, dh_rest) = ws.dh.split_at_mut(l);
            let dx = dh_below.last_mut().map(|v| &mut v[..]);
            let dz = &dh_rest[0];
            let x: &[T] = if l == 0 { input } else { &ws.h[l - 1] };
            if let Some(sp) = sparse {
                let (w_info, b_info) = (self.layout.weight(l), self.layout.bias(l));
                let (dw, db) = split_two(grads, w_info.range(), b_info.range());
                let terms = CodeTerms::of_layer(cfg, l, b, &ws.kl_g);
                let w = &self.params[w_info.range()];
                sp.backward(l, dw, db, dx, dz, x, w, terms);
                continue;
            }
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
        if cfg.weight_decay > 0.0 {
            let two_l = T::from_f64(2.0 * cfg.weight_decay);
            for t in self
                .layout
                .tensors
                .iter()
                .filter(|t| t.kind == ParamKind::Weight)
            {
                T::axpy(two_l, &self.params[t.range()], &mut grads[t.range()]);
            }
        }
        Ok(parts)
    }
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
