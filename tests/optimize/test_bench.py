"""Tests of hwml.optimize.bench (runs it small; timing itself is not asserted)."""

from __future__ import annotations

import json

from hwml.optimize.bench import benchmark_overhead, main
from hwml.optimize.bo import BOSettings


def test_benchmark_reports_numbers(capsys) -> None:
    result = benchmark_overhead(
        n_obs=15, repeats=1, settings=BOSettings(n_restarts=1, n_random=200, n_local=20)
    )
    assert result["n_obs"] == 15 and result["median_s"] > 0 and result["gp_fit_median_s"] > 0
    assert result["n_candidates"] > 200
    main(["--n-obs", "12", "--repeats", "1"])
    assert json.loads(capsys.readouterr().out)["n_obs"] == 12
