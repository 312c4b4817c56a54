//! Shared test fixtures: small generated IDX data sets and the real MNIST.
#![allow(dead_code)]

use sparse_ae::data::idx::{IdxArray, IdxData, write};
use sparse_ae::kernels::Activation;
use sparse_ae::nn::{EncoderInit, Loss, ModelBuilder, ModelConfig};
use std::path::{Path, PathBuf};

/// A one-hidden-layer TopK SAE (ReLU code of `units` keeping `k`, linear
/// decoder, MSE) with every SAE option on: unit-norm decoder, encoder =
/// decoder transpose at init, pre-encoder bias, AuxK (coefficient 1/32) and
/// a dead window of `window` samples.
pub fn full_sae(input: usize, units: usize, k: usize, window: u64) -> ModelConfig {
    ModelBuilder::new(input)
        .code(units, Activation::Relu)
        .decoder(input, Activation::Linear)
        .loss(Loss::Mse)
        .topk(k, false)
        .unit_norm_decoder(true)
        .encoder_init(EncoderInit::DecoderTranspose)
        .pre_encoder_bias(true)
        .auxk(None, 1.0 / 32.0)
        .dead_window(window)
        .build()
        .unwrap()
}

/// A fresh empty directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a small MNIST-style data set (`n_train` and `n_test` images of
/// `side × side` pixels: bright squares at varying places) into `dir`, the
/// training images gzip-compressed.
pub fn write_tiny_mnist(dir: &Path, side: usize, n_train: usize, n_test: usize) {
    write_mnist_like(dir, side, n_train, n_test, |i, r, c| {
        let (r0, c0) = ((i * 3) % (side - 2), (i * 5) % (side - 2));
        if (r0..r0 + 3).contains(&r) && (c0..c0 + 3).contains(&c) {
            200 + (i % 50) as u8
        } else {
            0
        }
    });
}

/// Writes an MNIST-style data set into `dir`: `n_train` training images
/// (gzip-compressed) and `n_test` test images of `side × side` pixels,
/// pixel (r, c) of image i being `pixel(i, r, c)`, labelled `i % 10`.
pub fn write_mnist_like(
    dir: &Path,
    side: usize,
    n_train: usize,
    n_test: usize,
    pixel: impl Fn(usize, usize, usize) -> u8,
) {
    for (prefix, n, gz) in [("train", n_train, true), ("t10k", n_test, false)] {
        let mut px = Vec::with_capacity(n * side * side);
        for i in 0..n {
            for r in 0..side {
                px.extend((0..side).map(|c| pixel(i, r, c)));
            }
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let ext = if gz { ".gz" } else { "" };
        let images = IdxArray {
            dims: vec![n, side, side],
            data: IdxData::U8(px),
        };
        write(
            &dir.join(format!("{prefix}-images-idx3-ubyte{ext}")),
            &images,
        )
        .unwrap();
        let labels = IdxArray {
            dims: vec![n],
            data: IdxData::U8(labels),
        };
        write(
            &dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")),
            &labels,
        )
        .unwrap();
    }
}

/// The real MNIST directory, if present beside the project (CI has it). When
/// `CI` is set its absence is a failure, so the real-data tests cannot be
/// skipped silently there.
pub fn real_mnist() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/mnist");
    if d.join("train-images-idx3-ubyte.gz").exists() {
        Some(d)
    } else if std::env::var_os("CI").is_some() {
        panic!("CI is set but the real MNIST is missing at {}", d.display());
    } else {
        eprintln!("skipping: no MNIST at {}", d.display());
        None
    }
}

/// Runs `check` on `isa` if this CPU has it (and `SPARSE_AE_MAX_ISA` does not
/// hide it); otherwise prints "skipping", or fails when
/// `SPARSE_AE_REQUIRE_ISA` lists the path, so a machine known to have a path
/// cannot silently skip it.
pub fn run_on(isa: sparse_ae::kernels::Isa, check: impl FnOnce(sparse_ae::kernels::Isa)) {
    match isa.check_required() {
        Ok(true) => check(isa),
        Ok(false) => eprintln!("skipping {isa}: not available on this CPU"),
        Err(e) => panic!("{e}"),
    }
}

