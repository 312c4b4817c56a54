//! Finite-difference checks of every layer, loss and penalty, in f64
//! (tolerance 1e-6), and a check that the checker catches wrong gradients.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::gradcheck::{
    CheckOptions, Report, Verdict, check_fn, check_model, check_model_grads,
    check_model_with_progress, kink_fingerprint, random_setup,
};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig, Noise, TopkPath, apply_noise};

const INPUT: usize = 10;
const BATCH: usize = 5;

fn batch(seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..INPUT * BATCH).map(|_| rng.random::<f64>()).collect()
}

fn model_cfg(act: Activation, loss: Loss, out: Activation) -> ModelBuilder {
    ModelBuilder::new(INPUT)
        .encoder(7, act)
        .code(4, act)
        .decoder(7, act)
        .decoder(INPUT, out)
        .loss(loss)
}

/// A model with Glorot weights and small random biases (zero biases put
/// every pre-activation fed by an all-zero ReLU code exactly on the kink).
fn model(cfg: ModelConfig, seed: u64) -> Autoencoder<f64> {
    let mut model = Autoencoder::<f64>::new(cfg, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xb1a5);
    for l in 0..model.config().layers.len() {
        if model.layout().bias_of[l].is_none() {
            continue;
        }
        let r = model.layout().bias(l).range();
        for v in &mut model.params[r] {
            *v = rng.random_range(-0.2..0.2);
        }
    }
    model
}

fn check(cfg: ModelConfig, seed: u64) -> Report {
    let model = model(cfg, seed);
    let x = batch(seed + 100);
    check_model(&model, &x, &x, BATCH, &CheckOptions::default()).unwrap()
}

/// Passes, and most sampled entries were really checked (not skipped at a kink).
fn assert_pass(what: &str, r: &Report) {
    assert!(r.passed(), "{what}:\n{r}");
    assert!(r.max_rel_err() < 1e-6, "{what}:\n{r}");
    for t in &r.tensors {
        assert!(
            t.checked >= 1 && t.skipped * 4 <= t.checked + t.skipped,
            "{what}: too few entries of {} checked:\n{r}",
            t.name
        );
    }
}

const ACTS: [Activation; 5] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Linear,
];

#[test]
fn every_activation_loss_and_penalty() {
    let mut n = 0;
    for (ai, act) in ACTS.into_iter().enumerate() {
        for loss in [Loss::Bce, Loss::Mse, Loss::Sse] {
            let out = if loss == Loss::Bce {
                Activation::Sigmoid
            } else {
                act
            };
            let mut variants: Vec<(&str, ModelBuilder)> = vec![
                ("plain", model_cfg(act, loss, out)),
                ("l1", model_cfg(act, loss, out).l1(0.05)),
                ("l2", model_cfg(act, loss, out).weight_decay(0.01)),
                (
                    "l1+l2",
                    model_cfg(act, loss, out).l1(0.02).weight_decay(0.003),
                ),
            ];
            if act == Activation::Sigmoid {
                variants.push(("kl", model_cfg(act, loss, out).kl(0.1, 3.0)));
                variants.push((
                    "kl+l1+l2",
                    model_cfg(act, loss, out)
                        .kl(0.05, 0.5)
                        .l1(0.01)
                        .weight_decay(0.001),
                ));
            }
            for (name, b) in variants {
                let r = check(b.build().unwrap(), 7 + ai as u64);
                assert_pass(&format!("{} / {loss:?} / {name}", act.name()), &r);
                n += 1;
            }
        }
    }
    assert_eq!(n, 5 * 3 * 4 + 3 * 2);
}

#[test]
fn l1_on_an_encoder_layer_and_kl_on_a_decoder_layer() {
    let cfg = model_cfg(Activation::Sigmoid, Loss::Bce, Activation::Sigmoid)
        .l1_on(0.03, 0)
        .kl_on(0.2, 1.0, 2)
        .build()
        .unwrap();
    assert_pass("l1 on layer 0, kl on layer 2", &check(cfg, 3));
}

#[test]
fn tied_weights() {
    for act in ACTS {
        let cfg = model_cfg(act, Loss::Bce, Activation::Sigmoid)
            .tied(true)
            .l1(0.01)
            .weight_decay(0.01)
            .build()
            .unwrap();
        let model = Autoencoder::<f64>::new(cfg.clone(), 5).unwrap();
        // Tied: two weights fewer than untied.
        assert_eq!(model.layout().tensors.len(), 6);
        assert_pass(&format!("tied {}", act.name()), &check(cfg, 5));
    }
}

#[test]
fn shallow_and_overcomplete() {
    let shallow = ModelBuilder::new(INPUT)
        .code(3, Activation::Relu)
        .decoder(INPUT, Activation::Sigmoid)
        .l1(0.01)
        .build()
        .unwrap();
    assert_pass("shallow", &check(shallow, 1));
    let over = ModelBuilder::new(INPUT)
        .code(25, Activation::Sigmoid)
        .decoder(INPUT, Activation::Sigmoid)
        .kl(0.05, 3.0)
        .build()
        .unwrap();
    assert_pass("overcomplete kl", &check(over, 2));
}

/// The progress of a check counts every sampled entry once, in order, up
/// to the total it announces (tensors of 30, 3, 30 and 10 entries, 8 taken
/// of each larger one), and the report is the one `check_model` gives.
#[test]
fn progress_counts_the_entries_sampled() {
    let cfg = ModelBuilder::new(INPUT)
        .code(3, Activation::Tanh)
        .decoder(INPUT, Activation::Sigmoid)
        .build()
        .unwrap();
    let m = model(cfg, 4);
    let x = batch(4);
    let opts = CheckOptions {
        max_entries: 8,
        ..CheckOptions::default()
    };
    let mut seen = Vec::new();
    let r = check_model_with_progress(&m, &x, &x, BATCH, &opts, &mut |n, total| {
        seen.push((n, total))
    })
    .unwrap();
    let total = 8 + 3 + 8 + 8;
    let want: Vec<(usize, usize)> = (1..=total).map(|n| (n, total)).collect();
    assert_eq!(seen, want);
    assert_eq!(r, check_model(&m, &x, &x, BATCH, &opts).unwrap());
    assert_pass("progress", &r);
}

