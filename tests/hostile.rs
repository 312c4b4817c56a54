//! Hostile and malformed inputs: each class of bad file must give the right
//! error variant, name the file, and say what is wrong — never panic, abort
//! or allocate what the data cannot fill. Inputs come from the committed fuzz
//! regression corpus (`fuzz/regressions/`, made by `fuzz/make_regressions.py`).

use std::path::{Path, PathBuf};

use sparse_ae::Error;
use sparse_ae::data::idx::{self, IdxArray, IdxData};
use sparse_ae::data::mnist::{self, Split};
use sparse_ae::data::npy;
use sparse_ae::data::npy_reader::NpyReader;
use sparse_ae::io::json;
use sparse_ae::io::safetensors::SafeTensors;
use sparse_ae::train::{NpyRows, Rows};

fn reg(target: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
        .join(name)
}

/// Asserts the message names the file and contains every `want` fragment.
fn check(e: &Error, path: &Path, want: &[&str]) {
    let msg = e.to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "message does not name {name}: {msg}");
    for w in want {
        assert!(msg.contains(w), "message lacks {w:?}: {msg}");
    }
}

fn idx_err(name: &str, want: &[&str]) {
    let p = reg("idx", name);
    let e = idx::read(&p).unwrap_err();
    assert!(matches!(e, Error::Idx { .. }), "{e:?}");
    check(&e, &p, want);
}

#[test]
fn idx_truncated_header() {
    idx_err("bad_truncated_header", &["truncated header", "3 bytes"]);
    idx_err(
        "bad_truncated_dims",
        &[
            "truncated header",
            "3 dimensions need 12 bytes",
            "only 4 follow",
        ],
    );
}

#[test]
fn idx_wrong_magic() {
    idx_err("bad_wrong_magic", &["wrong magic number 01 02 08 01"]);
}

#[test]
fn idx_unknown_type_code() {
    idx_err("bad_unknown_type_code", &["unknown element type code 0x0a"]);
}

#[test]
fn idx_zero_dims() {
    idx_err("bad_zero_ndims", &["0 dimensions declared"]);
    idx_err("bad_zero_dim", &["dimension 0 of 0×28×28 is 0"]);
    idx_err("bad_too_many_dims", &["200 dimensions declared; 1 to 8"]);
}

#[test]
fn idx_dim_product_overflow() {
    idx_err(
        "bad_huge_dims_overflow",
        &["f64 elements overflow a 64-bit byte count"],
    );
}

#[test]
fn idx_declared_length_larger_than_data() {
    idx_err(
        "bad_declared_longer_than_data",
        &["header declares 60000×28×28 u8 = 47040000 bytes but only 1000 follow"],
    );
    idx_err("bad_trailing_bytes", &["2 trailing bytes"]);
}

#[test]
fn idx_missing_file_is_io_error() {
    let p = reg("idx", "no-such-file");
    let e = idx::read(&p).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    check(&e, &p, &[]);
}

#[cfg(feature = "gzip")]
#[test]
fn idx_gzip_bomb_is_capped() {
    let p = reg("idx_gz", "bad_bomb_declares_1gib.gz");
    // With a 1 MiB cap the header alone is enough to refuse it.
    let e = idx::read_with_limit(&p, 1 << 20).unwrap_err();
    check(
        &e,
        &p,
        &[
            "header declares 1073741824 u8",
            "more than the 1048576-byte limit",
        ],
    );
    // Under the default 2 GiB cap it inflates only as far as the data goes.
    let e = idx::read(&p).unwrap_err();
    check(&e, &p, &["only 33554432 follow after decompression"]);
    // A tiny header followed by 32 MiB of zeros stops one byte past the data.
    let p = reg("idx_gz", "bad_bomb_trailing.gz");
    let e = idx::read(&p).unwrap_err();
    check(
        &e,
        &p,
        &["header declares 4 u8 = 4 bytes but more data follows"],
    );
}

