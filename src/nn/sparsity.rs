//! Sparsity penalties on a layer's activations `h: (batch, units)`.

use crate::kernels::Real;

/// Lower and upper clamp of ρ̂ in the KL penalty: ρ̂ ∈ [KL_CLAMP, 1 − KL_CLAMP].
pub const KL_CLAMP: f64 = 1e-6;

/// L1 activity penalty (Keras `activity_regularizer=l1(λ)`, averaged over the
/// batch): value `λ/B · Σ_{i,j} |h_ij|`; if `dh` is given, `dh_ij += λ/B·sign(h_ij)`.
pub fn l1_penalty<T: Real>(h: &[T], dh: Option<&mut [T]>, batch: usize, lambda: f64) -> f64 {
    let scale = lambda / batch as f64;
    T::l1(h, dh, T::from_f64(scale)) * scale
}

/// KL-divergence sparsity penalty (UFLDL).
///
/// ρ̂_j = (1/B)·Σ_i h_ij, clamped to [KL_CLAMP, 1 − KL_CLAMP]; value
/// `β·Σ_j [ρ·ln(ρ/ρ̂_j) + (1−ρ)·ln((1−ρ)/(1−ρ̂_j))]`. If `dh` is given,
/// `dh_ij += (β/B)·(−ρ/ρ̂_j + (1−ρ)/(1−ρ̂_j))` (zero for a clamped unit).
/// `rho_hat` and `g` are scratch of length `units`; `rho_hat` keeps ρ̂.
#[allow(clippy::too_many_arguments)]
pub fn kl_penalty<T: Real>(
    h: &[T],
    dh: Option<&mut [T]>,
    batch: usize,
    units: usize,
    rho: f64,
    beta: f64,
    rho_hat: &mut [T],
    g: &mut [T],
) -> f64 {
    T::col_sum(h, units, rho_hat);
    let inv_b = 1.0 / batch as f64;
    let mut value = 0.0;
    for (j, r) in rho_hat.iter_mut().enumerate() {
        let raw = r.to_f64() * inv_b;
        let clamped = raw.clamp(KL_CLAMP, 1.0 - KL_CLAMP);
        *r = T::from_f64(raw);
        value += rho * (rho / clamped).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - clamped)).ln();
        g[j] = if raw == clamped {
            T::from_f64(beta * inv_b * (-rho / clamped + (1.0 - rho) / (1.0 - clamped)))
        } else {
            T::ZERO
        };
    }
    if let Some(dh) = dh {
        T::bias_add(dh, units, g);
    }
    beta * value
}
