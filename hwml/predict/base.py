"""What every hwml predictor shares: the estimator base, layer features and checks.

Conventions of all estimators in :mod:`hwml.predict`:

* scikit-learn style: constructor arguments are stored unchanged (``get_params`` /
  ``set_params`` work), ``fit(table)`` learns and returns ``self``, fitted attributes
  end in ``_``, and predicting before fitting raises ``NotFittedError``.
* Inputs are pandas DataFrames. Layer models take tables with the columns of
  :meth:`hwml.describe.Layer.to_row` (what ``Network.table()`` and the profiler's
  ``layers.csv`` hold); measured tables add the target (``runtime_ms``, ``power_w``, ...),
  ``status`` and ``dtype``.
* Fitting uses only usable rows: ``status`` (when the column exists) is ``"ok"`` or
  ``"no_power"`` and the target is finite. A table missing a needed column raises
  :class:`MissingColumnsError` naming every missing column.
* Each model remembers the device (GPU name) and dtype of its training data. Predicting
  for another device or element size warns (:class:`DeviceMismatchWarning`), raises
  (:class:`DeviceMismatchError`) or passes silently, as the ``device_check`` argument
  says (``"warn"``, ``"error"``, ``"ignore"``).
* Models save to portable JSON with :meth:`Estimator.save` and load with
  :meth:`Estimator.load` (see :mod:`hwml.predict.io`).

Layer kinds are pooled into *groups*, one sub-model per group (:data:`KIND_GROUPS`):
max and average pooling share ``"pool"``, ``add`` and ``mul`` share ``"eltwise"``, and
``flatten``/``dropout`` form ``"trivial"`` (views, identities and pure data movement
such as permute or pad: they are predicted by a constant, see each model). The kinds of
transformers and modern CNNs (``norm``, ``matmul``, ``attention``, ``softmax``,
``reduce``) are each a group of their own; kind ``other`` has no group.

**Layers a model cannot price.** A fitted model prices only the groups it has a
sub-model for (for the fitted models: the groups with training rows). A network
containing other layers (a group without training rows, or kind ``other``) is handled by
:meth:`LayerEstimator.predict_network` in one of two ways, never by dropping the layers
silently:

* by default (``strict=False``) the layers it can price are predicted; the others get
  NaN predictions and ``left_out=True`` in the per-layer frame, the totals are summed
  over the priced layers only (so additive totals such as ``runtime_ms`` and
  ``energy_mj`` are lower bounds of the whole network's) with
  ``totals["left_out_layers"]`` counting what was left out,
  :attr:`NetworkPrediction.left_out` maps each left-out kind to its number of layers,
  and a :class:`LeftOutLayersWarning` (a ``UserWarning``) names the kinds and counts;
* with ``strict=True`` it raises :class:`UnknownKindError` naming the kinds and the
  groups the model prices.

Methods that return bare arrays (:meth:`LayerEstimator.predict`,
:meth:`LayerEstimator.predict_layers`) cannot say what they left out, so they always
raise :class:`UnknownKindError` for such layers.
"""

from __future__ import annotations

import operator
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from hwml.data import USABLE_POWER_STATUS, USABLE_STATUS
from hwml.describe import Layer, Network
from hwml.predict import io

__all__ = [
    "KIND_GROUPS",
    "TRIVIAL_GROUP",
    "DTYPE_BYTES",
    "LAYER_COLUMNS",
    "USABLE_STATUS",
    "PredictorError",
    "MissingColumnsError",
    "TooFewRowsError",
    "UnknownKindError",
    "LeftOutLayersWarning",
    "DeviceMismatchError",
    "DeviceMismatchWarning",
    "NotFittedError",
    "NetworkPrediction",
    "Estimator",
    "LayerEstimator",
    "LayerBatch",
    "require_columns",
    "usable_rows",
]