#[cfg(feature = "gzip")]
#[test]
fn idx_gzip_corruption() {
    let p = reg("idx_gz", "bad_crc.gz");
    check(&idx::read(&p).unwrap_err(), &p, &["corrupt gzip data"]);
    let p = reg("idx_gz", "bad_truncated_stream.gz");
    let e = idx::read(&p).unwrap_err();
    assert!(matches!(e, Error::Idx { .. }), "{e:?}");
    check(&e, &p, &[]);
    let p = reg("idx_gz", "bad_gzip_of_gzip.gz");
    check(
        &idx::read(&p).unwrap_err(),
        &p,
        &["wrong magic number 1f 8b"],
    );
    // Two concatenated gzip members are one valid file.
    let a = idx::read(&reg("idx_gz", "ok_two_members.gz")).unwrap();
    assert_eq!(a.dims, [2, 3, 4]);
}

/// Data after the last gzip member that is not another member is named
/// as such (it read as a member cut short: "unexpected end of file"); zero
/// bytes to the end are padding, read past as GNU gzip and Python's gzip
/// do (they were refused as garbage), and zeros followed by other bytes
/// are still garbage.
#[cfg(feature = "gzip")]
#[test]
fn idx_gzip_trailing_garbage_is_named() {
    let d = scratch("gz-trailing");
    let ok = std::fs::read(reg("idx_gz", "ok_u8_labels_5.gz")).unwrap();
    let p = d.join("trailing.gz");
    let want = idx::read(&reg("idx_gz", "ok_u8_labels_5.gz")).unwrap();
    for (tail, garbage) in [
        (b"garbage!".to_vec(), true),
        (vec![0; 512], false),
        (vec![0; 70_000], false),
        ([vec![0; 100], b"x".to_vec()].concat(), true),
    ] {
        std::fs::write(&p, [ok.clone(), tail.clone()].concat()).unwrap();
        match idx::read(&p) {
            Err(e) if garbage => check(&e, &p, &["trailing garbage"]),
            Ok(got) if !garbage => assert_eq!(got, want),
            r => panic!("{} bytes of tail: {r:?}", tail.len()),
        }
    }
}

