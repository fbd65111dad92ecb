"""hwml.optimize.batch: q evaluations in flight, kriging believer, simulated and real clocks."""

from __future__ import annotations

import concurrent.futures as cf
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    BOSettings,
    Observations,
    batch_summary,
    constraint_filter,
    minimize,
    minimize_batch,
    propose_bo,
    run_batch_searches,
)
from hwml.optimize.batch import evaluate_config
from hwml.optimize.search import _Evaluation

from .problems import branin_objective, mem_bytes, power_w


def timed_branin(config):
    """Branin with a cost: an evaluation 'takes' 1 + x2 / 15 seconds."""
    return {**branin_objective(config), "eval_time_s": 1.0 + config["x2"] / 15.0}


def unit_cost_branin(config):
    return {**branin_objective(config), "eval_time_s": 1.0}


def _feasible(frame: pd.DataFrame) -> np.ndarray:
    x1, x2 = frame["x1"].to_numpy(), frame["x2"].to_numpy()
    return (power_w(x1, x2) <= 60.0) & (mem_bytes(x1, x2) <= 1.2e8)


@pytest.mark.parametrize("method", ["hw-ieci", "random-filtered"])
def test_q1_equals_the_sequential_search(method, branin_space, branin_constraints, fast_settings):
    kwargs = dict(method=method, n_evals=14, n_init=5, seed=4, settings=fast_settings)
    seq = minimize(branin_objective, branin_space, branin_constraints, progress=False, **kwargs)
    one = minimize_batch(
        branin_objective, branin_space, branin_constraints, q=1, progress=False, **kwargs
    )
    cols = ["iteration", "phase", "x1", "x2", "objective", "feasible_pred", "acquisition"]
    pd.testing.assert_frame_equal(seq[cols], one[cols])


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_batches_are_distinct_and_feasible(mode, branin_space, branin_constraints, fast_settings):
    h = minimize_batch(
        branin_objective,
        branin_space,
        branin_constraints,
        method="hw-ieci",
        q=4,
        mode=mode,
        n_evals=20,
        n_init=4,
        seed=1,
        settings=fast_settings,
        progress=False,
    )
    assert len(h) == 20
    assert not h.duplicated(["x1", "x2"]).any()
    assert h["feasible_pred"].all()
    assert _feasible(h).all()  # the models are the truth here
    assert (h["phase"] == "search").sum() == 16


def test_kriging_believer_moves_away_from_pending_points(branin_space, branin_constraints):
    rng = np.random.default_rng(0)
    points = branin_space.sample_unit(12, rng)
    frame = branin_space.decode(points)
    values = np.asarray(
        [branin_objective(c)["objective"] for c in branin_space.to_dicts(frame)], dtype=float
    )
    obs = Observations(points, values, np.ones(len(values), dtype=bool))
    feas = constraint_filter(branin_space, branin_constraints)
    settings = BOSettings(n_restarts=1, n_random=400, n_local=40)
    first = propose_bo(
        branin_space, obs, np.random.default_rng(5), "hw-ieci", feas, settings=settings
    )
    second = propose_bo(
        branin_space,
        obs,
        np.random.default_rng(5),
        "hw-ieci",
        feas,
        settings=settings,
        pending=first.point[None, :],
    )
    assert first is not None and second is not None
    assert not np.allclose(first.point, second.point)
    assert feas(second.point[None, :]).feasible[0]
    # believing the pending point lowers the acquisition: the batch's second pick is worth less
    assert second.acquisition <= first.acquisition + 1e-12


def test_simulated_clock_of_sync_and_async(branin_space, fast_settings):
    kwargs = dict(
        method="random", n_evals=8, n_init=2, seed=0, settings=fast_settings, progress=False
    )
    sync = minimize_batch(unit_cost_branin, branin_space, q=4, mode="sync", **kwargs)
    assert sync["cumulative_time_s"].tolist() == [1.0] * 4 + [2.0] * 4
    asy = minimize_batch(timed_branin, branin_space, q=2, mode="async", **kwargs)
    assert asy["cumulative_time_s"].is_monotonic_increasing
    # two workers: the wall clock is at least half the total and at most all of it
    total = asy["eval_time_s"].sum()
    assert total / 2 - 1e-9 <= asy["cumulative_time_s"].iloc[-1] < total
    one = minimize_batch(timed_branin, branin_space, q=1, **kwargs)
    assert one["cumulative_time_s"].iloc[-1] == pytest.approx(one["eval_time_s"].sum())


