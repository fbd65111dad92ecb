"""A tabular benchmark of HyperPower's CNN: every configuration trained and measured once.

Comparing search methods (HW-IECI, hardware-unaware BO, random search, GA) needs many
seeds per method, and every seed would train dozens of networks. Instead, a finite set
of configurations is measured once on the GPU, committed under ``data/``, and every
method then searches that table with :class:`hwml.optimize.TabularObjective` on any
machine (the survey's Figure 4: best error against evaluations).

The benchmark is built in two phases, so that power is never measured while something
else runs on the same GPU:

(a) :func:`measure_structures` -> ``structures.csv``: a seeded set of distinct
    structural configurations ``z`` (filters, kernel size, dense units), each measured
    alone at a fixed inference batch: runtime, average power over a window aligned to the
    NVML energy counter, energy per image and peak memory (reset before each row), with
    the size features of :func:`hwml.objectives.structural_features`. This is HyperPower's
    offline profiling, the training set of its linear power and memory models.
(b) :func:`train_configs` -> ``configs.csv``: a few thousand full configurations, each one
    structure of (a) with sampled learning rate, momentum and weight decay, trained once
    (:func:`hwml.objectives.train_cnn`): test error, training time, status. Several
    trainings share a GPU (``workers_per_gpu`` processes pulling from one queue); each
    appends its rows to the same table.

Both phases are resumable (a rerun skips the keys already in the table), shardable across
GPUs (``shard=(i, n)``: process ``i`` of ``n`` owns every ``n``-th row of the list, so a
shard rerun after a crash resumes exactly its own rows), record
provenance (device, software, command, date, commit, image size, batch, epochs) and
write the folder's README. :func:`load_benchmark` joins the two tables and
:func:`benchmark_objective` wraps the result for :func:`hwml.optimize.minimize`.

Which configurations: structure ``j`` of (a) is the ``j``-th distinct draw from the
structural dimensions of the space (uniform per dimension) with ``structure_seed``;
configuration ``i`` of (b) uses structure ``perm_r[i mod S]`` where ``perm_r`` is a seeded
permutation of the ``S`` structures for round ``r = i div S`` (so every structure is trained
about equally often), and its training hyper-parameters come from a generator seeded by
``(seed, i)``, rounded to four significant digits. Lists are prefix-stable: asking for
more configurations later extends the same sequence.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from hwml import __version__
from hwml.data import (
    AppendTable,
    DatasetError,
    RunLog,
    dataset_path,
    now_iso,
    provenance_lock,
    read_provenance,
    update_provenance,
    write_readme,
)
from hwml.data import git_commit as _git_commit
from hwml.hardware import Device, cudnn_autotune, open_device, use_device
from hwml.objectives import (
    STRUCTURAL,
    TRAINING,
    StructuralModel,
    cnn_space,
    fit_hardware_models,
    hardware_constraints,
    load_data,
    measure_inference,
    structural_features,
    train_cnn,
)
from hwml.optimize import (
    Constraint,
    SearchSettings,
    Space,
    TabularObjective,
    best_so_far,
    derive_seed,
    read_history,
    run_searches,
    tolerance_sweep,
)

__all__ = [
    "CONFIG_COLUMNS",
    "DATASET_CHANNELS",
    "STRUCTURE_COLUMNS",
    "HyperPowerProblem",
    "benchmark_objective",
    "benchmark_space",
    "budget_sweep",
    "budget_level",
    "live_best_so_far",
    "column_docs",
    "hyperpower_problem",
    "load_benchmark",
    "load_live_runs",
    "measure_structures",
    "quantile_budgets",
    "sample_configs",
    "sample_structures",
    "summarize_benchmark",
    "train_configs",
]

DATASET_CHANNELS: dict[str, int] = {"digits": 1, "mnist": 1, "cifar10": 3}
"""Input channels of each data set of :func:`hwml.objectives.load_data`."""

_IDENTITY = (
    "gpu_name",
    "benchmark",
    "dataset",
    "image_size",
    "in_channels",
    "space",
    "n_structures",
    "structure_seed",
    "inference_batch",
    "epochs",
    "train_batch_size",
    "config_seed",
)
"""Provenance facts that must not change within a benchmark folder."""

_DIM_DOCS: dict[str, tuple[str, str]] = {
    "conv1_filters": ("count", "output channels of the first convolution"),
    "conv2_filters": ("count", "output channels of the second convolution"),
    "kernel_size": ("px", "kernel side of both convolutions"),
    "dense_units": ("count", "units of the hidden dense layer"),
    "learning_rate": ("1", "SGD learning rate at the start of the cosine decay"),
    "momentum": ("1", "SGD momentum"),
    "weight_decay": ("1", "L2 weight decay (SGD, every parameter)"),
}

_STRUCTURE_DOCS: dict[str, tuple[str, str]] = {
    "key": ("-", "structure identity `conv1-conv2-kernel-dense`, used to resume and to join"),
    **{c: _DIM_DOCS[c] for c in STRUCTURAL},
    "in_channels": ("count", "input channels"),
    "image_size": ("px", "input side (images upsampled bilinearly)"),
    "batch": ("count", "inference batch size of the measurement"),
    "params": ("count", "learnable parameters"),
    "macs": ("count", "multiply-accumulates of one forward pass of the batch"),
    "flops": ("count", "2 x macs"),
    "activation_bytes": ("bytes", "float32 bytes of every layer's output for the batch"),
    "runtime_ms": (
        "ms",
        "median time of one forward pass of the batch (CUDA events after warm-up)",
    ),
    "runtime_p10_ms": ("ms", "10th percentile of the timed passes"),
    "runtime_p90_ms": ("ms", "90th percentile of the timed passes"),
    "runtime_cv": ("1", "coefficient of variation of the timed passes"),
    "repeats": ("count", "timed passes"),
    "power_w": (
        "W",
        "average board power while passes run back to back, over a window aligned to energy-counter updates; empty if not measured",
    ),
    "power_window_s": ("s", "length of the power window"),
    "power_periods": ("count", "energy-counter updates the window spans"),
    "energy_mj": ("mJ", "energy of one forward pass of the batch: power_w x runtime_ms"),
    "energy_per_image_mj": ("mJ", "energy_mj / batch"),
    "peak_mem_bytes": (
        "bytes",
        "peak memory allocated by PyTorch during steady-state inference: weights, input, activations, cuDNN workspace (reset after a warm-up pass)",
    ),
    "used_mem_bytes": ("bytes", "device memory in use (NVML, all processes) after the measurement"),
    "sm_clock_mhz": ("MHz", "SM clock read right after the measurement"),
    "gpu_uuid": ("-", "UUID of the GPU that measured the row"),
    "status": ("-", "ok, no_power (runtime and memory measured, power not), oom, or error"),
    "error": ("-", "error message when status is oom or error"),
    "timestamp": ("-", "UTC time the row was measured"),
}

_CONFIG_DOCS: dict[str, tuple[str, str]] = {
    "key": ("-", "configuration identity `structure|learning_rate|momentum|weight_decay`"),
    "index": ("count", "position in the seeded configuration sequence"),
    "structure_key": ("-", "key of the configuration's row in structures.csv"),
    **_DIM_DOCS,
    "epochs": ("count", "training epochs"),
    "batch_size": ("count", "training batch size"),
    "image_size": ("px", "input side"),
    "train_seed": ("-", "seed of the initial weights and the batch order"),
    "test_error": (
        "1",
        "fraction of the test images misclassified after training; empty unless status is ok",
    ),
    "train_loss": ("1", "mean cross-entropy of the last epoch run"),
    "train_time_s": (
        "s",
        "wall-clock seconds to build, train and test the network (several trainings shared the GPU)",
    ),
    "epochs_run": ("count", "epochs completed (fewer when the run diverged)"),
    "status": ("-", "ok, failed (loss became NaN or infinite: diverged), oom, or error"),
    "reason": ("-", "why status is not ok"),
    "workers": ("count", "trainings sharing the GPU (workers_per_gpu)"),
    "gpu_uuid": ("-", "UUID of the GPU that trained the row"),
    "timestamp": ("-", "UTC time the row was written"),
}

STRUCTURE_COLUMNS: list[str] = list(_STRUCTURE_DOCS)
"""Columns of ``structures.csv``."""

CONFIG_COLUMNS: list[str] = list(_CONFIG_DOCS)
"""Columns of ``configs.csv``."""


def column_docs() -> dict[str, dict[str, tuple[str, str]]]:
    """``{table: {column: (unit, meaning)}}`` of the two benchmark tables."""
    return {"structures": dict(_STRUCTURE_DOCS), "configs": dict(_CONFIG_DOCS)}


# ====================================================================== configurations


def structure_key(config: Mapping[str, Any]) -> str:
    """``"conv1-conv2-kernel-dense"`` of a configuration."""
    return "-".join(str(int(config[c])) for c in STRUCTURAL)


def _subspace(space: Space, names: Iterable[str]) -> Space:
    wanted = set(names)
    return Space([d for d in space.dimensions if d.name in wanted])


def sample_structures(n: int, seed: int = 0, space: Space | None = None) -> pd.DataFrame:
    """The first ``n`` distinct structures drawn uniformly from the space's structural dims.

    Args:
        n: number of structures.
        seed: seed of the draws.
        space: the search space (default :func:`hwml.objectives.cnn_space`).

    Returns:
        Frame with ``key`` and the :data:`~hwml.objectives.STRUCTURAL` columns, ``n`` rows.

    Raises:
        ValueError: the space holds fewer than ``n`` structures.
    """
    sub = _subspace(space or cnn_space(), STRUCTURAL)
    if sub.size is not None and sub.size < n:
        raise ValueError(f"the space holds {sub.size} structures, fewer than n={n}")
    rng = np.random.default_rng(derive_seed(int(seed), 0))
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(1000):
        for row in Space.to_dicts(sub.sample(max(2 * n, 16), rng)):
            seen.setdefault(structure_key(row), row)
            if len(seen) == n:
                break
        if len(seen) >= n:
            break
    else:
        raise ValueError(f"could not draw {n} distinct structures")
    rows = [{"key": k, **{c: int(v[c]) for c in STRUCTURAL}} for k, v in seen.items()]
    return pd.DataFrame(rows[:n], columns=["key", *STRUCTURAL])


def _round_sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def sample_configs(
    n: int, seed: int = 0, structures: pd.DataFrame | None = None, space: Space | None = None
) -> pd.DataFrame:
    """The first ``n`` configurations of the seeded sequence (see the module docstring).

    Args:
        n: number of configurations.
        seed: seed of the sequence.
        structures: the structures to pair with (default ``sample_structures(400, seed)``).
        space: the search space (default :func:`hwml.objectives.cnn_space`).

    Returns:
        Frame with ``key``, ``index``, ``structure_key`` and one column per dimension of the
        space; keys are distinct.
    """
    space = space or cnn_space()
    if structures is None:
        structures = sample_structures(400, seed, space)
    s = len(structures)
    if s == 0:
        raise ValueError("no structures to pair training hyper-parameters with")
    train_dims = [d for d in space.dimensions if not d.structural]
    train_space = Space(train_dims)
    perms: dict[int, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    keys: set[str] = set()
    for i in range(int(n)):
        r = i // s
        if r not in perms:
            perms[r] = np.random.default_rng(derive_seed(int(seed), 1, r)).permutation(s)
        struct = structures.iloc[int(perms[r][i % s])]
        u = train_space.sample_unit(1, derive_seed(int(seed), 2, i))
        hp = Space.to_dicts(train_space.decode(u))[0]
        for dim in train_dims:
            if isinstance(hp[dim.name], float):
                hp[dim.name] = min(max(_round_sig(hp[dim.name]), dim.low), dim.high)  # type: ignore[attr-defined]
        key = "|".join([str(struct["key"]), *(f"{hp[d.name]:.4g}" for d in train_dims)])
        if key in keys:
            continue
        keys.add(key)
        rows.append(
            {
                "key": key,
                "index": i,
                "structure_key": struct["key"],
                **{c: int(struct[c]) for c in STRUCTURAL},
                **hp,
            }
        )
    return pd.DataFrame(rows, columns=["key", "index", "structure_key", *space.names])


# ====================================================================== provenance


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _run_facts(
    device: Device, phase: str, command: str | None, commit: str | None, shard: tuple[int, int]
) -> dict[str, Any]:
    return {
        "sweep": phase,
        "command": command or " ".join(sys.argv),
        "date": now_iso(),
        "git_commit": commit or _git_commit(),
        "hwml": __version__,
        **device.run_facts(),
        "shard": list(shard),
    }


def _record(folder: Path, facts: Mapping[str, Any]) -> None:
    update_provenance(folder, facts, identity=_IDENTITY)


def _logged(folder: Path, facts: Mapping[str, Any], run: Mapping[str, Any]) -> RunLog:
    """The run's log entry: written now, completed (and the README rewritten) at the end."""
    return RunLog(folder, facts, run, identity=_IDENTITY, on_exit=lambda: _write_readme(folder))


