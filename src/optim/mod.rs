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
        use crate::data::{check_f32_fraction, check_f32_param};
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
                // Each is used in f32: none may become infinite, 0 or 1.
                check_f32_param("adam.lr", a.lr)?;
                check_f32_fraction("adam.beta1", a.beta1)?;
                check_f32_fraction("adam.beta2", a.beta2)?;
                check_f32_param("adam.eps", a.eps)?;
            }
            OptimizerConfig::Sgd(s) => {
                if !(s.lr.is_finite() && s.lr > 0.0) {
                    return bad("sgd.lr", s.lr);
                }
                if !(0.0..1.0).contains(&s.momentum) {
                    return bad("sgd.momentum", s.momentum);
                }
                check_f32_param("sgd.lr", s.lr)?;
                check_f32_fraction("sgd.momentum", s.momentum)?;
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
    ///
    /// # Panics
    /// If the system refuses the state ([`Optimizer::try_new`] returns the
    /// error instead).
    pub fn new(config: OptimizerConfig, n: usize) -> Optimizer<T> {
        Optimizer::try_new(config, n).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Optimizer::new`], the state reserved fallibly.
    ///
    /// # Errors
    /// [`crate::Error::Value`] when the system refuses it.
    pub fn try_new(config: OptimizerConfig, n: usize) -> crate::Result<Optimizer<T>> {
        let v_len = if matches!(config, OptimizerConfig::Adam(_)) {
            n
        } else {
            0
        };
        let what = "the optimizer's state";
        Ok(Optimizer {
            config,
            m: crate::memory::try_vec(what, n, T::ZERO)?,
            v: crate::memory::try_vec(what, v_len, T::ZERO)?,
            t: 0,
        })
    }

    /// One update of `params` from `grads` (one fused pass), in pieces side
    /// by side ([`crate::parallel::join`]): one per thread of the pool from
    /// [`PAR_MIN_PARAMS`] values on, one per thread spinning for work
    /// ([`crate::parallel::awake_threads`]) from [`PAR_MIN_PARAMS_AWAKE`] on.
    /// Elementwise, so the result does not depend on the split.
    ///
    /// # Panics
    /// If the lengths differ from the state's.
    pub fn step(&mut self, params: &mut [T], grads: &[T]) {
        assert!(grads.len() == params.len() && self.m.len() == params.len());
        let n = params.len();
        let pieces = pieces(n, PAR_MIN_PARAMS_AWAKE);
        self.update(params, Grad::One(grads), pieces);
    }

    /// [`Optimizer::step`] for parameters made of `tensors`, `(len, cut)`
    /// each in order: when the update is split in two, each tensor with a
    /// cut is split there (its first `cut` values on this thread, the rest
    /// side by side on another) and the others stay on this thread, instead
    /// of the flat buffer being cut in two. With the cut at a weight's
    /// [`crate::parallel::owned_half`] rows, each thread updates the rows
    /// whose gradient it computed and whose values its next forward product
    /// reads. The same values as [`Optimizer::step`].
    ///
    /// # Panics
    /// If the lengths differ from the state's, or the tensors' lengths do
    /// not add up to the parameters'.
    pub fn step_owned(&mut self, params: &mut [T], grads: &[T], tensors: &[(usize, usize)]) {
        let n = params.len();
        assert!(grads.len() == n && self.m.len() == n);
        assert_eq!(tensors.iter().map(|t| t.0).sum::<usize>(), n);
        let pieces = pieces(n, PAR_MIN_OWNED_AWAKE);
        if pieces != 2 {
            self.update(params, Grad::One(grads), pieces);
            return;
        }
        self.t += 1;
        let (config, t) = (&self.config, self.t);
        // This thread's pieces (the first `cut` values of each cut tensor,
        // and the uncut tensors) and the other thread's (the rest of each
        // cut tensor), updated in one join, so that a step's update hands
        // work to the other thread once: at most `MOST` pieces a side at a
        // time, so nothing is allocated.
        const MOST: usize = 8;
        let mut mine: [Option<Piece<'_, T>>; MOST] = std::array::from_fn(|_| None);
        let mut theirs: [Option<Piece<'_, T>>; MOST] = std::array::from_fn(|_| None);
        let (mut n_mine, mut n_theirs) = (0, 0);
        let (mut p, mut g, mut m) = (params, grads, &mut self.m[..]);
        let mut v = &mut self.v[..];
        for (i, &(len, cut)) in tensors.iter().enumerate() {
            let (p0, p_rest) = std::mem::take(&mut p).split_at_mut(len);
            let (g0, g_rest) = g.split_at(len);
            let (m0, m_rest) = std::mem::take(&mut m).split_at_mut(len);
            let v_len = len.min(v.len());
            let (v0, v_rest) = std::mem::take(&mut v).split_at_mut(v_len);
            (p, g, m, v) = (p_rest, g_rest, m_rest, v_rest);
            if cut == 0 || cut >= len {
                mine[n_mine] = Some((p0, g0, m0, v0));
                n_mine += 1;
            } else {
                let (pa, pb) = p0.split_at_mut(cut);
                let (ga, gb) = g0.split_at(cut);
                let (ma, mb) = m0.split_at_mut(cut);
                let (va, vb) = v0.split_at_mut(cut.min(v0.len()));
                mine[n_mine] = Some((pa, ga, ma, va));
                theirs[n_theirs] = Some((pb, gb, mb, vb));
                (n_mine, n_theirs) = (n_mine + 1, n_theirs + 1);
            }
            if n_mine == MOST || n_theirs == MOST || i + 1 == tensors.len() {
                let update = |pieces: &mut [Option<Piece<'_, T>>]| {
                    for (p, g, m, v) in pieces.iter_mut().filter_map(Option::take) {
                        update_part(config, t, p, Grad::One(g), m, v, 1);
                    }
                };
                if n_theirs == 0 {
                    update(&mut mine);
                } else {
                    crate::parallel::join(|| update(&mut mine), || update(&mut theirs));
                }
                (n_mine, n_theirs) = (0, 0);
            }
        }
    }

    /// One whole step from the gradient `g0 + g1` of two parts of a batch,
    /// added as it is read (Adam; SGD writes the sum into `g0` first), in one
    /// piece per thread side by side ([`crate::parallel::join`]) from [`PAR_MIN_SUM`]
    /// parameters on.
    /// Each value is computed the same way whatever the split.
    ///
    /// # Panics
    /// If the lengths differ from the state's.
    pub fn step_sum(&mut self, params: &mut [T], g0: &mut [T], g1: &[T]) {
        let n = params.len();
        assert!(g0.len() == n && g1.len() == n && self.m.len() == n);
        let pieces = if n >= PAR_MIN_SUM {
            crate::parallel::pool_threads()
        } else {
            1
        };
        self.update(params, Grad::Sum(g0, g1), pieces);
    }

    /// The next step's update, in `pieces` pieces.
    fn update(&mut self, params: &mut [T], grad: Grad<'_, T>, pieces: usize) {
        self.t += 1;
        let v: &mut [T] = if self.v.is_empty() {
            &mut []
        } else {
            &mut self.v
        };
        update_part(&self.config, self.t, params, grad, &mut self.m, v, pieces);
    }
}

/// The pieces an update of `n` parameters is split into: one per thread of
/// the pool from [`PAR_MIN_PARAMS`] on, one per thread spinning for work
/// from `awake_min` on, else one.
fn pieces(n: usize, awake_min: usize) -> usize {
    if n >= PAR_MIN_PARAMS {
        crate::parallel::pool_threads()
    } else if n >= awake_min {
        crate::parallel::awake_threads()
    } else {
        1
    }
}

/// Summed updates of at least this many parameters are split over the pool's
/// threads.
pub const PAR_MIN_SUM: usize = 1 << 15;

/// Updates of at least this many parameters are split over the pool's
/// threads (about 130 µs of Adam here: enough to pay for waking a sleeping
/// thread).
pub const PAR_MIN_PARAMS: usize = 1 << 18;

/// [`PAR_MIN_PARAMS`] for the threads spinning for work
/// ([`crate::parallel::awake_threads`]). The deep model's 218k parameters gain from
/// two threads then; the shallow model's 51k lose badly at 32k (351k →
/// 226k samples/s: the halves of the flat buffer then live in the other
/// core's cache at the next forward pass).
pub const PAR_MIN_PARAMS_AWAKE: usize = 1 << 16;

/// [`PAR_MIN_PARAMS_AWAKE`] for an update split by the rows each thread owns
/// ([`Optimizer::step_owned`]): the shallow model's 51k parameters gain then,
/// with its products split too (see `PAR_MIN_FLOPS_AWAKE` in the GEMM).
pub const PAR_MIN_OWNED_AWAKE: usize = 1 << 15;

/// A piece of an update: parameters, gradient, first and second moments.
type Piece<'a, T> = (&'a mut [T], &'a [T], &'a mut [T], &'a mut [T]);

/// The gradient of an update: one buffer, or the two parts of a batch whose
/// sum it is (the first may be overwritten with the sum).
enum Grad<'a, T> {
    One(&'a [T]),
    Sum(&'a mut [T], &'a [T]),
}

impl<'a, T> Grad<'a, T> {
    fn split_at(self, mid: usize) -> (Grad<'a, T>, Grad<'a, T>) {
        match self {
            Grad::One(g) => {
                let (a, b) = g.split_at(mid);
                (Grad::One(a), Grad::One(b))
            }
            Grad::Sum(g0, g1) => {
                let (a0, b0) = g0.split_at_mut(mid);
                let (a1, b1) = g1.split_at(mid);
                (Grad::Sum(a0, a1), Grad::Sum(b0, b1))
            }
        }
    }
}

/// The update of `p` in `pieces` pieces of whole 64-value blocks, halves
/// side by side.
fn update_part<T: Real>(
    config: &OptimizerConfig,
    t: u64,
    p: &mut [T],
    g: Grad<'_, T>,
    m: &mut [T],
    v: &mut [T],
    pieces: usize,
) {
    let n = p.len();
    if pieces > 1 && n >= 128 {
        let left = pieces / 2;
        let mid = (n * left / pieces) & !63;
        let (p0, p1) = p.split_at_mut(mid);
        let (g0, g1) = g.split_at(mid);
        let (m0, m1) = m.split_at_mut(mid);
        let (v0, v1) = v.split_at_mut(mid.min(v.len()));
        crate::parallel::join(
            || update_part(config, t, p0, g0, m0, v0, left),
            || update_part(config, t, p1, g1, m1, v1, pieces - left),
        );
        return;
    }
    match (*config, g) {
        (OptimizerConfig::Adam(a), g) => {
            let h = AdamHyper::at_step(a.lr, a.beta1, a.beta2, a.eps, t);
            match g {
                Grad::One(g) => T::adam_step(p, g, m, v, &h),
                Grad::Sum(g0, g1) => T::adam_step_sum(p, g0, g1, m, v, &h),
            }
        }
        (OptimizerConfig::Sgd(s), Grad::One(g)) => T::sgd_momentum_step(p, g, m, s.lr, s.momentum),
        (OptimizerConfig::Sgd(s), Grad::Sum(g0, g1)) => {
            T::axpy(T::ONE, g1, g0);
            T::sgd_momentum_step(p, g0, m, s.lr, s.momentum)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adam (Keras defaults) and SGD with momentum.
    fn configs() -> [OptimizerConfig; 2] {
        [
            OptimizerConfig::default(),
            OptimizerConfig::Sgd(SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            }),
        ]
    }

    /// `n` values `((i·mul) mod modulus)·scale − shift`: deterministic test data.
    fn pattern(n: usize, mul: usize, modulus: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * mul) % modulus) as f32 * scale - shift)
            .collect()
    }

    /// A rayon pool of `threads` threads.
    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// Split on 1 or 2 threads, an update equals one unsplit kernel pass bit
    /// for bit.
    #[test]
    fn chunked_updates_match_one_pass() {
        let n = 2 * PAR_MIN_PARAMS + 37;
        let p0 = pattern(n, 7919, 1000, 1e-3, 0.5);
        let g = pattern(n, 104_729, 997, 1e-4, 0.05);
        for config in configs() {
            let mut want = p0.clone();
            let mut state = Optimizer::<f32>::new(config, n);
            for t in 1..=2 {
                match config {
                    OptimizerConfig::Adam(a) => {
                        let h = AdamHyper::at_step(a.lr, a.beta1, a.beta2, a.eps, t);
                        f32::adam_step(&mut want, &g, &mut state.m, &mut state.v, &h);
                    }
                    OptimizerConfig::Sgd(s) => {
                        f32::sgd_momentum_step(&mut want, &g, &mut state.m, s.lr, s.momentum)
                    }
                }
            }
            for threads in [1, 2] {
                let pool = pool(threads);
                let mut p = p0.clone();
                let mut opt = Optimizer::<f32>::new(config, n);
                pool.install(|| {
                    opt.step(&mut p, &g);
                    opt.step(&mut p, &g);
                });
                assert!(p.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
                assert!(
                    opt.m
                        .iter()
                        .zip(&state.m)
                        .all(|(a, b)| a.to_bits() == b.to_bits())
                );
            }
        }
    }

    /// Split by tensors (cut or not, SGD's empty second moment included),
    /// two updates equal two unsplit ones bit for bit, moments included;
    /// also with more pieces a side than one join takes at a time.
    #[test]
    fn owned_halves_match_the_plain_step() {
        let n = PAR_MIN_PARAMS + 60_037;
        let few = vec![
            (100_000, 48_000),
            (37, 0),
            (n - 105_037, 60_000),
            (5_000, 5_000),
        ];
        // 23 tensors: 11 cut, 12 not.
        let mut many: Vec<(usize, usize)> = (0..22)
            .map(|i| {
                if i % 2 == 0 {
                    (10_000, 4_000 + i)
                } else {
                    (1_000 + i, 0)
                }
            })
            .collect();
        let rest = n - many.iter().map(|t| t.0).sum::<usize>();
        many.push((rest, rest / 2));
        for tensors in [few, many] {
            owned_halves_match_on(n, &tensors);
        }
    }

    fn owned_halves_match_on(n: usize, tensors: &[(usize, usize)]) {
        let p0 = pattern(n, 7919, 1000, 1e-3, 0.5);
        let g = pattern(n, 104_729, 997, 1e-4, 0.05);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for config in configs() {
            let mut want = p0.clone();
            let mut plain = Optimizer::<f32>::new(config, n);
            pool(1).install(|| {
                plain.step(&mut want, &g);
                plain.step(&mut want, &g);
            });
            for threads in [1, 2] {
                let mut p = p0.clone();
                let mut opt = Optimizer::<f32>::new(config, n);
                pool(threads).install(|| {
                    opt.step_owned(&mut p, &g, tensors);
                    opt.step_owned(&mut p, &g, tensors);
                });
                assert_eq!(opt.t, 2);
                assert!(bits(&p) == bits(&want), "{config:?} on {threads} threads");
                assert!(bits(&opt.m) == bits(&plain.m) && bits(&opt.v) == bits(&plain.v));
            }
        }
    }

    /// A step on two gradient parts equals a step on their sum, split or
    /// not, for Adam and SGD.
    #[test]
    fn step_sum_is_the_step_of_the_sum() {
        let n = 2 * PAR_MIN_SUM + 77;
        let p0 = pattern(n, 31, 101, 1e-2, 0.5);
        let g0 = pattern(n, 17, 89, 1e-3, 0.04);
        let g1 = pattern(n, 13, 97, 1e-3, 0.05);
        let sum: Vec<f32> = g0.iter().zip(&g1).map(|(a, b)| a + b).collect();
        for config in configs() {
            let mut want = p0.clone();
            let mut opt = Optimizer::<f32>::new(config, n);
            opt.step(&mut want, &sum);
            for threads in [1, 2] {
                let pool = pool(threads);
                let mut p = p0.clone();
                let mut opt = Optimizer::<f32>::new(config, n);
                let mut a = g0.clone();
                pool.install(|| opt.step_sum(&mut p, &mut a, &g1));
                let same = p.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{config:?} on {threads} threads");
            }
        }
    }
}
