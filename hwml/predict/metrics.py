"""Error metrics of runtime, power and energy predictions.

Definitions, for measured values ``y_i`` and predictions ``p_i``, ``i = 1..n``:

* **RMSPE** (root mean squared percentage error, %): ``100 * sqrt(mean(((p - y) / y)^2))``.
  The survey's Table 1 metric; it weighs a 10% miss on a 20 us layer like a 10% miss on a
  20 ms layer.
* **RMSE** (root mean squared error, in the unit of ``y``): ``sqrt(mean((p - y)^2))``.
  Dominated by the largest values (the survey reports it in ms).
* **MAPE** (mean absolute percentage error, %): ``100 * mean(|p - y| / |y|)``.
* **Spearman rho**: rank correlation of ``p`` and ``y`` (1 = same order). What matters
  when a predictor is used to *rank* candidate networks, as in a search.
* **Within +-tol**: fraction of predictions with ``|p - y| / |y| <= tol`` (nn-Meter
  reports this for ``tol = 0.10``).

Every function takes array-likes of equal length, refuses NaN/infinite entries and empty
input (a metric over silently dropped rows misleads), and the percentage metrics refuse
a zero measured value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

__all__ = ["rmspe", "rmse", "mape", "spearman", "within", "summary"]

ArrayLike = Sequence[float] | np.ndarray


def _pair(y_true: ArrayLike, y_pred: ArrayLike, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).reshape(-1)
    p = np.asarray(y_pred, dtype=float).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_pred has {p.size}")
    if y.size == 0:
        raise ValueError("no values to score")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise ValueError("NaN or infinite values: drop unmeasured rows before scoring")
    if relative and np.any(y == 0):
        raise ValueError("a measured value is 0: percentage errors are undefined")
    return y, p


def rmspe(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared percentage error, in percent."""
    y, p = _pair(y_true, y_pred, relative=True)
    return float(100.0 * np.sqrt(np.mean(((p - y) / y) ** 2)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error, in the unit of the inputs."""
    y, p = _pair(y_true, y_pred, relative=False)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error, in percent."""
    y, p = _pair(y_true, y_pred, relative=True)
    return float(100.0 * np.mean(np.abs(p - y) / np.abs(y)))


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (NaN when either side is constant or n < 2)."""
    y, p = _pair(y_true, y_pred, relative=False)
    if y.size < 2 or np.all(y == y[0]) or np.all(p == p[0]):
        return math.nan
    return float(spearmanr(y, p).statistic)


def within(y_true: ArrayLike, y_pred: ArrayLike, tol: float = 0.10) -> float:
    """Fraction (0..1) of predictions within ``tol`` relative error (0.10 = +-10%)."""
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol}")
    y, p = _pair(y_true, y_pred, relative=True)
    return float(np.mean(np.abs(p - y) / np.abs(y) <= tol + 1e-12))


def summary(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All metrics at once.

    Returns:
        ``n``, ``rmspe_pct``, ``rmse``, ``mape_pct``, ``spearman``, ``within_10pct``
        (fraction 0..1).
    """
    y, p = _pair(y_true, y_pred, relative=True)
    return {
        "n": float(y.size),
        "rmspe_pct": rmspe(y, p),
        "rmse": rmse(y, p),
        "mape_pct": mape(y, p),
        "spearman": spearman(y, p),
        "within_10pct": within(y, p, 0.10),
    }
