//! Reading and writing the project's own files: strict JSON, safetensors
//! models and checkpoints, capped reads of input files, and crash-safe
//! atomic replacement of files.

pub mod atomic;
#[doc(hidden)]
pub mod fuzz_bodies;
pub mod half;
pub mod interop;
pub mod json;
pub mod model_file;
pub mod read;
pub mod safetensors;

/// The FNV-1a (64-bit) offset basis: [`fnv1a`]'s start.
pub const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a (64-bit) of `bytes` continuing from `h` ([`FNV1A_START`] for a
/// fresh hash): fingerprints that tell files and parameters apart, not a
/// guard against tampering.
pub fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
