"""NeuralPower recovers known polynomials, picks the right degree and space, and predicts networks."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from hwml.describe import Layer, Network
from hwml.predict import (
    DeviceMismatchError,
    DeviceMismatchWarning,
    LeftOutLayersWarning,
    MissingColumnsError,
    ModelFormatError,
    NeuralPower,
    NeuralPowerRegressor,
    NotFittedError,
    Paleo,
    PredictorError,
    TooFewRowsError,
    UnknownKindError,
    load,
)
from tests.predict.conftest import attention_net, layer_table, toy_net

FAST = {"n_alphas": 20, "cv": 5}


def L(x):  # noqa: N802 - the log1p transform of the log space
    return np.log1p(np.asarray(x, dtype=float))


def _terms(model: NeuralPowerRegressor, group: str) -> dict[str, float]:
    return dict(model.terms(group).itertuples(index=False, name=None))


# ---------------------------------------------------------------- recovery
def test_linear_space_recovers_sparse_physical_formula(make_table):
    t = make_table({"linear": 80})
    # T = 0.01 ms + 2e-12 ms/FLOP * flops + 3e-9 ms/byte * param_bytes
    t["runtime_ms"] = 0.01 + 2e-12 * t["flops"] + 3e-9 * t["param_bytes"]
    m = NeuralPowerRegressor(degrees=(1,), space="linear", relaxed=True, **FAST).fit(t)
    terms = _terms(m, "linear")
    assert terms["1"] == pytest.approx(0.01, rel=1e-4)
    assert terms["flops"] == pytest.approx(2e-12, rel=1e-4)
    assert terms["param_bytes"] == pytest.approx(3e-9, rel=1e-4)
    np.testing.assert_allclose(m.predict(t), t["runtime_ms"], rtol=1e-4)


def test_log_space_recovers_sparse_polynomial(make_table):
    t = make_table({"linear": 120}, seed=1)
    # log T = -18 + 0.9 log1p(flops) + 0.05 log1p(in_features)^2
    t["runtime_ms"] = np.exp(-18 + 0.9 * L(t["flops"]) + 0.05 * L(t["in_features"]) ** 2)
    m = NeuralPowerRegressor(degrees=(2,), space="log", relaxed=True, **FAST).fit(t)
    terms = _terms(m, "linear")
    assert terms["log1p(flops)"] == pytest.approx(0.9, rel=1e-3)
    assert terms["log1p(in_features)^2"] == pytest.approx(0.05, rel=1e-3)
    assert terms["1"] == pytest.approx(-18, rel=1e-3)
    others = {
        k: v for k, v in terms.items() if k not in ("1", "log1p(flops)", "log1p(in_features)^2")
    }
    assert all(abs(v) < 1e-3 for v in others.values()), others
    test = make_table({"linear": 30}, seed=99)
    truth = np.exp(-18 + 0.9 * L(test["flops"]) + 0.05 * L(test["in_features"]) ** 2)
    np.testing.assert_allclose(m.predict(test), truth, rtol=1e-3)


@pytest.mark.parametrize("true_degree", [1, 2])
def test_cross_validation_picks_the_generating_degree(make_table, true_degree):
    t = make_table({"linear": 150}, seed=2)
    b, i, o = L(t["batch"]), L(t["in_features"]), L(t["out_features"])
    f = -4 + 0.6 * b + 0.3 * o
    if true_degree == 2:
        f = f + 0.15 * b * i - 0.1 * o**2
    noise = 0.01 * np.random.default_rng(5).standard_normal(len(t))
    t["runtime_ms"] = np.exp(f + noise)
    m = NeuralPowerRegressor(degrees=(1, 2, 3), space="log", **FAST).fit(t)
    assert m.degree_["linear"] == true_degree
    chosen = m.cv_results_[m.cv_results_.chosen]
    assert list(chosen.degree) == [true_degree]


def test_auto_space_follows_the_data(make_table):
    t = make_table({"activation": 60, "conv2d": 60}, seed=3)
    act = t.kind == "activation"
    # Memory-bound: launch overhead plus bytes over bandwidth (additive).
    t.loc[act, "runtime_ms"] = 0.004 + 2e-10 * t.loc[act, "total_bytes"]
    # Compute-bound: a power law of FLOPs with a shape-dependent efficiency (multiplicative).
    conv = ~act
    t.loc[conv, "runtime_ms"] = np.exp(
        -19 + 0.85 * L(t.loc[conv, "flops"]) - 0.2 * L(t.loc[conv, "in_channels"])
    )
    m = NeuralPowerRegressor(degrees=(1, 2), relaxed=True, **FAST).fit(t)
    assert m.space_ == {"activation": "linear", "conv2d": "log"}
    assert m.cv_rmspe_["activation"] < 1.0 and m.cv_rmspe_["conv2d"] < 1.0
    assert set(m.cv_results_.space) == {"log", "linear"}
    terms = _terms(m, "activation")
    assert terms["1"] == pytest.approx(0.004, rel=1e-6)
    assert terms["total_bytes"] == pytest.approx(2e-10, rel=1e-6)


# ---------------------------------------------------------------- errors
def test_too_few_rows_for_the_folds(make_table):
    t = make_table({"conv2d": 40, "batchnorm2d": 6})
    t["runtime_ms"] = 1e-9 * t["total_bytes"] + 0.01
    with pytest.raises(TooFewRowsError, match="'batchnorm2d' has 6 usable row.*10-fold"):
        NeuralPowerRegressor(degrees=(1,)).fit(t)
    m = NeuralPowerRegressor(degrees=(1,), groups=["conv2d"], **FAST).fit(t)
    assert set(m.groups_) == {"conv2d"}


def test_missing_columns_are_named(make_table):
    t = make_table({"linear": 20})
    with pytest.raises(MissingColumnsError, match="'runtime_ms'"):
        NeuralPowerRegressor().fit(t)
    t["runtime_ms"] = 1.0
    with pytest.raises(MissingColumnsError, match="'in_features'"):
        NeuralPowerRegressor().fit(t.drop(columns=["in_features"]))


def test_unknown_kind_is_named(make_table):
    t = make_table({"linear": 30})
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"]
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(t)
    conv = pd.DataFrame([Layer.conv2d(1, 3, 8, 8, 4, 3).to_row()] * 2)
    with pytest.raises(UnknownKindError, match="'conv2d'.*fitted groups are linear"):
        m.predict(conv)


def test_bad_targets_and_mixed_dtypes(make_table):
    t = make_table({"linear": 30})
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"]
    t.loc[0, "runtime_ms"] = 0.0
    with pytest.raises(PredictorError, match="positive"):
        NeuralPowerRegressor(**FAST).fit(t)
    t.loc[0, "runtime_ms"] = 0.02
    t.loc[1, "dtype"] = "float16"
    with pytest.raises(PredictorError, match="mix dtypes"):
        NeuralPowerRegressor(**FAST).fit(t)


def test_unusable_rows_are_dropped(make_table):
    t = make_table({"linear": 30})
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"]
    t.loc[:4, "status"] = "oom"
    t.loc[5, "runtime_ms"] = np.nan
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(t)
    assert m.n_dropped_ == 6
    assert m.groups_["linear"].n_train == 24


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        NeuralPowerRegressor().predict(pd.DataFrame())


# ---------------------------------------------------------------- persistence and devices
@pytest.fixture
def fitted(make_table):
    t = make_table({"conv2d": 40, "linear": 30, "maxpool2d": 20, "activation": 20}, seed=4)
    rng = np.random.default_rng(0)
    t["runtime_ms"] = (0.005 + 1e-12 * t["flops"] + 5e-10 * t["total_bytes"]) * np.exp(
        0.02 * rng.standard_normal(len(t))
    )
    t["power_w"] = 100 + 50 * np.tanh(t["flops"] / 1e10) + rng.normal(0, 1, len(t))
    t.loc[t.kind == "activation", "power_w"] = np.nan
    t.loc[t.kind == "activation", "status"] = "no_power"
    return t


def test_json_round_trip_gives_identical_predictions(fitted, tmp_path):
    m = NeuralPowerRegressor(degrees=(1, 2), **FAST).fit(fitted, device="GPU A")
    path = m.save(tmp_path / "np.json")
    doc = json.loads(path.read_text())
    assert doc["format_version"] == 2 and doc["model_type"] == "neuralpower_regressor"
    assert (doc["target"], doc["device"], doc["dtype"]) == ("runtime_ms", "GPU A", "float32")
    back = NeuralPowerRegressor.load(path)
    np.testing.assert_array_equal(back.predict(fitted), m.predict(fitted))
    assert back.model_size_ == m.model_size_ and back.space_ == m.space_
    pd.testing.assert_frame_equal(back.terms("conv2d"), m.terms("conv2d"))


def test_wrong_version_or_type_is_refused(fitted, tmp_path):
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(fitted)
    path = m.save(tmp_path / "np.json")
    with pytest.raises(ModelFormatError, match="'neuralpower_regressor' model, not a 'paleo'"):
        Paleo.load(path)
    doc = json.loads(path.read_text())
    doc["format_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="format_version 99"):
        load(tmp_path / "v99.json")
    (tmp_path / "junk.json").write_text('{"format": "other"}')
    with pytest.raises(ModelFormatError, match="not an hwml predictor"):
        load(tmp_path / "junk.json")


def test_device_and_dtype_mismatch(fitted):
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(fitted, device="GPU A")
    with pytest.warns(DeviceMismatchWarning, match="'GPU A'.*'GPU B'"):
        m.predict(fitted, device="GPU B")
    half = fitted.assign(dtype_bytes=2)
    with pytest.warns(DeviceMismatchWarning, match="2-byte"):
        m.predict(half)
    m.set_params(device_check="error")
    with pytest.raises(DeviceMismatchError):
        m.predict(fitted, device="GPU B")
    m.set_params(device_check="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.predict(fitted, device="GPU B")
        m.predict(fitted, device="GPU A")


# ---------------------------------------------------------------- networks, power, energy
def test_neuralpower_energy_and_network_power(fitted, tmp_path):
    model = NeuralPower(degrees=(1,), **FAST).fit(fitted)
    assert set(model.power_.groups_) == {"conv2d", "linear", "pool"}
    partial = model.predict_network(toy_net())  # power was never measured for activations
    act = partial.layers.kind == "activation"
    assert (
        partial.layers.power_w[act].isna().all()
        and partial.layers.power_w[~act & (partial.layers.kind != "flatten")].notna().all()
    )
    assert np.isnan(partial.totals["energy_mj"]) and partial.totals["runtime_ms"] > 0
    t = fitted.assign(power_w=fitted["power_w"].fillna(120.0), status="ok")
    model = NeuralPower(degrees=(1,), **FAST).fit(t)
    pred = model.predict_network(toy_net())
    layers = pred.layers
    assert layers.loc[3, "kind"] == "flatten" and bool(layers.loc[3, "fallback"])
    assert layers.loc[3, "runtime_ms"] == 0.0 and layers.loc[3, "energy_mj"] == 0.0
    assert np.isnan(layers.loc[3, "power_w"])
    busy = layers.drop(index=3)
    np.testing.assert_allclose(busy.energy_mj, busy.power_w * busy.runtime_ms)
    assert pred.totals["runtime_ms"] == pytest.approx(layers.runtime_ms.sum())
    assert pred.totals["energy_mj"] == pytest.approx(layers.energy_mj.sum())
    assert pred.totals["power_w"] == pytest.approx(
        pred.totals["energy_mj"] / pred.totals["runtime_ms"]
    )
    assert model.model_size_["power"]["conv2d"] >= 1
    back = load(model.save(tmp_path / "pair.json"))
    pd.testing.assert_frame_equal(back.predict_network(toy_net()).layers, layers)
    # The fast path from Layer objects and the table path agree.
    np.testing.assert_array_equal(model.predict(toy_net().table()), layers.runtime_ms.to_numpy())


def test_trivial_kinds_use_their_training_median(fitted):
    flat = Layer(kind="flatten", in_shapes=((4, 8, 2, 2),), out_shape=(4, 32)).to_row()
    extra = pd.DataFrame([flat, flat, flat]).assign(
        runtime_ms=[0.001, 0.002, 0.003], status="ok", dtype="float32"
    )
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(
        pd.concat([fitted, extra], ignore_index=True)
    )
    pred = m.predict_network(toy_net())
    assert pred.layers.loc[3, "runtime_ms"] == pytest.approx(0.002)
    assert not pred.layers.loc[3, "fallback"]


def test_power_only_where_measured(fitted):
    model = NeuralPower(degrees=(1,), **FAST).fit(fitted.drop(columns=["power_w"]))
    assert model.power_ is None
    out = model.predict_all(fitted[fitted.kind != "activation"])
    assert out["power_w"].isna().all() and (out["runtime_ms"] > 0).all()


# ---------------------------------------------------------------- conv2d inputs
def test_tile_flops_round_dense_products_up_to_whole_tiles():
    from hwml.predict.base import LayerBatch
    from hwml.predict.neuralpower import GEMM_TILE, _variable, tile_flops

    assert GEMM_TILE == (128, 64, 32)
    dense = Layer.conv2d(2, 3, 8, 8, 8, 3, padding=1)  # M = 2*8*8 = 128, N = 8, K = 27
    depthwise = Layer.conv2d(2, 16, 8, 8, 16, 3, padding=1, groups=16)
    batch = LayerBatch.from_layers([dense, depthwise])
    out = tile_flops(batch)
    assert out[0] == 2 * 128 * 64 * 32  # N 8 -> 64, K 27 -> 32
    assert out[0] > dense.flops
    assert out[1] == depthwise.flops  # not a single matrix product: unchanged
    np.testing.assert_array_equal(_variable(batch, "grouped"), [0.0, 1.0])


def test_saved_inputs_must_match_the_current_spec(fitted, tmp_path):
    m = NeuralPowerRegressor(degrees=(1,), **FAST).fit(fitted)
    doc = m.to_dict()
    assert doc["state"]["inputs"]["conv2d"]["special"][-1] == "tile_flops"
    doc["state"]["inputs"]["conv2d"]["variables"][7] = "groups"  # as fitted by an older hwml
    with pytest.raises(ModelFormatError, match="refit"):
        NeuralPowerRegressor.from_dict(doc)


def test_power_predictions_stay_within_the_measured_range(make_table):
    t = make_table({"linear": 60}, seed=7)
    t = t[t["flops"] < np.quantile(t["flops"], 0.8)]
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"]
    t["power_w"] = 100 + 1e-7 * t["flops"] ** 0.8
    huge = make_table({"linear": 1}, seed=1)
    huge.loc[:, ["batch", "in_features", "out_features"]] = [4096, 8192, 8192]
    huge["flops"] = 2.0 * 4096 * 8192 * 8192
    clipped = NeuralPower(degrees=(1,), space="linear", **FAST).fit(t)
    free = NeuralPower(degrees=(1,), space="linear", clip_power=False, **FAST).fit(t)
    assert clipped.power_.clip and not clipped.runtime_.clip
    assert clipped.predict_all(huge)["power_w"].iloc[0] == pytest.approx(t["power_w"].max())
    assert free.predict_all(huge)["power_w"].iloc[0] > 2 * t["power_w"].max()
    assert (
        clipped.predict_all(huge)["runtime_ms"].iloc[0]
        == free.predict_all(huge)["runtime_ms"].iloc[0]
    )
    back = NeuralPower.from_dict(clipped.to_dict())
    assert back.predict_all(huge)["power_w"].iloc[0] == pytest.approx(t["power_w"].max())


# ---------------------------------------------------------------- constructor parameters
SHARED_DEFAULTS = {
    "degrees": (1, 2, 3),
    "cv": 10,
    "space": "auto",
    "weighting": "relative",
    "n_alphas": 40,
    "eps": 1e-4,
    "max_iter": 20000,
    "relaxed": False,
    "groups": None,
    "kind_groups": None,
    "trivial_value": 0.0,
    "seed": 0,
    "device_check": "warn",
}
OWN_DEFAULTS = {
    NeuralPowerRegressor: {"target": "runtime_ms", "clip": False},
    NeuralPower: {"runtime_target": "runtime_ms", "power_target": "power_w", "clip_power": True},
}
SETTINGS = {
    "degrees": (1, 2),
    "cv": 3,
    "space": "log",
    "weighting": "none",
    "n_alphas": 7,
    "eps": 1e-3,
    "max_iter": 100,
    "relaxed": True,
    "groups": ["conv2d"],
    "kind_groups": {"mul": "eltwise"},
    "trivial_value": 1.5,
    "seed": 3,
    "device_check": "ignore",
}


@pytest.mark.parametrize("cls", [NeuralPowerRegressor, NeuralPower])
def test_constructor_keywords_and_defaults(cls):
    assert cls().get_params() == {**SHARED_DEFAULTS, **OWN_DEFAULTS[cls]}
    signature = inspect.signature(cls.__init__)
    assert all(
        p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in signature.parameters.values()
    )
    assert set(signature.parameters) - {"self"} == set(SHARED_DEFAULTS) | set(OWN_DEFAULTS[cls])


@pytest.mark.parametrize(
    ("cls", "own"),
    [
        (NeuralPowerRegressor, {"target": "power_w", "clip": True}),
        (NeuralPower, {"runtime_target": "t_ms", "power_target": "p_w", "clip_power": False}),
    ],
)
def test_clone_get_params_and_set_params(cls, own):
    est = cls(**SETTINGS, **own)
    copy = clone(est)
    assert type(copy) is cls and copy is not est
    assert copy.get_params() == est.get_params() == {**SETTINGS, **own}
    copy.set_params(cv=4, seed=9)
    assert (copy.cv, copy.seed, est.cv, est.seed) == (4, 9, 3, 3)
    assert hash(est) != hash(copy) and est != copy  # identity, as for any estimator
    assert repr(cls(cv=4)) == f"{cls.__name__}(cv=4)"


def test_neuralpower_hands_its_settings_to_both_models():
    model = NeuralPower(**SETTINGS, power_target="p_w", clip_power=True)
    runtime, power = model._regressor("runtime_ms"), model._regressor("p_w")
    assert runtime.get_params() == {**SETTINGS, "target": "runtime_ms", "clip": False}
    assert power.get_params() == {**SETTINGS, "target": "p_w", "clip": True}


def test_fitted_model_clones_unfitted(fitted):
    model = NeuralPower(degrees=(1,), **FAST).fit(fitted)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(fitted)


# ---------------------------------------------------------------- kinds without training rows
@pytest.fixture(scope="module")
def cnn_model():
    """Runtime and power fitted on CNN layers only: no norm, no attention."""
    t = layer_table({"conv2d": 30, "activation": 20, "maxpool2d": 20, "linear": 20}, seed=11)
    t["runtime_ms"] = 0.01 + 1e-12 * t["flops"] + 1e-9 * t["total_bytes"]
    t["power_w"] = 100 + 1e-8 * t["total_bytes"]
    return NeuralPower(degrees=(1,), **FAST).fit(t)


def test_layers_of_unfitted_kinds_are_left_out_and_said(cnn_model):
    net = attention_net()
    with pytest.warns(
        LeftOutLayersWarning,
        match=r"left out 3 of 10 layers.*'attention' \(1 layer\), 'norm' \(2 layers\) "
        r"\(layers ln1, attn, ln2\).*lower bounds",
    ):
        pred = cnn_model.predict_network(net)
    layers = pred.layers
    left = layers[layers["left_out"]]
    assert list(left["name"]) == ["ln1", "attn", "ln2"]
    assert list(left["group"]) == ["norm", "attention", "norm"]
    assert left[["runtime_ms", "power_w", "energy_mj"]].isna().all().all()
    assert not left["fallback"].any()
    assert dict(pred.left_out) == {"attention": 1, "norm": 2} and not pred.complete
    assert pred.totals["left_out_layers"] == 3
    # The totals are the sums over the priced layers, and those are priced as without the others.
    priced = layers[~layers["left_out"]]
    assert priced["runtime_ms"].notna().all() and len(priced) == 7
    assert pred.totals["runtime_ms"] == pytest.approx(priced["runtime_ms"].sum())
    assert pred.totals["energy_mj"] == pytest.approx(priced["energy_mj"].sum())
    assert np.isfinite(pred.totals["energy_mj"]) and pred.totals["energy_mj"] > 0
    rest = [layer for layer in net.layers if layer.kind not in ("norm", "attention")]
    alone = cnn_model.predict_network(Network("rest", net.input_shape, rest))
    assert alone.complete
    np.testing.assert_array_equal(alone.layers["runtime_ms"], priced["runtime_ms"])
    assert alone.totals["runtime_ms"] == pred.totals["runtime_ms"]
    assert alone.totals["energy_mj"] == pred.totals["energy_mj"]


def test_strict_raises_naming_the_kinds_and_what_is_fitted(cnn_model):
    with pytest.raises(
        UnknownKindError,
        match=r"'attention' \(1 layer\), 'norm' \(2 layers\).*"
        r"fitted groups are activation, conv2d, linear, pool, trivial",
    ) as err:
        cnn_model.predict_network(attention_net(), strict=True)
    assert err.value.kinds == {"attention": 1, "norm": 2}
    assert err.value.supported == ["activation", "conv2d", "linear", "pool", "trivial"]
    with pytest.raises(UnknownKindError, match="'attention'.*'norm'"):
        cnn_model.predict(attention_net().table())  # an array cannot say what it left out
    with pytest.raises(UnknownKindError, match="'norm'"):
        cnn_model.runtime_.predict_network(attention_net(), strict=True)
