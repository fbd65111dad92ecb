"""Tests of hwml.optimize.multiobjective: sorting, scalarization, the three searches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    BOSettings,
    Integer,
    ParetoSettings,
    Space,
    TabularObjective,
    chebyshev,
    crowding_distance,
    minimize_pareto,
    nondominated_ranks,
    nsga_fitness,
)
from hwml.optimize.multiobjective import simplex_weights

FAST = ParetoSettings(bo=BOSettings(n_restarts=1, n_random=200, n_local=20))


def test_nondominated_ranks_by_hand() -> None:
    values = np.array(
        [
            [1.0, 5.0],  # front
            [2.0, 2.0],  # front
            [5.0, 1.0],  # front
            [3.0, 3.0],  # dominated by (2, 2) only -> rank 1
            [4.0, 4.0],  # dominated by (3, 3) -> rank 2
            [np.nan, 1.0],  # not comparable
            [2.0, 2.0],  # duplicate of a front point: not dominated
        ]
    )
    assert nondominated_ranks(values).tolist() == [0, 0, 0, 1, 2, -1, 0]
    assert nondominated_ranks(np.empty((0, 2))).tolist() == []
    with pytest.raises(ValueError, match="shape"):
        nondominated_ranks(np.ones(3))


def test_crowding_distance_and_fitness_order() -> None:
    values = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0], [5.0, 5.0]])
    ranks = nondominated_ranks(values)
    assert ranks.tolist() == [0, 0, 0, 0, 1]
    crowd = crowding_distance(values, ranks)
    assert np.isinf(crowd[0]) and np.isinf(crowd[3]) and np.isinf(crowd[4])
    # (1, 2): neighbours (0, 4) and (3, 1): 3/4 + 3/4; (3, 1): neighbours (1, 2), (4, 0): 3/4 + 2/4
    assert crowd[1] == pytest.approx(1.5)
    assert crowd[2] == pytest.approx(1.25)
    fitness = nsga_fitness(np.vstack([values, [np.nan, 0.0]]))
    order = np.argsort(fitness[:5], kind="stable")
    assert order.tolist() == [0, 3, 1, 2, 4]  # extremes, then the less crowded, then rank 1
    assert np.isnan(fitness[5])
    assert np.all(fitness[:4] < 1.0) and 1.0 <= fitness[4] < 2.0


def test_chebyshev_normalizes_and_weights() -> None:
    values = np.array([[1.0, 100.0], [3.0, 10.0], [2.0, 1.0], [np.nan, 5.0]])
    only_first = chebyshev(values, [1.0, 0.0], rho=0.0)
    assert only_first[:3] == pytest.approx([0.0, 1.0, 0.5])
    assert np.isnan(only_first[3])
    both = chebyshev(values, [0.5, 0.5], rho=0.1)
    # normalized: (0, 1), (1, 0.0909), (0.5, 0): max of halves plus 0.1 * sum of halves
    assert both[2] == pytest.approx(0.25 + 0.1 * 0.25)
    logged = chebyshev(values, [0.0, 1.0], rho=0.0, log=True)
    assert logged[:3] == pytest.approx([1.0, 0.5, 0.0])  # log10 scale: 2, 1, 0
    with pytest.raises(ValueError, match="shape"):
        chebyshev(values, [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        chebyshev(values, [1.5, -0.5])


def test_simplex_weights() -> None:
    w = simplex_weights(3, np.random.default_rng(0))
    assert w.shape == (3,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)


@pytest.fixture
def front_table() -> tuple[Space, pd.DataFrame]:
    """A 6 x 6 grid whose two objectives trade off: error falls with a, energy rises."""
    space = Space([Integer("a", 0, 5, structural=True), Integer("b", 0, 5)])
    a, b = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    t = pd.DataFrame({"a": a.ravel(), "b": b.ravel()})
    t["error"] = 1.0 / (1.0 + t["a"]) + 0.05 * (t["b"] - 2) ** 2
    t.loc[(t["a"] == 5) & (t["b"] == 5), "error"] = np.nan  # a diverged run
    t["energy_mj"] = 1.0 + t["a"] ** 2
    t["cost_s"] = 2.0
    return space, t


@pytest.mark.parametrize("method", ["parego", "random", "nsga"])
def test_minimize_pareto_searches_the_table(front_table, method: str) -> None:
    space, table = front_table
    objective = TabularObjective(table, space, objective="error", cost="cost_s")
    kw = dict(objectives=("objective", "energy_mj"), method=method, n_evals=20, n_init=6)
    h = minimize_pareto(objective, space, seed=3, settings=FAST, **kw)
    assert len(h) == 20 and h["iteration"].tolist() == list(range(1, 21))
    assert list(h.columns[:4]) == ["iteration", "method", "seed", "phase"]
    assert {"a", "b", "objective", "energy_mj", "status", "cumulative_time_s"} <= set(h.columns)
    assert (h["phase"] == "init").sum() == 6
    assert not h.duplicated(["a", "b"]).any()  # never the same row twice
    assert h["eval_time_s"].eq(2.0).all()
    assert np.all(np.diff(h["cumulative_time_s"]) >= 2.0)
    failed = h[h["objective"].isna()]
    assert (failed["status"] == "failed").all()
    again = minimize_pareto(objective, space, seed=3, settings=FAST, **kw)
    pd.testing.assert_frame_equal(
        h.drop(columns=["overhead_s", "cumulative_time_s"]),
        again.drop(columns=["overhead_s", "cumulative_time_s"]),
    )


def test_minimize_pareto_stops_when_the_pool_runs_out(front_table) -> None:
    space, table = front_table
    objective = TabularObjective(table.head(8), space, objective="error")
    h = minimize_pareto(
        objective, space, objectives=("objective", "energy_mj"), method="nsga", n_evals=20, n_init=3
    )
    assert len(h) == 8


def test_minimize_pareto_unreported_objective_fails_the_evaluation(front_table) -> None:
    space, table = front_table
    objective = TabularObjective(table, space, objective="error", columns=[])
    h = minimize_pareto(
        objective, space, objectives=("objective", "energy_mj"), method="random", n_evals=4
    )
    assert (h["status"] == "failed").all() and h["energy_mj"].isna().all()
    assert "not reported" in h["reason"].iloc[0]


def test_minimize_pareto_rejects_bad_arguments(front_table) -> None:
    space, table = front_table
    objective = TabularObjective(table, space, objective="error")
    with pytest.raises(ValueError, match="method"):
        minimize_pareto(objective, space, method="ei")
    with pytest.raises(ValueError, match="distinct"):
        minimize_pareto(objective, space, objectives=("objective", "objective"))
    with pytest.raises(ValueError, match="collide"):
        minimize_pareto(objective, space, objectives=("objective", "a"))
    with pytest.raises(TypeError):
        minimize_pareto(objective, space, n_evals=2.5)  # type: ignore[arg-type]
