"""Misuse and unusual input: every bad call raises a Python exception that
names the problem (never a panic, an abort or an allocation the machine
cannot fill), and the module works on afterwards."""

import os

import numpy as np
import pytest

import sparse_ae
from conftest import give, in_child


def small(seed=1):
    return sparse_ae.Autoencoder.preset("shallow", input=16, seed=seed)


def test_gradcheck_refuses_what_the_cli_refuses():
    m = small()
    with pytest.raises(ValueError, match="entries: must be at least 1"):
        m.gradcheck(entries=0)
    for tol in [-1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="tolerance: must be a finite number"):
            m.gradcheck(tolerance=tol)
    with pytest.raises(ValueError, match="batch: must be at least 1"):
        m.gradcheck(batch=0)
    assert m.gradcheck(batch=2, entries=4)["passed"]


def test_gradcheck_refuses_a_batch_beyond_the_memory_budget():
    # 2**40 samples aborted on the failed allocation; 2**62 overflowed into a
    # panic in the GEMM.
    r = in_child(
        "m = sae.Autoencoder.preset('shallow', input=16)\n"
        "for b in [2**40, 2**62, 2**64 - 1]:\n"
        "    try:\n"
        "        m.gradcheck(batch=b)\n"
        "    except ValueError as e:\n"
        "        print('ValueError:', str(e).splitlines()[0])\n"
        "print(m.gradcheck(batch=2, entries=4)['passed'])\n"
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for b, line in zip([2**40, 2**62, 2**64 - 1], lines):
        assert line.startswith(f"ValueError: gradcheck at batch {b} needs"), line
        assert "memory budget" in line
    assert lines[-1] == "True"


# Arrays that hold little memory but stand for a great deal: broadcast rows
# (no memory at all) whose converted copy, or an output many times the
# input's size, the machine cannot hold. Each was attempted and aborted
# the interpreter on the failed allocation (float64: first a scan of every
# value).
HUGE = {
    "encode float32 broadcast": "m.encode(np.broadcast_to(np.float32(0.5), (10**12, 16)))",
    "encode float64 broadcast": "m.encode(np.broadcast_to(0.5, (10**12, 16)))",
    "encode uint8 broadcast": "m.encode(np.broadcast_to(np.uint8(7), (10**12, 16)))",
    "encode int32 broadcast": "m.encode(np.broadcast_to(np.int32(0), (10**12, 16)))",
    "reconstruct": "m.reconstruct(np.broadcast_to(np.float32(0.5), (10**12, 16)))",
    "score": "m.score(np.broadcast_to(np.float32(0.5), (10**12, 16)))",
    "evaluate": "m.evaluate(np.broadcast_to(np.float32(0.5), (10**12, 16)))",
    "fit": "m.fit(np.broadcast_to(np.float32(0.5), (10**12, 16)), epochs=1, verbose=False)",
    "fit validation_data": "m.fit(np.zeros((8, 16), np.float32), epochs=1, batch_size=4, verbose=False,"
    " validation_data=np.broadcast_to(np.float32(0.5), (10**12, 16)))",
    "decode broadcast": "m.decode(np.broadcast_to(np.float32(0.5), (10**12, 32)))",
    # Real codes (128 MB); the outputs they decode to, 4 TB.
    "decode wide outputs": "sae.Autoencoder.preset('shallow', input=10**6).decode(np.zeros((10**6, 32), np.float32))",
}


@pytest.mark.parametrize("call", list(HUGE.values()), ids=list(HUGE))
def test_copies_and_outputs_beyond_the_memory_budget_are_refused(call):
    r = in_child(
        "m = sae.Autoencoder.preset('shallow', input=16)\n"
        f"try:\n    {call}\nexcept ValueError as e:\n    print('ValueError:', str(e).splitlines()[0])\n"
        "print(m.encode(np.ones((2, 16), np.float32)).shape)\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    refused, after = r.stdout.splitlines()
    assert refused.startswith("ValueError:") and "more than the memory budget" in refused, refused
    assert after == "(2, 32)"


def test_a_config_path_is_read_as_the_cli_reads_it(tmp_path):
    # A FIFO blocked from_config for ever, /dev/zero was read until memory
    # ran out, a 200 MB file was read whole: only a regular file within the
    # JSON cap is read, as `sparse-ae train --config` reads it.
    fifo = tmp_path / "cfg.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(200 * 10**6)
    r = in_child(
        f"for p in [{str(fifo)!r}, '/dev/zero', {str(big)!r}]:\n"
        "    try:\n"
        "        sae.Autoencoder.from_config(p)\n"
        "    except OSError as e:\n"
        "        print('OSError:', e)\n",
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    fifo_err, zero_err, big_err = r.stdout.splitlines()
    assert fifo_err == f"OSError: {fifo}: is a FIFO (named pipe), not a regular file", fifo_err
    assert zero_err == "OSError: /dev/zero: is a character device, not a regular file", zero_err
    assert big_err.startswith(f"OSError: {big}:") and "JSON" in big_err, big_err
    # A bad field is named under the file, as the CLI names it.
    (tmp_path / "bad.json").write_text('{"input": 4, "layers": [{"units": 0}]}')
    with pytest.raises(ValueError, match="bad.json: layers"):
        sparse_ae.Autoencoder.from_config(tmp_path / "bad.json")


def test_fit_takes_a_batch_larger_than_the_data_as_the_cli_does():
    # The default batch of 256 on 40 samples stopped with "batch_size: 256
    # is larger than the 40 training samples"; `sparse-ae train` (and Keras)
    # cut it to the data, and say so.
    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    m = small()
    with pytest.warns(UserWarning, match="batch_size 256 is more than the 40 training samples: training with batch size 40"):
        hist = m.fit(x, epochs=2, verbose=False)
    assert hist["step"] == [1, 2]
    ref = small()
    ref.fit(x, epochs=2, batch_size=40, verbose=False)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)
    with pytest.warns(UserWarning, match="batch_size 4611686018427387904 is more than the 40"):
        m.fit(x, epochs=1, batch_size=2**62, verbose=False)
    # No samples at all is still an error.
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(x[:0], epochs=1, verbose=False)


def test_fit_refuses_arguments_it_would_ignore_or_use_late():
    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    m = small()
    before = m.state_dict()
    # Adam has no momentum: the value was dropped without a word (the CLI
    # refuses --momentum without --optimizer sgd).
    with pytest.raises(ValueError, match="momentum: applies to optimizer=\"sgd\" only"):
        m.fit(x, epochs=1, batch_size=8, momentum=0.5, verbose=False)
    # A callback that cannot be called failed only after a whole epoch.
    with pytest.raises(TypeError, match=r"callbacks\[1\]: expected a function"):
        m.fit(x, epochs=1, batch_size=8, callbacks=[lambda e, logs: None, 5], verbose=False)
    # An empty tuple raised IndexError.
    with pytest.raises(ValueError, match="validation_data: expected an array or a tuple"):
        m.fit(x, epochs=1, batch_size=8, validation_data=(), verbose=False)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)
    # SGD still takes a momentum, and the default is the CLI's 0.9.
    a, b = small(), small()
    a.fit(x, epochs=1, batch_size=8, optimizer="sgd", verbose=False)
    b.fit(x, epochs=1, batch_size=8, optimizer="sgd", momentum=0.9, verbose=False)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)


