"""Tests of hwml.optimize.experiments: the multi-seed runners and the reach statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    BOSettings,
    Constraint,
    ParetoSettings,
    SearchSettings,
    Space,
    TabularObjective,
    best_so_far,
    compare_final,
    reach_summary,
    reach_times,
    run_pareto_searches,
    run_searches,
    speedup,
    tolerance_sweep,
)

FAST = SearchSettings(bo=BOSettings(n_restarts=1, n_random=100, n_local=10))
TIMING = ["overhead_s", "cumulative_time_s"]


@pytest.fixture
def objective(grid_space: Space, grid_table: pd.DataFrame) -> TabularObjective:
    return TabularObjective(grid_table, grid_space, cost="train_s")


@pytest.fixture
def power_cap() -> list[Constraint]:
    return [Constraint("power_w", 25.0, lambda z: 10.0 * z["a"].to_numpy(float))]


def test_run_searches_every_method_and_seed(objective, grid_space, power_cap) -> None:
    kw = dict(methods=["random", "hw-ieci"], seeds=[0, 1, 2], n_evals=8, n_init=3, settings=FAST)
    h = run_searches(objective, grid_space, power_cap, **kw)
    runs = h[["method", "seed"]].drop_duplicates().apply(tuple, axis=1).tolist()
    assert runs == [("random", 0), ("random", 1), ("random", 2)] + [
        ("hw-ieci", s) for s in (0, 1, 2)
    ]
    assert h.groupby(["method", "seed"]).size().eq(8).all()
    assert (h.loc[h["method"] == "hw-ieci", "pred_power_w"] <= 25).all()
    parallel = run_searches(objective, grid_space, power_cap, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(h.drop(columns=TIMING), parallel.drop(columns=TIMING))


def test_run_searches_constraints_per_method(objective, grid_space, power_cap) -> None:
    h = run_searches(
        objective,
        grid_space,
        {"random-filtered": power_cap},
        methods=["random-filtered", "random"],
        seeds=[0],
        n_evals=20,
        n_init=2,
    )
    filtered = h[h["method"] == "random-filtered"]
    assert len(filtered) == 15  # only a <= 2 passes the filter: 3 x 5 rows
    assert (filtered["a"] <= 2).all()
    assert len(h[h["method"] == "random"]) == 20  # no constraints: any row


def test_run_searches_rejects_bad_arguments(objective, grid_space) -> None:
    with pytest.raises(ValueError, match="methods"):
        run_searches(objective, grid_space, methods=["parego"], seeds=[0], n_evals=2, n_init=1)
    with pytest.raises(ValueError, match="seeds"):
        run_searches(objective, grid_space, methods=["random"], seeds=[], n_evals=2, n_init=1)
    with pytest.raises(ValueError, match="n_jobs"):
        run_searches(
            objective, grid_space, methods=["random"], seeds=[0], n_evals=2, n_init=1, n_jobs=0
        )


def test_run_pareto_searches(objective, grid_space) -> None:
    kw = dict(
        objectives=("objective", "power_w"),
        methods=["nsga", "parego"],
        seeds=[4, 5],
        n_evals=7,
        n_init=3,
        settings=ParetoSettings(bo=FAST.bo),
    )
    h = run_pareto_searches(objective, grid_space, **kw)
    assert h.groupby(["method", "seed"]).size().to_dict() == {
        ("nsga", 4): 7,
        ("nsga", 5): 7,
        ("parego", 4): 7,
        ("parego", 5): 7,
    }
    parallel = run_pareto_searches(objective, grid_space, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(h.drop(columns=TIMING), parallel.drop(columns=TIMING))
    with pytest.raises(ValueError, match="methods"):
        run_pareto_searches(objective, grid_space, **{**kw, "methods": ["hw-ieci"]})


def _curves() -> pd.DataFrame:
    """Three runs of 'fast' reaching 1.0 at 2, 3, 5 evaluations; 'slow' at 6 or never."""
    rows = []
    traces = {
        ("fast", 0): [3, 1, 1, 1, 1, 1],
        ("fast", 1): [3, 2, 1, 1, 1, 1],
        ("fast", 2): [3, 2, 2, 2, 1, 1],
        ("slow", 0): [3, 3, 3, 3, 3, 1],
        ("slow", 1): [3, 3, 3, 3, 3, 3],
        ("slow", 2): [3, 3, 3, 3, 3, 3],
    }
    for (method, seed), trace in traces.items():
        for i, value in enumerate(trace, start=1):
            rows.append((method, seed, i, 10.0 * i, float(value)))
    return pd.DataFrame(
        rows, columns=["method", "seed", "iteration", "cumulative_time_s", "best_objective"]
    )


def test_reach_times_keep_censored_bounds() -> None:
    t = reach_times(_curves(), 1.0).set_index(["method", "seed"])
    assert t.loc[("fast", 1)].tolist() == [True, 3.0, 30.0]
    assert t.loc[("slow", 1)].tolist() == [False, 6.0, 60.0]


def test_reach_summary_and_speedup() -> None:
    s = reach_summary(_curves(), 1.0)
    assert s.loc["fast", "median_evals"] == 3.0 and not s.loc["fast", "censored"]
    assert s.loc["fast", "median_time_s"] == 30.0
    assert s.loc["fast", "reached"] == 1.0 and s.loc["fast", "mean_evals_reached"] == pytest.approx(
        10 / 3
    )
    assert math.isinf(s.loc["slow", "median_evals"]) and s.loc["slow", "censored"]
    assert s.loc["slow", "median_evals_bound"] == 6.0
    assert s.loc["slow", "reached"] == pytest.approx(1 / 3)
    up = speedup(s, "fast", "slow")
    assert up.kind == "lower" and up.ratio == pytest.approx(2.0)
    assert up.text() == "more than 2.0x"
    assert speedup(s, "slow", "fast").kind == "undefined"
    assert speedup(s, "slow", "fast").text() == "undefined"
    assert speedup(s, "fast", "fast", "time_s").text() == "1.0x"
    with pytest.raises(ValueError, match="what"):
        speedup(s, "fast", "slow", "seconds")


def test_tolerance_sweep() -> None:
    sweep = tolerance_sweep(_curves(), 1.0, [0.0, 2.0], "fast", "slow")
    assert sweep["threshold"].tolist() == [1.0, 3.0]
    assert sweep.loc[0, "speedup_evals_kind"] == "lower"
    assert sweep.loc[1, "speedup_evals"] == 1.0 and sweep.loc[1, "speedup_time_kind"] == "exact"
    assert sweep.loc[0, "median_evals[fast]"] == 3.0 and sweep.loc[0, "reached[slow]"] == 1 / 3


def test_compare_final() -> None:
    frame = pd.DataFrame({"method": ["a"] * 5 + ["b"] * 5, "hv": [5, 6, 7, 8, 9, 1, 2, 3, 4, 5]})
    out = compare_final(frame, "hv", "a", "b")
    assert out["mean_method"] == 7.0 and out["mean_baseline"] == 3.0 and out["difference"] == 4.0
    assert 0 < out["p_value"] < 0.05
    assert out["std_method"] == pytest.approx(np.std([5, 6, 7, 8, 9], ddof=1))
    single = compare_final(frame.iloc[[0, 5]], "hv", "a", "b")
    assert math.isnan(single["p_value"]) and math.isnan(single["std_method"])
    with pytest.raises(ValueError, match="no runs"):
        compare_final(frame, "hv", "a", "c")


def test_best_so_far_feeds_reach_summary(objective, grid_space) -> None:
    h = run_searches(objective, grid_space, methods=["random"], seeds=[0, 1], n_evals=25, n_init=1)
    s = reach_summary(best_so_far(h), 0.5)  # the table's optimum is 0.5
    assert s.loc["random", "reached"] == 1.0  # 25 evaluations cover the whole table
