"""Tests of hwml.optimize.bench (runs it small; timing itself is not asserted)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import Constraint, Integer, Space
from hwml.optimize.bench import benchmark_overhead, main, proposal_overhead
from hwml.optimize.bo import BOSettings


def test_benchmark_reports_numbers(capsys) -> None:
    result = benchmark_overhead(
        n_obs=15, repeats=1, settings=BOSettings(n_restarts=1, n_random=200, n_local=20)
    )
    assert result["n_obs"] == 15 and result["median_s"] > 0 and result["gp_fit_median_s"] > 0
    assert result["n_candidates"] > 200
    main(["--n-obs", "12", "--repeats", "1"])
    assert json.loads(capsys.readouterr().out)["n_obs"] == 12


def test_proposal_overhead_on_a_pool() -> None:
    space = Space([Integer("a", 0, 9, structural=True), Integer("b", 0, 9)])
    a, b = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    pool = pd.DataFrame({"a": a.ravel(), "b": b.ravel()})
    observed = pool.sample(20, random_state=0)
    values = (observed["a"] - 2.0) ** 2 + observed["b"].to_numpy(float)
    values.iloc[0] = np.nan  # a failed evaluation is allowed
    cap = [Constraint("power_w", 4.0, lambda z: z["a"].to_numpy(float))]
    settings = BOSettings(n_restarts=1)
    result = proposal_overhead(
        space, observed, values, cap, candidates=pool, settings=settings, repeats=2
    )
    assert (
        result["n_obs"] == 20 and result["median_s"] > 0 and result["max_s"] >= result["median_s"]
    )
    assert result["n_candidates"] > 0
    plain = proposal_overhead(space, observed, values, kind="ei", settings=settings, repeats=1)
    assert plain["n_candidates"] > 0
    with pytest.raises(ValueError, match="values"):
        proposal_overhead(space, observed, values[:3], settings=settings)
    with pytest.raises(ValueError, match="finite"):
        proposal_overhead(space, observed, np.full(20, np.nan), settings=settings)
