"""The energy meter checked against two independent references on the same workloads.

A meter that agrees with itself can still be wrong, so every workload here is measured
three ways, one right after the other on the same GPU:

* **hwml**: the profiler's own row (:func:`hwml.profile.measure_callable`): energy per
  call from a window of CUDA-graph replays, and from a window of eager launches;
* **sustained loop** (:func:`sustained_energy`): the workload launched back to back for
  at least ``seconds`` (3 s by default), with exactly two reads of the energy counter,
  one before the loop and one after the final synchronisation; energy per call =
  ΔE / calls. It is deliberately written without anything from the meter it checks
  (no poller, no markers, no windows aligned to counter updates), once with eager
  launches and once with graph replays;
* **Zeus** (:func:`zeus_energy`): the ``zeus-ml`` library's ``ZeusMonitor`` window
  around the same kind of eager loop. Zeus is optional: without it that column is empty.

The counter updates about every 100 ms, so each two-read loop carries up to one period
of staleness at either end: over 3 s that is a few per cent of noise in the reference
itself, which is why its windows are long.

The workloads are ≥ 40 single layers chosen from a measured dataset so that their
runtimes span the range the dataset covers (10 µs to 10 ms), and the zoo networks at
several batch sizes. Rows go to ``validation.csv`` of a dataset folder, appended and
resumable like every sweep; :func:`agreement` summarises them.

Units: ms, s, W, mJ.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hwml import zoo
from hwml.cluster import Cluster
from hwml.data import AppendTable
from hwml.describe import Layer
from hwml.hardware import Device, DeviceUnavailableError, GraphCaptureError
from hwml.profile import (
    DTYPES,
    SweepOptions,
    begin_run,
    layer_key,
    logged_run,
    measure_callable,
    model_inputs,
    run_rows,
)

__all__ = [
    "VALIDATION_COLUMNS",
    "METHODS",
    "pick_layers",
    "sustained_energy",
    "zeus_energy",
    "validate_callable",
    "sweep_validation",
    "COMPARISONS",
    "agreement",
    "summary",
]

#: Energy-per-call columns compared (``<method>_energy_mj``); the first two are hwml's.
METHODS: tuple[str, ...] = ("hwml_graph", "hwml_eager", "loop_graph", "loop_eager", "zeus_eager")

#: Columns of hwml's own row copied into a validation row as they are.
_FROM_ROW: tuple[str, ...] = (
    "runtime_ms",
    "runtime_graph_ms",
    "host_dispatch_ms",
    "graph_calls",
    "busy_fraction",
    "eager_busy_fraction",
)

VALIDATION_COLUMNS: list[str] = [
    "key",
    "workload",
    "kind",
    "network",
    "batch",
    "dtype",
    "flops",
    *_FROM_ROW,
    "hwml_window_s",
    *[f"{m}_energy_mj" for m in METHODS],
    *[f"{m}_power_w" for m in METHODS],
    "loop_eager_s",
    "loop_graph_s",
    "zeus_eager_s",
    "hwml_status",
    "gpu_uuid",
    "run_id",
    "status",
    "error",
    "timestamp",
]


def pick_layers(layers: pd.DataFrame, n: int = 40, seed: int = 0) -> list[tuple[str, Layer]]:
    """``n`` measured layers whose eager runtimes spread evenly over a log scale.

    Args:
        layers: A ``layers.csv`` table (features and ``runtime_ms``).
        n: How many layers.
        seed: Which layer of each runtime bin (and of each kind) is taken.

    Returns:
        ``(label, layer)`` pairs, the label naming the kind and the old runtime.
    """
    rows = layers[(layers["status"] == "ok") & (layers["dtype"] == "float32")]
    rows = rows[rows["runtime_ms"] > 0].copy()
    rows["bin"] = pd.cut(np.log10(rows["runtime_ms"]), bins=n, labels=False)
    rng = np.random.default_rng(seed)
    picked = []
    for _, group in rows.groupby("bin"):
        picked.append(group.iloc[int(rng.integers(len(group)))])
    # Sparse bins at the extremes leave fewer than n: fill from the densest bins.
    rest = rows.drop(index=[p.name for p in picked])
    if len(picked) < n and len(rest):
        extra = rest.sample(n=min(n - len(picked), len(rest)), random_state=seed)
        picked += [r for _, r in extra.iterrows()]
    out = []
    for r in sorted(picked, key=lambda r: r["runtime_ms"]):
        layer = Layer.from_row({**r.to_dict(), "name": "", "inputs": ""})
        out.append((f"{layer.kind}", layer))
    return out


def sustained_energy(
    launch: Callable[[], Any], device: Device, *, seconds: float = 3.0, calls_per_launch: int = 1
) -> dict[str, float]:
    """Energy per call from a long back-to-back loop and two counter reads.

    The loop's length is sized from a timed burst after the caller's warm-up; the counter
    is read once before the first launch and once after the final synchronisation.

    Returns:
        ``energy_mj`` (per call), ``power_w`` (ΔE over the loop's wall time), ``seconds``.
    """
    read = lambda: device.nvml.nvmlDeviceGetTotalEnergyConsumption(device.handle)  # noqa: E731
    device.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        launch()
    device.synchronize()
    per_launch_s = max((time.perf_counter() - t0) / 5, 1e-6)
    n = max(10, math.ceil(seconds / per_launch_s))
    e0, t0 = read(), time.perf_counter()
    for _ in range(n):
        launch()
    device.synchronize()
    t1, e1 = time.perf_counter(), read()
    calls = n * calls_per_launch
    return {
        "energy_mj": (e1 - e0) / calls,
        "power_w": (e1 - e0) / 1000.0 / (t1 - t0),
        "seconds": t1 - t0,
    }


_ZEUS: dict[str, Any] = {}


def zeus_energy(
    launch: Callable[[], Any], device: Device, *, seconds: float = 3.0
) -> dict[str, float]:
    """Energy per call of an eager loop measured by a ``zeus.monitor.ZeusMonitor`` window.

    Returns:
        ``energy_mj``, ``power_w``, ``seconds`` (all NaN when ``zeus-ml`` is missing).
    """
    try:
        from zeus.monitor import ZeusMonitor
    except ImportError:
        return {"energy_mj": math.nan, "power_w": math.nan, "seconds": math.nan}
    index = device.torch_device.index or 0
    if "monitor" not in _ZEUS:
        _ZEUS["monitor"] = ZeusMonitor(gpu_indices=[index])
    monitor = _ZEUS["monitor"]
    device.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        launch()
    device.synchronize()
    n = max(10, math.ceil(seconds / max((time.perf_counter() - t0) / 5, 1e-6)))
    monitor.begin_window("hwml")
    for _ in range(n):
        launch()
    m = monitor.end_window("hwml")
    joules = m.gpu_energy[index]
    return {"energy_mj": joules * 1000.0 / n, "power_w": joules / m.time, "seconds": m.time}


def validate_callable(
    fn: Callable[[], Any], device: Device, opts: SweepOptions, *, seconds: float = 3.0
) -> dict[str, Any]:
    """hwml's row and the references for one warmed-up workload ``fn`` (see module doc)."""
    opts = replace(opts, power=True, graph=True, eager_power=True)
    for _ in range(20):  # cuDNN autotunes a new shape on its first calls
        fn()
    row = measure_callable(fn, device, opts)
    out: dict[str, Any] = {"status": "ok", **{k: row.get(k) for k in _FROM_ROW}}
    out.update(
        hwml_status=row.get("status"),
        hwml_window_s=row.get("power_window_s"),
        hwml_graph_energy_mj=row.get("energy_mj") if row.get("power_mode") == "graph" else None,
        hwml_graph_power_w=row.get("power_w") if row.get("power_mode") == "graph" else None,
        hwml_eager_energy_mj=row.get("eager_energy_mj"),
        hwml_eager_power_w=row.get("eager_power_w"),
    )
    loop = sustained_energy(fn, device, seconds=seconds)
    out.update(
        loop_eager_energy_mj=loop["energy_mj"],
        loop_eager_power_w=loop["power_w"],
        loop_eager_s=loop["seconds"],
    )
    zeus = zeus_energy(fn, device, seconds=seconds)
    out.update(
        zeus_eager_energy_mj=zeus["energy_mj"],
        zeus_eager_power_w=zeus["power_w"],
        zeus_eager_s=zeus["seconds"],
    )
    calls = row.get("graph_calls")
    if calls:
        try:
            graph = device.timer.capture(fn, int(calls))
            ref = sustained_energy(graph.replay, device, seconds=seconds, calls_per_launch=calls)
            out.update(
                loop_graph_energy_mj=ref["energy_mj"],
                loop_graph_power_w=ref["power_w"],
                loop_graph_s=ref["seconds"],
            )
            del graph
        except GraphCaptureError:
            pass
    return out


def sweep_validation(
    folder: str | Path,
    device: Device,
    layers: Sequence[tuple[str, Layer]],
    networks: Sequence[str],
    batches: Sequence[int],
    opts: SweepOptions | None = None,
    *,
    seconds: float = 3.0,
    command: str | None = None,
    calibration: dict[str, Any] | None = None,
    cluster: Cluster | None = None,
) -> int:
    """Validate the meter on ``layers`` and on ``networks`` x ``batches`` into ``validation.csv``.

    Resumable, shardable and distributable (``cluster``) like the profiler's sweeps.
    Returns rows written.
    """
    if not device.is_cuda or not device.meter.available:
        raise DeviceUnavailableError("the validation needs a GPU with NVML's energy counter")
    opts = opts or SweepOptions()
    folder = Path(folder)
    dtype = DTYPES[opts.dtype]
    begun = begin_run(folder, device, opts, command, calibration, "validation")
    table = AppendTable(folder / "validation.csv", VALIDATION_COLUMNS)
    todo: list[tuple[str, dict[str, Any], Callable[[Device], dict]]] = []
    for label, layer in layers:
        layer = layer.with_dtype_bytes(torch.empty((), dtype=dtype).element_size())
        fixed = {
            "workload": label,
            "kind": "layer",
            "batch": layer.batch,
            "dtype": opts.dtype,
            "flops": layer.flops,
        }
        todo.append(
            (
                "layer|" + layer_key(layer, opts.dtype),
                fixed,
                partial(_validate_layer, layer, opts, seconds),
            )
        )
    for name in networks:
        for b in batches:
            flops = zoo.describe_net(name, b, weights=False).totals()["flops"]
            fixed = {
                "workload": f"{name} b{b}",
                "kind": "network",
                "network": name,
                "batch": b,
                "dtype": opts.dtype,
                "flops": flops,
            }
            todo.append(
                (
                    f"net|{name}|{b}|{opts.dtype}",
                    fixed,
                    partial(_validate_net, name, b, opts, seconds),
                )
            )
    if cluster is not None:
        begun = {**begun, "run": {**begun["run"], **cluster.facts()}}
    with logged_run(folder, begun, "validation") as log:
        return run_rows(table, todo, device, opts, f"validation {opts.dtype}", log, cluster)


def _validate_layer(
    layer: Layer, opts: SweepOptions, seconds: float, device: Device
) -> dict[str, Any]:
    """A layer's validation row (a task: picklable, device given last)."""
    dtype = DTYPES[opts.dtype]
    mod = layer.to_module().to(device.torch_device, dtype)
    xs = model_inputs(layer.in_shapes, device, dtype)
    with torch.inference_mode():
        return validate_callable(lambda: mod(*xs), device, opts, seconds=seconds)


def _validate_net(
    name: str, batch: int, opts: SweepOptions, seconds: float, device: Device
) -> dict[str, Any]:
    """A network's validation row (a task: picklable, device given last)."""
    dtype = DTYPES[opts.dtype]
    module = zoo.get(name).to(device.torch_device, dtype)
    x = model_inputs([zoo.input_shape(name, batch)], device, dtype)[0]
    with torch.inference_mode():
        return validate_callable(lambda: module(x), device, opts, seconds=seconds)


#: Agreement columns of :func:`agreement`: (name, method, reference method).
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("hwml_eager_vs_loop_pct", "hwml_eager", "loop_eager"),
    ("hwml_graph_vs_loop_pct", "hwml_graph", "loop_graph"),
    ("zeus_vs_loop_pct", "zeus_eager", "loop_eager"),
)


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Relative disagreement of each method with the sustained loop of the same mode.

    Args:
        table: ``validation.csv``.

    Returns:
        One row per measured workload: ``workload``, ``kind``, ``batch``, ``runtime_ms``
        and, per entry of :data:`COMPARISONS`, 100 x (method / reference - 1) in per cent.
    """
    rows = table[table["status"] == "ok"]
    out = rows[["workload", "kind", "batch", "runtime_ms"]].copy()
    for name, method, ref in COMPARISONS:
        out[name] = 100 * (rows[f"{method}_energy_mj"] / rows[f"{ref}_energy_mj"] - 1)
    return out.reset_index(drop=True)


def summary(table: pd.DataFrame, *, min_busy: float = 0.95) -> pd.DataFrame:
    """How far each method is from the sustained loop, per group of workloads.

    Groups: all layers, then the networks at each batch size. For the eager comparisons
    a further split separates workloads the GPU was busy with for at least ``min_busy``
    of the eager window from host-bound ones (eager energy per call then depends on how
    fast the host issues calls, which varies from one run to the next).

    Returns:
        One row per (comparison, group): ``comparison``, ``group``, ``rows``,
        ``median_abs_pct``, ``p90_abs_pct`` and ``within_5_pct`` (share of rows, %).
    """
    rows = table[table[[f"{m}_energy_mj" for m in METHODS[:4]]].notna().all(axis=1)]
    diff = agreement(rows.assign(status="ok"))
    diff["group"] = np.where(
        diff["kind"] == "layer", "layers", "networks, batch " + diff["batch"].astype(str)
    )
    diff["busy"] = np.where(
        rows["eager_busy_fraction"].to_numpy() >= min_busy, "GPU-bound", "host-bound"
    )
    out = []
    for name, _, _ in COMPARISONS:
        parts = [("all", diff)]
        parts += [(g, d) for g, d in diff.groupby("group", sort=False)]
        if "eager" in name or "zeus" in name:
            parts += [(f"all, {b}", d) for b, d in diff.groupby("busy")]
        for group, d in parts:
            x = d[name].abs().dropna()
            out.append(
                {
                    "comparison": name,
                    "group": group,
                    "rows": len(x),
                    "median_abs_pct": x.median(),
                    "p90_abs_pct": x.quantile(0.9),
                    "within_5_pct": 100 * (x <= 5).mean(),
                }
            )
    return pd.DataFrame(out)
