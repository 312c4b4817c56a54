//! Input corruption for denoising autoencoders.

use super::config::Noise;
use crate::kernels::Real;
use crate::rng::Rng;

/// Writes the corrupted input: `out ← noise(clean)`. The target stays clean.
///
/// Gaussian: `clip(x + std·N(0, 1), 0, 1)`, normal draws by the ziggurat method.
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
            for (o, &x) in out.iter_mut().zip(clean) {
                *o = (x + s * T::from_f64(rng.normal())).max(T::ZERO).min(T::ONE);
            }
        }
        Noise::Masking { p } => {
            for (o, &x) in out.iter_mut().zip(clean) {
                *o = if rng.next_f64() < p { T::ZERO } else { x };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_noise_has_the_asked_spread_and_stays_in_range() {
        let clean = vec![0.5f32; 100_000];
        let mut out = vec![0.0f32; clean.len()];
        apply_noise(
            Noise::Gaussian { std: 0.1 },
            &mut Rng::new(3),
            &clean,
            &mut out,
        );
        let d: Vec<f64> = out.iter().map(|&v| v as f64 - 0.5).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(mean.abs() < 2e-3, "mean {mean}");
        assert!((sd - 0.1).abs() < 2e-3, "sd {sd}");
        apply_noise(
            Noise::Gaussian { std: 5.0 },
            &mut Rng::new(3),
            &clean,
            &mut out,
        );
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(out.contains(&0.0) && out.contains(&1.0));
    }

    #[test]
    fn masking_zeroes_the_asked_fraction() {
        let clean = vec![0.7f64; 100_000];
        let mut out = vec![0.0f64; clean.len()];
        apply_noise(
            Noise::Masking { p: 0.3 },
            &mut Rng::new(4),
            &clean,
            &mut out,
        );
        let zeros = out.iter().filter(|&&v| v == 0.0).count() as f64 / out.len() as f64;
        assert!((zeros - 0.3).abs() < 0.01, "{zeros}");
        assert!(out.iter().all(|&v| v == 0.0 || v == 0.7));
    }
}
