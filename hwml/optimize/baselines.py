"""Model-free baselines: random search and a steady-state genetic algorithm.

* Random search draws uniformly; its *filtered* variant draws only configurations the
  constraint models accept (an a-priori filter without a surrogate).
* Aging (regularized) evolution (Real et al., 2019), the controller of many architecture
  searches: the population is the ``population`` most recent evaluations; each child
  mutates the best of ``sample`` members drawn at random from it, and the oldest member
  leaves as the child joins, so that no early lucky evaluation rules the search forever.
  Like the GA, its population is a function of the history (the order of evaluations).
* The genetic algorithm works on the unit-cube encoding. It is steady-state: the
  population is the ``population`` best evaluations so far; each new child comes from two
  parents picked by tournament selection, uniform crossover and per-gene mutation. Because
  the population is a function of the history, the GA, like every proposer here, resumes
  from a history file without extra state. Its constraint-aware variant rejects children
  the constraint models reject and ranks evaluations that turned out infeasible below all
  feasible ones.

(The hardware-unaware BO baseline is ``kind="ei"`` of :func:`hwml.optimize.bo.propose_bo`.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwml.optimize.bo import Proposal
from hwml.optimize.candidates import FeasibilityFn, Observations, draw_random, not_evaluated
from hwml.optimize.feasible import FeasibleRegion
from hwml.optimize.space import Categorical, Space

__all__ = ["AgingSettings", "GASettings", "propose_aging", "propose_ga", "propose_random"]


def propose_random(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    *,
    region: FeasibleRegion | None = None,
) -> Proposal | None:
    """Propose a uniformly random new point, filtered by the constraint models if given.

    Args:
        space: the search space.
        obs: observations so far (never re-proposed).
        rng: random generator.
        feasibility: optional a-priori constraint filter.
        pool: optional finite set of allowed points, shape ``(m, d)``.
        region: feasible configurations to draw from when rejection sampling finds none
            (:func:`~hwml.optimize.candidates.draw_random`).

    Returns:
        The proposal, or ``None`` when no new (feasible) point was found.
    """
    point = draw_random(space, obs, rng, feasibility, pool, region=region)
    return None if point is None else Proposal(point)


@dataclass(frozen=True)
class GASettings:
    """Knobs of the genetic algorithm.

    Attributes:
        population: number of best evaluations that form the breeding population
            (``None``: the number of initial evaluations of the search).
        tournament: tournament size of parent selection.
        crossover_rate: probability that a child mixes both parents (uniform crossover).
        mutation_rate: per-gene mutation probability (``None``: ``1 / d``).
        mutation_scale: standard deviation of a mutation step, unit-cube units (integer
            genes move by at least one level; categorical genes are re-drawn).
        max_tries: children drawn before falling back to a random point.
    """

    population: int | None = None
    tournament: int = 3
    crossover_rate: float = 0.9
    mutation_rate: float | None = None
    mutation_scale: float = 0.1
    max_tries: int = 100


def _ranks(obs: Observations, aware: bool) -> np.ndarray:
    """Sort order of evaluations, best first: succeeded, (feasible), lowest objective."""
    failed = ~obs.ok
    infeasible = ~obs.feasible if aware else np.zeros(len(obs), dtype=bool)
    value = np.where(obs.ok, obs.values, np.inf)
    return np.lexsort((value, infeasible, failed))


def _mutate(
    space: Space, child: np.ndarray, rng: np.random.Generator, rate: float, scale: float
) -> np.ndarray:
    out = child.copy()
    d = space.n_dims
    flips = rng.random(d) < rate
    if not flips.any():
        flips[rng.integers(d)] = True
    for j, dim in enumerate(space.dimensions):
        if not flips[j]:
            continue
        if isinstance(dim, Categorical):
            out[j] = rng.random()
            continue
        sigma = scale if dim.n_levels is None else max(scale, 1.0 / dim.n_levels)
        value = abs(out[j] + rng.normal() * sigma)
        out[j] = 2.0 - value if value > 1.0 else value
    return space.snap(np.clip(out, 0.0, 1.0)[None, :])[0]


def propose_ga(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    settings: GASettings | None = None,
    population: int = 10,
    feasibility: FeasibilityFn | None = None,
    pool: np.ndarray | None = None,
    *,
    region: FeasibleRegion | None = None,
) -> Proposal | None:
    """Breed one child from the current population.

    Args:
        space: the search space.
        obs: observations so far; needs at least one.
        rng: random generator.
        settings: GA knobs; ``settings.population`` overrides ``population``.
        population: breeding population size when ``settings.population`` is ``None``.
        feasibility: constraint models; when given the GA is constraint-aware (rejects
            children predicted infeasible, ranks measured-infeasible parents last).
        pool: optional finite set of allowed points; a child is replaced by the nearest
            not-yet-evaluated (and, if aware, predicted-feasible) pool point.
        region: feasible configurations for the random fallback
            (:func:`propose_random`).

    Returns:
        The proposal, or ``None`` when no new point could be produced.
    """
    settings = settings or GASettings()
    if len(obs) == 0:
        return propose_random(space, obs, rng, feasibility, pool, region=region)
    aware = feasibility is not None
    size = max(2, settings.population or population)
    members = obs.points[_ranks(obs, aware)[:size]]
    rate = settings.mutation_rate if settings.mutation_rate is not None else 1.0 / space.n_dims

    allowed = None
    if pool is not None:
        fresh = not_evaluated(pool, obs.points)
        if aware and fresh.any():
            fresh[fresh] = feasibility(pool[fresh]).feasible
        allowed = pool[fresh]
        if len(allowed) == 0:
            return None

    def tournament() -> np.ndarray:
        contenders = rng.integers(len(members), size=settings.tournament)
        return members[contenders.min()]  # members are sorted best first

    for _ in range(settings.max_tries):
        mother, father = tournament(), tournament()
        if rng.random() < settings.crossover_rate:
            child = np.where(rng.random(space.n_dims) < 0.5, mother, father)
        else:
            child = mother.copy()
        child = _mutate(space, child, rng, rate, settings.mutation_scale)
        if allowed is not None:
            return Proposal(allowed[np.argmin(np.linalg.norm(allowed - child, axis=1))])
        if not not_evaluated(child[None, :], obs.points)[0]:
            continue
        if aware and not feasibility(child[None, :]).feasible[0]:
            continue
        return Proposal(child)
    return propose_random(space, obs, rng, feasibility, pool, region=region)


@dataclass(frozen=True)
class AgingSettings:
    """Knobs of aging evolution.

    Attributes:
        population: the most recent successful evaluations that form the population.
        sample: members drawn (without replacement) to pick each parent from.
        mutation_rate: per-gene mutation probability (``None``: ``1 / d``; at least one
            gene always mutates).
        mutation_scale: standard deviation of a mutation step, unit-cube units (integer
            genes move by at least one level; categorical genes are re-drawn).
        max_tries: children drawn before falling back to a random point.
    """

    population: int = 10
    sample: int = 3
    mutation_rate: float | None = None
    mutation_scale: float = 0.1
    max_tries: int = 100

    def __post_init__(self) -> None:
        if self.population < 1 or self.sample < 1:
            raise ValueError(
                f"population and sample must be >= 1, got {self.population}, {self.sample}"
            )


def propose_aging(
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    settings: AgingSettings | None = None,
    pool: np.ndarray | None = None,
) -> Proposal | None:
    """Mutate the best of a random sample of the most recent evaluations (aging evolution).

    Until ``settings.population`` evaluations have succeeded, a random point is proposed
    (the initial population). ``obs`` must hold the evaluations in the order they were
    made: the population is the last ``population`` successful ones.

    Args:
        space: the search space.
        obs: observations so far, in evaluation order (lower value is better).
        rng: random generator.
        settings: the knobs.
        pool: optional finite set of allowed points; a child is replaced by the nearest
            not-yet-evaluated pool point.

    Returns:
        The proposal, or ``None`` when no new point is left.
    """
    settings = settings or AgingSettings()
    ok = np.flatnonzero(obs.ok)
    if len(ok) < settings.population:
        return propose_random(space, obs, rng, None, pool)
    members = ok[-settings.population :]
    picked = rng.choice(members, size=min(settings.sample, len(members)), replace=False)
    parent = obs.points[picked[np.argmin(obs.values[picked])]]
    rate = settings.mutation_rate if settings.mutation_rate is not None else 1.0 / space.n_dims

    allowed = None
    if pool is not None:
        allowed = pool[not_evaluated(pool, obs.points)]
        if len(allowed) == 0:
            return None
    for _ in range(settings.max_tries):
        child = _mutate(space, parent, rng, rate, settings.mutation_scale)
        if allowed is not None:
            return Proposal(allowed[np.argmin(np.linalg.norm(allowed - child, axis=1))])
        if not_evaluated(child[None, :], obs.points)[0]:
            return Proposal(child)
    return propose_random(space, obs, rng, None, pool)
