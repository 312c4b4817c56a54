#!/usr/bin/env python3
"""Writes the seed and regression corpora under fuzz/regressions/<target>/.

Each file is a small valid input (ok_*) or a known-bad one (bad_*) for the
target's reader. tests/fuzz_corpus.rs replays them all; tests/hostile.rs
checks the error messages of the bad ones. Deterministic (gzip mtime = 0).
Run from anywhere: python3 fuzz/make_regressions.py
"""
import gzip
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


# ---------------------------------------------------------------- IDX
CODES = {"u8": (0x08, "B"), "i8": (0x09, "b"), "i16": (0x0B, "h"),
         "i32": (0x0C, "i"), "f32": (0x0D, "f"), "f64": (0x0E, "d")}


def idx(kind, dims, values):
    code, fmt = CODES[kind]
    head = bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + struct.pack(">%d%s" % (len(values), fmt), *values)


nan, inf = float("nan"), float("inf")
ok_idx = {
    "ok_u8_images_2x3x4": idx("u8", [2, 3, 4], list(range(24))),
    "ok_u8_labels_5": idx("u8", [5], [0, 9, 3, 7, 1]),
    "ok_i8": idx("i8", [4], [-128, -1, 0, 127]),
    "ok_i16": idx("i16", [2, 2], [-32768, -1, 258, 32767]),
    "ok_i32": idx("i32", [3], [-2**31, 0, 2**31 - 1]),
    "ok_f32_nan_inf": idx("f32", [2, 2], [1.5, nan, inf, -inf]),
    "ok_f64_nan_inf": idx("f64", [1, 1, 1, 1, 1, 1, 1, 3], [nan, -0.0, 1e300]),
}
for name, data in ok_idx.items():
    put("idx", name, data)
mnist_head = bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 28, 28)
bad_idx = {
    "bad_truncated_header": b"\x00\x00\x08",
    "bad_truncated_dims": bytes([0, 0, 8, 3]) + struct.pack(">I", 60000),
    "bad_wrong_magic": b"\x01\x02\x08\x01\x00\x00\x00\x01\x05",
    "bad_unknown_type_code": bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 1) + b"\x00",
    "bad_zero_ndims": bytes([0, 0, 8, 0]) + b"\x00",
    "bad_too_many_dims": bytes([0, 0, 8, 200]) + b"\x00\x00\x00\x01" * 200 + b"\x00",
    "bad_zero_dim": bytes([0, 0, 8, 3]) + struct.pack(">III", 0, 28, 28),
    "bad_huge_dims_overflow": bytes([0, 0, 0x0E, 8]) + b"\xff\xff\xff\xff" * 8,
    "bad_declared_longer_than_data": mnist_head + bytes(1000),
    "bad_trailing_bytes": idx("u8", [2], [1, 2]) + b"\x00\x00",
}
for name, data in bad_idx.items():
    put("idx", name, data)

# ---------------------------------------------------------------- IDX, gzip
for name, data in ok_idx.items():
    put("idx_gz", name + ".gz", gz(data))
images = ok_idx["ok_u8_images_2x3x4"]
put("idx_gz", "ok_two_members.gz", gz(images[:10]) + gz(images[10:]))
# A bomb whose header declares 2^30 u8 but inflates to 32 MiB (from ~32 KB):
# stopped by the size cap before inflating, or by the truncation check.
put("idx_gz", "bad_bomb_declares_1gib.gz", gz(bytes([0, 0, 8, 1]) + struct.pack(">I", 1 << 30) + bytes(32 << 20)))
# A bomb with a tiny header and 32 MiB of trailing zeros: stopped after one byte past.
put("idx_gz", "bad_bomb_trailing.gz", gz(idx("u8", [4], [1, 2, 3, 4]) + bytes(32 << 20)))
put("idx_gz", "bad_gzip_of_gzip.gz", gz(gz(images)))
put("idx_gz", "bad_truncated_stream.gz", gz(images)[:-12])
corrupt = bytearray(gz(images))
corrupt[-8] ^= 0xFF  # CRC32 of the member
put("idx_gz", "bad_crc.gz", bytes(corrupt))
put("idx_gz", "bad_declared_longer_than_data.gz", gz(mnist_head + bytes(1000)))
put("idx_gz", "bad_unknown_type_code.gz", gz(bad_idx["bad_unknown_type_code"]))

