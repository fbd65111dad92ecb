"""Where the constraint models accept configurations: searched for before a search starts.

A tight budget can leave a tiny part of a space feasible (62 of 2.78 million structures,
say); a uniform sample of ten thousand configurations then finds none although the budget
is satisfiable, and a search that draws its candidates uniformly finds nothing to
evaluate. :func:`find_feasible` searches the constraint models properly:

1. a uniform sample of ``n`` configurations (or every row of a finite pool);
2. when the sample finds fewer than ``settings.min_found`` feasible configurations:

   * if every structural dimension is discrete and they have at most
     ``settings.max_enumerate`` combinations, all of them are enumerated (the feasible
     set is then exact);
   * otherwise scipy's differential evolution (integer dimensions as integers) minimizes
     the *worst normalized violation* ``max_c (mean_c(z) - budget_c) / scale_c``, where
     ``scale_c`` is the spread of constraint ``c``'s predictions over the sample, starting
     from the sampled configurations closest to feasible; the feasible configurations it
     meets are then grown by their feasible neighbours (one level of a discrete
     dimension, a small step of a continuous one), up to ``settings.max_points``.

The constraint models see only the structural dimensions ``z``
(:meth:`~hwml.optimize.space.Space.structural`), so the search runs in their sub-cube. The
feasible structural configurations found (a :class:`FeasibleRegion`) let the search draw
candidates where rejection sampling finds too few
(:func:`~hwml.optimize.candidates.region_candidates`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import differential_evolution

from hwml.optimize.constraints import (
    Constraint,
    ConstraintPrediction,
    InfeasibleBudgetError,
    predict_constraints,
)
from hwml.optimize.seeding import check_seed, derive_seed
from hwml.optimize.space import Space

__all__ = ["FeasibilitySettings", "FeasibleRegion", "find_feasible"]

_BATCH = 50_000  # configurations per model call when enumerating or growing
_GROW_ROUNDS = 64  # rounds of neighbours when growing a region (a flood fill of discrete
# dimensions ends sooner: after as many rounds as the region is wide in levels)


@dataclass(frozen=True)
class FeasibilitySettings:
    """Knobs of :func:`find_feasible` beyond the sample size.

    Attributes:
        min_found: search beyond the uniform sample when it finds fewer feasible
            configurations than this. The search's own rejection sampling
            (:func:`~hwml.optimize.candidates.draw_random`, 2,560 draws) then finds none
            with probability above ``exp(-2560 * min_found / n)``, 0.6% at the defaults.
        max_enumerate: enumerate the structural configurations when every structural
            dimension is discrete and they number at most this many.
        n_starts: sampled configurations closest to feasible that form the initial
            population of the differential evolution (at least 5).
        max_generations: generations of the differential evolution.
        max_points: most feasible structural configurations kept in the region.
        grow_scale: step of a continuous dimension when growing the region, unit-cube
            units.
    """

    min_found: int = 20
    max_enumerate: int = 100_000
    n_starts: int = 20
    max_generations: int = 300
    max_points: int = 10_000
    grow_scale: float = 0.02

    def __post_init__(self) -> None:
        for name in ("min_found", "max_enumerate", "max_generations", "max_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"FeasibilitySettings.{name} must be an int >= 0, got {value!r}")
        if isinstance(self.n_starts, bool) or not isinstance(self.n_starts, int):
            raise ValueError(f"FeasibilitySettings.n_starts must be an int, got {self.n_starts!r}")
        if self.n_starts < 5:
            raise ValueError(f"FeasibilitySettings.n_starts must be >= 5, got {self.n_starts}")


@dataclass(frozen=True)
class FeasibleRegion:
    """The configurations a search of the constraint models found within every budget.

    Attributes:
        columns: indices of the space's dimensions the constraint models see (the
            structural ones, or all when none is flagged structural).
        points: distinct feasible configurations found, as unit-cube codes of those
            dimensions, shape ``(k, len(columns))``; up to ``max_points`` (all the
            sample's feasible ones when no deeper search ran).
        fraction: fraction of the uniformly drawn (or pooled, or enumerated)
            configurations predicted feasible; 0 when only the deeper search found any
            (the true fraction is then below ``1 / n_sampled``).
        n_sampled: configurations of the uniform sample, the pool or the enumeration.
        n_checked: configurations the constraint models judged in all.
        method: ``"sample"``, ``"pool"``, ``"enumeration"`` or ``"evolution"`` (the
            differential evolution ran).
        complete: ``points`` are every feasible structural configuration (an
            enumeration, or a pool's feasible rows).
        closest: per constraint, the smallest prediction met (in its unit).
    """

    columns: tuple[int, ...]
    points: np.ndarray
    fraction: float
    n_sampled: int
    n_checked: int
    method: str
    complete: bool
    closest: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)


class _Judge:
    """The constraint models on structural sub-cube codes, counting what they judged."""

    def __init__(self, space: Space, constraints: Sequence[Constraint]) -> None:
        self.space = space
        self.constraints = tuple(constraints)
        names = space.structural_names or space.names
        self.columns = tuple(space.names.index(n) for n in names)
        self.dims = [space.dimensions[j] for j in self.columns]
        self.n_checked = 0
        self.closest = {c.name: math.inf for c in self.constraints}
        self.scale = {c.name: 1.0 for c in self.constraints}

    def frame(self, codes: np.ndarray) -> pd.DataFrame:
        """Structural configurations of sub-cube codes, shape ``(n, s)``."""
        codes = np.atleast_2d(codes)
        return pd.DataFrame({d.name: d.decode(codes[:, i]) for i, d in enumerate(self.dims)})

    def predict(self, codes: np.ndarray) -> ConstraintPrediction:
        """The models' predictions on sub-cube codes, shape ``(n, s)``."""
        pred = predict_constraints(self.constraints, self.frame(codes))
        self.n_checked += len(pred.feasible)
        for c in self.constraints:
            values = pred.mean[c.name]
            if np.isfinite(values).any():
                self.closest[c.name] = min(self.closest[c.name], float(np.nanmin(values)))
        return pred

    def set_scales(self, pred: ConstraintPrediction) -> None:
        """Normalize each constraint's violation by the spread of its predictions."""
        for c in self.constraints:
            values = pred.mean[c.name][np.isfinite(pred.mean[c.name])]
            spread = float(np.std(values)) if len(values) > 1 else 0.0
            fallback = abs(float(c.budget)) or 1.0
            self.scale[c.name] = spread if spread > 0 else fallback

    def violation(self, pred: ConstraintPrediction) -> np.ndarray:
        """Worst normalized violation per configuration, shape ``(n,)``; <= 0 is feasible."""
        worst = np.full(len(pred.feasible), -np.inf)
        for c in self.constraints:
            v = (pred.mean[c.name] - c.budget) / self.scale[c.name]
            worst = np.maximum(worst, np.where(np.isfinite(v), v, 1e12))
        return np.where(pred.feasible, np.minimum(worst, 0.0), np.maximum(worst, 1e-12))


def _distinct(codes: np.ndarray) -> np.ndarray:
    if len(codes) == 0:
        return codes
    _, first = np.unique(np.round(codes, 12), axis=0, return_index=True)
    return codes[np.sort(first)]


def _enumerate(judge: _Judge) -> tuple[np.ndarray, int]:
    """Every structural configuration's codes that the models accept, and how many there are."""
    counts = np.array([d.n_levels or 0 for d in judge.dims], dtype=float)
    total = int(np.prod(counts))
    found = []
    combos = itertools.product(*(range(int(c)) for c in counts))
    while True:
        block = np.array(list(itertools.islice(combos, _BATCH)), dtype=float)
        if len(block) == 0:
            break
        codes = (block + 0.5) / counts  # bin centres, as Space.snap gives them
        found.append(codes[judge.predict(codes).feasible])
    return np.concatenate(found, axis=0), total


def _evolve(
    judge: _Judge,
    sample: np.ndarray,
    violation: np.ndarray,
    settings: FeasibilitySettings,
    rng: np.random.Generator,
) -> np.ndarray:
    """Differential evolution of the worst normalized violation; the feasible codes it met."""
    levels = np.array([d.n_levels or 0 for d in judge.dims])
    discrete = levels > 0
    upper = np.where(discrete, levels - 1, 1.0).astype(float)

    def to_codes(x: np.ndarray) -> np.ndarray:  # x: (n, s) in DE coordinates
        return np.where(discrete, (np.round(x) + 0.5) / np.maximum(levels, 1), np.clip(x, 0, 1))

    def to_x(codes: np.ndarray) -> np.ndarray:
        return np.where(discrete, np.floor(codes * levels), codes)

    found: list[np.ndarray] = []

    def energy(x: np.ndarray) -> np.ndarray:  # vectorized: x has shape (s, n)
        codes = to_codes(np.atleast_2d(x.T))
        v = judge.violation(judge.predict(codes))
        found.append(codes[v <= 0])
        return v

    def stop(intermediate_result: object) -> bool:
        return bool(found) and any(len(f) for f in found)

    start = np.argsort(violation, kind="stable")[: settings.n_starts]
    init = to_x(sample[start])
    if len(init) < 5:  # too small a sample: fill the population uniformly
        extra = rng.random((5 - len(init), len(levels))) * upper
        init = np.vstack([init, extra])
    differential_evolution(
        energy,
        list(zip(np.zeros(len(upper)), upper, strict=True)),
        init=init,
        integrality=discrete,
        vectorized=True,
        updating="deferred",
        maxiter=settings.max_generations,
        tol=0.0,
        atol=0.0,
        polish=False,
        callback=stop,
        rng=rng,
    )
    return _distinct(np.concatenate(found, axis=0)) if found else np.empty((0, len(levels)))


def _grow(
    judge: _Judge, seeds: np.ndarray, settings: FeasibilitySettings, rng: np.random.Generator
) -> np.ndarray:
    """Add the feasible neighbours of feasible codes, round after round, up to ``max_points``.

    A discrete dimension steps by one level, a continuous one by a uniform fraction of
    ``settings.grow_scale``; when a round adds nothing, continuous steps shrink fourfold
    (a small region) and every known point is a centre again.
    """
    levels = np.array([d.n_levels or 0 for d in judge.dims])
    continuous = levels == 0
    scale = settings.grow_scale
    known = _distinct(seeds)
    seen = {tuple(np.round(row, 12)) for row in known}
    frontier = known
    for _ in range(_GROW_ROUNDS):
        if len(known) == 0 or len(known) >= settings.max_points:
            break
        if len(frontier) == 0:
            if not continuous.any() or scale < 1e-6:
                break
            scale, frontier = scale / 4, known
        moves = []
        for j in range(len(levels)):
            for sign in (-1.0, 1.0):
                moved = frontier.copy()
                step = scale * rng.random(len(frontier)) if continuous[j] else 1.0 / levels[j]
                moved[:, j] = moved[:, j] + sign * step
                moves.append(moved[(moved[:, j] > 0) & (moved[:, j] < 1)])
        cands = _distinct(np.concatenate(moves, axis=0))
        cands = cands[[tuple(np.round(r, 12)) not in seen for r in cands]]
        cands = cands[: 4 * (settings.max_points - len(known))]
        ok = np.zeros(len(cands), dtype=bool)
        for i in range(0, len(cands), _BATCH):
            ok[i : i + _BATCH] = judge.predict(cands[i : i + _BATCH]).feasible
        seen.update(tuple(np.round(r, 12)) for r in cands)
        frontier = cands[ok][: settings.max_points - len(known)]
        known = np.vstack([known, frontier])
    return known


def find_feasible(
    space: Space,
    constraints: Sequence[Constraint],
    seed: int = 0,
    n: int = 10_000,
    pool: np.ndarray | None = None,
    settings: FeasibilitySettings | None = None,
) -> FeasibleRegion:
    """Find configurations that every constraint model predicts within its budget.

    See the module docstring for the steps. Deterministic given the arguments.

    Args:
        space: the search space.
        constraints: the constraints (at least one).
        seed: seed of the sample and of the differential evolution.
        n: size of the uniform random sample of the space.
        pool: optional finite set of allowed unit-cube points, shape ``(m, d)``; then
            exactly its rows are judged.
        settings: further knobs.

    Returns:
        The region found; it may be empty (:func:`require_feasible` raises then).
    """
    settings = settings or FeasibilitySettings()
    judge = _Judge(space, constraints)
    cols = list(judge.columns)
    if pool is not None:
        codes = np.asarray(pool, dtype=float)[:, cols]
        pred = judge.predict(codes)
        return _region(judge, codes[pred.feasible], pred.feasible.mean(), len(codes), "pool", True)
    rng = np.random.default_rng(derive_seed(check_seed(seed), 0))
    sample = space.sample_unit(n, rng)[:, cols]
    pred = judge.predict(sample)
    feasible = sample[pred.feasible]
    fraction = float(pred.feasible.mean()) if n else 0.0
    if len(feasible) >= settings.min_found:
        return _region(judge, _distinct(feasible), fraction, n, "sample", False)
    size = math.prod(d.n_levels or 0 for d in judge.dims)
    if 0 < size <= settings.max_enumerate:
        points, total = _enumerate(judge)
        return _region(judge, points, len(points) / total, total, "enumeration", True)
    deep = np.random.default_rng(derive_seed(check_seed(seed), 1))
    judge.set_scales(pred)
    met = _evolve(judge, sample, judge.violation(pred), settings, deep)
    points = _grow(judge, np.vstack([feasible, met]), settings, deep)
    method = "evolution"
    return _region(judge, _distinct(points), fraction, n, method, False)


def _region(
    judge: _Judge,
    points: np.ndarray,
    fraction: float,
    n_sampled: int,
    method: str,
    complete: bool,
) -> FeasibleRegion:
    return FeasibleRegion(
        columns=judge.columns,
        points=points,
        fraction=float(fraction),
        n_sampled=int(n_sampled),
        n_checked=judge.n_checked,
        method=method,
        complete=complete,
        closest=dict(judge.closest),
    )


def require_feasible(region: FeasibleRegion, constraints: Sequence[Constraint]) -> None:
    """Raise when a search of the constraint models found no feasible configuration.

    Args:
        region: what :func:`find_feasible` found.
        constraints: the constraints it searched.

    Raises:
        InfeasibleBudgetError: the region is empty; the message says what was searched and
            gives each constraint's budget and smallest prediction met.
    """
    if len(region):
        return
    parts = [
        f"{c.name}: budget {c.budget:g}, smallest prediction {region.closest.get(c.name, math.nan):g}"
        for c in constraints
    ]
    searched = {
        "pool": f"every one of the {region.n_sampled} rows of the pool",
        "enumeration": f"all {region.n_sampled} structural configurations",
        "sample": f"{region.n_sampled} random configurations",
        "evolution": (
            f"{region.n_sampled} random configurations, then a differential evolution of the "
            f"worst normalized violation ({region.n_checked} configurations in all)"
        ),
    }[region.method]
    raise InfeasibleBudgetError(
        "no configuration meets the budgets according to the constraint models "
        f"(checked {searched}): " + "; ".join(parts)
    )
