"""Our Pareto front, non-dominated sorting and hypervolume agree with pymoo's.

Written before these functions became wrappers around pymoo, and passed on the hand-written
versions; it now guards the wrappers. Point sets: random 2-D and 3-D sets over several seeds,
with ties (a small integer grid), exact duplicates, rows holding NaN, and magnitudes from
1e-3 to 1e3.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from hwml.optimize import (
    crowding_distance,
    hypervolume_2d,
    nondominated_ranks,
    pareto_front,
)

SEEDS = range(12)


def _points(seed: int, m: int) -> np.ndarray:
    """A random set of ``m``-objective points; its kind (ties, duplicates, scale) by seed."""
    rng = np.random.default_rng(1000 * m + seed)
    n = int(rng.integers(1, 80))
    kind = seed % 4
    if kind == 0:  # many ties in every objective, and exact duplicates
        p = rng.integers(0, 5, size=(n, m)).astype(float)
    elif kind == 1:  # continuous, with some rows repeated
        p = rng.random((n, m))
        p = np.vstack([p, p[rng.integers(0, n, size=1 + n // 4)]])
    elif kind == 2:  # spread over orders of magnitude
        p = 10.0 ** rng.uniform(-3, 3, size=(n, m))
    else:  # a trade-off curve with noise (most points near the front), ties in one objective
        x = np.round(rng.random(n), 1)
        p = np.column_stack([x, 1 - x + 0.05 * rng.random(n), *rng.random((m - 2, n))])
    return rng.permutation(p)


def _with_nan(p: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bad = p[: 1 + len(p) // 10].copy()
    bad[np.arange(len(bad)), rng.integers(0, p.shape[1], size=len(bad))] = np.nan
    return rng.permutation(np.vstack([p, bad]))


def _pymoo_ranks(p: np.ndarray) -> np.ndarray:
    """pymoo's fronts as ranks; -1 for rows holding NaN (which pymoo does not take)."""
    ranks = np.full(len(p), -1)
    finite = np.flatnonzero(np.all(np.isfinite(p), axis=1))
    if len(finite):
        _, rank = NonDominatedSorting().do(p[finite], return_rank=True)
        ranks[finite] = rank
    return ranks


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_nondominated_ranks_match_pymoo(seed: int, m: int) -> None:
    p = _with_nan(_points(seed, m), seed)
    assert nondominated_ranks(p).tolist() == _pymoo_ranks(p).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_pareto_front_is_pymoos_first_front(seed: int) -> None:
    p = _with_nan(_points(seed, 2), seed)
    assert pareto_front(p).tolist() == (_pymoo_ranks(p) == 0).tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_hypervolume_2d_matches_pymoo(seed: int) -> None:
    p = _points(seed, 2)
    rng = np.random.default_rng(seed)
    references = [
        p.max(axis=0) * 1.1 + 0.1,  # every point inside
        np.quantile(p, 0.7, axis=0),  # some points outside, some on its edges
        p[rng.integers(len(p))],  # a reference equal to one of the points
        p.min(axis=0),  # nothing strictly inside
    ]
    for ref in references:
        inside = p[np.all(p < ref, axis=1)]
        theirs = HV(ref_point=ref)(inside) if len(inside) else 0.0
        assert hypervolume_2d(p, ref) == pytest.approx(theirs, rel=1e-12, abs=0.0)
        assert hypervolume_2d(_with_nan(p, seed), ref) == pytest.approx(theirs, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", SEEDS)
def test_crowding_distance_is_m_times_pymoos(seed: int, m: int) -> None:
    """Ours (Deb et al.'s sum over objectives) is pymoo's mean over objectives times ``m``.

    Compared on sets without duplicate rows, on the fronts where every objective varies:
    pymoo gives a constant objective's extremes 0 instead of ``inf``, and its survival
    operator takes duplicates out first. Our version stays (see its docstring).
    """
    p = np.unique(_points(seed, m), axis=0)
    ranks = nondominated_ranks(p)
    ours = crowding_distance(p, ranks)
    compared = 0
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        front = p[members]
        if np.any(np.ptp(front, axis=0) == 0):
            continue
        theirs = m * calc_crowding_distance(front)
        np.testing.assert_allclose(ours[members], theirs, rtol=1e-12)
        compared += 1
    assert compared or seed % 4 == 0  # the integer-grid sets may have none
