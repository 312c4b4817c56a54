//! The AuxK auxiliary loss (Gao et al. 2024, section A.2), which gives dead
//! latents of a TopK SAE a gradient so they can come back.
//!
//! With x the batch (the target), x̂ the reconstruction, a = act(z) the code
//! layer's activations *before* TopK, and a mask of dead latents (set by the
//! trainer from its counters before the step, as sparsify does; see
//! [`crate::train::dead`]):
//!
//! - the residual `e = x − x̂`, held constant (no gradient flows through it);
//! - per sample, the k' = min(k_aux, #dead) largest values of a among dead
//!   latents (ties: the lowest index), the rest zero: `a_aux`;
//! - their reconstruction by the decoder weight alone, `ê = a_aux·W_decᵀ`
//!   (no bias);
//! - `L_aux = α · Σ‖ê − e‖² / Σ‖e − ē‖²`, sums over the batch and the
//!   features, ē the batch mean of e (the normalised MSE of Gao et al.'s
//!   reference code, whose denominator is the residual's variance);
//!   `L_aux = 0` when no latent is dead or the residual has no variance
//!   (a batch of one sample).
//!
//! A batch computed in micro-batches (`crate::dist`) takes ē and the
//! denominator over the whole batch: each part's residual sums per feature
//! ([`AuxScratch::residual`]) are added up, each part's share of
//! Σ‖e − ē‖² ([`AuxScratch::spread`]) too, and the total is set in every
//! part ([`AuxScratch::set_denominator`]) before its loss pass.
//!
//! Its gradient: `∂L/∂ê = 2α(ê − e)/Σ‖e − ē‖²`, `∂L/∂W_dec[:, j] +=
//! Σ_i ∂L/∂ê_i · a_aux[i, j]` for dead j, and `∂L/∂z_ij += (∂L/∂ê_i ·
//! W_dec[:, j])·act'(a_ij)` for the selected (i, j).
//!
//! sparsify differs in three ways, deliberately not followed here: it adds
//! `b_dec` to ê, divides by the variance of x instead of e, and scales the
//! loss by min(#dead / k_aux, 1).
//!
//! The work is proportional to the number of dead latents: their decoder
//! columns are gathered into a compact matrix and ê, ∂a and ∂W go through
//! the project's GEMM on it.

use super::sparsity::keep_largest;
use crate::kernels::{Activation, Epilogue, MatMut, MatRef, Real};

/// `Σ_i Σ_f (e_if − sums_f/whole)²` over the rows of `e`, row by row, in
/// `f64` (ē = sums/whole the column means of a batch of `whole` samples).
fn spread<T: Real>(e: &[T], sums: &[T], whole: usize) -> f64 {
    let inv_b = 1.0 / whole as f64;
    e.chunks_exact(sums.len())
        .map(|row| {
            row.iter()
                .zip(sums)
                .map(|(&e, &m)| {
                    let d = e.to_f64() - m.to_f64() * inv_b;
                    d * d
                })
                .sum::<f64>()
        })
        .sum()
}

/// The AuxK buffers of a workspace, allocated once per batch size.
#[derive(Clone, Debug)]
pub struct AuxScratch<T> {
    /// Which code units count as dead in the next pass.
    pub dead: Vec<bool>,
    dead_idx: Vec<usize>,
    /// The code activations before TopK, `(batch, d_sae)`.
    pub pre_topk: Vec<T>,
    /// Selected activations of dead latents, `(batch, n_dead)`.
    a: Vec<T>,
    /// Gathered decoder columns of dead latents, `(d_in, n_dead)`.
    w: Vec<T>,
    /// The residual e, `(batch, d_in)`.
    e: Vec<T>,
    /// ê, `(batch, d_in)`.
    e_hat: Vec<T>,
    /// ∂L_aux/∂ê, `(batch, d_in)`.
    de: Vec<T>,
    /// ∂L_aux/∂a (then ∂/∂z), `(batch, n_dead)`.
    da: Vec<T>,
    /// ∂L_aux/∂W of the gathered columns, `(d_in, n_dead)`.
    dw: Vec<T>,
    /// Column means of e, `(d_in)`, and the selection scratch, `(d_sae)`.
    mean: Vec<T>,
    select: Vec<T>,
    denom: f64,
    hold: bool,
    /// Whether the residual and the denominator were set for the next pass.
    ready: bool,
    active: bool,
}

