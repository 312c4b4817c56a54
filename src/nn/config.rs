//! Model configuration: the layer stack, the loss, the penalties and the
//! input noise, validated before any model is built.

use super::sae::{AuxK, EncoderInit, SaeConfig, default_auxk_k};
use crate::error::{Error, Result};
use crate::kernels::Activation;

/// One layer of the stack. Activations are NCHW images `(c, h, w)`; a dense
/// layer sees its input flattened and gives `(units, 1, 1)`, so the reshape
/// between convolutional and dense parts costs nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// A fully connected layer `h = act(x·Wᵀ + b)` with `W: (units, in)`.
    Dense {
        /// Output units.
        units: usize,
        /// Activation applied to the pre-activation.
        act: Activation,
    },
    /// A 2-D convolution (PyTorch `Conv2d`, square kernel, zero padding),
    /// `W: (channels, in_c, kernel, kernel)`.
    Conv2d {
        /// Output channels.
        channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Activation.
        act: Activation,
    },
    /// Max pooling over `kernel × kernel` windows (PyTorch `MaxPool2d`, floor mode).
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Nearest-neighbour upsampling by an integer factor (PyTorch `Upsample`).
    Upsample {
        /// The factor.
        scale: usize,
    },
}

impl LayerSpec {
    /// A dense layer.
    pub fn dense(units: usize, act: Activation) -> LayerSpec {
        LayerSpec::Dense { units, act }
    }

    /// A stride-1 convolution with `padding = kernel / 2` ("same" size for odd kernels).
    pub fn conv(channels: usize, kernel: usize, act: Activation) -> LayerSpec {
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride: 1,
            padding: kernel / 2,
            act,
        }
    }

    /// The layer's activation (linear for pooling and upsampling).
    pub fn act(&self) -> Activation {
        match self {
            LayerSpec::Dense { act, .. } | LayerSpec::Conv2d { act, .. } => *act,
            LayerSpec::MaxPool2d { .. } | LayerSpec::Upsample { .. } => Activation::Linear,
        }
    }

    /// Whether the layer has a weight and a bias.
    pub fn has_params(&self) -> bool {
        matches!(self, LayerSpec::Dense { .. } | LayerSpec::Conv2d { .. })
    }

    /// The layer's type name in configs (`dense`, `conv2d`, `maxpool2d`, `upsample`).
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "maxpool2d",
            LayerSpec::Upsample { .. } => "upsample",
        }
    }

    /// The output shape `(c, h, w)` for an input of shape `inp`.
    ///
    /// # Errors
    /// [`Error::Config`] (naming `field`) if the layer cannot take that input.
    pub fn out_shape(
        &self,
        inp: (usize, usize, usize),
        field: &str,
    ) -> Result<(usize, usize, usize)> {
        let (c, h, w) = inp;
        match *self {
            LayerSpec::Dense { units, .. } => Ok((units, 1, 1)),
            LayerSpec::Conv2d {
                channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let s = crate::nn::conv::Conv2dShape::new(
                    c, channels, kernel, kernel, stride, padding, h, w,
                )
                .map_err(|e| e.within(field))?;
                Ok((channels, s.out_h(), s.out_w()))
            }
            LayerSpec::MaxPool2d { kernel, stride } => {
                let oh =
                    crate::nn::pool::pool_out(h, kernel, stride).map_err(|e| e.within(field))?;
                let ow =
                    crate::nn::pool::pool_out(w, kernel, stride).map_err(|e| e.within(field))?;
                Ok((c, oh, ow))
            }
            LayerSpec::Upsample { scale } => {
                if scale == 0 || scale > 64 {
                    return Err(Error::config(
                        field,
                        format!("upsample scale must be in 1..=64, got {scale}"),
                    ));
                }
                Ok((c, h * scale, w * scale))
            }
        }
    }
}

/// The reconstruction loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Binary cross-entropy, mean over features and batch (Keras
    /// `binary_crossentropy`), computed from the logits of a sigmoid output:
    /// L = 1/(B·D) Σ [max(z,0) − z·x + ln(1 + e^(−|z|))].
    Bce,
    /// Mean squared error over features and batch: L = 1/(B·D) Σ (x̂ − x)².
    Mse,
    /// The squared error of UFLDL's sparse autoencoder: half the squared
    /// norm, summed over features, mean over the batch: L = 1/B Σ ½‖x̂ − x‖².
    Sse,
}

