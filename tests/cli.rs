//! The command-line tool on small generated data: every subcommand, and
//! clear errors for bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparse-ae"));
    c.args(args)
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        // Only `info` reads it; its test sets it where it wants it.
        .env_remove("SPARSE_AE_REQUIRE_ISA")
        .env_remove("SPARSE_AE_TOPK_PATH")
        .env_remove("SPARSE_AE_THREAD_POLICY");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = run(args, &[]);
    assert!(
        o.status.success(),
        "sparse-ae {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let o = run(args, env);
    assert!(!o.status.success(), "sparse-ae {args:?} should fail");
    String::from_utf8(o.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn presets_lists_every_preset() {
    let out = ok(&["presets"]);
    let names: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "shallow",
            "deep",
            "denoising",
            "sparse-l1",
            "sparse-kl",
            "overcomplete-kl",
            "conv",
            "conv-kl",
            "topk",
        ]
    );
}

#[test]
fn info_names_the_cpu_and_its_paths() {
    let o = run(&["info"], &[("SPARSE_AE_MAX_ISA", "scalar")]);
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("cpu: "), "{out}");
    assert!(out.contains("kernel paths: available scalar;"), "{out}");
    assert!(out.contains("active kernel path: scalar"), "{out}");
    assert!(out.contains("\nround trip between two threads: "), "{out}");
    let e = fails(&["info"], &[("SPARSE_AE_MAX_ISA", "sse9")]);
    assert!(e.contains("SPARSE_AE_MAX_ISA") && e.contains("sse9"), "{e}");
    let e = fails(
        &["info"],
        &[
            ("SPARSE_AE_MAX_ISA", "scalar"),
            ("SPARSE_AE_KERNEL", "avx2"),
        ],
    );
    assert!(e.contains("avx2"), "{e}");
    // A required path that is hidden (or missing) fails, naming the path.
    let e = fails(
        &["info"],
        &[
            ("SPARSE_AE_MAX_ISA", "scalar"),
            ("SPARSE_AE_REQUIRE_ISA", "scalar,avx2"),
        ],
    );
    assert!(
        e.contains("SPARSE_AE_REQUIRE_ISA") && e.contains("avx2"),
        "{e}"
    );
    let o = run(
        &["info"],
        &[
            ("SPARSE_AE_MAX_ISA", "scalar"),
            ("SPARSE_AE_REQUIRE_ISA", "scalar"),
        ],
    );
    assert!(o.status.success());
}

