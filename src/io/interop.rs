//! The sparse-autoencoder layouts of the interpretability libraries, in
//! one directory that each of them loads:
//!
//! - SAELens (`SAE.load_from_disk`): `sae_weights.safetensors` holding
//!   `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`,
//!   `b_dec [d_in]`, and `cfg.json` with `architecture` ("standard": a
//!   ReLU code; "topk" with `k`), `d_in`, `d_sae`, `apply_b_dec_to_input`,
//!   `normalize_activations`, and, for older SAELens, `activation_fn_str` /
//!   `activation_fn_kwargs`. Its forward pass is
//!   `f = act((x − b_dec·[apply_b_dec_to_input])·W_enc + b_enc)`,
//!   `x̂ = f·W_dec + b_dec`; TopK keeps the k largest pre-activations, then
//!   ReLU.
//! - sparsify (`SparseCoder.load_from_disk`, TopK only): `sae.safetensors`
//!   holding exactly `encoder.weight [d_sae, d_in]`, `encoder.bias`,
//!   `W_dec [d_sae, d_in]`, `b_dec` (it loads strictly), and `cfg.json`
//!   with `d_in`, `activation` "topk", `k`, `num_latents`,
//!   `normalize_decoder`. It always encodes `x − b_dec`, then ReLU, then
//!   the top k.
//!
//! Both libraries drop the `cfg.json` keys they do not know, so one
//! `cfg.json` serves both. `W_enc`/`W_dec` are the transposes of this
//! crate's PyTorch-style `encoder.0.weight [d_sae, d_in]` and
//! `decoder.0.weight [d_in, d_sae]` (sparsify's `encoder.weight` is ours
//! as it is).
//!
//! Only models the libraries compute exactly are exported: one untied dense
//! hidden layer with a ReLU code, plain or per-sample TopK, and a linear
//! output. A sigmoid (or other non-linear) output, such as one trained with
//! the BCE loss, another code activation (SAELens' standard SAE is ReLU
//! whatever `activation_fn_str` says) and BatchTopK (the k·B largest of a
//! batch, where the libraries keep k per sample) are refused rather than
//! written as a folder they would run as another model. sparsify's file is
//! written for TopK models only; a model without the pre-encoder bias has
//! `b_dec·W_enc` folded into sparsify's `encoder.bias` (the same codes, up
//! to rounding).
//!
//! The decoder bias is `b_dec` in both directions. A model with the
//! pre-encoder bias ([`crate::nn::SaeConfig::pre_encoder_bias`]) encodes
//! `x − b_dec`, which SAELens calls `apply_b_dec_to_input`; export writes
//! that key, and import without a saved sparse-ae configuration sets the
//! option from it (absent: true, SAELens' default). A unit-norm decoder is
//! written as sparsify's `normalize_decoder`, and read back from it or
//! SAELens' `normalize_sae_decoder`.
//!
//! Import reads SAELens' file when it is there, else sparsify's (by its
//! tensor names; an `sae.safetensors` with SAELens' names, as earlier
//! versions of this crate exported, is read too). It reads both SAELens
//! layouts of the code: the older names it in `activation_fn_str`
//! (`"topk"` with `activation_fn_kwargs.k`), SAELens 6 only in
//! `architecture` (`"standard"`: ReLU; `"topk"` with a top-level `k`, and
//! `rescale_acts_by_decoder_norm`, which import folds into the weights as
//! SAELens does). A `k` given both ways must agree. A sparsify folder's
//! `cfg.json` takes sparsify's defaults (`k` 32, `num_latents` 0 meaning
//! `expansion_factor` (32) × `d_in`, `normalize_decoder` true); its
//! `groupmax` code, a transcoder and a skip connection are refused.
//!
//! A model trained on normalised inputs s·x ([`crate::train::normalize`])
//! is exported as SAELens saves one: the scale folded into the weights,
//! `W_enc·s`, `W_dec/s`, `b_dec/s` (the codes of raw x are unchanged and the
//! reconstruction comes out in input space), `normalize_activations:
//! "none"`, and the scale kept as the extra key `sparse_ae_input_scale`,
//! which [`import_sae_scaled`] uses to unfold it again.

use super::json::{self, Value};
use super::safetensors::{self, SafeTensors};
use crate::error::{Error, Result};
use crate::kernels::Activation;
use crate::nn::config_json::activation_from_name;
use crate::nn::{Autoencoder, LayerSpec, Loss, ModelBuilder};
use std::path::Path;

fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Writes `model` into `dir` in the SAE-library layout.
///
/// # Errors
/// [`Error::Config`] if the model is not a one-hidden-layer dense
/// autoencoder with a linear output layer; [`Error::Io`] if a file cannot
/// be written (atomically); [`Error::Value`] if the system refuses the
/// memory for a tensor file's bytes.
pub fn export_sae(model: &Autoencoder<f32>, dir: &Path) -> Result<()> {
    export_sae_scaled(model, 1.0, dir)
}

/// [`export_sae`] for a model whose inputs are multiplied by `input_scale`,
/// folded into the weights (see the module doc).
///
/// # Errors
/// As [`export_sae`]; [`Error::Config`] for a bad scale.
pub fn export_sae_scaled(model: &Autoencoder<f32>, input_scale: f32, dir: &Path) -> Result<()> {
    crate::train::samples::check_scale(input_scale)?;
    let cfg = model.config();
    let dense = cfg
        .layers
        .iter()
        .all(|l| matches!(l, LayerSpec::Dense { .. }));
    if !dense || cfg.layers.len() != 2 || cfg.tied {
        return Err(Error::config(
            "export",
            "the SAE layout holds one untied dense hidden layer and a dense output layer",
        ));
    }
    let out_act = cfg.layers[1].act();
    if out_act != Activation::Linear {
        return Err(Error::config(
            "export",
            format!(
                "the SAE layout decodes linearly (x̂ = f·W_dec + b_dec), but this model has a {} output layer and the {} loss, so SAELens and sparsify would reconstruct something else; train it with a linear output and the mse loss (`--linear-output`)",
                out_act.name(),
                cfg.loss.name()
            ),
        ));
    }
    let code_act = cfg.layers[0].act();
    if code_act != Activation::Relu {
        return Err(Error::config(
            "export",
            format!(
                "the SAE libraries run a ReLU code (SAELens' standard SAE) or the top k of one, but this model's code is {}: they would compute other codes from the folder; train it with a relu code",
                code_act.name()
            ),
        ));
    }
    if cfg.topk.is_some_and(|t| t.batch) {
        return Err(Error::config(
            "export",
            "this model's code is BatchTopK (the k·B largest values of a whole batch), and the libraries' topk keeps k per sample: they would compute other codes from the folder, and no layout of theirs holds a batch selection",
        ));
    }
    let s = input_scale;
    let (d_in, d_sae) = (cfg.input, cfg.width(0));
    let lay = model.layout();
    let p = &model.params;
    let mut w_enc = transpose(&p[lay.weight(0).range()], d_sae, d_in);
    let mut w_dec = transpose(&p[lay.weight(1).range()], d_in, d_sae);
    let mut b_dec = p[lay.bias(1).range()].to_vec();
    let b_enc = &p[lay.bias(0).range()];
    if s != 1.0 {
        w_enc.iter_mut().for_each(|w| *w *= s);
        w_dec.iter_mut().chain(&mut b_dec).for_each(|w| *w /= s);
    }
    // The folder's files are replaced as one set: a reader (SAELens,
    // sparsify, import) finds the whole old export or the whole new one.
    let mut set = super::atomic::DirWrite::begin(dir, EXPORT_TAG, &EXPORT_FILES)?;
    let saelens_print = write_tensors(
        &mut set,
        SAELENS_WEIGHTS,
        &[
            ("W_enc", &[d_in, d_sae], &w_enc),
            ("b_enc", &[d_sae], b_enc),
            ("W_dec", &[d_sae, d_in], &w_dec),
            ("b_dec", &[d_in], &b_dec),
        ],
    )?;
    let (arch, act_name, kwargs) = match cfg.topk {
        Some(t) => (
            "topk",
            "topk",
            Value::Object(vec![("k".into(), Value::from(t.k))]),
        ),
        None => ("standard", "relu", Value::Object(vec![])),
    };
    let mut fields = vec![
        ("architecture".to_string(), Value::from(arch)),
        ("d_in".to_string(), Value::from(d_in)),
        ("d_sae".to_string(), Value::from(d_sae)),
        ("activation_fn_str".to_string(), Value::from(act_name)),
        ("activation_fn_kwargs".to_string(), kwargs),
        (
            "apply_b_dec_to_input".to_string(),
            Value::Bool(cfg.sae.pre_encoder_bias),
        ),
        (
            "normalize_decoder".to_string(),
            Value::Bool(cfg.sae.unit_norm_decoder),
        ),
        ("normalize_activations".to_string(), Value::from("none")),
        ("dtype".to_string(), Value::from("float32")),
        (
            "sparse_ae_code_activation".to_string(),
            Value::from(code_act.name()),
        ),
        ("sparse_ae_config".to_string(), cfg.to_json_value()),
    ];
    if s != 1.0 {
        fields.push(("sparse_ae_input_scale".into(), Value::from(f64::from(s))));
    }
    // The tensors this cfg.json goes with (a folder whose files were mixed
    // by hand, or written by an earlier version one after the other, is
    // refused on import).
    fields.push((TENSORS_KEY.into(), Value::from(saelens_print)));
    // sparsify runs TopK codes only: for another model its file is not
    // written, and an earlier export's is removed with the old set (it
    // would be read with this cfg.json's defaults, as another model).
    if let Some(t) = cfg.topk {
        // sparsify always encodes x − b_dec: without the pre-encoder
        // bias, b_dec·W_enc goes into its encoder bias.
        let enc_b: Vec<f32> = if cfg.sae.pre_encoder_bias {
            b_enc.to_vec()
        } else {
            (0..d_sae)
                .map(|j| {
                    let dot: f64 = (0..d_in)
                        .map(|i| f64::from(b_dec[i]) * f64::from(w_enc[i * d_sae + j]))
                        .sum();
                    (f64::from(b_enc[j]) + dot) as f32
                })
                .collect()
        };
        let sparsify_print = write_tensors(
            &mut set,
            SPARSIFY_WEIGHTS,
            &[
                (
                    "encoder.weight",
                    &[d_sae, d_in],
                    &transpose(&w_enc, d_in, d_sae),
                ),
                ("encoder.bias", &[d_sae], &enc_b),
                ("W_dec", &[d_sae, d_in], &w_dec),
                ("b_dec", &[d_in], &b_dec),
            ],
        )?;
        let sparsify_fields: [(&str, Value); 7] = [
            ("k", Value::from(t.k)),
            ("rescale_acts_by_decoder_norm", Value::Bool(false)),
            ("activation", Value::from("topk")),
            ("num_latents", Value::from(d_sae)),
            ("multi_topk", Value::Bool(false)),
            ("skip_connection", Value::Bool(false)),
            ("transcode", Value::Bool(false)),
        ];
        fields.extend(sparsify_fields.map(|(k, v)| (k.to_string(), v)));
        fields.push((SPARSIFY_TENSORS_KEY.into(), Value::from(sparsify_print)));
    }
    let text = Value::Object(fields).to_json_pretty()?;
    set.write_bytes("cfg.json", text.as_bytes())?;
    set.commit()
}

