"""The module's API: inputs of every dtype and layout, errors, metrics,
state dicts, data sets."""

import json
import struct

import numpy as np
import pytest

import sparse_ae
from conftest import give


@pytest.fixture(scope="module")
def trained(tiny):
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("deep", seed=5)
    m.fit(x_train, epochs=1, batch_size=32, verbose=False)
    return m


def layouts(x_u8):
    """The same samples in every accepted dtype and layout, flat or as images."""
    flat = x_u8.reshape(len(x_u8), -1)
    f32 = (flat / np.float32(255)).astype(np.float32)
    f64 = flat / 255.0
    return {
        "uint8 C": (np.ascontiguousarray(flat), "u8"),
        "uint8 F": (np.asfortranarray(flat), "u8"),
        "uint8 images": (x_u8, "u8"),
        "uint8 strided": (np.repeat(flat, 2, axis=0)[::2], "u8"),
        "float32 C": (np.ascontiguousarray(f32), "f"),
        "float32 F": (np.asfortranarray(f32), "f"),
        "float64 C": (np.ascontiguousarray(f64), "f"),
        "float64 F": (np.asfortranarray(f64), "f"),
        "list": (f32[:3].tolist(), "f"),
    }


def test_every_dtype_and_layout_gives_the_same_codes(trained, tiny):
    _, _, (x_test, _) = tiny
    x = x_test[:40]
    ref_u8 = trained.encode(np.ascontiguousarray(x.reshape(40, -1)))
    ref_f32 = trained.encode((x.reshape(40, -1) / np.float32(255)).astype(np.float32))
    assert ref_u8.shape == (40, 32) and ref_u8.dtype == np.float32
    # uint8 is scaled by 1/255: the same samples as floats, to rounding.
    np.testing.assert_allclose(ref_u8, ref_f32, rtol=1e-5, atol=1e-5)
    for name, (arr, kind) in layouts(x).items():
        got = trained.encode(arr)
        # (The GEMM's rounding depends on the batch size: compare like with like.)
        n = len(got)
        ref = trained.encode(x[:n]) if kind == "u8" else trained.encode(
            (x[:n].reshape(n, -1) / np.float32(255)).astype(np.float32)
        )
        if kind == "u8" or name.startswith("float32") or name == "list":
            np.testing.assert_array_equal(got, ref, err_msg=name)
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_other_number_types_are_converted(trained, tiny):
    _, _, (x_test, _) = tiny
    x = x_test[:8].reshape(8, -1)
    # Integers other than uint8 of 0 and 1 only (the same whether scaled or
    # not), and booleans, are taken as they are.
    binary = x > 100
    for arr in [binary, binary.astype(np.int64), binary.astype(np.int8), binary.astype(">u2"), binary.tolist()]:
        np.testing.assert_array_equal(trained.encode(arr), trained.encode(binary.astype(np.float32)))
    big_endian = (x / 255.0).astype(">f4")
    np.testing.assert_array_equal(trained.encode(big_endian), trained.encode((x / 255.0).astype(np.float32)))


def int_samples(tiny, method):
    """Eight test images as uint8 samples, or for decode eight uint8 codes
    with one value above 1; and the eight images as given, the clean x of a
    fit that takes the samples as validation_data."""
    _, _, (x_test, _) = tiny
    x = x_test[:8].reshape(8, -1)
    if method == "decode":
        x = np.zeros((8, 32), np.uint8)
        x[2, 5] = 3
    return x, x_test[:8]


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64, np.uint16, np.uint32, np.uint64, ">i4", "list"])
@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit", "validation_data", "decode"])
def test_integers_other_than_uint8_beyond_0_and_1_are_refused(trained, tiny, dtype, method):
    # int16, int64, uint16, ... pixels were taken as 0-255 where the same
    # uint8 ones are scaled to [0, 1]: a model trained on uint8 images gave
    # other codes for x.astype(int), without a word.
    x, clean = int_samples(tiny, method)
    arr = x.tolist() if dtype == "list" else x.astype(dtype)
    name = {"fit": "x", "validation_data": "validation_data"}.get(method, method)
    i = int(np.flatnonzero(np.asarray(x).reshape(-1) > 1)[0])
    d = np.asarray(x).shape[1]
    msg = (
        rf"^{name}: an integer array of dtype \S+ holds {np.asarray(x).reshape(-1)[i]} \(sample {i // d}, feature {i % d}\), "
        r"outside \[0, 1\]: only uint8 is read as pixels \(scaled by 1/255\).*x.astype\(np.float32\).*x / 255"
    )
    with pytest.raises(ValueError, match=msg):
        give(trained, method, arr, clean)