#[test]
fn train_then_every_inspection_command() {
    let dir = common::temp_dir("cli");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 10, 120, 30);
    let model = dir.join("m.safetensors");
    let ck = dir.join("ck.safetensors");
    let report = dir.join("report");
    let metrics = dir.join("metrics.csv");
    ok(&[
        "train",
        "--preset",
        "sparse-l1",
        "--data",
        s(&data),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        s(&model),
        "--checkpoint",
        s(&ck),
        "--report",
        s(&report),
        "--metrics",
        s(&metrics),
    ]);
    for f in [
        "index.html",
        "loss.png",
        "reconstructions.png",
        "features.png",
        "histogram.png",
        "density.png",
    ] {
        assert!(report.join(f).exists(), "report lacks {f}");
    }
    let csv = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("epoch,step,train_loss"));

    let json = ok(&["eval", "--model", s(&model), "--data", s(&data), "--json"]);
    assert!(
        json.contains("\"samples\":30") && json.contains("\"l0\":"),
        "{json}"
    );
    for field in [
        "\"split\":\"test\"",
        "\"objective\":\"bce + l1\"",
        "\"inputs\":\"clean\"",
        "\"loss_space\":\"input\"",
        "\"mse_space\":\"input\"",
    ] {
        assert!(json.contains(field), "{field} not in {json}");
    }
    // The text names the split, the loss and its space.
    let text = ok(&[
        "eval",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "--split",
        "train",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "split       train, 120 samples", "{text}");
    assert!(
        lines[1].starts_with("loss ")
            && lines[1].ends_with("  bce + l1, on clean inputs, in input space"),
        "{text}"
    );
    assert!(
        lines[2].ends_with("(bce)") && lines[3].starts_with("  l1 "),
        "{text}"
    );
    assert!(
        text.contains("per feature, in input space") && !text.contains("  kl "),
        "{text}"
    );
    // All the data, and its first samples by --limit: those are the first
    // training samples, and the split line says so (it said "all (train
    // and test)" of 20 samples all from the training split).
    let split_line = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "-m",
            s(&model),
            "--data",
            s(&data),
            "--split",
            "all",
        ];
        args.extend(extra);
        ok(&args).lines().next().unwrap().to_owned()
    };
    assert_eq!(
        split_line(&[]),
        "split       all (train and test), 150 samples"
    );
    assert_eq!(
        split_line(&["--limit", "20"]),
        "split       all (train, then test), the first by --limit, 20 samples"
    );

    let codes = dir.join("codes.npy");
    ok(&[
        "encode",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "-o",
        s(&codes),
    ]);
    let a = sparse_ae::data::npy::read(&codes).unwrap();
    assert_eq!(a.shape, vec![30, 32]);
    // The same codes as CSV: a header, then each sample's index and code,
    // every value reading back to the same f32.
    let csv = dir.join("codes.csv");
    ok(&["encode", "-m", s(&model), "--data", s(&data), "-o", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 31, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(header.len(), 33);
    assert_eq!((header[0], header[1], header[32]), ("sample", "u0", "u31"));
    let want = &a.data;
    for (i, line) in lines[1..].iter().enumerate() {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols[0], i.to_string());
        let got: Vec<f32> = cols[1..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(got, want[i * 32..(i + 1) * 32], "sample {i}");
    }
    // Any other extension is refused before anything is written.
    let txt = dir.join("codes.txt");
    let err = fails(
        &["encode", "-m", s(&model), "--data", s(&data), "-o", s(&txt)],
        &[],
    );
    assert!(
        err.contains("encode writes .npy or .csv, not .txt"),
        "{err}"
    );
    assert!(!txt.exists());

    let scores = dir.join("scores.csv");
    ok(&[
        "score",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "-o",
        s(&scores),
    ]);
    assert_eq!(
        std::fs::read_to_string(&scores).unwrap().lines().count(),
        31
    );

    for (cmd, file) in [("reconstruct", "r.png"), ("features", "f.png")] {
        let out = dir.join(file);
        let mut args = vec![cmd, "-m", s(&model), "-o", s(&out)];
        if cmd == "reconstruct" {
            args.extend(["--data", s(&data)]);
        }
        ok(&args);
        assert!(std::fs::read(&out).unwrap().starts_with(b"\x89PNG"));
    }
    let hist = dir.join("h.png");
    ok(&[
        "histogram",
        "-m",
        s(&model),
        "-m",
        s(&ck),
        "--data",
        s(&data),
        "-o",
        s(&hist),
    ]);
    assert!(hist.exists());
}

#[test]
fn resume_continues_exactly() {
    let dir = common::temp_dir("cli_resume");
    common::write_tiny_mnist(&dir, 10, 64, 8);
    let (a, b, ck) = (dir.join("a.st"), dir.join("b.st"), dir.join("ck.st"));
    let common_args = [
        "--data",
        s(&dir),
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "-q",
    ];
    let mut straight = vec!["train", "--preset", "denoising", "--out", s(&a)];
    straight.extend(common_args);
    ok(&straight);
    let mut first = vec![
        "train",
        "--preset",
        "denoising",
        "--steps",
        "11",
        "--checkpoint",
        s(&ck),
        "--out",
        s(&b),
    ];
    first.extend(common_args);
    ok(&first);
    // The run's epochs are counted over its 64 training samples: other data
    // sizes are refused, and the model file is left as it was.
    let before = std::fs::read(&b).unwrap();
    for limit in ["30", "63"] {
        let mut other = vec![
            "train",
            "--resume",
            s(&ck),
            "--out",
            s(&b),
            "--limit",
            limit,
        ];
        other.extend(common_args);
        let e = fails(&other, &[]);
        assert!(
            e.contains("trained on 64 samples") && e.contains("--limit"),
            "{limit}: {e}"
        );
        assert_eq!(std::fs::read(&b).unwrap(), before);
    }
    let mut second = vec!["train", "--resume", s(&ck), "--out", s(&b)];
    second.extend(common_args);
    ok(&second);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn gradcheck_passes_and_fails_by_tolerance() {
    let out = ok(&["gradcheck", "--preset", "sparse-kl", "--entries", "8"]);
    assert!(
        out.contains("encoder.0.weight") && out.contains("PASS"),
        "{out}"
    );
    let o = run(
        &["gradcheck", "--preset", "shallow", "--tolerance", "1e-30"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));

    let dir = common::temp_dir("cli_gradcheck");
    let cfg = dir.join("model.json");
    std::fs::write(
        &cfg,
        r#"{"input": 12, "layers": [{"units": 5, "activation": "tanh"}, {"units": 12, "activation": "sigmoid"}],
            "code_layer": 0, "tied": true, "l1": {"lambda": 0.01}, "noise": {"type": "masking", "p": 0.2}}"#,
    )
    .unwrap();
    let out = ok(&["gradcheck", "--config", s(&cfg)]);
    assert!(out.contains("PASS"), "{out}");

    // Border positions of a padded 1×1 convolution see only padding: the
    // check's random biases keep them off the ReLU kink, so every tensor is
    // measured, and the summary agrees with the rows.
    std::fs::write(
        &cfg,
        r#"{"input": 9, "image": [1, 3, 3], "layers": [{"type": "conv2d", "channels": 2, "kernel": 1, "padding": 1, "activation": "relu"}, {"units": 9, "activation": "sigmoid"}], "code_layer": 0}"#,
    )
    .unwrap();
    for seed in ["0", "1", "7"] {
        let out = ok(&["gradcheck", "--config", s(&cfg), "--seed", seed]);
        assert!(
            out.ends_with("PASS\n") && !out.contains("FAIL") && !out.contains("NaN"),
            "{out}"
        );
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = common::temp_dir("cli_errors");
    let e = fails(
        &[
            "train",
            "--preset",
            "deep",
            "--data",
            s(&dir.join("nowhere")),
        ],
        &[],
    );
    assert!(
        e.contains("nowhere") && e.contains("no such directory"),
        "{e}"
    );

    let e = fails(&["train", "--preset", "deep", "--data", s(&dir)], &[]);
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");

    common::write_tiny_mnist(&dir, 10, 20, 5);
    let e = fails(&["train", "--preset", "nope", "--data", s(&dir)], &[]);
    assert!(e.contains("unknown preset `nope`"), "{e}");
    let e = fails(
        &[
            "train",
            "--preset",
            "deep",
            "--data",
            s(&dir),
            "--batch-size",
            "500",
            "--accumulate",
            "50",
        ],
        &[],
    );
    // (A batch larger than the data alone is cut to its size.)
    assert!(
        e.contains("accumulate") && e.contains("500") && e.contains("20 training samples"),
        "{e}"
    );

    let cfg = dir.join("bad.json");
    std::fs::write(&cfg, r#"{"input": 100, "layers": [{"units": 8, "activation": "relu"}, {"units": 100, "activation": "relu"}], "code_layer": 0}"#).unwrap();
    let e = fails(&["train", "--config", s(&cfg), "--data", s(&dir)], &[]);
    assert!(e.contains("bad.json") && e.contains("sigmoid"), "{e}");

    let model = dir.join("broken.safetensors");
    std::fs::write(&model, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let e = fails(&["eval", "-m", s(&model), "--data", s(&dir)], &[]);
    assert!(e.contains("broken.safetensors"), "{e}");

    // Named as the other variables are: the variable, the value and the
    // values it takes (or the paths this CPU has).
    let e = fails(&["presets"], &[("SPARSE_AE_KERNEL", "sse9")]);
    assert!(
        e.contains(
            r#"SPARSE_AE_KERNEL: "sse9" is not a kernel path (scalar, avx2, avx512, neon, simd128)"#
        ),
        "{e}"
    );
    let other = if cfg!(target_arch = "aarch64") {
        "avx2"
    } else {
        "neon"
    };
    let e = fails(&["presets"], &[("SPARSE_AE_KERNEL", other)]);
    assert!(
        e.contains(&format!(
            "SPARSE_AE_KERNEL: kernel path `{other}` is not available on this CPU or build (it has scalar"
        )),
        "{e}"
    );

    let e = fails(&["presets"], &[("SPARSE_AE_TOPK_PATH", "sparsest")]);
    assert!(
        e.contains("SPARSE_AE_TOPK_PATH") && e.contains("sparsest"),
        "{e}"
    );

    // `train`'s own variable: 0 was taken as yes, being set.
    for value in ["no", "yes", "2"] {
        let e = fails(&["presets"], &[("SPARSE_AE_READ_STATS", value)]);
        assert!(
            e.contains(&format!(
                "SPARSE_AE_READ_STATS: `{value}` is neither 1 (print the bytes read) nor 0 (do not)"
            )),
            "{e}"
        );
    }
    for value in ["0", "1", ""] {
        let o = run(&["presets"], &[("SPARSE_AE_READ_STATS", value)]);
        assert!(o.status.success(), "{value:?}: {o:?}");
    }

    let e = fails(&["presets"], &[("SPARSE_AE_THREAD_POLICY", "fastest")]);
    assert!(
        e.contains("SPARSE_AE_THREAD_POLICY") && e.contains("fastest"),
        "{e}"
    );
}

/// `export` writes a linear-output SAE in the libraries' layout, and refuses
/// a sigmoid/BCE model (which they would decode linearly, wrongly), naming
/// `--linear-output` and writing nothing.
#[test]
fn export_writes_the_sae_library_layout() {
    let dir = common::temp_dir("cli_export");
    common::write_tiny_mnist(&dir, 10, 40, 8);
    let model = dir.join("m.safetensors");
    let mut train = vec![
        "train",
        "--preset",
        "topk",
        "--data",
        s(&dir),
        "--steps",
        "3",
        "--batch-size",
        "8",
        "-o",
        s(&model),
        "-q",
    ];
    ok(&train);
    let out = dir.join("sae");
    let e = fails(&["export", "-m", s(&model), "-o", s(&out)], &[]);
    assert!(
        e.contains("decodes linearly")
            && e.contains("sigmoid output layer and the bce loss")
            && e.contains("--linear-output"),
        "{e}"
    );
    assert!(!out.exists(), "a refused export wrote {}", out.display());
    train.push("--linear-output");
    ok(&train);
    ok(&["export", "-m", s(&model), "-o", s(&out)]);
    let back = sparse_ae::io::interop::import_sae(&out).unwrap();
    let orig = sparse_ae::io::model_file::load_model(&model).unwrap();
    assert_eq!(back.params, orig.params);
    let cfg = std::fs::read_to_string(out.join("cfg.json")).unwrap();
    assert!(
        cfg.contains("\"d_sae\": 1024") && cfg.contains("\"k\": 32"),
        "{cfg}"
    );
    // A directory that cannot be made (its parent is a file) is a clear error.
    let e = fails(&["export", "-m", s(&model), "-o", s(&model.join("x"))], &[]);
    assert!(e.contains("m.safetensors"), "{e}");
}

/// `train --preset topk` with the SAE flags: the saved model carries them,
/// the metrics report AuxK and the dead fraction, and the export says
/// `apply_b_dec_to_input`; without `--linear-output` the pre-encoder bias is
/// refused with a hint, and the flags cannot change a resumed run.
#[test]
fn train_an_sae_with_the_gao_et_al_options() {
    let dir = common::temp_dir("cli-sae");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 10, 128, 32);
    let model = dir.join("sae.safetensors");
    let metrics = dir.join("metrics.jsonl");
    let ck = dir.join("ck.safetensors");
    let mut args = vec![
        "train",
        "--preset",
        "topk",
        "--data",
        s(&data),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        s(&model),
        "--metrics",
        s(&metrics),
        "--checkpoint",
        s(&ck),
        "--linear-output",
        "--unit-norm-decoder",
        "--encoder-init",
        "transpose",
        "--pre-encoder-bias",
        "--auxk-coef",
        "0.0625",
        "--dead-window",
        "64",
    ];
    let o = run(&args, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("auxk") && err.contains("window"), "{err}");
    let lines = std::fs::read_to_string(&metrics).unwrap();
    let last: sparse_ae::io::json::Value =
        sparse_ae::io::json::parse(lines.lines().last().unwrap().as_bytes()).unwrap();
    assert!(last.f64_at("train.auxk").unwrap() > 0.0, "{lines}");
    assert!(last.f64_at("dead_fraction").unwrap() > 0.0, "{lines}");
    let m = sparse_ae::io::model_file::load_model(&model).unwrap();
    let sae = m.config().sae;
    assert!(sae.unit_norm_decoder && sae.pre_encoder_bias);
    assert_eq!(sae.auxk.unwrap().coef, 0.0625);
    assert_eq!(sae.auxk.unwrap().k, 50);
    assert_eq!(sae.dead_window, 64);
    let out = dir.join("export");
    ok(&["export", "-m", s(&model), "-o", s(&out)]);
    let cfg = std::fs::read_to_string(out.join("cfg.json")).unwrap();
    assert!(cfg.contains("\"apply_b_dec_to_input\": true"), "{cfg}");

    args.retain(|a| *a != "--linear-output");
    let e = fails(&args, &[]);
    assert!(
        e.contains("sae.pre_encoder_bias") && e.contains("--linear-output"),
        "{e}"
    );
    let e = fails(
        &["train", "--resume", s(&ck), "--data", s(&data), "--auxk"],
        &[],
    );
    assert!(e.contains("--auxk") && e.contains("--resume"), "{e}");
}

/// Runs a command that must succeed on the kernel path `kernel`; returns its
/// stdout and stderr.
fn ok_on(kernel: &str, args: &[&str]) -> (String, String) {
    let o = run(args, &[("SPARSE_AE_KERNEL", kernel)]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "SPARSE_AE_KERNEL={kernel} sparse-ae {args:?} failed:\n{err}"
    );
    (String::from_utf8(o.stdout).unwrap(), err)
}

/// Layers wider than the GEMM's blocks at small batches, through every
/// command on every kernel path this CPU has: a 784-2000-784 model trained
/// at batch 7 (with its end-of-epoch test evaluation), then run by each
/// command on 10 samples; the README's 768 → 3072 TopK SAE; the `conv`
/// preset on 32×32 images at batches 1 and 7. Each once stopped with
/// "pack: depth … exceeds 1024".
#[test]
fn wide_layers_at_small_batches() {
    use sparse_ae::kernels::Isa;
    let dir = common::temp_dir("cli_wide");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 28, 40, 12);
    let data32 = dir.join("data32");
    std::fs::create_dir_all(&data32).unwrap();
    common::write_tiny_mnist(&data32, 32, 24, 8);
    let cfg = dir.join("wide.json");
    std::fs::write(
        &cfg,
        r#"{"input": 784, "layers": [{"units": 2000, "activation": "relu"}, {"units": 784, "activation": "sigmoid"}], "code_layer": 0}"#,
    )
    .unwrap();
    // The README's SAE, on 40 activation vectors of width 768.
    let acts = dir.join("acts.npy");
    let x: Vec<f32> = (0..40 * 768)
        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
        .collect();
    sparse_ae::data::npy::write(&acts, 40, 768, &x).unwrap();
    let sae = dir.join("sae.json");
    std::fs::write(
        &sae,
        r#"{"input": 768, "code_layer": 0, "loss": "mse", "topk": {"k": 32, "batch": false},
            "layers": [{"type": "dense", "units": 3072, "activation": "relu"},
                       {"type": "dense", "units": 768, "activation": "linear"}]}"#,
    )
    .unwrap();
    for (kernel, isa) in [
        ("scalar", Isa::Scalar),
        ("avx2", Isa::Avx2),
        ("avx512", Isa::Avx512),
    ] {
        if !isa.is_available() {
            eprintln!("skipping {kernel}");
            continue;
        }
        let model = dir.join(format!("wide-{kernel}.safetensors"));
        let (_, log) = ok_on(
            kernel,
            &[
                "train",
                "--config",
                s(&cfg),
                "--data",
                s(&data),
                "--epochs",
                "1",
                "--batch-size",
                "7",
                "--out",
                s(&model),
            ],
        );
        assert!(log.contains(" test "), "{log}");
        let limit = ["--data", s(&data), "--limit", "10"];
        let (json, _) = ok_on(
            kernel,
            &[&["eval", "-m", s(&model), "--json"][..], &limit].concat(),
        );
        assert!(json.contains("\"samples\":10"), "{json}");
        let codes = dir.join("codes.npy");
        ok_on(
            kernel,
            &[&["encode", "-m", s(&model), "-o", s(&codes)][..], &limit].concat(),
        );
        assert_eq!(
            sparse_ae::data::npy::read(&codes).unwrap().shape,
            [10, 2000]
        );
        let scores = dir.join("scores.csv");
        ok_on(
            kernel,
            &[&["score", "-m", s(&model), "-o", s(&scores)][..], &limit].concat(),
        );
        assert_eq!(
            std::fs::read_to_string(&scores).unwrap().lines().count(),
            11
        );
        for (cmd, file) in [("reconstruct", "r.png"), ("histogram", "h.png")] {
            let png = dir.join(file);
            ok_on(
                kernel,
                &[&[cmd, "-m", s(&model), "-o", s(&png)][..], &limit].concat(),
            );
            assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        }

        let sae_model = dir.join(format!("sae-{kernel}.safetensors"));
        let (_, log) = ok_on(
            kernel,
            &[
                "train",
                "--config",
                s(&sae),
                "--data",
                s(&acts),
                "--normalize",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--out",
                s(&sae_model),
            ],
        );
        assert!(log.contains(" test "), "{log}");

        for batch in ["1", "7"] {
            let conv = dir.join(format!("conv{batch}-{kernel}.safetensors"));
            ok_on(
                kernel,
                &[
                    "train",
                    "--preset",
                    "conv",
                    "--data",
                    s(&data32),
                    "--epochs",
                    "1",
                    "--batch-size",
                    batch,
                    "--out",
                    s(&conv),
                    "-q",
                ],
            );
            let (json, _) = ok_on(
                kernel,
                &["eval", "-m", s(&conv), "--data", s(&data32), "--json"],
            );
            assert!(json.contains("\"samples\":8"), "{json}");
        }
    }
}

/// The report of a run says what ran: the configuration (model JSON,
/// optimizer, batch size, seed, data, command line, date, version, kernel
/// path), and a curve of every step even for a run shorter than an epoch.
#[test]
fn the_report_says_what_ran() {
    let dir = common::temp_dir("cli_report");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    common::write_tiny_mnist(&data, 10, 120, 30);
    let (model, report) = (dir.join("m.safetensors"), dir.join("report"));
    let args = [
        "train",
        "--preset",
        "denoising",
        "--data",
        s(&data),
        "--steps",
        "5",
        "--batch-size",
        "16",
        "--seed",
        "7",
        "--lr",
        "0.002",
        "--out",
        s(&model),
        "--report",
        s(&report),
        "-q",
    ];
    let o = run(&args, &[("SOURCE_DATE_EPOCH", "86461")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let cfg = sparse_ae::nn::preset("denoising", 100).unwrap().to_json();
    let row = |k: &str, v: &str| format!("<tr><td>{k}</td><td>{v}</td></tr>");
    let isa = sparse_ae::kernels::Isa::active().to_string();
    for want in [
        row(
            "command line",
            &format!("{} {}", env!("CARGO_BIN_EXE_sparse-ae"), args.join(" ")),
        ),
        row("data", s(&data)),
        row(
            "data shape",
            "120 training and 30 test samples of 100 features",
        ),
        row("seed", "7"),
        row("date", "1970-01-02 00:01:01 UTC"),
        row("objective", "bce"),
        row(
            "optimizer",
            "adam (lr 0.002, beta1 0.9, beta2 0.999, eps 0.0000001)",
        ),
        row("batch size", "16"),
        row("steps", "5"),
        row(
            "version",
            &format!("sparse-ae {}", env!("CARGO_PKG_VERSION")),
        ),
        row("kernel path", &isa),
        format!("<pre>{}</pre>", sparse_ae::report::html::escape(&cfg)),
        // A denoising model's losses say what inputs they are on.
        "train (noisy inputs) loss".into(),
        "test (clean inputs) loss".into(),
        "<img src=\"reconstructions.png\"".into(),
        "<img src=\"features.png\"".into(),
        "<img src=\"loss_parts.png\"".into(),
        "<td>FVU</td>".into(),
        "<td>MSE</td>".into(),
    ] {
        assert!(html.contains(&want), "{want}\nnot in\n{html}");
    }
    // Five steps, five points: a curve, not the two dots of a per-epoch plot.
    let steps = std::fs::read_to_string(report.join("steps.csv")).unwrap();
    let lines: Vec<&str> = steps.lines().collect();
    assert_eq!(lines.len(), 6, "{steps}");
    assert_eq!(lines[0], "step,loss,recon,l1,kl,l2,auxk");
    assert!(lines[5].starts_with("5,"), "{steps}");
}

/// A report on activations (a .npy matrix) draws what means something
/// there (the error per feature, L0, latent density), never image grids.
#[test]
fn a_report_on_activations_has_no_image_grids() {
    let dir = common::temp_dir("cli_report_npy");
    let (rows, dim) = (300, 64);
    let mut state = 99u64;
    let acts: Vec<f32> = (0..rows * dim)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 + (i % 7) as f32
        })
        .collect();
    let file = dir.join("acts.npy");
    sparse_ae::data::npy::write(&file, rows, dim, &acts).unwrap();
    let cfg = dir.join("sae.json");
    std::fs::write(
        &cfg,
        r#"{"input": 64, "layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 64, "activation": "linear"}], "code_layer": 0, "loss": "mse", "l1": {"lambda": 0.001}}"#,
    )
    .unwrap();
    let (model, report) = (dir.join("m.safetensors"), dir.join("report"));
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&file),
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--normalize",
        "--out",
        s(&model),
        "--report",
        s(&report),
        "-q",
    ]);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    for want in [
        "<img src=\"feature_error.png\"",
        "<img src=\"l0.png\"",
        "<img src=\"density.png\"",
        "<h2>Error per feature</h2>",
        "<td>data shape</td><td>270 training and 30 test samples of 64 features</td>",
        "normalised space (inputs × ",
        "mean squared error per feature, input space",
    ] {
        assert!(html.contains(want), "{want}\nnot in\n{html}");
    }
    for image in ["reconstructions.png", "features.png"] {
        assert!(!html.contains(image), "{image} in\n{html}");
        assert!(!report.join(image).exists(), "{image} written");
    }
    // Two epochs of 16 steps, each step a point.
    let steps = std::fs::read_to_string(report.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().count(), 1 + 32, "{steps}");
}