#[test]
fn leaky_relu_near_zero() {
    let cfg = model_cfg(Activation::LeakyRelu(0.2), Loss::Mse, Activation::Linear)
        .build()
        .unwrap();
    let mut model = Autoencoder::<f64>::new(cfg, 11).unwrap();
    // Small first-layer weights put its pre-activations within ~0.1 of zero,
    // on both sides (but far from zero compared with the step h = 1e-4).
    let w0 = model.layout().weight(0).range();
    for p in model.params[w0].iter_mut() {
        *p *= 0.1;
    }
    let x = batch(12);
    let mut ws = model.workspace(BATCH);
    model.forward(&mut ws, &x).unwrap();
    let h0 = &ws.h[0];
    assert!(
        h0.iter().all(|v| v.abs() < 0.3),
        "pre-activations are not near zero"
    );
    assert!(h0.iter().any(|&v| v < 0.0) && h0.iter().any(|&v| v > 0.0));
    let r = check_model(&model, &x, &x, BATCH, &CheckOptions::default()).unwrap();
    assert_pass("leaky relu near 0", &r);
}

#[test]
fn kl_with_rho_hat_near_zero_and_one() {
    for (bias, lo, hi) in [(-5.0, 0.0, 0.03), (5.0, 0.97, 1.0)] {
        let cfg = ModelBuilder::new(INPUT)
            .code(6, Activation::Sigmoid)
            .decoder(INPUT, Activation::Sigmoid)
            .kl(0.1, 3.0)
            .build()
            .unwrap();
        let mut model = Autoencoder::<f64>::new(cfg, 4).unwrap();
        let b = model.layout().bias(0).range();
        model.params[b].iter_mut().for_each(|v| *v = bias);
        let x = batch(9);
        let mut ws = model.workspace(BATCH);
        model.loss_and_grad(&mut ws, &x, &x, None).unwrap();
        assert!(
            ws.rho_hat().iter().all(|&r| r > lo && r < hi),
            "rho_hat {:?} not in ({lo}, {hi})",
            ws.rho_hat()
        );
        let r = check_model(&model, &x, &x, BATCH, &CheckOptions::default()).unwrap();
        assert_pass(&format!("kl with code bias {bias}"), &r);
    }
}

#[test]
fn denoising_with_fixed_noise() {
    for noise in [Noise::Gaussian { std: 0.5 }, Noise::Masking { p: 0.3 }] {
        let cfg = model_cfg(Activation::Relu, Loss::Bce, Activation::Sigmoid)
            .noise(noise)
            .build()
            .unwrap();
        let model = Autoencoder::<f64>::new(cfg, 21).unwrap();
        let clean = batch(22);
        let mut noisy = vec![0.0; clean.len()];
        apply_noise(noise, &mut sparse_ae::rng::Rng::new(1), &clean, &mut noisy);
        assert_ne!(noisy, clean);
        assert!(noisy.iter().all(|v| (0.0..=1.0).contains(v)));
        let r = check_model(&model, &noisy, &clean, BATCH, &CheckOptions::default()).unwrap();
        assert_pass(&format!("denoising {noise:?}"), &r);
    }
}

/// A wrong gradient must fail: a bias gradient off by 0.1 %, and a gradient
/// that forgets the L1 penalty.
#[test]
fn checker_catches_wrong_gradients() {
    let cfg = model_cfg(Activation::Relu, Loss::Bce, Activation::Sigmoid)
        .l1(0.05)
        .build()
        .unwrap();
    let model = Autoencoder::<f64>::new(cfg.clone(), 3).unwrap();
    let x = batch(4);
    let mut ws = model.workspace(BATCH);
    let mut grads = vec![0.0; model.params.len()];
    model
        .loss_and_grad(&mut ws, &x, &x, Some(&mut grads))
        .unwrap();
    let layout = model.layout().clone();
    let loss = |p: &[f64]| {
        let m = Autoencoder::with_params(cfg.clone(), p.to_vec()).unwrap();
        let mut ws = m.workspace(BATCH);
        let l = m.loss_and_grad(&mut ws, &x, &x, None).unwrap().total();
        (l, kink_fingerprint(&m, &ws))
    };
    let opts = CheckOptions::default();

    let good = check_fn(&layout, &mut model.params.clone(), &grads, loss, &opts);
    assert_pass("unmodified", &good);

    let mut scaled = grads.clone();
    let b = layout.bias(1).range();
    scaled[b].iter_mut().for_each(|g| *g *= 1.001);
    let bad = check_fn(&layout, &mut model.params.clone(), &scaled, loss, &opts);
    assert!(
        !bad.passed(),
        "a 0.1% error in a bias gradient went unnoticed:\n{bad}"
    );
    let row = bad
        .tensors
        .iter()
        .find(|t| t.name == "encoder.2.bias")
        .unwrap();
    assert!(row.max_rel_err > 5e-4, "{bad}");

    let no_l1 = Autoencoder::<f64>::with_params(
        ModelBuilder::new(INPUT)
            .encoder(7, Activation::Relu)
            .code(4, Activation::Relu)
            .decoder(7, Activation::Relu)
            .decoder(INPUT, Activation::Sigmoid)
            .build()
            .unwrap(),
        model.params.clone(),
    )
    .unwrap();
    let mut wrong = vec![0.0; grads.len()];
    no_l1
        .loss_and_grad(&mut ws, &x, &x, Some(&mut wrong))
        .unwrap();
    let bad = check_fn(&layout, &mut model.params.clone(), &wrong, loss, &opts);
    assert!(
        !bad.passed(),
        "a gradient without the L1 term went unnoticed:\n{bad}"
    );
}

