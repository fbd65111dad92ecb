"""NetworkCalibration corrects summed layer predictions of any layer model with whole networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.describe import Layer, Network
from hwml.predict import (
    LeftOutLayersWarning,
    NetworkCalibration,
    NeuralPower,
    Paleo,
    TooFewRowsError,
    UnknownKindError,
    load,
)
from hwml.predict.base import KIND_GROUPS
from tests.predict.conftest import attention_net, toy_net

FAST = {"n_alphas": 20, "cv": 5}


def test_old_import_path_still_works():
    from hwml.predict import neuralpower

    assert neuralpower.NetworkCalibration is NetworkCalibration


NETS = {
    "a": lambda b: toy_net(b),
    "b": lambda b: Network(
        "b",
        (b, 64),
        [Layer.linear(b, 64, 256), Layer.activation("relu", (b, 256)), Layer.linear(b, 256, 10)],
    ),
    "c": lambda b: Network(
        "c",
        (b, 16, 28, 28),
        [
            Layer.conv2d(b, 16, 28, 28, 16, 3, padding=1),
            Layer.batchnorm2d(b, 16, 28, 28),
            Layer.activation("relu", (b, 16, 28, 28)),
        ],
    ),
}


def _build(name: str, batch: int, dtype_bytes: int) -> Network:
    return NETS[name](batch)


@pytest.fixture
def exact_paleo(make_table):
    t = make_table(
        {"conv2d": 20, "linear": 20, "maxpool2d": 10, "activation": 10, "batchnorm2d": 10}
    )
    work = t["flops"] + t["vector_ops"]
    t["runtime_ms"] = 1e3 * (work / 1e12 + t["total_bytes"] / 1e11) / 0.5
    return Paleo(1e12, 1e11).fit(t)


def _nets_table(layer_model, fn) -> pd.DataFrame:
    rows = []
    for name in NETS:
        for b in (1, 8, 32):
            raw = layer_model.predict_network(_build(name, b, 4)).totals["runtime_ms"]
            rows.append(
                {
                    "network": name,
                    "batch": b,
                    "dtype": "float32",
                    "runtime_ms": fn(raw),
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows)


def test_global_calibration_recovers_the_overshoot(exact_paleo, tmp_path):
    nets = _nets_table(exact_paleo, lambda raw: 0.9 * raw)
    cal = NetworkCalibration(exact_paleo).fit(nets, build=_build)
    assert cal.scale_ == pytest.approx(0.9)
    np.testing.assert_allclose(cal.predict(nets, build=_build), nets.runtime_ms)
    lono = cal.leave_one_network_out(nets, build=_build)
    assert len(lono) == 9
    np.testing.assert_allclose(lono.raw_err_pct, 100 * (1 / 0.9 - 1))
    np.testing.assert_allclose(lono.calibrated_err_pct, 0.0, atol=1e-9)
    pred = cal.predict_network(_build("a", 8, 4))
    assert pred.totals["runtime_ms"] == pytest.approx(0.9 * pred.totals["runtime_ms_raw"])
    back = load(cal.save(tmp_path / "cal.json"))
    np.testing.assert_array_equal(back.predict(nets, build=_build), cal.predict(nets, build=_build))


def test_affine_and_per_group_calibration(exact_paleo):
    nets = _nets_table(exact_paleo, lambda raw: 0.05 + raw)
    cal = NetworkCalibration(exact_paleo, mode="affine").fit(nets, build=_build)
    assert cal.coef_["offset"] == pytest.approx(0.05, rel=1e-6) and cal.scale_ == pytest.approx(
        1.0, rel=1e-6
    )
    # A fixed time per working layer overlaps inside a network.
    n = _nets_table(exact_paleo, lambda raw: raw)["network"].map(
        {name: sum(layer.kind != "flatten" for layer in NETS[name](1)) for name in NETS}
    )
    nets = _nets_table(exact_paleo, lambda raw: raw)
    per_layer = -0.2 * float((nets["runtime_ms"] / n).min())
    nets["runtime_ms"] = 0.95 * nets["runtime_ms"] + per_layer * n
    ovh = NetworkCalibration(exact_paleo, mode="overhead").fit(nets, build=_build)
    assert ovh.coef_["sum"] == pytest.approx(0.95) and ovh.coef_["layers"] == pytest.approx(
        per_layer
    )
    lono = ovh.leave_one_network_out(nets, build=_build)
    np.testing.assert_allclose(lono.calibrated_err_pct, 0.0, atol=1e-6)
    nets = _nets_table(exact_paleo, lambda raw: raw)
    per = NetworkCalibration(exact_paleo, mode="per_group", ridge=0.0).fit(nets, build=_build)
    np.testing.assert_allclose(per.predict(nets, build=_build), nets.runtime_ms, rtol=1e-6)
    assert set(per.scale_) == {
        KIND_GROUPS[k]
        for k in ("conv2d", "linear", "maxpool2d", "activation", "batchnorm2d", "flatten")
    }
    with pytest.raises(TooFewRowsError, match="two networks"):
        per.leave_one_network_out(nets[nets.network == "a"], build=_build)


def test_calibration_of_summed_layer_energy(make_table):
    t = make_table(
        {"conv2d": 20, "linear": 20, "maxpool2d": 10, "activation": 10, "batchnorm2d": 10}
    )
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"] + 1e-9 * t["total_bytes"]
    t["power_w"] = 150 + 1e-7 * t["total_bytes"]
    model = NeuralPower(degrees=(1,), space="linear", **FAST).fit(t)
    rows = []
    for name in NETS:
        for b in (1, 8, 32):
            energy = model.predict_network(_build(name, b, 4)).totals["energy_mj"]
            rows.append({"network": name, "batch": b, "energy_mj": 2.0 * energy, "runtime_ms": 1.0})
    nets = pd.DataFrame(rows)
    cal = NetworkCalibration(model, target="energy_mj").fit(nets, build=_build)
    assert cal.scale_ == pytest.approx(2.0)
    lono = cal.leave_one_network_out(nets, build=_build)
    np.testing.assert_allclose(lono.raw_err_pct, -50.0)
    np.testing.assert_allclose(lono.calibrated_err_pct, 0.0, atol=1e-9)
    pred = cal.predict_network(_build("c", 8, 4))
    assert pred.totals["energy_mj"] == pytest.approx(2.0 * pred.totals["energy_mj_raw"])


def test_networks_with_layers_the_model_cannot_price(exact_paleo):
    """Fitting on partial sums would hide the missing layers in the coefficients: refused.
    Predicting a network leaves them out of raw and calibrated totals, and says so."""
    nets = _nets_table(exact_paleo, lambda raw: 0.9 * raw)
    cal = NetworkCalibration(exact_paleo, mode="overhead").fit(nets, build=_build)
    with_attention = pd.concat(
        [nets, pd.DataFrame([{"network": "vit", "batch": 2, "runtime_ms": 1.0, "status": "ok"}])],
        ignore_index=True,
    )

    def build(name: str, batch: int, dtype_bytes: int) -> Network:
        return attention_net(batch) if name == "vit" else _build(name, batch, dtype_bytes)

    for call in (
        lambda: NetworkCalibration(exact_paleo).fit(with_attention, build=build),
        lambda: cal.predict(with_attention, build=build),
        lambda: cal.leave_one_network_out(with_attention, build=build),
        lambda: cal.predict_network(attention_net(2), strict=True),
    ):
        with pytest.raises(UnknownKindError, match=r"'attention' \(1 layer\), 'norm' \(2 layers\)"):
            call()
    with pytest.warns(LeftOutLayersWarning, match="'attention'"):
        pred = cal.predict_network(attention_net(2))
    assert dict(pred.left_out) == {"attention": 1, "norm": 2}
    assert pred.totals["left_out_layers"] == 3
    priced = pred.layers[~pred.layers["left_out"]]
    assert pred.totals["runtime_ms_raw"] == pytest.approx(priced["runtime_ms"].sum())
    working = int((priced["group"] != "trivial").sum())  # the left-out layers not counted
    assert working == 4
    assert pred.totals["runtime_ms"] == pytest.approx(
        cal.coef_["sum"] * pred.totals["runtime_ms_raw"] + cal.coef_["layers"] * working
    )
