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
/// `h` is `(batch, channels, positions)`: a dense layer has one position per
/// unit-channel; a convolutional feature map has `h·w` positions per channel,
/// and then ρ̂ is taken per channel, over the batch and all positions:
/// ρ̂_c = 1/(B·P) Σ_{i,p} h[i,c,p], clamped to [KL_CLAMP, 1 − KL_CLAMP]. Value
/// `β·Σ_c [ρ·ln(ρ/ρ̂_c) + (1−ρ)·ln((1−ρ)/(1−ρ̂_c))]`. The per-channel gradient
/// `g_c = β/(B·P)·(−ρ/ρ̂_c + (1−ρ)/(1−ρ̂_c))` (zero for a clamped channel) is
/// written into `g`, and added to every `dh[i,c,p]` if `dh` is given.
/// `rho_hat` and `g` have `channels` entries; `rho_hat` keeps ρ̂.
#[allow(clippy::too_many_arguments)]
pub fn kl_penalty<T: Real>(
    h: &[T],
    dh: Option<&mut [T]>,
    batch: usize,
    channels: usize,
    positions: usize,
    rho: f64,
    beta: f64,
    rho_hat: &mut [T],
    g: &mut [T],
) -> f64 {
    if positions == 1 {
        T::col_sum(h, channels, rho_hat);
    } else {
        rho_hat.iter_mut().for_each(|r| *r = T::ZERO);
        for sample in h.chunks_exact(channels * positions) {
            for (r, plane) in rho_hat.iter_mut().zip(sample.chunks_exact(positions)) {
                *r += plane.iter().fold(T::ZERO, |a, &v| a + v);
            }
        }
    }
    let inv_n = 1.0 / (batch * positions) as f64;
    let mut value = 0.0;
    for (j, r) in rho_hat.iter_mut().enumerate() {
        let raw = r.to_f64() * inv_n;
        let clamped = raw.clamp(KL_CLAMP, 1.0 - KL_CLAMP);
        *r = T::from_f64(raw);
        value += rho * (rho / clamped).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - clamped)).ln();
        g[j] = if raw == clamped {
            T::from_f64(beta * inv_n * (-rho / clamped + (1.0 - rho) / (1.0 - clamped)))
        } else {
            T::ZERO
        };
    }
    if let Some(dh) = dh {
        add_per_channel(dh, channels, positions, g);
    }
    beta * value
}

/// `dh[i,c,p] += g[c]` for `dh: (batch, channels, positions)`.
pub fn add_per_channel<T: Real>(dh: &mut [T], channels: usize, positions: usize, g: &[T]) {
    if positions == 1 {
        T::bias_add(dh, channels, g);
        return;
    }
    for sample in dh.chunks_exact_mut(channels * positions) {
        for (plane, &gc) in sample.chunks_exact_mut(positions).zip(g) {
            plane.iter_mut().for_each(|v| *v += gc);
        }
    }
}
