from typing import List, Optional, Tuple

import numpy as np

from . import Autoencoder as Autoencoder
from . import kernel_path as kernel_path
from . import presets as presets
from . import set_max_memory as set_max_memory

__version__: str

def load_idx_split(path: str, split: str) -> Tuple[np.ndarray, Optional[np.ndarray]]: ...
def locate_dataset(dataset: str = "mnist", download: bool = False) -> str: ...
