//! Choosing the instruction-set path of the kernels, once, at run time.
//!
//! [`Isa::active`] is detected on first use: the best path the CPU has, or the
//! one named by the `SPARSE_AE_KERNEL` environment variable (`scalar`, `avx2`,
//! `avx512`, `neon`, `simd128`). Internal kernel functions take an `Isa` argument so tests and
//! benchmarks can run every path on one machine without touching the
//! environment.
//!
//! Two more variables serve testing on machines of every kind:
//! - `SPARSE_AE_MAX_ISA` (`scalar`, `avx2`, …) hides the paths above it, so one
//!   machine can run the whole suite as an AVX2-only or a scalar-only CPU
//!   would ([`Isa::is_available`] then says no for the hidden paths). Paths
//!   are ranked within their architecture: scalar < avx2 < avx512 on x86-64,
//!   scalar < neon on aarch64, scalar < simd128 on wasm32; a cap compares
//!   ranks, so `scalar` hides every SIMD path on any machine;
//! - `SPARSE_AE_REQUIRE_ISA` (a comma list such as `avx2,avx512`) names paths
//!   the tests must exercise: a listed path that is missing fails the tests
//!   instead of being skipped ([`Isa::check_required`]).

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
    /// aarch64 NEON / Advanced SIMD (4 lanes of f32, 32 registers), present
    /// on every aarch64 CPU and detected at run time all the same.
    Neon,
    /// WebAssembly SIMD128 (4 lanes of f32). WebAssembly has no run-time
    /// feature detection: the path exists when the module is compiled with
    /// `-C target-feature=+simd128`.
    Simd128,
}

/// Name of the environment variable that forces a kernel path.
pub const KERNEL_ENV: &str = "SPARSE_AE_KERNEL";

/// Name of the environment variable that hides the paths above the one it
/// names, as if the CPU lacked them.
pub const MAX_ENV: &str = "SPARSE_AE_MAX_ISA";

/// Name of the environment variable listing the paths that must be available
/// (comma-separated): tests fail rather than skip a listed path.
pub const REQUIRE_ENV: &str = "SPARSE_AE_REQUIRE_ISA";

impl Isa {
    /// Every path: scalar, then each architecture's paths slowest first.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Simd128];

