//! The parameter layout: one flat buffer, a table of named tensors.
//!
//! Names and shapes are those of a PyTorch `nn.Sequential` state dict
//! (`encoder.0.weight` as `[out, in]`, `encoder.0.bias`, `decoder.0.weight`,
//! …), so a saved model loads into PyTorch unchanged. Gradients and optimizer
//! moments share the layout, so an optimizer update is one pass over flat
//! slices.

use super::config::{LayerSpec, ModelConfig};
use crate::kernels::{Activation, Real};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Uniform};

/// Whether a tensor is a weight or a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A weight matrix `(out, in)`.
    Weight,
    /// A bias vector `(out,)`.
    Bias,
}

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch state-dict name.
    pub name: String,
    /// Shape (`[out, in]` or `[out]`).
    pub shape: Vec<usize>,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Weight or bias.
    pub kind: ParamKind,
    /// The layer that owns the tensor.
    pub layer: usize,
}

impl ParamInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Where each layer finds its weight and bias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    /// Every tensor, in layer order (weight then bias).
    pub tensors: Vec<ParamInfo>,
    /// Index into `tensors` of the weight each layer uses (a tied decoder
    /// layer points at its encoder mirror's weight); `None` for pooling and
    /// upsampling.
    pub weight_of: Vec<Option<usize>>,
    /// Index into `tensors` of each layer's bias, if it has one.
    pub bias_of: Vec<Option<usize>>,
    /// Total elements.
    pub len: usize,
}

/// The `nn.Sequential` module name and index of every layer:
/// `("encoder", 0)`, `("encoder", 2)`, … An activation other than linear
/// occupies the next index, as a PyTorch activation module would.
pub fn module_names(cfg: &ModelConfig) -> Vec<(&'static str, usize)> {
    let mut out = Vec::with_capacity(cfg.layers.len());
    let (mut enc, mut dec) = (0usize, 0usize);
    for (l, spec) in cfg.layers.iter().enumerate() {
        let (part, idx) = if l <= cfg.code_layer {
            ("encoder", &mut enc)
        } else {
            ("decoder", &mut dec)
        };
        out.push((part, *idx));
        *idx += if spec.act() == Activation::Linear {
            1
        } else {
            2
        };
    }
    out
}

impl ParamLayout {
    /// The layout of a (validated) configuration.
    pub fn new(cfg: &ModelConfig) -> ParamLayout {
        let names = module_names(cfg);
        let n = cfg.layers.len();
        let mut tensors = Vec::new();
        let mut weight_of = vec![None; n];
        let mut bias_of = vec![None; n];
        let mut offset = 0;
        for l in 0..n {
            let (part, idx) = names[l];
            let (out, inp) = (cfg.width(l), cfg.fan_in(l));
            let (w_shape, b_len) = match cfg.layers[l] {
                LayerSpec::Dense { units, .. } => (vec![units, inp], units),
                LayerSpec::Conv2d {
                    channels, kernel, ..
                } => (vec![channels, cfg.in_shape(l).0, kernel, kernel], channels),
                LayerSpec::MaxPool2d { .. } | LayerSpec::Upsample { .. } => continue,
            };
            let _ = out;
            if let Some(mirror) = cfg.tied_to(l) {
                weight_of[l] = weight_of[mirror];
            } else {
                weight_of[l] = Some(tensors.len());
                let len: usize = w_shape.iter().product();
                tensors.push(ParamInfo {
                    name: format!("{part}.{idx}.weight"),
                    shape: w_shape,
                    offset,
                    kind: ParamKind::Weight,
                    layer: l,
                });
                offset += len;
            }
            bias_of[l] = Some(tensors.len());
            tensors.push(ParamInfo {
                name: format!("{part}.{idx}.bias"),
                shape: vec![b_len],
                offset,
                kind: ParamKind::Bias,
                layer: l,
            });
            offset += b_len;
        }
        ParamLayout {
            tensors,
            weight_of,
            bias_of,
            len: offset,
        }
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Option<&ParamInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Layer `l`'s weight tensor.
    ///
    /// # Panics
    /// If the layer has no weight (pooling, upsampling).
    pub fn weight(&self, l: usize) -> &ParamInfo {
        &self.tensors[self.weight_of[l].expect("the layer has a weight")]
    }

    /// Layer `l`'s bias tensor.
    ///
    /// # Panics
    /// If the layer has no bias (pooling, upsampling).
    pub fn bias(&self, l: usize) -> &ParamInfo {
        &self.tensors[self.bias_of[l].expect("the layer has a bias")]
    }

    /// The first layer's weight, whose filters look at the input (the
    /// model's features); `None` when the first layer has none (pooling or
    /// upsampling: a later layer's filters look at its output, not at the
    /// input).
    pub fn first_weight(&self) -> Option<&ParamInfo> {
        self.weight_of
            .first()
            .copied()
            .flatten()
            .map(|i| &self.tensors[i])
    }
}

/// Fresh parameters: weights Glorot-uniform (Keras' default
/// `glorot_uniform`: U(−√(6/(fan_in+fan_out)), √(6/(fan_in+fan_out))), with
/// fan_in = in·kh·kw and fan_out = out·kh·kw for a convolution), biases zero.
///
/// Draws are made in f64 from `seed`, so an f32 and an f64 model built from
/// the same seed start from the same values up to rounding.
///
/// # Errors
/// [`crate::Error::Value`] when the system refuses the buffer (reserved
/// fallibly, [`crate::memory::try_vec`]).
pub fn init_params<T: Real>(layout: &ParamLayout, seed: u64) -> crate::Result<Vec<T>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = crate::memory::try_vec("the model's parameters", layout.len, T::ZERO)?;
    for t in &layout.tensors {
        if t.kind == ParamKind::Weight {
            let rf: usize = t.shape[2..].iter().product();
            let limit = (6.0 / ((t.shape[0] + t.shape[1]) * rf) as f64).sqrt();
            let dist = Uniform::new_inclusive(-limit, limit).expect("finite limit");
            for v in &mut data[t.range()] {
                *v = T::from_f64(dist.sample(&mut rng));
            }
        }
    }
    Ok(data)
}
