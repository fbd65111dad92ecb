"""Tests of hwml.optimize.baselines and the baseline methods of minimize."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    Constraint,
    Integer,
    Real,
    SearchExhaustedWarning,
    SearchSettings,
    Space,
    best_so_far,
    minimize,
)
from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.candidates import Observations
from hwml.optimize.constraints import predict_constraints

from .problems import BRANIN_MIN, branin_objective


def _line() -> Space:
    return Space([Real("a", 0.0, 1.0, structural=True)])


def test_random_search_never_repeats_and_stops_when_space_is_exhausted(grid_space: Space) -> None:
    with pytest.warns(SearchExhaustedWarning, match="all 25 configurations of the space"):
        history = minimize(
            lambda c: float(c["a"] + c["b"]),
            grid_space,
            method="random",
            n_evals=30,
            seed=0,
            progress=False,
        )
    assert len(history) == 25  # the whole 5 x 5 grid, once each
    assert history.attrs["exhausted"].startswith("random seed 0: stopped after 25 of 30")
    assert not history.duplicated(["a", "b"]).any()


def test_random_filtered_only_evaluates_accepted_points(branin_space, branin_constraints) -> None:
    history = minimize(
        branin_objective,
        branin_space,
        branin_constraints,
        method="random-filtered",
        n_evals=40,
        seed=1,
        progress=False,
    )
    assert history["feasible_pred"].all()
    plain = minimize(
        branin_objective,
        branin_space,
        branin_constraints,
        method="random",
        n_evals=40,
        seed=1,
        progress=False,
    )
    assert not plain["feasible_pred"].all()  # about two thirds of the space is rejected


def test_propose_random_with_pool_and_filter() -> None:
    space = _line()
    pool = np.array([[0.1], [0.2], [0.8]])
    c = Constraint("power_w", 0.5, lambda z: z["a"].to_numpy())

    def feasibility(points: np.ndarray):
        return predict_constraints([c], space.structural(space.decode(points)))

    obs = Observations(pool[:1], np.array([1.0]), np.array([True]))
    for seed in range(5):
        prop = propose_random(space, obs, np.random.default_rng(seed), feasibility, pool)
        assert prop is not None and prop.point[0] == pytest.approx(0.2)
    done = Observations(pool[:2], np.array([1.0, 1.0]), np.array([True, True]))
    assert propose_random(space, done, np.random.default_rng(0), feasibility, pool) is None


def test_tournament_prefers_better_parents() -> None:
    space = _line()
    obs = Observations(np.array([[0.1], [0.9]]), np.array([0.0, 1.0]), np.array([True, True]))
    settings = GASettings(population=2, tournament=3, mutation_scale=0.02)
    children = np.array(
        [propose_ga(space, obs, np.random.default_rng(i), settings).point[0] for i in range(200)]
    )
    near_best = np.mean(np.abs(children - 0.1) < np.abs(children - 0.9))
    assert near_best > 0.75  # P(best wins a 3-way tournament of 2 members) = 7/8


def test_constraint_aware_ga_ranks_infeasible_parents_last() -> None:
    space = _line()
    # the lower value at 0.9 was measured infeasible
    obs = Observations(np.array([[0.1], [0.9]]), np.array([0.0, -10.0]), np.array([True, False]))
    accept_all = Constraint("power_w", 1e9, lambda z: z["a"].to_numpy())

    def feasibility(points: np.ndarray):
        return predict_constraints([accept_all], space.structural(space.decode(points)))

    settings = GASettings(population=2, tournament=3, mutation_scale=0.02)
    aware = np.array(
        [
            propose_ga(
                space, obs, np.random.default_rng(i), settings, feasibility=feasibility
            ).point[0]
            for i in range(100)
        ]
    )
    unaware = np.array(
        [propose_ga(space, obs, np.random.default_rng(i), settings).point[0] for i in range(100)]
    )
    assert np.mean(aware < 0.5) > 0.75
    assert np.mean(unaware > 0.5) > 0.75


def test_ga_children_over_pool_are_unevaluated_rows() -> None:
    space = _line()
    pool = np.linspace(0.05, 0.95, 19)[:, None]
    obs = Observations(pool[[2, 10]], np.array([0.0, 1.0]), np.array([True, True]))
    for i in range(20):
        point = propose_ga(
            space, obs, np.random.default_rng(i), GASettings(population=2), pool=pool
        ).point
        assert any(np.allclose(point, p) for p in np.delete(pool, [2, 10], axis=0))


def test_ga_searches_and_filtered_ga_respects_models(branin_space, branin_constraints) -> None:
    for seed in range(3):
        history = minimize(
            branin_objective,
            branin_space,
            branin_constraints,
            method="ga-filtered",
            n_evals=60,
            n_init=10,
            seed=seed,
            progress=False,
        )
        assert history["feasible_pred"].all()
        curve = best_so_far(history)["best_objective"].to_numpy()
        assert curve[-1] < curve[9]  # improved on the initial population
    unaware = minimize(
        branin_objective,
        branin_space,
        branin_constraints,
        method="ga",
        n_evals=40,
        n_init=10,
        seed=0,
        progress=False,
    )
    assert not unaware["feasible_pred"].all()


def test_unaware_bo_pays_for_violations(
    branin_space, branin_constraints, fast_settings: SearchSettings
) -> None:
    """Hardware-unaware BO (plain EI) evaluates violating points; they count as infeasible
    and their evaluation time is still spent."""

    def objective(config: dict) -> dict:
        return {**branin_objective(config), "eval_time_s": 10.0}

    history = minimize(
        objective,
        branin_space,
        branin_constraints,
        method="ei",
        n_evals=20,
        n_init=5,
        seed=0,
        settings=fast_settings,
        progress=False,
    )
    violated = history["measured_power_w"] > 60.0
    assert violated.any()
    assert (~history.loc[violated, "feasible"]).all()
    assert (history.loc[violated, "feasible_measured"] == False).all()  # noqa: E712
    np.testing.assert_allclose(history["eval_time_s"], 10.0)
    expected = np.cumsum(history["eval_time_s"] + history["overhead_s"])
    np.testing.assert_allclose(history["cumulative_time_s"], expected)
    best = best_so_far(history)["best_objective"].iloc[-1]
    assert best == pytest.approx(history.loc[history["feasible"], "objective"].min())
    assert best >= BRANIN_MIN - 1e-6


def test_aging_evolution_mutates_the_best_of_a_sample_of_the_newest() -> None:
    from hwml.optimize import AgingSettings, propose_aging

    space = Space([Integer("a", 0, 9), Integer("b", 0, 9)])
    pool = space.encode(
        pd.DataFrame({"a": np.repeat(np.arange(10), 10), "b": np.tile(np.arange(10), 10)})
    )
    rng = np.random.default_rng(0)
    settings = AgingSettings(population=4, sample=4)
    # fewer than `population` evaluations: a random pool point
    obs = Observations(pool[:2], np.array([1.0, 2.0]), np.ones(2, dtype=bool))
    first = propose_aging(space, obs, rng, settings, pool)
    assert first is not None and not np.any(np.all(np.isclose(pool[:2], first.point), axis=1))
    # the oldest evaluation is the best, but it has aged out of the population of 4
    points = pool[[0, 55, 56, 57, 58]]
    values = np.array([-100.0, 5.0, 4.0, 0.0, 3.0])
    obs = Observations(points, values, np.ones(5, dtype=bool))
    children = [
        propose_aging(space, obs, np.random.default_rng(s), settings, pool) for s in range(20)
    ]
    parent = pool[57]
    dist = [np.abs(c.point - parent).max() for c in children]
    assert max(dist) <= 0.35  # mutations of 57 (sample = population: always the best member)
    assert all(not np.any(np.all(np.isclose(points, c.point), axis=1)) for c in children)
    with pytest.raises(ValueError):
        AgingSettings(population=0)
    everything = Observations(pool, np.zeros(len(pool)), np.ones(len(pool), dtype=bool))
    assert propose_aging(space, everything, rng, settings, pool) is None
