//! Validation of what is loaded and what is asked for: model and checkpoint
//! state (one check on every load), the memory budget, binary cross-entropy
//! targets, flags that would train nothing or that `--resume` cannot
//! honour, and messages that name the file and field. Each refusal is
//! checked for its exit code, its message and that no output was written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sparse_ae::Error;
use sparse_ae::data::npy;
use sparse_ae::io::json::Value;
use sparse_ae::io::model_file::{
    checkpoint_from_bytes, load_checkpoint, load_model, load_model_scaled, model_from_bytes,
    save_checkpoint, save_model, save_model_scaled,
};
use sparse_ae::io::safetensors::{self, SafeTensors, TensorRef};
use sparse_ae::kernels::{Activation, AdamHyper};
use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder, ModelConfig};
use sparse_ae::optim::OptimizerConfig;
use sparse_ae::train::Trainer;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
        .args(args)
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        .env_remove("SPARSE_AE_TOPK_PATH")
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its stderr.
fn ok(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "sparse-ae {args:?} failed:\n{err}");
    err
}

/// Runs a command that must fail with exit code 1 or 2 (never a panic or
/// an abort); returns its stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = String::from_utf8(o.stderr).unwrap();
    let code = o.status.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "sparse-ae {args:?} should fail cleanly, got {code:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// `train --preset shallow --data DATA --out OUT`, then `extra`.
fn shallow<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--preset", "shallow", "--data", data, "--out", out];
    args.extend_from_slice(extra);
    args
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn has(e: &str, want: &[&str]) {
    for w in want {
        assert!(e.contains(w), "message lacks {w:?}:\n{e}");
    }
}

/// A small MSE model (linear output) on `d` features.
fn mse_cfg(d: usize) -> ModelConfig {
    ModelBuilder::new(d)
        .code(5, Activation::Relu)
        .decoder(d, Activation::Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap()
}

/// A small BCE model (sigmoid output) on `d` features.
fn bce_cfg(d: usize) -> ModelConfig {
    ModelBuilder::new(d)
        .code(5, Activation::Relu)
        .decoder(d, Activation::Sigmoid)
        .build()
        .unwrap()
}

/// The file's tensors and metadata, changed by `edit`, as new bytes.
fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>, &mut Vec<(String, String)>),
) -> Vec<u8> {
    let st = SafeTensors::parse(bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.data.clone()))
        .collect();
    let mut meta = st.metadata.clone();
    edit(&mut tensors, &mut meta);
    let refs: Vec<TensorRef> = tensors
        .iter()
        .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
        .collect();
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    safetensors::to_bytes(&refs, &meta).unwrap()
}

fn set_meta(meta: &mut Vec<(String, String)>, key: &str, value: &str) {
    meta.retain(|(k, _)| k != key);
    meta.push((key.into(), value.into()));
}

/// The bytes of a fresh checkpoint of an MSE model trained by Adam.
fn checkpoint_bytes(dir: &Path) -> Vec<u8> {
    let model = Autoencoder::<f32>::new(mse_cfg(6), 1).unwrap();
    let t = Trainer::new(model, OptimizerConfig::default(), 4, 2).unwrap();
    let p = dir.join("ck.safetensors");
    let fit = Value::Object(vec![
        ("shuffle".into(), Value::Bool(true)),
        ("shuffle_seed".into(), Value::String("0".into())),
    ]);
    save_checkpoint(&p, &t, &fit).unwrap();
    std::fs::read(&p).unwrap()
}

fn safetensors_reason(e: Error) -> String {
    match e {
        Error::Safetensors { reason, .. } => reason,
        e => panic!("expected a safetensors error, got {e:?}"),
    }
}

/// Adam's bias correction stays finite and exact at any step count: 2³¹ − 1
/// used to give NaN and 2³² to wrap to step 0.
#[test]
fn adam_bias_correction_at_huge_step_counts() {
    for t in [1u64 << 31, (1 << 31) - 1, 1 << 32, 1 << 53] {
        let h = AdamHyper::at_step(1e-3, 0.9, 0.999, 1e-7, t);
        assert!((h.lr_t - 1e-3).abs() < 1e-12, "step {t}: {}", h.lr_t);
    }
}

/// A checkpoint's step count, moments and batch size are checked on load.
#[test]
fn checkpoint_state_is_validated_on_load() {
    let dir = common::temp_dir("validation_ck");
    let good = checkpoint_bytes(&dir);
    let path = Path::new("ck.safetensors");
    checkpoint_from_bytes(&good, path).unwrap();
    // A step count of 2³² is valid and trains on with finite parameters.
    let big = rewrite(&good, |_, m| set_meta(m, "sparse_ae.step", "4294967296"));
    let (mut t, _) = checkpoint_from_bytes(&big, path).unwrap();
    let x: Vec<f32> = (0..24).map(|i| (i % 7) as f32 / 7.0).collect();
    t.step(&x).unwrap();
    assert!(t.model.params.iter().all(|v| v.is_finite()));
    // Beyond 2⁵³, or not a number: refused.
    for step in ["18446744073709551615", "9007199254740993", "-1"] {
        let b = rewrite(&good, |_, m| set_meta(m, "sparse_ae.step", step));
        let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
        has(&e, &["sparse_ae.step", "0..=9007199254740992"]);
    }
    let b = rewrite(&good, |_, m| set_meta(m, "sparse_ae.batch_size", "0"));
    let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
    has(&e, &["sparse_ae.batch_size"]);
    // A negative Adam second moment.
    let b = rewrite(&good, |ts, _| {
        let v = ts
            .iter_mut()
            .find(|(n, _, _)| n == "optimizer.v/decoder.0.bias")
            .unwrap();
        v.2[2] = -1.0;
    });
    let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
    has(
        &e,
        &["optimizer.v/decoder.0.bias", "negative second moment (-1)"],
    );
    // A tensor the model does not have.
    let b = rewrite(&good, |ts, _| {
        ts.push(("optimizer.m/encoder.9.weight".into(), vec![1], vec![0.0]))
    });
    let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
    has(
        &e,
        &["optimizer.m/encoder.9.weight", "not part of the model"],
    );
    // The input scale saved for the loop is checked like a model's.
    let b = rewrite(&good, |_, m| {
        set_meta(
            m,
            "sparse_ae.fit",
            r#"{"shuffle":true,"shuffle_seed":"0","input_scale":-1}"#,
        )
    });
    let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
    has(&e, &["sparse_ae.fit.input_scale", "-1"]);
    let b = rewrite(&good, |_, m| {
        set_meta(
            m,
            "sparse_ae.fit",
            r#"{"shuffle":true,"shuffle_seed":"0","input_scale":1e39}"#,
        )
    });
    let e = safetensors_reason(checkpoint_from_bytes(&b, path).unwrap_err());
    has(
        &e,
        &["sparse_ae.fit.input_scale", "1e39 is beyond f32's range"],
    );
}

