//! NumPy arrays in: float32, float64 and uint8 (scaled by 1/255), C- or
//! Fortran-ordered, `(samples, features…)`; booleans and other integers
//! only when every value is 0 or 1 (0–255 in int64 would be neither pixels
//! nor what uint8 gives), object arrays of integers alike; object arrays
//! of text are refused as arrays of strings are. A C-ordered float32 or uint8
//! array is read where it lies; any other is converted once, to C-ordered
//! float32 (or uint8 for a Fortran-ordered uint8 array), inside the call
//! that uses it, with the GIL released.

use numpy::ndarray::ArrayViewD;
use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods, dtype,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString};
use sparse_ae::train::Samples;
use sparse_ae::{Result, memory};

/// `arr` as a C-ordered float32 array, converted by NumPy without its
/// warnings for values beyond float32's range (they become ±Inf, which the
/// caller looks for and names: see [`overflow_at`]).
///
/// # Errors
/// NumPy's, for what cannot be converted.
pub fn to_f32<'py>(arr: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = arr.py();
    let np = py.import("numpy")?;
    let kw = PyDict::new(py);
    kw.set_item("over", "ignore")?;
    kw.set_item("invalid", "ignore")?;
    let quiet = np.call_method("errstate", (), Some(&kw))?;
    quiet.call_method0("__enter__")?;
    let converted = np.call_method1("ascontiguousarray", (arr, dtype::<f32>(py)));
    quiet.call_method1("__exit__", (py.None(), py.None(), py.None()))?;
    converted
}

/// Where the float32 conversion `f32s` of `arr` first holds ±Inf for a
/// finite value (one beyond float32's range): its index in C order and the
/// value. `None` when its first non-finite value was NaN or ±Inf already
/// (or there is none).
pub fn overflow_at(arr: &Bound<'_, PyAny>, f32s: &[f32]) -> PyResult<Option<(usize, f64)>> {
    let Some(i) = f32s.iter().position(|v| !v.is_finite()) else {
        return Ok(None);
    };
    let value = arr.getattr("flat")?.get_item(i)?;
    let Ok(x) = value.extract::<f64>() else {
        return Ok(None);
    };
    if !x.is_finite() {
        return Ok(None);
    }
    Ok(Some((i, x)))
}

/// The index along each axis of C-order index `i` in an array of `shape`.
pub fn unravel(i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    let mut rest = i;
    for (k, &n) in shape.iter().enumerate().rev() {
        index[k] = rest % n.max(1);
        rest /= n.max(1);
    }
    index
}

/// An index along each axis, as Python writes it (`[1, 2]`).
pub fn show_index(index: &[usize]) -> String {
    let parts: Vec<String> = index.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The array, borrowed read-only for the duration of a call.
enum Held<'py> {
    U8(PyReadonlyArrayDyn<'py, u8>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

/// An input array of `n` samples of `dim` features.
pub struct Input<'py> {
    held: Held<'py>,
    /// The argument's name, for errors.
    what: String,
    /// The bytes of a converted copy made by NumPy, counted against the
    /// memory budget while the input lives.
    _counted: memory::Held,
    /// Samples (the first axis).
    pub n: usize,
    /// Features per sample (the product of the other axes).
    pub dim: usize,
    /// The array's shape.
    pub shape: Vec<usize>,
}

fn borrow_err(what: &str, e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{what}: the array cannot be read: {e}"))
}

/// Refuses `x` (as the array `arr`) when it is not real numbers, which
/// NumPy would convert without a word: complex (imaginary parts dropped),
/// datetime and timedelta, strings (parsed), records, and a masked array
/// with masked values (the values under the mask read). `what` names the
/// argument, `as_what` what it was to be used as.
///
/// # Errors
/// `ValueError` naming the argument and what it holds.
pub fn refuse_non_numbers(
    x: &Bound<'_, PyAny>,
    arr: &Bound<'_, PyUntypedArray>,
    what: &str,
    as_what: &str,
) -> PyResult<()> {
    let np = x.py().import("numpy")?;
    if x.hasattr("mask")?
        && np
            .getattr("ma")?
            .call_method1("is_masked", (x,))?
            .is_truthy()?
    {
        return Err(PyValueError::new_err(format!(
            "{what}: a masked array with masked values: they would be read as the values under the mask; fill them (x.filled(v)) or drop them"
        )));
    }
    let dt = arr.dtype();
    // An object array of text: NumPy parses each string as a number, which
    // it refuses to do for an array of strings.
    if dt.kind() == b'O' {
        let flat = arr.call_method0("ravel")?;
        for (i, v) in flat.try_iter()?.enumerate() {
            let v = v?;
            if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
                let d = arr.shape().iter().skip(1).product::<usize>().max(1);
                return Err(PyValueError::new_err(format!(
                    "{what}: cannot use an array of dtype object as float32 {as_what}: it holds text ({} at sample {}, feature {}), not numbers; pass real numbers (float32, float64 or uint8)",
                    v.repr()?,
                    i / d,
                    i % d
                )));
            }
        }
    }
    let kind = match dt.kind() {
        b'c' => "complex numbers, whose imaginary parts would be dropped",
        b'm' | b'M' => "times, not measurements",
        b'S' | b'U' => "text, not numbers",
        b'V' => "records (or raw bytes), not numbers",
        _ => return Ok(()),
    };
    Err(PyValueError::new_err(format!(
        "{what}: cannot use an array of dtype {dt} as float32 {as_what}: it holds {kind}; pass real numbers (float32, float64 or uint8)"
    )))
}

