"""The tabular NAS benchmark: its two tables, what their columns mean, and reading them.

Searching architectures for every method and seed would train hundreds of networks per
run. As in NAS-Bench-101/201 (and :mod:`hwml.hyperpower.table` for HyperPower), a seeded
pool of architectures of a :class:`~hwml.nas.space.NASSpace`, and the reference networks
of :mod:`hwml.nas.references`, are trained and measured once on a GPU
(:mod:`hwml.nas.benchmark`), and every search then runs over the table on any machine.

A benchmark folder holds

* ``trained.csv``: one row per network trained on the proxy task (test error, training
  time, status);
* ``measured.csv``: one row per (network, inference batch) measured alone on the GPU:
  eager runtime, GPU runtime (CUDA-graph replay), host dispatch time, power and energy per
  forward over a window of the NVML energy counter, peak memory;
* ``provenance.json`` and ``README.md`` (:mod:`hwml.data`).

:func:`load_nas_benchmark` reads a folder into one row per network
(:class:`NASBenchmark`), with the measured columns of each batch side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwml.data import USABLE_POWER_STATUS, USABLE_STATUS, DatasetError, read_provenance, read_table
from hwml.nas.space import NASSpace

__all__ = [
    "IDENTITY_FACTS",
    "MEASURED_COLUMNS",
    "METRICS",
    "TRAINED_COLUMNS",
    "NASBenchmark",
    "column_docs",
    "load_nas_benchmark",
    "metric_column",
    "read_measurements",
]

IDENTITY_FACTS = (
    "gpu_name",
    "benchmark",
    "dataset",
    "image_size",
    "in_channels",
    "space",
    "arch_seed",
    "batches",
    "epochs",
    "train_batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "train_seed",
    "references",
)
"""Provenance facts that must not change within a benchmark folder (``n_archs`` may grow:
the pool is a prefix of one seeded sequence)."""

_COMMON: dict[str, tuple[str, str]] = {
    "index": ("count", "position in the seeded pool of architectures (-1: a reference network)"),
    "kind": ("-", "`space` (an architecture of the search space) or `reference`"),
    "params": ("count", "learnable parameters"),
}

_TRAINED_DOCS: dict[str, tuple[str, str]] = {
    "key": (
        "-",
        "architecture key (`hwml.nas.space.NASSpace.key`, e.g. `m6k5s1d2w24-...`) or `ref:<name>`",
    ),
    **_COMMON,
    "epochs": ("count", "training epochs"),
    "batch_size": ("count", "training batch size"),
    "learning_rate": ("1", "SGD learning rate at the start of the cosine decay"),
    "momentum": ("1", "SGD (Nesterov) momentum"),
    "weight_decay": ("1", "L2 weight decay"),
    "train_seed": ("-", "seed of the initial weights and the batch order"),
    "test_error": (
        "1",
        "fraction of the 2,000 test images misclassified after training; empty unless status is ok",
    ),
    "train_loss": ("1", "mean cross-entropy of the last epoch run"),
    "train_time_s": (
        "s",
        "wall-clock seconds to build, train and test (several trainings shared the GPU)",
    ),
    "epochs_run": ("count", "epochs completed (fewer when the run diverged)"),
    "steps": ("count", "optimizer steps taken"),
    "status": ("-", "ok, failed (loss became NaN or infinite), oom, or error"),
    "reason": ("-", "why status is not ok"),
    "workers": ("count", "trainings sharing the device"),
    "gpu_uuid": ("-", "UUID of the GPU that trained the row"),
    "run_id": ("-", "the run (provenance.json) that wrote the row"),
    "timestamp": ("-", "UTC time the row was written"),
}

_MEASURED_DOCS: dict[str, tuple[str, str]] = {
    "key": ("-", "`<network key>@b<batch>`"),
    "arch": ("-", "the network's key (as in trained.csv)"),
    **_COMMON,
    "batch": ("count", "inference batch size"),
    "runtime_ms": (
        "ms",
        "median eager forward pass of the batch (CUDA events after warm-up): what a PyTorch user waits",
    ),
    "runtime_p10_ms": ("ms", "10th percentile of the timed eager passes"),
    "runtime_p90_ms": ("ms", "90th percentile of the timed eager passes"),
    "runtime_cv": ("1", "coefficient of variation of the timed eager passes"),
    "repeats": ("count", "timed eager passes"),
    "host_dispatch_ms": ("ms", "host time to issue one forward into an empty queue"),
    "runtime_graph_ms": ("ms", "GPU time of one forward, replayed from a CUDA graph"),
    "graph_calls": ("count", "forwards captured in the CUDA graph"),
    "graph_error": ("-", "why the CUDA graph could not be captured"),
    "power_mode": ("-", "what the power window ran: graph (replays) or eager"),
    "power_w": (
        "W",
        "average board power over a window aligned to energy-counter updates; empty if not measured",
    ),
    "energy_mj": ("mJ", "energy of one forward of the batch: window energy / forwards in it"),
    "power_window_s": ("s", "length of the power window"),
    "power_periods": ("count", "energy-counter updates the window spans"),
    "window_energy_mj": ("mJ", "energy counter difference over the window"),
    "window_calls": ("count", "forwards inside the window"),
    "busy_fraction": ("1", "fraction of the window the GPU was busy"),
    "window_device_ms": ("ms", "GPU time per forward inside the window"),
    "energy_per_image_mj": ("mJ", "energy_mj / batch"),
    "peak_mem_bytes": (
        "bytes",
        "peak memory PyTorch allocated during steady-state eager inference (weights, input, activations, workspace)",
    ),
    "used_mem_bytes": ("bytes", "device memory in use (NVML, all processes) after the row"),
    "sm_clock_mhz": ("MHz", "SM clock read right after the row"),
    "gpu_uuid": ("-", "UUID of the GPU that measured the row"),
    "status": (
        "-",
        "ok, no_power (runtime measured, power not), low_busy / over_limit (power not trusted), oom, or error",
    ),
    "error": ("-", "error message when status is oom or error"),
    "run_id": ("-", "the run (provenance.json) that wrote the row"),
    "timestamp": ("-", "UTC time the row was measured"),
}

TRAINED_COLUMNS: list[str] = list(_TRAINED_DOCS)
"""Columns of ``trained.csv``."""

MEASURED_COLUMNS: list[str] = list(_MEASURED_DOCS)
"""Columns of ``measured.csv``."""

#: Hardware quantities a search can target, each per batch: name -> (measured column,
#: predicted column of :meth:`hwml.nas.pricing.ArchPricer.predict`, unit, meaning).
METRICS: dict[str, tuple[str, str, str, str]] = {
    "runtime": ("runtime_ms", "runtime_ms", "ms", "eager latency of one forward of the batch"),
    "gpu_time": (
        "runtime_graph_ms",
        "runtime_graph_ms",
        "ms",
        "GPU time of one forward of the batch (CUDA-graph replay, no host issuing kernels)",
    ),
    "energy": (
        "energy_per_image_mj",
        "graph_energy_per_image_mj",
        "mJ",
        "GPU energy per image (graph-replay window)",
    ),
}


def column_docs() -> dict[str, dict[str, tuple[str, str]]]:
    """``{table: {column: (unit, meaning)}}`` of the two benchmark tables."""
    return {"trained": dict(_TRAINED_DOCS), "measured": dict(_MEASURED_DOCS)}


def metric_column(metric: str, batch: int) -> str:
    """The wide frame's column of a hardware metric at a batch, e.g. ``runtime_ms_b1``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return f"{METRICS[metric][0]}_b{int(batch)}"