/// One rule for the input scale in every loader: NaN, ±inf, −1 and 0 are
/// refused by `load_model` (which `features` uses) as by
/// `load_model_scaled`, and a scale on a BCE model is refused everywhere.
#[test]
fn input_scale_is_checked_by_every_loader() {
    let dir = common::temp_dir("validation_scale");
    let p = dir.join("m.safetensors");
    save_model_scaled(&p, &Autoencoder::new(mse_cfg(6), 0).unwrap(), 0.5).unwrap();
    let good = std::fs::read(&p).unwrap();
    assert_eq!(load_model_scaled(&p).unwrap().1, 0.5);
    for bad in ["NaN", "inf", "-inf", "-1", "0", "x"] {
        let b = rewrite(&good, |_, m| set_meta(m, "sparse_ae.input_scale", bad));
        std::fs::write(&p, &b).unwrap();
        for e in [
            load_model(&p).unwrap_err(),
            load_model_scaled(&p).unwrap_err(),
        ] {
            let e = safetensors_reason(e);
            has(&e, &["sparse_ae.input_scale"]);
        }
    }
    // A BCE model with a scale: refused on load, and never written.
    let bce = Autoencoder::<f32>::new(bce_cfg(6), 0).unwrap();
    save_model(&p, &bce).unwrap();
    let b = rewrite(&std::fs::read(&p).unwrap(), |_, m| {
        set_meta(m, "sparse_ae.input_scale", "0.5")
    });
    std::fs::write(&p, &b).unwrap();
    let e = safetensors_reason(load_model(&p).unwrap_err());
    has(&e, &["sparse_ae.input_scale", "binary cross-entropy"]);
    let e = model_from_bytes(&b, &p).unwrap_err().to_string();
    has(&e, &["binary cross-entropy"]);
    // `features` goes through the same check.
    let err = fails(&["features", "-m", s(&p), "-o", s(&dir.join("f.png"))]);
    has(&err, &["m.safetensors", "sparse_ae.input_scale"]);
    assert!(!dir.join("f.png").exists());
}

/// A tied configuration beside an untied decoder tensor is refused, not
/// read with the tensor dropped.
#[test]
fn a_tensor_the_configuration_does_not_use_is_refused() {
    let dir = common::temp_dir("validation_tied");
    let tied = ModelBuilder::new(6)
        .code(4, Activation::Relu)
        .decoder(6, Activation::Sigmoid)
        .tied(true)
        .build()
        .unwrap();
    let p = dir.join("tied.safetensors");
    save_model(&p, &Autoencoder::new(tied, 0).unwrap()).unwrap();
    load_model(&p).unwrap();
    let b = rewrite(&std::fs::read(&p).unwrap(), |ts, _| {
        ts.push(("decoder.0.weight".into(), vec![6, 4], vec![0.5; 24]))
    });
    let e = safetensors_reason(model_from_bytes(&b, &p).unwrap_err());
    has(&e, &["decoder.0.weight", "not part of the model", "ties"]);
}

/// Writes `rows × dim` values `f(i)` as a .npy file.
fn npy_file(dir: &Path, name: &str, rows: usize, dim: usize, f: impl Fn(usize) -> f32) -> PathBuf {
    let p = dir.join(name);
    let data: Vec<f32> = (0..rows * dim).map(f).collect();
    npy::write(&p, rows, dim, &data).unwrap();
    p
}

/// Binary cross-entropy on targets outside [0, 1] is refused, in training
/// and in evaluation, with the fix in the message.
#[test]
fn bce_refuses_targets_outside_the_unit_interval() {
    let dir = common::temp_dir("validation_bce");
    let out = dir.join("m.safetensors");
    for (name, f) in [
        ("fives.npy", (|_| 5.0) as fn(usize) -> f32),
        ("neg.npy", |i| if i == 77 { -3.0 } else { 0.5 }),
        ("raw.npy", |i| (i % 256) as f32),
    ] {
        let data = npy_file(&dir, name, 40, 8, f);
        let e = fails(&shallow(s(&data), s(&out), &["-q"]));
        has(&e, &["binary cross-entropy", "[0, 1]", "mse"]);
        assert!(!out.exists(), "{name}: a model was written");
    }
    // In range, it trains; a BCE model evaluated on out-of-range data is refused.
    let fine = npy_file(&dir, "fine.npy", 40, 8, |i| (i % 5) as f32 / 4.0);
    ok(&shallow(
        s(&fine),
        s(&out),
        &["--epochs", "1", "--batch-size", "8", "-q"],
    ));
    let fives = dir.join("fives.npy");
    let e = fails(&["eval", "-m", s(&out), "--data", s(&fives)]);
    has(&e, &["binary cross-entropy", "[0, 1]"]);
    // Named by sample, as the other commands name it ("feature 5 of a
    // sample" said which feature only).
    let neg = dir.join("neg.npy");
    let e = fails(&["eval", "-m", s(&out), "--data", s(&neg), "--split", "train"]);
    has(
        &e,
        &[
            "binary cross-entropy",
            "feature 5 of sample 9 of the train split is -3",
        ],
    );
    // And by split, since the sample is counted within it: row 37 of 40
    // is sample 1 of the test split (the last 10 %), which `eval` and
    // `score` read by default.
    let late = npy_file(&dir, "late.npy", 40, 8, |i| {
        if i == 37 * 8 + 2 { 7.0 } else { 0.5 }
    });
    let e = fails(&["eval", "-m", s(&out), "--data", s(&late)]);
    has(&e, &["feature 2 of sample 1 of the test split is 7"]);
    let e = fails(&["eval", "-m", s(&out), "--data", s(&late), "--split", "all"]);
    has(
        &e,
        &["feature 2 of sample 37 of the data (train and test) is 7"],
    );
    let late_scores = dir.join("late.csv");
    let score_late = [
        "score",
        "-m",
        s(&out),
        "--data",
        s(&late),
        "-o",
        s(&late_scores),
    ];
    let e = fails(&score_late);
    has(&e, &["feature 2 of sample 1 of the test split is 7"]);
    ok(&[&score_late[..], &["--split", "train"]].concat());
    let scores = dir.join("scores.csv");
    let e = fails(&[
        "score",
        "-m",
        s(&out),
        "--data",
        s(&fives),
        "-o",
        s(&scores),
    ]);
    has(
        &e,
        &[
            "binary cross-entropy",
            "feature 0 of sample 0 of the test split is 5",
        ],
    );
    assert!(!scores.exists());
    // The same values train with an mse loss.
    ok(&[
        "train",
        "--preset",
        "shallow",
        "--linear-output",
        "--data",
        s(&fives),
        "--out",
        s(&dir.join("mse.safetensors")),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "-q",
    ]);
    // Through the library the error is about the values passed
    // (`Error::Value`, a Python ValueError), not about a data set or a file.
    let model = Autoencoder::<f32>::new(bce_cfg(8), 0).unwrap();
    let mut ws = model.workspace(2);
    let (x, mut target) = (vec![0.5f32; 16], vec![0.5f32; 16]);
    target[11] = 5.0;
    let e = model.loss_and_grad(&mut ws, &x, &target, None).unwrap_err();
    assert!(matches!(e, Error::Value { .. }), "{e:?}");
    has(
        &e.to_string(),
        &["feature 3 of sample 1 of the batch is 5", "[0, 1]"],
    );
    // Evaluated in batches of one, by its place among the samples.
    let e = sparse_ae::train::evaluate(
        &model,
        sparse_ae::train::Samples::f32(&target, 8).unwrap(),
        1,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Value { .. }), "{e:?}");
    has(&e.to_string(), &["feature 3 of sample 1 is 5", "[0, 1]"]);
    let mut trainer = Trainer::new(model, OptimizerConfig::default(), 2, 0).unwrap();
    let e = sparse_ae::train::fit(
        &mut trainer,
        sparse_ae::train::Samples::f32(&target, 8).unwrap(),
        None,
        &sparse_ae::train::FitOptions::default(),
        &mut sparse_ae::train::Silent,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Value { .. }), "{e:?}");
    has(
        &e.to_string(),
        &["feature 3 of sample 1 of the training split"],
    );
}

