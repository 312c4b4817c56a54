//! What a convolution allocates is what the memory check counts: for random
//! shapes (tiny images under large kernels and padding, tall and thin
//! images, strides) and every algorithm, the scratch holds exactly
//! [`scratch_bytes`] after a forward and a backward pass, and a model's
//! workspace holds no more than [`workspace_bytes`] (nor much less). With
//! a large padding the shifted planes dwarf the image (the backward pass's
//! D has `out_c·kh·kw·(h + 2p)·(w + 2p)` values): `ConvAlgo::Auto` then
//! takes im2col for that pass (ordinary convolutions keep their choice),
//! and what still exceeds the budget is refused by name, where it aborted
//! on the failed allocation.

mod common;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::conv::{
    Conv2dShape, ConvAlgo, ConvScratch, conv2d_backward, conv2d_forward, scratch_bytes,
};
use sparse_ae::nn::{Autoencoder, ModelConfig, Workspace, workspace_bytes};
use std::path::Path;

/// A random convolution: mostly a kernel and padding large beside the
/// image, some tall or thin images, strides 1 to 3.
fn random_shape(rng: &mut StdRng) -> Conv2dShape {
    loop {
        let (h, w) = match rng.random_range(0..3) {
            0 => (rng.random_range(1..=3), rng.random_range(1..=3)),
            1 => (rng.random_range(10..=40), rng.random_range(1..=2)),
            _ => (rng.random_range(1..=12), rng.random_range(1..=12)),
        };
        let k = rng.random_range(1..=15);
        let pad = rng.random_range(0..=k);
        let stride = if rng.random_bool(0.7) {
            1
        } else {
            rng.random_range(2..=3)
        };
        let (in_c, out_c) = (rng.random_range(1..=3), rng.random_range(1..=3));
        if let Ok(s) = Conv2dShape::new(in_c, out_c, k, k, stride, pad, h, w) {
            return s;
        }
    }
}

/// `ConvAlgo::Auto`'s choice before it weighed the planes' size: shifted
/// planes for stride 1 in the forward pass with one output channel or
/// `k ≥ 2·(in_c + out_c)`, in the backward pass with `out_c ≤ in_c`.
fn auto_by_channels(s: &Conv2dShape) -> (bool, bool) {
    let one = s.stride == 1;
    (
        one && (s.out_c == 1 || s.k() >= 2 * (s.in_c + s.out_c)),
        one && s.out_c <= s.in_c,
    )
}

/// Ordinary convolutions (an image at least as large as the kernel, a
/// padding of at most half the kernel, up to 64 channels, images up to
/// 128×128) compute as they did before `Auto` weighed the planes' size: the
/// same algorithm for each pass, so the same bits.
#[test]
fn auto_keeps_its_choice_for_ordinary_convolutions() {
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..5000 {
        let k = rng.random_range(1..=11);
        let (h, w) = (rng.random_range(k..=128), rng.random_range(k..=128));
        let pad = rng.random_range(0..=k / 2);
        let (in_c, out_c) = (rng.random_range(1..=64), rng.random_range(1..=64));
        let stride = rng.random_range(1..=2);
        let s = Conv2dShape::new(in_c, out_c, k, k, stride, pad, h, w).unwrap();
        assert_eq!(
            ConvAlgo::Auto.uses_shifted(&s),
            auto_by_channels(&s),
            "{s:?}"
        );
    }
}

/// Where the shifted planes would dwarf im2col's matrix (a padding large
/// beside the image), `Auto` takes im2col for that pass: its scratch is
/// within a few times im2col's, never the planes' (a 1×1 image under a
/// kernel of 401 needed 103 GB, now 1.3 MB).
#[test]
fn auto_never_takes_planes_that_dwarf_im2col() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut changed = 0;
    for i in 0..3000 {
        // Tiny images under kernels of 31 to 201 padded by half to all of
        // the kernel, and the shapes of the other tests.
        let s = match i {
            0 => Conv2dShape::new(1, 1, 401, 401, 1, 200, 1, 1).unwrap(),
            _ if i % 2 == 0 => random_shape(&mut rng),
            _ => {
                let k = 2 * rng.random_range(15..=100) + 1;
                let pad = rng.random_range(k / 2..k);
                let (h, w) = (rng.random_range(1..=8), rng.random_range(1..=8));
                let (in_c, out_c) = (rng.random_range(1..=4), rng.random_range(1..=4));
                Conv2dShape::new(in_c, out_c, k, k, 1, pad, h, w).unwrap()
            }
        };
        let auto = scratch_bytes(1, &s, ConvAlgo::Auto, 4);
        let im2col = scratch_bytes(1, &s, ConvAlgo::Im2col, 4);
        // Each pass's planes at most SHIFT_SMALL values or SHIFT_EXCESS
        // times the im2col matrix, which the im2col scratch holds.
        let small = 2 * 4 * sparse_ae::nn::conv::SHIFT_SMALL;
        let bound = im2col * (2 * sparse_ae::nn::conv::SHIFT_EXCESS + 1) + small;
        assert!(
            auto <= bound,
            "{s:?}: {auto} B by Auto, {im2col} B by im2col"
        );
        changed += usize::from(ConvAlgo::Auto.uses_shifted(&s) != auto_by_channels(&s));
        if i == 0 {
            assert!(auto < 2_000_000, "{auto}");
        }
    }
    assert!(
        changed > 100,
        "only {changed} shapes changed: the sweep misses the large paddings"
    );
}

