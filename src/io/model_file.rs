//! Models and checkpoints as safetensors files.
//!
//! A model file holds each parameter tensor under its PyTorch
//! `nn.Sequential` name and shape (`encoder.0.weight` `[out, in]`,
//! `encoder.0.bias` `[out]`, …), so `model.load_state_dict(load_file(path))`
//! works unchanged in PyTorch. The `__metadata__` holds `format: pt`,
//! `sparse_ae.kind: model` and `sparse_ae.config`, the model configuration as
//! JSON (see [`crate::nn::config_json`]), and for a model trained on
//! normalised inputs `sparse_ae.input_scale`, the scale `s` its inputs are
//! multiplied by ([`crate::train::normalize`]; absent means 1).
//!
//! A checkpoint adds the optimizer state: tensors `optimizer.m/<name>` and
//! `optimizer.v/<name>` in the same shapes, and metadata `sparse_ae.kind:
//! checkpoint`, `sparse_ae.step`, `sparse_ae.optimizer` (JSON),
//! `sparse_ae.batch_size`, `sparse_ae.noise_rng` (the four state words in
//! hex), `sparse_ae.dead_counters` (samples since each code unit last fired,
//! decimal, comma-separated; see [`crate::train::dead`]; a checkpoint
//! without it resumes with the counters at 0) and free-form `sparse_ae.fit`
//! (the loop's own options, JSON); a checkpoint of a run stopped inside an
//! epoch adds `sparse_ae.epoch_so_far`, the statistics of that epoch's
//! steps so far (JSON; see [`crate::train::EpochSoFar`]), which a resumed
//! run adds to. Values are stored as F32 bit for bit, so
//! a resumed run continues exactly.
//!
//! Writes are atomic ([`crate::io::atomic`]). Loading checks every tensor's
//! presence and shape against the configuration and rejects NaN or infinite
//! values, naming the tensor.

use super::json::{self, Value};
use super::safetensors::{self, SafeTensors, TensorRef};
use crate::error::{Error, Result};
use crate::nn::{Autoencoder, ModelConfig};
use crate::optim::{AdamConfig, Optimizer, OptimizerConfig, SgdConfig};
use crate::rng::Rng;
use crate::train::{EpochSoFar, Trainer};
use std::path::Path;

const KIND: &str = "sparse_ae.kind";
const CONFIG: &str = "sparse_ae.config";
const INPUT_SCALE: &str = "sparse_ae.input_scale";
/// A checkpoint's statistics of an epoch stopped inside of
/// ([`EpochSoFar`]).
const EPOCH_SO_FAR: &str = "sparse_ae.epoch_so_far";

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Safetensors {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn param_refs<'a>(
    model: &'a Autoencoder<f32>,
    data: &'a [f32],
    prefix: &str,
    names: &'a mut Vec<String>,
) -> Vec<TensorRef<'a>> {
    names.extend(
        model
            .layout()
            .tensors
            .iter()
            .map(|t| format!("{prefix}{}", t.name)),
    );
    model
        .layout()
        .tensors
        .iter()
        .zip(names.iter())
        .map(|(t, n)| (n.as_str(), t.shape.as_slice(), &data[t.range()]))
        .collect()
}

/// Refuses to write `tensors` to `path` when one holds a value that is not
/// finite: the loaders refuse such a file, and what is written must read
/// back. Checked before anything is written, so the old file stays.
///
/// # Errors
/// [`Error::Value`] naming the tensor, the index and the value.
pub(crate) fn check_finite_tensors(path: &Path, tensors: &[safetensors::TensorRef]) -> Result<()> {
    for &(name, _, data) in tensors {
        if let Some(i) = crate::nn::first_non_finite(data) {
            return Err(Error::Value {
                reason: format!(
                    "{}: not written: tensor `{name}` holds a non-finite value ({}) at index {i}, and a model file holds finite values only (its loader would refuse it)\n---> HINT: the model diverged; lower the learning rate, or keep the last good checkpoint",
                    path.display(),
                    data[i]
                ),
            });
        }
    }
    Ok(())
}

/// Saves the model's parameters and configuration.
///
/// # Errors
/// [`Error::Value`] for a parameter that is not finite (the loader would
/// refuse the file); [`Error::Io`] if the file cannot be written (the old
/// file is kept).
pub fn save_model(path: &Path, model: &Autoencoder<f32>) -> Result<()> {
    save_model_scaled(path, model, 1.0)
}

