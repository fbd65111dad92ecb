"""Tests of hwml.optimize.search.minimize: determinism, resume, failures, budgets."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    METHODS,
    BOSettings,
    Constraint,
    HistoryError,
    InfeasibleBudgetError,
    Integer,
    Real,
    SearchExhaustedWarning,
    SearchSettings,
    Space,
    check_budgets,
    minimize,
)
from hwml.optimize.constraints import ConstraintModelError
from hwml.optimize.search import EvaluationError

from .problems import branin_objective

# columns that do not depend on timing
STABLE = [
    "iteration",
    "method",
    "seed",
    "phase",
    "x1",
    "x2",
    "objective",
    "pred_power_w",
    "measured_power_w",
    "pred_mem_bytes",
    "feasible_pred",
    "feasible",
    "status",
    "acquisition",
]


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_history(
    method: str, branin_space, branin_constraints, fast_settings
) -> None:
    kwargs = dict(method=method, n_evals=9, n_init=4, settings=fast_settings, progress=False)
    a = minimize(branin_objective, branin_space, branin_constraints, seed=3, **kwargs)
    b = minimize(branin_objective, branin_space, branin_constraints, seed=3, **kwargs)
    c = minimize(branin_objective, branin_space, branin_constraints, seed=4, **kwargs)
    pd.testing.assert_frame_equal(a[STABLE], b[STABLE])
    assert not np.allclose(a["x1"], c["x1"])
    assert a["iteration"].tolist() == list(range(1, 10))
    assert (a["phase"] == ["init"] * 4 + ["search"] * 5).all()


def test_objective_sees_seeded_global_generators(branin_space) -> None:
    draws: list[float] = []

    def noisy(config: dict) -> float:
        draws.append(float(np.random.rand()))
        return draws[-1]

    minimize(noisy, branin_space, method="random", n_evals=3, seed=0, progress=False)
    first, draws[:] = list(draws), []
    minimize(noisy, branin_space, method="random", n_evals=3, seed=0, progress=False)
    assert draws == first and len(set(first)) == 3


class _Interrupt:
    """An objective that raises ``exc`` on call number ``at`` (a simulated kill)."""

    def __init__(self, at: int, exc: type[BaseException]) -> None:
        self.at, self.exc, self.calls = at, exc, 0

    def __call__(self, config: dict) -> dict:
        self.calls += 1
        if self.calls == self.at:
            raise self.exc()
        return branin_objective(config)


@pytest.mark.parametrize(
    ("method", "suffix", "exc"),
    [
        ("hw-ieci", ".csv", KeyboardInterrupt),
        ("hw-ieci", ".jsonl", SystemExit),
        ("ga-filtered", ".csv", KeyboardInterrupt),
        ("ei", ".jsonl", KeyboardInterrupt),
    ],
)
def test_killed_search_resumes_without_duplicate_or_lost_rows(
    tmp_path: Path,
    method: str,
    suffix: str,
    exc: type[BaseException],
    branin_space,
    branin_constraints,
    fast_settings,
) -> None:
    kwargs = dict(
        method=method, n_evals=10, n_init=4, seed=5, settings=fast_settings, progress=False
    )
    reference = minimize(branin_objective, branin_space, branin_constraints, **kwargs)
    path = tmp_path / f"history{suffix}"
    killer = _Interrupt(at=7, exc=exc)
    with pytest.raises(exc):
        minimize(killer, branin_space, branin_constraints, history_path=path, **kwargs)
    lines = path.read_text().splitlines()
    assert len(lines) == 6 + (suffix == ".csv")  # six finished evaluations (+ CSV header)

    counter = _Interrupt(at=-1, exc=RuntimeError)
    resumed = minimize(counter, branin_space, branin_constraints, history_path=path, **kwargs)
    assert counter.calls == 4  # only the missing evaluations ran
    assert resumed["iteration"].tolist() == list(range(1, 11))
    assert not resumed.duplicated(["x1", "x2"]).any()
    pd.testing.assert_frame_equal(resumed[STABLE], reference[STABLE])
    # a third run finds the work done and evaluates nothing
    again = minimize(counter, branin_space, branin_constraints, history_path=path, **kwargs)
    assert counter.calls == 4 and len(again) == 10
    assert len(path.read_text().splitlines()) == 10 + (suffix == ".csv")


def test_a_resumed_search_rebuilds_the_gp_warm_start(
    tmp_path: Path, branin_space, branin_constraints, monkeypatch
) -> None:
    """Killed between full GP refits, a search resumes with the hyper-parameters it had."""
    from hwml.optimize import search

    bo = BOSettings(n_restarts=2, n_random=300, n_local=30, refit_every=2, refit_ll_drop=1e9)
    kwargs = dict(method="hw-ieci", n_evals=10, n_init=3, seed=2, settings=SearchSettings(bo=bo))
    reference = minimize(branin_objective, branin_space, branin_constraints, **kwargs)

    def resumed(path: Path) -> pd.DataFrame:
        with pytest.raises(KeyboardInterrupt):
            killer = _Interrupt(at=7, exc=KeyboardInterrupt)  # fits: 4 full, 5 warm, 6 full
            minimize(killer, branin_space, branin_constraints, history_path=path, **kwargs)
        return minimize(
            branin_objective, branin_space, branin_constraints, history_path=path, **kwargs
        )

    pd.testing.assert_frame_equal(resumed(tmp_path / "a.csv")[STABLE], reference[STABLE])
    monkeypatch.setattr(search, "_replay_fits", lambda run, state: None)
    forgetful = resumed(tmp_path / "b.csv")  # without the replay the choices differ
    assert not np.allclose(forgetful["x1"].iloc[6:], reference["x1"].iloc[6:])


def test_resume_after_hard_kill_in_subprocess(tmp_path: Path) -> None:
    """A process killed with SIGKILL mid-search leaves a file the next run resumes."""
    path = tmp_path / "run.csv"
    marker = tmp_path / "calls.txt"
    script = textwrap.dedent(f"""
        import os, signal
        from hwml.optimize import Real, Space, minimize
        space = Space([Real("x", 0.0, 1.0)])
        def objective(config):
            with open({str(marker)!r}, "a") as f:
                f.write("x\\n")
            if sum(1 for _ in open({str(marker)!r})) == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return (config["x"] - 0.3) ** 2
        minimize(objective, space, method="random", n_evals=8, seed=2, history_path={str(path)!r})
    """)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert len(path.read_text().splitlines()) == 1 + 4
    space = Space([Real("x", 0.0, 1.0)])
    calls: list[float] = []

    def objective(config: dict) -> float:
        calls.append(config["x"])
        return (config["x"] - 0.3) ** 2

    resumed = minimize(
        objective, space, method="random", n_evals=8, seed=2, history_path=path, progress=False
    )
    fresh = minimize(
        lambda c: (c["x"] - 0.3) ** 2, space, method="random", n_evals=8, seed=2, progress=False
    )
    assert len(calls) == 4
    assert resumed["x"].tolist() == fresh["x"].tolist()


def test_torn_last_line_is_dropped(tmp_path: Path, branin_space) -> None:
    path = tmp_path / "h.jsonl"
    minimize(
        branin_objective,
        branin_space,
        method="random",
        n_evals=3,
        seed=0,
        history_path=path,
        progress=False,
    )
    with open(path, "a") as handle:
        handle.write('{"iteration": 4, "meth')
    out = minimize(
        branin_objective,
        branin_space,
        method="random",
        n_evals=5,
        seed=0,
        history_path=path,
        progress=False,
    )
    assert out["iteration"].tolist() == [1, 2, 3, 4, 5]
    assert len(path.read_text().splitlines()) == 5


def test_history_of_another_run_is_refused(tmp_path: Path, branin_space) -> None:
    path = tmp_path / "h.csv"
    minimize(
        branin_objective,
        branin_space,
        method="random",
        n_evals=2,
        seed=0,
        history_path=path,
        progress=False,
    )
    with pytest.raises(HistoryError, match="seed"):
        minimize(
            branin_objective, branin_space, method="random", n_evals=3, seed=1, history_path=path
        )
    with pytest.raises(HistoryError, match="method"):
        minimize(branin_objective, branin_space, method="ga", n_evals=3, seed=0, history_path=path)
    other = Space([Real("x1", -5.0, 10.0), Real("y", 0.0, 1.0)])
    with pytest.raises(HistoryError, match="columns"):
        minimize(branin_objective, other, method="random", n_evals=3, seed=0, history_path=path)


def test_infeasible_budget_fails_before_any_evaluation(tmp_path: Path, branin_space) -> None:
    calls: list[dict] = []

    def objective(config: dict) -> float:
        calls.append(config)
        return 0.0

    impossible = Constraint("power_w", 5.0, lambda z: 10.0 + z["x1"].to_numpy() ** 2)
    for method in ("hw-ieci", "ei", "random"):
        with pytest.raises(
            InfeasibleBudgetError, match=r"power_w: budget 5, smallest prediction 10"
        ):
            minimize(
                objective,
                branin_space,
                [impossible],
                method=method,
                n_evals=5,
                history_path=tmp_path / "h.csv",
            )
    assert calls == []
    assert not (tmp_path / "h.csv").exists()
    possible = Constraint("power_w", 20.0, lambda z: 10.0 + z["x1"].to_numpy() ** 2)
    fraction = check_budgets(branin_space, [possible], seed=0, n=20_000)
    assert fraction == pytest.approx(2 * np.sqrt(10) / 15, abs=0.02)  # |x1| <= sqrt(10)


@pytest.mark.parametrize("method", ["hw-ieci", "random", "ga"])
def test_failing_objective_is_recorded_and_search_continues(
    method: str, branin_space, fast_settings
) -> None:
    counter = {"n": 0}

    def flaky(config: dict):
        counter["n"] += 1
        n = counter["n"]
        if n == 2:
            raise RuntimeError("CUDA out of memory")
        if n == 3:
            return math.nan
        if n == 4:
            return {"accuracy": 0.9}
        if n == 5:
            return "bad"
        return branin_objective(config)

    history = minimize(
        flaky,
        branin_space,
        method=method,
        n_evals=12,
        n_init=3,
        seed=0,
        settings=fast_settings,
        progress=False,
    )
    assert len(history) == 12
    failed = history[history["status"] == "failed"]
    assert failed["iteration"].tolist() == [2, 3, 4, 5]
    assert failed["reason"].tolist() == [
        "RuntimeError: CUDA out of memory",
        "objective is nan",
        "result has no 'objective' key",
        "objective returned str, not a number",
    ]
    assert failed["objective"].isna().all()
    ok = history[history["status"] == "ok"]
    assert (ok["reason"] == "").all() and ok["objective"].notna().all()
    assert not history.duplicated(["x1", "x2"]).any()


def test_measured_violation_overrides_prediction(branin_space) -> None:
    lenient = Constraint("power_w", 60.0, lambda z: np.zeros(len(z)))  # a wrong model: all fits
    history = minimize(
        branin_objective,
        branin_space,
        [lenient],
        method="random",
        n_evals=30,
        seed=0,
        progress=False,
    )
    violated = history["measured_power_w"] > 60.0
    assert violated.any() and history["feasible_pred"].all()
    assert (history["feasible"] == ~violated).all()
    assert (history["feasible_measured"].astype(bool) == ~violated).all()


def test_unmeasured_constraint_falls_back_to_prediction(branin_space, branin_constraints) -> None:
    history = minimize(
        branin_objective,
        branin_space,
        branin_constraints,
        method="random",
        n_evals=30,
        seed=1,
        progress=False,
    )
    assert history["measured_mem_bytes"].isna().all()  # the objective reports no memory
    expected = (history["measured_power_w"] <= 60.0) & (history["pred_mem_bytes"] <= 1.2e8)
    assert (history["feasible"] == expected).all()


def test_reported_eval_time_is_used(branin_space) -> None:
    history = minimize(
        lambda c: {"objective": c["x1"], "eval_time_s": 2.5},
        branin_space,
        method="random",
        n_evals=4,
        seed=0,
        progress=False,
    )
    np.testing.assert_allclose(history["eval_time_s"], 2.5)
    assert history["cumulative_time_s"].iloc[-1] >= 10.0
    assert (history["overhead_s"] >= 0).all()


def test_argument_checks(branin_space) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        minimize(branin_objective, branin_space, method="tpe")
    with pytest.raises(TypeError, match="seed must be an int"):
        minimize(branin_objective, branin_space, seed=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="n_evals must be an int"):
        minimize(branin_objective, branin_space, n_evals=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_init must be >= 1"):
        minimize(branin_objective, branin_space, n_init=0)
    c = Constraint("power_w", 1.0, lambda z: np.zeros(len(z)))
    with pytest.raises(ValueError, match="unique"):
        minimize(branin_objective, branin_space, [c, c])
    clash = Space([Integer("status", 0, 3)])
    with pytest.raises(ValueError, match="collide"):
        minimize(lambda cfg: 0.0, clash)
    with pytest.raises(HistoryError, match="unknown format"):
        minimize(branin_objective, branin_space, n_evals=1, history_path="h.parquet")


def test_explicit_candidates_restrict_the_search(branin_space) -> None:
    rows = pd.DataFrame({"x1": [-3.0, 0.0, 3.0, 9.0], "x2": [12.0, 5.0, 2.0, 2.5]})
    with pytest.warns(SearchExhaustedWarning, match="every row of the candidate pool"):
        history = minimize(
            branin_objective,
            branin_space,
            method="hw-ieci",
            n_evals=10,
            n_init=2,
            seed=0,
            candidates=rows,
            settings=SearchSettings(),
            progress=False,
        )
    assert len(history) == 4
    assert sorted(zip(history["x1"], history["x2"], strict=True)) == sorted(
        zip(rows["x1"], rows["x2"], strict=True)
    )


@pytest.mark.parametrize("broken", ["nan", "raises"])
def test_an_objective_that_always_fails_raises_with_the_first_reason(
    broken: str, branin_space, fast_settings, tmp_path: Path
) -> None:
    calls = {"n": 0}

    def objective(config: dict):
        calls["n"] += 1
        if broken == "raises":
            raise FileNotFoundError("no data at /nowhere")
        return math.nan

    path = tmp_path / "h.csv"
    with pytest.raises(EvaluationError, match="all 4 evaluations failed") as info:
        minimize(
            objective,
            branin_space,
            method="hw-ieci",
            n_evals=15,
            n_init=4,
            seed=0,
            history_path=path,
            settings=fast_settings,
            progress=False,
        )
    reason = "FileNotFoundError: no data at /nowhere" if broken == "raises" else "objective is nan"
    assert reason in str(info.value)
    assert calls["n"] == 4  # stopped after the initial evaluations, not 15
    assert len(info.value.history) == 4 and len(pd.read_csv(path)) == 4  # nothing lost


def test_a_constraint_model_that_raises_is_named_with_its_input(branin_space) -> None:
    def model(z):
        raise KeyError("dense_units")

    power = Constraint("power_w", 100.0, model)
    with pytest.raises(ConstraintModelError, match=r"constraint 'power_w'.*KeyError.*'x1'"):
        minimize(
            branin_objective, branin_space, [power], method="hw-ieci", n_evals=3, progress=False
        )


def test_a_search_with_nothing_to_evaluate_raises_instead_of_an_empty_history(
    branin_space, monkeypatch
) -> None:
    from hwml.optimize import search

    monkeypatch.setattr(search, "_propose", lambda *args, **kwargs: None)
    with pytest.raises(InfeasibleBudgetError, match="no configuration to evaluate"):
        minimize(branin_objective, branin_space, method="random", n_evals=5, progress=False)