#[test]
fn a_convolution_holds_what_scratch_bytes_counts() {
    let mut rng = StdRng::seed_from_u64(0xc0_5c7a);
    let mut padded = 0;
    for _ in 0..120 {
        let s = random_shape(&mut rng);
        let batch = rng.random_range(1..=5);
        let x: Vec<f32> = (0..batch * s.in_len()).map(|_| rng.random()).collect();
        let dz: Vec<f32> = (0..batch * s.out_len()).map(|_| rng.random()).collect();
        let w: Vec<f32> = (0..s.weight_len()).map(|_| rng.random()).collect();
        let b = vec![0.1f32; s.out_c];
        let (mut y, mut dx) = (vec![0.0; dz.len()], vec![0.0; x.len()]);
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; s.out_c]);
        for algo in [ConvAlgo::Auto, ConvAlgo::Im2col, ConvAlgo::Shifted] {
            let mut sc = ConvScratch::<f32>::try_with_algo(batch, &s, algo).unwrap();
            conv2d_forward(&mut y, &x, &w, &b, batch, &s, Activation::Relu, &mut sc);
            conv2d_backward(
                &mut dw,
                &mut db,
                Some(&mut dx),
                &dz,
                &x,
                &w,
                batch,
                &s,
                &mut sc,
            );
            assert_eq!(
                sc.heap_bytes(),
                scratch_bytes(batch, &s, algo, 4),
                "{s:?} at batch {batch} by {algo:?}"
            );
        }
        // A padded plane (S values) far larger than the output (P).
        let plane = (s.in_h + 2 * s.pad) * (s.in_w + 2 * s.pad);
        padded += usize::from(s.stride == 1 && plane >= 4 * s.out_h() * s.out_w());
    }
    assert!(
        padded >= 20,
        "only {padded} shapes padded well beyond the output"
    );
}

/// A random model of one to three convolutions on a small image, ending
/// in a sigmoid layer of the input's size.
fn random_config(rng: &mut StdRng) -> (ModelConfig, String) {
    loop {
        let (c, h, w) = match rng.random_range(0..3) {
            0 => (1, rng.random_range(1..=3), rng.random_range(1..=3)),
            1 => (rng.random_range(1..=2), rng.random_range(10..=30), 1),
            _ => (
                rng.random_range(1..=2),
                rng.random_range(1..=9),
                rng.random_range(1..=9),
            ),
        };
        let mut layers = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let k = rng.random_range(1..=13);
            layers.push(format!(
                r#"{{"type": "conv2d", "channels": {}, "kernel": {k}, "stride": {}, "padding": {}, "activation": "tanh"}}"#,
                rng.random_range(1..=3),
                if rng.random_bool(0.8) { 1 } else { 2 },
                rng.random_range(0..=k),
            ));
        }
        layers.push(match rng.random_bool(0.5) {
            true => format!(r#"{{"units": {}, "activation": "sigmoid"}}"#, c * h * w),
            false => format!(
                r#"{{"type": "conv2d", "channels": {c}, "kernel": {}, "activation": "sigmoid"}}"#,
                2 * rng.random_range(0..=3) + 1
            ),
        });
        let json = format!(
            r#"{{"input": {}, "image": [{c}, {h}, {w}], "layers": [{}], "code_layer": 0}}"#,
            c * h * w,
            layers.join(", ")
        );
        if let Ok(cfg) = ModelConfig::from_json(&json) {
            return (cfg, json);
        }
    }
}

