"""HyperPower's a-priori hardware constraints: linear models of ``z``, and budgets.

HyperPower predicts a candidate's inference power and memory from its structural
hyper-parameters before training it, and a candidate predicted over budget is never
trained. This module fits those models on a table of profiled structures
(:func:`fit_hardware_models`; the estimator is :class:`hwml.predict.LinearHardwareModel`,
which the predictors room holds beside the other models), takes budgets at quantiles of
the measured values (:func:`quantile_budgets`), and hands both to the optimizer as
:class:`~hwml.optimize.Constraint` objects (:class:`HardwareBudgets`), which is all that
the command line, the tabular benchmark and the chapters use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwml.optimize import Constraint
from hwml.predict.hyperpower import LinearHardwareModel
from hwml.tasks.cnn import STRUCTURAL, structural_features

__all__ = [
    "FEATURE_SETS",
    "HardwareBudgets",
    "StructuralModel",
    "fit_hardware_models",
    "hardware_budgets",
    "hardware_constraints",
    "quantile_budgets",
]

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "z": STRUCTURAL,
    "derived": (*STRUCTURAL, "params", "flops", "activation_bytes"),
}
"""Feature columns of the linear hardware models: ``z`` alone (HyperPower's exact form,
eqs. 3-4 of the survey) or ``z`` plus parameters, FLOPs and activation bytes, which a
linear model can weigh too (memory grows with the dense layer's weights, a product of two
dimensions of ``z``)."""


class StructuralModel:
    """A hardware model of whole networks that takes ``z`` and computes its own features.

    Constraint models receive only the structural columns ``z``; this wrapper adds the
    derived columns (:func:`structural_features`, at the inference batch and image size
    the model was fitted for) before predicting.

    Args:
        model: fitted estimator with ``predict(frame)`` (and ``predict_std`` for
            ``return_std``), e.g. :class:`hwml.predict.LinearHardwareModel`.
        image_size: input side of the profiled networks.
        batch: inference batch of the profiled networks.
        in_channels: input channels.
        return_std: calling returns ``(mean, std)`` instead of the mean (for HW-IECI's
            probabilistic variant).
    """

    def __init__(
        self,
        model: Any,
        *,
        image_size: int,
        batch: int,
        in_channels: int = 1,
        return_std: bool = False,
    ) -> None:
        self.model = model
        self.image_size = int(image_size)
        self.batch = int(batch)
        self.in_channels = int(in_channels)
        self.return_std = return_std

    def with_std(self) -> StructuralModel:
        """The same fitted model, called for ``(mean, std)``."""
        return StructuralModel(
            self.model,
            image_size=self.image_size,
            batch=self.batch,
            in_channels=self.in_channels,
            return_std=True,
        )

    def features(self, z: pd.DataFrame) -> pd.DataFrame:
        """The feature frame the wrapped model sees."""
        return structural_features(
            z, image_size=self.image_size, batch=self.batch, in_channels=self.in_channels
        )

    def predict(self, z: pd.DataFrame) -> np.ndarray:
        """Predictions, shape ``(n,)``, in the target's unit."""
        return np.asarray(self.model.predict(self.features(z)), dtype=float)

    def __call__(self, z: pd.DataFrame) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        feats = self.features(z)
        mean = np.asarray(self.model.predict(feats), dtype=float)
        if self.return_std:
            return mean, np.asarray(self.model.predict_std(feats), dtype=float)
        return mean


def _single(table: pd.DataFrame, column: str, default: int) -> int:
    if column not in table.columns:
        return default
    values = sorted(set(pd.to_numeric(table[column], errors="coerce").dropna().astype(int)))
    if len(values) > 1:
        raise ValueError(
            f"structures table mixes {column} values {values}; fit one model per value"
        )
    return int(values[0]) if values else default