@pytest.mark.parametrize("kind", ["astype(object)", "int64 astype(object)", "list with 2**64"])
@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit", "validation_data", "decode"])
def test_object_arrays_of_integers_follow_the_integer_rule(trained, tiny, kind, method):
    # An object array of Python ints (uint8 images after x.astype(object),
    # or a list of ints NumPy cannot hold in int64) was taken as 0-255 (or
    # 1.8e19) where the same values in int64 are refused.
    x, clean = int_samples(tiny, method)
    if kind == "astype(object)":
        arr, i, value = x.astype(object), int(np.flatnonzero(x.reshape(-1) > 1)[0]), None
    elif kind == "int64 astype(object)":
        arr, i, value = x.astype(np.int64).astype(object), int(np.flatnonzero(x.reshape(-1) > 1)[0]), None
    else:
        arr = (x > 1).astype(int).tolist()
        arr[1][3] = 2**64
        i, value = x.shape[1] + 3, 2**64
    if value is None:
        value = x.reshape(-1)[i]
    assert np.asarray(arr).dtype == object
    d = x.shape[1]
    name = {"fit": "x", "validation_data": "validation_data"}.get(method, method)
    msg = (
        rf"^{name}: an object array of integers holds {value} \(sample {i // d}, feature {i % d}\), "
        r"outside \[0, 1\]: only uint8 is read as pixels"
    )
    with pytest.raises(ValueError, match=msg):
        give(trained, method, arr, clean)


def test_object_arrays_of_0_and_1_and_of_floats_are_taken_as_they_are(trained, tiny):
    _, _, (x_test, _) = tiny
    x = x_test[:8].reshape(8, -1)
    binary = x > 100
    for arr in [binary.astype(object), binary.astype(np.int64).astype(object), binary.tolist()]:
        np.testing.assert_array_equal(trained.encode(np.asarray(arr, dtype=object)), trained.encode(binary.astype(np.float32)))
    scaled = x / 255.0
    mixed = scaled.astype(object)
    mixed[0, 0] = 0
    expected = scaled.astype(np.float32)
    expected[0, 0] = 0
    np.testing.assert_array_equal(trained.encode(mixed), trained.encode(expected))


def test_fit_accepts_every_layout_with_the_same_result(tiny):
    _, (x_train, _), _ = tiny
    x = x_train[:128]
    results = []
    for arr in [x, np.asfortranarray(x.reshape(128, -1)), x.reshape(128, -1)[:, :]]:
        m = sparse_ae.Autoencoder.preset("shallow", seed=1)
        m.fit(arr, epochs=1, batch_size=32, verbose=False)
        results.append(m.state_dict())
    for r in results[1:]:
        for k in r:
            np.testing.assert_array_equal(r[k], results[0][k])


def test_outputs(trained, tiny):
    _, _, (x_test, _) = tiny
    x = x_test[:10]
    rec = trained.reconstruct(x)
    assert rec.shape == x.shape and rec.dtype == np.float32
    assert np.all((rec >= 0) & (rec <= 1))
    codes = trained.encode(x)
    # The decoder on the codes is the reconstruction.
    np.testing.assert_allclose(trained.decode(codes), rec.reshape(10, -1), rtol=1e-6, atol=1e-7)
    s = trained.score(x)
    assert s.shape == (10,) and np.all(s > 0)
    ev = trained.evaluate(x)
    assert ev["samples"] == 10 and ev["code_units"] == 32
    assert ev["recon"] == pytest.approx(float(np.mean(s.astype(np.float64))), rel=1e-5)
    assert set(ev) >= {"loss", "recon", "l1", "kl", "l2", "mse", "fvu", "l0", "dead_units"}
    assert "784-128-32-128-784" in repr(trained)


