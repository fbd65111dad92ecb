"""What every proposer shares: the observations so far and the sets it picks from.

Proposers work in the unit cube of a :class:`~hwml.optimize.space.Space`. They see the
history as :class:`Observations`, the constraint models as a :data:`FeasibilityFn`, and
either the whole space or a finite *pool* of allowed points (the rows of a pre-measured
table, see :class:`~hwml.optimize.tabular.TabularObjective`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from hwml.optimize.constraints import Constraint, ConstraintPrediction, predict_constraints
from hwml.optimize.feasible import FeasibleRegion
from hwml.optimize.space import Space

__all__ = [
    "FeasibilityFn",
    "Observations",
    "constraint_filter",
    "draw_random",
    "local_candidates",
    "not_evaluated",
    "random_candidates",
    "region_candidates",
]

FeasibilityFn = Callable[[np.ndarray], ConstraintPrediction]
"""Maps unit-cube points of shape ``(n, d)`` to the constraint models' predictions."""

_SAME_POINT_TOL = 1e-9


def constraint_filter(space: Space, constraints: Sequence[Constraint]) -> FeasibilityFn:
    """The constraint models as proposers see them: unit-cube points to predictions.

    Args:
        space: the search space (decodes the points; its structural columns go to the
            models).
        constraints: the constraints.

    Returns:
        ``points (n, d) -> ConstraintPrediction`` of the ``n`` configurations.
    """
    constraints = tuple(constraints)

    def feasibility(points: np.ndarray) -> ConstraintPrediction:
        return predict_constraints(constraints, space.structural(space.decode(points)))

    return feasibility


@dataclass(frozen=True)
class Observations:
    """Evaluations made so far, in unit-cube coordinates.

    Attributes:
        points: shape ``(n, d)``, every evaluated point, failed ones included.
        values: shape ``(n,)``, objective values; NaN for failed evaluations.
        feasible: shape ``(n,)``, whether each point met the budgets (measured where
            measured, otherwise as predicted).
    """

    points: np.ndarray
    values: np.ndarray
    feasible: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        """Shape ``(n,)``: True where the evaluation succeeded."""
        return np.isfinite(self.values)

    def __len__(self) -> int:
        return len(self.values)


def not_evaluated(points: np.ndarray, evaluated: np.ndarray) -> np.ndarray:
    """Flag points that differ from every evaluated point.

    Args:
        points: shape ``(m, d)``.
        evaluated: shape ``(n, d)``.

    Returns:
        Boolean mask of shape ``(m,)``; True where no evaluated point lies within
        ``1e-9`` in every coordinate (a k-d tree query in the maximum norm).
    """
    points = np.asarray(points, dtype=float)
    if len(evaluated) == 0 or len(points) == 0:
        return np.ones(len(points), dtype=bool)
    tree = cKDTree(np.asarray(evaluated, dtype=float))
    dist, _ = tree.query(points, k=1, p=np.inf, distance_upper_bound=2 * _SAME_POINT_TOL)
    return ~(dist <= _SAME_POINT_TOL)


def _unique_rows(points: np.ndarray) -> np.ndarray:
    if len(points) == 0:
        return points
    _, first = np.unique(np.round(points, 12), axis=0, return_index=True)
    return points[np.sort(first)]


