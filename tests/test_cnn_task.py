"""Tests of hwml.tasks (data, the CNN, training) and of HyperPower's live objective
(inference measurement, the linear hardware models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hwml.describe import describe
from hwml.hardware import open_device
from hwml.hyperpower import (
    FEATURE_SETS,
    CNNObjective,
    fit_hardware_models,
    hardware_constraints,
    measure_inference,
)
from hwml.optimize import minimize
from hwml.profile import SweepOptions
from hwml.tasks import (
    STRUCTURAL,
    DatasetNotFoundError,
    build_cnn,
    cnn_space,
    load_data,
    structural_features,
    train_cnn,
)

TINY = {"conv1_filters": 8, "conv2_filters": 8, "kernel_size": 3, "dense_units": 32}
GOOD = {**TINY, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 1e-4}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_space_flags_structural_dimensions() -> None:
    space = cnn_space()
    assert space.structural_names == list(STRUCTURAL)
    assert set(space.names) - set(STRUCTURAL) == {"learning_rate", "momentum", "weight_decay"}
    with pytest.raises(ValueError, match="odd"):
        cnn_space(kernel_sizes=(3, 4))


@pytest.mark.parametrize(
    ("config", "image_size", "batch"),
    [
        (TINY, 32, 1),
        ({"conv1_filters": 7, "conv2_filters": 11, "kernel_size": 5, "dense_units": 13}, 16, 8),
        ({"conv1_filters": 3, "conv2_filters": 2, "kernel_size": 3, "dense_units": 5}, 64, 3),
    ],
)
def test_structural_features_match_describe(config: dict, image_size: int, batch: int) -> None:
    totals = describe(build_cnn(config, image_size), (batch, 1, image_size, image_size)).totals()
    feats = structural_features(pd.DataFrame([config]), image_size=image_size, batch=batch)
    for col in ("params", "macs", "flops", "activation_bytes"):
        assert feats[col].iloc[0] == pytest.approx(totals[col]), col
    assert list(feats.columns[:4]) == list(STRUCTURAL)
    assert set(FEATURE_SETS["derived"]) <= set(feats.columns)


def test_model_output_shape_and_bad_configs() -> None:
    model = build_cnn(TINY, 16)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(ValueError, match="multiple of 4"):
        build_cnn(TINY, 18)
    with pytest.raises(ValueError, match="odd"):
        build_cnn({**TINY, "kernel_size": 4})
    with pytest.raises(KeyError, match="dense_units"):
        build_cnn({k: v for k, v in TINY.items() if k != "dense_units"})


def test_digits_split_is_fixed_and_standardized() -> None:
    data = load_data("digits", image_size=16)
    assert data.x_train.shape == (1437, 1, 16, 16)
    assert data.x_test.shape == (360, 1, 16, 16)
    assert float(data.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-4)
    assert sorted(torch.bincount(data.y_test).tolist())[0] >= 35  # stratified: ~36 per class
    again = load_data("digits", image_size=16)
    assert torch.equal(again.y_test, data.y_test)
    assert load_data("digits", image_size=64).image_size == 64
    with pytest.raises(ValueError, match="unknown dataset"):
        load_data("imagenet")
    with pytest.raises(ValueError, match="multiple of 4"):
        load_data("digits", image_size=30)


def test_local_datasets_are_never_downloaded(tmp_path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DatasetNotFoundError, match="no-such-folder"):
        load_data("mnist", data_root=missing)
    with pytest.raises(DatasetNotFoundError, match="data_root"):
        load_data("cifar10")
    pytest.importorskip("torchvision")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path)):
        load_data("cifar10", data_root=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing was fetched


def test_training_beats_chance_and_repeats() -> None:
    first = train_cnn(GOOD, epochs=2, image_size=16, seed=3)
    assert first["status"] == "ok" and not first["diverged"] and first["reason"] == ""
    assert first["test_error"] < 0.5  # chance is 0.9; this net reaches 0.1-0.25 in 2 epochs
    assert first["epochs_run"] == 2 and first["steps"] == 2 * (1437 // 64)
    assert first["train_time_s"] > 0
    second = train_cnn(GOOD, epochs=2, image_size=16, seed=3)
    assert second["test_error"] == first["test_error"]
    assert second["train_loss"] == first["train_loss"]
    state = torch.random.get_rng_state()
    train_cnn(GOOD, epochs=1, image_size=16, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's generator untouched


def test_diverging_run_is_failed_not_raised() -> None:
    out = train_cnn({**GOOD, "learning_rate": 1e8}, epochs=2, image_size=16)
    assert out["status"] == "failed"
    assert out["diverged"] is True
    assert math.isnan(out["test_error"])
    assert "diverged" in out["reason"]
    assert out["epochs_run"] == 1
    with pytest.raises(ValueError, match="learning_rate"):
        train_cnn({**GOOD, "learning_rate": float("nan")}, epochs=1, image_size=16)


def test_measure_inference_without_energy_counter() -> None:
    device = open_device("cpu")
    opts = SweepOptions(budget_ms=5.0, warmup=1, progress=False)
    row = measure_inference(TINY, device, batch=4, image_size=16, opts=opts)
    assert row["status"] == "no_power"
    assert row["runtime_ms"] > 0
    for key in ("power_w", "energy_mj", "energy_per_image_mj", "peak_mem_bytes"):
        assert math.isnan(row[key]), key


def _synthetic_structures(n: int = 40, seed: int = 0) -> pd.DataFrame:
    space = cnn_space()
    z = space.structural(space.sample(n, seed))
    feats = structural_features(z, image_size=32, batch=256)
    rng = np.random.default_rng(seed)
    table = feats.assign(
        image_size=32,
        batch=256,
        in_channels=1,
        power_w=120 + 4e-10 * feats["flops"] + rng.normal(0, 1, n),
        peak_mem_bytes=2e7 + 4 * feats["params"] + 1.5 * feats["activation_bytes"],
        status="ok",
    )
    table.loc[0, "status"] = "oom"
    table.loc[0, "power_w"] = 1e9  # an unusable row must not be fitted
    return table


def test_hardware_models_and_constraints() -> None:
    table = _synthetic_structures()
    models = fit_hardware_models(table)
    z = table.loc[1:, list(STRUCTURAL)]
    assert np.allclose(models["power_w"](z), table.loc[1:, "power_w"], atol=5.0)
    assert np.allclose(models["mem_bytes"](z), table.loc[1:, "peak_mem_bytes"], rtol=1e-6)
    constraints = hardware_constraints(models, power_budget_w=300.0, mem_budget_bytes=5e8)
    assert [(c.name, c.budget, c.measured) for c in constraints] == [
        ("power_w", 300.0, "power_w"),
        ("mem_bytes", 5e8, "peak_mem_bytes"),
    ]
    assert hardware_constraints(models, power_budget_w=300.0)[0].name == "power_w"
    mean, std = fit_hardware_models(table, features="z", return_std=True)["power_w"](z)
    assert mean.shape == std.shape == (len(z),) and np.all(std > 0)
    with pytest.raises(ValueError, match="power"):
        fit_hardware_models(table.assign(power_w=np.nan))
    with pytest.raises(ValueError, match="unknown feature set"):
        fit_hardware_models(table, features="cubic")


def test_cnn_objective_drives_minimize(tmp_path) -> None:
    space = cnn_space(filters=(4, 8), dense_units=(8, 16))
    objective = CNNObjective("cpu", epochs=1, image_size=16, measure=True, inference_batch=4)
    history = minimize(
        objective,
        space,
        method="random",
        n_evals=2,
        n_init=2,
        seed=0,
        history_path=tmp_path / "h.jsonl",
    )
    assert len(history) == 2
    ok = history[history["status"] == "ok"]
    assert len(ok) >= 1 and ok["objective"].between(0, 1).all()
    assert (history["eval_time_s"] > 0).all()
    result = objective(
        {**TINY, **{k: GOOD[k] for k in ("learning_rate", "momentum", "weight_decay")}}
    )
    assert result["objective"] == result["test_error"]
    assert result["measure_status"] == "no_power" and math.isnan(result["power_w"])


def test_measure_inference_peak_memory_is_this_networks_own(monkeypatch) -> None:
    """Peak memory counts from what was allocated before the network and ignores the
    CUDA graph of the power measurement (a fake device stands in for a GPU's counters)."""
    from hwml.hyperpower import objective as obj

    device = open_device("cpu")
    counters = {"allocated": 7e8, "peak": 9e8}  # 7e8: left over by earlier measurements
    resets = []
    device.allocated_memory_bytes = lambda: counters["allocated"]
    device.peak_memory_bytes = lambda: counters["peak"]
    device.reset_peak_memory = lambda: resets.append(counters["peak"])
    real = obj.measure_callable

    def graph_measurement(fn, dev, opts):
        counters["peak"] += 5e8  # the CUDA graph's pool, allocated during the measurement
        return real(fn, dev, opts)

    monkeypatch.setattr(obj, "measure_callable", graph_measurement)
    monkeypatch.setattr("hwml.profile.measure._counts_peak", lambda device: True)
    opts = SweepOptions(budget_ms=5.0, warmup=1, progress=False)
    row = measure_inference(TINY, device, batch=4, image_size=16, opts=opts)
    assert row["peak_mem_bytes"] == pytest.approx(2e8)
    assert len(resets) == 2  # before building the network, after the warm-up pass