/// Writes the tensor file `name` of the export `set` and returns its
/// [`fingerprint`]: the file is made in memory once, and those bytes are
/// written and fingerprinted.
fn write_tensors(
    set: &mut super::atomic::DirWrite,
    name: &str,
    tensors: &[safetensors::TensorRef],
) -> Result<String> {
    super::model_file::check_finite_tensors(std::path::Path::new(name), tensors)?;
    let bytes = safetensors::to_bytes(tensors, &[("format", "pt")])?;
    set.write_bytes(name, &bytes)?;
    Ok(fingerprint(&bytes))
}

/// The tag of an export's [`DirWrite`](super::atomic::DirWrite) set (its
/// staging directories are `DIR/.sparse-ae-export.tmp` and `.ready`).
pub const EXPORT_TAG: &str = "export";

/// The files an export writes into its folder, or removes when it has no
/// such file (sparsify's, for a model without a TopK code).
pub const EXPORT_FILES: [&str; 3] = [SAELENS_WEIGHTS, SPARSIFY_WEIGHTS, "cfg.json"];

/// SAELens' tensor file in an SAE folder.
pub const SAELENS_WEIGHTS: &str = "sae_weights.safetensors";

/// sparsify's tensor file in an SAE folder (earlier versions of this crate
/// wrote SAELens' tensor names under this name).
pub const SPARSIFY_WEIGHTS: &str = "sae.safetensors";

/// The `cfg.json` key of the fingerprint of the `sae.safetensors` (sparsify)
/// it was written with.
const SPARSIFY_TENSORS_KEY: &str = "sparse_ae_sparsify_tensors_fnv1a64";

/// The `cfg.json` key of the fingerprint of the SAELens tensor file it was
/// written with (of `sae.safetensors` in earlier exports).
const TENSORS_KEY: &str = "sparse_ae_tensors_fnv1a64";

/// FNV-1a (64-bit) of `bytes`, as 16 hex digits: enough to tell a tensor
/// file from another export's, not a guard against tampering.
fn fingerprint(bytes: &[u8]) -> String {
    format!("{:016x}", super::fnv1a(super::FNV1A_START, bytes))
}

/// Reads a directory in the SAE-library layout as a model of raw inputs:
/// the configuration saved by [`export_sae`] when present, else a
/// one-hidden-layer model built from `cfg.json` (ReLU or TopK code in
/// either SAELens layout, linear output, MSE, the pre-encoder bias and
/// unit-norm decoder as the file says). An input scale folded in by
/// [`export_sae_scaled`] stays folded.
///
/// # Errors
/// [`Error::Json`] / [`Error::Config`] for a bad `cfg.json` (including a
/// `normalize_activations` other than `"none"`: a run-time normalisation
/// this crate does not apply, an `architecture` other than `"standard"`
/// or `"topk"`, such as a JumpReLU or gated SAE, or a TopK `k` missing,
/// out of 1..=`d_sae` or given twice with two values), [`Error::Safetensors`]
/// for missing or misshapen tensors, or one beside `W_enc`, `b_enc`,
/// `W_dec` and `b_dec` (never dropped).
pub fn import_sae(dir: &Path) -> Result<Autoencoder<f32>> {
    Ok(import_folded(dir)?.0)
}

/// [`import_sae`] with the input scale of an [`export_sae_scaled`]
/// directory unfolded again: the model of normalised inputs and its scale
/// (1, and the weights as stored, without `sparse_ae_input_scale`).
///
/// # Errors
/// As [`import_sae`]; [`Error::Config`] for a bad scale.
pub fn import_sae_scaled(dir: &Path) -> Result<(Autoencoder<f32>, f32)> {
    let (mut model, s) = import_folded(dir)?;
    if s != 1.0 {
        let lay = model.layout().clone();
        let p = &mut model.params;
        p[lay.weight(0).range()].iter_mut().for_each(|w| *w /= s);
        p[lay.weight(1).range()].iter_mut().for_each(|w| *w *= s);
        p[lay.bias(1).range()].iter_mut().for_each(|w| *w *= s);
    }
    Ok((model, s))
}

/// Which library's tensor names a folder's weights file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Names {
    /// `W_enc [d_in, d_sae]`, `b_enc`, `W_dec`, `b_dec`.
    SaeLens,
    /// `encoder.weight [d_sae, d_in]`, `encoder.bias`, `W_dec`, `b_dec`.
    Sparsify,
}

impl Names {
    /// The tensors of this layout, encoder weight and bias first.
    fn tensors(self) -> [&'static str; 4] {
        match self {
            Names::SaeLens => SAE_TENSORS,
            Names::Sparsify => SPARSIFY_TENSORS,
        }
    }

    /// The `cfg.json` key of the fingerprint of the file with these names.
    fn fingerprint_key(self) -> &'static str {
        match self {
            Names::SaeLens => TENSORS_KEY,
            Names::Sparsify => SPARSIFY_TENSORS_KEY,
        }
    }
}

/// The weights file of the SAE folder `dir` and its bytes: SAELens' when
/// it is there, else sparsify's.
fn weights_of(dir: &Path) -> Result<(std::path::PathBuf, Vec<u8>)> {
    let saelens = dir.join(SAELENS_WEIGHTS);
    let sparsify = dir.join(SPARSIFY_WEIGHTS);
    let path = if saelens.exists() || !sparsify.exists() {
        saelens
    } else {
        sparsify
    };
    match safetensors::read_bytes(&path) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "not an SAE folder: neither {SAELENS_WEIGHTS} (SAELens) nor {SPARSIFY_WEIGHTS} (sparsify) is there"
                    ),
                ),
            ))
        }
        r => r.map(|bytes| (path, bytes)),
    }
}

fn import_folded(dir: &Path) -> Result<(Autoencoder<f32>, f32)> {
    let cfg_path = dir.join("cfg.json");
    let v = json::read(&cfg_path)?;
    // Errors of cfg.json name the file and its own keys.
    let in_cfg = |e: Error| match e {
        Error::Config { field, reason } => Error::Config {
            field: format!("{}: {field}", cfg_path.display()),
            reason,
        },
        e => e,
    };
    // Every tensor is checked before the model is allocated: its size is
    // then bounded by the file's.
    let (st_path, bytes) = weights_of(dir)?;
    let st = SafeTensors::parse_named(&bytes, &st_path)?;
    let names = if st.get("encoder.weight").is_some() {
        Names::Sparsify
    } else {
        Names::SaeLens
    };
    let (cfg, scale, rescale) = config_of_dir(&v, names).map_err(in_cfg)?;
    let (d_in, d_sae) = (cfg.input, cfg.width(0));
    let key = names.fingerprint_key();
    if let Some(want) = v.get(key) {
        let got = fingerprint(&bytes);
        if want.as_str() != Some(got.as_str()) {
            return Err(Error::Config {
                field: format!("{}: {key}", cfg_path.display()),
                reason: format!(
                    "{} is not the tensor file this cfg.json was exported with (fingerprint {got}, cfg.json names {}): an export was cut short or the files were mixed; export the model again",
                    st_path.display(),
                    want.as_str().unwrap_or("a non-string value")
                ),
            });
        }
    }
    // A tensor import would not read (a JumpReLU `threshold`, a gated
    // SAE's `r_mag`, sparsify's `W_skip`) is refused, never dropped.
    let known = names.tensors();
    if let Some(t) = st
        .tensors
        .iter()
        .find(|t| !known.contains(&t.name.as_str()))
    {
        return Err(Error::Safetensors {
            path: st_path.clone(),
            reason: format!(
                "tensor `{}` is not part of the SAE cfg.json describes (only {}), so importing would drop it",
                json::excerpt(&t.name),
                known.join(", ")
            ),
        });
    }
    let get = |name: &str, shape: &[usize]| -> Result<&[f32]> {
        let t = st.get(name).ok_or_else(|| Error::Safetensors {
            path: st_path.clone(),
            reason: format!("tensor `{name}` is missing"),
        })?;
        if t.shape != shape {
            return Err(Error::Safetensors {
                path: st_path.clone(),
                reason: format!(
                    "tensor `{name}` has shape {:?}, cfg.json needs {shape:?}",
                    t.shape
                ),
            });
        }
        if let Some((i, what)) = t.non_finite() {
            return Err(Error::Safetensors {
                path: st_path.clone(),
                reason: format!("tensor `{name}` holds {what} at index {i}"),
            });
        }
        Ok(&t.data)
    };
    let (mut w_enc, mut b_enc) = match names {
        Names::SaeLens => (
            get("W_enc", &[d_in, d_sae])?.to_vec(),
            get("b_enc", &[d_sae])?.to_vec(),
        ),
        Names::Sparsify => (
            transpose(get("encoder.weight", &[d_sae, d_in])?, d_sae, d_in),
            get("encoder.bias", &[d_sae])?.to_vec(),
        ),
    };
    let mut w_dec = get("W_dec", &[d_sae, d_in])?.to_vec();
    let b_dec = get("b_dec", &[d_in])?;
    if rescale {
        fold_decoder_norms(&mut w_enc, &mut b_enc, &mut w_dec, d_in);
        let folded = [("W_enc", &w_enc), ("b_enc", &b_enc), ("W_dec", &w_dec)];
        if let Some((name, _)) = folded
            .iter()
            .find(|(_, t)| t.iter().any(|x| !x.is_finite()))
        {
            return Err(Error::Safetensors {
                path: st_path.clone(),
                reason: format!(
                    "tensor `{name}` overflows when the decoder norms are folded into the weights (`{RESCALE_KEY}` in cfg.json)"
                ),
            });
        }
    }
    let layout = crate::nn::ParamLayout::new(&cfg);
    let mut params = vec![0.0f32; layout.len];
    params[layout.weight(0).range()].copy_from_slice(&transpose(&w_enc, d_in, d_sae));
    params[layout.bias(0).range()].copy_from_slice(&b_enc);
    params[layout.weight(1).range()].copy_from_slice(&transpose(&w_dec, d_sae, d_in));
    params[layout.bias(1).range()].copy_from_slice(b_dec);
    let model = Autoencoder::with_params(cfg, params).map_err(in_cfg)?;
    Ok((model, scale))
}