/// A tiny IDX data set of `side × side` images.
fn tiny_idx(name: &str, side: usize) -> PathBuf {
    let dir = common::temp_dir(name);
    common::write_tiny_mnist(&dir, side, 64, 16);
    dir
}

/// `--epochs 0` and `--steps 0` would save an untrained model: refused.
#[test]
fn training_nothing_is_refused() {
    let data = tiny_idx("validation_zero", 8);
    let out = data.join("m.safetensors");
    for flags in [["--epochs", "0"], ["--steps", "0"]] {
        let mut args = vec!["train", "--preset", "shallow", "--data", s(&data)];
        args.extend(["--out", s(&out)]);
        args.extend(flags);
        let e = fails(&args);
        has(&e, &[flags[0], "must be at least 1", "train nothing"]);
        assert!(!out.exists());
    }
}

/// Every value is validated with `--resume`, and a flag the checkpoint
/// would override is refused rather than ignored.
#[test]
fn resume_refuses_flags_it_cannot_honour() {
    let data = tiny_idx("validation_resume", 8);
    let ck = data.join("ck.safetensors");
    let out = data.join("m.safetensors");
    ok(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&data),
        "--batch-size",
        "16",
        "--steps",
        "2",
        "--checkpoint",
        s(&ck),
        "--out",
        s(&out),
        "-q",
    ]);
    std::fs::remove_file(&out).unwrap();
    let base = [
        "train",
        "--resume",
        s(&ck),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "-q",
    ];
    for (flags, want) in [
        (&["--lr", "nan"][..], &["--lr", "NaN"][..]),
        (&["--batch-size", "0"], &["--batch-size", "at least 1"]),
        (
            &["--batch-size", "32"],
            &["--batch-size", "32 differs from the checkpoint's 16"],
        ),
        (
            &["--lr", "0.5"],
            &["--lr", "differs from the checkpoint's 0.001"],
        ),
        (&["--optimizer", "sgd"], &["--optimizer", "differs"]),
        (&["--momentum", "nan"], &["--momentum", "NaN"]),
        (&["--momentum", "0.5"], &["--momentum", "differs"]),
        (&["--seed", "3"], &["--seed", "differs"]),
        (&["--no-shuffle"], &["--no-shuffle", "differs"]),
        (&["--normalize"], &["--normalize", "--resume"]),
        (&["--noise-seed", "4"], &["--noise-seed", "--resume"]),
        (
            &["--steps", "2"],
            &["--steps 2 leaves nothing to train", "has done 2 steps"],
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(flags);
        let e = fails(&args);
        has(&e, want);
        assert!(!out.exists(), "{flags:?}: a model was written");
    }
    // The checkpoint's own values are accepted.
    let mut args = base.to_vec();
    args.extend([
        "--batch-size",
        "16",
        "--lr",
        "0.001",
        "--seed",
        "0",
        "--epochs",
        "1",
    ]);
    ok(&args);
    assert!(out.exists());
    // A batch larger than the data was cut to the data's size: the same
    // command again with --resume gives the same batch (it was refused as
    // differing from the checkpoint's), another one that cuts to it too,
    // and one that does not is refused.
    let big = data.join("big.safetensors");
    let first = [
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&data),
        "--batch-size",
        "1000000",
        "--epochs",
        "1",
        "--checkpoint",
        s(&big),
        "--out",
        s(&out),
        "-q",
    ];
    ok(&first);
    let again = |batch: &'static str| {
        let mut args = base.to_vec();
        args[2] = s(&big);
        args.extend(["--batch-size", batch, "--epochs", "2"]);
        args
    };
    ok(&again("1000000"));
    ok(&again("999999"));
    has(
        &fails(&again("2")),
        &["--batch-size", "2 differs from the checkpoint's"],
    );
}

/// A preset built for another width says so in the first line, and the
/// conv presets on images of sides not multiples of 4 how they pool.
#[test]
fn presets_adapted_to_the_data_say_so() {
    let data = tiny_idx("validation_preset", 8);
    let out = data.join("m.safetensors");
    let e = ok(&shallow(
        s(&data),
        s(&out),
        &["--steps", "1", "--batch-size", "16"],
    ));
    let first = e.lines().next().unwrap();
    has(
        first,
        &["preset `shallow`", "784", "8×8 images", "64-32-64"],
    );
    // Images whose sides are not multiples of 4: the conv presets pool less.
    let odd = tiny_idx("validation_preset_odd", 10);
    let out = odd.join("m.safetensors");
    let e = ok(&[
        "train",
        "--preset",
        "conv",
        "--data",
        s(&odd),
        "--out",
        s(&out),
        "--steps",
        "1",
    ]);
    has(&e, &["10×10 images", "pooled once"]);
    assert!(out.exists());
}