def fit_hardware_models(
    structures: pd.DataFrame,
    *,
    features: str | Sequence[str] = "derived",
    targets: Mapping[str, str] | None = None,
    cv: int = 10,
    seed: int = 0,
    return_std: bool = False,
) -> dict[str, StructuralModel]:
    """Fit HyperPower's linear power and memory models on profiled structures.

    Uses :class:`hwml.predict.LinearHardwareModel` (least squares with an intercept,
    ``cv``-fold cross-validated errors in ``model.model.cv_summary()``). Rows whose status is not ``ok`` /
    ``no_power`` or whose target is missing are left out.

    Args:
        structures: a ``structures.csv`` table (see :func:`hwml.hyperpower.runner.measure_structures`):
            the structural columns, the targets and ``image_size``, ``batch``,
            ``in_channels`` (each single-valued).
        features: a key of :data:`FEATURE_SETS` or a list of columns of
            :func:`structural_features`.
        targets: constraint name -> measured column; default
            ``{"power_w": "power_w", "mem_bytes": "peak_mem_bytes"}``.
        cv: cross-validation folds.
        seed: seed of the fold shuffling.
        return_std: the models return ``(mean, std)`` (for ``hw-ieci-prob``).

    Returns:
        Constraint name -> :class:`StructuralModel`.

    Raises:
        ValueError: unknown feature set, too few usable rows (e.g. power not measured).
    """
    targets = dict(targets or {"power_w": "power_w", "mem_bytes": "peak_mem_bytes"})
    if isinstance(features, str):
        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {features!r}; known: {', '.join(FEATURE_SETS)}")
        feats = list(FEATURE_SETS[features])
    else:
        feats = list(features)
    image_size = _single(structures, "image_size", 32)
    batch = _single(structures, "batch", 1)
    in_channels = _single(structures, "in_channels", 1)
    table = structural_features(
        structures, image_size=image_size, batch=batch, in_channels=in_channels
    )
    unknown = [f for f in feats if f not in table.columns]
    if unknown:
        raise ValueError(f"unknown feature column(s) {unknown}; available: {list(table.columns)}")
    for col in ("status",):
        if col in structures.columns:
            table[col] = structures[col].to_numpy()
    models: dict[str, StructuralModel] = {}
    for name, column in targets.items():
        if column not in structures.columns:
            raise ValueError(f"structures table has no column {column!r} to fit {name!r} on")
        table[column] = pd.to_numeric(structures[column], errors="coerce").to_numpy()
        usable = np.isfinite(table[column].to_numpy(dtype=float))
        if "status" in table.columns:
            usable &= table["status"].astype(str).isin(("ok", "no_power")).to_numpy()
        if usable.sum() < max(cv, len(feats) + 2):
            raise ValueError(
                f"only {int(usable.sum())} structures have a measured {column!r}; cannot fit the "
                f"{name} model (was power measured? rows with status no_power have none)"
            )
        est = LinearHardwareModel(
            target=column, features=list(feats), cv=cv, seed=seed, device_check="ignore"
        ).fit(table.loc[usable, [*feats, column]])
        models[name] = StructuralModel(
            est, image_size=image_size, batch=batch, in_channels=in_channels, return_std=return_std
        )
    return models


def hardware_constraints(
    models: Mapping[str, StructuralModel],
    *,
    power_budget_w: float | None = None,
    mem_budget_bytes: float | None = None,
) -> list[Constraint]:
    """HyperPower's a-priori constraints from fitted models and budgets.

    Args:
        models: output of :func:`fit_hardware_models`.
        power_budget_w: inference power budget (W); None for no power constraint.
        mem_budget_bytes: inference memory budget (bytes); None for none.

    Returns:
        ``Constraint("power_w", ...)`` reading the measured ``power_w`` of a result, and
        ``Constraint("mem_bytes", ...)`` reading ``peak_mem_bytes``, for the budgets given.
    """
    out: list[Constraint] = []
    for name, budget, measured in (
        ("power_w", power_budget_w, "power_w"),
        ("mem_bytes", mem_budget_bytes, "peak_mem_bytes"),
    ):
        if budget is None:
            continue
        if name not in models:
            raise ValueError(f"no {name} model was fitted for the {name} budget")
        out.append(Constraint(name, float(budget), models[name], measured=measured))
    return out


