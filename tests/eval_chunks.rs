//! An evaluation's results do not depend on how it is cut into chunks: not
//! on the batch it asks for, the memory budget or the thread count. A KL
//! penalty's ρ̂ is each unit's mean over the whole set evaluated (it was the
//! mean of per-chunk KLs, so `--max-memory` changed `eval`'s KL); a batch
//! top-k model selects over blocks of a fixed size, and a budget that cannot
//! hold one is an error (it used to shrink the blocks, changing the codes).

mod common;

use sparse_ae::Error;
use sparse_ae::io::model_file::save_model;
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, LayerSpec, LossParts, ModelBuilder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::{CodeStats, FitOptions, Samples, Silent, Trainer, encode, evaluate, fit};
use std::process::Command;
use std::sync::Mutex;

/// `sparse_ae::train::EVAL_BATCH`, the batch of `encode` and the CLI's
/// evaluations (spelt out, so that this file also builds on the code
/// before the fix, where it fails).
const EVAL_BATCH: usize = 1000;

/// The memory budget is the process's: every test takes turns, as a test
/// that lowers it fails the checks of another running meanwhile (making a
/// model counts against it).
static BUDGET: Mutex<()> = Mutex::new(());

/// `n` samples of `d` values in [0, 1].
fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n * d)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            // Mostly dark with bright patches, like pixels.
            if u < 0.6 { 0.0 } else { (u - 0.6) * 2.5 }
        })
        .collect()
}

/// `f` run under a memory budget that holds the model and a run of
/// `samples` samples at batch `want` and no more (the budget restored after).
fn with_room_for<R>(
    model: &Autoencoder<f32>,
    want: usize,
    samples: usize,
    f: impl FnOnce() -> R,
) -> R {
    let cfg = model.config();
    let (fixed, per) = sparse_ae::nn::workspace_bytes(cfg, want, 4);
    let budget = sparse_ae::memory::held()
        + fixed
        + 4 * model.params.len() as u64
        + samples as u64 * (per + 4 * cfg.input as u64);
    assert!(model.eval_batch(want).unwrap() >= samples.min(want));
    let old = sparse_ae::memory::budget();
    sparse_ae::memory::set_budget(budget);
    let r = f();
    sparse_ae::memory::set_budget(old);
    r
}

fn bits(p: &LossParts) -> [u64; 5] {
    [p.recon, p.l1, p.kl, p.l2, p.auxk].map(f64::to_bits)
}

