"""NeuralPower: layer-wise sparse polynomial models of runtime and power.

Cai et al. (NeuralPower, 2017) model each layer kind with a polynomial of its
hyper-parameters plus a few "special" physical terms, keep a sparse subset of the terms
with the Lasso, and choose the polynomial degree by cross-validation (survey eq. 2)::

    T(x) = sum_j c_j * prod_i x_i^q_ij  +  sum_s c'_s * F_s(x),    sum_i q_ij <= K

A network's runtime is the sum of its layers' runtimes, its energy the sum of the layers'
power x runtime, and its average power the energy divided by the runtime.

What hwml does, group by group (:data:`~hwml.predict.base.KIND_GROUPS`):

* **Variables** (:data:`GROUP_SPECS`): conv2d uses batch, in/out channels, input size
  (``sqrt(in_h * in_w)``), kernel, stride, padding, bias, whether the convolution is
  grouped (depthwise included: cuDNN runs those with separate, non-GEMM kernels; the
  raw group count, up to thousands, is a poor polynomial variable) and whether the
  channels per group and the output channels are multiples of 8 (cuDNN picks different
  kernels for aligned shapes); linear uses batch and in/out features; pooling uses
  batch, channels, input size, kernel, stride and whether it averages; batch norm,
  activations, element-wise add/mul and concatenation use batch, channels and input
  size. **Special terms** are the description's physical features: FLOPs (conv,
  linear), vector operations (pooling, batch norm, activations) and bytes moved
  (input, output and parameter bytes for conv and linear, whose sum ``total_bytes``
  would be an exact linear combination of them; total bytes for the rest). Element-wise
  add/mul and concatenation have bytes only: their operation count duplicates their
  bytes, and is zero for a concatenation, which can then borrow the element-wise model.
  For conv2d, the FLOPs of its implicit matrix product rounded up to whole tiles are a
  special term too (``tile_flops``: tensor-core kernels compute whole tiles, so a
  convolution with 8 output channels costs nearly as much as one with 64; see
  :func:`tile_flops`). FLOPs and bytes always come from :mod:`hwml.describe`, never
  recomputed.
* **Space** (``space``), two forms of the same model:

  - ``"linear"`` is the paper's form: a polynomial of the raw variables plus the raw
    special terms. It is fitted with weights ``1 / target**2`` (``weighting="relative"``,
    least squared *relative* error, since the goal is RMSPE over runtimes spanning four
    decades) or unweighted (``"none"``, least absolute error, as in the paper). Its
    additive form matches launch overhead plus work over throughput, which is how
    memory-bound layers behave; predictions are floored at half the smallest training
    target, since a polynomial can dip below zero.
  - ``"log"`` fits ``log(target)`` with a polynomial of ``log(1 + x)`` of the variables
    plus the ``log(1 + F_s)`` special terms, and predicts its ``exp``: power laws and
    multiplicative interactions (``T ~ FLOPs / efficiency(shape)``) in few terms, and
    least squares in log space is least relative error too.
  - ``"auto"`` (default) fits both and keeps, per group, the one with the lower
    cross-validated RMSPE (out-of-fold predictions in the target's unit).
* **Scaling.** Each variable is divided by its largest training magnitude before the
  expansion (scikit-learn's ``PolynomialFeatures``; keeps high powers in range) and each term is standardized for the Lasso;
  stored coefficients are converted back to the unscaled variables of their space, so
  :meth:`NeuralPowerRegressor.terms` reads as the fitted formula.
* **Selection.** For each space and each degree ``K`` in ``degrees`` a 10-fold (``cv``)
  ``LassoCV`` picks the penalty; the degree kept is the smallest whose cross-validated
  error is within one standard error of the best degree's (the one-standard-error rule,
  which prefers the simpler of two models cross-validation cannot tell apart). The
  model size (``model_size_``) is the number of non-zero terms, intercept not counted;
  the survey's sizes were 60 (conv), 17 (FC) and 31 (pool) terms.
* **Trivial kinds** (flatten, dropout and pure data movement such as permute or pad)
  are predicted by the median of their training rows, or by ``trivial_value`` (0.0)
  when the training table has none, with ``fallback=True`` in network predictions.
* **Groups without training rows.** A polynomial is fitted only where there are
  measured layers, so the new kinds of transformers and modern CNNs (``norm``,
  ``matmul``, ``attention``, ``softmax``, ``reduce``: none has a :data:`GROUP_SPECS`
  entry yet) and any group absent from the training table have no model; kind ``other``
  never has one. Nothing is extrapolated to them: ``predict`` raises
  :class:`~hwml.predict.base.UnknownKindError`, and ``predict_network`` leaves them out
  (NaN, ``left_out=True``, totals over the priced layers and a warning) or, with
  ``strict=True``, raises (see :mod:`hwml.predict.base`).

:class:`NeuralPower` pairs a runtime and a power model and predicts energy (its power
predictions stay within the range of the measured layer powers of their group, since a
polynomial extrapolated past its data can predict a multiple of any power measured);
:class:`~hwml.predict.calibration.NetworkCalibration` (re-exported here) is the optional
network-level correction of summed layer runtimes, fitted on training networks.

Units: runtime in ms, power in W, energy in mJ (W x ms = mJ).

The module is long on purpose: :class:`NeuralPowerRegressor` is one scikit-learn
estimator whose per-group features, model selection (form, degree, Lasso path) and
relaxed refit share private state; split apart they would have to expose it.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, fields
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LassoCV
from sklearn.model_selection import KFold
from sklearn.preprocessing import PolynomialFeatures

from hwml.predict import io
from hwml.predict.base import (
    KIND_GROUPS,
    LAYER_COLUMNS,
    TRIVIAL_GROUP,
    LayerBatch,
    LayerEstimator,
    PredictorError,
    TooFewRowsError,
    require_columns,
    usable_rows,
)
from hwml.predict.calibration import NetworkCalibration  # re-exported: it used to live here

__all__ = [
    "GROUP_SPECS",
    "GEMM_TILE",
    "tile_flops",
    "NeuralPowerRegressor",
    "NeuralPower",
    "NetworkCalibration",
]


@dataclass(frozen=True)
class GroupSpec:
    """The inputs of one group's polynomial.

    Attributes:
        variables: Hyper-parameters expanded into polynomial terms up to the degree K.
        special: Physical terms entering linearly (NeuralPower's F_s).
    """

    variables: tuple[str, ...]
    special: tuple[str, ...]


_BYTES = ("input_bytes", "output_bytes", "param_bytes")

#: Variables and special terms of every group.
GROUP_SPECS: dict[str, GroupSpec] = {
    "conv2d": GroupSpec(
        (
            "batch",
            "in_channels",
            "out_channels",
            "in_size",
            "kernel",
            "stride",
            "padding",
            "grouped",
            "bias",
            "in_aligned",
            "out_aligned",
        ),
        ("flops", *_BYTES, "tile_flops"),
    ),
    "linear": GroupSpec(("batch", "in_features", "out_features"), ("flops", *_BYTES)),
    "pool": GroupSpec(
        ("batch", "channels", "in_size", "kernel", "stride", "is_avg"),
        ("vector_ops", "input_bytes", "output_bytes"),
    ),
    "batchnorm2d": GroupSpec(("batch", "channels", "in_size"), ("vector_ops", "total_bytes")),
    "activation": GroupSpec(("batch", "channels", "in_size"), ("vector_ops", "total_bytes")),
    "eltwise": GroupSpec(("batch", "channels", "in_size", "is_mul"), ("total_bytes",)),
    "concat": GroupSpec(("batch", "channels", "in_size"), ("total_bytes",)),
}


#: Tile of :func:`tile_flops`: output pixels x output channels x reduction length.
GEMM_TILE: tuple[int, int, int] = (128, 64, 32)


def tile_flops(batch: LayerBatch, tile: tuple[int, int, int] = GEMM_TILE) -> np.ndarray:
    """FLOPs of each convolution's implicit matrix product rounded up to whole tiles.

    A dense convolution is a matrix product of ``M = batch * out_h * out_w`` output pixels
    by ``N = out_channels`` filters over ``K = in_channels * kernel_h * kernel_w`` inputs;
    GPU kernels compute it in tiles of ``tile = (m, n, k)``, so the work actually done is
    ``2 * ceil(M/m)*m * ceil(N/n)*n * ceil(K/k)*k``. Grouped and depthwise convolutions
    do not run as one such product: they keep their plain ``flops``.

    Returns:
        Shape ``(n_layers,)``, FLOPs.
    """
    col = batch.column
    m_t, n_t, k_t = tile
    m = col("batch") * col("out_h") * col("out_w")
    n = col("out_channels")
    k = col("in_channels") * col("kernel_h") * col("kernel_w")
    padded = 2 * np.ceil(m / m_t) * m_t * np.ceil(n / n_t) * n_t * np.ceil(k / k_t) * k_t
    return np.where(col("groups") <= 1, padded, col("flops"))


def _variable(batch: LayerBatch, name: str) -> np.ndarray:
    """One variable of :data:`GROUP_SPECS` for every layer of ``batch``, shape ``(n,)``."""
    col = batch.column
    if name == "grouped":
        return (col("groups") > 1).astype(float)
    if name == "tile_flops":
        return tile_flops(batch)
    if name == "in_size":
        return np.sqrt(col("in_h") * col("in_w"))
    if name == "kernel":
        return np.sqrt(col("kernel_h") * col("kernel_w"))
    if name == "stride":
        return np.sqrt(col("stride_h") * col("stride_w"))
    if name == "padding":
        return 0.5 * (col("pad_h") + col("pad_w"))
    if name == "channels":
        return col("in_channels")
    if name == "is_avg":
        return (batch.kinds == "avgpool2d").astype(float)
    if name == "is_mul":
        return (batch.kinds == "mul").astype(float)
    if name == "in_per_group":
        return col("in_channels") / np.maximum(col("groups"), 1.0)
    if name == "in_aligned":
        return ((col("in_channels") / np.maximum(col("groups"), 1.0)) % 8 == 0).astype(float)
    if name == "out_aligned":
        return (col("out_channels") % 8 == 0).astype(float)
    if name == "in_features_aligned":
        return (col("in_features") % 8 == 0).astype(float)
    if name == "out_features_aligned":
        return (col("out_features") % 8 == 0).astype(float)
    return col(name)


@functools.cache
def _polynomial(d: int, degree: int) -> PolynomialFeatures:
    """scikit-learn's expansion of ``d`` variables into every monomial of degree 1..``degree``.

    Its ``powers_`` (shape ``(m, d)``) are ordered by degree, then lexicographically: the
    order of the Lasso's columns, which its cyclic coordinate descent visits in turn.
    """
    return PolynomialFeatures(degree, include_bias=False).fit(np.zeros((1, d)))


@functools.cache
def _power_columns(d: int, degree: int) -> dict[tuple[int, ...], int]:
    """Exponent vector -> its column in :func:`_polynomial`'s output."""
    return {tuple(p): j for j, p in enumerate(_polynomial(d, degree).powers_.tolist())}


def _monomials(u: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """Evaluate the monomials ``exps`` (rows of :func:`_polynomial`'s ``powers_``).

    The full expansion up to their highest degree is computed by ``PolynomialFeatures``
    and the wanted columns are picked, so a fitted model evaluates its terms with the
    same arithmetic as the fit did.

    Args:
        u: Variables, shape ``(n, d)``.
        exps: Exponents, shape ``(m, d)``.

    Returns:
        ``prod_i u[:, i] ** exps[:, i]``, shape ``(n, m)``.
    """
    n, d = u.shape
    if exps.size == 0:
        return np.empty((n, 0))
    degree = int(exps.sum(axis=1).max())
    column = _power_columns(d, degree)
    try:
        picked = [column[tuple(e)] for e in exps.tolist()]
    except KeyError as err:
        raise PredictorError(
            f"not a monomial of degree 1 or more: exponents {err.args[0]}"
        ) from None
    return _polynomial(d, degree).transform(u)[:, picked]


def _term_name(exps: np.ndarray, names: Sequence[str], wrap: str) -> str:
    parts = []
    for name, p in zip(names, exps, strict=True):
        if p:
            base = wrap.format(name)
            parts.append(base if p == 1 else f"{base}^{int(p)}")
    return "*".join(parts)


@dataclass
class _GroupModel:
    """One fitted group: ``f = intercept + sum coef_poly * monomials + sum coef_special * S``.

    The variables and special terms enter in the group's ``space``: ``log1p`` of their
    values (``f`` is then the log of the prediction) or the raw values (``f`` is the
    prediction, floored at ``floor``). With ``constant`` set, the group predicts it.
    """

    space: str
    exponents: np.ndarray  # (m, d) int, selected monomials
    coef_poly: np.ndarray  # (m,)
    special_idx: np.ndarray  # (k,) int, selected special terms
    coef_special: np.ndarray  # (k,)
    intercept: float
    degree: int
    alpha: float
    n_train: int
    floor: float = 0.0
    cv_rmspe: float | None = None
    constant: float | None = None
    clip: tuple[float, float] | None = None

    def evaluate(self, v: np.ndarray, s: np.ndarray) -> np.ndarray:
        """The prediction in the target's unit, from the unscaled variables of ``space``."""
        if self.constant is not None:
            return np.full(len(v), self.constant)
        f = np.full(len(v), self.intercept)
        if len(self.coef_poly):
            f += _monomials(v, self.exponents) @ self.coef_poly
        if len(self.coef_special):
            f += s[:, self.special_idx] @ self.coef_special
        out = np.exp(f) if self.space == "log" else np.maximum(f, self.floor)
        return out if self.clip is None else np.clip(out, *self.clip)

    @property
    def size(self) -> int:
        return 0 if self.constant is not None else int(len(self.coef_poly) + len(self.coef_special))

    def to_state(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "exponents": self.exponents.tolist(),
            "coef_poly": self.coef_poly.tolist(),
            "special_idx": self.special_idx.tolist(),
            "coef_special": self.coef_special.tolist(),
            "intercept": self.intercept,
            "degree": self.degree,
            "alpha": self.alpha,
            "n_train": self.n_train,
            "floor": self.floor,
            "cv_rmspe": self.cv_rmspe,
            "constant": self.constant,
            "clip": None if self.clip is None else list(self.clip),
        }

    @classmethod
    def from_state(cls, st: Mapping[str, Any], d: int) -> _GroupModel:
        return cls(
            space=str(st["space"]),
            exponents=np.array(st["exponents"], dtype=np.int64).reshape(-1, d),
            coef_poly=np.array(st["coef_poly"], dtype=float),
            special_idx=np.array(st["special_idx"], dtype=np.int64),
            coef_special=np.array(st["coef_special"], dtype=float),
            intercept=float(st["intercept"]),
            degree=int(st["degree"]),
            alpha=float(st["alpha"]),
            n_train=int(st["n_train"]),
            floor=float(st["floor"]),
            cv_rmspe=None if st["cv_rmspe"] is None else float(st["cv_rmspe"]),
            constant=None if st["constant"] is None else float(st["constant"]),
            clip=None if st["clip"] is None else (float(st["clip"][0]), float(st["clip"][1])),
        )

    @classmethod
    def constant_model(cls, value: float, n_train: int) -> _GroupModel:
        return cls(
            "linear",
            np.zeros((0, 0), np.int64),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.zeros(0),
            0.0,
            0,
            0.0,
            n_train,
            constant=float(value),
        )


@dataclass
class _Candidate:
    """A cross-validated fit of one group in one space at one degree."""

    space: str
    degree: int
    exps: np.ndarray
    keep: np.ndarray
    mu: np.ndarray
    sd: np.ndarray
    lasso: LassoCV
    cv_mse: float
    cv_se: float
    cv_rmspe: float | None = None


_SPACES = ("log", "linear")


@dataclass(eq=False, repr=False, kw_only=True)
class _FitSettings(LayerEstimator):
    """The fitting settings of :class:`NeuralPowerRegressor` and :class:`NeuralPower`.

    Both take them as the same keyword-only constructor arguments. They are listed here
    once; ``dataclass`` writes each class's ``__init__`` with every argument spelled out,
    as scikit-learn's ``get_params`` / ``set_params`` / ``clone`` require (they read the
    signature of ``__init__``), without the list being repeated by hand. ``eq=False`` and
    ``repr=False`` keep scikit-learn's identity, hashing and repr.

    Args:
        degrees: Polynomial degrees K tried by cross-validation.
        cv: Folds of the cross-validation (the paper uses 10). Each group needs at least
            this many usable rows.
        space: ``"auto"`` (default: per group, whichever of the two spaces has the lower
            cross-validated RMSPE), ``"log"`` or ``"linear"``; see the module docstring.
        weighting: In linear space: ``"relative"`` (weights ``1/target**2``: least
            relative error) or ``"none"`` (least absolute error, as in the paper).
        n_alphas: Lasso penalties tried per degree (log-spaced).
        eps: Smallest penalty as a fraction of the largest.
        max_iter: Coordinate-descent iterations per Lasso fit.
        relaxed: Refit the selected terms by ordinary least squares (relaxed Lasso),
            removing the Lasso's shrinkage of the kept coefficients.
        groups: Groups to fit (None: every group present in the training table); rows
            of other groups are ignored.
        kind_groups: Overrides of :data:`~hwml.predict.base.KIND_GROUPS` (kind -> group;
            a new group name uses the spec of its kinds' default group).
        trivial_value: Prediction for trivial kinds when the training table has none.
        seed: Seed of the fold shuffling.
        device_check: ``"warn"``, ``"error"`` or ``"ignore"`` when predicting for another
            device or element size than the training data's.
    """

    degrees: Sequence[int] = (1, 2, 3)
    cv: int = 10
    space: str = "auto"
    weighting: str = "relative"
    n_alphas: int = 40
    eps: float = 1e-4
    max_iter: int = 20000
    relaxed: bool = False
    groups: Sequence[str] | None = None
    kind_groups: Mapping[str, str] | None = None
    trivial_value: float = 0.0
    seed: int = 0
    device_check: str = "warn"

    def _fit_settings(self) -> dict[str, Any]:
        """The settings above, by name (what :class:`NeuralPower` hands its two models)."""
        return {f.name: getattr(self, f.name) for f in fields(_FitSettings)}


@io.register
@dataclass(eq=False, repr=False)
class NeuralPowerRegressor(_FitSettings):
    """Sparse polynomial model of one per-layer target (runtime, power or energy).

    Args:
        target: Column to model, e.g. ``"runtime_ms"`` or ``"power_w"`` (positive values).
        clip: Keep every prediction within the range of its group's training targets
            (for a bounded quantity such as power, where a polynomial extrapolated past
            its data can predict a multiple of anything measured; never for runtime,
            which grows with the layer). Keyword only.
        **settings: The fitting settings of :class:`_FitSettings`, keyword only: degrees,
            cv, space, weighting, n_alphas, eps, max_iter, relaxed, groups, kind_groups,
            trivial_value, seed, device_check.

    Attributes:
        groups_: Fitted group -> internal model.
        degree_: Group -> chosen degree K.
        space_: Group -> chosen space.
        model_size_: Group -> number of non-zero terms (intercept not counted).
        cv_rmspe_: Group -> cross-validated RMSPE (%) of the chosen model.
        cv_results_: One row per (group, space, degree): penalty chosen, cross-validated
            mean squared error in the fitting space and its standard error, terms kept,
            cross-validated RMSPE (% of the target; computed for each space's chosen
            degree) and whether the row is the model kept.
        n_dropped_: Training rows dropped as unusable (status or non-finite target).
    """

    model_type: ClassVar[str] = "neuralpower_regressor"
    _fitted_attr: ClassVar[str] = "groups_"
    #: Coordinate-descent tolerance (duality gap relative to the target's variance):
    #: polynomial terms are strongly correlated, and sklearn's default 1e-4 stops far from the optimum.
    _TOL: ClassVar[float] = 1e-6

    target: str = "runtime_ms"
    _: KW_ONLY
    clip: bool = False

    # ------------------------------------------------------------------ helpers
    def _spec(self, group: str) -> GroupSpec:
        if group in GROUP_SPECS:
            return GROUP_SPECS[group]
        for kind, g in self._groups().items():
            if g == group and KIND_GROUPS.get(kind) in GROUP_SPECS:
                return GROUP_SPECS[KIND_GROUPS[kind]]
        raise PredictorError(
            f"no feature spec for group {group!r}; known: {', '.join(GROUP_SPECS)}"
        )

    def _priceable(self, batch: LayerBatch) -> np.ndarray:
        groups = self._group_of(batch.kinds)
        return np.isin(groups, list(self.groups_)) | (groups == TRIVIAL_GROUP)

    def _supported(self) -> list[str]:
        return sorted({*self.groups_, TRIVIAL_GROUP})

    def _raw_inputs(self, batch: LayerBatch, group: str) -> tuple[np.ndarray, np.ndarray]:
        """Variables ``(n, d)`` and special terms ``(n, s)`` of ``batch``, raw values."""
        spec = self._spec(group)
        v = np.column_stack([_variable(batch, n) for n in spec.variables])
        s = np.column_stack([_variable(batch, n) for n in spec.special])
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(s))):
            raise PredictorError(f"{group}: non-finite layer features")
        return v, s

    @staticmethod
    def _in_space(space: str, v: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if space == "log":
            return np.log1p(np.maximum(v, 0.0)), np.log1p(np.maximum(s, 0.0))
        return v, s

    def _check_params(self) -> None:
        self._check_device_check()
        if self.space not in ("auto", *_SPACES):
            raise ValueError(f"space must be 'auto', 'log' or 'linear', got {self.space!r}")
        if self.weighting not in ("relative", "none"):
            raise ValueError(f"weighting must be 'relative' or 'none', got {self.weighting!r}")
        degrees = list(self.degrees)
        if not degrees or any(int(k) != k or k < 1 for k in degrees):
            raise ValueError(f"degrees must be positive integers, got {self.degrees!r}")
        if int(self.cv) < 2:
            raise ValueError(f"cv must be at least 2 folds, got {self.cv!r}")

    # ------------------------------------------------------------------ fitting
    def fit(
        self, table: pd.DataFrame, y: Any = None, *, device: str | None = None
    ) -> NeuralPowerRegressor:
        """Fit one sparse polynomial per group present in ``table``.

        Args:
            table: Measured layer table: the columns of :meth:`Layer.to_row` and the target.
            y: Ignored (scikit-learn signature); the target is the ``target`` column.
            device: GPU name of the measurements (default: the table's ``gpu_name`` column
                when it exists).

        Returns:
            self.

        Raises:
            MissingColumnsError: naming missing columns.
            TooFewRowsError: when a group has fewer usable rows than ``cv`` folds.
            PredictorError: for non-positive targets, or mixed dtypes or devices.
        """
        self._check_params()
        require_columns(table, ("kind", *LAYER_COLUMNS, self.target), "fit")
        rows, dropped = usable_rows(table, self.target)
        self._remember_data(rows, device)
        batch = LayerBatch.from_table(rows, "fit")
        y_all = rows[self.target].to_numpy(dtype=float)
        groups = self._group_of(batch.kinds)
        if np.any(groups == ""):
            bad = sorted(set(batch.kinds[groups == ""]))
            raise PredictorError(
                f"fit: layer kind(s) {bad} have no group and cannot be modelled; drop those rows"
            )
        wanted = set(self.groups) if self.groups is not None else set(groups)
        if self.groups is not None:
            absent = sorted(wanted - set(groups) - {TRIVIAL_GROUP})
            if absent:
                raise TooFewRowsError(f"fit: no usable rows for group(s) {absent}")
        if not wanted:
            raise TooFewRowsError(f"fit: no usable rows (finite {self.target!r}, usable status)")
        modelled = np.isin(groups, list(wanted - {TRIVIAL_GROUP}))
        if np.any(y_all[modelled] <= 0):
            raise PredictorError(
                f"fit: {self.target} must be positive (NeuralPower models relative error)"
            )

        models: dict[str, _GroupModel] = {}
        cv_rows: list[dict[str, Any]] = []
        for group in sorted(wanted):
            mask = groups == group
            if group == TRIVIAL_GROUP:
                if mask.any():
                    models[group] = _GroupModel.constant_model(
                        float(np.median(y_all[mask])), int(mask.sum())
                    )
                continue
            n = int(mask.sum())
            if n < int(self.cv):
                raise TooFewRowsError(
                    f"fit: group {group!r} has {n} usable row(s) of target {self.target!r}; "
                    f"{self.cv}-fold cross-validation needs at least {self.cv}. Add rows, lower "
                    f"cv, or leave the group out with groups=[...]"
                )
            sub = LayerBatch(batch.kinds[mask], batch.values[mask], batch.names[mask])
            v, s = self._raw_inputs(sub, group)
            models[group], rows_cv = self._fit_group(group, v, s, y_all[mask])
            cv_rows.extend(rows_cv)
        self.groups_ = models
        self.cv_results_ = pd.DataFrame(cv_rows)
        self.n_dropped_ = dropped
        self._summarise()
        return self

    def _summarise(self) -> None:
        fitted = {g: m for g, m in self.groups_.items() if m.constant is None}
        self.degree_ = {g: m.degree for g, m in fitted.items()}
        self.space_ = {g: m.space for g, m in fitted.items()}
        self.cv_rmspe_ = {g: m.cv_rmspe for g, m in fitted.items()}
        self.model_size_ = {g: m.size for g, m in self.groups_.items()}

    def _fit_group(
        self, group: str, v_raw: np.ndarray, s_raw: np.ndarray, y: np.ndarray
    ) -> tuple[_GroupModel, list[dict[str, Any]]]:
        """Choose space, degree and penalty of one group by cross-validation, and fit it."""
        folds = KFold(int(self.cv), shuffle=True, random_state=int(self.seed))
        spaces = _SPACES if self.space == "auto" else (self.space,)
        best: tuple[_Candidate, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        cv_rows: list[dict[str, Any]] = []
        for space in spaces:
            v, s = self._in_space(space, v_raw, s_raw)
            v_scale = np.max(np.abs(v), axis=0)
            v_scale[v_scale == 0] = 1.0
            s_scale = np.max(np.abs(s), axis=0)
            s_scale[s_scale == 0] = 1.0
            u, w_s = v / v_scale, s / s_scale
            z, weight = self._target(space, y)
            cands = [
                self._candidate(space, k, u, w_s, z, weight, folds)
                for k in sorted({int(k) for k in self.degrees})
            ]
            best_mse = min(c.cv_mse for c in cands)
            best_se = next(c.cv_se for c in cands if c.cv_mse == best_mse)
            chosen = next(c for c in cands if c.cv_mse <= best_mse + best_se)
            chosen.cv_rmspe = self._cv_rmspe(chosen, u, w_s, z, y, weight, folds)
            for c in cands:
                cv_rows.append(
                    {
                        "group": group,
                        "space": space,
                        "degree": c.degree,
                        "alpha": float(c.lasso.alpha_),
                        "cv_mse": c.cv_mse,
                        "cv_se": c.cv_se,
                        "n_terms": int(np.count_nonzero(c.lasso.coef_)),
                        "cv_rmspe_pct": c.cv_rmspe,
                        "chosen": False,
                        "n_train": len(y),
                    }
                )
            if best is None or chosen.cv_rmspe < best[0].cv_rmspe:
                best = (chosen, u, w_s, v_scale, s_scale)
        assert best is not None
        cand, u, w_s, v_scale, s_scale = best
        for row in cv_rows:
            row["chosen"] = row["space"] == cand.space and row["degree"] == cand.degree
        z, weight = self._target(cand.space, y)
        coef_std, intercept_std = cand.lasso.coef_.copy(), float(cand.lasso.intercept_)
        if self.relaxed and np.any(coef_std != 0):
            xs = (np.hstack([_monomials(u, cand.exps), w_s])[:, cand.keep] - cand.mu) / cand.sd
            coef_std, intercept_std = _relaxed_refit(xs, z, coef_std != 0, weight)
        # Undo the standardization: f = b + sum_j c_j (x_j - mu_j) / sd_j.
        coef_x = coef_std / cand.sd
        intercept = intercept_std - float(coef_x @ cand.mu)
        n_poly = len(cand.exps)
        full = np.zeros(n_poly + w_s.shape[1])
        full[cand.keep] = coef_x
        # Undo the variable scaling: u = v / v_scale, so u^q = v^q / prod(v_scale^q).
        coef_poly = full[:n_poly] / np.prod(v_scale[None, :] ** cand.exps, axis=1)
        coef_special = full[n_poly:] / s_scale
        sel_p, sel_s = np.flatnonzero(coef_poly), np.flatnonzero(coef_special)
        model = _GroupModel(
            cand.space,
            cand.exps[sel_p],
            coef_poly[sel_p],
            sel_s.astype(np.int64),
            coef_special[sel_s],
            intercept,
            cand.degree,
            float(cand.lasso.alpha_),
            len(y),
            floor=0.5 * float(y.min()),
            cv_rmspe=cand.cv_rmspe,
            clip=(float(y.min()), float(y.max())) if self.clip else None,
        )
        return model, cv_rows

    def _target(self, space: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Fitting target and sample weights of ``space``."""
        if space == "log":
            return np.log(y), None
        if self.weighting == "relative":
            w = 1.0 / y**2
            return y, w / w.mean()
        return y, None

    def _candidate(
        self,
        space: str,
        degree: int,
        u: np.ndarray,
        w_s: np.ndarray,
        z: np.ndarray,
        weight: np.ndarray | None,
        folds: KFold,
    ) -> _Candidate:
        poly = _polynomial(u.shape[1], degree)
        exps = poly.powers_
        x_all = np.hstack([poly.transform(u), w_s])
        keep = _independent_columns(x_all)
        x = x_all[:, keep]
        mu, sd = x.mean(axis=0), x.std(axis=0)
        lasso = LassoCV(
            alphas=int(self.n_alphas),
            eps=float(self.eps),
            cv=folds,
            max_iter=int(self.max_iter),
            tol=self._TOL,
            random_state=int(self.seed),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lasso.fit((x - mu) / sd, z, sample_weight=weight)
        path = lasso.mse_path_
        i = int(np.argmin(path.mean(axis=1)))
        return _Candidate(
            space,
            degree,
            exps,
            keep,
            mu,
            sd,
            lasso,
            float(path[i].mean()),
            float(path[i].std(ddof=1) / math.sqrt(path.shape[1])),
        )

    def _cv_rmspe(
        self,
        cand: _Candidate,
        u: np.ndarray,
        w_s: np.ndarray,
        z: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray | None,
        folds: KFold,
    ) -> float:
        """Cross-validated RMSPE (%) of a candidate at its chosen penalty, in target units."""
        xs = (np.hstack([_monomials(u, cand.exps), w_s])[:, cand.keep] - cand.mu) / cand.sd
        oof = np.empty(len(z))
        for train, test in folds.split(xs):
            lasso = Lasso(
                alpha=float(cand.lasso.alpha_), max_iter=int(self.max_iter), tol=self._TOL
            )
            w = None if weight is None else weight[train]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                lasso.fit(xs[train], z[train], sample_weight=w)
            coef, b = lasso.coef_, float(lasso.intercept_)
            if self.relaxed and np.any(coef != 0):
                coef, b = _relaxed_refit(xs[train], z[train], coef != 0, w)
            oof[test] = xs[test] @ coef + b
        pred = np.exp(oof) if cand.space == "log" else np.maximum(oof, 0.5 * float(y.min()))
        if self.clip:
            pred = np.clip(pred, y.min(), y.max())
        return float(100.0 * np.sqrt(np.mean(((pred - y) / y) ** 2)))

    # ------------------------------------------------------------------ prediction
    def _predict_batch(
        self,
        batch: LayerBatch,
        groups: np.ndarray | None = None,
        cache: dict[str, tuple[np.ndarray, ...]] | None = None,
        skip_unknown: bool = False,
    ) -> dict[str, np.ndarray]:
        """Predict a batch.

        Args:
            batch: The layers.
            groups: Their groups, when the caller has them already.
            cache: Group -> (mask, raw variables, raw special terms), shared between the
                models of one prediction (both use the same inputs).
            skip_unknown: Give NaN for unfitted groups instead of raising.
        """
        groups = self._group_of(batch.kinds) if groups is None else groups
        cache = {} if cache is None else cache
        out = np.full(len(batch), np.nan)
        fallback = np.zeros(len(batch), dtype=bool)
        fitted = list(self.groups_)
        if not skip_unknown:
            unknown = ~np.isin(groups, fitted) & (groups != TRIVIAL_GROUP)
            if unknown.any():
                raise self._unknown(batch, unknown, self.groups_)
        for group in set(groups):
            if group == TRIVIAL_GROUP and group not in self.groups_:
                mask = groups == group
                out[mask] = float(self.trivial_value)
                fallback[mask] = True
                continue
            model = self.groups_.get(group)
            if model is None:
                continue
            if model.constant is not None:
                out[groups == group] = model.constant
                continue
            if group not in cache:
                mask = groups == group
                sub = LayerBatch(batch.kinds[mask], batch.values[mask], batch.names[mask])
                cache[group] = (mask, *self._raw_inputs(sub, group))
            mask, v_raw, s_raw = cache[group]
            out[mask] = model.evaluate(*self._in_space(model.space, v_raw, s_raw))
        return {self.target: out, "fallback": fallback}

    # ------------------------------------------------------------------ reporting
    def terms(self, group: str) -> pd.DataFrame:
        """The fitted formula of ``group``, one row per non-zero term.

        In log space the terms are of ``log(1 + x)`` and the formula gives ``log(target)``.

        Returns:
            Columns ``term`` (e.g. ``"log1p(batch)*log1p(flops)"``; ``"1"`` is the
            intercept) and ``coefficient``.
        """
        self._check_fitted()
        if group not in self.groups_:
            raise KeyError(f"group {group!r} is not fitted; fitted: {', '.join(self.groups_)}")
        model = self.groups_[group]
        if model.constant is not None:
            return pd.DataFrame({"term": ["1"], "coefficient": [model.constant]})
        spec = self._spec(group)
        wrap = "log1p({})" if model.space == "log" else "{}"
        names = ["1"] + [_term_name(e, spec.variables, wrap) for e in model.exponents]
        names += [wrap.format(spec.special[i]) for i in model.special_idx]
        coefs = [model.intercept, *model.coef_poly, *model.coef_special]
        return pd.DataFrame({"term": names, "coefficient": coefs})

    def summary(self) -> pd.DataFrame:
        """One row per fitted group: training rows, space, degree, penalty, model size,
        cross-validated RMSPE (%)."""
        self._check_fitted()
        return pd.DataFrame(
            [
                {
                    "group": g,
                    "n_train": m.n_train,
                    "space": m.space if m.constant is None else "constant",
                    "degree": m.degree,
                    "alpha": m.alpha,
                    "model_size": m.size,
                    "cv_rmspe_pct": m.cv_rmspe,
                    "constant": m.constant,
                }
                for g, m in sorted(self.groups_.items())
            ]
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        cv = self.cv_results_.astype(object).where(self.cv_results_.notna(), None)
        specs = {g: self._spec(g) for g, m in self.groups_.items() if m.constant is None}
        return {
            "groups": {g: m.to_state() for g, m in self.groups_.items()},
            "inputs": {
                g: {"variables": list(sp.variables), "special": list(sp.special)}
                for g, sp in specs.items()
            },
            "cv_results": cv.to_dict(orient="list"),
            "n_dropped": self.n_dropped_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        models = {}
        inputs = state["inputs"]
        for g, st in state["groups"].items():
            if st["constant"] is None:
                spec = self._spec(g)
                saved = (inputs[g]["variables"], inputs[g]["special"])
                if saved != (list(spec.variables), list(spec.special)):
                    raise io.ModelFormatError(
                        f"group {g!r} was fitted on inputs {saved[0]} + {saved[1]}, but this hwml "
                        f"models it with {list(spec.variables)} + {list(spec.special)}: refit the model"
                    )
            d = 0 if st["constant"] is not None else len(self._spec(g).variables)
            models[g] = _GroupModel.from_state(st, d)
        self.groups_ = models
        self.cv_results_ = pd.DataFrame(state["cv_results"])
        self.n_dropped_ = int(state["n_dropped"])
        self._summarise()


def _independent_columns(x: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``x`` that are neither constant nor copies of another.

    Of several proportional columns the *last* is kept, so a special term (they follow
    the monomials) wins over a monomial equal to it, e.g. ``flops`` over
    ``batch*in_features*out_features``.
    """
    sd = x.std(axis=0)
    scale = np.maximum(np.abs(x).max(axis=0), 1e-300)
    varying = sd > 1e-9 * scale
    z = np.where(varying, (x - x.mean(axis=0)) / np.where(varying, sd, 1.0), 0.0)
    rev = z[:, ::-1]
    _, first = np.unique(np.round(rev, 9), axis=1, return_index=True)
    keep = np.zeros(x.shape[1], dtype=bool)
    keep[x.shape[1] - 1 - first] = True
    return np.flatnonzero(keep & varying)


def _relaxed_refit(
    xs: np.ndarray, z: np.ndarray, support: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """Least squares on the selected (standardized) columns; returns (coef, intercept)."""
    a = np.column_stack([np.ones(len(z)), xs[:, support]])
    w = np.ones(len(z)) if weight is None else np.sqrt(weight)
    sol, *_ = np.linalg.lstsq(a * w[:, None], z * w, rcond=None)
    coef = np.zeros(xs.shape[1])
    coef[support] = sol[1:]
    return coef, float(sol[0])


# ====================================================================== runtime + power


@io.register
@dataclass(eq=False, repr=False)
class NeuralPower(_FitSettings):
    """NeuralPower's pair of models: per-layer runtime and power, and energy from both.

    Energy of a layer is power x runtime; a network's runtime and energy are the sums
    over its layers and its average power is energy / runtime.

    The power model covers the groups with at least ``cv`` rows of measured power. A
    layer of any other group gets NaN power and energy (and so does the network's
    total energy): an unmeasured quantity is missing, not guessed. A layer predicted to
    take no time (flatten, dropout) has NaN power and zero energy.

    Args:
        runtime_target: Runtime column (ms).
        power_target: Power column (W). When no group has ``cv`` usable rows of it, only
            the runtime model is fitted and power/energy predict as NaN.
        clip_power: Keep power predictions within the range of measured layer powers of
            their group (``clip`` of the power model; the runtime model is never clipped).
            Keyword only.
        **settings: The fitting settings of :class:`_FitSettings` (keyword only), handed
            to both models: degrees, cv, space, weighting, n_alphas, eps, max_iter,
            relaxed, groups, kind_groups, trivial_value, seed, device_check.

    Attributes:
        runtime_: The fitted runtime :class:`NeuralPowerRegressor`.
        power_: The fitted power :class:`NeuralPowerRegressor`, or None.
    """

    model_type: ClassVar[str] = "neuralpower"
    _fitted_attr: ClassVar[str] = "runtime_"

    runtime_target: str = "runtime_ms"
    power_target: str = "power_w"
    _: KW_ONLY
    clip_power: bool = True

    @property
    def target(self) -> str:
        return self.runtime_target

    def _regressor(self, target: str) -> NeuralPowerRegressor:
        clip = bool(self.clip_power) and target == self.power_target
        return NeuralPowerRegressor(target, clip=clip, **self._fit_settings())

    def fit(self, table: pd.DataFrame, y: Any = None, *, device: str | None = None) -> NeuralPower:
        """Fit the runtime model and, where power was measured, the power model.

        Args:
            table: Measured layer table (see :class:`NeuralPowerRegressor`).
            y: Ignored.
            device: GPU name of the measurements.

        Returns:
            self.
        """
        self.runtime_ = self._regressor(self.runtime_target).fit(table, device=device)
        self.power_: NeuralPowerRegressor | None = None
        if self.power_target in table.columns:
            rows, _ = usable_rows(table, self.power_target)
            counts = pd.Series(
                self.runtime_._group_of(rows["kind"].to_numpy(dtype=str))
            ).value_counts()
            enough = [
                g
                for g, n in counts.items()
                if g in self.runtime_.groups_ and g != TRIVIAL_GROUP and n >= int(self.cv)
            ]
            if enough:
                self.power_ = self._regressor(self.power_target).set_params(groups=sorted(enough))
                self.power_.fit(table, device=device)
        self.device_ = self.runtime_.device_
        self.dtype_ = self.runtime_.dtype_
        return self

    @property
    def model_size_(self) -> dict[str, dict[str, int]]:
        """Non-zero terms per group of each model: ``{"runtime": {...}, "power": {...}}``."""
        self._check_fitted()
        sizes = {"runtime": self.runtime_.model_size_}
        if self.power_ is not None:
            sizes["power"] = self.power_.model_size_
        return sizes

    def _predict_batch(self, batch: LayerBatch) -> dict[str, np.ndarray]:
        groups = self.runtime_._group_of(batch.kinds)
        cache: dict[str, tuple[np.ndarray, ...]] = {}
        rt = self.runtime_._predict_batch(batch, groups, cache)
        runtime = rt[self.runtime_target]
        if self.power_ is not None:
            power = self.power_._predict_batch(batch, groups, cache, skip_unknown=True)[
                self.power_target
            ]
        else:
            power = np.full(len(batch), np.nan)
        idle = runtime == 0
        power[idle] = np.nan  # a layer that takes no time has no meaningful power
        energy = np.where(idle, 0.0, power * runtime)
        return {
            "runtime_ms": runtime,
            "power_w": power,
            "energy_mj": energy,
            "fallback": rt["fallback"],
        }

    def _output_name(self) -> str:
        return "runtime_ms"

    def _priceable(self, batch: LayerBatch) -> np.ndarray:
        return self.runtime_._priceable(batch)

    def _supported(self) -> list[str]:
        return self.runtime_._supported()

    def predict_all(self, table: pd.DataFrame, *, device: str | None = None) -> pd.DataFrame:
        """Runtime (ms), power (W) and energy (mJ) of every row of a layer table."""
        self._check_fitted()
        batch = LayerBatch.from_table(table)
        self.check_device(device, np.unique(batch.column("dtype_bytes")))
        out = self._predict_batch(batch)
        return pd.DataFrame(out, index=table.index)

    def _totals(self, out: Mapping[str, np.ndarray]) -> dict[str, float]:
        runtime = float(np.sum(out["runtime_ms"]))
        energy = float(np.sum(out["energy_mj"]))
        return {
            "runtime_ms": runtime,
            "energy_mj": energy,
            "power_w": energy / runtime if runtime > 0 else math.nan,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "runtime": io.to_document(self.runtime_),
            "power": None if self.power_ is None else io.to_document(self.power_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.runtime_ = io.from_document(state["runtime"], NeuralPowerRegressor)
        self.power_ = (
            None
            if state["power"] is None
            else io.from_document(state["power"], NeuralPowerRegressor)
        )
