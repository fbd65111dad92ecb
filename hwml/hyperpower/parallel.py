"""HW-IECI searching in parallel: ``q`` trainings at once, compared on the tabular benchmark.

A live search with ``q`` GPUs (or ``q`` trainings sharing one) proposes ``q``
configurations and trains them at the same time (:func:`hwml.optimize.minimize_batch`).
Whether that pays depends on how much the extra, less informed proposals cost in
evaluations against what the parallel trainings save in wall-clock time. The tabular
benchmark answers it without a GPU: every configuration's training time was measured, so
a search with ``q`` simulated workers advances a clock by those times.

:func:`parallel_comparison` runs HW-IECI for each ``q``, mode (asynchronous or
synchronous) and seed; :func:`save_parallel_comparison` keeps the histories under the
benchmark folder's ``parallel/`` with a JSON sidecar (settings, command, date, commit),
and :func:`load_parallel_comparison` reads them back when the settings match, so the
chapter need not rerun them (``hwml optimize parallel`` writes them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwml.data import dataset_path, git_commit, json_safe, now_iso
from hwml.hyperpower.problem import HyperPowerProblem
from hwml.optimize import SearchSettings, run_batch_searches

__all__ = [
    "PARALLEL_FILE",
    "load_parallel_comparison",
    "parallel_comparison",
    "parallel_settings",
    "save_parallel_comparison",
]

PARALLEL_FILE = "parallel/hw-ieci-q.csv"
"""Where ``hwml optimize parallel`` keeps the histories, under the benchmark folder."""


def parallel_settings(
    problem: HyperPowerProblem,
    *,
    qs: Sequence[int],
    modes: Sequence[str],
    seeds: Sequence[int],
    n_evals: int,
    n_init: int,
    settings: SearchSettings,
) -> dict[str, Any]:
    """What decides a comparison's histories (a cached table is used only when they match).

    Returns:
        ``benchmark``, ``budgets``, ``qs``, ``modes``, ``seeds``, ``n_evals``, ``n_init``,
        ``gp_restarts``, ``log_objective``, ``method`` (``"hw-ieci"``).
    """
    return json_safe(
        {
            "benchmark": problem.folder.name,
            "budgets": dict(problem.budgets),
            "method": "hw-ieci",
            "qs": [int(q) for q in qs],
            "modes": list(modes),
            "seeds": [int(s) for s in seeds],
            "n_evals": int(n_evals),
            "n_init": int(n_init),
            "gp_restarts": int(settings.bo.n_restarts),
            "log_objective": bool(settings.bo.log_objective),
        }
    )


def parallel_comparison(
    problem: HyperPowerProblem,
    *,
    qs: Sequence[int] = (1, 2, 4, 8),
    modes: Sequence[str] = ("async", "sync"),
    seeds: Sequence[int] = range(20),
    n_evals: int = 50,
    n_init: int = 5,
    settings: SearchSettings | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """HW-IECI with ``q`` trainings in flight, for every ``q``, mode and seed, on the
    benchmark's measured training times (the simulated clock of
    :func:`hwml.optimize.minimize_batch`).

    Args:
        problem: the benchmark as a constrained search (:func:`hyperpower_problem`).
        qs: trainings at once.
        modes: ``"async"`` (a new proposal as each training ends) and/or ``"sync"``
            (batches of ``q``).
        seeds: search seeds.
        n_evals: evaluations (trainings) per search.
        n_init: random (model-filtered) evaluations that start each search.
        settings: search settings.
        n_jobs: worker processes of this machine running the searches.

    Returns:
        The histories with ``q`` and ``mode`` (see
        :func:`hwml.optimize.run_batch_searches`); ``attrs["settings"]`` holds
        :func:`parallel_settings`.
    """
    settings = settings or SearchSettings()
    histories = run_batch_searches(
        problem.objective,
        problem.space,
        problem.constraints("hw-ieci"),
        method="hw-ieci",
        qs=qs,
        modes=modes,
        seeds=list(seeds),
        n_evals=n_evals,
        n_init=n_init,
        settings=settings,
        n_jobs=n_jobs,
    )
    histories.attrs["settings"] = parallel_settings(
        problem,
        qs=qs,
        modes=modes,
        seeds=list(seeds),
        n_evals=n_evals,
        n_init=n_init,
        settings=settings,
    )
    return histories


def save_parallel_comparison(
    histories: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    command: str | None = None,
    commit: str | None = None,
) -> Path:
    """Write a comparison's histories (CSV) with a JSON sidecar beside it.

    Args:
        histories: output of :func:`parallel_comparison` (its ``attrs["settings"]``).
        path: the CSV file (its folder is created).
        command: the command line to record.
        commit: the code's commit (default: ``git rev-parse``).

    Returns:
        The CSV path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    histories.to_csv(path, index=False)
    info = {
        "settings": histories.attrs.get("settings", {}),
        "rows": len(histories),
        "clock": "simulated: each evaluation takes its configuration's measured train_time_s; "
        "the optimizer's own time is not on the clock",
        "command": command,
        "date": now_iso(),
        "git_commit": commit or git_commit(),
    }
    path.with_suffix(".json").write_text(json.dumps(json_safe(info), indent=1) + "\n")
    return path


def load_parallel_comparison(
    folder: str | os.PathLike[str],
    expect: Mapping[str, Any],
    file: str = PARALLEL_FILE,
) -> pd.DataFrame | None:
    """The cached comparison of a benchmark folder, if it was run with ``expect``.

    Args:
        folder: the benchmark folder, or its name under ``data/``.
        expect: :func:`parallel_settings` of the comparison wanted.
        file: the CSV under the folder.

    Returns:
        The histories (``attrs["settings"]`` and ``attrs["info"]`` set), or None when the
        file is missing or was made with other settings.
    """
    path = dataset_path(folder) / file
    sidecar = path.with_suffix(".json")
    if not path.exists() or not sidecar.exists():
        return None
    info = json.loads(sidecar.read_text())
    if info.get("settings") != json_safe(dict(expect)):
        return None
    histories = pd.read_csv(path)
    histories["reason"] = [v if isinstance(v, str) else "" for v in histories["reason"]]
    histories.attrs["settings"] = info["settings"]
    histories.attrs["info"] = info
    return histories
