"""Layer-runtime models that move from a measured *source* device to a new *target* device.

Every other model in :mod:`hwml.predict` is fitted per device on thousands of rows. Here
the source device (e.g. an H200) has many measured layers and the target device (e.g. a
CPU) has only ``k`` (0, 5, 20, ...). Four estimators share one interface::

    model.fit(source_rows, target_rows)      # target_rows may have 0..N rows
    model.predict(rows) -> runtime_ms array  # for target-device layers
    model.save(path); hwml.predict.load(path)

All of them work on logarithms: ``lf = ln(max(flops + vector_ops, 1))`` (the work, as
in :class:`~hwml.predict.paleo.Paleo`, so pooling has some) and
``lb = ln(max(total_bytes, 1))``, and regress ``ln(runtime_ms)``; kinds are pooled into
the groups of :data:`~hwml.predict.base.KIND_GROUPS`.

* :class:`ScratchTransfer` (**scratch**): the target rows only. Per-group log-linear
  regression ``ln t = a + b lf + c lb``, shrunk toward one pooled (all-groups) fit.
* :class:`RescaleTransfer` (**rescale**): a source model ``s(x)`` (per-group quadratic in
  ``lf``, ``lb``, fitted on the source rows) corrected on the target by an affine map of
  its log-prediction, ``ln t = a_g + b_g s(x)``, per group, shrunk toward a pooled map,
  whose prior is the identity. With no target rows it returns the source prediction.
* :class:`MetaTransfer` (**meta**, HELP-like): the source rows are split into tasks
  (dtypes, eager and CUDA-graph runtimes); ``ln t = w . [1, s_mean(x), lf, lb]`` plus
  per-group corrections, where the prior of ``w`` is learned by treating each source task
  in turn as a target of the others.
* :class:`RooflineTransfer` (**roofline**, no rows needed): ``max(work / peak,
  bytes / bandwidth) + overhead`` from measured ceilings
  (:func:`hwml.profile.measure_ceilings`).

**Shrinkage, shared by the three fitted models.** Each is a Bayesian linear regression
with a Gaussian prior on the pooled coefficients (its mean and scale say what the model
believes before seeing target rows) and a Gaussian prior of mean 0 and scale
``group_scale`` on every group's deviation from the pooled coefficients. The posterior
mean is a ridge solution with penalty ``noise_var / prior_var``, where ``noise_var`` is
re-estimated from the residuals (``(noise_dof * noise_scale^2 + RSS) / (noise_dof + n -
effective parameters)``, iterated to a fixed point). So a group with few rows stays near
the pooled fit, and the fit follows the data exactly when the data are noise-free (the
estimated noise then tends to 0 and so does the penalty). A group with no target rows is
predicted by the pooled coefficients.

Helpers: :func:`choose_rows` (which ``k`` target layers to measure), :func:`transfer_curve`
(layer error versus ``k`` as a tidy frame), :func:`network_curve` (the same for whole
networks priced as the sum of their layers, :func:`predict_networks` over
:func:`network_layers`), :func:`summarize_curve` and :func:`best_within` (medians over
seeds; the best entry within a budget of ``k`` and whether it meets an error target),
:func:`transfer_pairs` (source -> target pairs among a list of platforms, several
sources at once included) with :func:`transfer_methods` (the methods that apply to a
source), :func:`pair_rows` (same layer on two devices, by ``key`` and ``dtype``) and
:func:`ceilings_of` (the roofline constants a dataset's provenance records, None for
those never measured).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.cluster import KMeans

from hwml.predict import io, metrics
from hwml.predict.base import (
    DTYPE_BYTES,
    KIND_GROUPS,
    Estimator,
    PredictorError,
    TooFewRowsError,
    UnknownKindError,
    _device_of,
    _dtype_of,
    require_columns,
    usable_rows,
)

__all__ = [
    "CURVE_COLUMNS",
    "NETWORK_CURVE_COLUMNS",
    "TransferEstimator",
    "ScratchTransfer",
    "RescaleTransfer",
    "MetaTransfer",
    "RooflineTransfer",
    "choose_rows",
    "pair_rows",
    "transfer_curve",
    "network_curve",
    "transfer_methods",
    "transfer_pairs",
    "network_layers",
    "summarize_curve",
    "best_within",
    "predict_networks",
    "FEATURE_COLUMNS",
    "CEILING_KEYS",
    "ceilings_of",
]

CURVE_COLUMNS = (
    "method",
    "k",
    "k_used",
    "capped",
    "how",
    "seed",
    "n_test",
    "mape_pct",
    "medape_pct",
    "spearman",
    "error",
)
"""Columns of :func:`transfer_curve`'s table, in order."""

NETWORK_CURVE_COLUMNS = (
    "method",
    "k",
    "k_used",
    "capped",
    "how",
    "seed",
    "n_nets",
    "mape_pct",
    "medape_pct",
    "spearman",
    "median_ratio",
    "error",
)
"""Columns of :func:`network_curve`'s table, in order."""

#: Columns every transfer model reads from a layer table.
FEATURE_COLUMNS: tuple[str, ...] = ("kind", "flops", "vector_ops", "total_bytes")

_BIG = 1e3  # prior scale that means "no prior" (on log-runtime coefficients)


# ====================================================================== features


def _groups_of(kinds: Iterable[str], kind_groups: Mapping[str, str] | None) -> np.ndarray:
    table = dict(KIND_GROUPS)
    table.update(kind_groups or {})
    kinds = pd.Series(kinds if isinstance(kinds, pd.Series) else list(kinds), dtype=object)
    return kinds.astype(str).map(table).fillna("").to_numpy(dtype=object)


