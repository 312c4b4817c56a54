//! NumPy arrays in: float32, float64 and uint8 (scaled by 1/255), C- or
//! Fortran-ordered, `(samples, features…)`. A C-ordered float32 or uint8
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
use sparse_ae::Result;
use sparse_ae::train::Samples;

/// The array, borrowed read-only for the duration of a call.
enum Held<'py> {
    U8(PyReadonlyArrayDyn<'py, u8>),
    F32(PyReadonlyArrayDyn<'py, f32>),
    F64(PyReadonlyArrayDyn<'py, f64>),
}

/// An input array of `n` samples of `dim` features.
pub struct Input<'py> {
    held: Held<'py>,
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
        let dt = arr.dtype();
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
            // conversion by NumPy, with its own error for what cannot be.
            let conv = np
                .call_method1("ascontiguousarray", (&arr, dtype::<f32>(py)))
                .map_err(|e| {
                    PyValueError::new_err(format!(
                        "{what}: cannot use an array of dtype {dt} as float32 samples: {e}"
                    ))
                })?;
            let a = conv.cast_into::<PyArrayDyn<f32>>()?;
            Held::F32(a.try_readonly().map_err(|e| borrow_err(what, e))?)
        };
        let shape = arr.shape().to_vec();
        if shape.len() < 2 {
            return Err(PyValueError::new_err(format!(
                "{what}: expected an array of samples × features (2-D, or more with the features in the trailing axes), got shape {shape:?}; reshape one sample with x.reshape(1, -1)"
            )));
        }
        let dim = shape[1..].iter().product();
        Ok(Input {
            held,
            n: shape[0],
            dim,
            shape,
        })
    }

    /// A view to use with the GIL released.
    pub fn view(&self) -> View<'_> {
        match &self.held {
            Held::U8(a) => View::U8(a.as_array()),
            Held::F32(a) => View::F32(a.as_array()),
            Held::F64(a) => View::F64(a.as_array()),
        }
    }
}

/// The values of an [`Input`], safe to send to another thread.
pub enum View<'a> {
    /// Bytes, scaled by 1/255 when gathered.
    U8(ArrayViewD<'a, u8>),
    /// Single precision.
    F32(ArrayViewD<'a, f32>),
    /// Double precision (rounded to single once).
    F64(ArrayViewD<'a, f64>),
}

impl View<'_> {
    /// Calls `f` with the values as samples of `dim` features multiplied by
    /// `scale`: borrowed if C-ordered float32 or uint8, else from one
    /// C-ordered copy.
    ///
    /// # Errors
    /// The engine's errors for values that are not samples (NaN, a zero
    /// width), and any error of `f`.
    pub fn with_samples<R>(
        &self,
        dim: usize,
        scale: f32,
        f: impl FnOnce(Samples<'_>) -> Result<R>,
    ) -> Result<R> {
        match self {
            View::U8(v) => match v.as_slice() {
                Some(s) => f(Samples::u8(s, dim)?.scaled(scale)?),
                None => {
                    let c: Vec<u8> = v.iter().copied().collect();
                    f(Samples::u8(&c, dim)?.scaled(scale)?)
                }
            },
            View::F32(v) => match v.as_slice() {
                Some(s) => f(Samples::f32(s, dim)?.scaled(scale)?),
                None => {
                    let c: Vec<f32> = v.iter().copied().collect();
                    f(Samples::f32(&c, dim)?.scaled(scale)?)
                }
            },
            View::F64(v) => {
                if let Some((i, x)) = self.first_beyond_f32() {
                    let d = dim.max(1);
                    return Err(sparse_ae::data::beyond_f32_error(
                        format!("the data: sample {}, feature {}", i / d, i % d),
                        x,
                    ));
                }
                let c: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                f(Samples::f32(&c, dim)?.scaled(scale)?)
            }
        }
    }

    /// The first float64 value (index in C order, value) too large for
    /// float32, which it would become ±Inf in.
    pub fn first_beyond_f32(&self) -> Option<(usize, f64)> {
        match self {
            View::F64(v) => v
                .iter()
                .enumerate()
                .find(|&(_, &x)| sparse_ae::data::beyond_f32(x))
                .map(|(i, &x)| (i, x)),
            _ => None,
        }
    }

    /// The values as C-ordered float32 (uint8 scaled by 1/255), borrowed
    /// when they already are.
    pub fn with_f32<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        match self {
            View::F32(v) => match v.as_slice() {
                Some(s) => f(s),
                None => f(&v.iter().copied().collect::<Vec<f32>>()),
            },
            View::F64(v) => f(&v.iter().map(|&x| x as f32).collect::<Vec<f32>>()),
            View::U8(v) => f(&v
                .iter()
                .map(|&x| f32::from(x) / 255.0)
                .collect::<Vec<f32>>()),
        }
    }
}