# ---------------------------------------------------------------- .npy
def npy(descr, shape, body, fortran=False, version=(1, 0), header=None):
    if header is None:
        tup = "(%s,)" % shape[0] if len(shape) == 1 else "(%s)" % ", ".join(map(str, shape))
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, tup)
    lenfmt = "<H" if version[0] == 1 else "<I"
    pre = 6 + 2 + struct.calcsize(lenfmt)
    pad = (-(pre + len(header) + 1)) % 64
    h = (header + " " * pad + "\n").encode()
    return b"\x93NUMPY" + bytes(version) + struct.pack(lenfmt, len(h)) + h + body


f4 = struct.pack("<6f", 0.0, 0.5, 1.0, -2.0, 3.25, 1e-8)
put("npy", "ok_f4_2x3", npy("<f4", [2, 3], f4))
put("npy", "ok_f4_nan_inf", npy("<f4", [3], struct.pack("<3f", nan, inf, -inf)))
put("npy", "ok_f8_3", npy("<f8", [3], struct.pack("<3d", 1.0, -1e300, 2.5)))
put("npy", "ok_f2_2", npy("<f2", [2], b"\x00\x3c\x00\xc0"))
put("npy", "ok_be_f4", npy(">f4", [2], struct.pack(">2f", 1.0, 2.0)))
put("npy", "ok_u1_2x2", npy("|u1", [2, 2], bytes([0, 1, 128, 255])))
put("npy", "ok_scalar", npy("<f4", [], struct.pack("<f", 7.0)))
put("npy", "ok_empty_0x5", npy("<f4", [0, 5], b""))
put("npy", "ok_v2", npy("<f4", [1], struct.pack("<f", 1.0), version=(2, 0)))
put("npy", "ok_v3", npy("<f4", [1], struct.pack("<f", 1.0), version=(3, 0)))
put("npy", "bad_wrong_magic", b"\x93NUMPZ\x01\x00\x10\x00" + b" " * 16)
put("npy", "bad_version", npy("<f4", [1], b"\x00" * 4, version=(9, 0)))
put("npy", "bad_fortran_order", npy("<f4", [2, 2], b"\x00" * 16, fortran=True))
put("npy", "bad_truncated_header", npy("<f4", [2, 3], f4)[:40])
put("npy", "bad_header_length_huge", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{}")
put("npy", "bad_shape_overflow", npy("<f8", [2**40, 2**40], b""))
put("npy", "bad_declared_longer_than_data", npy("<f4", [60000, 784], f4))
put("npy", "bad_structured_dtype", npy("", [1], b"\x00" * 4, header="{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"))
put("npy", "bad_dtype", npy("<c8", [1], b"\x00" * 8))
# bfloat16: '<V2' is what np.save writes for an ml_dtypes.bfloat16 array;
# 'bfloat16' what writing str(array.dtype) into the header gives.
bf16 = b"\x80\x3f\x40\xc0\x49\x40\xc0\x7f\x00\x00\x80\xff"  # 1, -3, 3.140625, NaN, 0, -inf
put("npy", "ok_bf16_v2_2x3", npy("<V2", [2, 3], bf16))
put("npy", "ok_bf16_named_6", npy("bfloat16", [6], bf16))
put("npy", "ok_bf16_be_2", npy(">V2", [2], b"\x3f\x80\xc0\x40"))
put("npy", "ok_rows_5x3_f4", npy("<f4", [5, 3], struct.pack("<15f", *[i / 4 - 1 for i in range(15)])))
# Data regions that disagree with the shape (the streaming reader checks
# them on open, before any row is read).
put("npy", "bad_truncated_data", npy("<f4", [4, 3], struct.pack("<12f", *range(12))[:-1]))
put("npy", "bad_trailing_data", npy("<V2", [2, 3], bf16 + b"\x00\x00"))
put("npy", "bad_void_4", npy("<V4", [1], b"\x00" * 4))
# Found by fuzzing: no elements, but a row of 2^40 · 2^40 values.
put("npy", "bad_empty_rows_overflowing", npy("<f4", [0, 2**40, 2**40], b""))
# Found by fuzzing: 2^63 bytes as f2 but not as the f4 it is written back as.
put("npy", "bad_f2_rewrite_overflows", npy("<f2", [709551615, 0, 10991627776], b""))

# ---------------------------------------------------------------- safetensors
def st(header_obj, buf, raw_header=None, pad=True):
    h = raw_header if raw_header is not None else json.dumps(header_obj, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + buf


def info(dtype, shape, b, e):
    return {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}


w = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
put("safetensors", "ok_two_tensors_meta", st({"__metadata__": {"format": "pt"}, "b": info("F32", [2], 24, 32), "a.weight": info("F32", [2, 3], 0, 24)}, w + struct.pack("<2f", 0.5, -0.5)))
put("safetensors", "ok_f64_f16_bf16", st({"d": info("F64", [1], 0, 8), "h": info("F16", [2], 8, 12), "b": info("BF16", [1], 12, 14)}, struct.pack("<d", 2.5) + b"\x00\x3c\x00\xfc" + b"\x80\x3f"))
put("safetensors", "ok_empty", st({}, b""))
put("safetensors", "ok_zero_size_and_scalar", st({"z": info("F32", [0, 3], 0, 0), "s": info("F32", [], 0, 4)}, struct.pack("<f", 9.0)))
put("safetensors", "ok_nan_inf", st({"x": info("F32", [3], 0, 12)}, struct.pack("<3f", nan, inf, -inf)))
put("safetensors", "bad_truncated", b"\x10\x00\x00")
put("safetensors", "bad_header_length_huge", struct.pack("<Q", 2**63) + b"{}")
put("safetensors", "bad_header_longer_than_file", struct.pack("<Q", 4096) + b'{"a":1}')
put("safetensors", "bad_dtype", st({"x": info("I64", [1], 0, 8)}, bytes(8)))
put("safetensors", "bad_unknown_dtype", st({"x": info("F31", [1], 0, 4)}, bytes(4)))
put("safetensors", "bad_overlapping_offsets", st({"a": info("F32", [2], 0, 8), "b": info("F32", [2], 4, 12)}, bytes(12)))
put("safetensors", "bad_hole", st({"a": info("F32", [1], 0, 4), "b": info("F32", [1], 8, 12)}, bytes(12)))
put("safetensors", "bad_offsets_past_buffer", st({"a": info("F32", [4], 0, 16)}, bytes(8)))
put("safetensors", "bad_shape_overflow", st({"a": info("F32", [2**31, 2**31, 2**31], 0, 4)}, bytes(4)))
put("safetensors", "bad_header_not_json", st(None, bytes(4), raw_header=b'{"a": nope}'))
put("safetensors", "bad_header_not_object", st(None, b"", raw_header=b"[1, 2]"))
put("safetensors", "bad_metadata_not_string", st({"__metadata__": {"k": 1}}, b""))

# ---------------------------------------------------------------- JSON
ok_json = {
    "ok_config": b'{"layers": [{"units": 64, "activation": "relu"}, {"units": 784, "activation": "sigmoid"}], "lr": 0.001, "seed": 42, "tied": false, "note": null}',
    "ok_escapes": b'["\\u00e9\\ud83d\\ude00", "\\"\\\\\\/\\b\\f\\n\\r\\t", "\xc3\xa9"]',
    "ok_numbers": b"[0, -0, -0.0, 1e-7, 1.5E+300, 123456789012345678901234567890, 4.9e-324, 0.1]",
    "ok_depth_64": b"[" * 64 + b"]" * 64,
}
for name, data in ok_json.items():
    put("json", name, data)
bad_json = {
    "bad_too_deep": b"[" * 65 + b"]" * 65,
    "bad_very_deep": b"[" * 10000,
    "bad_trailing_comma": b'{"a": 1,}',
    "bad_lone_surrogate": b'"\\ud800"',
    "bad_number_range": b"[1e400]",
    "bad_leading_zero": b"[01]",
    "bad_invalid_utf8": b'"\xff\xfe"',
    "bad_duplicate_key": b'{"a": 1, "a": 2}',
    "bad_control_char": b'"a\x01b"',
    "bad_truncated": b'{"layers": [1, 2',
    "bad_nan": b"[NaN]",
}
for name, data in bad_json.items():
    put("json", name, data)
