"""Build a HyperPower benchmark folder on a GPU: measure the structures, train the configurations.

(a) :func:`measure_structures` -> ``structures.csv``: each structure of
    :func:`hwml.hyperpower.table.sample_structures` measured alone
    (:func:`hwml.hyperpower.objective.measure_inference`): runtime, power, energy per image,
    peak memory (reset before each row).
(b) :func:`train_configs` -> ``configs.csv``: each configuration of
    :func:`hwml.hyperpower.table.sample_configs` trained once
    (:func:`hwml.tasks.cnn.train_cnn`). Several trainings share a GPU
    (``workers_per_gpu`` processes pulling from one queue); each appends its rows to the
    same table.

Both phases are resumable (a rerun skips the keys already in the table), shardable across
GPUs (``shard=(i, n)``: process ``i`` of ``n`` owns every ``n``-th row of the list, so a
shard rerun after a crash resumes exactly its own rows), record provenance (device,
software, command, date, commit, image size, batch, epochs) and write the folder's README.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from hwml import __version__
from hwml.data import (
    AppendTable,
    RunLog,
    now_iso,
    provenance_lock,
    read_provenance,
    run_header,
    update_provenance,
    write_readme,
)
from hwml.hardware import Device, cudnn_autotune, open_device, use_device
from hwml.hyperpower.objective import measure_inference
from hwml.hyperpower.table import (
    CONFIG_COLUMNS,
    IDENTITY_FACTS,
    STRUCTURE_COLUMNS,
    column_docs,
    sample_configs,
    sample_structures,
)
from hwml.optimize import Space
from hwml.profile import SweepOptions, failed_measurement
from hwml.tasks.cnn import cnn_space, structural_features, train_cnn
from hwml.tasks.images import DATASET_CHANNELS, load_data

__all__ = ["measure_structures", "train_configs"]


# ====================================================================== provenance


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _run_facts(
    device: Device, phase: str, command: str | None, commit: str | None, shard: tuple[int, int]
) -> dict[str, Any]:
    return {**run_header(phase, command, commit, shard), **device.run_facts()}


def _record(folder: Path, facts: Mapping[str, Any]) -> None:
    update_provenance(folder, facts, identity=IDENTITY_FACTS)


def _logged(folder: Path, facts: Mapping[str, Any], run: Mapping[str, Any]) -> RunLog:
    """The run's log entry: written now, completed (and the README rewritten) at the end."""
    return RunLog(
        folder, facts, run, identity=IDENTITY_FACTS, on_exit=lambda: _write_readme(folder)
    )


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
`hwml.hyperpower.table.load_benchmark` joins the two tables on `structure_key`. Rows are appended
as they are measured and never edited.
"""
    title = f"HyperPower CNN benchmark: {device}"
    with provenance_lock(folder):  # shards finish at the same time
        write_readme(folder, title, description, column_docs(), read_provenance(folder))


def _defaults_from(prov: Mapping[str, Any], key: str, given: Any, default: Any) -> Any:
    if given is not None:
        return given
    return prov.get(key, default)


def _resolve_device(device: str | Device, power: bool) -> Device:
    if isinstance(device, Device):
        return device
    return open_device(str(device), power=power)


# ====================================================================== phase (a)


def _structure_row(
    config: dict[str, Any],
    features: pd.DataFrame,
    dev: Device,
    opts: SweepOptions,
    facts: Mapping[str, Any],
) -> dict[str, Any]:
    """One row of ``structures.csv``: the structure's size features and its measured
    inference (or the error that stopped the measurement)."""
    batch, image_size, in_channels = (
        facts["inference_batch"],
        facts["image_size"],
        facts["in_channels"],
    )
    row: dict[str, Any] = {
        **Space.to_dicts(features)[0],
        "key": config["key"],
        "in_channels": in_channels,
        "image_size": image_size,
        "batch": batch,
        "gpu_uuid": dev.info.get("gpu_uuid"),
        "timestamp": now_iso(),
    }
    try:
        row.update(
            measure_inference(
                config,
                dev,
                batch=batch,
                image_size=image_size,
                in_channels=in_channels,
                opts=opts,
                seed=facts["structure_seed"],
            )
        )
    except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
        row.update(failed_measurement(err, dev, f"structure {config['key']}"))
    return row


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
        space: search space (default :func:`hwml.tasks.cnn.cnn_space`); recorded in the
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
            row = _structure_row(config, feats.iloc[[j]], dev, opts, facts)
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


def _train_pending(
    job: _TrainJob,
    pending: list[dict[str, Any]],
    dev: Device,
    log: RunLog,
    desc: str,
    progress: bool,
) -> None:
    """Train the pending configurations, in this process or in ``job.workers`` workers."""
    bar = tqdm(
        total=len(pending),
        desc=desc,
        unit="net",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        if job.workers == 1 or len(pending) <= 1:

            def count(row: dict[str, Any]) -> None:
                log.row()
                bar.update(1)

            with cudnn_autotune(job.cudnn_benchmark if dev.is_cuda else None):
                _train_rows(job, pending, count)
        else:
            _run_workers(job, pending, bar, log)
    finally:
        bar.close()


def _train_facts(
    prov: Mapping[str, Any],
    dev: Device,
    *,
    n_structures: int | None,
    structure_seed: int | None,
    image_size: int | None,
    dataset: str | None,
    space: Space | None,
    epochs: int,
    batch_size: int,
    seed: int,
) -> tuple[dict[str, Any], Space]:
    """The folder facts of a train phase, with the settings not given taken from the
    folder's provenance (else the defaults), and the search space."""
    n_structures = int(_defaults_from(prov, "n_structures", n_structures, 400))
    structure_seed = int(_defaults_from(prov, "structure_seed", structure_seed, 0))
    image_size = int(_defaults_from(prov, "image_size", image_size, 32))
    dataset = str(_defaults_from(prov, "dataset", dataset, "digits"))
    if dataset not in DATASET_CHANNELS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_CHANNELS)}")
    if space is None:
        space = Space.from_specs(prov["space"]) if "space" in prov else cnn_space()
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
    return facts, space


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
    :func:`hwml.tasks.cnn.cnn_space`, 32 px, digits).

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
        dataset: data set (see :func:`hwml.tasks.images.load_data`).
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
    dev = _resolve_device(device, power=False)
    facts, space = _train_facts(
        read_provenance(folder),
        dev,
        n_structures=n_structures,
        structure_seed=structure_seed,
        image_size=image_size,
        dataset=dataset,
        space=space,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    load_data(facts["dataset"], image_size=facts["image_size"], data_root=data_root)  # fail early
    _record(folder, facts)
    run = _run_facts(dev, "train", command, git_commit, shard)
    run.update(
        workers_per_gpu=int(workers_per_gpu),
        n_configs=int(n_configs),
        cudnn_benchmark_workers=cudnn_benchmark,
    )

    structures = sample_structures(facts["n_structures"], facts["structure_seed"], space)
    configs = sample_configs(int(n_configs), int(seed), structures, space)
    done = AppendTable(folder / "configs.csv", CONFIG_COLUMNS).done_keys()
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
        image_size=facts["image_size"],
        dataset=facts["dataset"],
        data_root=None if data_root is None else str(data_root),
        gpu_uuid=dev.info.get("gpu_uuid"),
        workers=int(workers_per_gpu),
        threads=int(threads_per_worker),
        cudnn_benchmark=cudnn_benchmark,
    )
    with _logged(folder, facts, run) as log:
        _train_pending(job, pending, dev, log, f"train {i}/{n} x{workers_per_gpu}", progress)
    return log.rows_written
