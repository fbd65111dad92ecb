"""Tests of hwml.optimize.analysis on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize.analysis import (
    best_so_far,
    evals_to_reach,
    hypervolume_2d,
    hypervolume_curve,
    mean_band,
    on_grid,
    pareto_front,
    pareto_rows,
)


def _history(method: str, seed: int, objective, feasible, status, times=None) -> pd.DataFrame:
    n = len(objective)
    return pd.DataFrame(
        {
            "iteration": np.arange(1, n + 1),
            "method": method,
            "seed": seed,
            "objective": np.asarray(objective, dtype=float),
            "feasible": feasible,
            "status": status,
            "cumulative_time_s": np.arange(1, n + 1) * 10.0 if times is None else times,
        }
    )


@pytest.fixture
def histories() -> pd.DataFrame:
    a = _history(
        "hw-ieci",
        0,
        [5, 3, np.nan, 4, 2],
        [True, False, True, True, True],
        ["ok", "ok", "failed", "ok", "ok"],
    )
    b = _history("random", 0, [np.nan, 7, 6], [True, True, True], ["failed", "ok", "ok"])
    return pd.concat([b, a], ignore_index=True)  # order must not matter


def test_best_so_far_feasible_only(histories: pd.DataFrame) -> None:
    curves = best_so_far(histories)
    a = curves[curves["method"] == "hw-ieci"]
    b = curves[curves["method"] == "random"]
    assert a["best_objective"].tolist() == [5, 5, 5, 4, 2]  # the infeasible 3 does not count
    assert b["best_objective"].isna().tolist() == [True, False, False]
    assert b["best_objective"].tolist()[1:] == [7, 6]
    assert a["cumulative_time_s"].tolist() == [10, 20, 30, 40, 50]


def test_best_so_far_all_successes(histories: pd.DataFrame) -> None:
    a = best_so_far(histories, feasible_only=False).query("method == 'hw-ieci'")
    assert a["best_objective"].tolist() == [5, 3, 3, 3, 2]


def test_evals_to_reach(histories: pd.DataFrame) -> None:
    out = evals_to_reach(best_so_far(histories), threshold=4.0).set_index("method")
    assert out.loc["hw-ieci", "reached"] and out.loc["hw-ieci", "evals"] == 4
    assert out.loc["hw-ieci", "time_s"] == 40.0
    assert not out.loc["random", "reached"] and np.isnan(out.loc["random", "evals"])


def test_on_grid_steps_and_forward_fills() -> None:
    h = _history("ei", 0, [3, 2, 1], [True] * 3, ["ok"] * 3, times=[1.0, 2.5, 4.0])
    out = on_grid(best_so_far(h), [0.5, 1.0, 3.0, 10.0])
    np.testing.assert_array_equal(out["best_objective"], [np.nan, 3, 2, 1])


def test_mean_band_matches_t_interval() -> None:
    runs = [
        _history("ei", 0, [3, 1], [True] * 2, ["ok"] * 2),
        _history("ei", 1, [5, 4], [True] * 2, ["ok"] * 2),
        _history("ei", 2, [7], [True], ["ok"]),  # one evaluation only: forward-filled
        _history("ga", 0, [9, 8], [True] * 2, ["ok"] * 2),
    ]
    band = mean_band(best_so_far(pd.concat(runs, ignore_index=True)), x="iteration")
    first = band[(band["method"] == "ei") & (band["iteration"] == 1)].iloc[0]
    t975_2dof = 4.302652729911275
    assert first["mean"] == 5 and first["std"] == 2 and first["n"] == 3
    assert first["upper"] - first["mean"] == pytest.approx(t975_2dof * 2 / np.sqrt(3))
    assert first["mean"] - first["lower"] == pytest.approx(t975_2dof * 2 / np.sqrt(3))
    second = band[(band["method"] == "ei") & (band["iteration"] == 2)].iloc[0]
    assert second["mean"] == pytest.approx(4.0) and second["n"] == 3
    ga = band[band["method"] == "ga"]
    assert ga["mean"].tolist() == [9, 8] and ga["lower"].isna().all()  # one seed: no band


def test_pareto_front_hand_example() -> None:
    pts = np.array(
        [
            [1, 5],
            [2, 3],
            [3, 4],
            [4, 1],
            [2, 3],
            [5, 5],
            [np.nan, 1],
            [4, 2],
            [3, 3.01],
            [2.5, 2.99],
        ],
        dtype=float,
    )
    # (3, 3.01) is dominated by (2, 3) by a hair; (2.5, 2.99) is not dominated by anything
    expected = [True, True, False, True, True, False, False, False, False, True]
    assert pareto_front(pts).tolist() == expected
    frame = pd.DataFrame(pts, columns=["error", "energy_mj"])
    rows = pareto_rows(frame, "error", "energy_mj")
    assert rows["error"].tolist() == [1, 2, 2, 2.5, 4]
    with pytest.raises(ValueError, match="shape"):
        pareto_front(np.ones((3, 3)))


def test_hypervolume_hand_example() -> None:
    pts = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3]], dtype=float)
    # slabs [1,2) x 1 + [2,4) x 3 + [4,6) x 5 = 1 + 6 + 10
    assert hypervolume_2d(pts, (6, 6)) == pytest.approx(17.0)
    assert hypervolume_2d(pts, (3, 4)) == pytest.approx(1.0)  # only (2, 3) is inside
    assert hypervolume_2d(pts, (0, 0)) == 0.0
    # adding a dominated point changes nothing; a new non-dominated one adds its area
    assert hypervolume_2d(np.vstack([pts, [5, 5]]), (6, 6)) == pytest.approx(17.0)
    assert hypervolume_2d(np.vstack([pts, [3, 2]]), (6, 6)) == pytest.approx(18.0)


def test_hypervolume_curve_grows_with_each_new_front_point() -> None:
    history = pd.DataFrame(
        {
            "method": ["bo"] * 4 + ["rs"] * 2,
            "seed": [0] * 6,
            "iteration": [1, 2, 3, 4, 2, 1],  # unsorted on purpose
            "cumulative_time_s": [1.0, 2.0, 3.0, 4.0, 2.0, 1.0],
            "energy": [2.0, 1.0, 3.0, 0.5, 1.0, 5.0],
            "error": [3.0, 5.0, 1.0, np.nan, 1.0, 1.0],
            "status": ["ok", "ok", "ok", "failed", "ok", "ok"],
        }
    )
    curve = hypervolume_curve(history, "energy", "error", (6.0, 6.0))
    bo = curve[curve["method"] == "bo"]
    # (2, 3): 4 x 3 = 12; + (1, 5): 1 x 1 = 13; + (3, 1): 3 x 2 = 19; failed row adds nothing
    assert bo["hypervolume"].tolist() == pytest.approx([12.0, 13.0, 19.0, 19.0])
    assert bo["iteration"].tolist() == [1, 2, 3, 4]
    rs = curve[curve["method"] == "rs"]
    assert rs["hypervolume"].tolist() == pytest.approx([5.0, 25.0])
    band = mean_band(curve, x="iteration", value="hypervolume")
    assert band.loc[band["method"] == "bo", "mean"].tolist() == pytest.approx([12, 13, 19, 19])
    grid = on_grid(curve, [0.5, 2.5], x="cumulative_time_s", value="hypervolume")
    assert np.isnan(grid["hypervolume"].iloc[0]) and grid["hypervolume"].iloc[1] == 13.0
