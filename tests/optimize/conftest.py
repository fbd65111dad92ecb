"""Fixtures: Branin under two linear 'hardware' budgets, a small discrete grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import BOSettings, Constraint, Integer, Real, SearchSettings, Space

from .problems import mem_bytes, power_w


@pytest.fixture
def branin_space() -> Space:
    return Space([Real("x1", -5.0, 10.0, structural=True), Real("x2", 0.0, 15.0, structural=True)])


@pytest.fixture
def branin_constraints() -> list[Constraint]:
    return [
        Constraint("power_w", 60.0, lambda z: power_w(z["x1"].to_numpy(), z["x2"].to_numpy())),
        Constraint("mem_bytes", 1.2e8, lambda z: mem_bytes(z["x1"].to_numpy(), z["x2"].to_numpy())),
    ]


@pytest.fixture
def fast_settings() -> SearchSettings:
    """Cheaper BO so that many seeds fit in the test time budget."""
    return SearchSettings(
        bo=BOSettings(n_restarts=1, n_random=500, n_local=50), n_feasibility_check=2000
    )


@pytest.fixture
def grid_space() -> Space:
    return Space([Integer("a", 0, 4, structural=True), Integer("b", 0, 4)])


@pytest.fixture
def grid_table(grid_space: Space) -> pd.DataFrame:
    """All 25 configurations of ``grid_space`` with a bowl-shaped objective."""
    a, b = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    frame = pd.DataFrame({"a": a.ravel(), "b": b.ravel()})
    frame["objective"] = (frame["a"] - 3) ** 2 + (frame["b"] - 1) ** 2 + 0.5
    frame["power_w"] = 10.0 * frame["a"]
    frame["train_s"] = 1.0 + frame["b"]
    return frame