/// A 3×3 image, a 1×1 convolution with padding 1 (its border positions see
/// only padding) and a dense sigmoid output.
const PADDED_CONV: &str = r#"{"input": 9, "image": [1, 3, 3], "layers": [
    {"type": "conv2d", "channels": 2, "kernel": 1, "padding": 1, "activation": "relu"},
    {"units": 9, "activation": "sigmoid"}], "code_layer": 0}"#;

/// With zero biases, the convolution's positions over padding alone sit on
/// the ReLU kink: every entry of its bias, and its directional check, cross
/// the kink. That tensor is reported as skipped (neither passed nor failed),
/// the run's verdict rests on the tensors measured, and a wrong gradient, a
/// NaN in the skipped tensor's gradient included, still fails.
#[test]
fn a_tensor_wholly_at_a_kink_is_skipped_and_wrong_gradients_still_fail() {
    let cfg = ModelConfig::from_json(PADDED_CONV).unwrap();
    let model = Autoencoder::<f64>::new(cfg, 1).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let x: Vec<f64> = (0..9 * 2).map(|_| rng.random::<f64>()).collect();
    let mut g = vec![0.0; model.params.len()];
    model
        .loss_and_grad(&mut model.workspace(2), &x, &x, Some(&mut g))
        .unwrap();
    let opts = CheckOptions::default();
    let r = check_model_grads(&model, &x, &x, 2, &g, &opts).unwrap();
    let row = |r: &Report, name: &str| r.tensors.iter().find(|t| t.name == name).unwrap().clone();
    let bias = row(&r, "encoder.0.bias");
    assert!(
        bias.checked == 0 && bias.dir_at_kink && bias.verdict(r.tolerance) == Verdict::AtKink,
        "{r}"
    );
    assert_eq!(r.at_kink(), 1, "{r}");
    assert_eq!(r.verdict(), Verdict::Pass, "{r}");
    assert!(r.passed() && r.max_rel_err() < 1e-6, "{r}");
    let text = r.to_string();
    assert!(
        text.contains("skipped: every entry at a kink")
            && text.contains("1 tensor skipped")
            && text.ends_with("PASS")
            && !text.contains("FAIL")
            && !text.contains("NaN"),
        "{text}"
    );

    let b = model.layout().bias(0).range();
    let mut nan = g.clone();
    nan[b.start] = f64::NAN;
    let bad = check_model_grads(&model, &x, &x, 2, &nan, &opts).unwrap();
    assert_eq!(
        row(&bad, "encoder.0.bias").verdict(bad.tolerance),
        Verdict::Fail,
        "{bad}"
    );
    assert_eq!(bad.verdict(), Verdict::Fail, "{bad}");
    assert!(
        bad.max_rel_err().is_nan() && bad.to_string().ends_with("FAIL"),
        "{bad}"
    );

    let w = model.layout().weight(0).range();
    let mut scaled = g.clone();
    scaled[w].iter_mut().for_each(|v| *v *= 1.001);
    let bad = check_model_grads(&model, &x, &x, 2, &scaled, &opts).unwrap();
    assert_eq!(
        row(&bad, "encoder.0.weight").verdict(bad.tolerance),
        Verdict::Fail,
        "{bad}"
    );
    assert!(!bad.passed() && bad.to_string().ends_with("FAIL"), "{bad}");
}

