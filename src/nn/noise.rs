//! Input corruption for denoising autoencoders.

use super::config::Noise;
use crate::kernels::Real;
use crate::kernels::elementwise::{NoiseStreams, STREAMS};
use crate::rng::Rng;

/// Writes the corrupted input: `out ← noise(clean)`. The target stays clean.
///
/// Gaussian: `clip(x + std·N(0, 1), 0, 1)`. Masking: each value zeroed with
/// probability p. `Noise::None` copies (and leaves `rng` as it is).
///
/// The draws come from 16 interleaved streams seeded afresh from 32 draws of
/// `rng` on each call ([`NoiseStreams::from_rng`]), so `rng` stays the whole
/// state of the noise; the normals are Box–Muller pairs, in `f32` on the
/// SIMD kernels ([`crate::kernels::elementwise::gaussian_noise`]) and in
/// `f64` for an `f64` model.
///
/// # Panics
/// If the lengths differ.
pub fn apply_noise<T: Real>(noise: Noise, rng: &mut Rng, clean: &[T], out: &mut [T]) {
    apply_noise_at(noise, rng, clean, out, 0);
}

/// [`apply_noise`] of the values `offset..offset + clean.len()` of a longer
/// input: `out` is exactly that part of what [`apply_noise`] writes for the
/// whole input, and `rng` advances as it does (32 draws, whatever the
/// offset). This is how each rank of a data-parallel step draws the noise
/// of its own rows ([`crate::dist`]).
///
/// Element i of a call takes the words of step ⌊i/b⌋ of stream i mod 16
/// (blocks of b = 32 for Gaussian noise, two words per stream and block; of
/// 16 for masking, one word): the streams skip the whole blocks before
/// `offset` ([`NoiseStreams::skip`], ⌊offset/b⌋ blocks of 16 words per
/// stream), a block cut by `offset` is drawn whole into a scratch block
/// whose elements before `offset` are discarded, and the rest is one call.
///
/// # Panics
/// If the lengths differ.
pub fn apply_noise_at<T: Real>(
    noise: Noise,
    rng: &mut Rng,
    clean: &[T],
    out: &mut [T],
    offset: usize,
) {
    assert_eq!(clean.len(), out.len(), "apply_noise: length mismatch");
    let (block, words) = match noise {
        Noise::None => return out.copy_from_slice(clean),
        Noise::Gaussian { .. } => (2 * STREAMS, 2),
        Noise::Masking { .. } => (STREAMS, 1),
    };
    let mut streams = NoiseStreams::from_rng(rng);
    let draw = |st: &mut NoiseStreams, x: &[T], o: &mut [T]| match noise {
        Noise::Gaussian { std } => T::gaussian_noise(st, x, o, T::from_f64(std)),
        Noise::Masking { p } => T::mask_noise(st, x, o, p),
        Noise::None => unreachable!("returned above"),
    };
    streams.skip((offset / block * words) as u64);
    let head = offset % block;
    let mut done = 0;
    if head > 0 {
        done = (block - head).min(clean.len());
        let (mut x, mut o) = ([T::ZERO; 2 * STREAMS], [T::ZERO; 2 * STREAMS]);
        x[head..head + done].copy_from_slice(&clean[..done]);
        draw(&mut streams, &x[..head + done], &mut o[..head + done]);
        out[..done].copy_from_slice(&o[head..head + done]);
    }
    draw(&mut streams, &clean[done..], &mut out[done..]);
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

    /// Any part of the input, aligned to a block or not, gets the noise the
    /// whole input gets there, and the generator advances the same.
    #[test]
    fn noise_of_a_part_is_that_part_of_the_whole() {
        let n = 30 * 7;
        let c32: Vec<f32> = (0..n).map(|i| (i % 11) as f32 / 11.0).collect();
        let c64: Vec<f64> = c32.iter().map(|&v| f64::from(v)).collect();
        for noise in [Noise::Gaussian { std: 0.5 }, Noise::Masking { p: 0.4 }] {
            let mut whole_rng = Rng::new(12);
            let mut whole = vec![0.0f32; n];
            apply_noise(noise, &mut whole_rng, &c32, &mut whole);
            let mut whole64 = vec![0.0f64; n];
            apply_noise(noise, &mut Rng::new(12), &c64, &mut whole64);
            for (lo, hi) in [
                (0, 5),
                (7, 40),
                (16, 48),
                (32, 33),
                (35, 210),
                (64, 96),
                (209, 210),
            ] {
                let mut rng = Rng::new(12);
                let mut part = vec![0.0f32; hi - lo];
                apply_noise_at(noise, &mut rng, &c32[lo..hi], &mut part, lo);
                assert_eq!(rng, whole_rng, "{noise:?}");
                assert!(
                    part.iter()
                        .zip(&whole[lo..hi])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{noise:?} {lo}..{hi}"
                );
                let mut part64 = vec![0.0f64; hi - lo];
                apply_noise_at(noise, &mut Rng::new(12), &c64[lo..hi], &mut part64, lo);
                assert!(part64 == whole64[lo..hi], "{noise:?} {lo}..{hi} (f64)");
            }
        }
    }

    #[test]
    fn f32_and_f64_models_draw_the_same_noise_from_32_draws() {
        let c64: Vec<f64> = (0..1000).map(|i| (i % 7) as f64 / 7.0).collect();
        let c32: Vec<f32> = c64.iter().map(|&v| v as f32).collect();
        let mut after = Rng::new(8);
        (0..32).for_each(|_| {
            after.next_u64();
        });
        for noise in [Noise::Gaussian { std: 0.5 }, Noise::Masking { p: 0.4 }] {
            let (mut o32, mut o64) = (vec![0.0f32; 1000], vec![0.0f64; 1000]);
            let (mut r32, mut r64) = (Rng::new(8), Rng::new(8));
            apply_noise(noise, &mut r32, &c32, &mut o32);
            apply_noise(noise, &mut r64, &c64, &mut o64);
            assert_eq!(r32, after);
            assert_eq!(r64, after);
            for (a, b) in o32.iter().zip(&o64) {
                assert!((*a as f64 - b).abs() < 1e-6, "{noise:?}: {a} vs {b}");
            }
            assert!(o32.iter().zip(&c32).filter(|(a, b)| a != b).count() > 300);
        }
    }
}
