"""HyperPower's CNN family: the search space, the network, its training and its size.

HyperPower (survey section 4.3) tunes a small convolutional network: structural
hyper-parameters ``z`` (filters per layer, kernel size, dense units) that decide what the
network costs on the hardware, and training hyper-parameters (learning rate, momentum,
weight decay) that decide only how well it learns.

* :func:`cnn_space` — the search space, the four structural dimensions flagged
  ``structural=True``;
* :func:`build_cnn` — ``conv(k) -> BN -> ReLU -> maxpool2 -> conv(k) -> ReLU -> maxpool2 ->
  flatten -> dense -> ReLU -> dense(10)``;
* :func:`train_cnn` — SGD with momentum, weight decay and a cosine learning-rate decay
  to zero over all steps, the whole data set held on the device as tensors (no data
  loader, no workers); returns the test error and the training time, and a run whose
  loss becomes NaN or infinite is reported as ``status="failed"``;
* :func:`structural_features` — ``z`` plus derived columns (parameters, FLOPs, activation
  bytes), the same numbers :func:`hwml.describe.describe` gives, in closed form.

Why SGD with momentum: it is what HyperPower tuned (momentum is one of its training
dimensions), and its sensitivity to the learning rate gives the search something to find.
Units: seconds (``*_s``), bytes (``*_bytes``); ``test_error`` is a fraction in ``[0, 1]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from hwml.hardware import Device
from hwml.optimize import Categorical, Integer, LogReal, Real, Space
from hwml.tasks.images import ImageData, check_image_size, load_data
from hwml.tasks.training import train_module

__all__ = [
    "CNN",
    "STRUCTURAL",
    "TRAINING",
    "build_cnn",
    "cnn_space",
    "structural_features",
    "train_cnn",
]

STRUCTURAL: tuple[str, ...] = ("conv1_filters", "conv2_filters", "kernel_size", "dense_units")
"""Names of the structural hyper-parameters ``z`` (what power and memory depend on)."""

TRAINING: tuple[str, ...] = ("learning_rate", "momentum", "weight_decay")
"""Names of the training hyper-parameters (no effect on inference power or memory)."""


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
        image_size = check_image_size(image_size)
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
    return_model: bool = False,
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
        return_model: also return the trained network (``model``, on ``device``, in eval
            mode; None unless ``status`` is ok), e.g. to deploy it.

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
    out = train_module(
        lambda: build_cnn(
            config, data.image_size, in_channels=data.in_channels, n_classes=data.n_classes
        ),
        data,
        device=device,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=False,
        seed=seed,
        return_model=return_model,
    )
    out.pop("params", None)  # train_cnn's rows have always been without it
    return out


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
    s = float(check_image_size(image_size))
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
