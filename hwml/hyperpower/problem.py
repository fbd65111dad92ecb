"""A benchmark folder as HyperPower's constrained search problem, and how tight budgets matter.

:func:`hyperpower_problem` sets a folder up: the tabular objective, budgets at quantiles
of the measured structures and the constraint models
(:func:`hwml.hyperpower.models.hardware_budgets`), with the questions the chapters ask of
it (which structures violate the budgets, the models' errors, the best feasible error).
:func:`budget_sweep` runs a budget-aware search and a baseline at several budget levels.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwml.data import dataset_path
from hwml.hyperpower.models import HardwareBudgets, StructuralModel, hardware_budgets
from hwml.hyperpower.table import benchmark_objective, read_table
from hwml.optimize import (
    Constraint,
    SearchSettings,
    Space,
    TabularObjective,
    best_so_far,
    run_searches,
    tolerance_sweep,
)

__all__ = ["HyperPowerProblem", "budget_level", "budget_sweep", "hyperpower_problem"]


@dataclass(frozen=True)
class HyperPowerProblem:
    """A benchmark folder set up as HyperPower's constrained search problem.

    Build it with :func:`hyperpower_problem`.

    Attributes:
        folder: the benchmark folder.
        objective: the tabular objective (test error; cost: measured training time; each
            result carries the structure's measured ``power_w`` and ``peak_mem_bytes``).
        structures: the ``structures.csv`` table.
        hardware: the budgets, at quantiles of the measured structures, and HyperPower's
            linear models fitted on every structure
            (:class:`~hwml.hyperpower.models.HardwareBudgets`).
    """

    folder: Path
    objective: TabularObjective
    structures: pd.DataFrame
    hardware: HardwareBudgets

    @property
    def budgets(self) -> dict[str, float]:
        """``{"power_w": W, "mem_bytes": bytes}``."""
        return {name: float(value) for name, value in self.hardware.budgets.items()}

    @property
    def quantiles(self) -> dict[str, float]:
        """The quantiles of the measured structures the budgets were taken at."""
        return {name: float(q) for name, q in self.hardware.quantiles.items()}

    @property
    def models(self) -> dict[str, StructuralModel]:
        """HyperPower's linear models, ``{"power_w": ..., "mem_bytes": ...}``, returning
        point predictions."""
        return self.hardware.models

    @property
    def models_std(self) -> dict[str, StructuralModel]:
        """The same models returning ``(mean, std)``, for ``hw-ieci-prob``."""
        return self.hardware.models_std

    @property
    def space(self) -> Space:
        """The benchmark's search space."""
        return self.objective.space

    @property
    def table(self) -> pd.DataFrame:
        """Every configuration (:func:`load_benchmark`), with ``feasible``: its structure's
        measured power and memory are within the budgets."""
        table = self.objective.table
        table["feasible"] = self._meets(table["power_w"], table["peak_mem_bytes"])
        return table

    def _meets(self, power_w: pd.Series, mem_bytes: pd.Series) -> np.ndarray:
        power = pd.to_numeric(power_w, errors="coerce").to_numpy(dtype=float)
        mem = pd.to_numeric(mem_bytes, errors="coerce").to_numpy(dtype=float)
        return (power <= self.budgets["power_w"]) & (mem <= self.budgets["mem_bytes"])

    def constraints(self, method: str = "hw-ieci") -> list[Constraint]:
        """The a-priori power and memory constraints a search method gets.

        Args:
            method: a search method; ``"hw-ieci-prob"`` gets the models with a predictive
                standard deviation, every other method point predictions.

        Returns:
            ``[Constraint("power_w", ...), Constraint("mem_bytes", ...)]``.
        """
        return self.hardware.constraints(method)

    def constraints_by_method(self, methods: Iterable[str]) -> dict[str, list[Constraint]]:
        """``{method: self.constraints(method)}`` for each method."""
        return {m: self.constraints(m) for m in methods}

    def best_feasible_error(self) -> float:
        """Lowest test error of a trained configuration whose structure meets the budgets."""
        table = self.table
        ok = table[(table["status"] == "ok") & table["feasible"]]
        return float(ok["test_error"].min()) if len(ok) else math.nan

    def model_errors(self) -> pd.DataFrame:
        """Cross-validated errors of the power and memory models.

        Returns:
            One row per model (``power_w``, ``mem_bytes``): ``rmse`` (W or bytes),
            ``rmspe_pct``, ``mape_pct`` (%) and ``n`` (structures), NaN where the model
            does not report them.
        """
        rows = {}
        for name, model in self.models.items():
            summary = model.model.cv_summary() if hasattr(model.model, "cv_summary") else {}
            rows[name] = {
                k: float(summary.get(k, math.nan)) for k in ("rmse", "rmspe_pct", "mape_pct", "n")
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def structure_table(self) -> pd.DataFrame:
        """The measured structures with the models' predictions and the budget verdicts.

        Returns:
            The usable rows of ``structures.csv`` (status ``ok``) with ``pred_power_w`` and
            ``pred_mem_bytes`` (the fitted models' predictions, which the searches use),
            ``cv_pred_power_w`` and ``cv_pred_mem_bytes`` (out-of-fold predictions of the
            cross-validation, NaN if the model keeps none), ``violates_power``,
            ``violates_mem``, ``violates`` (measured value over a budget) and
            ``pred_violates`` (a prediction over a budget).
        """
        s = self.structures
        s = s[s["status"].astype(str) == "ok"].reset_index(drop=True)
        out = s.copy()
        for name, column in (("power_w", "power_w"), ("mem_bytes", "peak_mem_bytes")):
            model = self.models[name]
            out[f"pred_{name}"] = model.predict(s)
            oof = getattr(model.model, "cv_predictions_", None)
            usable = pd.to_numeric(s[column], errors="coerce").notna().to_numpy()
            cv = np.full(len(s), np.nan)
            if oof is not None and len(oof) == usable.sum():
                cv[usable] = np.asarray(oof, dtype=float)
            out[f"cv_pred_{name}"] = cv
        out["violates_power"] = out["power_w"] > self.budgets["power_w"]
        out["violates_mem"] = out["peak_mem_bytes"] > self.budgets["mem_bytes"]
        out["violates"] = out["violates_power"] | out["violates_mem"]
        out["pred_violates"] = (out["pred_power_w"] > self.budgets["power_w"]) | (
            out["pred_mem_bytes"] > self.budgets["mem_bytes"]
        )
        return out

    def violation_summary(self) -> dict[str, float]:
        """Fractions of the space that violate the budgets, measured and predicted.

        Returns:
            Fractions in ``[0, 1]`` of the usable structures: ``power`` (measured power over
            its budget), ``mem``, ``either``, ``pred_either`` (per the models),
            ``false_accept`` (predicted within budgets, measured over one: a constraint
            violation HW-IECI cannot avoid) and ``false_reject`` (predicted over, measured
            within: a configuration HW-IECI never tries); and ``configs_either``, the
            fraction of trained configurations whose structure violates a budget.
        """
        st = self.structure_table()
        table = self.table
        return {
            "power": float(st["violates_power"].mean()),
            "mem": float(st["violates_mem"].mean()),
            "either": float(st["violates"].mean()),
            "pred_either": float(st["pred_violates"].mean()),
            "false_accept": float((~st["pred_violates"] & st["violates"]).mean()),
            "false_reject": float((st["pred_violates"] & ~st["violates"]).mean()),
            "configs_either": float((~table["feasible"]).mean()),
        }


def hyperpower_problem(
    folder: str | os.PathLike[str],
    *,
    power_quantile: float = 0.6,
    mem_quantile: float = 0.6,
    features: str | list[str] = "derived",
    cv: int = 10,
    seed: int = 0,
) -> HyperPowerProblem:
    """Set a benchmark folder up as HyperPower's power- and memory-constrained search.

    The budgets are quantiles of the measured inference power and peak memory of the
    structures (:func:`~hwml.hyperpower.models.quantile_budgets`), so about ``1 - quantile`` of the structures
    exceed each; the constraint models are HyperPower's linear models
    (:func:`hwml.hyperpower.models.fit_hardware_models`) fitted on every structure.

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        power_quantile: quantile of the measured power that becomes the power budget.
        mem_quantile: quantile of the measured peak memory that becomes the memory budget.
        features: feature set of the linear models (see
            :data:`hwml.hyperpower.models.FEATURE_SETS`).
        cv: cross-validation folds of the models' error estimates.
        seed: seed of the fold shuffling.

    Returns:
        The problem.
    """
    path = dataset_path(folder)
    structures = read_table(path, "structures")
    hardware = hardware_budgets(
        structures,
        power_quantile=power_quantile,
        mem_quantile=mem_quantile,
        features=features,
        cv=cv,
        seed=seed,
    )
    return HyperPowerProblem(
        folder=path,
        objective=benchmark_objective(path),
        structures=structures,
        hardware=hardware,
    )


def budget_sweep(
    folder: str | os.PathLike[str],
    quantiles: Iterable[float],
    *,
    seeds: Iterable[int],
    n_evals: int,
    n_init: int,
    tolerance: float,
    method: str = "hw-ieci",
    baseline: str = "ei",
    settings: SearchSettings | None = None,
    features: str | list[str] = "derived",
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = False,
) -> pd.DataFrame:
    """How the gain of a budget-aware search over another depends on how tight the budgets are.

    At each quantile ``q``, both budgets are set at ``q`` of the measured power and memory
    (:func:`hyperpower_problem`), ``method`` and ``baseline`` search the table once per
    seed, and the evaluations each needs to come within ``tolerance`` of that level's best
    feasible error are compared (:func:`hwml.optimize.tolerance_sweep`).

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        quantiles: budget quantiles, each in (0, 1); lower is tighter.
        seeds: search seeds (each method runs once per seed and level).
        n_evals: evaluations per search.
        n_init: random evaluations that start each search.
        tolerance: width of the near-optimal region (in test error).
        method: the budget-aware method, e.g. ``"hw-ieci"``.
        baseline: the method it is compared with, e.g. ``"ei"``.
        settings: search settings.
        features: feature set of the constraint models.
        seed: seed of the models' cross-validation.
        n_jobs: worker processes for the searches.
        progress: show a progress bar over the levels.

    Returns:
        One row per quantile: ``quantile``, the budgets ``power_w`` and ``mem_bytes``,
        ``over_either`` (fraction of structures over a budget), ``best_feasible``,
        ``infeasible[<m>]`` (fraction of each method's evaluations over a budget), and the
        columns of :func:`hwml.optimize.tolerance_sweep` (``median_evals[<m>]``,
        ``reached[<m>]``, ``speedup_evals``, ``speedup_time`` and their ``*_kind``).

    Raises:
        ValueError: no quantiles, or one outside (0, 1).
    """
    levels = [float(q) for q in quantiles]
    if not levels:
        raise ValueError("budget_sweep needs at least one quantile")
    bad = [q for q in levels if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"budget quantiles must lie in (0, 1), got {bad}")
    methods = [method, baseline]
    rows = []
    for q in tqdm(levels, desc="budget levels", disable=not progress, file=sys.stderr):
        problem = hyperpower_problem(
            folder, power_quantile=q, mem_quantile=q, features=features, seed=seed
        )
        histories = run_searches(
            problem.objective,
            problem.space,
            problem.constraints_by_method(methods),
            methods=methods,
            seeds=list(seeds),
            n_evals=n_evals,
            n_init=n_init,
            settings=settings,
            n_jobs=n_jobs,
        )
        rows.append(budget_level(problem, histories, q, tolerance, method, baseline))
    return pd.DataFrame(rows)


def budget_level(
    problem: HyperPowerProblem,
    histories: pd.DataFrame,
    quantile: float,
    tolerance: float = 0.01,
    method: str = "hw-ieci",
    baseline: str = "ei",
) -> dict[str, Any]:
    """One row of :func:`budget_sweep` from searches already run on ``problem``.

    Args:
        problem: The problem the searches ran on (its budgets at ``quantile``).
        histories: Their histories (any methods; ``method`` and ``baseline`` are used).
        quantile: The budget quantile the problem was built with.
        tolerance: Width of the near-optimal region above the best feasible error.
        method: The method compared.
        baseline: The method it is compared with.

    Returns:
        The columns :func:`budget_sweep` documents.
    """
    pair = histories[histories["method"].isin([method, baseline])]
    best = problem.best_feasible_error()
    reach = tolerance_sweep(best_so_far(pair), best, [tolerance], method, baseline)
    over = ~pair["feasible"].astype(bool)
    return {
        "quantile": quantile,
        **problem.budgets,
        "over_either": problem.violation_summary()["either"],
        "best_feasible": best,
        **{f"infeasible[{m}]": float(over[pair["method"] == m].mean()) for m in (method, baseline)},
        **reach.drop(columns="tolerance").iloc[0].to_dict(),
    }
