//! The noise kernels on every path: the Box–Muller normals against the `f64`
//! transform of the same uniforms, the SIMD noise against the scalar twin,
//! the documented stream layout, and the statistics of the draws.
//!
//! A missing CPU feature prints "skipping <isa>", and fails the test when
//! `SPARSE_AE_REQUIRE_ISA` lists the path.
//!
//! Tolerance of Gaussian noise, SIMD against the twin: the twin computes
//! fl(x + fl(s·ž)) with ž the `f64` normal z rounded to `f32` (|ž − z| ≤ u|z|,
//! u = 2⁻²⁴), the SIMD path the same with its normal z̃ (|z̃ − z| ≤ E =
//! `NORMAL_MAX_ABS_ERR`); clipping to [0, 1] does not widen a gap, so
//! |Δ| ≤ s·E + 6u·(|x| + s·(|z| + E)) (the s·u|z| of ž, two products and two
//! sums each rounded within u of their size).

mod common;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::Isa;
use sparse_ae::kernels::elementwise::normal::{NORMAL_MAX_ABS_ERR, NORMAL_MAX_REL_ERR};
use sparse_ae::kernels::elementwise::{self as ew, NoiseStreams, STREAMS, scalar};
use sparse_ae::rng::Rng;

every_isa!(
    box_muller_error,
    gaussian_matches_twin,
    mask_matches_twin,
    gaussian_statistics,
    gaussian_clips,
    mask_probability,
    same_state_same_noise,
    skipped_streams_draw_the_rest,
);

const UNIT: f64 = 1.0 / (1u64 << 24) as f64;

fn streams(seed: u64) -> NoiseStreams {
    NoiseStreams::from_rng(&mut Rng::new(seed))
}

/// Every tail of 8 and 16 lanes and of the 32-element blocks, and a batch.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=70).chain([100, 1000, 32 * 784])
}

/// The published first outputs of xoshiro128++ from the state [1, 2, 3, 4]
/// (the reference `xoshiro128plusplus.c`; also the test of `rand_xoshiro`).
#[test]
fn streams_are_xoshiro128_plus_plus() {
    const REFERENCE: [u32; 10] = [
        641, 1573767, 3222811527, 3517856514, 836907274, 4247214768, 3867114732, 1355841295,
        495546011, 621204420,
    ];
    for k in [0, 5, STREAMS - 1] {
        let mut words = [7u32; 4 * STREAMS];
        for j in 0..4 {
            words[j * STREAMS + k] = j as u32 + 1;
        }
        let mut st = NoiseStreams::from_words(words);
        let got: Vec<u32> = (0..REFERENCE.len()).map(|_| st.next_u32(k)).collect();
        assert_eq!(got, REFERENCE, "stream {k}");
    }
    // An all-zero stream is repaired; the others stay as given.
    let st = NoiseStreams::from_words([0; 4 * STREAMS]);
    assert!((0..STREAMS).all(|k| st.words()[k] == 1));
    // Seeding takes exactly 32 draws.
    let (mut a, mut b) = (Rng::new(9), Rng::new(9));
    NoiseStreams::from_rng(&mut a);
    (0..32).for_each(|_| {
        b.next_u64();
    });
    assert_eq!(a.state(), b.state());
}

/// Max |z̃ − z| and max |z̃ − z|/r (r the pair's radius) of `isa`'s
/// Box–Muller over the words `a`, `b`, against the `f64` transform.
fn box_muller_errors(isa: Isa, a: &[u32], b: &[u32]) -> (f64, f64) {
    let n = a.len();
    let (mut z1, mut z2) = (vec![0.0f32; n], vec![0.0f32; n]);
    ew::box_muller(isa, a, b, &mut z1, &mut z2);
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for i in 0..n {
        let (c, s) = scalar::box_muller_f64(a[i], b[i]);
        let r = c.hypot(s);
        for (got, want) in [(z1[i], c), (z2[i], s)] {
            let e = (got as f64 - want).abs();
            assert!(
                e.is_finite() && (r > 0.0 || e == 0.0),
                "{isa}: words {:#x} {:#x}: got {got}, want {want}",
                a[i],
                b[i]
            );
            abs = abs.max(e);
            rel = rel.max(if r > 0.0 { e / r } else { 0.0 });
        }
    }
    (abs, rel)
}

