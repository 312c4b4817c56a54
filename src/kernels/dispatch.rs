//! Choosing the instruction-set path of the kernels, once, at run time.
//!
//! [`Isa::active`] is detected on first use: the best path the CPU has, or the
//! one named by the `SPARSE_AE_KERNEL` environment variable (`scalar`, `avx2`,
//! `avx512`). Internal kernel functions take an `Isa` argument so tests and
//! benchmarks can run every path on one machine without touching the
//! environment.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// An instruction-set path for the SIMD kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, the reference every SIMD kernel is compared against.
    Scalar,
    /// x86-64 AVX2 + FMA (8 lanes of f32).
    Avx2,
    /// x86-64 AVX-512F (16 lanes of f32).
    Avx512,
}

/// Name of the environment variable that forces a kernel path.
pub const KERNEL_ENV: &str = "SPARSE_AE_KERNEL";

impl Isa {
    /// Every path, slowest first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name used by `SPARSE_AE_KERNEL` and in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU (and build target) can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU has.
    pub fn detect() -> Isa {
        if Isa::Avx512.is_available() {
            Isa::Avx512
        } else if Isa::Avx2.is_available() {
            Isa::Avx2
        } else {
            Isa::Scalar
        }
    }

    /// The paths this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// Parses a path name and checks that the CPU has it.
    ///
    /// # Errors
    /// [`Error::KernelUnavailable`] for an unknown name or a path the CPU lacks.
    pub fn from_name(name: &str) -> Result<Isa> {
        let isa = match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Isa::Scalar,
            "avx2" | "avx2+fma" | "fma" => Isa::Avx2,
            "avx512" | "avx512f" | "avx-512" => Isa::Avx512,
            _ => {
                return Err(Error::KernelUnavailable {
                    requested: name.to_string(),
                });
            }
        };
        if isa.is_available() {
            Ok(isa)
        } else {
            Err(Error::KernelUnavailable {
                requested: name.to_string(),
            })
        }
    }

    /// The path chosen from `SPARSE_AE_KERNEL`, or detected when it is unset.
    ///
    /// # Errors
    /// [`Error::KernelUnavailable`] when the variable names an unknown path or
    /// one this CPU lacks.
    pub fn from_env() -> Result<Isa> {
        match std::env::var(KERNEL_ENV) {
            Ok(v) if !v.trim().is_empty() => Isa::from_name(&v),
            _ => Ok(Isa::detect()),
        }
    }

    /// The path every dispatched kernel uses, fixed at first use.
    ///
    /// Follows [`Isa::from_env`]. A bad `SPARSE_AE_KERNEL` value cannot be
    /// returned as an error here; it is reported once on stderr and the detected
    /// path is used. Programs that want the error call [`Isa::from_env`] first
    /// (the CLI does).
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| match Isa::from_env() {
            Ok(isa) => isa,
            Err(e) => {
                let fallback = Isa::detect();
                eprintln!("sparse-ae: {e}; using {}", fallback.name());
                fallback
            }
        })
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::available() {
            assert_eq!(Isa::from_name(isa.name()).unwrap(), isa);
        }
        assert!(matches!(
            Isa::from_name("sse9"),
            Err(Error::KernelUnavailable { .. })
        ));
    }

    #[test]
    fn scalar_always_available() {
        assert!(Isa::Scalar.is_available());
        assert!(Isa::available().contains(&Isa::detect()));
    }
}
