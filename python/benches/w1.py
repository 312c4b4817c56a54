"""W1 (deep 784-128-32-128-784, batch 32, one epoch of MNIST) through Python
against the CLI, and the per-call overhead of `encode` on one sample.

    python benches/w1.py [--data ../shared/datasets/mnist] [--runs 5]

Runs alternate (CLI, Python, CLI, ...) so that load on a shared machine
falls on both; prints each run and the medians. The CLI's time is its
process wall time (startup, loading the data, the epoch, validation,
saving); Python's is the same span measured around `datasets.mnist`,
`fit` and `save` in this process. The epoch's own seconds (training and
validation, as both report them) are printed beside.
"""

import argparse
import pathlib
import re
import statistics
import subprocess
import tempfile
import time

import numpy as np

import sparse_ae

REPO = pathlib.Path(__file__).resolve().parents[2]


def cli_run(cli, data, out):
    t0 = time.perf_counter()
    p = subprocess.run(
        [str(cli), "train", "--preset", "deep", "--data", str(data), "--epochs", "1",
         "--batch-size", "32", "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    epoch = float(re.search(r"epoch\s+1 .* ([0-9.]+)s\n", p.stderr).group(1))
    return wall, epoch


def py_run(data, out):
    t0 = time.perf_counter()
    (x_train, _), (x_test, _) = sparse_ae.datasets.mnist(data)
    m = sparse_ae.Autoencoder.preset("deep")
    hist = m.fit(x_train, epochs=1, batch_size=32, validation_data=x_test, verbose=False)
    m.save(out)
    return time.perf_counter() - t0, hist["seconds"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "mnist"))
    ap.add_argument("--cli", default=str(REPO / "target" / "release" / "sparse-ae"))
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    cli, py = [], []
    for i in range(a.runs):
        cli.append(cli_run(a.cli, a.data, tmp / "cli.safetensors"))
        py.append(py_run(a.data, tmp / "py.safetensors"))
        same = (tmp / "cli.safetensors").read_bytes() == (tmp / "py.safetensors").read_bytes()
        print(f"run {i + 1}: CLI {cli[-1][0]:.2f} s (epoch {cli[-1][1]:.2f} s)  "
              f"Python {py[-1][0]:.2f} s (epoch {py[-1][1]:.2f} s)  same bytes: {same}")
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    print(f"median wall: CLI {med(cli, 0):.2f} s, Python {med(py, 0):.2f} s "
          f"({100 * (med(py, 0) / med(cli, 0) - 1):+.1f} %)")
    print(f"median epoch: CLI {med(cli, 1):.2f} s, Python {med(py, 1):.2f} s "
          f"({100 * (med(py, 1) / med(cli, 1) - 1):+.1f} %)")

    m = sparse_ae.Autoencoder.load(tmp / "py.safetensors")
    (_, _), (x_test, _) = sparse_ae.datasets.mnist(a.data)
    one = x_test[:1]
    for _ in range(1000):
        m.encode(one)
    best = []
    for _ in range(5):
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            m.encode(one)
        best.append((time.perf_counter() - t0) / n)
    many = x_test[:1000]
    t0 = time.perf_counter()
    for _ in range(20):
        m.encode(many)
    per_sample = (time.perf_counter() - t0) / 20 / 1000
    print(f"encode one sample (uint8 (1, 28, 28)): {1e6 * min(best):.1f} us per call (best of 5 x 20000); "
          f"in batches of 1000: {1e6 * per_sample:.2f} us per sample")
    print(f"kernel path: {sparse_ae.kernel_path()}")


if __name__ == "__main__":
    main()
