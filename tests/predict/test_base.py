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