impl Loss {
    /// The loss's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Bce => "bce",
            Loss::Mse => "mse",
            Loss::Sse => "sse",
        }
    }

    /// Parses `bce`, `mse` or `sse`.
    ///
    /// # Errors
    /// [`Error::Config`] for another name.
    pub fn from_name(s: &str) -> Result<Loss> {
        match s {
            "bce" | "binary_crossentropy" => Ok(Loss::Bce),
            "mse" => Ok(Loss::Mse),
            "sse" => Ok(Loss::Sse),
            _ => Err(Error::config(
                "loss",
                format!("unknown loss `{s}` (bce, mse or sse)"),
            )),
        }
    }
}

/// The L1 activity penalty (Keras `activity_regularizer=l1(λ)`):
/// λ·(1/B)·Σ_batch Σ_units |a|, on the output of layer `layer`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L1Penalty {
    /// λ.
    pub lambda: f64,
    /// The layer whose activations are penalised (the code by default).
    pub layer: usize,
}

/// The KL-divergence sparsity penalty (UFLDL):
/// β·Σ_j [ρ·ln(ρ/ρ̂_j) + (1−ρ)·ln((1−ρ)/(1−ρ̂_j))], with ρ̂_j the mean activation
/// of unit j over the batch, clamped to [1e-6, 1 − 1e-6] (the gradient of a
/// clamped unit is zero, the exact derivative of the clamped function).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KlPenalty {
    /// Target mean activation ρ, in (0, 1).
    pub rho: f64,
    /// Weight β.
    pub beta: f64,
    /// The layer whose activations are penalised (the code by default); its
    /// activation must map into (0, 1) (sigmoid).
    pub layer: usize,
}

/// A k-sparse code (Makhzani & Frey; Gao et al. 2024): after the layer's
/// activation, keep the k largest values of each sample (`TopK`) or the k·B
/// largest of the whole batch (`BatchTopK`) and set the rest to zero. The
/// gradient flows through the kept values only. Ties at the threshold keep
/// the earliest entries, so exactly k (or k·B) values survive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TopK {
    /// Values kept per sample (on average, for the batch variant).
    pub k: usize,
    /// Select over the whole batch instead of per sample.
    pub batch: bool,
    /// The layer whose output is made sparse (the code by default); dense only.
    pub layer: usize,
}

/// Corruption applied to the input of a denoising autoencoder (the target
/// stays clean).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// No corruption.
    None,
    /// x̃ = clip(x + std·N(0, 1), 0, 1), as the classic Keras notebook.
    Gaussian {
        /// Standard deviation (the "noise factor").
        std: f64,
    },
    /// Each input is zeroed with probability p.
    Masking {
        /// Fraction to zero, in [0, 1).
        p: f64,
    },
}

/// A whole autoencoder: input width, layers, which layer is the code, tied
/// weights, loss and penalties.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Input features per sample.
    pub input: usize,
    /// The layers from input to reconstruction; the last has `input` units.
    pub layers: Vec<LayerSpec>,
    /// Index of the layer whose output is the code (the encoder's last layer).
    pub code_layer: usize,
    /// Tie each decoder weight to the transpose of its mirror encoder weight.
    pub tied: bool,
    /// The reconstruction loss.
    pub loss: Loss,
    /// L1 activity penalty.
    pub l1: Option<L1Penalty>,
    /// KL sparsity penalty.
    pub kl: Option<KlPenalty>,
    /// A k-sparse code.
    pub topk: Option<TopK>,
    /// L2 weight decay λ·ΣW² on weights (not biases), Keras `l2(λ)`; 0 = off.
    pub weight_decay: f64,
    /// Input corruption.
    pub noise: Noise,
    /// Image shape (channels, height, width) of the input, for pictures.
    pub image: Option<(usize, usize, usize)>,
    /// Sparse-autoencoder options: unit-norm decoder, transposed encoder
    /// init, pre-encoder bias, AuxK, the dead window (see [`crate::nn::sae`]).
    pub sae: SaeConfig,
}

