//! The model configuration as JSON, round-tripping exactly.
//!
//! ```json
//! {
//!   "input": 784,
//!   "image": [1, 28, 28],
//!   "layers": [
//!     {"type": "dense", "units": 128, "activation": "relu"},
//!     {"type": "dense", "units": 32, "activation": "relu"},
//!     {"type": "dense", "units": 128, "activation": "leaky_relu", "slope": 0.01},
//!     {"type": "dense", "units": 784, "activation": "sigmoid"}
//!   ],
//!   "code_layer": 1,
//!   "tied": false,
//!   "loss": "bce",
//!   "l1": {"lambda": 1e-5, "layer": 1},
//!   "kl": null,
//!   "weight_decay": 0,
//!   "noise": {"type": "gaussian", "std": 0.5}
//! }
//! ```
//! Convolutional layers are `{"type": "conv2d", "channels": 16, "kernel": 3,
//! "stride": 1, "padding": 1, "activation": "relu"}` (stride defaults to 1,
//! padding to kernel/2), `{"type": "maxpool2d", "kernel": 2, "stride": 2}`
//! (stride defaults to the kernel) and `{"type": "upsample", "scale": 2}`;
//! they need `image`.
//! Only `input`, `layers` and `code_layer` are required; `tied` defaults to
//! false, `loss` to `bce`, `weight_decay` to 0, `noise` to none, `image` to
//! none, `sae` to all options off (see [`crate::nn::sae`] for its fields),
//! and a penalty's `layer` to the code layer. Unknown keys are errors, so
//! a misspelt option is never silently ignored. `docs/config.md` documents
//! every key with its type, default and range, with tested examples.

use super::config::{KlPenalty, L1Penalty, LayerSpec, Loss, ModelConfig, Noise, TopK};
use super::sae::SaeConfig;
use crate::error::{Error, Result};
use crate::io::json::Value;
use crate::kernels::Activation;

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn num(v: f64) -> Value {
    Value::Number(v)
}

/// Parses an activation name (`relu`, `leaky_relu`, `sigmoid`, `tanh`,
/// `linear`); `slope` is the leaky-ReLU slope (default 0.01).
///
/// # Errors
/// [`Error::Config`] for an unknown name.
pub fn activation_from_name(name: &str, slope: Option<f64>, field: &str) -> Result<Activation> {
    Ok(match name {
        "relu" => Activation::Relu,
        "leaky_relu" => Activation::LeakyRelu(slope.unwrap_or(0.01) as f32),
        "sigmoid" => Activation::Sigmoid,
        "tanh" => Activation::Tanh,
        "linear" | "identity" => Activation::Linear,
        _ => {
            return Err(Error::config(
                field,
                format!("unknown activation `{name}` (relu, leaky_relu, sigmoid, tanh, linear)"),
            ));
        }
    })
}

/// The expected form of each object of a config, for error messages (see
/// `docs/config.md` for every key).
pub(crate) mod form {
    /// The whole config.
    pub const MODEL: &str =
        r#"a model object {"input": …, "layers": [ … ], "code_layer": …} (see docs/config.md)"#;
    /// One entry of `layers`.
    pub const LAYER: &str = r#"a layer object such as {"type": "dense", "units": 32, "activation": "relu"}, {"type": "conv2d", "channels": 16, "kernel": 3, "activation": "relu"}, {"type": "maxpool2d", "kernel": 2} or {"type": "upsample", "scale": 2}"#;
    /// `l1`.
    pub const L1: &str =
        r#"an object {"lambda": <number ≥ 0>, "layer": <hidden layer index, default code_layer>}"#;
    /// `kl`.
    pub const KL: &str = r#"an object {"rho": <target in (0, 1)>, "beta": <number ≥ 0>, "layer": <hidden layer index, default code_layer>}"#;
    /// `topk`.
    pub const TOPK: &str = r#"an object {"k": <1..=units>, "batch": <boolean, default false>, "layer": <hidden dense layer index, default code_layer>}"#;
    /// `noise`.
    pub const NOISE: &str = r#"an object {"type": "gaussian", "std": <number ≥ 0>}, {"type": "masking", "p": <number in [0, 1)>} or {"type": "none"}"#;
    /// `sae`.
    pub const SAE: &str = r#"an object {"unit_norm_decoder": <boolean>, "encoder_init": "glorot" | "decoder_transpose", "pre_encoder_bias": <boolean>, "auxk": {"k": …, "coef": …}, "dead_window": <samples ≥ 1>} (every key optional)"#;
    /// `sae.auxk`.
    pub const AUXK: &str =
        r#"an object {"k": <1..=code units>, "coef": <number ≥ 0>} (both optional)"#;
    /// `image`.
    pub const IMAGE: &str = "[channels, height, width], such as [1, 28, 28]";
}