/// What can be written can be read back: a dead window beyond what a
/// configuration holds exactly is refused at the flag.
#[test]
fn dead_window_is_bounded_at_the_flag() {
    let data = tiny_idx("validation_window", 8);
    let out = data.join("m.safetensors");
    let e = fails(&shallow(
        s(&data),
        s(&out),
        &["--dead-window", "18446744073709551615"],
    ));
    has(&e, &["--dead-window", "1..=9007199254740991"]);
    assert!(!out.exists());
    // The largest accepted window round-trips through a model file.
    ok(&shallow(
        s(&data),
        s(&out),
        &[
            "--steps",
            "1",
            "--batch-size",
            "16",
            "--dead-window",
            "9007199254740991",
            "-q",
        ],
    ));
    assert_eq!(
        load_model(&out).unwrap().config().sae.dead_window,
        (1 << 53) - 1
    );
}

/// Configurations whose buffers exceed the memory budget are refused
/// before anything is allocated, naming what and how much.
#[test]
fn the_memory_budget_is_checked_before_allocating() {
    let dir = common::temp_dir("validation_memory");
    // 627 GB of gradcheck inputs and workspace.
    let e = fails(&["gradcheck", "--preset", "shallow", "--batch", "100000000"]);
    has(
        &e,
        &[
            "gradcheck at batch 100000000 needs",
            "more than the memory budget",
        ],
    );
    // A dense layer of 300k units: 38 M parameters, 0.77 GB with Adam.
    let wide = dir.join("wide.json");
    std::fs::write(
        &wide,
        r#"{"input": 64, "layers": [{"type": "dense", "units": 300000, "activation": "relu"},
            {"type": "dense", "units": 64, "activation": "linear"}], "code_layer": 0, "loss": "mse"}"#,
    )
    .unwrap();
    let data = npy_file(&dir, "x.npy", 40, 64, |i| (i % 9) as f32 / 9.0);
    let out = dir.join("m.safetensors");
    let e = fails(&[
        "--max-memory",
        "0.5",
        "train",
        "--config",
        s(&wide),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--batch-size",
        "32",
    ]);
    has(
        &e,
        &[
            "training at batch size 32 needs",
            "more than the memory budget of 500 MB",
            "--max-memory",
        ],
    );
    assert!(!out.exists());
    // Evaluation runs in batches that fit: the same result as one batch,
    // and a refusal only when one sample does not fit.
    let small = Autoencoder::<f32>::new(mse_cfg(64), 3).unwrap();
    let m = dir.join("small.safetensors");
    save_model(&m, &small).unwrap();
    // The same evaluation with and without a budget that forces small batches.
    let eval_with = |budget: &[&str]| {
        let mut args = budget.to_vec();
        args.extend([
            "eval",
            "-m",
            s(&m),
            "--data",
            s(&data),
            "--split",
            "all",
            "--json",
        ]);
        run(&args)
    };
    let a = eval_with(&[]);
    let b = eval_with(&["--max-memory", "0.00003"]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let loss = |o: &Output| {
        let v = sparse_ae::io::json::parse(&o.stdout).unwrap();
        (v.f64_at("loss").unwrap(), v.usize_at("samples").unwrap())
    };
    let (la, na) = loss(&a);
    let (lb, nb) = loss(&b);
    assert_eq!(na, nb);
    assert!(
        (la - lb).abs() <= 1e-6 * la.abs().max(1e-12),
        "{la} vs {lb}"
    );
    let e = fails(&[
        "--max-memory",
        "0.000003",
        "eval",
        "-m",
        s(&m),
        "--data",
        s(&data),
    ]);
    has(
        &e,
        &[
            "running the model on one sample needs",
            "more than the memory budget",
        ],
    );
    // A data file larger than the budget is refused before it is read,
    // never reported as corrupt.
    let idx = tiny_idx("validation_memory_idx", 8);
    let e = fails(&[
        "--max-memory",
        "0.000002",
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&idx),
        "--out",
        s(&out),
    ]);
    has(
        &e,
        &[
            "reading",
            "images-idx3-ubyte",
            "more than the memory budget",
        ],
    );
    assert!(!e.contains("corrupt"), "{e}");
    assert!(!out.exists());
    for bad in ["0", "nan", "inf"] {
        let e = fails(&["--max-memory", bad, "presets"]);
        has(&e, &["--max-memory"]);
    }
}

/// The budget bounds what a run holds at once: 5.1 MB of data and a 6 MB
/// step each fit 8 MB alone, and are refused together, naming both; 12 MB
/// trains. A `.npy` larger than the budget is refused before it is read.
#[test]
fn the_budget_counts_the_data_held_beside_the_step() {
    let dir = common::temp_dir("validation_memory_held");
    let data = npy_file(&dir, "x.npy", 20_000, 64, |i| (i % 9) as f32 / 9.0);
    let cfg = dir.join("wide.json");
    std::fs::write(
        &cfg,
        r#"{"input": 64, "layers": [{"units": 512, "activation": "relu"},
            {"units": 64, "activation": "linear"}], "code_layer": 0, "loss": "mse"}"#,
    )
    .unwrap();
    let out = dir.join("m.safetensors");
    let train = |budget: &'static str| {
        run(&[
            "--max-memory",
            budget,
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&data),
            "--batch-size",
            "1024",
            "--steps",
            "1",
            "-q",
            "--out",
            s(&out),
        ])
    };
    let o = train("0.008");
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    has(
        &e,
        &[
            "training at batch size 1024 needs 6 MB",
            "more than the memory budget of 8 MB leaves beside the 5 MB held",
        ],
    );
    assert!(!out.exists());
    let o = train("0.012");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = train("0.004");
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    has(&e, &["reading 18000 rows of 64 features", "x.npy"]);
}