/// SAELens' TopK SAE with `rescale_acts_by_decoder_norm` picks its top k
/// of `z_j·n_j` and decodes `f_j/n_j`, `n_j` being the norm of row j of
/// `W_dec`: the same function and codes as `W_enc·n`, `b_enc·n`, `W_dec/n`
/// without the option, which is how SAELens folds it (norms clamped to
/// 1e-8 as there). `W_enc` is `[d_in, d_sae]`, `W_dec` `[d_sae, d_in]`.
fn fold_decoder_norms(w_enc: &mut [f32], b_enc: &mut [f32], w_dec: &mut [f32], d_in: usize) {
    let d_sae = b_enc.len();
    for (j, row) in w_dec.chunks_exact_mut(d_in).enumerate() {
        let sq: f64 = row.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
        let n = (sq.sqrt() as f32).max(1e-8);
        row.iter_mut().for_each(|w| *w /= n);
        b_enc[j] *= n;
        w_enc[j..].iter_mut().step_by(d_sae).for_each(|w| *w *= n);
    }
}

/// The `cfg.json` key of SAELens' decoder-norm rescaling of a TopK code.
const RESCALE_KEY: &str = "rescale_acts_by_decoder_norm";

/// The values of `cfg.json`'s `architecture` that import reads: SAELens'
/// plain SAE and its TopK SAE (both what [`export_sae`] writes).
const SUPPORTED_ARCHITECTURES: [&str; 2] = ["standard", "topk"];

/// The tensors of SAELens' file that import reads.
const SAE_TENSORS: [&str; 4] = ["W_enc", "b_enc", "W_dec", "b_dec"];

/// The tensors of sparsify's file that import reads (sparsify loads
/// strictly: these and no other, `W_skip` only with a skip connection).
const SPARSIFY_TENSORS: [&str; 4] = ["encoder.weight", "encoder.bias", "W_dec", "b_dec"];

/// The error of `architecture: "topk"` without a TopK code and its k.
fn topk_without_k() -> Error {
    Error::config(
        "architecture",
        "\"topk\" needs a TopK code with its k (a top-level `k`, as SAELens 6 writes, or `activation_fn_str`: \"topk\" with `activation_fn_kwargs.k`), but the configuration has none",
    )
}

/// The k of a TopK code and the key it was read from: SAELens 6 writes a
/// top-level `k`, older SAELens `activation_fn_kwargs.k`; when both are
/// there they must agree. Its range is the builder's check, by the caller.
fn topk_k(v: &Value, arch: Option<&str>) -> Result<(usize, &'static str)> {
    const KWARGS_K: &str = "activation_fn_kwargs.k";
    let top = v.get("k").map(|_| v.usize_at("k")).transpose()?;
    let kwargs = v
        .lookup(KWARGS_K)?
        .map(|_| v.usize_at(KWARGS_K))
        .transpose()?;
    match (top, kwargs) {
        (Some(k), Some(kw)) if k != kw => Err(Error::config(
            "k",
            format!(
                "{k} disagrees with `{KWARGS_K}` = {kw}: the TopK code has one k; keep one of them or make them equal"
            ),
        )),
        (Some(k), _) => Ok((k, "k")),
        (None, Some(k)) => Ok((k, KWARGS_K)),
        (None, None) if arch == Some("topk") => Err(topk_without_k()),
        (None, None) => Err(Error::config(
            KWARGS_K,
            "required field is missing (a TopK code needs its k here or as a top-level `k`)",
        )),
    }
}

/// The model the SAE libraries read in `cfg.json` `v` (its `architecture`
/// `arch`): the code from `activation_fn_str` or the architecture, the
/// pre-encoder bias from `apply_b_dec_to_input`, the unit-norm decoder
/// from `normalize_decoder`; errors name those keys.
fn library_view(
    v: &Value,
    arch: Option<&str>,
    d_in: usize,
    d_sae: usize,
) -> Result<crate::nn::ModelConfig> {
    // SAELens 6 writes no `activation_fn_str`: its architecture
    // names the code (ReLU for "standard").
    let act_name = match (v.get("activation_fn_str"), arch) {
        (None, Some("topk")) => "topk",
        (None, Some("standard")) => "relu",
        _ => v.str_at("activation_fn_str")?,
    };
    let b = ModelBuilder::new(d_in);
    // With the key k came from, which the builder's range check names.
    let (b, k_field) = if act_name == "topk" {
        let (k, field) = topk_k(v, arch)?;
        (b.code(d_sae, Activation::Relu).topk(k, false), field)
    } else {
        let act = activation_from_name(act_name, None, "activation_fn_str")?;
        (b.code(d_sae, act), "activation_fn_kwargs.k")
    };
    let pre_encoder_bias = flag(v, PRE_ENCODER_BIAS_KEYS, Names::SaeLens)?;
    let unit_norm_decoder = flag(v, UNIT_NORM_DECODER_KEYS, Names::SaeLens)?;
    b.decoder(d_in, Activation::Linear)
        .loss(Loss::Mse)
        .pre_encoder_bias(pre_encoder_bias.is_none_or(|(_, on)| on))
        .unit_norm_decoder(unit_norm_decoder.is_some_and(|(_, on)| on))
        .build()
        .map_err(|e| with_cfg_keys(e, k_field, "d_sae"))
}

/// The `cfg.json` keys of the pre-encoder bias (SAELens'
/// `apply_b_dec_to_input`).
const PRE_ENCODER_BIAS_KEYS: &[&str] = &["apply_b_dec_to_input"];

/// The `cfg.json` keys of the unit-norm decoder: sparsify's and SAELens'
/// `normalize_decoder`, SAELens' older `normalize_sae_decoder`.
const UNIT_NORM_DECODER_KEYS: &[&str] = &["normalize_decoder", "normalize_sae_decoder"];

/// The boolean `cfg.json` `v` holds under the first of `keys` (a key and
/// its other names) that it sets, with that key; `None` when it sets none
/// of them, the library's default then applying. A key holding null is
/// read as `names`' library reads it: sparsify fills it with its default
/// (as a missing key), for SAELens it is set and no boolean (an error).
///
/// # Errors
/// [`Error::Config`] naming the key when its value is not a boolean.
fn flag<'k>(v: &Value, keys: &[&'k str], names: Names) -> Result<Option<(&'k str, bool)>> {
    let set = |k: &&str| match v.get(k) {
        None => false,
        Some(Value::Null) => names == Names::SaeLens,
        Some(_) => true,
    };
    keys.iter()
        .copied()
        .find(set)
        .map(|k| Ok((k, v.bool_at(k)?)))
        .transpose()
}

/// The builder's error `e` for a model read from `cfg.json`, with its
/// field named as the key it came from: `topk.k` as `k_key`, the code
/// layer's `layers[0]…` as `latents_key` (SAELens' `d_sae`, sparsify's
/// `num_latents`), `input` as `d_in`.
fn with_cfg_keys(e: Error, k_key: &str, latents_key: &str) -> Error {
    match e {
        Error::Config { field, reason } => {
            let field = if field == "topk.k" {
                k_key.to_string()
            } else if field.starts_with("layers[0]") {
                latents_key.to_string()
            } else if field == "input" {
                "d_in".to_string()
            } else {
                field
            };
            Error::Config { field, reason }
        }
        e => e,
    }
}

