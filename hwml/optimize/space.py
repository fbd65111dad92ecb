"""Search spaces: typed dimensions and their map to the unit cube.

A :class:`Space` is an ordered list of dimensions. Each dimension owns one column of the
unit cube ``[0, 1]^d`` in which the optimizers work (the GP, the candidate generators and
the genetic algorithm all see only unit-cube points):

* :class:`Real` is linear on ``[low, high]``; :class:`LogReal` is linear in ``log``.
* :class:`Integer` with ``L = high - low + 1`` levels splits ``[0, 1]`` into ``L`` equal
  bins; level ``k`` is encoded as the bin centre ``(k + 0.5) / L``, and any point of the
  bin decodes to ``k``. A uniform draw from the cube therefore gives every level the same
  probability, including the two end levels.
* :class:`Categorical` is encoded **ordinally**, the same way as an integer over the
  indices of its choices. This keeps one column per dimension (the GP's ARD length-scale
  then measures how much the choice matters) at the price of imposing the order in which
  the choices are listed; list them in a meaningful order where one exists. Local
  perturbation re-draws a categorical value uniformly rather than stepping to a neighbour.

Dimensions flagged ``structural=True`` form the sub-vector ``z`` that hardware models
(power, memory) see; HyperPower's models take only those.

Configurations travel as :class:`pandas.DataFrame` (one row per configuration, one column
per dimension) or, for a single one, as a ``dict``.

The dimension types and the space stay in one module on purpose: encoding, decoding,
sampling and perturbation must agree for every type, and are read together.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hwml.optimize.seeding import make_rng

__all__ = [
    "Categorical",
    "Dimension",
    "Integer",
    "LogReal",
    "Real",
    "Space",
    "SpecError",
]


class SpecError(ValueError):
    """A search-space specification is invalid; the message names the offending field."""


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"dimension field 'name' must be a non-empty string, got {name!r}")
    return name


def _check_number(dim: str, fieldname: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise SpecError(f"dimension {dim!r}: field {fieldname!r} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise SpecError(f"dimension {dim!r}: field {fieldname!r} must be finite, got {value!r}")
    return float(value)


def _check_range(dim: str, low: float, high: float) -> None:
    if low == high:
        raise SpecError(
            f"dimension {dim!r}: range is empty (field 'low' == field 'high' == {low!r})"
        )
    if low > high:
        raise SpecError(
            f"dimension {dim!r}: range is inverted (field 'low' = {low!r} > field 'high' = {high!r})"
        )


@dataclass(frozen=True)
class Dimension:
    """Base class of a search-space dimension.

    Attributes:
        name: column name of the dimension in configurations and history tables.
        structural: whether the dimension belongs to the structural sub-vector ``z``
            that hardware/constraint models see.
    """

    name: str
    structural: bool = field(default=False, kw_only=True)

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.structural, bool | np.bool_):
            raise SpecError(
                f"dimension {self.name!r}: field 'structural' must be a bool, got {self.structural!r}"
            )

    @property
    def n_levels(self) -> int | None:
        """Number of distinct values, or ``None`` for a continuous dimension."""
        return None

    def encode(self, values: Any) -> np.ndarray:
        """Map values of this dimension to the unit interval.

        Args:
            values: array-like of shape ``(n,)``.

        Returns:
            Array of shape ``(n,)`` in ``[0, 1]``.

        Raises:
            SpecError: a value is outside the dimension's domain (message names the field).
        """
        raise NotImplementedError

    def decode(self, u: np.ndarray) -> np.ndarray:
        """Map unit-interval coordinates to values of this dimension.

        Args:
            u: array of shape ``(n,)``; values outside ``[0, 1]`` are clipped.

        Returns:
            Array of shape ``(n,)`` of dimension values.
        """
        raise NotImplementedError

    def snap(self, u: np.ndarray) -> np.ndarray:
        """Move unit coordinates to the canonical code of the value they decode to.

        Args:
            u: array of shape ``(n,)``.

        Returns:
            Array of shape ``(n,)``; continuous dimensions are only clipped to ``[0, 1]``.
        """
        return np.clip(u, 0.0, 1.0)

    def to_spec(self) -> dict[str, Any]:
        """Return a JSON-friendly description accepted by :meth:`Space.from_specs`."""
        raise NotImplementedError


class _Levels(Dimension):
    """Shared bin arithmetic of discrete dimensions (``L`` equal bins, centre codes)."""

    def _levels(self) -> int:
        raise NotImplementedError

    @property
    def n_levels(self) -> int | None:
        return self._levels()

    def _index(self, u: np.ndarray) -> np.ndarray:
        n = self._levels()
        return np.clip(np.floor(np.asarray(u, dtype=float) * n), 0, n - 1).astype(np.int64)

    def _code(self, index: np.ndarray) -> np.ndarray:
        return (np.asarray(index, dtype=float) + 0.5) / self._levels()

    def snap(self, u: np.ndarray) -> np.ndarray:
        return self._code(self._index(u))


@dataclass(frozen=True)
class Integer(_Levels):
    """An integer in ``[low, high]`` (both included).

    Attributes:
        low: smallest value.
        high: largest value; must be greater than ``low``.
    """

    low: int
    high: int
    kind: ClassVar[str] = "integer"

    def __post_init__(self) -> None:
        super().__post_init__()
        for fieldname in ("low", "high"):
            value = getattr(self, fieldname)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                if isinstance(value, float | np.floating) and float(value).is_integer():
                    object.__setattr__(self, fieldname, int(value))
                    continue
                raise SpecError(
                    f"dimension {self.name!r}: field {fieldname!r} must be an integer, got {value!r}"
                )
            object.__setattr__(self, fieldname, int(value))
        _check_range(self.name, self.low, self.high)

    def _levels(self) -> int:
        return self.high - self.low + 1

    def encode(self, values: Any) -> np.ndarray:
        v = _as_float(self.name, values)
        if np.any(v != np.round(v)):
            bad = v[v != np.round(v)][0]
            raise SpecError(f"dimension {self.name!r}: value {bad!r} is not an integer")
        if np.any((v < self.low) | (v > self.high)):
            bad = v[(v < self.low) | (v > self.high)][0]
            raise SpecError(
                f"dimension {self.name!r}: value {bad!r} outside [low={self.low}, high={self.high}]"
            )
        return self._code(v - self.low)

    def decode(self, u: np.ndarray) -> np.ndarray:
        return self._index(u) + self.low

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "low": self.low,
            "high": self.high,
            "structural": bool(self.structural),
        }


@dataclass(frozen=True)
class Real(Dimension):
    """A real number in ``[low, high]``, encoded linearly.

    Attributes:
        low: lower bound.
        high: upper bound; must be greater than ``low``.
    """

    low: float
    high: float
    kind: ClassVar[str] = "real"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "low", _check_number(self.name, "low", self.low))
        object.__setattr__(self, "high", _check_number(self.name, "high", self.high))
        _check_range(self.name, self.low, self.high)

    def _forward(self, v: np.ndarray) -> np.ndarray:
        return (v - self.low) / (self.high - self.low)

    def _backward(self, u: np.ndarray) -> np.ndarray:
        return self.low + u * (self.high - self.low)

    def encode(self, values: Any) -> np.ndarray:
        v = _as_float(self.name, values)
        outside = ~((v >= self.low) & (v <= self.high))
        if np.any(outside):
            bad = v[outside][0]
            raise SpecError(
                f"dimension {self.name!r}: value {bad!r} outside [low={self.low}, high={self.high}]"
            )
        return np.clip(self._forward(v), 0.0, 1.0)

    def decode(self, u: np.ndarray) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        return np.clip(self._backward(u), self.low, self.high)

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "low": self.low,
            "high": self.high,
            "structural": bool(self.structural),
        }


@dataclass(frozen=True)
class LogReal(Real):
    """A positive real number in ``[low, high]``, encoded linearly in ``log``.

    Suited to learning rates and regularization weights spanning decades.
    """

    kind: ClassVar[str] = "logreal"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low <= 0:
            raise SpecError(
                f"dimension {self.name!r}: field 'low' must be > 0 on a log scale, got {self.low!r}"
            )

    def _forward(self, v: np.ndarray) -> np.ndarray:
        return (np.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def _backward(self, u: np.ndarray) -> np.ndarray:
        return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))


@dataclass(frozen=True)
class Categorical(_Levels):
    """One of a finite list of choices, encoded ordinally (see the module docstring).

    Attributes:
        choices: the distinct, hashable choices, in the order used for the encoding.
    """

    choices: tuple[Hashable, ...]
    kind: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, Sequence):
            raise SpecError(
                f"dimension {self.name!r}: field 'choices' must be a list, got {self.choices!r}"
            )
        choices = tuple(self.choices)
        if not choices:
            raise SpecError(f"dimension {self.name!r}: field 'choices' is empty")
        try:
            unique = len(set(choices))
        except TypeError as err:
            raise SpecError(
                f"dimension {self.name!r}: field 'choices' holds an unhashable value"
            ) from err
        if unique != len(choices):
            raise SpecError(f"dimension {self.name!r}: field 'choices' has duplicates: {choices!r}")
        object.__setattr__(self, "choices", choices)

    def _levels(self) -> int:
        return len(self.choices)

    def _lookup(self) -> tuple[dict[Hashable, int], dict[str, int]]:
        return (
            {c: i for i, c in enumerate(self.choices)},
            {str(c): i for i, c in enumerate(self.choices)},
        )

    def encode(self, values: Any) -> np.ndarray:
        exact, by_text = self._lookup()
        out = np.empty(len(values), dtype=float)
        for i, value in enumerate(values):
            if isinstance(value, np.generic):
                value = value.item()
            index = exact.get(value) if _hashable(value) else None
            if index is None:
                index = by_text.get(str(value))
            if index is None:
                raise SpecError(
                    f"dimension {self.name!r}: value {value!r} is not one of {self.choices!r}"
                )
            out[i] = index
        return self._code(out)

    def decode(self, u: np.ndarray) -> np.ndarray:
        table = np.empty(len(self.choices), dtype=object)
        table[:] = list(self.choices)
        values = table[self._index(u)]
        if all(isinstance(c, int) and not isinstance(c, bool) for c in self.choices):
            return values.astype(np.int64)
        if all(isinstance(c, float) for c in self.choices):
            return values.astype(float)
        return values

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "choices": list(self.choices),
            "structural": bool(self.structural),
        }


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _as_float(name: str, values: Any) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as err:
        raise SpecError(f"dimension {name!r}: values are not numeric: {values!r}") from err
    if np.any(~np.isfinite(v)):
        raise SpecError(f"dimension {name!r}: values must be finite")
    return v


_KINDS: dict[str, type[Dimension]] = {
    cls.kind: cls for cls in (Integer, Real, LogReal, Categorical)
}
_SPEC_KEYS: dict[str, set[str]] = {
    "integer": {"low", "high"},
    "real": {"low", "high"},
    "logreal": {"low", "high"},
    "categorical": {"choices"},
}


class Space:
    """An ordered set of named dimensions and the unit-cube map of configurations.

    Args:
        dimensions: the dimensions, in column order of the unit cube.

    Raises:
        SpecError: a duplicate name, or an element that is not a :class:`Dimension`.
    """

    def __init__(self, dimensions: Sequence[Dimension]) -> None:
        dims = list(dimensions)
        if not dims:
            raise SpecError("a space needs at least one dimension")
        seen: set[str] = set()
        for i, dim in enumerate(dims):
            if not isinstance(dim, Dimension) or type(dim) in (Dimension, _Levels):
                raise SpecError(
                    f"dimension #{i}: unknown dimension type {type(dim).__name__!r}; "
                    f"expected one of Integer, Real, LogReal, Categorical"
                )
            if dim.name in seen:
                raise SpecError(f"dimension field 'name': duplicate name {dim.name!r}")
            seen.add(dim.name)
        self._dims: tuple[Dimension, ...] = tuple(dims)

    @classmethod
    def from_specs(cls, specs: Sequence[Mapping[str, Any]]) -> Space:
        """Build a space from plain mappings (e.g. parsed JSON or notebook parameters).

        Each mapping has ``name``, ``type`` (``integer``, ``real``, ``logreal`` or
        ``categorical``), ``low``/``high`` or ``choices``, and optionally ``structural``.

        Args:
            specs: one mapping per dimension.

        Returns:
            The space.

        Raises:
            SpecError: an unknown type, a missing or unknown key, or an invalid value;
                the message names the field.
        """
        dims: list[Dimension] = []
        for i, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise SpecError(f"dimension #{i}: spec must be a mapping, got {spec!r}")
            label = repr(spec.get("name", f"#{i}"))
            kind = spec.get("type")
            if kind not in _KINDS:
                raise SpecError(
                    f"dimension {label}: field 'type' is unknown ({kind!r}); "
                    f"expected one of {sorted(_KINDS)}"
                )
            allowed = _SPEC_KEYS[kind] | {"name", "type", "structural"}
            for key in spec:
                if key not in allowed:
                    raise SpecError(f"dimension {label}: unknown field {key!r} for type {kind!r}")
            for key in _SPEC_KEYS[kind] | {"name"}:
                if key not in spec:
                    raise SpecError(f"dimension {label}: missing field {key!r}")
            kwargs = {k: v for k, v in spec.items() if k != "type"}
            if kind == "categorical" and isinstance(kwargs["choices"], list):
                kwargs["choices"] = tuple(kwargs["choices"])
            dims.append(_KINDS[kind](**kwargs))
        return cls(dims)

    def to_specs(self) -> list[dict[str, Any]]:
        """Return the JSON-friendly description that :meth:`from_specs` reads back."""
        return [dim.to_spec() for dim in self._dims]

    # -- introspection -----------------------------------------------------------------

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions in unit-cube column order."""
        return self._dims

    @property
    def names(self) -> list[str]:
        """Dimension names in unit-cube column order."""
        return [d.name for d in self._dims]

    @property
    def structural_names(self) -> list[str]:
        """Names of the structural dimensions (the ``z`` seen by hardware models)."""
        return [d.name for d in self._dims if d.structural]

    @property
    def n_dims(self) -> int:
        """Number of unit-cube columns ``d``."""
        return len(self._dims)

    @property
    def size(self) -> int | None:
        """Number of distinct configurations, or ``None`` if any dimension is continuous."""
        total = 1
        for dim in self._dims:
            if dim.n_levels is None:
                return None
            total *= dim.n_levels
        return total

    def __len__(self) -> int:
        return len(self._dims)

    def __iter__(self) -> Iterator[Dimension]:
        return iter(self._dims)

    def __getitem__(self, name: str) -> Dimension:
        for dim in self._dims:
            if dim.name == name:
                return dim
        raise KeyError(f"no dimension named {name!r}")

    def __repr__(self) -> str:
        return f"Space({list(self._dims)!r})"

    # -- the unit-cube map ---------------------------------------------------------------

    def encode(
        self, configs: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]
    ) -> np.ndarray:
        """Map configurations to unit-cube points.

        Args:
            configs: a frame with one column per dimension (extra columns are ignored),
                a list of dicts, or a single dict.

        Returns:
            Array of shape ``(n, d)`` in ``[0, 1]``.

        Raises:
            SpecError: a dimension is missing or a value is outside its domain.
        """
        if isinstance(configs, Mapping):
            configs = [configs]
        frame = configs if isinstance(configs, pd.DataFrame) else pd.DataFrame(list(configs))
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise SpecError(f"configuration lacks dimension field(s) {missing}")
        out = np.empty((len(frame), self.n_dims), dtype=float)
        for j, dim in enumerate(self._dims):
            out[:, j] = dim.encode(frame[dim.name].to_numpy())
        return out

    def decode(self, points: np.ndarray) -> pd.DataFrame:
        """Map unit-cube points to configurations.

        Args:
            points: array of shape ``(n, d)`` (or ``(d,)``); coordinates are clipped to
                ``[0, 1]``.

        Returns:
            Frame of ``n`` rows, one column per dimension, in :attr:`names` order.
        """
        u = self._check_points(points)
        return pd.DataFrame({dim.name: dim.decode(u[:, j]) for j, dim in enumerate(self._dims)})

    def snap(self, points: np.ndarray) -> np.ndarray:
        """Move unit-cube points to the canonical codes of the configurations they denote.

        Discrete coordinates go to bin centres, continuous ones are clipped, so that two
        points denoting the same configuration become equal.

        Args:
            points: array of shape ``(n, d)``.

        Returns:
            Array of shape ``(n, d)``.
        """
        u = self._check_points(points)
        return np.column_stack([dim.snap(u[:, j]) for j, dim in enumerate(self._dims)])

    def structural(self, configs: pd.DataFrame) -> pd.DataFrame:
        """Select the structural columns ``z`` that hardware models see.

        Args:
            configs: frame with one column per dimension.

        Returns:
            The structural columns, or all dimension columns when no dimension is flagged
            structural.
        """
        names = self.structural_names or self.names
        return configs.loc[:, names].reset_index(drop=True)

    @staticmethod
    def to_dicts(configs: pd.DataFrame) -> list[dict[str, Any]]:
        """Turn a configuration frame into dicts of plain Python values.

        Args:
            configs: frame with one row per configuration.

        Returns:
            One dict per row; numpy scalars become ``int``/``float``/``str``.
        """
        rows = []
        for record in configs.to_dict(orient="records"):
            rows.append(
                {k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()}
            )
        return rows

    # -- sampling ------------------------------------------------------------------------

    def sample_unit(self, n: int, seed: int | np.random.Generator) -> np.ndarray:
        """Draw ``n`` configurations uniformly and return their unit-cube codes.

        Args:
            n: number of points.
            seed: int seed or numpy generator.

        Returns:
            Snapped array of shape ``(n, d)``.
        """
        rng = make_rng(seed)
        return self.snap(rng.random((int(n), self.n_dims)))

    def sample(self, n: int, seed: int | np.random.Generator) -> pd.DataFrame:
        """Draw ``n`` configurations uniformly (per dimension; log-uniform for LogReal).

        Args:
            n: number of configurations.
            seed: int seed or numpy generator.

        Returns:
            Frame of ``n`` configurations.
        """
        return self.decode(self.sample_unit(n, seed))

    def perturb_unit(
        self,
        centers: np.ndarray,
        n_per_center: int,
        scale: float,
        seed: int | np.random.Generator,
    ) -> np.ndarray:
        """Draw configurations near given unit-cube points.

        Continuous and integer coordinates move by Gaussian steps of standard deviation
        ``scale`` (at least one level width for integers), reflected at the cube's faces;
        a categorical coordinate is re-drawn uniformly with probability
        ``min(0.5, 2 * scale)``.

        Args:
            centers: array of shape ``(k, d)``.
            n_per_center: neighbours per centre.
            scale: step size in unit-cube coordinates (e.g. 0.05).
            seed: int seed or numpy generator.

        Returns:
            Snapped array of shape ``(k * n_per_center, d)``.
        """
        rng = make_rng(seed)
        c = self._check_points(centers)
        base = np.repeat(c, int(n_per_center), axis=0)
        sigma = np.array(
            [scale if d.n_levels is None else max(scale, 1.0 / d.n_levels) for d in self._dims]
        )
        moved = base + rng.normal(size=base.shape) * sigma
        moved = np.abs(moved)
        moved = np.where(moved > 1.0, 2.0 - moved, moved)
        for j, dim in enumerate(self._dims):
            if isinstance(dim, Categorical):
                redraw = rng.random(len(base)) < min(0.5, 2.0 * scale)
                moved[:, j] = np.where(redraw, rng.random(len(base)), base[:, j])
        return self.snap(np.clip(moved, 0.0, 1.0))

    def _check_points(self, points: np.ndarray) -> np.ndarray:
        u = np.atleast_2d(np.asarray(points, dtype=float))
        if u.ndim != 2 or u.shape[1] != self.n_dims:
            raise ValueError(f"points must have shape (n, {self.n_dims}), got {np.shape(points)}")
        return u