/// Saves the model with the input scale its inputs are multiplied by
/// (metadata `sparse_ae.input_scale`, written unless it is 1).
///
/// # Errors
/// [`Error::Config`] for a scale that is not finite and positive, or other
/// than 1 on a binary cross-entropy model ([`check_input_scale`]: what is
/// written can be read back); [`Error::Value`] for a parameter that is not
/// finite; [`Error::Io`] if the file cannot be written (the old file is
/// kept).
pub fn save_model_scaled(path: &Path, model: &Autoencoder<f32>, input_scale: f32) -> Result<()> {
    check_input_scale(input_scale, model.config(), "input_scale")?;
    let mut names = Vec::new();
    let tensors = param_refs(model, &model.params, "", &mut names);
    check_finite_tensors(path, &tensors)?;
    let cfg = model.config().to_json_value().to_json()?;
    let scale = input_scale.to_string();
    let mut meta = vec![("format", "pt"), (KIND, "model"), (CONFIG, cfg.as_str())];
    if input_scale != 1.0 {
        meta.push((INPUT_SCALE, &scale));
    }
    safetensors::write(path, &tensors, &meta)
}

/// Largest step count a checkpoint may hold: Adam's bias correction `βᵗ`
/// and every counter stay exact (2⁵³) and no addition can overflow.
pub const MAX_STEPS: u64 = 1 << 53;

/// Checks an input scale against the model it belongs to: finite and
/// positive, and 1 for a binary cross-entropy model (its targets must stay
/// in [0, 1], so it is never trained on scaled inputs). The one rule every
/// loader and writer uses.
///
/// # Errors
/// [`Error::Config`] naming `field`.
pub fn check_input_scale(scale: f32, cfg: &ModelConfig, field: &str) -> Result<()> {
    crate::train::samples::check_scale_named(scale, field)?;
    if scale != 1.0 && cfg.loss == crate::nn::Loss::Bce {
        return Err(Error::config(
            field,
            format!(
                "{scale} on a binary cross-entropy model: its targets must stay in [0, 1], so its inputs are never scaled"
            ),
        ));
    }
    Ok(())
}

/// An input scale read as f64 (from text or JSON) as f32, refused naming
/// `field` and the value when f32 cannot hold it (1e39 would be infinite,
/// 1e-50 zero), rather than checked after the conversion changed it.
///
/// # Errors
/// [`Error::Config`] naming `field` ([`crate::data::check_f32_param`]).
pub fn input_scale_from_f64(v: f64, field: &str) -> Result<f32> {
    crate::data::check_f32_param(field, v)?;
    Ok(v as f32)
}

fn scale_of(st: &SafeTensors, cfg: &ModelConfig, path: &Path) -> Result<f32> {
    let Some(text) = st.meta(INPUT_SCALE) else {
        return Ok(1.0);
    };
    let scale = text.parse::<f64>().map_err(|_| {
        bad(
            path,
            format!(
                "metadata `{INPUT_SCALE}` is {:?}, not a finite positive number",
                excerpt(text)
            ),
        )
    })?;
    let scale = input_scale_from_f64(scale, INPUT_SCALE).map_err(|e| bad(path, reason_of(e)))?;
    check_input_scale(scale, cfg, INPUT_SCALE).map_err(|e| bad(path, reason_of(e)))?;
    Ok(scale)
}

use super::json::excerpt;

/// The `field: reason` of a configuration error (else its message), to
/// wrap in a file's error.
fn reason_of(e: Error) -> String {
    match e {
        Error::Config { field, reason } => format!("{field}: {reason}"),
        e => e.to_string(),
    }
}