/// The words of uniforms `k1` (u₁ = (k1 + 1)·2⁻²⁴) and `k2` (u₂ = k2·2⁻²⁴),
/// with random low bytes (which the transform must ignore).
fn words_of(r: &mut StdRng, k: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
    k.iter()
        .map(|&(k1, k2)| {
            (
                k1 << 8 | r.random_range(0..256u32),
                k2 << 8 | r.random_range(0..256u32),
            )
        })
        .unzip()
}

fn assert_box_muller_bounds(isa: Isa, a: &[u32], b: &[u32]) {
    let (abs, rel) = box_muller_errors(isa, a, b);
    assert!(abs <= NORMAL_MAX_ABS_ERR, "{isa}: abs error {abs:e}");
    assert!(rel <= NORMAL_MAX_REL_ERR, "{isa}: error/r {rel:e}");
}

/// Every 61st u₁ and every 59th u₂ (each paired with a far-away value of the
/// other), the extremes of u₁ (2⁻²⁴, 1, around √½ for the mantissa split),
/// each with u₂ at and next to every sixteenth of a turn; lengths cover tails.
fn box_muller_error(isa: Isa) {
    let mut r = StdRng::seed_from_u64(1);
    let top = 1u32 << 24;
    let mut k: Vec<(u32, u32)> = (0..top)
        .step_by(61)
        .map(|k1| (k1, k1.wrapping_mul(0x9e37_79b1) >> 8))
        .chain(
            (0..top)
                .step_by(59)
                .map(|k2| (k2.wrapping_mul(40503) % top, k2)),
        )
        .collect();
    let sqrt_half = (top as f64 * std::f64::consts::FRAC_1_SQRT_2) as u32;
    let edges = [0, 1, 2, 3, top / 2 - 1, top / 2, top - 2, top - 1];
    for &k1 in edges
        .iter()
        .chain(&[sqrt_half - 1, sqrt_half, sqrt_half + 1])
    {
        for o in 0..16u32 {
            let k2 = o * (top / 16);
            k.extend([(k1, k2), (k1, k2.saturating_sub(1)), (k1, k2 + 1)]);
        }
    }
    let (a, b) = words_of(&mut r, &k);
    let (abs, rel) = box_muller_errors(isa, &a, &b);
    eprintln!("{isa}: box_muller |z̃ − z| {abs:.3e}, |z̃ − z|/r {rel:.3e}");
    assert_box_muller_bounds(isa, &a, &b);
    for n in 0..=40 {
        assert_box_muller_bounds(isa, &a[..n], &b[..n]);
    }
}

/// On every path: r̃ on all 2²⁴ values of u₁ (u₂ = 0, so z̃₁ = r̃ exactly),
/// the rotation on all 2²⁴ values of u₂ at four radii, and every u₁ paired
/// once with every u₂. Asserts that the two parts add up to at most
/// `NORMAL_MAX_REL_ERR`. About 10 s per path in release:
/// `cargo test --release --test noise_paths -- --ignored --nocapture`.
#[test]
#[ignore]
fn box_muller_exhaustive() {
    let top = 1u32 << 24;
    let n = top as usize;
    let all: Vec<u32> = (0..top).map(|k| k << 8).collect();
    let (mut z1, mut z2) = (vec![0.0f32; n], vec![0.0f32; n]);
    for isa in Isa::available().into_iter().filter(|&i| i != Isa::Scalar) {
        ew::box_muller(isa, &all, &vec![0; n], &mut z1, &mut z2);
        let mut r_rel = 0.0f64;
        for (k, &rt) in z1.iter().enumerate() {
            let r = scalar::box_muller_f64(all[k], 0).0;
            assert_eq!(z2[k], 0.0);
            if r > 0.0 {
                r_rel = r_rel.max((rt as f64 - r).abs() / r);
            }
        }
        let mut rot = 0.0f64;
        for k1 in [0, 5, 1000, (top as f64 * (-0.5f64).exp()) as u32] {
            let a = vec![k1 << 8; n];
            ew::box_muller(isa, &a, &vec![0; n], &mut z1, &mut z2);
            let rt = z1[0] as f64;
            ew::box_muller(isa, &a, &all, &mut z1, &mut z2);
            for k in 0..n {
                let (s, c) = (std::f64::consts::TAU * k as f64 / top as f64).sin_cos();
                let e = (z1[k] as f64 - rt * c)
                    .abs()
                    .max((z2[k] as f64 - rt * s).abs());
                rot = rot.max(e / rt);
            }
        }
        // k2 = 5·k1 + 3 mod 2²⁴ is a bijection.
        let b: Vec<u32> = (0..top)
            .map(|k| (k.wrapping_mul(5).wrapping_add(3) % top) << 8)
            .collect();
        let (abs, rel) = box_muller_errors(isa, &all, &b);
        eprintln!(
            "{isa}: r̃ rel {r_rel:.3e}, rotation {rot:.3e}; pairs |z̃ − z| {abs:.3e}, /r {rel:.3e}"
        );
        assert!(r_rel + rot * (1.0 + r_rel) <= NORMAL_MAX_REL_ERR);
        assert!(abs <= NORMAL_MAX_ABS_ERR && rel <= NORMAL_MAX_REL_ERR);
    }
}