/// An SAE folder whose cfg.json describes a huge model is refused on its
/// tensors' shapes before the model is allocated, and cfg.json errors name
/// the file and its own keys.
#[test]
fn sae_folder_errors_name_cfg_json() {
    let dir = common::temp_dir("validation_sae_dir");
    let sae = dir.join("sae");
    std::fs::create_dir_all(&sae).unwrap();
    let m = Autoencoder::<f32>::new(mse_cfg(6), 0).unwrap();
    sparse_ae::io::interop::export_sae(&m, &sae).unwrap();
    let cfg = sae.join("cfg.json");
    // 784 × 1.3 M twice: 8.2 GB of weights, if allocated.
    std::fs::write(
        &cfg,
        r#"{"d_in": 784, "d_sae": 1300000, "activation_fn_str": "relu"}"#,
    )
    .unwrap();
    let e = sparse_ae::io::interop::import_sae(&sae)
        .unwrap_err()
        .to_string();
    has(
        &e,
        &[
            "sae_weights.safetensors",
            "W_enc",
            "[6, 5]",
            "[784, 1300000]",
        ],
    );
    std::fs::write(
        &cfg,
        r#"{"d_in": 6, "d_sae": 5, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 9}}"#,
    )
    .unwrap();
    let e = sparse_ae::io::interop::import_sae(&sae)
        .unwrap_err()
        .to_string();
    has(&e, &["cfg.json: activation_fn_kwargs.k", "1..=5"]);
    assert!(!e.contains("topk.k"), "{e}");
    std::fs::write(
        &cfg,
        r#"{"d_in": 6, "d_sae": 0, "activation_fn_str": "relu"}"#,
    )
    .unwrap();
    let e = sparse_ae::io::interop::import_sae(&sae)
        .unwrap_err()
        .to_string();
    has(&e, &["cfg.json: d_sae"]);
    assert!(!e.contains("layers[0]"), "{e}");
    let out = dir.join("m.safetensors");
    let data = npy_file(&dir, "x.npy", 20, 6, |i| (i % 3) as f32);
    let e = fails(&[
        "train",
        "--init",
        s(&sae),
        "--data",
        s(&data),
        "--out",
        s(&out),
    ]);
    has(&e, &["cfg.json: d_sae"]);
    assert!(!out.exists());
}

