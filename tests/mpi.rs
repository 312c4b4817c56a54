//! `mpirun -n P sparse-ae train …` (feature `mpi`, Open MPI's `mpirun` on
//! the PATH): byte-identical model files for P = 1, 2, 4 and the plain
//! process (with input noise, batch top-k and AuxK too), resumption across
//! P, and a killed rank.
#![cfg(feature = "mpi")]

mod common;

use sparse_ae::io::model_file::load_checkpoint;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sparse-ae");

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A fresh directory for one `mpirun`'s session files (removed after the
/// run). The tests run in parallel, and concurrent `mpirun`s on one node
/// share Open MPI's session directory, `/tmp/ompi.HOST.UID`, which each
/// creates at its start and removes at its end when empty: a job starting
/// while another ends can fail in `orte_init` ("A call to mkdir was unable
/// to create the desired directory", open-mpi/ompi#8510; the workaround
/// there is this one). Short, under /tmp: the path must leave room for
/// Unix-socket names.
fn session_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("sae-mpi-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `sparse-ae` (plain when `ranks` is 0, else under `mpirun -n ranks`, in
/// `session`, a directory of its own: [`session_dir`]) with one thread per
/// process.
fn command(ranks: usize, session: &Path, args: &[&str]) -> Command {
    let mut c = if ranks == 0 {
        Command::new(BIN)
    } else {
        let mut c = Command::new("mpirun");
        c.args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--mca",
            "orte_tmpdir_base",
        ])
        .arg(session)
        .arg("-n")
        .arg(ranks.to_string())
        .arg(BIN);
        c
    };
    c.args(args)
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("SPARSE_AE_DATA")
        .env_remove("SPARSE_AE_KERNEL")
        .env_remove("SPARSE_AE_TOPK_PATH")
        .env_remove("SPARSE_AE_THREAD_POLICY");
    c
}

