//! Fuzz target `config`: the body lives in `sparse_ae::io::fuzz_bodies::fuzz_config`
//! so that `tests/fuzz_corpus.rs` replays the same code on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sparse_ae::io::fuzz_bodies::fuzz_config(data));