def _write_readme(folder: Path) -> None:
    prov = read_provenance(folder)
    device = prov.get("gpu_name") or prov.get("device_name") or "unknown device"
    description = f"""
A tabular benchmark of HyperPower's CNN (survey section 4.3) measured on **{device}** with
`hwml optimize benchmark` (hwml {__version__}); the run log below lists every command that
wrote rows here.

`structures.csv` (phase a) holds distinct structural configurations (filters, kernel size,
dense units) measured alone at inference batch {prov.get("inference_batch", "?")} on
{prov.get("image_size", "?")}x{prov.get("image_size", "?")} inputs: runtime with CUDA events
after warm-up (a monotonic clock on a CPU), average power over a window that starts and
ends on updates of NVML's total-energy counter while passes run back to back, energy per
image, and PyTorch's peak memory during steady-state inference (weights, input,
activations and cuDNN workspace; the peak is reset after a warm-up pass).

`configs.csv` (phase b) pairs those structures with sampled learning rate, momentum and
weight decay; each configuration was trained once on the `{prov.get("dataset", "digits")}`
data for {prov.get("epochs", "?")} epochs (SGD with momentum, cosine learning-rate decay,
batch {prov.get("train_batch_size", "?")}, several trainings sharing a GPU, never while
power was measured). A run whose loss became NaN or infinite has `status = failed`.
`hwml.benchmark.load_benchmark` joins the two tables on `structure_key`. Rows are appended
as they are measured and never edited.
"""
    title = f"HyperPower CNN benchmark: {device}"
    with provenance_lock(folder):  # shards finish at the same time
        write_readme(folder, title, description, column_docs(), read_provenance(folder))