WHOLE = [
    ("fit epochs", lambda m, x: m.fit(x, epochs=-1, verbose=False), "epochs"),
    ("fit batch_size", lambda m, x: m.fit(x, batch_size=-8, verbose=False), "batch_size"),
    ("fit seed", lambda m, x: m.fit(x, epochs=1, batch_size=8, seed=-1, verbose=False), "seed"),
    ("fit seed 2**64", lambda m, x: m.fit(x, epochs=1, batch_size=8, seed=2**64, verbose=False), "seed"),
    ("fit noise_seed", lambda m, x: m.fit(x, epochs=1, batch_size=8, noise_seed=-3, verbose=False), "noise_seed"),
    ("preset input", lambda m, x: sparse_ae.Autoencoder.preset("shallow", input=-16), "input"),
    ("preset input 0", lambda m, x: sparse_ae.Autoencoder.preset("shallow", input=0), "input"),
    ("preset seed", lambda m, x: sparse_ae.Autoencoder.preset("shallow", seed=-1), "seed"),
    ("preset image", lambda m, x: sparse_ae.Autoencoder.preset("conv", image=(-28, 28)), "image"),
    ("from_config seed", lambda m, x: sparse_ae.Autoencoder.from_config(m.config, seed=-1), "seed"),
    ("gradcheck batch", lambda m, x: m.gradcheck(batch=-1), "batch"),
    ("gradcheck entries", lambda m, x: m.gradcheck(entries=-1), "entries"),
    ("gradcheck seed", lambda m, x: m.gradcheck(seed=-1), "seed"),
]


@pytest.mark.parametrize("call,name", [(c, n) for _, c, n in WHOLE], ids=[w[0] for w in WHOLE])
def test_whole_numbers_out_of_range_raise_value_error_naming_the_argument(call, name):
    # Negative counts and seeds raised OverflowError: can't convert negative
    # int to unsigned, naming neither the argument nor its range.
    m, x = small(), np.random.default_rng(0).random((40, 16), dtype=np.float32)
    with pytest.raises(ValueError, match=rf"^{name}: must be a whole number from \d+ to 2\*\*64 - 1, got -?\d+"):
        call(m, x)
    assert m.encode(x).shape == (40, 32)


def test_whole_numbers_take_any_integer_and_refuse_the_rest():
    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    a, b = small(), small()
    a.fit(x, epochs=np.int64(2), batch_size=np.uint16(8), seed=np.int8(3), verbose=False)
    b.fit(x, epochs=2, batch_size=8, seed=3, verbose=False)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)
    with pytest.raises(TypeError, match="epochs: expected a whole number, got float"):
        a.fit(x, epochs=1.5, verbose=False)
    with pytest.raises(TypeError, match="batch_size: expected a whole number, got str"):
        a.fit(x, batch_size="8", verbose=False)
    with pytest.raises(ValueError, match="epochs: must be at least 1"):
        a.fit(x, epochs=0, batch_size=8, verbose=False)
    assert sparse_ae.Autoencoder.preset("shallow", seed=2**64 - 1).input_dim == 784


NOT_NUMBERS = {
    "complex": (lambda x: x.astype(np.complex64) + 1j, "imaginary parts would be dropped"),
    "datetime64": (lambda x: np.zeros(x.shape, "datetime64[s]"), "times"),
    "timedelta64": (lambda x: np.zeros(x.shape, "timedelta64[s]"), "times"),
    "numeric strings": (lambda x: x.astype(str), "text"),
    "bytes": (lambda x: x.astype("S8"), "text"),
    # An object array of text was parsed number by number all the same.
    "object strings": (lambda x: x.astype(str).astype(object), r"dtype object .* holds text \('0\.\d+' at sample 0, feature 0\)"),
    "object bytes": (lambda x: x.astype("S8").astype(object), r"dtype object .* holds text \(b'0\.\d+' at sample 0, feature 0\)"),
    "record": (lambda x: np.zeros(x.shape, [("a", "f4")]), "records"),
    "masked": (lambda x: np.ma.masked_array(x, x > 0.5), "masked"),
}