/// x in [0, 1] with the ends, and a NaN now and then.
fn clean(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match r.random_range(0..20u32) {
            0 => 0.0,
            1 => 1.0,
            2 => f32::NAN,
            _ => r.random_range(0.0f32..=1.0),
        })
        .collect()
}

/// The documented layout, from the streams one word at a time: the `f64`
/// normal of element i (stream i mod 16; blocks of 32, pair to k and 16 + k).
fn reference_normals(st: &mut NoiseStreams, n: usize) -> Vec<f64> {
    let mut z = vec![0.0; n.next_multiple_of(2 * STREAMS)];
    for blk in (0..z.len()).step_by(2 * STREAMS) {
        for k in 0..STREAMS {
            let (a, b) = (st.next_u32(k), st.next_u32(k));
            (z[blk + k], z[blk + STREAMS + k]) = scalar::box_muller_f64(a, b);
        }
    }
    z.truncate(n);
    z
}

/// Into [0, 1], NaN to 0 (as the twin's `max`; `clamp` would keep NaN).
#[allow(clippy::manual_clamp)]
fn clip01(v: f32) -> f32 {
    v.max(0.0).min(1.0)
}

fn gaussian_matches_twin(isa: Isa) {
    let mut r = StdRng::seed_from_u64(2);
    let u = UNIT;
    for n in lengths() {
        for std in [0.5f32, 0.1, 3.0] {
            let x = clean(&mut r, n);
            let st0 = streams(n as u64);
            let z = reference_normals(&mut st0.clone(), n);
            let (mut got, mut want) = (vec![-1.0f32; n], vec![-1.0f32; n]);
            let (mut sg, mut sw) = (st0.clone(), st0.clone());
            ew::gaussian_noise(isa, &mut sg, &x, &mut got, std);
            scalar::gaussian_noise(&mut sw, &x, &mut want, std);
            assert_eq!(sg, sw, "{isa} n={n}: streams after the call");
            let s = std as f64;
            for i in 0..n {
                // The twin is exactly the formula on the reference normals.
                let v = clip01(x[i] + std * z[i] as f32);
                assert_eq!(want[i].to_bits(), v.to_bits(), "twin n={n} i={i}");
                let xi = if x[i].is_nan() {
                    0.0
                } else {
                    x[i].abs() as f64
                };
                let tol =
                    s * NORMAL_MAX_ABS_ERR + 6.0 * u * (xi + s * (z[i].abs() + NORMAL_MAX_ABS_ERR));
                let d = (got[i] as f64 - want[i] as f64).abs();
                assert!(
                    d <= tol && (0.0..=1.0).contains(&got[i]),
                    "{isa} n={n} std={std} i={i}: got {} want {} (x {})",
                    got[i],
                    want[i],
                    x[i]
                );
            }
        }
    }
}

