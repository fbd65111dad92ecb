"""Hardware constraints known *a priori* through predictive models.

A :class:`Constraint` is ``value(z) <= budget`` where ``value`` is, e.g., inference power
in watts or memory in bytes, ``z`` the structural hyper-parameters, and the budget is in
the same unit. Its ``model`` predicts the value before any training (HyperPower's linear
power/memory models, a NeuralPower predictor, or any callable); after an evaluation the
measured value, if the objective reports one, is read from the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

__all__ = [
    "Constraint",
    "ConstraintModelError",
    "ConstraintPrediction",
    "InfeasibleBudgetError",
    "predict_constraints",
]

ModelOutput = Any
"""What a constraint model returns: an array-like of shape ``(n,)``, or a pair
``(mean, std)`` of such arrays for a model with a Gaussian predictive distribution."""


class ConstraintModelError(ValueError):
    """A constraint's model raised or answered in the wrong shape; the message names the
    constraint and the input it was given."""


class InfeasibleBudgetError(ValueError):
    """No configuration of the space meets the budgets, according to the constraint models."""


@dataclass(frozen=True)
class Constraint:
    """A budget on one hardware quantity.

    Attributes:
        name: the quantity with its unit, e.g. ``"power_w"`` or ``"mem_bytes"``; used for
            the history columns ``pred_<name>`` and ``measured_<name>``.
        budget: the largest allowed value, in the unit of ``name``.
        model: callable taking a frame of configurations (the structural columns ``z``,
            one row per configuration) and returning predicted values of shape ``(n,)``,
            or a pair ``(mean, std)`` for a Gaussian predictive distribution.
        measured: how to read the measured value from an evaluation's result mapping: a
            key, a callable ``result -> float``, or ``None`` for the key ``name``. A
            missing key gives NaN (not measured).
    """

    name: str
    budget: float
    model: Callable[[pd.DataFrame], ModelOutput]
    measured: str | Callable[[Mapping[str, Any]], float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(
                f"constraint field 'name' must be a non-empty string, got {self.name!r}"
            )
        if isinstance(self.budget, bool) or not isinstance(self.budget, int | float | np.number):
            raise TypeError(
                f"constraint {self.name!r}: field 'budget' must be a number, got {self.budget!r}"
            )
        if math.isnan(float(self.budget)):
            raise ValueError(f"constraint {self.name!r}: field 'budget' is NaN")
        if not callable(self.model):
            raise TypeError(f"constraint {self.name!r}: field 'model' must be callable")
        if self.measured is not None and not (
            isinstance(self.measured, str) or callable(self.measured)
        ):
            raise TypeError(
                f"constraint {self.name!r}: field 'measured' must be a key, a callable or None"
            )

    def predict(self, z: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict the constrained quantity.

        Args:
            z: frame of ``n`` configurations (structural columns).

        Returns:
            ``(mean, std)``, each of shape ``(n,)`` in the unit of :attr:`name`; ``std`` is
            ``None`` for a point-prediction model.

        Raises:
            ConstraintModelError: the model raised (the message names the constraint and
                the input) or returned the wrong shape.
        """
        try:
            out = self.model(z)
        except Exception as err:  # noqa: BLE001 - re-raised naming the constraint
            first = z.head(1).to_dict(orient="records")
            raise ConstraintModelError(
                f"constraint {self.name!r}: its model raised {type(err).__name__}: {err} "
                f"(on {len(z)} configuration(s), the first {first[0] if first else {}})"
            ) from err
        std: np.ndarray | None = None
        if isinstance(out, tuple):
            if len(out) != 2:
                raise ConstraintModelError(
                    f"constraint {self.name!r}: model returned a tuple of {len(out)}, expected (mean, std)"
                )
            mean = np.asarray(out[0], dtype=float).reshape(-1)
            std = np.abs(np.asarray(out[1], dtype=float).reshape(-1))
        else:
            mean = np.asarray(out, dtype=float).reshape(-1)
        for label, arr in (("mean", mean), ("std", std)):
            if arr is not None and arr.shape != (len(z),):
                raise ConstraintModelError(
                    f"constraint {self.name!r}: model {label} has shape {arr.shape}, expected ({len(z)},)"
                )
        return mean, std

    def read_measured(self, result: Mapping[str, Any]) -> float:
        """Read the measured value from an evaluation result.

        Args:
            result: the mapping an objective returned.

        Returns:
            The measured value in the unit of :attr:`name`, or NaN when absent.
        """
        if callable(self.measured):
            value = self.measured(result)
        else:
            value = result.get(self.measured or self.name, math.nan)
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan


@dataclass(frozen=True)
class ConstraintPrediction:
    """Predictions of all constraints for ``n`` configurations.

    Attributes:
        mean: per constraint name, predicted values of shape ``(n,)``.
        std: per constraint name, predictive std of shape ``(n,)`` or ``None``.
        feasible: shape ``(n,)``; True where every predicted mean is within its budget.
        prob_feasible: shape ``(n,)``; product over constraints of ``P(value <= budget)``
            under ``N(mean, std^2)``; for a point model the factor is the indicator.
    """

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray | None]
    feasible: np.ndarray
    prob_feasible: np.ndarray


def predict_constraints(constraints: Sequence[Constraint], z: pd.DataFrame) -> ConstraintPrediction:
    """Evaluate all constraint models on a set of configurations.

    NaN predictions count as infeasible.

    Args:
        constraints: the constraints.
        z: frame of ``n`` configurations (structural columns).

    Returns:
        The predictions, indicator feasibility and probability of feasibility.
    """
    n = len(z)
    feasible = np.ones(n, dtype=bool)
    prob = np.ones(n, dtype=float)
    means: dict[str, np.ndarray] = {}
    stds: dict[str, np.ndarray | None] = {}
    for c in constraints:
        mean, std = c.predict(z)
        means[c.name], stds[c.name] = mean, std
        ok = mean <= c.budget
        feasible &= ok
        if std is None:
            prob *= ok
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                p = norm.cdf((c.budget - mean) / std)
            p = np.where(std > 0, p, ok.astype(float))
            prob *= np.nan_to_num(p, nan=0.0)
    return ConstraintPrediction(means, stds, feasible, prob)
