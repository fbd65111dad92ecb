"""Searches for a Pareto front of two (or more) objectives: ParEGO, HW-EHVI, random, NSGA-II.

The survey's Figure 2 (from Reagen et al.) compares model-based optimization with random
search and a genetic algorithm by the accuracy-energy designs each finds. This module
runs those three on any objective that reports several quantities to minimize, e.g. test
error and energy per inference:

* ``"parego"``: model-based. Each iteration draws a random weight vector, scalarizes every
  observation with the augmented Chebyshev function of its normalized objectives
  (Knowles, 2006) and proposes the maximizer of expected improvement under a GP fitted to
  those scalars (:func:`hwml.optimize.bo.propose_bo`). Different weights steer different
  iterations towards different parts of the front.
* ``"hw-ehvi"``: hardware-aware multi-objective BO. Only the first objective (e.g. test
  error) is modelled by a GP; every other objective is a hardware quantity that a cheap
  model predicts before training (``predictors``, e.g. HyperPower's linear models of
  :func:`hwml.hyperpower.models.fit_hardware_models`). Each iteration proposes the
  candidate with the largest exact expected hypervolume improvement, in which only the
  first objective is uncertain (:func:`expected_hypervolume_improvement`).
* ``"random"``: uniform random configurations.
* ``"nsga"``: the steady-state GA of :mod:`hwml.optimize.baselines` with NSGA-II's
  selection: evaluations are ranked by non-dominated front, then by crowding distance
  (Deb et al., 2002), and parents are drawn from the best-ranked ones.

``"parego"``, ``"random"`` and ``"nsga"`` treat every objective as a black box revealed by
the evaluation; ``"hw-ehvi"`` chooses with the predicted hardware values but the history
holds the measured ones. Like
:func:`hwml.optimize.search.minimize`, each iteration draws from its own generator seeded
from ``(seed, iteration)``, so a run is a function of its seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from scipy.stats import norm

from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.bo import BOSettings, Proposal, fit_surrogate, propose_bo
from hwml.optimize.candidates import (
    Observations,
    local_candidates,
    not_evaluated,
    random_candidates,
)
from hwml.optimize.search import _candidate_pool, _check_int, _evaluate, _Evaluation
from hwml.optimize.seeding import check_seed, derive_seed, seed_everything
from hwml.optimize.space import Space

__all__ = [
    "PARETO_METHODS",
    "ParetoSettings",
    "chebyshev",
    "crowding_distance",
    "expected_hypervolume_improvement",
    "minimize_pareto",
    "nondominated_ranks",
    "nsga_fitness",
    "simplex_weights",
]

PARETO_METHODS = ("parego", "random", "nsga", "hw-ehvi")
"""Multi-objective search methods: model-based ParEGO, random search, NSGA-II-style GA,
and hardware-aware expected hypervolume improvement (first objective modelled, the others
predicted a priori)."""

Predictor = Callable[[pd.DataFrame], Any]
"""A hardware model of ``"hw-ehvi"``: takes a frame of configurations (the structural
columns ``z``, as constraint models do) and returns predictions of shape ``(n,)``, or a
pair ``(mean, std)`` of which the mean is used."""


@dataclass(frozen=True)
class ParetoSettings:
    """Knobs of :func:`minimize_pareto`.

    Attributes:
        bo: settings of ParEGO's GP and candidate set.
        ga: settings of the GA (its population defaults to ``n_init``).
        log_objectives: scalarize the logarithms of the objectives (for positive
            quantities spanning orders of magnitude, such as error and energy); values
            that are not positive fall back to the linear scale.
            With ``"hw-ehvi"`` the GP models the logarithm of the first objective and
            the hypervolume is taken over logarithms of every objective, each wherever
            its values (observed, or predicted for the candidates) are all positive.
        rho: weight of the linear term of the augmented Chebyshev function.
        seed_objective: seed ``random``/numpy/torch before each evaluation.
        ehvi_margin: ``"hw-ehvi"``'s reference point, per objective, lies this fraction of
            the objective's range beyond its worst value (range and worst over the
            observed first objective, and over the predicted hardware values of the
            evaluated points and the candidates).
    """

    bo: BOSettings = field(default_factory=BOSettings)
    ga: GASettings = field(default_factory=GASettings)
    log_objectives: bool = True
    rho: float = 0.05
    seed_objective: bool = True
    ehvi_margin: float = 0.1

    def __post_init__(self) -> None:
        if not self.ehvi_margin > 0:
            raise ValueError(f"ehvi_margin must be > 0, got {self.ehvi_margin}")


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


def _uncovered_volumes(
    hardware: np.ndarray, front_hw: np.ndarray, ref_hw: np.ndarray
) -> np.ndarray:
    """Volume of each candidate's hardware box left uncovered by growing prefixes of a front.

    Entry ``[i, k]`` is the volume of ``[hardware[i], ref_hw]`` not dominated by any of
    the first ``k`` rows of ``front_hw`` (``k = 0 .. K``). A front row dominates the part
    of the box above ``max(row, hardware[i])``, so the covered part is the hypervolume of
    those clipped rows with respect to ``ref_hw``: exact staircase sums for two terms, a
    running minimum for one; with no hardware term the box is a point of volume 1 that
    any front row covers.

    Args:
        hardware: shape ``(n, q)``.
        front_hw: shape ``(K, q)``, in the order the rows join.
        ref_hw: shape ``(q,)``.

    Returns:
        Shape ``(n, K + 1)``, non-negative.

    Raises:
        NotImplementedError: three or more hardware terms.
    """
    n, q = hardware.shape
    k_front = len(front_hw)
    out = np.zeros((n, k_front + 1))
    if q == 0:
        out[:, 0] = 1.0
        return out
    if q == 1:
        h = hardware[:, 0]
        out[:, 0] = np.clip(ref_hw[0] - h, 0.0, None)
        if k_front:
            edge = np.minimum(np.minimum.accumulate(front_hw[:, 0]), ref_hw[0])
            out[:, 1:] = np.clip(edge[None, :] - h[:, None], 0.0, None)
        return out
    if q > 2:
        raise NotImplementedError(
            f"hw-ehvi computes the exact EHVI for one or two hardware objectives, got {q}; "
            "drop or combine hardware terms (e.g. energy instead of power and runtime)"
        )
    box = np.prod(np.clip(ref_hw[None, :] - hardware, 0.0, None), axis=1)
    out[:, 0] = box
    for k in range(1, k_front + 1):
        # front rows clipped into each candidate's box: (n, k, 2)
        clipped = np.minimum(np.maximum(front_hw[None, :k, :], hardware[:, None, :]), ref_hw)
        order = np.argsort(clipped[:, :, 0], axis=1, kind="stable")
        x = np.take_along_axis(clipped[:, :, 0], order, axis=1)
        y = np.minimum.accumulate(np.take_along_axis(clipped[:, :, 1], order, axis=1), axis=1)
        x_next = np.concatenate([x[:, 1:], np.full((n, 1), ref_hw[0])], axis=1)
        covered = np.sum((x_next - x) * (ref_hw[1] - y), axis=1)
        out[:, k] = np.clip(box - covered, 0.0, None)
    return out


def expected_hypervolume_improvement(
    mean: np.ndarray,
    std: np.ndarray,
    hardware: np.ndarray,
    front: np.ndarray,
    reference: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Exact expected hypervolume improvement when only the first objective is uncertain.

    A candidate has known (predicted) hardware values ``h`` and a Gaussian first objective
    ``Y ~ N(mean, std^2)``. With the front's points ``(y_i, h_i)`` and reference
    ``(r_y, r_h)``, all minimized, the part of objective space that the candidate would
    add at value ``y`` is, slice by slice in the first objective,

        ``HVI(y) = integral_y^r_y A(t) dt``,

    where ``A(t)`` is the volume of the hardware box ``[h, r_h]`` not dominated by the
    front points with ``y_i <= t``. ``A`` is constant between consecutive sorted ``y_i``:
    ``A_k`` on ``[b_k, b_k+1)`` with ``b_0 = -inf``, ``b_1 <= ... <= b_K`` the sorted
    ``y_i`` and ``b_K+1 = r_y`` (all clipped at ``r_y``). Swapping expectation and
    integral, ``E[HVI] = sum_k A_k integral_{b_k}^{b_k+1} Phi((t - mean) / std) dt``, and
    since ``G(z) = z Phi(z) + phi(z)`` has ``G' = Phi`` and ``G(-inf) = 0``,

        ``EHVI = sum_k A_k * std * (G(z_k+1) - G(z_k))``,  ``z_k = (b_k - mean) / std``.

    ``A_k`` is an exact staircase area for two hardware terms and a length for one (with
    none, ``A_0 = 1`` and the rest 0, which makes this the expected improvement below the
    best ``y_i``, capped at ``r_y``).

    Args:
        mean: posterior means of the first objective, shape ``(n,)``.
        std: posterior standard deviations, shape ``(n,)`` (0 gives the improvement at
            ``mean``).
        hardware: the candidates' hardware values, shape ``(n, q)`` with ``q <= 2``.
        front: the current points, shape ``(K, 1 + q)``: first objective, then hardware
            (dominated points may be included; they add nothing).
        reference: ``(r_y, r_h...)``, shape ``(1 + q,)``.

    Returns:
        Shape ``(n,)``, non-negative, in the product of the objectives' units.

    Raises:
        NotImplementedError: three or more hardware terms.
        ValueError: shapes that do not agree.
    """
    mean = np.asarray(mean, dtype=float).reshape(-1)
    std = np.asarray(std, dtype=float).reshape(-1)
    hw = np.asarray(hardware, dtype=float)
    hw = hw.reshape(len(mean), -1) if hw.size or len(mean) == 0 else np.zeros((len(mean), 0))
    ref = np.asarray(reference, dtype=float).reshape(-1)
    q = ref.size - 1
    pts = np.asarray(front, dtype=float).reshape(-1, q + 1)
    if std.shape != mean.shape or hw.shape != (len(mean), q):
        raise ValueError(
            f"mean {mean.shape}, std {std.shape} and hardware {hw.shape} do not match "
            f"a reference of {q + 1} objectives"
        )
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    order = np.argsort(pts[:, 0], kind="stable")
    pts = pts[order]
    areas = _uncovered_volumes(hw, pts[:, 1:], ref[1:])  # (n, K + 1)
    edges = np.minimum(np.append(pts[:, 0], ref[0]), ref[0])  # b_1 .. b_K+1
    scale = np.maximum(std, 1e-12 * max(1.0, float(np.max(np.abs(edges)))))
    z = (edges[None, :] - mean[:, None]) / scale[:, None]
    g = z * norm.cdf(z) + norm.pdf(z)
    g = np.concatenate([np.zeros((len(mean), 1)), g], axis=1)  # G(z_0) = G(-inf) = 0
    slab = np.clip(scale[:, None] * np.diff(g, axis=1), 0.0, None)
    return np.sum(areas * slab, axis=1)


