"""Tests of hwml.optimize.experiments: the multi-seed runners and the reach statistics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    BOSettings,
    Constraint,
    ParetoSettings,
    SearchExhaustedWarning,
    SearchSettings,
    Space,
    TabularObjective,
    best_so_far,
    compare_final,
    history_file,
    reach_summary,
    reach_times,
    run_pareto_searches,
    run_searches,
    speedup,
    speedup_interval,
    tolerance_sweep,
)

from .problems import branin_objective

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
    with pytest.warns(SearchExhaustedWarning, match="every row of the candidate pool"):
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


def test_run_searches_resumes_from_its_history_dir(
    tmp_path: Path, branin_space, branin_constraints
) -> None:
    kw = dict(methods=["hw-ieci", "random"], seeds=[0, 1], n_evals=8, n_init=3, settings=FAST)
    reference = run_searches(branin_objective, branin_space, branin_constraints, **kw)
    calls: list[int] = []

    def killed_at_13(config: dict) -> dict:
        if len(calls) == 12:
            raise KeyboardInterrupt
        calls.append(1)
        return branin_objective(config)

    with pytest.raises(KeyboardInterrupt):
        run_searches(killed_at_13, branin_space, branin_constraints, history_dir=tmp_path, **kw)
    # hw-ieci seed 0 finished, seed 1 stopped in its search phase after 4 evaluations
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hw-ieci-s0.csv", "hw-ieci-s1.csv"]
    assert history_file(tmp_path, "hw-ieci", 1) == tmp_path / "hw-ieci-s1.csv"
    assert len(pd.read_csv(tmp_path / "hw-ieci-s1.csv")) == 4

    def counted(config: dict) -> dict:
        calls.append(1)
        return branin_objective(config)

    calls.clear()
    resumed = run_searches(counted, branin_space, branin_constraints, history_dir=tmp_path, **kw)
    assert len(calls) == 4 * 8 - 12  # only the missing evaluations ran
    # the same choices as an uninterrupted run (the GP warm start was rebuilt)
    wall = [*TIMING, "eval_time_s"]
    pd.testing.assert_frame_equal(resumed.drop(columns=wall), reference.drop(columns=wall))
    calls.clear()
    again = run_searches(counted, branin_space, branin_constraints, history_dir=tmp_path, **kw)
    assert calls == [] and len(again) == 32


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


def _reach_curves(evals: dict[str, list[int]], n_evals: int = 60) -> pd.DataFrame:
    """Curves where run ``i`` of each method first reaches 1.0 at ``evals[method][i]``
    (never, when the value exceeds ``n_evals``); one second per evaluation."""
    rows = []
    for method, per_seed in evals.items():
        for seed, at in enumerate(per_seed):
            for i in range(1, n_evals + 1):
                rows.append((method, seed, i, float(i), 1.0 if i >= at else 3.0))
    return pd.DataFrame(
        rows, columns=["method", "seed", "iteration", "cumulative_time_s", "best_objective"]
    )


def test_speedup_interval_known_ratio() -> None:
    # every run of "fast" needs 5 evaluations and every run of "slow" 10: exactly 2x
    curves = _reach_curves({"fast": [5] * 12, "slow": [10] * 12})
    for what in ("evals", "time_s"):
        ci = speedup_interval(curves, 1.0, "fast", "slow", what, n_boot=500)
        assert (ci.ratio, ci.kind, ci.lower, ci.upper) == (2.0, "exact", 2.0, 2.0)
        assert ci.n_seeds == 12 and ci.n_boot == 500 and ci.confidence == 0.95
        assert not ci.includes(1.0) and ci.includes(2.0)
    assert ci.text() == "2.0x (95% CI 2.0x to 2.0x)"
    assert ci.text(label=False) == "2.0x (2.0x to 2.0x)" and ci.interval_text() == "2.0x to 2.0x"


def test_speedup_interval_brackets_the_ratio_and_matches_speedup() -> None:
    # "slow" needs 8 or 12 evaluations, "fast" 4: every resampled ratio lies in [2, 3]
    curves = _reach_curves({"fast": [4] * 10, "slow": [8, 12] * 5})
    ci = speedup_interval(curves, 1.0, "fast", "slow", n_boot=1000, seed=3)
    point = speedup(reach_summary(curves, 1.0), "fast", "slow")
    assert (ci.ratio, ci.kind) == (point.ratio, point.kind) == (2.5, "exact")
    assert 2.0 <= ci.lower < 2.5 < ci.upper <= 3.0
    again = speedup_interval(curves, 1.0, "fast", "slow", n_boot=1000, seed=3)
    assert again == ci  # the resampling is seeded


def test_speedup_interval_widens_with_fewer_seeds() -> None:
    rng = np.random.default_rng(0)
    fast = rng.integers(3, 15, size=40).tolist()
    slow = rng.integers(8, 40, size=40).tolist()
    many = speedup_interval(_reach_curves({"fast": fast, "slow": slow}), 1.0, "fast", "slow")
    few = speedup_interval(_reach_curves({"fast": fast[:8], "slow": slow[:8]}), 1.0, "fast", "slow")
    assert many.lower <= many.ratio <= many.upper
    assert few.upper - few.lower > many.upper - many.lower


def test_speedup_interval_censored_runs() -> None:
    # the baseline never reaches the level: the ratio is a lower bound, the interval open
    curves = _reach_curves({"fast": [5, 6, 7, 8], "slow": [99] * 4}, n_evals=20)
    ci = speedup_interval(curves, 1.0, "fast", "slow")
    assert ci.kind == "lower" and ci.ratio == pytest.approx(20 / 6.5)
    assert math.isinf(ci.upper) and 20 / 8 <= ci.lower <= 20 / 6.5  # at least bound / median
    assert ci.text().endswith("to ∞)") and ci.interval_text().endswith("to ∞")
    # the method never reaches it: undefined, and the interval reaches down to 0
    back = speedup_interval(curves, 1.0, "slow", "fast")
    assert back.kind == "undefined" and math.isnan(back.ratio) and back.lower == 0.0
    assert 5 / 20 <= back.upper <= 8 / 20  # at most the median over the bound
    assert back.text().startswith("undefined")
    # both censored in most resamples: nothing is known, the interval is everything
    never = _reach_curves({"a": [99, 99, 99, 4], "b": [99, 99, 99, 5]}, n_evals=20)
    both = speedup_interval(never, 1.0, "a", "b")
    assert both.kind == "undefined" and both.lower == 0.0 and math.isinf(both.upper)
    # one censored seed in ten rarely fills half a resample: the interval stays exact
    few = _reach_curves({"a": [5] * 9 + [99], "b": [10] * 9 + [99]}, n_evals=20)
    part = speedup_interval(few, 1.0, "a", "b", n_boot=200)
    assert (part.kind, part.ratio, part.lower, part.upper) == ("exact", 2.0, 2.0, 2.0)


def test_speedup_interval_rejects_bad_arguments() -> None:
    curves = _reach_curves({"fast": [5, 6], "slow": [9, 10]})
    with pytest.raises(ValueError, match="what"):
        speedup_interval(curves, 1.0, "fast", "slow", "seconds")
    with pytest.raises(ValueError, match="confidence"):
        speedup_interval(curves, 1.0, "fast", "slow", confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        speedup_interval(curves, 1.0, "fast", "slow", n_boot=0)
    with pytest.raises(ValueError, match="no runs"):
        speedup_interval(curves, 1.0, "fast", "other")
    other_seeds = curves.assign(
        seed=np.where(curves["method"] == "slow", curves["seed"] + 5, curves["seed"])
    )
    with pytest.raises(ValueError, match="same seeds"):
        speedup_interval(other_seeds, 1.0, "fast", "slow")


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
