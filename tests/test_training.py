"""Tests of hwml.tasks.training: any classifier trained with a fixed seed, and tested."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hwml.tasks import load_data, train_module


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def test_train_module_learns_digits_reproducibly() -> None:
    data = load_data("digits", image_size=8)
    state = torch.random.get_rng_state()
    a = train_module(_mlp, data, epochs=3, learning_rate=0.05, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's state untouched
    b = train_module(_mlp, data, epochs=3, learning_rate=0.05, seed=1)
    assert a["status"] == "ok" and a["test_error"] < 0.5
    assert a["test_error"] == b["test_error"] and a["train_loss"] == b["train_loss"]
    assert a["params"] == 64 * 32 + 32 + 32 * 10 + 10
    assert a["steps"] == 3 * (len(data.y_train) // 64) and a["epochs_run"] == 3


def test_a_diverging_run_is_reported_not_raised() -> None:
    data = load_data("digits", image_size=8)
    out = train_module(_mlp, data, epochs=2, learning_rate=1e6, momentum=0.9)
    assert out["status"] == "failed" and out["diverged"] and math.isnan(out["test_error"])


def test_bad_settings_are_refused() -> None:
    data = load_data("digits", image_size=8)
    with pytest.raises(ValueError, match="learning_rate"):
        train_module(_mlp, data, learning_rate=-1.0)
    with pytest.raises(ValueError, match="epochs"):
        train_module(_mlp, data, epochs=0)