/// The one validation of a model's state in a file: the configuration's
/// tensors present, shaped, finite (see [`gather`]); no tensor beside them
/// but the optimizer's under `extra` prefixes (so a tensor the
/// configuration does not use, such as an untied decoder weight beside a
/// tied configuration, is never dropped silently); the input scale valid
/// for the model ([`check_input_scale`]). Every load goes through it.
fn model_state(
    st: &SafeTensors,
    cfg: ModelConfig,
    path: &Path,
    extra: &[&str],
) -> Result<(Autoencoder<f32>, f32)> {
    let layout = crate::nn::ParamLayout::new(&cfg);
    for t in &st.tensors {
        let name = extra
            .iter()
            .find_map(|p| t.name.strip_prefix(p))
            .unwrap_or(&t.name);
        if !layout.tensors.iter().any(|p| p.name == name) {
            let why = if cfg.tied {
                " (the configuration ties the decoder's weights to the encoder's transposes, so it holds no decoder weight)"
            } else {
                ""
            };
            return Err(bad(
                path,
                format!(
                    "tensor `{}` is not part of the model its configuration describes{why}",
                    excerpt(&t.name)
                ),
            ));
        }
    }
    let scale = scale_of(st, &cfg, path)?;
    crate::memory::check("the model", crate::memory::f32_bytes(layout.len))?;
    let params = gather(st, &cfg, "", path)?;
    Ok((Autoencoder::with_params(cfg, params)?, scale))
}

/// Loads a model and its input scale (1 if the file has none).
///
/// # Errors
/// As [`load_model`], and [`Error::Safetensors`] for a bad scale.
pub fn load_model_scaled(path: &Path) -> Result<(Autoencoder<f32>, f32)> {
    let bytes = crate::io::safetensors::read_bytes(path)?;
    model_scaled_from_bytes(&bytes, path)
}

/// [`load_model_scaled`] from bytes in memory, naming `path` in errors.
///
/// # Errors
/// As [`load_model_scaled`].
pub fn model_scaled_from_bytes(bytes: &[u8], path: &Path) -> Result<(Autoencoder<f32>, f32)> {
    let st = SafeTensors::parse_named(bytes, path)?;
    let cfg = config_of(&st, path)?;
    model_state(&st, cfg, path, optimizer_prefixes(&st))
}

/// The optimizer's tensor prefixes a file of this kind may hold beside the
/// model's (a checkpoint used as a model).
fn optimizer_prefixes(st: &SafeTensors) -> &'static [&'static str] {
    match st.meta(KIND) {
        Some("checkpoint") => &["optimizer.m/", "optimizer.v/"],
        _ => &[],
    }
}

fn config_of(st: &SafeTensors, path: &Path) -> Result<ModelConfig> {
    // A kind this version does not write is a file it does not know.
    if let Some(kind) = st
        .meta(KIND)
        .filter(|k| !matches!(*k, "model" | "checkpoint"))
    {
        return Err(bad(
            path,
            format!(
                "`{KIND}` is `{}`: this version reads `model` and `checkpoint` files",
                crate::io::json::excerpt(kind)
            ),
        ));
    }
    let text = st.meta(CONFIG).ok_or_else(|| {
        bad(
            path,
            format!("no `{CONFIG}` in __metadata__: not a sparse-ae model (a plain state dict needs `train --init` with a matching --preset or --config)"),
        )
    })?;
    ModelConfig::from_json(text)
        .map_err(|e| bad(path, format!("its configuration is invalid: {e}")))
}

/// Copies the tensors named `prefix + <param name>` into a flat buffer in the
/// model's layout, checking presence, shape and finiteness.
fn gather(st: &SafeTensors, cfg: &ModelConfig, prefix: &str, path: &Path) -> Result<Vec<f32>> {
    let layout = crate::nn::ParamLayout::new(cfg);
    // Every parameter must come from the file: never allocate more than it holds.
    let held: usize = st.tensors.iter().map(|t| t.data.len()).sum();
    if layout.len > held {
        return Err(bad(
            path,
            format!(
                "the configuration needs {} parameters but the file holds only {held} values",
                layout.len
            ),
        ));
    }
    let mut flat = vec![0.0f32; layout.len];
    for t in &layout.tensors {
        let name = format!("{prefix}{}", t.name);
        let got = st
            .get(&name)
            .ok_or_else(|| bad(path, format!("tensor `{name}` is missing")))?;
        if got.shape != t.shape {
            return Err(bad(
                path,
                format!(
                    "tensor `{name}` has shape {:?}, the configuration needs {:?}",
                    got.shape, t.shape
                ),
            ));
        }
        if let Some((i, what)) = got.non_finite() {
            return Err(bad(
                path,
                format!("tensor `{name}` holds {what} at index {i}"),
            ));
        }
        flat[t.range()].copy_from_slice(&got.data);
    }
    Ok(flat)
}