#[cfg(not(feature = "gzip"))]
#[test]
fn idx_gzip_without_feature_says_so() {
    let p = reg("idx_gz", "ok_u8_labels_5.gz");
    check(
        &idx::read(&p).unwrap_err(),
        &p,
        &["built without gzip support"],
    );
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn mnist_label_count_must_match_images() {
    let d = scratch("mnist-count");
    let images = IdxArray {
        dims: vec![2, 3, 4],
        data: IdxData::U8((0..24).collect()),
    };
    idx::write(&d.join("train-images-idx3-ubyte"), &images).unwrap();
    let labels = IdxArray {
        dims: vec![5],
        data: IdxData::U8(vec![0, 1, 2, 3, 4]),
    };
    idx::write(&d.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let e = mnist::load_split(&d, Split::Train).unwrap_err();
    assert!(matches!(e, Error::Idx { .. }), "{e:?}");
    check(
        &e,
        &d.join("train-labels-idx1-ubyte"),
        &["5 labels but", "has 2 images"],
    );

    // Labels that agree load; pixels stay u8, image-major.
    idx::write(
        &d.join("train-labels-idx1-ubyte"),
        &IdxArray {
            dims: vec![2],
            data: IdxData::U8(vec![7, 3]),
        },
    )
    .unwrap();
    let ds = mnist::load_split(&d, Split::Train).unwrap();
    assert_eq!((ds.n, ds.rows, ds.cols, ds.features()), (2, 3, 4, 12));
    assert_eq!(ds.pixels[12], 12);
    assert_eq!(ds.labels, Some(vec![7, 3]));
}

#[test]
fn mnist_images_must_be_3d_u8() {
    let d = scratch("mnist-shape");
    let flat = IdxArray {
        dims: vec![6],
        data: IdxData::U8(vec![0; 6]),
    };
    idx::write(&d.join("t10k-images.idx3-ubyte"), &flat).unwrap();
    let e = mnist::load_split(&d, Split::Test).unwrap_err();
    check(
        &e,
        &d.join("t10k-images.idx3-ubyte"),
        &["images must have 3 dimensions"],
    );
    // Every element type but u8 is refused for images, loaded whole or by
    // row, with what to do instead.
    for (data, code) in [
        (IdxData::I8(vec![0; 2]), "0x09"),
        (IdxData::I16(vec![0; 2]), "0x0b"),
        (IdxData::I32(vec![0; 2]), "0x0c"),
        (IdxData::F32(vec![0.0; 2]), "0x0d"),
        (IdxData::F64(vec![0.0; 2]), "0x0e"),
    ] {
        let images = IdxArray {
            dims: vec![1, 1, 2],
            data,
        };
        idx::write(&d.join("t10k-images.idx3-ubyte"), &images).unwrap();
        let want = [
            "images must be u8",
            &format!("found type {code}")[..],
            ".npy matrix",
        ];
        let e = mnist::load_split(&d, Split::Test).unwrap_err();
        check(&e, &d.join("t10k-images.idx3-ubyte"), &want);
        let e = mnist::open_split(&d, Split::Test).unwrap_err();
        check(&e, &d.join("t10k-images.idx3-ubyte"), &want);
    }
}

/// Two names of one file (raw and `.gz`, or the two naming styles) that
/// hold different data are refused, naming both and where they differ,
/// whether the split is loaded whole or read by row; alike, they load.
#[test]
fn mnist_two_names_of_one_file_must_agree() {
    let d = scratch("mnist-two-names");
    let px: Vec<u8> = (0..24).collect();
    let images = |px: &[u8]| IdxArray {
        dims: vec![2, 3, 4],
        data: IdxData::U8(px.to_vec()),
    };
    let labels = |l: Vec<u8>| IdxArray {
        dims: vec![2],
        data: IdxData::U8(l),
    };
    let raw = d.join("train-images-idx3-ubyte");
    let gz = d.join("train-images-idx3-ubyte.gz");
    idx::write(&raw, &images(&px)).unwrap();
    idx::write(&d.join("train-labels-idx1-ubyte"), &labels(vec![1, 2])).unwrap();
    let loads = |d: &Path| {
        let whole = mnist::load_split(d, Split::Train);
        let rows = mnist::open_split(d, Split::Train);
        (whole, rows)
    };
    let refused = |d: &Path, read: &Path, other: &Path, want: &[&str]| {
        let (whole, rows) = loads(d);
        for e in [whole.unwrap_err(), rows.unwrap_err()] {
            assert!(matches!(e, Error::Data { .. }), "{e:?}");
            let text = e.to_string();
            for w in [
                &read.display().to_string()[..],
                &other.display().to_string(),
            ]
            .iter()
            .chain(want)
            {
                assert!(text.contains(w), "{w:?} not in {text}");
            }
        }
    };
    // The same images under both names.
    std::fs::write(&gz, idx::to_gz_bytes(&images(&px)).unwrap()).unwrap();
    let (whole, rows) = loads(&d);
    assert_eq!(whole.unwrap().pixels, px);
    assert!(matches!(rows.unwrap(), mnist::SplitFile::Rows(_)));
    // One pixel (image 1, pixel 1: byte 16 + 13 of the contents) differs.
    let mut stale = px.clone();
    stale[13] = 99;
    std::fs::write(&gz, idx::to_gz_bytes(&images(&stale)).unwrap()).unwrap();
    refused(
        &d,
        &raw,
        &gz,
        &["training images", "first at byte 29", "stale"],
    );
    // The other naming style, one byte longer.
    std::fs::remove_file(&gz).unwrap();
    let dotted = d.join("train-images.idx3-ubyte");
    let mut longer = idx::to_bytes(&images(&px)).unwrap();
    longer.push(0);
    std::fs::write(&dotted, &longer).unwrap();
    refused(&d, &raw, &dotted, &["one ends at byte 40"]);
    std::fs::remove_file(&dotted).unwrap();
    // Labels are held to the same.
    let lab_gz = d.join("train-labels-idx1-ubyte.gz");
    std::fs::write(&lab_gz, idx::to_gz_bytes(&labels(vec![1, 3])).unwrap()).unwrap();
    refused(
        &d,
        &d.join("train-labels-idx1-ubyte"),
        &lab_gz,
        &["training labels", "first at byte 9"],
    );
}

#[test]
fn mnist_missing_names_the_paths_and_the_fix() {
    let d = scratch("mnist-missing");
    let e = mnist::load_split(&d, Split::Train).unwrap_err();
    assert!(matches!(e, Error::Data { .. }), "{e:?}");
    check(
        &e,
        &d.join("train-images-idx3-ubyte.gz"),
        &["train-images.idx3-ubyte", "dataset-fashion-mnist"],
    );
    if std::env::var_os(mnist::DATA_ENV).is_none() {
        let e = mnist::find_data_dir(std::slice::from_ref(&d))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&*d.to_string_lossy()) && e.contains("SPARSE_AE_DATA is not set"),
            "{e}"
        );
    }
}

