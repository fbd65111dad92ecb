"""Evaluation helpers: split, noise floor, error tables, network predictions, timing."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from hwml.describe import Layer, Network
from hwml.predict import (
    LeftOutLayersWarning,
    NetworkCalibration,
    NeuralPower,
    NeuralPowerRegressor,
    Paleo,
    PredictorError,
    UnknownKindError,
)
from hwml.predict.evaluate import (
    SURVEY_TABLE1,
    SURVEY_TABLE2,
    cached_zoo_builder,
    error_table,
    fit_layer_models,
    measured_layer_sums,
    network_prediction,
    noise_floor,
    predict_networks,
    split_configurations,
    table1,
    time_prediction,
    training_split,
)
from tests.predict.conftest import attention_net, layer_table

FAST = {"degrees": (1,), "cv": 3, "n_alphas": 10, "space": "linear"}


def test_survey_tables_hold_the_published_numbers():
    assert SURVEY_TABLE1.loc["conv2d", "neuralpower_rmspe_pct"] == 39.97
    assert SURVEY_TABLE1.loc["pool", "paleo_rmse_ms"] == 1.763
    assert list(SURVEY_TABLE1["neuralpower_model_size"]) == [60, 17, 31]
    assert SURVEY_TABLE2.loc["overfeat"].tolist() == [114.71, 195.21, 197.99]
    assert len(SURVEY_TABLE2) == 5


def test_split_is_seeded_stratified_and_disjoint():
    t = pd.DataFrame({"kind": ["conv2d"] * 50 + ["linear"] * 10 + ["add"] * 2, "v": range(62)})
    train, test = split_configurations(t, 0.2, seed=3)
    assert test["kind"].value_counts().to_dict() == {"conv2d": 10, "linear": 2}
    assert len(train) + len(test) == len(t) and not set(train.index) & set(test.index)
    again = split_configurations(t, 0.2, seed=3)[1]
    assert list(again.index) == list(test.index)
    assert list(split_configurations(t, 0.2, seed=4)[1].index) != list(test.index)
    with pytest.raises(ValueError, match="test_fraction"):
        split_configurations(t, 1.0)


def test_noise_floor_is_the_error_of_the_true_mean():
    rows = []
    for rep, t in enumerate([1.0, 1.2, 0.8]):
        rows.append({"key": f"a#r{rep}", "kind": "conv2d", "runtime_ms": t, "status": "ok"})
        rows.append({"key": f"b#r{rep}", "kind": "linear", "runtime_ms": 2.0, "status": "ok"})
    rows.append(
        {"key": "c#r0", "kind": "linear", "runtime_ms": 9.0, "status": "ok"}
    )  # once: skipped
    rows.append({"key": "b#r3", "kind": "linear", "runtime_ms": 50.0, "status": "oom"})  # failed
    out = noise_floor(pd.DataFrame(rows))
    # a: mean 1.0; deviations 0, -0.2, +0.2, scaled by sqrt(3/2) for the estimated mean
    rel = np.array([0.0, -0.2 / 1.2, 0.2 / 0.8]) * math.sqrt(1.5)
    expected = 100 * math.sqrt(np.mean(rel**2))
    assert out.loc["conv2d", "rmspe_pct"] == pytest.approx(expected)
    assert out.loc["conv2d", "rmse"] == pytest.approx(np.std([1.0, 1.2, 0.8], ddof=1))
    assert out.loc["conv2d", "cv_median_pct"] == pytest.approx(20.0)
    assert out.loc["linear", "rmspe_pct"] == 0 and out.loc["linear", "layers"] == 1
    assert out.loc["all", "measurements"] == 6
    assert out.loc["all", "rmspe_pct"] == pytest.approx(expected / math.sqrt(2))
    with pytest.raises(ValueError, match="twice"):
        noise_floor(pd.DataFrame(rows[-2:]))


def test_error_table_per_group_and_overall():
    t = pd.DataFrame(
        {"kind": ["maxpool2d", "avgpool2d", "conv2d", "conv2d"], "runtime_ms": [1.0, 2.0, 1.0, 4.0]}
    )
    out = error_table(
        t, {"a": np.array([1.1, 2.2, 1.0, 4.0]), "b": np.array([np.nan, 2.0, 2.0, 4.0])}
    )
    a = out[out["model"] == "a"].set_index("group")
    assert a.loc["pool", "rmspe_pct"] == pytest.approx(10.0)
    assert a.loc["pool", "n"] == 2 and a.loc["conv2d", "rmspe_pct"] == 0
    assert a.loc["all", "rmse"] == pytest.approx(math.sqrt((0.01 + 0.04) / 4))
    b = out[out["model"] == "b"].set_index("group")
    assert b.loc["pool", "n"] == 1  # the NaN prediction is not scored
    assert b.loc["all", "median_ratio"] == pytest.approx(1.0)
    by_kind = error_table(t, {"a": np.array([1.1, 2.2, 1.0, 4.0])}, by="kind")
    assert set(by_kind["kind"]) == {"maxpool2d", "avgpool2d", "conv2d", "all"}
    with pytest.raises(ValueError, match="4 rows"):
        error_table(t, {"a": np.ones(3)})


def _net(batch: int) -> Network:
    layers = [
        Layer.conv2d(batch, 8, 16, 16, 16, 3, 1, 1),
        Layer.activation("relu", (batch, 16, 16, 16)),
        Layer.linear(batch, 64, 10),
    ]
    layers = [dataclasses.replace(layer, name=f"l{i}") for i, layer in enumerate(layers)]
    return Network("toy", (batch, 8, 16, 16), layers)


@pytest.fixture(scope="module")
def fitted():
    t = layer_table({"conv2d": 40, "linear": 30, "activation": 30}, seed=5)
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"] + 1e-9 * t["total_bytes"]
    t["power_w"] = 100 + 1e-8 * t["total_bytes"]
    return t, NeuralPower(**FAST).fit(t)


def test_network_prediction_has_the_same_columns_for_every_model(fitted):
    t, npw = fitted
    net = _net(4)
    full = network_prediction(npw, net)
    assert list(full.layers.columns) == [
        "index",
        "name",
        "kind",
        "runtime_ms",
        "power_w",
        "energy_mj",
        "left_out",
    ]
    assert not full.layers["left_out"].any() and full.complete
    tot = full.totals
    assert tot["left_out_layers"] == 0
    assert tot["runtime_ms"] == pytest.approx(full.layers["runtime_ms"].sum())
    assert tot["energy_mj"] == pytest.approx(full.layers["energy_mj"].sum())
    assert tot["power_w"] == pytest.approx(tot["energy_mj"] / tot["runtime_ms"])
    paleo = Paleo(1e12, 1e9).fit(t)
    p = network_prediction(paleo, net)
    assert p.layers["power_w"].isna().all() and math.isnan(p.totals["energy_mj"])
    power_only = NeuralPowerRegressor(target="power_w", **FAST).fit(t)
    q = network_prediction(power_only, net)
    assert q.layers["runtime_ms"].isna().all() and q.layers["power_w"].notna().all()
    assert math.isnan(q.totals["runtime_ms"])


def test_network_prediction_with_calibration_scales_energy(fitted):
    t, npw = fitted
    nets = pd.DataFrame({"network": ["toy", "toy2"], "batch": [4, 8]})
    build = lambda name, batch, dtype_bytes: _net(batch)  # noqa: E731
    raw = [network_prediction(npw, _net(b)).totals["runtime_ms"] for b in (4, 8)]
    nets["runtime_ms"] = [0.5 * r for r in raw]
    cal = NetworkCalibration(npw, mode="global").fit(nets, build=build)
    out = network_prediction(cal, _net(4))
    assert out.totals["runtime_ms"] == pytest.approx(0.5 * raw[0])
    assert out.totals["runtime_ms_raw"] == pytest.approx(raw[0])
    assert out.totals["energy_mj"] == pytest.approx(0.5 * out.totals["energy_mj_raw"])
    assert out.totals["power_w"] == pytest.approx(
        network_prediction(npw, _net(4)).totals["power_w"]
    )
    nets["energy_mj"] = [3.0 * network_prediction(npw, _net(b)).totals["energy_mj"] for b in (4, 8)]
    energy = network_prediction(
        NetworkCalibration(npw, target="energy_mj").fit(nets, build=build), _net(4)
    )
    assert energy.totals["energy_mj"] == pytest.approx(3.0 * energy.totals["energy_mj_raw"])
    assert (
        energy.totals["runtime_ms"] == pytest.approx(raw[0])
        and "runtime_ms_raw" not in energy.totals
    )
    assert energy.totals["power_w"] == pytest.approx(energy.totals["energy_mj"] / raw[0])


def test_network_prediction_refuses_models_of_other_things(fitted):
    from hwml.predict import Eyeriss

    with pytest.raises(PredictorError, match="energy_mac"):
        network_prediction(Eyeriss(), _net(1))


def test_predict_networks_beside_measurements(fitted):
    t, npw = fitted
    build = lambda name, batch, dtype_bytes: _net(batch)  # noqa: E731
    nets = pd.DataFrame(
        {
            "network": ["toy", "toy"],
            "batch": [1, 4],
            "dtype": "float32",
            "runtime_ms": [0.1, 0.2],
            "power_w": [150.0, np.nan],
        }
    )
    out = predict_networks({"np": npw, "paleo": Paleo(1e12, 1e9).fit(t)}, nets, build=build)
    assert list(out.index) == list(nets.index)
    assert out.loc[1, "np_runtime_ms"] == pytest.approx(
        network_prediction(npw, _net(4)).totals["runtime_ms"]
    )
    assert math.isnan(out.loc[1, "power_w"]) and math.isnan(out.loc[0, "energy_mj"])
    assert out["paleo_power_w"].isna().all() and (out["layers"] == 3).all()


def test_network_prediction_totals_the_priced_layers_and_names_the_rest(fitted):
    _, npw = fitted  # conv2d, linear, activation: no pool, norm or attention
    with pytest.warns(LeftOutLayersWarning, match=r"'attention' \(1 layer\).*'maxpool2d'"):
        pred = network_prediction(npw, attention_net())
    assert dict(pred.left_out) == {"attention": 1, "maxpool2d": 1, "norm": 2}
    layers = pred.layers
    assert list(layers.loc[layers["left_out"], "name"]) == ["pool", "ln1", "attn", "ln2"]
    priced = layers[~layers["left_out"]]
    assert pred.totals["left_out_layers"] == 4 and pred.totals["layers"] == 10
    assert pred.totals["runtime_ms"] == pytest.approx(priced["runtime_ms"].sum())
    assert pred.totals["energy_mj"] == pytest.approx(priced["energy_mj"].sum())
    assert math.isfinite(pred.totals["energy_mj"])
    with pytest.raises(UnknownKindError, match="'maxpool2d'"):
        network_prediction(npw, attention_net(), strict=True)


def test_predict_networks_counts_left_out_layers_with_one_warning(fitted):
    t, npw = fitted
    nets = pd.DataFrame({"network": ["toy", "vit", "vit"], "batch": [1, 1, 4]})

    def build(name, batch, dtype_bytes):
        return attention_net(batch) if name == "vit" else _net(batch)

    with pytest.warns(LeftOutLayersWarning) as record:
        out = predict_networks({"np": npw}, nets, build=build)
    assert len(record) == 1
    assert "2 of 3 network rows" in str(record[0].message)
    assert "'norm' (4 layers)" in str(record[0].message)
    assert list(out["np_left_out_layers"]) == [0, 4, 4]
    with pytest.warns(LeftOutLayersWarning):
        alone = network_prediction(npw, attention_net(1))
    assert out.loc[1, "np_runtime_ms"] == pytest.approx(alone.totals["runtime_ms"])
    with pytest.raises(UnknownKindError):
        predict_networks({"np": npw}, nets, build=build, strict=True)


def test_time_prediction_returns_one_time_per_repeat(fitted):
    _, npw = fitted
    times = time_prediction(npw, _net(2), repeats=5, warmup=1)
    assert times.shape == (5,) and (times > 0).all()
    with pytest.raises(ValueError):
        time_prediction(npw, _net(2), repeats=0)


def test_training_split_keeps_zoo_layers_apart():
    t = layer_table({"conv2d": 20, "linear": 10}, seed=1)
    t["source"] = ["sample"] * 25 + ["zoo:vgg16"] * 3 + ["zoo:alexnet"] * 2
    t.loc[0, "status"] = "oom"
    half = t.iloc[:4].assign(dtype="float16")
    split = training_split(pd.concat([t, half], ignore_index=True), test_fraction=0.2, seed=0)
    assert len(split.train) + len(split.test) == 24 and len(split.zoo) == 5
    assert set(split.zoo["network"]) == {"vgg16", "alexnet"}
    assert (split.train["source"] == "sample").all() and (split.train["dtype"] == "float32").all()
    capped = training_split(t, max_train_per_kind=4, seed=0)
    assert capped.train["kind"].value_counts().max() == 4
    assert list(capped.test.index) == list(split.test.index)  # the cap leaves the test set alone
    with pytest.raises(ValueError, match="bfloat16"):
        training_split(t, dtype="bfloat16")


def test_fit_layer_models_uses_the_provenance_peaks():
    t = layer_table({"conv2d": 20, "linear": 12, "add": 12}, seed=2)
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"] + 1e-9 * t["total_bytes"]
    t["power_w"] = 150.0 + 1e-8 * t["total_bytes"]
    prov = {
        "gpu_name": "GPU X",
        "peak_flops_per_s": {"float32": 1e13, "tf32": 1e14},
        "copy_bandwidth_bytes_per_s": 1e12,
    }
    models = fit_layer_models(t, prov, degrees=(1,), cv=3, paleo_peak="tf32")
    assert set(models) == {"Paleo", "NeuralPower"}
    assert models["Paleo"].peak_flops_per_s == 1e14 and models["NeuralPower"].device_ == "GPU X"
    concat = Layer.concat([(2, 8, 4, 4), (2, 8, 4, 4)])  # no concat rows: modelled as element-wise
    for model in models.values():
        assert model.predict_layers([concat])[0] > 0


def test_measured_layer_sums_look_layers_up_by_their_computation():
    net = _net(4)
    rows = [
        {
            **dataclasses.replace(layer, name="").to_row(),
            "dtype": "float32",
            "runtime_ms": 0.1 * (i + 1),
            "energy_mj": 10.0 * (i + 1),
            "status": "ok",
        }
        for i, layer in enumerate(net.layers)
    ]
    rows.append({**rows[0], "dtype": "float16", "runtime_ms": 99.0})  # another dtype: not used
    build = lambda name, batch, dtype_bytes: _net(batch)  # noqa: E731
    nets = pd.DataFrame({"network": ["toy", "toy"], "batch": [4, 2]})
    out = measured_layer_sums(nets, pd.DataFrame(rows), build=build)
    assert out.loc[0, "layers_runtime_ms"] == pytest.approx(0.6)
    assert out.loc[0, "layers_energy_mj"] == pytest.approx(60.0)
    assert out.loc[0, "layers_power_w"] == pytest.approx(100.0) and out.loc[0, "missing"] == 0
    assert out.loc[1, "missing"] == 3 and math.isnan(out.loc[1, "layers_runtime_ms"])


def test_cached_builder_describes_once():
    build = cached_zoo_builder()
    assert build("alexnet", 2, 4) is build("alexnet", 2, 4)


def test_table1_lays_out_models_noise_and_survey():
    t = pd.DataFrame(
        {"kind": ["conv2d", "conv2d", "maxpool2d", "add"], "runtime_ms": [1.0, 2.0, 1.0, 1.0]}
    )
    err = error_table(
        t, {"NeuralPower": np.array([1.1, 2.0, 1.0, 1.0]), "Paleo": np.array([0.5, 1.0, 0.5, 0.5])}
    )
    noise = pd.DataFrame(
        {"rmspe_pct": [5.0], "rmse": [0.01]}, index=pd.Index(["conv2d"], name="group")
    )
    out = table1(err, {"NeuralPower": {"conv2d": 12, "pool": 3, "eltwise": 2}}, noise)
    assert "Paleo terms" not in out.columns
    assert list(out.index) == ["conv2d", "pool", "eltwise", "all"]
    assert out.loc["conv2d", "NeuralPower terms"] == 12 and np.isnan(
        out.loc["all", "NeuralPower terms"]
    )
    assert out.loc["pool", "Paleo RMSPE (%)"] == pytest.approx(50.0)
    assert out.loc["conv2d", "noise RMSPE (%)"] == 5.0 and np.isnan(
        out.loc["pool", "noise RMSPE (%)"]
    )
    assert out.loc["pool", "survey Paleo RMSPE (%)"] == 79.91
    assert np.isnan(out.loc["eltwise", "survey NeuralPower RMSPE (%)"])
    assert out.loc["all", "n"] == 4
    power = table1(error_table(t, {"NeuralPower": np.ones(4)}), unit="W", survey=False)
    assert "NeuralPower RMSE (W)" in power.columns and not any("survey" in c for c in power.columns)
