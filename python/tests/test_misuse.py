"""Misuse and unusual input: every bad call raises a Python exception that
names the problem (never a panic, an abort or an allocation the machine
cannot fill), and the module works on afterwards."""

import numpy as np
import pytest

import sparse_ae
from conftest import in_child


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