def _log_features(
    table: pd.DataFrame, kind_groups: Mapping[str, str] | None, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(groups, lf, lb)`` of a layer table; raises for layers without a group."""
    require_columns(table, FEATURE_COLUMNS, what)
    groups = _groups_of(table["kind"].astype(str), kind_groups)
    if (groups == "").any():
        bad = table["kind"].astype(str).to_numpy()[groups == ""]
        counts = pd.Series(bad).value_counts().to_dict()
        raise UnknownKindError(
            f"{what}: layer kind(s) {counts} have no group (kind 'other' is never modelled)",
            kinds=counts,
            supported=sorted(set(KIND_GROUPS.values())),
        )
    work = table["flops"].to_numpy(dtype=float) + table["vector_ops"].to_numpy(dtype=float)
    lf = np.log(np.maximum(work, 1.0))
    lb = np.log(np.maximum(table["total_bytes"].to_numpy(dtype=float), 1.0))
    return groups, lf, lb


def _target_rows(
    table: pd.DataFrame | None, target: str, kind_groups: Mapping[str, str] | None, what: str
) -> pd.DataFrame:
    """Usable rows (finite, positive target, a known group) of a measured table."""
    if table is None:
        return pd.DataFrame(columns=[*FEATURE_COLUMNS, target])
    rows, _ = usable_rows(table, target)
    rows = rows[pd.to_numeric(rows[target], errors="coerce") > 0]
    require_columns(rows, FEATURE_COLUMNS, what)
    return rows[_groups_of(rows["kind"].astype(str), kind_groups) != ""]


# ====================================================================== the shared solver


def _design(basis: np.ndarray, groups: np.ndarray, names: Sequence[str], cols: Sequence[int]):
    """Pooled columns followed by one block of ``cols`` per group name (zero elsewhere)."""
    blocks = [basis]
    for g in names:
        mask = (groups == g).astype(float)[:, None]
        blocks.append(basis[:, list(cols)] * mask)
    return np.hstack(blocks)


def _fit_shrunk(
    basis: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    prior_mean: np.ndarray,
    prior_scale: np.ndarray,
    *,
    group_cols: Sequence[int],
    group_scale: float,
    noise_scale: float,
    noise_dof: float,
    iterations: int = 50,
) -> dict[str, Any]:
    """Posterior mean of pooled + per-group coefficients (see the module docstring).

    Returns the state dict ``{"pooled": [...], "groups": {g: [...]}, "cols": [...],
    "noise_var": float}``; a group's coefficients are deviations added to the pooled
    ones on ``cols``.
    """
    names = sorted(set(groups.tolist()))
    p, q = basis.shape[1], len(group_cols)
    X = _design(basis, groups, names, group_cols)
    mean = np.concatenate([prior_mean, np.zeros(q * len(names))])
    prec = np.concatenate([1.0 / np.asarray(prior_scale) ** 2, np.full(q * len(names), 1.0)])
    prec[p:] /= group_scale**2
    n = len(y)
    noise = noise_scale**2
    XtX, Xty = X.T @ X, X.T @ y
    w = mean.copy()
    for _ in range(iterations):
        A = XtX + noise * np.diag(prec)
        try:
            w = np.linalg.solve(A, Xty + noise * prec * mean)
        except np.linalg.LinAlgError:  # noise-free data and a flat prior: least norm
            w = np.linalg.lstsq(A, Xty + noise * prec * mean, rcond=None)[0]
        if n == 0:
            break
        resid = y - X @ w
        dof = float(np.trace(np.linalg.lstsq(A, XtX, rcond=None)[0]))  # effective parameters
        new = (noise_dof * noise_scale**2 + resid @ resid) / max(noise_dof + n - dof, 1e-9)
        new = max(new, 1e-14)  # a relative noise of 1e-7: exact data
        done = abs(new - noise) <= 1e-10 * noise
        noise = new
        if done:
            break
    return {
        "pooled": w[:p].tolist(),
        "groups": {g: w[p + i * q : p + (i + 1) * q].tolist() for i, g in enumerate(names)},
        "cols": list(group_cols),
        "noise_var": float(noise),
    }


def _predict_shrunk(state: Mapping[str, Any], basis: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = basis @ np.asarray(state["pooled"], dtype=float)
    cols = list(state["cols"])
    for g, dev in state["groups"].items():
        mask = groups == g
        if mask.any():
            out[mask] += basis[mask][:, cols] @ np.asarray(dev, dtype=float)
    return out


# ====================================================================== the source model


def _quadratic(lf: np.ndarray, lb: np.ndarray, center: Sequence[float]) -> np.ndarray:
    u = (lf - center[0]) / center[2]
    v = (lb - center[1]) / center[3]
    return np.column_stack([np.ones_like(u), u, v, u * u, v * v, u * v])


_SOURCE_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}
_PRIOR_CACHE: dict[tuple[Any, ...], Any] = {}


def _digest(rows: pd.DataFrame, target: str | None) -> str:
    """A hash of the feature (and target) values of a table (order matters, index not)."""
    cols = [*FEATURE_COLUMNS, target] if target else list(FEATURE_COLUMNS)
    values = pd.util.hash_pandas_object(rows[cols], index=False)
    return hashlib.sha1(values.to_numpy().tobytes()).hexdigest()


def _fit_source(
    rows: pd.DataFrame, target: str, kind_groups: Mapping[str, str] | None
) -> dict[str, Any]:
    """Per-group quadratic regression of ``ln(target)`` on ``lf``, ``lb`` (source rows).

    Near-flat priors, groups shrunk toward the pooled quadratic (scale 1 in log units).
    The fit is deterministic, so the last few are kept, keyed by a hash of the rows'
    values (an evaluation refits the same source hundreds of times).
    """
    if len(rows) >= 6:
        require_columns(rows, [*FEATURE_COLUMNS, target], "fit (source rows)")
        key = (_digest(rows, target), target, tuple(sorted((kind_groups or {}).items())))
        if key not in _SOURCE_CACHE:
            if len(_SOURCE_CACHE) >= 16:
                _SOURCE_CACHE.pop(next(iter(_SOURCE_CACHE)))
            _SOURCE_CACHE[key] = _fit_source_uncached(rows, target, kind_groups)
        return copy.deepcopy(_SOURCE_CACHE[key])
    return _fit_source_uncached(rows, target, kind_groups)


def _fit_source_uncached(
    rows: pd.DataFrame, target: str, kind_groups: Mapping[str, str] | None
) -> dict[str, Any]:
    if len(rows) < 6:
        raise TooFewRowsError(f"the source model needs at least 6 source rows, got {len(rows)}")
    groups, lf, lb = _log_features(rows, kind_groups, "fit (source rows)")
    center = [
        float(lf.mean()),
        float(lb.mean()),
        float(lf.std() or 1.0),
        float(lb.std() or 1.0),
    ]
    basis = _quadratic(lf, lb, center)
    y = np.log(rows[target].to_numpy(dtype=float))
    state = _fit_shrunk(
        basis,
        y,
        groups,
        np.zeros(6),
        np.full(6, 10.0),
        group_cols=range(6),
        group_scale=1.0,
        noise_scale=0.3,
        noise_dof=1.0,
    )
    state["center"] = center
    state["range"] = [float(lf.min()), float(lf.max()), float(lb.min()), float(lb.max())]
    state["group_ranges"] = {
        g: [float(lf[m].min()), float(lf[m].max()), float(lb[m].min()), float(lb[m].max())]
        for g in state["groups"]
        for m in [groups == g]
    }
    return state


def _predict_source(
    state: Mapping[str, Any], groups: np.ndarray, lf, lb, name: str, unknown_groups: str = "raise"
) -> np.ndarray:
    """Log-runtime of the source model.

    The quadratic is never extrapolated: each layer's ``lf`` and ``lb`` are clipped to the
    range of its group's source rows (a quadratic fitted on activations of thousands of
    elements, asked for one of eight, would otherwise predict seconds). A group without
    source rows raises (``unknown_groups="raise"``) or is priced by the pooled
    (all-groups) coefficients, clipped to the range of all source rows (``"pooled"``; a
    concatenation has no FLOPs at all).
    """
    known = set(state["groups"])
    unknown = sorted(set(groups.tolist()) - known)
    if unknown and unknown_groups != "pooled":
        raise UnknownKindError(
            f"source model {name!r} has no rows of group(s) {unknown}; it knows {sorted(known)}",
            kinds={g: int((groups == g).sum()) for g in unknown},
            supported=sorted(known),
        )
    if "range" in state:  # models saved before ranges were kept are not clipped
        lf, lb = np.array(lf, dtype=float), np.array(lb, dtype=float)
        ranges = state.get("group_ranges", {})
        for g in set(groups.tolist()):
            lo_f, hi_f, lo_b, hi_b = ranges.get(g, state["range"])
            mask = groups == g
            lf[mask] = np.clip(lf[mask], lo_f, hi_f)
            lb[mask] = np.clip(lb[mask], lo_b, hi_b)
    return _predict_shrunk(state, _quadratic(lf, lb, state["center"]), groups)


# ====================================================================== estimators


class TransferEstimator(Estimator):
    """Base class of the transfer models: target-device bookkeeping, predict, persistence.

    Subclasses implement :meth:`_fit` (source rows, usable target rows) and
    :meth:`_log_predict`. ``device_`` and ``dtype_`` describe the *target* rows (None
    when there were none).
    """

    _fitted_attr: ClassVar[str] = "state_"

    def fit(
        self,
        source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
        target_rows: pd.DataFrame | None = None,
        *,
        device: str | None = None,
    ) -> TransferEstimator:
        """Fit on the source device's rows and the (0..N) measured target rows.

        Args:
            source_rows: Measured layer table of the source device (see each class).
            target_rows: Measured layer table of the target device; None or empty for
                ``k = 0``. Only usable rows (status ok / no_power, positive runtime)
                count.
            device: Name of the target device (else read from ``gpu_name``).

        Returns:
            self.
        """
        self._check_device_check()
        target = _target_rows(target_rows, self.target, self.kind_groups, "fit (target rows)")
        self.n_target_ = len(target)
        self.device_ = _device_of(target, device) if len(target) else device
        self.dtype_ = _dtype_of(target) if len(target) else None
        self.state_ = self._fit(source_rows, target)
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted target-device runtime (ms) of every row, shape ``(n,)``."""
        self._check_fitted()
        return np.exp(self._log_predict(rows))

    def _fit(self, source_rows: Any, target: pd.DataFrame) -> dict[str, Any]:
        raise NotImplementedError

    def _log_predict(self, rows: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _get_state(self) -> dict[str, Any]:
        self._check_fitted()
        return {"n_target": self.n_target_, **self.state_}

    def _set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.n_target_ = int(state.pop("n_target"))
        self.state_ = state


def _source_table(source_rows: Any, what: str) -> pd.DataFrame:
    if isinstance(source_rows, Mapping):
        if len(source_rows) != 1:
            raise PredictorError(
                f"{what} takes one source table, got {len(source_rows)} tasks; use "
                "MetaTransfer for several"
            )
        source_rows = next(iter(source_rows.values()))
    if not isinstance(source_rows, pd.DataFrame):
        raise TypeError(f"{what}: source_rows must be a DataFrame")
    _dtype_of(source_rows)  # one dtype only
    return source_rows


@io.register
class ScratchTransfer(TransferEstimator):
    """Target rows only: per-group ``ln t = a + b (lf - mean) + c (lb - mean)``.

    The source rows are ignored (pass None). Priors: flat on the intercept, scale
    ``slope_scale`` (mean 0) on the two slopes, ``group_scale`` on each group's
    deviation from the pooled coefficients (see the module docstring). It is defined for
    any ``k >= 1``: at ``k = 1`` it predicts that row's runtime for every layer (the
    centred features are 0 and the slopes stay at their prior mean), and the slopes and
    then the group deviations take over as rows arrive. Groups without target rows use
    the pooled fit.

    Raises:
        TooFewRowsError: from ``fit`` when there are no target rows (``k = 0``): a
            model from scratch needs measured target rows.
    """

    model_type: ClassVar[str] = "transfer_scratch"

    def __init__(
        self,
        slope_scale: float = 1.0,
        group_scale: float = 1.0,
        noise_scale: float = 0.3,
        noise_dof: float = 1.0,
        target: str = "runtime_ms",
        kind_groups: Mapping[str, str] | None = None,
        device_check: str = "warn",
    ) -> None:
        self.slope_scale = slope_scale
        self.group_scale = group_scale
        self.noise_scale = noise_scale
        self.noise_dof = noise_dof
        self.target = target
        self.kind_groups = kind_groups
        self.device_check = device_check

    def _fit(self, source_rows: Any, target: pd.DataFrame) -> dict[str, Any]:
        if len(target) == 0:
            raise TooFewRowsError(
                "ScratchTransfer needs measured target rows (k >= 1) and got none: "
                "measure some target layers, or use RescaleTransfer / MetaTransfer / "
                "RooflineTransfer, which work at k = 0"
            )
        groups, lf, lb = _log_features(target, self.kind_groups, "fit (target rows)")
        center = [float(lf.mean()), float(lb.mean())]
        basis = np.column_stack([np.ones_like(lf), lf - center[0], lb - center[1]])
        state = _fit_shrunk(
            basis,
            np.log(target[self.target].to_numpy(dtype=float)),
            groups,
            np.zeros(3),
            np.array([_BIG, self.slope_scale, self.slope_scale]),
            group_cols=range(3),
            group_scale=self.group_scale,
            noise_scale=self.noise_scale,
            noise_dof=self.noise_dof,
        )
        return {"map": state, "center": center}

    def _log_predict(self, rows: pd.DataFrame) -> np.ndarray:
        groups, lf, lb = _log_features(rows, self.kind_groups, "predict")
        c = self.state_["center"]
        basis = np.column_stack([np.ones_like(lf), lf - c[0], lb - c[1]])
        return _predict_shrunk(self.state_["map"], basis, groups)


@io.register
class RescaleTransfer(TransferEstimator):
    """A source-device model, corrected on the target by a per-group affine map of logs.

    ``ln t = a_g + b_g s(x)`` where ``s`` is the source model's log-runtime (per-group
    quadratic in ``lf``, ``lb``, fitted on ``source_rows``, one dtype). The pooled map
    has prior mean ``(a, b) = (0, 1)`` (the identity: runtime = source runtime) with
    scales ``shift_scale`` and ``slope_scale``; each group's deviation has scale
    ``group_scale``. So a group with few rows gets the pooled map (a common speed-up or
    slow-down), a group with many rows its own, a group without rows the pooled one.

    With no target rows (``k = 0``) the map stays the identity and :meth:`predict`
    returns the source model's prediction unchanged.

    The source model prices only groups present in the source rows: another group raises
    :class:`~hwml.predict.base.UnknownKindError` (``unknown_groups="raise"``, the
    default) or is priced by the source model's pooled (all-groups) coefficients
    (``unknown_groups="pooled"``; e.g. a CPU sweep without concatenations asked for a
    network that has some).
    """

    model_type: ClassVar[str] = "transfer_rescale"

    def __init__(
        self,
        shift_scale: float = _BIG,
        slope_scale: float = 0.5,
        group_scale: float = 1.0,
        noise_scale: float = 0.3,
        noise_dof: float = 1.0,
        target: str = "runtime_ms",
        source_target: str = "runtime_ms",
        unknown_groups: str = "raise",
        kind_groups: Mapping[str, str] | None = None,
        device_check: str = "warn",
    ) -> None:
        self.shift_scale = shift_scale
        self.slope_scale = slope_scale
        self.group_scale = group_scale
        self.noise_scale = noise_scale
        self.noise_dof = noise_dof
        self.target = target
        self.source_target = source_target
        self.unknown_groups = unknown_groups
        self.kind_groups = kind_groups
        self.device_check = device_check

    def _fit(self, source_rows: Any, target: pd.DataFrame) -> dict[str, Any]:
        table = _source_table(source_rows, "RescaleTransfer")
        src = _target_rows(table, self.source_target, self.kind_groups, "fit (source rows)")
        source = _fit_source(src, self.source_target, self.kind_groups)
        groups, lf, lb = _log_features(target, self.kind_groups, "fit (target rows)")
        s = _predict_source(source, groups, lf, lb, "source", self._unknown())
        state = _fit_shrunk(
            np.column_stack([np.ones_like(s), s]),
            np.log(target[self.target].to_numpy(dtype=float)),
            groups,
            np.array([0.0, 1.0]),
            np.array([self.shift_scale, self.slope_scale]),
            group_cols=(0, 1),
            group_scale=self.group_scale,
            noise_scale=self.noise_scale,
            noise_dof=self.noise_dof,
        )
        return {"source": source, "map": state}

    def predict_source(self, rows: pd.DataFrame) -> np.ndarray:
        """The source model's own prediction (ms, source device) of every row."""
        self._check_fitted()
        groups, lf, lb = _log_features(rows, self.kind_groups, "predict")
        state = self.state_["source"]
        return np.exp(_predict_source(state, groups, lf, lb, "source", self._unknown()))

    def _unknown(self) -> str:
        return _check_unknown_groups(getattr(self, "unknown_groups", "raise"))

    def _log_predict(self, rows: pd.DataFrame) -> np.ndarray:
        groups, lf, lb = _log_features(rows, self.kind_groups, "predict")
        s = _predict_source(self.state_["source"], groups, lf, lb, "source", self._unknown())
        return _predict_shrunk(self.state_["map"], np.column_stack([np.ones_like(s), s]), groups)


def _tasks(
    source_rows: Any, targets: Sequence[str], kind_groups: Mapping[str, str] | None
) -> dict[str, pd.DataFrame]:
    """Source tasks: every (table, dtype, runtime column) with enough usable rows."""
    if isinstance(source_rows, pd.DataFrame):
        source_rows = {"source": source_rows}
    if not isinstance(source_rows, Mapping) or not source_rows:
        raise TypeError("MetaTransfer: source_rows must be a DataFrame or a dict of them")
    out: dict[str, pd.DataFrame] = {}
    for name, table in source_rows.items():
        parts = table.groupby("dtype", sort=True) if "dtype" in table.columns else [("", table)]
        for dtype, part in parts:
            for col in targets:
                if col not in part.columns:
                    continue
                rows = _target_rows(part, col, kind_groups, "fit (source rows)")
                if len(rows) >= 6:
                    label = ":".join(str(x) for x in (name, dtype, col) if x != "")
                    y = rows[col].to_numpy(dtype=float)
                    out[label] = rows.assign(_task_y=y, _y=np.log(y))
    if not out:
        raise TooFewRowsError("MetaTransfer: no source task has 6 usable rows")
    return out


@io.register
class MetaTransfer(TransferEstimator):
    """Source devices as tasks; a prior over target maps learned across them (HELP-like).

    **Tasks.** ``source_rows`` is a layer table or a dict ``name -> table``; each
    (table, dtype, column of ``task_targets``) with at least 6 usable rows is a task,
    e.g. H200 fp32 eager, H200 fp16 eager, H200 fp32 CUDA-graph time. Each task gets a
    source model ``s_t`` (as in :class:`RescaleTransfer`); ``s_mean`` is their mean.

    **Target model.** ``ln t = w . [1, s_mean(x), lf, lb]`` plus per-group deviations
    of the first two coefficients (scale ``group_scale``), a Bayesian linear regression
    fitted on the ``k`` target rows (module docstring).

    **The prior, learned across tasks.** Each task ``t`` in turn plays the target: its
    own log-runtimes are regressed (least squares, pooled) on ``[1, mean of the other
    tasks' s, lf, lb]``, giving ``w_t``. The prior mean of ``w`` is the mean of the
    ``w_t``, its scale their standard deviation, floored at ``min_scale`` (and at
    ``shift_scale`` for the intercept: devices differ by orders of magnitude in speed,
    which the tasks of one GPU cannot show). With a single task there is nothing to learn
    from and the prior is the rescale prior ``(0, 1, 0, 0)`` with scales ``(shift_scale,
    0.5, min_scale, min_scale)``. With no target rows the prediction is the prior
    mean's.

    **How close to HELP.** HELP (Lee et al., NeurIPS 2021) embeds a device by the
    latencies of a few reference architectures measured on it, and meta-learns (MAML) a
    neural latency predictor conditioned on that embedding over many training devices,
    adapting it to a new device with a few samples. Here the "device features" are the
    source models' predictions for the layer (not measured reference latencies), the
    predictor is linear in log space, and meta-learning is reduced to estimating a
    Gaussian prior (empirical Bayes) from a handful of source tasks; adaptation is the
    exact Bayesian posterior rather than gradient steps. With tasks from one GPU the
    learned prior mainly says "the target behaves like a rescaled source"; it becomes
    informative only with genuinely different source devices.

    **Groups a source lacks.** A group with no rows in a task's table (e.g. a CPU sweep
    without concatenations) raises :class:`~hwml.predict.base.UnknownKindError` when a
    layer of it is fitted or predicted (``unknown_groups="raise"``, the default), or is
    priced by that task's pooled source coefficients (``"pooled"``). The prior is
    learned on the groups every other task knows, either way.
    """

    model_type: ClassVar[str] = "transfer_meta"

    def __init__(
        self,
        task_targets: Sequence[str] = ("runtime_ms", "runtime_graph_ms"),
        shift_scale: float = _BIG,
        min_scale: float = 0.1,
        group_scale: float = 1.0,
        noise_scale: float = 0.3,
        noise_dof: float = 1.0,
        max_task_rows: int = 2000,
        target: str = "runtime_ms",
        unknown_groups: str = "raise",
        kind_groups: Mapping[str, str] | None = None,
        device_check: str = "warn",
    ) -> None:
        self.task_targets = task_targets
        self.shift_scale = shift_scale
        self.min_scale = min_scale
        self.group_scale = group_scale
        self.noise_scale = noise_scale
        self.noise_dof = noise_dof
        self.max_task_rows = max_task_rows
        self.target = target
        self.unknown_groups = unknown_groups
        self.kind_groups = kind_groups
        self.device_check = device_check

    def _fit(self, source_rows: Any, target: pd.DataFrame) -> dict[str, Any]:
        tasks = _tasks(source_rows, list(self.task_targets), self.kind_groups)
        models = {
            name: _fit_source(rows, "_task_y", self.kind_groups) for name, rows in tasks.items()
        }
        key = (
            tuple((name, _digest(rows, "_task_y")) for name, rows in tasks.items()),
            self.shift_scale,
            self.min_scale,
            self.max_task_rows,
            tuple(sorted((self.kind_groups or {}).items())),
        )
        if key not in _PRIOR_CACHE:  # deterministic; an evaluation refits it many times
            if len(_PRIOR_CACHE) >= 16:
                _PRIOR_CACHE.pop(next(iter(_PRIOR_CACHE)))
            _PRIOR_CACHE[key] = self._learn_prior(tasks, models)
        prior_mean, prior_scale, learned = copy.deepcopy(_PRIOR_CACHE[key])
        groups, lf, lb = _log_features(target, self.kind_groups, "fit (target rows)")
        basis = self._basis(models, groups, lf, lb, self._unknown())
        state = _fit_shrunk(
            basis,
            np.log(target[self.target].to_numpy(dtype=float)),
            groups,
            prior_mean,
            prior_scale,
            group_cols=(0, 1),
            group_scale=self.group_scale,
            noise_scale=self.noise_scale,
            noise_dof=self.noise_dof,
        )
        return {
            "sources": models,
            "prior_mean": prior_mean.tolist(),
            "prior_scale": prior_scale.tolist(),
            "task_weights": learned,
            "map": state,
        }

    def _learn_prior(
        self, tasks: Mapping[str, pd.DataFrame], models: Mapping[str, Any]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
        floor = np.array([self.shift_scale, self.min_scale, self.min_scale, self.min_scale])
        if len(tasks) < 2:
            return np.array([0.0, 1.0, 0.0, 0.0]), np.maximum(floor, [0, 0.5, 0, 0]), {}
        learned: dict[str, list[float]] = {}
        for name, rows in tasks.items():
            if len(rows) > self.max_task_rows:  # deterministic thinning, for speed
                rows = rows.iloc[np.linspace(0, len(rows) - 1, self.max_task_rows).astype(int)]
            groups, lf, lb = _log_features(rows, self.kind_groups, "fit (source rows)")
            others = {k: v for k, v in models.items() if k != name}
            try:
                basis = self._basis(others, groups, lf, lb)
            except UnknownKindError:  # another task lacks a group of this one: skip those
                keep = np.ones(len(rows), dtype=bool)
                for m in others.values():
                    keep &= np.isin(groups, list(m["groups"]))
                if keep.sum() < 6:
                    continue
                groups, lf, lb = groups[keep], lf[keep], lb[keep]
                rows = rows[keep]
                basis = self._basis(others, groups, lf, lb)
            w, *_ = np.linalg.lstsq(basis, rows["_y"].to_numpy(dtype=float), rcond=None)
            learned[name] = w.tolist()
        if len(learned) < 2:
            return np.array([0.0, 1.0, 0.0, 0.0]), np.maximum(floor, [0, 0.5, 0, 0]), learned
        W = np.array(list(learned.values()))
        return W.mean(axis=0), np.maximum(W.std(axis=0, ddof=1), floor), learned

    def _unknown(self) -> str:
        return _check_unknown_groups(getattr(self, "unknown_groups", "raise"))

    @staticmethod
    def _basis(
        models: Mapping[str, Any], groups, lf, lb, unknown_groups: str = "raise"
    ) -> np.ndarray:
        s = np.mean(
            [_predict_source(m, groups, lf, lb, k, unknown_groups) for k, m in models.items()],
            axis=0,
        )
        return np.column_stack([np.ones_like(lf), s, lf, lb])

    def _log_predict(self, rows: pd.DataFrame) -> np.ndarray:
        groups, lf, lb = _log_features(rows, self.kind_groups, "predict")
        basis = self._basis(self.state_["sources"], groups, lf, lb, self._unknown())
        return _predict_shrunk(self.state_["map"], basis, groups)


@io.register
class RooflineTransfer(TransferEstimator):
    """Analytic: ``runtime = max(work / peak, bytes / bandwidth) + overhead`` (ms).

    ``work = flops + vector_ops`` and ``bytes = total_bytes``, as in
    :class:`~hwml.predict.paleo.Paleo`. The three constants come from a microbenchmark
    of the target (:func:`hwml.profile.measure_ceilings`; ``RooflineTransfer(**{k: c[k]
    for k in ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms")})`` or
    :meth:`from_ceilings`), so no layer of the target needs to be timed: ``fit`` works
    with no rows at all and ignores the source rows.

    Optionally (``envelope=True``), when target rows are given the constants are read
    from the rows' upper envelope instead: ``overhead = envelope_overhead x`` the
    fastest row's runtime, ``peak = max(work / (t - overhead))``, ``bandwidth = max(bytes
    / (t - overhead))``, i.e. the best rates any measured layer reached. Constants left
    None must then come from the rows.
    """

    model_type: ClassVar[str] = "transfer_roofline"

    def __init__(
        self,
        peak_flops_per_s: float | None = None,
        bandwidth_bytes_per_s: float | None = None,
        overhead_ms: float | None = 0.0,
        envelope: bool = False,
        envelope_overhead: float = 0.5,
        target: str = "runtime_ms",
        kind_groups: Mapping[str, str] | None = None,
        device_check: str = "warn",
    ) -> None:
        self.peak_flops_per_s = peak_flops_per_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.overhead_ms = overhead_ms
        self.envelope = envelope
        self.envelope_overhead = envelope_overhead
        self.target = target
        self.kind_groups = kind_groups
        self.device_check = device_check

    @classmethod
    def from_ceilings(cls, ceilings: Mapping[str, Any], **kwargs: Any) -> RooflineTransfer:
        """A model with the constants of :func:`hwml.profile.measure_ceilings` output."""
        keys = ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms")
        return cls(**{k: float(ceilings[k]) for k in keys}, **kwargs)

    @classmethod
    def from_provenance(
        cls, provenance: Mapping[str, Any], dtype: str = "float32", **kwargs: Any
    ) -> RooflineTransfer:
        """A model with the ceilings a dataset's provenance records (:func:`ceilings_of`).

        Constants the provenance does not hold are left None: with ``envelope=True`` the
        model then fits from target rows (``k >= 1``) and refuses ``k = 0``
        (:class:`~hwml.predict.base.TooFewRowsError` naming what was not measured);
        nothing is guessed.
        """
        consts = ceilings_of(provenance, dtype)
        return cls(**{**consts, **kwargs})

    def fit(
        self,
        source_rows: Any = None,
        target_rows: pd.DataFrame | None = None,
        *,
        device: str | None = None,
    ) -> RooflineTransfer:
        """Fix the constants (from the arguments, or the rows' envelope); see the class."""
        return super().fit(source_rows, target_rows, device=device)  # type: ignore[return-value]

    def _fit(self, source_rows: Any, target: pd.DataFrame) -> dict[str, Any]:
        consts = {
            "peak_flops_per_s": self.peak_flops_per_s,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "overhead_ms": self.overhead_ms,
        }
        if self.envelope and len(target):
            t = target[self.target].to_numpy(dtype=float)
            work = target["flops"].to_numpy(dtype=float) + target["vector_ops"].to_numpy(float)
            nbytes = target["total_bytes"].to_numpy(dtype=float)
            overhead = self.envelope_overhead * float(t.min())
            busy_s = (t - overhead) / 1e3
            consts = {
                "peak_flops_per_s": float(np.max(work / busy_s)),
                "bandwidth_bytes_per_s": float(np.max(nbytes / busy_s)),
                "overhead_ms": overhead,
            }
        missing = [k for k, v in consts.items() if v is None]
        if missing:
            how = (
                "target rows (k >= 1) supply them from their envelope"
                if self.envelope
                else "pass them, or set envelope=True and give target rows (k >= 1)"
            )
            raise TooFewRowsError(
                f"RooflineTransfer needs {', '.join(missing)}, not given (measure them on "
                f"the target with hwml.profile.measure_ceilings); {how}"
            )
        for k, v in consts.items():
            if not (math.isfinite(float(v)) and float(v) >= 0 and (k == "overhead_ms" or v > 0)):
                raise PredictorError(f"RooflineTransfer: {k} must be positive, got {v}")
        return {k: float(v) for k, v in consts.items()}

    def _log_predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.log(self.predict(rows))

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted runtime (ms) of every row, shape ``(n,)``."""
        self._check_fitted()
        require_columns(rows, FEATURE_COLUMNS, "predict")
        _log_features(rows, self.kind_groups, "predict")  # refuses kind 'other'
        c = self.state_
        work = rows["flops"].to_numpy(dtype=float) + rows["vector_ops"].to_numpy(dtype=float)
        nbytes = rows["total_bytes"].to_numpy(dtype=float)
        busy_s = np.maximum(work / c["peak_flops_per_s"], nbytes / c["bandwidth_bytes_per_s"])
        return busy_s * 1e3 + c["overhead_ms"]


# ====================================================================== helpers

#: The constants of :class:`RooflineTransfer`, in its argument order.
CEILING_KEYS: tuple[str, ...] = ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms")


def ceilings_of(provenance: Mapping[str, Any], dtype: str = "float32") -> dict[str, float | None]:
    """The roofline constants a dataset's provenance records; None for each one it lacks.

    Reads ``peak_flops_per_s`` (a number, or ``{dtype: number}`` as ``hwml profile
    calibrate`` writes it), ``bandwidth_bytes_per_s`` (else ``copy_bandwidth_bytes_per_s``)
    and ``overhead_ms``, at the top level or under ``ceilings`` (the output of
    :func:`hwml.profile.measure_ceilings` stored as is). A value that is missing, not a
    finite positive number (overhead: non-negative) or of another dtype is None: a
    ceiling that was not measured is never filled in.

    Args:
        provenance: A dataset's ``provenance.json`` as a dict.
        dtype: The dtype of the peak rate wanted.

    Returns:
        ``{"peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms"}`` (FLOP/s, bytes/s,
        ms), each a float or None.
    """
    nested = provenance.get("ceilings")
    sources = [nested, provenance] if isinstance(nested, Mapping) else [provenance]

    def first(*names: str) -> Any:
        for src in sources:
            for name in names:
                if src.get(name) is not None:
                    return src[name]
        return None

    peak = first("peak_flops_per_s")
    if isinstance(nested, Mapping) and nested.get("dtype") not in (None, dtype):
        peak = None if peak is nested.get("peak_flops_per_s") else peak
    if isinstance(peak, Mapping):
        peak = peak.get(dtype)
    values = {
        "peak_flops_per_s": peak,
        "bandwidth_bytes_per_s": first("bandwidth_bytes_per_s", "copy_bandwidth_bytes_per_s"),
        "overhead_ms": first("overhead_ms"),
    }
    out: dict[str, float | None] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        ok = math.isfinite(number) and (number > 0 or (key == "overhead_ms" and number >= 0))
        out[key] = number if ok else None
    return out


def pair_rows(
    source: pd.DataFrame,
    target: pd.DataFrame,
    *,
    on: Sequence[str] = ("key", "dtype"),
    columns: Sequence[str] = ("runtime_ms",),
) -> pd.DataFrame:
    """The same layer configurations on two devices, side by side.

    Rows are matched on ``on`` (a configuration's ``key`` and ``dtype``); a key measured
    more than once on one device keeps its first usable row. Returns the target's rows
    with ``<col>_source`` added for each of ``columns``.
    """
    on = list(on)
    require_columns(source, [*on, *columns], "pair_rows (source)")
    require_columns(target, on, "pair_rows (target)")
    src = usable_rows(source, columns[0])[0].drop_duplicates(on)
    src = src[[*on, *columns]].rename(columns={c: f"{c}_source" for c in columns})
    return target.drop_duplicates(on).merge(src, on=on, how="inner")


def choose_rows(
    candidates: pd.DataFrame, k: int, how: str = "random", seed: int = 0
) -> pd.DataFrame:
    """Which ``k`` target layers to measure.

    Args:
        candidates: Layer table of the layers that could be measured.
        k: How many to choose (capped at ``len(candidates)``).
        how: ``"random"`` (uniform without replacement) or ``"chosen"``: ``k`` is shared
            among the kind groups in proportion to their sizes, at least one each when
            ``k`` >= the number of groups (largest remainders for the rest), and within a
            group the rows nearest the centres of a k-means clustering of the
            standardised ``(lf, lb)`` are taken, which spreads them over the range of
            FLOPs and bytes.
        seed: Random seed (sampling, k-means initialisation).

    Returns:
        The chosen rows (original index kept), in candidate order.
    """
    if how not in ("random", "chosen"):
        raise ValueError(f"how must be 'random' or 'chosen', got {how!r}")
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    k = min(int(k), len(candidates))
    if k == 0:
        return candidates.iloc[:0]
    rng = np.random.default_rng(seed)
    if how == "random" or k == len(candidates):
        pick = np.sort(rng.choice(len(candidates), size=k, replace=False))
        return candidates.iloc[pick]
    key = (_digest(candidates, None), tuple(candidates.index), k, int(seed))
    if key not in _CHOICE_CACHE:  # k-means is slow and deterministic; curves repeat choices
        if len(_CHOICE_CACHE) >= 1024:
            _CHOICE_CACHE.pop(next(iter(_CHOICE_CACHE)))
        _CHOICE_CACHE[key] = _choose_spread(candidates, k, seed)
    return candidates.iloc[_CHOICE_CACHE[key]]


_CHOICE_CACHE: dict[tuple[Any, ...], np.ndarray] = {}


def _choose_spread(candidates: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """Positions of the ``"chosen"`` rows of :func:`choose_rows`, sorted."""
    groups, lf, lb = _log_features(candidates, None, "choose_rows")
    names, sizes = np.unique(groups.astype(str), return_counts=True)
    share = _allocate(sizes, k)
    feats = np.column_stack([lf, lb])
    feats = (feats - feats.mean(axis=0)) / np.where(feats.std(axis=0) > 0, feats.std(axis=0), 1)
    picked: list[int] = []
    for name, m in zip(names, share, strict=True):
        if m == 0:
            continue
        idx = np.flatnonzero(groups.astype(str) == name)
        if m >= len(idx):
            picked.extend(idx.tolist())
            continue
        km = KMeans(n_clusters=m, n_init=3, random_state=seed).fit(feats[idx])
        dist = ((feats[idx][:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2)
        taken: set[int] = set()
        for c in range(m):  # nearest unused row to each centre
            for j in np.argsort(dist[:, c]):
                if int(j) not in taken:
                    taken.add(int(j))
                    break
        picked.extend(idx[sorted(taken)].tolist())
    return np.sort(picked)


def _allocate(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` over groups of ``sizes``: proportional, >= 1 each when possible."""
    share = np.zeros(len(sizes), dtype=int)
    if k >= len(sizes):
        share += 1
    rest = k - share.sum()
    room = sizes - share
    while rest > 0 and room.sum() > 0:
        ideal = rest * room / room.sum()
        add = np.minimum(np.floor(ideal).astype(int), room)
        if add.sum() == 0:  # largest remainder gets one
            order = np.argsort(-(ideal - np.floor(ideal)) - 1e-9 * room)
            add[order[0]] = 1
        share += add
        rest -= int(add.sum())
        room = sizes - share
    return share


_UNKNOWN_GROUPS = ("raise", "pooled")


def _check_unknown_groups(value: str) -> str:
    if value not in _UNKNOWN_GROUPS:
        raise ValueError(f"unknown_groups must be one of {_UNKNOWN_GROUPS}, got {value!r}")
    return value


_DEFAULT_METHODS = {
    "scratch": ScratchTransfer,
    "rescale": RescaleTransfer,
    "meta": MetaTransfer,
}


def _estimators(
    methods: Mapping[str, TransferEstimator] | Sequence[str],
) -> dict[str, TransferEstimator]:
    if isinstance(methods, Mapping):
        return dict(methods)
    unknown = [m for m in methods if m not in _DEFAULT_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {sorted(_DEFAULT_METHODS)}")
    return {m: _DEFAULT_METHODS[m]() for m in methods}


def _curve(
    source_rows: Any,
    target_rows: pd.DataFrame,
    methods: Mapping[str, TransferEstimator] | Sequence[str],
    ks: Sequence[int],
    how: Sequence[str] | str,
    seeds: Iterable[int],
    *,
    min_test: int,
    meta_source_rows: Any,
    columns: Sequence[str],
    score: Any,
) -> pd.DataFrame:
    """The loop shared by :func:`transfer_curve` and :func:`network_curve`.

    ``score(model, train, rows_all, target) -> dict`` fills the metric columns; the
    choice of the ``k`` rows is made once per (target column, k, how, seed) and shared by
    the methods, so every method sees the same target rows.
    """
    estimators = _estimators(methods)
    hows = [how] if isinstance(how, str) else list(how)
    seeds = list(seeds)
    filled = [c for c in columns if c not in ("method", "k", "k_used", "capped", "how", "seed")]
    records = []
    chosen: dict[tuple[str, int, str, int], pd.DataFrame] = {}
    for name, est in estimators.items():
        target = getattr(est, "target", "runtime_ms")
        rows_all = _target_rows(target_rows, target, None, "curve (target rows)")
        n = len(rows_all)
        src = meta_source_rows if isinstance(est, MetaTransfer) and meta_source_rows else None
        for k in ks:
            k_used = max(0, min(int(k), n - min_test))
            for h in hows:
                for seed in seeds:
                    rec: dict[str, Any] = {
                        "method": name,
                        "k": int(k),
                        "k_used": k_used,
                        "capped": k_used < int(k),
                        "how": h,
                        "seed": int(seed),
                    }
                    rec.update({c: math.nan for c in filled})
                    rec["error"] = ""
                    if n <= min_test:
                        rec["error"] = f"only {n} usable target rows; min_test is {min_test}"
                        records.append(rec)
                        continue
                    key = (target, k_used, h, int(seed))
                    if key not in chosen:
                        chosen[key] = choose_rows(rows_all, k_used, h, seed)
                    train = chosen[key]
                    try:
                        model = clone(est).fit(src if src is not None else source_rows, train)
                        rec.update(score(model, train, rows_all, target))
                    except PredictorError as err:
                        rec["error"] = f"{type(err).__name__}: {err}"
                    records.append(rec)
    return pd.DataFrame.from_records(records, columns=list(columns))


def _errors(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "mape_pct": metrics.mape(y, pred),
        "medape_pct": float(100 * np.median(np.abs(pred / y - 1))),
        "spearman": metrics.spearman(y, pred),
    }


def transfer_curve(
    source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
    target_rows: pd.DataFrame,
    methods: Mapping[str, TransferEstimator] | Sequence[str] = ("scratch", "rescale", "meta"),
    ks: Sequence[int] = (0, 5, 10, 20, 50, 100),
    how: Sequence[str] | str = ("random", "chosen"),
    seeds: Iterable[int] = range(10),
    *,
    min_test: int = 10,
    meta_source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Target-device error of each method against the number of measured target rows.

    For every (method, k, how, seed): :func:`choose_rows` picks ``k`` of the usable
    target rows (the same rows for every method), the method is fitted (a clone, on
    ``source_rows`` and those rows) and scored on all the other target rows.

    Args:
        source_rows: Source-device layer table (for :class:`MetaTransfer`, also a dict
            of tables; see ``meta_source_rows``); None for methods that use no source
            (scratch, roofline).
        target_rows: Measured target-device layer table.
        methods: ``name -> unfitted estimator``, or names among ``scratch``,
            ``rescale``, ``meta`` (default settings). A roofline needs its constants:
            pass ``{"roofline": RooflineTransfer.from_ceilings(...)}``.
        ks: Numbers of target rows.
        how: ``"random"`` and/or ``"chosen"``.
        seeds: Seeds of the choice (and of nothing else: the fits are deterministic).
        min_test: Rows always left for scoring: a ``k`` above ``n - min_test`` is capped
            there (``capped=True``, ``k_used`` the number used).
        meta_source_rows: Source tasks given to :class:`MetaTransfer` methods instead of
            ``source_rows`` (e.g. a dict of several dtypes' tables).

    Returns:
        One row per (method, k, how, seed), columns :data:`CURVE_COLUMNS`: ``method``,
        ``k`` (asked), ``k_used``, ``capped``, ``how``, ``seed``, ``n_test``,
        ``mape_pct``, ``medape_pct`` (median absolute percentage error: MAPE is
        dominated by a few over-predictions when target timings are heavy-tailed),
        ``spearman``, ``error`` (the message when the fit failed, e.g. scratch at
        ``k = 0``; metrics NaN then). When fewer than ``min_test + 1`` target rows are
        usable, every row carries that reason in ``error``.
    """

    def score(model, train, rows_all, target):
        test = rows_all.drop(index=train.index)
        y = test[target].to_numpy(dtype=float)
        return {"n_test": len(test), **_errors(y, model.predict(test))}

    return _curve(
        source_rows,
        target_rows,
        methods,
        ks,
        how,
        seeds,
        min_test=min_test,
        meta_source_rows=meta_source_rows,
        columns=CURVE_COLUMNS,
        score=score,
    )


def network_curve(
    source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
    target_rows: pd.DataFrame,
    net_layers: pd.DataFrame,
    nets: pd.DataFrame,
    methods: Mapping[str, TransferEstimator] | Sequence[str] = ("scratch", "rescale", "meta"),
    ks: Sequence[int] = (0, 5, 10, 20, 50, 100),
    how: Sequence[str] | str = ("random", "chosen"),
    seeds: Iterable[int] = range(10),
    *,
    meta_source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
    by: Sequence[str] = ("network", "batch", "dtype"),
) -> pd.DataFrame:
    """Target-device *network* error of each method against the number of target layers.

    As :func:`transfer_curve`, but each fitted layer model prices whole networks as the
    sum of their layers (:func:`predict_networks`) and is scored on the networks'
    measured runtimes. The ``k`` rows are chosen among the target's layer table, none of
    which comes from the networks, so every network is held out and ``k`` is capped only
    at the number of usable target layers.

    Args:
        source_rows, target_rows, methods, ks, how, seeds, meta_source_rows: As in
            :func:`transfer_curve`.
        net_layers: One row per layer of each network (:func:`network_layers`), with the
            ``by`` columns; layers of kinds no model prices should be left out first.
        nets: Measured networks on the target (``nets.csv``): ``by`` and ``runtime_ms``.
        by: Columns that name a network measurement.

    Returns:
        One row per (method, k, how, seed), columns :data:`NETWORK_CURVE_COLUMNS`:
        as :func:`transfer_curve`'s with ``n_nets`` (networks scored, those with a
        usable measured runtime) for ``n_test`` and ``median_ratio`` (median of
        predicted / measured) added.
    """

    def score(model, train, rows_all, target):
        pred = predict_networks(model, net_layers, nets, by=by)
        pred = pred[np.isfinite(pred["measured_ms"]) & np.isfinite(pred["predicted_ms"])]
        y, p = pred["measured_ms"].to_numpy(float), pred["predicted_ms"].to_numpy(float)
        return {"n_nets": len(pred), **_errors(y, p), "median_ratio": float(np.median(p / y))}

    return _curve(
        source_rows,
        target_rows,
        methods,
        ks,
        how,
        seeds,
        min_test=0,
        meta_source_rows=meta_source_rows,
        columns=NETWORK_CURVE_COLUMNS,
        score=score,
    )


def transfer_methods(
    source_rows: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
    *,
    unknown_groups: str = "pooled",
    roofline: RooflineTransfer | None = None,
    min_rows: int = 6,
) -> dict[str, TransferEstimator]:
    """The transfer methods that apply to one source (or none, or several), unfitted.

    Args:
        source_rows: None: the methods that use no source, ``scratch`` and ``roofline``.
            One layer table (or a dict of one): ``rescale``, ``rescale (graph)`` when the
            table has ``min_rows`` usable ``runtime_graph_ms`` (a GPU's CUDA-graph
            time), and ``meta``. A dict of several tables (several source devices):
            ``meta`` over all of them.
        unknown_groups: Passed to the rescale and meta models (a source without a group
            the target's layers have, e.g. concatenations on a CPU sweep).
        roofline: The roofline model (default: constants from the target rows'
            envelope, no ``k = 0``; :meth:`RooflineTransfer.from_provenance` gives one
            with the ceilings measured on the target).
        min_rows: Usable rows a runtime column needs to count.

    Returns:
        ``{name: unfitted estimator}``, in a fixed order.
    """
    if source_rows is None:
        return {
            "scratch": ScratchTransfer(),
            "roofline": roofline or RooflineTransfer(envelope=True, overhead_ms=None),
        }
    if isinstance(source_rows, Mapping) and len(source_rows) > 1:
        return {"meta": MetaTransfer(unknown_groups=unknown_groups)}
    table = _source_table(source_rows, "transfer_methods")
    out: dict[str, TransferEstimator] = {"rescale": RescaleTransfer(unknown_groups=unknown_groups)}
    if "runtime_graph_ms" in table.columns:
        graph = pd.to_numeric(table["runtime_graph_ms"], errors="coerce")
        if int((graph > 0).sum()) >= min_rows:
            out["rescale (graph)"] = RescaleTransfer(
                source_target="runtime_graph_ms", unknown_groups=unknown_groups
            )
    out["meta"] = MetaTransfer(unknown_groups=unknown_groups)
    return out


def transfer_pairs(
    platforms: Sequence[str],
    targets: Sequence[str] | None = None,
    *,
    multi_source: bool = True,
    target_only: bool = False,
) -> list[tuple[tuple[str, ...], str]]:
    """Source -> target pairs among several platforms.

    For each target in turn: (with ``target_only``) first ``()``, the methods that use
    no source; then every other platform alone, in the order of ``platforms``; then
    (with ``multi_source``, when there are at least two others) all the others
    together.

    Args:
        platforms: Platform names (e.g. dataset folders), each once.
        targets: The platforms that are targets (default: all), each among ``platforms``.
        multi_source: Add the pair of all other platforms -> target.
        target_only: Add ``((), target)`` before each target's pairs.

    Returns:
        ``[(sources, target), ...]``, ``sources`` a tuple of platform names.

    Raises:
        ValueError: a platform named twice, or a target not among the platforms.
    """
    platforms = list(platforms)
    if len(set(platforms)) != len(platforms):
        raise ValueError(f"a platform is named twice in {platforms}")
    targets = platforms if targets is None else list(targets)
    stray = [t for t in targets if t not in platforms]
    if stray:
        raise ValueError(f"targets {stray} are not among the platforms {platforms}")
    out: list[tuple[tuple[str, ...], str]] = []
    for target in targets:
        others = [p for p in platforms if p != target]
        if target_only:
            out.append(((), target))
        out.extend(((p,), target) for p in others)
        if multi_source and len(others) >= 2:
            out.append((tuple(others), target))
    return out


def network_layers(
    nets: pd.DataFrame,
    build: Any = None,
    *,
    by: Sequence[str] = ("network", "batch", "dtype"),
) -> pd.DataFrame:
    """One row per layer of every network measured in ``nets`` (for :func:`predict_networks`).

    Args:
        nets: Measured networks (``nets.csv``): ``network``, ``batch`` and ``dtype``.
        build: ``(name, batch, dtype_bytes) -> Network`` (default: the zoo's
            description on the meta device, :func:`hwml.predict.calibration.zoo_builder`).
        by: Columns copied onto each layer row (those present in ``nets``).

    Returns:
        The layer tables (:meth:`hwml.describe.Network.table`) of each distinct
        (network, batch, dtype), with the ``by`` columns.
    """
    if build is None:
        from hwml.predict.calibration import zoo_builder  # noqa: PLC0415 (torch, lazily)

        build = zoo_builder
    require_columns(nets, ["network", "batch"], "network_layers")
    cols = [c for c in by if c in nets.columns]
    frames = []
    for values in nets[cols].drop_duplicates().itertuples(index=False):
        named = dict(zip(cols, values, strict=True))
        dtype = str(named.get("dtype", "float32"))
        if dtype not in DTYPE_BYTES:
            raise PredictorError(f"network_layers: unknown dtype {dtype!r}")
        net = build(str(named["network"]), int(named["batch"]), DTYPE_BYTES[dtype])
        table = net.table()
        frames.append(table.drop(columns=[c for c in cols if c in table.columns]).assign(**named))
    if not frames:
        return pd.DataFrame(columns=[*FEATURE_COLUMNS, *cols])
    return pd.concat(frames, ignore_index=True)


def summarize_curve(curve: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Medians over seeds of a :func:`transfer_curve` or :func:`network_curve` table.

    Failed fits (non-empty ``error``) are left out.

    Args:
        curve: The curve table (several concatenated, told apart by the ``by`` columns).
        by: Extra grouping columns (e.g. ``("pair",)``).

    Returns:
        One row per (``by``, method, how, k) with at least one successful fit: ``fits``
        (successful seeds), ``k_used`` (the largest) and the median of each metric
        present (``mape_pct``, ``medape_pct``, ``spearman``, ``median_ratio``).
    """
    keys = [*by, "method", "how", "k"]
    present = [c for c in ("mape_pct", "medape_pct", "spearman", "median_ratio") if c in curve]
    ok = curve[curve["error"].fillna("") == ""]
    agg: dict[str, Any] = {"fits": ("seed", "size"), "k_used": ("k_used", "max")}
    agg.update({c: (c, "median") for c in present})
    return ok.groupby(keys, sort=True).agg(**agg).reset_index()


def best_within(
    summary: pd.DataFrame,
    max_k: int,
    by: Sequence[str] = (),
    *,
    metric: str = "mape_pct",
    mape_pct: float = 10.0,
    spearman: float = 0.95,
) -> pd.DataFrame:
    """The best entry of a :func:`summarize_curve` table with at most ``max_k`` target rows.

    Args:
        summary: From :func:`summarize_curve`.
        max_k: The budget of target rows (entries with ``k <= max_k`` count).
        by: Groups judged separately (e.g. ``("pair",)``).
        metric: What "best" minimises (ties: the smaller ``k``).
        mape_pct, spearman: The target: an entry meets it when its median MAPE is at most
            ``mape_pct`` and its median Spearman correlation at least ``spearman``.

    Returns:
        One row per group: ``by``, the best entry's ``method``, ``how``, ``k``,
        ``mape_pct``, ``spearman`` (and ``medape_pct``, ``median_ratio`` when present),
        ``max_spearman`` (the highest median Spearman of any entry within the budget)
        with its ``max_spearman_method``, ``met`` (whether any entry meets the target)
        and ``met_by`` (the first such entry, by ``metric``, as ``"method (how), k = .."``;
        empty when none).
    """
    within = summary[summary["k"] <= max_k]
    groups = within.groupby(list(by), sort=True) if by else [((), within)]
    records = []
    for key, part in groups:
        if part.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        ranked = part.sort_values([metric, "k"], na_position="last")
        best = ranked.iloc[0]
        top_rho = part.sort_values(["spearman", "k"], ascending=[False, True]).iloc[0]
        met = ranked[(ranked["mape_pct"] <= mape_pct) & (ranked["spearman"] >= spearman)]
        rec: dict[str, Any] = dict(zip(by, key, strict=True))
        rec.update(method=best["method"], how=best["how"], k=int(best["k"]))
        for col in ("mape_pct", "medape_pct", "spearman", "median_ratio"):
            if col in part.columns:
                rec[col] = float(best[col])
        rec["max_spearman"] = float(top_rho["spearman"])
        rec["max_spearman_method"] = f"{top_rho['method']} ({top_rho['how']})"
        rec["met"] = not met.empty
        first = met.iloc[0] if not met.empty else None
        rec["met_by"] = (
            "" if first is None else f"{first['method']} ({first['how']}), k = {int(first['k'])}"
        )
        records.append(rec)
    return pd.DataFrame.from_records(records)


def predict_networks(
    model: Any,
    net_layers: pd.DataFrame,
    nets: pd.DataFrame | None = None,
    *,
    by: Sequence[str] = ("network", "batch", "dtype"),
) -> pd.DataFrame:
    """Network runtime predicted as the sum of its layers' predicted runtimes.

    Args:
        model: A fitted model with ``predict(table) -> runtime_ms`` (any transfer model,
            or another hwml layer model).
        net_layers: One row per layer, with the layer columns and the ``by`` columns
            (``net_layers.csv``, or ``zoo.describe_net(name, batch).table()`` with a
            ``network`` column added).
        nets: Optional measured whole-network table (``nets.csv``) to set beside the
            prediction, matched on ``by``.

    Returns:
        One row per network (``by``): ``layers``, ``predicted_ms`` (sum over priced
        layers), ``left_out`` (layers whose kind has no group, e.g. ``other``, not
        priced); with ``nets``: ``measured_ms`` and ``ratio`` = predicted / measured.

    The sum of layers is a fair model of a network on a CPU, where each layer is a
    long, synchronous computation. On a GPU at small batch it misses time: the host
    dispatches each layer (and the framework's glue) while short kernels finish faster
    than they are launched, so whole-network eager runtime is dominated by host overhead
    the per-layer GPU times do not contain (compare ``runtime_ms`` with
    ``runtime_graph_ms`` in ``nets.csv``).
    """
    by = [c for c in by if c in net_layers.columns]
    if not by:
        raise PredictorError("predict_networks: net_layers has none of the 'by' columns")
    groups = _groups_of(net_layers["kind"].astype(str), getattr(model, "kind_groups", None))
    priced = groups != ""
    pred = np.full(len(net_layers), np.nan)
    if priced.any():
        pred[priced] = model.predict(net_layers[priced])
    frame = net_layers[by].assign(_pred=pred, _left=~priced)
    out = (
        frame.groupby(by, sort=True)
        .agg(layers=("_pred", "size"), predicted_ms=("_pred", "sum"), left_out=("_left", "sum"))
        .reset_index()
    )
    if nets is not None:
        measured = usable_rows(nets, "runtime_ms")[0][[*by, "runtime_ms"]].drop_duplicates(by)
        out = out.merge(measured.rename(columns={"runtime_ms": "measured_ms"}), on=by, how="left")
        out["ratio"] = out["predicted_ms"] / out["measured_ms"]
    return out
