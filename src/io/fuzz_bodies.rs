//! Bodies of the fuzz targets in `fuzz/`, kept in the library so that
//! `tests/fuzz_corpus.rs` can replay the committed corpora on stable.
//!
//! Each body must not panic on any input; when the input parses, writing the
//! result and parsing it again must give bit-identical data (parse → write →
//! parse). A panic here is a bug in a reader or writer.

use crate::data::npy_reader::NpyReader;
use crate::data::{idx, npy};
use crate::io::json::{self, Value};
use crate::io::safetensors::{self, SafeTensors};

/// Cap on decompressed bytes while fuzzing, so bombs stay cheap.
const FUZZ_GZ_LIMIT: u64 = 1 << 24;

/// The memory budget every body runs under: a quarter of the 1 GiB RSS
/// limit of `fuzz/smoke.sh`, so what a file asks the readers to allocate
/// (a checkpoint's batch of 86 million samples, which the machine's budget
/// of several GB let through) is refused by the budget, as the commands
/// refuse it, instead of ending the fuzz run out of memory.
const FUZZ_BUDGET: u64 = 1 << 28;

/// Sets [`FUZZ_BUDGET`] for the process (each body's first step).
fn under_budget() {
    crate::memory::set_budget(FUZZ_BUDGET);
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Raw IDX: the format is canonical, so write(parse(x)) == x.
pub fn fuzz_idx(data: &[u8]) {
    under_budget();
    if data.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    if let Ok(a) = idx::parse(data) {
        let bytes = idx::to_bytes(&a).expect("a parsed IDX array must be writable");
        assert_eq!(bytes, data, "IDX write(parse(x)) != x");
    }
}

/// gzip IDX: parse, write compressed, parse again: same bytes when re-encoded raw.
pub fn fuzz_idx_gz(data: &[u8]) {
    under_budget();
    let path = std::path::Path::new("<fuzz>.gz");
    if let Ok(a) = idx::decode(data, path, FUZZ_GZ_LIMIT) {
        let gz = idx::to_gz_bytes(&a).expect("a parsed IDX array must be writable as gzip");
        let b = idx::decode(&gz, path, FUZZ_GZ_LIMIT).expect("re-read of written gzip IDX");
        assert_eq!(
            idx::to_bytes(&a).ok(),
            idx::to_bytes(&b).ok(),
            "gzip IDX round trip changed data"
        );
    }
}

/// `.npy`: parse, write as f32, parse again: same shape and bits. The
/// streaming reader ([`crate::data::npy_reader`]) accepts exactly what the
/// whole-array parser accepts, with the same error, and its rows read in
/// pieces are the same bits.
pub fn fuzz_npy(data: &[u8]) {
    under_budget();
    let parsed = npy::parse(data);
    let path = std::path::Path::new("<memory>");
    let streamed = NpyReader::new(std::io::Cursor::new(data), path);
    match (&parsed, streamed) {
        (Ok(a), Ok(mut r)) => {
            assert_eq!(r.header().shape, a.shape);
            let whole = r.read_all().expect("reading rows of an accepted .npy");
            assert!(same_f32(&whole, &a.data), "streamed rows differ from parse");
            let (rows, dim) = (r.rows(), r.dim());
            if rows >= 2 {
                let (lo, hi) = (rows / 3, rows - rows / 4);
                let mut part = vec![0.0f32; (hi - lo) * dim];
                r.read_rows(lo, &mut part).expect("a range of rows");
                assert!(same_f32(&part, &a.data[lo * dim..hi * dim]));
            }
        }
        (Err(e), Err(f)) => assert_eq!(e.to_string(), f.to_string(), "different errors"),
        (p, s) => panic!(
            "parse and the streaming reader disagree: {:?} vs {:?}",
            p.as_ref().err(),
            s.err()
        ),
    }
    if let Ok(a) = parsed {
        let bytes = npy::to_bytes(&a.shape, &a.data).expect("a parsed .npy array must be writable");
        let b = npy::parse(&bytes).expect("re-read of written .npy");
        assert_eq!(a.shape, b.shape);
        assert!(same_f32(&a.data, &b.data), ".npy round trip changed data");
    }
}

/// safetensors: parse, write as F32, parse again: same names, shapes, bits, metadata.
pub fn fuzz_safetensors(data: &[u8]) {
    under_budget();
    if let Ok(st) = SafeTensors::parse(data) {
        let tensors: Vec<safetensors::TensorRef> = st
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), t.data.as_slice()))
            .collect();
        let meta: Vec<(&str, &str)> = st
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let bytes =
            safetensors::to_bytes(&tensors, &meta).expect("parsed tensors must be writable");
        let back = SafeTensors::parse(&bytes).expect("re-read of written safetensors");
        assert_eq!(back.metadata, st.metadata);
        let mut want: Vec<_> = st.tensors.iter().collect();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(want.len(), back.tensors.len());
        for (a, b) in want.iter().zip(&back.tensors) {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
            assert!(
                same_f32(&a.data, &b.data),
                "safetensors round trip changed {}",
                a.name
            );
        }
    }
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, p), (l, q))| k == l && same_json(p, q))
        }
        _ => a == b,
    }
}

/// JSON: parse, write compact and pretty, parse both: bit-identical values.
pub fn fuzz_json(data: &[u8]) {
    under_budget();
    if let Ok(v) = json::parse(data) {
        for text in [v.to_json(), v.to_json_pretty()] {
            let text = text.expect("a parsed JSON value must be writable");
            let back = json::parse(text.as_bytes()).expect("re-read of written JSON");
            assert!(
                same_json(&v, &back),
                "JSON round trip changed the value: {text}"
            );
        }
    }
}

/// A model configuration: parse, write, parse again: the same configuration.
pub fn fuzz_config(data: &[u8]) {
    under_budget();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = crate::nn::ModelConfig::from_json(text) {
        let back = crate::nn::ModelConfig::from_json(&cfg.to_json())
            .expect("re-read of a written configuration");
        assert_eq!(back, cfg, "configuration round trip changed it");
    }
}

/// A model file (safetensors with a configuration) and a checkpoint: load,
/// save, load again: the same configuration and parameter bits.
pub fn fuzz_model(data: &[u8]) {
    under_budget();
    use crate::io::model_file::{checkpoint_from_bytes, model_from_bytes, model_to_bytes};
    let path = std::path::Path::new("<fuzz>");
    if let Ok(m) = model_from_bytes(data, path) {
        let bytes = model_to_bytes(&m).expect("a loaded model must be writable");
        let back = model_from_bytes(&bytes, path).expect("re-read of a written model");
        assert_eq!(back.config(), m.config());
        assert!(
            same_f32(&back.params, &m.params),
            "model round trip changed parameters"
        );
    }
    // A checkpoint sizes its trainer's buffers by its own batch size: the
    // fuzzer only explores small ones.
    // Whatever loads satisfies the state check: finite parameters and
    // moments, non-negative Adam second moments, a bounded step count.
    if let Ok((t, _)) = checkpoint_from_bytes(data, path) {
        assert!(t.model.params.iter().all(|v| v.is_finite()));
        assert!(t.opt.m.iter().all(|v| v.is_finite()));
        assert!(t.opt.v.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(t.opt.t <= crate::io::model_file::MAX_STEPS);
    }
    // A model's input scale is one every command accepts.
    if let Ok((m, s)) = crate::io::model_file::model_scaled_from_bytes(data, path) {
        crate::io::model_file::check_input_scale(s, m.config(), "input_scale")
            .expect("a loaded input scale passes the one scale check");
    }
}
