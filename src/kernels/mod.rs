//! The numerical kernels: GEMM, the elementwise operations of a training
//! step and the sparse products of k-sparse codes, each with a portable scalar twin and SIMD paths chosen at run time.
//!
//! This module is the only place with `unsafe` code; everything it exports is
//! safe. Public functions check their slice lengths before any pointer is
//! formed; a length or shape mismatch at this raw level is a programming error
//! and panics (documented under `# Panics`). The model API above turns bad
//! user input into [`crate::Error`] before it gets here.

pub mod cpu;
pub mod dispatch;
pub mod elementwise;
pub mod gemm;
pub mod real;
pub mod sparse;

pub use cpu::CpuInfo;
pub use dispatch::Isa;
pub use elementwise::AdamHyper;
pub use gemm::{Epilogue, MatMut, MatRef, Parallelism, Trans, gemm, gemm_with};
pub use real::Real;
pub use sparse::Csr;

/// An elementwise activation function.
///
/// The backward pass of every activation here is computed from the
/// activation's *output* `h` (never the pre-activation), so a layer keeps one
/// buffer: relu′ = 1(h > 0), leaky′ = 1(h > 0) + slope·1(h ≤ 0) (slope ≥ 0),
/// σ′ = h(1 − h), tanh′ = 1 − h², linear′ = 1. At z = 0 exactly the ReLU
/// derivative is taken as 0, as in PyTorch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// h = z.
    Linear,
    /// h = max(z, 0).
    Relu,
    /// h = z for z > 0, slope·z otherwise. The slope must be in [0, 1).
    LeakyRelu(f32),
    /// h = 1 / (1 + e^(−z)).
    Sigmoid,
    /// h = tanh z.
    Tanh,
}

impl Activation {
    /// The activation's lower-case name (`relu`, `leaky_relu`, …).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// h = act(z), in any float type (the scalar definition).
    #[inline(always)]
    pub fn apply<T: Real>(self, z: T) -> T {
        match self {
            Activation::Linear => z,
            // `z < 0` is false for NaN, so NaN propagates.
            Activation::Relu => {
                if z < T::ZERO {
                    T::ZERO
                } else {
                    z
                }
            }
            Activation::LeakyRelu(s) => {
                if z < T::ZERO {
                    T::from_f64(s as f64) * z
                } else {
                    z
                }
            }
            Activation::Sigmoid => sigmoid(z),
            Activation::Tanh => z.tanh(),
        }
    }

    /// act′(z) expressed through h = act(z).
    #[inline(always)]
    pub fn deriv_from_output<T: Real>(self, h: T) -> T {
        match self {
            Activation::Linear => T::ONE,
            Activation::Relu => {
                if h > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            Activation::LeakyRelu(s) => {
                if h > T::ZERO {
                    T::ONE
                } else {
                    T::from_f64(s as f64)
                }
            }
            Activation::Sigmoid => h * (T::ONE - h),
            Activation::Tanh => T::ONE - h * h,
        }
    }
}

/// Image bytes to floats in [0, 1]: `dst[i] = src[i]·(1/255)`.
///
/// # Panics
/// If the lengths differ.
pub fn u8_to_unit(src: &[u8], dst: &mut [f32]) {
    elementwise::u8_to_f32_scaled(Isa::active(), src, dst, 1.0 / 255.0)
}

/// The logistic function, evaluated without overflow for any z:
/// 1/(1+e^(−z)) for z ≥ 0 and e^z/(1+e^z) otherwise.
#[inline(always)]
pub fn sigmoid<T: Real>(z: T) -> T {
    if z >= T::ZERO {
        T::ONE / (T::ONE + (-z).exp())
    } else {
        let e = z.exp();
        e / (T::ONE + e)
    }
}