#: Layer kind -> group of the sub-model that predicts it.
KIND_GROUPS: dict[str, str] = {
    "conv2d": "conv2d",
    "linear": "linear",
    "maxpool2d": "pool",
    "avgpool2d": "pool",
    "batchnorm2d": "batchnorm2d",
    "activation": "activation",
    "add": "eltwise",
    "mul": "eltwise",
    "concat": "concat",
    "flatten": "trivial",
    "dropout": "trivial",
    "norm": "norm",
    "matmul": "matmul",
    "attention": "attention",
    "softmax": "softmax",
    "reduce": "reduce",
}

#: The group of kinds predicted by a constant (views, identities, pure data movement).
TRIVIAL_GROUP = "trivial"

#: Bytes per element of the dtype names used in measured tables.
DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "float32": 4,
    "tf32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int8": 1,
}

#: Numeric columns of :meth:`Layer.to_row` the layer models read, in this order. Each is
#: also an attribute of :class:`Layer`, which is how networks skip building a table.
LAYER_COLUMNS: tuple[str, ...] = (
    "batch",
    "in_channels",
    "in_h",
    "in_w",
    "out_channels",
    "out_h",
    "out_w",
    "kernel_h",
    "kernel_w",
    "stride_h",
    "stride_w",
    "pad_h",
    "pad_w",
    "groups",
    "in_features",
    "out_features",
    "bias",
    "dtype_bytes",
    "macs",
    "flops",
    "vector_ops",
    "params",
    "param_bytes",
    "input_bytes",
    "output_bytes",
    "total_bytes",
)
_COL = {name: i for i, name in enumerate(LAYER_COLUMNS)}
_ATTRS = operator.attrgetter(*LAYER_COLUMNS)


def is_power_target(target: str) -> bool:
    """Whether ``target`` is a power or energy column (``power_w``, ``energy_mj``, ...)."""
    return "power" in target or "energy" in target


_DEVICE_CHECKS = ("warn", "error", "ignore")


class PredictorError(ValueError):
    """Base class of the errors raised by :mod:`hwml.predict`."""


class MissingColumnsError(PredictorError):
    """A table lacks columns a model needs; ``missing`` lists them."""

    def __init__(self, missing: Sequence[str], what: str) -> None:
        self.missing = list(missing)
        super().__init__(f"{what}: table is missing column(s) {', '.join(map(repr, self.missing))}")


class TooFewRowsError(PredictorError):
    """Too few usable rows to fit (or to cross-validate) a model."""


