"""Tests of hwml.optimize.history: the table's columns, types and file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.optimize import Categorical, Integer, LogReal, Space
from hwml.optimize.history import (
    HistoryError,
    HistoryWriter,
    clean_reason,
    history_columns,
    history_frame,
    read_history,
)


@pytest.fixture
def space() -> Space:
    return Space(
        [
            Integer("filters", 8, 64),
            LogReal("lr", 1e-4, 1e-1),
            Categorical("kernel", [3, 5]),
            Categorical("act", ["relu", "NA", "None"]),
        ]
    )


def _row(i: int, **extra) -> dict:
    row = {
        "iteration": i,
        "method": "hw-ieci",
        "seed": 0,
        "phase": "init",
        "filters": 8 * i,
        "lr": 1e-3 / 3 * i,
        "kernel": 5,
        "act": "NA",
        "objective": 0.1 * i,
        "pred_power_w": 50.0,
        "measured_power_w": float("nan"),
        "feasible_pred": True,
        "prob_feasible": 1.0,
        "feasible_measured": None,
        "feasible": True,
        "acquisition": float("nan"),
        "status": "ok",
        "reason": "",
        "eval_time_s": 1.0 / 3,
        "overhead_s": 0.01,
        "cumulative_time_s": i / 3,
    }
    row.update(extra)
    return row


def test_columns_order(space: Space) -> None:
    cols = history_columns(space, ["power_w"])
    assert cols[:8] == ["iteration", "method", "seed", "phase", "filters", "lr", "kernel", "act"]
    assert cols[8:11] == ["objective", "pred_power_w", "measured_power_w"]
    assert cols[-3:] == ["eval_time_s", "overhead_s", "cumulative_time_s"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_round_trip_is_exact(tmp_path: Path, space: Space, suffix: str) -> None:
    rows = [
        _row(1),
        _row(
            2,
            status="failed",
            reason="ValueError: a, b",
            objective=float("nan"),
            feasible_measured=False,
            measured_power_w=70.0,
            feasible=False,
        ),
    ]
    path = tmp_path / f"h{suffix}"
    with HistoryWriter(path, history_columns(space, ["power_w"])) as writer:
        for row in rows:
            writer.append(row)
    back = read_history(path, space, ["power_w"])
    expected = history_frame(rows, space, ["power_w"])
    pd.testing.assert_frame_equal(back, expected)
    assert back["lr"].tolist() == [1e-3 / 3, 2e-3 / 3]  # floats survive bit for bit
    assert back["kernel"].dtype == np.int64 and back["act"].tolist() == ["NA", "NA"]
    assert back["feasible_measured"].isna().tolist() == [True, False]
    assert back["reason"].tolist() == ["", "ValueError: a, b"]


def test_missing_file_reads_as_empty(tmp_path: Path, space: Space) -> None:
    empty = read_history(tmp_path / "none.csv", space, [])
    assert len(empty) == 0 and list(empty.columns) == history_columns(space, [])


def test_gap_in_iterations_is_refused(tmp_path: Path, space: Space) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, history_columns(space, ["power_w"])) as writer:
        writer.append(_row(1))
        writer.append(_row(3))
    with pytest.raises(HistoryError, match="iterations"):
        read_history(path, space, ["power_w"])


def test_clean_reason() -> None:
    assert clean_reason("line one\nline two") == "line one line two"
    assert len(clean_reason("x" * 2000)) == 500
