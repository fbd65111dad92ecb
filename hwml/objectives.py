"""The CNN-training objective of HyperPower (survey section 4.3), on data that needs no download.

HyperPower tunes a small convolutional network: structural hyper-parameters ``z`` (filters
per layer, kernel size, dense units) that decide what the network costs on the hardware,
and training hyper-parameters (learning rate, momentum, weight decay) that decide only
how well it learns. This module is that objective as a plug-in of :mod:`hwml.optimize`:

* :func:`cnn_space` — the search space, the four structural dimensions flagged
  ``structural=True``;
* :func:`load_data` — scikit-learn's bundled handwritten digits (1,797 images of 8x8,
  upsampled bilinearly to ``image_size``), split once into 1,437 training and 360 test
  images (stratified, fixed seed); MNIST or CIFAR-10 through torchvision when they are
  already on disk (never downloaded);
* :func:`build_cnn` — ``conv(k) -> BN -> ReLU -> maxpool2 -> conv(k) -> ReLU -> maxpool2 ->
  flatten -> dense -> ReLU -> dense(10)``;
* :func:`train_cnn` — SGD with momentum, weight decay and a cosine learning-rate decay
  to zero over all steps, the whole data set held on the device as tensors (no data
  loader, no workers); returns the test error and the training time, and a run whose
  loss becomes NaN or infinite is reported as ``status="failed"``;
* :func:`measure_inference` — inference runtime, power (NVML energy counter, window
  aligned to its updates, through :func:`hwml.profile.measure_callable`), energy per
  image and peak memory of a configuration at a fixed inference batch: HyperPower
  measures power and memory during inference, not training;
* :func:`structural_features` — ``z`` plus derived columns (parameters, FLOPs, activation
  bytes, the same numbers :func:`hwml.describe.describe` gives) for the constraint models;
* :func:`fit_hardware_models` / :func:`hardware_constraints` — HyperPower's linear power
  and memory models, fitted on a table of profiled structures, as
  :class:`~hwml.optimize.Constraint` objects;
* :class:`CNNObjective` — ``config -> {"objective": test error, "power_w", "peak_mem_bytes",
  "eval_time_s", ...}`` for :func:`hwml.optimize.minimize`.

Why SGD with momentum: it is what HyperPower tuned (momentum is one of its training
dimensions), and its sensitivity to the learning rate gives the search something to find.
Units: seconds (``*_s``), milliseconds (``*_ms``), watts (``*_w``), millijoules (``*_mj``),
bytes (``*_bytes``); ``test_error`` is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from hwml.hardware import (
    Device,
    cudnn_autotune,
    is_oom,
    open_device,
    release_memory,
    rng_devices,
    wait_for,
)
from hwml.optimize import Categorical, Constraint, Integer, LogReal, Real, Space

__all__ = [
    "CNN",
    "CNNObjective",
    "DATASETS",
    "DatasetNotFoundError",
    "FEATURE_SETS",
    "ImageData",
    "STRUCTURAL",
    "StructuralModel",
    "TRAINING",
    "build_cnn",
    "cnn_space",
    "fit_hardware_models",
    "hardware_constraints",
    "load_data",
    "measure_inference",
    "structural_features",
    "train_cnn",
]

STRUCTURAL: tuple[str, ...] = ("conv1_filters", "conv2_filters", "kernel_size", "dense_units")
"""Names of the structural hyper-parameters ``z`` (what power and memory depend on)."""

TRAINING: tuple[str, ...] = ("learning_rate", "momentum", "weight_decay")
"""Names of the training hyper-parameters (no effect on inference power or memory)."""

DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10")
"""Data sets :func:`load_data` knows: ``digits`` is bundled with scikit-learn; the others
are read through torchvision from a local folder."""

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "z": STRUCTURAL,
    "derived": (*STRUCTURAL, "params", "flops", "activation_bytes"),
}
"""Feature columns of the linear hardware models: ``z`` alone (HyperPower's exact form,
eqs. 3-4 of the survey) or ``z`` plus parameters, FLOPs and activation bytes, which a
linear model can weigh too (memory grows with the dense layer's weights, a product of two
dimensions of ``z``)."""


# ====================================================================== space


def cnn_space(
    *,
    filters: tuple[int, int] = (16, 512),
    dense_units: tuple[int, int] = (32, 4096),
    kernel_sizes: Sequence[int] = (3, 5),
    learning_rate: tuple[float, float] = (1e-4, 0.5),
    momentum: tuple[float, float] = (0.5, 0.99),
    weight_decay: tuple[float, float] = (1e-6, 1e-2),
) -> Space:
    """The HyperPower search space of the two-convolution CNN.

    The defaults are sized for a large GPU (see ``scripts/benchmark.sh``): at 32x32
    inputs and inference batch 256, FLOPs per batch range from about 0.4 GFLOP (16
    filters, 32 units) to about 0.9 TFLOP (512 filters, 5x5 kernels), and inference
    memory from tens of MB to about 1.5 GB, so power and memory budgets can cut
    through the space. The learning-rate range is wide on purpose: its low end learns
    too slowly in a few epochs and its high end diverges.

    Args:
        filters: ``(low, high)`` filters of each convolution.
        dense_units: ``(low, high)`` units of the hidden dense layer.
        kernel_sizes: kernel sizes of both convolutions (odd, listed in increasing order).
        learning_rate: ``(low, high)`` SGD learning rate, log scale.
        momentum: ``(low, high)`` SGD momentum.
        weight_decay: ``(low, high)`` L2 weight decay, log scale.

    Returns:
        The space; ``conv1_filters``, ``conv2_filters``, ``kernel_size`` and
        ``dense_units`` are structural.
    """
    for k in kernel_sizes:
        if int(k) != k or k < 1 or k % 2 == 0:
            raise ValueError(
                f"kernel sizes must be odd positive integers, got {tuple(kernel_sizes)}"
            )
    return Space(
        [
            Integer("conv1_filters", filters[0], filters[1], structural=True),
            Integer("conv2_filters", filters[0], filters[1], structural=True),
            Categorical("kernel_size", tuple(int(k) for k in kernel_sizes), structural=True),
            Integer("dense_units", dense_units[0], dense_units[1], structural=True),
            LogReal("learning_rate", *learning_rate),
            Real("momentum", *momentum),
            LogReal("weight_decay", *weight_decay),
        ]
    )


# ====================================================================== data


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


def _check_image_size(image_size: int) -> int:
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
    image_size = _check_image_size(image_size)
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    return _load_data_cached(dataset, image_size, root, int(split_seed))


# ====================================================================== model


def _structure(config: Mapping[str, Any]) -> tuple[int, int, int, int]:
    missing = [k for k in STRUCTURAL if k not in config]
    if missing:
        raise KeyError(f"configuration lacks structural field(s) {missing}")
    values = []
    for k in STRUCTURAL:
        v = config[k]
        if isinstance(v, bool) or float(v) != int(float(v)) or int(float(v)) < 1:
            raise ValueError(f"configuration field {k!r} must be a positive integer, got {v!r}")
        values.append(int(float(v)))
    c1, c2, k, d = values
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd (same padding), got {k}")
    return c1, c2, k, d


class CNN(nn.Module):
    """Two convolutions and two dense layers (HyperPower's small CNN).

    ``conv(k) -> BN -> ReLU -> maxpool2 -> conv(k) -> ReLU -> maxpool2 -> flatten ->
    dense -> ReLU -> dense(n_classes)``; convolutions use same padding, so the flattened
    size is ``conv2_filters * (image_size / 4)^2``. The first convolution has no bias
    (the batch norm after it has one).

    Args:
        conv1_filters: output channels of the first convolution.
        conv2_filters: output channels of the second convolution.
        kernel_size: kernel side of both convolutions (odd).
        dense_units: units of the hidden dense layer.
        in_channels: input channels.
        image_size: input side, a multiple of 4.
        n_classes: outputs.
        batch_norm: batch normalization after the first convolution.
    """

    def __init__(
        self,
        conv1_filters: int,
        conv2_filters: int,
        kernel_size: int,
        dense_units: int,
        *,
        in_channels: int = 1,
        image_size: int = 32,
        n_classes: int = 10,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        image_size = _check_image_size(image_size)
        pad = kernel_size // 2
        first: list[nn.Module] = [
            nn.Conv2d(in_channels, conv1_filters, kernel_size, padding=pad, bias=not batch_norm)
        ]
        if batch_norm:
            first.append(nn.BatchNorm2d(conv1_filters))
        self.features = nn.Sequential(
            *first,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(conv1_filters, conv2_filters, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        flat = conv2_filters * (image_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, dense_units),
            nn.ReLU(inplace=True),
            nn.Linear(dense_units, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(batch, n_classes)``, of images ``(batch, c, s, s)``."""
        return self.classifier(self.features(x))


def build_cnn(
    config: Mapping[str, Any],
    image_size: int = 32,
    *,
    in_channels: int = 1,
    n_classes: int = 10,
    batch_norm: bool = True,
) -> CNN:
    """Build the CNN of a configuration (its structural fields; others are ignored).

    Args:
        config: holds ``conv1_filters``, ``conv2_filters``, ``kernel_size``, ``dense_units``.
        image_size: input side, a multiple of 4.
        in_channels: input channels.
        n_classes: outputs.
        batch_norm: batch normalization after the first convolution.

    Returns:
        The module, initialized with PyTorch's defaults from torch's current generator.
    """
    c1, c2, k, d = _structure(config)
    return CNN(
        c1,
        c2,
        k,
        d,
        in_channels=in_channels,
        image_size=image_size,
        n_classes=n_classes,
        batch_norm=batch_norm,
    )


def _torch_device(device: str | torch.device | Device) -> torch.device:
    if isinstance(device, Device):
        return device.torch_device
    return torch.device(device)


def _training_value(config: Mapping[str, Any], name: str) -> float:
    if name not in config:
        raise KeyError(f"configuration lacks training field {name!r}")
    value = float(config[name])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"configuration field {name!r} must be finite and >= 0, got {value!r}")
    return value