#[test]
fn a_workspace_holds_no_more_than_workspace_bytes() {
    let mut rng = StdRng::seed_from_u64(0x3e3_0c0f);
    for case in 0..80 {
        let (cfg, json) = random_config(&mut rng);
        let batch = rng.random_range(1..=6);
        let model = Autoencoder::<f32>::new(cfg.clone(), case).unwrap();
        let x: Vec<f32> = (0..batch * cfg.input).map(|_| rng.random()).collect();
        let mut g = vec![0.0; model.params.len()];
        let mut ws = Workspace::<f32>::try_new(&cfg, batch).unwrap();
        model.loss_and_grad(&mut ws, &x, &x, Some(&mut g)).unwrap();
        let held = ws.heap_bytes();
        let (fixed, per) = workspace_bytes(&cfg, batch, 4);
        let counted = fixed + per * batch as u64;
        assert!(
            counted >= held,
            "{json} at batch {batch}: {held} bytes held, {counted} counted"
        );
        assert!(
            counted <= 2 * held + 4096,
            "{json} at batch {batch}: {held} bytes held, {counted} counted"
        );
    }
}

/// Runs `args`, which must end with exit code 1 and an error that names
/// `what` needing more than the memory budget.
fn refused<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[A], what: &str) {
    let o = common::run_limited(None, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "sparse-ae {args:?}:\n{err}");
    assert!(
        err.contains(what) && err.contains("needs") && err.contains("more than the memory budget"),
        "sparse-ae {args:?}:\n{err}"
    );
}

/// A model of a 1-channel `h × w` image whose first layer has `channels`
/// channels, a kernel of `k` and padding `pad`.
fn write_config(path: &Path, (h, w): (usize, usize), channels: usize, k: usize, pad: usize) {
    let json = format!(
        r#"{{"input": {}, "image": [1, {h}, {w}], "loss": "mse", "code_layer": 0, "layers": [
            {{"type": "conv2d", "channels": {channels}, "kernel": {k}, "padding": {pad}, "activation": "relu"}},
            {{"type": "conv2d", "channels": 1, "kernel": 1, "padding": 0, "activation": "linear"}}]}}"#,
        h * w
    );
    std::fs::write(path, json).unwrap();
}

/// A convolution whose padding is large beside its image computes on
/// im2col where the shifted planes would dwarf it: a 1×1 image under a
/// kernel of 401 and padding 200 (its planes 103 GB: `train` and
/// `gradcheck` aborted, then were refused) trains, passes its gradient
/// check and evaluates; a 200×1 image with 2 channels (51 GB of planes)
/// trains in 128 MB of im2col matrix, and under a budget too small for that
/// is refused by name, as is evaluating its model.
#[test]
fn a_padding_large_beside_the_image_trains_on_im2col_and_past_the_budget_is_refused() {
    let dir = common::temp_dir("conv_memory_cli");
    let p = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    write_config(&dir.join("k401.json"), (1, 1), 1, 401, 200);
    write_config(&dir.join("tall.json"), (200, 1), 2, 401, 200);
    sparse_ae::data::npy::write(&dir.join("d1.npy"), 4, 1, &[0.1, 0.2, 0.3, 0.4]).unwrap();
    sparse_ae::data::npy::write(&dir.join("d200.npy"), 4, 200, &[0.5; 800]).unwrap();
    let train = |config: &str, data: &str, out: &str, budget: Option<&str>| {
        let (config, data, out) = (p(config), p(data), p(out));
        let mut args: Vec<String> = ["train", "--config", &config, "--data", &data]
            .into_iter()
            .chain(["--batch-size", "1", "--epochs", "1", "--out", &out])
            .map(String::from)
            .collect();
        if let Some(gb) = budget {
            args.extend(["--max-memory".to_string(), gb.to_string()]);
        }
        args
    };
    for (config, data, out) in [
        ("k401.json", "d1.npy", "k401.st"),
        ("tall.json", "d200.npy", "tall.st"),
    ] {
        common::run_ok(&train(config, data, out, None));
    }
    common::run_ok(&["gradcheck", "--config", &p("k401.json"), "--batch", "1"]);
    let (m, d) = (p("k401.st"), p("d1.npy"));
    let (codes, scores) = (p("codes.npy"), p("scores.csv"));
    for args in [
        vec!["eval", "--model", &m, "--data", &d],
        vec!["encode", "--model", &m, "--data", &d, "--out", &codes],
        vec!["score", "--model", &m, "--data", &d, "--out", &scores],
    ] {
        common::run_ok(&args);
    }
    // Under 100 MB, the 128 MB of im2col matrix are refused by name.
    let _ = std::fs::remove_file(dir.join("m.st"));
    refused(
        &train("tall.json", "d200.npy", "m.st", Some("0.1")),
        "training at batch size 1",
    );
    assert!(!dir.join("m.st").exists());
    let (m, d) = (p("tall.st"), p("d200.npy"));
    refused(
        &["eval", "--model", &m, "--data", &d, "--max-memory", "0.05"],
        "running the model on one sample",
    );
}
