"""Tests of hwml.optimize.bo: EI, HW-IECI, the GP surrogate, and HW-IECI on Branin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hwml.optimize import (
    Constraint,
    Real,
    SearchSettings,
    Space,
    best_so_far,
    evals_to_reach,
    minimize,
)
from hwml.optimize.bo import (
    BOSettings,
    GPSurrogate,
    expected_improvement,
    hw_ieci,
    hw_ieci_prob,
    propose_bo,
)
from hwml.optimize.candidates import Observations
from hwml.optimize.constraints import predict_constraints

from .problems import BRANIN_MIN, branin, branin_objective


def test_ei_hand_values() -> None:
    # mean == best: EI = std * phi(0)
    assert expected_improvement(np.array([0.0]), np.array([1.0]), 0.0)[0] == pytest.approx(
        norm.pdf(0.0)
    )
    # mean 1 below best with std 1: 1 * Phi(1) + phi(1)
    assert expected_improvement(np.array([1.0]), np.array([1.0]), 2.0)[0] == pytest.approx(
        norm.cdf(1.0) + norm.pdf(1.0)
    )
    # no uncertainty: plain improvement, never negative
    np.testing.assert_allclose(
        expected_improvement(np.array([1.0, 3.0]), np.array([0.0, 0.0]), 2.0), [1.0, 0.0]
    )


def test_ei_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    mean = np.array([0.3, 1.0, 2.0, -0.5, 1.5])
    std = np.array([0.2, 1.0, 0.5, 0.1, 2.0])
    best = 1.2
    samples = mean + std * rng.standard_normal((400_000, len(mean)))
    mc = np.maximum(best - samples, 0.0).mean(axis=0)
    np.testing.assert_allclose(expected_improvement(mean, std, best), mc, rtol=0.01, atol=1e-4)
    # the exploration margin shifts the threshold
    shifted = np.maximum(best - 0.1 - samples, 0.0).mean(axis=0)
    np.testing.assert_allclose(
        expected_improvement(mean, std, best, xi=0.1), shifted, rtol=0.01, atol=1e-4
    )


def test_hw_ieci_zeroes_infeasible() -> None:
    ei = np.array([0.5, 0.2, 0.9])
    np.testing.assert_array_equal(hw_ieci(ei, np.array([True, False, False])), [0.5, 0.0, 0.0])
    np.testing.assert_allclose(hw_ieci_prob(ei, np.array([1.0, 0.5, 0.1])), [0.5, 0.1, 0.09])


def test_gp_interpolates_and_is_uncertain_away_from_data() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((25, 2))
    y = 3.0 + np.sin(6 * x[:, 0]) + x[:, 1] ** 2
    gp = GPSurrogate(n_restarts=2).fit(x, y, seed=0)
    mean, std = gp.predict(x)
    np.testing.assert_allclose(mean, y, atol=0.05)
    test = rng.random((200, 2))
    truth = 3.0 + np.sin(6 * test[:, 0]) + test[:, 1] ** 2
    pred, pred_std = gp.predict(test)
    assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.15
    far_mean, far_std = gp.predict(np.array([[3.0, 3.0]]))
    assert far_std[0] > 5 * np.median(std)
    hp = gp.hyperparameters
    assert hp["lengthscale"].shape == (2,) and hp["noise"] > 0


def test_gp_fit_is_seeded() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.random((15, 3)), rng.random(15)
    a = GPSurrogate(n_restarts=3).fit(x, y, seed=4).predict(x[:3])
    b = GPSurrogate(n_restarts=3).fit(x, y, seed=4).predict(x[:3])
    np.testing.assert_array_equal(a[0], b[0])


def test_propose_hw_ieci_never_picks_rejected_point() -> None:
    space = Space([Real("a", 0.0, 1.0, structural=True), Real("b", 0.0, 1.0)])
    # the unconstrained optimum (1, 1) is forbidden: a <= 0.3 only
    c = Constraint("power_w", 0.3, lambda z: z["a"].to_numpy())

    def feasibility(points: np.ndarray):
        return predict_constraints([c], space.structural(space.decode(points)))

    rng = np.random.default_rng(0)
    pts = space.sample_unit(12, rng)
    values = -(pts[:, 0] + pts[:, 1])
    obs = Observations(pts, values, feasibility(pts).feasible)
    settings = BOSettings(n_restarts=1, n_random=300, n_local=30)
    for i in range(5):
        prop = propose_bo(
            space, obs, np.random.default_rng(i), "hw-ieci", feasibility, None, settings
        )
        assert prop is not None and prop.point[0] <= 0.3
        unaware = propose_bo(space, obs, np.random.default_rng(i), "ei", None, None, settings)
        assert unaware is not None and unaware.point[0] > 0.3  # EI alone goes for the corner


def test_propose_bo_over_pool_picks_unevaluated_row() -> None:
    space = Space([Real("a", 0.0, 1.0)])
    pool = np.linspace(0.05, 0.95, 10)[:, None]
    obs = Observations(pool[[0, 5, 9]], np.array([1.0, 0.2, 1.0]), np.ones(3, dtype=bool))
    prop = propose_bo(
        space, obs, np.random.default_rng(0), "ei", None, pool, BOSettings(n_restarts=1)
    )
    assert prop is not None
    assert any(np.allclose(prop.point, p) for p in pool[[1, 2, 3, 4, 6, 7, 8]])


def test_propose_bo_log_objective_models_the_logarithm() -> None:
    space = Space([Real("a", 0.0, 1.0)])
    pool = np.linspace(0.05, 0.95, 10)[:, None]
    values = np.array([0.5, 0.01, 0.9])
    obs = Observations(pool[[0, 5, 9]], values, np.ones(3, dtype=bool))
    settings = BOSettings(n_restarts=1, log_objective=True)
    prop = propose_bo(space, obs, np.random.default_rng(0), "ei", None, pool, settings)
    gp = GPSurrogate(n_restarts=1).fit(obs.points, np.log(values), 0)
    mean, std = gp.predict(np.delete(pool, [0, 5, 9], axis=0))
    expected = expected_improvement(mean, std, float(np.log(0.01)))
    assert prop is not None and prop.acquisition == pytest.approx(expected.max(), rel=1e-6)
    # a non-positive value: the linear scale, as without the option
    obs0 = Observations(obs.points, np.array([0.5, 0.0, 0.9]), obs.feasible)
    plain = propose_bo(
        space, obs0, np.random.default_rng(0), "ei", None, pool, BOSettings(n_restarts=1)
    )
    logged = propose_bo(space, obs0, np.random.default_rng(0), "ei", None, pool, settings)
    assert plain is not None and logged is not None
    assert plain.acquisition == pytest.approx(logged.acquisition)


def test_propose_bo_rejects_unknown_kind() -> None:
    space = Space([Real("a", 0.0, 1.0)])
    obs = Observations(np.array([[0.5]]), np.array([1.0]), np.array([True]))
    with pytest.raises(ValueError, match="kind"):
        propose_bo(space, obs, np.random.default_rng(0), "pi")


@pytest.mark.slow
def test_hw_ieci_beats_random_on_constrained_branin(
    branin_space, branin_constraints, fast_settings: SearchSettings
) -> None:
    """HW-IECI never evaluates a rejected point and reaches the constrained optimum
    (the one global minimum of Branin the budgets leave feasible, f = 0.397887) within
    0.1 in at most 20 evaluations, for more of 10 seeds than random search does."""
    n_evals, tolerance = 20, 0.1
    # the budgets exclude two of Branin's three global minima
    assert branin(np.pi, 2.275) == pytest.approx(BRANIN_MIN, abs=1e-5)
    reached: dict[str, int] = {}
    for method in ("hw-ieci", "random"):
        runs = [
            minimize(
                branin_objective,
                branin_space,
                branin_constraints,
                method=method,
                n_evals=n_evals,
                n_init=5,
                seed=seed,
                settings=fast_settings,
                progress=False,
            )
            for seed in range(10)
        ]
        if method == "hw-ieci":
            for run in runs:
                assert run["feasible_pred"].all()
                assert (run["pred_power_w"] <= 60.0).all() and (
                    run["pred_mem_bytes"] <= 1.2e8
                ).all()
        curves = best_so_far(pd.concat(runs, ignore_index=True))
        hits = evals_to_reach(curves, BRANIN_MIN + tolerance)
        reached[method] = int(hits["reached"].sum())
    assert reached["hw-ieci"] > reached["random"], reached
    assert reached["hw-ieci"] >= 8