fn ok(ranks: usize, args: &[&str]) -> Output {
    let session = session_dir();
    let o = command(ranks, &session, args).output().unwrap();
    let _ = std::fs::remove_dir_all(&session);
    assert!(
        o.status.success(),
        "{ranks} ranks: sparse-ae {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The tiny data set (8×8 images), made once per test.
fn data(dir: &Path) -> PathBuf {
    let d = dir.join("data");
    std::fs::create_dir_all(&d).unwrap();
    common::write_tiny_mnist(&d, 8, 200, 40);
    d
}

/// Trains `model` (preset flags) on `data` into `out` under `ranks`.
fn train(ranks: usize, data: &Path, out: &Path, model: &[&str], extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--seed",
        "3",
        "-q",
    ];
    args.extend_from_slice(model);
    args.extend_from_slice(extra);
    ok(ranks, &args)
}

/// Trains `model` with `run` on `data` in the plain process and under
/// `ranks` ranks (files `dir/NAME-plain.st` and `dir/NAME-RANKS.st`) and
/// asserts the two model files are the same bytes.
fn same_bytes_as_plain(
    dir: &Path,
    data: &Path,
    name: &str,
    model: &[&str],
    run: &[&str],
    ranks: usize,
) {
    let (want, got) = (
        dir.join(format!("{name}-plain.st")),
        dir.join(format!("{name}-{ranks}.st")),
    );
    train(0, data, &want, model, run);
    train(ranks, data, &got, model, run);
    assert!(bytes(&got) == bytes(&want), "{name}: {ranks} ranks differ");
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

/// Dense, KL and TopK models in 4 micro-batches of a batch of 30 (sizes 8
/// and 7; 4 ranks own one each, 2 own two): the model file is the same
/// bytes for the plain process and 1, 2 and 4 ranks. Then the default
/// decomposition (two halves of a batch of 128) under 2 ranks, and a
/// streamed `.npy` under 2 ranks.
#[test]
fn every_number_of_ranks_writes_the_same_model() {
    let dir = common::temp_dir("mpi_same_model");
    let data = data(&dir);
    let models: [(&str, &[&str]); 3] = [
        ("dense", &["--preset", "deep"]),
        ("kl", &["--preset", "sparse-kl"]),
        ("topk", &["--preset", "topk"]),
    ];
    let run = [
        "--epochs",
        "2",
        "--batch-size",
        "30",
        "--micro-batches",
        "4",
    ];
    for (name, model) in models {
        let want = dir.join(format!("{name}-plain.safetensors"));
        train(0, &data, &want, model, &run);
        for ranks in [1, 2, 4] {
            let got = dir.join(format!("{name}-{ranks}.safetensors"));
            let o = train(ranks, &data, &got, model, &run);
            assert!(bytes(&got) == bytes(&want), "{name}: {ranks} ranks differ");
            assert!(o.stdout.is_empty());
        }
    }
    // Without --micro-batches: the default halves, one per rank.
    let model: &[&str] = &["--preset", "shallow"];
    let run = ["--epochs", "1", "--batch-size", "128"];
    same_bytes_as_plain(&dir, &data, "default halves", model, &run, 2);
    // Rows of a .npy streamed in chunks, each rank reading its own rows.
    let npy = dir.join("x.npy");
    let mut r = sparse_ae::rng::Rng::new(4);
    let x: Vec<f32> = (0..300 * 16).map(|_| r.next_f32()).collect();
    sparse_ae::data::npy::write(&npy, 300, 16, &x).unwrap();
    let run = [
        "--epochs",
        "2",
        "--batch-size",
        "20",
        "--micro-batches",
        "4",
        "--stream",
        "--chunk-mb",
        "0.002",
    ];
    same_bytes_as_plain(&dir, &npy, "streamed .npy", model, &run, 2);
}

/// The statistics of the whole batch under 2 ranks: a denoising preset
/// (each rank draws the noise of its own rows), a batch top-k SAE (the
/// whole batch's threshold and ties) and the same with AuxK and a dead
/// window short enough for dead latents (the whole batch's residual mean
/// and denominator), in 4 micro-batches of a batch of 30: the plain
/// process's bytes.
#[test]
fn whole_batch_statistics_over_two_ranks() {
    let dir = common::temp_dir("mpi_whole_batch");
    let data = data(&dir);
    let config = dir.join("batch-topk.json");
    std::fs::write(
        &config,
        r#"{"input": 64, "code_layer": 0, "loss": "mse", "topk": {"k": 4, "batch": true},
            "layers": [{"type": "dense", "units": 96, "activation": "relu"},
                       {"type": "dense", "units": 64, "activation": "linear"}]}"#,
    )
    .unwrap();
    let models: [(&str, &[&str]); 3] = [
        ("denoising", &["--preset", "denoising"]),
        ("batch-topk", &["--config", s(&config)]),
        (
            "auxk",
            &["--config", s(&config), "--auxk", "--dead-window", "30"],
        ),
    ];
    let run = [
        "--epochs",
        "2",
        "--batch-size",
        "30",
        "--micro-batches",
        "4",
    ];
    for (name, model) in models {
        same_bytes_as_plain(&dir, &data, name, model, &run, 2);
    }
}

/// Accumulating 3 batches of 10 in 2 micro-batches each under 2 ranks
/// (each rank computing 3 micro-batches in one reused workspace) writes the
/// bytes of the plain process at batch 30 in 6 micro-batches.
#[test]
fn accumulation_under_two_ranks_writes_the_big_batch_model() {
    let dir = common::temp_dir("mpi_accumulate");
    let data = data(&dir);
    let model: &[&str] = &["--preset", "deep"];
    let (want, got) = (dir.join("big.st"), dir.join("acc.st"));
    let big = [
        "--epochs",
        "2",
        "--batch-size",
        "30",
        "--micro-batches",
        "6",
    ];
    train(0, &data, &want, model, &big);
    let acc = [
        "--epochs",
        "2",
        "--batch-size",
        "10",
        "--micro-batches",
        "2",
        "--accumulate",
        "3",
    ];
    train(2, &data, &got, model, &acc);
    assert!(bytes(&got) == bytes(&want), "accumulated under 2 ranks");
}

/// A checkpoint written under 2 ranks resumes under 4 ranks and in the
/// plain process to the bytes of an uninterrupted run; only rank 0 writes.
#[test]
fn checkpoints_resume_under_any_number_of_ranks() {
    let dir = common::temp_dir("mpi_resume");
    let data = data(&dir);
    let model: &[&str] = &["--preset", "sparse-kl"];
    let base = ["--batch-size", "24", "--micro-batches", "8"];
    let whole = dir.join("whole.st");
    train(
        0,
        &data,
        &whole,
        model,
        &[&base[..], &["--epochs", "3"]].concat(),
    );
    let ck = dir.join("ck.st");
    let metrics = dir.join("m.csv");
    let first = [
        &base[..],
        &[
            "--epochs",
            "1",
            "--checkpoint",
            s(&ck),
            "--metrics",
            s(&metrics),
        ],
    ]
    .concat();
    train(2, &data, &dir.join("first.st"), model, &first);
    let lines = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert_eq!(lines, 2, "one header and one epoch, from rank 0 alone");
    for (ranks, name) in [(4, "r4.st"), (0, "r0.st")] {
        let out = dir.join(name);
        let resume = ["--resume", s(&ck), "--epochs", "3"];
        let mut args = vec!["train", "--data", s(&data), "--out", s(&out), "-q"];
        args.extend_from_slice(&resume);
        ok(ranks, &args);
        assert!(bytes(&out) == bytes(&whole), "resumed under {ranks} ranks");
    }
}

/// A job stopped inside an epoch and resumed (under other rank counts)
/// writes the metrics rows of a job never stopped: the losses and the
/// counts exactly; the code's mean activations (the ρ̂ columns) are sums
/// over ranks, rounded in another order.
#[test]
fn a_job_resumed_inside_an_epoch_writes_the_rows_of_one_never_stopped() {
    let dir = common::temp_dir("mpi_resume_inside");
    let data = data(&dir);
    let model: &[&str] = &["--preset", "sparse-kl"];
    let base = ["--batch-size", "24", "--micro-batches", "8"];
    let rows = |p: &Path| -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(p).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let exact = |k: &&str| {
            !["samples_per_sec", "seconds", "one_thread_steps"].contains(k)
                && !k.starts_with("rho_hat")
        };
        lines
            .map(|l| {
                header
                    .iter()
                    .zip(l.split(','))
                    .filter(|(k, _)| exact(k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect()
            })
            .collect()
    };
    let whole = dir.join("whole.csv");
    let m = dir.join("m.csv");
    let ck = dir.join("ck.st");
    let metrics = |p: &Path, more: &[&str]| -> Vec<String> {
        [&base[..], &["--metrics", s(p)], more]
            .concat()
            .iter()
            .map(|a| a.to_string())
            .collect()
    };
    let run = |ranks: usize, args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let model = if args.contains(&"--resume") {
            &[][..]
        } else {
            model
        };
        train(ranks, &data, &dir.join("out.st"), model, &args);
    };
    run(2, metrics(&whole, &["--epochs", "3"]));
    // 8 steps an epoch: stopped at step 3 of epoch 2 under 2 ranks, then
    // at step 6 of it under 4, then resumed to the end in the plain process.
    run(
        2,
        metrics(
            &m,
            &["--epochs", "3", "--steps", "11", "--checkpoint", s(&ck)],
        ),
    );
    let resume = ["--resume", s(&ck), "--checkpoint", s(&ck), "--epochs", "3"];
    run(4, metrics(&m, &[&resume[..], &["--steps", "14"]].concat()));
    run(0, metrics(&m, &resume));
    assert_eq!(rows(&m), rows(&whole));
}

/// Waits for `job` (its stderr piped) to end, at most `secs` seconds (then
/// kills it and fails with `hung`); its status and stderr.
fn finish(
    job: &mut std::process::Child,
    secs: u64,
    hung: &str,
) -> (std::process::ExitStatus, String) {
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = job.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            let _ = job.kill();
            panic!("{hung}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

/// Kills rank 1 of a long run: the job ends with mpirun's message naming
/// the dead process and rank 0's naming the last checkpoint, which is
/// whole.
#[test]
fn a_killed_rank_ends_the_job_and_keeps_the_checkpoint() {
    let dir = common::temp_dir("mpi_killed");
    let data = data(&dir);
    let ck = dir.join("ck.st");
    let tag = format!("mpi-kill-{}", std::process::id());
    let session = session_dir();
    let mut job = command(
        2,
        &session,
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&dir.join("m.st")),
            "--preset",
            "shallow",
            "--batch-size",
            "20",
            "--micro-batches",
            "2",
            "--epochs",
            "1000000",
            "--checkpoint",
            s(&ck),
            "-q",
        ],
    )
    .env("SPARSE_AE_TEST_JOB", &tag)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let t0 = Instant::now();
    while !ck.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint");
        assert!(job.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let victim = rank_pid(&tag, 1).expect("rank 1's process");
    let killed = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, err) = finish(
        &mut job,
        60,
        "the job still runs 60 s after rank 1 was killed",
    );
    let _ = std::fs::remove_dir_all(&session);
    assert!(!status.success(), "the job succeeded:\n{err}");
    assert!(
        err.contains("rank 1") && err.contains("signal 9"),
        "no message naming the killed rank:\n{err}"
    );
    let (t, _) = load_checkpoint(&ck).expect("the last checkpoint loads");
    assert!(t.steps() > 0 && t.steps() % 10 == 0, "{} steps", t.steps());
    let line = format!(
        "error: the job was ended by mpirun (another rank failed or the job was cancelled); the last checkpoint, {} at step {}, is whole",
        ck.display(),
        t.steps()
    );
    assert!(
        err.contains(&line),
        "no line from rank 0 naming the checkpoint:\n{err}"
    );
}

/// The process of `rank` of the job whose environment holds `tag`.
fn rank_pid(tag: &str, rank: usize) -> Option<u32> {
    let want_tag = format!("SPARSE_AE_TEST_JOB={tag}");
    let want_rank = format!("OMPI_COMM_WORLD_RANK={rank}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        let has = |v: &str| vars.contains(&v.as_bytes());
        if has(&want_tag) && has(&want_rank) {
            return Some(pid);
        }
    }
    None
}

/// The bytes this run's ranks read from data files, from the line each
/// prints with `SPARSE_AE_READ_STATS` set, in rank order.
fn bytes_read(o: &Output, ranks: usize) -> Vec<u64> {
    let err = String::from_utf8_lossy(&o.stderr);
    let mut got = vec![None; ranks];
    for line in err.lines() {
        let Some(rest) = line.strip_prefix("rank ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(r), Some("of"), Some(p), Some("read"), Some(b)) =
            (w.next(), w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        assert_eq!(
            p.trim_end_matches(':').parse::<usize>().unwrap(),
            ranks,
            "{line}"
        );
        got[r.parse::<usize>().unwrap()] = Some(b.parse::<u64>().unwrap());
    }
    got.into_iter()
        .map(|b| b.unwrap_or_else(|| panic!("a rank printed no read line:\n{err}")))
        .collect()
}

/// Each of 2 ranks reads about half the training rows' bytes of an epoch
/// (plus headers; rank 0 also the test split it validates on; with
/// `--normalize` its share of the training rows once more), for a raw IDX
/// data set, a `.npy` read in memory and a streamed `.npy`; and the model
/// file is the plain process's bytes.
#[test]
fn each_rank_reads_its_own_share_of_the_data() {
    let dir = common::temp_dir("mpi_share");
    // A raw IDX data set: 480 training and 40 test images of 8×8.
    let idx_dir = dir.join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    let mut r = sparse_ae::rng::Rng::new(9);
    let (n_train, n_test, d) = (480usize, 40usize, 64usize);
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        use sparse_ae::data::idx::{IdxArray, IdxData, write};
        let px: Vec<u8> = (0..n * d).map(|_| (r.next_u64() >> 56) as u8).collect();
        let images = IdxArray {
            dims: vec![n, 8, 8],
            data: IdxData::U8(px),
        };
        write(
            &idx_dir.join(format!("{prefix}-images-idx3-ubyte")),
            &images,
        )
        .unwrap();
        let labels = IdxArray {
            dims: vec![n],
            data: IdxData::U8(vec![1; n]),
        };
        write(
            &idx_dir.join(format!("{prefix}-labels-idx1-ubyte")),
            &labels,
        )
        .unwrap();
    }
    // A .npy of 600 rows of 16 f32 values: 540 train, 60 test.
    let npy = dir.join("x.npy");
    let x: Vec<f32> = (0..600 * 16).map(|_| r.next_f32()).collect();
    sparse_ae::data::npy::write(&npy, 600, 16, &x).unwrap();
    let batch = [
        "--batch-size",
        "40",
        "--micro-batches",
        "4",
        "--epochs",
        "1",
    ];
    let stream = ["--stream", "--chunk-mb", "0.01"];
    let norm = ["--normalize=sqrt-d", "--linear-output"];
    let stream_norm = [&stream[..], &["--normalize", "--linear-output"]].concat();
    // Every row is 64 bytes.
    struct Case<'a> {
        name: &'a str,
        data: &'a Path,
        /// Training and test rows.
        n: usize,
        n_test: usize,
        flags: &'a [&'a str],
        /// The most training rows a rank reads for `--normalize`.
        norm_rows: usize,
    }
    let case = |name, data, n, n_test, flags, norm_rows| Case {
        name,
        data,
        n,
        n_test,
        flags,
        norm_rows,
    };
    let cases = [
        case("idx", &idx_dir, n_train, n_test, &[], 0),
        case("npy", &npy, 540, 60, &[], 0),
        case("stream", &npy, 540, 60, &stream, 0),
        // The norms of rows 0..270 and 270..540.
        case("npy-normalized", &npy, 540, 60, &norm, 270),
        // Sums of squares of chunks of 163 rows: rows 0..326 and 326..540.
        case("stream-normalized", &npy, 540, 60, &stream_norm, 326),
    ];
    for Case {
        name,
        data,
        n,
        n_test,
        flags: extra,
        norm_rows,
    } in cases
    {
        let (want, got) = (
            dir.join(format!("{name}-plain.st")),
            dir.join(format!("{name}-2.st")),
        );
        let mut args = vec![
            "train",
            "--data",
            s(data),
            "--out",
            s(&want),
            "--seed",
            "3",
            "-q",
        ];
        args.extend_from_slice(&["--preset", "shallow"]);
        args.extend_from_slice(&batch);
        args.extend_from_slice(extra);
        let session = session_dir();
        let o = command(0, &session, &args)
            .env("SPARSE_AE_READ_STATS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let one = bytes_read(&o, 1)[0];
        args[4] = s(&got);
        let o = command(2, &session, &args)
            .env("SPARSE_AE_READ_STATS", "1")
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&session);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let per_rank = bytes_read(&o, 2);
        assert!(bytes(&got) == bytes(&want), "{name}: 2 ranks differ");
        // An epoch of n / 40 batches (a last partial batch is dropped):
        // each rank reads its 20 rows of each batch, 64 bytes a row.
        let half = ((n / 40) * 20 * 64) as u64;
        // Rank 0 validates: the test split and its labels; headers are a
        // few hundred bytes.
        let test = (n_test * (64 + 1)) as u64;
        for (rank, &b) in per_rank.iter().enumerate() {
            let most = half + (norm_rows * 64) as u64 + 2048 + if rank == 0 { test } else { 0 };
            assert!(
                (half..=most).contains(&b),
                "{name}: rank {rank} read {b} bytes; its rows are {half} (one process: {one})"
            );
        }
        assert!(
            one >= (n * 64) as u64,
            "{name}: one process read {one} bytes, less than its training rows"
        );
        eprintln!("{name}: one process {one} bytes, 2 ranks {per_rank:?}");
    }
}

