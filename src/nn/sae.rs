//! Options of sparse autoencoders in the interpretability style (Gao et al.
//! 2024, "Scaling and evaluating sparse autoencoders"; the SAELens and
//! sparsify libraries): decoder columns of unit norm, the encoder started as
//! the decoder's transpose, the decoder bias `b_dec` also subtracted from the
//! input, the dead-latent window, and the AuxK auxiliary loss.
//!
//! The structural options (all but the dead window) describe a
//! one-hidden-layer SAE: a dense code layer (layer 0) and a dense output
//! layer, untied. The pre-encoder bias and AuxK also need a linear output
//! layer (so the loss is `mse` or `sse`), because both treat the decoder's
//! output as a point in input space. Other models are rejected with
//! [`Error::Config`] naming the option.
//!
//! JSON (the `sae` key of a model config; every field is optional):
//! ```json
//! "sae": {"unit_norm_decoder": true, "encoder_init": "decoder_transpose",
//!         "pre_encoder_bias": true, "auxk": {"k": 392, "coef": 0.03125},
//!         "dead_window": 100000}
//! ```
//! `encoder_init` is `glorot` (the default) or `decoder_transpose`; an
//! `auxk` without `k` takes [`default_auxk_k`], without `coef`
//! [`DEFAULT_AUXK_COEF`].

use super::config::{LayerSpec, Loss, ModelConfig};
use super::config_json::{form, prefix, wrong_form};
use crate::error::{Error, Result};
use crate::io::json::Value;
use crate::kernels::Activation;

/// The default dead window in samples: 100,000 (about 1.7 epochs of
/// MNIST). sparsify and the reference code of Gao et al. use 10M tokens,
/// sized for runs of billions of tokens; a window should be a small
/// fraction of a run, so set it for larger data.
pub const DEFAULT_DEAD_WINDOW: u64 = 100_000;

/// The default AuxK coefficient α = 1/32 (Gao et al., sparsify's `auxk_alpha`).
pub const DEFAULT_AUXK_COEF: f64 = 1.0 / 32.0;

/// How the encoder weight of a fresh model starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EncoderInit {
    /// Glorot-uniform, as every other weight.
    #[default]
    Glorot,
    /// The transpose of the (initialised, and with a unit-norm decoder
    /// normalised) decoder weight: `W_enc = W_decᵀ`.
    DecoderTranspose,
}

impl EncoderInit {
    /// The name in configs (`glorot`, `decoder_transpose`).
    pub fn name(self) -> &'static str {
        match self {
            EncoderInit::Glorot => "glorot",
            EncoderInit::DecoderTranspose => "decoder_transpose",
        }
    }
}

/// The AuxK auxiliary loss (see [`crate::nn::auxk`] for what it computes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AuxK {
    /// k_aux: dead latents used per sample (fewer when fewer are dead).
    pub k: usize,
    /// The coefficient α of the loss.
    pub coef: f64,
}

/// k_aux when not given: half the input width (Gao et al., appendix B.1;
/// sparsify's `d_in // 2`), at least 1 and at most the code width.
pub fn default_auxk_k(input: usize, code_units: usize) -> usize {
    (input / 2).clamp(1, code_units.max(1))
}

/// The SAE options of a model; the default turns everything off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SaeConfig {
    /// Keep every decoder column (a latent's direction in input space) at
    /// unit L2 norm: the training step removes the gradient component
    /// parallel to each column before the optimizer update and renormalises
    /// the columns after it; a fresh model starts normalised.
    pub unit_norm_decoder: bool,
    /// How a fresh model's encoder weight starts.
    pub encoder_init: EncoderInit,
    /// Encode `x − b_dec` instead of `x`, `b_dec` being the output layer's
    /// bias (SAELens `apply_b_dec_to_input`; always so in sparsify).
    pub pre_encoder_bias: bool,
    /// The AuxK auxiliary loss on dead latents.
    pub auxk: Option<AuxK>,
    /// A code unit is dead when it has not fired (exceeded the code's
    /// threshold, [`crate::train::metrics::code_threshold`]) in the last
    /// `dead_window` training samples (any model; the dead fraction is
    /// reported per epoch).
    pub dead_window: u64,
}

impl Default for SaeConfig {
    fn default() -> Self {
        SaeConfig {
            unit_norm_decoder: false,
            encoder_init: EncoderInit::Glorot,
            pre_encoder_bias: false,
            auxk: None,
            dead_window: DEFAULT_DEAD_WINDOW,
        }
    }
}

impl SaeConfig {
    /// Whether every option is at its default (the JSON then says `null`).
    pub fn is_default(&self) -> bool {
        *self == SaeConfig::default()
    }

