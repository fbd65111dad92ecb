"""Tests of hwml.optimize.candidates."""

from __future__ import annotations

import numpy as np

from hwml.optimize import Constraint, Integer, Real, Space
from hwml.optimize.candidates import (
    Observations,
    local_candidates,
    not_evaluated,
    random_candidates,
)
from hwml.optimize.constraints import predict_constraints


def test_not_evaluated() -> None:
    done = np.array([[0.1, 0.2], [0.5, 0.5]])
    pts = np.array([[0.1, 0.2], [0.1, 0.2000001], [0.5, 0.5]])
    assert not_evaluated(pts, done).tolist() == [False, True, False]
    assert not_evaluated(pts, np.empty((0, 2))).all()


def test_random_candidates_filtered_and_fresh() -> None:
    space = Space([Integer("a", 0, 9, structural=True), Real("b", 0, 1)])
    c = Constraint("power_w", 2.0, lambda z: z["a"].to_numpy() * 1.0)

    def feasibility(points: np.ndarray):
        return predict_constraints([c], space.structural(space.decode(points)))

    obs = Observations(space.encode({"a": 1, "b": 0.5}), np.array([1.0]), np.array([True]))
    cands = random_candidates(space, obs, np.random.default_rng(0), 200, feasibility)
    assert len(cands) == 200
    assert set(space.decode(cands)["a"]) <= {0, 1, 2}
    assert not_evaluated(cands, obs.points).all()


def test_local_candidates_near_centres() -> None:
    space = Space([Real("a", 0, 1), Real("b", 0, 1)])
    obs = Observations(np.array([[0.5, 0.5]]), np.array([0.0]), np.array([True]))
    near = local_candidates(space, obs, np.random.default_rng(0), obs.points, 100, (0.01,))
    assert len(near) == 100 and np.max(np.abs(near - 0.5)) < 0.06
    pool = np.array([[0.5, 0.5], [0.52, 0.5], [0.9, 0.9], [0.1, 0.1]])
    nearest = local_candidates(space, obs, np.random.default_rng(0), obs.points, 1, (0.01,), pool)
    np.testing.assert_allclose(nearest, [[0.52, 0.5]])