/// Builds a [`ModelConfig`] step by step.
///
/// ```
/// use sparse_ae::nn::{ModelBuilder, Loss};
/// use sparse_ae::kernels::Activation;
/// let cfg = ModelBuilder::new(784)
///     .encoder(128, Activation::Relu)
///     .code(32, Activation::Relu)
///     .decoder(128, Activation::Relu)
///     .decoder(784, Activation::Sigmoid)
///     .loss(Loss::Bce)
///     .l1(1e-5)
///     .build()
///     .unwrap();
/// assert_eq!(cfg.code_layer, 1);
/// ```
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    cfg: ModelConfig,
    code: Option<usize>,
    l1: Option<(f64, Option<usize>)>,
    kl: Option<(f64, f64, Option<usize>)>,
    topk: Option<(usize, bool)>,
    auxk: Option<(Option<usize>, f64)>,
}

impl ModelBuilder {
    /// Starts a model on `input` features.
    pub fn new(input: usize) -> ModelBuilder {
        ModelBuilder {
            cfg: ModelConfig {
                input,
                layers: Vec::new(),
                code_layer: 0,
                tied: false,
                loss: Loss::Bce,
                l1: None,
                kl: None,
                topk: None,
                weight_decay: 0.0,
                noise: Noise::None,
                image: None,
                sae: SaeConfig::default(),
            },
            code: None,
            l1: None,
            kl: None,
            topk: None,
            auxk: None,
        }
    }

    /// Adds an encoder layer before the code.
    pub fn encoder(mut self, units: usize, act: Activation) -> Self {
        self.cfg.layers.push(LayerSpec::dense(units, act));
        self
    }

    /// Adds the code layer.
    pub fn code(mut self, units: usize, act: Activation) -> Self {
        self.code = Some(self.cfg.layers.len());
        self.cfg.layers.push(LayerSpec::dense(units, act));
        self
    }

    /// Adds a decoder layer after the code.
    pub fn decoder(mut self, units: usize, act: Activation) -> Self {
        self.cfg.layers.push(LayerSpec::dense(units, act));
        self
    }

    /// Adds any layer (before or after the code, in order).
    pub fn layer(mut self, layer: LayerSpec) -> Self {
        self.cfg.layers.push(layer);
        self
    }

    /// Adds any layer as the code layer.
    pub fn code_layer(mut self, layer: LayerSpec) -> Self {
        self.code = Some(self.cfg.layers.len());
        self.cfg.layers.push(layer);
        self
    }

