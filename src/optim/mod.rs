//! Optimizers over the flat parameter buffer: one fused kernel pass per step.

use crate::error::{Error, Result};
use crate::kernels::{AdamHyper, Real};

/// Adam hyper-parameters; defaults are Keras' (lr 1e-3, β1 0.9, β2 0.999, ε 1e-7).
///
/// Update at step t (1-based): `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
/// `p ← p − lr·√(1−β2ᵗ)/(1−β1ᵗ) · m/(√v + ε)` (Keras places ε outside the
/// bias correction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// ε added to √v.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
        }
    }
}

/// SGD with momentum (Keras semantics): `vel ← μ·vel − lr·g`, `p ← p + vel`.
/// Defaults lr 0.01, μ 0.9.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ (0 = plain SGD).
    pub momentum: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            momentum: 0.9,
        }
    }
}

/// Which optimizer, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerConfig {
    /// Adam.
    Adam(AdamConfig),
    /// SGD with momentum.
    Sgd(SgdConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }
}

impl OptimizerConfig {
    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, v: f64| Err(Error::config(f, format!("out of range: {v}")));
        match *self {
            OptimizerConfig::Adam(a) => {
                if !(a.lr.is_finite() && a.lr > 0.0) {
                    return bad("adam.lr", a.lr);
                }
                if !(0.0..1.0).contains(&a.beta1) {
                    return bad("adam.beta1", a.beta1);
                }
                if !(0.0..1.0).contains(&a.beta2) {
                    return bad("adam.beta2", a.beta2);
                }
                if !(a.eps.is_finite() && a.eps > 0.0) {
                    return bad("adam.eps", a.eps);
                }
            }
            OptimizerConfig::Sgd(s) => {
                if !(s.lr.is_finite() && s.lr > 0.0) {
                    return bad("sgd.lr", s.lr);
                }
                if !(0.0..1.0).contains(&s.momentum) {
                    return bad("sgd.momentum", s.momentum);
                }
            }
        }
        Ok(())
    }
}

/// An optimizer's state: its moments in the parameters' layout and the step.
#[derive(Clone, Debug)]
pub struct Optimizer<T> {
    /// The hyper-parameters.
    pub config: OptimizerConfig,
    /// Adam's first moment, or SGD's velocity.
    pub m: Vec<T>,
    /// Adam's second moment (empty for SGD).
    pub v: Vec<T>,
    /// Steps taken.
    pub t: u64,
}

impl<T: Real> Optimizer<T> {
    /// Fresh state for `n` parameters.
    pub fn new(config: OptimizerConfig, n: usize) -> Optimizer<T> {
        let v_len = if matches!(config, OptimizerConfig::Adam(_)) {
            n
        } else {
            0
        };
        Optimizer {
            config,
            m: vec![T::ZERO; n],
            v: vec![T::ZERO; v_len],
            t: 0,
        }
    }

    /// One update of `params` from `grads` (one fused pass).
    ///
    /// # Panics
    /// If the lengths differ from the state's.
    pub fn step(&mut self, params: &mut [T], grads: &[T]) {
        self.t += 1;
        match self.config {
            OptimizerConfig::Adam(a) => {
                let h = AdamHyper::at_step(a.lr, a.beta1, a.beta2, a.eps, self.t);
                T::adam_step(params, grads, &mut self.m, &mut self.v, &h);
            }
            OptimizerConfig::Sgd(s) => {
                T::sgd_momentum_step(params, grads, &mut self.m, s.lr, s.momentum)
            }
        }
    }
}