/// A gzip-compressed IDX training split cannot be read by row: every rank
/// loads it whole, and rank 0 alone says so, once.
#[test]
fn a_gzip_training_split_is_loaded_whole_and_said_once() {
    let dir = common::temp_dir("mpi_gzip_note");
    let data = data(&dir);
    let out = dir.join("m.st");
    let args = [
        "train",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--preset",
        "shallow",
        "--batch-size",
        "40",
        "--epochs",
        "1",
    ];
    let o = ok(2, &args);
    let err = String::from_utf8_lossy(&o.stderr);
    let note = "are gzip-compressed, which cannot be read by row: every rank loads them whole";
    assert_eq!(err.matches(note).count(), 1, "{err}");
}

/// Ranks given different settings or data (`mpirun … : …`, or one node's
/// stale checkpoint) are refused before the first step, naming the
/// setting: they crashed in a collective of the wrong size, hung, or wrote
/// a model no single run gives.
#[test]
fn ranks_given_different_settings_are_refused() {
    let dir = common::temp_dir("mpi-disagree");
    let data = data(&dir);
    let out = dir.join("m.st");
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "train",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--preset",
            "shallow",
            "--batch-size",
            "32",
            "-q",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    for (a, b, want) in [
        (
            vec!["--epochs", "2"],
            vec!["--epochs", "2", "--lr", "0.01"],
            "optimizer",
        ),
        (
            vec!["--epochs", "2"],
            vec!["--epochs", "2", "--seed", "7"],
            "parameters",
        ),
        (
            vec!["--epochs", "2"],
            vec!["--epochs", "2", "--limit", "100"],
            "data samples",
        ),
        (vec!["--epochs", "3"], vec!["--epochs", "2"], "--epochs"),
        (
            vec!["--epochs", "2"],
            vec!["--epochs", "2", "--no-shuffle"],
            "--no-shuffle",
        ),
    ] {
        let session = session_dir();
        let mut c = Command::new("mpirun");
        c.args([
            "--allow-run-as-root",
            "--oversubscribe",
            "--mca",
            "orte_tmpdir_base",
        ])
        .arg(&session)
        .args(["-n", "1", BIN])
        .args(base(&a))
        .args([":", "-n", "1", BIN])
        .args(base(&b))
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("SPARSE_AE_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let (status, err) = finish(
            &mut child,
            120,
            &format!("{a:?} against {b:?}: the job hung"),
        );
        let _ = std::fs::remove_dir_all(&session);
        assert!(!status.success(), "{a:?} against {b:?} succeeded:\n{err}");
        assert!(
            err.contains(want) && err.contains("every rank of a job must be given the same"),
            "{a:?} against {b:?}:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{a:?} against {b:?}: a model was written");
    }
}