fn same_stats(a: &CodeStats, b: &CodeStats) {
    assert_eq!(a.samples(), b.samples());
    assert_eq!(a.l0().to_bits(), b.l0().to_bits());
    assert_eq!(a.dead(), b.dead());
    let (ma, mb) = (a.mean_activation(), b.mean_activation());
    assert!(ma.iter().zip(&mb).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// β Σ_c KL(ρ‖ρ̂_c), ρ̂_c the mean of channel c of `codes` over the samples
/// and positions, clamped as the penalty clamps it.
fn kl_reference(codes: &[f32], channels: usize, positions: usize, rho: f64, beta: f64) -> f64 {
    let n = codes.len() / (channels * positions);
    let mut sums = vec![0.0f64; channels];
    for row in codes.chunks_exact(channels * positions) {
        for (s, plane) in sums.iter_mut().zip(row.chunks_exact(positions)) {
            *s += plane.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
    }
    let kl = |r: f64| {
        let r = r.clamp(1e-6, 1.0 - 1e-6);
        rho * (rho / r).ln() + (1.0 - rho) * ((1.0 - rho) / (1.0 - r)).ln()
    };
    beta * sums
        .iter()
        .map(|s| kl(s / (n * positions) as f64))
        .sum::<f64>()
}

/// The same loss and code statistics, bit for bit, for any batch asked for
/// and under a budget that forces chunks of 7, and the KL that of ρ̂ over
/// the whole set.
fn chunk_free(cfg: ModelConfig, n: usize, channels: usize, positions: usize) {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let model = Autoencoder::<f32>::new(cfg.clone(), 3).unwrap();
    let x = data(n, cfg.input, 11);
    let s = Samples::f32(&x, cfg.input).unwrap();
    let (whole, stats) = evaluate(&model, s, EVAL_BATCH).unwrap();
    for batch in [1, 7, 64, 100, n - 1] {
        let (l, st) = evaluate(&model, s, batch).unwrap();
        assert_eq!(bits(&l), bits(&whole), "batch {batch}: {l:?} vs {whole:?}");
        same_stats(&st, &stats);
    }
    let (l, st) = with_room_for(&model, EVAL_BATCH, 7, || evaluate(&model, s, EVAL_BATCH)).unwrap();
    assert_eq!(
        bits(&l),
        bits(&whole),
        "budget of 7 samples: {l:?} vs {whole:?}"
    );
    same_stats(&st, &stats);
    // The KL of ρ̂ over the whole set.
    let p = cfg.kl.unwrap();
    let codes = encode(&model, s).unwrap();
    let want = kl_reference(&codes, channels, positions, p.rho, p.beta);
    assert!(whole.kl > 0.0);
    assert!(
        (whole.kl - want).abs() <= 1e-12 * want,
        "KL {} against ρ̂ over the set {want}",
        whole.kl
    );
    // And the total is the sum of its parts.
    let l2 = cfg.weight_decay > 0.0;
    assert_eq!(whole.l2 > 0.0, l2);
    assert_eq!(whole.auxk, 0.0);
}

#[test]
fn a_dense_kl_model_evaluates_the_same_in_any_chunks() {
    let cfg = ModelBuilder::new(64)
        .code(48, Activation::Sigmoid)
        .decoder(64, Activation::Sigmoid)
        .kl(0.05, 3.0)
        .weight_decay(1e-4)
        .build()
        .unwrap();
    chunk_free(cfg, 301, 48, 1);
}

#[test]
fn a_convolutional_kl_model_evaluates_the_same_in_any_chunks() {
    let cfg = ModelBuilder::new(64)
        .image(1, 8, 8)
        .code_layer(LayerSpec::conv(3, 3, Activation::Sigmoid))
        .layer(LayerSpec::conv(1, 3, Activation::Sigmoid))
        .kl(0.1, 2.0)
        .build()
        .unwrap();
    chunk_free(cfg, 203, 3, 64);
}

/// L1 (on a ReLU code, with weight decay and an MSE loss) is a mean over
/// samples: the same bits too.
#[test]
fn l1_and_weight_decay_evaluate_the_same_in_any_chunks() {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = ModelBuilder::new(64)
        .code(40, Activation::Relu)
        .decoder(64, Activation::Linear)
        .loss(sparse_ae::nn::Loss::Mse)
        .l1(1e-3)
        .weight_decay(1e-4)
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 5).unwrap();
    let x = data(257, 64, 3);
    let s = Samples::f32(&x, 64).unwrap();
    let (whole, _) = evaluate(&model, s, EVAL_BATCH).unwrap();
    assert!(whole.l1 > 0.0 && whole.l2 > 0.0);
    for batch in [1, 13, 256] {
        assert_eq!(bits(&evaluate(&model, s, batch).unwrap().0), bits(&whole));
    }
    let small = with_room_for(&model, EVAL_BATCH, 5, || evaluate(&model, s, EVAL_BATCH));
    assert_eq!(bits(&small.unwrap().0), bits(&whole));
}

/// A per-sample top-k model on the sparse path (k ≤ units/16, from batch
/// 64 by default): every chunk takes the path of a batch of 1000, so
/// chunks of 7 give the same bits too (they took the dense path, which
/// rounds the decoder differently).
#[test]
fn a_topk_model_evaluates_the_same_in_any_chunks() {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = ModelBuilder::new(64)
        .code(96, Activation::Relu)
        .decoder(64, Activation::Linear)
        .loss(sparse_ae::nn::Loss::Mse)
        .topk(4, false)
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 8).unwrap();
    let x = data(301, 64, 4);
    let s = Samples::f32(&x, 64).unwrap();
    let (whole, stats) = evaluate(&model, s, EVAL_BATCH).unwrap();
    for batch in [1, 7, 63, 64, 300] {
        let (l, st) = evaluate(&model, s, batch).unwrap();
        assert_eq!(bits(&l), bits(&whole), "batch {batch}: {l:?} vs {whole:?}");
        same_stats(&st, &stats);
    }
}

/// Training's test figures are the same evaluation: the same bits whatever
/// the validation batch.
#[test]
fn the_test_loss_of_training_does_not_depend_on_the_validation_batch() {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = ModelBuilder::new(64)
        .code(32, Activation::Sigmoid)
        .decoder(64, Activation::Sigmoid)
        .kl(0.05, 3.0)
        .build()
        .unwrap();
    let x = data(200, 64, 5);
    let t = data(150, 64, 6);
    let run = |eval_batch: usize| {
        let model = Autoencoder::<f32>::new(cfg.clone(), 1).unwrap();
        let mut tr = Trainer::new(model, OptimizerConfig::default(), 20, 0).unwrap();
        let opts = FitOptions {
            epochs: 1,
            eval_batch,
            ..FitOptions::default()
        };
        let s = Samples::f32(&x, 64).unwrap();
        let test = Samples::f32(&t, 64).unwrap();
        let m = fit(&mut tr, s, Some(test), &opts, &mut Silent).unwrap();
        let (again, _) = evaluate(&tr.model, test, EVAL_BATCH).unwrap();
        (m[0].test.unwrap(), again)
    };
    let (a, ev) = run(EVAL_BATCH);
    let (b, _) = run(8);
    assert_eq!(bits(&a), bits(&b), "{a:?} vs {b:?}");
    assert_eq!(bits(&a), bits(&ev));
}

fn batch_topk() -> ModelConfig {
    ModelBuilder::new(64)
        .code(96, Activation::Relu)
        .decoder(64, Activation::Linear)
        .loss(sparse_ae::nn::Loss::Mse)
        .topk(4, true)
        .build()
        .unwrap()
}

/// A batch top-k model selects over blocks of the batch asked for: the
/// loss is the mean of the blocks' losses, and a budget that cannot hold a
/// block is an error naming it (smaller blocks would change the codes).
#[test]
fn batch_topk_selects_over_fixed_blocks_whatever_the_budget() {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let model = Autoencoder::<f32>::new(batch_topk(), 2).unwrap();
    let n = 300;
    let x = data(n, 64, 9);
    let s = Samples::f32(&x, 64).unwrap();
    // The definition: blocks of 50, each one batch.
    let (by_50, _) = evaluate(&model, s, 50).unwrap();
    let mut recon = 0.0;
    for block in x.chunks(50 * 64) {
        let mut ws = model.workspace(50);
        recon += model
            .loss_and_grad(&mut ws, block, block, None)
            .unwrap()
            .recon
            * 50.0;
    }
    recon /= n as f64;
    assert!(
        (by_50.recon - recon).abs() <= 1e-6 * recon,
        "{} against blocks of 50: {recon}",
        by_50.recon
    );
    let (whole, stats) = evaluate(&model, s, EVAL_BATCH).unwrap();
    assert_ne!(
        bits(&whole),
        bits(&by_50),
        "the block is part of the definition"
    );
    // L0 is k per sample on average over the block.
    assert!((stats.l0() - 4.0).abs() < 1e-9, "{}", stats.l0());
    let codes = encode(&model, s).unwrap();
    // A budget that holds a block of 50 gives the same bits; one that does
    // not is refused, where it used to evaluate in smaller blocks.
    let held = with_room_for(&model, 50, 50, || evaluate(&model, s, 50)).unwrap();
    assert_eq!(bits(&held.0), bits(&by_50));
    for (ask, room) in [(50, 20), (EVAL_BATCH, 100)] {
        let e = with_room_for(&model, ask, room, || evaluate(&model, s, ask)).unwrap_err();
        assert!(matches!(e, Error::Memory { .. }), "{e:?}");
        let text = e.to_string();
        let block = ask.min(n);
        for part in [
            format!("a block of {block} samples of a BatchTopK model"),
            "memory budget".to_string(),
        ] {
            assert!(text.contains(&part), "{text}");
        }
    }
    // encode selects over the same blocks (of EVAL_BATCH, here the 300
    // samples), never smaller: a budget that holds the codes but not the
    // block is refused (it used to encode in blocks of 100).
    let e = with_room_for(&model, EVAL_BATCH, 100, || encode(&model, s)).unwrap_err();
    assert!(
        e.to_string()
            .contains("a block of 300 samples of a BatchTopK model"),
        "{e}"
    );
    // evaluate's code statistics are those of encode's codes.
    let per_unit: Vec<f64> = (0..96)
        .map(|j| {
            codes
                .iter()
                .skip(j)
                .step_by(96)
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / n as f64
        })
        .collect();
    for (a, b) in stats.mean_activation().iter().zip(&per_unit) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} vs {b}");
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(args)
        .output()
        .unwrap()
}

