//! The sparsity metrics of a sigmoid code held at ρ by the KL penalty: a
//! healthy model is not reported as all dead (as it was when a sigmoid unit
//! counted as active only above 0.5), and the mean activations ρ̂ are
//! reported against ρ, in the library's records and on the command line.

mod common;

use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, ModelBuilder};
use sparse_ae::optim::{AdamConfig, OptimizerConfig};
use sparse_ae::train::{CodeStats, FitOptions, Samples, Silent, Trainer, fit};
use std::process::Command;

/// 256 samples of 64 pixels in [0, 1]: two random bars on a dark field.
fn bars() -> Vec<f32> {
    let mut state = 7u64;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut x = vec![0.0f32; 256 * 64];
    for img in x.chunks_exact_mut(64) {
        let (row, col) = (next(8) as usize, next(8) as usize);
        for i in 0..8 {
            img[row * 8 + i] = 1.0;
            img[i * 8 + col] = 0.8;
        }
    }
    x
}

#[test]
fn a_kl_code_on_target_is_alive() {
    let rho = 0.05;
    let cfg = ModelBuilder::new(64)
        .code(128, Activation::Sigmoid)
        .decoder(64, Activation::Sigmoid)
        .kl(rho, 3.0)
        .dead_window(256)
        .build()
        .unwrap();
    let x = bars();
    let model = Autoencoder::<f32>::new(cfg.clone(), 1).unwrap();
    let adam = OptimizerConfig::Adam(AdamConfig {
        lr: 1e-2,
        ..AdamConfig::default()
    });
    let mut trainer = Trainer::new(model, adam, 32, 0).unwrap();
    let opts = FitOptions {
        epochs: 40,
        ..FitOptions::default()
    };
    let samples = Samples::f32(&x, 64).unwrap();
    let history = fit(&mut trainer, samples, None, &opts, &mut Silent).unwrap();
    let last = history.last().unwrap();
    let r = last.rho.expect("a KL code reports ρ̂");
    assert_eq!((r.rho, r.groups), (rho, 128));
    // The penalty has pulled the code to its target...
    assert!(
        r.median > 0.5 * rho && r.median < 2.0 * rho && r.off_target == 0,
        "{r:?}"
    );
    // ...and no unit of it is dead, in the epoch or over the (full) window.
    assert_eq!(last.active_threshold, (rho / 10.0) as f32);
    assert_eq!(last.dead_units, 0);
    assert!(last.window_full);
    assert_eq!(last.dead_window_units, 0);
    assert!(last.l0 > 0.0);
    // This is the case of the issue: at the sigmoid threshold 0.5 the same
    // codes read as (nearly) all dead.
    let m = &trainer.model;
    let mut ws = m.workspace(256);
    m.forward(&mut ws, &x).unwrap();
    let mut old = CodeStats::new(128, Activation::Sigmoid);
    old.add(m.code(&ws));
    assert!(old.dead() > 128 * 3 / 4, "{} of 128", old.dead());
    // The JSON line and CSV row carry the new fields.
    let line = last.json_line();
    assert!(
        line.contains("\"rho_hat\":{\"rho\":0.05,") && line.contains("\"window_full\":true"),
        "{line}"
    );
    let header: Vec<&str> = sparse_ae::train::EpochMetrics::CSV_HEADER
        .split(',')
        .collect();
    let row = last.csv_row();
    let cells: Vec<&str> = row.split(',').collect();
    assert_eq!(cells.len(), header.len(), "{row}");
    let at = |name: &str| cells[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(at("dead_units"), "0");
    assert_eq!(at("rho"), "0.05");
    assert_eq!(at("rho_off_target"), r.off_target.to_string());
}

/// The epoch line of `train --preset overcomplete-kl` shows ρ̂ against ρ,
/// L0's threshold, and says what each dead count counts.
#[test]
fn the_epoch_line_of_a_kl_preset() {
    let dir = common::temp_dir("kl_metrics_cli");
    common::write_tiny_mnist(&dir, 10, 128, 16);
    let metrics = dir.join("m.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(["train", "--preset", "overcomplete-kl", "--data"])
        .arg(&dir)
        .args([
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--dead-window",
            "128",
        ])
        .args(["-o"])
        .arg(dir.join("m.safetensors"))
        .arg("--metrics")
        .arg(&metrics)
        .env_remove("SPARSE_AE_KERNEL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("epoch   3"))
        .unwrap_or_else(|| panic!("no third epoch line in\n{err}"));
    assert!(
        line.contains("(h > 0.005)") && line.contains("ρ̂ ") && line.contains("ρ 0.05 ("),
        "{line}"
    );
    assert!(
        line.contains(" in epoch, ")
            && line.contains("/1024 in window of 128")
            && !line.contains("dead 1024/1024"),
        "{line}"
    );
    let first = err.lines().find(|l| l.starts_with("epoch   1")).unwrap();
    assert!(
        first.contains("in epoch, ") && !first.contains("not full"),
        "{first}"
    );
    let text = std::fs::read_to_string(&metrics).unwrap();
    let v = sparse_ae::io::json::parse(text.lines().last().unwrap().as_bytes()).unwrap();
    assert_eq!(v.usize_at("rho_hat.groups").unwrap(), 1024);
    assert!(v.bool_at("window_full").unwrap());
    // eval reads the same code the same way.
    let o = Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(["eval", "-m"])
        .arg(dir.join("m.safetensors"))
        .arg("--data")
        .arg(&dir)
        .env_remove("SPARSE_AE_KERNEL")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("per sample (h > 0.005)") && out.contains("against rho 0.05;"),
        "{out}"
    );
}
