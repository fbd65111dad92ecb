"""Build a HyperPower benchmark folder on a GPU: measure the structures, train the configurations.

(a) :func:`measure_structures` -> ``structures.csv``: each structure of
    :func:`hwml.hyperpower.table.sample_structures` measured alone
    (:func:`hwml.hyperpower.objective.measure_inference`): runtime, power, energy per image,
    peak memory (reset before each row).
(b) :func:`train_configs` -> ``configs.csv``: each configuration of
    :func:`hwml.hyperpower.table.sample_configs` trained once
    (:func:`hwml.tasks.cnn.train_cnn`). Several trainings may share a GPU
    (``workers_per_gpu`` worker processes per GPU).

Both phases run their rows as tasks on a cluster (:mod:`hwml.cluster`: in this process,
one Dask worker per GPU of this machine, or a Dask scheduler's workers); the rows come
back to this process, which alone appends them to the table as they arrive. Both are
resumable (a rerun skips the keys already in the table) and still shardable
(``shard=(i, n)``: every ``n``-th row of the list from ``i``), record provenance (device,
software, command, date, commit, image size, batch, epochs, where the rows ran) and write
the folder's README.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from hwml import __version__
from hwml.cluster import Cluster, ClusterSpec, open_cluster
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
from hwml.profile import SweepOptions, failed_measurement, worker_device
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
    cluster: Cluster | ClusterSpec | str | None = None,
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
        cluster: where the structures are measured: an open
            :class:`~hwml.cluster.Cluster`, or a spec to open one (one worker per GPU of
            this machine by default, this process when there is one device); each worker
            measures on its own GPU, one structure at a time.

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
        total=len(todo),
        desc=f"structures {i}/{n}",
        unit="net",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with _cluster(cluster, str(dev.torch_device.type)) as where:
        run.update(where.facts())
        with _logged(folder, facts, run) as log:
            if where.in_process:
                for j in todo:
                    config = Space.to_dicts(structures.iloc[[j]])[0]
                    row = _structure_row(config, feats.iloc[[j]], dev, opts, facts)
                    table.append({k: v for k, v in row.items() if k in STRUCTURE_COLUMNS})
                    log.row()
                    bar.update(1)
            else:
                kind = dev.torch_device.type
                items = [
                    (
                        structures["key"].iloc[j],
                        (
                            Space.to_dicts(structures.iloc[[j]])[0],
                            feats.iloc[[j]],
                            opts,
                            facts,
                            kind,
                        ),
                    )
                    for j in todo
                ]
                for res in where.map_unordered(_structure_task, items):
                    row = (
                        res.value
                        if res.ok
                        else {
                            "key": res.key,
                            "status": "error",
                            "error": res.error[:200],
                            "timestamp": now_iso(),
                        }
                    )
                    table.append({k: v for k, v in row.items() if k in STRUCTURE_COLUMNS})
                    log.row()
                    bar.update(1)
    bar.close()
    return log.rows_written


def _structure_task(
    config: dict[str, Any],
    features: pd.DataFrame,
    opts: SweepOptions,
    facts: Mapping[str, Any],
    kind: str,
) -> dict[str, Any]:
    """A ``structures.csv`` row measured where the task runs, on that worker's device."""
    return _structure_row(config, features, worker_device(kind, opts.power), opts, facts)


def _cluster(cluster: Cluster | ClusterSpec | str | None, device: str, **kwargs: Any) -> Cluster:
    """An open cluster: the one given (left open on exit), or one opened for the call."""
    if isinstance(cluster, Cluster):
        return _Borrowed(cluster)  # type: ignore[return-value]
    return open_cluster(cluster if cluster is not None else "process", device=device, **kwargs)