def _defaults_from(prov: Mapping[str, Any], key: str, given: Any, default: Any) -> Any:
    if given is not None:
        return given
    return prov.get(key, default)


def benchmark_space(folder: str | os.PathLike[str]) -> Space:
    """The search space recorded in a benchmark folder's provenance.

    Raises:
        DatasetError: the folder has no recorded space.
    """
    prov = read_provenance(folder)
    if "space" not in prov:
        raise DatasetError(
            f"{folder}: no search space in provenance.json (not a benchmark folder?)"
        )
    return Space.from_specs(prov["space"])


def _resolve_device(device: str | Device, power: bool) -> Device:
    if isinstance(device, Device):
        return device
    return open_device(str(device), power=power)


# ====================================================================== phase (a)


def measure_structures(
    folder: str | os.PathLike[str],
    device: str | Device = "cuda",
    n_structures: int = 400,
    seed: int = 0,
    batch: int = 256,
    image_size: int = 32,
    shard: tuple[int, int] = (0, 1),
    *,
    dataset: str = "digits",
    space: Space | None = None,
    opts: Any = None,
    progress: bool = True,
    command: str | None = None,
    git_commit: str | None = None,
) -> int:
    """Phase (a): measure inference power, runtime, energy and memory of each structure.

    Args:
        folder: benchmark folder (created if missing); rows go to ``structures.csv``.
        device: device name or an opened :class:`~hwml.hardware.Device` (a name is opened
            with the energy meter unless ``opts.power`` is off).
        n_structures: structures in the benchmark (the same list in every shard).
        seed: seed of the structure list.
        batch: inference batch of the measurement.
        image_size: input side.
        shard: ``(i, n)``: measure the structures at positions ``i, i + n, i + 2n, ...``.
        dataset: data set the networks are for (sets the input channels).
        space: search space (default :func:`hwml.objectives.cnn_space`); recorded in the
            provenance, the same for every phase of a folder.
        opts: :class:`hwml.profile.SweepOptions` of each measurement (default: float32,
            power on, 3 counter periods, 100 ms of timed repeats).
        progress: show a progress bar.
        command: command line to record (default ``sys.argv``).
        git_commit: commit to record when the tree has no ``.git``.

    Returns:
        Rows written by this call (structures already in the table are skipped).

    Raises:
        DatasetError: the folder holds another device's or another setting's benchmark.
    """
    from hwml.profile import SweepOptions, failed_measurement

    opts = opts or SweepOptions(progress=progress)
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if dataset not in DATASET_CHANNELS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_CHANNELS)}")
    space = space or cnn_space()
    folder = Path(folder)
    in_channels = DATASET_CHANNELS[dataset]
    dev = _resolve_device(device, opts.power)
    facts = {
        **dev.dataset_facts(),
        "benchmark": "hyperpower-cnn",
        "dataset": dataset,
        "image_size": int(image_size),
        "in_channels": in_channels,
        "space": _json_roundtrip(space.to_specs()),
        "n_structures": int(n_structures),
        "structure_seed": int(seed),
        "inference_batch": int(batch),
        "dtype": opts.dtype,
    }
    _record(folder, facts)
    run = _run_facts(dev, "structures", command, git_commit, shard)
    run["power_periods"] = opts.periods if opts.power else None
    run["energy_meter"] = type(dev.meter).__name__
    if opts.power and dev.meter.available:
        run["counter_update_period_s"] = dev.meter.update_period_s(samples=5)
        run["idle_power_w"] = dev.meter.idle_power_w(1.0)

    table = AppendTable(folder / "structures.csv", STRUCTURE_COLUMNS)
    structures = sample_structures(int(n_structures), int(seed), space)
    feats = structural_features(
        structures, image_size=int(image_size), batch=int(batch), in_channels=in_channels
    )
    done = table.done_keys()
    todo = [j for j, key in enumerate(structures["key"]) if j % n == i and key not in done]
    bar = tqdm(
        todo,
        desc=f"structures {i}/{n}",
        unit="net",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with _logged(folder, facts, run) as log:
        for j in bar:
            config = Space.to_dicts(structures.iloc[[j]])[0]
            row: dict[str, Any] = {
                **Space.to_dicts(feats.iloc[[j]])[0],
                "key": config["key"],
                "in_channels": in_channels,
                "image_size": int(image_size),
                "batch": int(batch),
                "gpu_uuid": dev.info.get("gpu_uuid"),
                "timestamp": now_iso(),
            }
            try:
                row.update(
                    measure_inference(
                        config,
                        dev,
                        batch=int(batch),
                        image_size=int(image_size),
                        in_channels=in_channels,
                        opts=opts,
                        seed=int(seed),
                    )
                )
            except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
                row.update(failed_measurement(err, dev, f"structure {config['key']}"))
            table.append({k: v for k, v in row.items() if k in STRUCTURE_COLUMNS})
            log.row()
    bar.close()
    return log.rows_written


# ====================================================================== phase (b)


@dataclass(frozen=True)
class _TrainJob:
    """What a training worker needs (picklable)."""

    table: str
    device: str
    epochs: int
    batch_size: int
    seed: int
    image_size: int
    dataset: str
    data_root: str | None
    gpu_uuid: str | None
    workers: int
    threads: int
    cudnn_benchmark: bool | None


def _train_rows(
    job: _TrainJob, tasks: Iterable[dict[str, Any]], on_row: Callable[[dict[str, Any]], None]
) -> None:
    """Train each task's configuration and append its row to the table."""
    data = load_data(job.dataset, image_size=job.image_size, data_root=job.data_root)
    table = AppendTable(job.table, CONFIG_COLUMNS)
    # One small untimed training first: the process's first one also pays for CUDA and
    # library start-up, which would otherwise inflate one row's train_time_s.
    warm: dict[str, Any] | None = {
        "conv1_filters": 4,
        "conv2_filters": 4,
        "kernel_size": 3,
        "dense_units": 8,
        "learning_rate": 0.01,
        "momentum": 0.9,
        "weight_decay": 0.0,
    }
    for task in tasks:
        if warm is not None:
            train_cnn(warm, device=job.device, epochs=1, batch_size=job.batch_size, data=data)
            warm = None
        row: dict[str, Any] = {
            **task,
            "epochs": job.epochs,
            "batch_size": job.batch_size,
            "image_size": job.image_size,
            "train_seed": job.seed,
            "workers": job.workers,
            "gpu_uuid": job.gpu_uuid,
        }
        try:
            result = train_cnn(
                task,
                device=job.device,
                epochs=job.epochs,
                batch_size=job.batch_size,
                seed=job.seed,
                data=data,
            )
        except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
            result = {
                "status": "error",
                "reason": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
            }
        row.update({k: v for k, v in result.items() if k in CONFIG_COLUMNS})
        row["timestamp"] = now_iso()
        table.append(row)
        on_row(row)


def _setup_worker(job: _TrainJob) -> None:
    torch.set_num_threads(max(1, job.threads))
    use_device(torch.device(job.device), cudnn_benchmark=job.cudnn_benchmark)


def _worker_main(job: _TrainJob, tasks: Any, done: Any, worker: int) -> None:
    """Entry point of a training worker process: pull tasks until a ``None``."""
    try:
        _setup_worker(job)

        def pull() -> Iterable[dict[str, Any]]:
            while True:
                task = tasks.get()
                if task is None:
                    return
                yield task

        _train_rows(job, pull(), lambda row: done.put(("row", worker, row["status"])))
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        done.put(("fatal", worker, f"{type(err).__name__}: {err}"))
        raise
    done.put(("exit", worker, ""))


def _run_workers(job: _TrainJob, pending: list[dict[str, Any]], bar: Any, log: RunLog) -> int:
    ctx = mp.get_context("spawn")
    tasks, done = ctx.Queue(), ctx.Queue()
    for task in pending:
        tasks.put(task)
    for _ in range(job.workers):
        tasks.put(None)
    procs = [
        ctx.Process(target=_worker_main, args=(job, tasks, done, w), daemon=True)
        for w in range(job.workers)
    ]
    for p in procs:
        p.start()
    written, exited, fatal = 0, 0, []
    try:
        while exited < len(procs):
            try:
                kind, worker, payload = done.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    try:  # a last message may still be in the pipe
                        kind, worker, payload = done.get(timeout=1.0)
                    except queue.Empty:
                        break
                else:
                    continue
            if kind == "row":
                written += 1
                log.row()
                bar.update(1)
                bar.set_postfix_str(f"last {payload}", refresh=False)
            elif kind == "fatal":
                fatal.append(f"worker {worker}: {payload}")
                exited += 1
            else:
                exited += 1
    except BaseException:
        # stopped early: tasks nobody will take must not keep this process from exiting
        tasks.cancel_join_thread()
        raise
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    crashed = [w for w, p in enumerate(procs) if p.exitcode not in (0, None) and not fatal]
    if fatal or crashed:
        raise RuntimeError(
            "training worker(s) failed: "
            + "; ".join(fatal or [f"worker {w} exit code {procs[w].exitcode}" for w in crashed])
        )
    return written


def train_configs(
    folder: str | os.PathLike[str],
    device: str | Device = "cuda",
    n_configs: int = 2500,
    seed: int = 0,
    epochs: int = 10,
    workers_per_gpu: int = 1,
    shard: tuple[int, int] = (0, 1),
    *,
    batch_size: int = 64,
    n_structures: int | None = None,
    structure_seed: int | None = None,
    space: Space | None = None,
    image_size: int | None = None,
    dataset: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    cudnn_benchmark: bool | None = False,
    threads_per_worker: int = 1,
    progress: bool = True,
    command: str | None = None,
    git_commit: str | None = None,
) -> int:
    """Phase (b): train each configuration once and record its test error and time.

    Settings not given (``n_structures``, ``structure_seed``, ``space``, ``image_size``,
    ``dataset``) are taken from the folder's provenance, written by
    :func:`measure_structures`, so that the configurations pair with the measured
    structures; without one the defaults are used (400 structures, seed 0,
    :func:`hwml.objectives.cnn_space`, 32 px, digits).

    Args:
        folder: benchmark folder; rows go to ``configs.csv``.
        device: device the workers train on (``"cuda"``, ``"cuda:N"``, ``"cpu"``).
        n_configs: configurations in the benchmark (a prefix of the seeded sequence).
        seed: seed of the configuration sequence and of every training.
        epochs: training epochs.
        workers_per_gpu: trainings running at once on the device, one process each
            pulling from a shared queue; 1 trains in this process.
        shard: ``(i, n)``: train the configurations at positions ``i, i + n, ...``.
        batch_size: training batch size.
        n_structures: structures the configurations pair with.
        structure_seed: seed of the structure list.
        space: search space.
        image_size: input side.
        dataset: data set (see :func:`hwml.objectives.load_data`).
        data_root: folder of MNIST / CIFAR-10.
        cudnn_benchmark: set ``torch.backends.cudnn.benchmark`` in the workers (False by
            default: autotuning every new shape costs more than it saves in a few hundred
            steps); None leaves it as it is.
        threads_per_worker: CPU threads of each worker's torch.
        progress: show a progress bar.
        command: command line to record.
        git_commit: commit to record when the tree has no ``.git``.

    Returns:
        Rows written by this call.

    Raises:
        DatasetError: the folder's provenance disagrees with the settings.
        RuntimeError: a worker process died.
    """
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if workers_per_gpu < 1:
        raise ValueError(f"workers_per_gpu must be >= 1, got {workers_per_gpu}")
    folder = Path(folder)
    prov = read_provenance(folder)
    n_structures = int(_defaults_from(prov, "n_structures", n_structures, 400))
    structure_seed = int(_defaults_from(prov, "structure_seed", structure_seed, 0))
    image_size = int(_defaults_from(prov, "image_size", image_size, 32))
    dataset = str(_defaults_from(prov, "dataset", dataset, "digits"))
    if dataset not in DATASET_CHANNELS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_CHANNELS)}")
    if space is None:
        space = Space.from_specs(prov["space"]) if "space" in prov else cnn_space()
    load_data(dataset, image_size=image_size, data_root=data_root)  # fail early, clearly
    dev = _resolve_device(device, power=False)
    facts = {
        **dev.dataset_facts(),
        "benchmark": "hyperpower-cnn",
        "dataset": dataset,
        "image_size": image_size,
        "in_channels": DATASET_CHANNELS[dataset],
        "space": _json_roundtrip(space.to_specs()),
        "n_structures": n_structures,
        "structure_seed": structure_seed,
        "epochs": int(epochs),
        "train_batch_size": int(batch_size),
        "config_seed": int(seed),
    }
    _record(folder, facts)
    run = _run_facts(dev, "train", command, git_commit, shard)
    run.update(
        workers_per_gpu=int(workers_per_gpu),
        n_configs=int(n_configs),
        cudnn_benchmark_workers=cudnn_benchmark,
    )

    structures = sample_structures(n_structures, structure_seed, space)
    configs = sample_configs(int(n_configs), int(seed), structures, space)
    table = AppendTable(folder / "configs.csv", CONFIG_COLUMNS)
    done = table.done_keys()
    pending = [
        row
        for j, row in enumerate(Space.to_dicts(configs))
        if j % n == i and row["key"] not in done
    ]
    job = _TrainJob(
        table=str(folder / "configs.csv"),
        device=str(dev.torch_device),
        epochs=int(epochs),
        batch_size=int(batch_size),
        seed=int(seed),
        image_size=image_size,
        dataset=dataset,
        data_root=None if data_root is None else str(data_root),
        gpu_uuid=dev.info.get("gpu_uuid"),
        workers=int(workers_per_gpu),
        threads=int(threads_per_worker),
        cudnn_benchmark=cudnn_benchmark,
    )
    bar = tqdm(
        total=len(pending),
        desc=f"train {i}/{n} x{workers_per_gpu}",
        unit="net",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with _logged(folder, facts, run) as log:
        try:
            if workers_per_gpu == 1 or len(pending) <= 1:

                def count(row: dict[str, Any]) -> None:
                    log.row()
                    bar.update(1)

                with cudnn_autotune(cudnn_benchmark if dev.is_cuda else None):
                    _train_rows(job, pending, count)
            else:
                _run_workers(job, pending, bar, log)
        finally:
            bar.close()
    return log.rows_written


# ====================================================================== reading


def _read(folder: Path, table: str) -> pd.DataFrame:
    path = folder / f"{table}.csv"
    if not path.exists():
        raise DatasetError(
            f"{folder}: no {table}.csv (run `hwml optimize benchmark "
            f"{'structures' if table == 'structures' else 'train'}` first)"
        )
    return pd.read_csv(path)


def load_benchmark(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """One table: every trained configuration with its structure's inference measurements.

    Args:
        folder: benchmark folder holding ``configs.csv`` and ``structures.csv``.

    Returns:
        One row per configuration (a key trained twice keeps its first row): ``key``,
        ``structure_key``, the space's dimensions, ``test_error``, ``train_time_s``,
        ``status``, ``reason`` (training) and, from ``structures.csv``, ``power_w``,
        ``peak_mem_bytes``, ``runtime_ms``, ``energy_per_image_mj``, ``params``, ``flops``,
        ``activation_bytes``, ``structure_status``. Measurements of a structure that was
        never measured are NaN with ``structure_status`` empty.

    Raises:
        DatasetError: a table is missing.
    """
    folder = Path(folder)
    configs = _read(folder, "configs").drop_duplicates("key", keep="first")
    structures = _read(folder, "structures").drop_duplicates("key", keep="first")
    keep = [
        "key",
        "power_w",
        "peak_mem_bytes",
        "runtime_ms",
        "energy_per_image_mj",
        "params",
        "flops",
        "activation_bytes",
        "status",
    ]
    right = structures[keep].rename(columns={"key": "structure_key", "status": "structure_status"})
    cols = [
        "key",
        "structure_key",
        *STRUCTURAL,
        *TRAINING,
        "test_error",
        "train_loss",
        "train_time_s",
        "status",
        "reason",
    ]
    extra = [c for c in configs.columns if c not in cols and c not in CONFIG_COLUMNS]
    left = configs[[c for c in cols if c in configs.columns] + extra]
    out = left.merge(right, on="structure_key", how="left", validate="many_to_one")
    for col in ("reason", "structure_status"):  # empty cells read as NaN
        out[col] = [v if isinstance(v, str) else "" for v in out[col]]
    return out.reset_index(drop=True)


def benchmark_objective(
    folder: str | os.PathLike[str], table: pd.DataFrame | None = None
) -> TabularObjective:
    """A :class:`~hwml.optimize.TabularObjective` over a benchmark's configurations.

    The objective is ``test_error`` (NaN for a diverged run, which the search records as
    failed), the cost ``train_time_s``; each result also carries the structure's measured
    ``power_w`` and ``peak_mem_bytes`` (what :func:`hwml.objectives.hardware_constraints`
    reads) and the other columns of :func:`load_benchmark`.

    Args:
        folder: benchmark folder (its provenance gives the space).
        table: the joined table, if already loaded (default :func:`load_benchmark`).

    Returns:
        The objective; ``objective.space`` is the benchmark's search space.
    """
    space = benchmark_space(folder)
    table = load_benchmark(folder) if table is None else table
    return TabularObjective(table, space, objective="test_error", cost="train_time_s")


def quantile_budgets(structures: pd.DataFrame, quantile: float) -> dict[str, float]:
    """Budgets at a quantile of the measured power and memory of the usable structures.

    With ``quantile=0.6`` about 40 % of the structures exceed each budget.

    Args:
        structures: a ``structures.csv`` table.
        quantile: in ``(0, 1)``.

    Returns:
        ``{"power_w": W, "mem_bytes": bytes}`` (NaN where nothing was measured).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    ok = (
        structures["status"].astype(str).isin(("ok", "no_power"))
        if "status" in structures.columns
        else np.ones(len(structures), bool)
    )
    out = {}
    for name, col in (("power_w", "power_w"), ("mem_bytes", "peak_mem_bytes")):
        values = pd.to_numeric(structures.loc[ok, col], errors="coerce").dropna()
        out[name] = float(values.quantile(quantile)) if len(values) else math.nan
    return out


def summarize_benchmark(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts, spreads and timings of a benchmark folder (what ``hwml optimize benchmark
    summary`` prints).

    Returns:
        ``structures`` (rows by status, quantiles 0/10/50/90/100 % of ``power_w``,
        ``peak_mem_bytes``, ``flops``), ``configs`` (rows by status, best and median test
        error, training-time median / 90 % / sum in seconds) and ``provenance`` (the
        identity facts).
    """
    folder = Path(folder)
    prov = read_provenance(folder)
    out: dict[str, Any] = {"provenance": {k: prov.get(k) for k in _IDENTITY if k != "space"}}
    qs = [0.0, 0.1, 0.5, 0.9, 1.0]
    if (folder / "structures.csv").exists():
        s = _read(folder, "structures")
        out["structures"] = {
            "rows": int(len(s)),
            "by_status": {str(k): int(v) for k, v in s["status"].value_counts().items()},
            **{
                col: {f"q{int(q * 100)}": float(s[col].quantile(q)) for q in qs}
                for col in ("power_w", "peak_mem_bytes", "flops")
                if s[col].notna().any()
            },
        }
    if (folder / "configs.csv").exists():
        c = _read(folder, "configs")
        ok = c[c["status"] == "ok"]
        out["configs"] = {
            "rows": int(len(c)),
            "by_status": {str(k): int(v) for k, v in c["status"].value_counts().items()},
            "best_test_error": float(ok["test_error"].min()) if len(ok) else math.nan,
            "median_test_error": float(ok["test_error"].median()) if len(ok) else math.nan,
            "train_time_s": {
                "median": float(c["train_time_s"].median()),
                "p90": float(c["train_time_s"].quantile(0.9)),
                "sum": float(c["train_time_s"].sum()),
            },
        }
    return out


# ====================================================================== the search problem


@dataclass(frozen=True)
class HyperPowerProblem:
    """A benchmark folder set up as HyperPower's constrained search problem.

    Build it with :func:`hyperpower_problem`.

    Attributes:
        folder: the benchmark folder.
        objective: the tabular objective (test error; cost: measured training time; each
            result carries the structure's measured ``power_w`` and ``peak_mem_bytes``).
        structures: the ``structures.csv`` table.
        budgets: ``{"power_w": W, "mem_bytes": bytes}``.
        quantiles: the quantiles of the measured structures the budgets were taken at.
        models: HyperPower's linear models, ``{"power_w": ..., "mem_bytes": ...}``, fitted
            on every structure, returning point predictions.
        models_std: the same models returning ``(mean, std)``, for ``hw-ieci-prob``.
    """

    folder: Path
    objective: TabularObjective
    structures: pd.DataFrame
    budgets: dict[str, float]
    quantiles: dict[str, float]
    models: dict[str, StructuralModel]
    models_std: dict[str, StructuralModel]

    @property
    def space(self) -> Space:
        """The benchmark's search space."""
        return self.objective.space

    @property
    def table(self) -> pd.DataFrame:
        """Every configuration (:func:`load_benchmark`), with ``feasible``: its structure's
        measured power and memory are within the budgets."""
        table = self.objective.table
        table["feasible"] = self._meets(table["power_w"], table["peak_mem_bytes"])
        return table

    def _meets(self, power_w: pd.Series, mem_bytes: pd.Series) -> np.ndarray:
        power = pd.to_numeric(power_w, errors="coerce").to_numpy(dtype=float)
        mem = pd.to_numeric(mem_bytes, errors="coerce").to_numpy(dtype=float)
        return (power <= self.budgets["power_w"]) & (mem <= self.budgets["mem_bytes"])

    def constraints(self, method: str = "hw-ieci") -> list[Constraint]:
        """The a-priori power and memory constraints a search method gets.

        Args:
            method: a search method; ``"hw-ieci-prob"`` gets the models with a predictive
                standard deviation, every other method point predictions.

        Returns:
            ``[Constraint("power_w", ...), Constraint("mem_bytes", ...)]``.
        """
        models = self.models_std if method == "hw-ieci-prob" else self.models
        return hardware_constraints(
            models,
            power_budget_w=self.budgets["power_w"],
            mem_budget_bytes=self.budgets["mem_bytes"],
        )

    def constraints_by_method(self, methods: Iterable[str]) -> dict[str, list[Constraint]]:
        """``{method: self.constraints(method)}`` for each method."""
        return {m: self.constraints(m) for m in methods}

    def best_feasible_error(self) -> float:
        """Lowest test error of a trained configuration whose structure meets the budgets."""
        table = self.table
        ok = table[(table["status"] == "ok") & table["feasible"]]
        return float(ok["test_error"].min()) if len(ok) else math.nan

    def model_errors(self) -> pd.DataFrame:
        """Cross-validated errors of the power and memory models.

        Returns:
            One row per model (``power_w``, ``mem_bytes``): ``rmse`` (W or bytes),
            ``rmspe_pct``, ``mape_pct`` (%) and ``n`` (structures), NaN where the model
            does not report them.
        """
        rows = {}
        for name, model in self.models.items():
            summary = model.model.cv_summary() if hasattr(model.model, "cv_summary") else {}
            rows[name] = {
                k: float(summary.get(k, math.nan)) for k in ("rmse", "rmspe_pct", "mape_pct", "n")
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def structure_table(self) -> pd.DataFrame:
        """The measured structures with the models' predictions and the budget verdicts.

        Returns:
            The usable rows of ``structures.csv`` (status ``ok``) with ``pred_power_w`` and
            ``pred_mem_bytes`` (the fitted models' predictions, which the searches use),
            ``cv_pred_power_w`` and ``cv_pred_mem_bytes`` (out-of-fold predictions of the
            cross-validation, NaN if the model keeps none), ``violates_power``,
            ``violates_mem``, ``violates`` (measured value over a budget) and
            ``pred_violates`` (a prediction over a budget).
        """
        s = self.structures
        s = s[s["status"].astype(str) == "ok"].reset_index(drop=True)
        out = s.copy()
        for name, column in (("power_w", "power_w"), ("mem_bytes", "peak_mem_bytes")):
            model = self.models[name]
            out[f"pred_{name}"] = model.predict(s)
            oof = getattr(model.model, "cv_predictions_", None)
            usable = pd.to_numeric(s[column], errors="coerce").notna().to_numpy()
            cv = np.full(len(s), np.nan)
            if oof is not None and len(oof) == usable.sum():
                cv[usable] = np.asarray(oof, dtype=float)
            out[f"cv_pred_{name}"] = cv
        out["violates_power"] = out["power_w"] > self.budgets["power_w"]
        out["violates_mem"] = out["peak_mem_bytes"] > self.budgets["mem_bytes"]
        out["violates"] = out["violates_power"] | out["violates_mem"]
        out["pred_violates"] = (out["pred_power_w"] > self.budgets["power_w"]) | (
            out["pred_mem_bytes"] > self.budgets["mem_bytes"]
        )
        return out

    def violation_summary(self) -> dict[str, float]:
        """Fractions of the space that violate the budgets, measured and predicted.

        Returns:
            Fractions in ``[0, 1]`` of the usable structures: ``power`` (measured power over
            its budget), ``mem``, ``either``, ``pred_either`` (per the models),
            ``false_accept`` (predicted within budgets, measured over one: a constraint
            violation HW-IECI cannot avoid) and ``false_reject`` (predicted over, measured
            within: a configuration HW-IECI never tries); and ``configs_either``, the
            fraction of trained configurations whose structure violates a budget.
        """
        st = self.structure_table()
        table = self.table
        return {
            "power": float(st["violates_power"].mean()),
            "mem": float(st["violates_mem"].mean()),
            "either": float(st["violates"].mean()),
            "pred_either": float(st["pred_violates"].mean()),
            "false_accept": float((~st["pred_violates"] & st["violates"]).mean()),
            "false_reject": float((st["pred_violates"] & ~st["violates"]).mean()),
            "configs_either": float((~table["feasible"]).mean()),
        }


def hyperpower_problem(
    folder: str | os.PathLike[str],
    *,
    power_quantile: float = 0.6,
    mem_quantile: float = 0.6,
    features: str | list[str] = "derived",
    cv: int = 10,
    seed: int = 0,
) -> HyperPowerProblem:
    """Set a benchmark folder up as HyperPower's power- and memory-constrained search.

    The budgets are quantiles of the measured inference power and peak memory of the
    structures (:func:`quantile_budgets`), so about ``1 - quantile`` of the structures
    exceed each; the constraint models are HyperPower's linear models
    (:func:`hwml.objectives.fit_hardware_models`) fitted on every structure.

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        power_quantile: quantile of the measured power that becomes the power budget.
        mem_quantile: quantile of the measured peak memory that becomes the memory budget.
        features: feature set of the linear models (see
            :data:`hwml.objectives.FEATURE_SETS`).
        cv: cross-validation folds of the models' error estimates.
        seed: seed of the fold shuffling.

    Returns:
        The problem.
    """
    path = dataset_path(folder)
    structures = _read(path, "structures")
    budgets = {
        "power_w": quantile_budgets(structures, power_quantile)["power_w"],
        "mem_bytes": quantile_budgets(structures, mem_quantile)["mem_bytes"],
    }
    models = fit_hardware_models(structures, features=features, cv=cv, seed=seed)
    models_std = fit_hardware_models(
        structures, features=features, cv=cv, seed=seed, return_std=True
    )
    return HyperPowerProblem(
        folder=path,
        objective=benchmark_objective(path),
        structures=structures,
        budgets=budgets,
        quantiles={"power_w": float(power_quantile), "mem_bytes": float(mem_quantile)},
        models=models,
        models_std=models_std,
    )


def budget_sweep(
    folder: str | os.PathLike[str],
    quantiles: Iterable[float],
    *,
    seeds: Iterable[int],
    n_evals: int,
    n_init: int,
    tolerance: float,
    method: str = "hw-ieci",
    baseline: str = "ei",
    settings: SearchSettings | None = None,
    features: str | list[str] = "derived",
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """How the gain of a budget-aware search over another depends on how tight the budgets are.

    At each quantile ``q``, both budgets are set at ``q`` of the measured power and memory
    (:func:`hyperpower_problem`), ``method`` and ``baseline`` search the table once per
    seed, and the evaluations each needs to come within ``tolerance`` of that level's best
    feasible error are compared (:func:`hwml.optimize.tolerance_sweep`).

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        quantiles: budget quantiles, each in (0, 1); lower is tighter.
        seeds: search seeds (each method runs once per seed and level).
        n_evals: evaluations per search.
        n_init: random evaluations that start each search.
        tolerance: width of the near-optimal region (in test error).
        method: the budget-aware method, e.g. ``"hw-ieci"``.
        baseline: the method it is compared with, e.g. ``"ei"``.
        settings: search settings.
        features: feature set of the constraint models.
        seed: seed of the models' cross-validation.
        n_jobs: worker processes for the searches.
        progress: show a progress bar over the levels.

    Returns:
        One row per quantile: ``quantile``, the budgets ``power_w`` and ``mem_bytes``,
        ``over_either`` (fraction of structures over a budget), ``best_feasible``,
        ``infeasible[<m>]`` (fraction of each method's evaluations over a budget), and the
        columns of :func:`hwml.optimize.tolerance_sweep` (``median_evals[<m>]``,
        ``reached[<m>]``, ``speedup_evals``, ``speedup_time`` and their ``*_kind``).

    Raises:
        ValueError: no quantiles, or one outside (0, 1).
    """
    levels = [float(q) for q in quantiles]
    if not levels:
        raise ValueError("budget_sweep needs at least one quantile")
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"budget quantiles must lie in (0, 1), got {bad}")
    methods = [method, baseline]
    rows = []
    for q in tqdm(levels, desc="budget levels", disable=not progress, file=sys.stderr):
        problem = hyperpower_problem(
            folder, power_quantile=q, mem_quantile=q, features=features, seed=seed
        )
        histories = run_searches(
            problem.objective,
            problem.space,
            problem.constraints_by_method(methods),
            methods=methods,
            seeds=list(seeds),
            n_evals=n_evals,
            n_init=n_init,
            settings=settings,
            n_jobs=n_jobs,
        )
        rows.append(budget_level(problem, histories, q, tolerance, method, baseline))
    return pd.DataFrame(rows)


def budget_level(
    problem: HyperPowerProblem,
    histories: pd.DataFrame,
    quantile: float,
    tolerance: float = 0.01,
    method: str = "hw-ieci",
    baseline: str = "ei",
) -> dict[str, Any]:
    """One row of :func:`budget_sweep` from searches already run on ``problem``.

    Args:
        problem: The problem the searches ran on (its budgets at ``quantile``).
        histories: Their histories (any methods; ``method`` and ``baseline`` are used).
        quantile: The budget quantile the problem was built with.
        tolerance: Width of the near-optimal region above the best feasible error.
        method: The method compared.
        baseline: The method it is compared with.

    Returns:
        The columns :func:`budget_sweep` documents.
    """
    pair = histories[histories["method"].isin([method, baseline])]
    best = problem.best_feasible_error()
    reach = tolerance_sweep(best_so_far(pair), best, [tolerance], method, baseline)
    over = ~pair["feasible"].astype(bool)
    return {
        "quantile": quantile,
        **problem.budgets,
        "over_either": problem.violation_summary()["either"],
        "best_feasible": best,
        **{f"infeasible[{m}]": float(over[pair["method"] == m].mean()) for m in (method, baseline)},
        **reach.drop(columns="tolerance").iloc[0].to_dict(),
    }


def load_live_runs(
    folder: str | os.PathLike[str],
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The live searches of a benchmark folder: ``live/*.csv`` with their JSON sidecars.

    Args:
        folder: a benchmark folder, or its name under ``data/``.

    Returns:
        ``(histories, info)``: the histories concatenated (columns of
        :mod:`hwml.optimize.history`, with the constraints ``power_w`` and ``mem_bytes``),
        sorted by method and seed; and ``{file stem: sidecar}`` (budgets, models' errors,
        command, date).

    Raises:
        DatasetError: the folder has no live runs.
    """
    path = dataset_path(folder)
    files = sorted((path / "live").glob("*.csv"))
    if not files:
        raise DatasetError(f"{path}: no live searches under live/ (run `hwml optimize live`)")
    space = benchmark_space(path)
    parts, info = [], {}
    for file in files:
        sidecar = file.with_suffix(".json")
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
        for name in ("power_quantile", "mem_quantile"):  # sidecars written before 2026-11-30
            if meta.get(name) is None:
                meta[name] = _option_from_command(meta.get("command", ""), name)
        names = list(meta.get("budgets", {"power_w": 0, "mem_bytes": 0}))
        parts.append(read_history(file, space, names))
        info[file.stem] = meta
    histories = pd.concat(parts, ignore_index=True).sort_values(["method", "seed", "iteration"])
    return histories.reset_index(drop=True), info


def _option_from_command(command: str, name: str) -> float | None:
    """The value of ``--<name>`` (underscores as dashes) in a recorded command line, or None.

    Older live-search sidecars recorded the budget quantiles only in their command line.
    """
    words = shlex.split(command) if command else []
    flag = "--" + name.replace("_", "-")
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return float(words[i + 1])
        if word.startswith(flag + "="):
            return float(word.split("=", 1)[1])
    return None


def live_best_so_far(live: pd.DataFrame) -> pd.DataFrame:
    """Live search histories with the best feasible error so far of each run.

    Args:
        live: Histories of :func:`load_live_runs`.

    Returns:
        ``live`` with ``good`` (succeeded and met the budgets as measured), ``measured_over``
        (measured over a budget after training) and ``best`` (the lowest ``objective`` among
        the run's good evaluations so far; NaN before the first).
    """
    out = live.assign(
        good=live["feasible"].astype(bool) & (live["status"] == "ok"),
        measured_over=~live["feasible_measured"].fillna(True).astype(bool),
    )
    runs = [out["method"], out["seed"]]
    out["best"] = out["objective"].where(out["good"]).groupby(runs).cummin()
    out["best"] = out.groupby(["method", "seed"])["best"].ffill()
    return out
