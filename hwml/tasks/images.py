"""Image classification data that needs no download, held on the device as tensors.

:func:`load_data` gives scikit-learn's bundled handwritten digits (1,797 images of 8x8,
upsampled bilinearly to ``image_size``), split once into 1,437 training and 360 test
images (stratified, fixed seed); MNIST or CIFAR-10 come through torchvision when they are
already on disk (never downloaded). Inputs are standardized with the training set's mean
and standard deviation.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["DATASETS", "DATASET_CHANNELS", "DatasetNotFoundError", "ImageData", "load_data"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10")
"""Data sets :func:`load_data` knows: ``digits`` is bundled with scikit-learn; the others
are read through torchvision from a local folder."""

DATASET_CHANNELS: dict[str, int] = {"digits": 1, "mnist": 1, "cifar10": 3}
"""Input channels of each data set."""


class DatasetNotFoundError(FileNotFoundError):
    """A data set that must already be on disk is not there (hwml never downloads)."""


@dataclass(frozen=True)
class ImageData:
    """A classification data set held as tensors (CPU; moved to the device for training).

    Attributes:
        name: data set name.
        x_train: training images, shape ``(n_train, channels, image_size, image_size)``,
            float32, standardized with the training set's mean and standard deviation.
        y_train: training labels, shape ``(n_train,)``, int64.
        x_test: test images, shape ``(n_test, channels, image_size, image_size)``.
        y_test: test labels, shape ``(n_test,)``.
        n_classes: number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 10

    @property
    def in_channels(self) -> int:
        """Image channels (1 for digits and MNIST, 3 for CIFAR-10)."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the (square) images, pixels."""
        return int(self.x_train.shape[-1])


def _resize(x: torch.Tensor, image_size: int) -> torch.Tensor:
    if x.shape[-1] == image_size and x.shape[-2] == image_size:
        return x
    return F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = x_train.mean(), x_train.std()
    return ((x_train - mean) / std).contiguous(), ((x_test - mean) / std).contiguous()


def check_image_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
        raise TypeError(f"image_size must be an int, got {image_size!r}")
    if image_size < 4 or image_size % 4:
        raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
    return int(image_size)


def _torchvision_set(name: str, data_root: str | os.PathLike[str] | None):
    if data_root is None:
        raise DatasetNotFoundError(
            f"data set {name!r} is read from a local folder: pass data_root (the folder "
            "torchvision's dataset class was given when the data was downloaded); "
            "hwml never downloads data"
        )
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"data set {name!r}: folder {str(root)!r} does not exist; hwml never downloads data"
        )
    try:
        from torchvision import datasets
    except ImportError as err:
        raise DatasetNotFoundError(
            f"data set {name!r} is read with torchvision, which is not installed ({err})"
        ) from err
    cls = datasets.MNIST if name == "mnist" else datasets.CIFAR10
    try:
        return cls(str(root), train=True, download=False), cls(
            str(root), train=False, download=False
        )
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted ..."
        expected = root / ("MNIST/raw" if name == "mnist" else "cifar-10-batches-py")
        raise DatasetNotFoundError(
            f"data set {name!r} not found under {str(root)!r} (torchvision looks for "
            f"{str(expected)!r}: {err}); hwml never downloads data"
        ) from err


@functools.lru_cache(maxsize=8)
def _load_data_cached(
    dataset: str, image_size: int, data_root: str | None, split_seed: int
) -> ImageData:
    if dataset == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = torch.as_tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
        labels = torch.as_tensor(bunch.target, dtype=torch.int64)
        idx_train, idx_test = train_test_split(
            np.arange(len(labels)), test_size=0.2, stratify=bunch.target, random_state=split_seed
        )
        x = _resize(images, image_size)
        x_train, x_test = _standardize(x[idx_train], x[idx_test])
        return ImageData("digits", x_train, labels[idx_train], x_test, labels[idx_test])
    train, test = _torchvision_set(dataset, data_root)

    def tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.as_tensor(np.asarray(ds.data))
        if data.ndim == 3:  # MNIST: (n, h, w) uint8
            data = data.unsqueeze(1)
        else:  # CIFAR-10: (n, h, w, c) uint8
            data = data.permute(0, 3, 1, 2)
        x = _resize(data.to(torch.float32) / 255.0, image_size)
        return x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    x_train, y_train = tensors(train)
    x_test, y_test = tensors(test)
    x_train, x_test = _standardize(x_train, x_test)
    return ImageData(dataset, x_train, y_train, x_test, y_test)


def load_data(
    dataset: str = "digits",
    *,
    image_size: int = 32,
    data_root: str | os.PathLike[str] | None = None,
    split_seed: int = 0,
) -> ImageData:
    """Load a classification data set as tensors, images resized to ``image_size``.

    ``digits`` (scikit-learn's bundled 1,797 handwritten digits, 8x8, no download) is split
    into 1,437 training and 360 test images, stratified by class, with ``split_seed``.
    ``mnist`` and ``cifar10`` use their official train/test splits and are read with
    torchvision from ``data_root``, where they must already be (``download=False``).
    Images are scaled to ``[0, 1]``, resized bilinearly and standardized with the
    training set's mean and standard deviation. Results are cached per argument set;
    treat the returned tensors as read-only.

    Args:
        dataset: one of :data:`DATASETS`.
        image_size: side of the resized images, a multiple of 4 (two 2x2 poolings).
        data_root: folder holding MNIST / CIFAR-10 as torchvision stores them.
        split_seed: seed of the digits train/test split.

    Returns:
        The :class:`ImageData`.

    Raises:
        ValueError: unknown data set or bad image size.
        DatasetNotFoundError: MNIST / CIFAR-10 not found under ``data_root`` (the message
            names the path), or torchvision missing.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    image_size = check_image_size(image_size)
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    return _load_data_cached(dataset, image_size, root, int(split_seed))