class _Borrowed:
    """A caller's cluster used as a context manager without closing it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def __enter__(self) -> Cluster:
        return self.cluster

    def __exit__(self, *exc: object) -> None:
        return None


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


_WARM_UP: dict[str, Any] = {
    "conv1_filters": 4,
    "conv2_filters": 4,
    "kernel_size": 3,
    "dense_units": 8,
    "learning_rate": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
}
"""A small untimed training each process runs first: the process's first training also
pays for CUDA and library start-up, which would otherwise inflate one row's
``train_time_s``."""


def _train_one(
    job: _TrainJob, task: dict[str, Any], data: Any, gpu_uuid: str | None
) -> dict[str, Any]:
    """Train one configuration: its ``configs.csv`` row (a failure is a row too)."""
    row: dict[str, Any] = {
        **task,
        "epochs": job.epochs,
        "batch_size": job.batch_size,
        "image_size": job.image_size,
        "train_seed": job.seed,
        "workers": job.workers,
        "gpu_uuid": gpu_uuid,
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
    return row


def _train_rows(
    job: _TrainJob, tasks: Iterable[dict[str, Any]], on_row: Callable[[dict[str, Any]], None]
) -> None:
    """Train each task's configuration in this process and append its row to the table."""
    data = load_data(job.dataset, image_size=job.image_size, data_root=job.data_root)
    table = AppendTable(job.table, CONFIG_COLUMNS)
    warm = True
    for task in tasks:
        if warm:
            train_cnn(_WARM_UP, device=job.device, epochs=1, batch_size=job.batch_size, data=data)
            warm = False
        row = _train_one(job, task, data, job.gpu_uuid)
        table.append(row)
        on_row(row)


_WORKER_STATE: dict[tuple[Any, ...], tuple[Any, str | None]] = {}


def _train_task(job: _TrainJob, task: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration on a cluster worker; the row goes back to the driver.

    A worker sets itself up on its first task (threads, device settings, the data, one
    untimed warm-up training) and keeps that for the next ones.
    """
    key = (job.dataset, job.image_size, job.data_root, job.device, job.batch_size)
    if key not in _WORKER_STATE:
        _setup_worker(job)
        data = load_data(job.dataset, image_size=job.image_size, data_root=job.data_root)
        train_cnn(_WARM_UP, device=job.device, epochs=1, batch_size=job.batch_size, data=data)
        kind = torch.device(job.device).type
        _WORKER_STATE[key] = (data, worker_device(kind, False).info.get("gpu_uuid"))
    data, gpu_uuid = _WORKER_STATE[key]
    return _train_one(job, task, data, gpu_uuid)


def _setup_worker(job: _TrainJob) -> None:
    torch.set_num_threads(max(1, job.threads))
    use_device(torch.device(job.device), cudnn_benchmark=job.cudnn_benchmark)


def _train_pending(
    job: _TrainJob,
    pending: list[dict[str, Any]],
    dev: Device,
    log: RunLog,
    desc: str,
    progress: bool,
    cluster: Cluster,
) -> None:
    """Train the pending configurations, in this process or as tasks of ``cluster``
    (rows appended here, as they come back)."""
    bar = tqdm(
        total=len(pending),
        desc=desc,
        unit="net",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def count(row: dict[str, Any]) -> None:
        log.row()
        bar.update(1)
        bar.set_postfix_str(f"last {row.get('status')}", refresh=False)

    try:
        if cluster.in_process:
            with cudnn_autotune(job.cudnn_benchmark if dev.is_cuda else None):
                _train_rows(job, pending, count)
            return
        table = AppendTable(job.table, CONFIG_COLUMNS)
        items = [(task["key"], (job, task)) for task in pending]
        by_key = {task["key"]: task for task in pending}
        for res in cluster.map_unordered(_train_task, items):
            if res.ok:
                row = res.value
            else:  # the task killed its workers (e.g. out of host memory): a failed row
                row = {
                    **by_key[res.key],
                    "epochs": job.epochs,
                    "batch_size": job.batch_size,
                    "image_size": job.image_size,
                    "train_seed": job.seed,
                    "workers": job.workers,
                    "status": "error",
                    "reason": res.error[:200],
                    "timestamp": now_iso(),
                }
            table.append(row)
            count(row)
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
    cluster: Cluster | ClusterSpec | str | None = None,
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
        workers_per_gpu: trainings running at once on each GPU of a local cluster (one
            worker process each); with one device and 1, training happens in this process.
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
        cluster: where the trainings run: an open :class:`~hwml.cluster.Cluster`, or a
            spec to open one (default ``"local"``: ``workers_per_gpu`` worker processes
            per visible GPU, or on the CPU; this process when that is one). A training
            that kills its worker is retried on another, then recorded as failed.

    Returns:
        Rows written by this call.

    Raises:
        DatasetError: the folder's provenance disagrees with the settings.
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
    with _cluster(
        cluster if cluster is not None else "local",
        str(device.torch_device if isinstance(device, Device) else device),
        workers_per_gpu=int(workers_per_gpu),
        threads_per_worker=int(threads_per_worker),
    ) as where:
        run.update(where.facts())
        with _logged(folder, facts, run) as log:
            _train_pending(
                job, pending, dev, log, f"train {i}/{n} on {where.describe()}", progress, where
            )
    return log.rows_written