@pytest.mark.parametrize("make,msg", list(NOT_NUMBERS.values()), ids=list(NOT_NUMBERS))
@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit", "decode", "validation_data"])
def test_arrays_that_are_not_real_numbers_are_refused(make, msg, method):
    # Each was converted without a word: the real part of complex values,
    # seconds since 1970, strings parsed as numbers, a record's one field,
    # the values under a mask.
    m = small()
    x = np.random.default_rng(0).random((8, 32 if method == "decode" else 16)).astype(np.float32)
    with pytest.raises(ValueError, match=msg):
        if method == "fit":
            m.fit(make(x), epochs=1, batch_size=4, verbose=False)
        elif method == "validation_data":
            m.fit(x, epochs=1, batch_size=4, validation_data=make(x), verbose=False)
        else:
            getattr(m, method)(make(x))
    # A mask with nothing masked, object arrays of numbers and lists are numbers.
    if method not in ("decode", "validation_data"):
        getattr(m, method if method != "fit" else "score")(np.ma.masked_array(x, False))
        getattr(m, method if method != "fit" else "score")(x.astype(object))


@pytest.mark.parametrize("shape", [(4, 0), (0, 0), (3, 0, 4)])
@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit", "decode"])
def test_samples_of_no_features_are_named(shape, method):
    # Said "Samples: shape mismatch: expected whole samples of 0 features,
    # got 0 values", naming neither the argument nor the shape.
    m = small()
    with pytest.raises(ValueError, match=rf"^{method if method != 'fit' else 'x'}: an array of shape \[{', '.join(map(str, shape))}\] has samples of no features"):
        if method == "fit":
            m.fit(np.zeros(shape, np.float32), epochs=1, verbose=False)
        else:
            getattr(m, method)(np.zeros(shape, np.float32))


def test_the_model_is_usable_while_fit_trains_it():
    # fit held the model borrowed throughout: a callback reading the model
    # (m.config, m.state_dict(), m.encode(x), the Keras pattern) or another
    # thread's encode failed with "RuntimeError: Already mutably borrowed".
    import threading

    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    m = small()
    seen, from_thread = [], []
    go, done = threading.Event(), threading.Event()

    def other_thread():
        go.wait()
        try:
            from_thread.append(m.encode(x))
        except Exception as e:
            from_thread.append(e)
        done.set()

    t = threading.Thread(target=other_thread)
    t.start()

    def cb(epoch, logs):
        seen.append((m.config["input"], m.state_dict(), m.encode(x)))
        if epoch == 0:
            go.set()
            done.wait()

    m.fit(x, epochs=2, batch_size=8, callbacks=[cb], verbose=False)
    t.join()
    assert len(seen) == 2 and isinstance(from_thread[0], np.ndarray), from_thread
    # A callback sees the weights of the epoch just ended.
    for epoch, (_, sd, codes) in enumerate(seen):
        ref_e = small()
        ref_e.fit(x, epochs=epoch + 1, batch_size=8, verbose=False)
        for k, v in ref_e.state_dict().items():
            np.testing.assert_array_equal(sd[k], v, err_msg=k)
        np.testing.assert_array_equal(codes, ref_e.encode(x))
    np.testing.assert_array_equal(from_thread[0], seen[0][2])
    # A second fit of the same model while it trains is refused by name, and
    # the first goes on.
    def nested(epoch, logs):
        m.fit(x, epochs=1, batch_size=8, verbose=False)

    with pytest.raises(RuntimeError, match="fit: this model is being trained already"):
        m.fit(x, epochs=1, batch_size=8, callbacks=[nested], verbose=False)
    assert m.fit(x, epochs=1, batch_size=8, verbose=False)["epoch"] == [1]


def test_from_state_dict_checks_each_value_before_converting_it():
    m = small()
    sd, cfg = m.state_dict(), m.config
    k = "encoder.0.weight"
    # Converted first, checked after: None became [nan] ("got shape [1]"),
    # a 0-d value shape [1], complex and masked values were taken without a
    # word, and a broadcast 10**6 x 10**6 value was copied whole (3.6 TB:
    # MemoryError, or the machine's memory) before its shape was looked at.
    bad = {
        "None": (None, r"got shape \[\] \(object\)"),
        "0-d": (np.float32(1), r"got shape \[\] \(float32\)"),
        "broadcast": (np.broadcast_to(np.float32(0), (10**6, 10**6)), r"got shape \[1000000, 1000000\]"),
        "complex": (sd[k] + 1j, r"state_dict\[\"encoder.0.weight\"\]: .*imaginary parts would be dropped"),
        "masked": (np.ma.masked_array(sd[k], sd[k] > 0), r"state_dict\[\"encoder.0.weight\"\]: a masked array"),
        "text": (sd[k].astype(str), "text"),
    }
    for name, (v, msg) in bad.items():
        with pytest.raises(ValueError, match=msg):
            sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, k: v})
    # Real numbers of any type and layout are taken.
    for v in [sd[k].astype(">f4"), sd[k].astype(np.float64), np.asfortranarray(sd[k]), sd[k].tolist()]:
        back = sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, k: v})
        np.testing.assert_array_equal(back.state_dict()[k], sd[k])