impl<T: Real> AuxScratch<T> {
    /// Buffers for `batch` samples, `d_in` features and `d_sae` latents; no
    /// latent is dead.
    ///
    /// # Panics
    /// If the system refuses a buffer ([`AuxScratch::try_new`] returns the
    /// error instead).
    pub fn new(batch: usize, d_in: usize, d_sae: usize) -> AuxScratch<T> {
        AuxScratch::try_new(batch, d_in, d_sae).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`AuxScratch::new`], its buffers reserved fallibly.
    ///
    /// # Errors
    /// [`crate::Error::Value`] when the system refuses a buffer.
    pub fn try_new(batch: usize, d_in: usize, d_sae: usize) -> crate::Result<AuxScratch<T>> {
        use crate::memory::{try_vec, try_with_capacity};
        const WHAT: &str = "the AuxK loss's buffers";
        let z = |n: usize| try_vec(WHAT, n, T::ZERO);
        Ok(AuxScratch {
            dead: try_vec(WHAT, d_sae, false)?,
            dead_idx: try_with_capacity(WHAT, d_sae)?,
            pre_topk: z(batch * d_sae)?,
            a: z(batch * d_sae)?,
            w: z(d_in * d_sae)?,
            e: z(batch * d_in)?,
            e_hat: z(batch * d_in)?,
            de: z(batch * d_in)?,
            da: z(batch * d_sae)?,
            dw: z(d_in * d_sae)?,
            mean: z(d_in)?,
            select: z(d_sae)?,
            denom: 0.0,
            hold: false,
            ready: false,
            active: false,
        })
    }

    /// Bytes the buffers hold (their capacities).
    pub fn heap_bytes(&self) -> u64 {
        use crate::memory::vec_bytes;
        let values = [
            &self.pre_topk,
            &self.a,
            &self.w,
            &self.e,
            &self.e_hat,
            &self.de,
            &self.da,
            &self.dw,
            &self.mean,
            &self.select,
        ];
        vec_bytes(&self.dead)
            + vec_bytes(&self.dead_idx)
            + values.map(vec_bytes).iter().sum::<u64>()
    }

