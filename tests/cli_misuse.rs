//! Misuse of the command-line tool's files and streams: closed and full
//! stdout, sizes that overflow, special files as inputs, thread counts,
//! outputs that name an input or another output, devices and links as
//! outputs, leftover temporary files, outputs checked before the work, and
//! negative numbers after an option. Each case asserts the exit code, the
//! message, and that no file was created or changed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MAX: &str = "18446744073709551615";

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparse-ae"));
    c.args(args)
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        .env_remove("SPARSE_AE_TOPK_PATH")
        .env_remove("SPARSE_AE_THREAD_POLICY")
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    cmd(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let o = run(args);
    assert!(
        o.status.success(),
        "sparse-ae {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Runs `args`, which must fail with `code`; returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "sparse-ae {args:?}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

use common::snapshot;

/// A scratch directory with a tiny data set `x.npy` (40 × 8), a config
/// `c.json` (8 → 4 → 8, MSE) and a model `m.st` trained on them.
fn setup(name: &str) -> PathBuf {
    let dir = common::temp_dir(name);
    common::write_tiny_npy_and_config(&dir);
    ok(&[
        "train",
        "--config",
        s(&dir.join("c.json")),
        "--data",
        s(&dir.join("x.npy")),
        "--out",
        s(&dir.join("m.st")),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "-q",
    ]);
    dir
}

/// `train` on the tiny set with `extra` arguments.
/// `train` of the TopK preset with a linear output on the data `x` into
/// `out`, with AuxK coefficient `coef`.
fn auxk_args<'a>(x: &'a str, out: &'a str, coef: &'a str) -> [&'a str; 10] {
    [
        "train",
        "--preset",
        "topk",
        "--linear-output",
        "--data",
        x,
        "--out",
        out,
        "--auxk-coef",
        coef,
    ]
}

fn train_args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--config",
        s_static(dir.join("c.json")),
        "--data",
        s_static(dir.join("x.npy")),
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ];
    v.extend_from_slice(extra);
    v
}

/// A path as a `&'static str` (tests run once; leaking a few strings is fine).
fn s_static(p: PathBuf) -> &'static str {
    Box::leak(p.into_os_string().into_string().unwrap().into_boxed_str())
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = setup("misuse-pipe");
    let model = dir.join("m.st");
    let data = dir.join("x.npy");
    for args in [
        vec!["presets"],
        vec!["--help"],
        vec!["eval", "-m", s(&model), "--data", s(&data)],
        vec!["eval", "-m", s(&model), "--data", s(&data), "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = cmd(&args).stdout(writer).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {:?} {err}", o.status);
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_a_clear_error() {
    for args in [["presets"], ["--help"], ["--version"]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = cmd(&args).stdout(full).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("standard output") && err.contains("No space left"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn sizes_that_overflow_are_refused() {
    // Refused before any allocation: by the overflow check or, first, by
    // the memory budget (whose arithmetic saturates).
    let e = fails(&["gradcheck", "--preset", "shallow", "--batch", MAX], 1);
    assert!(
        (e.contains("--batch") && e.contains("overflow"))
            || (e.contains("gradcheck at batch") && e.contains("more than the memory budget")),
        "{e}"
    );
    let dir = setup("misuse-overflow");
    let before = snapshot(&dir);
    let out = dir.join("o.st");
    let x = dir.join("x.npy");
    let args = [
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&x),
        "--batch-size",
        MAX,
        // More batches a step than samples: the batch is not cut to the data.
        "--accumulate",
        "100",
        "--out",
        s(&out),
    ];
    let e = fails(&args, 1);
    assert!(
        (e.contains("batch_size") || e.contains("batch size")) && e.contains(MAX),
        "{e}"
    );
    assert_eq!(snapshot(&dir), before);
}

/// Counts of batches or micro-batches in the billions are refused with the
/// reason (more samples a step than the data holds), never by running out
/// of memory while the step's buffers are counted or made; with masking
/// noise too, whose noisy copy of a step's input is made by the first step.
#[test]
fn steps_of_billions_of_batches_are_refused_before_any_buffer() {
    let dir = setup("misuse-accumulate");
    std::fs::write(
        dir.join("noisy.json"),
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "sigmoid"}], "code_layer": 0, "noise": {"type": "masking", "p": 0.3}}"#,
    )
    .unwrap();
    let before = snapshot(&dir);
    let out = dir.join("o.st");
    let noisy = s_static(dir.join("noisy.json"));
    for extra in [
        &["--accumulate", "10000000000"][..],
        &["--accumulate", "1000000000", "--micro-batches", "4"],
        &["--accumulate", "10000000000", "--config", noisy],
    ] {
        let mut args = train_args(&dir, &["--out", s_static(out.clone())]);
        if extra.contains(&"--config") {
            // The noisy model's config in place of the plain one.
            args.drain(1..3);
        }
        args.extend_from_slice(extra);
        let e = fails(&args, 1);
        assert!(
            e.contains("accumulate") && e.contains("more than the 36 training samples"),
            "{extra:?}: {e}"
        );
    }
    assert_eq!(snapshot(&dir), before);
}