fn st_err(name: &str, want: &[&str]) {
    let p = reg("safetensors", name);
    let e = SafeTensors::read(&p).unwrap_err();
    assert!(matches!(e, Error::Safetensors { .. }), "{e:?}");
    check(&e, &p, want);
}

#[test]
fn safetensors_truncated() {
    st_err("bad_truncated", &["3 bytes is too short"]);
    st_err(
        "bad_header_longer_than_file",
        &["header length 4096 is more than the 7 bytes that follow"],
    );
    st_err(
        "bad_offsets_past_buffer",
        &["tensors cover 16 bytes of data but 8 bytes follow the header"],
    );
}

#[test]
fn safetensors_header_length_huge() {
    st_err(
        "bad_header_length_huge",
        &["header length 9223372036854775808 is more than the 100000000-byte limit"],
    );
}

#[test]
fn safetensors_bad_dtype() {
    st_err("bad_dtype", &["tensor \"x\"", "dtype I64 is not supported"]);
    st_err("bad_unknown_dtype", &["unknown dtype \"F31\""]);
}

#[test]
fn safetensors_overlapping_offsets() {
    st_err(
        "bad_overlapping_offsets",
        &["tensor \"b\" starts at 4", "overlaps"],
    );
    st_err("bad_hole", &["tensor \"b\" starts at 8", "hole"]);
    st_err("bad_shape_overflow", &["overflows"]);
}

#[test]
fn safetensors_bad_header_json() {
    st_err("bad_header_not_json", &["header JSON: line 1, column 7"]);
    st_err("bad_header_not_object", &["does not start with '{'"]);
    st_err("bad_metadata_not_string", &["__metadata__.k is a number"]);
}

#[test]
fn safetensors_nan_is_kept_then_rejected_by_check_finite() {
    let st = SafeTensors::read(&reg("safetensors", "ok_nan_inf")).unwrap();
    assert!(st.tensors[0].data[0].is_nan());
    let e = st.check_finite().unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }));
    assert!(e.to_string().contains("x at index 0 (value NaN)"), "{e}");
}

fn npy_err(name: &str, want: &[&str]) {
    let p = reg("npy", name);
    let e = npy::read(&p).unwrap_err();
    assert!(matches!(e, Error::Npy { .. }), "{e:?}");
    check(&e, &p, want);
}

#[test]
fn npy_bad_files() {
    npy_err("bad_wrong_magic", &["wrong magic"]);
    npy_err("bad_version", &["format version 9.0"]);
    npy_err(
        "bad_fortran_order",
        &["fortran_order: True is not supported"],
    );
    npy_err(
        "bad_truncated_header",
        &["more than the 30 bytes that follow"],
    );
    npy_err(
        "bad_header_length_huge",
        &["more than the 1048576-byte limit"],
    );
    npy_err("bad_shape_overflow", &["overflows the byte count"]);
    npy_err(
        "bad_declared_longer_than_data",
        &["[60000, 784] of <f4 needs 188160000 bytes of data but 24 follow"],
    );
    npy_err(
        "bad_structured_dtype",
        &["structured dtypes are not supported"],
    );
    npy_err(
        "bad_dtype",
        &[
            "dtype \"<c8\" is not supported (use <f4, <f8, <f2, bfloat16 (<V2), |u1 or |i1, '>' for big-endian)",
        ],
    );
}

