//! The `Autoencoder` class: a model of the engine and the input scale it
//! was trained with, and the calls of `sparse-ae train`, `encode`, `eval`,
//! `score` and `gradcheck` on NumPy arrays.

use crate::args::{count, whole};
use crate::arrays::{Input, overflow_at, refuse_non_numbers, show_index, to_f32, unravel};
use crate::errors::{IntoPy, to_py};
use crate::fit::{Bar, PyObserver, Shared, history};
use numpy::{
    IntoPyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};
use sparse_ae::gradcheck::{ArgNames, CheckOptions, check_model, check_request};
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{load_model_scaled, save_model_scaled};
use sparse_ae::nn::{
    Autoencoder, ModelConfig, Noise, PRESETS, ParamLayout, apply_noise, preset, preset_for_image,
};
use sparse_ae::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use sparse_ae::rng::Rng;
use sparse_ae::train::{FitOptions, Trainer, evaluate as evaluate_all, explained, fit};
use sparse_ae::{Error, train};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often a running `fit` looks at Python's signals and its progress bar.
const POLL: Duration = Duration::from_millis(50);

/// Every preset: `(name, description)`.
#[pyfunction]
pub fn presets() -> Vec<(&'static str, &'static str)> {
    PRESETS.to_vec()
}

/// The SIMD path the kernels run on (`avx512`, `avx2` or `scalar`),
/// refusing a bad `SPARSE_AE_*` variable as training would.
#[pyfunction]
pub fn kernel_path() -> PyResult<&'static str> {
    sparse_ae::parallel::check_env().map_err(to_py)?;
    Ok(sparse_ae::kernels::Isa::active().name())
}

/// Sets the memory budget every call checks its buffers against to `gb`
/// GB (`sparse-ae --max-memory GB`), or back to the default (3/4 of the
/// machine's memory, or half of `ulimit -v`) for None; returns the budget
/// in bytes.
#[pyfunction]
#[pyo3(signature = (gb = None))]
pub fn set_max_memory(gb: Option<f64>) -> PyResult<u64> {
    let bytes = match gb {
        None => sparse_ae::memory::default_budget(),
        Some(gb) if gb.is_finite() && gb > 0.0 && gb <= 1e9 => (gb * 1e9).max(1.0) as u64,
        Some(gb) => {
            return Err(PyValueError::new_err(format!(
                "set_max_memory: gb must be a positive number of GB (at most 1e9), got {gb}"
            )));
        }
    };
    sparse_ae::memory::set_budget(bytes);
    Ok(sparse_ae::memory::budget())
}

/// [`preset_for_image`], refusing an `input` that is not the image's size.
fn image_preset(
    name: &str,
    input: Option<usize>,
    (c, h, w): (usize, usize, usize),
) -> sparse_ae::Result<ModelConfig> {
    let size = c.checked_mul(h).and_then(|v| v.checked_mul(w));
    match (input, size) {
        (Some(n), Some(size)) if n != size => Err(Error::config(
            "input",
            format!("{n} features, but an image of {c}×{h}×{w} has {size}"),
        )),
        _ => preset_for_image(name, (c, h, w)),
    }
}

/// Whether `text` is JSON rather than a path or a name: it opens an object
/// or an array (`[1]` was looked for as a file, and as a noise type).
fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with(['{', '['])
}

/// A configuration from a dict, JSON text, or the path of a JSON file.
fn config_from(config: &Bound<'_, PyAny>) -> PyResult<ModelConfig> {
    if let Ok(s) = config.cast::<PyString>() {
        let text = s.to_cow()?;
        if looks_like_json(&text) {
            return ModelConfig::from_json(&text).py_err();
        }
        return read_config(PathBuf::from(&*text));
    }
    if config.cast::<PyDict>().is_ok() {
        return ModelConfig::from_json(&json_text(config, "config")?).py_err();
    }
    if let Ok(p) = config.extract::<PathBuf>() {
        return read_config(p);
    }
    Err(PyValueError::new_err(format!(
        "config must be a dict, JSON text or the path of a JSON file, not {}",
        config.get_type().name()?
    )))
}

fn read_config(path: PathBuf) -> PyResult<ModelConfig> {
    ModelConfig::read(&path).py_err()
}

