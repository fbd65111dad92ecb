"""Cached layer models: the JSON read back predicts exactly what the fit did; any input change misses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import hwml
from hwml.describe import Layer
from hwml.predict import model_cache
from hwml.predict.evaluate import fit_layer_models
from hwml.predict.model_cache import cache_key, fit_layer_models_cached
from tests.predict.conftest import layer_table

FIT = {"dtype": "float32", "degrees": (1, 2), "cv": 3, "seed": 0, "paleo_peak": "tf32"}
PROV = {
    "gpu_name": "GPU X",
    "peak_flops_per_s": {"float32": 1e13, "tf32": 1e14},
    "copy_bandwidth_bytes_per_s": 1e12,
}


def _table(seed: int, n: int = 24) -> pd.DataFrame:
    t = layer_table({"conv2d": n, "linear": n, "add": n}, seed=seed)
    noise = np.random.default_rng(seed).lognormal(0.0, 0.1, len(t))
    t["runtime_ms"] = (0.01 + 1e-12 * t["flops"] + 1e-9 * t["total_bytes"]) * noise
    t["power_w"] = (150.0 + 1e-8 * t["total_bytes"]) * noise[::-1]
    return t


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _table(3)


@pytest.fixture(scope="module")
def cached(train, tmp_path_factory):
    """The cache folder after one miss, and what the miss returned."""
    folder = tmp_path_factory.mktemp("models")
    return folder, fit_layer_models_cached(train, PROV, cache_dir=folder, **FIT)


def _same_predictions(a, b, table: pd.DataFrame) -> None:
    """Every output of the two models, bit for bit, on a table and on a network."""
    pa, pb = a.predict(table), b.predict(table)
    assert pa.dtype == pb.dtype and pa.tobytes() == pb.tobytes()
    na = a.predict_network(table)
    nb = b.predict_network(table)
    pd.testing.assert_frame_equal(na.layers, nb.layers, check_exact=True)
    assert na.totals == nb.totals


def test_a_miss_fits_and_writes_one_json_file(cached, train):
    folder, fit = cached
    assert not fit.loaded and fit.fit_s > 0
    assert list(folder.iterdir()) == [fit.path]  # no temporary file left behind
    assert fit.path.name == f"layer-models-{cache_key(train, PROV, **FIT)}.json"
    doc = json.loads(fit.path.read_text())
    assert doc["format"] == model_cache.CACHE_FORMAT and doc["fit_s"] == fit.fit_s
    assert set(doc["models"]) == {"Paleo", "NeuralPower"}
    assert doc["inputs"]["params"]["degrees"] == [1, 2]
    assert doc["inputs"]["hwml_version"] == hwml.__version__


def test_a_hit_loads_models_that_predict_exactly_the_same(cached, train):
    folder, fitted = cached
    loaded = fit_layer_models_cached(train.copy(), dict(PROV), cache_dir=str(folder), **FIT)
    assert loaded.loaded and loaded.path == fitted.path
    assert loaded.fit_s == fitted.fit_s  # the time of the fit, not of the load
    assert list(loaded.models) == list(fitted.models) == ["Paleo", "NeuralPower"]
    held_out = _table(11, n=10)
    for name in fitted.models:
        _same_predictions(fitted.models[name], loaded.models[name], held_out)
    concat = Layer.concat([(2, 8, 4, 4), (2, 8, 4, 4)])
    for name in fitted.models:
        a = fitted.models[name].predict_layers([concat])
        assert a.tobytes() == loaded.models[name].predict_layers([concat]).tobytes()
    # and the fit itself is the plain fit: the cache adds nothing to it
    plain = fit_layer_models(train, PROV, **FIT)
    for name in plain:
        _same_predictions(plain[name], fitted.models[name], held_out)


def test_no_cache_folder_fits_and_writes_nothing(train, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for off in (None, ""):
        fit = fit_layer_models_cached(train, PROV, cache_dir=off, **{**FIT, "degrees": (1,)})
        assert not fit.loaded and fit.path is None and fit.fit_s > 0
    assert list(tmp_path.iterdir()) == []


def test_every_input_changes_the_key(train, monkeypatch):
    base = cache_key(train, PROV, **FIT)
    assert cache_key(train.copy(), dict(PROV), **FIT) == base
    changed = {
        "dtype": "float16",
        "degrees": (1, 2, 3),
        "cv": 4,
        "seed": 1,
        "paleo_peak": "float32",
        "kind_groups": {"concat": "conv2d"},
        "device": "GPU Y",
    }
    keys = {base}
    for name, value in changed.items():
        keys.add(cache_key(train, PROV, **{**FIT, name: value}))
    keys.add(cache_key(train, PROV, **FIT, key_extra={"dataset": "x"}))
    keys.add(cache_key(train, {**PROV, "copy_bandwidth_bytes_per_s": 2e12}, **FIT))
    nudged = train.copy()
    nudged.loc[nudged.index[5], "runtime_ms"] = np.nextafter(nudged["runtime_ms"].iloc[5], 1.0)
    keys.add(cache_key(nudged, PROV, **FIT))
    keys.add(cache_key(train.iloc[1:], PROV, **FIT))
    keys.add(cache_key(train.drop(columns=["power_w"]), PROV, **FIT))
    keys.add(cache_key(train.set_axis(train.index + 1), PROV, **FIT))
    assert len(keys) == 1 + len(changed) + 6
    monkeypatch.setattr(hwml, "__version__", "999.0")
    assert cache_key(train, PROV, **FIT) not in keys
    monkeypatch.undo()
    monkeypatch.setattr(model_cache, "_source_digest", lambda: "another source")
    assert cache_key(train, PROV, **FIT) not in keys
    monkeypatch.setattr(model_cache, "_library_versions", lambda: {"numpy": "0"})
    assert cache_key(train, PROV, **FIT) not in keys


def test_an_unreadable_file_is_refitted_and_replaced(train, tmp_path):
    params = {**FIT, "degrees": (1,)}
    first = fit_layer_models_cached(train, PROV, cache_dir=tmp_path, **params)
    first.path.write_text(first.path.read_text()[:200])  # cut short
    with pytest.warns(UserWarning, match="refitting"):
        again = fit_layer_models_cached(train, PROV, cache_dir=tmp_path, **params)
    assert not again.loaded and again.path == first.path
    assert fit_layer_models_cached(train, PROV, cache_dir=tmp_path, **params).loaded
    doc = json.loads(first.path.read_text())
    doc["key"] = "0" * 64  # a file under the wrong name is never trusted
    first.path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="not"):
        assert not fit_layer_models_cached(train, PROV, cache_dir=tmp_path, **params).loaded


def test_a_failed_write_leaves_no_file(train, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_cache.json, "dump", broken)
    with pytest.raises(OSError, match="disk full"):
        fit_layer_models_cached(train, PROV, cache_dir=tmp_path / "m", **{**FIT, "degrees": (1,)})
    assert list((tmp_path / "m").iterdir()) == []


def test_pipeline_fit_is_cached_and_read_back(tmp_path) -> None:
    from hwml import measurements
    from hwml.predict.model_cache import fit_pipeline_cached

    gpu = measurements.load("nvidia-h200")
    nets = gpu.network_set
    few = nets[nets["network"].isin(["cells:0", "cells:1", "cells:2"])]
    first = fit_pipeline_cached(few, gpu.provenance, cache_dir=tmp_path, device="NVIDIA H200")
    assert not first.loaded and first.path is not None and first.path.exists()
    assert first.networks == 3 and set(first.model.held_out_error_pct) >= {"runtime"}
    again = fit_pipeline_cached(few, gpu.provenance, cache_dir=tmp_path, device="NVIDIA H200")
    assert again.loaded and again.model == first.model and again.fit_s == first.fit_s
    other = fit_pipeline_cached(
        few.iloc[:-1], gpu.provenance, cache_dir=tmp_path, device="NVIDIA H200"
    )
    assert not other.loaded and other.path != first.path
    first.path.write_text("{}")
    with pytest.warns(UserWarning, match="refitting"):
        assert not fit_pipeline_cached(
            few, gpu.provenance, cache_dir=tmp_path, device="NVIDIA H200"
        ).loaded