fn mask_matches_twin(isa: Isa) {
    let mut r = StdRng::seed_from_u64(3);
    for n in lengths() {
        for p in [0.0, 0.3, 0.5, 1.0] {
            let x = clean(&mut r, n);
            let st0 = streams(1000 + n as u64);
            let (mut got, mut want) = (vec![-1.0f32; n], vec![-1.0f32; n]);
            let (mut sg, mut sw, mut sr) = (st0.clone(), st0.clone(), st0);
            ew::mask_noise(isa, &mut sg, &x, &mut got, p);
            scalar::mask_noise(&mut sw, &x, &mut want, p);
            assert_eq!(sg, sw, "{isa} n={n}: streams after the call");
            // The layout: element i takes the next word of stream i mod 16.
            let limit = (p * (1u64 << 24) as f64).ceil() as u32;
            for blk in (0..n.next_multiple_of(STREAMS)).step_by(STREAMS) {
                for k in 0..STREAMS {
                    let w = sr.next_u32(k);
                    let i = blk + k;
                    if i < n {
                        let v = if w >> 8 < limit { 0.0 } else { x[i] };
                        assert_eq!(want[i].to_bits(), v.to_bits(), "twin n={n} i={i}");
                    }
                }
            }
            assert_eq!(sr, sw, "n={n}: reference streams");
            for i in 0..n {
                assert_eq!(got[i].to_bits(), want[i].to_bits(), "{isa} n={n} i={i}");
            }
        }
    }
}

/// With x = 0.5 and std = 1/16 nothing is clipped (|z| < 5.8) and z is
/// recovered to within 16·2⁻²⁵. On 2²⁰ draws (standard errors: mean 0.001,
/// variance 0.0014, kurtosis 0.005, tail fractions √(p(1 − p)/n)), each check
/// allows about 5 standard errors; lag-1, lag-16 (same stream) and pair
/// (k, 16 + k) correlations must vanish to 0.005.
fn gaussian_statistics(isa: Isa) {
    let n = 1 << 20;
    let x = vec![0.5f32; n];
    let mut out = vec![0.0f32; n];
    ew::gaussian_noise(isa, &mut streams(11), &x, &mut out, 1.0 / 16.0);
    let z: Vec<f64> = out.iter().map(|&v| (v as f64 - 0.5) * 16.0).collect();
    let nf = n as f64;
    let mean = z.iter().sum::<f64>() / nf;
    let m = |p: i32| z.iter().map(|v| (v - mean).powi(p)).sum::<f64>() / nf;
    let (var, skew, kurt) = (m(2), m(3) / m(2).powf(1.5), m(4) / (m(2) * m(2)));
    assert!(mean.abs() < 0.005, "{isa}: mean {mean}");
    assert!((var - 1.0).abs() < 0.007, "{isa}: variance {var}");
    assert!(skew.abs() < 0.012, "{isa}: skewness {skew}");
    assert!((kurt - 3.0).abs() < 0.025, "{isa}: kurtosis {kurt}");
    for (c, p) in [
        (1.0, 0.317_310_5),
        (2.0, 0.045_500_26),
        (3.0, 0.002_699_796),
    ] {
        let frac = z.iter().filter(|v| v.abs() > c).count() as f64 / nf;
        let tol = 5.0 * (p * (1.0 - p) / nf).sqrt();
        assert!(
            (frac - p).abs() < tol,
            "{isa}: P(|z| > {c}) = {frac}, want {p}"
        );
    }
    assert!(z.iter().all(|v| v.abs() < 5.8), "{isa}: a draw beyond 5.77");
    assert!(z.iter().any(|v| v.abs() > 4.0), "{isa}: no draw beyond 4σ");
    let corr = |lag: usize, pick: &dyn Fn(usize) -> bool| {
        let (mut s, mut c) = (0.0, 0.0);
        for i in (0..n - lag).filter(|&i| pick(i)) {
            s += (z[i] - mean) * (z[i + lag] - mean);
            c += 1.0;
        }
        s / c / var
    };
    for (what, lag, pick) in [
        ("lag 1", 1, &(|_| true) as &dyn Fn(usize) -> bool),
        ("lag 16", 16, &(|i| i % 32 >= 16)),
        ("pair", 16, &(|i| i % 32 < 16)),
    ] {
        let c = corr(lag, pick);
        assert!(c.abs() < 0.005, "{isa}: {what} correlation {c}");
    }
}

