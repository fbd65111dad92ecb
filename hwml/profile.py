"""Profiling sweeps: runtime, power, energy and memory of layers and networks.

Three sweeps fill a dataset folder (see :mod:`hwml.data`):

* :func:`sweep_layers` → ``layers.csv``: single layers built from hyper-parameters, both
  sampled at random (seeded) over wide ranges and taken from every zoo network;
* :func:`sweep_networks` → ``nets.csv``: whole zoo networks at several batch sizes and
  dtypes;
* :func:`sweep_net_layers` → ``net_layers.csv``: every layer of a zoo network timed in
  place, with its real input shape and the network's own weights.

:func:`calibrate` measures the device's ceilings (matrix-product rate per dtype, copy
bandwidth), the energy counter's update period and the idle power; they go into the
dataset's ``provenance.json``.

Every sweep appends rows one at a time, skips rows already present (so a rerun resumes
where a killed run stopped), records an out-of-memory configuration as ``status=oom``
and carries on, and shows a progress bar with an ETA.
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hwml import __version__, zoo
from hwml.data import AppendTable, RunLog, git_commit, now_iso, write_readme
from hwml.describe import KINDS, Layer
from hwml.hardware import Device, GraphCaptureError, PowerReading, Timing, tf32_matmul

__all__ = [
    "DTYPES",
    "MIN_BUSY_FRACTION",
    "OVER_LIMIT_FACTOR",
    "LAYER_COLUMNS",
    "NET_COLUMNS",
    "NET_LAYER_COLUMNS",
    "SweepOptions",
    "sample_layers",
    "zoo_layers",
    "failed_measurement",
    "begin_run",
    "logged_run",
    "model_inputs",
    "run_rows",
    "measure_callable",
    "measure_layer",
    "measure_network",
    "calibrate",
    "sweep_layers",
    "sweep_networks",
    "sweep_net_layers",
    "write_dataset_readme",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

_LAYER_FEATURES = list(Layer.linear(1, 1, 1).to_row())

_MEASURED: dict[str, tuple[str, str]] = {
    "runtime_ms": (
        "ms",
        "eager runtime: median time of one call launched from Python, what a PyTorch user "
        "sees (CUDA events after warm-up; CPU: monotonic clock)",
    ),
    "runtime_p10_ms": ("ms", "10th percentile of the timed eager calls"),
    "runtime_p90_ms": ("ms", "90th percentile of the timed eager calls"),
    "runtime_cv": ("1", "coefficient of variation of the timed eager calls"),
    "repeats": ("count", "timed eager calls"),
    "host_dispatch_ms": (
        "ms",
        "host dispatch: CPU time to issue one call into an empty queue (GPU only)",
    ),
    "runtime_graph_ms": (
        "ms",
        "GPU runtime: median time of one call replayed from a CUDA graph, launch overhead "
        "removed (empty when the workload could not be captured; see graph_error)",
    ),
    "graph_calls": ("count", "calls captured in one CUDA graph (about 0.5 ms of work)"),
    "graph_error": ("-", "why the workload could not be captured into a CUDA graph"),
    "power_mode": (
        "-",
        "how the workload ran during the power window: 'graph' (replays of the CUDA graph, "
        "the GPU kept busy) or 'eager' (when it could not be captured)",
    ),
    "power_w": (
        "W",
        "average board power over the window, ΔE / Δt between two energy-counter updates",
    ),
    "energy_mj": (
        "mJ",
        "energy of one call: ΔE / calls completed inside the same window",
    ),
    "power_window_s": ("s", "window length, between two observed energy-counter updates"),
    "power_periods": ("count", "energy-counter updates the window spans"),
    "window_energy_mj": ("mJ", "ΔE: energy the counter accumulated over the window"),
    "window_calls": ("count", "calls completed inside the window (fractional at its edges)"),
    "busy_fraction": (
        "1",
        "share of the window the GPU spent executing the workload (CUDA events); rows under "
        "0.95 have status low_busy",
    ),
    "window_device_ms": (
        "ms",
        "GPU time of one call while the window ran (a power cap can make it longer than "
        "runtime_graph_ms)",
    ),
    "eager_power_w": ("W", "average power over a second window with eager launches"),
    "eager_energy_mj": ("mJ", "energy of one eagerly launched call: ΔE / calls in that window"),
    "eager_window_s": ("s", "length of the eager window"),
    "eager_busy_fraction": (
        "1",
        "share of the eager window the GPU executed the workload (calls x window_device_ms "
        "/ window): what host dispatch leaves of the GPU's time",
    ),
    "peak_mem_bytes": (
        "bytes",
        "peak memory allocated by PyTorch while measuring (inputs, weights, outputs, workspace)",
    ),
    "used_mem_bytes": ("bytes", "device memory in use (NVML) at the end of the measurement"),
    "sm_clock_mhz": ("MHz", "SM clock read right after the measurement"),
    "gpu_uuid": (
        "-",
        "UUID of the GPU that measured the row (several GPUs of one model may share a sweep)",
    ),
    "run_id": ("-", "the run (provenance.json runs[].run_id) that measured the row"),
    "status": (
        "-",
        "ok; low_busy (power measured but the GPU idled for over 5 % of the window: not "
        "fitted on unless asked); over_limit (power above the board's power limit: a window "
        "or counter error); no_power (runtime measured, power not); oom; error",
    ),
    "error": ("-", "error message when status is not ok"),
    "timestamp": ("-", "UTC time the row was measured"),
}

#: Busy fraction under which a power row gets ``status = low_busy``.
MIN_BUSY_FRACTION = 0.95
#: A window may read a little above the board's power limit (the limit is held over a
#: longer time than a 0.3 s window; on an H200, 0.3 s windows read up to ~4 % above 700 W
#: while a 3 s loop on the same workload agreed within 4 %). Above this factor x the
#: limit, a reading is taken for a window or counter error (``status = over_limit``).
OVER_LIMIT_FACTOR = 1.05

_LAYER_META: dict[str, tuple[str, str]] = {
    "key": ("-", "row identity used to resume a sweep"),
    "source": (
        "-",
        "'sample' (random configuration) or 'zoo:<network>' (a layer of a zoo network)",
    ),
    "dtype": ("-", "tensor dtype of inputs and weights"),
}

_FEATURE_DOCS: dict[str, tuple[str, str]] = {
    "name": ("-", "layer name inside its network (empty for sampled layers)"),
    "kind": ("-", "layer kind: " + ", ".join(KINDS)),
    "op": ("-", "activation function, or 'adaptive' for adaptive pooling"),
    "batch": ("count", "batch size"),
    "in_channels": ("count", "input channels"),
    "in_h": ("px", "input height (1 for 2-D inputs)"),
    "in_w": ("px", "input width (1 for 2-D inputs)"),
    "out_channels": ("count", "output channels"),
    "out_h": ("px", "output height"),
    "out_w": ("px", "output width"),
    "kernel_h": ("px", "kernel height"),
    "kernel_w": ("px", "kernel width"),
    "stride_h": ("px", "vertical stride"),
    "stride_w": ("px", "horizontal stride"),
    "pad_h": ("px", "vertical zero padding"),
    "pad_w": ("px", "horizontal zero padding"),
    "groups": ("count", "convolution groups (= in_channels for depthwise)"),
    "in_features": ("count", "linear input features"),
    "out_features": ("count", "linear output features"),
    "bias": ("bool", "conv/linear bias"),
    "ceil_mode": ("bool", "pooling output rounds up"),
    "dtype_bytes": ("bytes", "bytes per element"),
    "in_shapes": ("-", "shapes of the inputs, 'x'-separated, ';' between inputs"),
    "out_shape": ("-", "shape of the output"),
    "inputs": ("-", "names of the layers feeding this one (graph edges)"),
    "macs": ("count", "multiply-accumulates (conv/linear)"),
    "flops": ("count", "2 x macs (the FlopCounterMode convention)"),
    "vector_ops": (
        "count",
        "element-wise operations not in flops (bias, pooling, norm, activation, add)",
    ),
    "params": ("count", "learnable parameters"),
    "param_bytes": ("bytes", "parameter bytes"),
    "input_bytes": ("bytes", "input activation bytes"),
    "output_bytes": ("bytes", "output activation bytes"),
    "total_bytes": ("bytes", "input + parameter + output bytes"),
    "arith_intensity": ("FLOP/byte", "(flops + vector_ops) / total_bytes"),
}

LAYER_COLUMNS: list[str] = ["key", "source", "dtype", *_LAYER_FEATURES, *_MEASURED]
NET_LAYER_COLUMNS: list[str] = ["key", "network", "index", "dtype", *_LAYER_FEATURES, *_MEASURED]
NET_COLUMNS: list[str] = [
    "key",
    "network",
    "batch",
    "dtype",
    "layers",
    "params",
    "macs",
    "flops",
    "activation_bytes",
    *_MEASURED,
    "energy_per_image_mj",
    "eager_energy_per_image_mj",
]
_NET_DOCS: dict[str, tuple[str, str]] = {
    "key": _LAYER_META["key"],
    "network": ("-", "zoo network name"),
    "batch": ("count", "batch size"),
    "dtype": _LAYER_META["dtype"],
    "layers": ("count", "layers in the description"),
    "params": ("count", "learnable parameters"),
    "macs": ("count", "multiply-accumulates"),
    "flops": ("count", "2 x macs"),
    "activation_bytes": ("bytes", "sum of every layer's output bytes"),
    **_MEASURED,
    "energy_mj": ("mJ", "energy of one forward pass of the batch: ΔE / calls in the window"),
    "energy_per_image_mj": ("mJ", "energy_mj / batch"),
    "eager_energy_per_image_mj": ("mJ", "eager_energy_mj / batch"),
}


#: Columns of ``validation.csv`` (written by :mod:`hwml.validation`, documented here with
#: the other tables of a dataset folder).
_VALIDATION_DOCS: dict[str, tuple[str, str]] = {
    "key": _LAYER_META["key"],
    "workload": ("-", "layer kind, or network and batch"),
    "kind": ("-", "'layer' or 'network'"),
    "network": ("-", "zoo network (networks only)"),
    "batch": ("count", "batch size"),
    "dtype": _LAYER_META["dtype"],
    "flops": ("count", "FLOPs of one call"),
    "runtime_ms": _MEASURED["runtime_ms"],
    "runtime_graph_ms": _MEASURED["runtime_graph_ms"],
    "host_dispatch_ms": _MEASURED["host_dispatch_ms"],
    "graph_calls": _MEASURED["graph_calls"],
    "busy_fraction": ("1", "busy share of hwml's graph window"),
    "eager_busy_fraction": _MEASURED["eager_busy_fraction"],
    "hwml_window_s": ("s", "length of hwml's graph window"),
    "hwml_graph_energy_mj": ("mJ", "hwml: energy per call, window of graph replays"),
    "hwml_eager_energy_mj": ("mJ", "hwml: energy per call, window of eager launches"),
    "loop_graph_energy_mj": ("mJ", "reference: ΔE / calls over >= 3 s of graph replays, two reads"),
    "loop_eager_energy_mj": (
        "mJ",
        "reference: ΔE / calls over >= 3 s of eager launches, two reads",
    ),
    "zeus_eager_energy_mj": (
        "mJ",
        "Zeus (zeus-ml ZeusMonitor window): energy per call, eager loop",
    ),
    "hwml_graph_power_w": ("W", "hwml: power, graph window"),
    "hwml_eager_power_w": ("W", "hwml: power, eager window"),
    "loop_graph_power_w": ("W", "reference: ΔE over the graph loop's wall time"),
    "loop_eager_power_w": ("W", "reference: ΔE over the eager loop's wall time"),
    "zeus_eager_power_w": ("W", "Zeus: energy over its window's time"),
    "loop_eager_s": ("s", "length of the eager reference loop"),
    "loop_graph_s": ("s", "length of the graph reference loop"),
    "zeus_eager_s": ("s", "length of Zeus's window"),
    "hwml_status": ("-", "status hwml's row would have had (ok, low_busy, over_limit, ...)"),
    "gpu_uuid": _MEASURED["gpu_uuid"],
    "run_id": _MEASURED["run_id"],
    "status": ("-", "ok (empty in rows written before the column was filled)"),
    "error": _MEASURED["error"],
    "timestamp": _MEASURED["timestamp"],
}


def column_docs() -> dict[str, dict[str, tuple[str, str]]]:
    """``{table: {column: (unit, meaning)}}`` for the three profiler tables."""
    layer = {**_LAYER_META, **_FEATURE_DOCS, **_MEASURED}
    net_layer = {
        **layer,
        "network": ("-", "zoo network name"),
        "index": ("count", "execution order"),
    }
    return {
        "layers": {c: layer[c] for c in LAYER_COLUMNS},
        "repeats": {c: layer[c] for c in LAYER_COLUMNS},
        "net_layers": {c: net_layer[c] for c in NET_LAYER_COLUMNS},
        "nets": {c: _NET_DOCS[c] for c in NET_COLUMNS},
        "validation": dict(_VALIDATION_DOCS),
    }


# ====================================================================== options


@dataclass(frozen=True)
class SweepOptions:
    """How each row is measured.

    Attributes:
        dtype: Tensor dtype name (a key of :data:`DTYPES`).
        power: Measure energy and power with the energy meter.
        periods: Energy-counter updates each power window spans (>= 3 recommended).
        budget_ms: Approximate time spent in the timed eager repeats of one row (ms).
        warmup: Untimed calls before timing (cuDNN autotunes a new shape on the first).
        graph: Capture the workload into a CUDA graph: GPU runtime
            (``runtime_graph_ms``), and the power window replays the graph so that the
            GPU never waits for the host. Off, or when capture fails, the window runs
            eager launches and says so (``power_mode``).
        eager_power: Also measure a second window with eager launches (``eager_*``
            columns): the energy a PyTorch user pays, host gaps included.
        shard: ``(i, n)``: measure only every n-th pending row starting at i, so n
            processes (one per GPU) can share a sweep.
        progress: Show a progress bar.
    """

    dtype: str = "float32"
    power: bool = True
    periods: int = 3
    budget_ms: float = 50.0
    warmup: int = 5
    graph: bool = True
    eager_power: bool = False
    shard: tuple[int, int] = (0, 1)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        if self.periods < 1:
            raise ValueError(f"periods must be >= 1, got {self.periods}")
        i, n = self.shard
        if not (0 <= i < n):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {self.shard}")


# ====================================================================== configurations

_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SIZES = (7, 8, 13, 14, 16, 27, 28, 32, 55, 56, 64, 112, 224)
SAMPLED_KINDS = ("conv2d", "linear", "maxpool2d", "avgpool2d", "batchnorm2d", "activation", "add")


def _log_int(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _size(rng: random.Random) -> int:
    return rng.choice(_SIZES) if rng.random() < 0.6 else _log_int(rng, 7, 224)


def sample_layers(
    kind: str,
    n: int,
    seed: int = 0,
    *,
    dtype_bytes: int = 4,
    max_activation_bytes: float = 2e9,
    max_flops: float = 2e12,
) -> list[Layer]:
    """Random layer configurations of ``kind`` over ranges that cover the zoo at batch 1-256.

    Args:
        kind: One of :data:`SAMPLED_KINDS`.
        n: How many configurations.
        seed: Random seed (the same seed gives the same list).
        dtype_bytes: Element size for the byte features.
        max_activation_bytes: Reject configurations whose inputs and output exceed this.
        max_flops: Reject configurations with more FLOPs than this.

    Returns:
        ``n`` distinct layers.
    """
    if kind not in SAMPLED_KINDS:
        raise ValueError(f"cannot sample kind {kind!r}; sampled kinds: {', '.join(SAMPLED_KINDS)}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    rng = random.Random(f"{kind}:{seed}")
    out: dict[tuple, Layer] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"could not sample {n} distinct {kind} layers")
        try:
            layer = _sample_one(kind, rng, dtype_bytes)
        except ValueError:
            continue
        if layer.input_bytes + layer.output_bytes > max_activation_bytes or layer.flops > max_flops:
            continue
        out.setdefault(layer.signature(), layer)
    return list(out.values())


def _sample_one(kind: str, rng: random.Random, db: int) -> Layer:
    batch = rng.choice(_BATCHES)
    if kind == "conv2d":
        size = _size(rng)
        k = rng.choices((1, 3, 5, 7, 11), (0.3, 0.45, 0.1, 0.1, 0.05))[0]
        stride = rng.choices((1, 2, 4), (0.65, 0.3, 0.05))[0]
        pad = k // 2 if rng.random() < 0.8 else 0
        r = rng.random()
        if r < 0.12:  # depthwise
            c = _log_int(rng, 16, 1536)
            return Layer.conv2d(
                batch,
                c,
                size,
                size,
                c,
                k,
                stride,
                pad,
                groups=c,
                bias=rng.random() < 0.3,
                dtype_bytes=db,
            )
        cin = _log_int(rng, 3, 1024)
        cout = _log_int(rng, 8, 1024)
        groups = 1
        if r < 0.17:
            g = rng.choice((2, 4, 8, 32))
            cin, cout, groups = max(g, cin // g * g), max(g, cout // g * g), g
        return Layer.conv2d(
            batch,
            cin,
            size,
            size,
            cout,
            k,
            stride,
            pad,
            groups=groups,
            bias=rng.random() < 0.5,
            dtype_bytes=db,
        )
    if kind == "linear":
        return Layer.linear(
            batch,
            _log_int(rng, 16, 25088),
            _log_int(rng, 10, 8192),
            bias=rng.random() < 0.8,
            dtype_bytes=db,
        )
    if kind in ("maxpool2d", "avgpool2d"):
        size = _size(rng)
        c = _log_int(rng, 3, 2048)
        if rng.random() < 0.15:  # global pooling
            return Layer.pool2d(kind, batch, c, size, size, size, 1, dtype_bytes=db)
        k = rng.choices((2, 3, 5), (0.45, 0.45, 0.1))[0]
        s = rng.choice((1, 2, 2, k))
        pad = rng.choice((0, 0, k // 2))
        return Layer.pool2d(
            kind, batch, c, size, size, k, s, pad, ceil_mode=rng.random() < 0.2, dtype_bytes=db
        )
    size = _size(rng)
    shape = (batch, _log_int(rng, 3, 2048), size, size)
    if kind == "batchnorm2d":
        return Layer.batchnorm2d(*shape, dtype_bytes=db)
    if kind == "activation":
        op = rng.choice(("relu", "relu", "relu6", "silu", "sigmoid", "hardswish"))
        return Layer.activation(op, shape, dtype_bytes=db)
    return Layer.elementwise("add", shape, dtype_bytes=db)


def zoo_layers(
    networks: Iterable[str],
    batches: Iterable[int],
    *,
    dtype_bytes: int = 4,
    kinds: Iterable[str] | None = None,
) -> list[tuple[str, Layer]]:
    """Every distinct layer of the given zoo networks at the given batch sizes.

    Returns:
        ``(source, layer)`` pairs, ``source = "zoo:<network>"`` of the first network with
        that layer; layers are stripped of names and edges (they are measured alone).
    """
    wanted = set(kinds) if kinds is not None else None
    seen: dict[tuple, tuple[str, Layer]] = {}
    for name in networks:
        for b in batches:
            net = zoo.describe_net(name, b, dtype_bytes=dtype_bytes, weights=False)
            for layer in net:
                if layer.kind in ("flatten", "dropout", "other"):
                    continue
                if wanted is not None and layer.kind not in wanted:
                    continue
                free = Layer.from_row({**layer.to_row(), "name": "", "inputs": ""})
                seen.setdefault(free.signature(), (f"zoo:{name}", free))
    return list(seen.values())


def layer_key(layer: Layer, dtype: str) -> str:
    """Stable identity of a layer measurement: a hash of its computation and dtype."""
    text = repr((layer.signature(), dtype))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# ====================================================================== measuring


def model_inputs(
    shapes: Sequence[Sequence[int]], device: Device, dtype: torch.dtype
) -> list[torch.Tensor]:
    gen = torch.Generator(device=device.torch_device).manual_seed(0)
    return [
        torch.randn(tuple(s), device=device.torch_device, dtype=dtype, generator=gen)
        for s in shapes
    ]


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
        row["host_dispatch_ms"] = device.timer.host_dispatch_ms(fn)
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
    mod = (module if module is not None else layer.to_module()).to(device.torch_device, dtype)
    xs = model_inputs(layer.in_shapes, device, dtype)
    with torch.inference_mode():
        row = _measure_callable(lambda: mod(*xs), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = device.peak_memory_bytes()
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    return row


def measure_network(
    name: str, batch: int, device: Device, opts: SweepOptions | None = None
) -> dict[str, Any]:
    """Measure a zoo network's forward pass at ``batch``: runtime, power, energy, memory."""
    opts = opts or SweepOptions()
    dtype = DTYPES[opts.dtype]
    device.reset_peak_memory()
    module = zoo.get(name).to(device.torch_device, dtype)
    x = model_inputs([zoo.input_shape(name, batch)], device, dtype)[0]
    with torch.inference_mode():
        row = _measure_callable(lambda: module(x), device, opts)
        device.synchronize()
    row["peak_mem_bytes"] = device.peak_memory_bytes()
    row["used_mem_bytes"] = device.used_memory_bytes()
    row["sm_clock_mhz"] = device.sm_clock_mhz()
    for col in ("energy_mj", "eager_energy_mj"):
        if row.get(col) is not None:
            row[col.replace("_mj", "_per_image_mj")] = row[col] / batch
    return row


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