def test_history_and_callbacks(tiny):
    _, (x_train, _), (x_test, _) = tiny
    seen = []

    class Recorder:
        def on_epoch_end(self, epoch, logs):
            seen.append(("obj", epoch, logs["loss"]))

    m = sparse_ae.Autoencoder.preset("sparse-l1")
    hist = m.fit(
        x_train, epochs=3, batch_size=64, validation_data=(x_test, x_test), verbose=False,
        callbacks=[lambda e, logs: seen.append(("fn", e, logs["val_loss"])), Recorder()],
    )
    assert hist["epoch"] == [1, 2, 3]
    assert hist["step"] == [5, 10, 15]
    for k in ["loss", "recon", "l1", "kl", "l2", "l0", "dead_units", "one_thread_steps", "val_loss", "val_recon"]:
        assert len(hist[k]) == 3, k
    assert hist["loss"][2] < hist["loss"][0]
    assert [s[:2] for s in seen] == [("fn", 0), ("obj", 0), ("fn", 1), ("obj", 1), ("fn", 2), ("obj", 2)]
    assert seen[1][2] == hist["loss"][0]


def test_a_callback_can_stop_and_its_exception_propagates(tiny):
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("shallow")
    hist = m.fit(x_train, epochs=5, batch_size=64, verbose=False, callbacks=[lambda e, logs: e == 1])
    assert hist["epoch"] == [1, 2]
    # Stopped right after the second epoch: the weights of a 2-epoch run.
    ref = sparse_ae.Autoencoder.preset("shallow")
    ref.fit(x_train, epochs=2, batch_size=64, verbose=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)

    def boom(e, logs):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        m.fit(x_train, epochs=2, batch_size=64, verbose=False, callbacks=[boom])
    assert np.isfinite(m.encode(x_train[:4])).all()


def test_noise_override_is_kept_in_the_config(tiny):
    _, (x_train, _), _ = tiny
    m = sparse_ae.Autoencoder.preset("shallow")
    m.fit(x_train, epochs=1, batch_size=64, noise=0.3, verbose=False)
    assert m.config["noise"] == {"type": "gaussian", "std": 0.3}
    m.fit(x_train, epochs=1, batch_size=64, noise={"type": "masking", "p": 0.2}, verbose=False)
    assert m.config["noise"]["type"] == "masking"
    with pytest.raises(ValueError, match="noise"):
        m.fit(x_train, epochs=1, batch_size=64, noise="salt", verbose=False)


BAD = [
    ("one sample as 1-D", lambda x: x[0].reshape(-1), "reshape"),
    ("wrong width", lambda x: x.reshape(len(x), -1)[:, :700], "shape mismatch"),
    ("NaN", lambda x: np.where(np.arange(784) == 5, np.nan, x.reshape(len(x), -1) / 255.0), "non-finite"),
    ("inf", lambda x: np.full((2, 784), np.inf, np.float32), "non-finite"),
    ("beyond float32", lambda x: np.where(np.arange(784) == 9, -1e300, x.reshape(len(x), -1) / 255.0),
     r"sample 0, feature 9 is -1e300, outside f32's range"),
    ("strings", lambda x: np.array([["a"] * 784]), "float32"),
    ("objects", lambda x: np.array([[object()] * 784], dtype=object), "float32"),
    ("scalar", lambda x: 3.0, "samples"),
]