/// A file cut off inside the preamble says so, rather than quoting a
/// magic that is right as far as it goes.
#[test]
fn npy_cut_in_its_preamble_is_truncated_not_wrong() {
    let d = scratch("npy-preamble");
    for (bytes, want) in [
        (&b"\x93NUMPY\x01"[..], "truncated: 7 bytes"),
        (&b"\x93NU"[..], "truncated: 3 bytes"),
        (&b""[..], "truncated: 0 bytes"),
        (&b"PK\x03\x04"[..], "wrong magic"),
    ] {
        let p = d.join("cut.npy");
        std::fs::write(&p, bytes).unwrap();
        let e = npy::read(&p).unwrap_err();
        check(&e, &p, &[want]);
    }
}

#[test]
fn npy_data_regions_and_shapes_that_do_not_fit() {
    npy_err(
        "bad_truncated_data",
        &["[4, 3] of <f4 needs 48 bytes of data but 47 follow"],
    );
    npy_err(
        "bad_trailing_data",
        &["[2, 3] of <V2 needs 12 bytes of data but 14 follow"],
    );
    npy_err("bad_void_4", &["dtype \"<V4\" is not supported"]);
    npy_err(
        "bad_empty_rows_overflowing",
        &["[0, 1099511627776, 1099511627776] of <f4 overflows the byte count"],
    );
    npy_err("bad_f2_rewrite_overflows", &["overflows the byte count"]);
}

/// The streaming reader opens a file by its header and length alone; it
/// must refuse every bad file with the reason the whole-file parser gives.
#[test]
fn npy_streaming_reader_refuses_what_the_parser_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/npy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let parsed = npy::parse_named(&bytes, &p);
        let streamed = NpyReader::open(&p);
        match (parsed, streamed) {
            (Ok(a), Ok(mut r)) => assert_eq!(r.read_all().unwrap().len(), a.data.len()),
            (Err(e), Err(f)) => {
                assert!(matches!(f, Error::Npy { .. }), "{f:?}");
                assert_eq!(e.to_string(), f.to_string());
                n += 1;
            }
            (a, b) => panic!("{}: {:?} vs {:?}", p.display(), a.err(), b.err()),
        }
    }
    assert!(n >= 14, "only {n} bad files");
}

#[test]
fn npy_file_cut_short_while_streaming_is_an_io_error() {
    let dir = scratch("npy-shrinks");
    let p = dir.join("acts.npy");
    npy::write(&p, 50, 4, &[0.5; 200]).unwrap();
    let mut rows = NpyRows::open(&p).unwrap().range(0, 50).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(400)
        .unwrap();
    // Every read after the change is refused, even of rows still there.
    let mut x = vec![0.0; 8];
    for start in [2, 40] {
        let e = rows.read(start, &mut x).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        check(
            &e,
            &p,
            &["changed size while it was read (928 bytes when opened, 400 now)"],
        );
    }
}

#[test]
fn npy_nan_is_found_by_check_finite() {
    let p = reg("npy", "ok_f4_nan_inf");
    let a = npy::read(&p).unwrap();
    let e = sparse_ae::data::check_finite("ok_f4_nan_inf", &a.data).unwrap_err();
    assert!(
        e.to_string()
            .contains("ok_f4_nan_inf at index 0 (value NaN)"),
        "{e}"
    );
}

#[test]
fn json_bad_and_too_deep() {
    for (name, want) in [
        ("bad_too_deep", "nesting deeper than 64 levels"),
        ("bad_very_deep", "nesting deeper than 64 levels"),
        (
            "bad_trailing_comma",
            "line 1, column 9: expected a string key",
        ),
        (
            "bad_lone_surrogate",
            "high surrogate not followed by a low surrogate",
        ),
        ("bad_number_range", "out of the f64 range"),
        ("bad_duplicate_key", "duplicate key \"a\""),
        ("bad_invalid_utf8", "invalid UTF-8"),
        ("bad_truncated", "unterminated array"),
    ] {
        let p = reg("json", name);
        let e = json::read(&p).unwrap_err();
        assert!(matches!(e, Error::Json { .. }), "{e:?}");
        check(&e, &p, &[want]);
    }
}

