//! Any image size, any stack: random convolutional, pooling, upsampling and
//! dense stacks on random image shapes (1–3 channels, sides 1–17, any
//! kernel, stride and padding) either build and train, with finite losses
//! and correct gradients, or are refused with a configuration error that
//! names the layer. Nothing panics.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::Error;
use sparse_ae::gradcheck::{CheckOptions, check_model};
use sparse_ae::nn::{Autoencoder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::Trainer;

/// A random stack as JSON; `smooth` keeps to activations and layers without
/// kinks (no ReLU, no max pooling), for finite differences.
fn random_config(rng: &mut StdRng, smooth: bool) -> (String, usize) {
    let acts: &[&str] = if smooth {
        &["sigmoid", "tanh", "linear"]
    } else {
        &["relu", "leaky_relu", "sigmoid", "tanh", "linear"]
    };
    let act = |rng: &mut StdRng| acts[rng.random_range(0..acts.len())];
    let (c, h, w) = (
        rng.random_range(1..=3usize),
        rng.random_range(1..=17usize),
        rng.random_range(1..=17usize),
    );
    let mut layers = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        let kind = rng.random_range(0..if smooth { 4 } else { 5 });
        layers.push(match kind {
            0 | 1 => format!(
                r#"{{"type": "conv2d", "channels": {}, "kernel": {}, "stride": {}, "padding": {}, "activation": "{}"}}"#,
                rng.random_range(1..=4),
                rng.random_range(1..=5),
                rng.random_range(1..=3),
                rng.random_range(0..=3),
                act(rng)
            ),
            2 => format!(
                r#"{{"type": "upsample", "scale": {}}}"#,
                rng.random_range(1..=3)
            ),
            3 => format!(
                r#"{{"units": {}, "activation": "{}"}}"#,
                rng.random_range(1..=24),
                act(rng)
            ),
            _ => format!(
                r#"{{"type": "maxpool2d", "kernel": {}, "stride": {}}}"#,
                rng.random_range(1..=3),
                rng.random_range(1..=3)
            ),
        });
    }
    layers.push(if rng.random_bool(0.5) {
        format!(r#"{{"units": {}, "activation": "sigmoid"}}"#, c * h * w)
    } else {
        format!(
            r#"{{"type": "conv2d", "channels": {c}, "kernel": {}, "activation": "sigmoid"}}"#,
            2 * rng.random_range(0..=2) + 1
        )
    });
    let code = rng.random_range(0..layers.len() - 1);
    let penalty = if rng.random_bool(0.4) {
        r#", "l1": {"lambda": 0.001}"#
    } else {
        ""
    };
    (
        format!(
            r#"{{"input": {}, "image": [{c}, {h}, {w}], "layers": [{}], "code_layer": {code}{penalty}}}"#,
            c * h * w,
            layers.join(", ")
        ),
        c * h * w,
    )
}

/// A refusal is a configuration error that says where, once.
fn assert_clear_refusal(json: &str, e: &Error) {
    let msg = e.to_string();
    assert!(matches!(e, Error::Config { .. }), "{json}: {e:?}");
    assert!(
        msg.contains("layers[") || msg.contains("code_layer"),
        "{json}: {msg}"
    );
    assert_eq!(
        msg.matches("invalid configuration").count(),
        1,
        "{json}: {msg}"
    );
}

#[test]
fn random_stacks_train_or_are_refused_clearly() {
    let mut rng = StdRng::seed_from_u64(20261204);
    let (mut trained, mut refused) = (0, 0);
    for case in 0..400 {
        let (json, input) = random_config(&mut rng, false);
        let cfg = match ModelConfig::from_json(&json) {
            Ok(cfg) => cfg,
            Err(e) => {
                assert_clear_refusal(&json, &e);
                refused += 1;
                continue;
            }
        };
        let batch = rng.random_range(1..=9);
        let model = Autoencoder::<f32>::new(cfg, case).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 0).unwrap();
        let x: Vec<f32> = (0..batch * input).map(|_| rng.random::<f32>()).collect();
        for _ in 0..2 {
            let l = t
                .step(&x)
                .unwrap_or_else(|e| panic!("{json}, batch {batch}: {e}"));
            assert!(l.total().is_finite(), "{json}: {l:?}");
        }
        let e = t.step(&x[1..]).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{json}: {e:?}");
        trained += 1;
    }
    // Both outcomes are exercised, or the test says nothing.
    assert!(
        trained >= 60 && refused >= 60,
        "{trained} trained, {refused} refused"
    );
}