@pytest.mark.parametrize("name,make,msg", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit"])
def test_bad_input_raises_value_error(trained, tiny, name, make, msg, method):
    _, _, (x_test, _) = tiny
    x = make(x_test[:4])
    with pytest.raises(ValueError, match=msg):
        if method == "fit":
            trained.fit(x, epochs=1, batch_size=1, verbose=False)
        else:
            getattr(trained, method)(x)


@pytest.mark.parametrize("method", ["fit", "evaluate", "score"])
def test_bce_targets_outside_the_unit_interval_raise_value_error(trained, method):
    x = np.full((4, 784), 0.5, np.float32)
    x[1, 7] = 5.0
    with pytest.raises(ValueError, match=r"binary cross-entropy needs targets in \[0, 1\]"):
        if method == "fit":
            trained.fit(x, epochs=1, batch_size=2, verbose=False)
        else:
            getattr(trained, method)(x)


def test_bad_arguments_raise(trained, tiny, tmp_path):
    _, (x_train, _), _ = tiny
    with pytest.raises(ValueError, match="unknown preset|preset"):
        sparse_ae.Autoencoder.preset("no-such-model")
    with pytest.raises(ValueError, match="batch_size"):
        trained.fit(x_train, batch_size=0, verbose=False)
    with pytest.raises(ValueError, match="optimizer"):
        trained.fit(x_train, optimizer="rmsprop", verbose=False)
    with pytest.raises(ValueError, match="lr"):
        trained.fit(x_train, lr=-1.0, verbose=False)
    with pytest.raises(ValueError, match="decode"):
        trained.decode(np.zeros((2, 31), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        trained.decode(np.full((2, 32), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"code 1, unit 0 is 1e300, outside f32's range"):
        trained.decode(np.concatenate([np.zeros((1, 32)), np.full((1, 32), 1e300)]))
    with pytest.raises(ValueError, match="JSON"):
        sparse_ae.Autoencoder.from_config("{not json")
    with pytest.raises(ValueError, match="invalid configuration: layers"):
        sparse_ae.Autoencoder.from_config({"input": 784})
    with pytest.raises(OSError, match="no-such"):
        sparse_ae.Autoencoder.from_config(str(tmp_path / "no-such.json"))
    with pytest.raises(OSError, match="no-such"):
        sparse_ae.Autoencoder.load(tmp_path / "no-such.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="safetensors"):
        sparse_ae.Autoencoder.load(tmp_path / "junk.safetensors")
    with pytest.raises(OSError):
        trained.save(tmp_path / "no-such-dir" / "m.safetensors")
    # The model is still whole after all of that.
    assert np.isfinite(trained.encode(x_train[:2])).all()


def safetensors_header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def test_state_dict_names_shapes_and_round_trip(trained, tiny, tmp_path):
    _, _, (x_test, _) = tiny
    sd = trained.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {
        "encoder.0.weight": (128, 784), "encoder.0.bias": (128,),
        "encoder.2.weight": (32, 128), "encoder.2.bias": (32,),
        "decoder.0.weight": (128, 32), "decoder.0.bias": (128,),
        "decoder.2.weight": (784, 128), "decoder.2.bias": (784,),
    }
    assert all(v.dtype == np.float32 for v in sd.values())
    # The same tensors, names and bytes as in the model file.
    trained.save(tmp_path / "m.safetensors")
    header, body = safetensors_header(tmp_path / "m.safetensors")
    for k, v in sd.items():
        assert header[k]["shape"] == list(v.shape) and header[k]["dtype"] == "F32"
        lo, hi = header[k]["data_offsets"]
        assert body[lo:hi] == v.tobytes()
    # Back: float64 arrays and a JSON-text configuration are accepted.
    back = sparse_ae.Autoencoder.from_state_dict(
        json.dumps(trained.config), {k: v.astype(np.float64) for k, v in sd.items()}
    )
    np.testing.assert_array_equal(back.encode(x_test), trained.encode(x_test))
    back.save(tmp_path / "back.safetensors")
    assert (tmp_path / "back.safetensors").read_bytes() == (tmp_path / "m.safetensors").read_bytes()
    # A copy: changing it leaves the model alone.
    sd["encoder.0.bias"][:] = 0
    assert trained.state_dict()["encoder.0.bias"].any()


def test_from_state_dict_checks_names_shapes_and_values(trained):
    cfg = trained.config
    sd = trained.state_dict()
    with pytest.raises(ValueError, match="encoder.0.bias"):
        sparse_ae.Autoencoder.from_state_dict(cfg, {k: v for k, v in sd.items() if k != "encoder.0.bias"})
    with pytest.raises(ValueError, match="shape"):
        sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, "encoder.0.weight": sd["encoder.0.weight"].T})
    with pytest.raises(ValueError, match="unexpected"):
        sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, "encoder.9.weight": sd["encoder.0.bias"]})
    bad = sd["decoder.0.bias"].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r'^state_dict\["decoder.0.bias"\]\[3\] is NaN: parameters must be finite numbers'):
        sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, "decoder.0.bias": bad})