@dataclass
class NASBenchmark:
    """A benchmark folder, read.

    Attributes:
        folder: the folder.
        space: the search space recorded in the provenance.
        provenance: ``provenance.json``.
        trained: ``trained.csv``.
        measured: ``measured.csv``.
        networks: one row per network (key), both tables joined: ``key``, ``index``,
            ``kind``, ``params``, ``test_error``, ``train_time_s``, ``train_status`` and,
            for each measured batch ``b``, ``runtime_ms_b<b>``, ``runtime_graph_ms_b<b>``,
            ``host_dispatch_ms_b<b>``, ``power_w_b<b>``, ``energy_mj_b<b>``,
            ``energy_per_image_mj_b<b>``, ``peak_mem_bytes_b<b>``, ``status_b<b>``
            (runtime of a row whose status is not usable, and power or energy of a row
            whose power status is not ``ok``, are NaN), and ``complete`` (trained ok and
            runtime measured at every batch).
        batches: the inference batches measured.
    """

    folder: Path
    space: NASSpace
    provenance: dict[str, Any]
    trained: pd.DataFrame
    measured: pd.DataFrame
    networks: pd.DataFrame
    batches: tuple[int, ...]

    @property
    def pool(self) -> pd.DataFrame:
        """Complete networks of the search space (the rows searches choose from), in
        pool order."""
        rows = self.networks[(self.networks["kind"] == "space") & self.networks["complete"]]
        return rows.sort_values("index").reset_index(drop=True)

    @property
    def references(self) -> pd.DataFrame:
        """The reference networks (complete or not)."""
        return self.networks[self.networks["kind"] == "reference"].reset_index(drop=True)

    @property
    def has_energy(self) -> bool:
        """Whether any energy was measured (a CPU-made table has none)."""
        cols = [f"energy_per_image_mj_b{b}" for b in self.batches]
        return bool(self.networks[cols].notna().any().any())