def random_candidates(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    n: int,
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    max_batches: int = 10,
    *,
    region: FeasibleRegion | None = None,
) -> np.ndarray:
    """Draw up to ``n`` distinct, not-yet-evaluated points uniformly.

    With ``feasibility`` only points the constraint models accept are kept; batches of
    ``n`` are drawn until ``n`` such points are found or ``max_batches`` were tried. If
    that leaves fewer than ``n`` and a ``region`` is given, the rest are drawn from it
    (:func:`region_candidates`).

    Args:
        space: the search space.
        obs: observations so far (their points are excluded).
        rng: random generator.
        n: wanted number of points.
        feasibility: optional constraint filter.
        pool: optional finite set of allowed points, shape ``(m, d)``; when given the
            points are drawn from it without replacement.
        max_batches: how many batches rejection sampling may draw.
        region: feasible configurations found before the search
            (:func:`~hwml.optimize.feasible.find_feasible`); used only with a filter and
            without a pool.

    Returns:
        Array of shape ``(k, d)`` with ``k <= n`` (``k`` may be 0).
    """
    if pool is not None:
        keep = not_evaluated(pool, obs.points)
        if feasibility is not None and keep.any():
            keep[keep] = feasibility(pool[keep]).feasible
        chosen = pool[keep]
        if len(chosen) > n:
            chosen = chosen[np.sort(rng.choice(len(chosen), size=n, replace=False))]
        return rng.permutation(chosen, axis=0) if len(chosen) else chosen
    found: list[np.ndarray] = []
    total = 0
    for _ in range(max_batches):
        batch = space.sample_unit(n, rng)
        batch = batch[not_evaluated(batch, obs.points)]
        if feasibility is not None and len(batch):
            batch = batch[feasibility(batch).feasible]
        found.append(batch)
        total += len(batch)
        if total >= n:
            break
    out = _unique_rows(np.concatenate(found, axis=0))
    if len(out) < n and feasibility is not None and region is not None and len(region):
        extra = region_candidates(space, obs, rng, n - len(out), region)
        out = _unique_rows(np.concatenate([out, extra], axis=0))
    return out[:n]


def region_candidates(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    n: int,
    region: FeasibleRegion,
) -> np.ndarray:
    """Draw up to ``n`` new points whose structural part is one of a region's.

    Each point takes the structural codes of a uniformly chosen configuration of
    ``region`` and uniform random values of the other dimensions. When the region is
    complete (every feasible structural configuration), this is uniform sampling of the
    feasible part of the space.

    Args:
        space: the search space.
        obs: observations so far (their points are excluded).
        rng: random generator.
        n: wanted number of points.
        region: feasible structural configurations
            (:func:`~hwml.optimize.feasible.find_feasible`).

    Returns:
        Array of shape ``(k, d)`` with ``k <= n``.
    """
    if len(region) == 0 or n <= 0:
        return np.empty((0, space.n_dims))
    points = space.sample_unit(n, rng)
    points[:, list(region.columns)] = region.points[rng.integers(len(region), size=n)]
    points = _unique_rows(points)
    return points[not_evaluated(points, obs.points)]


def local_candidates(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    centers: np.ndarray,
    n_per_center: int,
    scales: tuple[float, ...],
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """Draw points near given centres (local perturbations), excluding evaluated ones.

    Args:
        space: the search space.
        obs: observations so far.
        rng: random generator.
        centers: shape ``(k, d)``, e.g. the best feasible points so far.
        n_per_center: neighbours per centre, split evenly over ``scales``.
        scales: perturbation sizes in unit-cube coordinates.
        pool: optional finite set of allowed points; if given, the neighbours are
            replaced by the pool's not-yet-evaluated points nearest to the centres.

    Returns:
        Array of shape ``(m, d)``.
    """
    if len(centers) == 0:
        return np.empty((0, space.n_dims))
    if pool is not None:
        fresh = pool[not_evaluated(pool, obs.points)]
        if len(fresh) == 0:
            return fresh
        dist = np.linalg.norm(fresh[None, :, :] - centers[:, None, :], axis=2)
        k = min(n_per_center, len(fresh))
        nearest = np.argsort(dist, axis=1)[:, :k].reshape(-1)
        return fresh[np.unique(nearest)]
    per = max(1, n_per_center // max(1, len(scales)))
    parts = [space.perturb_unit(centers, per, s, rng) for s in scales]
    out = _unique_rows(np.concatenate(parts, axis=0))
    return out[not_evaluated(out, obs.points)]


def draw_random(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    batch: int = 256,
    *,
    region: FeasibleRegion | None = None,
) -> np.ndarray | None:
    """Draw one new uniformly random point (constraint-filtered if asked).

    Args:
        space: the search space.
        obs: observations so far.
        rng: random generator.
        feasibility: optional constraint filter.
        pool: optional finite set of allowed points.
        batch: rejection-sampling batch size.
        region: feasible configurations to draw from when rejection sampling finds none
            (see :func:`random_candidates`).

    Returns:
        A point of shape ``(d,)``, or ``None`` when no new (feasible) point was found.
    """
    n = 1 if pool is not None else batch
    found = random_candidates(space, obs, rng, n, feasibility, pool, region=region)
    if len(found) == 0:
        return None
    return found[0]