class _FailingExecutor(cf.Executor):
    """Runs tasks in this process; the third submission 'loses its worker'."""

    def __init__(self) -> None:
        self.n = 0

    def submit(self, fn, /, *args, **kwargs):
        self.n += 1
        future: cf.Future = cf.Future()
        if self.n == 3:
            future.set_exception(RuntimeError("KilledWorker: attempted to run task 3 times"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def test_executor_failure_is_a_failed_row_and_the_search_goes_on(branin_space, fast_settings):
    h = minimize_batch(
        branin_objective,
        branin_space,
        method="ei",
        q=2,
        n_evals=8,
        n_init=3,
        seed=0,
        executor=_FailingExecutor(),
        settings=fast_settings,
        progress=False,
    )
    assert len(h) == 8
    failed = h[h["status"] == "failed"]
    assert len(failed) == 1 and "KilledWorker" in failed["reason"].iloc[0]
    assert math.isnan(failed["objective"].iloc[0])
    assert h["cumulative_time_s"].is_monotonic_increasing


def test_thread_pool_executor_runs_q_at_once(branin_space, fast_settings):
    with cf.ThreadPoolExecutor(2) as pool:
        h = minimize_batch(
            branin_objective,
            branin_space,
            method="random",
            q=2,
            n_evals=6,
            n_init=2,
            seed=3,
            executor=pool,
            settings=fast_settings,
            progress=False,
        )
    assert len(h) == 6 and (h["status"] == "ok").all()


def test_resume_from_history_file(tmp_path: Path, branin_space, branin_constraints, fast_settings):
    path = tmp_path / "h.csv"
    kwargs = dict(method="hw-ieci", q=2, n_init=3, seed=2, settings=fast_settings, progress=False)
    first = minimize_batch(
        branin_objective, branin_space, branin_constraints, n_evals=6, history_path=path, **kwargs
    )
    full = minimize_batch(
        branin_objective, branin_space, branin_constraints, n_evals=10, history_path=path, **kwargs
    )
    assert len(first) == 6 and len(full) == 10
    pd.testing.assert_frame_equal(full.iloc[:6][["x1", "x2"]], first[["x1", "x2"]])
    assert not full.duplicated(["x1", "x2"]).any()
    assert len(pd.read_csv(path)) == 10


def test_argument_checks(branin_space):
    with pytest.raises(ValueError, match="batch search"):
        minimize_batch(branin_objective, branin_space, method="ga", q=2)
    with pytest.raises(ValueError, match="mode"):
        minimize_batch(branin_objective, branin_space, method="random", mode="later")
    with pytest.raises(ValueError, match="q must"):
        minimize_batch(branin_objective, branin_space, method="random", q=0)


def test_evaluate_config_seeds_and_reports():
    ev = evaluate_config(lambda c: {"objective": np.random.rand()}, {}, 7)
    again = evaluate_config(lambda c: {"objective": np.random.rand()}, {}, 7)
    assert isinstance(ev, _Evaluation) and ev.value == again.value


def test_batch_runs_and_summary(branin_space, branin_constraints, fast_settings):
    h = run_batch_searches(
        timed_branin,
        branin_space,
        branin_constraints,
        method="hw-ieci",
        qs=[1, 2, 4],
        modes=["async", "sync"],
        seeds=[0, 1, 2],
        n_evals=12,
        n_init=4,
        settings=fast_settings,
    )
    assert set(h["q"]) == {1, 2, 4} and set(h["mode"]) == {"async", "sync"}
    assert len(h) == 3 * 2 * 3 * 12
    summary = batch_summary(h, threshold=2.0, n_boot=100).set_index("label")
    assert summary.loc["q=1 async", "speedup_equal_evals"] == pytest.approx(1.0)
    # more workers finish the same evaluations sooner, never faster than q times
    for mode in ("async", "sync"):
        s2 = summary.loc[f"q=2 {mode}", "speedup_equal_evals"]
        s4 = summary.loc[f"q=4 {mode}", "speedup_equal_evals"]
        assert 1.0 < s2 <= 2.0 + 1e-9 and s2 < s4 <= 4.0 + 1e-9
        assert summary.loc[f"q=4 {mode}", "speedup_equal_lower"] <= s4
    assert summary.loc["q=4 async", "efficiency"] >= summary.loc["q=4 sync", "efficiency"]