/// `obj` as JSON text, refusing what JSON cannot hold (NaN and ±inf, which
/// Python's `json` writes as bare words the engine's strict parser then
/// refused as "<memory>: invalid JSON"; objects) by `what`.
fn json_text(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let py = obj.py();
    let kw = PyDict::new(py);
    kw.set_item("allow_nan", false)?;
    py.import("json")?
        .call_method("dumps", (obj,), Some(&kw))
        .map_err(|e| {
            let msg = format!("{what}: cannot be written as JSON: {}", e.value(py));
            if e.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(msg)
            } else {
                PyValueError::new_err(msg)
            }
        })?
        .extract()
}

/// `cfg` with its input noise replaced: a number is Gaussian noise of that
/// standard deviation, a dict or JSON text the configuration's `noise` field.
fn with_noise(cfg: &ModelConfig, noise: &Bound<'_, PyAny>) -> PyResult<ModelConfig> {
    if noise.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "noise: expected the std of Gaussian noise (a number), a noise type name, a dict or JSON text; got bool",
        ));
    }
    if let Ok(std) = noise.extract::<f64>() {
        let mut c = cfg.clone();
        c.noise = Noise::Gaussian { std };
        c.validate().py_err()?;
        return Ok(c);
    }
    let py = noise.py();
    let text: String = match noise.cast::<PyString>() {
        Ok(s) if looks_like_json(&s.to_cow()?) => s.to_cow()?.into_owned(),
        // A bare type name ("none", "masking") is {"type": name}.
        Ok(s) => {
            let d = PyDict::new(py);
            d.set_item("type", s.to_cow()?.trim())?;
            json_text(d.as_any(), "noise")?
        }
        Err(_) => json_text(noise, "noise")?,
    };
    let noise_value = sparse_ae::io::json::parse(text.as_bytes()).py_err()?;
    let Value::Object(mut fields) = cfg.to_json_value() else {
        unreachable!("a configuration is a JSON object")
    };
    for (k, v) in &mut fields {
        if k == "noise" {
            *v = noise_value.clone();
        }
    }
    ModelConfig::from_json_value(&Value::Object(fields)).py_err()
}

/// An autoencoder of the sparse-ae engine.
///
/// Make one with `Autoencoder.preset(name)`, `Autoencoder.from_config(cfg)`,
/// `Autoencoder.load(path)` or `Autoencoder.from_state_dict(cfg, sd)`.
/// Inputs are arrays of samples × features (more axes are flattened into
/// the features) of float32, float64 or uint8 (scaled by 1/255), C- or
/// Fortran-ordered.
#[pyclass(name = "Autoencoder", module = "sparse_ae")]
pub struct PyAutoencoder {
    /// Shared with the calls that use it: a call takes the model (and its
    /// scale) and lets go of the object at once, so a long `encode` in one
    /// thread never holds the object another thread's `fit` must update,
    /// and a call whose input runs Python code (`__array__`) holds nothing.
    model: Arc<Autoencoder<f32>>,
    /// The input scale s its inputs are multiplied by (1 unless loaded from
    /// a model trained on normalised inputs).
    scale: f32,
    /// The seed its weights were drawn from; the default seed of `fit`.
    seed: u64,
    /// Whether a `fit` is training it (which another `fit` refuses).
    training: bool,
}

/// The model borrowed mutably, once no other thread is reading it (a call
/// holds it only while it takes its [`Snap`], or a getter while it reads);
/// the GIL is released while waiting.
fn borrow_mut_waiting<'py>(slf: &Bound<'py, PyAutoencoder>) -> PyRefMut<'py, PyAutoencoder> {
    loop {
        if let Ok(r) = slf.try_borrow_mut() {
            return r;
        }
        slf.py()
            .detach(|| std::thread::sleep(Duration::from_millis(1)));
    }
}

/// Marks the model not training when dropped: a `fit` that ends, fails or
/// panics lets the next one start.
struct Training<'a, 'py>(&'a Bound<'py, PyAutoencoder>);

impl Drop for Training<'_, '_> {
    fn drop(&mut self) {
        borrow_mut_waiting(self.0).training = false;
    }
}

/// What a call uses of the model, taken at its start (see
/// [`PyAutoencoder::model`]).
struct Snap {
    model: Arc<Autoencoder<f32>>,
    scale: f32,
}

