"""Paleo recovers a known platform percent of peak from synthetic runtimes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hwml.describe import Layer, Network
from hwml.predict import LeftOutLayersWarning, MissingColumnsError, Paleo, UnknownKindError, load
from hwml.predict.base import KIND_GROUPS
from tests.predict.conftest import attention_net

PEAK = 1e12  # FLOP/s
BW = 1e11  # byte/s
PPP = {"conv2d": 0.5, "linear": 0.25, "pool": 0.1, "activation": 0.8}


def _runtime_ms(
    table: pd.DataFrame, ppp: dict[str, float], noise: float = 0.0, seed: int = 0
) -> np.ndarray:
    work = table["flops"] + table["vector_ops"]
    ideal = 1e3 * (work / PEAK + table["total_bytes"] / BW)
    scale = table["kind"].map(KIND_GROUPS).map(ppp)
    rng = np.random.default_rng(seed)
    return (ideal / scale).to_numpy() * np.exp(noise * rng.standard_normal(len(table)))


@pytest.fixture
def table(make_table):
    t = make_table({"conv2d": 40, "linear": 30, "maxpool2d": 15, "avgpool2d": 15, "activation": 20})
    t["runtime_ms"] = _runtime_ms(t, PPP)
    return t


def test_recovers_ppp_per_group(table):
    model = Paleo(PEAK, BW).fit(table)
    got = model.ppp_.set_index("group")
    for group, ppp in PPP.items():
        assert got.loc[group, "ppp_compute"] == pytest.approx(ppp, rel=1e-9)
    assert np.allclose(model.predict(table), table["runtime_ms"], rtol=1e-9)


def test_recovers_ppp_under_noise(table):
    table["runtime_ms"] = _runtime_ms(table, PPP, noise=0.05, seed=3)
    got = Paleo(PEAK, BW).fit(table).ppp_.set_index("group")
    for group, ppp in PPP.items():
        assert got.loc[group, "ppp_compute"] == pytest.approx(ppp, rel=0.05)


def test_global_ppp_is_one_number(table):
    table["runtime_ms"] = _runtime_ms(table, dict.fromkeys(PPP, 0.4))
    model = Paleo(PEAK, BW, ppp="global").fit(table)
    assert list(model.ppp_["group"]) == ["all"]
    assert model.ppp_["ppp_compute"].iloc[0] == pytest.approx(0.4)


def test_split_recovers_compute_and_transfer_ppp(make_table):
    t = make_table({"conv2d": 60})
    work = t["flops"] + t["vector_ops"]
    t["runtime_ms"] = 1e3 * (work / (PEAK * 0.6) + t["total_bytes"] / (BW * 0.3))
    got = Paleo(PEAK, BW, split=True).fit(t).ppp_.iloc[0]
    assert got["ppp_compute"] == pytest.approx(0.6, rel=1e-6)
    assert got["ppp_transfer"] == pytest.approx(0.3, rel=1e-6)


def test_max_combination_is_the_roofline(make_table):
    t = make_table({"conv2d": 30})
    work = t["flops"] + t["vector_ops"]
    t["runtime_ms"] = 1e3 * np.maximum(work / PEAK, t["total_bytes"] / BW) / 0.7
    model = Paleo(PEAK, BW, combine="max").fit(t)
    assert model.ppp_["ppp_compute"].iloc[0] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="split"):
        Paleo(PEAK, BW, combine="max", split=True).fit(t)


def test_network_prediction_and_trivial_kinds(table):
    model = Paleo(PEAK, BW).fit(table)
    conv = Layer.conv2d(2, 16, 14, 14, 32, 3, padding=1)
    layers = [
        conv,
        Layer.activation("relu", conv.out_shape),
        Layer(kind="flatten", in_shapes=(conv.out_shape,), out_shape=(2, 32 * 14 * 14)),
        Layer.linear(2, 32 * 14 * 14, 10),
    ]
    net = Network("toy", (2, 16, 14, 14), layers)
    pred = model.predict_network(net)
    assert list(pred.layers["kind"]) == ["conv2d", "activation", "flatten", "linear"]
    assert pred.layers["runtime_ms"].iloc[2] == 0.0
    assert pred.totals["runtime_ms"] == pytest.approx(pred.layers["runtime_ms"].sum())
    expected = _runtime_ms(net.table().drop(index=2), PPP)
    assert pred.layers["runtime_ms"].drop(index=2).to_numpy() == pytest.approx(expected)


def test_unknown_kind_is_named(table):
    model = Paleo(PEAK, BW).fit(table[table.kind == "conv2d"])
    bn = Layer.batchnorm2d(1, 8, 4, 4)
    with pytest.raises(UnknownKindError, match="batchnorm2d"):
        model.predict(pd.DataFrame([bn.to_row()]))


def test_missing_columns_are_named(table):
    with pytest.raises(MissingColumnsError, match="'flops'.*'runtime_ms'"):
        Paleo(PEAK, BW).fit(table.drop(columns=["flops", "runtime_ms"]))


def test_from_provenance_and_json_round_trip(table, tmp_path):
    prov = {
        "gpu_name": "GPU X",
        "peak_flops_per_s": {"float32": PEAK, "float16": 4 * PEAK},
        "copy_bandwidth_bytes_per_s": BW,
    }
    model = Paleo.from_provenance(prov, "float32").fit(table, device=prov["gpu_name"])
    assert model.device_ == "GPU X" and model.dtype_ == "float32"
    back = load(model.save(tmp_path / "paleo.json"))
    assert isinstance(back, Paleo)
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(table), model.predict(table))
    with pytest.raises(KeyError, match="bfloat16"):
        Paleo.from_provenance(prov, "bfloat16")


def _ideal_ms(net: Network) -> np.ndarray:
    t = net.table()
    return (1e3 * ((t["flops"] + t["vector_ops"]) / PEAK + t["total_bytes"] / BW)).to_numpy()


def test_groups_without_training_rows_are_left_out_by_default(table):
    model = Paleo(PEAK, BW).fit(table)
    with pytest.warns(LeftOutLayersWarning, match=r"'attention' \(1 layer\), 'norm' \(2 layers\)"):
        pred = model.predict_network(attention_net())
    assert list(pred.layers.loc[pred.layers["left_out"], "name"]) == ["ln1", "attn", "ln2"]
    assert pred.layers.loc[pred.layers["left_out"], "runtime_ms"].isna().all()
    assert not pred.layers["fallback"].any()
    with pytest.raises(UnknownKindError, match="'attention'.*'norm'.*fitted groups are activation"):
        model.predict_network(attention_net(), strict=True)


def test_unfitted_ppp_prices_them_flagged_as_fallback(table, tmp_path):
    model = Paleo(PEAK, BW, unfitted_ppp=0.5).fit(table)
    net = attention_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = model.predict_network(net, strict=True)
    layers = pred.layers
    assert pred.complete and not layers["left_out"].any()
    new = layers["kind"].isin(["norm", "attention"]).to_numpy()
    assert list(layers["fallback"]) == list(new)  # priced by the unfitted default, said so
    np.testing.assert_allclose(layers["runtime_ms"][new], _ideal_ms(net)[new] / 0.5)
    conv = (layers["kind"] == "conv2d").to_numpy()
    np.testing.assert_allclose(layers["runtime_ms"][conv], _ideal_ms(net)[conv] / PPP["conv2d"])
    assert pred.totals["runtime_ms"] == pytest.approx(layers["runtime_ms"].sum())
    back = load(model.save(tmp_path / "paleo.json"))
    assert back.unfitted_ppp == 0.5
    np.testing.assert_array_equal(back.predict(net.table()), layers["runtime_ms"])
    with pytest.raises(ValueError, match="unfitted_ppp"):
        Paleo(PEAK, BW, unfitted_ppp=2.0).fit(table)


def test_a_global_ppp_prices_every_grouped_kind(table):
    table["runtime_ms"] = _runtime_ms(table, dict.fromkeys(PPP, 0.4))
    model = Paleo(PEAK, BW, ppp="global").fit(table)
    pred = model.predict_network(attention_net())
    assert pred.complete and not pred.layers["fallback"].any()
    norm = (pred.layers["kind"] == "norm").to_numpy()
    np.testing.assert_allclose(
        pred.layers["runtime_ms"][norm], _ideal_ms(attention_net())[norm] / 0.4
    )
