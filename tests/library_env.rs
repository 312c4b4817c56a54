//! The model's own entry points refuse an absurd `RAYON_NUM_THREADS` as the
//! training entry points do (`parallel::ensure_global_pool`): a program that
//! calls `Autoencoder::forward`, `decode` or `loss_and_grad` directly, before
//! anything else starts the pool, gets an error naming the variable instead
//! of rayon starting 100,000 threads.
//!
//! Each call runs in a child process (this test binary, running the ignored
//! test `child` alone), since the pool is started once per process.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sparse_ae::kernels::Activation;
use sparse_ae::nn::{Autoencoder, ModelBuilder, TopkPath};

const ENTRY: &str = "SPARSE_AE_TEST_ENTRY";

/// Runs `entry` in a child with `RAYON_NUM_THREADS=value`; its output, or
/// a failure if it has not finished within a minute.
fn run_child(entry: &str, value: &str) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENTRY, entry)
        .env("RAYON_NUM_THREADS", value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{entry} with RAYON_NUM_THREADS={value}: still running after a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[test]
fn model_entry_points_refuse_an_absurd_thread_count() {
    for entry in ["forward", "decode", "loss_and_grad"] {
        let out = run_child(entry, "100000");
        assert!(
            out.contains("RESULT: error")
                && out.contains("RAYON_NUM_THREADS")
                && out.contains("got 100000"),
            "{entry}: {out}"
        );
        // A sensible value runs.
        let out = run_child(entry, "2");
        assert!(out.contains("RESULT: ok"), "{entry}: {out}");
    }
}

/// The child's side (run by [`run_child`]): one call of the entry point
/// named by the environment on a fresh model, its outcome printed.
#[test]
#[ignore = "run by model_entry_points_refuse_an_absurd_thread_count in a child process"]
fn child() {
    let Ok(entry) = std::env::var(ENTRY) else {
        return;
    };
    let cfg = ModelBuilder::new(64)
        .code(512, Activation::Relu)
        .decoder(64, Activation::Sigmoid)
        .build()
        .unwrap();
    let model = Autoencoder::<f32>::new(cfg, 1).unwrap();
    let batch = 256;
    let mut ws = model.workspace_with(batch, TopkPath::Dense);
    let x = vec![0.5f32; batch * 64];
    let r = match entry.as_str() {
        "forward" => model.forward(&mut ws, &x),
        "decode" => model.decode(&mut ws, &vec![0.5f32; batch * 512]),
        "loss_and_grad" => {
            let mut g = vec![0.0f32; model.params.len()];
            model
                .loss_and_grad(&mut ws, &x, &x, Some(&mut g))
                .map(|_| ())
        }
        other => panic!("unknown entry {other}"),
    };
    match r {
        Ok(()) => println!("RESULT: ok"),
        Err(e) => println!("RESULT: error: {e}"),
    }
}