/// One `#[test]` per kernel path (scalar, AVX2, AVX-512, NEON, SIMD128) for
/// each listed
/// check `fn(Isa)` of the invoking module.
#[macro_export]
macro_rules! every_isa {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use sparse_ae::kernels::Isa;
            #[test]
            fn scalar() {
                $crate::common::run_on(Isa::Scalar, super::$check)
            }
            #[test]
            fn avx2() {
                $crate::common::run_on(Isa::Avx2, super::$check)
            }
            #[test]
            fn avx512() {
                $crate::common::run_on(Isa::Avx512, super::$check)
            }
            #[test]
            fn neon() {
                $crate::common::run_on(Isa::Neon, super::$check)
            }
            #[test]
            fn simd128() {
                $crate::common::run_on(Isa::Simd128, super::$check)
            }
        }
    )*};
}

/// [`every_isa!`] on the SIMD paths only (for checks whose scalar path is
/// the reference they compare against).
#[macro_export]
macro_rules! simd_isas {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use sparse_ae::kernels::Isa;
            #[test]
            fn avx2() {
                $crate::common::run_on(Isa::Avx2, super::$check)
            }
            #[test]
            fn avx512() {
                $crate::common::run_on(Isa::Avx512, super::$check)
            }
            #[test]
            fn neon() {
                $crate::common::run_on(Isa::Neon, super::$check)
            }
            #[test]
            fn simd128() {
                $crate::common::run_on(Isa::Simd128, super::$check)
            }
        }
    )*};
}

/// Every entry of `dir` (hidden ones too) with its bytes and mtime.
pub type Snapshot = std::collections::BTreeMap<String, (Vec<u8>, Option<std::time::SystemTime>)>;

/// What [`Snapshot`] says: every entry of `dir`, its bytes and mtime.
pub fn snapshot(dir: &Path) -> Snapshot {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let bytes = if m.is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (
                e.file_name().to_string_lossy().into_owned(),
                (bytes, m.modified().ok()),
            )
        })
        .collect()
}

/// The bytes of a block of `ulimit -f` (512 or 1024, by the shell).
pub fn block_unit(dir: &Path) -> usize {
    let probe = dir.join("probe");
    std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; head -c 4096 /dev/zero > \"$0\"")
        .arg(&probe)
        .output()
        .unwrap();
    let unit = std::fs::metadata(&probe).unwrap().len() as usize;
    std::fs::remove_file(&probe).unwrap();
    assert!(unit == 512 || unit == 1024, "block of {unit} bytes");
    unit
}

/// Runs sparse-ae with `args` (no `SPARSE_AE_DATA`, stdin closed), under a
/// file size limit of `blocks` if given: a write past it fails with EFBIG,
/// the tool catching the limit's SIGXFSZ itself.
pub fn run_limited<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    blocks: Option<usize>,
    args: &[A],
) -> std::process::Output {
    let mut c = match blocks {
        Some(b) => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -f {b}; exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_sparse-ae"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_sparse-ae")),
    };
    c.args(args)
        .env_remove("SPARSE_AE_DATA")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs sparse-ae with `args` ([`run_limited`], without a limit), which
/// must succeed; returns its stderr.
pub fn run_ok<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[A]) -> String {
    let o = run_limited(None, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sparse-ae {args:?} failed:\n{err}");
    err
}

/// Writes the tiny data set `x.npy` (40 × 8, values in [0, 1)) into `dir`.
pub fn write_tiny_npy(dir: &Path) {
    let data: Vec<f32> = (0..320).map(|i| ((i * 7) % 10) as f32 / 10.0).collect();
    sparse_ae::data::npy::write(&dir.join("x.npy"), 40, 8, &data).unwrap();
}

/// Writes the tiny data set `x.npy` ([`write_tiny_npy`]) and the config
/// `c.json` (8 → 4 ReLU → 8 linear, MSE) into `dir`: a model of a few
/// hundred bytes.
pub fn write_tiny_npy_and_config(dir: &Path) {
    write_tiny_npy(dir);
    std::fs::write(
        dir.join("c.json"),
        r#"{"input": 8, "layers": [{"units": 4, "activation": "relu"}, {"units": 8, "activation": "linear"}], "code_layer": 0, "loss": "mse"}"#,
    )
    .unwrap();
}