#[cfg(unix)]
#[test]
fn special_files_are_refused_as_inputs() {
    let dir = setup("misuse-special-in");
    let fifo = dir.join("f.json");
    let fifo_npy = dir.join("f.npy");
    for f in [&fifo, &fifo_npy] {
        assert!(Command::new("mkfifo").arg(f).status().unwrap().success());
    }
    let before = snapshot(&dir);
    let out = dir.join("o.st");
    let data = dir.join("x.npy");
    let cfg = dir.join("c.json");
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec![
                "train",
                "--config",
                "/dev/zero",
                "--data",
                s(&data),
                "--out",
                s(&out),
            ],
            "/dev/zero",
            "character device",
        ),
        (
            vec![
                "train",
                "--init",
                "/dev/urandom",
                "--data",
                s(&data),
                "--out",
                s(&out),
            ],
            "/dev/urandom",
            "character device",
        ),
        (
            vec![
                "train",
                "--resume",
                "/dev/zero",
                "--data",
                s(&data),
                "--out",
                s(&out),
            ],
            "/dev/zero",
            "character device",
        ),
        (
            vec!["eval", "-m", "/dev/zero", "--data", s(&data)],
            "/dev/zero",
            "character device",
        ),
        (
            vec![
                "train",
                "--config",
                s(&fifo),
                "--data",
                s(&data),
                "--out",
                s(&out),
            ],
            "f.json",
            "FIFO",
        ),
        (
            vec![
                "train",
                "--config",
                s(&cfg),
                "--data",
                s(&fifo_npy),
                "--out",
                s(&out),
            ],
            "f.npy",
            "FIFO",
        ),
        (vec!["gradcheck", "--config", s(&fifo)], "f.json", "FIFO"),
    ];
    for (args, name, kind) in cases {
        let e = fails(&args, 1);
        assert!(e.contains(name) && e.contains(kind), "{args:?}: {e}");
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn thread_counts_beyond_the_bound_are_refused_at_once() {
    for n in ["100000", "0"] {
        let o = run(&["--threads", n, "presets"]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert!(e.contains("--threads: must be between 1 and "), "{e}");
        assert!(o.stdout.is_empty());
    }
    ok(&["--threads", "3", "presets"]);
}

#[test]
fn thread_counts_from_the_environment_beyond_the_bound_are_refused_at_once() {
    // RAYON_NUM_THREADS=100000 had rayon start every thread it could (up
    // to 65,535, minutes of work or a failure half way); a value that is
    // not a number was ignored without a word.
    for (var, value, says) in [
        ("RAYON_NUM_THREADS", "100000", "got 100000"),
        ("RAYON_NUM_THREADS", "four", "got `four`"),
        ("RAYON_RS_NUM_CPUS", "100000", "got 100000"),
    ] {
        let t = std::time::Instant::now();
        let o = cmd(&["presets"])
            .env_remove("RAYON_NUM_THREADS")
            .env_remove("RAYON_RS_NUM_CPUS")
            .env(var, value)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{var}={value}: {e}");
        assert!(
            e.contains(&format!("{var}: must be")) && e.contains(says),
            "{e}"
        );
        assert!(e.contains("--threads N"), "{e}");
        assert!(o.stdout.is_empty());
        assert!(
            t.elapsed().as_secs() < 30,
            "{var}={value} took {:?}",
            t.elapsed()
        );
    }
    // --threads decides over the environment; 0 is rayon's "one per core".
    for (threads, value) in [(Some("2"), "100000"), (None, "0"), (None, "2")] {
        let mut c = cmd(&[]);
        if let Some(n) = threads {
            c.args(["--threads", n]);
        }
        let o = c
            .arg("presets")
            .env("RAYON_NUM_THREADS", value)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let dir = setup("misuse-same");
    let (m, x, c) = (dir.join("m.st"), dir.join("x.npy"), dir.join("c.json"));
    let link = dir.join("link.st");
    #[cfg(unix)]
    std::os::unix::fs::symlink("m.st", &link).unwrap();
    #[cfg(not(unix))]
    std::fs::copy(&m, &link).unwrap();
    let hard = dir.join("hard.npy");
    std::fs::hard_link(&x, &hard).unwrap();
    let dotted = format!("{}/./x.npy", dir.display());
    std::fs::create_dir(dir.join("e")).unwrap();
    let exported = dir.join("e/sae.safetensors");
    std::fs::copy(&m, &exported).unwrap();
    let before = snapshot(&dir);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["encode", "-m", s(&m), "--data", s(&x), "-o", s(&x)],
            "--data",
        ),
        (
            vec!["encode", "-m", s(&m), "--data", s(&x), "-o", &dotted],
            "--data",
        ),
        (
            vec!["score", "-m", s(&m), "--data", s(&x), "-o", s(&hard)],
            "--data",
        ),
        (
            vec!["reconstruct", "-m", s(&m), "--data", s(&x), "-o", s(&m)],
            "--model",
        ),
        (vec!["features", "-m", s(&m), "-o", s(&m)], "--model"),
        (vec!["features", "-m", s(&link), "-o", s(&m)], "--model"),
        (
            vec!["export", "-m", s(&exported), "-o", s_static(dir.join("e"))],
            "--model",
        ),
        (
            vec![
                "histogram",
                "-m",
                s(&m),
                "-m",
                s(&link),
                "--data",
                s(&x),
                "-o",
                s(&link),
            ],
            "--model",
        ),
        (train_args(&dir, &["--out", s(&c)]), "--config"),
        (train_args(&dir, &["--out", s(&x)]), "--data"),
        (
            train_args(
                &dir,
                &[
                    "--out",
                    s_static(dir.join("n.st")),
                    "--checkpoint",
                    s_static(dir.join("n.st")),
                ],
            ),
            "--out",
        ),
        (
            train_args(
                &dir,
                &[
                    "--out",
                    s_static(dir.join("n.st")),
                    "--metrics",
                    s_static(dir.join("n.st")),
                ],
            ),
            "--out",
        ),
        (
            train_args(&dir, &["--init", s(&m), "--out", s(&link)]),
            "--init",
        ),
    ];
    for (args, what) in cases {
        let e = fails(&args, 1);
        assert!(e.contains("same file") && e.contains(what), "{args:?}: {e}");
        assert!(!e.contains(".tmp"), "{e}");
    }
    // A model that is no part of the run is not a metrics file either.
    let e = fails(
        &train_args(
            &dir,
            &["--out", s_static(dir.join("n.st")), "--metrics", s(&m)],
        ),
        1,
    );
    assert!(
        e.contains("m.st") && e.contains("refusing to append"),
        "{e}"
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn resuming_from_the_checkpoint_it_saves_is_allowed() {
    let dir = setup("misuse-resume");
    let ck = s_static(dir.join("ck.st"));
    ok(&train_args(
        &dir,
        &[
            "--out",
            s_static(dir.join("a.st")),
            "--checkpoint",
            ck,
            "-q",
        ],
    ));
    ok(&[
        "train",
        "--resume",
        ck,
        "--checkpoint",
        ck,
        "--data",
        s(&dir.join("x.npy")),
        "--epochs",
        "2",
        "--out",
        s(&dir.join("b.st")),
        "-q",
    ]);
}

#[cfg(unix)]
#[test]
fn devices_are_never_replaced_and_links_are_written_through() {
    use std::os::unix::fs::FileTypeExt;
    let dir = setup("misuse-targets");
    let m = dir.join("m.st");
    let before = snapshot(&dir);
    for args in [
        vec!["features", "-m", s(&m), "-o", "/dev/null"],
        train_args(&dir, &["--out", "/dev/null"]),
        train_args(
            &dir,
            &[
                "--out",
                s_static(dir.join("n.st")),
                "--checkpoint",
                "/dev/null",
            ],
        ),
        train_args(
            &dir,
            &[
                "--out",
                s_static(dir.join("n.st")),
                "--metrics",
                "/dev/null",
            ],
        ),
    ] {
        let e = fails(&args, 1);
        assert!(
            e.contains("/dev/null") && e.contains("character device"),
            "{args:?}: {e}"
        );
        assert!(
            std::fs::metadata("/dev/null")
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
    let e = fails(&["features", "-m", s(&m), "-o", s(&dir)], 1);
    assert!(e.contains("directory"), "{e}");
    assert_eq!(snapshot(&dir), before);

    let real = dir.join("real.png");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("pic.png");
    std::os::unix::fs::symlink("real.png", &link).unwrap();
    ok(&["features", "-m", s(&m), "-o", s(&link)]);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read(&real).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn a_leftover_temporary_file_is_removed_and_long_names_work() {
    let dir = setup("misuse-temp");
    let m = dir.join("m.st");
    // What a save killed half way leaves behind.
    std::fs::write(dir.join(".f.png.tmp"), vec![0u8; 4096]).unwrap();
    ok(&["features", "-m", s(&m), "-o", s(&dir.join("f.png"))]);
    assert!(!dir.join(".f.png.tmp").exists());
    let long = dir.join(format!("{}.st", "n".repeat(252)));
    ok(&train_args(&dir, &["--out", s(&long), "-q"]));
    assert!(long.is_file());
    let names: Vec<String> = snapshot(&dir).into_keys().collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}

/// Each output's format follows its name: an extension of another format
/// is refused before any work (PNG bytes went into `r.npy`, CSV text into
/// `s.npz`, CSV rows into `m.npy`), and a name without one gets the
/// command's default.
#[test]
fn an_output_named_for_another_format_is_refused() {
    let dir = setup("misuse-format");
    let (m, x) = (s_static(dir.join("m.st")), s_static(dir.join("x.npy")));
    let before = snapshot(&dir);
    for (args, want) in [
        (
            vec![
                "score",
                "-m",
                m,
                "--data",
                x,
                "-o",
                s_static(dir.join("s.npz")),
            ],
            "score writes .csv or .npy, not .npz",
        ),
        (
            vec![
                "score",
                "-m",
                m,
                "--data",
                x,
                "-o",
                s_static(dir.join("s.txt")),
            ],
            "not .txt",
        ),
        (
            vec![
                "encode",
                "-m",
                m,
                "--data",
                x,
                "-o",
                s_static(dir.join("e.png")),
            ],
            "encode writes .npy or .csv, not .png",
        ),
        (
            vec![
                "reconstruct",
                "-m",
                m,
                "--data",
                x,
                "-o",
                s_static(dir.join("r.npy")),
            ],
            "reconstruct writes .png, not .npy",
        ),
        (
            vec!["features", "-m", m, "-o", s_static(dir.join("f.jpg"))],
            "features writes .png, not .jpg",
        ),
        (
            vec![
                "histogram",
                "-m",
                m,
                "--data",
                x,
                "-o",
                s_static(dir.join("h.csv")),
            ],
            "histogram writes .png, not .csv",
        ),
    ] {
        let e = fails(&args, 1);
        assert!(e.contains(want) && e.contains("--out"), "{args:?}: {e}");
        assert_eq!(snapshot(&dir), before, "{args:?}");
    }
    // A .json file of JSON lines would be no JSON document.
    for name in ["m.npy", "m.json"] {
        let metrics = s_static(dir.join(name));
        let e = fails(
            &train_args(
                &dir,
                &["--out", s_static(dir.join("n.st")), "--metrics", metrics],
            ),
            1,
        );
        let ext = name.rsplit('.').next().unwrap();
        assert!(
            e.contains(&format!("--metrics writes .csv or .jsonl, not .{ext}")),
            "{e}"
        );
        assert!(!e.contains("training "), "{e}");
        assert_eq!(snapshot(&dir), before);
    }
    // Without an extension: CSV scores, a PNG picture.
    ok(&["score", "-m", m, "--data", x, "-o", s_static(dir.join("s"))]);
    assert!(
        std::fs::read_to_string(dir.join("s"))
            .unwrap()
            .starts_with("index,score\n")
    );
    ok(&["features", "-m", m, "-o", s_static(dir.join("f"))]);
    assert!(
        std::fs::read(dir.join("f"))
            .unwrap()
            .starts_with(b"\x89PNG")
    );
}

/// An output is saved through a temporary file of a fixed name beside it
/// (`.NAME.tmp`), and a leftover there is replaced: a command whose input
/// or other output is that name (as given, or through a link) is refused
/// before anything is written, and the file keeps its bytes.
#[test]
fn an_input_or_output_at_an_outputs_temporary_name_is_refused() {
    let dir = setup("misuse-temp-name");
    let m = dir.join("m.st");
    let tmp_of = |name: &str| dir.join(format!(".{name}.tmp"));
    std::fs::copy(&m, tmp_of("f.png")).unwrap();
    std::fs::copy(&m, tmp_of("i.st")).unwrap();
    std::fs::copy(dir.join("c.json"), tmp_of("c.st")).unwrap();
    std::fs::write(tmp_of("w.st"), b"epoch,step\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&m, tmp_of("g.png")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(tmp_of("f.png"), dir.join("link.st")).unwrap();
    let before = snapshot(&dir);
    let out = |name: &str| s_static(dir.join(name));
    let tmp = |name: &str| s_static(tmp_of(name));
    let mut cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["features", "-m", tmp("f.png"), "-o", out("f.png")],
            "--model",
        ),
        (
            train_args(&dir, &["--init", tmp("i.st"), "--out", out("i.st")]),
            "--init",
        ),
        (
            vec![
                "train",
                "--config",
                tmp("c.st"),
                "--data",
                out("x.npy"),
                "--epochs",
                "1",
                "--out",
                out("c.st"),
            ],
            "--config",
        ),
        (
            train_args(&dir, &["--out", out("w.st"), "--metrics", tmp("w.st")]),
            "--metrics",
        ),
    ];
    #[cfg(unix)]
    {
        cases.push((
            vec!["features", "-m", tmp("g.png"), "-o", out("g.png")],
            "--model",
        ));
        cases.push((
            vec!["features", "-m", out("link.st"), "-o", out("f.png")],
            "--model",
        ));
    }
    for (args, flag) in cases {
        let e = fails(&args, 1);
        assert!(
            e.contains("temporary file") && e.contains(flag) && e.contains("destroy"),
            "{args:?}: {e}"
        );
        assert_eq!(snapshot(&dir), before, "{args:?}");
    }
    // A hard link at the temporary name is a leftover like any other: its
    // name goes, the file it shares keeps its bytes.
    #[cfg(unix)]
    {
        let model = std::fs::read(&m).unwrap();
        std::fs::hard_link(&m, tmp_of("h.png")).unwrap();
        ok(&["features", "-m", s(&m), "-o", out("h.png")]);
        assert!(!tmp_of("h.png").exists());
        assert_eq!(std::fs::read(&m).unwrap(), model);
    }
}

/// The files of a set written together (the `--report` directory,
/// `export`'s folder) are staged in `DIR/.sparse-ae-TAG.tmp`, renamed to
/// `.sparse-ae-TAG.ready` to commit, and a writer removes what an earlier
/// one left there: an input or another output there or below (as given, or
/// through a link) is refused before anything is written, and keeps its
/// bytes. They have no temporary file beside them in `DIR`: a file at
/// `DIR/.NAME.tmp` is the user's, and may be an input.
#[test]
fn an_input_or_output_in_a_sets_staging_directory_is_refused() {
    let dir = setup("misuse-staging");
    let p = |path: PathBuf| s_static(path);
    let train = |config: PathBuf, data: PathBuf, out: PathBuf, rep: PathBuf| {
        vec![
            "train",
            "--config",
            p(config),
            "--data",
            p(data),
            "--epochs",
            "1",
            "--out",
            p(out),
            "--report",
            p(rep),
        ]
    };
    let (c, x, n) = (dir.join("c.json"), dir.join("x.npy"), dir.join("n.st"));
    // A report's staging directory holding data, and one whose `.ready`
    // name is a configuration; an export's `.ready` holding a model.
    let (rep, rep_ready) = (dir.join("rep"), dir.join("rep-ready"));
    let staged = rep.join(".sparse-ae-report.tmp");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(&x, staged.join("x.npy")).unwrap();
    std::fs::create_dir(&rep_ready).unwrap();
    std::fs::copy(&c, rep_ready.join(".sparse-ae-report.ready")).unwrap();
    let exp = dir.join("exp");
    let ready = exp.join(".sparse-ae-export.ready");
    std::fs::create_dir_all(&ready).unwrap();
    std::fs::copy(dir.join("m.st"), ready.join("m.st")).unwrap();
    let mut cases = vec![
        (
            train(c.clone(), staged.join("x.npy"), n.clone(), rep.clone()),
            "--data",
        ),
        (
            train(c.clone(), x.clone(), staged.join("n.st"), rep.clone()),
            "--out",
        ),
        (
            train(
                rep_ready.join(".sparse-ae-report.ready"),
                x.clone(),
                n.clone(),
                rep_ready.clone(),
            ),
            "--config",
        ),
        (
            vec!["export", "-m", p(ready.join("m.st")), "-o", p(exp.clone())],
            "--model",
        ),
    ];
    // A link there is removed, and a link to a file there leads to it.
    #[cfg(unix)]
    {
        let exp_link = dir.join("exp-link");
        std::fs::create_dir(&exp_link).unwrap();
        let link = exp_link.join(".sparse-ae-export.tmp");
        std::os::unix::fs::symlink(dir.join("m.st"), &link).unwrap();
        cases.push((vec!["export", "-m", p(link), "-o", p(exp_link)], "--model"));
        std::os::unix::fs::symlink(staged.join("x.npy"), dir.join("link.npy")).unwrap();
        cases.push((
            train(c.clone(), dir.join("link.npy"), n.clone(), rep.clone()),
            "--data",
        ));
    }
    let snapshots = || [&dir, &rep, &staged, &rep_ready, &exp, &ready].map(|d| snapshot(d));
    let before = snapshots();
    for (args, flag) in cases {
        let e = fails(&args, 1);
        assert!(
            e.contains("staging directory") && e.contains(flag) && e.contains("destroy"),
            "{args:?}: {e}"
        );
        assert_eq!(snapshots(), before, "{args:?}");
    }
    // Where the files of a set once had their temporary files: the user's.
    let (rep, out) = (dir.join("rep-user"), dir.join("exp-user"));
    for d in [&rep, &out] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::copy(&c, rep.join(".index.html.tmp")).unwrap();
    std::fs::copy(dir.join("m.st"), out.join(".cfg.json.tmp")).unwrap();
    let (config, model) = (
        std::fs::read(&c).unwrap(),
        std::fs::read(dir.join("m.st")).unwrap(),
    );
    ok(&train(
        rep.join(".index.html.tmp"),
        x.clone(),
        n.clone(),
        rep.clone(),
    ));
    assert!(rep.join("index.html").exists());
    assert_eq!(std::fs::read(rep.join(".index.html.tmp")).unwrap(), config);
    ok(&[
        "export",
        "-m",
        p(out.join(".cfg.json.tmp")),
        "-o",
        p(out.clone()),
    ]);
    assert!(out.join("cfg.json").exists());
    assert_eq!(std::fs::read(out.join(".cfg.json.tmp")).unwrap(), model);
}

#[test]
fn bad_outputs_fail_before_training_naming_the_path_given() {
    let dir = setup("misuse-early");
    let n = s_static(dir.join("n.st"));
    let nodir = s_static(dir.join("nodir/m.st"));
    let c = s_static(dir.join("c.json"));
    let long = s_static(dir.join("n".repeat(256)));
    let before = snapshot(&dir);
    for (extra, named) in [
        (vec!["--out", nodir], nodir),
        (vec!["--out", long], long),
        (vec!["--out", n, "--checkpoint", nodir], nodir),
        (vec!["--out", n, "--metrics", nodir], nodir),
        (vec!["--out", n, "--report", c], c),
        (
            vec!["--out", n, "--report", s_static(dir.join("c.json/r"))],
            "c.json/r",
        ),
    ] {
        let args = train_args(&dir, &extra);
        let e = fails(&args, 1);
        assert!(e.contains(named), "{args:?}: {e}");
        assert!(
            !e.contains(".tmp") && !e.contains("training "),
            "{args:?}: {e}"
        );
    }
    let e = fails(&train_args(&dir, &["--out", long]), 1);
    assert!(e.contains("more than the 255-byte limit"), "{e}");
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn hyper_parameters_that_f32_would_make_infinite_zero_or_one_are_refused() {
    // Training computes in f32: a learning rate of 1e39 was infinite there
    // (NaN at the first step), a penalty of 1e-50 was 0 (no penalty, without
    // a word), a momentum of 0.99999999 was 1.
    let dir = setup("misuse-f32");
    let n = s_static(dir.join("n.st"));
    let x = s_static(dir.join("x.npy"));
    let before = snapshot(&dir);
    for (extra, want) in [
        (vec!["--lr", "1e39"], "--lr: 1e39 is beyond f32's range"),
        (vec!["--lr", "1e-50"], "--lr: 1e-50 is below f32's smallest"),
        (
            vec!["--optimizer", "sgd", "--momentum", "0.99999999"],
            "--momentum: 0.99999999 is 1 in f32",
        ),
    ] {
        let mut args = train_args(&dir, &["--out", n]);
        args.extend(extra);
        let e = fails(&args, 1);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let e = fails(&auxk_args(x, n, "1e39"), 1);
    assert!(e.contains("--auxk-coef: 1e39 is beyond f32's range"), "{e}");
    let dense = r#"{"units": 4, "activation": "sigmoid"}, {"units": 8, "activation": "sigmoid"}"#;
    for (i, (json, want)) in [
        (
            format!(r#""layers": [{dense}], "noise": {{"type": "gaussian", "std": 1e39}}"#),
            "noise.std: 1e39 is beyond f32's range",
        ),
        // A masking fraction is taken as f32 holds it too, and one closer
        // to 1 than masking's 2^-24 steps masked every input.
        (
            format!(r#""layers": [{dense}], "noise": {{"type": "masking", "p": 1e-50}}"#),
            "noise.p: 1e-50 is below f32's smallest",
        ),
        (
            format!(r#""layers": [{dense}], "noise": {{"type": "masking", "p": 0.99999999}}"#),
            "noise.p: 0.99999999 is 1 in f32",
        ),
        (
            format!(r#""layers": [{dense}], "noise": {{"type": "masking", "p": 0.99999996}}"#),
            "noise.p: 0.99999996 would mask every input",
        ),
        (
            format!(r#""layers": [{dense}], "l1": {{"lambda": 1e-50, "layer": 0}}"#),
            "l1.lambda: 1e-50 is below f32's smallest",
        ),
        (
            format!(r#""layers": [{dense}], "kl": {{"rho": 0.05, "beta": 1e39, "layer": 0}}"#),
            "kl.beta: 1e39 is beyond f32's range",
        ),
        (
            format!(r#""layers": [{dense}], "kl": {{"rho": 1e-50, "beta": 3, "layer": 0}}"#),
            "kl.rho: 1e-50 is below f32's smallest",
        ),
        (
            format!(r#""layers": [{dense}], "weight_decay": 1e-300"#),
            "weight_decay: 1e-300 is below f32's smallest",
        ),
        (
            r#""layers": [{"units": 4, "activation": "leaky_relu", "slope": 1e-50}, {"units": 8, "activation": "sigmoid"}]"#.to_string(),
            "layers[0].slope: 1e-50 is below f32's smallest",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = dir.join(format!("f32-{i}.json"));
        std::fs::write(&cfg, format!(r#"{{"input": 8, {json}, "code_layer": 0}}"#)).unwrap();
        let e = fails(
            &["train", "--config", s(&cfg), "--data", x, "--out", n],
            1,
        );
        assert!(e.contains(want), "{json}: {e}");
        std::fs::remove_file(&cfg).unwrap();
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn negative_numbers_reach_their_own_checks() {
    let dir = setup("misuse-negative");
    let n = s_static(dir.join("n.st"));
    let before = snapshot(&dir);
    for (extra, want) in [
        (vec!["--lr", "-1"], "lr"),
        (vec!["--optimizer", "sgd", "--momentum", "-1"], "momentum"),
        (vec!["--chunk-mb", "-1"], "--chunk-mb"),
        (vec!["--memory-budget", "-1"], "--memory-budget"),
    ] {
        let mut args = train_args(&dir, &["--out", n]);
        args.extend(extra);
        let e = fails(&args, 1);
        assert!(e.contains(want) && e.contains("-1"), "{args:?}: {e}");
        assert!(!e.contains("unexpected argument"), "{e}");
    }
    let x = s_static(dir.join("x.npy"));
    let e = fails(&auxk_args(x, n, "-1"), 1);
    assert!(e.contains("--auxk-coef") && e.contains("-1"), "{e}");
    for (flag, want) in [
        ("--epochs", "--epochs"),
        ("--threads", "--threads"),
        ("--batch-size", "--batch-size"),
        ("--limit", "--limit"),
    ] {
        let args = [
            "train", "--preset", "shallow", "--data", x, "--out", n, flag, "-3",
        ];
        let e = fails(&args, 2);
        assert!(
            e.contains(want) && e.contains("whole number"),
            "{args:?}: {e}"
        );
        // A thread count's bounds, not a usize's (0 is no thread count).
        assert_eq!(
            flag == "--threads",
            e.contains("of threads from 1 to "),
            "{e}"
        );
    }
    let e = fails(
        &["gradcheck", "--preset", "shallow", "--tolerance", "-1"],
        1,
    );
    assert!(e.contains("--tolerance") && e.contains("-1"), "{e}");
    assert_eq!(snapshot(&dir), before);
}

/// A `--metrics` file whose last row was cut short (by a full disk or a
/// killed run), or whose rows do not match its header, is refused before
/// training, naming the line; the file stays as it was. Whole rows are
/// added to.
#[test]
fn a_metrics_file_with_a_row_cut_short_is_refused() {
    let dir = setup("misuse-metrics-cut");
    let csv = dir.join("m.csv");
    let jsonl = dir.join("m.jsonl");
    for p in [&csv, &jsonl] {
        ok(&train_args(
            &dir,
            &["--out", s_static(dir.join("n.st")), "--metrics", s(p), "-q"],
        ));
    }
    let whole_csv = std::fs::read_to_string(&csv).unwrap();
    let whole_jsonl = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(whole_csv.lines().count(), 2, "{whole_csv}");
    let header = whole_csv.lines().next().unwrap();
    let cases = [
        (
            &csv,
            whole_csv[..whole_csv.len() - 7].to_string(),
            "line 2 (the last) is incomplete",
        ),
        (
            &csv,
            format!("{whole_csv}1,40,0.5\n"),
            "line 3 has 3 columns",
        ),
        (&csv, format!("{header}\n"), ""),
        (
            &jsonl,
            whole_jsonl[..whole_jsonl.len() - 7].to_string(),
            "line 1 (the last) is incomplete",
        ),
        (
            &jsonl,
            format!("{{\"epoch\":1,{whole_jsonl}"),
            "line 1 is not a whole JSON object",
        ),
    ];
    for (p, text, why) in cases {
        std::fs::write(p, &text).unwrap();
        let before = snapshot(&dir);
        let args = train_args(
            &dir,
            &["--out", s_static(dir.join("n2.st")), "--metrics", s(p)],
        );
        if why.is_empty() {
            ok(&args);
            let now = std::fs::read_to_string(p).unwrap();
            assert!(now.starts_with(&text) && now.lines().count() == 2, "{now}");
            std::fs::remove_file(dir.join("n2.st")).unwrap();
            continue;
        }
        let e = fails(&args, 1);
        assert!(
            e.contains(s(p)) && e.contains(why) && e.contains("refusing to append"),
            "{text:?}: {e}"
        );
        assert!(!e.contains("training ") && !e.contains(".tmp"), "{e}");
        assert_eq!(snapshot(&dir), before, "{text:?}");
    }
}

/// Rows are added atomically: a write that fails half way (here the file
/// size limit, standing in for a full disk) leaves the metrics file as it
/// was, with no row cut short and no temporary file. The tool survives the
/// limit's SIGXFSZ itself (its default action ended the process without a
/// word): the shell does not ignore the signal for it.
#[test]
fn a_failed_metrics_write_leaves_the_file_whole() {
    let dir = setup("misuse-metrics-full");
    // `ulimit -f` counts blocks of 512 or 1024 bytes, depending on the shell.
    let unit = common::block_unit(&dir);

    // Whole rows ending 20 bytes short of the limit: the next row crosses it.
    let header = sparse_ae::train::EpochMetrics::CSV_HEADER;
    let row = format!("{}\n", vec!["0"; header.split(',').count()].join(","));
    // At least 8 KiB: room for a checkpoint of the tiny model below.
    let blocks = ((header.len() + 1 + 3 * row.len()) / unit + 1).max(8192 / unit);
    let room = blocks * unit - 20 - (header.len() + 1);
    let full = room / row.len() - 1;
    let last = format!("{}{row}", "0".repeat(room - full * row.len() - row.len()));
    let text = format!("{header}\n{}{last}", row.repeat(full));
    assert_eq!(text.len(), blocks * unit - 20);
    let csv = dir.join("m.csv");
    std::fs::write(&csv, &text).unwrap();
    let before = snapshot(&dir);

    let args = train_args(
        &dir,
        &[
            "--out",
            s_static(dir.join("n.st")),
            "--metrics",
            s(&csv),
            "-q",
        ],
    );
    let o = common::run_limited(Some(blocks), &args);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("m.csv") && !e.contains("panicked"), "{e}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
    assert_eq!(snapshot(&dir), before, "{e}");

    // With a checkpoint, the epoch's checkpoint is saved all the same (it
    // was not: a row that could not be added lost the run's training), and
    // the error names it.
    let ck = dir.join("ck.st");
    let mut with_ck = args.clone();
    with_ck.extend(["--checkpoint", s_static(ck.clone())]);
    let o = common::run_limited(Some(blocks), &with_ck);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("m.csv") && e.contains(&format!("the last good checkpoint is {}", s(&ck))),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
    assert!(std::fs::metadata(&ck).unwrap().len() < (blocks * unit) as u64);
    std::fs::remove_file(&ck).unwrap();

    // Without the limit, the row is added.
    ok(&args);
    let now = std::fs::read_to_string(&csv).unwrap();
    assert!(now.starts_with(&text) && now.lines().count() == text.lines().count() + 1);
}

/// `--limit 0` leaves nothing to work on: every command that reads data
/// refuses it by name before reading (`train` named the batch size,
/// "256 is larger than the 0 training samples"), and writes nothing.
#[test]
fn a_limit_of_zero_is_refused_by_every_command() {
    let dir = setup("misuse_limit_zero");
    let (x, m) = (dir.join("x.npy"), dir.join("m.st"));
    let before = snapshot(&dir);
    let o = s_static(dir.join("o.out"));
    let cases: Vec<Vec<&str>> = vec![
        train_args(&dir, &["--limit", "0", "--out", o]),
        vec!["eval", "-m", s(&m), "--data", s(&x), "--limit", "0"],
        vec![
            "encode",
            "-m",
            s(&m),
            "--data",
            s(&x),
            "--limit",
            "0",
            "-o",
            o,
        ],
        vec![
            "score",
            "-m",
            s(&m),
            "--data",
            s(&x),
            "--limit",
            "0",
            "-o",
            o,
        ],
        vec![
            "reconstruct",
            "-m",
            s(&m),
            "--data",
            s(&x),
            "--limit",
            "0",
            "-o",
            o,
        ],
        vec![
            "histogram",
            "-m",
            s(&m),
            "--data",
            s(&x),
            "--limit",
            "0",
            "-o",
            o,
        ],
    ];
    for args in cases {
        let err = fails(&args, 1);
        assert!(
            err.contains("--limit: must be at least 1"),
            "{args:?}: {err}"
        );
        assert_eq!(snapshot(&dir), before, "{args:?}");
    }
}

/// A count of 0 where the command needs at least one is refused by name,
/// writing nothing: `reconstruct -n 0` drew one sample and `gradcheck
/// --entries 0` checked one entry per tensor, without a word.
#[test]
fn counts_of_zero_are_refused_not_taken_as_one() {
    let dir = setup("misuse_zero_counts");
    let before = snapshot(&dir);
    let (x, m) = (dir.join("x.npy"), dir.join("m.st"));
    let png = dir.join("r.png");
    let e = fails(
        &[
            "reconstruct",
            "-m",
            s(&m),
            "--data",
            s(&x),
            "-o",
            s(&png),
            "-n",
            "0",
        ],
        1,
    );
    assert!(e.contains("-n: must be at least 1"), "{e}");
    assert_eq!(snapshot(&dir), before);
    let e = fails(&["gradcheck", "--preset", "shallow", "--entries", "0"], 1);
    assert!(e.contains("--entries: must be at least 1"), "{e}");
    ok(&[
        "reconstruct",
        "-m",
        s(&m),
        "--data",
        s(&x),
        "-o",
        s(&png),
        "-n",
        "1",
    ]);
}

/// A model of another input width than the data's is refused naming the
/// model's file and the data by every command that runs a model on data;
/// `histogram` of two models said "model input: shape mismatch" without
/// saying which.
#[test]
fn a_model_of_another_width_is_named() {
    let dir = setup("misuse_model_width");
    let (x, m) = (dir.join("x.npy"), dir.join("m.st"));
    let wide = dir.join("wide.npy");
    let data: Vec<f32> = (0..200).map(|i| (i % 5) as f32 / 5.0).collect();
    sparse_ae::data::npy::write(&wide, 20, 10, &data).unwrap();
    let other = dir.join("other.st");
    ok(&[
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&wide),
        "-o",
        s(&other),
        "--epochs",
        "1",
        "-q",
    ]);
    let before = snapshot(&dir);
    let o = s_static(dir.join("o"));
    let cases: Vec<Vec<&str>> = vec![
        vec!["eval", "-m", s(&other), "--data", s(&x)],
        vec!["encode", "-m", s(&other), "--data", s(&x), "-o", o],
        vec!["score", "-m", s(&other), "--data", s(&x), "-o", o],
        vec!["reconstruct", "-m", s(&other), "--data", s(&x), "-o", o],
        vec![
            "histogram",
            "-m",
            s(&m),
            "-m",
            s(&other),
            "--data",
            s(&x),
            "-o",
            o,
        ],
    ];
    for args in cases {
        let e = fails(&args, 1);
        assert!(
            e.contains(&format!(
                "{}: the model takes 10 features per sample, but the data in {} has 8",
                s(&other),
                s(&x)
            )),
            "{args:?}: {e}"
        );
        assert_eq!(snapshot(&dir), before, "{args:?}");
    }
}

/// An output named by a link the kernel resolves without a file name
/// (`/dev/stdout`, `/proc/self/fd/1` when stdout is a pipe, as here) is
/// what the link opens — a FIFO, refused by name — not a free name (it was
/// taken for one, and the save failed with "No such file or directory").
#[cfg(target_os = "linux")]
#[test]
fn an_output_through_a_proc_fd_link_is_what_it_opens() {
    let dir = setup("misuse-fd-link");
    let (m, x) = (s_static(dir.join("m.st")), s_static(dir.join("x.npy")));
    for out in ["/dev/stdout", "/proc/self/fd/1"] {
        for args in [
            vec!["score", "-m", m, "--data", x, "-o", out],
            vec!["reconstruct", "-m", m, "--data", x, "-o", out],
        ] {
            let e = fails(&args, 1);
            assert!(
                e.contains(&format!(
                    "{out}: is a FIFO (named pipe), not a regular file"
                )),
                "{args:?}: {e}"
            );
        }
    }
}

/// A preset that cannot be built for the data's images is named, with the
/// images, beside the layer that could not be built.
#[test]
fn a_preset_too_large_for_the_images_is_named_with_them() {
    let dir = setup("misuse-preset-images");
    let x = dir.join("big.npy");
    let mut f = std::fs::File::create(&x).unwrap();
    let data = vec![0.0f32; 2 * 1100 * 1100];
    sparse_ae::data::npy::write_to(&mut f, &[2, 1100, 1100], &data, &x).unwrap();
    drop(f);
    let out = dir.join("o.st");
    let e = fails(
        &[
            "train",
            "--preset",
            "conv",
            "--data",
            s(&x),
            "--out",
            s(&out),
        ],
        1,
    );
    assert!(
        e.contains("--preset: `conv` cannot be built for the data's 1100×1100 images: layers[0]"),
        "{e}"
    );
    let e = fails(
        &[
            "train",
            "--preset",
            "nosuch",
            "--data",
            s(&x),
            "--out",
            s(&out),
        ],
        1,
    );
    assert!(
        e.contains("unknown preset `nosuch`") && !e.contains("cannot be built"),
        "{e}"
    );
}

/// The row of a one-row `.npy` is both splits, and `train` says so, under
/// `-q` too (it is no progress line); three rows hold one out. `eval` of one
/// sample says FVU is undefined (no variance to explain) instead of NaN.
#[test]
fn a_one_row_file_says_its_test_row_is_not_held_out() {
    let dir = setup("misuse-one-row");
    let out = dir.join("o.st");
    for (rows, quiet) in [(1, false), (1, true), (3, false)] {
        let x = dir.join(format!("x{rows}.npy"));
        let data: Vec<f32> = (0..4 * rows).map(|i| i as f32 / 16.0).collect();
        sparse_ae::data::npy::write(&x, rows, 4, &data).unwrap();
        let mut args = vec![
            "train",
            "--preset",
            "shallow",
            "--data",
            s(&x),
            "--batch-size",
            "1",
            "--out",
            s(&out),
        ];
        if quiet {
            args.push("-q");
        }
        let o = run(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{e}");
        let said = e.contains("has one row: it is both the training and the test split");
        assert_eq!(said, rows == 1, "{e}");
        assert_eq!(e.contains("test set 1 samples"), !quiet, "{e}");
        // Three rows: the training split's two differ.
        let o = run(&[
            "eval",
            "--model",
            s(&out),
            "--data",
            s(&x),
            "--split",
            "train",
        ]);
        let (text, e) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "{e}");
        let fvu = text
            .lines()
            .find(|l| l.starts_with("FVU"))
            .unwrap_or_default();
        match rows {
            1 => assert!(fvu.contains("undefined: the samples do not vary"), "{text}"),
            _ => assert!(
                fvu.contains("explained variance") && !fvu.contains("NaN"),
                "{text}"
            ),
        }
    }
}

/// Without `--data`, an empty `SPARSE_AE_DATA` counts as unset, and the
/// error that lists the directories searched says it was set but empty
/// (it said "is not set"); unset, it says so.
#[test]
fn an_empty_data_variable_is_named_as_empty() {
    let dir = setup("misuse-empty-data-env");
    let empty = dir.join("nothing-here");
    std::fs::create_dir_all(&empty).unwrap();
    for value in [Some(""), None] {
        let mut c = cmd(&["eval", "--model", s(&dir.join("m.st")), "--limit", "5"]);
        c.current_dir(&empty)
            .env("SPARSE_AE_CACHE", &empty)
            .env("XDG_CACHE_HOME", &empty)
            .env("HOME", &empty);
        if let Some(v) = value {
            c.env("SPARSE_AE_DATA", v);
        }
        let o = c.output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains("mnist not found"), "{e}");
        let want = match value {
            Some(_) => "(SPARSE_AE_DATA is set but empty, which counts as not set)",
            None => "(SPARSE_AE_DATA is not set)",
        };
        assert!(e.contains(want), "{e}");
    }
}