_PER_BATCH = (
    "runtime_ms",
    "runtime_graph_ms",
    "host_dispatch_ms",
    "power_w",
    "energy_mj",
    "energy_per_image_mj",
    "peak_mem_bytes",
    "status",
)
_POWER_COLUMNS = ("power_w", "energy_mj", "energy_per_image_mj")


def _last_usable(frame: pd.DataFrame, usable: tuple[str, ...]) -> pd.DataFrame:
    """One row per key: the last usable row, else the last row."""
    frame = frame.assign(_usable=frame["status"].isin(usable), _order=np.arange(len(frame)))
    frame = frame.sort_values(["_usable", "_order"])
    return frame.groupby("key", sort=False).tail(1).drop(columns=["_usable", "_order"])


def _wide(measured: pd.DataFrame, batches: Sequence[int]) -> pd.DataFrame:
    """One row per architecture (index ``arch``), ``<column>_b<batch>`` for every
    measured column and batch: the last usable row of each key, runtimes NaN where the
    row is not usable and power columns NaN where its power is not."""
    m = _last_usable(measured, USABLE_STATUS)
    parts = []
    for b in batches:
        rows = m[m["batch"] == b].set_index("arch")
        part = rows[list(_PER_BATCH)].copy()
        bad = ~part["status"].isin(USABLE_STATUS)
        part.loc[bad, ["runtime_ms", "runtime_graph_ms", "host_dispatch_ms"]] = np.nan
        no_power = ~part["status"].isin(USABLE_POWER_STATUS)
        part.loc[no_power, list(_POWER_COLUMNS)] = np.nan
        part.columns = [f"{c}_b{b}" for c in part.columns]
        parts.append(part)
    return pd.concat(parts, axis=1) if parts else pd.DataFrame()


def read_measurements(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """The measured rows of a benchmark folder in the wide form of
    :attr:`NASBenchmark.networks` (index: architecture key; ``runtime_ms_b1`` ...), for
    every batch it holds, whether or not its networks were trained: a second
    measurement (``hwml nas benchmark --measure-only``) in the shape of the first.

    Raises:
        DatasetError: the folder has no ``measured.csv``.
    """
    from hwml.data import dataset_path

    measured = read_table(dataset_path(folder), "measured")
    return _wide(measured, sorted(int(b) for b in measured["batch"].unique()))


def load_nas_benchmark(folder: str | os.PathLike[str]) -> NASBenchmark:
    """Read a benchmark folder (a name under ``data/`` or a path).

    A network trained or measured more than once (a rerun after an error) keeps its last
    usable row.

    Raises:
        DatasetError: the folder has no space in its provenance, or lacks a table.
    """
    from hwml.data import dataset_path

    path = dataset_path(folder)
    prov = read_provenance(path)
    if "space" not in prov:
        raise DatasetError(f"{path}: no search space in provenance.json (not a NAS benchmark?)")
    space = NASSpace.from_spec(prov["space"])
    trained = read_table(path, "trained")
    measured = read_table(path, "measured")
    batches = tuple(int(b) for b in prov.get("batches", sorted(measured["batch"].unique())))

    t = _last_usable(trained, ("ok",))
    nets = t[["key", "index", "kind", "params", "test_error", "train_time_s", "status"]].rename(
        columns={"status": "train_status"}
    )
    nets.loc[nets["train_status"] != "ok", "test_error"] = np.nan
    complete = nets["train_status"] == "ok"
    wide = _wide(measured, batches)
    nets = nets.merge(wide, left_on="key", right_index=True, how="left")
    for b in batches:
        complete &= nets[f"runtime_ms_b{b}"].notna().to_numpy()
    nets["complete"] = complete.to_numpy()
    return NASBenchmark(
        folder=path,
        space=space,
        provenance=prov,
        trained=trained,
        measured=measured,
        networks=nets.reset_index(drop=True),
        batches=batches,
    )