fn gaussian_clips(isa: Isa) {
    let n = 10_000;
    let x: Vec<f32> = (0..n)
        .map(|i| if i % 97 == 0 { f32::NAN } else { 0.5 })
        .collect();
    let mut out = vec![-1.0f32; n];
    ew::gaussian_noise(isa, &mut streams(5), &x, &mut out, 5.0);
    assert!(
        out.iter().all(|v| (0.0..=1.0).contains(v)),
        "{isa}: out of [0, 1]"
    );
    assert!(out.iter().step_by(97).all(|&v| v == 0.0), "{isa}: NaN → 0");
    let at = |c: f32| out.iter().filter(|&&v| v == c).count() as f64 / n as f64;
    // P(0.5 + 5z ≤ 0) = Φ(−0.1) = 0.4602, the same for 1.
    for c in [0.0, 1.0] {
        assert!(
            (at(c) - 0.46).abs() < 0.03,
            "{isa}: P(out = {c}) = {}",
            at(c)
        );
    }
}

fn mask_probability(isa: Isa) {
    let n = 1 << 20;
    let x = vec![0.7f32; n];
    let mut out = vec![0.0f32; n];
    for (i, p) in [0.0, 0.1, 0.3, 0.75, 1.0].into_iter().enumerate() {
        ew::mask_noise(isa, &mut streams(20 + i as u64), &x, &mut out, p);
        assert!(out.iter().all(|&v| v == 0.0 || v == 0.7));
        let frac = out.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        let tol = 5.0 * (p * (1.0 - p) / n as f64).sqrt();
        assert!((frac - p).abs() <= tol, "{isa}: p {p}: zeroed {frac}");
        // Each stream alone zeroes about p of its elements.
        for k in 0..STREAMS {
            let z = out.iter().skip(k).step_by(STREAMS).filter(|&&v| v == 0.0);
            let fk = z.count() as f64 / (n / STREAMS) as f64;
            assert!((fk - p).abs() <= 4.0 * tol, "{isa}: p {p} stream {k}: {fk}");
        }
    }
}

fn same_state_same_noise(isa: Isa) {
    let mut r = StdRng::seed_from_u64(4);
    let x = clean(&mut r, 1000);
    let st = streams(6);
    let (mut a, mut b) = (vec![0.0f32; 1000], vec![0.0f32; 1000]);
    let (mut sa, mut sb) = (st.clone(), st.clone());
    ew::gaussian_noise(isa, &mut sa, &x, &mut a, 0.5);
    ew::gaussian_noise(isa, &mut sb, &x, &mut b, 0.5);
    assert_eq!(sa, sb);
    assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
    // The streams moved on: the next call draws other noise.
    assert_ne!(sa, st);
    ew::gaussian_noise(isa, &mut sa, &x, &mut b, 0.5);
    assert!(a.iter().zip(&b).filter(|(p, q)| p != q).count() > 800);
}

/// Streams skipped past whole blocks (`NoiseStreams::skip`, two words per
/// stream for each block of 32 Gaussian values, one for each 16 masked
/// values) draw the rest of the call's noise, bit for bit, and end in the
/// same state: how a rank draws the noise of its own rows.
fn skipped_streams_draw_the_rest(isa: Isa) {
    let mut r = StdRng::seed_from_u64(5);
    let n = 1000;
    let x = clean(&mut r, n);
    for blocks in [0, 1, 3, 31] {
        let (mut whole_st, mut part_st) = (streams(7), streams(7));
        let mut whole = vec![0.0f32; n];
        ew::gaussian_noise(isa, &mut whole_st, &x, &mut whole, 0.5);
        let at = 2 * STREAMS * blocks;
        part_st.skip(2 * blocks as u64);
        let mut part = vec![0.0f32; n - at];
        ew::gaussian_noise(isa, &mut part_st, &x[at..], &mut part, 0.5);
        assert_eq!(part_st, whole_st, "{isa}: gaussian, {blocks} blocks");
        assert!(
            part.iter()
                .zip(&whole[at..])
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );

        let (mut whole_st, mut part_st) = (streams(8), streams(8));
        ew::mask_noise(isa, &mut whole_st, &x, &mut whole, 0.3);
        let at = STREAMS * blocks;
        part_st.skip(blocks as u64);
        let mut part = vec![0.0f32; n - at];
        ew::mask_noise(isa, &mut part_st, &x[at..], &mut part, 0.3);
        assert_eq!(part_st, whole_st, "{isa}: masking, {blocks} blocks");
        assert!(
            part.iter()
                .zip(&whole[at..])
                .all(|(p, q)| p.to_bits() == q.to_bits())
        );
    }
}