#[test]
fn every_ok_seed_parses() {
    for (target, f) in [
        (
            "idx",
            (|b| idx::parse(b).map(drop)) as fn(&[u8]) -> sparse_ae::Result<()>,
        ),
        ("npy", |b| npy::parse(b).map(drop)),
        ("safetensors", |b| SafeTensors::parse(b).map(drop)),
        ("json", |b| json::parse(b).map(drop)),
        #[cfg(feature = "gzip")]
        ("idx_gz", |b| idx::parse(b).map(drop)),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions")
            .join(target);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let r = f(&std::fs::read(&p).unwrap());
            assert_eq!(r.is_ok(), name.starts_with("ok_"), "{target}/{name}: {r:?}");
        }
    }
}

/// The real MNIST, if it sits beside the repository (it is never copied in).
#[cfg(feature = "gzip")]
#[test]
fn real_mnist_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/mnist");
    if !dir.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!("skipping: no MNIST at {}", dir.display());
        return;
    }
    for (split, n) in [(Split::Train, 60_000), (Split::Test, 10_000)] {
        let ds = mnist::load_split(&dir, split).unwrap();
        assert_eq!(
            (ds.n, ds.rows, ds.cols, ds.pixels.len()),
            (n, 28, 28, n * 784)
        );
        let labels = ds.labels.unwrap();
        assert_eq!(labels.len(), n);
        let mut seen = [0usize; 10];
        for &l in &labels {
            assert!(l <= 9, "label {l}");
            seen[usize::from(l)] += 1;
        }
        assert!(
            seen.iter().all(|&c| c > n / 20),
            "every digit present: {seen:?}"
        );
        assert!(ds.pixels.contains(&255) && ds.pixels.contains(&0));
    }
}