    /// Sets the loss.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.cfg.loss = loss;
        self
    }

    /// Ties decoder weights to encoder weights.
    pub fn tied(mut self, tied: bool) -> Self {
        self.cfg.tied = tied;
        self
    }

    /// L1 activity penalty λ on the code.
    pub fn l1(mut self, lambda: f64) -> Self {
        self.l1 = Some((lambda, None));
        self
    }

    /// L1 activity penalty λ on layer `layer`.
    pub fn l1_on(mut self, lambda: f64, layer: usize) -> Self {
        self.l1 = Some((lambda, Some(layer)));
        self
    }

    /// KL sparsity penalty (target ρ, weight β) on the code.
    pub fn kl(mut self, rho: f64, beta: f64) -> Self {
        self.kl = Some((rho, beta, None));
        self
    }

    /// KL sparsity penalty on layer `layer`.
    pub fn kl_on(mut self, rho: f64, beta: f64, layer: usize) -> Self {
        self.kl = Some((rho, beta, Some(layer)));
        self
    }

    /// Keep the `k` largest code values of each sample (`batch` = false) or
    /// the k·B largest of the batch (`batch` = true).
    pub fn topk(mut self, k: usize, batch: bool) -> Self {
        self.topk = Some((k, batch));
        self
    }

    /// L2 weight decay λ.
    pub fn weight_decay(mut self, lambda: f64) -> Self {
        self.cfg.weight_decay = lambda;
        self
    }

    /// Input corruption.
    pub fn noise(mut self, noise: Noise) -> Self {
        self.cfg.noise = noise;
        self
    }

    /// Image shape of the input (channels, height, width).
    pub fn image(mut self, c: usize, h: usize, w: usize) -> Self {
        self.cfg.image = Some((c, h, w));
        self
    }

    /// Keep the decoder's columns at unit norm (see [`SaeConfig::unit_norm_decoder`]).
    pub fn unit_norm_decoder(mut self, on: bool) -> Self {
        self.cfg.sae.unit_norm_decoder = on;
        self
    }

    /// How a fresh model's encoder weight starts.
    pub fn encoder_init(mut self, init: EncoderInit) -> Self {
        self.cfg.sae.encoder_init = init;
        self
    }

    /// Subtract the output layer's bias `b_dec` from the input before encoding.
    pub fn pre_encoder_bias(mut self, on: bool) -> Self {
        self.cfg.sae.pre_encoder_bias = on;
        self
    }

    /// The AuxK loss with `k` dead latents per sample (`None`: half the
    /// input width, at most the code width) and coefficient `coef`.
    pub fn auxk(mut self, k: Option<usize>, coef: f64) -> Self {
        self.auxk = Some((k, coef));
        self
    }

    /// The dead window in samples.
    pub fn dead_window(mut self, samples: u64) -> Self {
        self.cfg.sae.dead_window = samples;
        self
    }

    /// All SAE options at once (replaces any set before).
    pub fn sae(mut self, sae: SaeConfig) -> Self {
        self.cfg.sae = sae;
        self.auxk = sae.auxk.map(|a| (Some(a.k), a.coef));
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first impossible setting.
    pub fn build(mut self) -> Result<ModelConfig> {
        let code = match self.code {
            Some(c) => c,
            None => {
                return Err(Error::config(
                    "code_layer",
                    "no code layer: call .code(units, act) between encoder and decoder layers",
                ));
            }
        };
        self.cfg.code_layer = code;
        self.cfg.l1 = self.l1.map(|(lambda, layer)| L1Penalty {
            lambda,
            layer: layer.unwrap_or(code),
        });
        self.cfg.topk = self.topk.map(|(k, batch)| TopK {
            k,
            batch,
            layer: code,
        });
        self.cfg.kl = self.kl.map(|(rho, beta, layer)| KlPenalty {
            rho,
            beta,
            layer: layer.unwrap_or(code),
        });
        let code_units = match self.cfg.layers.get(code) {
            Some(LayerSpec::Dense { units, .. }) => *units,
            _ => 0,
        };
        self.cfg.sae.auxk = self.auxk.map(|(k, coef)| AuxK {
            k: k.unwrap_or_else(|| default_auxk_k(self.cfg.input, code_units)),
            coef,
        });
        self.cfg.validate()?;
        Ok(self.cfg)
    }
}

fn finite_nonneg(field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        crate::data::check_f32_param(field, v)
    } else {
        Err(Error::config(
            field,
            format!("must be a finite number ≥ 0, got {v}"),
        ))
    }
}

