"""HyperPower's live objective: train a configuration, then measure what it costs.

* :func:`measure_inference` — inference runtime, power (NVML energy counter, through
  :func:`hwml.profile.measure_callable`), energy per image and peak memory of a
  configuration at a fixed inference batch: HyperPower measures power and memory during
  inference, not training;
* :class:`CNNObjective` — ``config -> {"objective": test error, "power_w",
  "peak_mem_bytes", "eval_time_s", ...}`` for :func:`hwml.optimize.minimize`.

Units: seconds (``*_s``), milliseconds (``*_ms``), watts (``*_w``), millijoules (``*_mj``),
bytes (``*_bytes``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import torch

from hwml.hardware import Device, cudnn_autotune, open_device, rng_devices
from hwml.profile import SweepOptions, eager_peak_memory, measure_callable, worker_device
from hwml.tasks.cnn import build_cnn, train_cnn
from hwml.tasks.images import ImageData, check_image_size, load_data

__all__ = ["CNNObjective", "measure_inference"]


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
    allocation during steady-state eager inference: weights, input, activations and the
    workspace of the algorithms cuDNN chose. It is read from a few eager passes after one
    warm-up pass (so the workspaces cuDNN's autotuning tries are not counted) and before
    the runtime and power measurement (whose CUDA graph has a memory pool of its own), and
    counted from what PyTorch held allocated before the network was built (so memory
    that earlier measurements in the process left allocated is not counted either).
    Out-of-memory errors propagate (check ``device.is_oom``).

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
    opts = opts or SweepOptions()
    if opts.dtype != "float32":
        raise ValueError(f"measure_inference runs in float32, got opts.dtype={opts.dtype!r}")
    dev = device.torch_device
    device.reset_peak_memory()
    # whatever earlier work in this process still holds (e.g. the memory pool of a CUDA
    # graph not yet released) is not this network's: count from here
    before = device.allocated_memory_bytes()
    with torch.random.fork_rng(devices=rng_devices(dev)):
        torch.manual_seed(int(seed))
        with torch.device(dev):
            model = build_cnn(config, image_size, in_channels=in_channels).eval()
            x = torch.randn(int(batch), in_channels, image_size, image_size)
    with torch.inference_mode():
        peak = eager_peak_memory(lambda: model(x), device, before)
        row = measure_callable(lambda: model(x), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = peak
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    energy = row.get("energy_mj", math.nan)
    row["energy_mj"] = energy
    row.setdefault("power_w", math.nan)
    row["energy_per_image_mj"] = energy / int(batch) if energy == energy else math.nan
    return row


_WORKER_DATA: dict[tuple[Any, ...], ImageData] = {}
"""Data sets loaded by this process for unpickled objectives (one load per worker)."""


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
        self.image_size = check_image_size(image_size)
        self.dataset = dataset
        self.data_root = data_root
        self.measure = bool(measure)
        self.inference_batch = int(inference_batch)
        self.measure_opts = measure_opts
        self._data: ImageData | None = None
        self._shared = False  # True in a copy unpickled on a cluster worker

    @property
    def device(self) -> Device:
        """The opened device (on a cluster worker: that worker's, opened once per process)."""
        if self._device is None:
            if self._shared:
                self._device = worker_device(str(self._device_arg), self.measure)
            else:
                self._device = open_device(str(self._device_arg), power=self.measure)
        return self._device

    @property
    def data(self) -> ImageData:
        """The training and test data (loaded on first use; once per worker process)."""
        if self._data is None:
            key = (self.dataset, self.image_size, str(self.data_root))
            if self._shared and key in _WORKER_DATA:
                self._data = _WORKER_DATA[key]
            else:
                self._data = load_data(
                    self.dataset, image_size=self.image_size, data_root=self.data_root
                )
                if self._shared:
                    _WORKER_DATA[key] = self._data
        return self._data

    def __getstate__(self) -> dict[str, Any]:
        """What goes to a cluster worker: the settings, not the opened device or the data
        (the worker opens its own device and loads the data once, for every evaluation
        it runs)."""
        state = dict(self.__dict__)
        if isinstance(state["_device_arg"], Device):
            state["_device_arg"] = state["_device_arg"].torch_device.type
        state["_device"] = None
        state["_data"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._shared = True

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
