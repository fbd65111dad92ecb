"""The incumbent: the configuration a search reports as its best, and the value it reports.

With a noisy objective (a validation error measured from one training, say) the lowest
*observed* value is biased low: among many evaluations, the one whose noise happened to
be most negative tends to win, so the reported best can lie below the true optimum. The
*posterior* incumbent is the feasible evaluated configuration with the lowest posterior
mean of a GP fitted to the successful evaluations (the surrogate of
:mod:`hwml.optimize.bo`, whose noise variance is fitted too), and the value reported is
that posterior mean: an estimate of the configuration's noise-free objective.

Two kinds, :data:`INCUMBENT_KINDS`:

* ``"posterior"`` (the default of :func:`find_incumbent`): for what a search reports;
* ``"observed"``: the lowest observed value, exact where the objective has no noise
  (a pre-measured benchmark table), and what
  :func:`~hwml.optimize.analysis.best_so_far` gives unless told otherwise.

:func:`incumbent_curve` gives the incumbent after every evaluation of every run, in the
columns of :func:`~hwml.optimize.analysis.best_so_far`, so the reach statistics of
:mod:`hwml.optimize.experiments` take it as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwml.optimize.analysis import RUN_KEYS, best_so_far
from hwml.optimize.bo import BOSettings, GPSurrogate, GPWarmStart, fit_surrogate
from hwml.optimize.seeding import check_seed, derive_seed
from hwml.optimize.space import Space

__all__ = ["INCUMBENT_KINDS", "Incumbent", "find_incumbent", "incumbent_curve"]

INCUMBENT_KINDS = ("posterior", "observed")
"""How an incumbent is chosen and valued: lowest GP posterior mean, or lowest observed value."""


@dataclass(frozen=True)
class Incumbent:
    """The configuration a search reports as its best.

    Attributes:
        kind: ``"posterior"`` or ``"observed"``.
        iteration: the history row (``iteration``) of the configuration.
        config: the configuration, one value per dimension.
        value: the value reported, in the objective's unit: the GP posterior mean at the
            configuration (``"posterior"``) or its observed value (``"observed"``).
        observed: the objective observed at the configuration.
        std: the posterior standard deviation of the noise-free objective there (NaN for
            ``"observed"``).
    """

    kind: str
    iteration: int
    config: dict[str, Any]
    value: float
    observed: float
    std: float = math.nan


def _check_kind(kind: str) -> None:
    if kind not in INCUMBENT_KINDS:
        raise ValueError(f"incumbent kind must be one of {INCUMBENT_KINDS}, got {kind!r}")


def _counted(run: pd.DataFrame, feasible_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Masks of one run's rows: successful ones, and those that may be the incumbent."""
    values = run["objective"].to_numpy(dtype=float)
    ok = (run["status"] == "ok").to_numpy() & np.isfinite(values)
    eligible = ok & run["feasible"].astype(bool).to_numpy() if feasible_only else ok
    return ok, eligible


