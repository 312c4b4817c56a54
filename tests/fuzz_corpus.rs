//! Replays every committed fuzz regression input (`fuzz/regressions/<target>/`)
//! and any local corpus (`fuzz/corpus/<target>/`, git-ignored) through the
//! fuzz target bodies on stable, so a fixed crash stays fixed.

use std::path::{Path, PathBuf};

use sparse_ae::io::fuzz_bodies;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let committed = files(&root.join("regressions").join(target));
    assert!(
        !committed.is_empty(),
        "no committed regression inputs for fuzz target {target}"
    );
    let all = committed
        .into_iter()
        .chain(files(&root.join("corpus").join(target)));
    let mut n = 0;
    for f in all {
        let data = std::fs::read(&f).expect("readable corpus file");
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(
            r.is_ok(),
            "fuzz target {target}: input {} panicked",
            f.display()
        );
        n += 1;
    }
    eprintln!("fuzz target {target}: {n} inputs replayed");
}

#[test]
fn idx() {
    replay("idx", fuzz_bodies::fuzz_idx);
}

#[test]
fn idx_gz() {
    replay("idx_gz", fuzz_bodies::fuzz_idx_gz);
}

#[test]
fn npy() {
    replay("npy", fuzz_bodies::fuzz_npy);
}

#[test]
fn safetensors() {
    replay("safetensors", fuzz_bodies::fuzz_safetensors);
}

#[test]
fn json() {
    replay("json", fuzz_bodies::fuzz_json);
}

#[test]
fn config() {
    replay("config", fuzz_bodies::fuzz_config);
}

#[test]
fn model() {
    replay("model", fuzz_bodies::fuzz_model);
}
