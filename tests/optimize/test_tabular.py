"""Tests of hwml.optimize.tabular.TabularObjective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import (
    Constraint,
    LogReal,
    SearchExhaustedWarning,
    Space,
    TabularObjective,
    minimize,
)


def test_lookup_returns_stored_row(grid_space: Space, grid_table: pd.DataFrame) -> None:
    objective = TabularObjective(grid_table, grid_space, cost="train_s")
    out = objective({"a": 3, "b": 1})
    assert out == {"objective": 0.5, "power_w": 30.0, "eval_time_s": 2.0}
    assert len(objective.candidates) == 25
    assert list(objective.candidates.columns) == ["a", "b"]


def test_missing_configuration(grid_space: Space, grid_table: pd.DataFrame) -> None:
    partial = grid_table[grid_table["a"] != 2]
    exact = TabularObjective(partial, grid_space)
    with pytest.raises(KeyError, match="not in the table"):
        exact({"a": 2, "b": 0})
    nearest = TabularObjective(partial, grid_space, match="nearest")
    assert nearest.row_index({"a": 2, "b": 4}) in set(
        np.flatnonzero((partial["b"] == 4).to_numpy())
    )


def test_bad_tables(grid_space: Space, grid_table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="same configuration"):
        TabularObjective(pd.concat([grid_table, grid_table.iloc[:1]]), grid_space)
    with pytest.raises(ValueError, match="objective column 'error'"):
        TabularObjective(grid_table, grid_space, objective="error")
    with pytest.raises(ValueError, match="'a'"):
        TabularObjective(grid_table.assign(a=grid_table["a"] + 10), grid_space)


@pytest.mark.parametrize(
    "method", ["hw-ieci", "ei", "random", "random-filtered", "ga", "ga-filtered"]
)
def test_every_method_picks_only_table_rows(
    method: str, grid_space: Space, grid_table: pd.DataFrame
) -> None:
    table = grid_table.sample(frac=0.6, random_state=0)  # 15 of the 25 grid points
    objective = TabularObjective(table, grid_space, cost="train_s")
    power = Constraint("power_w", 25.0, lambda z: 10.0 * z["a"].to_numpy())
    with pytest.warns(SearchExhaustedWarning, match="every row of the candidate pool") as said:
        history = minimize(
            objective,
            grid_space,
            [power],
            method=method,
            n_evals=40,
            n_init=3,
            seed=1,
            progress=False,
        )
    filtered = method in ("hw-ieci", "random-filtered", "ga-filtered")
    assert ("that the constraint models accept" in str(said[0].message)) == filtered
    table_rows = set(zip(table["a"], table["b"], strict=True))
    seen = list(zip(history["a"], history["b"], strict=True))
    assert set(seen) <= table_rows and len(seen) == len(set(seen))
    if filtered:
        assert history["feasible_pred"].all()
        assert len(seen) == int((table["a"] <= 2).sum())  # stops when feasible rows run out
    else:
        assert len(seen) == len(table)
    np.testing.assert_allclose(history["eval_time_s"], 1.0 + history["b"])
    np.testing.assert_allclose(history["measured_power_w"], 10.0 * history["a"])


def test_failed_measurement_row(grid_space: Space, grid_table: pd.DataFrame) -> None:
    table = grid_table.copy()
    table.loc[0, "objective"] = np.nan
    history = minimize(
        TabularObjective(table, grid_space),
        grid_space,
        method="random",
        n_evals=25,
        seed=0,
        progress=False,
    )
    failed = history[history["status"] == "failed"]
    assert list(zip(failed["a"], failed["b"], strict=True)) == [(0, 0)]


def test_row_indices_match_through_the_encoding() -> None:
    space = Space([LogReal("lr", 1e-4, 1e-1)])
    table = pd.DataFrame({"lr": [1.234e-4, 3.3e-3, 0.0977], "objective": [1.0, 2.0, 3.0]})
    objective = TabularObjective(table, space)
    searched = space.decode(space.encode(table.iloc[[2, 0]]))  # off in the last bits
    assert objective.row_indices(searched).tolist() == [2, 0]
    missing = pd.DataFrame({"lr": [1e-2]})
    assert objective.row_indices(missing).tolist() == [-1]
    nearest = TabularObjective(table, space, match="nearest")
    assert nearest.row_indices(missing).tolist() == [1]  # nearest on the log scale