/// Whether `arr` is an object array of integers only (Python ints, NumPy
/// integers and booleans): what NumPy makes of a list of ints with one
/// beyond int64's range, or of `x.astype(object)` of an integer array.
/// Such an array follows the rule of integer arrays: only 0 and 1.
fn all_integers(arr: &Bound<'_, PyAny>) -> PyResult<bool> {
    let arr = arr.cast::<PyUntypedArray>()?;
    if arr.dtype().kind() != b'O' {
        return Ok(false);
    }
    let np = arr.py().import("numpy")?;
    let (integer, boolean) = (np.getattr("integer")?, np.getattr("bool_")?);
    for v in arr.call_method0("ravel")?.try_iter()? {
        let v = v?;
        if !(v.is_instance_of::<PyInt>() || v.is_instance(&integer)? || v.is_instance(&boolean)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl<'py> Input<'py> {
    /// Takes `x` (an ndarray or anything `numpy.asarray` accepts) as
    /// samples; `what` names the argument in errors.
    ///
    /// # Errors
    /// `ValueError` for fewer than two dimensions or values NumPy cannot
    /// convert to float32.
    pub fn new(x: &Bound<'py, PyAny>, what: &str) -> PyResult<Input<'py>> {
        let py = x.py();
        let np = py.import("numpy")?;
        let arr: Bound<'py, PyUntypedArray> = match x.cast::<PyUntypedArray>() {
            Ok(a) => a.clone(),
            Err(_) => np.call_method1("asarray", (x,))?.cast_into()?,
        };
        refuse_non_numbers(x, &arr, what, "samples")?;
        let dt = arr.dtype();
        let shape = arr.shape().to_vec();
        // Values per sample (1 for an array of fewer than two axes, refused
        // below once its values are known to be numbers).
        let per_sample = shape.iter().skip(1).product::<usize>();
        let mut counted = memory::Held::default();
        let held = if dt.is_equiv_to(&dtype::<u8>(py)) {
            let a = arr.cast::<PyArrayDyn<u8>>()?;
            Held::U8(a.try_readonly().map_err(|e| borrow_err(what, e))?)
        } else if dt.is_equiv_to(&dtype::<f32>(py)) {
            let a = arr.cast::<PyArrayDyn<f32>>()?;
            Held::F32(a.try_readonly().map_err(|e| borrow_err(what, e))?)
        } else if dt.is_equiv_to(&dtype::<f64>(py)) {
            let a = arr.cast::<PyArrayDyn<f64>>()?;
            Held::F64(a.try_readonly().map_err(|e| borrow_err(what, e))?)
        } else {
            // Any other number type (int, bool, float16, big-endian): one
            // conversion by NumPy, with its own error for what cannot be,
            // once the budget has room for it.
            let bytes = memory::f32_bytes(arr.len());
            memory::check(&copy_what(what, &shape, "float32"), bytes)
                .map_err(crate::errors::to_py)?;
            counted = memory::Held::new(bytes);
            let conv = to_f32(arr.as_any()).map_err(|e| {
                PyValueError::new_err(format!(
                    "{what}: cannot use an array of dtype {dt} as float32 samples: {e}"
                ))
            })?;
            let a = conv.cast_into::<PyArrayDyn<f32>>()?;
            let ro = a.try_readonly().map_err(|e| borrow_err(what, e))?;
            // A value beyond float32's range (a long double, a Python int of
            // 40 digits) became ±Inf: named by what it was.
            if let Some(s) = ro.as_slice().ok()
                && let Some((i, x)) = overflow_at(arr.as_any(), s)?
            {
                let d = per_sample.max(1);
                return Err(crate::errors::to_py(sparse_ae::data::beyond_f32_error(
                    format!("{what}: sample {}, feature {}", i / d, i % d),
                    x,
                )));
            }
            // Integers other than uint8 are not pixels: 0–255 in int64 (say,
            // uint8 images after arithmetic) were taken as 0–255 where the
            // same uint8 ones are scaled to [0, 1]. Only 0 and 1, the same
            // either way, are taken.
            if (matches!(dt.kind(), b'i' | b'u') || all_integers(arr.as_any())?)
                && let Ok(s) = ro.as_slice()
                && let Some(i) = s.iter().position(|v| !(0.0..=1.0).contains(v))
            {
                let d = per_sample.max(1);
                let value = arr.getattr("flat")?.get_item(i)?.str()?.to_string();
                let array = match dt.kind() {
                    b'O' => "an object array of integers".to_string(),
                    _ => format!("an integer array of dtype {dt}"),
                };
                return Err(PyValueError::new_err(format!(
                    "{what}: {array} holds {value} (sample {}, feature {}), outside [0, 1]: only uint8 is read as pixels (scaled by 1/255), and other integers would be taken as they are; pass x.astype(np.float32) to use the values as they are, or x / 255 for 0–255 pixels",
                    i / d,
                    i % d
                )));
            }
            Held::F32(ro)
        };
        if shape.len() < 2 {
            return Err(PyValueError::new_err(format!(
                "{what}: expected an array of samples × features (2-D, or more with the features in the trailing axes), got shape {shape:?}; reshape one sample with x.reshape(1, -1)"
            )));
        }
        let dim = per_sample;
        if dim == 0 {
            return Err(PyValueError::new_err(format!(
                "{what}: an array of shape {shape:?} has samples of no features; a sample needs at least one"
            )));
        }
        Ok(Input {
            held,
            what: what.to_owned(),
            _counted: counted,
            n: shape[0],
            dim,
            shape,
        })
    }

    /// Refuses samples of more than one axis whose shape is not the image
    /// shape `image` (channels, height, width) of a model that takes
    /// `input` features: with as many values, they would be read in the
    /// wrong shape (`sparse-ae` refuses such IDX images too). Flat samples
    /// `(n, features)` have no shape to check.
    ///
    /// # Errors
    /// `ValueError` naming the argument and both shapes.
    pub fn check_image(&self, input: usize, image: Option<(usize, usize, usize)>) -> PyResult<()> {
        let trailing = &self.shape[1..];
        let Some((c, h, w)) = image else {
            return Ok(());
        };
        if trailing.len() < 2 || self.dim != input {
            return Ok(());
        }
        let fits = match trailing {
            [th, tw] => c == 1 && (*th, *tw) == (h, w),
            [tc, th, tw] => (*tc, *th, *tw) == (c, h, w),
            _ => false,
        };
        if fits {
            return Ok(());
        }
        let shown: Vec<String> = trailing.iter().map(|d| d.to_string()).collect();
        Err(PyValueError::new_err(format!(
            "{}: the model takes images of {c}×{h}×{w} (channels × height × width), but the samples are {}: their {} values would be read in the wrong shape; reshape them to (n, {c}, {h}, {w}), or to (n, {input}) if their order is the model's",
            self.what,
            shown.join("×"),
            self.dim
        )))
    }

    /// A view to use with the GIL released.
    pub fn view(&self) -> View<'_> {
        let values = match &self.held {
            Held::U8(a) => Values::U8(a.as_array()),
            Held::F32(a) => Values::F32(a.as_array()),
            Held::F64(a) => Values::F64(a.as_array()),
        };
        View {
            values,
            what: &self.what,
        }
    }
}

/// What a converted copy of `what` (of `shape`) is called in errors.
fn copy_what(what: &str, shape: &[usize], to: &str) -> String {
    format!("{what}: a C-ordered {to} copy of the array of shape {shape:?}")
}

/// The values of an [`Input`], safe to send to another thread.
pub enum Values<'a> {
    /// Bytes, scaled by 1/255 when gathered.
    U8(ArrayViewD<'a, u8>),
    /// Single precision.
    F32(ArrayViewD<'a, f32>),
    /// Double precision (rounded to single once).
    F64(ArrayViewD<'a, f64>),
}

/// The values of an [`Input`] and its name.
pub struct View<'a> {
    values: Values<'a>,
    what: &'a str,
}

/// `f` of the values of `v` as one C-ordered `Vec`, made (by `conv`) only
/// once the memory budget has room for it (an array broadcast to billions
/// of rows holds no memory, but its copy would), and counted as held while
/// `f` runs.
fn with_copy<T: Copy, U, R>(
    v: &ArrayViewD<'_, T>,
    what: &str,
    to: &str,
    conv: impl Fn(T) -> U,
    f: impl FnOnce(&[U]) -> R,
) -> Result<R> {
    let bytes = memory::bytes(v.len(), std::mem::size_of::<U>());
    memory::check(&copy_what(what, v.shape(), to), bytes)?;
    let _held = memory::Held::new(bytes);
    let c: Vec<U> = v.iter().map(|&x| conv(x)).collect();
    Ok(f(&c))
}

/// The engine's error for "the data" (a NaN in it) naming the argument
/// `what` instead (`validation_data` and `x` had the same message).
fn named(e: sparse_ae::Error, what: &str) -> sparse_ae::Error {
    match e {
        sparse_ae::Error::NonFinite { step, tensor } => sparse_ae::Error::NonFinite {
            step,
            tensor: match tensor.strip_prefix("the data") {
                Some(rest) => format!("{what}{rest}"),
                None => tensor,
            },
        },
        e => e,
    }
}

impl View<'_> {
    /// Calls `f` with the values as samples of `dim` features multiplied by
    /// `scale`: borrowed if C-ordered float32 or uint8, else from one
    /// C-ordered copy.
    ///
    /// # Errors
    /// The engine's errors for values that are not samples (NaN, a zero
    /// width), [`sparse_ae::Error::Memory`] for a copy the memory budget
    /// has no room for, and any error of `f`.
    pub fn with_samples<R>(
        &self,
        dim: usize,
        scale: f32,
        f: impl FnOnce(Samples<'_>) -> Result<R>,
    ) -> Result<R> {
        let what = self.what;
        match &self.values {
            Values::U8(v) => match v.as_slice() {
                Some(s) => f(Samples::u8(s, dim)?.scaled(scale)?),
                None => with_copy(
                    v,
                    what,
                    "uint8",
                    |x| x,
                    |c| f(Samples::u8(c, dim)?.scaled(scale)?),
                )?,
            },
            Values::F32(v) => match v.as_slice() {
                Some(s) => f(Samples::f32(s, dim)
                    .map_err(|e| named(e, what))?
                    .scaled(scale)?),
                None => with_copy(
                    v,
                    what,
                    "float32",
                    |x| x,
                    |c| {
                        f(Samples::f32(c, dim)
                            .map_err(|e| named(e, what))?
                            .scaled(scale)?)
                    },
                )?,
            },
            Values::F64(v) => {
                // The budget first: the scan below reads every value.
                self.check_copy()?;
                if let Some((i, x)) = self.first_beyond_f32() {
                    let d = dim.max(1);
                    return Err(sparse_ae::data::beyond_f32_error(
                        format!("{what}: sample {}, feature {}", i / d, i % d),
                        x,
                    ));
                }
                with_copy(
                    v,
                    what,
                    "float32",
                    |x| x as f32,
                    |c| {
                        f(Samples::f32(c, dim)
                            .map_err(|e| named(e, what))?
                            .scaled(scale)?)
                    },
                )?
            }
        }
    }

    /// The first float64 value (index in C order, value) too large for
    /// float32, which it would become ±Inf in.
    pub fn first_beyond_f32(&self) -> Option<(usize, f64)> {
        match &self.values {
            Values::F64(v) => v
                .iter()
                .enumerate()
                .find(|&(_, &x)| sparse_ae::data::beyond_f32(x))
                .map(|(i, &x)| (i, x)),
            _ => None,
        }
    }

    /// The values as C-ordered float32 (uint8 scaled by 1/255), borrowed
    /// when they already are.
    ///
    /// # Errors
    /// [`sparse_ae::Error::Memory`] for a copy the memory budget has no
    /// room for, and any error of `f`.
    pub fn with_f32<R>(&self, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
        let what = self.what;
        match &self.values {
            Values::F32(v) => match v.as_slice() {
                Some(s) => f(s),
                None => with_copy(v, what, "float32", |x| x, f)?,
            },
            Values::F64(v) => with_copy(v, what, "float32", |x| x as f32, f)?,
            Values::U8(v) => with_copy(v, what, "float32", |x| f32::from(x) / 255.0, f)?,
        }
    }

    /// Refuses a float32 copy of the values that the memory budget has no
    /// room for (none is needed for C-ordered float32 or uint8), before
    /// anything reads them.
    ///
    /// # Errors
    /// [`sparse_ae::Error::Memory`].
    pub fn check_copy(&self) -> Result<()> {
        let (len, elem, to) = match &self.values {
            Values::F32(v) if v.is_standard_layout() => return Ok(()),
            Values::U8(v) if v.is_standard_layout() => return Ok(()),
            Values::U8(v) => (v.len(), 1, "uint8"),
            Values::F32(v) => (v.len(), 4, "float32"),
            Values::F64(v) => (v.len(), 4, "float32"),
        };
        let shape = match &self.values {
            Values::U8(v) => v.shape(),
            Values::F32(v) => v.shape(),
            Values::F64(v) => v.shape(),
        };
        memory::check(&copy_what(self.what, shape, to), memory::bytes(len, elem))
    }
}