def test_noise_and_config_values_json_cannot_hold_are_named():
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    m = small()
    # True was Gaussian noise of std 1.
    with pytest.raises(TypeError, match="noise: expected the std of Gaussian noise .* got bool"):
        m.fit(x, epochs=1, batch_size=4, noise=True, verbose=False)
    # A quote in a type name broke the JSON it was pasted into:
    # "<memory>: invalid JSON: line 1, column 13".
    with pytest.raises(ValueError, match=r"noise.type: unknown noise `a\"b`"):
        m.fit(x, epochs=1, batch_size=4, noise='a"b', verbose=False)
    # NaN in a dict was written as a bare NaN and refused as "<memory>:
    # invalid JSON: ... found 'N'".
    with pytest.raises(ValueError, match="noise: cannot be written as JSON: Out of range float values"):
        m.fit(x, epochs=1, batch_size=4, noise={"type": "gaussian", "std": float("nan")}, verbose=False)
    with pytest.raises(ValueError, match="config: cannot be written as JSON: Out of range float values"):
        sparse_ae.Autoencoder.from_config({**m.config, "input": float("inf")})
    with pytest.raises(TypeError, match="config: cannot be written as JSON: Object of type object"):
        sparse_ae.Autoencoder.from_config({**m.config, "input": object()})
    # Valid spellings still work.
    m.fit(x, epochs=1, batch_size=4, noise={"type": "masking", "p": 0.25}, verbose=False)
    assert m.config["noise"] == {"type": "masking", "p": 0.25}
    m.fit(x, epochs=1, batch_size=4, noise="none", verbose=False)
    assert m.config["noise"] == {"type": "none"}
    m.fit(x, epochs=1, batch_size=4, noise=0.25, verbose=False)
    assert m.config["noise"] == {"type": "gaussian", "std": 0.25}


def test_the_memory_budget_is_set_from_python_and_its_hint_says_how():
    # The budget could not be changed from Python, and its errors' hint named
    # the command line's --max-memory.
    m = small()
    x = np.asfortranarray(np.zeros((100_000, 16), np.float32))  # a 6.4 MB copy
    try:
        assert sparse_ae.set_max_memory(0.001) == 10**6
        with pytest.raises(ValueError, match=r"(?s)encode: a C-ordered float32 copy .* needs 6 MB, more than the memory budget of 1 MB.*sparse_ae\.set_max_memory\(gb\)") as e:
            m.encode(x)
        assert "--max-memory" not in str(e.value)
        for bad in [0.0, -1.0, float("nan"), float("inf"), 1e10]:
            with pytest.raises(ValueError, match="set_max_memory: gb must be a positive number"):
                sparse_ae.set_max_memory(bad)
    finally:
        default = sparse_ae.set_max_memory(None)
    assert default > 10**6
    assert m.encode(x).shape == (100_000, 32)


@pytest.mark.parametrize("method", ["encode", "reconstruct", "score", "evaluate", "fit", "validation_data"])
def test_images_of_another_shape_with_as_many_pixels_are_refused(method):
    # A model for 5x7 images took 7x5 ones (35 values each) and read every
    # one in the wrong shape; `sparse-ae` refuses such IDX data.
    m = sparse_ae.Autoencoder.preset("conv", image=(5, 7))
    rng = np.random.default_rng(0)
    wrong, right = rng.random((8, 7, 5), dtype=np.float32), rng.random((8, 5, 7), dtype=np.float32)
    msg = r"the model takes images of 1×5×7 \(channels × height × width\), but the samples are 7×5"
    with pytest.raises(ValueError, match=msg):
        give(m, method, wrong, right)
    # The model's own shape, with or without the channel axis, and flat
    # samples are taken.
    for x in [right, right.reshape(8, 1, 5, 7), right.reshape(8, 35)]:
        if method in ("fit", "validation_data"):
            m.fit(right, epochs=1, batch_size=4, validation_data=x, verbose=False)
        else:
            getattr(m, method)(x)


# Every entry point that starts work on the pool, as source for a child
# run on a 16-input shallow model `m` and 8 samples `x`.
ENTRY_POINTS = [
    "m.fit(x, epochs=1, batch_size=4, verbose=False)",
    "m.encode(x)",
    "m.decode(np.zeros((8, 32), np.float32))",
    "m.reconstruct(x)",
    "m.score(x)",
    "m.evaluate(x)",
    "m.gradcheck(batch=2, entries=4)",
]


def each_call_then_fit(calls, put_right, before=""):
    """Source for in_child: runs the statements `before` on the model `m`
    and data `x`, then each of `calls`, printing the first line of the
    ValueError it raises (or `no error:`), then the statement `put_right`,
    then a fit whose epochs it prints."""
    return (
        "import os\n"
        "m = sae.Autoencoder.preset('shallow', input=16)\n"
        "x = np.random.default_rng(0).random((8, 16), dtype=np.float32)\n"
        f"{before}"
        f"for call in {calls!r}:\n"
        "    try:\n"
        "        eval(call)\n"
        "        print('no error:', call)\n"
        "    except ValueError as e:\n"
        "        print('ValueError:', str(e).splitlines()[0])\n"
        f"{put_right}\n"
        "print(m.fit(x, epochs=1, batch_size=4, verbose=False)['epoch'])\n"
    )