/// The epoch line shows the parts of the loss the model has, and no others.
#[test]
fn the_epoch_line_shows_the_models_loss_parts() {
    let dir = common::temp_dir("cli_epoch_parts");
    common::write_tiny_mnist(&dir, 10, 64, 16);
    for (preset, has, lacks) in [
        ("shallow", &[][..], &[" l1 ", " kl ", " l2 "][..]),
        ("sparse-l1", &[" l1 "], &[" kl ", " l2 "]),
        ("sparse-kl", &[" kl ", " l2 "], &[" l1 "]),
    ] {
        let out = dir.join(format!("{preset}.safetensors"));
        let o = run(
            &[
                "train",
                "--preset",
                preset,
                "--data",
                s(&dir),
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "-o",
                s(&out),
            ],
            &[],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("epoch   1"))
            .unwrap_or_else(|| panic!("no epoch line in\n{err}"));
        let parts = &line[line.find("(recon").unwrap()..line.find(')').unwrap()];
        for p in has {
            assert!(parts.contains(p.trim_end()), "{preset}: no{p}in {line}");
        }
        for p in lacks {
            assert!(!parts.contains(p.trim_end()), "{preset}: {p}in {line}");
        }
    }
}

/// `--limit N` on a `.npy` file keeps the first N rows of each split, as on
/// IDX data: the test split stays the file's last 10 %, held out from
/// training (cutting the file before its split would make a limited test
/// split of rows a model without `--limit` trained on).
#[test]
fn limit_cuts_each_split_of_a_npy_file() {
    let dir = common::temp_dir("cli_limit_npy");
    let rows: Vec<f32> = (0..700).map(|i| (i % 11) as f32 / 10.0).collect();
    let file = dir.join("a100x7.npy");
    sparse_ae::data::npy::write(&file, 100, 7, &rows).unwrap();
    let model = dir.join("m.safetensors");
    let o = run(
        &[
            "train",
            "--preset",
            "shallow",
            "--linear-output",
            "--data",
            s(&file),
            "--limit",
            "10",
            "--batch-size",
            "5",
            "--epochs",
            "1",
            "-o",
            s(&model),
        ],
        &[],
    );
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("on 10 samples (7 features)") && err.contains("test set 10 samples"),
        "{err}"
    );
    // Each limited split is the same rows as a file of just those rows.
    for (split, lo, limit) in [("train", 0, "5"), ("test", 90, "5"), ("all", 0, "7")] {
        let n: usize = limit.parse().unwrap();
        let part = dir.join(format!("{split}.npy"));
        sparse_ae::data::npy::write(&part, n, 7, &rows[lo * 7..(lo + n) * 7]).unwrap();
        let eval = |data: &Path, extra: &[&str]| {
            let mut args = vec!["eval", "-m", s(&model), "--data", s(data), "--json"];
            args.extend(extra);
            let out = ok(&args);
            // The numbers after the split's name.
            out[out.find("\"samples\"").unwrap()..].to_owned()
        };
        assert_eq!(
            eval(&file, &["--split", split, "--limit", limit]),
            eval(&part, &["--split", "all"]),
            "--split {split} --limit {limit}"
        );
    }
}

