//! # sparse-ae
//!
//! A small, fast engine for training sparse autoencoders on CPUs.
//!
//! ## Data model
//! Every matrix is row-major `f32` (or `f64` for gradient checks) with a
//! leading dimension: element (r, c) of a view lives at `data[r·ld + c]`. A
//! batch of samples is a `(batch, features)` matrix. Dense weights are stored
//! as PyTorch stores them, `(out, in)`, so a layer computes `z = x·Wᵀ + b`.
//!
//! ## Layers of the crate
//! - [`kernels`]: GEMM, elementwise kernels and the sparse products of
//!   k-sparse codes, with AVX-512, AVX2+FMA and scalar paths chosen at run
//!   time (`SPARSE_AE_KERNEL` forces one).
//! - [`data`]: readers for outside data sets (IDX/MNIST, `.npy`), validated before they allocate.
//! - [`io`]: strict JSON, safetensors and crash-safe atomic file writes.
//! - [`dist`]: data-parallel training (micro-batches summed over a fixed
//!   tree, so any number of processes gives the same bits; MPI with the
//!   `mpi` feature).
//!
//! ## Features
//! The bare engine (`default-features = false`) depends only on rayon,
//! matrixmultiply, rand, rand_distr and byteorder. The default `cli` feature
//! adds the command-line tool, gzip, PNG and JSON support. The `mpi` feature
//! adds `dist::mpi` (the system's MPI library), so `mpirun -n P sparse-ae
//! train …` trains one model on P processes (docs/mpi.md).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod data;
pub mod dist;
pub mod error;
pub mod gradcheck;
pub mod io;
#[allow(unsafe_code)]
pub mod kernels;
pub mod memory;
pub mod nn;
pub mod optim;
pub mod parallel;
/// Training-report pictures (PNG charts, image grids, feature tiles) and `index.html`.
#[cfg(feature = "png")]
pub mod report;
pub mod rng;
pub mod train;

pub use error::{Error, Result};

/// A directory for a unit test's files under the system's temporary
/// directory (integration tests have `CARGO_TARGET_TMPDIR`), made empty,
/// and removed with what it holds when dropped, so no test run leaves
/// files behind.
#[cfg(test)]
pub(crate) struct Scratch(std::path::PathBuf);

#[cfg(test)]
impl Scratch {
    /// `sparse-ae-NAME-PID`, empty.
    pub(crate) fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("sparse-ae-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    /// The path of `name` in the directory.
    pub(crate) fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
