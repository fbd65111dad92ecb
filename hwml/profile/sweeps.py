"""The sweeps: many measurements appended to a dataset folder's tables, resumably.

* :func:`sweep_layers` → ``layers.csv`` (or ``repeats.csv``);
* :func:`sweep_networks` → ``nets.csv``;
* :func:`sweep_net_layers` → ``net_layers.csv``.

Each run is logged in ``provenance.json`` (:func:`begin_run`, :func:`logged_run`),
holds a lock per table and shard, skips the rows already measured, and records a failed
row (:func:`failed_measurement`) instead of stopping.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hwml import __version__, zoo
from hwml.cluster import Cluster
from hwml.data import AppendTable, RunLog, now_iso, run_header, write_readme
from hwml.describe import Layer
from hwml.hardware import Device
from hwml.profile.columns import (
    DTYPES,
    LAYER_COLUMNS,
    NET_COLUMNS,
    NET_LAYER_COLUMNS,
    column_docs,
)
from hwml.profile.configs import SweepOptions, layer_key
from hwml.profile.measure import measure_layer, measure_network

__all__ = [
    "begin_run",
    "failed_measurement",
    "logged_run",
    "measure_task",
    "run_rows",
    "sweep_layers",
    "sweep_net_layers",
    "sweep_networks",
    "worker_device",
    "write_dataset_readme",
]


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


_DEVICES: dict[tuple[str, bool], Device] = {}


def worker_device(kind: str, power: bool) -> Device:
    """The device of this process (a cluster worker, or the driver), opened once.

    Args:
        kind: ``"cuda"``, ``"cuda:N"`` or ``"cpu"``; a worker of a local cluster sees only
            its own GPU (``CUDA_VISIBLE_DEVICES``), so ``"cuda"`` is that GPU.
        power: open the energy meter.
    """
    from hwml.hardware import open_device

    key = (str(kind), bool(power))
    if key not in _DEVICES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no meter: said by the driver
            _DEVICES[key] = open_device(kind, power=power)
    return _DEVICES[key]


def measure_task(
    measure: Callable[[Device], dict[str, Any]], kind: str, power: bool, what: str
) -> dict[str, Any]:
    """One row's measured columns where the task runs (a worker, or this process).

    Args:
        measure: ``device -> columns`` (a module-level function or a partial of one).
        kind: the device kind to open there (:func:`worker_device`).
        power: open the energy meter.
        what: the row, named in a warning if the measurement fails.

    Returns:
        ``timestamp``, ``gpu_uuid`` and the measured columns, or the ``status`` and
        ``error`` of a failed measurement (:func:`failed_measurement`).
    """
    device = worker_device(kind, power)
    fields: dict[str, Any] = {"timestamp": now_iso(), "gpu_uuid": device.info.get("gpu_uuid")}
    try:
        fields.update(measure(device))
    except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
        fields.update(failed_measurement(err, device, what))
    return fields


def run_rows(
    table: AppendTable,
    todo: list[tuple[str, dict[str, Any], Callable[[Device], dict]]],
    device: Device,
    opts: SweepOptions,
    desc: str,
    log: RunLog,
    cluster: Cluster | None = None,
) -> int:
    """Measure pending rows of ``todo`` ((key, fixed columns, measure)) into ``table``.

    ``measure(device)`` returns a row's measured columns. In this process (no
    ``cluster``, or one that runs in process) it gets ``device``; on a cluster each row is
    a task, ``measure`` is sent to a worker (so it must be picklable: a module-level
    function or a partial of one) and called with the worker's own device
    (:func:`worker_device`, the same kind as ``device``), and the rows come back in the
    order they finish. This process alone appends them, each as it arrives, so a stop
    loses only the rows in flight. A row whose task killed its workers is written with
    ``status = error`` and the reason (``KilledWorker``); ``--retry-failed`` measures it
    again.

    A shard takes every n-th row of the *whole* list and then skips the rows already in
    the table. (Skipping first and sharding the rest would make the shares depend on
    when each process read the table: processes that start a moment apart would then
    measure some rows twice and others never.)
    """
    done = table.done_keys(retry_failed=opts.retry_failed)
    i, n = opts.shard
    pending = [item for item in todo[i::n] if item[0] not in done]
    bar = tqdm(
        total=len(pending),
        desc=desc,
        unit="row",
        disable=not opts.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    written = 0

    def write(key: str, fixed: dict[str, Any], fields: dict[str, Any]) -> None:
        nonlocal written
        table.append({"key": key, **fixed, **fields, "run_id": log.run["run_id"]})
        log.row()
        written += 1
        bar.update(1)

    try:
        if cluster is None or cluster.in_process:
            for key, fixed, measure in pending:
                row: dict[str, Any] = {
                    "timestamp": now_iso(),
                    "gpu_uuid": device.info.get("gpu_uuid"),
                }
                try:
                    row.update(measure(device))
                except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
                    row.update(failed_measurement(err, device, f"{desc} {key}"))
                write(key, fixed, row)
        else:
            kind = device.torch_device.type
            fixed_of = {key: fixed for key, fixed, _ in pending}
            items = [
                (key, (measure, kind, opts.power, f"{desc} {key}")) for key, _, measure in pending
            ]
            for res in cluster.map_unordered(measure_task, items):
                fields = (
                    res.value
                    if res.ok
                    else {
                        "timestamp": now_iso(),
                        "status": "error",
                        "error": res.error[:200],
                    }
                )
                write(res.key, fixed_of[res.key], fields)
    finally:
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
        **run_header(kind, command, device.info.get("git_commit"), opts.shard),
        "dtype": opts.dtype,
        **device.run_facts(),
        "power_periods": opts.periods if opts.power else None,
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
    cluster: Cluster | None = None,
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
        cluster: where the rows are measured (:func:`hwml.cluster.open_cluster`); None:
            in this process on ``device``.

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
            todo.append((key, fixed, partial(_layer_job, layer, opts)))
    with logged_run(folder, _with_cluster(begun, cluster), table) as log:
        return run_rows(out, todo, device, opts, f"{table} {opts.dtype}", log, cluster)


def sweep_networks(
    folder: str | Path,
    device: Device,
    networks: Sequence[str],
    batches: Sequence[int],
    opts: SweepOptions | None = None,
    *,
    command: str | None = None,
    calibration: dict[str, Any] | None = None,
    sample_shape: Sequence[int] | None = None,
    cluster: Cluster | None = None,
) -> int:
    """Measure whole networks into ``<folder>/nets.csv`` (with eager power too); returns rows
    written. ``networks`` are specs (:func:`hwml.zoo.entry`); ``sample_shape`` is one
    input's shape without the batch, for ``package.module:callable`` specs; ``cluster``
    as for :func:`sweep_layers`."""
    # A network's energy is reported both ways: graph replay (the GPU's own cost) and
    # eager launches (what a PyTorch user pays, host gaps included).
    opts = replace(opts or SweepOptions(), eager_power=True)
    folder = Path(folder)
    begun = begin_run(folder, device, opts, command, calibration, "nets")
    table = AppendTable(folder / "nets.csv", NET_COLUMNS)
    todo = []
    for name in networks:
        zoo.input_shape(name, 1, sample_shape)  # unknown name → error before anything runs
        for b in batches:
            fixed = {"network": name, "batch": b, "dtype": opts.dtype}
            todo.append(
                (
                    f"{name}|{b}|{opts.dtype}",
                    fixed,
                    partial(_network_job, name, b, sample_shape, opts),
                )
            )
    with logged_run(folder, _with_cluster(begun, cluster), "nets") as log:
        return run_rows(table, todo, device, opts, f"nets {opts.dtype}", log, cluster)


def _layer_job(layer: Layer, opts: SweepOptions, device: Device) -> dict[str, Any]:
    """A ``layers.csv`` row's measurement (a task: picklable, device given last)."""
    return measure_layer(layer, device, opts)


