"""Build a NAS benchmark folder on a device: train and measure a pool of architectures.

:func:`build_benchmark` takes the reference networks (:mod:`hwml.nas.references`) and the
first ``n_archs`` architectures of the space's seeded sequence
(:meth:`hwml.nas.space.NASSpace.sample`), and works through them in chunks. For each
chunk it first **measures** every network at every inference batch in this process,
alone on the device (:func:`hwml.profile.measure_module`: eager and CUDA-graph runtime,
host dispatch, power and energy over a window of the NVML energy counter, peak memory),
then **trains** the chunk's networks on the proxy task (:func:`hwml.tasks.train_module`),
several at a time in worker processes that share the device, and waits for them before
the next chunk is measured, so that power is never measured while anything else runs
on the GPU. Rows are appended to ``measured.csv`` and ``trained.csv`` as they come
(:class:`hwml.data.AppendTable`), so that

* a rerun skips every row already there (resume after an interruption, or run in
  chunks of device time);
* ``time_limit_s`` stops the run cleanly: no new measurement or training starts after
  it, trainings in flight finish and are kept, and whatever was completed is a prefix of
  the same list a full run would do;
* provenance (device, software, command, commit, settings) goes to ``provenance.json`` and
  a ``README.md`` describes the folder.

``python -m hwml nas benchmark`` (:mod:`hwml.cli_nas`) and ``scripts/nas_benchmark.sh``
are its command line.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hwml import __version__
from hwml.data import (
    AppendTable,
    RunLog,
    now_iso,
    provenance_lock,
    read_provenance,
    run_header,
    write_readme,
)
from hwml.hardware import Device, cudnn_autotune, open_device, use_device
from hwml.nas.references import BN_MOMENTUM, REFERENCES, build_reference, reference_key
from hwml.nas.space import NASSpace, StageChoice
from hwml.nas.table import IDENTITY_FACTS, MEASURED_COLUMNS, TRAINED_COLUMNS, column_docs
from hwml.profile import SweepOptions, failed_measurement, measure_module
from hwml.tasks.images import DATASET_CHANNELS, load_data
from hwml.tasks.training import train_module

__all__ = ["BenchmarkSettings", "Network", "build_benchmark", "networks", "write_benchmark_readme"]


@dataclass(frozen=True)
class BenchmarkSettings:
    """What a benchmark folder holds and how each network is trained and measured.

    Attributes:
        n_archs: architectures of the pool (the first of the seeded sequence).
        arch_seed: seed of the pool.
        references: reference networks (names of :data:`~hwml.nas.references.REFERENCES`).
        batches: inference batches each network is measured at.
        dataset: the proxy task (see :func:`hwml.tasks.images.load_data`).
        epochs: training epochs.
        train_batch_size: training batch size.
        learning_rate: SGD learning rate at the start of the cosine decay.
        momentum: SGD Nesterov momentum.
        weight_decay: L2 weight decay.
        train_seed: seed of every training (weights and batch order).
    """

    n_archs: int = 256
    arch_seed: int = 0
    references: tuple[str, ...] = tuple(REFERENCES)
    batches: tuple[int, ...] = (1, 64)
    dataset: str = "cued-digits"
    epochs: int = 5
    train_batch_size: int = 64
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    train_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_archs < 0:
            raise ValueError(f"n_archs must be >= 0, got {self.n_archs}")
        unknown = [r for r in self.references if r not in REFERENCES]
        if unknown:
            raise ValueError(
                f"unknown reference network(s) {unknown}; known: {', '.join(REFERENCES)}"
            )
        if not self.batches or any(int(b) < 1 for b in self.batches):
            raise ValueError(f"batches must be positive, got {self.batches}")
        if self.dataset not in DATASET_CHANNELS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; known: {', '.join(DATASET_CHANNELS)}"
            )
        if self.epochs < 1 or self.train_batch_size < 1:
            raise ValueError("epochs and train_batch_size must be >= 1")


@dataclass(frozen=True)
class Network:
    """One network of a benchmark: its row key, pool index (-1 for a reference) and kind."""

    key: str
    index: int
    kind: str

    def build(self, space: NASSpace) -> nn.Module:
        """A fresh module (random weights from torch's current generator)."""
        if self.kind == "reference":
            return build_reference(
                self.key.removeprefix("ref:"),
                in_channels=space.in_channels,
                num_classes=space.num_classes,
            )
        return space.build(space.parse(self.key))


def networks(space: NASSpace, settings: BenchmarkSettings) -> list[Network]:
    """The benchmark's networks in the order they are done: references first, then the
    pool in its seeded order."""
    refs = [Network(reference_key(r), -1, "reference") for r in settings.references]
    pool = [
        Network(space.key(a), i, "space")
        for i, a in enumerate(space.sample(settings.n_archs, settings.arch_seed))
    ]
    return refs + pool


# ====================================================================== provenance


def _facts(dev: Device, space: NASSpace, s: BenchmarkSettings, dtype: str) -> dict[str, Any]:
    return {
        **dev.dataset_facts(),
        "benchmark": "nas-cells",
        "dataset": s.dataset,
        "image_size": space.image_size,
        "in_channels": space.in_channels,
        "space": json.loads(json.dumps(space.to_spec())),
        "n_archs": int(s.n_archs),
        "arch_seed": int(s.arch_seed),
        "references": list(s.references),
        "batches": [int(b) for b in s.batches],
        "epochs": int(s.epochs),
        "train_batch_size": int(s.train_batch_size),
        "learning_rate": float(s.learning_rate),
        "momentum": float(s.momentum),
        "weight_decay": float(s.weight_decay),
        "train_seed": int(s.train_seed),
        "dtype": dtype,
    }


def write_benchmark_readme(folder: str | os.PathLike[str]) -> None:
    """(Re)write a benchmark folder's README.md from its provenance, tables and NOTES.md."""
    folder = Path(folder)
    prov = read_provenance(folder)
    device = prov.get("gpu_name") or prov.get("device_name") or "unknown device"
    batches = ", ".join(str(b) for b in prov.get("batches", []))
    description = f"""
A tabular benchmark of platform-aware architecture search (survey section 4.4) measured on
**{device}** with `hwml nas benchmark` (hwml {__version__}); the run log below lists every
command that wrote rows here.

The networks are the reference networks ({", ".join(prov.get("references", [])) or "none"};
`hwml.nas.references`: torchvision's, with a stride-1 stem for the small images) and the
first {prov.get("n_archs", "?")} architectures of the seeded sequence (seed
{prov.get("arch_seed", "?")}) of the cell space recorded in `provenance.json`
(`hwml.nas.space.NASSpace`). Networks were done in chunks: each chunk was first measured
alone on the device, then trained, several trainings sharing the device; power was never
measured while anything else ran on it.

`measured.csv`: each network measured at inference batch {batches} on
{prov.get("image_size", "?")}x{prov.get("image_size", "?")} inputs in
{prov.get("dtype", "float32")} (random weights): eager runtime with CUDA events after
warm-up (a monotonic clock on a CPU), GPU runtime replayed from a CUDA graph, host dispatch
time, average power and energy per forward over a window that starts and ends on updates
of NVML's total-energy counter while the graph is replayed back to back, and peak memory.

`trained.csv`: each network trained once on `{prov.get("dataset", "?")}` for
{prov.get("epochs", "?")} epochs (SGD with Nesterov momentum {prov.get("momentum", "?")},
learning rate {prov.get("learning_rate", "?")} decayed along a cosine, weight decay
{prov.get("weight_decay", "?")}, batch {prov.get("train_batch_size", "?")}, seed
{prov.get("train_seed", "?")}), then tested on the task's 2,000 test images.
`hwml.nas.table.load_nas_benchmark` joins the two tables. Rows are appended as they are
measured and never edited.
"""
    with provenance_lock(folder):
        write_readme(
            folder,
            f"Platform-aware NAS benchmark: {device}",
            description,
            column_docs(),
            read_provenance(folder),
        )


# ====================================================================== measuring


def _measure_row(
    net: Network, batch: int, space: NASSpace, dev: Device, opts: SweepOptions, run_id: str
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": f"{net.key}@b{batch}",
        "arch": net.key,
        "index": net.index,
        "kind": net.kind,
        "batch": int(batch),
        "gpu_uuid": dev.info.get("gpu_uuid"),
        "run_id": run_id,
    }
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = net.build(space)
        row["params"] = sum(p.numel() for p in module.parameters())
        row.update(measure_module(module, space.input_shape(batch), dev, opts))
        del module
    except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
        row.update(failed_measurement(err, dev, f"network {net.key} batch {batch}"))
    row["timestamp"] = now_iso()
    return {k: v for k, v in row.items() if k in MEASURED_COLUMNS}


# ====================================================================== training


@dataclass(frozen=True)
class _TrainJob:
    """What a training worker needs (picklable)."""

    device: str
    space: dict[str, Any]
    dataset: str
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    seed: int
    workers: int
    threads: int
    gpu_uuid: str | None
    deadline: float  # time.time() after which no training starts (inf: none)


def _train_row(job: _TrainJob, space: NASSpace, data: Any, net: Network) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": net.key,
        "index": net.index,
        "kind": net.kind,
        "epochs": job.epochs,
        "batch_size": job.batch_size,
        "learning_rate": job.learning_rate,
        "momentum": job.momentum,
        "weight_decay": job.weight_decay,
        "train_seed": job.seed,
        "workers": job.workers,
        "gpu_uuid": job.gpu_uuid,
    }
    try:
        result = train_module(
            lambda: net.build(space),
            data,
            device=job.device,
            epochs=job.epochs,
            batch_size=job.batch_size,
            learning_rate=job.learning_rate,
            momentum=job.momentum,
            weight_decay=job.weight_decay,
            seed=job.seed,
        )
    except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
        result = {"status": "error", "reason": f"{type(err).__name__}: {str(err)[:200]}"}
    row.update({k: v for k, v in result.items() if k in TRAINED_COLUMNS})
    row["timestamp"] = now_iso()
    return row


