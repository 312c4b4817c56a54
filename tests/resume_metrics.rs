//! A run interrupted between an epoch's `--metrics` row and its checkpoint
//! (here the checkpoint's save fails: the file size limit stands in for a
//! full disk; a kill leaves the same files) and then resumed writes each
//! epoch's row once: the file ends as an uninterrupted run's, rows of
//! earlier runs in it kept.

mod common;

use sparse_ae::io::json::Value;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The columns that measure time, not the model (see docs/cli.md).
const TIMING: [&str; 3] = ["samples_per_sec", "seconds", "one_thread_steps"];

use common::{block_unit, run_limited, run_ok};

/// A scratch directory with data `x.npy` (40 × 8) and a config `c.json`
/// (8 → 256 → 8): its checkpoint is far larger than three metrics rows.
fn setup(name: &str) -> PathBuf {
    let dir = common::temp_dir(name);
    common::write_tiny_npy(&dir);
    std::fs::write(
        dir.join("c.json"),
        r#"{"input": 8, "layers": [{"units": 256, "activation": "relu"}, {"units": 8, "activation": "linear"}], "code_layer": 0, "loss": "mse", "l1": {"lambda": 0.001}}"#,
    )
    .unwrap();
    dir
}

/// Each row of a metrics file as (column, value) pairs without the timing
/// columns.
fn rows(path: &Path) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "jsonl") {
        return text
            .lines()
            .map(|l| {
                let v = sparse_ae::io::json::parse(l.as_bytes()).unwrap();
                v.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| !TIMING.contains(&k.as_str()))
                    .map(|(k, v): &(String, Value)| (k.clone(), v.to_json().unwrap()))
                    .collect()
            })
            .collect();
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .filter(|(k, _)| !TIMING.contains(k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn epochs(rows: &[Vec<(String, String)>]) -> Vec<String> {
    rows.iter()
        .map(|r| r.iter().find(|(k, _)| k == "epoch").unwrap().1.clone())
        .collect()
}

/// `train` on `x` at batch 4, quiet, with `extra`.
fn train_args(x: &Path, extra: &[&str]) -> Vec<String> {
    ["train", "--data", s(x), "--batch-size", "4", "-q"]
        .iter()
        .chain(extra)
        .map(|a| a.to_string())
        .collect()
}

/// The reference metrics, the metrics, the checkpoint and the model of the
/// runs writing metrics as `ext`.
fn files(dir: &Path, ext: &str) -> [PathBuf; 4] {
    ["ref.EXT", "m.EXT", "ck-EXT.st", "out-EXT.st"].map(|n| dir.join(n.replace("EXT", ext)))
}

#[test]
fn a_resumed_run_writes_each_epochs_row_once() {
    let dir = setup("resume-metrics");
    let unit = block_unit(&dir);
    let (c, x) = (dir.join("c.json"), dir.join("x.npy"));
    let args = |extra: &[&str]| train_args(&x, extra);
    for ext in ["csv", "jsonl"] {
        let [reference, m, ck, out] = files(&dir, ext);
        let call = |v: Vec<String>| run_ok(&v);
        // The uninterrupted run.
        call(args(&[
            "--config",
            s(&c),
            "--epochs",
            "3",
            "--metrics",
            s(&reference),
            "--out",
            s(&out),
        ]));
        // An earlier run's rows in the same file, at the same steps: kept.
        call(args(&[
            "--config",
            s(&c),
            "--epochs",
            "3",
            "--metrics",
            s(&m),
            "--out",
            s(&out),
        ]));
        // Epoch 1 with its checkpoint.
        call(args(&[
            "--config",
            s(&c),
            "--epochs",
            "1",
            "--checkpoint",
            s(&ck),
            "--metrics",
            s(&m),
            "--out",
            s(&out),
        ]));
        let ck_bytes = std::fs::read(&ck).unwrap();
        let m_size = std::fs::metadata(&reference).unwrap().len() as usize;
        assert!(
            2 * m_size < ck_bytes.len(),
            "the rows ({m_size} bytes) must fit where the checkpoint ({}) does not",
            ck_bytes.len()
        );
        // Resumed: epoch 2's row is written, then its checkpoint's save fails.
        let blocks = (2 * m_size).div_ceil(unit) + 1;
        let resume = args(&[
            "--epochs",
            "3",
            "--resume",
            s(&ck),
            "--checkpoint",
            s(&ck),
            "--metrics",
            s(&m),
            "--out",
            s(&out),
        ]);
        let o = run_limited(Some(blocks), &resume);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(s(&ck)) && !e.contains("panicked"), "{e}");
        assert_eq!(std::fs::read(&ck).unwrap(), ck_bytes, "{e}");
        assert_eq!(epochs(&rows(&m)), ["1", "2", "3", "1", "2"], "{e}");

        // Resumed again: epoch 2's row is not written twice.
        let e = run_ok(&resume);
        let want = rows(&reference);
        let got = rows(&m);
        assert_eq!(epochs(&got), ["1", "2", "3", "1", "2", "3"], "{ext}");
        assert!(e.contains("removed 1 row(s)"), "{e}");
        // The values (all but the timing columns) are an uninterrupted run's.
        assert_eq!(got[..3], want[..], "{ext}: the earlier run's rows changed");
        assert_eq!(got[3..], want[..], "{ext}: the resumed run's rows differ");
        // Resumed once more from the final checkpoint: nothing left, no file changed.
        let before = std::fs::read(&m).unwrap();
        let o = run_limited(None, &resume);
        assert!(!o.status.success());
        assert_eq!(std::fs::read(&m).unwrap(), before);
    }
}

#[test]
fn a_run_resumed_inside_an_epoch_writes_that_epochs_row_over_all_its_steps() {
    let dir = setup("resume-metrics-inside");
    let (c, x) = (dir.join("c.json"), dir.join("x.npy"));
    let args = |extra: &[&str]| train_args(&x, extra);
    for ext in ["csv", "jsonl"] {
        let [reference, m, ck, out] = files(&dir, ext);
        let (m_, ck_, out_, ref_) = (s(&m), s(&ck), s(&out), s(&reference));
        run_ok(&args(&[
            "--config",
            s(&c),
            "--epochs",
            "3",
            "--metrics",
            ref_,
            "--out",
            out_,
        ]));
        // 10 steps an epoch: stopped after step 3 of epoch 2, then at step
        // 6 of it, then resumed to the end.
        run_ok(&args(&[
            "--config",
            s(&c),
            "--epochs",
            "3",
            "--steps",
            "13",
            "--checkpoint",
            ck_,
            "--metrics",
            m_,
            "--out",
            out_,
        ]));
        assert_eq!(epochs(&rows(&m)), ["1", "2"]);
        let e = run_ok(&args(&[
            "--epochs",
            "3",
            "--steps",
            "16",
            "--resume",
            ck_,
            "--checkpoint",
            ck_,
            "--metrics",
            m_,
            "--out",
            out_,
        ]));
        assert!(e.contains("removed the row of the epoch"), "{e}");
        assert_eq!(epochs(&rows(&m)), ["1", "2"]);
        run_ok(&args(&[
            "--epochs",
            "3",
            "--resume",
            ck_,
            "--checkpoint",
            ck_,
            "--metrics",
            m_,
            "--out",
            out_,
        ]));
        let (got, want) = (rows(&m), rows(&reference));
        assert_eq!(
            got, want,
            "{ext}: the resumed runs' rows are not the uninterrupted run's"
        );
    }
}