def _network_job(
    name: str, batch: int, sample_shape: Sequence[int] | None, opts: SweepOptions, device: Device
) -> dict[str, Any]:
    """A ``nets.csv`` row's totals and measurement (a task: picklable, device given last)."""
    return {
        **network_totals(name, batch, sample_shape),
        **measure_network(name, batch, device, opts, sample_shape),
    }


def _with_cluster(begun: dict[str, Any], cluster: Cluster | None) -> dict[str, Any]:
    """A run's log entry with where its rows were measured."""
    if cluster is None:
        return begun
    return {**begun, "run": {**begun["run"], **cluster.facts()}}


def network_totals(
    name: str, batch: int, sample_shape: Sequence[int] | None = None
) -> dict[str, Any]:
    """The analytical columns of a ``nets.csv`` row (layers, params, MACs, FLOPs, bytes).

    Computed only for the rows a sweep measures (describing a large network takes a
    moment). A network that :func:`hwml.describe.describe` cannot describe strictly gets
    NaN here and is still measured: its features can be recomputed from its name later.
    """
    nan = float("nan")
    try:
        tot = zoo.describe_net(name, batch, weights=False, sample_shape=sample_shape).totals()
    except (ValueError, RuntimeError) as err:  # UnsupportedLayerError is a ValueError
        warnings.warn(f"{name}: totals left empty ({str(err)[:160]})", RuntimeWarning, stacklevel=2)
        tot = {}
    return {
        "layers": int(tot["layers"]) if tot else nan,
        **{k: tot.get(k, nan) for k in ("params", "macs", "flops", "activation_bytes")},
    }


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
    :meth:`hwml.describe.Network.runnable`), always in this process on ``device`` (the
    network is built once for all of its layers). Returns rows written.
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
                            lambda dev, layer=layer, net=net: measure_layer(
                                layer, dev, opts, module=net.runnable(layer.name)
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

{method} Memory is PyTorch's peak allocation for the workload in eager calls. Rows are
appended as they are measured and never edited; a configuration that ran out of memory
keeps `status = oom`.
"""
    return write_readme(folder, f"Dataset: {device}", description, column_docs(), prov)
