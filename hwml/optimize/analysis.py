"""Analysis of search histories: convergence curves, speed-ups, Pareto fronts.

These turn the history tables of :func:`hwml.optimize.search.minimize` into what the
survey's figures show: best feasible objective against evaluations or time, averaged over
seeds with a confidence band (Figure 4), and Pareto fronts of two objectives (Figure 2).
Non-dominated sorting and the hypervolume are pymoo's (``NonDominatedSorting``, ``HV``,
computed by its moocore backend); this module adds the handling of NaN rows and of points
outside the reference, and the per-run bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import t as student_t

from hwml.optimize.bo import BOSettings
from hwml.optimize.space import Space

__all__ = [
    "best_so_far",
    "evals_to_reach",
    "hypervolume_2d",
    "hypervolume_curve",
    "mean_band",
    "on_grid",
    "pareto_front",
    "pareto_rows",
]

RUN_KEYS = ["method", "seed"]


def best_so_far(
    history: pd.DataFrame,
    feasible_only: bool = True,
    *,
    incumbent: str = "observed",
    space: Space | None = None,
    settings: BOSettings | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Best objective found so far after each evaluation, per run.

    Args:
        history: one or more concatenated history tables (a run is a ``(method, seed)``
            pair).
        feasible_only: count only successful evaluations that met the budgets
            (``feasible`` column); otherwise every successful one.
        incumbent: ``"observed"``: the lowest observed objective so far (exact for an
            objective without noise, such as a benchmark table); ``"posterior"``: the
            noise-aware incumbent, the counted evaluation with the lowest posterior mean
            of a GP fitted to the run so far, valued at that mean
            (:func:`~hwml.optimize.incumbent.incumbent_curve`, which needs ``space``).
        space: the search space (for ``"posterior"``).
        settings: GP settings (for ``"posterior"``).
        seed: seed of the GP restarts (for ``"posterior"``).

    Returns:
        Frame with ``method``, ``seed``, ``iteration``, ``cumulative_time_s`` (s) and
        ``best_objective`` (NaN until the run's first counted evaluation), sorted by run
        and iteration; ``"posterior"`` adds ``incumbent_iteration``,
        ``incumbent_observed`` and ``incumbent_std``.

    Raises:
        ValueError: an unknown ``incumbent``, or ``"posterior"`` without ``space``.
    """
    if incumbent != "observed":
        from hwml.optimize.incumbent import INCUMBENT_KINDS, incumbent_curve

        if incumbent not in INCUMBENT_KINDS:
            raise ValueError(f"incumbent must be one of {INCUMBENT_KINDS}, got {incumbent!r}")
        if space is None:
            raise ValueError("best_so_far(incumbent='posterior') needs the search space")
        return incumbent_curve(
            history, space, feasible_only=feasible_only, settings=settings, seed=seed
        )
    frame = history.sort_values([*RUN_KEYS, "iteration"]).reset_index(drop=True)
    counted = (frame["status"] == "ok") & np.isfinite(frame["objective"].to_numpy(dtype=float))
    if feasible_only:
        counted &= frame["feasible"].astype(bool)
    value = frame["objective"].where(counted, np.inf)
    best = value.groupby([frame[k] for k in RUN_KEYS], sort=False).cummin()
    out = frame[[*RUN_KEYS, "iteration", "cumulative_time_s"]].copy()
    out["best_objective"] = best.replace(np.inf, np.nan).to_numpy()
    return out


def on_grid(
    curves: pd.DataFrame,
    grid: Sequence[float] | np.ndarray,
    x: str = "cumulative_time_s",
    value: str = "best_objective",
) -> pd.DataFrame:
    """Resample best-so-far curves onto a common grid, as step functions.

    The value at grid point ``g`` is the best objective of the last evaluation with
    ``x <= g`` (NaN before the first). Runs are thus forward-filled past their end.

    Args:
        curves: output of :func:`best_so_far` (or of :func:`hypervolume_curve`).
        grid: increasing grid values, in the unit of ``x``.
        x: ``"iteration"`` or ``"cumulative_time_s"`` (s).
        value: the column to resample (``"hypervolume"`` for hypervolume curves).

    Returns:
        Frame with ``method``, ``seed``, ``x`` (the grid) and ``value``.
    """
    grid = np.asarray(grid, dtype=float)
    parts = []
    for (method, seed), run in curves.groupby(RUN_KEYS, sort=True):
        run = run.sort_values(x)
        xs = run[x].to_numpy(dtype=float)
        ys = run[value].to_numpy(dtype=float)
        idx = np.searchsorted(xs, grid, side="right") - 1
        values = np.where(idx >= 0, ys[np.clip(idx, 0, None)], np.nan)
        parts.append(pd.DataFrame({"method": method, "seed": seed, x: grid, value: values}))
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=[*RUN_KEYS, x, value])
    )