    /// Keep the residual e (and its variance) of the last pass instead of
    /// recomputing it: the function the gradient differentiates, with e
    /// constant, for finite-difference checks.
    pub fn hold_residual(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// A hash of the last pass's selection (how many latents were dead,
    /// which were chosen in each sample and which of those were non-zero).
    pub fn fingerprint(&self) -> u64 {
        let n = if self.active { self.dead_idx.len() } else { 0 };
        let batch = self.e.len() / self.mean.len();
        let mut hash = (0xcbf2_9ce4_8422_2325u64 ^ n as u64).wrapping_mul(0x0100_0000_01b3);
        for &v in &self.a[..batch * n] {
            hash = (hash ^ u64::from(v != T::ZERO)).wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// The residual `e = target − x̂` of this pass (`(batch, d_in)` each),
    /// kept for [`AuxScratch::forward`]; returns its column sums Σ_i e_i.
    /// With [`AuxScratch::spread`] and [`AuxScratch::set_denominator`], the
    /// denominator of a batch computed in parts ([`crate::dist`]).
    pub fn residual(&mut self, target: &[T], x_hat: &[T]) -> &[T] {
        for ((e, &x), &y) in self.e.iter_mut().zip(target).zip(x_hat) {
            *e = x - y;
        }
        T::col_sum(&self.e, self.mean.len(), &mut self.mean);
        &self.mean
    }

    /// This part's share of the denominator, `Σ_i ‖e_i − ē‖²` over its rows,
    /// with `ē = total / whole`: `total` the column sums of the residual over
    /// the whole batch of `whole` samples.
    pub fn spread(&self, total: &[T], whole: usize) -> f64 {
        spread(&self.e, total, whole)
    }

    /// Sets the denominator `Σ‖e − ē‖²` of the whole batch for the next
    /// [`AuxScratch::forward`], which then keeps this pass's residual.
    pub fn set_denominator(&mut self, denom: f64) {
        self.denom = denom;
        self.ready = true;
    }

    /// The forward part: selects the dead latents' activations, computes ê,
    /// and returns `L_aux` (0 when no latent is dead), keeping `∂L_aux/∂ê`
    /// for [`AuxScratch::backward`]. `w_dec: (d_in, d_sae)`,
    /// `target, x_hat: (batch, d_in)`; [`AuxScratch::pre_topk`] must hold
    /// this batch's activations. After [`AuxScratch::set_denominator`], the
    /// residual and denominator already set are used (once).
    pub fn forward(
        &mut self,
        coef: f64,
        k_aux: usize,
        w_dec: &[T],
        target: &[T],
        x_hat: &[T],
    ) -> f64 {
        let (d_in, d_sae) = (self.mean.len(), self.dead.len());
        let batch = target.len() / d_in;
        let ready = std::mem::take(&mut self.ready);
        self.dead_idx.clear();
        self.dead_idx
            .extend(self.dead.iter().enumerate().filter(|d| *d.1).map(|d| d.0));
        let n = self.dead_idx.len();
        self.active = false;
        if n == 0 {
            return 0.0;
        }
        if !self.hold && !ready {
            self.residual(target, x_hat);
            self.denom = spread(&self.e, &self.mean, batch);
        }
        if self.denom <= 0.0 || coef == 0.0 {
            return 0.0;
        }
        self.active = true;
        let k = k_aux.min(n);
        let (w, a) = (&mut self.w[..d_in * n], &mut self.a[..batch * n]);
        for (wr, dr) in w.chunks_exact_mut(n).zip(w_dec.chunks_exact(d_sae)) {
            for (v, &j) in wr.iter_mut().zip(&self.dead_idx) {
                *v = dr[j];
            }
        }
        for (ar, pr) in a.chunks_exact_mut(n).zip(self.pre_topk.chunks_exact(d_sae)) {
            for (v, &j) in ar.iter_mut().zip(&self.dead_idx) {
                *v = pr[j];
            }
            keep_largest(ar, k, &mut self.select);
        }
        T::gemm(
            T::ONE,
            MatRef::new(a, batch, n),
            MatRef::new(w, d_in, n).t(),
            T::ZERO,
            MatMut::new(&mut self.e_hat, batch, d_in),
            Epilogue::NONE,
        );
        let scale = coef / self.denom;
        T::sq_err(&self.e_hat, &self.e, Some(&mut self.de), T::from_f64(scale)) * scale
    }

    /// Backward: adds the AuxK gradient to `dz: (batch, d_sae)` (the code
    /// layer's pre-activation gradient) and to `dw_dec: (d_in, d_sae)`.
    /// `act` is the code layer's activation. Call after [`AuxScratch::forward`].
    pub fn backward(&mut self, act: Activation, dz: &mut [T], dw_dec: &mut [T]) {
        if !self.active {
            return;
        }
        let (d_in, d_sae, n) = (self.mean.len(), self.dead.len(), self.dead_idx.len());
        let batch = self.e.len() / d_in;
        let (w, a) = (&self.w[..d_in * n], &self.a[..batch * n]);
        let (da, dw) = (&mut self.da[..batch * n], &mut self.dw[..d_in * n]);
        let de = MatRef::new(&self.de, batch, d_in);
        T::gemm(
            T::ONE,
            de,
            MatRef::new(w, d_in, n),
            T::ZERO,
            MatMut::new(da, batch, n),
            Epilogue::NONE,
        );
        T::gemm(
            T::ONE,
            de.t(),
            MatRef::new(a, batch, n),
            T::ZERO,
            MatMut::new(dw, d_in, n),
            Epilogue::NONE,
        );
        // Only selected values carry a gradient (as in TopK's backward, a
        // selected value that is exactly 0 gets none either).
        for (d, &v) in da.iter_mut().zip(a) {
            if v == T::ZERO {
                *d = T::ZERO;
            }
        }
        T::act_backward(act, a, da);
        for (zr, dr) in dz.chunks_exact_mut(d_sae).zip(da.chunks_exact(n)) {
            for (&j, &d) in self.dead_idx.iter().zip(dr) {
                zr[j] += d;
            }
        }
        for (gr, dr) in dw_dec.chunks_exact_mut(d_sae).zip(dw.chunks_exact(n)) {
            for (&j, &d) in self.dead_idx.iter().zip(dr) {
                gr[j] += d;
            }
        }
    }
}