class UnknownKindError(PredictorError):
    """A layer kind the model was not fitted on (or cannot model at all).

    Attributes:
        kinds: Kind -> number of layers the model cannot price (empty when unknown).
        supported: The groups (or kinds) the model prices.
    """

    def __init__(
        self,
        message: str,
        *,
        kinds: Mapping[str, int] | None = None,
        supported: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.kinds = dict(kinds or {})
        self.supported = list(supported)


class LeftOutLayersWarning(UserWarning):
    """A network prediction left out layers the model cannot price (totals exclude them)."""


class DeviceMismatchError(PredictorError):
    """Prediction asked for a device or element size other than the training data's."""


class DeviceMismatchWarning(UserWarning):
    """Prediction asked for a device or element size other than the training data's."""


class NetworkPrediction(NamedTuple):
    """A prediction for a whole network.

    Attributes:
        layers: One row per layer: ``index``, ``name``, ``kind``, ``group``, the predicted
            columns (units in their names), ``fallback`` (True where a constant or an
            unfitted default stood in for a learned model, see each model's docstring)
            and ``left_out`` (True for a layer the model cannot price: its predictions
            are NaN).
        totals: Network-level numbers, units in the keys (e.g. ``runtime_ms``), summed
            over the priced layers only, and ``left_out_layers`` (count of layers left
            out; when it is not 0, additive totals are lower bounds).
        left_out: Kind -> number of layers left out (empty when every layer was priced).
    """

    layers: pd.DataFrame
    totals: dict[str, float]
    left_out: Mapping[str, int] = {}  # read only: never mutated

    @property
    def complete(self) -> bool:
        """Whether every layer was priced (the totals are then whole-network totals)."""
        return not self.left_out


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`MissingColumnsError` naming every column of ``columns`` not in ``table``."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in dict.fromkeys(columns) if c not in table.columns]
    if missing:
        raise MissingColumnsError(missing, what)


def usable_rows(
    table: pd.DataFrame, target: str, *, include_low_busy: bool = False
) -> tuple[pd.DataFrame, int]:
    """The rows of a measured table that may be fitted on.

    Args:
        table: Measured table holding ``target`` (and optionally ``status``).
        target: Target column.
        include_low_busy: For a power or energy target, also fit on ``low_busy`` rows
            (power windows in which the GPU idled for over 5 % of the time).

    Returns:
        ``(rows, dropped)``: the rows whose ``status`` allows the target (when the column
        exists: :data:`USABLE_STATUS` for runtimes, :data:`USABLE_POWER_STATUS` for power
        and energy) and whose target is finite, and how many rows were dropped.

    Raises:
        MissingColumnsError: when ``target`` is not a column.
    """
    require_columns(table, [target], "fit")
    y = pd.to_numeric(table[target], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(y)
    if "status" in table.columns:
        allowed: tuple[str, ...] = USABLE_STATUS
        if is_power_target(target):
            allowed = USABLE_POWER_STATUS + (("low_busy",) if include_low_busy else ())
        keep &= table["status"].astype(str).isin(allowed).to_numpy()
    return table.loc[keep], int((~keep).sum())


def _dtype_of(table: pd.DataFrame) -> str | None:
    """The one dtype of a table's rows (``dtype`` column, else ``dtype_bytes``)."""
    if "dtype" in table.columns:
        values = sorted(set(table["dtype"].dropna().astype(str)))
        if len(values) > 1:
            raise PredictorError(
                f"training rows mix dtypes {values}: fit one model per dtype, e.g. on "
                f"table[table.dtype == {values[0]!r}]"
            )
        if values:
            return values[0]
    if "dtype_bytes" in table.columns:
        sizes = sorted({int(v) for v in table["dtype_bytes"].dropna()})
        if len(sizes) > 1:
            raise PredictorError(
                f"training rows mix element sizes {sizes} bytes: fit one model per dtype"
            )
        if sizes:
            return {8: "float64", 4: "float32", 1: "int8"}.get(sizes[0], f"{sizes[0]}-byte")
    return None


def _device_of(table: pd.DataFrame, device: str | None) -> str | None:
    if device is not None:
        return str(device)
    if "gpu_name" in table.columns:
        names = sorted(set(table["gpu_name"].dropna().astype(str)))
        if len(names) > 1:
            raise PredictorError(
                f"training rows come from several devices {names}: fit one model per device"
            )
        if names:
            return names[0]
    return None


def _dtype_bytes(dtype: str | None) -> int | None:
    if dtype is None:
        return None
    if dtype in DTYPE_BYTES:
        return DTYPE_BYTES[dtype]
    if dtype.endswith("-byte") and dtype[:-5].isdigit():
        return int(dtype[:-5])
    return None


class Estimator(BaseEstimator):
    """Base class of every hwml predictor: device bookkeeping and JSON persistence.

    Subclasses set :attr:`model_type`, take ``device_check`` as a constructor argument,
    set ``device_`` / ``dtype_`` in ``fit`` (via :meth:`_remember_data`), and implement
    :meth:`_get_state` / :meth:`_set_state`.

    Attributes:
        device_: GPU name of the training data, or None when unknown.
        dtype_: dtype name of the training data, or None when unknown.
    """

    model_type: ClassVar[str] = ""
    #: Name of the fitted attribute that proves the model is fitted.
    _fitted_attr: ClassVar[str] = "device_"

    # ------------------------------------------------------------------ bookkeeping
    def _check_device_check(self) -> None:
        check = getattr(self, "device_check", "warn")
        if check not in _DEVICE_CHECKS:
            raise ValueError(f"device_check must be one of {_DEVICE_CHECKS}, got {check!r}")

    def _remember_data(self, table: pd.DataFrame, device: str | None) -> None:
        self._check_device_check()
        self.device_ = _device_of(table, device)
        self.dtype_ = _dtype_of(table)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(table) first"
            )

    def check_device(
        self, device: str | None = None, dtype_bytes: Iterable[int] | None = None
    ) -> None:
        """Compare a prediction's device and element sizes with the training data's.

        Args:
            device: GPU name the prediction is for (None: not checked).
            dtype_bytes: Element sizes of the layers predicted (None: not checked).

        Raises:
            DeviceMismatchError: on a mismatch when ``device_check == "error"`` (a
                :class:`DeviceMismatchWarning` is issued instead for ``"warn"``).
        """
        self._check_fitted()
        problems = []
        if device is not None and self.device_ is not None and str(device) != self.device_:
            problems.append(f"fitted on device {self.device_!r}, asked to predict for {device!r}")
        fitted_bytes = _dtype_bytes(self.dtype_)
        if dtype_bytes is not None and fitted_bytes is not None:
            other = sorted({int(b) for b in dtype_bytes} - {fitted_bytes})
            if other:
                problems.append(
                    f"fitted on {self.dtype_} ({fitted_bytes}-byte elements), asked to predict "
                    f"layers with {'/'.join(map(str, other))}-byte elements"
                )
        if not problems:
            return
        message = f"{type(self).__name__}: " + "; ".join(problems)
        check = getattr(self, "device_check", "warn")
        if check == "error":
            raise DeviceMismatchError(message)
        if check == "warn":
            warnings.warn(message, DeviceMismatchWarning, stacklevel=3)

    # ------------------------------------------------------------------ persistence
    def _document_header(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "target": getattr(self, "target", None),
            "device": self.device_,
            "dtype": self.dtype_,
        }

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> Estimator:
        try:
            model = cls(**doc["params"])
            model.device_ = doc.get("device")
            model.dtype_ = doc.get("dtype")
            model._set_state(doc["state"])
        except (KeyError, TypeError) as err:
            raise io.ModelFormatError(f"damaged {cls.model_type!r} document: {err!r}") from err
        return model

    def to_dict(self) -> dict[str, Any]:
        """The model as a JSON-ready document (see :mod:`hwml.predict.io`)."""
        return io.to_document(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Estimator:
        """Rebuild a model from :meth:`to_dict` output (must be of this class)."""
        return io.from_document(doc, expected=cls)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to ``path`` as JSON; returns the path."""
        return io.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Estimator:
        """Read a model saved by :meth:`save`.

        Raises:
            ModelFormatError: when the file holds another model type or format version.
        """
        return io.load(path, expected=None if cls is Estimator else cls)


class LayerBatch(NamedTuple):
    """Layers as arrays, the form every layer model predicts from.

    Attributes:
        kinds: Layer kinds, shape ``(n,)``.
        values: The :data:`LAYER_COLUMNS` of every layer, shape ``(n, len(LAYER_COLUMNS))``.
        names: Layer names, shape ``(n,)`` (empty strings when unknown).
    """

    kinds: np.ndarray
    values: np.ndarray
    names: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """One of :data:`LAYER_COLUMNS` as a float array of shape ``(n,)``."""
        return self.values[:, _COL[name]]

    def __len__(self) -> int:
        return len(self.kinds)

    def take(self, mask: np.ndarray) -> LayerBatch:
        """The layers where ``mask`` (bool, shape ``(n,)``) is True."""
        return LayerBatch(self.kinds[mask], self.values[mask], self.names[mask])

    @classmethod
    def from_table(cls, table: pd.DataFrame, what: str = "predict") -> LayerBatch:
        """Read a layer table (columns of :meth:`Layer.to_row`)."""
        require_columns(table, ("kind", *LAYER_COLUMNS), what)
        values = table.loc[:, list(LAYER_COLUMNS)].to_numpy(dtype=float)
        kinds = table["kind"].to_numpy(dtype=str)
        names = (
            table["name"].astype(object).fillna("").to_numpy(dtype=str)
            if "name" in table.columns
            else np.full(len(table), "", dtype=object)
        )
        return cls(kinds, values, names)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> LayerBatch:
        """Read layer descriptions straight from :class:`Layer` objects (no table built)."""
        values = np.array([_ATTRS(layer) for layer in layers], dtype=float).reshape(
            len(layers), len(LAYER_COLUMNS)
        )
        kinds = np.array([layer.kind for layer in layers], dtype=str)
        names = np.array([layer.name for layer in layers], dtype=str)
        return cls(kinds, values, names)


class LayerEstimator(Estimator):
    """Base class of the per-layer models (Paleo, NeuralPower, Eyeriss).

    Subclasses implement :meth:`_predict_batch`, returning named per-layer arrays (the
    first name returned is what :meth:`predict` gives back), :meth:`_priceable` (which
    layers the fitted model can price) and :meth:`_supported` (what it prices, for
    messages).

    Constructor arguments shared by subclasses: ``kind_groups`` (a mapping kind -> group
    overriding :data:`KIND_GROUPS`, or None) and ``device_check``.
    """

    # ------------------------------------------------------------------ groups
    def _groups(self) -> dict[str, str]:
        groups = dict(KIND_GROUPS)
        groups.update(getattr(self, "kind_groups", None) or {})
        return groups

    def _group_of(self, kinds: np.ndarray) -> np.ndarray:
        """Group of every kind; ``""`` for kinds without a group (e.g. ``other``)."""
        groups = self._groups()
        return np.array([groups.get(k, "") for k in kinds], dtype=object)

    def _unknown(
        self, batch: LayerBatch, mask: np.ndarray, fitted: Iterable[str]
    ) -> UnknownKindError:
        counts = _kind_counts(batch.kinds[mask])
        fitted = sorted(fitted)
        return UnknownKindError(
            f"{type(self).__name__} cannot predict layer kind(s) {_describe_kinds(counts)}"
            f"{_layer_names(batch, mask)}: fitted groups are {', '.join(fitted) or 'none'}; "
            "fit on a table with rows of these kinds (kind 'other' is never modelled)",
            kinds=counts,
            supported=fitted,
        )

    def _priceable(self, batch: LayerBatch) -> np.ndarray:
        """Which layers the model can price: bool, shape ``(n,)``."""
        raise NotImplementedError

    def _supported(self) -> list[str]:
        """The groups (or kinds) the model prices, for messages."""
        raise NotImplementedError

    # ------------------------------------------------------------------ prediction
    def _predict_batch(self, batch: LayerBatch) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _output_name(self) -> str:
        return str(getattr(self, "target", "prediction"))

    def predict(self, table: pd.DataFrame, *, device: str | None = None) -> np.ndarray:
        """Predict every row of a layer table.

        Args:
            table: Layer table (columns of :meth:`Layer.to_row`).
            device: GPU name the prediction is for; compared with the training device.

        Returns:
            Predictions of shape ``(n,)`` in the unit of the model's target.

        Raises:
            MissingColumnsError: for missing layer columns.
            UnknownKindError: for a kind the model was not fitted on.
        """
        self._check_fitted()
        batch = LayerBatch.from_table(table)
        self.check_device(device, np.unique(batch.column("dtype_bytes")))
        return self._predict_batch(batch)[self._output_name()]

    def predict_layers(
        self, layers: Sequence[Layer] | Network, *, device: str | None = None
    ) -> np.ndarray:
        """Like :meth:`predict`, for :class:`Layer` objects (or a network's layers)."""
        self._check_fitted()
        batch = LayerBatch.from_layers(list(layers))
        self.check_device(device, np.unique(batch.column("dtype_bytes")))
        return self._predict_batch(batch)[self._output_name()]

    def predict_network(
        self, net: Network | pd.DataFrame, *, device: str | None = None, strict: bool = False
    ) -> NetworkPrediction:
        """Predict a whole network layer by layer.

        Args:
            net: A :class:`Network` description, or its ``table()``.
            device: GPU name the prediction is for; compared with the training device.
            strict: Raise :class:`UnknownKindError` for layers the model cannot price,
                instead of leaving them out (see the module docstring).

        Returns:
            :class:`NetworkPrediction`: the per-layer frame and the network totals
            (see :meth:`_totals` of each model) over the priced layers.

        Raises:
            UnknownKindError: with ``strict=True``, naming the kinds the model cannot
                price and the groups it prices.

        Warns:
            LeftOutLayersWarning: with ``strict=False``, when layers were left out.
        """
        self._check_fitted()
        batch = (
            LayerBatch.from_table(net)
            if isinstance(net, pd.DataFrame)
            else LayerBatch.from_layers(net.layers)
        )
        self.check_device(device, np.unique(batch.column("dtype_bytes")))
        return self._assemble(batch, lambda rows: self._predict_batch(batch.take(rows)), strict)

    def _assemble(
        self,
        batch: LayerBatch,
        predict: Callable[[np.ndarray], Mapping[str, np.ndarray]],
        strict: bool,
    ) -> NetworkPrediction:
        """Predict the layers the model can price and report the others.

        Args:
            batch: The network's layers.
            predict: Predicts the layers selected by a bool mask of shape ``(n,)``,
                returning named arrays of the selected length.
            strict: Raise instead of leaving layers out.
        """
        priced = np.asarray(self._priceable(batch), dtype=bool)
        left = ~priced
        if left.any() and strict:
            raise self._unknown(batch, left, self._supported())
        out = predict(priced)
        full: dict[str, np.ndarray] = {}
        for key, values in out.items():
            values = np.asarray(values)
            if values.dtype.kind == "b":
                column = np.zeros(len(batch), dtype=bool)
            else:
                column = np.full(len(batch), np.nan)
            column[priced] = values
            full[key] = column
        frame = pd.DataFrame(
            {
                "index": np.arange(len(batch)),
                "name": batch.names,
                "kind": batch.kinds,
                "group": self._group_of(batch.kinds),
                **full,
                "left_out": left,
            }
        )
        totals = self._totals(out)
        totals["left_out_layers"] = float(left.sum())
        counts = _kind_counts(batch.kinds[left])
        if counts:
            warnings.warn(
                f"{type(self).__name__} left out {int(left.sum())} of {len(batch)} layers it "
                f"cannot price: {_describe_kinds(counts)}{_layer_names(batch, left)}; it prices "
                f"{', '.join(self._supported()) or 'nothing'}. Their predictions are NaN "
                "(column left_out) and the totals exclude them (runtime and energy totals "
                "are lower bounds); pass strict=True to raise instead",
                LeftOutLayersWarning,
                stacklevel=3,
            )
        return NetworkPrediction(frame, totals, counts)

    def _totals(self, out: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Network totals: the sum of every additive output (``*_ms``, ``*_mj``, ...)."""
        additive = ("_ms", "_s", "_mj", "_j", "_bytes")
        return {
            k: float(np.sum(v))
            for k, v in out.items()
            if k.endswith(additive) and np.asarray(v).dtype.kind == "f"
        }


def _kind_counts(kinds: np.ndarray) -> dict[str, int]:
    """Kind -> number of layers, kinds sorted by name."""
    return dict(sorted(Counter(str(k) for k in kinds).items()))


def _describe_kinds(counts: Mapping[str, int]) -> str:
    """``'attention' (1 layer), 'norm' (2 layers)``."""
    return ", ".join(f"{k!r} ({n} layer{'s' if n != 1 else ''})" for k, n in counts.items())


def _layer_names(batch: LayerBatch, mask: np.ndarray, most: int = 5) -> str:
    """`` (layers a, b, c, ...)`` for the first named layers of ``mask``, or ``""``."""
    names = [str(n) for n in batch.names[mask] if n]
    if not names:
        return ""
    more = ", ..." if len(names) > most else ""
    return f" (layers {', '.join(names[:most])}{more})"