/// A check in which every perturbation crosses a kink measured nothing: its
/// verdict is neither a pass nor a failure, and says so. A NaN gradient there
/// still fails.
#[test]
fn a_check_that_measures_nothing_is_inconclusive() {
    let cfg = ModelBuilder::new(3)
        .code(2, Activation::Relu)
        .decoder(3, Activation::Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap();
    let model = Autoencoder::<f64>::new(cfg, 1).unwrap();
    let layout = model.layout().clone();
    // Every parameter change moves the fingerprint: each step is a "kink".
    let loss = |p: &[f64]| {
        let l: f64 = p.iter().map(|v| v * v).sum();
        let print = p.iter().fold(0u64, |h, v| {
            (h ^ v.to_bits()).wrapping_mul(0x0100_0000_01b3)
        });
        (l, print)
    };
    let g: Vec<f64> = model.params.iter().map(|v| 2.0 * v).collect();
    let opts = CheckOptions::default();
    let r = check_fn(&layout, &mut model.params.clone(), &g, loss, &opts);
    assert!(r.tensors.iter().all(|t| !t.measured()), "{r}");
    assert_eq!(r.verdict(), Verdict::AtKink, "{r}");
    assert!(!r.passed() && r.max_rel_err().is_nan(), "{r}");
    let text = r.to_string();
    assert!(
        text.ends_with("INCONCLUSIVE") && !text.contains("PASS"),
        "{text}"
    );

    let mut nan = g.clone();
    nan[layout.tensors[1].offset] = f64::NAN;
    let bad = check_fn(&layout, &mut model.params.clone(), &nan, loss, &opts);
    assert_eq!(bad.verdict(), Verdict::Fail, "{bad}");
    assert_eq!(
        bad.tensors[1].verdict(bad.tolerance),
        Verdict::Fail,
        "{bad}"
    );
    assert!(bad.to_string().ends_with("FAIL"), "{bad}");

    // A NaN loss fails every tensor, kinks or not.
    let nan_loss = |p: &[f64]| (f64::NAN, loss(p).1);
    let bad = check_fn(&layout, &mut model.params.clone(), &g, nan_loss, &opts);
    assert!(
        bad.tensors
            .iter()
            .all(|t| t.verdict(bad.tolerance) == Verdict::Fail),
        "{bad}"
    );
}

/// `random_setup` (what `sparse-ae gradcheck` checks) starts the biases
/// off zero, so the padded convolution's border units are off their kink
/// and every tensor is measured.
#[test]
fn random_setup_avoids_exact_kinks() {
    let cfg = ModelConfig::from_json(PADDED_CONV).unwrap();
    for seed in 0..4 {
        let (m, input, clean) = random_setup(&cfg, seed, 2).unwrap();
        let r = check_model(&m, &input, &clean, 2, &CheckOptions::default()).unwrap();
        assert_pass(&format!("padded conv, seed {seed}"), &r);
        assert!(r.tensors.iter().all(|t| !t.dir_at_kink), "{r}");
    }
}

/// The f32 model on the dispatched kernels computes the same gradient as the
/// f64 model, to f32 accuracy: max |g32 − g64| ≤ 1e-4·max|g64| per tensor.
#[test]
fn f32_gradient_matches_f64() {
    let cfg = model_cfg(Activation::Sigmoid, Loss::Bce, Activation::Sigmoid)
        .kl(0.1, 3.0)
        .l1(0.01)
        .weight_decay(0.001)
        .build()
        .unwrap();
    let m64 = Autoencoder::<f64>::new(cfg, 8).unwrap();
    let m32 = m64.cast::<f32>();
    let x64 = batch(5);
    let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    let (mut g64, mut g32) = (
        vec![0.0f64; m64.params.len()],
        vec![0.0f32; m64.params.len()],
    );
    let l64 = m64
        .loss_and_grad(&mut m64.workspace(BATCH), &x64, &x64, Some(&mut g64))
        .unwrap();
    let l32 = m32
        .loss_and_grad(&mut m32.workspace(BATCH), &x32, &x32, Some(&mut g32))
        .unwrap();
    assert!((l64.total() - l32.total()).abs() <= 1e-5 * l64.total());
    for t in &m64.layout().tensors {
        let scale = g64[t.range()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for k in t.range() {
            assert!(
                (g32[k] as f64 - g64[k]).abs() <= 1e-4 * scale,
                "{}[{}]: f32 {} vs f64 {}",
                t.name,
                k - t.offset,
                g32[k],
                g64[k]
            );
        }
    }
}

/// The loss and gradient of the f32 model on the dispatched kernels (on the
/// TopK `path`) against the f64 model's (the triple-loop GEMM) at `batch`,
/// within the bounds of [`f32_gradient_matches_f64`].
fn f32_matches_f64(what: &str, cfg: ModelConfig, batch: usize, path: TopkPath) {
    let m64 = Autoencoder::<f64>::new(cfg, 8).unwrap();
    let m32 = m64.cast::<f32>();
    let mut rng = StdRng::seed_from_u64(batch as u64);
    let x64: Vec<f64> = (0..batch * m64.config().input)
        .map(|_| rng.random::<f64>())
        .collect();
    let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    let (mut g64, mut g32) = (
        vec![0.0f64; m64.params.len()],
        vec![0.0f32; m64.params.len()],
    );
    let l64 = m64
        .loss_and_grad(&mut m64.workspace(batch), &x64, &x64, Some(&mut g64))
        .unwrap();
    let l32 = m32
        .loss_and_grad(
            &mut m32.workspace_with(batch, path),
            &x32,
            &x32,
            Some(&mut g32),
        )
        .unwrap();
    assert!(
        (l64.total() - l32.total()).abs() <= 1e-5 * l64.total(),
        "{what} batch {batch}: loss f32 {} vs f64 {}",
        l32.total(),
        l64.total()
    );
    for t in &m64.layout().tensors {
        let scale = g64[t.range()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} batch {batch}: {} is all zero", t.name);
        for k in t.range() {
            assert!(
                (g32[k] as f64 - g64[k]).abs() <= 1e-4 * scale,
                "{what} batch {batch}: {}[{}]: f32 {} vs f64 {}",
                t.name,
                k - t.offset,
                g32[k],
                g64[k]
            );
        }
    }
}

/// Layers as wide as real models use, around and far past the GEMM's block
/// sizes, at batches down to 1: forward and backward of the f32 model agree
/// with the f64 model. The 784-2000-784 model at batch ≤ 16 and the 768 →
/// 3072 TopK SAE once stopped in the packing of the GEMM.
///
/// Not under wasm32: the test passes there, but Node's WASI runner then
/// crashes on exit after the module's memory has grown to the size these
/// f64 models need; the same wide products run on the SIMD128 path in
/// `gemm_paths` (`wide_layers`).
#[test]
#[cfg_attr(
    target_arch = "wasm32",
    ignore = "Node's WASI runner crashes on exit after this much memory"
)]
fn wide_layers_at_small_batches() {
    use Activation::{Linear, Relu, Sigmoid, Tanh};
    let shallow = ModelBuilder::new(784)
        .code(2000, Relu)
        .decoder(784, Sigmoid)
        .l1(1e-3)
        .build()
        .unwrap();
    for batch in [1, 7, 16] {
        f32_matches_f64("784-2000-784", shallow.clone(), batch, TopkPath::Dense);
    }
    let deep = ModelBuilder::new(1023)
        .encoder(1024, Tanh)
        .code(31, Relu)
        .decoder(1025, Tanh)
        .decoder(1023, Sigmoid)
        .build()
        .unwrap();
    f32_matches_f64("1023-1024-31-1025-1023", deep, 31, TopkPath::Dense);
    let tied = ModelBuilder::new(1025)
        .encoder(3072, Tanh)
        .code(33, Relu)
        .decoder(3072, Tanh)
        .decoder(1025, Sigmoid)
        .tied(true)
        .build()
        .unwrap();
    f32_matches_f64("tied 1025-3072-33-3072-1025", tied, 7, TopkPath::Dense);
    let sae = ModelBuilder::new(768)
        .code(3072, Relu)
        .decoder(768, Linear)
        .topk(32, false)
        .loss(Loss::Mse)
        .build()
        .unwrap();
    for path in [TopkPath::Dense, TopkPath::Sparse] {
        f32_matches_f64(&format!("topk 768-3072-768 {path:?}"), sae.clone(), 7, path);
    }
    // And finite differences on a wide model at batch 1, with a step larger
    // than the default: the loss sums 1025 outputs, so the rounding of the
    // difference (∝ 1/h) dominates at 1e-4 (1.4e-6 there, 7e-8 at 1e-3).
    let wide = ModelBuilder::new(1025)
        .code(40, Tanh)
        .decoder(1025, Sigmoid)
        .build()
        .unwrap();
    let m = model(wide, 3);
    let x = &batch_of_width(1025, 1, 4);
    let opts = CheckOptions {
        max_entries: 16,
        step: 1e-3,
        ..CheckOptions::default()
    };
    assert_pass(
        "1025-40-1025 batch 1",
        &check_model(&m, x, x, 1, &opts).unwrap(),
    );
}