/// A batch larger than the training data trains on all of it in each step
/// (as Keras does), saying so, with the default batch of 256 too; both
/// with `--accumulate` and on a single sample. The model is then the same
/// bits as one trained with the batch the note names.
#[test]
fn a_batch_larger_than_the_data_takes_all_of_it() {
    let dir = common::temp_dir("cli_batch_beyond_data");
    common::write_tiny_mnist(&dir, 8, 20, 5);
    let d = s(&dir);
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec!["train", "--preset", "shallow", "--data", d, "--epochs", "2"];
        args.extend_from_slice(&["--out", out]);
        args.extend_from_slice(extra);
        let o = run(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "sparse-ae {args:?} failed:\n{err}");
        err
    };
    let big = dir.join("big.st");
    let err = train(s(&big), &["--batch-size", "1000", "-q"]);
    assert!(
        err.contains(
            "batch size 1000 is more than the 20 training samples: training with batch size 20"
        ),
        "{err}"
    );
    let exact = dir.join("exact.st");
    let err = train(s(&exact), &["--batch-size", "20", "-q"]);
    assert!(!err.contains("batch size"), "{err}");
    assert_eq!(std::fs::read(&big).unwrap(), std::fs::read(&exact).unwrap());
    // The default batch of 256.
    let err = train(s(&dir.join("default.st")), &[]);
    assert!(
        err.contains("batch size 256 is more than the 20 training samples"),
        "{err}"
    );
    assert!(err.contains(", batch 20,"), "{err}");
    // Accumulated: two batches of 10.
    let err = train(s(&dir.join("acc.st")), &["--accumulate", "2", "-q"]);
    assert!(
        err.contains("batch size 256 accumulated over 2 batches is more than the 20 training samples: training with batch size 10"),
        "{err}"
    );
    // One sample.
    let err = train(s(&dir.join("one.st")), &["--limit", "1", "-q"]);
    assert!(
        err.contains("more than the 1 training sample: training with batch size 1"),
        "{err}"
    );
    // Fewer samples than batches to accumulate is still refused by name.
    let err = fails(
        &[
            "train",
            "--preset",
            "shallow",
            "--data",
            d,
            "--limit",
            "1",
            "--accumulate",
            "2",
            "-o",
            s(&dir.join("x.st")),
        ],
        &[],
    );
    assert!(err.contains("accumulate"), "{err}");
    assert!(!dir.join("x.st").exists());
}