@pytest.mark.parametrize(
    "var,value,says",
    [
        ("RAYON_NUM_THREADS", "100000", "got 100000"),
        ("RAYON_NUM_THREADS", str(2**64), f"got {2**64}"),
        ("RAYON_NUM_THREADS", "four", "got `four`"),
        ("RAYON_RS_NUM_CPUS", "100000", "got 100000"),
    ],
    ids=["100000", "2**64", "four", "RAYON_RS_NUM_CPUS"],
)
def test_thread_counts_from_the_environment_beyond_the_bound_are_refused(var, value, says):
    # RAYON_NUM_THREADS=100000 had fit start every thread rayon could (up to
    # 65,535: minutes, or a failure half way); a value that is not a number
    # (or beyond 2**64) was ignored without a word.
    calls = ENTRY_POINTS
    # Put right, the variable is read again and the module works.
    src = each_call_then_fit(calls, f"os.environ[{var!r}] = '2'")
    r = in_child(src, timeout=60, env={"RAYON_NUM_THREADS": None, "RAYON_RS_NUM_CPUS": None, var: value})
    assert r.returncode == 0, r.stderr[-2000:]
    *refused, after = r.stdout.splitlines()
    assert len(refused) == len(calls)
    for line in refused:
        assert line.startswith(f"ValueError: invalid configuration: {var}: must be"), line
        assert says in line, line
    assert after == "[1]"


ENGINE_VARIABLES = {
    "kernel": ("SPARSE_AE_KERNEL", "sse9", '"sse9" is not a kernel path (scalar, avx2, avx512, neon, simd128)'),
    "max isa": ("SPARSE_AE_MAX_ISA", "sse9", '"sse9" is not a kernel path (scalar, avx2, avx512, neon, simd128)'),
    "require isa": ("SPARSE_AE_REQUIRE_ISA", "scalar,neon9", '"neon9" is not a kernel path (scalar, avx2, avx512, neon, simd128)'),
    "thread policy": ("SPARSE_AE_THREAD_POLICY", "fastest", "unknown thread policy `fastest`; use measured, split or alternate"),
    "topk path": ("SPARSE_AE_TOPK_PATH", "sparsest", "unknown top-k path `sparsest`; use auto, dense or sparse"),
}


@pytest.mark.parametrize("var,value,says", list(ENGINE_VARIABLES.values()), ids=list(ENGINE_VARIABLES))
def test_engine_variables_are_refused_as_the_cli_refuses_them(cli, var, value, says):
    # A bad SPARSE_AE_THREAD_POLICY or SPARSE_AE_TOPK_PATH was ignored
    # without a word, a bad SPARSE_AE_KERNEL or SPARSE_AE_MAX_ISA gave a
    # warning on stderr and the detected path, where the CLI refuses each.
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in {var, "SPARSE_AE_REQUIRE_ISA"}}
    r = subprocess.run([str(cli), "presets"], capture_output=True, text=True, env={**env, var: value})
    assert r.returncode == 2, r
    want = f"invalid configuration: {var}: {says}"
    assert r.stderr.splitlines()[0] == f"error: {want}", r.stderr
    calls = ENTRY_POINTS + ["sae.kernel_path()"]
    # Put right, the variable is read again and the module works.
    src = each_call_then_fit(calls, f"del os.environ[{var!r}]")
    r = in_child(src, timeout=60, env={"SPARSE_AE_REQUIRE_ISA": None, var: value})
    assert r.returncode == 0, r.stderr[-2000:]
    *refused, after = r.stdout.splitlines()
    assert refused == [f"ValueError: {want}"] * len(calls)
    assert after == "[1]"
    assert "sparse-ae:" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    "var,value",
    [("SPARSE_AE_KERNEL", "scalar"), ("SPARSE_AE_MAX_ISA", "scalar"), ("SPARSE_AE_TOPK_PATH", "dense")],
    ids=["kernel", "max isa", "topk path"],
)
def test_a_path_variable_changed_after_the_first_computation_is_refused(var, value):
    # The kernel path, its cap and the top-k default are read once per
    # process; set after the first fit, they were ignored without a word.
    first_fit = (
        "print(sae.kernel_path())\n"
        "m.fit(x, epochs=1, batch_size=4, verbose=False)\n"
        f"os.environ[{var!r}] = {value!r}\n"
    )
    src = each_call_then_fit(ENTRY_POINTS + ["sae.kernel_path()"], f"del os.environ[{var!r}]", before=first_fit)
    r = in_child(src, timeout=60, env={"SPARSE_AE_REQUIRE_ISA": None, "SPARSE_AE_KERNEL": None, "SPARSE_AE_TOPK_PATH": None})
    assert r.returncode == 0, r.stderr[-2000:]
    path, *refused, after = r.stdout.splitlines()
    if var != "SPARSE_AE_TOPK_PATH" and path == "scalar":
        pytest.skip("the process runs on the scalar path already")
    assert len(refused) == len(ENTRY_POINTS) + 1
    for line in refused:
        assert line.startswith(f"ValueError: invalid configuration: {var}: now "), line
        assert "once per process" in line, line
    # Put back, the module works again.
    assert after == "[1]"


def test_a_kernel_path_this_cpu_lacks_is_named_with_the_ones_it_has(cli):
    import platform
    import subprocess

    # A path of another architecture: this CPU lacks it.
    missing = "avx2" if platform.machine().lower() in ("aarch64", "arm64") else "neon"
    env = {k: v for k, v in os.environ.items() if k != "SPARSE_AE_REQUIRE_ISA"}
    r = subprocess.run([str(cli), "presets"], capture_output=True, text=True, env={**env, "SPARSE_AE_KERNEL": missing})
    assert r.returncode == 2, r
    first = r.stderr.splitlines()[0]
    assert first.startswith(
        f"error: SPARSE_AE_KERNEL: kernel path `{missing}` is not available on this CPU or build (it has scalar"
    ), first
    r = in_child(
        "sae.Autoencoder.preset('shallow', input=16).encode(np.zeros((2, 16), np.float32))\n",
        timeout=60,
        env={"SPARSE_AE_REQUIRE_ISA": None, "SPARSE_AE_KERNEL": missing},
    )
    assert r.returncode != 0
    assert f"ValueError: {first[len('error: '):]}" in r.stderr, r.stderr