    /// The first structural option that is on, by its config name.
    fn first_structural(&self) -> Option<&'static str> {
        if self.unit_norm_decoder {
            Some("sae.unit_norm_decoder")
        } else if self.encoder_init != EncoderInit::Glorot {
            Some("sae.encoder_init")
        } else if self.pre_encoder_bias {
            Some("sae.pre_encoder_bias")
        } else if self.auxk.is_some() {
            Some("sae.auxk")
        } else {
            None
        }
    }

    /// Checks the options against the model they belong to.
    ///
    /// # Errors
    /// [`Error::Config`] naming the option the model cannot take.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        // The bound is what a configuration file can hold exactly (a JSON
        // number): what is written can be read back.
        const MAX_WINDOW: u64 = (1 << 53) - 1;
        if !(1..=MAX_WINDOW).contains(&self.dead_window) {
            return Err(Error::config(
                "sae.dead_window",
                format!(
                    "must be in 1..={MAX_WINDOW} samples, got {}",
                    self.dead_window
                ),
            ));
        }
        let Some(field) = self.first_structural() else {
            return Ok(());
        };
        let dense = cfg
            .layers
            .iter()
            .all(|l| matches!(l, LayerSpec::Dense { .. }));
        if !dense || cfg.layers.len() != 2 || cfg.code_layer != 0 || cfg.tied {
            return Err(Error::config(
                field,
                format!(
                    "applies to a one-hidden-layer SAE (a dense code layer and a dense output layer, untied); this model has {} layers{}{}",
                    cfg.layers.len(),
                    if dense { "" } else { ", not all dense" },
                    if cfg.tied { ", tied" } else { "" }
                ),
            ));
        }
        let out_act = cfg.layers[1].act();
        for (on, name) in [
            (self.pre_encoder_bias, "sae.pre_encoder_bias"),
            (self.auxk.is_some(), "sae.auxk"),
        ] {
            if on && (out_act != Activation::Linear || cfg.loss == Loss::Bce) {
                return Err(Error::config(
                    name,
                    format!(
                        "needs a linear output layer and the mse or sse loss (the decoder's output must live in input space); this model has a {} output and the {} loss",
                        out_act.name(),
                        cfg.loss.name()
                    ),
                ));
            }
        }
        if let Some(a) = self.auxk {
            let units = cfg.width(0);
            if cfg.topk.is_none_or(|t| t.layer != 0) {
                return Err(Error::config(
                    "sae.auxk",
                    "AuxK revives dead latents of a TopK code: the code layer needs `topk`",
                ));
            }
            if a.k == 0 || a.k > units {
                return Err(Error::config(
                    "sae.auxk.k",
                    format!("must be in 1..={units} (the code's units), got {}", a.k),
                ));
            }
            if !(a.coef.is_finite() && a.coef >= 0.0) {
                return Err(Error::config(
                    "sae.auxk.coef",
                    format!("must be a finite number ≥ 0, got {}", a.coef),
                ));
            }
            crate::data::check_f32_param("sae.auxk.coef", a.coef)?;
        }
        Ok(())
    }

    /// The options as JSON (`null` when all are at their defaults).
    pub fn to_json_value(&self) -> Value {
        if self.is_default() {
            return Value::Null;
        }
        let auxk = self.auxk.map_or(Value::Null, |a| {
            Value::Object(vec![
                ("k".into(), Value::from(a.k)),
                ("coef".into(), Value::Number(a.coef)),
            ])
        });
        Value::Object(vec![
            (
                "unit_norm_decoder".into(),
                Value::from(self.unit_norm_decoder),
            ),
            ("encoder_init".into(), Value::from(self.encoder_init.name())),
            (
                "pre_encoder_bias".into(),
                Value::from(self.pre_encoder_bias),
            ),
            ("auxk".into(), auxk),
            ("dead_window".into(), Value::Number(self.dead_window as f64)),
        ])
    }

    /// Reads the `sae` object of a config (`None` or `null`: the defaults).
    /// `input` and `code_units` give the default k_aux.
    ///
    /// # Errors
    /// [`Error::Config`] naming an unknown key or a mistyped value.
    pub fn from_json_value(
        v: Option<&Value>,
        input: usize,
        code_units: usize,
    ) -> Result<SaeConfig> {
        let mut s = SaeConfig::default();
        let Some(v) = v.filter(|v| !matches!(v, Value::Null)) else {
            return Ok(s);
        };
        let fields = v
            .as_object()
            .ok_or_else(|| wrong_form("sae", form::SAE, v))?;
        const KEYS: [&str; 5] = [
            "unit_norm_decoder",
            "encoder_init",
            "pre_encoder_bias",
            "auxk",
            "dead_window",
        ];
        let at = |e: Error| prefix(e, "sae");
        for (k, val) in fields {
            if matches!(val, Value::Null) {
                continue;
            }
            match k.as_str() {
                "unit_norm_decoder" => s.unit_norm_decoder = v.bool_at(k).map_err(at)?,
                "pre_encoder_bias" => s.pre_encoder_bias = v.bool_at(k).map_err(at)?,
                "dead_window" => s.dead_window = v.usize_at(k).map_err(at)? as u64,
                "encoder_init" => {
                    s.encoder_init = match v.str_at(k).map_err(at)? {
                        "glorot" => EncoderInit::Glorot,
                        "decoder_transpose" => EncoderInit::DecoderTranspose,
                        other => {
                            return Err(Error::config(
                                "sae.encoder_init",
                                format!("unknown init `{other}` (glorot or decoder_transpose)"),
                            ));
                        }
                    }
                }
                "auxk" => s.auxk = Some(auxk_from_json(val, input, code_units)?),
                _ => {
                    return Err(Error::config(
                        format!("sae.{k}"),
                        format!("unknown key; expected one of {}", KEYS.join(", ")),
                    ));
                }
            }
        }
        Ok(s)
    }
}