fn batch_of_width(width: usize, batch: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..width * batch).map(|_| rng.random::<f64>()).collect()
}

/// A small convolutional autoencoder on 6×6 images: conv (stride 1, pad 1)
/// → max pool → conv (stride 1, pad 1) as the code → upsample → conv,
/// with each penalty.
fn conv_cfg(code_act: Activation) -> ModelBuilder {
    use sparse_ae::nn::LayerSpec;
    ModelBuilder::new(36)
        .image(1, 6, 6)
        .layer(LayerSpec::conv(3, 3, Activation::Relu))
        .layer(LayerSpec::MaxPool2d {
            kernel: 2,
            stride: 2,
        })
        .code_layer(LayerSpec::conv(2, 3, code_act))
        .layer(LayerSpec::Upsample { scale: 2 })
        .layer(LayerSpec::conv(1, 3, Activation::Sigmoid))
}

fn conv_check(cfg: ModelConfig, seed: u64) -> Report {
    let model = model(cfg, seed);
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let x: Vec<f64> = (0..36 * 3).map(|_| rng.random::<f64>()).collect();
    check_model(&model, &x, &x, 3, &CheckOptions::default()).unwrap()
}

#[test]
fn convolutional_models() {
    let plain = conv_cfg(Activation::Relu).build().unwrap();
    assert_pass("conv", &conv_check(plain, 1));
    let l1 = conv_cfg(Activation::Relu)
        .l1(0.05)
        .weight_decay(0.01)
        .build()
        .unwrap();
    assert_pass("conv l1+l2", &conv_check(l1, 2));
    let kl = conv_cfg(Activation::Sigmoid).kl(0.1, 2.0).build().unwrap();
    assert_pass("conv kl per channel", &conv_check(kl, 3));
    let mse = conv_cfg(Activation::Tanh).loss(Loss::Mse).build().unwrap();
    assert_pass("conv mse", &conv_check(mse, 4));
    // Stride 2 and odd sizes, through a dense layer and back.
    use sparse_ae::nn::LayerSpec;
    let odd = ModelBuilder::new(35)
        .image(1, 7, 5)
        .layer(LayerSpec::Conv2d {
            channels: 2,
            kernel: 3,
            stride: 2,
            padding: 1,
            act: Activation::Tanh,
        })
        .code(6, Activation::Sigmoid)
        .decoder(35, Activation::Sigmoid)
        .kl(0.2, 1.0)
        .build()
        .unwrap();
    assert_pass("conv stride 2, 7×5, into dense", &conv_check_n(odd, 5, 35));
}

fn conv_check_n(cfg: ModelConfig, seed: u64, d: usize) -> Report {
    let model = model(cfg, seed);
    let mut rng = StdRng::seed_from_u64(seed + 1);
    let x: Vec<f64> = (0..d * 3).map(|_| rng.random::<f64>()).collect();
    check_model(&model, &x, &x, 3, &CheckOptions::default()).unwrap()
}

/// TopK and BatchTopK codes (away from ties: a perturbation that changes the
/// kept set is detected and skipped like a ReLU kink).
#[test]
fn topk_and_batch_topk() {
    for (act, batch) in [
        (Activation::Relu, false),
        (Activation::Linear, false),
        (Activation::Sigmoid, true),
        (Activation::Linear, true),
    ] {
        let cfg = ModelBuilder::new(INPUT)
            .encoder(7, Activation::Tanh)
            .code(6, act)
            .decoder(INPUT, Activation::Sigmoid)
            .topk(2, batch)
            .l1(0.01)
            .build()
            .unwrap();
        let m = model(cfg, 12);
        let x = batch_of(13);
        let mut ws = m.workspace(BATCH);
        m.forward(&mut ws, &x).unwrap();
        let kept = ws.h[1].iter().filter(|&&v| v != 0.0).count();
        assert_eq!(kept, 2 * BATCH, "{act:?} batch={batch}");
        if !batch {
            assert!(
                ws.h[1]
                    .chunks(6)
                    .all(|r| r.iter().filter(|&&v| v != 0.0).count() == 2)
            );
        }
        let r = check_model(&m, &x, &x, BATCH, &CheckOptions::default()).unwrap();
        assert_pass(&format!("topk {act:?} batch={batch}"), &r);
    }
}

/// The gradient of `model` on the sparse top-k path, and a finite-difference
/// check of `grads` against the loss of `loss_cfg` (same parameters), also
/// computed on the sparse path.
fn check_sparse(model: &Autoencoder<f64>, loss_cfg: &ModelConfig, x: &[f64]) -> Report {
    let mut ws = model.workspace_with(BATCH, TopkPath::Sparse);
    assert!(ws.uses_sparse_topk());
    let mut grads = vec![0.0; model.params.len()];
    model
        .loss_and_grad(&mut ws, x, x, Some(&mut grads))
        .unwrap();
    let mut probe =
        Autoencoder::<f64>::with_params(loss_cfg.clone(), model.params.clone()).unwrap();
    let mut ws = probe.workspace_with(BATCH, TopkPath::Sparse);
    let layout = model.layout().clone();
    check_fn(
        &layout,
        &mut model.params.clone(),
        &grads,
        |p| {
            probe.params.copy_from_slice(p);
            let l = probe.loss_and_grad(&mut ws, x, x, None).unwrap().total();
            (l, kink_fingerprint(&probe, &ws))
        },
        &CheckOptions::default(),
    )
}

