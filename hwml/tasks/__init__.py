"""Training tasks that searches optimise: image data that needs no download, and CNN families.

* :mod:`~hwml.tasks.images` — the data sets (scikit-learn's bundled digits, and
  ``cued-digits`` generated from them, a task where larger networks reach clearly lower
  error; MNIST and CIFAR-10 when torchvision finds them on disk) as tensors, split once;
* :mod:`~hwml.tasks.cnn` — HyperPower's two-convolution CNN family: its search space,
  the network, its training, and its size features in closed form;
* :mod:`~hwml.tasks.training` — the SGD training and testing of any classifier
  (:func:`train_module`).

These know nothing about power or budgets: :mod:`hwml.hyperpower` turns them into the
hardware-constrained search problem of survey section 4.3.
"""

from hwml.tasks.cnn import (
    CNN,
    STRUCTURAL,
    TRAINING,
    build_cnn,
    cnn_space,
    structural_features,
    train_cnn,
)
from hwml.tasks.images import (
    DATASET_CHANNELS,
    DATASETS,
    DatasetNotFoundError,
    ImageData,
    load_data,
)
from hwml.tasks.training import train_module

__all__ = [
    "CNN",
    "DATASETS",
    "DATASET_CHANNELS",
    "DatasetNotFoundError",
    "ImageData",
    "STRUCTURAL",
    "TRAINING",
    "build_cnn",
    "cnn_space",
    "load_data",
    "structural_features",
    "train_cnn",
    "train_module",
]
