//! Every path of the elementwise kernels against the scalar twin and against
//! the exact (`f64`) functions.
//!
//! For each SIMD path (`Isa::Avx2`, `Isa::Avx512`) a missing CPU feature
//! prints "skipping <isa>", and fails the test when `SPARSE_AE_REQUIRE_ISA`
//! lists the path. Lengths 0..=70 cover every tail of both vector widths;
//! 1000 and 4099 cover the unrolled loops.
//!
//! Tolerances:
//! - exact ops (bias, linear/ReLU/leaky, every derivative, col_sum, axpy, the
//!   sq_err/l1 gradients, Adam, SGD, byte conversion): the SIMD bodies do the
//!   scalar twin's operations in its order without FMA, so results must be
//!   bit-identical (NaN matches any NaN);
//! - f64 sums of f32 terms in another order: |Δ| ≤ 2·n·2⁻⁵³·Σ|termᵢ| (each
//!   order is within (n − 1)·u·Σ|termᵢ| of the exact sum);
//! - σ, tanh, ln(1 + e^(−|z|)): within the documented bounds of
//!   `elementwise::approx` of the `f64` function, on every path.

mod common;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::elementwise::{self as ew, approx, scalar};
use sparse_ae::kernels::{Activation, AdamHyper, Isa};

every_isa!(
    sigmoid_error,
    tanh_error,
    ln1p_exp_error,
    adam_keras_formula
);

const SMALLEST_NORMAL: f64 = f32::MIN_POSITIVE as f64;

/// The sweep: every 10⁻³ in [−100, 100], plus special and extreme values.
fn sweep() -> Vec<f32> {
    let mut z: Vec<f32> = (-100_000..=100_000).map(|k| k as f32 * 1e-3).collect();
    z.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        0.625,
        -0.625,
        0.624_999_94,
        87.0,
        -87.0,
        -87.33,
        -88.0,
        -103.0,
        -104.0,
        -150.0,
        200.0,
        -200.0,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]);
    z
}

fn sigmoid64(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Max absolute error, and max relative error where |exact| ≥ 2⁻¹²⁶.
fn max_errors(z: &[f32], got: &[f32], exact: impl Fn(f64) -> f64) -> (f64, f64) {
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    let (mut za, mut zr) = (0.0f32, 0.0f32);
    for (&zi, &gi) in z.iter().zip(got) {
        let want = exact(zi as f64);
        let err = (gi as f64 - want).abs();
        assert!(!err.is_nan(), "z = {zi:e}: got {gi:e}, want {want:e}");
        if err > abs {
            (abs, za) = (err, zi);
        }
        if want.abs() >= SMALLEST_NORMAL && err / want.abs() > rel {
            (rel, zr) = (err / want.abs(), zi);
        }
    }
    eprintln!("  (worst absolute at z = {za:e}, worst relative at z = {zr:e})");
    (abs, rel)
}

fn sigmoid_error(isa: Isa) {
    sigmoid_error_on(isa, &sweep());
}

fn sigmoid_error_on(isa: Isa, z: &[f32]) {
    let mut h = z.to_vec();
    ew::act_forward(isa, Activation::Sigmoid, &mut h);
    let (abs, rel) = max_errors(z, &h, sigmoid64);
    eprintln!("{isa} sigmoid: max abs err {abs:.3e}, max rel err {rel:.3e}");
    assert!(abs <= approx::SIGMOID_MAX_ABS_ERR, "{isa}: abs {abs:e}");
    assert!(rel <= approx::SIGMOID_MAX_REL_ERR, "{isa}: rel {rel:e}");
    let mut s = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0];
    ew::act_forward(isa, Activation::Sigmoid, &mut s);
    assert_eq!(s[..2], [1.0, 0.0], "{isa}: sigmoid(±inf)");
    assert!(s[2].is_nan(), "{isa}: sigmoid(NaN) = {}", s[2]);
    assert_eq!(s[3], 0.5, "{isa}: sigmoid(0)");
}

fn tanh_error(isa: Isa) {
    tanh_error_on(isa, &sweep());
}