/// An SAE folder of an architecture this crate cannot represent (JumpReLU,
/// gated, unknown), or holding a tensor import would not read, is refused
/// by name, never imported with that tensor dropped; the folders export
/// writes, and sparsify's without an `architecture`, still import.
#[test]
fn sae_folder_of_another_architecture_is_refused() {
    let dir = common::temp_dir("validation_sae_arch");
    let sae = dir.join("sae");
    let m = Autoencoder::<f32>::new(mse_cfg(6), 0).unwrap();
    sparse_ae::io::interop::export_sae(&m, &sae).unwrap();
    let cfg = sae.join("cfg.json");
    let exported = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        exported.contains(r#""architecture": "standard""#),
        "{exported}"
    );
    let import = || sparse_ae::io::interop::import_sae(&sae);
    assert_eq!(import().unwrap().params, m.params);
    let base = r#""d_in": 6, "d_sae": 5, "activation_fn_str": "relu""#;
    for arch in ["jumprelu", "gated", "batchtopk", "Standard"] {
        for text in [
            format!(r#"{{{base}, "architecture": "{arch}"}}"#),
            exported.replace(r#""standard""#, &format!("{arch:?}")),
        ] {
            std::fs::write(&cfg, text).unwrap();
            let e = import().unwrap_err().to_string();
            has(
                &e,
                &[
                    "cfg.json: architecture",
                    &format!("{arch:?} is not supported"),
                    r#""standard" or "topk""#,
                ],
            );
        }
    }
    std::fs::write(&cfg, format!(r#"{{{base}, "architecture": "topk"}}"#)).unwrap();
    let e = import().unwrap_err().to_string();
    has(&e, &["cfg.json: architecture", "TopK code"]);
    for text in [
        format!(r#"{{{base}, "architecture": "standard"}}"#),
        format!("{{{base}}}"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        assert_eq!(import().unwrap().params, m.params);
    }
    // A JumpReLU SAE's threshold beside the four tensors import reads.
    let st_path = sae.join("sae_weights.safetensors");
    let plain = std::fs::read(&st_path).unwrap();
    for (name, shape) in [
        ("threshold", vec![5]),
        ("r_mag", vec![5]),
        ("W_enc ", vec![1]),
    ] {
        let b = rewrite(&plain, |ts, _| {
            let n = shape.iter().product();
            ts.push((name.into(), shape.clone(), vec![0.25; n]))
        });
        std::fs::write(&st_path, b).unwrap();
        let e = import().unwrap_err().to_string();
        has(
            &e,
            &[
                "sae_weights.safetensors",
                &format!("tensor `{name}`"),
                "drop",
            ],
        );
    }
    // The command line refuses both before training.
    let out = dir.join("m.safetensors");
    let data = npy_file(&dir, "x.npy", 20, 6, |i| (i % 3) as f32);
    let train = |init: &Path| {
        fails(&[
            "train",
            "--init",
            s(init),
            "--data",
            s(&data),
            "--out",
            s(&out),
        ])
    };
    has(&train(&sae), &["tensor `W_enc `"]);
    std::fs::write(&st_path, &plain).unwrap();
    std::fs::write(&cfg, exported.replace(r#""standard""#, r#""jumprelu""#)).unwrap();
    has(
        &train(&sae),
        &["architecture", "\"jumprelu\" is not supported"],
    );
    assert!(!out.exists());
}

/// Messages quote at most an excerpt of outside text, and name the cause.
#[test]
fn messages_name_the_cause_briefly() {
    let dir = common::temp_dir("validation_messages");
    let cfg = dir.join("big.json");
    let digits = "1".repeat(100_000);
    std::fs::write(&cfg, format!(r#"{{"input": {digits}}}"#)).unwrap();
    let e = fails(&["gradcheck", "--config", s(&cfg)]);
    assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..400]);
    has(
        &e,
        &["big.json", "100000 characters", "out of the f64 range"],
    );
    let cfg2 = dir.join("offset.json");
    std::fs::write(&cfg2, r#"{"input": 9007199254740992, "layers": []}"#).unwrap();
    let e = fails(&["gradcheck", "--config", s(&cfg2)]);
    has(&e, &["input", "too large"]);
    // A shape written as a list is not a structured dtype.
    let p = dir.join("list.npy");
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': [4, 2], }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 32]);
    std::fs::write(&p, bytes).unwrap();
    let out = dir.join("m.safetensors");
    let e = fails(&shallow(s(&p), s(&out), &[]));
    has(&e, &["list.npy", "`shape` is written as a list", "tuple"]);
    assert!(!e.contains("structured"), "{e}");
}

/// Splits of different widths name the split.
#[test]
fn split_width_mismatch_names_the_split() {
    let model = Autoencoder::<f32>::new(mse_cfg(4), 0).unwrap();
    let mut t = Trainer::new(model, OptimizerConfig::default(), 2, 0).unwrap();
    let train = vec![0.5f32; 16];
    let test = vec![0.5f32; 15];
    let e = sparse_ae::train::fit(
        &mut t,
        sparse_ae::train::Samples::f32(&train, 4).unwrap(),
        Some(sparse_ae::train::Samples::f32(&test, 5).unwrap()),
        &sparse_ae::train::FitOptions::default(),
        &mut sparse_ae::train::Silent,
    )
    .unwrap_err()
    .to_string();
    has(&e, &["the test split", "4 features", "5 features"]);
}

/// A checkpoint saved by a run reloads (the loader accepts what the writer writes).
#[test]
fn a_written_checkpoint_loads() {
    let dir = common::temp_dir("validation_ck_roundtrip");
    let _ = checkpoint_bytes(&dir);
    load_checkpoint(&dir.join("ck.safetensors")).unwrap();
}

/// The committed fuzz regressions of the state check are refused with
/// their reason (and the valid ones load).
#[test]
fn state_regressions_are_refused_with_their_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/model");
    let read = |f: &str| std::fs::read(root.join(f)).unwrap();
    for (file, needle) in [
        ("bad_ck_step_u64_max.safetensors", "sparse_ae.step"),
        ("bad_ck_step_past_2_53.safetensors", "sparse_ae.step"),
        ("bad_ck_negative_v.safetensors", "negative second moment"),
        ("bad_ck_fit_scale.safetensors", "sparse_ae.fit.input_scale"),
    ] {
        let e = checkpoint_from_bytes(&read(file), file.as_ref())
            .unwrap_err()
            .to_string();
        has(&e, &[file, needle]);
    }
    for (file, needle) in [
        ("bad_scale_nan.safetensors", "sparse_ae.input_scale"),
        ("bad_scale_zero.safetensors", "sparse_ae.input_scale"),
        ("bad_scale_negative.safetensors", "sparse_ae.input_scale"),
        ("bad_scale_inf.safetensors", "sparse_ae.input_scale"),
        ("bad_scale_on_bce.safetensors", "binary cross-entropy"),
        ("bad_extra_tensor.safetensors", "decoder.9.weight"),
    ] {
        let e = model_from_bytes(&read(file), file.as_ref())
            .unwrap_err()
            .to_string();
        has(&e, &[file, needle]);
    }
    let (t, _) =
        checkpoint_from_bytes(&read("ok_ck_step_2_32.safetensors"), "ok".as_ref()).unwrap();
    assert_eq!(t.steps(), 1 << 32);
}

/// A run that diverges before its first checkpoint does not name a
/// checkpoint that was never written.
#[test]
fn a_never_written_checkpoint_is_not_named() {
    let data = tiny_idx("validation_nan", 8);
    let ck = data.join("ck.safetensors");
    let out = data.join("m.safetensors");
    let e = fails(&[
        "train",
        "--preset",
        "shallow",
        "--linear-output",
        "--data",
        s(&data),
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--batch-size",
        "16",
        "--checkpoint",
        s(&ck),
        "--out",
        s(&out),
        "-q",
    ]);
    has(
        &e,
        &["non-finite", "before the first checkpoint was written"],
    );
    assert!(!e.contains("last good checkpoint is"), "{e}");
    assert!(!ck.exists() && !out.exists());
}

/// Each epoch's metrics are kept for the run's history (and its report):
/// an epoch count whose records exceed the memory budget is refused before
/// the first step, where it grew by tens of MB a second on a tiny data set
/// until the machine ran out of memory (`--epochs 1000000000 --limit 1`).
/// With `--steps`, only the epochs the steps reach count.
#[test]
fn epochs_whose_metrics_exceed_the_budget_are_refused() {
    let data = tiny_idx("validation_epoch_records", 8);
    let out = data.join("m.safetensors");
    let base = [
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--limit",
        "1",
        "--batch-size",
        "1",
        "-q",
        "--max-memory",
        "0.05",
    ];
    let mut args = base.to_vec();
    args.extend(["--epochs", "100000"]);
    let e = fails(&args);
    has(
        &e,
        &[
            "keeping the metrics of 100000 epochs of 1 step",
            "memory budget",
        ],
    );
    assert!(!out.exists());
    let mut args = base.to_vec();
    args.extend(["--epochs", "1000000000", "--steps", "3"]);
    ok(&args);
    assert!(out.exists());
}

/// A model of images of another shape than the IDX data's, with as many
/// pixels (8×4 against 4×8), is refused by `train` (`--config`, `--init`)
/// and every command that runs a model on data, naming both shapes: it read
/// every image in the wrong shape without a word. A `.npy` matrix has no
/// image shape and is taken as it is.
#[test]
fn a_model_of_images_of_another_shape_is_refused() {
    use sparse_ae::data::idx::{IdxArray, IdxData, write};
    let dir = common::temp_dir("validation_image_shape");
    for (prefix, n) in [("train", 8), ("t10k", 4)] {
        let images = IdxArray {
            dims: vec![n, 4, 8],
            data: IdxData::U8((0..n * 32).map(|i| (i * 13 % 256) as u8).collect()),
        };
        write(&dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
    }
    let npy = dir.join("x.npy");
    let rows: Vec<f32> = (0..20 * 32).map(|i| (i % 7) as f32 / 7.0).collect();
    sparse_ae::data::npy::write(&npy, 20, 32, &rows).unwrap();
    let config = |h: usize, w: usize| {
        let p = dir.join(format!("c{h}x{w}.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"input": 32, "image": [1, {h}, {w}], "code_layer": 0, "layers": [
                    {{"type": "conv2d", "channels": 2, "kernel": 3, "activation": "relu"}},
                    {{"type": "conv2d", "channels": 1, "kernel": 3, "activation": "sigmoid"}}]}}"#
            ),
        )
        .unwrap();
        p
    };
    let (good, bad) = (config(4, 8), config(8, 4));
    let m_good = dir.join("good.st");
    ok(&[
        "train",
        "--config",
        s(&good),
        "--data",
        s(&dir),
        "-o",
        s(&m_good),
        "--batch-size",
        "2",
        "-q",
    ]);
    let m_bad = dir.join("bad.st");
    let e = fails(&[
        "train",
        "--config",
        s(&bad),
        "--data",
        s(&dir),
        "-o",
        s(&m_bad),
        "--batch-size",
        "2",
        "-q",
    ]);
    has(&e, &["image", "1×8×4", "1×4×8", "wrong shape"]);
    assert!(!m_bad.exists());
    // The same model trained on a .npy of 32 features (no image shape).
    ok(&[
        "train",
        "--config",
        s(&bad),
        "--data",
        s(&npy),
        "-o",
        s(&m_bad),
        "--batch-size",
        "2",
        "-q",
    ]);
    let out = dir.join("out");
    let d = s(&dir);
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "train",
            "--init",
            s(&m_bad),
            "--data",
            d,
            "-o",
            s(&out),
            "--batch-size",
            "2",
        ],
        vec!["eval", "-m", s(&m_bad), "--data", d],
        vec!["encode", "-m", s(&m_bad), "--data", d, "-o", s(&out)],
        vec!["score", "-m", s(&m_bad), "--data", d, "-o", s(&out)],
        vec!["reconstruct", "-m", s(&m_bad), "--data", d, "-o", s(&out)],
        vec![
            "histogram",
            "-m",
            s(&m_good),
            "-m",
            s(&m_bad),
            "--data",
            d,
            "-o",
            s(&out),
        ],
    ];
    for args in cases {
        let e = fails(&args);
        has(&e, &["1×8×4", "1×4×8"]);
        assert!(!out.exists(), "{args:?}");
    }
    ok(&["eval", "-m", s(&m_good), "--data", d]);
    ok(&["eval", "-m", s(&m_bad), "--data", s(&npy)]);
}

/// A training step names a BCE target outside [0, 1] by its place in the
/// batch however the step computes it: whole, in two halves (batch 256),
/// or in micro-batches (3 of a batch of 40, and 5 of 256). The bad value is
/// past the first part in each, and the parameters are left unchanged.
#[test]
fn a_step_names_the_bad_target_by_its_place_in_the_batch() {
    for (batch, micro, bad) in [
        (40, None, 33),
        (256, None, 200),
        (40, Some(3), 33),
        (256, Some(5), 131),
    ] {
        let model = Autoencoder::<f32>::new(bce_cfg(8), 0).unwrap();
        let mut t = Trainer::new(model, OptimizerConfig::default(), batch, 0).unwrap();
        t.set_micro_batches(micro).unwrap();
        let mut x = vec![0.5f32; batch * 8];
        x[bad * 8 + 6] = 1.5;
        let before = t.model.params.clone();
        let e = t.step(&x).unwrap_err();
        assert!(matches!(e, Error::Value { .. }), "{e:?}");
        let want = format!("feature 6 of sample {bad} of the batch is 1.5");
        has(&e.to_string(), &[&want]);
        assert!(t.model.params == before, "batch {batch}, {micro:?}");
    }
}

/// Image data keeps its shape wherever it comes from, and is never read in
/// another: a `.npy` of shape (n, h, w) or (n, c, h, w) is n images (a
/// preset is built for them and a model of images of another shape is
/// refused), one of five or more dimensions is refused, and an IDX
/// directory whose test images have another shape than its training images
/// is refused by every command (they were read in the training images'
/// shape, as many pixels, without a word).
#[test]
fn image_data_keeps_its_shape_in_every_format_and_split() {
    use sparse_ae::data::idx::{IdxArray, IdxData, write};
    let dir = common::temp_dir("validation_image_data");
    let npy = |name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (i * 7 % 11) as f32 / 11.0).collect();
        let p = dir.join(name);
        std::fs::write(&p, sparse_ae::data::npy::to_bytes(shape, &data).unwrap()).unwrap();
        p
    };
    let image_of = |model: &Path| {
        sparse_ae::io::model_file::load_model(model)
            .unwrap()
            .config()
            .image
    };
    let train = |data: &Path, out: &Path| {
        ok(&[
            "train",
            "--preset",
            "conv",
            "--data",
            s(data),
            "-o",
            s(out),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "-q",
        ])
    };
    let (m3, m4, m44) = (dir.join("m3.st"), dir.join("m4.st"), dir.join("m44.st"));
    train(&npy("x3.npy", &[40, 2, 8]), &m3);
    assert_eq!(image_of(&m3), Some((1, 2, 8)));
    train(&npy("x4.npy", &[40, 2, 2, 4]), &m4);
    assert_eq!(image_of(&m4), Some((2, 2, 4)));
    train(&npy("x44.npy", &[40, 4, 4]), &m44);
    assert_eq!(image_of(&m44), Some((1, 4, 4)));
    let x3 = dir.join("x3.npy");
    for cmd in ["eval", "encode", "score"] {
        let out = s_owned(dir.join(format!("{cmd}.out.npy")));
        let mut args = vec![cmd, "-m", s(&m44), "--data", s(&x3)];
        if cmd != "eval" {
            args.extend(["-o", &out]);
        }
        let e = fails(&args);
        has(&e, &["image", "1×4×4", "1×2×8", "wrong shape"]);
    }
    // A matrix has no image shape: the 4×4 model reads its 16 features.
    ok(&[
        "eval",
        "-m",
        s(&m44),
        "--data",
        s(&npy("x2.npy", &[40, 16])),
    ]);
    let e = fails(&[
        "train",
        "--preset",
        "conv",
        "--data",
        s(&npy("x5.npy", &[40, 1, 1, 2, 8])),
        "-o",
        s(&dir.join("m5.st")),
        "-q",
    ]);
    has(
        &e,
        &["x5.npy", "[40, 1, 1, 2, 8]", "(samples, height, width)"],
    );

    // IDX: test images of another shape than the training images.
    let idx = dir.join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    for (prefix, n, dims) in [("train", 20, [4, 4]), ("t10k", 5, [2, 8])] {
        let images = IdxArray {
            dims: vec![n, dims[0], dims[1]],
            data: IdxData::U8((0..n * 16).map(|i| (i * 13 % 256) as u8).collect()),
        };
        write(&idx.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
    }
    let want = [
        "t10k-images-idx3-ubyte",
        "2×8",
        "train-images-idx3-ubyte",
        "4×4",
    ];
    let e = fails(&[
        "train",
        "--preset",
        "conv",
        "--data",
        s(&idx),
        "-o",
        s(&dir.join("mi.st")),
        "-q",
    ]);
    has(&e, &want);
    for split in ["train", "test", "all"] {
        let e = fails(&["eval", "-m", s(&m44), "--data", s(&idx), "--split", split]);
        has(&e, &want);
    }
    assert!(!dir.join("mi.st").exists());
}

fn s_owned(p: PathBuf) -> String {
    p.to_str().unwrap().to_owned()
}

/// `$SPARSE_AE_DATA` is the data when `--data` is not given, exactly as
/// `--data` would be: a `.npy` file is read, and a value that names no
/// data is an error naming the variable (another data set was used).
#[test]
fn the_data_variable_is_used_as_given_or_refused() {
    let dir = common::temp_dir("validation_data_env");
    let x: Vec<f32> = (0..40 * 8).map(|i| (i % 5) as f32 / 5.0).collect();
    let npy = dir.join("x.npy");
    sparse_ae::data::npy::write(&npy, 40, 8, &x).unwrap();
    // A ./data/mnist the fallback would have found.
    let local = dir.join("data/mnist");
    std::fs::create_dir_all(&local).unwrap();
    common::write_tiny_mnist(&local, 4, 10, 4);
    let run_env = |value: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sparse-ae"))
            .args(args)
            .current_dir(&dir)
            .env("SPARSE_AE_DATA", value)
            .env_remove("SPARSE_AE_KERNEL")
            .output()
            .unwrap()
    };
    let m = dir.join("m.st");
    let o = run_env(
        &npy,
        &[
            "train",
            "--preset",
            "shallow",
            "--epochs",
            "1",
            "-o",
            s(&m),
            "-q",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trained = sparse_ae::io::model_file::load_model(&m).unwrap();
    assert_eq!(trained.config().input, 8);
    for bad in [dir.join("nowhere"), dir.join("nowhere.npy"), m.clone()] {
        let o = run_env(&bad, &["eval", "-m", s(&m)]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {e}");
        has(&e, &["SPARSE_AE_DATA", &bad.to_string_lossy()]);
    }
}

/// Finite samples far beyond the range a model was trained on can overflow
/// f32 inside it or in their squared errors: `eval` and `score` refuse them
/// naming the sample (they printed `inf` and exited 0, where `train`
/// refuses the same data), while codes and reconstructions that are finite
/// are written.
#[test]
fn results_beyond_f32_are_refused_naming_the_sample() {
    let dir = common::temp_dir("validation_beyond_f32");
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "linear"}], "code_layer": 0, "loss": "mse"}"#,
    )
    .unwrap();
    let good = npy_file(&dir, "good.npy", 40, 8, |i| (i * 7 % 10) as f32 / 10.0);
    // Row 37 (the test split's second) holds a value near f32's largest.
    let huge = npy_file(&dir, "huge.npy", 40, 8, |i| {
        if i == 37 * 8 + 2 {
            3e38
        } else {
            (i * 7 % 10) as f32 / 10.0
        }
    });
    let m = dir.join("m.st");
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&good),
        "-o",
        s(&m),
        "--epochs",
        "1",
        "-q",
    ]);
    let scores = dir.join("s.csv");
    for args in [
        vec!["eval", "-m", s(&m), "--data", s(&huge)],
        vec!["eval", "-m", s(&m), "--data", s(&huge), "--json"],
        vec!["score", "-m", s(&m), "--data", s(&huge), "-o", s(&scores)],
    ] {
        let e = fails(&args);
        has(
            &e,
            &[
                "sample 1 of the test split",
                "not finite",
                "3e38",
                "--normalize",
            ],
        );
    }
    assert!(!scores.exists());
    ok(&["eval", "-m", s(&m), "--data", s(&good)]);
    ok(&[
        "encode",
        "-m",
        s(&m),
        "--data",
        s(&huge),
        "-o",
        s(&dir.join("e.npy")),
    ]);
}