/// On the command line: `eval` and `encode` give the same bytes on 1 and 2
/// threads, and `eval` of a KL model under a budget that forces small
/// chunks too; a batch top-k model is refused under such a budget.
#[test]
fn eval_and_encode_do_not_depend_on_threads_or_budget() {
    let _turn = BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    let dir = common::temp_dir("eval_chunks_cli");
    let n = 2500;
    let x = data(n, 64, 21);
    let npy = dir.join("x.npy");
    sparse_ae::data::npy::write(&npy, n, 64, &x).unwrap();
    let kl = ModelBuilder::new(64)
        .code(48, Activation::Sigmoid)
        .decoder(64, Activation::Sigmoid)
        .kl(0.05, 3.0)
        .build()
        .unwrap();
    for (name, cfg) in [("kl", kl), ("btk", batch_topk())] {
        let m = dir.join(format!("{name}.safetensors"));
        save_model(&m, &Autoencoder::<f32>::new(cfg, 4).unwrap()).unwrap();
        let (m, d) = (m.to_str().unwrap(), npy.to_str().unwrap());
        let eval = |extra: &[&str]| {
            let mut a = vec!["eval", "-m", m, "--data", d, "--split", "all", "--json"];
            a.extend(extra);
            cli(&a)
        };
        let one = eval(&["--threads", "1"]);
        assert!(
            one.status.success(),
            "{}",
            String::from_utf8_lossy(&one.stderr)
        );
        assert_eq!(text(&one), text(&eval(&["--threads", "2"])), "{name}");
        let small = eval(&["--max-memory", "0.0004"]);
        if name == "kl" {
            assert!(
                small.status.success(),
                "{}",
                String::from_utf8_lossy(&small.stderr)
            );
            assert_eq!(text(&one), text(&small), "{name} under a small budget");
        } else {
            let e = String::from_utf8_lossy(&small.stderr);
            assert!(
                !small.status.success(),
                "{}",
                String::from_utf8_lossy(&small.stdout)
            );
            assert!(
                e.contains("BatchTopK") && e.contains("memory budget"),
                "{e}"
            );
        }
        let codes = |threads: &str| {
            let out = dir.join(format!("{name}-{threads}.npy"));
            let o = cli(&[
                "encode",
                "-m",
                m,
                "--data",
                d,
                "--split",
                "all",
                "--threads",
                threads,
                "-o",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read(out).unwrap()
        };
        assert_eq!(codes("1"), codes("2"), "{name}");
    }
}