/// Loads a model written by [`save_model`] (or a checkpoint's model).
///
/// # Errors
/// [`Error::Io`] if unreadable; [`Error::Safetensors`] for a corrupt file, a
/// missing or invalid configuration, or a tensor missing, misshapen or
/// non-finite.
pub fn load_model(path: &Path) -> Result<Autoencoder<f32>> {
    let bytes = crate::io::safetensors::read_bytes(path)?;
    model_from_bytes(&bytes, path)
}

/// [`load_model`] from bytes in memory, naming `path` in errors.
///
/// # Errors
/// As [`load_model`].
pub fn model_from_bytes(bytes: &[u8], path: &Path) -> Result<Autoencoder<f32>> {
    Ok(model_scaled_from_bytes(bytes, path)?.0)
}

/// The bytes of a model file (see [`save_model`]).
///
/// # Errors
/// [`Error::Safetensors`] if the model cannot be encoded.
pub fn model_to_bytes(model: &Autoencoder<f32>) -> Result<Vec<u8>> {
    let mut names = Vec::new();
    let tensors = param_refs(model, &model.params, "", &mut names);
    let cfg = model.config().to_json_value().to_json()?;
    safetensors::to_bytes(
        &tensors,
        &[("format", "pt"), (KIND, "model"), (CONFIG, &cfg)],
    )
}

/// Loads the parameters of a plain state dict (for example one saved by
/// PyTorch) into a model of configuration `cfg`.
///
/// # Errors
/// As [`load_model`], with shapes checked against `cfg`.
pub fn load_params_into(path: &Path, cfg: ModelConfig) -> Result<Autoencoder<f32>> {
    Ok(load_params_into_scaled(path, cfg)?.0)
}

/// [`load_params_into`], with the file's input scale (1 if it has none).
///
/// # Errors
/// As [`load_params_into`], and [`Error::Safetensors`] for a bad scale.
pub fn load_params_into_scaled(path: &Path, cfg: ModelConfig) -> Result<(Autoencoder<f32>, f32)> {
    let st = SafeTensors::read(path)?;
    model_state(&st, cfg, path, optimizer_prefixes(&st))
}

fn optimizer_json(c: &OptimizerConfig) -> Value {
    let n = Value::Number;
    match *c {
        OptimizerConfig::Adam(a) => Value::Object(vec![
            ("type".into(), "adam".into()),
            ("lr".into(), n(a.lr)),
            ("beta1".into(), n(a.beta1)),
            ("beta2".into(), n(a.beta2)),
            ("eps".into(), n(a.eps)),
        ]),
        OptimizerConfig::Sgd(s) => Value::Object(vec![
            ("type".into(), "sgd".into()),
            ("lr".into(), n(s.lr)),
            ("momentum".into(), n(s.momentum)),
        ]),
    }
}

fn optimizer_from_json(v: &Value) -> Result<OptimizerConfig> {
    let c = match v.str_at("type")? {
        "adam" => OptimizerConfig::Adam(AdamConfig {
            lr: v.f64_at("lr")?,
            beta1: v.f64_at("beta1")?,
            beta2: v.f64_at("beta2")?,
            eps: v.f64_at("eps")?,
        }),
        "sgd" => OptimizerConfig::Sgd(SgdConfig {
            lr: v.f64_at("lr")?,
            momentum: v.f64_at("momentum")?,
        }),
        t => {
            return Err(Error::config(
                "optimizer.type",
                format!("unknown optimizer `{t}`"),
            ));
        }
    };
    c.validate()?;
    Ok(c)
}