/// Writes `n` training and 3 test u8 images of `h × w` into `dir`.
fn write_images(dir: &Path, h: usize, w: usize, n: usize) {
    use sparse_ae::data::idx::{IdxArray, IdxData, write};
    for (prefix, n) in [("train", n), ("t10k", 3)] {
        let px: Vec<u8> = (0..n * h * w).map(|i| (i * 37 % 251) as u8).collect();
        let images = IdxArray {
            dims: vec![n, h, w],
            data: IdxData::U8(px),
        };
        write(&dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
    }
}

/// The presets take images of any shape, 1×1 and non-square ones
/// included: the conv presets pool as often as both sides allow (they
/// refused every side not a multiple of 4), and every preset keeps the
/// images' shape, so pictures draw them as they are (a 29×31 image was
/// drawn as a strip of 899 pixels). Every command runs on the models.
#[test]
fn presets_train_on_images_of_any_shape() {
    let dir = common::temp_dir("cli_any_image_shape");
    for (h, w, layers) in [
        (1, 1, 4),
        (2, 3, 4),
        (5, 7, 4),
        (2, 2, 6),
        (4, 8, 8),
        (29, 31, 4),
    ] {
        let data = dir.join(format!("d{h}x{w}"));
        std::fs::create_dir_all(&data).unwrap();
        write_images(&data, h, w, 2);
        let d = s(&data);
        for p in ["conv", "conv-kl", "shallow"] {
            let m = data.join(format!("{p}.st"));
            let o = run(
                &[
                    "train",
                    "--preset",
                    p,
                    "--data",
                    d,
                    "--batch-size",
                    "1",
                    "--epochs",
                    "1",
                    "-q",
                    "-o",
                    s(&m),
                ],
                &[],
            );
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{p} on {h}×{w}: {err}");
            assert!(
                err.contains(&format!("built for the data's {h}×{w} images")),
                "{err}"
            );
            let model = sparse_ae::io::model_file::load_model(&m).unwrap();
            let cfg = model.config();
            assert_eq!(cfg.image, Some((1, h, w)), "{p} on {h}×{w}");
            assert_eq!(cfg.width(cfg.layers.len() - 1), h * w);
            if p != "shallow" {
                assert_eq!(cfg.layers.len(), layers, "{p} on {h}×{w}");
            }
            let out = |name: &str| data.join(format!("{p}.{name}"));
            ok(&["eval", "-m", s(&m), "--data", d]);
            ok(&["encode", "-m", s(&m), "--data", d, "-o", s(&out("npy"))]);
            ok(&["score", "-m", s(&m), "--data", d, "-o", s(&out("csv"))]);
            ok(&[
                "reconstruct",
                "-m",
                s(&m),
                "--data",
                d,
                "-o",
                s(&out("r.png")),
            ]);
            ok(&[
                "histogram",
                "-m",
                s(&m),
                "--data",
                d,
                "-o",
                s(&out("h.png")),
            ]);
            ok(&["features", "-m", s(&m), "-o", s(&out("f.png"))]);
        }
    }
    // 28 × 28 gives the listed model, without a note.
    let cfg = sparse_ae::nn::preset_for_image("conv", (1, 28, 28)).unwrap();
    assert_eq!(cfg, sparse_ae::nn::preset("conv", 784).unwrap());
    assert_eq!(cfg.layers.len(), 8);
    // Without an image shape, a non-square width is refused by name.
    let e = sparse_ae::nn::preset("conv", 35).unwrap_err().to_string();
    assert!(e.contains("needs the shape of its images"), "{e}");
}

/// `train`'s first line says how a step computes its batch: in two halves
/// side by side or in micro-batches, and on which path a top-k code's
/// neighbouring layers run (the sparse path takes a batch whole).
#[test]
fn the_first_line_says_how_a_step_computes_its_batch() {
    let dir = common::temp_dir("cli_step_shape");
    common::write_tiny_mnist(&dir, 8, 300, 20);
    let model = dir.join("m.safetensors");
    let first_line = |preset: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "train",
            "--preset",
            preset,
            "--data",
            s(&dir),
            "--steps",
            "1",
            "--batch-size",
            "128",
            "-o",
            s(&model),
        ];
        args.extend_from_slice(extra);
        let o = run(&args, env);
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{e}");
        e.lines()
            .find(|l| l.starts_with("training "))
            .unwrap_or_else(|| panic!("no first line in {e}"))
            .to_string()
    };
    let sparse = first_line("topk", &[], &[]);
    assert!(
        sparse.contains("batch 128, top-k code on the sparse path, "),
        "{sparse}"
    );
    let dense = first_line("topk", &[], &[("SPARSE_AE_TOPK_PATH", "dense")]);
    assert!(
        dense.contains("batch 128 (two halves side by side), top-k code on the dense path, "),
        "{dense}"
    );
    let plain = first_line("shallow", &[], &[]);
    assert!(
        plain.contains("batch 128 (two halves side by side), "),
        "{plain}"
    );
    let micro = first_line("shallow", &["--micro-batches", "4"], &[]);
    assert!(
        micro.contains("batch 128 (in 4 micro-batches), "),
        "{micro}"
    );
}

