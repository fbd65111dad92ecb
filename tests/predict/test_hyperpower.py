"""HyperPower's linear models recover known coefficients and serve as constraint models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.predict import (
    LinearHardwareModel,
    MissingColumnsError,
    TooFewRowsError,
    load,
    memory_model,
    power_model,
)

W = {"filters1": 0.12, "filters2": 0.05, "units": 0.01}  # W per filter / unit
IDLE_W = 80.0


def _configs(n: int, seed: int = 0, noise_w: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = pd.DataFrame(
        {
            "filters1": rng.integers(8, 400, n),
            "filters2": rng.integers(8, 400, n),
            "units": rng.integers(16, 4000, n),
        }
    )
    z["power_w"] = IDLE_W + sum(w * z[c] for c, w in W.items()) + noise_w * rng.standard_normal(n)
    z["peak_mem_bytes"] = 2e8 + 4e5 * z["filters1"] + 9e5 * z["filters2"] + 3e4 * z["units"]
    z["runtime_ms"] = 1.0  # a measured column: never a default feature
    return z


def test_recovers_linear_coefficients_exactly():
    z = _configs(60)
    m = power_model(features=list(W)).fit(z)
    assert m.intercept_ == pytest.approx(IDLE_W)
    for c, w in W.items():
        assert m.coef_[c] == pytest.approx(w)
    assert m.cv_rmse_ == pytest.approx(0.0, abs=1e-9)
    mem = memory_model(features=list(W)).fit(z)
    assert mem.coef_["filters2"] == pytest.approx(9e5)


def test_cross_validated_error_matches_the_noise():
    z = _configs(400, seed=1, noise_w=2.0)
    m = power_model(features=list(W), cv=10).fit(z)
    assert m.cv_rmse_ == pytest.approx(2.0, rel=0.15)
    assert m.residual_std_ == pytest.approx(2.0, rel=0.15)
    assert len(m.cv_predictions_) == 400
    assert set(m.cv_summary()) == {"rmse", "rmspe_pct", "mape_pct", "n"}
    for c, w in W.items():
        assert m.coef_[c] == pytest.approx(w, rel=0.05)
    # Predictive std: residual std inflated by leverage, larger far from the data.
    near = pd.DataFrame({"filters1": [200], "filters2": [200], "units": [2000]})
    far = pd.DataFrame({"filters1": [4000], "filters2": [4000], "units": [40000]})
    assert m.predict_std(near)[0] == pytest.approx(m.residual_std_, rel=0.02)
    assert m.predict_std(far)[0] > 1.5 * m.residual_std_


def test_callable_form_for_constraints():
    z = _configs(50, noise_w=1.0)
    grid = _configs(7, seed=9)[list(W)]
    m = power_model(features=list(W)).fit(z)
    np.testing.assert_array_equal(m(grid), m.predict(grid))
    m.set_params(return_std=True)
    mean, std = m(grid)
    assert mean.shape == std.shape == (7,) and np.all(std > 0)


def test_paper_form_without_intercept():
    z = _configs(40)
    z["power_w"] -= IDLE_W
    m = LinearHardwareModel("power_w", list(W), fit_intercept=False).fit(z)
    assert m.intercept_ == 0.0 and m.coef_["units"] == pytest.approx(0.01)


def test_default_features_skip_measured_columns():
    m = power_model().fit(_configs(40))
    assert m.features_ == ["filters1", "filters2", "units"]


def test_errors():
    z = _configs(8)
    with pytest.raises(TooFewRowsError, match="8 usable row"):
        power_model(features=list(W)).fit(z)
    with pytest.raises(MissingColumnsError, match="'depth'"):
        power_model(features=["depth"]).fit(_configs(30))
    m = power_model(features=list(W)).fit(_configs(30))
    with pytest.raises(MissingColumnsError, match="'units'"):
        m.predict(_configs(3)[["filters1", "filters2"]])


def test_json_round_trip(tmp_path):
    z = _configs(50, noise_w=1.0)
    m = power_model(features=list(W), return_std=True).fit(z, device="GPU A")
    back = LinearHardwareModel.load(m.save(tmp_path / "power.json"))
    assert back.device_ == "GPU A" and back.features_ == list(W)
    np.testing.assert_array_equal(back.predict(z), m.predict(z))
    np.testing.assert_array_equal(back.predict_std(z), m.predict_std(z))
    assert back.cv_rmse_ == m.cv_rmse_
    assert isinstance(load(tmp_path / "power.json"), LinearHardwareModel)