def test_gradcheck_passes():
    r = sparse_ae.Autoencoder.preset("sparse-kl").gradcheck(batch=3, entries=16)
    assert r["passed"], r
    assert set(r["tensors"]) == {"encoder.0.weight", "encoder.0.bias", "decoder.0.weight", "decoder.0.bias"}


def test_presets_and_kernel_path():
    names = [n for n, _ in sparse_ae.presets()]
    assert "deep" in names and "sparse-kl" in names
    for n in names:
        m = sparse_ae.Autoencoder.preset(n)
        assert m.input_dim == 784 and m.code_dim > 0
    assert sparse_ae.kernel_path() in {"scalar", "avx2", "avx512"}


def test_datasets_mnist_reads_idx(tiny, tmp_path):
    d, (x_train, y_train), (x_test, y_test) = tiny
    (a, b), (c, e) = sparse_ae.datasets.mnist(d)
    assert a.dtype == np.uint8 and a.shape == (320, 28, 28)
    np.testing.assert_array_equal(a, x_train)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(c, x_test)
    np.testing.assert_array_equal(e, y_test)
    with pytest.raises(OSError, match="no MNIST image file"):
        sparse_ae.datasets.mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\xff" * 12)
    with pytest.raises(ValueError, match="IDX"):
        sparse_ae.datasets.mnist(tmp_path)


def test_datasets_mnist_real(shared_mnist):
    (a, b), (c, e) = sparse_ae.datasets.mnist(shared_mnist)
    assert a.shape == (60000, 28, 28) and c.shape == (10000, 28, 28)
    assert b.shape == (60000,) and int(b.max()) == 9


def test_state_dict_loads_into_torch(trained, tiny):
    """With PyTorch installed (CI does not install it): the same network as
    an nn.Sequential takes the state dict as it is and computes the same
    reconstruction."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = nn.Module()
    net.encoder = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU())
    net.decoder = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())
    net.load_state_dict({k: torch.from_numpy(v) for k, v in trained.state_dict().items()})
    _, _, (x_test, _) = tiny
    x = (x_test[:16].reshape(16, -1) / np.float32(255)).astype(np.float32)
    with torch.no_grad():
        want = net.decoder(net.encoder(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(trained.reconstruct(x), want, rtol=1e-4, atol=1e-5)
    back = sparse_ae.Autoencoder.from_state_dict(trained.config, net.state_dict())
    np.testing.assert_array_equal(back.encode(x), trained.encode(x))


def test_from_state_dict_takes_the_input_scale():
    # A state dict holds tensors only: a model trained on normalised inputs
    # is rebuilt with its scale given beside it (it was dropped, and the
    # rebuilt model computed on unscaled inputs).
    cfg = {"input": 8, "layers": [{"units": 4, "activation": "relu"},
                                  {"units": 8, "activation": "linear"}],
           "code_layer": 0, "loss": "mse"}
    m = sparse_ae.Autoencoder.from_config(cfg, seed=2)
    x = np.random.default_rng(3).random((6, 8), dtype=np.float32)
    m2 = sparse_ae.Autoencoder.from_state_dict(m.config, m.state_dict(), input_scale=0.5)
    assert m2.input_scale == 0.5
    np.testing.assert_array_equal(m2.encode(x), m.encode(x * np.float32(0.5)))
    assert sparse_ae.Autoencoder.from_state_dict(m.config, m.state_dict()).input_scale == 1.0
    with pytest.raises(ValueError, match="input_scale"):
        sparse_ae.Autoencoder.from_state_dict(m.config, m.state_dict(), input_scale=-1.0)
    bce = sparse_ae.Autoencoder.preset("shallow", input=8)
    with pytest.raises(ValueError, match="input_scale"):
        sparse_ae.Autoencoder.from_state_dict(bce.config, bce.state_dict(), input_scale=0.5)
