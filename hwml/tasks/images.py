"""Image classification data that needs no download, held on the device as tensors.

:func:`load_data` gives

* ``digits``: scikit-learn's bundled handwritten digits (1,797 images of 8x8, upsampled
  bilinearly to ``image_size``), split once into 1,437 training and 360 test images
  (stratified, fixed seed);
* ``cued-digits`` and ``cued-digits-4x4``: tasks generated from the same bundled digits
  (below), 1,920 training and 2,000 test images of 24x24 and 32x32, resized to
  ``image_size``;
* ``mnist`` and ``cifar10`` through torchvision when they are already on disk (never
  downloaded).

Inputs are standardized with the training set's mean and standard deviation.

**Cued digits.** Each image is a 3x3 grid of nine bundled 8x8 digits (24x24 pixels;
``cued-digits-4x4``: 4x4, sixteen digits, 32x32). One cell, the cue, is drawn in inverted
contrast (a light cell with dark strokes); the label is the digit in that cell. The other
cells are distractors drawn from all ten classes. Labels are balanced (192 training and
200 test images per class); the cued cell is uniform over the positions; pixel noise of
standard deviation 0.1 is added. Training images are composed only of digits from the
``digits`` training split and test images only of digits from its test split (same
``split_seed``), so a test image never shows a digit image seen in training. Generation
is vectorized numpy from ``split_seed`` (well under a second) and deterministic.

Why capacity buys accuracy on it, where on ``digits`` it does not: recognizing one
centered digit needs few features, and the smallest network of
:func:`hwml.tasks.cnn.cnn_space` (16 filters, 32 dense units) already reaches a few per
cent error. Here the network must recognize a digit at any of nine (sixteen) positions
*and* pass on only the cued one: a conjunction of position, contrast and shape (90, or
160, position-digit combinations). The two-convolution network has no global pooling, so
it must build this from contrast-specific digit features in the second convolution (more
channels) and position-specific gating in the dense layer (more units); the evidence
below is empirical, not a proof of this account. The cue itself is easy to see, so the
task's error floor is about that of reading one bundled digit (a few per cent or less)
and the headroom is large.

Evidence (``scripts/capacity_check.py``: ten epochs as in the benchmark, SGD learning
rate 0.05, two seeds, on a CPU). At 24x24, ``cued-digits``' mean test error fell with
every step in size, from 44 % (16 filters, 32 dense units) through 34, 24 and 16 % to
15 % (128 filters, 512 units), while on ``digits`` every size was within one point of
2 %. Seeds differ by up to about ten points at the small and middle sizes: the first
epochs sit at chance while the network finds the cue. One step larger, 256 filters with
1,024 units, was no better (18 %) at that learning rate.

Input size matters. Upsampled to 32x32 (the benchmark's default side), ``cued-digits``'
error stopped falling at 64 filters (35 % at 16 filters, 25 % at 64, 24 % at 128): run
its benchmark at the native 24x24 (``scripts/benchmark.sh`` does). ``cued-digits-4x4``,
at its native 32x32, is harder: the smallest networks often stay at chance for the ten
epochs (72 % at 16 filters and 82 % at 32, mean of two seeds, then 58 % at 64 and 38 % at
128), so its curve is noisy at the small end but still falls steeply at 128 filters.
Whether either task keeps improving up to the space's 512 filters has not been checked on
a GPU.
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

__all__ = [
    "CUED_GRID",
    "CUED_NOISE_STD",
    "CUED_SIZES",
    "DATASETS",
    "DATASET_CHANNELS",
    "DatasetNotFoundError",
    "ImageData",
    "cued_digits",
    "load_data",
]

DATASETS: tuple[str, ...] = ("digits", "cued-digits", "cued-digits-4x4", "mnist", "cifar10")
"""Data sets :func:`load_data` knows: ``digits`` is bundled with scikit-learn and the
``cued-digits`` tasks are generated from it; the others are read through torchvision from
a local folder."""

DATASET_CHANNELS: dict[str, int] = {
    "digits": 1,
    "cued-digits": 1,
    "cued-digits-4x4": 1,
    "mnist": 1,
    "cifar10": 3,
}
"""Input channels of each data set."""

CUED_GRID: dict[str, int] = {"cued-digits": 3, "cued-digits-4x4": 4}
"""Cells per side of the images of each cued-digits task (each cell one 8x8 digit, so the
native side is ``8 * grid``)."""

CUED_SIZES: tuple[int, int] = (1920, 2000)
"""Training and test images of a cued-digits task (multiples of the ten classes)."""

CUED_NOISE_STD: float = 0.1
"""Standard deviation of the Gaussian pixel noise of the cued-digits tasks (pixels in
``[0, 1]`` before it)."""


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


def _digits_split(split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits and their stratified 80/20 split.

    Returns:
        ``images`` (1797, 8, 8) float32 in ``[0, 1]``, ``labels`` (1797,) int64, and the
        training and test indices (1437 and 360).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=split_seed
    )
    return (bunch.images / 16.0).astype(np.float32), labels, idx_train, idx_test


def cued_digits(
    images: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray,
    n_images: int,
    rng: np.random.Generator,
    *,
    grid: int = 3,
    noise_std: float = CUED_NOISE_STD,
) -> tuple[np.ndarray, np.ndarray]:
    """Compose cued-digit images (see the module docstring) from a pool of digits.

    Args:
        images: digit images, shape ``(n, 8, 8)``, values in ``[0, 1]``.
        labels: their classes, shape ``(n,)``, values ``0..9``.
        sources: indices into ``images`` that may be used (every class present).
        n_images: images to make; labels are balanced (``n_images % 10`` classes get one
            more) and shuffled.
        rng: the random generator (the only source of randomness).
        grid: cells per side.
        noise_std: standard deviation of the added Gaussian pixel noise.

    Returns:
        ``x`` of shape ``(n_images, 8 * grid, 8 * grid)`` float32 and ``y`` of shape
        ``(n_images,)`` int64 (the class of the cued cell's digit).
    """
    side = images.shape[-1]
    cells = grid * grid
    y = rng.permutation(np.arange(n_images) % 10).astype(np.int64)
    # the cued digit: uniform among the pool's digits of class y
    by_class = sources[np.argsort(labels[sources], kind="stable")]
    counts = np.bincount(labels[sources], minlength=10)
    if (counts == 0).any():
        raise ValueError("the pool of digits lacks a class")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cued = by_class[starts[y] + rng.integers(0, counts[y])]
    picks = rng.choice(sources, size=(n_images, cells))  # distractors, any class
    where = rng.integers(0, cells, n_images)
    rows = np.arange(n_images)
    picks[rows, where] = cued
    x = images[picks]  # (n, cells, side, side)
    x[rows, where] = 1.0 - x[rows, where]
    x = x.reshape(n_images, grid, grid, side, side).transpose(0, 1, 3, 2, 4)
    x = x.reshape(n_images, grid * side, grid * side)
    x = x + noise_std * rng.standard_normal(x.shape, dtype=np.float32)
    return x.astype(np.float32), y


@functools.lru_cache(maxsize=8)
def _load_data_cached(
    dataset: str, image_size: int, data_root: str | None, split_seed: int
) -> ImageData:
    if dataset in CUED_GRID:
        grid = CUED_GRID[dataset]
        images, labels, idx_train, idx_test = _digits_split(split_seed)
        # one stream per split seed and task, apart from other uses of the same integer
        rng = np.random.default_rng([split_seed, 0xC0ED, grid])
        n_train, n_test = CUED_SIZES
        x_tr, y_tr = cued_digits(images, labels, idx_train, n_train, rng, grid=grid)
        x_te, y_te = cued_digits(images, labels, idx_test, n_test, rng, grid=grid)
        x_train = _resize(torch.from_numpy(x_tr).unsqueeze(1), image_size)
        x_test = _resize(torch.from_numpy(x_te).unsqueeze(1), image_size)
        x_train, x_test = _standardize(x_train, x_test)
        return ImageData(dataset, x_train, torch.from_numpy(y_tr), x_test, torch.from_numpy(y_te))
    if dataset == "digits":
        images, labels, idx_train, idx_test = _digits_split(split_seed)
        x = _resize(torch.from_numpy(images).unsqueeze(1), image_size)
        y = torch.from_numpy(labels)
        x_train, x_test = _standardize(x[idx_train], x[idx_test])
        return ImageData("digits", x_train, y[idx_train], x_test, y[idx_test])
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
    ``cued-digits`` and ``cued-digits-4x4`` (see the module docstring) are generated from
    that split: 1,920 training images from its training digits and 2,000 test images from
    its test digits, 24x24 and 32x32 before resizing, drawn from ``split_seed`` alone. ``mnist`` and ``cifar10`` use
    their official train/test splits and are read with torchvision from ``data_root``,
    where they must already be (``download=False``). Images are scaled to ``[0, 1]``,
    resized bilinearly and standardized with the training set's mean and standard
    deviation. Results are cached per argument set; treat the returned tensors as
    read-only.

    Args:
        dataset: one of :data:`DATASETS`.
        image_size: side of the resized images, a multiple of 4 (two 2x2 poolings).
        data_root: folder holding MNIST / CIFAR-10 as torchvision stores them.
        split_seed: seed of the digits train/test split, and of the generation of the
            cued-digits tasks.

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
