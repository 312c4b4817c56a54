//! Fuzz target `safetensors`: the body lives in `sparse_ae::io::fuzz_bodies::fuzz_safetensors`
//! so that `tests/fuzz_corpus.rs` replays the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sparse_ae::io::fuzz_bodies::fuzz_safetensors(data));