# ====================================================================== sweeps


def failed_measurement(err: Exception, device: Device, what: str) -> dict[str, str]:
    """The ``status`` and ``error`` columns of a row whose measurement raised ``err``.

    Running out of device memory is an expected outcome (``status = "oom"``); any other
    error (``"error"``) also warns, naming ``what``. The device's peak-memory counter is
    reset so the next row starts clean.
    """
    oom = device.is_oom(err)
    fields = {
        "status": "oom" if oom else "error",
        "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}",
    }
    if not oom:
        warnings.warn(f"{what}: {fields['error']}", RuntimeWarning, stacklevel=3)
    device.reset_peak_memory()
    return fields


def run_rows(
    table: AppendTable,
    todo: list[tuple[str, dict[str, Any], Callable[[], dict]]],
    device: Device,
    opts: SweepOptions,
    desc: str,
    log: RunLog,
) -> int:
    """Measure pending rows of ``todo`` ((key, fixed columns, measure)) into ``table``.

    A shard takes every n-th row of the *whole* list and then skips the rows already in
    the table. (Skipping first and sharding the rest would make the shares depend on
    when each process read the table: processes that start a moment apart would then
    measure some rows twice and others never.)
    """
    done = table.done_keys()
    i, n = opts.shard
    pending = [item for item in todo[i::n] if item[0] not in done]
    written = 0
    bar = tqdm(
        pending,
        desc=desc,
        unit="row",
        disable=not opts.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    for key, fixed, measure in bar:
        row = {
            "key": key,
            **fixed,
            "timestamp": now_iso(),
            "gpu_uuid": device.info.get("gpu_uuid"),
            "run_id": log.run["run_id"],
        }
        try:
            row.update(measure())
        except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
            row.update(failed_measurement(err, device, f"{desc} {key}"))
        table.append(row)
        log.row()
        written += 1
    bar.close()
    return written


def begin_run(
    folder: Path,
    device: Device,
    opts: SweepOptions,
    command: str | None,
    calibration: dict[str, Any] | None,
    kind: str,
) -> dict[str, Any]:
    facts = device.dataset_facts()
    if calibration:
        facts.update(
            {
                k: v
                for k, v in calibration.items()
                if k in ("peak_flops_per_s", "copy_bandwidth_bytes_per_s")
            }
        )
    run = {
        "sweep": kind,
        "command": command or " ".join(sys.argv),
        "date": now_iso(),
        "git_commit": git_commit() or device.info.get("git_commit"),
        "hwml": __version__,
        "dtype": opts.dtype,
        **device.run_facts(),
        "power_periods": opts.periods if opts.power else None,
        "shard": list(opts.shard),
        "energy_meter": type(device.meter).__name__,
    }
    if calibration:
        run.update({k: calibration.get(k) for k in ("counter_update_period_s", "idle_power_w")})
    return {"facts": facts, "run": run}


def logged_run(folder: Path, begun: dict[str, Any], table: str) -> RunLog:
    """The run's log entry: written now, completed (and the README rewritten) at the end.

    A lock per table and shard refuses a second sweep of the same rows into ``folder``
    while this one runs (:class:`hwml.data.SweepBusyError`); processes of other shards
    share the table on purpose.
    """
    i, n = begun["run"].get("shard") or (0, 1)
    return RunLog(
        folder,
        begun["facts"],
        begun["run"],
        on_exit=lambda: write_dataset_readme(folder),
        lock_name=f"{table}-shard{i}of{n}",
        tables=[
            folder / f"{t}.csv" for t in ("layers", "repeats", "nets", "net_layers", "validation")
        ],
    )


def sweep_layers(
    folder: str | Path,
    device: Device,
    layers: Sequence[tuple[str, Layer]],
    opts: SweepOptions | None = None,
    *,
    command: str | None = None,
    calibration: dict[str, Any] | None = None,
    table: str = "layers",
    repeat: int = 1,
) -> int:
    """Measure ``(source, layer)`` pairs alone into ``<folder>/<table>.csv``.

    Args:
        folder: Dataset folder.
        device: Opened device.
        layers: ``(source, layer)`` pairs, e.g. from :func:`sample_layers` / :func:`zoo_layers`.
        opts: Measurement options.
        command: Command line recorded in the provenance.
        calibration: Output of :func:`calibrate` recorded in the provenance.
        table: Table name (``"repeats"`` for the repeatability study).
        repeat: Measure each layer this many times (rows keyed ``<key>#r<i>``), the
            repetitions of one layer spread through the sweep rather than back to back.

    Returns:
        Rows written by this call (rows already present are skipped).
    """
    opts = opts or SweepOptions()
    folder = Path(folder)
    begun = begin_run(folder, device, opts, command, calibration, "layers")
    out = AppendTable(folder / f"{table}.csv", LAYER_COLUMNS)
    db = torch.empty((), dtype=DTYPES[opts.dtype]).element_size()
    todo = []
    for rep in range(repeat):
        for source, layer in layers:
            layer = layer.with_dtype_bytes(db)
            fixed = {"source": source, "dtype": opts.dtype, **layer.to_row()}
            key = layer_key(layer, opts.dtype) + (f"#r{rep}" if repeat > 1 else "")
            todo.append((key, fixed, lambda layer=layer: measure_layer(layer, device, opts)))
    with logged_run(folder, begun, table) as log:
        return run_rows(out, todo, device, opts, f"{table} {opts.dtype}", log)


def sweep_networks(
    folder: str | Path,
    device: Device,
    networks: Sequence[str],
    batches: Sequence[int],
    opts: SweepOptions | None = None,
    *,
    command: str | None = None,
    calibration: dict[str, Any] | None = None,
) -> int:
    """Measure whole zoo networks into ``<folder>/nets.csv`` (with eager power too); returns rows written."""
    # A network's energy is reported both ways: graph replay (the GPU's own cost) and
    # eager launches (what a PyTorch user pays, host gaps included).
    opts = replace(opts or SweepOptions(), eager_power=True)
    folder = Path(folder)
    begun = begin_run(folder, device, opts, command, calibration, "nets")
    table = AppendTable(folder / "nets.csv", NET_COLUMNS)
    todo = []
    for name in networks:
        zoo.input_shape(name)  # unknown name → error before anything runs
        for b in batches:
            tot = zoo.describe_net(name, b, weights=False).totals()
            fixed = {
                "network": name,
                "batch": b,
                "dtype": opts.dtype,
                "layers": int(tot["layers"]),
                "params": tot["params"],
                "macs": tot["macs"],
                "flops": tot["flops"],
                "activation_bytes": tot["activation_bytes"],
            }
            todo.append(
                (
                    f"{name}|{b}|{opts.dtype}",
                    fixed,
                    lambda name=name, b=b: measure_network(name, b, device, opts),
                )
            )
    with logged_run(folder, begun, "nets") as log:
        return run_rows(table, todo, device, opts, f"nets {opts.dtype}", log)


def sweep_net_layers(
    folder: str | Path,
    device: Device,
    networks: Sequence[str],
    batches: Sequence[int],
    opts: SweepOptions | None = None,
    *,
    command: str | None = None,
    calibration: dict[str, Any] | None = None,
) -> int:
    """Time every layer of each zoo network in place into ``<folder>/net_layers.csv``.

    Each layer runs with its real input shapes and the network's own weights (through
    :meth:`hwml.describe.Network.runnable`). Returns rows written.
    """
    opts = opts or SweepOptions()
    folder = Path(folder)
    begun = begin_run(folder, device, opts, command, calibration, "net_layers")
    table = AppendTable(folder / "net_layers.csv", NET_LAYER_COLUMNS)
    done = table.done_keys()
    db = torch.empty((), dtype=DTYPES[opts.dtype]).element_size()
    with logged_run(folder, begun, "net_layers") as log:
        for name in networks:
            for b in batches:
                prefix = f"{name}|{b}|{opts.dtype}|"
                desc = zoo.describe_net(name, b, dtype_bytes=db, weights=False)
                if all(prefix + layer.name in done for layer in desc):
                    continue
                net = zoo.describe_net(name, b, dtype_bytes=db)
                assert net.graph_module is not None
                net.graph_module.to(device.torch_device, DTYPES[opts.dtype])
                todo = []
                for idx, layer in enumerate(net):
                    fixed = {"network": name, "index": idx, "dtype": opts.dtype, **layer.to_row()}
                    todo.append(
                        (
                            prefix + layer.name,
                            fixed,
                            lambda layer=layer, net=net: measure_layer(
                                layer, device, opts, module=net.runnable(layer.name)
                            ),
                        )
                    )
                run_rows(table, todo, device, opts, f"{name} b{b} {opts.dtype}", log)
                device.reset_peak_memory()
    return log.rows_written


def write_dataset_readme(folder: str | Path) -> Path:
    """(Re)write the dataset README from its provenance and the column documentation."""
    from hwml.data import read_provenance

    folder = Path(folder)
    prov = read_provenance(folder)
    device = prov.get("gpu_name") or prov.get("device_name") or "unknown device"
    header = ""
    for table in ("layers", "nets", "net_layers"):
        if (folder / f"{table}.csv").exists():
            header = (folder / f"{table}.csv").open().readline()
            break
    timer = "CUDA events" if prov.get("dataset_kind") == "gpu" else "a monotonic clock"
    if "busy_fraction" in header:
        method = f"""Method: each row is timed eagerly with {timer} after warm-up (median of the
repeats, with the 10th/90th percentiles and the coefficient of variation); on a GPU also
replayed from a CUDA graph (GPU runtime) and issued once into an empty queue (host
dispatch). Energy comes from NVML's total-energy counter, read by a background thread
while the GPU's queue is kept full of CUDA-graph replays (eager launches where the
workload cannot be captured, see `power_mode`): the window runs between two observed
counter updates; power = ΔE/Δt and energy per call = ΔE / calls completed in that window.
CUDA events give the window's busy fraction; rows under 0.95 are `low_busy`. Networks
also get a window of eager launches (`eager_*`)."""
    else:
        method = f"""Method (the earlier meter): each row is timed with {timer} after warm-up.
Power is the average over a window that starts and ends on updates of NVML's total-energy
counter, read between chunks of about a millisecond of work; energy per call is power x
median runtime. (Those reads kept the GPU idle for much of the window: see this folder's
notes.)"""
    description = f"""
Measurements of layers and networks on **{device}**, made with `hwml profile` (hwml
{prov.get("runs", [{}])[-1].get("hwml", __version__) if prov.get("runs") else __version__}).
The run log below lists every command that wrote rows here.

{method} Memory is PyTorch's peak allocation while the row was measured. Rows are
appended as they are measured and never edited; a configuration that ran out of memory
keeps `status = oom`.
"""
    return write_readme(folder, f"Dataset: {device}", description, column_docs(), prov)
