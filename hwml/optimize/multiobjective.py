"""Searches for a Pareto front of two (or more) objectives: ParEGO, random search, NSGA-II.

The survey's Figure 2 (from Reagen et al.) compares model-based optimization with random
search and a genetic algorithm by the accuracy-energy designs each finds. This module
runs those three on any objective that reports several quantities to minimize, e.g. test
error and energy per inference:

* ``"parego"``: model-based. Each iteration draws a random weight vector, scalarizes every
  observation with the augmented Chebyshev function of its normalized objectives
  (Knowles, 2006) and proposes the maximizer of expected improvement under a GP fitted to
  those scalars (:func:`hwml.optimize.bo.propose_bo`). Different weights steer different
  iterations towards different parts of the front.
* ``"random"``: uniform random configurations.
* ``"nsga"``: the steady-state GA of :mod:`hwml.optimize.baselines` with NSGA-II's
  selection: evaluations are ranked by non-dominated front, then by crowding distance
  (Deb et al., 2002), and parents are drawn from the best-ranked ones.

Every objective is treated as a black box revealed by the evaluation. Like
:func:`hwml.optimize.search.minimize`, each iteration draws from its own generator seeded
from ``(seed, iteration)``, so a run is a function of its seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.bo import BOSettings, Proposal, propose_bo
from hwml.optimize.candidates import Observations
from hwml.optimize.search import _candidate_pool, _check_int, _evaluate, _Evaluation
from hwml.optimize.seeding import check_seed, derive_seed, seed_everything
from hwml.optimize.space import Space

__all__ = [
    "PARETO_METHODS",
    "ParetoSettings",
    "chebyshev",
    "crowding_distance",
    "minimize_pareto",
    "nondominated_ranks",
    "nsga_fitness",
    "simplex_weights",
]

PARETO_METHODS = ("parego", "random", "nsga")
"""Multi-objective search methods: model-based ParEGO, random search, NSGA-II-style GA."""


@dataclass(frozen=True)
class ParetoSettings:
    """Knobs of :func:`minimize_pareto`.

    Attributes:
        bo: settings of ParEGO's GP and candidate set.
        ga: settings of the GA (its population defaults to ``n_init``).
        log_objectives: scalarize the logarithms of the objectives (for positive
            quantities spanning orders of magnitude, such as error and energy); values
            that are not positive fall back to the linear scale.
        rho: weight of the linear term of the augmented Chebyshev function.
        seed_objective: seed ``random``/numpy/torch before each evaluation.
    """

    bo: BOSettings = field(default_factory=BOSettings)
    ga: GASettings = field(default_factory=GASettings)
    log_objectives: bool = True
    rho: float = 0.05
    seed_objective: bool = True


def _as_matrix(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must have shape (n, m), got {v.shape}")
    return v


def nondominated_ranks(values: np.ndarray) -> np.ndarray:
    """Non-dominated sorting (all objectives minimized), by pymoo's ``NonDominatedSorting``.

    Rank 0 is the Pareto front of the rows, rank 1 the front of the rest, and so on. A
    row is dominated by another that is no worse in every objective and better in one
    (so exact duplicates share a rank).

    Args:
        values: shape ``(n, m)``.

    Returns:
        Integer ranks of shape ``(n,)``; rows holding NaN get ``-1``.
    """
    v = _as_matrix(values)
    ranks = np.full(len(v), -1, dtype=int)
    valid = np.flatnonzero(np.all(np.isfinite(v), axis=1))
    if len(valid):
        _, rank = NonDominatedSorting().do(v[valid], return_rank=True)
        ranks[valid] = rank
    return ranks


def crowding_distance(values: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """NSGA-II crowding distance of each row within its non-dominated front.

    The distance of a row is the sum over objectives of the gap between its two
    neighbours on its front, divided by that objective's range on the front; the
    extreme rows of each objective get ``inf``.

    Kept by hand rather than pymoo's ``calc_crowding_distance``, which differs: it takes
    the mean over objectives instead of the sum (``m`` times smaller), adds the two
    half-gaps separately (rounding differs), and gives the extremes of an objective that
    is constant on the front 0 instead of ``inf``. The GA's selection order, and so every
    ``"nsga"`` history, would change. ``tests/optimize/test_pymoo_agreement.py`` checks
    that ours is ``m`` times pymoo's where the two definitions meet.

    Args:
        values: shape ``(n, m)``.
        ranks: output of :func:`nondominated_ranks` (computed when ``None``).

    Returns:
        Shape ``(n,)``, non-negative; NaN for rows holding NaN.
    """
    v = _as_matrix(values)
    ranks = nondominated_ranks(v) if ranks is None else np.asarray(ranks)
    out = np.full(len(v), np.nan)
    for r in np.unique(ranks[ranks >= 0]):
        members = np.flatnonzero(ranks == r)
        dist = np.zeros(len(members))
        for j in range(v.shape[1]):
            col = v[members, j]
            order = np.argsort(col, kind="stable")
            span = col[order[-1]] - col[order[0]]
            dist[order[0]] = dist[order[-1]] = np.inf
            if len(members) > 2 and span > 0:
                dist[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
        out[members] = dist
    return out


def nsga_fitness(values: np.ndarray) -> np.ndarray:
    """A scalar whose ascending order is NSGA-II's selection order.

    ``rank + 0.5 * (1 - c)`` with ``c`` the crowding distance mapped to ``[0, 1]`` by
    ``c / (1 + c)`` (``inf`` -> 1): lower fronts first, and within a front the less
    crowded rows first.

    Args:
        values: shape ``(n, m)``.

    Returns:
        Shape ``(n,)``; NaN for rows holding NaN.
    """
    v = _as_matrix(values)
    ranks = nondominated_ranks(v)
    crowd = crowding_distance(v, ranks)
    with np.errstate(invalid="ignore"):
        spread = np.where(np.isinf(crowd), 1.0, crowd / (1.0 + crowd))
    fitness = ranks + 0.5 * (1.0 - spread)
    return np.where(ranks >= 0, fitness, np.nan)


def simplex_weights(m: int, rng: np.random.Generator) -> np.ndarray:
    """A weight vector drawn uniformly from the unit simplex, shape ``(m,)``."""
    e = rng.exponential(size=int(m))
    return e / e.sum()


def chebyshev(
    values: np.ndarray, weights: Sequence[float] | np.ndarray, rho: float = 0.05, log: bool = False
) -> np.ndarray:
    """Augmented Chebyshev scalarization of normalized objectives (ParEGO).

    Each objective is mapped to ``[0, 1]`` by the minimum and maximum of its finite
    values (after ``log`` if asked and every finite value is positive), then
    ``max_j(w_j f_j) + rho * sum_j(w_j f_j)``.

    Args:
        values: shape ``(n, m)``.
        weights: shape ``(m,)``, non-negative.
        rho: weight of the linear term.
        log: scalarize logarithms of positive objectives.

    Returns:
        Shape ``(n,)``, in ``[0, 1 + rho]``; NaN for rows holding NaN.
    """
    v = _as_matrix(values).copy()
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.shape != (v.shape[1],):
        raise ValueError(f"weights must have shape ({v.shape[1]},), got {w.shape}")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative")
    rows = np.all(np.isfinite(v), axis=1)
    for j in range(v.shape[1]):
        col = v[rows, j]
        if log and len(col) and np.all(col > 0):
            v[:, j] = np.log(np.where(v[:, j] > 0, v[:, j], np.nan))
            col = v[rows, j]
        if len(col):
            lo, hi = float(np.min(col)), float(np.max(col))
            v[:, j] = (v[:, j] - lo) / (hi - lo) if hi > lo else 0.0
    weighted = v * w
    out = weighted.max(axis=1) + rho * weighted.sum(axis=1)
    return np.where(rows, out, np.nan)


def _read(result: Any, name: str, value: float) -> float:
    if name == "objective":
        return value
    try:
        return float(result.get(name, math.nan))
    except (TypeError, ValueError, AttributeError):
        return math.nan


def _propose(
    method: str,
    phase: str,
    space: Space,
    points: np.ndarray,
    values: np.ndarray,
    rng: np.random.Generator,
    pool: np.ndarray | None,
    settings: ParetoSettings,
    n_init: int,
) -> Proposal | None:
    ok = np.all(np.isfinite(values), axis=1) if len(values) else np.zeros(0, dtype=bool)
    feasible = np.ones(len(points), dtype=bool)
    if method == "random" or phase == "init" or not ok.any():
        obs = Observations(points, np.where(ok, 0.0, np.nan), feasible)
        return propose_random(space, obs, rng, None, pool)
    if method == "nsga":
        obs = Observations(points, nsga_fitness(values), feasible)
        return propose_ga(space, obs, rng, settings.ga, n_init, None, pool)
    weights = simplex_weights(values.shape[1], rng)
    scalar = chebyshev(values, weights, settings.rho, settings.log_objectives)
    obs = Observations(points, scalar, feasible)
    try:
        proposal = propose_bo(space, obs, rng, "ei", None, pool, settings.bo)
    except np.linalg.LinAlgError:
        return propose_random(space, obs, rng, None, pool)
    return (
        proposal
        if proposal is not None or pool is not None
        else propose_random(space, obs, rng, None, pool)
    )


def minimize_pareto(
    objective: Callable[[dict[str, Any]], Any],
    space: Space,
    *,
    objectives: Sequence[str] = ("objective",),
    method: str = "parego",
    n_evals: int = 50,
    n_init: int = 10,
    seed: int = 0,
    candidates: pd.DataFrame | None = None,
    settings: ParetoSettings | None = None,
) -> pd.DataFrame:
    """Search for configurations on the Pareto front of several objectives.

    Args:
        objective: ``config -> mapping`` holding every name of ``objectives`` (the name
            ``"objective"`` may also come from a plain number); see
            :mod:`hwml.optimize.search`. An evaluation whose objectives are not all
            finite is recorded as failed.
        space: the search space.
        objectives: result keys of the quantities to minimize (two or more for a front).
        method: one of :data:`PARETO_METHODS`.
        n_evals: evaluations of the run.
        n_init: initial random evaluations of ``parego`` and ``nsga``; also the GA's
            population unless ``settings.ga.population`` is set.
        seed: the run's seed.
        candidates: finite set of allowed configurations; by default the objective's
            ``candidates`` frame if it has one (a
            :class:`~hwml.optimize.tabular.TabularObjective`).
        settings: further knobs.

    Returns:
        One row per evaluation: ``iteration``, ``method``, ``seed``, ``phase``, one column
        per dimension, one per objective name (NaN where not reported), ``status`` (``ok``
        or ``failed``), ``reason``, ``eval_time_s`` (s), ``overhead_s`` (s, time spent
        choosing the point) and ``cumulative_time_s`` (s).

    Raises:
        ValueError: unknown method, no objectives, duplicate objective names.
    """
    names = _objective_names(space, objectives, method)
    seed = check_seed(seed)
    n_evals = _check_int(n_evals, "n_evals", 1)
    n_init = _check_int(n_init, "n_init", 1)
    settings = settings or ParetoSettings()
    pool = _candidate_pool(objective, space, candidates)

    rows = _pareto_loop(objective, space, names, method, n_evals, n_init, seed, pool, settings)
    return pd.DataFrame(rows, columns=_pareto_columns(space, names))


def _pareto_loop(
    objective: Callable[[dict[str, Any]], Any],
    space: Space,
    names: Sequence[str],
    method: str,
    n_evals: int,
    n_init: int,
    seed: int,
    pool: np.ndarray | None,
    settings: ParetoSettings,
) -> list[dict[str, Any]]:
    """Evaluate until ``n_evals`` rows are made or no new configuration is left.

    Args:
        objective: ``config -> mapping`` (see :func:`minimize_pareto`).
        space: the search space.
        names: the objective names.
        method: one of :data:`PARETO_METHODS`.
        n_evals: evaluations of the run.
        n_init: initial random evaluations.
        seed: the run's seed.
        pool: the candidates' unit-cube points, or None for the whole space.
        settings: further knobs.

    Returns:
        One row per evaluation (the columns of :func:`minimize_pareto`'s table).
    """
    points = np.empty((0, space.n_dims))
    values = np.empty((0, len(names)))
    rows: list[dict[str, Any]] = []
    cumulative = 0.0
    for iteration in range(1, n_evals + 1):
        start = time.perf_counter()
        rng = np.random.default_rng(derive_seed(seed, iteration))
        phase = "init" if iteration <= n_init else "search"
        proposal = _propose(method, phase, space, points, values, rng, pool, settings, n_init)
        if proposal is None:
            break
        config_frame = space.decode(proposal.point[None, :])
        config = space.to_dicts(config_frame)[0]
        overhead = time.perf_counter() - start
        if settings.seed_objective:
            seed_everything(derive_seed(seed, iteration, 1))
        ev = _evaluate(objective, config)
        got, reason = _objective_values(ev, names)
        cumulative += ev.eval_time_s + overhead
        rows.append(
            {
                "iteration": iteration,
                "method": method,
                "seed": seed,
                "phase": phase,
                **config,
                **dict(zip(names, got, strict=True)),
                "status": "failed" if reason else "ok",
                "reason": reason,
                "eval_time_s": ev.eval_time_s,
                "overhead_s": overhead,
                "cumulative_time_s": cumulative,
            }
        )
        points = np.vstack([points, space.encode(config_frame)])
        values = np.vstack([values, np.asarray(got) if not reason else np.full(len(names), np.nan)])
    return rows


def _objective_names(space: Space, objectives: Sequence[str], method: str) -> list[str]:
    """Check :func:`minimize_pareto`'s method and objective names.

    Returns:
        The objective names, as a list.

    Raises:
        ValueError: unknown method, no objectives, duplicate objective names, or an
            objective named like a dimension.
    """
    if method not in PARETO_METHODS:
        raise ValueError(f"method must be one of {PARETO_METHODS}, got {method!r}")
    names = list(objectives)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"objectives must be distinct names, got {names}")
    clash = sorted(set(names) & set(space.names))
    if clash:
        raise ValueError(f"objective name(s) {clash} collide with dimensions")
    return names


def _objective_values(ev: _Evaluation, names: Sequence[str]) -> tuple[list[float], str]:
    """The objectives an evaluation reported, and why it failed.

    Args:
        ev: the evaluation.
        names: the objective names.

    Returns:
        ``(values, reason)``: one value per name (NaN where not reported) and the
        failure reason (empty when every objective is finite and the evaluation ran).
    """
    got = [_read(ev.result, name, ev.value) for name in names]
    reason = ev.reason
    if not reason:
        bad = [n for n, v in zip(names, got, strict=True) if not math.isfinite(v)]
        if bad:
            reason = f"objective(s) {bad} not reported or not finite"
    return got, reason


def _pareto_columns(space: Space, names: Sequence[str]) -> list[str]:
    """Column names of :func:`minimize_pareto`'s table, in order."""
    return [
        "iteration",
        "method",
        "seed",
        "phase",
        *space.names,
        *names,
        "status",
        "reason",
        "eval_time_s",
        "overhead_s",
        "cumulative_time_s",
    ]