/// Saves everything needed to continue training exactly: parameters,
/// optimizer moments and step, the noise generator, the micro-batch count
/// if one was set ([`Trainer::set_micro_batches`]), the batches per step
/// if more than one ([`Trainer::set_accumulate`]), and `fit` (free-form
/// JSON the training loop wants back, such as its shuffle seed).
///
/// # Errors
/// [`Error::Value`] for a parameter or optimizer moment that is not finite
/// (the loader would refuse the file); [`Error::Io`] if the file cannot be
/// written (the old file is kept).
pub fn save_checkpoint(path: &Path, t: &Trainer<f32>, fit: &Value) -> Result<()> {
    let (mut n1, mut n2, mut n3) = (Vec::new(), Vec::new(), Vec::new());
    let mut tensors = param_refs(&t.model, &t.model.params, "", &mut n1);
    tensors.extend(param_refs(&t.model, &t.opt.m, "optimizer.m/", &mut n2));
    if !t.opt.v.is_empty() {
        tensors.extend(param_refs(&t.model, &t.opt.v, "optimizer.v/", &mut n3));
    }
    check_finite_tensors(path, &tensors)?;
    let cfg = t.model.config().to_json_value().to_json()?;
    let opt = optimizer_json(&t.opt.config).to_json()?;
    let step = t.opt.t.to_string();
    let batch = t.batch().to_string();
    let rng: Vec<String> = t
        .noise_rng
        .state()
        .iter()
        .map(|w| format!("{w:016x}"))
        .collect();
    let rng = rng.join(",");
    let dead: Vec<String> = t
        .dead_latents()
        .counters()
        .iter()
        .map(u64::to_string)
        .collect();
    let dead = dead.join(",");
    let fit = fit.to_json()?;
    let micro = t.micro_batches_set().map(|m| m.to_string());
    let accumulate = (t.accumulate() > 1).then(|| t.accumulate().to_string());
    let mut meta = vec![
        ("format", "pt"),
        (KIND, "checkpoint"),
        (CONFIG, &cfg),
        ("sparse_ae.optimizer", &opt),
        ("sparse_ae.step", &step),
        ("sparse_ae.batch_size", &batch),
        ("sparse_ae.noise_rng", &rng),
        ("sparse_ae.dead_counters", &dead),
        ("sparse_ae.fit", &fit),
    ];
    if let Some(m) = &micro {
        meta.push(("sparse_ae.micro_batches", m));
    }
    if let Some(k) = &accumulate {
        meta.push(("sparse_ae.accumulate", k));
    }
    let so_far = match t.epoch_so_far() {
        Some(s) => Some(s.to_json_value().to_json()?),
        None => None,
    };
    if let Some(s) = &so_far {
        meta.push((EPOCH_SO_FAR, s));
    }
    safetensors::write(path, &tensors, &meta)
}

/// Loads a checkpoint written by [`save_checkpoint`]: the trainer, ready to
/// continue, and the `fit` value saved with it.
///
/// # Errors
/// [`Error::Safetensors`] for a corrupt file or any missing, misshapen or
/// non-finite tensor or metadata entry.
pub fn load_checkpoint(path: &Path) -> Result<(Trainer<f32>, Value)> {
    let bytes = crate::io::safetensors::read_bytes(path)?;
    checkpoint_from_bytes(&bytes, path)
}

