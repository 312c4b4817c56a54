from os import PathLike
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import datasets as datasets

__version__: str

ArrayLike = npt.ArrayLike
Config = Union[Mapping[str, Any], str, PathLike]
Callback = Union[Callable[[int, Dict[str, float]], Optional[bool]], Any]

def presets() -> List[Tuple[str, str]]:
    """Every preset: (name, description)."""

def set_max_memory(gb: Optional[float] = None) -> int:
    """Sets the memory budget to `gb` GB (None: the default, 3/4 of the machine's memory); returns it in bytes."""

def kernel_path() -> str:
    """The SIMD path the kernels run on: "avx512", "avx2" or "scalar"."""

class Autoencoder:
    """An autoencoder of the sparse-ae engine.

    Inputs are arrays of samples x features (more axes are flattened into the
    features) of float32, float64 or uint8 (scaled by 1/255), C- or
    Fortran-ordered.
    """

    @staticmethod
    def preset(
        name: str,
        input: int = 784,
        seed: int = 0,
        image: Optional[Union[Tuple[int, int], Tuple[int, int, int]]] = None,
    ) -> "Autoencoder":
        """A preset model (see presets()) for `input` features, weights drawn from `seed`;
        `image=(height, width)` or `(channels, height, width)` builds it for images of that shape."""
    @staticmethod
    def from_config(config: Config, seed: int = 0) -> "Autoencoder":
        """A model of a configuration: a dict, JSON text or the path of a JSON file."""
    @staticmethod
    def load(path: Union[str, PathLike]) -> "Autoencoder":
        """Loads a model file written by save() or `sparse-ae train`."""
    @staticmethod
    def from_state_dict(
        config: Config, state_dict: Dict[str, Any], input_scale: float = 1.0
    ) -> "Autoencoder":
        """A model of `config` with the parameters of a state dict (PyTorch names and shapes)."""
    def save(self, path: Union[str, PathLike]) -> None:
        """Saves the model as safetensors (PyTorch names; configuration in the metadata)."""
    def state_dict(self) -> Dict[str, np.ndarray]:
        """The parameters as float32 arrays under PyTorch nn.Sequential names and shapes."""
    @property
    def config(self) -> Dict[str, Any]:
        """The configuration as a dict."""
    @property
    def input_dim(self) -> int: ...
    @property
    def code_dim(self) -> int: ...
    @property
    def input_scale(self) -> float: ...
    @property
    def n_params(self) -> int: ...
    def fit(
        self,
        x: ArrayLike,
        epochs: int = 10,
        batch_size: int = 256,
        optimizer: str = "adam",
        lr: Optional[float] = None,
        momentum: Optional[float] = None,
        seed: Optional[int] = None,
        validation_data: Optional[Union[ArrayLike, Tuple[ArrayLike, Any]]] = None,
        noise: Optional[Union[float, str, Mapping[str, Any]]] = None,
        noise_seed: Optional[int] = None,
        shuffle: bool = True,
        callbacks: Optional[Union[Callback, Sequence[Callback]]] = None,
        verbose: Union[bool, int] = True,
    ) -> Dict[str, List[float]]:
        """Trains as `sparse-ae train` does; returns the per-epoch metrics as a dict of lists.

        Callbacks are called after each epoch as f(epoch, logs) or
        obj.on_epoch_end(epoch, logs); returning True stops training, None
        or False goes on, and any other value raises TypeError.
        Ctrl-C raises KeyboardInterrupt between two steps, the model keeping
        the weights of the last step.
        """
    def encode(self, x: ArrayLike) -> np.ndarray:
        """The code of each sample: float32 (samples, code units)."""
    def decode(self, z: ArrayLike) -> np.ndarray:
        """The decoder's output for codes: float32 (samples, features)."""
    def reconstruct(self, x: ArrayLike) -> np.ndarray:
        """The reconstruction of each sample: float32, in the shape of x."""
    def score(self, x: ArrayLike) -> np.ndarray:
        """Each sample's reconstruction error under the model's loss: float32 (samples,)."""
    def evaluate(self, x: ArrayLike) -> Dict[str, float]:
        """Loss and its parts, mse, fvu, l0, dead_units and code_units over x."""
    def gradcheck(
        self, batch: int = 4, entries: int = 64, seed: int = 0, tolerance: float = 1e-6
    ) -> Dict[str, Any]:
        """Analytic against numeric gradients in f64: {"passed", "max_rel_err", "tensors"}."""
