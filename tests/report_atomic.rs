//! The `--report` directory holds the whole old report or the whole new
//! one: a report that fails part-way (here `metrics.csv` passes the file
//! size limit, standing in for a full disk, after five pictures were
//! written) changes none of the old report's files and leaves nothing
//! behind; a report swapped in half way when the process died is completed
//! by the next run; files of the user's in the directory are kept.

mod common;

use sparse_ae::report::training::recover_report;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

use common::{block_unit, run_limited, run_ok, snapshot};

fn names(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().collect()
}

/// A scratch directory with data `x.npy` (40 × 8) and a config `c.json`
/// (8 → 4 → 8): a model of a few hundred bytes.
fn setup(name: &str) -> PathBuf {
    let dir = common::temp_dir(name);
    common::write_tiny_npy_and_config(&dir);
    dir
}

fn train(dir: &Path, epochs: &str, rep: &Path) -> Vec<String> {
    [
        "train",
        "--config",
        s(&dir.join("c.json")),
        "--data",
        s(&dir.join("x.npy")),
        "--batch-size",
        "36",
        "--epochs",
        epochs,
        "--out",
        s(&dir.join("m.st")),
        "--report",
        s(rep),
        "-q",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

const VECTOR_REPORT: [&str; 9] = [
    "density.png",
    "feature_error.png",
    "histogram.png",
    "index.html",
    "l0.png",
    "loss.png",
    "loss_parts.png",
    "metrics.csv",
    "steps.csv",
];

#[test]
fn a_report_that_fails_part_way_leaves_the_old_one_whole() {
    let dir = setup("report-atomic-fail");
    let unit = block_unit(&dir);
    let rep = dir.join("rep");
    run_ok(&train(&dir, "1", &rep));
    std::fs::write(rep.join("notes.txt"), "mine").unwrap();
    let before = snapshot(&rep);

    // 800 epochs of one step: metrics.csv is far past 64 KiB, each picture
    // and the model below it.
    let long = train(&dir, "800", &rep);
    let o = run_limited(Some((64 << 10) / unit), &long);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("the model was saved to") && e.contains(s(&dir.join("m.st"))),
        "{e}"
    );
    // The error names the report's file, not a temporary one.
    assert!(
        e.contains(s(&rep.join("metrics.csv"))) && !e.contains(".tmp") && !e.contains("panicked"),
        "{e}"
    );
    assert_eq!(snapshot(&rep), before, "{e}");

    // Without the limit the whole new report replaces the old one.
    run_ok(&long);
    let mut want: Vec<String> = VECTOR_REPORT.iter().map(|n| n.to_string()).collect();
    want.push("notes.txt".into());
    want.sort();
    assert_eq!(names(&rep), want);
    assert_eq!(
        std::fs::read_to_string(rep.join("notes.txt")).unwrap(),
        "mine"
    );
    let csv = std::fs::read_to_string(rep.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 801);
    let index = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(index.contains("<td>800</td>"), "{index}");
}

/// A process killed after the new report was complete (the staging
/// directory renamed to `.sparse-ae-report.ready`), with some of its files
/// moved in: the next run moves in the rest and removes the old report's
/// files the new one lacks; one killed while writing the new report left
/// `.sparse-ae-report.tmp`, which is removed. Neither blocks the next run.
#[test]
fn a_report_swapped_in_half_way_is_completed_by_the_next_run() {
    let dir = setup("report-atomic-recover");
    let rep = dir.join("rep");
    run_ok(&train(&dir, "1", &rep));
    std::fs::write(rep.join("notes.txt"), "mine").unwrap();
    let ready = rep.join(".sparse-ae-report.ready");
    std::fs::create_dir(&ready).unwrap();
    std::fs::write(
        ready.join(".sparse-ae-files"),
        "loss.png\nsteps.csv\nindex.html\n",
    )
    .unwrap();
    // loss.png was moved in before the kill; steps.csv and index.html wait.
    std::fs::write(rep.join("loss.png"), "new loss").unwrap();
    std::fs::write(ready.join("steps.csv"), "new steps").unwrap();
    std::fs::write(ready.join("index.html"), "new index").unwrap();
    let tmp = rep.join(".sparse-ae-report.tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("l0.png"), "half").unwrap();

    recover_report(&rep).unwrap();
    assert_eq!(
        names(&rep),
        ["index.html", "loss.png", "notes.txt", "steps.csv"]
    );
    for (name, text) in [
        ("loss.png", "new loss"),
        ("steps.csv", "new steps"),
        ("index.html", "new index"),
        ("notes.txt", "mine"),
    ] {
        assert_eq!(std::fs::read_to_string(rep.join(name)).unwrap(), text);
    }
    // Nothing left to do: a second recovery changes nothing.
    let now = snapshot(&rep);
    recover_report(&rep).unwrap();
    assert_eq!(snapshot(&rep), now);

    // The same leftovers, found by the next run.
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("l0.png"), "half").unwrap();
    std::fs::create_dir(&ready).unwrap();
    std::fs::write(ready.join(".sparse-ae-files"), "index.html\n").unwrap();
    std::fs::write(ready.join("index.html"), "newer index").unwrap();
    run_ok(&train(&dir, "2", &rep));
    let mut want: Vec<String> = VECTOR_REPORT.iter().map(|n| n.to_string()).collect();
    want.push("notes.txt".into());
    want.sort();
    assert_eq!(names(&rep), want);
    let index = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(index.contains("<td>2</td>"), "{index}");
}