fn tanh_error_on(isa: Isa, z: &[f32]) {
    let mut h = z.to_vec();
    ew::act_forward(isa, Activation::Tanh, &mut h);
    let (abs, rel) = max_errors(z, &h, f64::tanh);
    eprintln!("{isa} tanh: max abs err {abs:.3e}, max rel err {rel:.3e}");
    assert!(abs <= approx::TANH_MAX_ABS_ERR, "{isa}: abs {abs:e}");
    assert!(rel <= approx::TANH_MAX_REL_ERR, "{isa}: rel {rel:e}");
    let mut s = [f32::INFINITY, f32::NEG_INFINITY, 50.0, -50.0, f32::NAN];
    ew::act_forward(isa, Activation::Tanh, &mut s);
    assert_eq!(s[..4], [1.0, -1.0, 1.0, -1.0], "{isa}: tanh(±large)");
    assert!(s[4].is_nan(), "{isa}: tanh(NaN) = {}", s[4]);
}

/// ln(1 + e^(−|z|)) read from BCE: with x = 0 and z ≤ 0 each term is exactly
/// that value; 16 copies of z (a full vector on every path) sum exactly in f64.
fn ln1p_exp_error(isa: Isa) {
    ln1p_exp_error_on(isa, &sweep());
}

fn ln1p_exp_error_on(isa: Isa, z: &[f32]) {
    // (z·x = ∞·0 is NaN, so infinite logits are left out.)
    let z: Vec<f32> = z
        .iter()
        .copied()
        .filter(|v| *v <= 0.0 && v.is_finite())
        .collect();
    let x = [0.0f32; 16];
    let got: Vec<f32> = z
        .iter()
        .map(|&zi| (ew::bce_logits(isa, &[zi; 16], &x, None, 1.0) / 16.0) as f32)
        .collect();
    let (abs, rel) = max_errors(&z, &got, |v| (-v.abs()).exp().ln_1p());
    eprintln!("{isa} ln(1+e^-|z|): max abs err {abs:.3e}, max rel err {rel:.3e}");
    assert!(abs <= approx::LN1P_EXP_MAX_ABS_ERR, "{isa}: abs {abs:e}");
    assert!(rel <= approx::LN1P_EXP_MAX_REL_ERR, "{isa}: rel {rel:e}");
}

/// Every 61st `f32` bit pattern with |z| ≤ 128, both signs (about 3.6·10⁷
/// values per function and path, every binade and mantissa region), against
/// the same bounds. About a minute, so run on demand:
/// `cargo test --release --test elementwise_paths bit_pattern -- --ignored --nocapture`.
#[test]
#[ignore]
fn bit_pattern_sweep() {
    let top = 128.0f32.to_bits();
    let z: Vec<f32> = (0..=top)
        .step_by(61)
        .map(f32::from_bits)
        .flat_map(|v| [v, -v])
        .collect();
    for isa in Isa::available() {
        sigmoid_error_on(isa, &z);
        tanh_error_on(isa, &z);
        ln1p_exp_error_on(isa, &z);
    }
}

// ---- SIMD paths against the scalar twin ----------------------------------

simd_isas!(
    bias_add,
    act_exact,
    act_approx,
    act_backward,
    col_sum,
    bce_logits,
    sq_err,
    l1,
    axpy,
    sum_sq,
    sum_order,
    adam_step,
    adam_step_sum,
    adam_reciprocal,
    adam_decay_has_no_subnormals,
    sgd_momentum_step,
    u8_to_f32_scaled,
);