/// The sparse top-k path (gathered decoder rows, per-unit weight gradients,
/// the code's L1 and KL terms, the input gradient of a code after another
/// layer, BatchTopK's variable entries per sample), and that the check
/// catches a sparse gradient that leaves out the L1 term on the code.
#[test]
fn topk_sparse_path() {
    for (act, batch, kl) in [
        (Activation::Relu, false, false),
        (Activation::Linear, false, false),
        (Activation::Relu, true, false),
        (Activation::Sigmoid, false, true),
    ] {
        let mut b = ModelBuilder::new(INPUT)
            .encoder(7, Activation::Tanh)
            .code(6, act)
            .decoder(INPUT, Activation::Sigmoid)
            .topk(2, batch)
            .l1(0.01)
            .weight_decay(0.002);
        if kl {
            b = b.kl(0.3, 0.5);
        }
        let cfg = b.build().unwrap();
        let m = model(cfg.clone(), 14);
        let r = check_sparse(&m, &cfg, &batch_of(15));
        assert_pass(&format!("sparse topk {act:?} batch={batch} kl={kl}"), &r);
    }
    let with_l1 = ModelBuilder::new(INPUT)
        .encoder(7, Activation::Tanh)
        .code(6, Activation::Linear)
        .decoder(INPUT, Activation::Sigmoid)
        .topk(2, false)
        .l1(0.05);
    let no_l1 = ModelBuilder::new(INPUT)
        .encoder(7, Activation::Tanh)
        .code(6, Activation::Linear)
        .decoder(INPUT, Activation::Sigmoid)
        .topk(2, false);
    let m = model(no_l1.build().unwrap(), 14);
    let bad = check_sparse(&m, &with_l1.build().unwrap(), &batch_of(15));
    assert!(
        !bad.passed(),
        "a sparse gradient without the code's L1 term went unnoticed:\n{bad}"
    );
}

fn batch_of(seed: u64) -> Vec<f64> {
    batch(seed)
}

/// A linear-output SAE whose encoder sees x − b_dec: the gradient of b_dec
/// has a decoder part and an encoder part; with unit-norm columns and the
/// transposed init too (they change the starting point, not the gradient).
#[test]
fn sae_with_pre_encoder_bias() {
    use sparse_ae::nn::EncoderInit;
    for (topk, init) in [
        (None, EncoderInit::Glorot),
        (Some(3), EncoderInit::DecoderTranspose),
    ] {
        let mut b = ModelBuilder::new(INPUT)
            .code(12, Activation::Relu)
            .decoder(INPUT, Activation::Linear)
            .loss(Loss::Mse)
            .pre_encoder_bias(true)
            .unit_norm_decoder(true)
            .encoder_init(init);
        if let Some(k) = topk {
            b = b.topk(k, false);
        }
        let cfg = b.build().unwrap();
        let r = check(cfg.clone(), 31);
        assert_pass(&format!("pre-encoder bias, topk {topk:?}"), &r);

        // Without the encoder's part of the b_dec gradient the check fails:
        // the same model without the option, fed x − b_dec, gives every
        // other gradient unchanged.
        let m = model(cfg.clone(), 31);
        let x = batch(131);
        let b_dec = m.params[m.layout().bias(1).range()].to_vec();
        let centred: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v - b_dec[i % INPUT])
            .collect();
        let mut plain_cfg = cfg.clone();
        plain_cfg.sae.pre_encoder_bias = false;
        let plain = Autoencoder::with_params(plain_cfg, m.params.clone()).unwrap();
        let mut wrong = vec![0.0; m.params.len()];
        plain
            .loss_and_grad(&mut plain.workspace(BATCH), &centred, &x, Some(&mut wrong))
            .unwrap();
        let loss = |p: &[f64]| {
            let t = Autoencoder::with_params(cfg.clone(), p.to_vec()).unwrap();
            let mut ws = t.workspace(BATCH);
            let l = t.loss_and_grad(&mut ws, &x, &x, None).unwrap().total();
            (l, kink_fingerprint(&t, &ws))
        };
        let layout = m.layout().clone();
        let opts = CheckOptions::default();
        let bad = check_fn(&layout, &mut m.params.clone(), &wrong, loss, &opts);
        let row = |name: &str| bad.tensors.iter().find(|t| t.name == name).unwrap().clone();
        assert!(row("decoder.0.bias").max_rel_err > 1e-3, "{bad}");
        assert!(row("encoder.0.weight").max_rel_err < 1e-6, "{bad}");
    }
}

/// The model, inputs and fixed dead mask of the AuxK checks: 12 latents,
/// TopK 3, six of them dead, k_aux = 4 (fewer than the dead, so the
/// selection matters).
fn auxk_setup(coef: f64, with_auxk: bool) -> (Autoencoder<f64>, Vec<f64>, Vec<bool>) {
    let mut b = ModelBuilder::new(INPUT)
        .code(12, Activation::Relu)
        .decoder(INPUT, Activation::Linear)
        .loss(Loss::Mse)
        .topk(3, false)
        .pre_encoder_bias(true)
        .unit_norm_decoder(true);
    if with_auxk {
        b = b.auxk(Some(4), coef);
    }
    let m = model(b.build().unwrap(), 41);
    let dead: Vec<bool> = (0..12).map(|j| [1, 4, 5, 8, 10, 11].contains(&j)).collect();
    (m, batch(42), dead)
}