F32_PARAMS = {
    "lr 1e39": (lambda m, x: m.fit(x, epochs=1, batch_size=4, lr=1e39, verbose=False), r"lr: 1e39 is beyond f32's range"),
    "lr 1e-50": (lambda m, x: m.fit(x, epochs=1, batch_size=4, lr=1e-50, verbose=False), r"lr: 1e-50 is below f32's smallest"),
    "sgd lr 1e39": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, optimizer="sgd", lr=1e39, verbose=False),
        r"lr: 1e39 is beyond f32's range",
    ),
    "momentum": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, optimizer="sgd", momentum=0.99999999, verbose=False),
        r"momentum: 0.99999999 is 1 in f32",
    ),
    "noise 1e39": (lambda m, x: m.fit(x, epochs=1, batch_size=4, noise=1e39, verbose=False), r"noise.std: 1e39 is beyond f32's range"),
    "noise 1e-50": (lambda m, x: m.fit(x, epochs=1, batch_size=4, noise=1e-50, verbose=False), r"noise.std: 1e-50 is below f32's smallest"),
    "noise dict": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, noise={"type": "gaussian", "std": 1e-50}, verbose=False),
        r"noise.std: 1e-50 is below f32's smallest",
    ),
    "noise dict 1e39": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, noise='{"type": "gaussian", "std": 1e39}', verbose=False),
        r"noise.std: 1e39 is beyond f32's range",
    ),
    "masking 1e-50": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, noise={"type": "masking", "p": 1e-50}, verbose=False),
        r"noise.p: 1e-50 is below f32's smallest",
    ),
    "masking 0.99999999": (
        lambda m, x: m.fit(x, epochs=1, batch_size=4, noise={"type": "masking", "p": 0.99999999}, verbose=False),
        r"noise.p: 0.99999999 is 1 in f32",
    ),
    "masking 0.99999996": (
        lambda m, x: sparse_ae.Autoencoder.from_config({**m.config, "noise": {"type": "masking", "p": 0.99999996}}),
        r"noise.p: 0.99999996 would mask every input",
    ),
    "l1": (lambda m, x: sparse_ae.Autoencoder.from_config({**m.config, "l1": {"lambda": 1e-50, "layer": 0}}), r"l1.lambda: 1e-50 is below f32's smallest"),
    "weight_decay": (lambda m, x: sparse_ae.Autoencoder.from_config({**m.config, "weight_decay": 1e39}), r"weight_decay: 1e39 is beyond f32's range"),
    "kl beta": (
        lambda m, x: sparse_ae.Autoencoder.from_config(
            {**m.config, "layers": [{"units": 32, "activation": "sigmoid"}, {"units": 16, "activation": "sigmoid"}],
             "l1": None, "kl": {"rho": 0.05, "beta": 1e39, "layer": 0}}
        ),
        r"kl.beta: 1e39 is beyond f32's range",
    ),
    "kl rho": (
        lambda m, x: sparse_ae.Autoencoder.from_config(
            {**m.config, "layers": [{"units": 32, "activation": "sigmoid"}, {"units": 16, "activation": "sigmoid"}],
             "l1": None, "kl": {"rho": 1e-50, "beta": 3, "layer": 0}}
        ),
        r"kl.rho: 1e-50 is below f32's smallest",
    ),
    "slope": (
        lambda m, x: sparse_ae.Autoencoder.from_config(
            {**m.config, "layers": [{"units": 32, "activation": "leaky_relu", "slope": 0.999999999}, {"units": 16, "activation": "sigmoid"}]}
        ),
        r"layers\[0\].slope: 0.999999999 is 1 in f32",
    ),
}


@pytest.mark.parametrize("call,msg", list(F32_PARAMS.values()), ids=list(F32_PARAMS))
def test_hyper_parameters_f32_would_make_infinite_zero_or_one_are_refused(call, msg):
    # Training computes in f32: noise of std 1e39 was taken (and trained on
    # infinite inputs), a learning rate or penalty of 1e-50 was 0 without a
    # word, a momentum of 0.99999999 was 1.
    m = small()
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    before = m.state_dict()
    with pytest.raises(ValueError, match=msg):
        call(m, x)
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)
    assert m.config["noise"] == {"type": "none"}


def says_nothing_of_the_command_line(msg):
    """No flag (`--config`, `--steps`), checkpoint or `train` command in a
    message Python raises: Python has none of them."""
    import re

    assert not re.search(r"--[a-z]", msg), msg
    assert "checkpoint" not in msg and "train --" not in msg, msg


