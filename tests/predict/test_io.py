"""The JSON file format: versioned, typed, strict JSON, and loud about mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwml.predict import Eyeriss, ModelFormatError, NeuralPowerRegressor, Paleo, io, load


@pytest.fixture
def paleo_file(make_table, tmp_path):
    t = make_table({"conv2d": 10})
    t["runtime_ms"] = 1e3 * (t["flops"] / 1e12 + t["total_bytes"] / 1e11)
    model = Paleo(1e12, 1e11).fit(t, device="GPU A")
    return model, t, model.save(tmp_path / "paleo.json")


def test_document_layout(paleo_file):
    _, _, path = paleo_file
    doc = json.loads(path.read_text())
    assert doc["format"] == io.FORMAT_NAME and doc["format_version"] == io.FORMAT_VERSION == 2
    assert doc["model_type"] == "paleo" and doc["target"] == "runtime_ms"
    assert (doc["device"], doc["dtype"]) == ("GPU A", "float32")
    assert doc["params"]["peak_flops_per_s"] == 1e12
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_round_trip_identical(paleo_file):
    model, t, path = paleo_file
    back = Paleo.load(path)
    np.testing.assert_array_equal(back.predict(t), model.predict(t))
    assert Paleo.from_dict(model.to_dict()).inv_ppp_ == model.inv_ppp_


def test_other_version_type_or_file_is_refused(paleo_file, tmp_path):
    _, _, path = paleo_file
    doc = json.loads(path.read_text())
    with pytest.raises(ModelFormatError, match="'paleo' model, not a 'neuralpower_regressor'"):
        NeuralPowerRegressor.load(path)
    with pytest.raises(ModelFormatError, match="'paleo' model, not a 'eyeriss'"):
        Eyeriss.from_dict(doc)
    for change, message in [
        ({"format_version": 1}, "format_version 1"),
        ({"model_type": "mystery"}, "unknown model_type 'mystery'"),
        ({"format": "sklearn"}, "not an hwml predictor"),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**doc, **change}))
        with pytest.raises(ModelFormatError, match=message):
            load(bad)
    bad.write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        load(bad)
    del doc["state"]["inv_ppp"]
    bad.write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="damaged"):
        load(bad)


def test_non_finite_numbers_are_not_written():
    with pytest.raises(ValueError, match="non-finite"):
        io._plain({"x": [1.0, float("nan")]}, "doc")


def test_unfitted_models_cannot_be_saved(tmp_path):
    from hwml.predict import NotFittedError

    with pytest.raises(NotFittedError):
        Paleo().save(tmp_path / "x.json")


def test_registry_knows_every_model():
    assert set(io.registered_types()) >= {
        "paleo",
        "neuralpower_regressor",
        "neuralpower",
        "network_calibration",
        "hyperpower_linear",
        "eyeriss",
    }
    with pytest.raises(TypeError, match="already registered"):
        io.register(type("Fake", (), {"model_type": "paleo"}))