/// The analytic gradient of `m` with the dead mask, and a finite-difference
/// check of it against the true AuxK model with the residual held fixed
/// (the loss the gradient differentiates: e is a constant).
fn auxk_check(
    grad_of: &Autoencoder<f64>,
    truth: &Autoencoder<f64>,
    dead: &[bool],
    x: &[f64],
) -> Report {
    let grad_ws = |m: &Autoencoder<f64>| {
        let mut ws = m.workspace(BATCH);
        if let Some(mask) = ws.dead_mask_mut() {
            mask.copy_from_slice(dead);
        }
        ws
    };
    let mut g = vec![0.0; grad_of.params.len()];
    grad_of
        .loss_and_grad(&mut grad_ws(grad_of), x, x, Some(&mut g))
        .unwrap();
    let mut ws = grad_ws(truth);
    let parts = truth.loss_and_grad(&mut ws, x, x, None).unwrap();
    assert!(
        parts.auxk > 0.0,
        "the AuxK loss is not exercised: {parts:?}"
    );
    ws.hold_auxk_residual(true);
    let cfg = truth.config().clone();
    let loss = |p: &[f64]| {
        let m = Autoencoder::with_params(cfg.clone(), p.to_vec()).unwrap();
        let l = m.loss_and_grad(&mut ws, x, x, None).unwrap().total();
        (l, kink_fingerprint(&m, &ws))
    };
    let layout = truth.layout().clone();
    check_fn(
        &layout,
        &mut truth.params.clone(),
        &g,
        loss,
        &CheckOptions::default(),
    )
}

/// AuxK with a fixed dead mask passes; a gradient without the AuxK term, or
/// with its coefficient 1 % off, fails.
#[test]
fn auxk_with_a_fixed_dead_mask() {
    let (m, x, dead) = auxk_setup(0.5, true);
    // Dead latents are chosen and some of them are non-zero in some samples.
    let mut ws = m.workspace(BATCH);
    ws.dead_mask_mut().unwrap().copy_from_slice(&dead);
    m.forward(&mut ws, &x).unwrap();
    assert!(ws.auxk_fingerprint() != 0);
    assert_pass("auxk", &auxk_check(&m, &m, &dead, &x));

    let (no_aux, _, _) = auxk_setup(0.5, false);
    let no_aux = Autoencoder::with_params(no_aux.config().clone(), m.params.clone()).unwrap();
    let bad = auxk_check(&no_aux, &m, &dead, &x);
    assert!(
        !bad.passed(),
        "a gradient without AuxK went unnoticed:\n{bad}"
    );

    let (off, _, _) = auxk_setup(0.505, true);
    let off = Autoencoder::with_params(off.config().clone(), m.params.clone()).unwrap();
    let bad = auxk_check(&off, &m, &dead, &x);
    assert!(
        !bad.passed(),
        "a 1% error in the AuxK gradient went unnoticed:\n{bad}"
    );

    // The f32 model on the dispatched kernels agrees to f32 accuracy.
    let m32 = m.cast::<f32>();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let (mut g64, mut g32) = (vec![0.0f64; m.params.len()], vec![0.0f32; m.params.len()]);
    let mut ws32 = m32.workspace(BATCH);
    ws32.dead_mask_mut().unwrap().copy_from_slice(&dead);
    let l32 = m32
        .loss_and_grad(&mut ws32, &x32, &x32, Some(&mut g32))
        .unwrap();
    let l64 = m.loss_and_grad(&mut ws, &x, &x, Some(&mut g64)).unwrap();
    assert!(
        (l32.auxk - l64.auxk).abs() <= 1e-5 * l64.auxk,
        "{l32:?} vs {l64:?}"
    );
    for t in &m.layout().tensors {
        let scale = g64[t.range()].iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for k in t.range() {
            assert!((g32[k] as f64 - g64[k]).abs() <= 1e-4 * scale, "{}", t.name);
        }
    }
}

/// An L1 penalty's |h| has a kink at h = 0 whatever the layer's activation:
/// on a tanh or linear code, differences across it are skipped as at a
/// ReLU's kink (they were scored as errors, and `sparse-ae gradcheck`
/// failed a correct gradient for most seeds of a 20-64-20 tanh model at
/// batch 64), and a wrong gradient still fails.
#[test]
fn l1_on_a_code_that_crosses_zero() {
    for act in [
        Activation::Tanh,
        Activation::Linear,
        Activation::LeakyRelu(0.1),
    ] {
        let cfg = ModelBuilder::new(20)
            .code(64, act)
            .decoder(20, Activation::Sigmoid)
            .loss(Loss::Bce)
            .l1(0.01)
            .build()
            .unwrap();
        for seed in 0..6 {
            let (model, input, clean) = random_setup(&cfg, seed, 64).unwrap();
            let r = check_model(&model, &input, &clean, 64, &CheckOptions::default()).unwrap();
            assert!(r.passed(), "{act:?} seed {seed}:\n{r}");
        }
    }
}

