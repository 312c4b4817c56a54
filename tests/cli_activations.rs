//! The command-line tool on activation matrices (.npy): streamed and
//! normalised training, exact resumption, bfloat16 input, outputs in input
//! space, bounded memory when streaming, and `--init` from an SAE-library
//! directory.

mod common;

use sparse_ae::data::npy;
use sparse_ae::io::model_file::load_model_scaled;
use sparse_ae::rng::Rng;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(args)
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        .output()
        .unwrap()
}

/// Stdout and stderr of a run that must succeed.
fn ok(args: &[&str]) -> (String, String) {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sparse-ae {args:?} failed:\n{err}");
    (String::from_utf8(o.stdout).unwrap(), err)
}

fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "sparse-ae {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Trains the SAE of `cfg` on `data` with `--normalize` for `epochs`
/// epochs (batch 16) into `out`.
fn train_normalised(cfg: &Path, data: &Path, out: &Path, epochs: &str) {
    ok(&[
        "train",
        "--config",
        s(cfg),
        "--data",
        s(data),
        "--out",
        s(out),
        "--normalize",
        "--epochs",
        epochs,
        "--batch-size",
        "16",
        "-q",
    ]);
}

/// Activations exact in bfloat16: multiples of 1/8 around a mean of 2.
fn activations(rows: usize, dim: usize) -> Vec<f32> {
    let mut rng = Rng::new(7);
    (0..rows * dim)
        .map(|i| 2.0 * (i % 3) as f32 + (rng.below(40) as f32 - 20.0) / 8.0)
        .collect()
}

fn write_bf16(path: &Path, rows: usize, dim: usize, data: &[f32]) {
    let mut bytes = npy::header_bytes("<V2", &[rows, dim]);
    for v in data {
        bytes.extend(((v.to_bits() >> 16) as u16).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// A TopK SAE for `dim` features: 4·dim latents, k = 4, linear output, MSE.
fn sae_config(dir: &Path, dim: usize) -> std::path::PathBuf {
    let p = dir.join("sae.json");
    std::fs::write(
        &p,
        format!(
            r#"{{"input": {dim}, "layers": [{{"type": "dense", "units": {}, "activation": "relu"}}, {{"type": "dense", "units": {dim}, "activation": "linear"}}], "code_layer": 0, "loss": "mse", "topk": {{"k": 4, "batch": false}}}}"#,
            4 * dim
        ),
    )
    .unwrap();
    p
}

#[test]
fn streamed_normalised_training_resumes_exactly_and_reads_bf16_alike() {
    let dir = common::temp_dir("cli_acts_resume");
    let (rows, dim) = (700, 24);
    let data = activations(rows, dim);
    let (f32_file, bf16_file) = (dir.join("acts.npy"), dir.join("acts_bf16.npy"));
    npy::write(&f32_file, rows, dim, &data).unwrap();
    write_bf16(&bf16_file, rows, dim, &data);
    let cfg = sae_config(&dir, dim);
    let (a, b, c, ck) = (
        dir.join("a.st"),
        dir.join("b.st"),
        dir.join("c.st"),
        dir.join("ck.st"),
    );
    // 0.02 MB chunks: 218 rows, so an epoch of 630 rows has three chunks.
    let train = |data: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(data),
            "--out",
            s(out),
        ];
        args.extend(["--batch-size", "16", "--epochs", "3", "-q"]);
        args.extend(extra);
        ok(&args)
    };
    let streamed = ["--stream", "--chunk-mb", "0.02", "--normalize"];
    train(&f32_file, &a, &streamed);
    let mut first = streamed.to_vec();
    first.extend(["--steps", "50", "--checkpoint", s(&ck)]);
    train(&f32_file, &b, &first);
    // The checkpoint knows the chunking and the scale: no flags needed.
    ok(&[
        "train",
        "--resume",
        s(&ck),
        "--data",
        s(&f32_file),
        "--out",
        s(&b),
        "--epochs",
        "3",
        "-q",
    ]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    train(&bf16_file, &c, &streamed);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    // The scale is 1/√(mean‖x‖²) of the training split (the first 630
    // rows); with `=sqrt-d`, √d / mean‖x‖.
    let (_, scale) = load_model_scaled(&a).unwrap();
    let mean_sq = data[..630 * dim]
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        / 630.0;
    let want = 1.0 / mean_sq.sqrt();
    assert!(
        (f64::from(scale) - want).abs() <= 1e-6 * want,
        "{scale} vs {want}"
    );
    let sqrt_d = dir.join("sqrt_d.st");
    train(&f32_file, &sqrt_d, &["--normalize=sqrt-d", "--steps", "1"]);
    let (_, scale) = load_model_scaled(&sqrt_d).unwrap();
    let mean_norm = data[..630 * dim]
        .chunks(dim)
        .map(|r| r.iter().map(|v| f64::from(v * v)).sum::<f64>().sqrt())
        .sum::<f64>()
        / 630.0;
    assert_eq!(scale, ((dim as f64).sqrt() / mean_norm) as f32);
    // In memory, the epochs are other permutations: another model.
    let d = dir.join("d.st");
    train(&f32_file, &d, &["--normalize"]);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&d).unwrap());
}