def _read(result: Any, name: str, value: float) -> float:
    if name == "objective":
        return value
    try:
        return float(result.get(name, math.nan))
    except (TypeError, ValueError, AttributeError):
        return math.nan


class _HardwarePredictions:
    """The hardware objectives' predictions of unit-cube points, for ``"hw-ehvi"``.

    Each predictor sees the structural columns of the decoded points
    (:meth:`Space.structural`). With a finite pool, the pool's rows are predicted once
    and looked up afterwards.

    Args:
        space: the search space.
        predictors: hardware objective name -> predictor.
        names: the hardware objective names, in the order of the columns returned.
        pool: the candidates' unit-cube points, or None.
    """

    def __init__(
        self,
        space: Space,
        predictors: Mapping[str, Predictor],
        names: Sequence[str],
        pool: np.ndarray | None,
    ) -> None:
        self.space = space
        self.predictors = {n: predictors[n] for n in names}
        self.names = list(names)
        self._index: dict[tuple[float, ...], int] = {}
        self._pool_values = np.empty((0, len(self.names)))
        if pool is not None and self.names:
            self._pool_values = self._predict(pool)
            self._index = {self._key(p): i for i, p in enumerate(pool)}

    @staticmethod
    def _key(point: np.ndarray) -> tuple[float, ...]:
        return tuple(np.round(point, 9).tolist())

    def _predict(self, points: np.ndarray) -> np.ndarray:
        out = np.empty((len(points), len(self.names)))
        if len(points) == 0:
            return out
        z = self.space.structural(self.space.decode(points))
        for j, name in enumerate(self.names):
            got = self.predictors[name](z)
            if isinstance(got, tuple):  # (mean, std): the mean
                got = got[0]
            values = np.asarray(got, dtype=float).reshape(-1)
            if values.shape != (len(points),):
                raise ValueError(
                    f"predictor of {name!r} returned shape {values.shape} for "
                    f"{len(points)} configurations"
                )
            if not np.all(np.isfinite(values)):
                raise ValueError(f"predictor of {name!r} returned non-finite values")
            out[:, j] = values
        return out

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Predictions of shape ``(n, q)``."""
        if not self._index or len(points) == 0:
            return self._predict(points)
        rows = np.array([self._index.get(self._key(p), -1) for p in points], dtype=int)
        out = np.empty((len(points), len(self.names)))
        found = rows >= 0
        out[found] = self._pool_values[rows[found]]
        if not found.all():
            out[~found] = self._predict(points[~found])
        return out


def _logged(values: np.ndarray, log: bool) -> np.ndarray:
    """Column-wise logarithm where ``log`` and every value of the column is positive."""
    v = np.array(values, dtype=float)
    if log:
        for j in range(v.shape[1]):
            if len(v) and np.all(v[:, j] > 0):
                v[:, j] = np.log(v[:, j])
    return v


def _propose_ehvi(
    space: Space,
    points: np.ndarray,
    values: np.ndarray,
    rng: np.random.Generator,
    pool: np.ndarray | None,
    settings: ParetoSettings,
    hardware: _HardwarePredictions,
) -> Proposal | None:
    """Choose the candidate of largest expected hypervolume improvement (``"hw-ehvi"``).

    The GP models the observed first objective (its logarithm with
    ``settings.log_objectives`` when all are positive; failed evaluations get the worst
    value); the hardware objectives are predicted, for the candidates and for the
    evaluated points alike, so the front and the candidates live in the same predicted
    hardware space. Each objective is mapped to ``[0, 1]`` by its range over the
    observed first objective and the predicted hardware values of the evaluated points
    and candidates; the reference point is ``1 + settings.ehvi_margin`` in every
    coordinate. When no candidate has a positive EHVI, the one of largest posterior
    standard deviation is chosen; ties are broken with ``rng``.
    """
    ok = np.all(np.isfinite(values), axis=1)
    y_raw = values[:, 0]
    log_y = settings.log_objectives and bool(np.all(y_raw[ok] > 0))
    y = np.where(ok, y_raw, np.max(y_raw[ok]))
    y = np.log(y) if log_y else y
    obs = Observations(points, np.where(ok, y_raw, np.nan), np.ones(len(points), dtype=bool))
    if pool is not None:
        cands = pool[not_evaluated(pool, points)]
    else:
        order = np.flatnonzero(ok)[np.argsort(y[ok], kind="stable")]
        centers = points[order[: settings.bo.n_centers]]
        parts = [
            random_candidates(space, obs, rng, settings.bo.n_random),
            local_candidates(
                space, obs, rng, centers, settings.bo.n_local, settings.bo.local_scales
            ),
        ]
        cands = np.concatenate(parts, axis=0)
        if len(cands):
            _, first = np.unique(np.round(cands, 12), axis=0, return_index=True)
            cands = cands[np.sort(first)]
    if len(cands) == 0:
        return None
    try:
        gp = fit_surrogate(points, y, rng, settings.bo)
    except np.linalg.LinAlgError:
        return propose_random(space, obs, rng, None, pool)
    mean, std = gp.predict(cands)

    hw_all = _logged(hardware(np.vstack([points[ok], cands])), settings.log_objectives)
    hw_front, hw_cand = hw_all[: int(ok.sum())], hw_all[int(ok.sum()) :]
    lo = np.concatenate([[np.min(y[ok])], np.min(hw_all, axis=0)])
    hi = np.concatenate([[np.max(y[ok])], np.max(hw_all, axis=0)])
    span = np.where(hi > lo, hi - lo, 1.0)
    front = (np.column_stack([y[ok], hw_front]) - lo) / span
    front = front[nondominated_ranks(front) == 0]
    reference = np.full(len(lo), 1.0 + settings.ehvi_margin)
    acq = expected_hypervolume_improvement(
        (mean - lo[0]) / span[0], std / span[0], (hw_cand - lo[1:]) / span[1:], front, reference
    )
    score = acq if np.max(acq) > 0 else std
    ties = np.flatnonzero(score == np.max(score))
    pick = int(ties[0] if len(ties) == 1 else rng.choice(ties))
    return Proposal(cands[pick], float(acq[pick]), len(cands))


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
    hardware: _HardwarePredictions | None = None,
) -> Proposal | None:
    ok = np.all(np.isfinite(values), axis=1) if len(values) else np.zeros(0, dtype=bool)
    feasible = np.ones(len(points), dtype=bool)
    if method == "random" or phase == "init" or not ok.any():
        obs = Observations(points, np.where(ok, 0.0, np.nan), feasible)
        return propose_random(space, obs, rng, None, pool)
    if method == "nsga":
        obs = Observations(points, nsga_fitness(values), feasible)
        return propose_ga(space, obs, rng, settings.ga, n_init, None, pool)
    if method == "hw-ehvi" and hardware is not None:
        return _propose_ehvi(space, points, values, rng, pool, settings, hardware)
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
    predictors: Mapping[str, Predictor] | None = None,
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
        predictors: ``"hw-ehvi"`` only: objective name -> a priori model (see
            :data:`Predictor`), one for every objective after the first, e.g. the
            :class:`~hwml.hyperpower.models.StructuralModel` objects that
            ``fit_hardware_models(structures, targets={"energy_per_image_mj":
            "energy_per_image_mj", ...})`` returns. Ignored by the other methods.

    Returns:
        One row per evaluation: ``iteration``, ``method``, ``seed``, ``phase``, one column
        per dimension, one per objective name (NaN where not reported), ``status`` (``ok``
        or ``failed``), ``reason``, ``eval_time_s`` (s), ``overhead_s`` (s, time spent
        choosing the point) and ``cumulative_time_s`` (s).

    Raises:
        ValueError: unknown method, no objectives, duplicate objective names;
            ``"hw-ehvi"`` without a predictor for one of its hardware objectives.
        NotImplementedError: ``"hw-ehvi"`` with three or more hardware objectives.
    """
    names = _objective_names(space, objectives, method)
    _check_predictors(method, names, predictors)
    seed = check_seed(seed)
    n_evals = _check_int(n_evals, "n_evals", 1)
    n_init = _check_int(n_init, "n_init", 1)
    settings = settings or ParetoSettings()
    pool = _candidate_pool(objective, space, candidates)

    hardware = None
    if method == "hw-ehvi":
        hardware = _HardwarePredictions(space, dict(predictors or {}), names[1:], pool)
    rows = _pareto_loop(
        objective, space, names, method, n_evals, n_init, seed, pool, settings, hardware
    )
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
    hardware: _HardwarePredictions | None = None,
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
        hardware: the hardware objectives' predictions (``"hw-ehvi"``).

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
        proposal = _propose(
            method, phase, space, points, values, rng, pool, settings, n_init, hardware
        )
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


def _check_predictors(
    method: str, names: Sequence[str], predictors: Mapping[str, Predictor] | None
) -> None:
    """Check that ``"hw-ehvi"`` has a callable predictor for every hardware objective.

    Raises:
        ValueError: a hardware objective without a predictor, or one that is not callable.
        NotImplementedError: three or more hardware objectives.
    """
    if method != "hw-ehvi":
        return
    given = dict(predictors or {})
    missing = [n for n in names[1:] if n not in given]
    if missing:
        raise ValueError(
            f"hw-ehvi predicts every objective after the first ({names[0]!r}) a priori, "
            f"but no predictor was given for {missing}; pass predictors={{name: model}}"
        )
    bad = [n for n in names[1:] if not callable(given[n])]
    if bad:
        raise ValueError(f"predictor(s) for {bad} are not callable")
    if len(names) > 3:
        raise NotImplementedError(
            f"hw-ehvi computes the exact EHVI for one or two hardware objectives, got "
            f"{len(names) - 1} ({names[1:]})"
        )


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
