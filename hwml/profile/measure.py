"""Measuring one thing: a callable, a layer, a network, and the device's ceilings.

:func:`measure_callable` times a callable three ways (eager, host dispatch, CUDA-graph
replays) and measures its energy per call over a window of graph replays
(:meth:`hwml.hardware.NvmlEnergyMeter.measure`); :func:`measure_layer` and
:func:`measure_network` build the module and its inputs and call it; :func:`calibrate`
measures the matrix-product and copy ceilings, the energy counter's period and the idle
power.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hwml import zoo
from hwml.describe import Layer
from hwml.hardware import Device, GraphCaptureError, PowerReading, Timing, tf32_matmul
from hwml.profile.columns import DTYPES, MIN_BUSY_FRACTION, OVER_LIMIT_FACTOR
from hwml.profile.configs import SweepOptions

__all__ = [
    "GRAPH_TARGET_MS",
    "calibrate",
    "eager_peak_memory",
    "measure_callable",
    "measure_layer",
    "measure_module",
    "measure_network",
    "model_inputs",
]


# ====================================================================== measuring


def model_inputs(
    shapes: Sequence[Sequence[int]], device: Device, dtype: torch.dtype
) -> list[torch.Tensor]:
    gen = torch.Generator(device=device.torch_device).manual_seed(0)
    return [
        torch.randn(tuple(s), device=device.torch_device, dtype=dtype, generator=gen)
        for s in shapes
    ]


#: Steady-state eager calls over which :func:`eager_peak_memory` reads the peak.
PEAK_PASSES = 3


def _counts_peak(device: Device) -> bool:
    """Whether ``device`` has a peak-memory counter worth running extra calls for."""
    return device.is_cuda


def eager_peak_memory(fn: Callable[[], Any], device: Device, before: float) -> float:
    """Peak bytes PyTorch allocates while ``fn`` runs eagerly, counted from ``before``.

    Call it after building the workload and before any CUDA graph of it exists (a graph
    keeps a memory pool of its own), with ``before`` = ``device.allocated_memory_bytes()``
    read before the workload was built: memory that earlier work in the process still
    holds is then not counted, while the workload's weights and inputs are. One warm-up
    call (where cuDNN's autotuning tries workspaces) comes before the peak is reset, then
    :data:`PEAK_PASSES` calls. NaN on a device without a peak counter (the CPU), where no
    extra call is made.
    """
    if not _counts_peak(device):
        return device.peak_memory_bytes() - before
    fn()
    device.reset_peak_memory()
    for _ in range(PEAK_PASSES):
        fn()
    device.synchronize()
    return device.peak_memory_bytes() - before


#: Device work captured into one CUDA graph for the power window (ms).
GRAPH_TARGET_MS = 0.5
_MAX_GRAPH_CALLS = 256


def _measure_callable(fn: Callable[[], Any], device: Device, opts: SweepOptions) -> dict[str, Any]:
    """Time ``fn`` (eager, host dispatch, CUDA graph) and measure its energy per call.

    On a GPU, ``fn`` is captured into a CUDA graph of about :data:`GRAPH_TARGET_MS` of
    work; the power window then replays that graph back to back, so the GPU never waits
    for Python. ``opts.eager_power`` adds a window of eager launches. Each window's
    numbers come from that window alone (:meth:`hwml.hardware.NvmlEnergyMeter.measure`).
    """
    t: Timing = device.timer.time(fn, warmup=opts.warmup, budget_ms=opts.budget_ms)
    row: dict[str, Any] = {
        "runtime_ms": t.median_ms,
        "runtime_p10_ms": t.p10_ms,
        "runtime_p90_ms": t.p90_ms,
        "runtime_cv": t.cv,
        "repeats": t.repeats,
    }
    graph = None
    if device.is_cuda:
        # Each repeat waits for the queue to drain: fewer of them for a long call.
        repeats = 15 if t.median_ms < 20 else 5
        row["host_dispatch_ms"] = device.timer.host_dispatch_ms(fn, repeats=repeats)
        if opts.graph:
            calls = int(min(_MAX_GRAPH_CALLS, max(1, math.ceil(GRAPH_TARGET_MS / t.median_ms))))
            try:
                graph = device.timer.capture(fn, calls)
                row["runtime_graph_ms"] = device.timer.time_graph(graph).median_ms
                row["graph_calls"] = calls
            except GraphCaptureError as err:
                row["graph_error"] = str(err)
    status = "ok"
    if opts.power and device.meter.available:
        if graph is not None:
            reading = device.meter.measure(
                graph.replay,
                device.marker,
                launch_ms=row["runtime_graph_ms"] * graph.calls,
                calls_per_launch=graph.calls,
                periods=opts.periods,
            )
            row["power_mode"] = "graph"
        else:
            reading = device.meter.measure(
                fn, device.marker, launch_ms=t.median_ms, periods=opts.periods
            )
            row["power_mode"] = "eager"
        row.update(_reading_columns(reading))
        if opts.eager_power and graph is not None:
            eager = device.meter.measure(
                fn,
                device.marker,
                launch_ms=t.median_ms,
                periods=opts.periods,
                device_ms_per_call=reading.device_ms_per_call,
            )
            row.update(
                eager_power_w=eager.power_w,
                eager_energy_mj=eager.energy_per_call_mj,
                eager_window_s=eager.window_s,
                eager_busy_fraction=eager.busy_fraction,
            )
        status = _power_status(reading, device)
    elif opts.power:
        status = "no_power"
    del graph
    row["status"] = status
    return row


def _reading_columns(reading: PowerReading) -> dict[str, Any]:
    return {
        "power_w": reading.power_w,
        "energy_mj": reading.energy_per_call_mj,
        "power_window_s": reading.window_s,
        "power_periods": reading.periods,
        "window_energy_mj": reading.energy_mj,
        "window_calls": reading.calls,
        "busy_fraction": reading.busy_fraction,
        "window_device_ms": reading.device_ms_per_call,
    }


def _power_status(reading: PowerReading, device: Device) -> str:
    """``ok``, ``no_power`` (NaN reading), ``over_limit`` or ``low_busy`` for a reading."""
    if not math.isfinite(reading.power_w):
        return "no_power"
    limit = device.info.get("power_limit_w")
    if limit and reading.power_w > OVER_LIMIT_FACTOR * float(limit):
        warnings.warn(
            f"measured {reading.power_w:.0f} W, over {OVER_LIMIT_FACTOR:g} x the "
            f"{float(limit):.0f} W power limit: row flagged over_limit",
            RuntimeWarning,
            stacklevel=3,
        )
        return "over_limit"
    if not reading.busy_fraction >= MIN_BUSY_FRACTION:
        return "low_busy"
    return "ok"


measure_callable = _measure_callable
"""Public name of :func:`_measure_callable`: time ``fn`` on ``device`` and, when
``opts.power`` is set, measure its average power (window aligned to the energy counter)."""


def measure_layer(
    layer: Layer,
    device: Device,
    opts: SweepOptions | None = None,
    module: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Measure one layer alone: runtime, power (optional), energy and peak memory.

    Peak memory is read from eager calls before the runtime and power measurement
    (:func:`eager_peak_memory`).

    Args:
        layer: The layer description (its shapes give the inputs).
        device: An opened :class:`~hwml.hardware.Device`.
        opts: Measurement options.
        module: Module to run instead of ``layer.to_module()`` (in-place timing).

    Returns:
        The measured columns of a row (see :data:`LAYER_COLUMNS`).
    """
    opts = opts or SweepOptions()
    dtype = DTYPES[opts.dtype]
    device.reset_peak_memory()
    before = device.allocated_memory_bytes()
    mod = (module if module is not None else layer.to_module()).to(device.torch_device, dtype)
    xs = model_inputs(layer.in_shapes, device, dtype)
    with torch.inference_mode():
        peak = eager_peak_memory(lambda: mod(*xs), device, before)
        row = _measure_callable(lambda: mod(*xs), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = peak
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    return row


def measure_module(
    module: torch.nn.Module,
    input_shape: Sequence[int],
    device: Device,
    opts: SweepOptions | None = None,
) -> dict[str, Any]:
    """Measure a module's forward pass on one random input: runtime, power, energy, memory.

    The module is moved to the device in ``opts.dtype`` and run in eval mode under
    ``torch.inference_mode``; peak memory is read from eager calls before the runtime and
    power measurement (:func:`eager_peak_memory`), counted from what was allocated before
    the module was moved.

    Args:
        module: The network (moved to the device in place).
        input_shape: The input's shape, batch first.
        device: An opened :class:`~hwml.hardware.Device`.
        opts: Measurement options.

    Returns:
        The measured columns of :func:`measure_callable` plus ``peak_mem_bytes``,
        ``used_mem_bytes``, ``sm_clock_mhz`` and, where energies were measured,
        ``energy_per_image_mj`` and ``eager_energy_per_image_mj`` (per sample of the batch).
    """
    opts = opts or SweepOptions()
    dtype = DTYPES[opts.dtype]
    device.reset_peak_memory()
    before = device.allocated_memory_bytes()
    module = module.to(device.torch_device, dtype).eval()
    x = model_inputs([tuple(input_shape)], device, dtype)[0]
    with torch.inference_mode():
        peak = eager_peak_memory(lambda: module(x), device, before)
        row = _measure_callable(lambda: module(x), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = peak
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    batch = int(input_shape[0])
    for col in ("energy_mj", "eager_energy_mj"):
        if row.get(col) is not None:
            row[col.replace("_mj", "_per_image_mj")] = row[col] / batch
    return row


def measure_network(
    name: str,
    batch: int,
    device: Device,
    opts: SweepOptions | None = None,
    sample_shape: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Measure a network's forward pass at ``batch``: runtime, power, energy, memory.

    ``name`` is any spec :func:`hwml.zoo.entry` takes; ``sample_shape`` is one input's
    shape without the batch (required for ``package.module:callable``). See
    :func:`measure_module`.
    """
    return measure_module(
        _built(name, sample_shape), zoo.input_shape(name, batch, sample_shape), device, opts
    )


_LAST_BUILT: dict[str, torch.nn.Module] = {}


def _built(name: str, sample_shape: Sequence[int] | None = None) -> torch.nn.Module:
    """Network ``name``, built once for consecutive rows of the same network.

    A sweep measures a network at several batch sizes in a row; building a large
    torchvision model takes seconds on the host, so the last one built is kept (only
    one, so device memory holds one network at a time).
    """
    if name not in _LAST_BUILT:
        _LAST_BUILT.clear()
        _LAST_BUILT[name] = zoo.get(name, sample_shape)
    return _LAST_BUILT[name]


def calibrate(device: Device, *, quick: bool = False) -> dict[str, Any]:
    """Measure the device's ceilings and the energy counter's behaviour.

    Returns:
        ``peak_flops_per_s`` by dtype (large square matrix product; ``tf32`` is float32
        with TF32 tensor cores allowed), ``copy_bandwidth_bytes_per_s`` (device-to-device
        copy of a large buffer, bytes read + written per second),
        ``counter_update_period_s`` and ``idle_power_w`` (NaN without a meter).
    """
    n = 1024 if quick or not device.is_cuda else 8192
    out: dict[str, Any] = {"peak_flops_per_s": {}}
    for label, dt, allow in (
        ("float32", torch.float32, False),
        ("tf32", torch.float32, True),
        ("float16", torch.float16, False),
        ("bfloat16", torch.bfloat16, False),
    ):
        if not device.is_cuda and label in ("tf32", "float16"):
            continue
        with tf32_matmul(allow):
            a = torch.randn(n, n, device=device.torch_device, dtype=dt)
            b = torch.randn(n, n, device=device.torch_device, dtype=dt)
            t = device.timer.time(lambda a=a, b=b: a @ b, warmup=3, budget_ms=200)
        out["peak_flops_per_s"][label] = 2 * n**3 / (t.median_ms / 1e3)
        del a, b
    nbytes = (1 << 30) if device.is_cuda and not quick else (1 << 26)
    src = torch.empty(nbytes // 4, device=device.torch_device, dtype=torch.float32)
    dst = torch.empty_like(src)
    t = device.timer.time(lambda: dst.copy_(src), warmup=3, budget_ms=200)
    out["copy_bandwidth_bytes_per_s"] = 2 * nbytes / (t.median_ms / 1e3)
    device.reset_peak_memory()
    out["counter_update_period_s"] = device.meter.update_period_s(samples=10 if quick else 30)
    time.sleep(0.5 if device.is_cuda else 0)
    out["idle_power_w"] = device.meter.idle_power_w(0.5 if quick else 1.0)
    return out
