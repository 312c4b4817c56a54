"""Shared fixtures: a tiny MNIST-layout data set written by the tests, the
CLI binary to compare against."""

import gzip
import os
import pathlib
import struct

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def write_idx(path, array):
    """Writes a uint8 array as an IDX file (gzip-compressed if the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = head + array.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data)
    pathlib.Path(path).write_bytes(data)


def digits(n, seed):
    """`n` 28x28 uint8 images with some structure (blobs), and labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    labels = rng.integers(0, 10, n).astype(np.uint8)
    cx = 6 + 2 * (labels % 5) + rng.normal(0, 1, n)
    cy = 8 + 3 * (labels // 5) + rng.normal(0, 1, n)
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    img = 255 * np.exp(-d2 / 18.0) + rng.uniform(0, 40, (n, 28, 28))
    return np.clip(img, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A directory of the four MNIST IDX files: 320 training and 96 test images."""
    d = tmp_path_factory.mktemp("tiny-mnist")
    x_train, y_train = digits(320, 1)
    x_test, y_test = digits(96, 2)
    write_idx(d / "train-images-idx3-ubyte", x_train)
    write_idx(d / "train-labels-idx1-ubyte", y_train)
    write_idx(d / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx(d / "t10k-labels-idx1-ubyte.gz", y_test)
    return d, (x_train, y_train), (x_test, y_test)


@pytest.fixture(scope="session")
def cli():
    """The `sparse-ae` binary: $SPARSE_AE_BIN, else target/release/sparse-ae."""
    path = pathlib.Path(os.environ.get("SPARSE_AE_BIN", REPO / "target" / "release" / "sparse-ae"))
    assert path.is_file(), f"{path} is missing: build it with `cargo build --release` (or set SPARSE_AE_BIN)"
    return path


@pytest.fixture(scope="session")
def shared_mnist():
    """The real MNIST of ../shared/datasets/mnist, if this checkout has it beside it."""
    d = REPO.parent / "shared" / "datasets" / "mnist"
    if not (d / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"no MNIST at {d}")
    return d


def in_child(src, timeout=300, env=None):
    """Runs Python source `src` in a fresh interpreter with the module
    imported as `sae` and numpy as `np`: a call that would abort the process
    (an allocation failure) fails its test instead of ending the suite.
    `env` adds to (or, for a value of None, removes from) the environment.
    Returns the CompletedProcess (text)."""
    import subprocess
    import sys

    prog = "import numpy as np\nimport sparse_ae as sae\n" + src
    child_env = {**os.environ, "RUST_BACKTRACE": "0"}
    for k, v in (env or {}).items():
        if v is None:
            child_env.pop(k, None)
        else:
            child_env[k] = v
    return subprocess.run(
        [sys.executable, "-c", prog], capture_output=True, text=True, timeout=timeout,
        env=child_env,
    )


def give(model, method, arr, clean):
    """Passes `arr` to `model` through `method`: fit's x, fit's
    validation_data (beside the clean samples `clean`), or the method of
    that name."""
    if method == "fit":
        model.fit(arr, epochs=1, batch_size=4, verbose=False)
    elif method == "validation_data":
        model.fit(clean, epochs=1, batch_size=4, validation_data=arr, verbose=False)
    else:
        getattr(model, method)(arr)
