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