def _posterior(gp: GPSurrogate, points: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and std of the objective at points (back from logarithms if modelled)."""
    mean, std = gp.predict(points)
    if log:  # the median of the log-normal, and the delta-method std
        mean = np.exp(mean)
        std = mean * std
    return mean, std


def _pick(
    run: pd.DataFrame,
    space: Space,
    upto: int,
    ok: np.ndarray,
    eligible: np.ndarray,
    settings: BOSettings,
    rng: np.random.Generator,
    warm: GPWarmStart | None,
) -> tuple[int, float, float]:
    """Row index, posterior mean and std of the incumbent among the first ``upto`` rows."""
    fit_rows = np.flatnonzero(ok[:upto])
    values = run["objective"].to_numpy(dtype=float)[fit_rows]
    log = settings.log_objective and bool(np.all(values > 0))
    points = space.encode(run.iloc[fit_rows][space.names])
    gp = fit_surrogate(points, np.log(values) if log else values, rng, settings, warm, log)
    rows = np.flatnonzero(eligible[:upto])
    mean, std = _posterior(gp, space.encode(run.iloc[rows][space.names]), log)
    best = int(np.argmin(mean))
    return int(rows[best]), float(mean[best]), float(std[best])


def find_incumbent(
    history: pd.DataFrame,
    space: Space,
    *,
    kind: str = "posterior",
    feasible_only: bool = True,
    settings: BOSettings | None = None,
    seed: int = 0,
) -> Incumbent:
    """The best configuration of one search, noise-aware by default.

    Args:
        history: the history of one run (:func:`~hwml.optimize.search.minimize`).
        space: the search space.
        kind: ``"posterior"``: the eligible row with the lowest posterior mean of a GP
            fitted (with ``settings.n_restarts`` restarts) to every successful row;
            ``"observed"``: the eligible row with the lowest observed objective.
        feasible_only: only rows that met the budgets (``feasible``) are eligible.
        settings: GP settings (``n_restarts``, ``max_iters``, ``log_objective``).
        seed: seed of the GP's restarts.

    Returns:
        The incumbent.

    Raises:
        ValueError: an unknown ``kind``, a history of several runs, or no eligible row.
    """
    _check_kind(kind)
    runs = history.groupby(RUN_KEYS).ngroups if len(history) else 0
    if runs != 1:
        raise ValueError(f"find_incumbent needs the history of one run, got {runs} runs")
    run = history.sort_values("iteration").reset_index(drop=True)
    ok, eligible = _counted(run, feasible_only)
    if not eligible.any():
        which = "successful feasible" if feasible_only else "successful"
        raise ValueError(f"no {which} evaluation in the history to report")
    observed = run["objective"].to_numpy(dtype=float)
    std = math.nan
    if kind == "observed":
        rows = np.flatnonzero(eligible)
        row = int(rows[np.argmin(observed[rows])])
        value = float(observed[row])
    else:
        rng = np.random.default_rng(derive_seed(check_seed(seed), len(run)))
        row, value, std = _pick(
            run, space, len(run), ok, eligible, settings or BOSettings(), rng, None
        )
    config = space.to_dicts(run.iloc[[row]][space.names].reset_index(drop=True))[0]
    return Incumbent(
        kind, int(run["iteration"].iloc[row]), config, value, float(observed[row]), std
    )


def incumbent_curve(
    history: pd.DataFrame,
    space: Space,
    *,
    kind: str = "posterior",
    feasible_only: bool = True,
    settings: BOSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The incumbent after every evaluation of every run.

    For ``"posterior"``, after evaluation ``t`` a GP is fitted to the run's successful
    evaluations up to ``t`` and the eligible one with the lowest posterior mean is the
    incumbent. The fits of one run are chained as in a search (:class:`GPWarmStart`:
    full fits every ``settings.refit_every`` evaluations, warm-started ones between), so
    a curve costs about one search's GP overhead per run.

    Args:
        history: one or more concatenated histories.
        space: the search space.
        kind: ``"posterior"`` or ``"observed"``.
        feasible_only: only rows that met the budgets may be the incumbent.
        settings: GP settings.
        seed: seed of the GP restarts (derived per evaluation).

    Returns:
        The columns of :func:`~hwml.optimize.analysis.best_so_far` (``best_objective``:
        the incumbent's value, NaN before the first eligible evaluation) plus
        ``incumbent_iteration``, ``incumbent_observed`` and ``incumbent_std`` (NaN for
        ``"observed"``), sorted by run and iteration.
    """
    _check_kind(kind)
    settings = settings or BOSettings()
    seed = check_seed(seed)
    parts = [
        _run_curve(run, space, kind, feasible_only, settings, seed)
        for _, run in history.groupby(RUN_KEYS, sort=True)
    ]
    if not parts:
        return best_so_far(history, feasible_only).assign(
            incumbent_iteration=pd.Series(dtype=np.int64),
            incumbent_observed=pd.Series(dtype=float),
            incumbent_std=pd.Series(dtype=float),
        )
    return pd.concat(parts, ignore_index=True)


def _run_curve(
    run: pd.DataFrame,
    space: Space,
    kind: str,
    feasible_only: bool,
    settings: BOSettings,
    seed: int,
) -> pd.DataFrame:
    """:func:`incumbent_curve` of one run."""
    run = run.sort_values("iteration").reset_index(drop=True)
    out = best_so_far(run, feasible_only)
    ok, eligible = _counted(run, feasible_only)
    observed = run["objective"].to_numpy(dtype=float)
    rows = np.full(len(run), -1)
    value = np.full(len(run), np.nan)
    std = np.full(len(run), np.nan)
    warm = GPWarmStart()
    for t in range(1, len(run) + 1):
        if not eligible[:t].any():
            continue
        if kind == "observed":
            cand = np.flatnonzero(eligible[:t])
            rows[t - 1] = cand[np.argmin(observed[cand])]
            value[t - 1] = observed[rows[t - 1]]
            continue
        rng = np.random.default_rng(derive_seed(seed, t))
        rows[t - 1], value[t - 1], std[t - 1] = _pick(
            run, space, t, ok, eligible, settings, rng, warm
        )
    found = rows >= 0
    out["best_objective"] = value
    out["incumbent_iteration"] = np.where(
        found, run["iteration"].to_numpy()[np.maximum(rows, 0)], -1
    )
    out["incumbent_observed"] = np.where(found, observed[np.maximum(rows, 0)], np.nan)
    out["incumbent_std"] = std
    return out