/// [`load_checkpoint`] from bytes in memory, naming `path` in errors.
///
/// # Errors
/// As [`load_checkpoint`].
pub fn checkpoint_from_bytes(bytes: &[u8], path: &Path) -> Result<(Trainer<f32>, Value)> {
    let st = SafeTensors::parse_named(bytes, path)?;
    if st.meta(KIND) != Some("checkpoint") {
        return Err(bad(
            path,
            "not a checkpoint (sparse_ae.kind is not `checkpoint`); use it with --init instead",
        ));
    }
    let cfg = config_of(&st, path)?;
    let meta = |k: &str| {
        st.meta(k)
            .ok_or_else(|| bad(path, format!("metadata `{k}` is missing")))
    };
    let wrap = |e: Error| bad(path, e.to_string());
    let opt_cfg =
        optimizer_from_json(&json::parse(meta("sparse_ae.optimizer")?.as_bytes()).map_err(wrap)?)
            .map_err(wrap)?;
    let step: u64 = meta("sparse_ae.step")?
        .parse()
        .ok()
        .filter(|&s| s <= MAX_STEPS)
        .ok_or_else(|| {
            bad(
                path,
                format!("metadata `sparse_ae.step` is not a step count in 0..={MAX_STEPS}"),
            )
        })?;
    let batch: usize = meta("sparse_ae.batch_size")?
        .parse()
        .ok()
        .filter(|&b| b >= 1)
        .ok_or_else(|| {
            bad(
                path,
                "metadata `sparse_ae.batch_size` is not a batch size ≥ 1",
            )
        })?;
    let words: Vec<u64> = meta("sparse_ae.noise_rng")?
        .split(',')
        .map(|w| u64::from_str_radix(w, 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(path, "metadata `sparse_ae.noise_rng` is not four hex words"))?;
    let rng: [u64; 4] = words
        .try_into()
        .map_err(|_| bad(path, "metadata `sparse_ae.noise_rng` is not four hex words"))?;
    let fit = json::parse(meta("sparse_ae.fit")?.as_bytes()).map_err(wrap)?;
    if fit.get("input_scale").is_some() {
        let s = fit.f64_at("input_scale").map_err(wrap)?;
        let s = input_scale_from_f64(s, "sparse_ae.fit.input_scale")
            .map_err(|e| bad(path, reason_of(e)))?;
        check_input_scale(s, &cfg, "sparse_ae.fit.input_scale")
            .map_err(|e| bad(path, reason_of(e)))?;
    }
    let (model, _) = model_state(&st, cfg.clone(), path, &["optimizer.m/", "optimizer.v/"])?;
    let adam = matches!(opt_cfg, OptimizerConfig::Adam(_));
    if !adam
        && let Some(t) = st
            .tensors
            .iter()
            .find(|t| t.name.starts_with("optimizer.v/"))
    {
        return Err(bad(
            path,
            format!(
                "tensor `{}` is an Adam second moment but the optimizer is SGD",
                excerpt(&t.name)
            ),
        ));
    }
    let mut t = Trainer::new(model, opt_cfg, batch, 0).map_err(|e| match e {
        e @ Error::Memory { .. } => e,
        e => wrap(e),
    })?;
    t.opt = Optimizer::new(opt_cfg, t.model.params.len());
    t.opt.m = gather(&st, &cfg, "optimizer.m/", path)?;
    if adam {
        t.opt.v = gather(&st, &cfg, "optimizer.v/", path)?;
        let layout = t.model.layout();
        if let Some(i) = t.opt.v.iter().position(|&v| v < 0.0) {
            let name = layout
                .tensors
                .iter()
                .find(|p| p.range().contains(&i))
                .map_or("?", |p| p.name.as_str());
            return Err(bad(
                path,
                format!(
                    "tensor `optimizer.v/{name}` holds a negative second moment ({})",
                    t.opt.v[i]
                ),
            ));
        }
    }
    t.opt.t = step;
    t.noise_rng = Rng::from_state(rng);
    if let Some(text) = st.meta("sparse_ae.micro_batches") {
        let m = text.parse().map_err(|_| {
            bad(
                path,
                "metadata `sparse_ae.micro_batches` is not a micro-batch count",
            )
        })?;
        t.set_micro_batches(Some(m)).map_err(wrap)?;
    }
    if let Some(text) = st.meta("sparse_ae.accumulate") {
        let k = text.parse().map_err(|_| {
            bad(
                path,
                "metadata `sparse_ae.accumulate` is not a count of batches per step",
            )
        })?;
        t.set_accumulate(k).map_err(wrap)?;
    }
    if let Some(text) = st.meta("sparse_ae.dead_counters") {
        let bad_counters =
            |why: &str| bad(path, format!("metadata `sparse_ae.dead_counters` {why}"));
        let want = t.dead_latents().counters().len();
        let mut counters = Vec::with_capacity(want);
        for item in text.split(',') {
            if counters.len() == want {
                return Err(bad_counters(&format!(
                    "holds more than the {want} code units"
                )));
            }
            let n: u64 = item
                .parse()
                .map_err(|_| bad_counters("is not a list of sample counts"))?;
            counters.push(n);
        }
        t.dead_latents_mut()
            .set_counters(&counters)
            .map_err(|e| bad_counters(&e.to_string()))?;
    }
    if let Some(text) = st.meta(EPOCH_SO_FAR) {
        let bad_so_far = |why: &str| bad(path, format!("metadata `{EPOCH_SO_FAR}` {why}"));
        let v = json::parse(text.as_bytes()).map_err(|e| bad_so_far(&e.to_string()))?;
        let s = EpochSoFar::from_json_value(&v, &cfg).map_err(|e| bad_so_far(&e))?;
        if s.step != step {
            return Err(bad_so_far(&format!(
                "is of step {}, but the checkpoint is at step {step}",
                s.step
            )));
        }
        t.set_epoch_so_far(Some(s));
    }
    Ok((t, fit))
}