impl ModelConfig {
    /// Checks that the configuration describes a model that can be trained.
    ///
    /// # Errors
    /// [`Error::Config`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        const MAX_UNITS: usize = 1 << 24;
        if self.input == 0 || self.input > MAX_UNITS {
            return Err(Error::config(
                "input",
                format!("must be in 1..={MAX_UNITS}, got {}", self.input),
            ));
        }
        if self.layers.len() < 2 {
            return Err(Error::config(
                "layers",
                "an autoencoder needs at least a code layer and an output layer",
            ));
        }
        if let Some((c, h, w)) = self.image
            && c.checked_mul(h).and_then(|v| v.checked_mul(w)) != Some(self.input)
        {
            return Err(Error::config(
                "image",
                format!("{c}×{h}×{w} does not match the {} inputs", self.input),
            ));
        }
        let spatial = self
            .layers
            .iter()
            .any(|l| !matches!(l, LayerSpec::Dense { .. }));
        if spatial && self.image.is_none() {
            return Err(Error::config(
                "image",
                "convolution, pooling and upsampling layers need the input's image shape [channels, height, width]",
            ));
        }
        let mut params: usize = 0;
        let mut shape = self.input_shape();
        for (i, l) in self.layers.iter().enumerate() {
            let (in_c, fan_in) = (shape.0, shape.0 * shape.1 * shape.2);
            shape = l.out_shape(shape, &format!("layers[{i}]"))?;
            let u = shape
                .0
                .checked_mul(shape.1)
                .and_then(|v| v.checked_mul(shape.2))
                .unwrap_or(usize::MAX);
            if u == 0 || u > MAX_UNITS {
                return Err(Error::config(
                    format!("layers[{i}]"),
                    format!(
                        "its output must have 1..={MAX_UNITS} values, got {}×{}×{}",
                        shape.0, shape.1, shape.2
                    ),
                ));
            }
            if let Activation::LeakyRelu(s) = l.act()
                && !(s.is_finite() && (0.0..1.0).contains(&s))
            {
                return Err(Error::config(
                    format!("layers[{i}].activation"),
                    format!("leaky_relu slope must be in [0, 1), got {s}"),
                ));
            }
            let n = match *l {
                LayerSpec::Dense { units, .. } => {
                    fan_in.checked_mul(units).and_then(|w| w.checked_add(units))
                }
                LayerSpec::Conv2d {
                    channels, kernel, ..
                } => kernel
                    .checked_mul(kernel)
                    .and_then(|k| k.checked_mul(in_c))
                    .and_then(|k| k.checked_mul(channels))
                    .and_then(|k| k.checked_add(channels)),
                _ => Some(0),
            };
            params = n
                .and_then(|n| n.checked_add(params))
                .filter(|&p| p <= 1 << 31)
                .ok_or_else(|| {
                    Error::config(
                        "layers",
                        "more than 2^31 parameters: too large to train here",
                    )
                })?;
        }
        let last = self.layers.len() - 1;
        if shape.0 * shape.1 * shape.2 != self.input {
            return Err(Error::config(
                format!("layers[{last}]"),
                format!(
                    "the output layer must reconstruct the {} inputs, its output has {}×{}×{}",
                    self.input, shape.0, shape.1, shape.2
                ),
            ));
        }
        if !self.layers[last].has_params() {
            return Err(Error::config(
                format!("layers[{last}]"),
                "the output layer must be a dense or convolutional layer",
            ));
        }
        if self.code_layer >= last {
            return Err(Error::config(
                "code_layer",
                format!(
                    "must name a layer before the output layer (0..{last}), got {}",
                    self.code_layer
                ),
            ));
        }
        if self.loss == Loss::Bce && self.layers[last].act() != Activation::Sigmoid {
            return Err(Error::config(
                format!("layers[{last}].activation"),
                format!(
                    "binary cross-entropy needs a sigmoid output layer, got {}; use sigmoid or the mse loss",
                    self.layers[last].act().name()
                ),
            ));
        }
        if self.tied {
            let n = self.layers.len();
            if self
                .layers
                .iter()
                .any(|l| !matches!(l, LayerSpec::Dense { .. }))
            {
                return Err(Error::config(
                    "tied",
                    "tied weights need an all-dense model",
                ));
            }
            if !n.is_multiple_of(2) || self.code_layer + 1 != n / 2 {
                return Err(Error::config(
                    "tied",
                    "tied weights need a mirrored stack: as many decoder layers as encoder layers (code included)",
                ));
            }
            for i in 0..n / 2 {
                let mirror = n - 1 - i;
                if self.width(mirror) != self.fan_in(i) || self.fan_in(mirror) != self.width(i) {
                    return Err(Error::config(
                        "tied",
                        format!(
                            "layer {mirror} does not mirror layer {i}: their weights cannot be tied"
                        ),
                    ));
                }
            }
        }
        if let Some(p) = self.l1 {
            finite_nonneg("l1.lambda", p.lambda)?;
            if p.layer >= last {
                return Err(Error::config(
                    "l1.layer",
                    format!("must be a hidden layer (0..{last}), got {}", p.layer),
                ));
            }
        }
        if let Some(p) = self.kl {
            finite_nonneg("kl.beta", p.beta)?;
            if !(p.rho > 0.0 && p.rho < 1.0) {
                return Err(Error::config(
                    "kl.rho",
                    format!("the target activation must be in (0, 1), got {}", p.rho),
                ));
            }
            crate::data::check_f32_fraction("kl.rho", p.rho)?;
            if p.layer >= last {
                return Err(Error::config(
                    "kl.layer",
                    format!("must be a hidden layer (0..{last}), got {}", p.layer),
                ));
            }
            let act = self.producing_act(p.layer);
            if act != Activation::Sigmoid {
                return Err(Error::config(
                    format!("layers[{}].activation", p.layer),
                    format!(
                        "the KL sparsity penalty needs activations in (0, 1) (sigmoid), got {}; use the l1 penalty for {} codes",
                        act.name(),
                        act.name()
                    ),
                ));
            }
        }
        if let Some(t) = self.topk {
            if t.layer >= last || !matches!(self.layers[t.layer], LayerSpec::Dense { .. }) {
                return Err(Error::config(
                    "topk.layer",
                    format!("must be a hidden dense layer (0..{last}), got {}", t.layer),
                ));
            }
            let units = self.width(t.layer);
            if t.k == 0 || t.k > units {
                return Err(Error::config(
                    "topk.k",
                    format!("must be in 1..={units} (the layer's units), got {}", t.k),
                ));
            }
        }
        finite_nonneg("weight_decay", self.weight_decay)?;
        self.sae.validate(self)?;
        match self.noise {
            Noise::None => {}
            Noise::Gaussian { std } => finite_nonneg("noise.std", std)?,
            Noise::Masking { p } => {
                if !(p.is_finite() && (0.0..1.0).contains(&p)) {
                    return Err(Error::config(
                        "noise.p",
                        format!("the masked fraction must be in [0, 1), got {p}"),
                    ));
                }
                crate::data::check_f32_fraction("noise.p", p)?;
                // Masking draws 24 bits a value: a fraction closer to 1
                // than 2⁻²⁴ masks every input.
                let most = 1.0 - f64::from(f32::EPSILON) / 2.0;
                if p > most {
                    return Err(Error::config(
                        "noise.p",
                        format!(
                            "{p} would mask every input: masking draws fractions in steps of 2^-24, the largest below 1 being {most}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The input's shape `(c, h, w)`: the image shape, or `(input, 1, 1)`.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        self.image.unwrap_or((self.input, 1, 1))
    }

    /// The output shape `(c, h, w)` of every layer.
    ///
    /// # Panics
    /// If the configuration is invalid (call [`ModelConfig::validate`] first).
    pub fn shapes(&self) -> Vec<(usize, usize, usize)> {
        let mut shape = self.input_shape();
        self.layers
            .iter()
            .map(|l| {
                shape = l
                    .out_shape(shape, "layers")
                    .expect("a validated configuration");
                shape
            })
            .collect()
    }

    /// The shape `(c, h, w)` of the input of layer `l` (`l = layers.len()`:
    /// the last layer's output).
    ///
    /// # Panics
    /// Unless `l ≤ layers.len()`, as a slice's index.
    pub fn in_shape(&self, l: usize) -> (usize, usize, usize) {
        if l == 0 {
            self.input_shape()
        } else {
            self.shapes()[l - 1]
        }
    }

    /// Values in the output of layer `l` (per sample).
    ///
    /// # Panics
    /// Unless `l` is a layer's index (`l < layers.len()`), as a slice's index.
    pub fn width(&self, l: usize) -> usize {
        let (c, h, w) = self.shapes()[l];
        c * h * w
    }

    /// Values in the input of layer `l` (per sample).
    ///
    /// # Panics
    /// Unless `l ≤ layers.len()`, as a slice's index.
    pub fn fan_in(&self, l: usize) -> usize {
        if l == 0 {
            self.input
        } else {
            self.width(l - 1)
        }
    }

    /// The activation that produced layer `l`'s output values: its own, or
    /// for pooling and upsampling that of the layer below.
    ///
    /// # Panics
    /// Unless `l` is a layer's index (`l < layers.len()`), as a slice's index.
    pub fn producing_act(&self, l: usize) -> Activation {
        match self.layers[l] {
            LayerSpec::MaxPool2d { .. } | LayerSpec::Upsample { .. } if l > 0 => {
                self.producing_act(l - 1)
            }
            ref spec => spec.act(),
        }
    }

    /// For tied models, the encoder layer whose weight layer `l` uses
    /// (transposed); `None` if layer `l` owns its weight.
    pub fn tied_to(&self, l: usize) -> Option<usize> {
        let n = self.layers.len();
        (self.tied && l >= n / 2).then(|| n - 1 - l)
    }

    /// The term that makes one sample's forward pass depend on the other
    /// samples of its batch (batch top-k's threshold), if any: the default
    /// step computes such a model in one piece; micro-batches exchange the
    /// threshold first ([`crate::dist`]). (The KL penalty's ρ̂ couples the
    /// samples' gradients only: parts of a batch can be computed apart once
    /// their ρ̂ sums are combined.)
    pub fn batch_coupled(&self) -> Option<&'static str> {
        self.topk.is_some_and(|t| t.batch).then_some("batch top-k")
    }
}