/// The error of a `sparse_ae_config` that disagrees with `key` of the
/// `cfg.json` beside it, which `reader` ("the SAE libraries read",
/// "sparsify reads") reads the folder by: `theirs` is that key's model,
/// `ours` sparse_ae_config's.
fn disagreement(reader: &str, key: &str, theirs: &str, ours: &str) -> Error {
    Error::config(
        "sparse_ae_config",
        format!(
            "{ours} disagrees with `{key}` = {theirs}: {reader} the folder by `{key}` and sparse-ae by sparse_ae_config, so they would run different models; make them agree"
        ),
    )
}

/// Refuses a `sparse_ae_config` that describes another model than the
/// keys the SAE libraries read beside it (another k, code, pre-encoder
/// bias or decoder norm): SAELens or sparsify would run one model and
/// sparse-ae another from the same folder.
fn check_agrees(
    v: &Value,
    arch: Option<&str>,
    d_in: usize,
    d_sae: usize,
    cfg: &crate::nn::ModelConfig,
) -> Result<()> {
    let disagree = |key: &str, theirs: String, ours: String| {
        Err(disagreement("the SAE libraries read", key, &theirs, &ours))
    };
    if v.get("activation_fn_str").is_some() || arch.is_some() {
        let lib = library_view(v, arch, d_in, d_sae)?;
        let code_key = match v.get("activation_fn_str") {
            Some(_) => "activation_fn_str",
            None => "architecture",
        };
        match (cfg.topk, lib.topk) {
            (Some(ours), Some(theirs)) if ours.k != theirs.k => {
                let (_, key) = topk_k(v, arch)?;
                return disagree(
                    key,
                    theirs.k.to_string(),
                    format!("its TopK code's k = {}", ours.k),
                );
            }
            (Some(ours), None) => {
                return disagree(
                    code_key,
                    format!("{:?}", lib.layers[0].act().name()),
                    format!("its TopK code (k = {})", ours.k),
                );
            }
            (None, Some(theirs)) => {
                return disagree(
                    code_key,
                    format!("a TopK code (k = {})", theirs.k),
                    format!("its {} code", cfg.layers[0].act().name()),
                );
            }
            (None, None) if cfg.layers[0].act() != lib.layers[0].act() => {
                return disagree(
                    code_key,
                    format!("{:?}", lib.layers[0].act().name()),
                    format!("its {} code", cfg.layers[0].act().name()),
                );
            }
            _ => {}
        }
    }
    let flags = [
        (
            PRE_ENCODER_BIAS_KEYS,
            cfg.sae.pre_encoder_bias,
            "its pre-encoder bias",
        ),
        (
            UNIT_NORM_DECODER_KEYS,
            cfg.sae.unit_norm_decoder,
            "its unit-norm decoder",
        ),
    ];
    for (keys, ours, what) in flags {
        if let Some((k, theirs)) = flag(v, keys, Names::SaeLens)?
            && theirs != ours
        {
            return disagree(k, theirs.to_string(), format!("{what} ({ours})"));
        }
    }
    Ok(())
}

/// The number of latents of a sparsify `cfg.json`: `num_latents`, or when
/// that is 0 (its default) `expansion_factor` (default 32) × `d_in`.
fn sparsify_latents(v: &Value, d_in: usize) -> Result<usize> {
    let or = |key: &str, default: usize| -> Result<usize> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => v.usize_at(key),
        }
    };
    match or("num_latents", 0)? {
        0 => {
            let f = or("expansion_factor", 32)?;
            d_in.checked_mul(f).ok_or_else(|| {
                Error::config(
                    "expansion_factor",
                    format!("{f} latents per input feature overflow with d_in = {d_in}"),
                )
            })
        }
        n => Ok(n),
    }
}

/// The model sparsify reads in `cfg.json` `v`, with its defaults: a TopK
/// code of `k` (32) over ReLU, `x − b_dec` encoded (always), a unit-norm
/// decoder unless `normalize_decoder` is false; its `groupmax` code, a
/// transcoder and a skip connection are refused naming their keys.
fn sparsify_view(v: &Value, d_in: usize) -> Result<crate::nn::ModelConfig> {
    if v.get("activation").is_some() {
        let a = v.str_at("activation")?;
        if a != "topk" {
            return Err(Error::config(
                "activation",
                format!(
                    "{:?} is not supported (only \"topk\": a ReLU code and its k largest values)",
                    json::excerpt(a)
                ),
            ));
        }
    }
    if flag(v, &["transcode"], Names::Sparsify)?.is_some_and(|(_, on)| on) {
        return Err(Error::config(
            "transcode",
            "true: a transcoder predicts another module's output from its input, not an autoencoder of its input",
        ));
    }
    if flag(v, &["skip_connection"], Names::Sparsify)?.is_some_and(|(_, on)| on) {
        return Err(Error::config(
            "skip_connection",
            "true: the skip connection (W_skip) is not part of the model sparse-ae runs",
        ));
    }
    let d_sae = sparsify_latents(v, d_in)?;
    let k = match v.get("k") {
        None | Some(Value::Null) => 32,
        Some(_) => v.usize_at("k")?,
    };
    let unit_norm_decoder = flag(v, &["normalize_decoder"], Names::Sparsify)?;
    ModelBuilder::new(d_in)
        .code(d_sae, Activation::Relu)
        .topk(k, false)
        .decoder(d_in, Activation::Linear)
        .loss(Loss::Mse)
        .pre_encoder_bias(true)
        .unit_norm_decoder(unit_norm_decoder.is_none_or(|(_, on)| on))
        .build()
        .map_err(|e| with_cfg_keys(e, "k", "num_latents"))
}

/// Refuses a `sparse_ae_config` that describes another model than
/// sparsify reads from the folder's `cfg.json` beside it (see
/// [`check_agrees`]); one without the pre-encoder bias is refused too:
/// sparsify's `encoder.bias` then holds `b_dec·W_enc` folded in.
fn check_agrees_sparsify(v: &Value, d_in: usize, cfg: &crate::nn::ModelConfig) -> Result<()> {
    let lib = sparsify_view(v, d_in)?;
    let disagree = |key: &str, theirs: String, ours: String| {
        Err(disagreement("sparsify reads", key, &theirs, &ours))
    };
    let theirs_k = lib.topk.map_or(0, |t| t.k);
    if cfg.width(0) != lib.width(0) {
        return disagree(
            "num_latents",
            lib.width(0).to_string(),
            format!("its {} latents", cfg.width(0)),
        );
    }
    match cfg.topk {
        Some(t) if !t.batch && t.k == theirs_k && cfg.layers[0].act() == Activation::Relu => {}
        _ => {
            return disagree(
                "k",
                theirs_k.to_string(),
                format!(
                    "its code ({}{})",
                    cfg.layers[0].act().name(),
                    cfg.topk.map_or(String::new(), |t| format!(
                        ", top {} of a {}",
                        t.k,
                        if t.batch { "batch" } else { "sample" }
                    ))
                ),
            );
        }
    }
    if cfg.sae.unit_norm_decoder != lib.sae.unit_norm_decoder {
        return disagree(
            "normalize_decoder",
            lib.sae.unit_norm_decoder.to_string(),
            format!("its unit-norm decoder ({})", cfg.sae.unit_norm_decoder),
        );
    }
    if !cfg.sae.pre_encoder_bias {
        return Err(Error::config(
            "sparse_ae_config",
            format!(
                "has no pre-encoder bias, so {SPARSIFY_WEIGHTS} holds b_dec·W_enc folded into encoder.bias (sparsify always encodes x − b_dec); read the model from {SAELENS_WEIGHTS}, which this folder lacks: export it again"
            ),
        ));
    }
    Ok(())
}