    /// The name used by `SPARSE_AE_KERNEL` and in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
            Isa::Simd128 => "simd128",
        }
    }

    /// Parses a path name (`scalar`, `avx2`, `avx512`, `neon`, `simd128` and
    /// their aliases)
    /// without asking whether the CPU has it.
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" | "avx2+fma" | "fma" => Some(Isa::Avx2),
            "avx512" | "avx512f" | "avx-512" => Some(Isa::Avx512),
            "neon" | "asimd" => Some(Isa::Neon),
            "simd128" | "wasm-simd" => Some(Isa::Simd128),
            _ => None,
        }
    }

    /// Whether this CPU (and build target) can run the path and
    /// `SPARSE_AE_MAX_ISA` does not hide it.
    pub fn is_available(self) -> bool {
        self.cpu_has() && max_isa().is_none_or(|max| self.rank() <= max.rank())
    }

    /// Whether this CPU (and build target) can run the path, whatever
    /// `SPARSE_AE_MAX_ISA` says.
    pub fn cpu_has(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Order of the paths within their architecture, slowest first (paths
    /// of different architectures never meet on one CPU).
    fn rank(self) -> u8 {
        match self {
            Isa::Scalar => 0,
            Isa::Avx2 | Isa::Neon | Isa::Simd128 => 1,
            Isa::Avx512 => 2,
        }
    }

    /// The fastest path this CPU has.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .filter(|i| i.is_available())
            .max_by_key(|i| i.rank())
            .unwrap_or(Isa::Scalar)
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
        let Some(isa) = Isa::parse(name) else {
            return Err(Error::KernelUnavailable {
                requested: name.to_string(),
            });
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
    /// [`Error::KernelUnavailable`] when the variable names a path this CPU
    /// lacks; [`Error::Config`] when it, `SPARSE_AE_MAX_ISA` or
    /// `SPARSE_AE_REQUIRE_ISA` holds a name that is not a path (or is not
    /// UTF-8). The library's entry points check it, with the other
    /// variables, through [`crate::parallel::check_env`].
    pub fn from_env() -> Result<Isa> {
        parse_max(Error::env_text(MAX_ENV)?.as_deref())?;
        parse_list(Error::env_text(REQUIRE_ENV)?.as_deref())?;
        match Error::env_text(KERNEL_ENV)? {
            Some(v) if Isa::parse(&v).is_none() => Err(Error::config(
                KERNEL_ENV,
                format!("{:?} is not a kernel path ({NAMES})", v.trim()),
            )),
            Some(v) => Isa::from_name(&v),
            None => Ok(Isa::detect()),
        }
    }

    /// The path every dispatched kernel uses, fixed at first use (a later
    /// change of the variables is refused by [`Isa::check_unchanged`]).
    ///
    /// Follows [`Isa::from_env`]. A bad `SPARSE_AE_KERNEL` value cannot be
    /// returned as an error here; it is reported once on stderr and the detected
    /// path is used. Programs that want the error call [`Isa::from_env`] first
    /// (the library's entry points do, through
    /// [`crate::parallel::check_env`]).
    pub fn active() -> Isa {
        *ACTIVE.get_or_init(|| match Isa::from_env() {
            Ok(isa) => isa,
            Err(e) => {
                let fallback = Isa::detect();
                crate::io::warn(format_args!("sparse-ae: {e}; using {}", fallback.name()));
                fallback
            }
        })
    }
}

impl Isa {
    /// The paths `SPARSE_AE_REQUIRE_ISA` lists (empty when it is unset).
    ///
    /// # Errors
    /// [`Error::Config`] naming an entry that is not a path.
    pub fn required() -> Result<Vec<Isa>> {
        parse_list(std::env::var(REQUIRE_ENV).ok().as_deref())
    }

    /// What a test does with a path: `Ok(true)` to run it, `Ok(false)` to skip
    /// it (the CPU lacks it, or `SPARSE_AE_MAX_ISA` hides it, and it is not
    /// required).
    ///
    /// # Errors
    /// [`Error::Config`] when the path is listed in `SPARSE_AE_REQUIRE_ISA` but
    /// is not available, or the list cannot be read.
    pub fn check_required(self) -> Result<bool> {
        if self.is_available() {
            return Ok(true);
        }
        if Isa::required()?.contains(&self) {
            let why = if self.cpu_has() {
                format!("{MAX_ENV} hides it")
            } else {
                "this CPU lacks it".to_string()
            };
            return Err(Error::config(
                REQUIRE_ENV,
                format!("requires kernel path {self}, but {why}"),
            ));
        }
        Ok(false)
    }
}

/// The path every dispatched kernel uses, once chosen ([`Isa::active`]).
static ACTIVE: OnceLock<Isa> = OnceLock::new();
/// The cap of `SPARSE_AE_MAX_ISA`, once read ([`max_isa`]).
static MAX: OnceLock<Option<Isa>> = OnceLock::new();

impl Isa {
    /// Checks that `SPARSE_AE_KERNEL` and `SPARSE_AE_MAX_ISA` still select
    /// what they did when this process read them (at its first computation):
    /// the path is fixed per process, so a later change would be ignored,
    /// and is refused instead ([`crate::parallel::check_env`] calls this).
    ///
    /// It checks the variables as [`Isa::from_env`] does first, whether or
    /// not a path was chosen yet.
    ///
    /// # Errors
    /// As [`Isa::from_env`]; [`Error::Config`] naming the variable when
    /// it selects another path than the one this process runs on.
    pub fn check_unchanged() -> Result<()> {
        let now = Isa::from_env()?;
        let fixed = |what: String| {
            format!(
                "{what}; the kernel path is chosen once per process, at its first computation: set it before that, or in a new process"
            )
        };
        let name = |cap: Option<Isa>| cap.map_or("no cap".to_string(), |i| i.name().to_string());
        if let Some(&was) = MAX.get() {
            let cap = parse_max(Error::env_text(MAX_ENV)?.as_deref())?;
            if cap != was {
                return Err(Error::config(
                    MAX_ENV,
                    fixed(format!(
                        "now {}, but this process read {} and runs on {}",
                        name(cap),
                        name(was),
                        Isa::active().name()
                    )),
                ));
            }
        }
        if let Some(&was) = ACTIVE.get()
            && now != was
        {
            return Err(Error::config(
                KERNEL_ENV,
                fixed(format!(
                    "now selects {}, but this process runs on {}",
                    now.name(),
                    was.name()
                )),
            ));
        }
        Ok(())
    }
}

/// The path `SPARSE_AE_MAX_ISA` caps detection at, read once. An unknown
/// name caps nothing here (reported once on stderr); [`Isa::from_env`]
/// returns it as an error.
fn max_isa() -> Option<Isa> {
    *MAX.get_or_init(|| match parse_max(std::env::var(MAX_ENV).ok().as_deref()) {
        Ok(max) => max,
        Err(e) => {
            crate::io::warn(format_args!("sparse-ae: {e}; ignoring it"));
            None
        }
    })
}

/// The path names, for error messages.
const NAMES: &str = "scalar, avx2, avx512, neon, simd128";

/// Parses a `SPARSE_AE_MAX_ISA` value; unset or blank is no cap.
fn parse_max(value: Option<&str>) -> Result<Option<Isa>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => Isa::parse(v)
            .map(Some)
            .ok_or_else(|| Error::config(MAX_ENV, format!("{v:?} is not a kernel path ({NAMES})"))),
    }
}

