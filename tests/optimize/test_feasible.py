"""Tests of hwml.optimize.feasible: tight budgets that a uniform sample misses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hwml.optimize import (
    Constraint,
    FeasibilitySettings,
    InfeasibleBudgetError,
    Integer,
    LogReal,
    Real,
    SearchExhaustedWarning,
    SearchSettings,
    Space,
    check_budgets,
    find_feasible,
    minimize,
)


def _cube(levels: int, *, extra: bool = True) -> Space:
    dims = [Integer(n, 1, levels, structural=True) for n in ("a", "b", "c")]
    return Space(dims + ([LogReal("lr", 1e-4, 1e-1)] if extra else []))


def _sum_power(budget: float) -> Constraint:
    return Constraint("power_w", budget, lambda z: (z["a"] + z["b"] + z["c"]).to_numpy(float))


def _triples(levels: int, budget: int) -> set[tuple[int, int, int]]:
    """Every (a, b, c) in 1..levels with a + b + c <= budget, by brute force."""
    top = min(levels, budget)
    return {t for t in itertools.product(range(1, top + 1), repeat=3) if sum(t) <= budget}


def _decoded(space: Space, region) -> set[tuple[int, int, int]]:
    frame = {d: space[d].decode(region.points[:, i]) for i, d in enumerate(("a", "b", "c"))}
    return set(zip(frame["a"].tolist(), frame["b"].tolist(), frame["c"].tolist(), strict=True))


def test_a_tight_budget_in_a_large_space_is_found_and_its_region_grown() -> None:
    space = _cube(150)  # 3.4 million structures, 84 of them within the budget
    power = _sum_power(9.0)
    region = find_feasible(space, [power], seed=0)
    assert region.method == "evolution"  # the 10,000-point sample found none
    assert region.fraction == 0.0 and region.n_checked > 10_000
    assert _decoded(space, region) == _triples(150, 9)  # the flood fill found all of them
    assert check_budgets(space, [power], seed=0) == 0.0  # no InfeasibleBudgetError


def test_a_small_structural_space_is_enumerated() -> None:
    space = _cube(40, extra=False)  # 64,000 structures, 20 within the budget
    region = find_feasible(space, [_sum_power(6.0)], seed=0)
    assert region.method == "enumeration" and region.complete
    assert region.n_sampled == 40**3
    assert region.fraction == pytest.approx(20 / 40**3)
    assert _decoded(space, region) == _triples(40, 6)


def test_a_tiny_continuous_region_is_found() -> None:
    space = Space([Real("x", 0.0, 1.0, structural=True), Real("y", 0.0, 1.0, structural=True)])
    corner = Constraint("power_w", 0.005, lambda z: (z["x"] + z["y"]).to_numpy())
    region = find_feasible(space, [corner], seed=1)
    assert region.method == "evolution" and len(region) > 100
    assert np.all(region.points.sum(axis=1) <= 0.005)


def test_an_impossible_budget_names_what_was_searched() -> None:
    space = _cube(150)
    impossible = Constraint("power_w", 2.0, lambda z: (z["a"] + z["b"] + z["c"]).to_numpy(float))
    with pytest.raises(InfeasibleBudgetError) as info:
        check_budgets(space, [impossible], seed=0)
    message = str(info.value)
    assert "differential evolution" in message
    assert "power_w: budget 2, smallest prediction 3" in message  # the corner (1, 1, 1)


def test_a_sample_that_finds_enough_stops_there() -> None:
    space = _cube(10)
    region = find_feasible(space, [_sum_power(20.0)], seed=0, n=2000)
    assert region.method == "sample" and not region.complete
    assert region.n_checked == 2000


@pytest.mark.parametrize("method", ["random-filtered", "hw-ieci", "ga-filtered"])
def test_searches_in_a_tiny_region_evaluate_only_feasible_configurations(
    method: str, fast_settings: SearchSettings
) -> None:
    space = _cube(150)

    def objective(config: dict) -> float:
        return (config["a"] - 3) ** 2 + abs(np.log10(config["lr"]) + 2)

    history = minimize(
        objective,
        space,
        [_sum_power(9.0)],
        method=method,
        n_evals=8,
        n_init=4,
        seed=0,
        settings=fast_settings,
        progress=False,
    )
    assert len(history) == 8
    assert history["feasible_pred"].all()
    assert ((history["a"] + history["b"] + history["c"]) <= 9).all()


def test_exhausting_the_feasible_set_is_said() -> None:
    space = _cube(40, extra=False)
    with pytest.warns(SearchExhaustedWarning, match="all 20 configurations that the constraint"):
        history = minimize(
            lambda c: float(c["a"]),
            space,
            [_sum_power(6.0)],
            method="random-filtered",
            n_evals=30,
            seed=0,
            progress=False,
        )
    assert len(history) == 20
    assert "stopped after 20 of 30 evaluations" in history.attrs["exhausted"]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="n_starts must be >= 5"):
        FeasibilitySettings(n_starts=2)
    with pytest.raises(ValueError, match="max_points must be an int >= 0"):
        FeasibilitySettings(max_points=-1)
