"""MNIST-layout data sets as uint8 arrays, the way Keras' ``load_data`` gives them."""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np

from . import _native

Split = Tuple[np.ndarray, Optional[np.ndarray]]


def _load(path: Optional[os.PathLike], dataset: str, download: bool) -> Tuple[Split, Split]:
    if path is None:
        path = _native.locate_dataset(dataset, download)
    train = _native.load_idx_split(os.fspath(path), "train")
    test = _native.load_idx_split(os.fspath(path), "test")
    return train, test


def mnist(path: Optional[os.PathLike] = None, download: bool = False) -> Tuple[Split, Split]:
    """MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 arrays of shape (n, 28, 28) and labels uint8 arrays of
    shape (n,) (None when the directory has no label files). ``path`` is a
    directory of the four IDX files (``train-images-idx3-ubyte`` and
    friends, optionally gzip-compressed); without it, ``$SPARSE_AE_DATA``
    and then the sparse-ae cache are searched, and ``download=True`` fetches
    the files into the cache (checked against their SHA-256) when they are
    not there.
    """
    return _load(path, "mnist", download)


def fashion_mnist(path: Optional[os.PathLike] = None, download: bool = False) -> Tuple[Split, Split]:
    """Fashion-MNIST, as :func:`mnist` gives MNIST."""
    return _load(path, "fashion-mnist", download)
