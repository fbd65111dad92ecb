"""HyperPower's linear power and memory models of whole networks.

Stamoulis et al. (HyperPower, DATE 2018) predict a candidate network's inference power
and memory *before training it*, from its structural hyper-parameters ``z`` (filters
per layer, units per layer, ...), with models linear in ``z`` (survey eqs. 3-4)::

    P(z) = sum_j w_j z_j,     M(z) = sum_j m_j z_j

trained by 10-fold cross-validation on randomly sampled, profiled configurations. They
serve as *a priori* constraints of the Bayesian optimizer: a candidate predicted to
exceed the budget is never trained.

:class:`LinearHardwareModel` is that model for any target column (``power_w``,
``peak_mem_bytes``, ...). Choices:

* An intercept is fitted by default (``fit_intercept=True``): idle power and the
  framework's fixed memory are not zero at ``z = 0``. ``fit_intercept=False`` gives the
  paper's exact form.
* The reported accuracy is *cross-validated* (``cv`` folds, shuffled with ``seed``):
  ``cv_rmse_``, ``cv_rmspe_``, ``cv_mape_`` and the out-of-fold predictions
  ``cv_predictions_``; the final coefficients are fitted on all rows.
* ``predict_std`` gives the ordinary-least-squares predictive standard deviation,
  ``s * sqrt(1 + x (X'X)^-1 x')`` with ``s`` the residual standard error, for a
  probabilistic constraint (probability that the budget holds).
* Called as a function (``model(z)``), the model returns the mean, or ``(mean, std)``
  when constructed with ``return_std=True``: the form
  :class:`hwml.optimize.constraints.Constraint` expects of its ``model``.

Units: those of the target column (W for power, bytes for memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold

from hwml.data import json_safe
from hwml.predict import io
from hwml.predict.base import (
    Estimator,
    MissingColumnsError,
    PredictorError,
    TooFewRowsError,
    require_columns,
    usable_rows,
)
from hwml.predict.metrics import mape, rmse, rmspe

__all__ = ["LinearHardwareModel", "power_model", "memory_model", "MEASURED_SUFFIXES"]

#: Column-name endings of measured quantities, never used as features by default.
MEASURED_SUFFIXES: tuple[str, ...] = ("_ms", "_s", "_w", "_mj", "_j", "_bytes", "_pct")


@io.register
class LinearHardwareModel(Estimator):
    """A linear model of a hardware quantity of whole networks (HyperPower).

    Args:
        target: Column to model, e.g. ``"power_w"`` or ``"peak_mem_bytes"``.
        features: Structural columns ``z``. None: every numeric, non-boolean column
            except the target and the columns whose names end in the unit of a measured
            quantity (:data:`MEASURED_SUFFIXES`, e.g. ``runtime_ms``, ``peak_mem_bytes``).
            Naming them explicitly is safer.
        fit_intercept: Fit a constant term (see the module docstring).
        cv: Cross-validation folds (the paper uses 10).
        seed: Seed of the fold shuffling.
        return_std: What calling the model returns: the mean (False) or ``(mean, std)``.
        device_check: ``"warn"``, ``"error"`` or ``"ignore"`` when predicting for another
            device.

    Attributes:
        features_: Feature columns used, in order.
        coef_: Feature -> coefficient (target unit per feature unit).
        intercept_: Constant term (0.0 without intercept).
        residual_std_: Residual standard error of the full fit.
        cv_rmse_, cv_rmspe_, cv_mape_: Cross-validated errors (target unit, %, %).
        cv_predictions_: Out-of-fold predictions, shape ``(n_train,)``.
        n_train_: Usable training rows.
    """

    model_type: ClassVar[str] = "hyperpower_linear"
    _fitted_attr: ClassVar[str] = "coef_"

    def __init__(
        self,
        target: str = "power_w",
        features: Sequence[str] | None = None,
        fit_intercept: bool = True,
        cv: int = 10,
        seed: int = 0,
        return_std: bool = False,
        device_check: str = "warn",
    ) -> None:
        self.target = target
        self.features = features
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.seed = seed
        self.return_std = return_std
        self.device_check = device_check

    # ------------------------------------------------------------------ helpers
    def _choose_features(self, table: pd.DataFrame) -> list[str]:
        if self.features is not None:
            feats = list(self.features)
            if not feats:
                raise ValueError("features must name at least one column")
            if self.target in feats:
                raise ValueError(f"target {self.target!r} cannot also be a feature")
            return feats
        feats = [
            c
            for c in table.columns
            if c != self.target
            and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])
            and not str(c).endswith(MEASURED_SUFFIXES)
        ]
        if not feats:
            raise MissingColumnsError(["<numeric feature columns>"], "fit")
        return feats

    def _design(self, z: pd.DataFrame, what: str) -> np.ndarray:
        require_columns(z, self.features_, what)
        x = z.loc[:, self.features_].to_numpy(dtype=float)
        if not np.all(np.isfinite(x)):
            bad = [
                f
                for f, ok in zip(self.features_, np.isfinite(x).all(axis=0), strict=True)
                if not ok
            ]
            raise PredictorError(f"{what}: NaN or infinite values in feature column(s) {bad}")
        if self.fit_intercept:
            x = np.column_stack([np.ones(len(x)), x])
        return x

    @staticmethod
    def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        sol, *_ = np.linalg.lstsq(x, y, rcond=None)
        return sol

    # ------------------------------------------------------------------ API
    def fit(
        self, table: pd.DataFrame, y: Any = None, *, device: str | None = None
    ) -> LinearHardwareModel:
        """Fit by least squares and cross-validate.

        Args:
            table: One row per profiled configuration: feature columns and the target
                (and optionally ``status``, ``gpu_name``, ``dtype``).
            y: Ignored (the target is the ``target`` column).
            device: GPU name of the measurements.

        Returns:
            self.

        Raises:
            MissingColumnsError: naming missing feature or target columns.
            TooFewRowsError: fewer usable rows than ``cv`` folds, or than coefficients.
        """
        self._check_device_check()
        require_columns(table, [self.target], "fit")
        self.features_ = self._choose_features(table)
        require_columns(table, self.features_, "fit")
        rows, dropped = usable_rows(table, self.target)
        n_coef = len(self.features_) + int(bool(self.fit_intercept))
        if len(rows) < max(int(self.cv), n_coef + 1):
            raise TooFewRowsError(
                f"fit: {len(rows)} usable row(s) of {self.target!r}; need at least "
                f"{max(int(self.cv), n_coef + 1)} ({self.cv}-fold cross-validation, {n_coef} coefficients)"
            )
        if int(self.cv) < 2:
            raise ValueError(f"cv must be at least 2, got {self.cv}")
        self._remember_data(rows, device)
        x = self._design(rows, "fit")
        y_true = rows[self.target].to_numpy(dtype=float)

        oof = np.empty(len(y_true))
        for train, test in KFold(int(self.cv), shuffle=True, random_state=int(self.seed)).split(x):
            oof[test] = x[test] @ self._lstsq(x[train], y_true[train])
        sol = self._lstsq(x, y_true)
        resid = y_true - x @ sol
        dof = max(len(y_true) - x.shape[1], 1)
        self.residual_std_ = float(math.sqrt(resid @ resid / dof))
        self.xtx_inv_ = np.linalg.pinv(x.T @ x)
        self.intercept_ = float(sol[0]) if self.fit_intercept else 0.0
        coefs = sol[1:] if self.fit_intercept else sol
        self.coef_ = {f: float(c) for f, c in zip(self.features_, coefs, strict=True)}
        self._sol = sol
        self.cv_predictions_ = oof
        self.cv_rmse_ = rmse(y_true, oof)
        nonzero = y_true != 0
        self.cv_rmspe_ = rmspe(y_true[nonzero], oof[nonzero]) if nonzero.any() else math.nan
        self.cv_mape_ = mape(y_true[nonzero], oof[nonzero]) if nonzero.any() else math.nan
        self.n_train_ = len(y_true)
        self.n_dropped_ = dropped
        return self

    def predict(self, z: pd.DataFrame, *, device: str | None = None) -> np.ndarray:
        """Predicted target for each configuration.

        Args:
            z: One row per configuration, holding the feature columns.
            device: GPU name the prediction is for.

        Returns:
            Shape ``(n,)``, in the target's unit.
        """
        self._check_fitted()
        self.check_device(device)
        return self._design(z, "predict") @ self._sol

    def predict_std(self, z: pd.DataFrame, *, device: str | None = None) -> np.ndarray:
        """Predictive standard deviation of a new measurement, shape ``(n,)``."""
        self._check_fitted()
        self.check_device(device)
        x = self._design(z, "predict_std")
        h = np.einsum("ij,jk,ik->i", x, self.xtx_inv_, x)
        return self.residual_std_ * np.sqrt(1.0 + np.maximum(h, 0.0))

    def __call__(self, z: pd.DataFrame) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The constraint-model form: mean, or ``(mean, std)`` with ``return_std=True``."""
        if self.return_std:
            return self.predict(z), self.predict_std(z)
        return self.predict(z)

    def cv_summary(self) -> dict[str, float]:
        """Cross-validated errors: ``rmse`` (target unit), ``rmspe_pct``, ``mape_pct``, ``n``."""
        self._check_fitted()
        return {
            "rmse": self.cv_rmse_,
            "rmspe_pct": self.cv_rmspe_,
            "mape_pct": self.cv_mape_,
            "n": float(self.n_train_),
        }

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {
            "features": self.features_,
            "solution": self._sol,
            "xtx_inv": self.xtx_inv_,
            "residual_std": self.residual_std_,
            "cv_rmse": self.cv_rmse_,
            "cv_rmspe": json_safe(self.cv_rmspe_),
            "cv_mape": json_safe(self.cv_mape_),
            "cv_predictions": self.cv_predictions_,
            "n_train": self.n_train_,
            "n_dropped": self.n_dropped_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.features_ = list(state["features"])
        self._sol = np.array(state["solution"], dtype=float)
        self.xtx_inv_ = np.array(state["xtx_inv"], dtype=float)
        self.residual_std_ = float(state["residual_std"])
        self.intercept_ = float(self._sol[0]) if self.fit_intercept else 0.0
        coefs = self._sol[1:] if self.fit_intercept else self._sol
        self.coef_ = {f: float(c) for f, c in zip(self.features_, coefs, strict=True)}
        self.cv_rmse_ = float(state["cv_rmse"])
        self.cv_rmspe_ = math.nan if state["cv_rmspe"] is None else float(state["cv_rmspe"])
        self.cv_mape_ = math.nan if state["cv_mape"] is None else float(state["cv_mape"])
        self.cv_predictions_ = np.array(state["cv_predictions"], dtype=float)
        self.n_train_ = int(state["n_train"])
        self.n_dropped_ = int(state["n_dropped"])


def power_model(
    features: Sequence[str] | None = None, target: str = "power_w", **kwargs: Any
) -> LinearHardwareModel:
    """HyperPower's power model P(z) (W): a :class:`LinearHardwareModel` of ``power_w``."""
    return LinearHardwareModel(target=target, features=features, **kwargs)


def memory_model(
    features: Sequence[str] | None = None, target: str = "peak_mem_bytes", **kwargs: Any
) -> LinearHardwareModel:
    """HyperPower's memory model M(z) (bytes): a :class:`LinearHardwareModel` of ``peak_mem_bytes``."""
    return LinearHardwareModel(target=target, features=features, **kwargs)