impl Snap {
    fn of(slf: &Bound<'_, PyAutoencoder>) -> Snap {
        let this = slf.borrow();
        Snap {
            model: Arc::clone(&this.model),
            scale: this.scale,
        }
    }

    fn code_units(&self) -> usize {
        let c = self.model.config();
        c.width(c.code_layer)
    }
}

impl PyAutoencoder {
    fn new(cfg: ModelConfig, seed: u64) -> PyResult<PyAutoencoder> {
        Ok(PyAutoencoder {
            model: Arc::new(Autoencoder::new(cfg, seed).py_err()?),
            scale: 1.0,
            seed,
            training: false,
        })
    }

    fn code_units(&self) -> usize {
        let c = self.model.config();
        c.width(c.code_layer)
    }
}

#[pymethods]
impl PyAutoencoder {
    /// A preset model (see `sparse_ae.presets()`) for `input` features
    /// (default 784), its weights drawn from `seed`; or, with `image` =
    /// `(height, width)` or `(channels, height, width)`, for images of that
    /// shape, as `sparse-ae train --preset` builds it for IDX images (the
    /// convolutional presets pool as often as both sides allow). An `input`
    /// given beside `image` must be its size.
    #[staticmethod]
    #[pyo3(signature = (name, input = None, seed = None, image = None))]
    fn preset(
        name: &str,
        input: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        image: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<PyAutoencoder> {
        let input = input.map(|i| count(i, "input", 1)).transpose()?;
        let seed = seed.map(|s| whole(s, "seed", 0)).transpose()?.unwrap_or(0);
        let image = image
            .map(|dims| {
                dims.iter()
                    .map(|d| count(d, "image", 1))
                    .collect::<PyResult<Vec<usize>>>()
            })
            .transpose()?;
        let cfg = match image.as_deref() {
            None => preset(name, input.unwrap_or(784)),
            Some(&[h, w]) => image_preset(name, input, (1, h, w)),
            Some(&[c, h, w]) => image_preset(name, input, (c, h, w)),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "image must be (height, width) or (channels, height, width), got {} values",
                    other.len()
                )));
            }
        };
        PyAutoencoder::new(cfg.py_err()?, seed)
    }

    /// A model of a configuration (a dict, JSON text or the path of a JSON
    /// file, as `sparse-ae train --config` reads), its weights drawn from
    /// `seed`.
    #[staticmethod]
    #[pyo3(signature = (config, seed = None))]
    fn from_config(
        config: &Bound<'_, PyAny>,
        seed: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyAutoencoder> {
        let seed = seed.map(|s| whole(s, "seed", 0)).transpose()?.unwrap_or(0);
        PyAutoencoder::new(config_from(config)?, seed)
    }

    /// Loads a model file written by `save` or `sparse-ae train`.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyAutoencoder> {
        let (model, scale) = py.detach(|| load_model_scaled(&path)).py_err()?;
        Ok(PyAutoencoder {
            model: Arc::new(model),
            scale,
            seed: 0,
            training: false,
        })
    }

    /// Saves the model (safetensors with PyTorch names, the configuration
    /// and the input scale in its metadata), atomically.
    fn save(slf: &Bound<'_, Self>, path: PathBuf) -> PyResult<()> {
        let this = Snap::of(slf);
        slf.py()
            .detach(|| save_model_scaled(&path, &this.model, this.scale))
            .py_err()
    }

    /// A model of `config` with the parameters of `state_dict` (names and
    /// shapes as `state_dict()` gives them; values convertible to float32
    /// arrays, such as NumPy arrays or CPU torch tensors) and the input
    /// scale `input_scale` (a state dict holds tensors only: pass
    /// `m.input_scale` to rebuild a model trained on normalised inputs).
    #[staticmethod]
    #[pyo3(signature = (config, state_dict, input_scale = 1.0))]
    fn from_state_dict(
        config: &Bound<'_, PyAny>,
        state_dict: &Bound<'_, PyDict>,
        input_scale: f64,
    ) -> PyResult<PyAutoencoder> {
        let py = config.py();
        let cfg = config_from(config)?;
        cfg.validate().py_err()?;
        let scale =
            sparse_ae::io::model_file::input_scale_from_f64(input_scale, "input_scale").py_err()?;
        sparse_ae::io::model_file::check_input_scale(scale, &cfg, "input_scale").py_err()?;
        let layout = ParamLayout::new(&cfg);
        let np = py.import("numpy")?;
        let mut params = vec![0.0f32; layout.len];
        for t in &layout.tensors {
            let v = state_dict.get_item(&t.name)?.ok_or_else(|| {
                PyValueError::new_err(format!(
                    "state_dict: no tensor `{}` (the configuration needs shape {:?})",
                    t.name, t.shape
                ))
            })?;
            // The shape and the kind of values first: only then the
            // conversion (of as many values as the configuration needs).
            let raw: Bound<'_, PyUntypedArray> = np.call_method1("asarray", (&v,))?.cast_into()?;
            let name = format!("state_dict[{:?}]", t.name);
            if raw.shape() != t.shape.as_slice() {
                return Err(to_py(Error::shape(
                    "from_state_dict",
                    format!("`{}` of shape {:?}", t.name, t.shape),
                    format!("shape {:?} ({})", raw.shape(), raw.dtype()),
                )));
            }
            refuse_non_numbers(&v, &raw, &name, "parameters")?;
            let a = to_f32(raw.as_any()).map_err(|e| {
                PyValueError::new_err(format!("{name}: cannot be converted to float32: {e}"))
            })?;
            let a = a.cast_into::<PyArrayDyn<f32>>()?;
            let ro = a.readonly();
            let s = ro.as_slice()?;
            // Named by key, index and value: a value beyond float32's range
            // (which became ±Inf) as such; NaN and ±Inf as what they are.
            if let Some((i, x)) = overflow_at(raw.as_any(), s)? {
                return Err(PyValueError::new_err(format!(
                    "{name}{} is {x:e}, beyond float32's range (±{:e}): parameters are float32, where it would be infinite",
                    show_index(&unravel(i, &t.shape)),
                    f32::MAX
                )));
            }
            if let Some(i) = s.iter().position(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "{name}{} is {}: parameters must be finite numbers",
                    show_index(&unravel(i, &t.shape)),
                    s[i]
                )));
            }
            params[t.range()].copy_from_slice(s);
        }
        for k in state_dict.keys() {
            let k: String = k.extract()?;
            if layout.find(&k).is_none() {
                return Err(PyValueError::new_err(format!(
                    "state_dict: unexpected tensor `{k}` (not in this configuration)"
                )));
            }
        }
        Ok(PyAutoencoder {
            model: Arc::new(Autoencoder::with_params(cfg, params).py_err()?),
            scale,
            seed: 0,
            training: false,
        })
    }

    /// The parameters as `{name: float32 array}` with PyTorch's
    /// `nn.Sequential` names and shapes (`encoder.0.weight` is (out, in)),
    /// copies: `torch_model.load_state_dict({k: torch.from_numpy(v) ...})`.
    fn state_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let d = PyDict::new(py);
        for t in &this.model.layout().tensors {
            let a = PyArray1::from_slice(py, &this.model.params[t.range()]);
            d.set_item(&t.name, a.reshape(t.shape.clone())?)?;
        }
        Ok(d)
    }

    /// The configuration as a dict (`from_config` takes it back).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?
            .call_method1("loads", (self.model.config().to_json(),))
    }

    /// Features per sample.
    #[getter]
    fn input_dim(&self) -> usize {
        self.model.config().input
    }

    /// Units of the code.
    #[getter]
    fn code_dim(&self) -> usize {
        self.code_units()
    }

    /// The scale s inputs are multiplied by before they reach the model (1
    /// unless the model was trained on normalised inputs).
    #[getter]
    fn input_scale(&self) -> f32 {
        self.scale
    }

    /// Number of parameters.
    #[getter]
    fn n_params(&self) -> usize {
        self.model.params.len()
    }

    fn __repr__(&self) -> String {
        let c = self.model.config();
        let widths: Vec<String> = std::iter::once(c.input)
            .chain((0..c.layers.len()).map(|l| c.width(l)))
            .map(|w| w.to_string())
            .collect();
        format!(
            "Autoencoder({}, code {} units, {} parameters)",
            widths.join("-"),
            self.code_units(),
            self.model.params.len()
        )
    }

    /// Trains the model, as `sparse-ae train` does with the same arguments:
    /// the same configuration, seed and data give the same weights.
    ///
    /// Returns the per-epoch metrics as a dict of lists (Keras'
    /// `History.history`). Each call starts a fresh optimizer on the
    /// current weights. Ctrl-C stops between two steps and raises
    /// `KeyboardInterrupt`, the model keeping the weights of the last step.
    #[pyo3(signature = (
        x, epochs = None, batch_size = None, optimizer = "adam", lr = None, momentum = None,
        seed = None, validation_data = None, noise = None, noise_seed = None, shuffle = true,
        callbacks = None, verbose = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        epochs: Option<&Bound<'py, PyAny>>,
        batch_size: Option<&Bound<'py, PyAny>>,
        optimizer: &str,
        lr: Option<f64>,
        momentum: Option<f64>,
        seed: Option<&Bound<'py, PyAny>>,
        validation_data: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        noise_seed: Option<&Bound<'py, PyAny>>,
        shuffle: bool,
        callbacks: Option<&Bound<'py, PyAny>>,
        verbose: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // Keras' verbose=0/1/2 as well as a bool: 0 draws no progress bar.
        let verbose = match verbose.map(|v| (v, v.extract::<bool>())) {
            None => true,
            Some((_, Ok(b))) => b,
            Some((verbose, Err(_))) => match verbose.extract::<i64>() {
                Ok(0) => false,
                Ok(1 | 2) => true,
                _ => {
                    return Err(PyTypeError::new_err(format!(
                        "verbose: expected True, False, 0, 1 or 2, got {}",
                        verbose.repr()?
                    )));
                }
            },
        };
        // A list of callbacks, or one callback on its own.
        let callbacks: Option<Vec<Py<PyAny>>> = match callbacks {
            None => None,
            Some(c) if c.is_callable() || c.hasattr("on_epoch_end")? => Some(vec![c.clone().unbind()]),
            Some(c) => Some(c.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "callbacks: expected a list of callbacks (functions f(epoch, logs) or objects with on_epoch_end), or one, got {}",
                    c.get_type().name().map_or("?".into(), |n| n.to_string())
                ))
            })?),
        };
        let epochs = epochs
            .map(|e| count(e, "epochs", 0))
            .transpose()?
            .unwrap_or(10);
        let batch_size = batch_size
            .map(|b| count(b, "batch_size", 0))
            .transpose()?
            .unwrap_or(256);
        let seed = seed
            .map(|s| whole(s, "seed", 0))
            .transpose()?
            .unwrap_or(slf.borrow().seed);
        let noise_seed = noise_seed.map(|s| whole(s, "noise_seed", 0)).transpose()?;
        let opt = match optimizer.to_ascii_lowercase().as_str() {
            "adam" if momentum.is_some() => {
                return Err(to_py(Error::config(
                    "momentum",
                    "applies to optimizer=\"sgd\" only (Adam has no momentum setting)",
                )));
            }
            "adam" => OptimizerConfig::Adam(AdamConfig {
                lr: lr.unwrap_or(1e-3),
                ..AdamConfig::default()
            }),
            "sgd" => OptimizerConfig::Sgd(SgdConfig {
                lr: lr.unwrap_or(0.01),
                momentum: momentum.unwrap_or(0.9),
            }),
            o => {
                return Err(PyValueError::new_err(format!(
                    "optimizer must be \"adam\" or \"sgd\", got {o:?}"
                )));
            }
        };
        // Named as fit's arguments (lr, momentum), not as the optimizer's
        // fields (adam.lr, sgd.momentum).
        opt.validate().map_err(|e| match e {
            Error::Config { field, reason } => {
                let arg = field.rsplit('.').next().unwrap_or(&field).to_owned();
                to_py(Error::config(arg, reason))
            }
            e => to_py(e),
        })?;
        // Checked and set at once: a second fit (whose input conversion may
        // run Python code meanwhile) can never start on the same weights.
        {
            let mut this = borrow_mut_waiting(slf);
            if this.training {
                return Err(PyRuntimeError::new_err(
                    "fit: this model is being trained already (by a fit in another thread, or by the fit whose callback this is); wait for that fit to return",
                ));
            }
            this.training = true;
        }
        let _training = Training(slf);
        // The model is not borrowed while it trains: another thread, or a
        // callback, may use it meanwhile (and sees the weights of the last
        // epoch with callbacks, else those from before the call).
        let model = {
            let this = slf.borrow();
            match noise {
                Some(n) => {
                    let cfg = with_noise(this.model.config(), n)?;
                    Autoencoder::with_params(cfg, this.model.params.clone()).py_err()?
                }
                None => (*this.model).clone(),
            }
        };
        let xin = Input::new(x, "x")?;
        // Keras' (x_val, y_val) pair: an autoencoder's target is its input.
        let val = match validation_data {
            Some(v) if v.cast::<PyTuple>().is_ok() => {
                let t = v.cast::<PyTuple>()?;
                if !(1..=2).contains(&t.len()) {
                    return Err(PyValueError::new_err(format!(
                        "validation_data: expected an array or a tuple (x_val,) or (x_val, y_val), got a tuple of {} items",
                        t.len()
                    )));
                }
                Some(t.get_item(0)?)
            }
            Some(v) => Some(v.clone()),
            None => None,
        };
        let vin = val
            .as_ref()
            .map(|v| Input::new(v, "validation_data"))
            .transpose()?;
        {
            let this = slf.borrow();
            let c = this.model.config();
            xin.check_image(c.input, c.image)?;
            if let Some(v) = &vin {
                v.check_image(c.input, c.image)?;
            }
        }
        // As `sparse-ae train` (and Keras): a batch larger than the data is
        // cut to all of it, which is said.
        let batch_size = if batch_size > xin.n && xin.n > 0 {
            let n = xin.n;
            let samples = if n == 1 { "sample" } else { "samples" };
            let msg = format!(
                "batch_size {batch_size} is more than the {n} training {samples}: training with batch size {n}"
            );
            let msg = std::ffi::CString::new(msg).expect("no NUL in the message");
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
            n
        } else {
            batch_size
        };
        // Without the GIL (its buffers may take a while to allocate). It
        // waits for no pool thread: one may be running another fit's loop,
        // held by a callback that waits for this thread (making a trainer
        // waited for every pool thread, holding the GIL here deadlocked two
        // threads' fits, and without it a callback waiting for this fit to
        // start still did).
        let noise_seed = noise_seed.unwrap_or(seed ^ 0x5eed_5eed);
        let mut trainer = py
            .detach(|| Trainer::new(model, opt, batch_size, noise_seed))
            .py_err()?;
        let opts = FitOptions {
            epochs,
            max_steps: None,
            shuffle,
            shuffle_seed: seed,
            eval_batch: train::EVAL_BATCH,
        };
        let callbacks = callbacks.unwrap_or_default();
        // Checked now, not after the first epoch's training.
        for (i, cb) in callbacks.iter().enumerate() {
            let cb = cb.bind(py);
            // An object's on_epoch_end is what is called, so it must be callable.
            let usable = match cb.getattr_opt("on_epoch_end")? {
                Some(m) => m.is_callable(),
                None => cb.is_callable(),
            };
            if !usable {
                return Err(PyTypeError::new_err(format!(
                    "callbacks[{i}]: expected a function f(epoch, logs) or an object with on_epoch_end(epoch, logs), got {}",
                    cb.get_type().name()?
                )));
            }
        }
        // The weights a fit that goes NaN gives back: the model's until the
        // first callback sees (and the model takes) an epoch's.
        let before = (!callbacks.is_empty()).then(|| slf.borrow().model.clone());
        let shared = Shared::default();
        let handle: Py<PyAutoencoder> = slf.clone().unbind();
        let publish = |py: Python<'_>, m: &Autoencoder<f32>| {
            borrow_mut_waiting(handle.bind(py)).model = Arc::new(m.clone());
        };
        let mut obs = PyObserver {
            publish: &publish,
            shared: &shared,
            callbacks: &callbacks,
            history: Vec::new(),
            error: None,
            with_val: vin.is_some(),
        };
        let (xv, vv) = (xin.view(), vin.as_ref().map(|v| (v.view(), v.dim)));
        let (dim, scale) = (xin.dim, slf.borrow().scale);
        let steps = (xin.n / batch_size).saturating_mul(epochs);
        let mut bar = Bar::new(py, steps as u64, verbose);
        let mut interrupted = None;
        let result = std::thread::scope(|s| {
            let worker = std::thread::Builder::new().spawn_scoped(s, || {
                let _done = shared.done_on_drop();
                xv.with_samples(dim, scale, |train| match &vv {
                    Some((v, vdim)) => v.with_samples(*vdim, scale, |test| {
                        fit(&mut trainer, train, Some(test), &opts, &mut obs)
                    }),
                    None => fit(&mut trainer, train, None, &opts, &mut obs),
                })
            });
            // A thread the system will not start is an error (nothing ran).
            let worker = match worker {
                Ok(w) => w,
                Err(e) => return Err(e),
            };
            while !py.detach(|| shared.wait_done(POLL)) {
                if interrupted.is_none()
                    && let Err(e) = py.check_signals()
                {
                    interrupted = Some(e);
                    shared.stop.store(true, Ordering::Relaxed);
                }
                bar.update(
                    shared.steps.load(Ordering::Relaxed),
                    f64::from_bits(shared.loss.load(Ordering::Relaxed)),
                );
            }
            Ok(worker.join())
        });
        let result = match result {
            Ok(joined) => joined,
            Err(e) => {
                bar.close();
                return Err(to_py(sparse_ae::parallel::thread_refused(
                    "the training thread",
                    &e,
                )));
            }
        };
        bar.update(
            shared.steps.load(Ordering::Relaxed),
            f64::from_bits(shared.loss.load(Ordering::Relaxed)),
        );
        bar.close();
        // Whatever else happened, the model is the trainer's: whole steps
        // only. Steps that went NaN or Inf leave it as it was before the
        // call (whose weights may be huge or infinite by then).
        {
            let diverged = matches!(&result, Ok(Err(Error::NonFinite { step, .. })) if *step > 0);
            let mut this = borrow_mut_waiting(slf);
            match (diverged, before) {
                (false, _) => this.model = Arc::new(trainer.model),
                (true, Some(before)) => this.model = before,
                (true, None) => {}
            }
        }
        let result = result.map_err(|_| PyRuntimeError::new_err("the training thread panicked"))?;
        if let Some(e) = interrupted {
            return Err(e);
        }
        if let Some(e) = obs.error {
            return Err(e);
        }
        result.py_err()?;
        history(py, &obs.history, vin.is_some())
    }

    /// The code of each sample, float32 (samples, code units).
    fn encode<'py>(slf: &Bound<'py, Self>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let xin = Input::new(x, "encode")?;
        let c = this.model.config();
        xin.check_image(c.input, c.image)?;
        let v = xin.view();
        let codes = py
            .detach(|| v.with_samples(xin.dim, this.scale, |s| train::encode(&this.model, s)))
            .py_err()?;
        Ok(codes
            .into_pyarray(py)
            .reshape([xin.n, this.code_units()])?
            .into_any())
    }

    /// The decoder's output for codes (samples, code units), float32
    /// (samples, features), in input space.
    fn decode<'py>(slf: &Bound<'py, Self>, z: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let zin = Input::new(z, "decode")?;
        let units = this.code_units();
        if zin.dim != units {
            return Err(to_py(Error::shape(
                "decode",
                format!("codes of {units} units"),
                format!("shape {:?}", zin.shape),
            )));
        }
        let v = zin.view();
        v.check_copy().py_err()?;
        if let Some((i, x)) = v.first_beyond_f32() {
            return Err(to_py(sparse_ae::data::beyond_f32_error(
                format!("the codes: code {}, unit {}", i / units, i % units),
                x,
            )));
        }
        let out = py
            .detach(|| {
                v.with_f32(|z| {
                    if let Some(i) = z.iter().position(|v| !v.is_finite()) {
                        return Err(Error::NonFinite {
                            step: 0,
                            tensor: format!("the codes: code {}, unit {}", i / units, i % units),
                        });
                    }
                    train::decode(&this.model, z, this.scale)
                })
            })
            .py_err()?;
        Ok(out
            .into_pyarray(py)
            .reshape([zin.n, this.model.config().input])?
            .into_any())
    }

    /// The reconstruction of each sample, float32, in the shape of `x`.
    fn reconstruct<'py>(
        slf: &Bound<'py, Self>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let xin = Input::new(x, "reconstruct")?;
        let c = this.model.config();
        xin.check_image(c.input, c.image)?;
        let v = xin.view();
        let out = py
            .detach(|| v.with_samples(xin.dim, this.scale, |s| train::reconstruct(&this.model, s)))
            .py_err()?;
        Ok(out.into_pyarray(py).reshape(xin.shape.clone())?.into_any())
    }

    /// Each sample's reconstruction error under the model's loss (mean over
    /// features), float32 (samples,): higher is less typical.
    fn score<'py>(slf: &Bound<'py, Self>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let xin = Input::new(x, "score")?;
        let c = this.model.config();
        xin.check_image(c.input, c.image)?;
        let v = xin.view();
        let out = py
            .detach(|| v.with_samples(xin.dim, this.scale, |s| train::score(&this.model, s)))
            .py_err()?;
        Ok(out.into_pyarray(py).into_any())
    }

    /// The loss and its parts, MSE, FVU, L0 and dead units over `x`, as
    /// `sparse-ae eval --json` prints them: a KL penalty's ρ̂ is each
    /// unit's mean over all of `x`, and a BatchTopK model selects over
    /// blocks of 1000 samples (the results depend on neither the memory
    /// budget nor the threads).
    fn evaluate<'py>(
        slf: &Bound<'py, Self>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        let xin = Input::new(x, "evaluate")?;
        let c = this.model.config();
        xin.check_image(c.input, c.image)?;
        let v = xin.view();
        let ((l, stats), ex) = py
            .detach(|| {
                v.with_samples(xin.dim, this.scale, |s| {
                    Ok((
                        evaluate_all(&this.model, s, train::EVAL_BATCH)?,
                        explained(&this.model, s)?,
                    ))
                })
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("samples", xin.n)?;
        d.set_item("loss", l.total())?;
        d.set_item("recon", l.recon)?;
        d.set_item("l1", l.l1)?;
        d.set_item("kl", l.kl)?;
        d.set_item("l2", l.l2)?;
        d.set_item("mse", ex.mse)?;
        d.set_item("fvu", ex.fvu)?;
        d.set_item("l0", stats.l0())?;
        d.set_item("dead_units", stats.dead())?;
        d.set_item("code_units", this.code_units())?;
        Ok(d)
    }

    /// Checks the analytic gradient of the model at its current weights
    /// against central differences in f64, on `batch` random samples (as
    /// `sparse-ae gradcheck`). Returns `{"passed", "max_rel_err",
    /// "tensors": {name: max relative error}}`.
    #[pyo3(signature = (batch = None, entries = None, seed = None, tolerance = 1e-6))]
    fn gradcheck<'py>(
        slf: &Bound<'py, Self>,
        batch: Option<&Bound<'py, PyAny>>,
        entries: Option<&Bound<'py, PyAny>>,
        seed: Option<&Bound<'py, PyAny>>,
        tolerance: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (py, this) = (slf.py(), Snap::of(slf));
        // 0 reaches check_request, which says what the CLI says of it.
        let batch = batch
            .map(|b| count(b, "batch", 0))
            .transpose()?
            .unwrap_or(4);
        let entries = entries
            .map(|e| count(e, "entries", 0))
            .transpose()?
            .unwrap_or(64);
        let seed = seed.map(|s| whole(s, "seed", 0)).transpose()?.unwrap_or(0);
        let names = ArgNames {
            batch: "batch",
            entries: "entries",
            tolerance: "tolerance",
        };
        check_request(this.model.config(), batch, entries, tolerance, names).py_err()?;
        let report = py
            .detach(|| {
                let model = this.model.cast::<f64>();
                let input_len = model.config().input;
                let mut rng = Rng::new(seed ^ 0xda7a);
                let clean: Vec<f64> = (0..batch * input_len).map(|_| rng.next_f64()).collect();
                let mut input = clean.clone();
                apply_noise(model.config().noise, &mut rng, &clean, &mut input);
                let opts = CheckOptions {
                    max_entries: entries,
                    seed,
                    tolerance,
                    ..CheckOptions::default()
                };
                check_model(&model, &input, &clean, batch, &opts)
            })
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("passed", report.passed())?;
        d.set_item("max_rel_err", report.max_rel_err())?;
        let t = PyDict::new(py);
        for r in &report.tensors {
            t.set_item(&r.name, r.max_rel_err)?;
        }
        d.set_item("tensors", t)?;
        Ok(d)
    }
}