/// A stack of `depth` smooth 16-unit layers between 20 inputs and outputs.
fn deep_smooth(depth: usize, act: &str, loss: &str) -> ModelConfig {
    let layers: Vec<String> = (0..depth)
        .map(|_| format!(r#"{{"units": 16, "activation": "{act}"}}"#))
        .chain([r#"{"units": 20, "activation": "sigmoid"}"#.to_string()])
        .collect();
    ModelConfig::from_json(&format!(
        r#"{{"input": 20, "layers": [{}], "code_layer": {}, "loss": "{loss}"}}"#,
        layers.join(", "),
        depth / 2
    ))
    .unwrap()
}

/// Deep sigmoid and tanh stacks, whose first layers' gradients are 10⁻¹²
/// down to 10⁻²⁵: correct gradients pass (they failed when the round-off
/// was measured 10⁻⁴·h apart, where a deep stack's rounding errors cancel in
/// the fourth differences, and when a window too flat to change the loss
/// measured no noise at all), and wrong ones still fail, in a tensor the
/// differences resolve and in one they cannot (a gradient that should be
/// 10⁻²⁵).
#[test]
fn deep_smooth_stacks_pass_and_wrong_gradients_still_fail() {
    let opts = CheckOptions {
        max_entries: 16,
        ..CheckOptions::default()
    };
    let cases = [
        (12, "sigmoid", "bce", 4),
        (12, "sigmoid", "bce", 64),
        (14, "tanh", "bce", 64),
        (20, "sigmoid", "mse", 64),
        (30, "sigmoid", "mse", 16),
    ];
    for (depth, act, loss, batch) in cases {
        for seed in 0..2 {
            let cfg = deep_smooth(depth, act, loss);
            let (model, input, clean) = random_setup(&cfg, seed, batch).unwrap();
            let what = format!("{depth} {act} layers, {loss}, batch {batch}, seed {seed}");
            let r = check_model(&model, &input, &clean, batch, &opts).unwrap();
            assert_pass(&what, &r);
        }
    }
    let cfg = deep_smooth(30, "sigmoid", "mse");
    let (model, input, clean) = random_setup(&cfg, 0, 16).unwrap();
    let mut ws = model.workspace(16);
    let mut grads = vec![0.0; model.params.len()];
    model
        .loss_and_grad(&mut ws, &input, &clean, Some(&mut grads))
        .unwrap();
    let layout = model.layout();
    let first = layout.tensors[0].range();
    assert!(grads[first.clone()].iter().all(|g| g.abs() < 1e-15));
    let last = layout.tensors.last().unwrap().range();
    let scale: fn(f64) -> f64 = |g| g * 1.0001;
    let shift: fn(f64) -> f64 = |g| g + 1e-6;
    for (what, range, change) in [
        ("the output bias ×1.0001", last, scale),
        ("the first weight +10⁻⁶", first, shift),
    ] {
        let mut wrong = grads.clone();
        for g in &mut wrong[range] {
            *g = change(*g);
        }
        let r = check_model_grads(&model, &input, &clean, 16, &wrong, &opts).unwrap();
        assert_eq!(r.verdict(), Verdict::Fail, "{what} went unnoticed:\n{r}");
    }
}

/// L(p) = C + Σ_j (a_j·p_j + b_j·p_j²) + Σ_j Σ_d relu(±(p_j − q_j) − d) on 16
/// entries: ReLU kinks at distances d from 0.9·10⁻⁶ to 3.1·10⁻⁴ on both
/// sides of every entry's value q_j, inactive at p = q (so ∇L = a + 2b·q
/// there), and a constant C = 10⁵ whose rounding (~10⁻¹¹ per evaluation)
/// dominates the differences at short steps.
struct DenseKinks {
    a: Vec<f64>,
    b: Vec<f64>,
    q: Vec<f64>,
}

impl DenseKinks {
    const KINKS: [f64; 6] = [0.9e-6, 2.7e-6, 9.1e-6, 2.9e-5, 9.3e-5, 3.1e-4];

    fn new() -> DenseKinks {
        let mut rng = StdRng::seed_from_u64(5);
        let mut draw = |lo: f64, hi: f64| (0..16).map(|_| rng.random_range(lo..hi)).collect();
        DenseKinks {
            a: draw(0.5, 1.0),
            b: draw(-1.0, 1.0),
            q: draw(-0.5, 0.5),
        }
    }

    fn grad(&self) -> Vec<f64> {
        (0..16)
            .map(|j| self.a[j] + 2.0 * self.b[j] * self.q[j])
            .collect()
    }

    /// The loss and its kink fingerprint.
    fn loss(&self, p: &[f64]) -> (f64, u64) {
        let mut smooth = 0.0;
        let mut print = 0u64;
        for (((&x, a), b), q) in p.iter().zip(&self.a).zip(&self.b).zip(&self.q) {
            smooth += a * x + b * x * x;
            for d in Self::KINKS {
                for side in [1.0, -1.0] {
                    let z = side * (x - q) - d;
                    smooth += z.max(0.0);
                    print = (print ^ u64::from(z > 0.0)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        (1e5 + smooth, print)
    }
}

/// A tensor along which every line crosses kinks, at every spacing the
/// round-off was measured at (h down to h/512): the round-off is measured on
/// the windows between the kinks, and the directional check, at the short
/// step that stays between them (3.9·10⁻⁷), allows for it. The correct
/// gradient passes (it failed when no kink-free line meant a round-off of 0,
/// as `sparse-ae gradcheck --preset conv` did at seeds 0, 5 and 7), and a
/// gradient 1 % off fails.
#[test]
fn round_off_between_dense_kinks() {
    let f = DenseKinks::new();
    let (q, grad) = (f.q.clone(), f.grad());
    let loss = |p: &[f64]| f.loss(p);
    let layout = sparse_ae::nn::ParamLayout {
        tensors: vec![sparse_ae::nn::ParamInfo {
            name: "p".into(),
            shape: vec![q.len()],
            offset: 0,
            kind: sparse_ae::nn::ParamKind::Bias,
            layer: 0,
        }],
        weight_of: vec![None],
        bias_of: vec![Some(0)],
        len: q.len(),
    };
    for entries in [1, 16] {
        let opts = CheckOptions {
            max_entries: entries,
            ..CheckOptions::default()
        };
        let r = check_fn(&layout, &mut q.clone(), &grad, &loss, &opts);
        let t = &r.tensors[0];
        // Every entry's steps (down to h/16) cross the kink at 0.9·10⁻⁶;
        // the directional check measures, between the kinks.
        assert!(t.checked == 0 && t.skipped == entries, "{r}");
        assert!(!t.dir_at_kink && t.dir_step < 1e-6, "{r}");
        assert!(t.noise > 1e-12 && t.noise < 1e-10, "{r}\nσ = {}", t.noise);
        assert!(r.passed(), "{r}");
        // The round-off at that step is larger than 10⁻⁶ of gᵀv: a
        // comparison without it would fail.
        assert!((t.dir.0 - t.dir.1).abs() > 1e-6 * t.dir.0.abs(), "{r}");

        let wrong: Vec<f64> = grad.iter().map(|g| g * 1.01).collect();
        let bad = check_fn(&layout, &mut q.clone(), &wrong, &loss, &opts);
        assert_eq!(bad.verdict(), Verdict::Fail, "{bad}");
    }
}