/// Every tail of 8 and 16 lanes, and two lengths that run the unrolled loops.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=70).chain([1000, 4099])
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` uniform values in [lo, hi).
fn uniform(r: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// Values for activations: mostly moderate, some near zero (±0, ±subnormal,
/// ±1e-30), some large, and a few NaN and ±∞.
fn activation_inputs(r: &mut StdRng, n: usize) -> Vec<f32> {
    const SPECIAL: [f32; 12] = [
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        1e-30,
        -1e-30,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        90.0,
        -90.0,
        -1e6,
    ];
    (0..n)
        .map(|_| match r.random_range(0..10u32) {
            0 => SPECIAL[r.random_range(0..SPECIAL.len())],
            1 => r.random_range(-1e-6f32..1e-6),
            2 => r.random_range(-120.0f32..120.0),
            _ => r.random_range(-6.0f32..6.0),
        })
        .collect()
}

/// Bitwise equality, where any NaN equals any NaN.
fn assert_same(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: element {i}: got {g:e} ({:#x}), want {w:e} ({:#x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

/// Two f64 sums of the same f32 terms in different orders:
/// |got − want| ≤ 2·n·2⁻⁵³·Σ|termᵢ| (+ `extra`), NaN only together.
fn assert_sum(got: f64, want: f64, abs_terms: f64, n: usize, extra: f64, what: &str) {
    if !want.is_finite() {
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{what}: got {got:e}, want {want:e}"
        );
        return;
    }
    let tol = 2.0 * n as f64 * f64::EPSILON / 2.0 * abs_terms + extra;
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e}, |Δ| = {:e} > {tol:e}",
        (got - want).abs()
    );
}

const ACTIVATIONS: [Activation; 6] = [
    Activation::Linear,
    Activation::Relu,
    Activation::LeakyRelu(0.01),
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];

fn is_exact(act: Activation) -> bool {
    !matches!(act, Activation::Sigmoid | Activation::Tanh)
}

fn bias_add(isa: Isa) {
    let mut r = rng(1);
    for cols in lengths() {
        for rows in [0, 1, 3] {
            let x0 = activation_inputs(&mut r, rows * cols);
            let bias = activation_inputs(&mut r, cols);
            let (mut got, mut want) = (x0.clone(), x0);
            ew::bias_add(isa, &mut got, cols, &bias);
            scalar::bias_add(&mut want, cols, &bias);
            assert_same(&got, &want, &format!("{isa} bias_add {rows}x{cols}"));
        }
    }
}

/// Linear, ReLU and leaky ReLU (both slopes) through `act_forward` and the
/// fused `bias_act`: bit-identical, NaN kept, −0 kept.
fn act_exact(isa: Isa) {
    let mut r = rng(2);
    for act in ACTIVATIONS.into_iter().filter(|a| is_exact(*a)) {
        for n in lengths() {
            let x0 = activation_inputs(&mut r, n);
            let bias = activation_inputs(&mut r, n);
            let (mut got, mut want) = (x0.clone(), x0.clone());
            ew::act_forward(isa, act, &mut got);
            scalar::act_forward(act, &mut want);
            assert_same(&got, &want, &format!("{isa} {act:?} n={n}"));
            for b in [None, Some(&bias[..])] {
                let (mut got, mut want) = (x0.clone(), x0.clone());
                ew::bias_act(isa, &mut got, b, act);
                scalar::bias_act(&mut want, b, act);
                assert_same(&got, &want, &format!("{isa} bias_act {act:?} n={n}"));
            }
        }
    }
    let mut nan = [f32::NAN, -0.0, 0.0, f32::NEG_INFINITY];
    ew::act_forward(isa, Activation::Relu, &mut nan);
    assert!(nan[0].is_nan(), "{isa}: relu(NaN) = {}", nan[0]);
    assert_eq!(
        nan[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [(-0.0f32).to_bits(), 0, 0]
    );
}

/// σ and tanh through `act_forward` and `bias_act`: within the documented
/// bound of the f64 value at the same f32 argument (x + bias rounded as the
/// scalar twin rounds it); NaN exactly where the twin has NaN.
fn act_approx(isa: Isa) {
    let mut r = rng(3);
    for act in [Activation::Sigmoid, Activation::Tanh] {
        let (exact, abs_tol, rel_tol): (fn(f64) -> f64, f64, f64) = match act {
            Activation::Sigmoid => (
                sigmoid64,
                approx::SIGMOID_MAX_ABS_ERR,
                approx::SIGMOID_MAX_REL_ERR,
            ),
            _ => (
                f64::tanh,
                approx::TANH_MAX_ABS_ERR,
                approx::TANH_MAX_REL_ERR,
            ),
        };
        for n in lengths() {
            let x0 = activation_inputs(&mut r, n);
            let bias = uniform(&mut r, n, -2.0, 2.0);
            for b in [None, Some(&bias[..])] {
                let mut got = x0.clone();
                ew::bias_act(isa, &mut got, b, act);
                let mut want = x0.clone();
                scalar::bias_act(&mut want, b, act);
                for i in 0..n {
                    let z = x0[i] + b.map_or(0.0, |b| b[i]);
                    let what = format!("{isa} {act:?} n={n} z={z:e}");
                    assert_eq!(got[i].is_nan(), want[i].is_nan(), "{what}");
                    if want[i].is_nan() {
                        continue;
                    }
                    let e = exact(z as f64);
                    let err = (got[i] as f64 - e).abs();
                    assert!(
                        err <= abs_tol && (e.abs() < SMALLEST_NORMAL || err <= rel_tol * e.abs()),
                        "{what}: got {:e}, exact {e:e}",
                        got[i]
                    );
                }
            }
        }
    }
}

fn act_backward(isa: Isa) {
    let mut r = rng(4);
    for act in ACTIVATIONS {
        for n in lengths() {
            // Outputs in each activation's range, some exactly 0, ±∞ and NaN.
            let mut h = activation_inputs(&mut r, n);
            scalar::act_forward(act, &mut h);
            let dh0 = activation_inputs(&mut r, n);
            let (mut got, mut want) = (dh0.clone(), dh0);
            ew::act_backward(isa, act, &h, &mut got);
            scalar::act_backward(act, &h, &mut want);
            assert_same(&got, &want, &format!("{isa} {act:?}' n={n}"));
        }
    }
}

fn col_sum(isa: Isa) {
    let mut r = rng(5);
    for cols in lengths() {
        for rows in [0, 1, 2, 5, 33] {
            let x = uniform(&mut r, rows * cols, -1e3, 1e3);
            let mut got = vec![f32::NAN; cols];
            let mut want = vec![0.0; cols];
            ew::col_sum(isa, &x, cols, &mut got);
            scalar::col_sum(&x, cols, &mut want);
            assert_same(&got, &want, &format!("{isa} col_sum {rows}x{cols}"));
        }
    }
}

/// Logits from moderate to huge (BCE saturates), targets in [0, 1].
fn bce_logits(isa: Isa) {
    let mut r = rng(6);
    for n in lengths() {
        for zmax in [8.0f32, 200.0] {
            let z = uniform(&mut r, n, -zmax, zmax);
            let x = uniform(&mut r, n, 0.0, 1.0);
            let scale = 1.0 / (n.max(1) as f32);
            let mut got_dz = vec![f32::NAN; n];
            let mut want_dz = vec![0.0; n];
            let got = ew::bce_logits(isa, &z, &x, Some(&mut got_dz), scale);
            let want = scalar::bce_logits(&z, &x, Some(&mut want_dz), scale);
            let got_nodz = ew::bce_logits(isa, &z, &x, None, scale);
            assert_eq!(
                got.to_bits(),
                got_nodz.to_bits(),
                "{isa} n={n}: with/without dz"
            );
            // Each term differs by the ln(1 + e) errors of both paths plus one
            // f32 rounding of the final add on each side.
            let mut abs_terms = 0.0;
            let mut extra = 0.0;
            for i in 0..n {
                let t = scalar::bce_one(z[i], x[i]) as f64;
                abs_terms += t.abs();
                extra += 2.0 * approx::LN1P_EXP_MAX_ABS_ERR + 2.0 * t.abs() * f32::EPSILON as f64;
                // dz = scale·(σ − x): both σ within the bound; two f32 roundings each.
                let tol = scale as f64
                    * (2.0 * approx::SIGMOID_MAX_ABS_ERR
                        + 4.0 * f32::EPSILON as f64 * (1.0 + x[i] as f64));
                let d = (got_dz[i] as f64 - want_dz[i] as f64).abs();
                assert!(
                    d <= tol,
                    "{isa} n={n} z={} x={}: dz {} vs {}",
                    z[i],
                    x[i],
                    got_dz[i],
                    want_dz[i]
                );
            }
            assert_sum(got, want, abs_terms, n, extra, &format!("{isa} bce n={n}"));
        }
    }
    // A NaN logit poisons the sum; infinite logits behave as in the twin.
    let mut z = vec![0.5; 37];
    z[17] = f32::NAN;
    let x = vec![0.5; 37];
    assert!(
        ew::bce_logits(isa, &z, &x, None, 1.0).is_nan(),
        "{isa}: NaN logit"
    );
    let z = [f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30];
    let x = [1.0, 0.0, 1.0, 0.0];
    let mut dz = [f32::NAN; 4];
    let got = ew::bce_logits(isa, &z, &x, Some(&mut dz), 1.0);
    let mut want_dz = [0.0; 4];
    let want = scalar::bce_logits(&z, &x, Some(&mut want_dz), 1.0);
    assert_eq!(
        got.is_nan(),
        want.is_nan(),
        "{isa}: infinite logits {got} vs {want}"
    );
    assert_same(&dz, &want_dz, &format!("{isa}: dz at infinite logits"));
}

fn sq_err(isa: Isa) {
    let mut r = rng(7);
    for n in lengths() {
        let y = uniform(&mut r, n, -3.0, 3.0);
        let x = uniform(&mut r, n, 0.0, 1.0);
        let scale = 0.37;
        let mut got_dy = vec![f32::NAN; n];
        let mut want_dy = vec![0.0; n];
        let got = ew::sq_err(isa, &y, &x, Some(&mut got_dy), scale);
        let want = scalar::sq_err(&y, &x, Some(&mut want_dy), scale);
        let abs_terms = scalar::sq_err(&y, &x, None, scale);
        assert_sum(got, want, abs_terms, n, 0.0, &format!("{isa} sq_err n={n}"));
        let got_nody = ew::sq_err(isa, &y, &x, None, scale);
        assert_eq!(got.to_bits(), got_nody.to_bits(), "{isa} n={n}");
        assert_same(&got_dy, &want_dy, &format!("{isa} sq_err dy n={n}"));
    }
}

fn l1(isa: Isa) {
    let mut r = rng(8);
    for n in lengths() {
        let h = activation_inputs(&mut r, n);
        let d0 = activation_inputs(&mut r, n);
        let (mut got_d, mut want_d) = (d0.clone(), d0);
        let got = ew::l1(isa, &h, Some(&mut got_d), 0.01);
        let want = scalar::l1(&h, Some(&mut want_d), 0.01);
        let abs_terms = want.abs();
        assert_sum(got, want, abs_terms, n, 0.0, &format!("{isa} l1 n={n}"));
        assert_same(&got_d, &want_d, &format!("{isa} l1 dh n={n}"));
        let finite = uniform(&mut r, n, -2.0, 2.0);
        let got = ew::l1(isa, &finite, None, 0.01);
        let want = scalar::l1(&finite, None, 0.01);
        assert_sum(got, want, want, n, 0.0, &format!("{isa} l1 finite n={n}"));
    }
}

fn axpy(isa: Isa) {
    let mut r = rng(9);
    for n in lengths() {
        let x = activation_inputs(&mut r, n);
        let y0 = uniform(&mut r, n, -10.0, 10.0);
        for a in [0.0, -0.3, 2.5] {
            let (mut got, mut want) = (y0.clone(), y0.clone());
            ew::axpy(isa, a, &x, &mut got);
            scalar::axpy(a, &x, &mut want);
            assert_same(&got, &want, &format!("{isa} axpy a={a} n={n}"));
        }
    }
}

fn sum_sq(isa: Isa) {
    let mut r = rng(10);
    for n in lengths() {
        let x = uniform(&mut r, n, -100.0, 100.0);
        let want = scalar::sum_sq(&x);
        assert_sum(
            ew::sum_sq(isa, &x),
            want,
            want,
            n,
            0.0,
            &format!("{isa} sum_sq n={n}"),
        );
    }
    let x = [1.0, f32::NAN, 2.0];
    assert!(ew::sum_sq(isa, &x).is_nan(), "{isa}: NaN in sum_sq");
}

/// The order of a SIMD sum is the documented one whatever the loop's
/// unrolling: two f64 accumulators take alternate vectors in order (the
/// tail last, into the second), then they are added. Lane 0 of the first
/// vector holds 1 and lane 0 of every later vector (and of the tail) a
/// random value near 2⁻²⁷, whose square (2⁻⁵⁴ to 2⁻⁵³) is lost when added
/// to 1 but not when added to its peers, so the result shows which squares
/// went into the second accumulator; every other lane is 0, so the lanes'
/// final sum is exact. (A swap of two vectors between the accumulators, or
/// four accumulators, fails it.)
fn sum_order(isa: Isa) {
    let lanes = match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
        _ => 4,
    };
    let mut r = rng(15);
    for vectors in 0..=13usize {
        for tail in [0, 1, lanes - 1] {
            let n = vectors * lanes + tail;
            let mut x = vec![0.0f32; n];
            for k in 0..n.div_ceil(lanes) {
                x[k * lanes] = if k == 0 {
                    1.0
                } else {
                    2f32.powi(-27) * r.random_range(1.0f32..1.41)
                };
            }
            let (mut acc0, mut acc1) = (0.0f64, 0.0f64);
            for k in 0..vectors {
                let sq = f64::from(x[k * lanes] * x[k * lanes]);
                if k % 2 == 0 {
                    acc0 += sq;
                } else {
                    acc1 += sq;
                }
            }
            if tail > 0 {
                let v = x[vectors * lanes];
                acc1 += f64::from(v * v);
            }
            let want = acc0 + acc1;
            let got = ew::sum_sq(isa, &x);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{isa} sum_sq order, {vectors} vectors + {tail}: {got:e} vs {want:e}"
            );
        }
    }
}

/// Three Adam steps (Keras defaults), gradients from tiny to large and zero,
/// on both of the SIMD paths' updates ([`AdamHyper::divide`]): dividing, the
/// scalar twin's values bit for bit; multiplying by the reciprocal, the same
/// moments and parameters within the reciprocal's error.
fn adam_step(isa: Isa) {
    for divide in [false, true] {
        let mut r = rng(11);
        for n in lengths() {
            let p0 = uniform(&mut r, n, -1.0, 1.0);
            // Moments from zero, from about their floors (the band where
            // they are set to zero) and from moderate values.
            let moment = |r: &mut StdRng, sign: bool| -> f32 {
                let x = match r.random_range(0..3u32) {
                    0 => 0.0,
                    1 => 10f32.powf(r.random_range(-38.5f32..-34.0)),
                    _ => r.random_range(1e-4f32..1.0),
                };
                if sign && r.random::<bool>() { -x } else { x }
            };
            let m0: Vec<f32> = (0..n).map(|_| moment(&mut r, true)).collect();
            let v0: Vec<f32> = (0..n).map(|_| moment(&mut r, false)).collect();
            let mut got = (p0.clone(), m0.clone(), v0.clone());
            let mut want = (p0, m0, v0);
            for t in 1..=3 {
                let g: Vec<f32> = (0..n)
                    .map(|_| match r.random_range(0..4u32) {
                        0 => 0.0,
                        1 => r.random_range(-1e-6f32..1e-6),
                        2 => r.random_range(-1e3f32..1e3),
                        _ => r.random_range(-1.0f32..1.0),
                    })
                    .collect();
                let h = AdamHyper {
                    divide,
                    ..AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t)
                };
                let before = want.0.clone();
                ew::adam_step(isa, &mut got.0, &g, &mut got.1, &mut got.2, &h);
                scalar::adam_step(&mut want.0, &g, &mut want.1, &mut want.2, &h);
                let what = format!("{isa} adam (divide {divide}) t={t} n={n}");
                assert_same(&got.1, &want.1, &format!("{what} m"));
                assert_same(&got.2, &want.2, &format!("{what} v"));
                if isa == Isa::Scalar || divide {
                    assert_same(&got.0, &want.0, &format!("{what} p"));
                } else {
                    // The SIMD step multiplies by a reciprocal within 1 ulp: the
                    // step is within 2 ulp, and p − step within 1 ulp of p more.
                    for (i, ((&b, &w), &g)) in before.iter().zip(&want.0).zip(&got.0).enumerate() {
                        let step = f64::from(b) - f64::from(w);
                        let tol =
                            step.abs() * 2.0 * 2f64.powi(-23) + f64::from(w).abs() * 2f64.powi(-23);
                        let err = (f64::from(g) - f64::from(w)).abs();
                        assert!(
                            err <= tol,
                            "{what} p[{i}]: {g} vs {w} (step {step:e}, tol {tol:e})"
                        );
                    }
                    got.0.copy_from_slice(&want.0);
                }
            }
        }
    }
}

/// Moments decaying under zero gradients reach zero without a subnormal
/// product on the way, on every path: after each update every m is 0 or
/// large enough that β1·m and the next lr_t·m are normal, every v 0 or
/// large enough that β2·v is (`AdamHyper::floors`); and all reach 0.
fn adam_decay_has_no_subnormals(isa: Isa) {
    // The path, and the scalar twin whose values it matches.
    adam_decay(&isa.to_string(), &move |p, g, m, v, h| {
        ew::adam_step(isa, p, g, m, v, h)
    });
    adam_decay("scalar twin", &|p, g, m, v, h| {
        scalar::adam_step(p, g, m, v, h)
    });
}

type AdamFn = dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &AdamHyper);

fn adam_decay(isa: &str, step: &AdamFn) {
    let n = 37;
    let tiny = f32::MIN_POSITIVE;
    let mut p = vec![0.5f32; n];
    let mut m: Vec<f32> = (0..n)
        .map(|i| if i % 2 == 0 { 1e-30 } else { -3e-31 } * (1.0 + i as f32 / 8.0))
        .collect();
    let mut v: Vec<f32> = (0..n).map(|i| 1e-35 * (1.0 + i as f32)).collect();
    let g = vec![0.0f32; n];
    for t in 1..=1000u64 {
        let h = AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t);
        step(&mut p, &g, &mut m, &mut v, &h);
        let next = AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t + 1);
        for i in 0..n {
            let (mi, vi) = (m[i], v[i]);
            assert!(
                mi == 0.0 || ((0.9f32 * mi).abs() >= tiny && (next.lr_t as f32 * mi).abs() >= tiny),
                "{isa} t={t}: m[{i}] = {mi:e}"
            );
            assert!(
                vi == 0.0 || 0.999f32 * vi >= tiny,
                "{isa} t={t}: v[{i}] = {vi:e}"
            );
        }
    }
    assert!(m.iter().all(|&x| x == 0.0), "{isa}: {m:?}");
}

/// One Adam step (t = 1, Keras defaults and a non-default set) against the
/// documented formula in f64: lr₁ = lr·√(1 − β2)/(1 − β1), m = (1 − β1)·g,
/// v = (1 − β2)·g², p₁ = p₀ − lr₁·m/(√v + ε), on `adam_step` and on
/// `adam_step_sum`. Wherever |g| ≥ 10⁻³·max|g| the step p₀ − p₁ agrees to
/// 10⁻⁶ relative (f32 rounding of the constants, g, m, v and the step is a
/// few 2⁻²⁴; a constant rounded twice, as 1 − f32(0.999), is 6.4·10⁻⁶ off).
/// |p₀| ≤ 10⁻⁶ keeps p₁'s own rounding far below the step's.
fn adam_keras_formula(isa: Isa) {
    let mut r = rng(14);
    // β of 0 (or nearly) is valid too: moments without memory.
    let sets = [
        (1e-3, 0.9, 0.999, 1e-7),
        (3e-4, 0.85, 0.9995, 1e-5),
        (1e-3, 0.0, 0.999, 1e-7),
        (1e-3, 0.9, 0.0, 1e-7),
        (1e-3, 0.0, 0.0, 1e-7),
        (1e-3, 1e-37, 1e-37, 1e-7),
    ];
    for ((lr, b1, b2, eps), divide) in sets.into_iter().flat_map(|s| [(s, false), (s, true)]) {
        for n in lengths() {
            let p0 = uniform(&mut r, n, -1e-6, 1e-6);
            let g: Vec<f32> = (0..n)
                .map(|_| r.random_range(-1.0f32..1.0) * 10f32.powi(r.random_range(-5..1)))
                .collect();
            let half: Vec<f32> = g.iter().map(|v| v * 0.5).collect();
            let gmax = g.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
            let h = AdamHyper {
                divide,
                ..AdamHyper::at_step(lr, b1, b2, eps, 1)
            };
            let lr1 = lr * (1.0 - b2).sqrt() / (1.0 - b1);
            let mut p = p0.clone();
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            ew::adam_step(isa, &mut p, &g, &mut m, &mut v, &h);
            let mut ps = p0.clone();
            let (mut ms, mut vs) = (vec![0.0f32; n], vec![0.0f32; n]);
            ew::adam_step_sum(isa, &mut ps, &half, &half, &mut ms, &mut vs, &h);
            for (what, got) in [("adam_step", &p), ("adam_step_sum", &ps)] {
                for i in 0..n {
                    let gi = f64::from(g[i]);
                    if gi.abs() < 1e-3 * gmax {
                        continue;
                    }
                    let (m1, v1) = ((1.0 - b1) * gi, (1.0 - b2) * gi * gi);
                    let step = lr1 * m1 / (v1.sqrt() + eps);
                    let got_step = f64::from(p0[i]) - f64::from(got[i]);
                    let err = (got_step - step).abs() / step.abs();
                    assert!(
                        err <= 1e-6,
                        "{isa} {what} (divide {divide}) lr {lr} β {b1}/{b2} ε {eps} n={n} [{i}]: step {got_step:e} vs {step:e} ({err:.2e})"
                    );
                }
            }
        }
    }
}

/// The update on two gradient parts is the same path's update on their sum,
/// bit for bit (the parts are added as the sum would be).
fn adam_step_sum(isa: Isa) {
    let mut r = rng(12);
    for n in lengths() {
        let p0 = uniform(&mut r, n, -1.0, 1.0);
        let mut got = (p0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
        let mut want = (p0, vec![0.0f32; n], vec![0.0f32; n]);
        for t in 1..=3 {
            let g0 = uniform(&mut r, n, -2.0, 2.0);
            let g1 = uniform(&mut r, n, -2.0, 2.0);
            let sum: Vec<f32> = g0.iter().zip(&g1).map(|(a, b)| a + b).collect();
            // Alternate the two updates (`divide`) from step to step.
            let h = AdamHyper {
                divide: t % 2 == 0,
                ..AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t)
            };
            ew::adam_step_sum(isa, &mut got.0, &g0, &g1, &mut got.1, &mut got.2, &h);
            ew::adam_step(isa, &mut want.0, &sum, &mut want.1, &mut want.2, &h);
            let what = format!("{isa} adam_step_sum t={t} n={n}");
            assert_same(&got.0, &want.0, &format!("{what} p"));
            assert_same(&got.1, &want.1, &format!("{what} m"));
            assert_same(&got.2, &want.2, &format!("{what} v"));
        }
    }
}

/// The reciprocal inside the SIMD Adam step: over a wide range of √v + ε
/// (m = 1, lr_t = 1, so the step is 1/(√v + ε)), within 1 ulp of 1/x
/// computed in f64, and exact at v = ∞.
fn adam_reciprocal(isa: Isa) {
    let h = AdamHyper {
        lr_t: 1.0,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        divide: false,
    };
    let mut r = rng(13);
    let n = 4099;
    let mut g: Vec<f32> = (0..n)
        .map(|_| 2f32.powf(r.random_range(-60.0f32..60.0)) * r.random_range(1.0f32..2.0))
        .collect();
    g[7] = f32::INFINITY;
    let mut worst = 0.0f64;
    let mut p = vec![0.0f32; n];
    let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
    ew::adam_step(isa, &mut p, &g, &mut m, &mut v, &h);
    for i in 0..n {
        // m = g, v = g², √v = |g|: p = 0 − g/|g|·… = −g·(1/g).
        let want = 1.0 / (f64::from(v[i]).sqrt());
        let got = -f64::from(p[i]) / f64::from(m[i]);
        if g[i].is_infinite() {
            assert!(
                p[i].is_nan() || p[i] == 0.0 || got.is_nan(),
                "{isa}: {}",
                p[i]
            );
            continue;
        }
        worst = worst.max(((got - want) / want).abs());
    }
    let bound = if isa == Isa::Scalar {
        2f64.powi(-23)
    } else {
        2f64.powi(-22)
    };
    assert!(
        worst <= bound,
        "{isa}: reciprocal relative error {worst:e} > {bound:e}"
    );
}

fn sgd_momentum_step(isa: Isa) {
    let mut r = rng(12);
    for n in lengths() {
        let p0 = uniform(&mut r, n, -1.0, 1.0);
        let (mut gp, mut gv) = (p0.clone(), vec![0.0f32; n]);
        let (mut wp, mut wv) = (p0, vec![0.0f32; n]);
        for _ in 0..3 {
            let g = uniform(&mut r, n, -5.0, 5.0);
            ew::sgd_momentum_step(isa, &mut gp, &g, &mut gv, 0.01, 0.9);
            scalar::sgd_momentum_step(&mut wp, &g, &mut wv, 0.01, 0.9);
            assert_same(&gp, &wp, &format!("{isa} sgd p n={n}"));
            assert_same(&gv, &wv, &format!("{isa} sgd vel n={n}"));
        }
    }
}

fn u8_to_f32_scaled(isa: Isa) {
    let mut r = rng(13);
    for n in lengths().chain([784]) {
        let src: Vec<u8> = (0..n).map(|_| r.random()).collect();
        for scale in [1.0 / 255.0, 1.0, -0.5] {
            let mut got = vec![f32::NAN; n];
            let mut want = vec![0.0f32; n];
            ew::u8_to_f32_scaled(isa, &src, &mut got, scale);
            scalar::u8_to_f32_scaled(&src, &mut want, scale);
            assert_same(&got, &want, &format!("{isa} u8 scale={scale} n={n}"));
        }
    }
    let all: Vec<u8> = (0..=255).collect();
    let mut got = vec![0.0; 256];
    ew::u8_to_f32_scaled(isa, &all, &mut got, 1.0 / 255.0);
    assert_eq!((got[0], got[255]), (0.0, 1.0), "{isa}: ends of [0, 1]");
}
