//! Input corruption for denoising autoencoders.

use super::config::Noise;
use crate::kernels::Real;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// Writes the corrupted input: `out ← noise(clean)`. The target stays clean.
///
/// Gaussian: `clip(x + std·N(0,1), 0, 1)`. Masking: each value zeroed with
/// probability p. `Noise::None` copies.
///
/// # Panics
/// If the lengths differ.
pub fn apply_noise<T: Real, R: Rng + ?Sized>(
    noise: Noise,
    rng: &mut R,
    clean: &[T],
    out: &mut [T],
) {
    assert_eq!(clean.len(), out.len(), "apply_noise: length mismatch");
    match noise {
        Noise::None => out.copy_from_slice(clean),
        Noise::Gaussian { std } => {
            let s = T::from_f64(std);
            for (o, &x) in out.iter_mut().zip(clean) {
                let n: f64 = StandardNormal.sample(rng);
                *o = (x + s * T::from_f64(n)).max(T::ZERO).min(T::ONE);
            }
        }
        Noise::Masking { p } => {
            for (o, &x) in out.iter_mut().zip(clean) {
                *o = if rng.random::<f64>() < p { T::ZERO } else { x };
            }
        }
    }
}