#[test]
fn random_smooth_stacks_have_correct_gradients() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut checked = 0;
    while checked < 40 {
        let (json, input) = random_config(&mut rng, true);
        let Ok(cfg) = ModelConfig::from_json(&json) else {
            continue;
        };
        let model = Autoencoder::<f64>::new(cfg, checked).unwrap();
        if model.params.len() > 4000 {
            continue;
        }
        let batch = rng.random_range(1..=3);
        let x: Vec<f64> = (0..batch * input).map(|_| rng.random::<f64>()).collect();
        let r = check_model(&model, &x, &x, batch, &CheckOptions::default()).unwrap();
        assert!(r.passed(), "{json}, batch {batch}: {r:?}");
        checked += 1;
    }
}

/// Every preset, and random stacks: a batch's forward pass gives each sample
/// the bits it gets alone or among a few others (a sample's code and output
/// do not depend on the batch it is in, which micro-batches rely on), on
/// either TopK path when it is fixed. (`TopkPath::Auto` takes the sparse
/// path from batch 64, whose products add in another order: a TopK model's
/// output then has the same values to rounding, its code the same bits.)
#[test]
fn a_sample_has_the_same_bits_in_any_batch() {
    use sparse_ae::nn::{PRESETS, TopkPath, preset_for_image};
    let mut rng = StdRng::seed_from_u64(0x5eed_00b7);
    let mut configs: Vec<(String, ModelConfig)> = PRESETS
        .iter()
        .map(|(name, _)| {
            let cfg = preset_for_image(name, (1, 28, 28)).unwrap();
            (name.to_string(), cfg)
        })
        .collect();
    while configs.len() < PRESETS.len() + 6 {
        let (json, _) = random_config(&mut rng, false);
        if let Ok(cfg) = ModelConfig::from_json(&json) {
            configs.push((json, cfg));
        }
    }
    for (name, cfg) in configs {
        let model = Autoencoder::<f32>::new(cfg.clone(), 7).unwrap();
        let d = cfg.input;
        let batch = 70;
        let x: Vec<f32> = (0..batch * d)
            .map(|_| rng.random_range(0.0f32..1.0))
            .collect();
        let run = |lo: usize, m: usize, path: TopkPath| {
            let mut ws = model.workspace_with(m, path);
            model.forward(&mut ws, &x[lo * d..(lo + m) * d]).unwrap();
            let mut out = vec![0.0f32; m * d];
            model.reconstruction(&ws, &mut out);
            let code: Vec<u32> = model.code(&ws).iter().map(|v| v.to_bits()).collect();
            (code, out.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        for path in [TopkPath::Dense, TopkPath::Sparse] {
            let (code, out) = run(0, batch, path);
            let per = code.len() / batch;
            for (lo, m) in [(0, 1), (9, 1), (20, 5), (30, 40)] {
                let (c, o) = run(lo, m, path);
                assert!(
                    c == code[lo * per..(lo + m) * per],
                    "{name} {path:?}: the code of rows {lo}..{} differs from the batch's",
                    lo + m
                );
                assert!(
                    o == out[lo * d..(lo + m) * d],
                    "{name} {path:?}: the output of rows {lo}..{} differs from the batch's",
                    lo + m
                );
            }
        }
    }
}
