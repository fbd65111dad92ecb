"""The history table of a search and its append-only file (CSV or JSON lines).

One row per evaluation, appended and flushed as soon as the evaluation ends, so a killed
search loses at most the evaluation in flight; :func:`read_history` reads such a file back
(dropping a torn last line) so that :func:`hwml.optimize.search.minimize` can resume.

Columns, in order (``<dim>`` for each dimension, ``<c>`` for each constraint name):

============================  ======  =========================================================
column                        unit    meaning
============================  ======  =========================================================
iteration                     --      evaluation number, 1-based
method                        --      search method
seed                          --      the run's seed
phase                         --      ``init`` (initial design) or ``search``
<dim>                         --      the configuration's value of dimension ``<dim>``
objective                     obj.    objective value (NaN if the evaluation failed)
pred_<c>                      of c    constraint model's predicted value
measured_<c>                  of c    value reported by the objective (NaN if not reported)
feasible_pred                 --      every prediction within its budget
prob_feasible                 --      product of P(value <= budget) under the models
feasible_measured             --      every measured value within budget (NA if none measured)
feasible                      --      measured feasibility where measured, else predicted
acquisition                   --      acquisition value of the chosen point (NaN if none)
status                        --      ``ok`` or ``failed``
reason                        --      why an evaluation failed (empty if ok)
eval_time_s                   s       evaluation time (the objective's ``eval_time_s`` if given,
                                      else wall-clock)
overhead_s                    s       optimizer time spent choosing this point
cumulative_time_s             s       running sum of eval_time_s + overhead_s
============================  ======  =========================================================
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwml.optimize.space import Space
from hwml.tables import AppendOnlyFile, csv_line, drop_torn_line

__all__ = [
    "HistoryError",
    "HistoryWriter",
    "history_columns",
    "history_frame",
    "read_history",
]

logger = logging.getLogger(__name__)

HEAD_COLUMNS = ("iteration", "method", "seed", "phase")
TAIL_COLUMNS = (
    "objective",
    "feasible_pred",
    "prob_feasible",
    "feasible_measured",
    "feasible",
    "acquisition",
    "status",
    "reason",
    "eval_time_s",
    "overhead_s",
    "cumulative_time_s",
)
_FLOAT = {
    "objective",
    "prob_feasible",
    "acquisition",
    "eval_time_s",
    "overhead_s",
    "cumulative_time_s",
}
_BOOL = {"feasible_pred", "feasible"}
_MAX_REASON = 500


class HistoryError(ValueError):
    """A history file cannot be used for this search (wrong format, columns, method or seed)."""


def history_columns(space: Space, constraint_names: Sequence[str]) -> list[str]:
    """Column names of the history table of a search.

    Args:
        space: the search space.
        constraint_names: names of the constraints, in order.

    Returns:
        The column names, in order (see the module docstring).
    """
    cols = [*HEAD_COLUMNS, *space.names, "objective"]
    for name in constraint_names:
        cols += [f"pred_{name}", f"measured_{name}"]
    cols += list(TAIL_COLUMNS[1:])
    return cols


def reserved_names(constraint_names: Sequence[str]) -> set[str]:
    """Column names a dimension may not take."""
    names = set(HEAD_COLUMNS) | set(TAIL_COLUMNS)
    for name in constraint_names:
        names |= {f"pred_{name}", f"measured_{name}"}
    return names


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise HistoryError(f"history_path {str(path)!r}: unknown format {suffix!r}; use .csv or .jsonl")


def _cell(value: Any) -> Any:
    """One cell of a history row: numpy scalars as Python values, NaN and NA as None.

    Not :func:`hwml.data.json_safe`: a cell keeps an infinity (CSV writes ``inf`` and
    reads it back), and ``optimize/`` is on the ground floor beside ``data`` and may not
    import it (``tests/test_layering.py``).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def clean_reason(text: str) -> str:
    """One-line, bounded failure reason suitable for a table cell."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_REASON else flat[: _MAX_REASON - 3] + "..."


class HistoryWriter:
    """Appends history rows to a CSV or JSON-lines file, flushing after each row.

    The rows go through :class:`hwml.tables.AppendOnlyFile`, the package's one append-only
    writer: one ``write`` and an ``fsync`` per row. A torn last line is not repaired here
    but by :func:`read_history`, which a resuming search calls first.

    Args:
        path: the file; ``.csv`` or ``.jsonl``. Created (with a CSV header) if absent.
        columns: the column names, as :func:`history_columns` returns them.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.format = _format(self.path)
        header = csv_line(self.columns) if self.format == "csv" else None
        # created as open(path, "a") would create it
        self._file = AppendOnlyFile(self.path, header, file_mode=0o666)
        self._closed = False

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row and flush it to disk.

        Args:
            row: mapping with every column of :attr:`columns`.

        Raises:
            ValueError: the writer is closed.
        """
        values = [_cell(row.get(c)) for c in self.columns]
        if self.format == "csv":
            cells = [
                "" if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in values
            ]
            line = csv_line(cells)
        else:
            line = json.dumps(dict(zip(self.columns, values, strict=True))) + "\n"
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        self._file.append_line(line)

    def close(self) -> None:
        """Close the writer: later rows are refused."""
        self._closed = True

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_line(path: Path) -> None:
    """Cut a last line that a kill interrupted mid-write (no trailing newline), with a warning."""

    def warn(n_bytes: int) -> None:
        logger.warning("history %s: dropping an incomplete last line (%d bytes)", path, n_bytes)

    drop_torn_line(path, on_torn=warn)


def read_history(
    path: str | os.PathLike[str], space: Space, constraint_names: Sequence[str]
) -> pd.DataFrame:
    """Read a history file written by :class:`HistoryWriter`.

    Args:
        path: the file (``.csv`` or ``.jsonl``).
        space: the search space (restores each dimension's value types).
        constraint_names: names of the constraints, in order.

    Returns:
        The history table (empty, with the right columns, if the file is absent or empty).

    Raises:
        HistoryError: the file's columns are not those of this search, or its iteration
            numbers are not ``1..n``.
    """
    path = Path(path)
    fmt = _format(path)
    columns = history_columns(space, constraint_names)
    if not path.exists() or path.stat().st_size == 0:
        return history_frame([], space, constraint_names)
    _drop_torn_line(path)
    if fmt == "csv":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        found = list(raw.columns)
        rows = raw.replace({"": None}).to_dict(orient="records")
    else:
        rows = []
        found = columns
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    rows.append(json.loads(line))
        if rows:
            found = list(rows[0])
    if found != columns:
        raise HistoryError(
            f"history_path {str(path)!r} has columns {found}, but this search writes {columns}; "
            "use another path for a different space or set of constraints"
        )
    frame = history_frame(rows, space, constraint_names)
    expected = np.arange(1, len(frame) + 1)
    if not np.array_equal(frame["iteration"].to_numpy(), expected):
        raise HistoryError(f"history_path {str(path)!r}: iterations are not 1..{len(frame)}")
    return frame


def _to_bool(value: Any) -> Any:
    if value is None or value is pd.NA:
        return pd.NA
    if isinstance(value, float) and math.isnan(value):
        return pd.NA
    if isinstance(value, str):
        if value in ("True", "true", "1"):
            return True
        if value in ("False", "false", "0"):
            return False
        return pd.NA
    return bool(value)


def history_frame(
    rows: Sequence[Mapping[str, Any]], space: Space, constraint_names: Sequence[str]
) -> pd.DataFrame:
    """Build a history table with canonical column types from row mappings.

    Args:
        rows: one mapping per evaluation (values may be strings, as read from CSV).
        space: the search space.
        constraint_names: names of the constraints, in order.

    Returns:
        The table: ``iteration``/``seed`` int, dimensions with their own types, floats for
        values and times, booleans for feasibility (``feasible_measured`` nullable), and
        strings for ``method``, ``phase``, ``status``, ``reason``.
    """
    columns = history_columns(space, constraint_names)
    raw = pd.DataFrame(list(rows), columns=columns)
    out = pd.DataFrame(index=raw.index)
    floats = (
        _FLOAT
        | {f"pred_{c}" for c in constraint_names}
        | {f"measured_{c}" for c in constraint_names}
    )
    for col in columns:
        series = raw[col]
        if col in ("iteration", "seed"):
            out[col] = pd.to_numeric(series).astype(np.int64)
        elif col in floats:
            out[col] = pd.to_numeric(series, errors="coerce").astype(float)
        elif col in _BOOL:
            out[col] = (
                pd.array([_to_bool(v) for v in series], dtype="boolean").fillna(False).astype(bool)
            )
        elif col == "feasible_measured":
            out[col] = pd.array([_to_bool(v) for v in series], dtype="boolean")
        elif col in ("method", "phase", "status", "reason"):
            out[col] = series.fillna("").astype(str)
        else:
            out[col] = series
    empty = space.decode(np.empty((0, space.n_dims)))
    for dim in space.dimensions:
        if len(raw) == 0:
            out[dim.name] = empty[dim.name]
        elif dim.n_levels is None:
            out[dim.name] = pd.to_numeric(raw[dim.name]).astype(float)
        else:  # restore the value type (e.g. an int choice read back from CSV text)
            out[dim.name] = dim.decode(dim.encode(raw[dim.name].to_numpy()))
    return out.reset_index(drop=True)