/// `v`'s kind for an error message: the value itself when it is short.
pub(crate) fn found(v: &Value) -> String {
    match v {
        Value::Number(x) => format!("the number {}", crate::io::json::short_number(*x)),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::Bool(b) => format!("{b}"),
        _ => v.kind().to_string(),
    }
}

/// The error for a value at `path` that is not of the `expected` form.
pub(crate) fn wrong_form(path: &str, expected: &str, v: &Value) -> Error {
    Error::config(path, format!("expected {expected}, found {}", found(v)))
}

fn check_keys(v: &Value, path: &str, allowed: &[&str], expected: &str) -> Result<()> {
    let Some(fields) = v.as_object() else {
        return Err(wrong_form(path, expected, v));
    };
    for (k, _) in fields {
        if !allowed.contains(&k.as_str()) {
            let at = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            return Err(Error::config(
                at,
                format!("unknown key; expected one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

/// Refuses a key of the object `v` (at `path`), known to the schema but
/// not to this `kind` of it (a `kernel` on a dense layer, a `p` on
/// Gaussian noise), which would be dropped without a word; a null value
/// is absent.
fn only_keys(v: &Value, path: &str, kind: &str, keys: &[&str]) -> Result<()> {
    for (k, x) in v.as_object().into_iter().flatten() {
        if !keys.contains(&k.as_str()) && !matches!(x, Value::Null) {
            return Err(Error::config(
                format!("{path}.{k}"),
                format!("{kind} has no `{k}` (its keys: {})", keys.join(", ")),
            ));
        }
    }
    Ok(())
}

fn opt<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !matches!(x, Value::Null))
}

impl ModelConfig {
    /// The configuration as a JSON value.
    pub fn to_json_value(&self) -> Value {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut f = vec![("type", Value::from(l.kind()))];
                match *l {
                    LayerSpec::Dense { units, .. } => f.push(("units", Value::from(units))),
                    LayerSpec::Conv2d {
                        channels,
                        kernel,
                        stride,
                        padding,
                        ..
                    } => {
                        f.push(("channels", Value::from(channels)));
                        f.push(("kernel", Value::from(kernel)));
                        f.push(("stride", Value::from(stride)));
                        f.push(("padding", Value::from(padding)));
                    }
                    LayerSpec::MaxPool2d { kernel, stride } => {
                        f.push(("kernel", Value::from(kernel)));
                        f.push(("stride", Value::from(stride)));
                    }
                    LayerSpec::Upsample { scale } => f.push(("scale", Value::from(scale))),
                }
                if l.has_params() {
                    f.push(("activation", Value::from(l.act().name())));
                    if let Activation::LeakyRelu(s) = l.act() {
                        f.push(("slope", num(s as f64)));
                    }
                }
                obj(f)
            })
            .collect();
        let noise = match self.noise {
            Noise::None => obj(vec![("type", Value::from("none"))]),
            Noise::Gaussian { std } => {
                obj(vec![("type", Value::from("gaussian")), ("std", num(std))])
            }
            Noise::Masking { p } => obj(vec![("type", Value::from("masking")), ("p", num(p))]),
        };
        obj(vec![
            ("input", Value::from(self.input)),
            (
                "image",
                match self.image {
                    Some((c, h, w)) => Value::Array(vec![c.into(), h.into(), w.into()]),
                    None => Value::Null,
                },
            ),
            ("layers", Value::Array(layers)),
            ("code_layer", Value::from(self.code_layer)),
            ("tied", Value::from(self.tied)),
            ("loss", Value::from(self.loss.name())),
            (
                "l1",
                self.l1.map_or(Value::Null, |p| {
                    obj(vec![
                        ("lambda", num(p.lambda)),
                        ("layer", Value::from(p.layer)),
                    ])
                }),
            ),
            (
                "kl",
                self.kl.map_or(Value::Null, |p| {
                    obj(vec![
                        ("rho", num(p.rho)),
                        ("beta", num(p.beta)),
                        ("layer", Value::from(p.layer)),
                    ])
                }),
            ),
            (
                "topk",
                self.topk.map_or(Value::Null, |t| {
                    obj(vec![
                        ("k", Value::from(t.k)),
                        ("batch", Value::from(t.batch)),
                        ("layer", Value::from(t.layer)),
                    ])
                }),
            ),
            ("weight_decay", num(self.weight_decay)),
            ("noise", noise),
            ("sae", self.sae.to_json_value()),
        ])
    }

    /// The configuration as pretty JSON text.
    pub fn to_json(&self) -> String {
        self.to_json_value()
            .to_json_pretty()
            .expect("a validated configuration holds only finite numbers")
    }

    /// Reads and validates a configuration from a JSON value.
    ///
    /// # Errors
    /// [`Error::Config`] naming the missing, mistyped, unknown or impossible field.
    pub fn from_json_value(v: &Value) -> Result<ModelConfig> {
        check_keys(
            v,
            "",
            &[
                "input",
                "image",
                "layers",
                "code_layer",
                "tied",
                "loss",
                "l1",
                "kl",
                "topk",
                "weight_decay",
                "noise",
                "sae",
            ],
            form::MODEL,
        )?;
        let input = v.usize_at("input")?;
        let mut layers = Vec::new();
        let all = v.at("layers")?;
        let all = all.as_array().ok_or_else(|| {
            wrong_form(
                "layers",
                &format!("an array of layers, input side first, each {}", form::LAYER),
                all,
            )
        })?;
        for (i, l) in all.iter().enumerate() {
            let path = format!("layers[{i}]");
            check_keys(
                l,
                &path,
                &[
                    "type",
                    "units",
                    "channels",
                    "kernel",
                    "stride",
                    "padding",
                    "scale",
                    "activation",
                    "slope",
                ],
                form::LAYER,
            )?;
            let kind = match opt(l, "type") {
                Some(t) => t
                    .as_str()
                    .ok_or_else(|| Error::config(format!("{path}.type"), "expected a string"))?,
                None => "dense",
            };
            let at = |key: &str| l.usize_at(key).map_err(|e| prefix(e, &path));
            let at_or = |key: &str, d: usize| opt(l, key).map_or(Ok(d), |_| at(key));
            let act = || -> Result<Activation> {
                let slope = match opt(l, "slope") {
                    Some(s) => Some(s.as_f64().ok_or_else(|| {
                        Error::config(format!("{path}.slope"), "expected a number")
                    })?),
                    None => None,
                };
                if let Some(s) = slope {
                    crate::data::check_f32_fraction(&format!("{path}.slope"), s)?;
                }
                let name = l.str_at("activation").map_err(|e| prefix(e, &path))?;
                if slope.is_some() && name != "leaky_relu" {
                    return Err(Error::config(
                        format!("{path}.slope"),
                        format!("only a leaky_relu activation has a slope, not `{name}`"),
                    ));
                }
                activation_from_name(name, slope, &format!("{path}.activation"))
            };
            let keys: &[&str] = match kind {
                "dense" => &["type", "units", "activation", "slope"],
                "conv2d" => &[
                    "type",
                    "channels",
                    "kernel",
                    "stride",
                    "padding",
                    "activation",
                    "slope",
                ],
                "maxpool2d" => &["type", "kernel", "stride"],
                "upsample" => &["type", "scale"],
                _ => &[],
            };
            if !keys.is_empty() {
                only_keys(l, &path, &format!("a {kind} layer"), keys)?;
            }
            let spec = match kind {
                "dense" => LayerSpec::Dense {
                    units: at("units")?,
                    act: act()?,
                },
                "conv2d" => {
                    let kernel = at("kernel")?;
                    LayerSpec::Conv2d {
                        channels: at("channels")?,
                        kernel,
                        stride: at_or("stride", 1)?,
                        padding: at_or("padding", kernel / 2)?,
                        act: act()?,
                    }
                }
                "maxpool2d" => {
                    let kernel = at("kernel")?;
                    LayerSpec::MaxPool2d {
                        kernel,
                        stride: at_or("stride", kernel)?,
                    }
                }
                "upsample" => LayerSpec::Upsample {
                    scale: at("scale")?,
                },
                _ => {
                    return Err(Error::config(
                        format!("{path}.type"),
                        format!("unknown layer type `{kind}` (dense, conv2d, maxpool2d, upsample)"),
                    ));
                }
            };
            layers.push(spec);
        }
        let code_layer = v.usize_at("code_layer")?;
        let image = match opt(v, "image") {
            Some(img) => {
                let dims: Option<Vec<usize>> = img
                    .as_array()
                    .and_then(|a| a.iter().map(Value::as_usize).collect());
                match dims.as_deref() {
                    Some(&[c, h, w]) => Some((c, h, w)),
                    _ => {
                        let what = match img.as_array() {
                            Some(a) if a.len() != 3 => format!("an array of {} entries", a.len()),
                            Some(_) => "an entry that is not a non-negative integer".to_string(),
                            None => found(img),
                        };
                        return Err(Error::config(
                            "image",
                            format!("expected {}, found {what}", form::IMAGE),
                        ));
                    }
                }
            }
            None => None,
        };
        let l1 = match opt(v, "l1") {
            Some(p) => {
                check_keys(p, "l1", &["lambda", "layer"], form::L1)?;
                Some(L1Penalty {
                    lambda: p.f64_at("lambda").map_err(|e| prefix(e, "l1"))?,
                    layer: opt(p, "layer")
                        .map_or(Ok(code_layer), |_| p.usize_at("layer"))
                        .map_err(|e| prefix(e, "l1"))?,
                })
            }
            None => None,
        };
        let kl = match opt(v, "kl") {
            Some(p) => {
                check_keys(p, "kl", &["rho", "beta", "layer"], form::KL)?;
                Some(KlPenalty {
                    rho: p.f64_at("rho").map_err(|e| prefix(e, "kl"))?,
                    beta: p.f64_at("beta").map_err(|e| prefix(e, "kl"))?,
                    layer: opt(p, "layer")
                        .map_or(Ok(code_layer), |_| p.usize_at("layer"))
                        .map_err(|e| prefix(e, "kl"))?,
                })
            }
            None => None,
        };
        let topk = match opt(v, "topk") {
            Some(p) => {
                check_keys(p, "topk", &["k", "batch", "layer"], form::TOPK)?;
                Some(TopK {
                    k: p.usize_at("k").map_err(|e| prefix(e, "topk"))?,
                    batch: opt(p, "batch")
                        .map_or(Ok(false), |_| p.bool_at("batch"))
                        .map_err(|e| prefix(e, "topk"))?,
                    layer: opt(p, "layer")
                        .map_or(Ok(code_layer), |_| p.usize_at("layer"))
                        .map_err(|e| prefix(e, "topk"))?,
                })
            }
            None => None,
        };
        let noise = match opt(v, "noise") {
            Some(n) => {
                check_keys(n, "noise", &["type", "std", "p"], form::NOISE)?;
                let kind = n.str_at("type").map_err(|e| prefix(e, "noise"))?;
                let keys: &[&str] = match kind {
                    "gaussian" => &["type", "std"],
                    "masking" => &["type", "p"],
                    _ => &["type"],
                };
                only_keys(n, "noise", &format!("`{kind}` noise"), keys)?;
                match kind {
                    "none" => Noise::None,
                    "gaussian" => Noise::Gaussian {
                        std: n.f64_at("std").map_err(|e| prefix(e, "noise"))?,
                    },
                    "masking" => Noise::Masking {
                        p: n.f64_at("p").map_err(|e| prefix(e, "noise"))?,
                    },
                    t => {
                        return Err(Error::config(
                            "noise.type",
                            format!("unknown noise `{t}` (none, gaussian, masking)"),
                        ));
                    }
                }
            }
            None => Noise::None,
        };
        let code_units = match layers.get(code_layer) {
            Some(LayerSpec::Dense { units, .. }) => *units,
            _ => 0,
        };
        let sae = SaeConfig::from_json_value(v.get("sae"), input, code_units)?;
        let cfg = ModelConfig {
            input,
            layers,
            code_layer,
            tied: opt(v, "tied").map_or(Ok(false), |_| v.bool_at("tied"))?,
            loss: match opt(v, "loss") {
                Some(_) => Loss::from_name(v.str_at("loss")?)?,
                None => Loss::Bce,
            },
            l1,
            kl,
            topk,
            weight_decay: opt(v, "weight_decay").map_or(Ok(0.0), |_| v.f64_at("weight_decay"))?,
            noise,
            image,
            sae,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates a configuration from JSON text.
    ///
    /// # Errors
    /// [`Error::Json`] for malformed JSON, [`Error::Config`] for a bad field.
    pub fn from_json(text: &str) -> Result<ModelConfig> {
        ModelConfig::from_json_value(&crate::io::json::parse(text.as_bytes())?)
    }

    /// Reads, parses and validates the JSON file at `path` (a regular file
    /// within [`crate::io::json::read`]'s cap, so a FIFO or `/dev/zero` is
    /// refused rather than read without end); a bad field is named under
    /// the path (`model.json: layers[0].activation`).
    ///
    /// # Errors
    /// [`Error::Io`] for a file that cannot be read (missing, special,
    /// oversized), [`Error::Json`] for malformed JSON, [`Error::Config`]
    /// for a bad field.
    pub fn read(path: &std::path::Path) -> Result<ModelConfig> {
        let value = crate::io::json::read(path)?;
        ModelConfig::from_json_value(&value).map_err(|e| match e {
            Error::Config { field, reason } => Error::Config {
                field: format!("{}: {field}", path.display()),
                reason,
            },
            e => e,
        })
    }
}

/// `e` with a config error's field named under `parent` (`parent.field`).
pub(crate) fn prefix(e: Error, parent: &str) -> Error {
    match e {
        Error::Config { field, reason } => Error::Config {
            field: format!("{parent}.{field}"),
            reason,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{ModelBuilder, PRESETS, preset};

    #[test]
    fn presets_round_trip() {
        for (name, _) in PRESETS {
            let cfg = preset(name, 784).unwrap();
            let back = ModelConfig::from_json(&cfg.to_json()).unwrap();
            assert_eq!(back, cfg, "{name}");
        }
        let odd = ModelBuilder::new(6)
            .encoder(5, Activation::LeakyRelu(0.25))
            .code(3, Activation::Tanh)
            .decoder(5, Activation::Linear)
            .decoder(6, Activation::Sigmoid)
            .tied(true)
            .noise(Noise::Masking { p: 0.3 })
            .l1_on(0.5, 0)
            .build()
            .unwrap();
        assert_eq!(ModelConfig::from_json(&odd.to_json()).unwrap(), odd);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = r#"{"input": 4, "layers": [{"units": 2, "activation": "relu"}, {"units": 4, "activation": "sigmoid", "colour": 1}], "code_layer": 0}"#;
        let e = ModelConfig::from_json(bad).unwrap_err().to_string();
        assert!(e.contains("layers[1].colour"), "{e}");
        let bad = r#"{"input": 4, "layers": [{"units": 2, "activation": "relu"}, {"units": 4, "activation": "sigmoid"}], "code_layer": 0, "kl": {"rho": 0.1, "beta": 3}}"#;
        let e = ModelConfig::from_json(bad).unwrap_err().to_string();
        assert!(e.contains("KL") && e.contains("relu"), "{e}");
        let bad = r#"{"input": 4, "layers": [{"units": 2, "activation": "swish"}, {"units": 4, "activation": "sigmoid"}], "code_layer": 0}"#;
        let e = ModelConfig::from_json(bad).unwrap_err().to_string();
        assert!(
            e.contains("layers[0].activation") && e.contains("swish"),
            "{e}"
        );
        // A layer that does not fit its input names the layer and the part,
        // and says "invalid configuration" once.
        for layer in [
            r#"{"type": "maxpool2d", "kernel": 3}"#,
            r#"{"type": "conv2d", "channels": 1, "kernel": 5, "padding": 0, "activation": "relu"}"#,
        ] {
            let bad = format!(
                r#"{{"input": 4, "image": [1, 2, 2], "layers": [{layer}, {{"units": 4, "activation": "sigmoid"}}], "code_layer": 0}}"#
            );
            let e = ModelConfig::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains("layers[0]: ") && e.contains(".kernel"), "{e}");
            assert_eq!(e.matches("invalid configuration").count(), 1, "{e}");
        }
        let minimal = r#"{"input": 4, "layers": [{"units": 2, "activation": "relu"}, {"units": 4, "activation": "sigmoid"}], "code_layer": 0, "l1": {"lambda": 0.001}}"#;
        let cfg = ModelConfig::from_json(minimal).unwrap();
        assert_eq!(cfg.l1.unwrap().layer, 0);
    }

    /// A key of another kind of layer or noise (a `kernel` on a dense
    /// layer, a `p` on Gaussian noise, a slope on relu) is refused naming
    /// it: it was dropped without a word, and the saved model no longer had
    /// it. A null value stays absent.
    #[test]
    fn keys_of_another_kind_are_refused() {
        let conv = r#"{"type": "conv2d", "channels": 1, "kernel": 3, "activation": "sigmoid"}"#;
        let with = |first: &str, last: &str, rest: &str| {
            format!(
                r#"{{"input": 16, "image": [1, 4, 4], "layers": [{first}, {last}], "code_layer": 0{rest}}}"#
            )
        };
        let dense = r#"{"units": 16, "activation": "sigmoid"}"#;
        let noisy = |noise: &str| {
            with(
                r#"{"units": 4, "activation": "relu"}"#,
                dense,
                &format!(r#", "noise": {noise}"#),
            )
        };
        let cases = [
            (
                with(
                    r#"{"type": "dense", "units": 4, "activation": "relu", "kernel": 3}"#,
                    dense,
                    "",
                ),
                "layers[0].kernel",
                "dense layer",
            ),
            (
                with(
                    r#"{"units": 4, "activation": "relu", "scale": 2}"#,
                    dense,
                    "",
                ),
                "layers[0].scale",
                "dense layer",
            ),
            (
                with(
                    r#"{"type": "conv2d", "channels": 2, "kernel": 3, "activation": "relu", "units": 5}"#,
                    conv,
                    "",
                ),
                "layers[0].units",
                "conv2d layer",
            ),
            (
                with(
                    r#"{"type": "maxpool2d", "kernel": 2, "activation": "relu"}"#,
                    r#"{"type": "upsample", "scale": 2}"#,
                    "",
                ),
                "layers[0].activation",
                "maxpool2d layer",
            ),
            (
                with(r#"{"type": "upsample", "scale": 1, "units": 5}"#, conv, ""),
                "layers[0].units",
                "upsample layer",
            ),
            (
                with(
                    r#"{"units": 4, "activation": "relu", "slope": 0.2}"#,
                    dense,
                    "",
                ),
                "layers[0].slope",
                "leaky_relu",
            ),
            (
                noisy(r#"{"type": "gaussian", "std": 0.1, "p": 0.3}"#),
                "noise.p",
                "`gaussian` noise",
            ),
            (
                noisy(r#"{"type": "masking", "p": 0.3, "std": 0.5}"#),
                "noise.std",
                "`masking` noise",
            ),
            (
                noisy(r#"{"type": "none", "std": 0.3}"#),
                "noise.std",
                "`none` noise",
            ),
        ];
        for (text, field, kind) in cases {
            let e = ModelConfig::from_json(&text).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains(kind), "{text}: {e}");
        }
        let fine = with(
            r#"{"units": 4, "activation": "leaky_relu", "slope": 0.2, "kernel": null}"#,
            dense,
            r#", "noise": {"type": "gaussian", "std": 0.1, "p": null}"#,
        );
        ModelConfig::from_json(&fine).unwrap();
    }

    /// A key of the wrong kind names the form it takes, not only its kind.
    #[test]
    fn wrong_kinds_show_the_expected_form() {
        let base = r#""input": 4, "layers": [{"units": 2, "activation": "sigmoid"}, {"units": 4, "activation": "sigmoid"}], "code_layer": 0"#;
        let cases = [
            (
                r#""l1": 1e-5"#,
                "l1",
                r#"{"lambda": "#,
                "the number 0.00001",
            ),
            (r#""kl": 0.05"#, "kl", r#"{"rho": "#, "the number 0.05"),
            (r#""topk": 2"#, "topk", r#"{"k": "#, "the number 2"),
            (
                r#""noise": "gaussian""#,
                "noise",
                r#"{"type": "gaussian", "std": "#,
                "the string \"gaussian\"",
            ),
            (r#""sae": true"#, "sae", r#""unit_norm_decoder": "#, "true"),
            (
                r#""image": 784"#,
                "image",
                "[channels, height, width]",
                "the number 784",
            ),
            (
                r#""image": [1, 2]"#,
                "image",
                "[channels, height, width]",
                "an array of 2 entries",
            ),
        ];
        for (extra, field, form, found) in cases {
            let text = format!("{{{base}, {extra}}}");
            let e = ModelConfig::from_json(&text).unwrap_err().to_string();
            assert!(e.contains(&format!("{field}: expected")), "{e}");
            assert!(e.contains(form) && e.contains(found), "{e}");
        }
        let e = ModelConfig::from_json(r#"{"input": 4, "layers": [32, 4], "code_layer": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layers[0]: expected a layer object") && e.contains(r#""units": 32"#),
            "{e}"
        );
        let e = ModelConfig::from_json(r#"{"input": 4, "layers": 2, "code_layer": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layers: expected an array of layers"), "{e}");
        let auxk = r#"{"input": 4, "layers": [{"units": 8, "activation": "relu"}, {"units": 4, "activation": "linear"}], "code_layer": 0, "loss": "mse", "topk": {"k": 2}, "sae": {"auxk": true}}"#;
        let e = ModelConfig::from_json(auxk).unwrap_err().to_string();
        assert!(e.contains(r#"sae.auxk: expected an object {"k": "#), "{e}");
        let e = ModelConfig::from_json("[]").unwrap_err().to_string();
        assert!(e.contains("expected a model object"), "{e}");
    }
}