@pytest.mark.parametrize("with_callback", [False, True], ids=["plain", "callback"])
def test_a_fit_that_goes_nan_says_what_python_can_do_and_keeps_the_weights(with_callback):
    # The hint said "... or resume from the last checkpoint", which Python's
    # fit never writes, and the model kept weights of 1e30 (or Inf) from the
    # steps before, on which encode gave NaN.
    m = small()
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    before = m.state_dict()
    seen = []
    callbacks = [lambda epoch, logs: seen.append(epoch)] if with_callback else None
    with pytest.raises(ValueError, match=r"(?s)non-finite value .* at step 2\n---> HINT: lower the learning rate \(fit's lr\)") as e:
        m.fit(x, epochs=3, batch_size=8, lr=1e30, callbacks=callbacks, verbose=False)
    says_nothing_of_the_command_line(str(e.value))
    assert "the model keeps the weights it had before this fit" in str(e.value)
    # (With a callback, it saw the first epoch's weights of about 1e30.)
    assert seen == ([0] if with_callback else [])
    for k, v in before.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)
    assert np.isfinite(m.encode(x)).all()
    assert m.fit(x, epochs=1, batch_size=8, verbose=False)["epoch"] == [1]


def test_messages_name_what_python_has_not_the_command_lines_flags(tmp_path):
    # Each hint named a flag of `sparse-ae train` (--linear-output, --config,
    # --steps, --data DIR, --init), none of which Python has.
    m = small()
    with pytest.raises(ValueError, match=r"binary cross-entropy needs targets in \[0, 1\]") as e:
        m.score(np.full((4, 16), 5, np.float32))
    says_nothing_of_the_command_line(str(e.value))
    with pytest.raises(ValueError, match=r"Autoencoder.preset\(name, image=\(height, width\)\)") as e:
        sparse_ae.Autoencoder.preset("conv", input=35)
    says_nothing_of_the_command_line(str(e.value))
    with pytest.raises(ValueError, match=r"keeping the metrics of 1000000000000000 epochs .*\(ask for fewer epochs\)") as e:
        m.fit(np.zeros((8, 16), np.float32), epochs=10**15, batch_size=8, verbose=False)
    says_nothing_of_the_command_line(str(e.value))
    # A safetensors file of tensors alone (no configuration).
    import json, struct

    head = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (tmp_path / "plain.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 4)
    with pytest.raises(ValueError, match=r"Autoencoder.from_state_dict\(config, state_dict\)") as e:
        sparse_ae.Autoencoder.load(tmp_path / "plain.safetensors")
    says_nothing_of_the_command_line(str(e.value))
    # A data set that is nowhere (an empty cache, no $SPARSE_AE_DATA).
    r = in_child(
        f"import os\nos.chdir({str(tmp_path)!r})\n"
        "try:\n    sae.datasets.mnist()\nexcept OSError as e:\n    print(e)\n",
        env={"SPARSE_AE_DATA": None, "SPARSE_AE_CACHE": str(tmp_path / "cache")},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not found" in r.stdout and "pass path=DIR" in r.stdout, r.stdout
    says_nothing_of_the_command_line(r.stdout)


@pytest.mark.parametrize("method", ["evaluate", "score", "fit", "validation_data"])
def test_bce_targets_outside_the_unit_interval_are_named_by_sample(method):
    # evaluate said "feature 3 of a sample is 7", naming no sample.
    m = small()
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    bad = x.copy()
    bad[5, 3] = 7
    msg = r"binary cross-entropy needs targets in \[0, 1\], but feature 3 of sample 5 (of (the training split|validation_data) )?is 7"
    with pytest.raises(ValueError, match=msg):
        give(m, method, bad, x)


def test_values_beyond_float32_are_named_by_key_index_and_value():
    import warnings

    # from_state_dict said "non-finite value (NaN or Inf) in `encoder.0.weight`
    # (entry 18)" with the hint "replace or drop the samples with missing
    # (NaN) or infinite values", of a finite 1e39, after NumPy's
    # RuntimeWarning: overflow encountered in cast.
    m = small()
    sd, cfg, k = m.state_dict(), m.config, "encoder.0.weight"
    big = sd[k].astype(np.float64)
    big[1, 2] = 1e39
    huge_int = sd[k].astype(object)
    huge_int[0, 5] = 10**40
    nan = sd[k].copy()
    nan[3, 1] = np.nan
    cases = [
        (big, r'^state_dict\["encoder.0.weight"\]\[1, 2\] is 1e39, beyond float32\'s range \(±3.4028235e38\)'),
        (huge_int, r'^state_dict\["encoder.0.weight"\]\[0, 5\] is 1e40, beyond float32\'s range'),
        (nan, r'^state_dict\["encoder.0.weight"\]\[3, 1\] is NaN: parameters must be finite numbers$'),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v, msg in cases:
            with pytest.raises(ValueError, match=msg) as e:
                sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, k: v})
            assert "samples" not in str(e.value)
        # Inputs of other types than float64 (which was named already).
        x = np.random.default_rng(0).random((4, 16)).astype(np.longdouble)
        x[1, 2] = np.longdouble(1e39)
        for method in ["encode", "score", "evaluate"]:
            with pytest.raises(ValueError, match=rf"^{method}: sample 1, feature 2 is 1e39, outside f32's range"):
                getattr(m, method)(x)
    back = sparse_ae.Autoencoder.from_state_dict(cfg, {**sd, k: sd[k].astype(np.float64)})
    np.testing.assert_array_equal(back.state_dict()[k], sd[k])


class Stopper:
    def __init__(self, value):
        self.value = value

    def on_epoch_end(self, epoch, logs):
        return self.value


def test_what_a_callback_returns_is_none_or_a_bool():
    # A callback that returned a NumPy array stopped fit with NumPy's
    # "truth value of an array with more than one element is ambiguous",
    # and one that returned 0.5, "no" or [0] stopped training by its truth.
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)

    def returns_array(epoch, logs):
        return np.array([1.0, 2.0])

    for cb, named, what in [
        (returns_array, r"returns_array", "ndarray"),
        (lambda epoch, logs: "no", r"<lambda>", "str"),
        (lambda epoch, logs: 0.5, r"<lambda>", "float"),
        (Stopper([0]), r"Stopper.on_epoch_end", "list"),
    ]:
        m = small()
        with pytest.raises(TypeError, match=rf"^callbacks\[1\] \({named}\) returned {what}: a callback returns None \(or False\) to go on and True to stop training"):
            m.fit(x, epochs=3, batch_size=4, callbacks=[lambda e, logs: None, cb], verbose=False)
        # The epoch it was called after is kept, as when a callback raises.
        assert m.fit(x, epochs=1, batch_size=4, verbose=False)["epoch"] == [1]
    # None and False go on, True and NumPy's True stop.
    for value, epochs in [(None, 3), (False, 3), (True, 1), (np.True_, 1), (np.False_, 3)]:
        hist = small().fit(x, epochs=3, batch_size=4, callbacks=[Stopper(value)], verbose=False)
        assert hist["epoch"] == list(range(1, epochs + 1)), value
    hist = small().fit(x, epochs=3, batch_size=4, callbacks=[lambda e, logs: logs["loss"] < 100], verbose=False)
    assert hist["epoch"] == [1]


