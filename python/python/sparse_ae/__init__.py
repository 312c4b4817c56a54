"""sparse-ae from Python: train sparse autoencoders on CPUs with the
sparse-ae engine, NumPy arrays in and out.

    >>> import sparse_ae
    >>> (x_train, _), (x_test, _) = sparse_ae.datasets.mnist()
    >>> m = sparse_ae.Autoencoder.preset("sparse-l1")
    >>> hist = m.fit(x_train, epochs=5, batch_size=256, validation_data=x_test)
    >>> codes = m.encode(x_test)

Inputs are arrays of samples x features (more axes are flattened into the
features) of float32, float64 or uint8 (scaled by 1/255), C- or
Fortran-ordered. Errors of the engine raise ``ValueError`` (bad shapes,
configurations, files, NaN) or ``OSError`` (files that cannot be read or
written, data sets not found).
"""

from . import datasets
from ._native import Autoencoder, __version__, kernel_path, presets, set_max_memory

__all__ = ["Autoencoder", "datasets", "kernel_path", "presets", "set_max_memory", "__version__"]