/// A resumed run that `--epochs` (counted from the start of training)
/// leaves nothing to do is refused before anything is written: it saved
/// the checkpoint's model again, exited 0 and wrote no metrics.
#[test]
fn resume_with_nothing_left_to_train_is_refused() {
    let dir = common::temp_dir("validation_resume_done");
    let x = npy_file(&dir, "x.npy", 40, 8, |i| (i * 7 % 10) as f32 / 10.0);
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "sigmoid"}], "code_layer": 0}"#,
    )
    .unwrap();
    let (ck, out, metrics) = (dir.join("ck.st"), dir.join("m.st"), dir.join("m.csv"));
    // 36 training rows in one batch: one step an epoch.
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--data",
        s(&x),
        "--epochs",
        "3",
        "--batch-size",
        "36",
        "--checkpoint",
        s(&ck),
        "-o",
        s(&out),
        "-q",
    ]);
    std::fs::remove_file(&out).unwrap();
    let resume = |epochs: &str| {
        vec![
            "train",
            "--resume",
            s_static(&ck),
            "--data",
            s_static(&x),
            "--epochs",
            s_str(epochs),
            "-o",
            s_static(&out),
            "--metrics",
            s_static(&metrics),
            "-q",
        ]
    };
    for epochs in ["1", "3"] {
        let e = fails(&resume(epochs));
        has(
            &e,
            &[
                &format!("--epochs {epochs} leaves nothing to train"),
                "3 whole epochs of 1",
                "ck.st",
            ],
        );
        assert!(!out.exists() && !metrics.exists());
    }
    ok(&resume("4"));
    assert!(out.exists());
    let rows = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(rows.lines().count(), 2, "{rows}");
}

