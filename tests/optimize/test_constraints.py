"""Tests of hwml.optimize.constraints."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from hwml.optimize.constraints import Constraint, predict_constraints


@pytest.fixture
def z() -> pd.DataFrame:
    return pd.DataFrame({"filters": [10, 20, 30, 40]})


def test_point_model_indicators(z: pd.DataFrame) -> None:
    power = Constraint("power_w", 25.0, lambda f: f["filters"].to_numpy() * 1.0)
    mem = Constraint("mem_bytes", 35.0, lambda f: f["filters"].to_numpy() + 0.0)
    pred = predict_constraints([power, mem], z)
    assert pred.feasible.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(pred.prob_feasible, [1, 1, 0, 0])
    assert pred.std["power_w"] is None
    np.testing.assert_array_equal(pred.mean["mem_bytes"], [10, 20, 30, 40])


def test_gaussian_model_probability(z: pd.DataFrame) -> None:
    std = np.array([5.0, 5.0, 0.0, 10.0])
    c = Constraint("power_w", 25.0, lambda f: (f["filters"].to_numpy() * 1.0, std))
    pred = predict_constraints([c], z)
    expected = [norm.cdf(15 / 5), norm.cdf(5 / 5), 0.0, norm.cdf(-15 / 10)]
    np.testing.assert_allclose(pred.prob_feasible, expected)
    assert pred.feasible.tolist() == [True, True, False, False]
    both = predict_constraints([c, c], z)
    np.testing.assert_allclose(both.prob_feasible, np.square(expected))


def test_nan_prediction_is_infeasible(z: pd.DataFrame) -> None:
    c = Constraint("power_w", 25.0, lambda f: np.array([1.0, np.nan, 1.0, 1.0]))
    assert predict_constraints([c], z).feasible.tolist() == [True, False, True, True]


def test_bad_model_output_shape(z: pd.DataFrame) -> None:
    c = Constraint("power_w", 1.0, lambda f: np.ones(3))
    with pytest.raises(ValueError, match="'power_w'.*shape"):
        c.predict(z)


def test_read_measured() -> None:
    assert Constraint("power_w", 1.0, len).read_measured({"power_w": 3}) == 3.0
    assert Constraint("power_w", 1.0, len, measured="watts").read_measured({"watts": 2.5}) == 2.5
    reader = Constraint("power_w", 1.0, len, measured=lambda r: r["p"] * 2)
    assert reader.read_measured({"p": 2}) == 4.0
    assert math.isnan(Constraint("power_w", 1.0, len).read_measured({}))


def test_bad_constraint_fields() -> None:
    with pytest.raises(TypeError, match="'budget'"):
        Constraint("power_w", "10", len)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'model'"):
        Constraint("power_w", 10.0, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'name'"):
        Constraint("", 10.0, len)
