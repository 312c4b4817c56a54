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
    kl_sums(h, channels, positions, rho_hat);
    let value = kl_from_sums(rho_hat, batch * positions, rho, beta, g);
    if let Some(dh) = dh {
        add_per_channel(dh, channels, positions, g);
    }
    value
}

/// The first half of [`kl_penalty`]: `sums[c] = Σ_{i,p} h[i,c,p]`, in a
/// fixed order (sums of parts of a batch are added part by part).
pub fn kl_sums<T: Real>(h: &[T], channels: usize, positions: usize, sums: &mut [T]) {
    if positions == 1 {
        T::col_sum(h, channels, sums);
    } else {
        sums.iter_mut().for_each(|r| *r = T::ZERO);
        for sample in h.chunks_exact(channels * positions) {
            for (r, plane) in sums.iter_mut().zip(sample.chunks_exact(positions)) {
                *r += plane.iter().fold(T::ZERO, |a, &v| a + v);
            }
        }
    }
}

/// The second half of [`kl_penalty`]: from the sums over `n` = B·P values
/// per channel, ρ̂ (written over `sums`), the per-channel gradient `g` and
/// the value β·Σ_c KL(ρ‖ρ̂_c).
pub fn kl_from_sums<T: Real>(sums: &mut [T], n: usize, rho: f64, beta: f64, g: &mut [T]) -> f64 {
    let inv_n = 1.0 / n as f64;
    let mut value = 0.0;
    for (j, r) in sums.iter_mut().enumerate() {
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

/// The value at rank `k` (1-based, largest first) of `vals`, and how many of
/// the values equal to it are kept so that exactly `k` survive. Uses
/// `scratch` (same length as `vals`).
fn kth_largest<T: Real>(vals: &[T], k: usize, scratch: &mut [T]) -> (T, usize) {
    scratch.copy_from_slice(vals);
    let desc = |a: &T, b: &T| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal);
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, desc);
    let t = *kth;
    let greater = vals.iter().filter(|&&v| v > t).count();
    (t, k - greater)
}

/// Zeroes all but the `k` largest values of `vals` (ties at the threshold:
/// the earliest are kept).
pub(crate) fn keep_largest<T: Real>(vals: &mut [T], k: usize, scratch: &mut [T]) {
    if k >= vals.len() {
        return;
    }
    let (t, mut ties) = kth_largest(vals, k, &mut scratch[..vals.len()]);
    for v in vals.iter_mut() {
        if *v > t {
            continue;
        }
        if *v == t && ties > 0 {
            ties -= 1;
            continue;
        }
        *v = T::ZERO;
    }
}

/// TopK: in each row of `h: (batch, units)` keeps the `k` largest values and
/// zeroes the rest. `scratch` holds at least `units` values.
pub fn topk_rows<T: Real>(h: &mut [T], units: usize, k: usize, scratch: &mut [T]) {
    for row in h.chunks_exact_mut(units) {
        keep_largest(row, k, scratch);
    }
}

/// BatchTopK: keeps the `k·batch` largest values of the whole `h` and zeroes
/// the rest. `scratch` holds at least `h.len()` values.
pub fn topk_batch<T: Real>(h: &mut [T], k_total: usize, scratch: &mut [T]) {
    keep_largest(h, k_total, scratch);
}

/// The backward pass of a top-k selection: the gradient of a value that was
/// zeroed is zero (`dh ← dh ⊙ [h ≠ 0]`; a kept value that is exactly 0 gets
/// none either, as ReLU's derivative at 0).
pub fn topk_backward<T: Real>(h: &[T], dh: &mut [T]) {
    for (d, &v) in dh.iter_mut().zip(h) {
        if v == T::ZERO {
            *d = T::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_exactly_k_per_row_with_ties() {
        let mut h = vec![
            0.5f32, 0.1, 0.9, 0.5, 0.5, 0.2, /* row 2 */ -1.0, -2.0, -3.0, 4.0, -5.0, -6.0,
        ];
        let mut s = vec![0.0; 12];
        topk_rows(&mut h, 6, 2, &mut s);
        assert_eq!(&h[..6], &[0.5, 0.0, 0.9, 0.0, 0.0, 0.0]);
        assert_eq!(&h[6..], &[-1.0, 0.0, 0.0, 4.0, 0.0, 0.0]);
        let mut h = vec![3.0f64, 1.0, 2.0, 5.0, 4.0, 0.5];
        topk_batch(
            &mut h,
            3,
            &mut s.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert_eq!(h, vec![3.0, 0.0, 0.0, 5.0, 4.0, 0.0]);
    }
}