def train_cnn(
    config: Mapping[str, Any],
    *,
    device: str | torch.device | Device = "cpu",
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    image_size: int = 32,
    dataset: str = "digits",
    data_root: str | os.PathLike[str] | None = None,
    data: ImageData | None = None,
) -> dict[str, Any]:
    """Train the CNN of ``config`` from scratch and measure its test error.

    SGD with ``momentum`` and ``weight_decay`` (every parameter), learning rate
    ``learning_rate`` decayed to zero along a cosine over all steps; cross-entropy loss;
    each epoch visits the training set in a fresh random order, in full batches (the
    remainder is dropped, so every step has the same shape). The data live on the
    device as tensors. The initial weights and the batch order come from ``seed`` alone
    (torch's generators are forked, so the caller's random state is untouched); on a CPU
    the same seed gives the same result, on a GPU cuDNN's algorithms may differ in the
    last bits.

    A run whose mean training loss over an epoch is NaN or infinite stops there and is
    returned with ``status="failed"`` (``diverged=True``); one that runs out of device
    memory is returned with ``status="oom"``. Neither raises.

    Args:
        config: the structural fields and ``learning_rate``, ``momentum``, ``weight_decay``.
        device: where to train (``"cuda"``, ``"cuda:1"``, ``"cpu"`` or a
            :class:`~hwml.hardware.Device`).
        epochs: passes over the training set.
        batch_size: images per step.
        seed: seed of the initial weights and the batch order.
        image_size: input side (ignored when ``data`` is given).
        dataset: data set name (see :func:`load_data`; ignored when ``data`` is given).
        data_root: folder of MNIST / CIFAR-10 (see :func:`load_data`).
        data: pre-loaded data, instead of ``dataset``/``image_size``/``data_root``.

    Returns:
        ``test_error`` (fraction of test images misclassified; NaN unless ``status`` is
        ok), ``train_loss`` (mean loss of the last epoch run), ``train_time_s`` (seconds
        to build, train and test the network, data already loaded), ``epochs_run``,
        ``steps``, ``status`` (``ok``, ``failed`` or ``oom``), ``reason`` (why not ok, else
        empty), ``diverged`` (bool).

    Raises:
        KeyError, ValueError: a missing or invalid configuration field or setting.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    lr = _training_value(config, "learning_rate")
    momentum = _training_value(config, "momentum")
    weight_decay = _training_value(config, "weight_decay")
    _structure(config)
    if data is None:
        data = load_data(dataset, image_size=image_size, data_root=data_root)
    dev = _torch_device(device)
    n_train = len(data.y_train)
    batch_size = min(int(batch_size), n_train)
    steps_per_epoch = n_train // batch_size
    total_steps = steps_per_epoch * int(epochs)

    out: dict[str, Any] = {
        "test_error": math.nan,
        "train_loss": math.nan,
        "train_time_s": math.nan,
        "epochs_run": 0,
        "steps": 0,
        "status": "ok",
        "reason": "",
        "diverged": False,
    }
    fork_devices = rng_devices(dev)
    start = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(int(seed))
            order_gen = torch.Generator().manual_seed(int(seed))
            model = build_cnn(
                config, data.image_size, in_channels=data.in_channels, n_classes=data.n_classes
            ).to(dev)
            x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)
            opt = torch.optim.SGD(
                model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
            )
            model.train()
            step = 0
            for epoch in range(int(epochs)):
                order = torch.randperm(n_train, generator=order_gen)[: steps_per_epoch * batch_size]
                order = order.to(dev).view(steps_per_epoch, batch_size)
                loss_sum = torch.zeros((), device=dev)
                for idx in order:
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                    loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += loss.detach()
                    step += 1
                epoch_loss = float(loss_sum.item()) / steps_per_epoch  # one sync per epoch
                out.update(train_loss=epoch_loss, epochs_run=epoch + 1, steps=step)
                if not math.isfinite(epoch_loss):
                    out.update(
                        status="failed",
                        diverged=True,
                        reason=f"diverged: training loss {epoch_loss} in epoch {epoch + 1}",
                    )
                    break
            if out["status"] == "ok":
                model.eval()
                errors = 0
                with torch.inference_mode():
                    for i in range(0, len(data.y_test), 1024):
                        xb = data.x_test[i : i + 1024].to(dev)
                        yb = data.y_test[i : i + 1024].to(dev)
                        errors += int((model(xb).argmax(dim=1) != yb).sum().item())
                out["test_error"] = errors / len(data.y_test)
    except (RuntimeError, MemoryError) as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_oom(err):
            raise
        out.update(
            status="oom",
            reason=f"out of memory: {str(err).splitlines()[0][:200]}",
            test_error=math.nan,
        )
        release_memory(dev)
    finally:
        wait_for(dev)
        out["train_time_s"] = time.perf_counter() - start
    return out


# ====================================================================== inference cost


def measure_inference(
    config: Mapping[str, Any],
    device: Device,
    *,
    batch: int = 256,
    image_size: int = 32,
    in_channels: int = 1,
    opts: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure a configuration's inference: runtime, power, energy per image, peak memory.

    The network (random weights from ``seed``) runs forward on a random batch of
    ``(batch, in_channels, image_size, image_size)`` in float32 under
    ``torch.inference_mode``: it is timed after warm-up, then run back to back while the
    energy meter measures average power over a window aligned to the NVML counter's
    updates (:func:`hwml.profile.measure_callable`). Peak memory is PyTorch's peak
    allocation during steady-state inference: weights, input, activations and the
    workspace of the algorithms cuDNN chose (the peak is reset after one warm-up pass, so
    the workspaces cuDNN's autotuning tries are not counted). Out-of-memory errors
    propagate (check ``device.is_oom``).

    Args:
        config: the structural fields.
        device: an opened :class:`~hwml.hardware.Device`.
        batch: inference batch size.
        image_size: input side.
        in_channels: input channels.
        opts: :class:`hwml.profile.SweepOptions` (default: float32, power on, 3 counter
            periods, 100 ms of timed repeats).
        seed: seed of the weights and the input.

    Returns:
        ``runtime_ms`` (one forward pass of the batch) with ``runtime_p10_ms``,
        ``runtime_p90_ms``, ``runtime_cv``, ``repeats``; ``power_w``, ``power_window_s``,
        ``power_periods``, ``energy_mj`` (one forward pass), ``energy_per_image_mj``
        (NaN when power was not measured); ``peak_mem_bytes`` (NaN on a CPU),
        ``used_mem_bytes``, ``sm_clock_mhz``; ``status`` (``ok`` or ``no_power``).
    """
    from hwml.profile import SweepOptions, measure_callable

    opts = opts or SweepOptions()
    if opts.dtype != "float32":
        raise ValueError(f"measure_inference runs in float32, got opts.dtype={opts.dtype!r}")
    dev = device.torch_device
    device.reset_peak_memory()
    with torch.random.fork_rng(devices=rng_devices(dev)):
        torch.manual_seed(int(seed))
        with torch.device(dev):
            model = build_cnn(config, image_size, in_channels=in_channels).eval()
            x = torch.randn(int(batch), in_channels, image_size, image_size)
    with torch.inference_mode():
        model(x)  # cuDNN picks its algorithms (and tries their workspaces) here
        device.reset_peak_memory()  # the weights and the input stay allocated
        row = measure_callable(lambda: model(x), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = device.peak_memory_bytes()
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    energy = row.get("energy_mj", math.nan)
    row["energy_mj"] = energy
    row.setdefault("power_w", math.nan)
    row["energy_per_image_mj"] = energy / int(batch) if energy == energy else math.nan
    return row


# ====================================================================== structural features


def structural_features(
    configs: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    image_size: int = 32,
    batch: int = 1,
    in_channels: int = 1,
    n_classes: int = 10,
) -> pd.DataFrame:
    """``z`` and the derived size features of each configuration, vectorized.

    The derived columns are those of :meth:`hwml.describe.Network.totals` for the
    network built by :func:`build_cnn` at input ``(batch, in_channels, image_size,
    image_size)`` (a test checks they agree); they are computed in closed form here so
    that constraint models can score thousands of candidates per optimizer iteration.

    Args:
        configs: frame (or dicts) with the structural columns; other columns are ignored.
        image_size: input side.
        batch: batch size (FLOPs and activation bytes scale with it; params do not).
        in_channels: input channels.
        n_classes: outputs.

    Returns:
        Frame with the :data:`STRUCTURAL` columns (int) and ``params`` (learnable
        parameters), ``macs`` and ``flops`` (``2 * macs``; convolutions and dense layers,
        whole batch), ``activation_bytes`` (float32 bytes of every layer's output, whole
        batch), in the row order of ``configs``.
    """
    if isinstance(configs, Mapping):
        configs = [configs]
    frame = configs if isinstance(configs, pd.DataFrame) else pd.DataFrame(list(configs))
    missing = [c for c in STRUCTURAL if c not in frame.columns]
    if missing:
        raise KeyError(f"configurations lack structural column(s) {missing}")
    s = float(_check_image_size(image_size))
    b, cin, ncls = float(batch), float(in_channels), float(n_classes)
    c1, c2, k, d = (frame[c].to_numpy(dtype=float) for c in STRUCTURAL)
    k2 = k * k
    flat = c2 * (s / 4) ** 2
    params = (cin * c1 * k2) + 2 * c1 + (c1 * c2 * k2 + c2) + (flat * d + d) + (d * ncls + ncls)
    macs_per_image = (s * s * c1 * cin * k2) + ((s / 2) ** 2 * c2 * c1 * k2) + flat * d + d * ncls
    # outputs: conv1, bn, relu, pool | conv2, relu, pool | flatten, fc1, relu, fc2
    elems = (
        (3 * c1 * s * s + c1 * (s / 2) ** 2)
        + (2 * c2 * (s / 2) ** 2 + c2 * (s / 4) ** 2)
        + (flat + 2 * d + ncls)
    )
    out = pd.DataFrame({c: frame[c].to_numpy(dtype=np.int64) for c in STRUCTURAL})
    out["params"] = params
    out["macs"] = macs_per_image * b
    out["flops"] = 2 * macs_per_image * b
    out["activation_bytes"] = 4 * elems * b
    return out


# ====================================================================== hardware models


class _LeastSquares:
    """Fallback linear model (used only when :mod:`hwml.predict.hyperpower` is absent)."""

    def __init__(self, target: str, features: Sequence[str], return_std: bool = False) -> None:
        self.target, self.features_, self.return_std = target, list(features), return_std

    def fit(self, table: pd.DataFrame) -> _LeastSquares:
        y = pd.to_numeric(table[self.target], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(y)
        if "status" in table.columns:
            keep &= table["status"].astype(str).isin(("ok", "no_power")).to_numpy()
        if keep.sum() < len(self.features_) + 2:
            raise ValueError(f"too few usable rows of {self.target!r} to fit ({int(keep.sum())})")
        x = np.column_stack([np.ones(keep.sum()), table.loc[keep, self.features_].to_numpy(float)])
        self._sol, *_ = np.linalg.lstsq(x, y[keep], rcond=None)
        resid = y[keep] - x @ self._sol
        self.residual_std_ = float(np.sqrt(resid @ resid / max(len(resid) - x.shape[1], 1)))
        return self

    def predict(self, z: pd.DataFrame) -> np.ndarray:
        x = np.column_stack([np.ones(len(z)), z.loc[:, self.features_].to_numpy(float)])
        return x @ self._sol

    def predict_std(self, z: pd.DataFrame) -> np.ndarray:
        return np.full(len(z), self.residual_std_)

    def cv_summary(self) -> dict[str, float]:
        return {}


def _linear_model(target: str, features: Sequence[str], cv: int, seed: int) -> Any:
    try:
        from hwml.predict.hyperpower import LinearHardwareModel
    except ImportError:
        return _LeastSquares(target, features)
    return LinearHardwareModel(
        target=target, features=list(features), cv=cv, seed=seed, device_check="ignore"
    )


class StructuralModel:
    """A hardware model of whole networks that takes ``z`` and computes its own features.

    Constraint models receive only the structural columns ``z``; this wrapper adds the
    derived columns (:func:`structural_features`, at the inference batch and image size
    the model was fitted for) before predicting.

    Args:
        model: fitted estimator with ``predict(frame)`` (and ``predict_std`` for
            ``return_std``), e.g. :class:`hwml.predict.LinearHardwareModel`.
        image_size: input side of the profiled networks.
        batch: inference batch of the profiled networks.
        in_channels: input channels.
        return_std: calling returns ``(mean, std)`` instead of the mean (for HW-IECI's
            probabilistic variant).
    """

    def __init__(
        self,
        model: Any,
        *,
        image_size: int,
        batch: int,
        in_channels: int = 1,
        return_std: bool = False,
    ) -> None:
        self.model = model
        self.image_size = int(image_size)
        self.batch = int(batch)
        self.in_channels = int(in_channels)
        self.return_std = return_std

    def features(self, z: pd.DataFrame) -> pd.DataFrame:
        """The feature frame the wrapped model sees."""
        return structural_features(
            z, image_size=self.image_size, batch=self.batch, in_channels=self.in_channels
        )

    def predict(self, z: pd.DataFrame) -> np.ndarray:
        """Predictions, shape ``(n,)``, in the target's unit."""
        return np.asarray(self.model.predict(self.features(z)), dtype=float)

    def __call__(self, z: pd.DataFrame) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        feats = self.features(z)
        mean = np.asarray(self.model.predict(feats), dtype=float)
        if self.return_std:
            return mean, np.asarray(self.model.predict_std(feats), dtype=float)
        return mean


def _single(table: pd.DataFrame, column: str, default: int) -> int:
    if column not in table.columns:
        return default
    values = sorted(set(pd.to_numeric(table[column], errors="coerce").dropna().astype(int)))
    if len(values) > 1:
        raise ValueError(
            f"structures table mixes {column} values {values}; fit one model per value"
        )
    return int(values[0]) if values else default


def fit_hardware_models(
    structures: pd.DataFrame,
    *,
    features: str | Sequence[str] = "derived",
    targets: Mapping[str, str] | None = None,
    cv: int = 10,
    seed: int = 0,
    return_std: bool = False,
) -> dict[str, StructuralModel]:
    """Fit HyperPower's linear power and memory models on profiled structures.

    Uses :class:`hwml.predict.LinearHardwareModel` (least squares with an intercept,
    ``cv``-fold cross-validated errors in ``model.model.cv_summary()``) when that module
    is present, else a plain least-squares fallback. Rows whose status is not ``ok`` /
    ``no_power`` or whose target is missing are left out.

    Args:
        structures: a ``structures.csv`` table (see :func:`hwml.benchmark.measure_structures`):
            the structural columns, the targets and ``image_size``, ``batch``,
            ``in_channels`` (each single-valued).
        features: a key of :data:`FEATURE_SETS` or a list of columns of
            :func:`structural_features`.
        targets: constraint name -> measured column; default
            ``{"power_w": "power_w", "mem_bytes": "peak_mem_bytes"}``.
        cv: cross-validation folds.
        seed: seed of the fold shuffling.
        return_std: the models return ``(mean, std)`` (for ``hw-ieci-prob``).

    Returns:
        Constraint name -> :class:`StructuralModel`.

    Raises:
        ValueError: unknown feature set, too few usable rows (e.g. power not measured).
    """
    targets = dict(targets or {"power_w": "power_w", "mem_bytes": "peak_mem_bytes"})
    if isinstance(features, str):
        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {features!r}; known: {', '.join(FEATURE_SETS)}")
        feats = list(FEATURE_SETS[features])
    else:
        feats = list(features)
    image_size = _single(structures, "image_size", 32)
    batch = _single(structures, "batch", 1)
    in_channels = _single(structures, "in_channels", 1)
    table = structural_features(
        structures, image_size=image_size, batch=batch, in_channels=in_channels
    )
    unknown = [f for f in feats if f not in table.columns]
    if unknown:
        raise ValueError(f"unknown feature column(s) {unknown}; available: {list(table.columns)}")
    for col in ("status",):
        if col in structures.columns:
            table[col] = structures[col].to_numpy()
    models: dict[str, StructuralModel] = {}
    for name, column in targets.items():
        if column not in structures.columns:
            raise ValueError(f"structures table has no column {column!r} to fit {name!r} on")
        table[column] = pd.to_numeric(structures[column], errors="coerce").to_numpy()
        usable = np.isfinite(table[column].to_numpy(dtype=float))
        if "status" in table.columns:
            usable &= table["status"].astype(str).isin(("ok", "no_power")).to_numpy()
        if usable.sum() < max(cv, len(feats) + 2):
            raise ValueError(
                f"only {int(usable.sum())} structures have a measured {column!r}; cannot fit the "
                f"{name} model (was power measured? rows with status no_power have none)"
            )
        est = _linear_model(column, feats, cv, seed).fit(table.loc[usable, [*feats, column]])
        models[name] = StructuralModel(
            est, image_size=image_size, batch=batch, in_channels=in_channels, return_std=return_std
        )
    return models


def hardware_constraints(
    models: Mapping[str, StructuralModel],
    *,
    power_budget_w: float | None = None,
    mem_budget_bytes: float | None = None,
) -> list[Constraint]:
    """HyperPower's a-priori constraints from fitted models and budgets.

    Args:
        models: output of :func:`fit_hardware_models`.
        power_budget_w: inference power budget (W); None for no power constraint.
        mem_budget_bytes: inference memory budget (bytes); None for none.

    Returns:
        ``Constraint("power_w", ...)`` reading the measured ``power_w`` of a result, and
        ``Constraint("mem_bytes", ...)`` reading ``peak_mem_bytes``, for the budgets given.
    """
    out: list[Constraint] = []
    for name, budget, measured in (
        ("power_w", power_budget_w, "power_w"),
        ("mem_bytes", mem_budget_bytes, "peak_mem_bytes"),
    ):
        if budget is None:
            continue
        if name not in models:
            raise ValueError(f"no {name} model was fitted for the {name} budget")
        out.append(Constraint(name, float(budget), models[name], measured=measured))
    return out


# ====================================================================== the objective


class CNNObjective:
    """Train-and-measure objective for :func:`hwml.optimize.minimize`.

    Each call trains the configuration's CNN (:func:`train_cnn`, with the fixed ``seed``,
    so a configuration always gets the same weights and batch order, as in a tabular
    benchmark) and, with ``measure=True``, measures its inference power and memory at
    ``inference_batch`` (:func:`measure_inference`), so the search history holds the
    measured values beside the models' predictions.

    Args:
        device: ``"cuda"``, ``"cuda:N"``, ``"cpu"`` or an opened
            :class:`~hwml.hardware.Device` (a string is opened on first use, with the
            energy meter when ``measure`` is set).
        epochs: training epochs.
        batch_size: training batch.
        seed: training seed.
        image_size: input side.
        dataset: data set (see :func:`load_data`).
        data_root: folder of MNIST / CIFAR-10.
        measure: also measure inference power and memory.
        inference_batch: batch of the inference measurement.
        measure_opts: :class:`hwml.profile.SweepOptions` of the measurement.
    """

    def __init__(
        self,
        device: str | Device = "cuda",
        *,
        epochs: int = 10,
        batch_size: int = 64,
        seed: int = 0,
        image_size: int = 32,
        dataset: str = "digits",
        data_root: str | os.PathLike[str] | None = None,
        measure: bool = True,
        inference_batch: int = 256,
        measure_opts: Any = None,
    ) -> None:
        self._device_arg = device
        self._device: Device | None = device if isinstance(device, Device) else None
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.image_size = _check_image_size(image_size)
        self.dataset = dataset
        self.data_root = data_root
        self.measure = bool(measure)
        self.inference_batch = int(inference_batch)
        self.measure_opts = measure_opts
        self._data: ImageData | None = None

    @property
    def device(self) -> Device:
        """The opened device."""
        if self._device is None:
            self._device = open_device(str(self._device_arg), power=self.measure)
        return self._device

    @property
    def data(self) -> ImageData:
        """The training and test data (loaded on first use)."""
        if self._data is None:
            self._data = load_data(
                self.dataset, image_size=self.image_size, data_root=self.data_root
            )
        return self._data

    def __call__(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Train, test and (optionally) measure one configuration.

        Args:
            config: one value per dimension of :func:`cnn_space`.

        Returns:
            ``objective`` (the test error; NaN for a diverged or out-of-memory run, which
            the search records as failed), ``test_error``, ``train_loss``,
            ``train_time_s``, ``status``, ``reason``, and with ``measure``: ``power_w``,
            ``peak_mem_bytes``, ``runtime_ms``, ``energy_per_image_mj``; ``eval_time_s``
            is the wall-clock time of the whole call (training and measuring).
        """
        start = time.perf_counter()
        # train as the benchmark's workers do (no cuDNN autotuning of each new shape);
        # open_device turned autotuning on, which the inference measurement keeps
        with cudnn_autotune(False):
            result = train_cnn(
                config,
                device=self.device,
                epochs=self.epochs,
                batch_size=self.batch_size,
                seed=self.seed,
                data=self.data,
            )
        out: dict[str, Any] = {"objective": result["test_error"], **result}
        if self.measure:
            try:
                m = measure_inference(
                    config,
                    self.device,
                    batch=self.inference_batch,
                    image_size=self.data.image_size,
                    in_channels=self.data.in_channels,
                    opts=self.measure_opts,
                    seed=self.seed,
                )
            except Exception as err:  # noqa: BLE001 - an OOM at inference is data
                if not self.device.is_oom(err):
                    raise
                out["measure_status"] = "oom"
                self.device.reset_peak_memory()
            else:
                out["measure_status"] = m["status"]
                for key in ("power_w", "peak_mem_bytes", "runtime_ms", "energy_per_image_mj"):
                    out[key] = m.get(key, math.nan)
        out["eval_time_s"] = time.perf_counter() - start
        return out
