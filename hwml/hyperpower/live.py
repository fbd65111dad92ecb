"""Live HyperPower searches (every evaluation a training on the GPU), read back.

``hwml optimize live`` writes one history per method and seed under a benchmark folder's
``live/`` with a JSON sidecar (budgets, quantiles, models' errors, command, date).
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

import pandas as pd

from hwml.data import DatasetError, dataset_path
from hwml.hyperpower.table import benchmark_space
from hwml.optimize import Space, incumbent_curve, read_history

__all__ = ["live_best_so_far", "load_live_runs"]


def load_live_runs(
    folder: str | os.PathLike[str],
    *,
    subfolder: str = "live",
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The live searches of a benchmark folder: ``live/*.csv`` with their JSON sidecars.

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        subfolder: where the histories lie in it: ``"live"`` (one training at a time, the
            default) or ``"live-batch"`` (several in flight, ``scripts/benchmark.sh``'s
            ``live-batch`` phase; each sidecar's ``batch`` says how many).

    Returns:
        ``(histories, info)``: the histories concatenated (columns of
        :mod:`hwml.optimize.history`, with the constraints ``power_w`` and ``mem_bytes``),
        sorted by method and seed; and ``{file stem: sidecar}`` (budgets, models' errors,
        command, date).

    Raises:
        DatasetError: the folder has no live runs.
    """
    path = dataset_path(folder)
    files = sorted((path / subfolder).glob("*.csv"))
    if not files:
        raise DatasetError(
            f"{path}: no live searches under {subfolder}/ (run `hwml optimize live`)"
        )
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


def live_best_so_far(
    live: pd.DataFrame,
    *,
    incumbent: str = "observed",
    space: Space | None = None,
) -> pd.DataFrame:
    """Live search histories with the best feasible error so far of each run.

    Args:
        live: Histories of :func:`load_live_runs`.
        incumbent: ``"observed"``: the lowest observed error so far; ``"posterior"``: the
            noise-aware incumbent, a good evaluation's GP posterior mean
            (:func:`hwml.optimize.incumbent_curve`; a trained error is noisy, and its
            lowest observed value is biased low).
        space: the benchmark's search space (for ``"posterior"``;
            :func:`~hwml.hyperpower.table.benchmark_space`).

    Returns:
        ``live`` with ``good`` (succeeded and met the budgets as measured), ``measured_over``
        (measured over a budget after training) and ``best`` (the incumbent's error among
        the run's good evaluations so far; NaN before the first).

    Raises:
        ValueError: an unknown ``incumbent``, or ``"posterior"`` without ``space``.
    """
    out = live.assign(
        good=live["feasible"].astype(bool) & (live["status"] == "ok"),
        measured_over=~live["feasible_measured"].fillna(True).astype(bool),
    )
    runs = [out["method"], out["seed"]]
    if incumbent == "observed":
        out["best"] = out["objective"].where(out["good"]).groupby(runs).cummin()
        out["best"] = out.groupby(["method", "seed"])["best"].ffill()
        return out
    if incumbent != "posterior":
        raise ValueError(f"incumbent must be 'observed' or 'posterior', got {incumbent!r}")
    if space is None:
        raise ValueError("live_best_so_far(incumbent='posterior') needs the search space")
    curve = incumbent_curve(out.assign(feasible=out["good"]), space)
    keyed = curve.set_index(["method", "seed", "iteration"])["best_objective"]
    index = pd.MultiIndex.from_frame(out[["method", "seed", "iteration"]])
    out["best"] = keyed.reindex(index).to_numpy()
    return out