/// A model whose first layer has no weights (a pooling layer) has no input
/// weights to draw: `features` says so (it drew a later layer's kernel, which
/// does not look at the input), and a report leaves the picture out.
#[test]
fn features_of_a_model_whose_first_layer_has_no_weights_are_refused() {
    let dir = common::temp_dir("cli_features_pool_first");
    common::write_tiny_mnist(&dir, 8, 40, 10);
    let cfg = dir.join("pool.json");
    std::fs::write(
        &cfg,
        r#"{"input": 64, "image": [1, 8, 8], "layers": [{"type": "maxpool2d", "kernel": 2}, {"type": "upsample", "scale": 2}, {"type": "conv2d", "channels": 1, "kernel": 3, "padding": 1, "activation": "sigmoid"}], "code_layer": 0}"#,
    )
    .unwrap();
    let (model, report) = (dir.join("m.st"), dir.join("report"));
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&dir),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--out",
        s(&model),
        "--report",
        s(&report),
        "-q",
    ]);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("reconstructions.png"), "{html}");
    assert!(!html.contains("features.png"), "{html}");
    assert!(!report.join("features.png").exists());
    let out = dir.join("f.png");
    let e = fails(&["features", "-m", s(&model), "-o", s(&out)], &[]);
    assert!(
        e.contains("the model's first layer has no weights (a pooling or upsampling layer)"),
        "{e}"
    );
    assert!(!out.exists());
}