def mean_band(
    curves: pd.DataFrame,
    x: str = "iteration",
    grid: Sequence[float] | np.ndarray | None = None,
    confidence: float = 0.95,
    value: str = "best_objective",
) -> pd.DataFrame:
    """Mean best-so-far curve over seeds with a Student-t confidence band, per method.

    Args:
        curves: output of :func:`best_so_far` (or :func:`hypervolume_curve`) for many runs.
        x: ``"iteration"`` or ``"cumulative_time_s"`` (s).
        grid: common grid of ``x``; default: every ``x`` value any run has.
        confidence: confidence level of the band, e.g. 0.95.
        value: the column to average.

    Returns:
        Frame with ``method``, ``x``, ``mean``, ``std``, ``n`` (seeds with a value at
        that point; runs without a feasible point yet are left out), ``lower`` and
        ``upper`` (NaN where ``n < 2``).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if grid is None:
        grid = np.unique(curves[x].to_numpy(dtype=float))
    sampled = on_grid(curves, grid, x, value)
    groups = sampled.groupby(["method", x], sort=True)[value]
    out = groups.agg(mean="mean", std="std", n="count").reset_index()
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = student_t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * out["std"] / np.sqrt(n)
    half = half.where(n >= 2)
    out["lower"] = out["mean"] - half
    out["upper"] = out["mean"] + half
    return out


def evals_to_reach(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Evaluations and time each run needed to reach ``best_objective <= threshold``.

    A near-optimal threshold is typically ``optimum + tolerance`` (HyperPower measures
    how fast each method reaches the near-optimal region).

    Args:
        curves: output of :func:`best_so_far`.
        threshold: objective level, in the objective's unit.

    Returns:
        Frame with ``method``, ``seed``, ``reached`` (bool), ``evals`` (iteration at which
        it was first reached, NaN if never) and ``time_s`` (cumulative time then, s).
    """
    rows = []
    for (method, seed), run in curves.groupby(RUN_KEYS, sort=True):
        run = run.sort_values("iteration")
        hit = run["best_objective"].to_numpy(dtype=float) <= threshold
        if hit.any():
            first = run.iloc[int(np.argmax(hit))]
            rows.append(
                (method, seed, True, float(first["iteration"]), float(first["cumulative_time_s"]))
            )
        else:
            rows.append((method, seed, False, np.nan, np.nan))
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "reached", "evals", "time_s"])


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Non-dominated points of two objectives, both minimized.

    A point is dominated if another is no worse in both objectives and better in one.
    Exact duplicates of a non-dominated point are all kept; rows with NaN are never on
    the front. The front is pymoo's first non-dominated front of the finite rows.

    Args:
        points: shape ``(n, 2)``.

    Returns:
        Boolean mask of shape ``(n,)``.
    """
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {p.shape}")
    mask = np.zeros(len(p), dtype=bool)
    valid = np.flatnonzero(np.all(np.isfinite(p), axis=1))
    if len(valid):
        front = NonDominatedSorting().do(p[valid], only_non_dominated_front=True)
        mask[valid[front]] = True
    return mask


def pareto_rows(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows of ``frame`` on the Pareto front of columns ``x`` and ``y`` (both minimized).

    Args:
        frame: any table, e.g. a history filtered to successful evaluations.
        x: first objective column.
        y: second objective column.

    Returns:
        The non-dominated rows, sorted by ``x``.
    """
    mask = pareto_front(frame[[x, y]].to_numpy(dtype=float))
    return frame.loc[mask].sort_values([x, y])


def hypervolume_2d(points: np.ndarray, reference: Sequence[float]) -> float:
    """Area dominated by a set of points and bounded by a reference point (minimization).

    Only finite points strictly better than the reference in both objectives contribute;
    the area is pymoo's hypervolume of those (the sum of the front's slabs, added up in
    its own order: the last digit may differ from a sum taken in another order).

    Args:
        points: shape ``(n, 2)``.
        reference: ``(r_x, r_y)``, worse than every point of interest, in the objectives'
            units.

    Returns:
        The hypervolume, in the product of the two objectives' units.
    """
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    ref = np.array([float(v) for v in reference])
    if ref.shape != (2,):
        raise ValueError(f"reference must have two values, got {ref.shape[0]}")
    p = p[np.all(np.isfinite(p), axis=1) & np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    return float(HV(ref_point=ref)(p))


def hypervolume_curve(
    history: pd.DataFrame, x: str, y: str, reference: Sequence[float]
) -> pd.DataFrame:
    """Hypervolume of the designs found so far after each evaluation, per run.

    Only successful evaluations (``status == "ok"`` where the column exists) with finite
    ``x`` and ``y`` count.

    Args:
        history: one or more concatenated histories holding columns ``x`` and ``y``
            (both minimized), e.g. from :func:`hwml.optimize.multiobjective.minimize_pareto`.
        x: first objective column.
        y: second objective column.
        reference: ``(r_x, r_y)`` of :func:`hypervolume_2d`, in the objectives' units.

    Returns:
        Frame with ``method``, ``seed``, ``iteration``, ``cumulative_time_s`` (s, when the
        history has it) and ``hypervolume`` (product of the two units), sorted by run
        and iteration.
    """
    frame = history.sort_values([*RUN_KEYS, "iteration"]).reset_index(drop=True)
    ok = np.ones(len(frame), dtype=bool)
    if "status" in frame.columns:
        ok &= (frame["status"] == "ok").to_numpy()
    pts = frame[[x, y]].to_numpy(dtype=float, copy=True)
    pts[~ok] = np.nan
    hv = np.empty(len(frame))
    for _, idx in frame.groupby(RUN_KEYS, sort=False).indices.items():
        for k, i in enumerate(idx):
            hv[i] = hypervolume_2d(pts[idx[: k + 1]], reference)
    keep = [c for c in (*RUN_KEYS, "iteration", "cumulative_time_s") if c in frame.columns]
    out = frame[keep].copy()
    out["hypervolume"] = hv
    return out