def _warm_up(job: _TrainJob, space: NASSpace, data: Any) -> None:
    """One small untimed training: a process's first one also pays for CUDA start-up."""
    small = tuple(
        StageChoice("conv", 1, min(space.kernels), False, min(space.depths), min(ws))
        for ws in space.widths
    )
    train_module(
        lambda: space.build(small), data, device=job.device, epochs=1, batch_size=job.batch_size
    )


def _worker_main(job: _TrainJob, tasks: Any, results: Any) -> None:
    """A training worker: pull networks until ``None``; skip them after the deadline."""
    try:
        torch.set_num_threads(max(1, job.threads))
        use_device(torch.device(job.device), cudnn_benchmark=False)
        space = NASSpace.from_spec(job.space)
        data = load_data(job.dataset, image_size=space.image_size)
        _warm_up(job, space, data)
        results.put(("ready", None))
        while True:
            net = tasks.get()
            if net is None:
                break
            if time.time() > job.deadline:
                results.put(("skipped", net.key))
                continue
            results.put(("row", _train_row(job, space, data, net)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        results.put(("fatal", f"{type(err).__name__}: {err}"))
        raise


class _Trainers:
    """``workers`` training processes pulling networks from one queue (spawned on first use)."""

    def __init__(self, job: _TrainJob) -> None:
        self.job = job
        self._procs: list[Any] = []
        self._ctx = mp.get_context("spawn")
        self._tasks: Any = None
        self._results: Any = None

    def _start(self) -> None:
        self._tasks, self._results = self._ctx.Queue(), self._ctx.Queue()
        self._procs = [
            self._ctx.Process(
                target=_worker_main, args=(self.job, self._tasks, self._results), daemon=True
            )
            for _ in range(self.job.workers)
        ]
        for p in self._procs:
            p.start()

    def run(self, nets: Sequence[Network], on_row: Callable[[dict[str, Any]], None]) -> None:
        """Train ``nets`` and hand each row to ``on_row`` (in this process) as it comes."""
        if not nets:
            return
        if not self._procs:
            self._start()
        for net in nets:
            self._tasks.put(net)
        pending = len(nets)
        while pending:
            try:
                kind, payload = self._results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self._procs):
                    raise RuntimeError("every training worker died") from None
                continue
            if kind == "row":
                on_row(payload)
                pending -= 1
            elif kind == "skipped":
                pending -= 1
            elif kind == "fatal":
                raise RuntimeError(f"training worker failed: {payload}")

    def close(self) -> None:
        if not self._procs:
            return
        try:
            for _ in self._procs:
                self._tasks.put(None)
            for p in self._procs:
                p.join(timeout=10)
        finally:
            for p in self._procs:
                if p.is_alive():
                    p.terminate()
            self._tasks.cancel_join_thread()
            self._procs = []


# ====================================================================== the run


def build_benchmark(
    folder: str | os.PathLike[str],
    device: str | Device = "cuda",
    settings: BenchmarkSettings | None = None,
    *,
    space: NASSpace | None = None,
    workers: int = 4,
    chunk: int = 32,
    time_limit_s: float | None = None,
    opts: SweepOptions | None = None,
    threads_per_worker: int = 1,
    progress: bool = True,
    command: str | None = None,
    git_commit: str | None = None,
    measure_only: bool = False,
) -> dict[str, int]:
    """Measure and train the benchmark's networks into ``folder`` (see the module docstring).

    Args:
        folder: the benchmark folder (created if missing).
        device: ``"cuda"``, ``"cuda:N"``, ``"cpu"``, or an opened device.
        settings: what the folder holds (default :class:`BenchmarkSettings`); must agree
            with what an earlier run recorded there.
        space: the search space (default :class:`~hwml.nas.space.NASSpace`).
        workers: trainings at a time (processes sharing the device); 1 trains in this
            process.
        chunk: networks measured before the trainings of that chunk start.
        time_limit_s: stop starting new work after this many seconds (None: no limit).
        opts: measurement options (default: float32, power on, 2 counter periods per
            window, CUDA graphs, 50 ms of timed eager repeats).
        threads_per_worker: CPU threads of each training.
        progress: show a progress bar.
        command: command line to record (default ``sys.argv``).
        git_commit: commit to record when the tree has no ``.git``.
        measure_only: measure, never train (``trained.csv`` stays empty): a second
            measurement of a benchmark's networks, into a folder of its own, to check
            how well the first one repeats. A network counts as complete once measured.

    Returns:
        ``{"measured": rows, "trained": rows, "remaining": networks not yet complete}``.

    Raises:
        DatasetError: the folder holds another device's or another setting's benchmark,
            or another copy of this run is writing there.
        RuntimeError: a training worker died.
    """
    settings = settings or BenchmarkSettings()
    space = space or NASSpace(in_channels=DATASET_CHANNELS[settings.dataset])
    if workers < 1 or chunk < 1:
        raise ValueError(f"workers and chunk must be >= 1, got {workers}, {chunk}")
    opts = opts or SweepOptions(periods=2, progress=progress)
    start = time.time()
    deadline = start + time_limit_s if time_limit_s is not None else math.inf
    folder = Path(folder)
    dev = device if isinstance(device, Device) else open_device(str(device), power=opts.power)
    load_data(settings.dataset, image_size=space.image_size)  # fail early
    facts = _facts(dev, space, settings, opts.dtype)
    run = {
        **run_header("nas-benchmark", command, git_commit),
        **dev.run_facts(),
        "workers": int(workers),
        "chunk": int(chunk),
        "time_limit_s": time_limit_s,
        "power_periods": opts.periods if opts.power else None,
        "energy_meter": type(dev.meter).__name__,
        "reference_bn_momentum": BN_MOMENTUM,
        "measure_only": bool(measure_only),
    }
    if opts.power and dev.meter.available:
        run["counter_update_period_s"] = dev.meter.update_period_s(samples=5)
        run["idle_power_w"] = dev.meter.idle_power_w(1.0)

    measured = AppendTable(folder / "measured.csv", MEASURED_COLUMNS)
    trained = AppendTable(folder / "trained.csv", TRAINED_COLUMNS)
    all_nets = networks(space, settings)

    def incomplete(nets: Sequence[Network]) -> list[Network]:
        done_m, done_t = measured.done_keys(), trained.done_keys()
        return [
            n
            for n in nets
            if (n.key not in done_t and not measure_only)
            or any(f"{n.key}@b{b}" not in done_m for b in settings.batches)
        ]

    todo = incomplete(all_nets)
    done_m, done_t = measured.done_keys(), trained.done_keys()
    job = _TrainJob(
        device=str(dev.torch_device),
        space=space.to_spec(),
        dataset=settings.dataset,
        epochs=settings.epochs,
        batch_size=settings.train_batch_size,
        learning_rate=settings.learning_rate,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        seed=settings.train_seed,
        workers=int(workers),
        threads=int(threads_per_worker),
        gpu_uuid=dev.info.get("gpu_uuid"),
        deadline=deadline,
    )
    counts = {"measured": 0, "trained": 0}
    bar = tqdm(
        total=len(todo), desc="nas benchmark", unit="net", disable=not progress, file=sys.stderr
    )
    trainers = _Trainers(job) if workers > 1 and len(todo) > 1 and not measure_only else None
    with RunLog(
        folder,
        facts,
        run,
        identity=IDENTITY_FACTS,
        on_exit=lambda: write_benchmark_readme(folder),
        lock_name="nas-benchmark",
        tables=[folder / "measured.csv", folder / "trained.csv"],
    ) as log:

        def add_trained(row: dict[str, Any]) -> None:
            trained.append({**row, "run_id": log.run_id})
            counts["trained"] += 1
            log.row()
            bar.update(1)

        try:
            local_data = None
            for c0 in range(0, len(todo), chunk):
                part = todo[c0 : c0 + chunk]
                for net in part:
                    for b in settings.batches:
                        if f"{net.key}@b{b}" in done_m or time.time() > deadline:
                            continue
                        measured.append(_measure_row(net, b, space, dev, opts, log.run_id))
                        counts["measured"] += 1
                        log.row()
                if time.time() > deadline:
                    break
                if measure_only:  # no trainings to count: the bar follows the measurements
                    bar.update(len(part))
                pending = [] if measure_only else [n for n in part if n.key not in done_t]
                if pending and trainers is not None:
                    trainers.run(pending, add_trained)
                elif pending:
                    if local_data is None:
                        local_data = load_data(settings.dataset, image_size=space.image_size)
                    threads = torch.get_num_threads()
                    torch.set_num_threads(max(1, threads_per_worker))
                    try:
                        with cudnn_autotune(False if dev.is_cuda else None):
                            for net in pending:
                                if time.time() > deadline:
                                    break
                                add_trained(_train_row(job, space, local_data, net))
                    finally:
                        torch.set_num_threads(threads)
                if time.time() > deadline:
                    break
                if not progress:  # one line per chunk, for logs
                    print(
                        f"[nas] {min(c0 + chunk, len(todo))}/{len(todo)} networks: measured "
                        f"{counts['measured']} rows, trained {counts['trained']}, "
                        f"{time.time() - start:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            bar.close()
            if trainers is not None:
                trainers.close()
    remaining = len(incomplete(all_nets))
    if remaining:
        print(
            f"nas benchmark: {remaining} of {len(all_nets)} networks not complete "
            f"(time limit {time_limit_s} s); run the same command again to resume",
            file=sys.stderr,
        )
    return {**counts, "remaining": remaining}


def _settings_from(prov: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an earlier run recorded in a folder's provenance (for a resume)."""
    keys = {
        "n_archs": int,
        "arch_seed": int,
        "epochs": int,
        "train_batch_size": int,
        "learning_rate": float,
        "momentum": float,
        "weight_decay": float,
        "train_seed": int,
        "dataset": str,
    }
    out: dict[str, Any] = {k: f(prov[k]) for k, f in keys.items() if k in prov}
    if "batches" in prov:
        out["batches"] = tuple(int(b) for b in prov["batches"])
    if "references" in prov:
        out["references"] = tuple(prov["references"])
    return out
