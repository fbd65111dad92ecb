"""An objective that looks results up in a pre-measured table.

Training every candidate network for every method and every seed is what makes
comparisons of search methods expensive. Measuring each configuration of a finite grid
once and searching over the table instead lets any method run with many seeds on any
machine. :class:`TabularObjective` exposes the table's configurations as ``candidates``;
:func:`hwml.optimize.search.minimize` then restricts every method to those rows, so the
acquisition is maximized over the not-yet-evaluated rows and the GA's children snap to the
nearest unevaluated row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwml.optimize.space import Space

__all__ = ["TabularObjective"]


class TabularObjective:
    """Look up the objective (and measured quantities) of a configuration in a table.

    Args:
        table: one row per configuration: one column per dimension of ``space``, the
            objective column, and any measured columns (e.g. ``power_w``, ``mem_bytes``,
            a training time).
        space: the search space; every row must lie in it.
        objective: name of the objective column. NaN there (a failed measurement) makes
            the search record a failed evaluation.
        cost: optional column with the cost of evaluating the row in seconds (e.g. the
            measured training time), reported as ``eval_time_s`` so that time curves show
            what a live search would have spent.
        columns: further columns to return with each result (default: all columns that are
            neither dimensions, the objective nor the cost).
        match: ``"exact"`` (a configuration missing from the table raises ``KeyError``)
            or ``"nearest"`` (the nearest row in unit-cube distance answers).

    Raises:
        ValueError: a required column is missing, a row is outside the space, or two rows
            hold the same configuration.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        space: Space,
        objective: str = "objective",
        cost: str | None = None,
        columns: Sequence[str] | None = None,
        match: str = "exact",
    ) -> None:
        if match not in ("exact", "nearest"):
            raise ValueError(f"match must be 'exact' or 'nearest', got {match!r}")
        for label, col in (("objective", objective), ("cost", cost)):
            if col is not None and col not in table.columns:
                raise ValueError(f"table has no {label} column {col!r}")
        if columns is None:
            skip = set(space.names) | {objective, cost}
            columns = [c for c in table.columns if c not in skip]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"table lacks columns {missing}")
        if len(table) == 0:
            raise ValueError("table is empty")
        self.space = space
        self.objective = objective
        self.cost = cost
        self.columns = list(columns)
        self.match = match
        self._table = table.reset_index(drop=True)
        self._points = space.encode(self._table)
        keys = [self._key(p) for p in self._points]
        self._index: dict[tuple[float, ...], int] = {}
        for i, key in enumerate(keys):
            if key in self._index:
                dup = Space.to_dicts(self._table.loc[[i], space.names])[0]
                raise ValueError(
                    f"table rows {self._index[key]} and {i} hold the same configuration {dup}"
                )
            self._index[key] = i

    @staticmethod
    def _key(point: np.ndarray) -> tuple[float, ...]:
        return tuple(np.round(point, 9).tolist())

    @property
    def candidates(self) -> pd.DataFrame:
        """The table's configurations, one row each, one column per dimension."""
        return self.space.decode(self._points)

    @property
    def table(self) -> pd.DataFrame:
        """A copy of the table."""
        return self._table.copy()

    def row_index(self, config: Mapping[str, Any]) -> int:
        """Index of the table row answering ``config``.

        Args:
            config: one value per dimension.

        Returns:
            Row position in :attr:`table`.

        Raises:
            KeyError: with ``match="exact"``, the configuration is not in the table.
        """
        point = self.space.encode(config)[0]
        found = self._index.get(self._key(point))
        if found is not None:
            return found
        if self.match == "nearest":
            return int(np.argmin(np.linalg.norm(self._points - point, axis=1)))
        raise KeyError(f"configuration {dict(config)} is not in the table")

    def row_indices(self, configs: pd.DataFrame) -> np.ndarray:
        """Index of the table row answering each configuration of a frame.

        Matching is done in unit-cube coordinates, so values that went through a search's
        encoding (e.g. a log-scaled learning rate off in its last bits) still match.

        Args:
            configs: one column per dimension, ``n`` rows (e.g. a search history).

        Returns:
            Row positions in :attr:`table`, shape ``(n,)``; ``-1`` for a configuration
            not in the table (with ``match="nearest"``, the nearest row instead).
        """
        points = self.space.encode(configs)
        out = np.array([self._index.get(self._key(p), -1) for p in points], dtype=int)
        if self.match == "nearest":
            for i in np.flatnonzero(out < 0):
                out[i] = int(np.argmin(np.linalg.norm(self._points - points[i], axis=1)))
        return out

    def __call__(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Return the stored result of ``config``.

        Args:
            config: one value per dimension.

        Returns:
            ``{"objective": ..., <columns>..., "eval_time_s": ...}`` (the last only with a
            ``cost`` column holding a finite value).
        """
        row = self._table.iloc[self.row_index(config)]
        out: dict[str, Any] = {"objective": float(row[self.objective])}
        for col in self.columns:
            value = row[col]
            out[col] = value.item() if isinstance(value, np.generic) else value
        if self.cost is not None and np.isfinite(float(row[self.cost])):
            out["eval_time_s"] = float(row[self.cost])
        return out