/// Every committed bad model file, checkpoint and configuration is refused
/// with an error that names the problem; every good one loads.
#[test]
fn bad_models_and_configs_are_refused_with_their_reason() {
    use sparse_ae::io::model_file::{checkpoint_from_bytes, model_from_bytes};
    use sparse_ae::nn::ModelConfig;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let expect = [
        ("bad_nan_weight.safetensors", "non-finite"),
        ("bad_inf_weight.safetensors", "non-finite"),
        ("bad_shape_vs_config.safetensors", "shape"),
        ("bad_config_larger_than_file.safetensors", "holds only"),
        ("bad_no_config.safetensors", "sparse_ae.config"),
        ("bad_missing_tensor.safetensors", ""),
        ("bad_truncated.safetensors", ""),
    ];
    for (file, needle) in expect {
        let bytes = std::fs::read(root.join("model").join(file)).unwrap();
        let e = model_from_bytes(&bytes, file.as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains(file) && e.contains(needle), "{file}: {e}");
    }
    for (file, needle) in [
        (
            "bad_ck_huge_batch.safetensors",
            "more than the memory budget",
        ),
        ("bad_ck_rng.safetensors", "noise_rng"),
        ("bad_ck_optimizer.safetensors", "adam.lr"),
    ] {
        let bytes = std::fs::read(root.join("model").join(file)).unwrap();
        let e = checkpoint_from_bytes(&bytes, file.as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{file}: {e}");
    }
    for file in ["ok_dense_model.safetensors", "ok_conv_model.safetensors"] {
        let bytes = std::fs::read(root.join("model").join(file)).unwrap();
        model_from_bytes(&bytes, file.as_ref()).unwrap();
    }
    let bytes = std::fs::read(root.join("model/ok_dense_checkpoint.safetensors")).unwrap();
    checkpoint_from_bytes(&bytes, "ck".as_ref()).unwrap();
    for entry in std::fs::read_dir(root.join("config")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        let r = ModelConfig::from_json(&text);
        assert_eq!(r.is_ok(), name.starts_with("ok_"), "{name}: {r:?}");
    }
}

/// A checkpoint whose dead-latent counters are not numbers, or one too few,
/// is refused naming the metadata entry.
#[test]
fn bad_dead_latent_counters_are_refused() {
    use sparse_ae::io::json::Value;
    use sparse_ae::io::model_file::{checkpoint_from_bytes, save_checkpoint};
    use sparse_ae::nn::{Autoencoder, preset};
    use sparse_ae::optim::OptimizerConfig;
    use sparse_ae::train::Trainer;
    let dir = scratch("counters");
    let ck = dir.join("ck.safetensors");
    let m = Autoencoder::<f32>::new(preset("shallow", 16).unwrap(), 0).unwrap();
    let t = Trainer::new(m, OptimizerConfig::default(), 4, 0).unwrap();
    save_checkpoint(&ck, &t, &Value::Null).unwrap();
    let good = std::fs::read(&ck).unwrap();
    checkpoint_from_bytes(&good, &ck).unwrap();
    let key = b"\"sparse_ae.dead_counters\":\"";
    let at = good.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // Same length, so the header stays well formed.
    let mut not_numbers = good.clone();
    not_numbers[at] = b'x';
    let mut too_few = good.clone();
    too_few[at + 1] = b'0';
    for (bytes, needle) in [(not_numbers, "sample counts"), (too_few, "32 counters")] {
        let e = checkpoint_from_bytes(&bytes, &ck).unwrap_err().to_string();
        assert!(
            e.contains("sparse_ae.dead_counters") && e.contains(needle),
            "{e}"
        );
    }
}

#[test]
fn model_input_scale_must_be_finite_and_positive() {
    use sparse_ae::io::model_file::{load_model_scaled, save_model_scaled};
    use sparse_ae::kernels::Activation;
    use sparse_ae::nn::{Autoencoder, Loss, ModelBuilder};
    let dir = scratch("input-scale");
    // Scaled inputs need an mse or sse loss (a BCE model never has a scale).
    let cfg = ModelBuilder::new(16)
        .code(4, Activation::Relu)
        .decoder(16, Activation::Linear)
        .loss(Loss::Mse)
        .build()
        .unwrap();
    let m = Autoencoder::<f32>::new(cfg, 0).unwrap();
    let good = dir.join("good.safetensors");
    save_model_scaled(&good, &m, 0.25).unwrap();
    assert_eq!(load_model_scaled(&good).unwrap().1, 0.25);
    assert!(save_model_scaled(&good, &m, f32::NAN).is_err());
    let cfg = m.config().to_json_value().to_json().unwrap();
    let names: Vec<String> = m.layout().tensors.iter().map(|t| t.name.clone()).collect();
    let tensors: Vec<sparse_ae::io::safetensors::TensorRef> = m
        .layout()
        .tensors
        .iter()
        .zip(&names)
        .map(|(t, n)| (n.as_str(), t.shape.as_slice(), &m.params[t.range()]))
        .collect();
    // Finite in the file but not in f32 (1e39, 1e-50): named as written,
    // not as what the conversion would make of it (infinite, or 0).
    for (bad, says) in [
        ("-1", "not a finite positive number"),
        ("0", "not a finite positive number"),
        ("inf", "not a finite positive number"),
        ("NaN", "not a finite positive number"),
        ("two", "not a finite positive number"),
        ("1e39", "1e39 is beyond f32's range"),
        ("1e-50", "1e-50 is below f32's smallest"),
    ] {
        let p = dir.join("bad.safetensors");
        sparse_ae::io::safetensors::write(
            &p,
            &tensors,
            &[("sparse_ae.config", &cfg), ("sparse_ae.input_scale", bad)],
        )
        .unwrap();
        let e = load_model_scaled(&p).unwrap_err();
        assert!(matches!(e, Error::Safetensors { .. }), "{e:?}");
        check(&e, &p, &["sparse_ae.input_scale", says]);
    }
    // A kind this version does not write is refused by name (it was read
    // as a model); the two it writes are read.
    for (kind, ok) in [
        ("banana", false),
        ("", false),
        ("model", true),
        ("checkpoint", true),
    ] {
        let p = dir.join("kind.safetensors");
        sparse_ae::io::safetensors::write(
            &p,
            &tensors,
            &[("sparse_ae.config", &cfg), ("sparse_ae.kind", kind)],
        )
        .unwrap();
        match load_model_scaled(&p) {
            Ok(_) => assert!(ok, "{kind}"),
            Err(e) => {
                assert!(!ok, "{kind}: {e}");
                check(
                    &e,
                    &p,
                    &[
                        &format!("`sparse_ae.kind` is `{kind}`"),
                        "reads `model` and `checkpoint`",
                    ],
                );
            }
        }
    }
}
