//! Fuzz target `model`: the body lives in `sparse_ae::io::fuzz_bodies::fuzz_model`
//! so that `tests/fuzz_corpus.rs` replays the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sparse_ae::io::fuzz_bodies::fuzz_model(data));
