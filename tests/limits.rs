//! Every command under an address-space limit (`ulimit -v`) and a thread
//! limit (`ulimit -u`): it succeeds, or ends with exit code 1 and an error
//! that names memory (or the threads) and what to do — never an abort on a
//! refused allocation (134), a panic (101) or a signal. The limits sweep
//! the range where the engine's own buffers (the data, a trainer's buffers,
//! evaluation batches, the packing buffers, a PNG's encoder) meet the
//! address space the program and its threads' heaps already take.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sparse-ae");

/// Address-space limits tried, in kB: from where the program barely starts
/// to where every command here succeeds.
const LIMITS_KB: &[u64] = &[
    20_000, 30_000, 40_000, 60_000, 80_000, 100_000, 125_000, 150_000, 175_000, 200_000, 250_000,
    300_000, 400_000,
];

/// Runs the tool with `args` after `ulimit {limit}` in `sh` (with two
/// worker threads, so that the heaps the threads take do not depend on the
/// machine's cores).
fn run_limited(limit: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit {limit} || exit 99; exec \"$0\" --threads 2 \"$@\""
        ))
        .arg(BIN)
        .args(args)
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        .env_remove("SPARSE_AE_TOPK_PATH")
        .env_remove("SPARSE_AE_THREAD_POLICY")
        .env_remove("RAYON_NUM_THREADS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// MNIST-sized images (28×28) of hashed pixels: 20,000 training images,
/// gzip-compressed, and 10,000 test images, so that the data's buffers
/// matter under the limits tried.
fn write_data(dir: &Path) {
    common::write_mnist_like(dir, 28, 20_000, 10_000, |i, r, c| {
        let k = (i * 28 + r) * 28 + c;
        ((k * 2_654_435_761usize) >> 13) as u8 & 0x7f
    });
}

/// A data directory and two trained models (a sigmoid one, and a linear
/// one `export` takes).
fn setup(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = common::temp_dir(name);
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    write_data(&data);
    let (m, lin) = (dir.join("m.st"), dir.join("lin.st"));
    for (out, extra) in [(&m, None), (&lin, Some("--linear-output"))] {
        let mut args = vec![
            "train",
            "--preset",
            "sparse-l1",
            "--data",
            s(&data),
            "--limit",
            "500",
            "--steps",
            "3",
            "--out",
            s(out),
            "-q",
        ];
        args.extend(extra);
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (dir, m, lin)
}

/// Whether `o` ended cleanly: success, or exit code 1 with an error naming
/// memory. Anything else fails the test, naming the command and limit.
fn clean(o: &Output, args: &[&str], limit: &str) -> bool {
    let err = String::from_utf8_lossy(&o.stderr);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "sparse-ae {args:?} under `ulimit {limit}` ended with {:?} (status {:?}), not an error:\n{err}",
        code,
        o.status
    );
    assert!(!err.contains("panicked"), "{args:?} @ {limit}: {err}");
    if code == Some(1) {
        assert!(
            err.starts_with("error: ") && err.contains("memory"),
            "sparse-ae {args:?} under `ulimit {limit}`: the error does not name memory:\n{err}"
        );
        return false;
    }
    true
}

/// Sweeps `cases` over the limits: each run succeeds or fails cleanly, and
/// each case succeeds at some limit; one that reads the data is refused at
/// some other (so the sweep crosses the range where its buffers are
/// refused).
fn sweep(dir: &Path, cases: &[Vec<&str>]) {
    for args in cases {
        let reads_data = args.contains(&"--data");
        let (mut ok, mut refused) = (0, 0);
        for kb in LIMITS_KB {
            let limit = format!("-v {kb}");
            let _ = std::fs::remove_dir_all(dir.join("exp"));
            match clean(&run_limited(&limit, args), args, &limit) {
                true => ok += 1,
                false => refused += 1,
            }
        }
        assert!(
            ok > 0 && (refused > 0 || !reads_data),
            "{args:?}: {ok} succeeded, {refused} refused"
        );
    }
}

#[test]
fn training_under_an_address_space_limit_ends_cleanly() {
    let (dir, _, _) = setup("limits-train");
    let data = dir.join("data");
    let out = dir.join("t.st");
    let cases: Vec<Vec<&str>> = ["sparse-l1", "deep", "overcomplete-kl", "topk"]
        .iter()
        .map(|p| {
            vec![
                "train",
                "--preset",
                p,
                "--data",
                s(&data),
                "--steps",
                "2",
                "--out",
                s(&out),
                "-q",
            ]
        })
        .collect();
    sweep(&dir, &cases);
}

#[test]
fn inference_and_pictures_under_an_address_space_limit_end_cleanly() {
    let (dir, m, lin) = setup("limits-infer");
    let data = dir.join("data");
    let o = |n: &str| dir.join(n).into_os_string().into_string().unwrap();
    let (e, sc, r, f, h, x) = (
        o("e.npy"),
        o("s.csv"),
        o("r.png"),
        o("f.png"),
        o("h.png"),
        o("exp"),
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["eval", "-m", s(&m), "--data", s(&data)],
        vec!["encode", "-m", s(&m), "--data", s(&data), "-o", &e],
        vec!["score", "-m", s(&m), "--data", s(&data), "-o", &sc],
        vec!["reconstruct", "-m", s(&m), "--data", s(&data), "-o", &r],
        vec!["histogram", "-m", s(&m), "--data", s(&data), "-o", &h],
        vec!["features", "-m", s(&m), "-o", &f],
        vec!["export", "-m", s(&lin), "-o", &x],
        vec!["gradcheck", "--preset", "deep"],
        vec!["info"],
    ];
    sweep(&dir, &cases);
}

/// Threads the system will not start (`ulimit -u`, as the unprivileged
/// user `nobody`: root is exempt) are an error naming the threads and
/// `--threads`, for the pool, the round-trip probe of `info` and the thread
/// that reads the test split; not a panic. Needs root (to become `nobody`)
/// and `setpriv`; skipped with the reason otherwise.
#[test]
fn threads_the_system_refuses_are_errors() {
    let skip = |why: &str| eprintln!("skipping the thread-limit test: {why}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return skip(
            "not root (only root can run the tool as `nobody`, whose thread count `ulimit -u` limits)",
        );
    }
    let nobody_runs = Command::new("pgrep")
        .args(["-u", "65534"])
        .output()
        .map(|o| o.status.success());
    match nobody_runs {
        Ok(false) => {}
        Ok(true) => return skip("processes of `nobody` run, which count against its thread limit"),
        Err(e) => return skip(&format!("cannot run pgrep: {e}")),
    }
    // A directory `nobody` may read and write, outside the target
    // directory (whose parents may be closed to it).
    let dir = std::env::temp_dir().join(format!("sparse-ae-limits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    common::write_tiny_mnist(&dir.join("data"), 8, 64, 16);
    let status = Command::new("chmod")
        .args(["-R", "a+rwX", s(&dir)])
        .status()
        .unwrap();
    assert!(status.success());
    let as_nobody = |threads: u32, args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "bash",
                "-c",
            ])
            .arg(format!(
                "ulimit -u {threads} || exit 99; exec \"$0\" --threads 2 \"$@\""
            ))
            .arg(BIN)
            .args(args)
            .env_remove("RAYON_NUM_THREADS")
            .stdin(Stdio::null())
            .output()
    };
    match as_nobody(100, &["--version"]) {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skip(&format!(
                "`nobody` cannot run {BIN} ({:?}: {})",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Err(e) => return skip(&format!("cannot run setpriv: {e}")),
    }
    let data = dir.join("data");
    let out = dir.join("t.st");
    let train = [
        "train",
        "--preset",
        "shallow",
        "--data",
        s(&data),
        "--steps",
        "1",
        "--out",
        s(&out),
        "-q",
    ];
    // 1: no worker starts; 3: the main thread and two workers, and no more
    // (the round-trip probe's thread, the thread reading the test split).
    for (threads, args, which) in [
        (1, &["info"][..], "2 worker threads"),
        (1, &train[..], "2 worker threads"),
        (3, &["info"][..], "a thread to time round trips"),
        (3, &train[..], "a thread to read the test split"),
    ] {
        let o = as_nobody(threads, args).unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?} under `ulimit -u {threads}`: {:?}\n{err}",
            o.status
        );
        assert!(
            err.contains(&format!("cannot start {which}"))
                && err.contains("--threads")
                && !err.contains("panicked"),
            "{args:?} under `ulimit -u {threads}`:\n{err}"
        );
    }
    // With room for them, the same commands run.
    for args in [&["info"][..], &train[..]] {
        let o = as_nobody(100, args).unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
