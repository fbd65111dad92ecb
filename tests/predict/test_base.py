"""Shared estimator machinery: usable rows, columns, layer arrays, device checks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hwml import zoo
from hwml.predict import (
    DeviceMismatchError,
    DeviceMismatchWarning,
    MissingColumnsError,
    NotFittedError,
    Paleo,
    usable_rows,
)
from hwml.predict.base import KIND_GROUPS, LAYER_COLUMNS, LayerBatch, require_columns


def test_every_described_kind_has_a_group_except_other():
    from hwml.describe import KINDS

    assert set(KIND_GROUPS) == set(KINDS) - {"other"}


def test_usable_rows_filters_status_and_nan():
    t = pd.DataFrame(
        {
            "runtime_ms": [1.0, 2.0, np.nan, 3.0, 4.0],
            "power_w": [10.0, np.nan, 5.0, 7.0, 8.0],
            "status": ["ok", "no_power", "oom", "error", "ok"],
        }
    )
    rows, dropped = usable_rows(t, "runtime_ms")
    assert list(rows.runtime_ms) == [1.0, 2.0, 4.0] and dropped == 2
    rows, dropped = usable_rows(t, "power_w")
    assert list(rows.power_w) == [10.0, 8.0] and dropped == 3


def test_require_columns_names_all_missing():
    with pytest.raises(MissingColumnsError, match="'b', 'c'") as err:
        require_columns(pd.DataFrame({"a": [1]}), ["a", "b", "c"], "fit")
    assert err.value.missing == ["b", "c"]
    with pytest.raises(TypeError, match="DataFrame"):
        require_columns([1, 2], ["a"], "fit")


def test_layer_batch_from_layers_equals_from_table():
    net = zoo.describe_net("resnet18", 2, weights=False)
    a = LayerBatch.from_layers(net.layers)
    b = LayerBatch.from_table(net.table())
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.kinds, b.kinds)
    np.testing.assert_array_equal(a.names, b.names)
    assert a.values.shape == (len(net), len(LAYER_COLUMNS))
    assert a.column("batch")[0] == 2


@pytest.fixture
def model(make_table):
    t = make_table({"conv2d": 10})
    t["runtime_ms"] = 1e3 * (t["flops"] / 1e12 + t["total_bytes"] / 1e11)
    return Paleo(1e12, 1e11).fit(t, device="GPU A"), t


def test_device_check_modes(model):
    m, t = model
    with pytest.warns(DeviceMismatchWarning, match="GPU B"):
        m.predict(t, device="GPU B")
    with pytest.raises(DeviceMismatchError, match="GPU B"):
        m.set_params(device_check="error").predict(t, device="GPU B")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.set_params(device_check="ignore").predict(t, device="GPU B")
        m.set_params(device_check="error").predict(t, device="GPU A")
        m.predict(t)  # no device named: nothing to compare


def test_device_from_gpu_name_column_and_bad_option(make_table):
    t = make_table({"conv2d": 10}).assign(runtime_ms=1.0, gpu_name="GPU C")
    assert Paleo().fit(t).device_ == "GPU C"
    with pytest.raises(ValueError, match="device_check"):
        Paleo(device_check="sometimes").fit(t)


def test_not_fitted():
    with pytest.raises(NotFittedError, match="fit"):
        Paleo().predict(pd.DataFrame())


# ---------------------------------------------------------------- layers a model cannot price
def test_new_kinds_are_groups_of_their_own_and_data_movement_is_trivial():
    from hwml.predict.base import TRIVIAL_GROUP

    for kind in ("norm", "matmul", "attention", "softmax", "reduce"):
        assert KIND_GROUPS[kind] == kind
    assert KIND_GROUPS["flatten"] == TRIVIAL_GROUP and "other" not in KIND_GROUPS


def _with_other(batch: int = 2):
    """conv, relu, then an operation hwml cannot describe (kind other), then a linear layer."""
    import dataclasses

    from hwml.describe import Layer, Network

    conv = dataclasses.replace(Layer.conv2d(batch, 3, 8, 8, 4, 3, padding=1), name="conv")
    other = Layer(
        kind="other", in_shapes=(conv.out_shape,), out_shape=(batch, 256), op="LSTM", name="rnn"
    )
    return Network(
        "with_other",
        (batch, 3, 8, 8),
        [conv, Layer.activation("relu", conv.out_shape), other, Layer.linear(batch, 256, 10)],
    )


def test_kind_other_is_left_out_with_a_warning_or_raises_when_strict(make_table):
    from hwml.predict import LeftOutLayersWarning, UnknownKindError

    t = make_table({"conv2d": 10, "activation": 10, "linear": 10})
    t["runtime_ms"] = 1e3 * (t["flops"] / 1e12 + t["total_bytes"] / 1e11)
    model = Paleo(1e12, 1e11).fit(t)
    net = _with_other()
    with pytest.warns(LeftOutLayersWarning, match=r"left out 1 of 4 layers.*'other' \(1 layer\)"):
        pred = model.predict_network(net)
    assert list(pred.layers["left_out"]) == [False, False, True, False]
    assert np.isnan(pred.layers["runtime_ms"].iloc[2])
    assert pred.totals["runtime_ms"] == pytest.approx(
        pred.layers["runtime_ms"].iloc[[0, 1, 3]].sum()
    )
    assert pred.totals["left_out_layers"] == 1 and dict(pred.left_out) == {"other": 1}
    with pytest.raises(UnknownKindError, match=r"'other'.*rnn.*never modelled") as err:
        model.predict_network(net, strict=True)
    assert err.value.kinds == {"other": 1} and "conv2d" in err.value.supported
    with pytest.raises(UnknownKindError, match="'other'"):  # a bare array cannot say it
        model.predict_layers(net)


def test_a_complete_prediction_warns_nothing_and_says_so(model):
    from hwml.predict import LeftOutLayersWarning
    from tests.predict.conftest import toy_net

    m, _ = model  # fitted on conv2d only
    net = toy_net()
    with pytest.warns(
        LeftOutLayersWarning, match=r"'activation' \(2 layers\), 'linear' \(1 layer\)"
    ):
        partial = m.predict_network(net)
    assert not partial.complete and partial.totals["left_out_layers"] == 4
    conv_only = type(net)("conv", net.input_shape, [net.layers[0], net.layers[3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = m.predict_network(conv_only)
    assert full.complete and full.totals["left_out_layers"] == 0
    assert not full.layers["left_out"].any()
    assert full.layers["runtime_ms"].iloc[0] == partial.layers["runtime_ms"].iloc[0]
