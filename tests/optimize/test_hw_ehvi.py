"""Tests of the hardware-aware EHVI search: closed form against Monte Carlo, end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymoo.indicators.hv import HV
from scipy.stats import norm

from hwml.optimize import (
    PARETO_METHODS,
    BOSettings,
    Integer,
    ParetoSettings,
    Space,
    TabularObjective,
    expected_hypervolume_improvement,
    minimize_pareto,
    run_pareto_searches,
)

FAST = ParetoSettings(bo=BOSettings(n_restarts=1, n_random=200, n_local=20))


def _hv(points: np.ndarray, ref: np.ndarray) -> float:
    inside = points[np.all(points < ref, axis=1)]
    return float(HV(ref_point=ref)(inside)) if len(inside) else 0.0


def _hvi_monte_carlo(
    mean: float, std: float, h: np.ndarray, front: np.ndarray, ref: np.ndarray, seed: int
) -> float:
    """E[HV(front + (Y, h)) - HV(front)] over Y ~ N(mean, std^2), sampled.

    The improvement is computed by pymoo at the kinks (the front's first objectives and
    the reference) and on a grid between; it is linear in ``y`` between kinks, so
    interpolating it at the samples is exact and the only error is the sampling's. The
    samples are stratified (one uniform draw in each of ``n`` equal-probability strata,
    mapped through the normal quantile function), which keeps that error far below 1 %.
    """
    base = _hv(front, ref)
    lo, hi = min(mean - 8 * std, front[:, 0].min()), ref[0]
    grid = np.unique(np.concatenate([np.linspace(lo, hi, 200), front[:, 0], [ref[0]]]))
    grid = grid[grid <= ref[0]]
    hvi = np.array([_hv(np.vstack([front, np.r_[y, h]]), ref) - base for y in grid])
    n = 200_000
    u = (np.arange(n) + np.random.default_rng(seed).uniform(size=n)) / n
    ys = mean + std * norm.ppf(u)
    vals = np.interp(ys, grid, hvi, left=np.nan, right=0.0)
    below = ys < grid[0]  # below the grid HVI is linear with slope -A_0
    vals[below] = hvi[0] + (grid[0] - ys[below]) * (hvi[0] - hvi[1]) / (grid[1] - grid[0])
    return float(np.mean(vals))


@pytest.mark.parametrize("q", [0, 1, 2])
@pytest.mark.parametrize("case", range(4))
def test_closed_form_matches_monte_carlo(q: int, case: int) -> None:
    rng = np.random.default_rng(100 * q + case)
    front = rng.uniform(0.0, 1.0, size=(int(rng.integers(2, 8)), 1 + q))
    ref = np.full(1 + q, 1.1)
    h = rng.uniform(0.0, 0.8, size=q)
    mean = float(rng.uniform(0.1, 0.9))
    std = float(rng.uniform(0.1, 0.4))
    exact = expected_hypervolume_improvement([mean], [std], h[None, :], front, ref)[0]
    sampled = _hvi_monte_carlo(mean, std, h, front, ref, seed=case)
    assert sampled > 1e-4  # the case is informative
    assert exact == pytest.approx(sampled, rel=1e-2)


def test_vectorized_over_candidates_and_zero_std() -> None:
    rng = np.random.default_rng(7)
    front = rng.uniform(0.0, 1.0, size=(5, 3))
    ref = np.full(3, 1.2)
    hw = rng.uniform(0.0, 1.0, size=(6, 2))
    mean = rng.uniform(0.0, 1.0, size=6)
    std = rng.uniform(0.05, 0.3, size=6)
    together = expected_hypervolume_improvement(mean, std, hw, front, ref)
    alone = [
        expected_hypervolume_improvement(
            mean[i : i + 1], std[i : i + 1], hw[i : i + 1], front, ref
        )[0]
        for i in range(6)
    ]
    assert together == pytest.approx(alone)
    # with no uncertainty the EHVI is the improvement of the point itself
    point = np.r_[mean[0], hw[0]]
    exact = _hv(np.vstack([front, point]), ref) - _hv(front, ref)
    got = expected_hypervolume_improvement(mean[:1], [0.0], hw[:1], front, ref)[0]
    assert got == pytest.approx(exact, abs=1e-12)


def test_dominated_in_hardware_gets_no_improvement() -> None:
    # a front point better in hardware, with an error far below any plausible y
    front = np.array([[0.05, 0.2, 0.2], [0.6, 0.1, 0.9]])
    ref = np.full(3, 1.1)
    hw = np.array([[0.3, 0.4], [0.15, 0.15]])
    got = expected_hypervolume_improvement([0.5, 0.5], [0.05, 0.05], hw, front, ref)
    assert got[0] == pytest.approx(0.0, abs=1e-12)
    assert got[1] > 1e-3  # better hardware than the front: improves


def test_three_hardware_terms_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match="two hardware"):
        expected_hypervolume_improvement(
            [0.5], [0.1], np.zeros((1, 3)), np.ones((2, 4)), np.ones(4)
        )


@pytest.fixture
def hw_space() -> Space:
    return Space(
        [
            Integer("a", 0, 7, structural=True),
            Integer("b", 0, 7, structural=True),
            Integer("c", 0, 3),
        ]
    )


@pytest.fixture
def hw_table(hw_space: Space) -> pd.DataFrame:
    """64 x 4 configurations: error falls with a and b, energy grows with a, runtime with b."""
    a, b, c = np.meshgrid(np.arange(8), np.arange(8), np.arange(4), indexing="ij")
    frame = pd.DataFrame({"a": a.ravel(), "b": b.ravel(), "c": c.ravel()})
    frame["objective"] = 0.02 + 0.5 / (1.0 + frame["a"] + frame["b"]) + 0.2 * (frame["c"] - 1) ** 2
    frame["energy"] = 1.0 + 2.0 * frame["a"] + 0.1 * frame["b"]
    frame["runtime"] = 1.0 + frame["b"] + 0.2 * frame["a"]
    return frame


PREDICTORS = {
    "energy": lambda z: 1.0 + 2.0 * z["a"].to_numpy() + 0.1 * z["b"].to_numpy(),
    "runtime": lambda z: (1.0 + z["b"].to_numpy() + 0.2 * z["a"].to_numpy(), np.ones(len(z))),
}


def test_hw_ehvi_end_to_end_is_deterministic(hw_space: Space, hw_table: pd.DataFrame) -> None:
    assert "hw-ehvi" in PARETO_METHODS
    objective = TabularObjective(hw_table, hw_space)
    kwargs = dict(
        objectives=("objective", "energy", "runtime"),
        method="hw-ehvi",
        n_evals=18,
        n_init=6,
        settings=FAST,
        predictors=PREDICTORS,
    )
    first = minimize_pareto(objective, hw_space, seed=3, **kwargs)
    again = minimize_pareto(objective, hw_space, seed=3, **kwargs)
    other = minimize_pareto(objective, hw_space, seed=4, **kwargs)
    assert len(first) == 18 and (first["status"] == "ok").all()
    assert (first["phase"] == "search").sum() == 12
    cols = ["a", "b", "c", "objective", "energy", "runtime"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    assert not first[cols].equals(other[cols])
    assert not first[["a", "b", "c"]].duplicated().any()  # never re-evaluates a row
    # the model-based phase prefers c == 1 (the error's best value given the structure)
    assert (first.loc[first["phase"] == "search", "c"] == 1).mean() > 0.5


def test_hw_ehvi_beats_random_search(hw_space: Space, hw_table: pd.DataFrame) -> None:
    objective = TabularObjective(hw_table, hw_space)
    names = ["objective", "energy", "runtime"]
    logs = np.log(hw_table[names].to_numpy())
    lo, hi = logs.min(axis=0), logs.max(axis=0)

    def volume(history: pd.DataFrame) -> float:
        return _hv((np.log(history[names].to_numpy()) - lo) / (hi - lo), np.full(3, 1.1))

    found = {
        method: np.mean(
            [
                volume(
                    minimize_pareto(
                        objective,
                        hw_space,
                        objectives=names,
                        method=method,
                        n_evals=18,
                        n_init=6,
                        seed=seed,
                        settings=FAST,
                        predictors=PREDICTORS,
                    )
                )
                for seed in range(3)
            ]
        )
        for method in ("hw-ehvi", "random")
    }
    assert found["hw-ehvi"] > found["random"] + 0.1


def test_hw_ehvi_one_hardware_term_without_pool() -> None:
    space = Space([Integer("a", 0, 7, structural=True), Integer("b", 0, 7, structural=True)])

    def objective(config: dict) -> dict:
        return {
            "objective": 0.1 + 1.0 / (1 + config["a"] + config["b"]),
            "energy": 1.0 + config["a"],
        }

    out = minimize_pareto(
        objective,
        space,
        objectives=("objective", "energy"),
        method="hw-ehvi",
        n_evals=12,
        n_init=4,
        settings=FAST,
        predictors={"energy": lambda z: 1.0 + z["a"].to_numpy()},
    )
    assert len(out) == 12 and (out["status"] == "ok").all()


def test_hw_ehvi_missing_predictor_names_it(hw_space: Space, hw_table: pd.DataFrame) -> None:
    objective = TabularObjective(hw_table, hw_space)
    with pytest.raises(ValueError, match="runtime"):
        minimize_pareto(
            objective,
            hw_space,
            objectives=("objective", "energy", "runtime"),
            method="hw-ehvi",
            predictors={"energy": PREDICTORS["energy"]},
        )
    with pytest.raises(ValueError, match="energy"):
        minimize_pareto(objective, hw_space, objectives=("objective", "energy"), method="hw-ehvi")


def test_run_pareto_searches_passes_predictors(hw_space: Space, hw_table: pd.DataFrame) -> None:
    objective = TabularObjective(hw_table, hw_space)
    out = run_pareto_searches(
        objective,
        hw_space,
        objectives=("objective", "energy", "runtime"),
        methods=["hw-ehvi", "random"],
        seeds=[0],
        n_evals=8,
        n_init=4,
        settings=FAST,
        predictors=PREDICTORS,
    )
    assert sorted(out["method"].unique()) == ["hw-ehvi", "random"]
    assert len(out) == 16
