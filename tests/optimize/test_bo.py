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
    GPWarmStart,
    expected_improvement,
    fit_surrogate,
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


def _growing_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2))
    return x, np.sin(5 * x[:, 0]) + x[:, 1] ** 2 + 0.01 * rng.standard_normal(n)


def test_gp_warm_start_is_one_optimization_that_draws_nothing() -> None:
    x, y = _growing_data(20)
    full = GPSurrogate(n_restarts=3).fit(x, y, seed=0)
    assert full.n_optimizations == 3
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    kept = GPSurrogate(n_restarts=3, max_iters=0).fit(x, y, rng, warm_start=full.hyperparameters)
    assert kept.n_optimizations == 1 and rng.bit_generator.state == state
    np.testing.assert_allclose(
        kept.hyperparameters["lengthscale"], full.hyperparameters["lengthscale"]
    )
    assert kept.log_likelihood == pytest.approx(
        full.log_likelihood, rel=1e-3
    )  # noise off its bound
    with pytest.raises(
        ValueError, match=r"warm_start lengthscale has shape \(3,\), expected \(2,\)"
    ):
        GPSurrogate().fit(x, y, 0, warm_start={**full.hyperparameters, "lengthscale": np.ones(3)})


def test_warm_start_refits_fully_every_k_fits_and_reuses_between() -> None:
    settings = BOSettings(n_restarts=2, refit_every=3, warm_max_iters=0, refit_ll_drop=np.inf)
    warm = GPWarmStart()
    x, y = _growing_data(30)
    kept = []
    for n in range(10, 17):
        gp = fit_surrogate(x[:n], y[:n], np.random.default_rng(n), settings, warm)
        kept.append(gp.hyperparameters["lengthscale"])
        assert gp.n_optimizations == (2 if warm.fits[-1] == "full" else 1)
    assert warm.fits == ["full", "warm", "warm", "full", "warm", "warm", "full"]
    assert (warm.n_full, warm.n_warm, warm.n_refit) == (3, 4, 0)
    # between full fits (warm_max_iters=0) the hyper-parameters are reused unchanged
    np.testing.assert_array_equal(kept[1], kept[0])
    np.testing.assert_array_equal(kept[2], kept[0])
    np.testing.assert_array_equal(kept[5], kept[3])
    assert not np.array_equal(kept[3], kept[0])  # a full fit moved them
    every = GPWarmStart()
    for n in range(10, 13):
        fit_surrogate(x[:n], y[:n], np.random.default_rng(n), BOSettings(refit_every=1), every)
    assert every.fits == ["full"] * 3


def test_warm_start_refits_when_the_likelihood_drops() -> None:
    x, smooth = _growing_data(25)
    settings = BOSettings(n_restarts=2, refit_every=100, warm_max_iters=0, refit_ll_drop=0.1)
    warm = GPWarmStart()
    fit_surrogate(x[:20], smooth[:20], np.random.default_rng(0), settings, warm)
    fit_surrogate(x[:21], smooth[:21], np.random.default_rng(1), settings, warm)
    assert warm.fits == ["full", "warm"]
    rough = np.sin(60 * x[:, 0]) * 3  # the old length-scales explain these badly
    fit_surrogate(x[:22], rough[:22], np.random.default_rng(2), settings, warm)
    assert warm.fits[-1] == "refit" and warm.n_refit == 1 and warm.since_full == 0


def test_warm_start_refits_when_the_transform_or_dimension_changes() -> None:
    x, y = _growing_data(20)
    settings = BOSettings(n_restarts=1, refit_every=100)
    warm = GPWarmStart()
    fit_surrogate(x[:15], y[:15], np.random.default_rng(0), settings, warm)
    fit_surrogate(x[:16], np.exp(y[:16]), np.random.default_rng(0), settings, warm, True)
    x3 = np.column_stack([x, x[:, 0]])
    fit_surrogate(x3[:17], y[:17], np.random.default_rng(0), settings, warm)
    assert warm.fits == ["full", "full", "full"]


def test_bo_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="refit_every must be >= 1, got 0"):
        BOSettings(refit_every=0)
    with pytest.raises(TypeError, match="refit_every must be an int"):
        BOSettings(refit_every=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refit_ll_drop must be >= 0"):
        BOSettings(refit_ll_drop=-1.0)
    with pytest.raises(ValueError, match="warm_max_iters must be >= 0"):
        BOSettings(warm_max_iters=-1)


def test_stepping_the_optimizer_through_the_public_api() -> None:
    """The stepping example of hwml.optimize's docstring, with its names."""
    import hwml.optimize as opt

    space = opt.Space([opt.Real("a", 0.0, 1.0, structural=True), opt.Real("b", 0.0, 1.0)])
    power = opt.Constraint("power_w", 0.5, lambda z: z["a"].to_numpy())
    feasibility = opt.constraint_filter(space, [power])
    warm = opt.GPWarmStart()
    points = space.sample_unit(8, 0)
    values = (points[:, 0] - 0.4) ** 2 + (points[:, 1] - 0.6) ** 2
    settings = opt.BOSettings(
        n_restarts=1, n_random=200, n_local=20, refit_every=2, refit_ll_drop=float("inf")
    )
    for step in range(3):
        obs = opt.Observations(points, values, feasibility(points).feasible)
        proposal = propose_bo(
            space,
            obs,
            np.random.default_rng(step),
            "hw-ieci",
            feasibility,
            settings=settings,
            warm=warm,
        )
        assert isinstance(proposal, opt.Proposal) and proposal.point[0] <= 0.5
        config = space.to_dicts(space.decode(proposal.point[None, :]))[0]
        points = np.vstack([points, proposal.point])
        values = np.append(values, (config["a"] - 0.4) ** 2 + (config["b"] - 0.6) ** 2)
    assert warm.fits == ["full", "warm", "full"]
    assert set(opt.BO_KINDS) == {"ei", "hw-ieci", "hw-ieci-prob"}
    assert opt.step_overhead is not None and opt.proposal_overhead is not None


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