def test_json_text_that_is_not_an_object_is_read_as_json():
    # "[1]" was looked for as a file (OSError: [1]: No such file or
    # directory), and as a noise type (unknown noise `[1]`).
    m = small()
    for text in ["[1]", "  [ ]", '\n[{"input": 16}]']:
        with pytest.raises(ValueError) as e:
            sparse_ae.Autoencoder.from_config(text)
        assert not isinstance(e.value, OSError) and "No such file" not in str(e.value), e.value
        assert "object" in str(e.value), e.value
        with pytest.raises(ValueError, match="object") as e:
            sparse_ae.Autoencoder.from_state_dict(text, m.state_dict())
        with pytest.raises(ValueError, match=r"noise: .*object") as e:
            m.fit(np.zeros((4, 16), np.float32), epochs=1, batch_size=4, noise=text, verbose=False)
        assert "unknown noise" not in str(e.value)
    with pytest.raises(ValueError, match="invalid JSON"):
        sparse_ae.Autoencoder.from_config("[1,")
    # Paths and type names are still paths and type names.
    with pytest.raises(OSError, match="No such file"):
        sparse_ae.Autoencoder.from_config("model.json")
    assert m.fit(np.zeros((4, 16), np.float32), epochs=1, batch_size=4, noise=" none", verbose=False)["epoch"] == [1]


def test_samples_beyond_float32_are_named_not_scored_inf():
    # A finite sample near float32's largest value: its squared error
    # overflows. `evaluate` and `score` name it (they gave inf), with no
    # command-line flag in the hint.
    cfg = {"input": 8, "layers": [{"units": 4, "activation": "relu"},
                                  {"units": 8, "activation": "linear"}],
           "code_layer": 0, "loss": "mse"}
    m = sparse_ae.Autoencoder.from_config(cfg)
    x = np.random.default_rng(1).random((5, 8), dtype=np.float32)
    x[3, 2] = 3e38
    for call in (m.evaluate, m.score):
        with pytest.raises(ValueError, match="sample 3: the model's result for it is not finite") as e:
            call(x)
        assert "--normalize" not in str(e.value)
    assert np.isfinite(m.score(x[:3])).all()


def test_verbose_takes_keras_numbers_and_callbacks_one_callback():
    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    m = small()
    for v in (0, 1, 2, False, True):
        m.fit(x, epochs=1, batch_size=20, verbose=v)
    for bad in (3, "yes", None.__class__):
        with pytest.raises(TypeError, match="verbose"):
            m.fit(x, epochs=1, batch_size=20, verbose=bad)
    seen = []
    m.fit(x, epochs=2, batch_size=20, verbose=False, callbacks=lambda e, logs: seen.append(e))
    assert seen == [0, 1]
    with pytest.raises(TypeError, match="callbacks: expected a list"):
        m.fit(x, epochs=1, batch_size=20, verbose=False, callbacks=3)


def test_nan_and_values_beyond_float32_name_the_argument():
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    bad = x.copy()
    bad[3, 5] = np.nan
    m = small()
    with pytest.raises(ValueError, match=r"validation_data: sample 3, feature 5"):
        m.fit(x, epochs=1, batch_size=4, validation_data=bad, verbose=False)
    with pytest.raises(ValueError, match=r"\bx: sample 3, feature 5"):
        m.fit(bad, epochs=1, batch_size=4, verbose=False)
    big = x.astype(np.float64)
    big[3, 5] = 1e39
    with pytest.raises(ValueError, match=r"encode: sample 3, feature 5"):
        m.encode(big)


def test_validation_data_is_named_as_such():
    # The engine's test split is fit's validation_data: errors said "the
    # test split", which a Python caller never named.
    m = small()
    x = np.random.default_rng(0).random((40, 16), dtype=np.float32)
    narrow = np.random.default_rng(0).random((10, 12), dtype=np.float32)
    with pytest.raises(ValueError, match="validation_data: shape mismatch") as e:
        m.fit(x, epochs=1, batch_size=20, verbose=False, validation_data=narrow)
    assert "test split" not in str(e.value)
    with pytest.raises(ValueError, match="of sample 0 of validation_data is"):
        m.fit(x, epochs=1, batch_size=20, verbose=False, validation_data=x * 5)