/// Parses a comma-separated list of path names; unset or blank is empty.
fn parse_list(value: Option<&str>) -> Result<Vec<Isa>> {
    let mut out = Vec::new();
    for name in value.unwrap_or("").split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let isa = Isa::parse(name).ok_or_else(|| {
            Error::config(
                REQUIRE_ENV,
                format!("{name:?} is not a kernel path ({NAMES})"),
            )
        })?;
        if !out.contains(&isa) {
            out.push(isa);
        }
    }
    Ok(out)
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
    fn env_values_parse() {
        assert_eq!(parse_max(None).unwrap(), None);
        assert_eq!(parse_max(Some(" ")).unwrap(), None);
        assert_eq!(parse_max(Some("AVX2")).unwrap(), Some(Isa::Avx2));
        assert_eq!(parse_max(Some("neon")).unwrap(), Some(Isa::Neon));
        assert_eq!(parse_max(Some("SIMD128")).unwrap(), Some(Isa::Simd128));
        assert!(parse_max(Some("sse9")).is_err());
        assert_eq!(parse_list(None).unwrap(), vec![]);
        assert_eq!(
            parse_list(Some("avx2, avx512,avx2,")).unwrap(),
            vec![Isa::Avx2, Isa::Avx512]
        );
        let e = parse_list(Some("avx2,neon9")).unwrap_err().to_string();
        assert!(e.contains("neon9") && e.contains(REQUIRE_ENV), "{e}");
    }

    #[test]
    fn hidden_paths_are_not_available() {
        // Whatever the cap, availability never exceeds what the CPU has, and
        // a cap below a path hides it.
        for isa in Isa::ALL {
            assert!(!isa.is_available() || isa.cpu_has(), "{isa}");
            if let Some(max) = max_isa() {
                assert_eq!(
                    isa.is_available(),
                    isa.cpu_has() && isa.rank() <= max.rank()
                );
            }
        }
    }

    #[test]
    fn names_parse_back() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
    }

    #[test]
    fn ranks_within_an_architecture() {
        // A scalar cap hides every SIMD path; each SIMD path of one
        // architecture ranks above scalar.
        for isa in [Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::Simd128] {
            assert!(isa.rank() > Isa::Scalar.rank(), "{isa}");
        }
        assert!(Isa::Avx512.rank() > Isa::Avx2.rank());
        // Only paths of this build's architecture can exist.
        if !cfg!(target_arch = "x86_64") {
            assert!(!Isa::Avx2.cpu_has() && !Isa::Avx512.cpu_has());
        }
        if !cfg!(target_arch = "aarch64") {
            assert!(!Isa::Neon.cpu_has());
        }
        if !cfg!(target_arch = "wasm32") {
            assert!(!Isa::Simd128.cpu_has());
        }
    }

    #[test]
    fn scalar_always_available() {
        assert!(Isa::Scalar.is_available());
        assert!(Isa::available().contains(&Isa::detect()));
    }
}