#[test]
fn outputs_of_a_normalised_model_are_in_input_space() {
    let dir = common::temp_dir("cli_acts_space");
    let (rows, dim) = (400, 16);
    let data = activations(rows, dim);
    let file = dir.join("acts.npy");
    npy::write(&file, rows, dim, &data).unwrap();
    let cfg = sae_config(&dir, dim);
    let m = dir.join("m.st");
    train_normalised(&cfg, &file, &m, "2");
    let (model, scale) = load_model_scaled(&m).unwrap();
    assert!(scale > 0.0 && scale != 1.0, "{scale}");
    // Reference: x̂ = recon(s·x) / s on the test split (rows 360..400).
    let x = &data[360 * dim..];
    let sx: Vec<f32> = x.iter().map(|v| v * scale).collect();
    let mut ws = model.workspace(40);
    model.forward(&mut ws, &sx).unwrap();
    let mut recon = vec![0.0; sx.len()];
    model.reconstruction(&ws, &mut recon);
    let per_sample: Vec<f64> = recon
        .chunks(dim)
        .zip(x.chunks(dim))
        .map(|(r, x)| {
            r.iter()
                .zip(x)
                .map(|(r, x)| f64::from(r / scale - x).powi(2))
                .sum::<f64>()
                / dim as f64
        })
        .collect();
    let mse = per_sample.iter().sum::<f64>() / 40.0;
    let (json, _) = ok(&["eval", "-m", s(&m), "--data", s(&file), "--json"]);
    let field = |k: &str| -> f64 {
        let v = sparse_ae::io::json::parse(json.trim().as_bytes()).unwrap();
        v.f64_at(k).unwrap()
    };
    assert!((field("mse") - mse).abs() <= 1e-5 * mse, "{json} vs {mse}");
    // Each figure says which space it is in: the loss in the model's.
    assert!(json.contains("\"loss_space\":\"normalised\""), "{json}");
    assert!(json.contains("\"mse_space\":\"input\""), "{json}");
    assert!((field("input_scale") - f64::from(scale)).abs() <= 1e-6 * f64::from(scale));
    let (text, _) = ok(&["eval", "-m", s(&m), "--data", s(&file)]);
    let line = |start: &str| {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` line in:\n{text}"))
    };
    assert!(
        line("split ").ends_with("test (last 10 % of rows), 40 samples"),
        "{text}"
    );
    assert!(
        line("loss ").ends_with(&format!(
            "mse, on clean inputs, in normalised space (inputs × {scale})"
        )),
        "{text}"
    );
    assert!(
        line("mse ").ends_with("per feature, in input space"),
        "{text}"
    );
    let scores = dir.join("scores.npy");
    ok(&["score", "-m", s(&m), "--data", s(&file), "-o", s(&scores)]);
    // One score per sample: a vector, not a 40 × 1 matrix.
    assert_eq!(npy::read(&scores).unwrap().shape, [40]);
    let got = npy::read(&scores).unwrap().data;
    for (g, w) in got.iter().zip(&per_sample) {
        assert!(
            (f64::from(*g) - w).abs() <= 1e-5 * w.max(1e-3),
            "{g} vs {w}"
        );
    }
    // The export folds the scale: the library formula on raw x gives x̂.
    let out = dir.join("sae");
    ok(&["export", "-m", s(&m), "-o", s(&out)]);
    let folded = sparse_ae::io::interop::import_sae(&out).unwrap();
    let mut ws = folded.workspace(40);
    folded.forward(&mut ws, x).unwrap();
    let mut raw = vec![0.0; x.len()];
    folded.reconstruction(&ws, &mut raw);
    for (r, f) in recon.iter().zip(&raw) {
        assert!((r / scale - f).abs() <= 1e-4 * (1.0 + f.abs()), "{r} {f}");
    }
}

/// Peak resident memory reported by `train` ("peak RSS N MB").
fn peak_rss(stderr: &str) -> Option<f64> {
    let tail = stderr.split("peak RSS ").nth(1)?;
    tail.split_whitespace().next()?.parse().ok()
}

#[test]
fn streaming_keeps_memory_below_the_file_size() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("skipping: no /proc to read the peak resident memory from");
        return;
    }
    let dir = common::temp_dir("cli_acts_rss");
    // 48 MB of f32: 24576 rows of 512.
    let (rows, dim) = (24_576, 512);
    let file = dir.join("big.npy");
    let data: Vec<f32> = (0..rows * dim).map(|i| (i % 251) as f32 / 64.0).collect();
    npy::write(&file, rows, dim, &data).unwrap();
    drop(data);
    let m = dir.join("m.st");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--preset",
            "shallow",
            "--linear-output",
            "--data",
            s(&file),
            "-o",
            s(&m),
        ];
        args.extend(["--steps", "20", "--batch-size", "64", "--threads", "1"]);
        args.extend(extra);
        let (_, err) = ok(&args);
        peak_rss(&err).unwrap_or_else(|| panic!("no peak RSS in:\n{err}"))
    };
    let in_memory = train(&[]);
    // A budget of 8 MB makes the 44 MB training split stream, in 1 MB chunks.
    let streamed = train(&["--memory-budget", "8", "--chunk-mb", "1"]);
    assert!(in_memory > 48.0, "in memory {in_memory} MB");
    assert!(
        streamed < 24.0 && streamed + 24.0 < in_memory,
        "streamed {streamed} MB vs in memory {in_memory} MB"
    );
}

#[test]
fn init_from_an_sae_directory() {
    let dir = common::temp_dir("cli_acts_init");
    let (rows, dim) = (300, 12);
    let file = dir.join("acts.npy");
    npy::write(&file, rows, dim, &activations(rows, dim)).unwrap();
    let cfg = sae_config(&dir, dim);
    let m = dir.join("m.st");
    train_normalised(&cfg, &file, &m, "1");
    let sae = dir.join("sae");
    ok(&["export", "-m", s(&m), "-o", s(&sae)]);
    // The directory reads back as the same model and scale.
    let back = dir.join("back.st");
    let (orig, s0) = load_model_scaled(&m).unwrap();
    let (got, s1) = sparse_ae::io::interop::import_sae_scaled(&sae).unwrap();
    assert_eq!(s0, s1);
    assert_eq!(got.config(), orig.config());
    for (a, b) in got.params.iter().zip(&orig.params) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // With a configuration of the same shapes it trains on; of others, a clear error.
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--init",
        s(&sae),
        "--data",
        s(&file),
        "--out",
        s(&back),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-q",
    ]);
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--init",
        s(&sae),
        "--data",
        s(&file),
        "--out",
        s(&back),
        "-q",
    ]);
    assert!(e.contains("sae") && e.contains("shapes"), "{e}");
}

#[test]
fn bad_activation_input_gives_clear_errors() {
    let dir = common::temp_dir("cli_acts_errors");
    common::write_tiny_mnist(&dir, 10, 20, 5);
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&dir),
        "--stream",
    ]);
    assert!(e.contains("--stream") && e.contains(".npy"), "{e}");
    let file = dir.join("acts.npy");
    npy::write(&file, 40, 8, &activations(40, 8)).unwrap();
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&file),
        "--normalize",
    ]);
    assert!(e.contains("mse or sse"), "{e}");
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&file),
        "--chunk-mb",
        "0",
    ]);
    assert!(e.contains("--chunk-mb"), "{e}");
    let flat = dir.join("flat.npy");
    std::fs::write(&flat, npy::to_bytes(&[5], &[1.0; 5]).unwrap()).unwrap();
    let e = fails(&["train", "--preset", "shallow", "--data", s(&flat)]);
    assert!(e.contains("samples × features") && e.contains("[5]"), "{e}");
    // A file cut short after its header was written.
    let cut = dir.join("cut.npy");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&cut),
        "--stream",
    ]);
    assert!(
        e.contains("cut.npy") && e.contains("needs 1280 bytes of data but 1270"),
        "{e}"
    );
    // A NaN met while streaming names its row and feature.
    let mut nan = activations(40, 8);
    nan[37 * 8 + 3] = f32::NAN;
    let with_nan = dir.join("nan.npy");
    npy::write(&with_nan, 40, 8, &nan).unwrap();
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--linear-output",
        "--data",
        s(&with_nan),
        "--stream",
        "--batch-size",
        "4",
    ]);
    assert!(e.contains("nan.npy: row 37, feature 3 (value NaN)"), "{e}");
    // Bad data, not a training step gone wrong: no step, no learning rate.
    assert!(
        e.contains("the data must hold finite numbers")
            && !e.contains("at step")
            && !e.contains("learning rate"),
        "{e}"
    );
    // An f64 beyond f32's range is named as stored, not as the Inf it
    // would become, in memory and streamed, in either byte order; an f64
    // Inf is still an Inf.
    for (descr, big) in [("<f8", false), (">f8", true)] {
        for (v, want) in [
            (
                1e300,
                "row 37, feature 3 is 1e300, outside f32's range (±3.4028235e38)",
            ),
            (-4e38, "row 37, feature 3 is -4e38, outside f32's range"),
            (f64::INFINITY, "row 37, feature 3 (value inf)"),
        ] {
            let mut bytes = npy::header_bytes(descr, &[40, 8]);
            for (i, &x) in activations(40, 8).iter().enumerate() {
                let x = if i == 37 * 8 + 3 { v } else { f64::from(x) };
                bytes.extend(if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }
            let f8 = dir.join("f8.npy");
            std::fs::write(&f8, bytes).unwrap();
            for stream in [&[][..], &["--stream"]] {
                let mut args = vec!["train", "--preset", "shallow", "--linear-output"];
                args.extend(["--data", s(&f8), "--batch-size", "4"]);
                args.extend(stream);
                let e = fails(&args);
                assert!(
                    e.contains(&format!("f8.npy: {want}")),
                    "{descr} {stream:?}: {e}"
                );
            }
        }
    }
}

/// Streaming under a small `--memory-budget` reads chunks of at most a
/// quarter of it, and a `--chunk-mb` larger than the budget is refused.
#[test]
fn the_streaming_chunk_follows_the_memory_budget() {
    let dir = common::temp_dir("cli_acts_chunk");
    // 2000 rows of 64 f32 (256 bytes a row): the training split is 450 KiB.
    let (rows, dim) = (2000, 64);
    let file = dir.join("acts.npy");
    npy::write(&file, rows, dim, &activations(rows, dim)).unwrap();
    let cfg = sae_config(&dir, dim);
    let m = dir.join("m.st");
    let base = [
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&file),
        "-o",
        s(&m),
        "--steps",
        "3",
        "--batch-size",
        "16",
    ];
    let go = |extra: &[&str]| ok(&[&base[..], extra].concat()).1;
    // A budget of 0.2 MB streams the split in chunks of 0.05 MB: 204 rows.
    let err = go(&["--memory-budget", "0.2"]);
    assert!(err.contains("streamed in chunks of 204 rows"), "{err}");
    // A chunk size given within the budget is taken as it is.
    let err = go(&["--memory-budget", "0.2", "--chunk-mb", "0.1"]);
    assert!(err.contains("streamed in chunks of 409 rows"), "{err}");
    // Under the default budget, the chunk is 64 MB.
    let err = go(&["--stream"]);
    assert!(err.contains("streamed in chunks of 262144 rows"), "{err}");
    let e = fails(&[&base[..], &["--memory-budget", "0.2", "--chunk-mb", "1"]].concat());
    assert!(
        e.contains("--chunk-mb") && e.contains("more than --memory-budget 0.2 MB"),
        "{e}"
    );
}
