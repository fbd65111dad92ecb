"""Tests of hwml.optimize.incumbent: the noise-aware best of a search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    BOSettings,
    Incumbent,
    Real,
    Space,
    best_so_far,
    find_incumbent,
    incumbent_curve,
    minimize,
    reach_summary,
)

NOISE_SD = 0.1
OPTIMUM = 0.0  # of the noise-free objective, at x = 0.3


def _true(x: float) -> float:
    return 4.0 * (x - 0.3) ** 2


def _noisy(config: dict) -> float:
    """The true objective plus Gaussian noise (minimize seeds numpy per evaluation)."""
    return _true(config["x"]) + NOISE_SD * float(np.random.standard_normal())


@pytest.fixture(scope="module")
def line() -> Space:
    return Space([Real("x", 0.0, 1.0)])


@pytest.fixture(scope="module")
def noisy_history(line: Space) -> pd.DataFrame:
    return minimize(_noisy, line, method="random", n_evals=40, seed=0, progress=False)


def _honest(best: Incumbent) -> bool:
    """The reported value is no more than half a noise sd below the optimum, within half a
    noise sd of the configuration's true value, and that configuration is near-optimal."""
    truth = _true(best.config["x"])
    return (
        best.value >= OPTIMUM - NOISE_SD / 2
        and abs(best.value - truth) < NOISE_SD / 2
        and truth < NOISE_SD / 2
    )


def test_the_posterior_incumbent_is_not_fooled_by_noise(
    line: Space, noisy_history: pd.DataFrame
) -> None:
    posterior = find_incumbent(noisy_history, line)
    observed = find_incumbent(noisy_history, line, kind="observed")
    assert posterior.kind == "posterior" and posterior.std > 0
    assert _honest(posterior), posterior
    # the lowest observed value is a lucky draw below the true optimum
    assert observed.value < OPTIMUM - NOISE_SD / 2 and not _honest(observed), observed
    assert observed.value == noisy_history["objective"].min()
    row = noisy_history.set_index("iteration").loc[posterior.iteration]
    assert posterior.observed == row["objective"] and posterior.config["x"] == row["x"]


def test_the_curve_ends_at_the_incumbent_and_feeds_reach_statistics(
    line: Space, noisy_history: pd.DataFrame
) -> None:
    settings = BOSettings(n_restarts=2)
    curve = incumbent_curve(noisy_history, line, settings=settings)
    assert list(curve.columns[:5]) == list(best_so_far(noisy_history).columns)
    last = curve.iloc[-1]
    final = find_incumbent(noisy_history, line, settings=settings)
    assert last["incumbent_iteration"] == final.iteration
    assert last["best_objective"] == pytest.approx(final.value, abs=0.02)
    # once the GP has seen enough evaluations to estimate the noise, never below
    late = slice(19, None)
    assert curve["best_objective"].iloc[late].min() >= OPTIMUM - NOISE_SD / 2
    assert best_so_far(noisy_history)["best_objective"].iloc[late].max() < OPTIMUM - NOISE_SD / 2
    threshold = OPTIMUM + 0.02
    assert reach_summary(curve, threshold)["reached"].iloc[0] == 1.0
    same = best_so_far(noisy_history, incumbent="posterior", space=line, settings=settings)
    pd.testing.assert_frame_equal(same, curve)


def test_the_observed_curve_is_best_so_far(line: Space, noisy_history: pd.DataFrame) -> None:
    curve = incumbent_curve(noisy_history, line, kind="observed")
    np.testing.assert_array_equal(
        curve["best_objective"], best_so_far(noisy_history)["best_objective"]
    )
    at = noisy_history.set_index("iteration").loc[curve["incumbent_iteration"], "objective"]
    np.testing.assert_array_equal(at.to_numpy(), curve["best_objective"].to_numpy())


def test_only_feasible_rows_can_be_the_incumbent(line: Space, noisy_history: pd.DataFrame) -> None:
    marked = noisy_history.assign(feasible=noisy_history["x"] > 0.5)
    best = find_incumbent(marked, line)
    assert best.config["x"] > 0.5
    anywhere = find_incumbent(marked, line, feasible_only=False)
    assert anywhere.config["x"] < 0.5


def test_incumbent_errors_say_what_is_wrong(line: Space, noisy_history: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"one of \('posterior', 'observed'\), got 'mean'"):
        find_incumbent(noisy_history, line, kind="mean")
    two = pd.concat([noisy_history, noisy_history.assign(seed=1)], ignore_index=True)
    with pytest.raises(ValueError, match="one run, got 2 runs"):
        find_incumbent(two, line)
    with pytest.raises(ValueError, match="no successful feasible evaluation"):
        find_incumbent(noisy_history.assign(feasible=False), line)
    with pytest.raises(ValueError, match="needs the search space"):
        best_so_far(noisy_history, incumbent="posterior")
    with pytest.raises(ValueError, match="incumbent must be one of"):
        best_so_far(noisy_history, incumbent="best")
