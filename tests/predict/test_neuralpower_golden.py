"""NeuralPower's fitted numbers on a fixed table stay what they were.

``EXPECTED`` was computed by the hand-written polynomial expansion (``_exponents`` /
``_monomials``) before the terms came from scikit-learn's ``PolynomialFeatures``: the
choices (degree, space), every fitted coefficient, the cross-validation path and the
predictions must not change (relative 1e-9). The table makes the log-space runtime model
of the linear group pick degree 3, whose terms of three different variables are where the
two expansions could round differently, and fits degree 3 of conv2d (363 terms) in both
spaces. ``data/neuralpower_golden.json`` is that model saved by the old code: it must
still load and predict the same.

With ``PolynomialFeatures`` the terms come in the same order; the numbers agree to about
4e-13 relative, not to the last bit, because it multiplies the three factors of a
degree-3 term in another order (``a*(b*c)`` for ``(a*b)*c``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.predict import NeuralPower, load
from tests.predict.conftest import layer_table

TRAIN_SEED, TEST_SEED = 4, 99
SAVED = Path(__file__).parent / "data" / "neuralpower_golden.json"
REL = 1e-9


def golden_table(seed: int, n: int) -> pd.DataFrame:
    """``n`` conv2d and ``n`` linear layers with runtime (ms) and power (W) targets."""
    t = layer_table({"conv2d": n, "linear": n}, seed=seed)
    rng = np.random.default_rng(seed)
    c_in = np.log1p(t["in_channels"] + t["in_features"])
    c_out = np.log1p(t["out_channels"] + t["out_features"])
    log_t = -9 + 0.3 * np.log1p(t["flops"]) + 0.002 * np.log1p(t["batch"]) * c_in * c_out
    t["runtime_ms"] = np.exp(log_t + 0.01 * rng.standard_normal(len(t)))
    t["power_w"] = 100 + 50 * np.tanh(t["flops"] / 1e10) + rng.normal(0, 1, len(t))
    return t


def golden_model() -> NeuralPower:
    return NeuralPower(degrees=(1, 3), cv=4, n_alphas=10, max_iter=5000)


# Computed by the hand-written expansion (the code before PolynomialFeatures).
EXPECTED: dict = {
    "runtime": {
        "degree": {"conv2d": 3, "linear": 3},
        "space": {"conv2d": "log", "linear": "log"},
        "terms": {
            "conv2d": [
                ("1", -8.973012592509729),
                ("log1p(batch)*log1p(in_channels)^2", 7.825652922847073e-05),
                ("log1p(batch)*log1p(in_channels)*log1p(out_channels)", 0.0018784052067060397),
                ("log1p(batch)*log1p(in_channels)*log1p(stride)", 0.00022336372073660578),
                ("log1p(batch)*log1p(in_channels)*log1p(padding)", 0.00011903704078207745),
                ("log1p(in_channels)*log1p(padding)*log1p(bias)", 0.002051967888158567),
                ("log1p(out_channels)^2*log1p(kernel)", 0.00033687871393406864),
                ("log1p(in_size)*log1p(in_aligned)*log1p(out_aligned)", -0.003715829396877388),
                ("log1p(flops)", 0.2979716003428295),
            ],
            "linear": [
                ("1", -9.008633578714555),
                ("log1p(batch)*log1p(in_features)*log1p(out_features)", 0.001984619588497105),
                ("log1p(in_features)^2*log1p(out_features)", 2.6690419460823586e-05),
                ("log1p(flops)", 0.29818560436566616),
                ("log1p(input_bytes)", 0.003149609110574366),
            ],
        },
        "cv": [
            ("conv2d", "log", 1, 0.0017807996092308125, 0.0008118163177495195),
            ("conv2d", "log", 3, 0.0017807996092308125, 0.0003347796221055165),
            ("conv2d", "linear", 1, 0.00030359267433451205, 5.871043493106286e-05),
            ("conv2d", "linear", 3, 0.00030672639695960224, 5.265713490388902e-05),
            ("linear", "log", 1, 0.004646196273389105, 0.0012438491552969908),
            ("linear", "log", 3, 0.0016697563652023914, 7.732225058222336e-05),
            ("linear", "linear", 1, 0.00019597581454470784, 1.5452860300330185e-05),
            ("linear", "linear", 3, 0.00019597581454470784, 1.5297737658143735e-05),
        ],
    },
    "power": {
        "degree": {"conv2d": 1, "linear": 1},
        "space": {"conv2d": "linear", "linear": "linear"},
        "terms": {
            "conv2d": [
                ("1", 98.60012594690416),
                ("batch", 0.007688131217643662),
                ("in_channels", -0.003634071991446355),
                ("out_channels", 0.0009101549023401553),
                ("in_size", 0.03296527851616568),
                ("stride", -0.03602472071210409),
                ("padding", -0.018339226101925114),
                ("bias", 0.7202261329042655),
                ("in_aligned", 0.8719863941666351),
                ("flops", 3.668401734392662e-09),
            ],
            "linear": [
                ("1", 100.2453765367787),
                ("batch", -0.04099929993550294),
                ("in_features", -6.190693327571073e-06),
                ("flops", 1.1479613578897208e-08),
                ("param_bytes", -2.8864854734822046e-08),
            ],
        },
        "cv": [
            ("conv2d", "log", 1, 0.022589933312461504, 0.006466595219195346),
            ("conv2d", "log", 3, 0.022954512897170393, 0.007418421869191817),
            ("conv2d", "linear", 1, 0.03669493219631235, 0.655074369248457),
            ("conv2d", "linear", 3, 0.03669493219631235, 27.14265991973882),
            ("linear", "log", 1, 0.0013566958189054758, 0.00014745718472459698),
            ("linear", "log", 3, 0.001497207624708807, 0.0001531068316865757),
            ("linear", "linear", 1, 0.048741047686317325, 1.4065454791159488),
            ("linear", "linear", 3, 0.048741047686317325, 1.3995760846470109),
        ],
    },
    "predictions": {
        "runtime_ms": [
            0.05260739605696362,
            0.06894439011635403,
            0.010609781067510432,
            0.017976431294532667,
            0.009883811258294791,
            0.006932771656653072,
            0.015930185137365393,
            0.0020131614588557844,
        ],
        "power_w": [
            103.31444156860604,
            103.76421166621704,
            100.16865847589332,
            100.84631325331675,
            100.1095253319862,
            100.07935583258508,
            99.80002391201754,
            100.20073284628339,
        ],
        "energy_mj": [
            5.435103746003684,
            7.153960289231602,
            1.0627675362554514,
            1.8128568215051677,
            0.9894636535388328,
            0.6938273215322431,
            1.5898328576319325,
            0.2017202535152426,
        ],
    },
}


@pytest.fixture(scope="module")
def fitted() -> NeuralPower:
    return golden_model().fit(golden_table(TRAIN_SEED, 24), device="GPU A")


def _approx(values):
    return pytest.approx(values, rel=REL, abs=0.0)


@pytest.mark.parametrize("name", ["runtime", "power"])
def test_choices_and_coefficients_are_unchanged(fitted, name):
    model = fitted.runtime_ if name == "runtime" else fitted.power_
    want = EXPECTED[name]
    assert model.degree_ == want["degree"] and model.space_ == want["space"]
    assert sorted(model.groups_) == sorted(want["terms"])
    for group, terms in want["terms"].items():
        got = model.terms(group)
        assert got["term"].tolist() == [t for t, _ in terms]
        assert got["coefficient"].tolist() == _approx([c for _, c in terms])


@pytest.mark.parametrize("name", ["runtime", "power"])
def test_cross_validation_path_is_unchanged(fitted, name):
    model = fitted.runtime_ if name == "runtime" else fitted.power_
    cv = model.cv_results_
    want = EXPECTED[name]["cv"]
    assert list(zip(cv.group, cv.space, cv.degree, strict=True)) == [w[:3] for w in want]
    assert cv["alpha"].tolist() == _approx([w[3] for w in want])
    assert cv["cv_mse"].tolist() == _approx([w[4] for w in want])


def test_predictions_are_unchanged(fitted):
    pred = fitted.predict_all(golden_table(TEST_SEED, 4))
    for column, values in EXPECTED["predictions"].items():
        assert pred[column].tolist() == _approx(values)


def test_saved_model_file_loads_and_predicts_the_same(fitted):
    saved = load(SAVED)
    assert isinstance(saved, NeuralPower)
    for name in ("runtime", "power"):
        model = saved.runtime_ if name == "runtime" else saved.power_
        for group, terms in EXPECTED[name]["terms"].items():
            assert model.terms(group)["coefficient"].tolist() == _approx([c for _, c in terms])
    test = golden_table(TEST_SEED, 4)
    pred = saved.predict_all(test)
    for column, values in EXPECTED["predictions"].items():
        assert pred[column].tolist() == _approx(values)
    np.testing.assert_allclose(
        pred.to_numpy(float), fitted.predict_all(test).to_numpy(float), rtol=REL
    )