fn s_static(p: &Path) -> &'static str {
    Box::leak(p.to_str().unwrap().to_owned().into_boxed_str())
}

fn s_str(v: &str) -> &'static str {
    Box::leak(v.to_owned().into_boxed_str())
}

/// `reconstruct -n` past what one picture holds names `-n` (it named a
/// "report canvas" and its pixels).
#[test]
fn reconstruct_with_too_many_samples_names_n() {
    let Some(mnist) = common::real_mnist() else {
        eprintln!("skipped: no MNIST data");
        return;
    };
    let dir = common::temp_dir("validation_reconstruct_n");
    let m = dir.join("m.st");
    ok(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&mnist),
        "--limit",
        "64",
        "--epochs",
        "1",
        "-o",
        s(&m),
        "-q",
    ]);
    let out = dir.join("r.png");
    let e = fails(&[
        "reconstruct",
        "-m",
        s(&m),
        "--data",
        s(&mnist),
        "--split",
        "train",
        "-n",
        "60000",
        "-o",
        s(&out),
    ]);
    // (10,000 samples fit, each image drawn 1:1 instead of 3:1.)
    has(&e, &["-n", "60000 samples", "ask for fewer"]);
    assert!(!out.exists());
}

/// A binary cross-entropy target outside [0, 1] in a streamed `.npy` is
/// named by its sample in the split, as in memory (it was named by its
/// place in a shuffled batch).
#[test]
fn a_streamed_target_outside_the_unit_interval_is_named_by_its_row() {
    let dir = common::temp_dir("validation_stream_bce");
    let x = npy_file(&dir, "x.npy", 100, 8, |i| {
        if i == 57 * 8 + 3 {
            5.0
        } else {
            (i % 10) as f32 / 10.0
        }
    });
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "sigmoid"}], "code_layer": 0}"#,
    )
    .unwrap();
    for stream in [true, false] {
        let out = dir.join("m.st");
        let mut args = vec![
            "train",
            "--config",
            s(&cfg),
            "--data",
            s(&x),
            "--epochs",
            "1",
            "--batch-size",
            "10",
            "-o",
            s(&out),
            "-q",
        ];
        if stream {
            args.push("--stream");
        }
        let e = fails(&args);
        has(&e, &["feature 3 of sample 57 of the training split is 5"]);
    }
}