fn auxk_from_json(v: &Value, input: usize, code_units: usize) -> Result<AuxK> {
    let fields = v
        .as_object()
        .ok_or_else(|| wrong_form("sae.auxk", form::AUXK, v))?;
    let mut a = AuxK {
        k: default_auxk_k(input, code_units),
        coef: DEFAULT_AUXK_COEF,
    };
    let at = |e: Error| prefix(e, "sae.auxk");
    for (k, val) in fields {
        if matches!(val, Value::Null) {
            continue;
        }
        match k.as_str() {
            "k" => a.k = v.usize_at(k).map_err(at)?,
            "coef" => a.coef = v.f64_at(k).map_err(at)?,
            _ => {
                return Err(Error::config(
                    format!("sae.auxk.{k}"),
                    "unknown key; expected one of k, coef",
                ));
            }
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ModelBuilder;

    fn sae(b: ModelBuilder) -> Result<ModelConfig> {
        b.build()
    }

    fn linear_topk() -> ModelBuilder {
        ModelBuilder::new(12)
            .code(20, Activation::Relu)
            .decoder(12, Activation::Linear)
            .loss(Loss::Mse)
            .topk(3, false)
    }

    #[test]
    fn json_round_trips_and_defaults_fill_in() {
        let cfg = sae(linear_topk()
            .unit_norm_decoder(true)
            .encoder_init(EncoderInit::DecoderTranspose)
            .pre_encoder_bias(true)
            .auxk(None, 0.5)
            .dead_window(1234))
        .unwrap();
        assert_eq!(cfg.sae.auxk.unwrap().k, 6);
        let back = ModelConfig::from_json(&cfg.to_json()).unwrap();
        assert_eq!(back, cfg);
        let text = cfg.to_json().replace("\"k\": 6,", "");
        let partial = ModelConfig::from_json(&text).unwrap();
        assert_eq!(partial.sae.auxk.unwrap().k, 6);
        // The default options are `null` and read back as the default.
        let plain = sae(linear_topk()).unwrap();
        assert!(plain.to_json().contains("\"sae\": null"));
        assert_eq!(ModelConfig::from_json(&plain.to_json()).unwrap(), plain);
    }

    #[test]
    fn bad_options_name_the_field() {
        let cases: Vec<(ModelBuilder, &str)> = vec![
            (
                ModelBuilder::new(12)
                    .encoder(8, Activation::Relu)
                    .code(4, Activation::Relu)
                    .decoder(12, Activation::Linear)
                    .loss(Loss::Mse)
                    .unit_norm_decoder(true),
                "sae.unit_norm_decoder",
            ),
            (
                ModelBuilder::new(12)
                    .code(20, Activation::Relu)
                    .decoder(12, Activation::Sigmoid)
                    .topk(3, false)
                    .pre_encoder_bias(true),
                "sae.pre_encoder_bias",
            ),
            (
                ModelBuilder::new(12)
                    .code(20, Activation::Relu)
                    .decoder(12, Activation::Linear)
                    .loss(Loss::Mse)
                    .auxk(None, 0.1),
                "needs `topk`",
            ),
            (linear_topk().auxk(Some(21), 0.1), "sae.auxk.k"),
            (linear_topk().auxk(None, f64::NAN), "sae.auxk.coef"),
            (linear_topk().dead_window(0), "sae.dead_window"),
        ];
        for (b, want) in cases {
            let e = sae(b).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // Unit-norm decoders and the transposed init take any output activation.
        let sigmoid = ModelBuilder::new(12)
            .code(20, Activation::Relu)
            .decoder(12, Activation::Sigmoid)
            .unit_norm_decoder(true)
            .encoder_init(EncoderInit::DecoderTranspose);
        assert!(sae(sigmoid).is_ok());
        let bad = r#"{"input": 4, "layers": [{"units": 2, "activation": "relu"}, {"units": 4, "activation": "linear"}], "code_layer": 0, "loss": "mse", "sae": {"unit_norm": true}}"#;
        let e = ModelConfig::from_json(bad).unwrap_err().to_string();
        assert!(
            e.contains("sae.unit_norm") && e.contains("unknown key"),
            "{e}"
        );
    }
}