/// The model configuration and input scale a `cfg.json` describes, and
/// whether the decoder norms are to be folded into the weights (SAELens'
/// `rescale_acts_by_decoder_norm` on a TopK code); errors name its keys.
fn config_of_dir(v: &Value, names: Names) -> Result<(crate::nn::ModelConfig, f32, bool)> {
    // SAELens names its kind of SAE; sparsify writes no `architecture`.
    // Only the plain encoder (ReLU or TopK code) is this crate's model: a
    // JumpReLU or gated SAE holds parameters (`threshold`, `r_mag`, …)
    // and a forward pass it cannot represent.
    let arch = match v.get("architecture") {
        None => None,
        Some(_) => {
            let a = v.str_at("architecture")?;
            if !SUPPORTED_ARCHITECTURES.contains(&a) {
                return Err(Error::config(
                    "architecture",
                    format!(
                        "{:?} is not supported (only {}: a ReLU or TopK code, decoded linearly)",
                        json::excerpt(a),
                        SUPPORTED_ARCHITECTURES
                            .iter()
                            .map(|a| format!("{a:?}"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
            Some(a)
        }
    };
    if v.get("normalize_activations")
        .is_some_and(|n| *n != Value::Null)
    {
        let norm = v.str_at("normalize_activations")?;
        if norm != "none" {
            return Err(Error::config(
                "normalize_activations",
                format!(
                    "{:?} is not supported (only \"none\"; fold a scaling factor into the weights first)",
                    json::excerpt(norm)
                ),
            ));
        }
    }
    // sparsify's tensors are read by sparsify's keys and defaults.
    let sparsify = names == Names::Sparsify;
    let d_in = v.usize_at("d_in")?;
    let d_sae = if sparsify {
        sparsify_latents(v, d_in)?
    } else {
        v.usize_at("d_sae")?
    };
    let cfg = match v.get("sparse_ae_config") {
        Some(c) => {
            let cfg = crate::nn::ModelConfig::from_json_value(c).map_err(|e| match e {
                Error::Config { field, reason } => Error::Config {
                    field: format!("sparse_ae_config.{field}"),
                    reason,
                },
                e => e,
            })?;
            if sparsify {
                check_agrees_sparsify(v, d_in, &cfg)?;
            } else {
                check_agrees(v, arch, d_in, d_sae, &cfg)?;
            }
            cfg
        }
        None if sparsify => sparsify_view(v, d_in)?,
        None => library_view(v, arch, d_in, d_sae)?,
    };
    if cfg.input != d_in || cfg.layers.len() != 2 || cfg.width(0) != d_sae {
        return Err(Error::config(
            "sparse_ae_config",
            "disagrees with d_in / d_sae",
        ));
    }
    if arch == Some("topk") && cfg.topk.is_none() {
        return Err(topk_without_k());
    }
    // SAELens reads the key for its TopK SAE only.
    let rescale = !sparsify
        && cfg.topk.is_some()
        && v.get(RESCALE_KEY).is_some()
        && v.bool_at(RESCALE_KEY)?;
    let scale = match v.get("sparse_ae_input_scale") {
        None => 1.0,
        Some(_) => {
            let s = v.f64_at("sparse_ae_input_scale")? as f32;
            super::model_file::check_input_scale(s, &cfg, "sparse_ae_input_scale")?;
            s
        }
    };
    Ok((cfg, scale, rescale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_then_import_is_the_same_model_and_the_same_function() {
        let dir = std::env::temp_dir().join(format!("sparse-ae-interop-{}", std::process::id()));
        for cfg in [
            ModelBuilder::new(12)
                .code(20, Activation::Relu)
                .decoder(12, Activation::Linear)
                .loss(Loss::Mse)
                .topk(3, false)
                .build()
                .unwrap(),
            ModelBuilder::new(12)
                .code(5, Activation::Relu)
                .decoder(12, Activation::Linear)
                .loss(Loss::Sse)
                .l1(1e-3)
                .build()
                .unwrap(),
            ModelBuilder::new(12)
                .code(7, Activation::Relu)
                .decoder(12, Activation::Linear)
                .loss(Loss::Mse)
                .pre_encoder_bias(true)
                .unit_norm_decoder(true)
                .build()
                .unwrap(),
        ] {
            let mut m = Autoencoder::<f32>::new(cfg, 4).unwrap();
            let b_dec = m.layout().bias(1).range();
            for (i, v) in m.params[b_dec].iter_mut().enumerate() {
                *v = 0.05 * i as f32 - 0.3;
            }
            export_sae(&m, &dir).unwrap();
            let back = import_sae(&dir).unwrap();
            assert_eq!(back.config(), m.config());
            assert_eq!(back.params, m.params);
            // The library formula f = act((x − b_dec·[apply_b_dec_to_input])·W_enc + b_enc)
            // gives our code.
            let st = SafeTensors::read(&dir.join(SAELENS_WEIGHTS)).unwrap();
            let (w_enc, b_enc) = (
                &st.get("W_enc").unwrap().data,
                &st.get("b_enc").unwrap().data,
            );
            let d_sae = m.config().width(0);
            let x: Vec<f32> = (0..12).map(|i| i as f32 / 12.0).collect();
            let cfg_json = json::parse(&std::fs::read(dir.join("cfg.json")).unwrap()).unwrap();
            let apply = cfg_json.bool_at("apply_b_dec_to_input").unwrap();
            assert_eq!(apply, m.config().sae.pre_encoder_bias);
            let b_dec = &st.get("b_dec").unwrap().data;
            let sae_in: Vec<f32> = (0..12)
                .map(|i| x[i] - if apply { b_dec[i] } else { 0.0 })
                .collect();
            let mut ws = m.workspace(1);
            m.forward(&mut ws, &x).unwrap();
            if m.config().topk.is_none() {
                for j in 0..d_sae {
                    let z: f32 = (0..12)
                        .map(|i| sae_in[i] * w_enc[i * d_sae + j])
                        .sum::<f32>()
                        + b_enc[j];
                    assert!((z.max(0.0) - ws.h[0][j]).abs() < 1e-5);
                }
            }
        }
        let e = export_sae(
            &Autoencoder::<f32>::new(crate::nn::preset("deep", 16).unwrap(), 0).unwrap(),
            &dir,
        )
        .unwrap_err();
        assert!(e.to_string().contains("one untied dense hidden layer"));
        // The libraries decode linearly: a sigmoid output (BCE or MSE) is refused.
        for loss in [Loss::Bce, Loss::Mse] {
            let sig = ModelBuilder::new(12)
                .code(5, Activation::Relu)
                .decoder(12, Activation::Sigmoid)
                .loss(loss)
                .build()
                .unwrap();
            let e = export_sae(&Autoencoder::<f32>::new(sig, 0).unwrap(), &dir)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("decodes linearly")
                    && e.contains(&format!(
                        "sigmoid output layer and the {} loss",
                        loss.name()
                    ))
                    && e.contains("--linear-output"),
                "{e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A cfg.json of the libraries (no saved sparse-ae configuration) sets
    /// the pre-encoder bias from `apply_b_dec_to_input` (absent: true) and
    /// the unit-norm decoder from `normalize_decoder`.
    #[test]
    fn library_cfg_sets_the_pre_encoder_bias() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-lib-{}", std::process::id()));
        let cfg = ModelBuilder::new(8)
            .code(16, Activation::Relu)
            .decoder(8, Activation::Linear)
            .loss(Loss::Mse)
            .topk(2, false)
            .build()
            .unwrap();
        let m = Autoencoder::<f32>::new(cfg, 1).unwrap();
        export_sae(&m, &dir).unwrap();
        let base = r#""d_in": 8, "d_sae": 16, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2}"#;
        for (extra, bias, unit) in [
            ("", true, false),
            (r#", "apply_b_dec_to_input": false"#, false, false),
            (
                r#", "apply_b_dec_to_input": true, "normalize_decoder": true"#,
                true,
                true,
            ),
            (r#", "normalize_sae_decoder": true"#, true, true),
        ] {
            let text = format!("{{{base}{extra}}}");
            std::fs::write(dir.join("cfg.json"), text).unwrap();
            let back = import_sae(&dir).unwrap();
            assert_eq!(back.config().sae.pre_encoder_bias, bias, "{extra}");
            assert_eq!(back.config().sae.unit_norm_decoder, unit, "{extra}");
            assert_eq!(back.params, m.params);
        }
        // Not a boolean, null included: for SAELens a null is set, not
        // its default.
        for bad in ["1", "null"] {
            std::fs::write(
                dir.join("cfg.json"),
                format!(r#"{{{base}, "apply_b_dec_to_input": {bad}}}"#),
            )
            .unwrap();
            let e = import_sae(&dir).unwrap_err().to_string();
            assert!(
                e.contains("apply_b_dec_to_input") && e.contains("expected a boolean"),
                "{e}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Tensors beside another export's cfg.json (files mixed by hand, or an
    /// earlier version's export cut between its files) are refused on
    /// import, naming both files; a folder without the fingerprint
    /// (another library's) is read as before.
    #[test]
    fn an_export_cut_between_its_files_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-cut-{}", std::process::id()));
        let other = dir.with_extension("other");
        let cfg = ModelBuilder::new(6)
            .code(9, Activation::Relu)
            .decoder(6, Activation::Linear)
            .loss(Loss::Mse)
            .build()
            .unwrap();
        let (a, b) = (
            Autoencoder::<f32>::new(cfg.clone(), 1).unwrap(),
            Autoencoder::<f32>::new(cfg, 2).unwrap(),
        );
        export_sae(&a, &dir).unwrap();
        export_sae(&b, &other).unwrap();
        assert_eq!(import_sae(&dir).unwrap().params, a.params);
        // b's tensors beside a's cfg.json: the shapes agree, the files do not.
        std::fs::copy(other.join(SAELENS_WEIGHTS), dir.join(SAELENS_WEIGHTS)).unwrap();
        let e = import_sae(&dir).unwrap_err().to_string();
        assert!(
            e.contains(
                "sae_weights.safetensors is not the tensor file this cfg.json was exported with"
            ) && e.contains(TENSORS_KEY),
            "{e}"
        );
        // Without the key, as another library writes it: read as it is.
        let mut v = json::read(&dir.join("cfg.json")).unwrap();
        if let Value::Object(fields) = &mut v {
            fields.retain(|(k, _)| k != TENSORS_KEY);
        }
        std::fs::write(dir.join("cfg.json"), v.to_json_pretty().unwrap()).unwrap();
        assert_eq!(import_sae(&dir).unwrap().params, b.params);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }

    #[test]
    fn a_scaled_model_is_exported_folded_and_imported_unfolded() {
        let dir = std::env::temp_dir().join(format!("sparse-ae-interop-s-{}", std::process::id()));
        let cfg = ModelBuilder::new(6)
            .code(9, Activation::Relu)
            .topk(3, false)
            .decoder(6, Activation::Linear)
            .loss(Loss::Mse)
            .build()
            .unwrap();
        let m = Autoencoder::<f32>::new(cfg, 2).unwrap();
        let s = 0.37f32;
        export_sae_scaled(&m, s, &dir).unwrap();
        let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.0) / 3.0).collect();
        let sx: Vec<f32> = x.iter().map(|v| v * s).collect();
        let run = |model: &Autoencoder<f32>, input: &[f32]| {
            let mut ws = model.workspace(2);
            model.forward(&mut ws, input).unwrap();
            let mut recon = vec![0.0; 12];
            model.reconstruction(&ws, &mut recon);
            (model.code(&ws).to_vec(), recon)
        };
        // The folded model on raw x: the same codes, the reconstruction / s.
        let (code, recon) = run(&m, &sx);
        let (code_f, recon_f) = run(&import_sae(&dir).unwrap(), &x);
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()))
        };
        assert!(close(&code_f, &code), "{code_f:?} vs {code:?}");
        let unscaled: Vec<f32> = recon.iter().map(|v| v / s).collect();
        assert!(close(&recon_f, &unscaled), "{recon_f:?} vs {unscaled:?}");
        // Unfolded: the model of normalised inputs and its scale.
        let (back, s_back) = import_sae_scaled(&dir).unwrap();
        assert_eq!(s_back, s);
        assert!(close(&back.params, &m.params));
        let text = std::fs::read_to_string(dir.join("cfg.json")).unwrap();
        assert!(
            text.contains("\"normalize_activations\": \"none\""),
            "{text}"
        );
        // A sigmoid output cannot take the scale.
        let sig = Autoencoder::<f32>::new(
            ModelBuilder::new(6)
                .code(4, Activation::Relu)
                .decoder(6, Activation::Sigmoid)
                .loss(Loss::Mse)
                .build()
                .unwrap(),
            0,
        )
        .unwrap();
        let e = export_sae_scaled(&sig, 2.0, &dir).unwrap_err();
        assert!(e.to_string().contains("a linear output"), "{e}");
        // A run-time normalisation of another library is refused.
        export_sae(&m, &dir).unwrap();
        let text = std::fs::read_to_string(dir.join("cfg.json")).unwrap();
        std::fs::write(
            dir.join("cfg.json"),
            text.replace("\"none\"", "\"layer_norm\""),
        )
        .unwrap();
        let e = import_sae(&dir).unwrap_err();
        assert!(
            e.to_string().contains("\"layer_norm\" is not supported"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The codes and reconstructions of `model` on `rows` rows of `x`.
    fn run(model: &Autoencoder<f32>, x: &[f32], rows: usize) -> (Vec<f32>, Vec<f32>) {
        let mut ws = model.workspace(rows);
        model.forward(&mut ws, x).unwrap();
        let mut recon = vec![0.0; x.len()];
        model.reconstruction(&ws, &mut recon);
        (model.code(&ws).to_vec(), recon)
    }

    /// A folder of sparse-ae's export with `cfg.json` replaced by `text`.
    /// A `cfg.json` whose SAE-library keys describe another model than its
    /// `sparse_ae_config` (another k, code, pre-encoder bias or decoder
    /// norm) is refused naming the key: `sparse_ae_config` won without a
    /// word, so SAELens and sparse-ae ran different models from one folder.
    #[test]
    fn library_keys_that_disagree_with_the_config_are_refused() {
        let dir = std::env::temp_dir().join(format!("sparse-ae-agree-{}", std::process::id()));
        let cfg = ModelBuilder::new(12)
            .code(20, Activation::Relu)
            .decoder(12, Activation::Linear)
            .loss(Loss::Mse)
            .topk(3, false)
            .build()
            .unwrap();
        export_sae(&Autoencoder::<f32>::new(cfg, 4).unwrap(), &dir).unwrap();
        let text = std::fs::read_to_string(dir.join("cfg.json")).unwrap();
        let exported = json::parse(text.as_bytes()).unwrap();
        let edited = |edits: &[(&str, Value)]| {
            let Value::Object(mut fields) = exported.clone() else {
                panic!("cfg.json is an object")
            };
            for (key, value) in edits {
                match fields.iter_mut().find(|(k, _)| k == key) {
                    Some(f) => f.1 = value.clone(),
                    None => fields.push((key.to_string(), value.clone())),
                }
            }
            Value::Object(fields).to_json().unwrap()
        };
        let k5 = Value::Object(vec![("k".into(), Value::from(5usize))]);
        let cases: [(&[(&str, Value)], &str); 5] = [
            (
                &[("activation_fn_kwargs", k5), ("k", Value::from(5usize))],
                "`k` = 5",
            ),
            (
                &[
                    ("k", Value::from(4usize)),
                    (
                        "activation_fn_kwargs",
                        Value::Object(vec![("k".into(), Value::from(4usize))]),
                    ),
                ],
                "k` = 4",
            ),
            (
                &[
                    ("architecture", Value::from("standard")),
                    ("activation_fn_str", Value::from("relu")),
                ],
                "its TopK code (k = 3) disagrees with `activation_fn_str`",
            ),
            (
                &[("apply_b_dec_to_input", Value::Bool(true))],
                "`apply_b_dec_to_input` = true",
            ),
            (
                &[("normalize_decoder", Value::Bool(true))],
                "`normalize_decoder` = true",
            ),
        ];
        for (edits, want) in cases {
            let e = with_cfg(&dir, &edited(edits)).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("sparse_ae_config"),
                "{want}: {e}"
            );
        }
        with_cfg(&dir, &edited(&[])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn with_cfg(dir: &Path, text: &str) -> Result<Autoencoder<f32>> {
        std::fs::write(dir.join("cfg.json"), text).unwrap();
        import_sae(dir)
    }

    /// What SAELens 6 writes for its TopK SAE: `architecture` "topk" and a
    /// top-level `k`, no `activation_fn_str`.
    fn saelens6_topk(k: &str, extra: &str) -> String {
        format!(
            r#"{{"d_in": 8, "d_sae": 16, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": true, "normalize_activations": "none", "reshape_activations": "none", "k": {k}, "rescale_acts_by_decoder_norm": false{extra}, "metadata": {{"sae_lens_version": "6.5.0", "hook_name": "blocks.0.hook_resid_post"}}, "architecture": "topk"}}"#
        )
    }

    /// A SAELens 6 TopK folder (top-level `k`) is read as the same model as
    /// the older layout (`activation_fn_kwargs.k`), and both keys may be
    /// there when they agree.
    #[test]
    fn a_saelens6_topk_folder_imports_as_the_older_layout() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-v6k-{}", std::process::id()));
        let cfg = ModelBuilder::new(8)
            .code(16, Activation::Relu)
            .decoder(8, Activation::Linear)
            .loss(Loss::Mse)
            .topk(3, false)
            .pre_encoder_bias(true)
            .build()
            .unwrap();
        let mut m = Autoencoder::<f32>::new(cfg, 5).unwrap();
        let b_dec = m.layout().bias(1).range();
        for (i, v) in m.params[b_dec].iter_mut().enumerate() {
            *v = 0.1 * i as f32 - 0.35;
        }
        export_sae(&m, &dir).unwrap();
        let old = with_cfg(
            &dir,
            r#"{"d_in": 8, "d_sae": 16, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}}"#,
        )
        .unwrap();
        let v6 = with_cfg(&dir, &saelens6_topk("3", "")).unwrap();
        let topk = v6.config().topk.expect("a TopK code");
        assert_eq!((topk.k, topk.batch), (3, false));
        assert_eq!(v6.config().layers[0].act(), Activation::Relu);
        assert_eq!(v6.config(), old.config());
        assert_eq!(v6.params, old.params);
        assert_eq!(v6.params, m.params);
        let x: Vec<f32> = (0..16).map(|i| (i as f32 - 7.0) / 5.0).collect();
        let (code, recon) = run(&v6, &x, 2);
        assert_eq!((code.clone(), recon.clone()), run(&old, &x, 2));
        assert_eq!((code.clone(), recon.clone()), run(&m, &x, 2));
        assert!(
            code.chunks(16)
                .all(|c| c.iter().filter(|v| **v != 0.0).count() <= 3)
        );
        // Both keys, equal: the same model.
        let both = with_cfg(
            &dir,
            &saelens6_topk("3", r#", "activation_fn_kwargs": {"k": 3}"#),
        );
        assert_eq!(both.unwrap().params, m.params);
        // `activation_fn_str` "topk" with only the top-level k.
        let top_only = with_cfg(
            &dir,
            r#"{"d_in": 8, "d_sae": 16, "activation_fn_str": "topk", "k": 3}"#,
        );
        assert_eq!(top_only.unwrap().config(), old.config());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A top-level `k` that disagrees with `activation_fn_kwargs.k`, or is
    /// not an integer in 1..=d_sae, is refused naming the file and the key;
    /// `architecture` "topk" without any k is refused too.
    #[test]
    fn a_bad_or_disagreeing_topk_k_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-v6bad-{}", std::process::id()));
        let cfg = ModelBuilder::new(8)
            .code(16, Activation::Relu)
            .decoder(8, Activation::Linear)
            .loss(Loss::Mse)
            .topk(3, false)
            .build()
            .unwrap();
        export_sae(&Autoencoder::<f32>::new(cfg, 1).unwrap(), &dir).unwrap();
        let err = |text: &str| with_cfg(&dir, text).unwrap_err().to_string();
        let e = err(&saelens6_topk("3", r#", "activation_fn_kwargs": {"k": 2}"#));
        assert!(
            e.contains("cfg.json: k: 3 disagrees with `activation_fn_kwargs.k` = 2"),
            "{e}"
        );
        let e = err(
            r#"{"d_in": 8, "d_sae": 16, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4}, "k": 5}"#,
        );
        assert!(
            e.contains("k: 5 disagrees with `activation_fn_kwargs.k` = 4"),
            "{e}"
        );
        for (k, want) in [
            ("2.5", "expected a non-negative integer, found"),
            ("-3", "expected a non-negative integer, found"),
            (r#""3""#, "expected a non-negative integer, found"),
            ("null", "expected a non-negative integer, found null"),
            ("0", "must be in 1..=16 (the layer's units), got 0"),
            ("17", "must be in 1..=16 (the layer's units), got 17"),
        ] {
            let e = err(&saelens6_topk(k, ""));
            assert!(e.contains(&format!("cfg.json: k: {want}")), "{k}: {e}");
        }
        // The older layout's k is checked as before, under its own name.
        let e = err(
            r#"{"d_in": 8, "d_sae": 16, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 0}}"#,
        );
        assert!(
            e.contains("cfg.json: activation_fn_kwargs.k: must be in 1..=16"),
            "{e}"
        );
        // No k anywhere.
        let no_k = saelens6_topk("3", "").replace(r#""k": 3, "#, "");
        let e = err(&no_k);
        assert!(
            e.contains(
                "cfg.json: architecture: \"topk\" needs a TopK code with its k (a top-level `k`"
            ),
            "{e}"
        );
        let e = err(r#"{"d_in": 8, "d_sae": 16, "activation_fn_str": "topk"}"#);
        assert!(
            e.contains("cfg.json: activation_fn_kwargs.k: required field is missing")
                && e.contains("top-level `k`"),
            "{e}"
        );
        // A ReLU code under "topk" is not a TopK SAE, whatever k says.
        let relu = saelens6_topk("3", r#", "activation_fn_str": "relu""#);
        assert!(err(&relu).contains("architecture: \"topk\" needs a TopK code"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// SAELens 6's standard SAE: `architecture` "standard" and no
    /// `activation_fn_str`, a ReLU code.
    #[test]
    fn a_saelens6_standard_folder_imports_as_a_relu_sae() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-v6s-{}", std::process::id()));
        let cfg = ModelBuilder::new(8)
            .code(12, Activation::Relu)
            .decoder(8, Activation::Linear)
            .loss(Loss::Mse)
            .pre_encoder_bias(true)
            .build()
            .unwrap();
        let m = Autoencoder::<f32>::new(cfg, 3).unwrap();
        export_sae(&m, &dir).unwrap();
        let back = with_cfg(
            &dir,
            r#"{"d_in": 8, "d_sae": 12, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": true, "normalize_activations": "none", "reshape_activations": "none", "metadata": {"sae_lens_version": "6.5.0"}, "architecture": "standard"}"#,
        )
        .unwrap();
        assert_eq!(back.config(), m.config());
        assert!(back.config().topk.is_none());
        assert_eq!(back.config().layers[0].act(), Activation::Relu);
        assert_eq!(back.params, m.params);
        let x: Vec<f32> = (0..8).map(|i| i as f32 / 8.0 - 0.4).collect();
        assert_eq!(run(&back, &x, 1), run(&m, &x, 1));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// SAELens 6's `rescale_acts_by_decoder_norm` (TopK over z_j·‖W_dec_j‖,
    /// decoding f_j/‖W_dec_j‖) is folded into the weights: the imported
    /// model gives SAELens' codes and reconstruction.
    #[test]
    fn saelens6_decoder_norm_rescaling_is_folded_in() {
        let dir =
            std::env::temp_dir().join(format!("sparse-ae-interop-v6r-{}", std::process::id()));
        let (d_in, d_sae, k) = (8, 16, 3);
        let cfg = ModelBuilder::new(d_in)
            .code(d_sae, Activation::Relu)
            .decoder(d_in, Activation::Linear)
            .loss(Loss::Mse)
            .topk(k, false)
            .build()
            .unwrap();
        let mut m = Autoencoder::<f32>::new(cfg, 7).unwrap();
        // Decoder rows of very different norms, so the rescaling changes
        // which k latents win.
        let w_dec = m.layout().weight(1).range();
        for (i, v) in m.params[w_dec].iter_mut().enumerate() {
            *v *= 0.2 + (i % d_sae) as f32 * 0.3;
        }
        let b_dec = m.layout().bias(1).range();
        for (i, v) in m.params[b_dec].iter_mut().enumerate() {
            *v = 0.05 * i as f32;
        }
        export_sae(&m, &dir).unwrap();
        let st = SafeTensors::read(&dir.join(SAELENS_WEIGHTS)).unwrap();
        let t = |n: &str| st.get(n).unwrap().data.clone();
        let (w_enc, b_enc, w_dec, b_dec) = (t("W_enc"), t("b_enc"), t("W_dec"), t("b_dec"));
        let back = with_cfg(&dir, &saelens6_topk("3", "").replace("false", "true")).unwrap();
        let norms: Vec<f32> = back.params[back.layout().weight(1).range()]
            .chunks(d_sae)
            .fold(vec![0.0f32; d_sae], |mut acc, row| {
                acc.iter_mut().zip(row).for_each(|(a, w)| *a += w * w);
                acc
            });
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let x: Vec<f32> = (0..d_in).map(|i| (i as f32 - 3.0) / 2.0).collect();
        // SAELens' forward pass.
        let n: Vec<f32> = (0..d_sae)
            .map(|j| {
                (0..d_in)
                    .map(|i| w_dec[j * d_in + i].powi(2))
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let pre: Vec<f32> = (0..d_sae)
            .map(|j| {
                let z = (0..d_in)
                    .map(|i| (x[i] - b_dec[i]) * w_enc[i * d_sae + j])
                    .sum::<f32>()
                    + b_enc[j];
                z * n[j]
            })
            .collect();
        let mut order: Vec<usize> = (0..d_sae).collect();
        order.sort_by(|&a, &b| pre[b].total_cmp(&pre[a]));
        let mut f = vec![0.0f32; d_sae];
        for &j in &order[..k] {
            f[j] = pre[j].max(0.0);
        }
        let want: Vec<f32> = (0..d_in)
            .map(|i| {
                b_dec[i]
                    + (0..d_sae)
                        .map(|j| f[j] / n[j] * w_dec[j * d_in + i])
                        .sum::<f32>()
            })
            .collect();
        let (code, recon) = run(&back, &x, 1);
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(p, q)| (p - q).abs() <= 1e-4 * (1.0 + q.abs()))
        };
        assert!(close(&code, &f), "{code:?} vs {f:?}");
        assert!(close(&recon, &want), "{recon:?} vs {want:?}");
        // Without the rescaling the model picks other latents here.
        let plain = with_cfg(&dir, &saelens6_topk("3", "")).unwrap();
        assert!(!close(&run(&plain, &x, 1).1, &want));
        // A decoder row whose norm is beyond f32: refused, not imported as inf.
        let mut huge = w_dec.clone();
        huge[..d_in].iter_mut().for_each(|w| *w = 3e38);
        safetensors::write(
            &dir.join(SAELENS_WEIGHTS),
            &[
                ("W_enc", &[d_in, d_sae], &w_enc),
                ("b_enc", &[d_sae], &b_enc),
                ("W_dec", &[d_sae, d_in], &huge),
                ("b_dec", &[d_in], &b_dec),
            ],
            &[],
        )
        .unwrap();
        let e = with_cfg(&dir, &saelens6_topk("3", "").replace("false", "true"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tensor `W_enc` overflows when the decoder norms are folded"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The k largest of `z` kept (after ReLU), the rest zero: the code of
    /// SAELens' and sparsify's TopK SAEs.
    fn top_k_relu(z: &[f32], k: usize) -> Vec<f32> {
        let mut order: Vec<usize> = (0..z.len()).collect();
        order.sort_by(|&a, &b| z[b].total_cmp(&z[a]));
        let mut f = vec![0.0f32; z.len()];
        for &j in &order[..k] {
            f[j] = z[j].max(0.0);
        }
        f
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(p, q)| (p - q).abs() <= 1e-5 * (1.0 + q.abs()))
    }

    /// The tensors of a safetensors file, by name, with their shapes.
    fn tensors_of(path: &Path) -> Vec<(String, Vec<usize>)> {
        let st = SafeTensors::read(path).unwrap();
        let mut v: Vec<_> = st
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        v.sort();
        v
    }

    /// What each library reads from an exported folder — SAELens
    /// `sae_weights.safetensors` (`W_enc`, `b_enc`, `W_dec`, `b_dec`) and
    /// its cfg keys, sparsify `sae.safetensors` with exactly its four
    /// tensors (it loads strictly) and its cfg keys — computes the model's
    /// codes and reconstruction, by each library's forward pass: with and
    /// without the pre-encoder bias (sparsify always subtracts b_dec, so it
    /// is folded into its encoder bias), scaled or not. A sparsify folder
    /// as sparsify writes it (its file and cfg.json only) imports as the
    /// same model.
    #[test]
    fn an_exported_folder_is_what_saelens_and_sparsify_load() {
        let dir = std::env::temp_dir().join(format!("sparse-ae-libs-{}", std::process::id()));
        let (d_in, d_sae, k) = (8, 16, 3);
        for (pre_bias, scale) in [(true, 1.0f32), (true, 2.0), (false, 1.0), (false, 0.5)] {
            let what = format!("pre-encoder bias {pre_bias}, scale {scale}");
            let cfg = ModelBuilder::new(d_in)
                .code(d_sae, Activation::Relu)
                .topk(k, false)
                .decoder(d_in, Activation::Linear)
                .loss(Loss::Mse)
                .pre_encoder_bias(pre_bias)
                .build()
                .unwrap();
            let mut m = Autoencoder::<f32>::new(cfg, 9).unwrap();
            let lay = m.layout().clone();
            for (i, v) in m.params[lay.bias(1).range()].iter_mut().enumerate() {
                *v = 0.07 * i as f32 - 0.2;
            }
            for (i, v) in m.params[lay.bias(0).range()].iter_mut().enumerate() {
                *v = 0.01 * i as f32 - 0.05;
            }
            export_sae_scaled(&m, scale, &dir).unwrap();
            assert_eq!(
                tensors_of(&dir.join(SAELENS_WEIGHTS)),
                [
                    ("W_dec".into(), vec![d_sae, d_in]),
                    ("W_enc".into(), vec![d_in, d_sae]),
                    ("b_dec".into(), vec![d_in]),
                    ("b_enc".into(), vec![d_sae]),
                ],
                "{what}"
            );
            assert_eq!(
                tensors_of(&dir.join(SPARSIFY_WEIGHTS)),
                [
                    ("W_dec".into(), vec![d_sae, d_in]),
                    ("b_dec".into(), vec![d_in]),
                    ("encoder.bias".into(), vec![d_sae]),
                    ("encoder.weight".into(), vec![d_sae, d_in]),
                ],
                "{what}"
            );
            let v = json::read(&dir.join("cfg.json")).unwrap();
            assert_eq!(v.str_at("architecture").unwrap(), "topk");
            assert_eq!(v.str_at("activation").unwrap(), "topk");
            assert_eq!(v.str_at("normalize_activations").unwrap(), "none");
            assert_eq!(v.usize_at("k").unwrap(), k);
            assert_eq!(v.usize_at("d_in").unwrap(), d_in);
            assert_eq!(v.usize_at("d_sae").unwrap(), d_sae);
            assert_eq!(v.usize_at("num_latents").unwrap(), d_sae);
            assert!(!v.bool_at("normalize_decoder").unwrap());
            assert!(!v.bool_at("rescale_acts_by_decoder_norm").unwrap());
            let apply = v.bool_at("apply_b_dec_to_input").unwrap();
            assert_eq!(apply, pre_bias);
            // Raw inputs, two rows.
            let x: Vec<f32> = (0..2 * d_in).map(|i| (i as f32 - 6.0) / 4.0).collect();
            let sx: Vec<f32> = x.iter().map(|v| v * scale).collect();
            let (code, recon) = run(&m, &sx, 2);
            let want_recon: Vec<f32> = recon.iter().map(|v| v / scale).collect();
            let sl = SafeTensors::read(&dir.join(SAELENS_WEIGHTS)).unwrap();
            let sp = SafeTensors::read(&dir.join(SPARSIFY_WEIGHTS)).unwrap();
            let t = |st: &SafeTensors, n: &str| st.get(n).unwrap().data.clone();
            for row in 0..2 {
                let x = &x[row * d_in..(row + 1) * d_in];
                let decode = |f: &[f32], w_dec: &[f32], b_dec: &[f32]| -> Vec<f32> {
                    (0..d_in)
                        .map(|i| {
                            b_dec[i] + (0..d_sae).map(|j| f[j] * w_dec[j * d_in + i]).sum::<f32>()
                        })
                        .collect()
                };
                // SAELens: TopK of (x − b_dec·apply)·W_enc + b_enc, then ReLU.
                let (w_enc, b_enc, w_dec, b_dec) = (
                    t(&sl, "W_enc"),
                    t(&sl, "b_enc"),
                    t(&sl, "W_dec"),
                    t(&sl, "b_dec"),
                );
                let z: Vec<f32> = (0..d_sae)
                    .map(|j| {
                        b_enc[j]
                            + (0..d_in)
                                .map(|i| {
                                    (x[i] - if apply { b_dec[i] } else { 0.0 })
                                        * w_enc[i * d_sae + j]
                                })
                                .sum::<f32>()
                    })
                    .collect();
                let f = top_k_relu(&z, k);
                let want_code = &code[row * d_sae..(row + 1) * d_sae];
                let want_x = &want_recon[row * d_in..(row + 1) * d_in];
                assert!(
                    close(&f, want_code),
                    "SAELens, {what}: {f:?} vs {want_code:?}"
                );
                assert!(
                    close(&decode(&f, &w_dec, &b_dec), want_x),
                    "SAELens, {what}"
                );
                // sparsify: ReLU((x − b_dec)·encoder.weightᵀ + encoder.bias), top k.
                let (e_w, e_b, w_dec, b_dec) = (
                    t(&sp, "encoder.weight"),
                    t(&sp, "encoder.bias"),
                    t(&sp, "W_dec"),
                    t(&sp, "b_dec"),
                );
                let z: Vec<f32> = (0..d_sae)
                    .map(|j| {
                        e_b[j]
                            + (0..d_in)
                                .map(|i| (x[i] - b_dec[i]) * e_w[j * d_in + i])
                                .sum::<f32>()
                    })
                    .collect();
                let f = top_k_relu(&z, k);
                assert!(
                    close(&f, want_code),
                    "sparsify, {what}: {f:?} vs {want_code:?}"
                );
                assert!(
                    close(&decode(&f, &w_dec, &b_dec), want_x),
                    "sparsify, {what}"
                );
            }
            // Read back from SAELens' file: the same model, bit for bit.
            let (back, s) = import_sae_scaled(&dir).unwrap();
            assert_eq!((back.config(), s), (m.config(), scale), "{what}");
            assert!(close(&back.params, &m.params), "{what}");
            if scale == 1.0 {
                assert_eq!(back.params, m.params, "{what}");
            }
        }
        // sparsify's folder as sparsify writes it: its file and its keys.
        std::fs::remove_file(dir.join(SAELENS_WEIGHTS)).unwrap();
        let m = import_sae(&dir);
        assert!(
            m.unwrap_err().to_string().contains("no pre-encoder bias"),
            "the last export has no pre-encoder bias: sparsify's bias is folded"
        );
        let sparsify_cfg = |activation: &str, skip: bool, transcode: bool| {
            format!(
                r#"{{"activation": "{activation}", "expansion_factor": 2, "normalize_decoder": false, "num_latents": 0, "k": {k}, "multi_topk": false, "skip_connection": {skip}, "transcode": {transcode}, "d_in": {d_in}}}"#
            )
        };
        let back = with_cfg(&dir, &sparsify_cfg("topk", false, false)).unwrap();
        let c = back.config();
        assert_eq!(
            (c.input, c.width(0), c.topk.map(|t| (t.k, t.batch))),
            (d_in, d_sae, Some((k, false)))
        );
        assert!(c.sae.pre_encoder_bias && !c.sae.unit_norm_decoder);
        // Codes and reconstruction as sparsify computes them from its file.
        let sp = SafeTensors::read(&dir.join(SPARSIFY_WEIGHTS)).unwrap();
        let lay = back.layout();
        assert_eq!(
            &back.params[lay.weight(0).range()],
            &sp.get("encoder.weight").unwrap().data[..]
        );
        assert_eq!(
            &back.params[lay.bias(0).range()],
            &sp.get("encoder.bias").unwrap().data[..]
        );
        assert_eq!(
            &back.params[lay.bias(1).range()],
            &sp.get("b_dec").unwrap().data[..]
        );
        // sparsify's defaults: normalize_decoder true, k 32 (more than 16
        // latents: refused naming `k`).
        let defaults = format!(r#"{{"num_latents": {d_sae}, "k": {k}, "d_in": {d_in}}}"#);
        assert!(
            with_cfg(&dir, &defaults)
                .unwrap()
                .config()
                .sae
                .unit_norm_decoder
        );
        // A null is sparsify's default too, as a missing key.
        let nulls = format!(
            r#"{{"num_latents": {d_sae}, "k": {k}, "d_in": {d_in}, "normalize_decoder": null, "transcode": null, "skip_connection": null}}"#
        );
        assert!(
            with_cfg(&dir, &nulls)
                .unwrap()
                .config()
                .sae
                .unit_norm_decoder
        );
        let e = with_cfg(
            &dir,
            &format!(r#"{{"num_latents": {d_sae}, "d_in": {d_in}}}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cfg.json: k: must be in 1..=16"), "{e}");
        for (text, want) in [
            (
                sparsify_cfg("groupmax", false, false),
                "activation: \"groupmax\" is not supported",
            ),
            (
                sparsify_cfg("topk", false, true),
                "transcode: true: a transcoder",
            ),
            (sparsify_cfg("topk", true, false), "skip_connection: true"),
        ] {
            let e = with_cfg(&dir, &text).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What the libraries would run as another model is refused by export:
    /// a code other than ReLU (SAELens' standard SAE is ReLU whatever
    /// `activation_fn_str` says), BatchTopK (they keep k per sample); a
    /// ReLU export removes an earlier export's sparsify file, which sparsify
    /// would read with this cfg.json's defaults.
    #[test]
    fn export_refuses_what_the_libraries_would_compute_otherwise() {
        let dir = std::env::temp_dir().join(format!("sparse-ae-libs-no-{}", std::process::id()));
        let sae = |act: Activation, topk: Option<bool>| {
            let b = ModelBuilder::new(6).code(10, act);
            let b = match topk {
                Some(batch) => b.topk(2, batch),
                None => b,
            };
            let cfg = b
                .decoder(6, Activation::Linear)
                .loss(Loss::Mse)
                .build()
                .unwrap();
            Autoencoder::<f32>::new(cfg, 1).unwrap()
        };
        for act in [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Linear,
            Activation::LeakyRelu(0.1),
        ] {
            let e = export_sae(&sae(act, None), &dir).unwrap_err().to_string();
            assert!(
                e.contains(&format!("this model's code is {}", act.name())),
                "{e}"
            );
        }
        let e = export_sae(&sae(Activation::Relu, Some(true)), &dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("BatchTopK"), "{e}");
        assert!(!dir.exists(), "a refused export writes nothing");
        export_sae(&sae(Activation::Relu, Some(false)), &dir).unwrap();
        assert!(dir.join(SPARSIFY_WEIGHTS).exists());
        let relu = sae(Activation::Relu, None);
        export_sae(&relu, &dir).unwrap();
        assert!(!dir.join(SPARSIFY_WEIGHTS).exists());
        let v = json::read(&dir.join("cfg.json")).unwrap();
        assert_eq!(v.str_at("architecture").unwrap(), "standard");
        assert!(v.get("activation").is_none() && v.get("k").is_none());
        assert_eq!(import_sae(&dir).unwrap().params, relu.params);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
