"""Tests of hwml.optimize.seeding."""

from __future__ import annotations

import random
import sys
import types

import numpy as np
import pytest

from hwml.optimize.seeding import check_seed, derive_seed, make_rng, seed_everything


def test_seed_everything_repeats_random_and_numpy() -> None:
    seed_everything(11)
    first = (random.random(), np.random.rand(3))
    seed_everything(11)
    second = (random.random(), np.random.rand(3))
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    seed_everything(12)
    assert random.random() != first[0]


def test_seed_everything_seeds_torch_only_if_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    fake = types.SimpleNamespace(manual_seed=seen.append)
    monkeypatch.setitem(sys.modules, "torch", fake)
    seed_everything(5)
    assert seen == [5]
    monkeypatch.delitem(sys.modules, "torch")
    seed_everything(6)  # must not import torch
    assert "torch" not in sys.modules
    assert seen == [5]


def test_derive_seed_is_stable_and_spreads() -> None:
    assert derive_seed(3, 1) == derive_seed(3, 1)
    seeds = {derive_seed(3, i) for i in range(100)} | {derive_seed(4, 1)}
    assert len(seeds) == 101
    assert all(0 <= s < 2**32 for s in seeds)


def test_check_seed_and_make_rng() -> None:
    assert check_seed(np.int64(4)) == 4
    with pytest.raises(TypeError, match="my_seed must be an int"):
        check_seed(2.0, "my_seed")
    with pytest.raises(TypeError):
        check_seed(False)
    rng = np.random.default_rng(0)
    assert make_rng(rng) is rng
    assert make_rng(9).random() == np.random.default_rng(9).random()
