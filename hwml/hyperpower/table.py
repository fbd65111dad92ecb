"""The tabular HyperPower benchmark: its two tables, its configurations, and reading it.

Comparing search methods (HW-IECI, hardware-unaware BO, random search, GA) needs many
seeds per method, and every seed would train dozens of networks. Instead, a finite set
of configurations is measured once on the GPU, committed under ``data/``, and every
method then searches that table with :class:`hwml.optimize.TabularObjective` on any
machine (the survey's Figure 4: best error against evaluations).

A benchmark folder holds two tables, built by :mod:`hwml.hyperpower.runner` so that power
is never measured while something else runs on the same GPU:

(a) ``structures.csv``: a seeded set of distinct structural configurations ``z``
    (filters, kernel size, dense units), each measured alone at a fixed inference batch:
    runtime, average power over a window aligned to the NVML energy counter, energy per
    image and peak memory, with the size features of
    :func:`hwml.tasks.cnn.structural_features`. This is HyperPower's offline profiling,
    the training set of its linear power and memory models.
(b) ``configs.csv``: a few thousand full configurations, each one structure of (a) with
    sampled learning rate, momentum and weight decay, trained once
    (:func:`hwml.tasks.cnn.train_cnn`): test error, training time, status.

This module says what the columns mean (:func:`column_docs`), which configurations a
benchmark holds (:func:`sample_structures`, :func:`sample_configs`), and reads a folder
(:func:`load_benchmark`, :func:`benchmark_space`, :func:`benchmark_objective`,
:func:`summarize_benchmark`).

Which configurations: structure ``j`` of (a) is the ``j``-th distinct draw from the
structural dimensions of the space (uniform per dimension) with ``structure_seed``;
configuration ``i`` of (b) uses structure ``perm_r[i mod S]`` where ``perm_r`` is a seeded
permutation of the ``S`` structures for round ``r = i div S`` (so every structure is trained
about equally often), and its training hyper-parameters come from a generator seeded by
``(seed, i)``, rounded to four significant digits. Lists are prefix-stable: asking for
more configurations later extends the same sequence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwml.data import DatasetError, read_provenance
from hwml.optimize import Space, TabularObjective, derive_seed
from hwml.tasks.cnn import STRUCTURAL, TRAINING, cnn_space

__all__ = [
    "CONFIG_COLUMNS",
    "IDENTITY_FACTS",
    "STRUCTURE_COLUMNS",
    "benchmark_objective",
    "benchmark_space",
    "column_docs",
    "load_benchmark",
    "read_table",
    "sample_configs",
    "sample_structures",
    "structure_key",
    "summarize_benchmark",
]

IDENTITY_FACTS = (
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
        space: the search space (default :func:`hwml.tasks.cnn.cnn_space`).

    Returns:
        Frame with ``key`` and the :data:`~hwml.tasks.cnn.STRUCTURAL` columns, ``n`` rows.

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
        space: the search space (default :func:`hwml.tasks.cnn.cnn_space`).

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


# ====================================================================== reading


def read_table(folder: Path, table: str) -> pd.DataFrame:
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
    configs = read_table(folder, "configs").drop_duplicates("key", keep="first")
    structures = read_table(folder, "structures").drop_duplicates("key", keep="first")
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
    ``power_w`` and ``peak_mem_bytes`` (what :func:`hwml.hyperpower.models.hardware_constraints`
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
    out: dict[str, Any] = {"provenance": {k: prov.get(k) for k in IDENTITY_FACTS if k != "space"}}
    qs = [0.0, 0.1, 0.5, 0.9, 1.0]
    if (folder / "structures.csv").exists():
        s = read_table(folder, "structures")
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
        c = read_table(folder, "configs")
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
