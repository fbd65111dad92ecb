"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwml.predict import metrics

Y = [1.0, 2.0, 4.0]
P = [1.1, 1.8, 4.0]  # relative errors +10%, -10%, 0


def test_rmspe_by_hand():
    # sqrt((0.1^2 + 0.1^2 + 0) / 3) = sqrt(0.02 / 3) = 0.0816497
    assert metrics.rmspe(Y, P) == pytest.approx(8.16497, rel=1e-5)


def test_rmse_by_hand():
    # sqrt((0.1^2 + 0.2^2 + 0) / 3) = sqrt(0.05 / 3)
    assert metrics.rmse(Y, P) == pytest.approx(math.sqrt(0.05 / 3))


def test_mape_by_hand():
    assert metrics.mape(Y, P) == pytest.approx(100 * 0.2 / 3)


def test_within_counts_the_boundary():
    assert metrics.within(Y, P, 0.10) == pytest.approx(1.0)
    assert metrics.within(Y, P, 0.05) == pytest.approx(1 / 3)


def test_spearman_ranks():
    assert metrics.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert metrics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(metrics.spearman([1, 2, 3], [5, 5, 5]))


def test_summary_keys_and_values():
    s = metrics.summary(Y, P)
    assert s["n"] == 3
    assert s["rmspe_pct"] == pytest.approx(metrics.rmspe(Y, P))
    assert s["within_10pct"] == pytest.approx(1.0)
    assert set(s) == {"n", "rmspe_pct", "rmse", "mape_pct", "spearman", "within_10pct"}


@pytest.mark.parametrize("fn", [metrics.rmspe, metrics.rmse, metrics.mape, metrics.within])
def test_refuses_nan_and_mismatched_lengths(fn):
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="values"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no values"):
        fn([], [])


def test_percentage_metrics_refuse_zero_truth():
    with pytest.raises(ValueError, match="0"):
        metrics.rmspe([0.0, 1.0], [1.0, 1.0])
    assert metrics.rmse([0.0, 1.0], [0.0, 1.0]) == 0.0
