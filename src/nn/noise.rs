//! Input corruption for denoising autoencoders.

use super::config::Noise;
use crate::kernels::Real;
use crate::rng::Rng;

/// Writes the corrupted input: `out ← noise(clean)`. The target stays clean.
///
/// Gaussian: `clip(x + std·N(0, 1), 0, 1)`, normal draws by Box–Muller.
/// Masking: each value zeroed with probability p. `Noise::None` copies.
///
/// # Panics
/// If the lengths differ.
pub fn apply_noise<T: Real>(noise: Noise, rng: &mut Rng, clean: &[T], out: &mut [T]) {
    assert_eq!(clean.len(), out.len(), "apply_noise: length mismatch");
    match noise {
        Noise::None => out.copy_from_slice(clean),
        Noise::Gaussian { std } => {
            let s = T::from_f64(std);
            let clip = |v: T| v.max(T::ZERO).min(T::ONE);
            let mut pairs_out = out.chunks_exact_mut(2);
            let mut pairs_in = clean.chunks_exact(2);
            for (o, x) in (&mut pairs_out).zip(&mut pairs_in) {
                let (a, b) = rng.normal_pair();
                o[0] = clip(x[0] + s * T::from_f64(a));
                o[1] = clip(x[1] + s * T::from_f64(b));
            }
            if let ([o], [x]) = (pairs_out.into_remainder(), pairs_in.remainder()) {
                *o = clip(*x + s * T::from_f64(rng.normal_pair().0));
            }
        }
        Noise::Masking { p } => {
            for (o, &x) in out.iter_mut().zip(clean) {
                *o = if rng.next_f64() < p { T::ZERO } else { x };
            }
        }
    }
}