def quantile_budgets(structures: pd.DataFrame, quantile: float) -> dict[str, float]:
    """Budgets at a quantile of the measured power and memory of the usable structures.

    With ``quantile=0.6`` about 40 % of the structures exceed each budget.

    Args:
        structures: a ``structures.csv`` table.
        quantile: in ``(0, 1)``.

    Returns:
        ``{"power_w": W, "mem_bytes": bytes}`` (NaN where nothing was measured).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    ok = (
        structures["status"].astype(str).isin(("ok", "no_power"))
        if "status" in structures.columns
        else np.ones(len(structures), bool)
    )
    out = {}
    for name, col in (("power_w", "power_w"), ("mem_bytes", "peak_mem_bytes")):
        values = pd.to_numeric(structures.loc[ok, col], errors="coerce").dropna()
        out[name] = float(values.quantile(quantile)) if len(values) else math.nan
    return out


@dataclass(frozen=True)
class HardwareBudgets:
    """Power and memory budgets with the models that judge a candidate against them.

    Build it with :func:`hardware_budgets`.

    Attributes:
        budgets: ``{"power_w": W or None, "mem_bytes": bytes or None}`` (None: no budget).
        quantiles: the quantiles the budgets were taken at (None for a budget given as a
            value, or no budget).
        models: a fitted :class:`StructuralModel` per budget that is set, returning point
            predictions.
        features: the feature set of the models.
    """

    budgets: dict[str, float | None]
    quantiles: dict[str, float | None]
    models: dict[str, StructuralModel]
    features: str | list[str] = "derived"

    @property
    def models_std(self) -> dict[str, StructuralModel]:
        """The same fitted models, returning ``(mean, std)`` (for ``hw-ieci-prob``)."""
        return {name: model.with_std() for name, model in self.models.items()}

    def constraints(self, method: str = "hw-ieci") -> list[Constraint]:
        """The a-priori constraints a search method gets.

        Args:
            method: a search method; ``"hw-ieci-prob"`` gets the models with a predictive
                standard deviation, every other method point predictions.

        Returns:
            ``Constraint("power_w", ...)`` and ``Constraint("mem_bytes", ...)`` for the
            budgets that are set.
        """
        models = self.models_std if method == "hw-ieci-prob" else self.models
        return hardware_constraints(
            models,
            power_budget_w=self.budgets.get("power_w"),
            mem_budget_bytes=self.budgets.get("mem_bytes"),
        )

    def report(self) -> dict[str, Any]:
        """What a search's sidecar records of the models: features, cross-validated
        errors, image size and batch, per model."""
        out = {}
        for name, m in self.models.items():
            summary = m.model.cv_summary() if hasattr(m.model, "cv_summary") else {}
            out[name] = {
                "features": list(getattr(m.model, "features_", [])),
                "cv": {k: float(v) for k, v in summary.items()},
                "image_size": m.image_size,
                "batch": m.batch,
            }
        return out


def hardware_budgets(
    structures: pd.DataFrame,
    *,
    power_budget_w: float | None = None,
    mem_budget_bytes: float | None = None,
    power_quantile: float | None = None,
    mem_quantile: float | None = None,
    features: str | list[str] = "derived",
    cv: int = 10,
    seed: int = 0,
) -> HardwareBudgets:
    """Budgets (values or quantiles of the measured structures) and their fitted models.

    Each budget is given either as a value or as a quantile of the usable structures'
    measured values (:func:`quantile_budgets`), or not at all; a model is fitted
    (:func:`fit_hardware_models`) for each budget that is set, once.

    Args:
        structures: a ``structures.csv`` table.
        power_budget_w: inference power budget (W).
        mem_budget_bytes: inference memory budget (bytes).
        power_quantile: quantile of the measured power that becomes the power budget.
        mem_quantile: quantile of the measured peak memory that becomes the memory budget.
        features: feature set of the models (see :data:`FEATURE_SETS`).
        cv: cross-validation folds of the models' error estimates.
        seed: seed of the fold shuffling.

    Returns:
        The budgets and models.

    Raises:
        ValueError: a budget given both as a value and as a quantile; a quantile of
            nothing measured; too few usable structures to fit a model.
    """
    budgets: dict[str, float | None] = {"power_w": power_budget_w, "mem_bytes": mem_budget_bytes}
    quantiles: dict[str, float | None] = {"power_w": power_quantile, "mem_bytes": mem_quantile}
    for name, q in quantiles.items():
        if q is None:
            continue
        if budgets[name] is not None:
            raise ValueError(f"give either a {name} budget or its quantile, not both")
        value = quantile_budgets(structures, q)[name]
        if not math.isfinite(value):
            raise ValueError(f"no measured {name} in the structures table to take a quantile of")
        budgets[name] = value
    targets = {
        name: column
        for name, column in (("power_w", "power_w"), ("mem_bytes", "peak_mem_bytes"))
        if budgets[name] is not None
    }
    models = (
        fit_hardware_models(structures, features=features, targets=targets, cv=cv, seed=seed)
        if targets
        else {}
    )
    return HardwareBudgets(budgets=budgets, quantiles=quantiles, models=models, features=features)
