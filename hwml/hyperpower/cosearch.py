"""Searching the model and its deployment together (survey 5.2.2), on measured tables.

The survey postulates that hardware-aware Bayesian optimization can search the hardware
side together with the network, since its cost models can be functions of both. On a GPU
the hardware cannot be redesigned, but how a trained network runs on it can be chosen:
numeric precision and execution mode (the *deployment knobs*, :data:`KNOBS`). This module
compares two ways of using them, at equal numbers of trainings:

* ``"sequential"``: search the model first, then optimize its deployment. HW-IECI searches
  the HyperPower space with its energy constraint evaluated at the baseline deployment
  (:data:`BASELINE`, fp32 eager: what a user starts from); after the search, every
  trained configuration is given its cheapest measured deployment, which needs no
  training.
* ``"joint"``: search both at once. The knobs are dimensions of the space (structural:
  the constraint model sees them), the constraint model is extended to them
  (:class:`DeploymentCostModel`), and HW-IECI proposes a (configuration, deployment)
  pair. A proposal trains the configuration once; the deployment part is only priced,
  so once a configuration is trained every deployment of it is known (same test error,
  its measured cost) and none of them is proposed again.

Both are scored alike: after each training, the lowest test error among the trained
configurations that have *some* measured deployment within the budget
(:func:`strategy_curves`). A third curve comes free from the sequential runs: the model
searched and deployed at the baseline only (``"model-only"``).

The tables: the tabular HyperPower benchmark (``configs.csv``: trained configurations and
their test errors) and the cost table of a deployment folder
(``table/cost_table.csv``: every structure measured under each deployment,
:func:`load_cost_table`). The test error of a (configuration, deployment) is the table's
error of the configuration: the deployment knobs searched here do not change what a
trained network computes beyond rounding, which :func:`deployment_error_changes` measures
on networks trained with several seeds (``errors.csv`` of the same folder).

:func:`run_cosearches` runs many seeds of both strategies at several budget levels, with a
cache: an append-only ``histories.csv`` (one block of rows per finished run; runs already
there are read, not rerun) with the settings they were made with (``settings.json``) and
a log of the commands that wrote it (``runs.json``). From the command line::

    python -m hwml.hyperpower.cosearch --out deploy-nvidia-h200-cued-digits/cosearch \\
        --quantiles 0.1,0.2,0.3,0.5 --seeds 0-19 --trainings 40

(``--quick`` for a small check, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwml.data import (
    DatasetError,
    dataset_path,
    now_iso,
    read_provenance,
    run_header,
    write_readme,
)
from hwml.hyperpower.table import benchmark_objective
from hwml.optimize import (
    BOSettings,
    Categorical,
    Constraint,
    GPWarmStart,
    InfeasibleBudgetError,
    Observations,
    Space,
    TabularObjective,
    best_so_far,
    constraint_filter,
    derive_seed,
    propose_bo,
    propose_random,
)
from hwml.predict.metrics import mape, rmse, rmspe
from hwml.tables import AppendOnlyFile, csv_line, drop_torn_line
from hwml.tasks.cnn import STRUCTURAL, structural_features

__all__ = [
    "BASELINE",
    "COSEARCH_METHODS",
    "DEFAULT_BENCHMARK",
    "DEFAULT_CACHE",
    "DEFAULT_DEPLOY",
    "HISTORY_COLUMNS",
    "KNOBS",
    "STRATEGIES",
    "CoSearchCacheError",
    "CoSearchProblem",
    "CoSearchSettings",
    "DeploymentCostModel",
    "FixedDeployment",
    "budget_levels",
    "cache_provenance",
    "cheapest_deployments",
    "cosearch_problem",
    "deployment_error_changes",
    "difference_interval",
    "final_errors",
    "load_cost_table",
    "main",
    "read_histories",
    "run_cosearch",
    "run_cosearches",
    "strategy_curves",
    "summarize_final",
    "training_noise",
    "write_cache_readme",
]

DEFAULT_BENCHMARK = "hyperpower-nvidia-h200-cued-digits"
"""The tabular HyperPower benchmark under ``data/`` (configurations and test errors)."""

DEFAULT_DEPLOY = "deploy-nvidia-h200-cued-digits"
"""The deployment folder under ``data/`` (``table/cost_table.csv``, ``errors.csv``)."""

DEFAULT_CACHE = "deploy-nvidia-h200-cued-digits/cosearch"
"""Where the committed co-search histories live, under ``data/``."""

KNOBS: dict[str, tuple[str, ...]] = {
    "precision": ("fp32", "fp16"),
    "execution": ("eager", "cuda-graph"),
}
"""The deployment knobs of the co-search and their values, baseline first (the order of
the ordinal encoding in the search space)."""

BASELINE: dict[str, str] = {"precision": "fp32", "execution": "eager"}
"""The deployment the sequential strategy searches at: PyTorch's defaults."""

STRATEGIES = ("sequential", "joint")
"""``"sequential"``: model first at the baseline deployment, then the cheapest
deployment; ``"joint"``: model and deployment knobs in one search space."""

COSEARCH_METHODS = ("hw-ieci", "random-filtered")
"""Proposers of :func:`run_cosearch`: HW-IECI, or uniform among the configurations the
constraint model accepts (the filter without the surrogate)."""

TARGET = "energy_per_image_mj"
"""The constrained cost: measured energy per image (mJ) of a deployed structure."""

MODEL_ONLY = "model-only"
"""The curve of the sequential runs scored at the baseline deployment alone."""


class CoSearchCacheError(DatasetError):
    """A cache folder holds histories made with other settings; the message names them."""


# ====================================================================== tables


def load_cost_table(
    deploy: str | os.PathLike[str] = DEFAULT_DEPLOY, *, batch: int = 256, prune: str = "none"
) -> pd.DataFrame:
    """The measured cost of each structure under each deployment of :data:`KNOBS`.

    Reads ``<deploy>/table/cost_table.csv`` (written by
    :func:`hwml.deploy.stages.measure_cost_table`; the ``superseded/`` copy is never read)
    and keeps the usable rows (status ``ok``) of one batch size and pruning level whose
    precision and execution are among :data:`KNOBS`.

    Args:
        deploy: the deployment folder, or its name under ``data/``.
        batch: inference batch of the rows kept (images per call).
        prune: pruning level of the rows kept.

    Returns:
        One row per (structure, deployment): ``structure_key``, ``deployment`` (label),
        ``precision``, ``execution``, ``batch``, ``runtime_ms`` (ms per call),
        ``runtime_per_image_ms`` (ms), ``power_w`` (W), ``energy_per_image_mj`` (mJ),
        ``gpu_uuid``.

    Raises:
        DatasetError: the table is missing or holds no usable row.
    """
    path = dataset_path(deploy) / "table" / "cost_table.csv"
    if not path.exists():
        raise DatasetError(
            f"{path}: no cost table (run `python -m hwml.deploy.stages --phases table`)"
        )
    table = pd.read_csv(path)
    keep = (
        (table["status"].astype(str) == "ok")
        & (table["prune"].astype(str) == prune)
        & (pd.to_numeric(table["batch"], errors="coerce") == batch)
    )
    for knob, values in KNOBS.items():
        keep &= table[knob].astype(str).isin(values)
    out = table.loc[keep].drop_duplicates(["structure_key", "deployment"], keep="first")
    if out.empty:
        raise DatasetError(f"{path}: no usable row at batch {batch}, pruning {prune!r}")
    columns = [
        "structure_key",
        "deployment",
        *KNOBS,
        "batch",
        "runtime_ms",
        "runtime_per_image_ms",
        "power_w",
        "energy_per_image_mj",
        "gpu_uuid",
    ]
    return out[columns].reset_index(drop=True)


def _split_label(label: str) -> dict[str, Any]:
    prune, precision, execution, batch = str(label).split("/")
    return {
        "prune": prune,
        "precision": precision,
        "execution": execution,
        "batch": int(batch.removeprefix("b")),
    }


def deployment_error_changes(
    deploy: str | os.PathLike[str] = DEFAULT_DEPLOY, *, per_pair: bool = False
) -> pd.DataFrame:
    """How much a deployment knob changes the test error of the same trained network.

    From ``errors.csv`` (each trained network, one per structure and seed, evaluated under
    several deployments), every pair of usable rows of the same network that differ in
    exactly one of precision, execution mode and batch size is compared: the row with the
    knob at another value against the row with it at the reference (``fp32``, ``eager``,
    the smallest batch of the pair's network), everything else equal.

    Args:
        deploy: the deployment folder, or its name under ``data/``.
        per_pair: return the compared pairs themselves: ``knob``, ``value``,
            ``reference``, ``structure_key``, ``seed`` and ``change`` (test error, a
            fraction), one row per pair.

    Returns:
        One row per (knob, value): ``knob``, ``value``, ``reference``, ``pairs`` (compared
        network-seed pairs), ``networks`` (distinct structures), ``mean_change``,
        ``mean_abs_change``, ``max_abs_change`` (test error, as a fraction: 0.001 is a
        tenth of a point) and ``identical`` (fraction of pairs with exactly the same error).

    Raises:
        DatasetError: the folder has no ``errors.csv``.
    """
    path = dataset_path(deploy) / "errors.csv"
    if not path.exists():
        raise DatasetError(f"{path}: no errors table (run `python -m hwml.deploy.stages`)")
    errors = pd.read_csv(path)
    errors = errors[errors["status"].astype(str) == "ok"]
    parts = pd.DataFrame([_split_label(d) for d in errors["deployment"]], index=errors.index)
    frame = pd.concat([errors[["structure_key", "seed", "test_error"]], parts], axis=1)
    references = {"precision": "fp32", "execution": "eager"}
    rows = []
    for knob in ("precision", "execution", "batch"):
        others = [c for c in ("prune", "precision", "execution", "batch") if c != knob]
        for _, group in frame.groupby(["structure_key", "seed", *others], sort=True):
            ref_value = references.get(knob, group["batch"].min())
            ref = group[group[knob] == ref_value]
            if ref.empty:
                continue
            base = float(ref["test_error"].iloc[0])
            for _, row in group[group[knob] != ref_value].iterrows():
                rows.append(
                    {
                        "knob": knob,
                        "value": str(row[knob]),
                        "reference": str(ref_value),
                        "structure_key": row["structure_key"],
                        "seed": int(row["seed"]),
                        "change": float(row["test_error"]) - base,
                    }
                )
    pairs = pd.DataFrame(
        rows, columns=["knob", "value", "reference", "structure_key", "seed", "change"]
    )
    if per_pair:
        return pairs
    out = []
    for (knob, value, reference), g in pairs.groupby(["knob", "value", "reference"], sort=False):
        change = g["change"].to_numpy(dtype=float)
        out.append(
            {
                "knob": knob,
                "value": value,
                "reference": reference,
                "pairs": len(change),
                "networks": int(g["structure_key"].nunique()),
                "mean_change": float(change.mean()),
                "mean_abs_change": float(np.abs(change).mean()),
                "max_abs_change": float(np.abs(change).max()),
                "identical": float((change == 0).mean()),
            }
        )
    columns = [
        "knob",
        "value",
        "reference",
        "pairs",
        "networks",
        "mean_change",
        "mean_abs_change",
        "max_abs_change",
        "identical",
    ]
    return pd.DataFrame(out, columns=columns)


def training_noise(
    deploy: str | os.PathLike[str] = DEFAULT_DEPLOY, deployment: str | None = None
) -> pd.DataFrame:
    """The spread of a network's test error over training seeds (the noise band).

    Args:
        deploy: the deployment folder, or its name under ``data/``.
        deployment: the deployment label whose errors are used (default: the baseline of
            the folder's stage walk, ``settings.base`` of its provenance).

    Returns:
        One row per structure (index ``structure_key``): ``seeds``, ``mean`` and ``std``
        (test error over the seeds, a fraction; ``std`` with ``ddof=1``).
    """
    folder = dataset_path(deploy)
    if deployment is None:
        base = read_provenance(folder).get("settings", {}).get("base", {})
        deployment = (
            f"{base.get('prune', 'none')}/{base.get('precision', 'fp32')}/"
            f"{base.get('execution', 'eager')}/b{base.get('batch', 64)}"
        )
    errors = pd.read_csv(folder / "errors.csv")
    errors = errors[(errors["status"].astype(str) == "ok") & (errors["deployment"] == deployment)]
    grouped = errors.groupby("structure_key")["test_error"]
    return grouped.agg(seeds="count", mean="mean", std="std")


# ====================================================================== cost model


class DeploymentCostModel:
    """A linear model of a deployed structure's cost: HyperPower's model, extended to knobs.

    The features are HyperPower's linear-model features of the structure ``z`` (the set
    ``"z"`` or ``"derived"`` of :data:`hwml.hyperpower.models.FEATURE_SETS`), an indicator
    per non-baseline value of each deployment knob, and, with ``interactions``, the
    product of each indicator with each structure feature: a knob may then change both the
    fixed cost and the cost per unit of size (fp16 halves the cost of a FLOP, not of a
    kernel launch). Structure features are divided by their standard deviation over the
    fitting rows before the least-squares fit, so that coefficients of very different
    sizes (FLOPs and indicators) are solved for alike.

    Cross-validation leaves whole structures out (every deployment of a structure is in
    the same fold), which is the question a search asks: the cost of a structure never
    measured, under any deployment.

    Args:
        target: the modelled column (e.g. ``energy_per_image_mj``).
        features: ``"z"`` or ``"derived"``.
        interactions: add the knob-times-feature products.
        knobs: the knobs and their values, baseline first.
        image_size: input side of the measured networks (px).
        batch: inference batch of the measurements (images).
        in_channels: input channels.
        cv: folds of the grouped cross-validation.
        seed: seed of the fold assignment.

    Attributes (after :meth:`fit`):
        columns_: design columns, in order (the intercept not included).
        coef_: design column -> coefficient (target unit per standardized feature).
        intercept_: the constant term (target unit).
        scales_: structure feature -> the standard deviation it was divided by.
        cv_predictions_: out-of-fold predictions of the fitting rows, shape ``(n,)``.
        n_train_: fitting rows.
    """

    def __init__(
        self,
        target: str = TARGET,
        *,
        features: str = "derived",
        interactions: bool = True,
        knobs: Mapping[str, Sequence[str]] | None = None,
        image_size: int = 24,
        batch: int = 256,
        in_channels: int = 1,
        cv: int = 10,
        seed: int = 0,
    ) -> None:
        from hwml.hyperpower.models import FEATURE_SETS

        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {features!r}; known: {', '.join(FEATURE_SETS)}")
        if cv < 2:
            raise ValueError(f"cv must be at least 2, got {cv}")
        self.target = target
        self.features = features
        self.base_features = list(FEATURE_SETS[features])
        self.interactions = bool(interactions)
        self.knobs = {k: tuple(v) for k, v in (knobs or KNOBS).items()}
        self.image_size = int(image_size)
        self.batch = int(batch)
        self.in_channels = int(in_channels)
        self.cv = int(cv)
        self.seed = int(seed)

    # ------------------------------------------------------------------ design
    def _base(self, frame: pd.DataFrame) -> pd.DataFrame:
        feats = structural_features(
            frame, image_size=self.image_size, batch=self.batch, in_channels=self.in_channels
        )
        return feats[self.base_features].astype(float).reset_index(drop=True)

    def _indicators(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        out = {}
        for knob, values in self.knobs.items():
            if knob not in frame.columns:
                raise KeyError(
                    f"configurations lack the deployment knob {knob!r} (use .at(deployment) "
                    "to price them at one deployment)"
                )
            given = frame[knob].astype(str).to_numpy()
            unknown = sorted(set(given) - set(values))
            if unknown:
                raise ValueError(f"knob {knob!r}: values {unknown} are not among {values}")
            for value in values[1:]:
                out[f"{knob}={value}"] = (given == value).astype(float)
        return out

    def design(
        self, frame: pd.DataFrame, scales: Mapping[str, float] | None = None
    ) -> pd.DataFrame:
        """The design frame of configurations (without the intercept).

        Args:
            frame: one row per (structure, deployment): the :data:`STRUCTURAL` columns and
                one column per knob.
            scales: the structure features' divisors (default: the fitted ``scales_``).

        Returns:
            One column per entry of ``columns_``, ``len(frame)`` rows.
        """
        frame = frame.reset_index(drop=True)
        scales = self.scales_ if scales is None else scales
        base = self._base(frame)
        for col in base.columns:
            base[col] = base[col] / scales[col]
        cols: dict[str, np.ndarray] = {c: base[c].to_numpy() for c in base.columns}
        indicators = self._indicators(frame)
        cols.update(indicators)
        if self.interactions:
            for name, ind in indicators.items():
                for col in base.columns:
                    cols[f"{name}*{col}"] = ind * base[col].to_numpy()
        return pd.DataFrame(cols)

    # ------------------------------------------------------------------ fit
    @staticmethod
    def _solve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        design = np.column_stack([np.ones(len(x)), x])
        sol, *_ = np.linalg.lstsq(design, y, rcond=None)
        return sol

    def fit(self, rows: pd.DataFrame, groups: str = "structure_key") -> DeploymentCostModel:
        """Fit by least squares and cross-validate by structure.

        Args:
            rows: one row per measured (structure, deployment): the :data:`STRUCTURAL`
                columns, the knob columns, the target and ``groups``; rows with a missing
                target are left out.
            groups: the column that identifies a structure (the folds keep its rows
                together).

        Returns:
            self.

        Raises:
            ValueError: fewer structures than folds, or fewer rows than coefficients.
        """
        y_all = pd.to_numeric(rows[self.target], errors="coerce").to_numpy(dtype=float)
        usable = np.isfinite(y_all)
        rows = rows.loc[usable].reset_index(drop=True)
        y = y_all[usable]
        base = self._base(rows)
        self.scales_ = {c: float(base[c].std(ddof=0)) or 1.0 for c in base.columns}
        x = self.design(rows, self.scales_)
        self.columns_ = list(x.columns)
        if len(rows) <= len(self.columns_) + 1:
            raise ValueError(
                f"{len(rows)} usable rows of {self.target!r} for {len(self.columns_) + 1} coefficients"
            )
        keys = rows[groups].astype(str).to_numpy()
        distinct = np.unique(keys)
        if len(distinct) < self.cv:
            raise ValueError(f"{len(distinct)} structures for {self.cv}-fold cross-validation")
        sol = self._solve(x.to_numpy(), y)
        self.intercept_ = float(sol[0])
        self.coef_ = dict(zip(self.columns_, (float(v) for v in sol[1:]), strict=True))
        self._sol = sol
        fold_of = dict(
            zip(
                np.random.default_rng(self.seed).permutation(distinct),
                np.arange(len(distinct)) % self.cv,
                strict=True,
            )
        )
        folds = np.array([fold_of[k] for k in keys])
        oof = np.empty(len(rows))
        for k in range(self.cv):
            test = folds == k
            train_base = base[~test]
            scales = {c: float(train_base[c].std(ddof=0)) or 1.0 for c in base.columns}
            xt = self.design(rows[~test], scales).to_numpy()
            part = self._solve(xt, y[~test])
            xv = self.design(rows[test], scales).to_numpy()
            oof[test] = part[0] + xv @ part[1:]
        self.cv_predictions_ = oof
        self.n_train_ = len(rows)
        self._train = rows.assign(**{self.target: y})
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "_sol"):
            raise RuntimeError("DeploymentCostModel is not fitted; call fit() first")

    # ------------------------------------------------------------------ predict
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted cost of each (structure, deployment), shape ``(n,)``, target unit."""
        self._check_fitted()
        return self._sol[0] + self.design(frame).to_numpy() @ self._sol[1:]

    def __call__(self, z: pd.DataFrame) -> np.ndarray:
        """The constraint-model form: structural columns and knobs in, predictions out."""
        return self.predict(z)

    def at(self, deployment: Mapping[str, str]) -> FixedDeployment:
        """The same model pricing every configuration at one deployment."""
        return FixedDeployment(self, dict(deployment))

    def cv_summary(self, by: str | None = None) -> pd.DataFrame:
        """Cross-validated errors, overall or per group.

        Args:
            by: a column of the fitting rows to group by (e.g. ``"deployment"``); None for
                all rows together.

        Returns:
            One row per group (index; ``"all"`` without ``by``): ``rmse`` (target unit),
            ``rmspe_pct``, ``mape_pct`` (%) and ``n`` (rows).
        """
        self._check_fitted()
        y = self._train[self.target].to_numpy(dtype=float)
        groups = (
            pd.Series("all", index=self._train.index) if by is None else self._train[by].astype(str)
        )
        out = {}
        for name, idx in groups.groupby(groups, sort=True).groups.items():
            i = np.asarray(list(idx))
            out[name] = {
                "rmse": rmse(y[i], self.cv_predictions_[i]),
                "rmspe_pct": rmspe(y[i], self.cv_predictions_[i]),
                "mape_pct": mape(y[i], self.cv_predictions_[i]),
                "n": len(i),
            }
        return pd.DataFrame.from_dict(out, orient="index")


@dataclass(frozen=True)
class FixedDeployment:
    """A :class:`DeploymentCostModel` pricing configurations at one deployment.

    The constraint model of a search whose space has no knobs: the knob columns are set
    to ``deployment`` before predicting (overriding any there).

    Attributes:
        model: the fitted model.
        deployment: knob -> value.
    """

    model: DeploymentCostModel
    deployment: dict[str, str]

    def __call__(self, z: pd.DataFrame) -> np.ndarray:
        return self.model.predict(z.assign(**self.deployment))


# ====================================================================== the problem


def _deployment_label(deployment: Mapping[str, str]) -> str:
    return "/".join(str(deployment[k]) for k in KNOBS)


@dataclass(frozen=True)
class CoSearchProblem:
    """A benchmark table and a cost table set up as the co-search problem.

    Build it with :func:`cosearch_problem`.

    Attributes:
        benchmark: the benchmark folder.
        deploy: the deployment folder.
        objective: the tabular objective over the configurations whose structure the cost
            table holds (test error; cost: training time).
        costs: the cost table of those structures (:func:`load_cost_table`).
        model: the energy model of (structure, deployment), fitted on every row of
            ``costs``.
        budget_mj: the energy budget (mJ per image).
        quantile: the quantile of the baseline deployment's measured energy the budget
            was taken at (None for a budget given as a value).
    """

    benchmark: Path
    deploy: Path
    objective: TabularObjective
    costs: pd.DataFrame
    model: DeploymentCostModel
    budget_mj: float
    quantile: float | None

    @property
    def model_space(self) -> Space:
        """The HyperPower space (structure and training hyper-parameters)."""
        return self.objective.space

    @property
    def joint_space(self) -> Space:
        """The HyperPower space plus one structural categorical dimension per knob."""
        knobs = [Categorical(k, v, structural=True) for k, v in KNOBS.items()]
        return Space([*self.model_space.dimensions, *knobs])

    @property
    def deployments(self) -> list[dict[str, str]]:
        """Every deployment of the knobs, the baseline first."""
        return [
            dict(zip(KNOBS, values, strict=True)) for values in itertools.product(*KNOBS.values())
        ]

    def space(self, strategy: str) -> Space:
        """The space a strategy searches."""
        _check_strategy(strategy)
        return self.joint_space if strategy == "joint" else self.model_space

    def constraints(self, strategy: str) -> list[Constraint]:
        """The energy constraint a strategy's HW-IECI sees: the model at the proposed
        deployment (joint) or at the baseline (sequential)."""
        _check_strategy(strategy)
        model: Callable[[pd.DataFrame], Any] = (
            self.model if strategy == "joint" else self.model.at(BASELINE)
        )
        return [Constraint(TARGET, self.budget_mj, model)]

    def candidates(self, strategy: str) -> pd.DataFrame:
        """The finite pool a strategy picks from: every configuration of the table, times
        every deployment for the joint strategy."""
        configs = self.objective.candidates
        if strategy != "joint":
            _check_strategy(strategy)
            return configs
        parts = [configs.assign(**d) for d in self.deployments]
        return pd.concat(parts, ignore_index=True)[self.joint_space.names]

    @property
    def energy(self) -> pd.DataFrame:
        """Measured energy per image (mJ): one row per structure (index), one column per
        deployment label ``precision/execution`` (:data:`KNOBS` order)."""
        costs = self.costs.assign(
            label=[_deployment_label(r) for r in self.costs[list(KNOBS)].to_dict("records")]
        )
        wide = costs.pivot(index="structure_key", columns="label", values=TARGET)
        return wide[[_deployment_label(d) for d in self.deployments]]

    @property
    def table(self) -> pd.DataFrame:
        """Every configuration with its structure's costs and the budget's verdicts.

        Returns:
            The objective's table plus ``baseline_energy_mj``, ``best_energy_mj``,
            ``best_precision``, ``best_execution`` (its cheapest measured deployment),
            ``feasible_baseline`` (within budget at the baseline) and ``feasible`` (within
            budget at its cheapest deployment).
        """
        table = self.objective.table
        cheap = cheapest_deployments(self.energy)
        keyed = cheap.reindex(table["structure_key"]).reset_index(drop=True)
        table["baseline_energy_mj"] = keyed["baseline_energy_mj"].to_numpy()
        table["best_energy_mj"] = keyed["best_energy_mj"].to_numpy()
        for knob in KNOBS:
            table[f"best_{knob}"] = keyed[f"best_{knob}"].to_numpy()
        table["feasible_baseline"] = table["baseline_energy_mj"] <= self.budget_mj
        table["feasible"] = table["best_energy_mj"] <= self.budget_mj
        return table

    def best_feasible_error(self, after_deployment: bool = True) -> float:
        """Lowest test error of a trained configuration within the budget.

        Args:
            after_deployment: at its cheapest deployment (True) or at the baseline.
        """
        table = self.table
        column = "feasible" if after_deployment else "feasible_baseline"
        ok = table[(table["status"] == "ok") & table[column]]
        return float(ok["test_error"].min()) if len(ok) else math.nan

    def budget_summary(self) -> dict[str, float]:
        """Fractions of the structures within the budget, measured and predicted.

        Returns:
            ``baseline`` (measured at the baseline), ``any`` (at their cheapest
            deployment), ``pred_baseline`` and ``pred_any`` (per the model), each in
            ``[0, 1]``, and ``best_violates`` (1.0 when the lowest-error configuration of
            the table is over the budget at every deployment, else 0.0).
        """
        energy = self.energy
        structures = self._structures()
        preds = np.column_stack(
            [self.model.predict(structures.assign(**d)) for d in self.deployments]
        )
        table = self.table
        ok = table[table["status"] == "ok"]
        best = ok.loc[ok["test_error"].idxmin()]
        return {
            "baseline": float((energy.iloc[:, 0] <= self.budget_mj).mean()),
            "any": float((energy.min(axis=1) <= self.budget_mj).mean()),
            "pred_baseline": float((preds[:, 0] <= self.budget_mj).mean()),
            "pred_any": float((preds.min(axis=1) <= self.budget_mj).mean()),
            "best_violates": float(not bool(best["feasible"])),
        }

    def _structures(self) -> pd.DataFrame:
        keys = self.energy.index.to_series()
        split = keys.str.split("-", expand=True).astype(int)
        split.columns = list(STRUCTURAL)
        return split.assign(structure_key=keys.to_numpy()).reset_index(drop=True)

    def model_rows(self) -> pd.DataFrame:
        """The rows the model was fitted on, with its out-of-fold predictions
        (``cv_pred``) and fitted predictions (``pred``) of the target."""
        rows = self.model._train.copy()
        rows["cv_pred"] = self.model.cv_predictions_
        rows["pred"] = self.model.predict(rows)
        return rows


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def cheapest_deployments(energy: pd.DataFrame) -> pd.DataFrame:
    """Each structure's cheapest measured deployment.

    Args:
        energy: measured energy (mJ), one row per structure, one column per deployment
            label ``precision/execution``, the baseline first (:attr:`CoSearchProblem.energy`).

    Returns:
        Index as ``energy``: ``baseline_energy_mj``, ``best_energy_mj``, ``best_label``
        and one ``best_<knob>`` column per knob. A structure with no measured deployment
        has NaN energies and empty labels.
    """
    values = energy.to_numpy(dtype=float)
    filled = np.where(np.isfinite(values), values, np.inf)
    pick = np.argmin(filled, axis=1)
    measured = np.isfinite(values).any(axis=1)
    labels = np.array(energy.columns, dtype=object)[pick]
    out = pd.DataFrame(index=energy.index)
    out["baseline_energy_mj"] = values[:, 0]
    out["best_energy_mj"] = np.where(measured, filled[np.arange(len(values)), pick], np.nan)
    out["best_label"] = np.where(measured, labels, "")
    for i, knob in enumerate(KNOBS):
        out[f"best_{knob}"] = [str(lab).split("/")[i] if lab else "" for lab in out["best_label"]]
    return out


def cosearch_problem(
    benchmark: str | os.PathLike[str] = DEFAULT_BENCHMARK,
    deploy: str | os.PathLike[str] = DEFAULT_DEPLOY,
    *,
    budget_quantile: float | None = 0.2,
    budget_mj: float | None = None,
    features: str = "derived",
    interactions: bool = True,
    cv: int = 10,
    seed: int = 0,
) -> CoSearchProblem:
    """Set a benchmark and a deployment folder up as the co-search problem.

    Only the structures present in both tables are kept. The energy budget is a quantile
    of the measured baseline-deployment energy of those structures, or a value.

    Args:
        benchmark: the tabular HyperPower benchmark (folder or name under ``data/``).
        deploy: the deployment folder with ``table/cost_table.csv``.
        budget_quantile: quantile in (0, 1) of the baseline energy per image that becomes
            the budget (ignored when ``budget_mj`` is given).
        budget_mj: the budget itself, mJ per image.
        features: structure features of the cost model (``"z"`` or ``"derived"``).
        interactions: knob-times-feature terms in the cost model.
        cv: folds of the model's grouped cross-validation.
        seed: seed of the folds.

    Returns:
        The problem.

    Raises:
        ValueError: no budget, a quantile outside (0, 1), or no structure in both tables.
    """
    bench_path, deploy_path = dataset_path(benchmark), dataset_path(deploy)
    full = benchmark_objective(bench_path)
    costs = load_cost_table(deploy_path, batch=_inference_batch(bench_path))
    present = set(costs["structure_key"])
    table = full.table
    table = table[table["structure_key"].isin(present)].reset_index(drop=True)
    if table.empty:
        raise ValueError(f"no structure of {bench_path} is in the cost table of {deploy_path}")
    costs = costs[costs["structure_key"].isin(set(table["structure_key"]))].reset_index(drop=True)
    objective = TabularObjective(table, full.space, objective="test_error", cost="train_time_s")
    prov = read_provenance(bench_path)
    rows = costs.join(
        costs["structure_key"]
        .str.split("-", expand=True)
        .astype(int)
        .set_axis(list(STRUCTURAL), axis=1)
    )
    model = DeploymentCostModel(
        features=features,
        interactions=interactions,
        image_size=int(prov.get("image_size", 24)),
        batch=int(costs["batch"].iloc[0]),
        in_channels=int(prov.get("in_channels", 1)),
        cv=cv,
        seed=seed,
    ).fit(rows)
    if budget_mj is None:
        if budget_quantile is None:
            raise ValueError("give a budget_mj or a budget_quantile")
        if not 0.0 < budget_quantile < 1.0:
            raise ValueError(f"budget_quantile must lie in (0, 1), got {budget_quantile}")
        base = costs
        for knob, value in BASELINE.items():
            base = base[base[knob] == value]
        budget_mj = float(base[TARGET].quantile(budget_quantile))
    else:
        budget_quantile = None
    return CoSearchProblem(
        benchmark=bench_path,
        deploy=deploy_path,
        objective=objective,
        costs=costs,
        model=model,
        budget_mj=float(budget_mj),
        quantile=None if budget_quantile is None else float(budget_quantile),
    )


def _inference_batch(benchmark: Path) -> int:
    """The benchmark's inference batch (the cost table rows kept are of this batch)."""
    return int(read_provenance(benchmark).get("inference_batch", 256))


# ====================================================================== one search

HISTORY_COLUMNS = [
    "budget_quantile",
    "budget_mj",
    "strategy",
    "method",
    "seed",
    "iteration",
    "phase",
    "key",
    "structure_key",
    *STRUCTURAL,
    "learning_rate",
    "momentum",
    "weight_decay",
    *KNOBS,
    "objective",
    "status",
    "pred_energy_mj",
    "energy_mj",
    "feasible_proposed",
    "baseline_energy_mj",
    "feasible_baseline",
    *(f"best_{k}" for k in KNOBS),
    "best_energy_mj",
    "feasible",
    "acquisition",
    "train_time_s",
    "cumulative_time_s",
    "overhead_s",
    "run_rows",
    "block",
]
"""Columns of a co-search history (one row per training) and of ``histories.csv``."""

_HISTORY_DOCS: dict[str, tuple[str, str]] = {
    "budget_quantile": (
        "1",
        "quantile of the baseline deployment's measured energy that is the budget",
    ),
    "budget_mj": ("mJ", "energy budget per image"),
    "strategy": ("-", "sequential (model at fp32 eager, then cheapest deployment) or joint"),
    "method": ("-", "proposer: hw-ieci or random-filtered"),
    "seed": ("-", "seed of the run"),
    "iteration": ("count", "training number, 1-based"),
    "phase": ("-", "init (random among the configurations the model accepts) or search"),
    "key": ("-", "the configuration's key in configs.csv of the benchmark"),
    "structure_key": ("-", "its structure"),
    **{c: ("-", "structural hyper-parameter of the configuration") for c in STRUCTURAL},
    "learning_rate": ("1", "training hyper-parameter"),
    "momentum": ("1", "training hyper-parameter"),
    "weight_decay": ("1", "training hyper-parameter"),
    "precision": ("-", "precision proposed (joint) or the baseline's (sequential)"),
    "execution": ("-", "execution mode proposed (joint) or the baseline's (sequential)"),
    "objective": ("1", "test error of the configuration (the benchmark's; empty if diverged)"),
    "status": ("-", "ok or failed (the training diverged)"),
    "pred_energy_mj": ("mJ", "energy per image the model predicted for the proposal"),
    "energy_mj": ("mJ", "measured energy per image at the proposed deployment"),
    "feasible_proposed": ("-", "measured energy at the proposed deployment within the budget"),
    "baseline_energy_mj": ("mJ", "measured energy per image at fp32 eager"),
    "feasible_baseline": ("-", "baseline energy within the budget"),
    "best_precision": ("-", "precision of the structure's cheapest measured deployment"),
    "best_execution": ("-", "execution mode of the structure's cheapest measured deployment"),
    "best_energy_mj": ("mJ", "measured energy per image at the cheapest deployment"),
    "feasible": ("-", "cheapest deployment within the budget (how both strategies are scored)"),
    "acquisition": ("1", "HW-IECI's value at the proposal (empty for random proposals)"),
    "train_time_s": ("s", "measured training time of the configuration (benchmark)"),
    "cumulative_time_s": ("s", "training time of the run so far"),
    "overhead_s": ("s", "the optimizer's time for the proposal on the machine that ran it"),
    "run_rows": ("count", "rows of the run (a run is complete when it has them all)"),
    "block": ("-", "identity of the written run (a rerun of a torn write gets a new one)"),
}


def run_cosearch(
    problem: CoSearchProblem,
    strategy: str,
    *,
    seed: int,
    n_trainings: int,
    n_init: int = 5,
    method: str = "hw-ieci",
    settings: BOSettings | None = None,
) -> pd.DataFrame:
    """One search of a strategy, ``n_trainings`` trainings long.

    Each iteration proposes from the iteration's own generator (seeded by ``(seed,
    iteration)``): the first ``n_init`` uniformly among the pool points the constraint
    model accepts, the rest by HW-IECI (``method="hw-ieci"``) over the not-yet-observed
    pool points. The proposal's configuration is trained (its error read from the table).
    The sequential strategy observes the configuration, feasible when its measured
    baseline energy is within the budget; the joint strategy observes the configuration
    at *every* deployment (the same error; each feasible by its own measured energy), so a
    configuration is never trained twice and the deployments it was not proposed with are
    priced for free.

    Args:
        problem: the co-search problem.
        strategy: ``"sequential"`` or ``"joint"``.
        seed: the run's seed.
        n_trainings: trainings of the run (rows returned).
        n_init: random trainings that start it.
        method: ``"hw-ieci"`` or ``"random-filtered"``.
        settings: GP and candidate settings (default: :meth:`CoSearchSettings.bo`).

    Returns:
        The history, one row per training, columns :data:`HISTORY_COLUMNS` (without the
        cache's ``run_rows`` and ``block``); fewer rows when the pool ran out of feasible
        configurations (``attrs["exhausted"]`` says so).

    Raises:
        InfeasibleBudgetError: the model accepts no configuration of the pool.
    """
    _check_strategy(strategy)
    if method not in COSEARCH_METHODS:
        raise ValueError(f"method must be one of {COSEARCH_METHODS}, got {method!r}")
    settings = settings or CoSearchSettings().bo()
    space = problem.space(strategy)
    model_space = problem.model_space
    feasibility = constraint_filter(space, problem.constraints(strategy))
    pool = space.encode(problem.candidates(strategy))
    if not feasibility(pool).feasible.any():
        raise InfeasibleBudgetError(
            f"the energy model accepts no configuration of the pool at {problem.budget_mj:.3g} mJ"
        )
    table = problem.objective.table
    cheap = cheapest_deployments(problem.energy)
    energy = problem.energy
    deployments = problem.deployments
    points = np.empty((0, space.n_dims))
    values = np.empty(0)
    feasible = np.empty(0, dtype=bool)
    warm = GPWarmStart()
    rows: list[dict[str, Any]] = []
    cumulative = 0.0
    exhausted = ""
    for iteration in range(1, int(n_trainings) + 1):
        start = time.perf_counter()
        rng = np.random.default_rng(derive_seed(int(seed), iteration))
        obs = Observations(points, values, feasible)
        phase = "init" if iteration <= n_init else "search"
        proposal = None
        if method == "hw-ieci" and phase == "search" and obs.ok.any():
            try:
                proposal = propose_bo(
                    space, obs, rng, "hw-ieci", feasibility, pool, settings, warm=warm
                )
            except np.linalg.LinAlgError:
                proposal = None
        if proposal is None:
            proposal = propose_random(space, obs, rng, feasibility, pool)
        if proposal is None:
            exhausted = (
                f"{strategy} seed {seed}: stopped after {len(rows)} trainings: every "
                "configuration the energy model accepts has been trained"
            )
            break
        config = space.to_dicts(space.decode(proposal.point[None, :]))[0]
        pred = float(feasibility(proposal.point[None, :]).mean[TARGET][0])
        overhead = time.perf_counter() - start
        model_config = {k: config[k] for k in model_space.names}
        row = table.iloc[problem.objective.row_index(model_config)]
        ok = str(row["status"]) == "ok" and np.isfinite(float(row["test_error"]))
        error = float(row["test_error"]) if ok else math.nan
        proposed = {k: str(config.get(k, BASELINE[k])) for k in KNOBS}
        skey = str(row["structure_key"])
        measured = energy.loc[skey]
        cost = cheap.loc[skey]
        if strategy == "joint":
            new = [{**model_config, **d} for d in deployments]
            new_points = space.encode(pd.DataFrame(new)[space.names])
            new_feasible = np.array(
                [measured[_deployment_label(d)] <= problem.budget_mj for d in deployments]
            )
        else:
            new_points = proposal.point[None, :]
            new_feasible = np.array([bool(cost["baseline_energy_mj"] <= problem.budget_mj)])
        points = np.vstack([points, new_points])
        values = np.append(values, np.full(len(new_points), error))
        feasible = np.append(feasible, new_feasible)
        train_s = float(row["train_time_s"]) if np.isfinite(float(row["train_time_s"])) else 0.0
        cumulative += train_s
        energy_proposed = float(measured[_deployment_label(proposed)])
        rows.append(
            {
                "budget_quantile": problem.quantile if problem.quantile is not None else math.nan,
                "budget_mj": problem.budget_mj,
                "strategy": strategy,
                "method": method,
                "seed": int(seed),
                "iteration": iteration,
                "phase": phase,
                "key": str(row["key"]),
                "structure_key": skey,
                **{k: config[k] for k in model_space.names},
                **proposed,
                "objective": error,
                "status": "ok" if ok else "failed",
                "pred_energy_mj": pred,
                "energy_mj": energy_proposed,
                "feasible_proposed": bool(energy_proposed <= problem.budget_mj),
                "baseline_energy_mj": float(cost["baseline_energy_mj"]),
                "feasible_baseline": bool(cost["baseline_energy_mj"] <= problem.budget_mj),
                **{f"best_{k}": cost[f"best_{k}"] for k in KNOBS},
                "best_energy_mj": float(cost["best_energy_mj"]),
                "feasible": bool(cost["best_energy_mj"] <= problem.budget_mj),
                "acquisition": proposal.acquisition,
                "train_time_s": train_s,
                "cumulative_time_s": cumulative,
                "overhead_s": overhead,
            }
        )
    if not rows:
        raise InfeasibleBudgetError(f"{strategy} seed {seed}: nothing to train")
    history = pd.DataFrame(
        rows, columns=[c for c in HISTORY_COLUMNS if c not in ("run_rows", "block")]
    )
    if exhausted:
        history.attrs["exhausted"] = exhausted
    return history


# ====================================================================== many searches, cached


@dataclass(frozen=True)
class CoSearchSettings:
    """What every run of a cached co-search shares (the cache refuses other settings).

    Attributes:
        n_trainings: trainings per run.
        n_init: random trainings that start a run.
        method: ``"hw-ieci"`` or ``"random-filtered"``.
        gp_restarts: GP likelihood optimizations of a full fit.
        log_objective: the GP models log(test error).
        features: structure features of the cost model.
        interactions: knob-times-feature terms in the cost model.
        model_seed: seed of the cost model's cross-validation folds.
        benchmark: the benchmark folder's name.
        deploy: the deployment folder's name.
    """

    n_trainings: int = 40
    n_init: int = 5
    method: str = "hw-ieci"
    gp_restarts: int = 2
    log_objective: bool = True
    features: str = "derived"
    interactions: bool = True
    model_seed: int = 0
    benchmark: str = DEFAULT_BENCHMARK
    deploy: str = DEFAULT_DEPLOY

    def bo(self) -> BOSettings:
        """The GP settings; every pool point is a candidate (``n_random`` covers it)."""
        return BOSettings(
            n_restarts=self.gp_restarts, log_objective=self.log_objective, n_random=20_000
        )

    def problem(self, quantile: float) -> CoSearchProblem:
        """The problem at a budget quantile."""
        return cosearch_problem(
            self.benchmark,
            self.deploy,
            budget_quantile=quantile,
            features=self.features,
            interactions=self.interactions,
            seed=self.model_seed,
        )


_SHARED: dict[str, Any] = {}


def _init_worker(shared: dict[str, Any]) -> None:
    _SHARED.clear()
    _SHARED.update(shared)


def _one_run(job: tuple[float, str, int]) -> pd.DataFrame:
    quantile, strategy, seed = job
    s: CoSearchSettings = _SHARED["settings"]
    problem = _SHARED["problems"][quantile]
    return run_cosearch(
        problem,
        strategy,
        seed=seed,
        n_trainings=s.n_trainings,
        n_init=s.n_init,
        method=s.method,
        settings=s.bo(),
    )


def _cache_folder(out: str | os.PathLike[str]) -> Path:
    """A cache folder: a path as given when it or its parent exists (e.g.
    ``data/<folder>/cosearch`` from the repository root), else a name under ``data/``."""
    path = Path(out)
    if path.is_absolute() or path.exists() or path.parent.exists():
        return path
    return dataset_path(path)


def cache_provenance(folder: str | os.PathLike[str] = DEFAULT_CACHE) -> dict[str, Any]:
    """What a cache folder records of how its histories were made.

    Args:
        folder: the cache folder (a path, or a name under ``data/``).

    Returns:
        ``settings`` (:class:`CoSearchSettings` as a mapping) and ``runs`` (one entry per
        command that added runs: command, date, commit, hwml version, runs added, wall
        time), as :func:`hwml.notebook.show_provenance` shows a dataset's provenance.
    """
    path = _cache_folder(folder)
    out: dict[str, Any] = {}
    for name, key in (("settings.json", "settings"), ("runs.json", "runs")):
        if (path / name).exists():
            out[key] = json.loads((path / name).read_text())
    return out


def write_cache_readme(folder: str | os.PathLike[str]) -> Path:
    """Write a cache folder's ``README.md``: what it holds, how it was made, its columns."""
    path = _cache_folder(folder)
    prov = cache_provenance(path)
    settings = prov.get("settings", {})
    facts = {f"setting: {k}": v for k, v in settings.items()}
    facts["runs"] = prov.get("runs", [])
    for run in facts["runs"]:
        run.setdefault("rows_written", run.get("runs_added"))
        run.setdefault("outcome", "complete")
    description = (
        "Histories of the co-search comparison (survey 5.2.2): HW-IECI searching the "
        "tabular HyperPower benchmark for the model alone at the baseline deployment "
        "(`sequential`, its trained configurations then deployed at their cheapest measured "
        "precision and execution mode) and for the model and its deployment knobs together "
        "(`joint`), at equal numbers of trainings, under energy budgets at quantiles of the "
        "structures' measured fp32-eager energy per image. Written by "
        "`python -m hwml.hyperpower.cosearch` (`hwml.hyperpower.cosearch.run_cosearches`), "
        "which reads the runs already here instead of rerunning them; nothing was measured "
        "for this folder: the test errors are those of the benchmark's `configs.csv`, the "
        "energies those of `../table/cost_table.csv`. The runs are deterministic given the "
        "settings and seeds (up to the last bits of a GP fit on another BLAS), except "
        "`overhead_s`. `settings.json` holds the settings every run shares, `runs.json` "
        "the commands that added runs (the runs table below counts runs, not rows)."
    )
    return write_readme(
        path,
        "Co-search histories: the model and its deployment, searched together or in turn",
        description,
        {"histories": _HISTORY_DOCS},
        provenance=facts,
    )


def _quantile_key(q: float) -> float:
    return round(float(q), 6)


def read_histories(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """The complete runs of a cache folder's ``histories.csv``.

    A run's rows are written in one append; a run counts when the rows of one of its
    blocks number ``run_rows`` (a torn write leaves fewer), and only its first complete
    block is kept.

    Args:
        folder: the cache folder (or its name under ``data/``).

    Returns:
        The rows of the complete runs (empty with :data:`HISTORY_COLUMNS` when none).
    """
    path = dataset_path(folder) / "histories.csv"
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    frame = pd.read_csv(path)
    if frame.empty:
        return frame
    for col in ("feasible", "feasible_baseline", "feasible_proposed"):
        frame[col] = frame[col].astype(str).str.lower() == "true"
    frame["budget_quantile"] = frame["budget_quantile"].map(_quantile_key)
    sizes = frame.groupby("block")["iteration"].transform("size")
    frame = frame[sizes == frame["run_rows"]]
    first = frame.drop_duplicates(["budget_quantile", "strategy", "seed"])[
        ["budget_quantile", "strategy", "seed", "block"]
    ]
    keep = frame["block"].isin(set(first["block"]))
    return (
        frame[keep]
        .sort_values(["budget_quantile", "strategy", "seed", "iteration"])
        .reset_index(drop=True)
    )


def _check_settings(folder: Path, settings: CoSearchSettings) -> None:
    path = folder / "settings.json"
    mine = asdict(settings)
    if path.exists():
        theirs = json.loads(path.read_text())
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            listed = ", ".join(f"{k}: cached {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise CoSearchCacheError(
                f"{folder}: its histories were made with other settings ({listed}); "
                "use another folder"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine, indent=1) + "\n")


def _check_header(path: Path) -> None:
    """Cut a torn last line of a cache's table and refuse one with other columns."""
    if not path.exists() or path.stat().st_size == 0:
        return
    drop_torn_line(path)
    with path.open() as f:
        header = f.readline().strip().split(",")
    if header != HISTORY_COLUMNS:
        raise CoSearchCacheError(
            f"{path}: its columns are not this version's ({sorted(set(header) ^ set(HISTORY_COLUMNS))} "
            "differ); use another folder"
        )


def _append_run(path: Path, run: pd.DataFrame) -> None:
    block = uuid.uuid4().hex[:12]
    run = run.assign(run_rows=len(run), block=block)
    lines = "".join(
        csv_line([_cell(v) for v in values])
        for values in run[HISTORY_COLUMNS].itertuples(index=False, name=None)
    )
    file = AppendOnlyFile(path, header=csv_line(HISTORY_COLUMNS))
    file.append_line(lines)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _log_run(folder: Path, entry: Mapping[str, Any]) -> None:
    path = folder / "runs.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append(dict(entry))
    path.write_text(json.dumps(runs, indent=1) + "\n")


def run_cosearches(
    *,
    quantiles: Iterable[float],
    seeds: Iterable[int],
    strategies: Sequence[str] = STRATEGIES,
    settings: CoSearchSettings | None = None,
    out: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    command: str | None = None,
) -> pd.DataFrame:
    """Both strategies, many seeds, several budget levels; cached and resumable.

    Args:
        quantiles: budget quantiles (of the baseline deployment's measured energy).
        seeds: run seeds (each strategy runs once per seed and level).
        strategies: the strategies to run.
        settings: what every run shares.
        out: cache folder (or name under ``data/``): complete runs found in its
            ``histories.csv`` are read instead of rerun, new runs appended as they finish,
            and the command that added them logged in ``runs.json``; None computes
            everything in memory.
        n_jobs: worker processes (results do not depend on it).
        progress: show a progress bar over the runs.
        command: the command line recorded in ``runs.json`` (default: ``sys.argv``).

    Returns:
        The histories of the asked runs (columns :data:`HISTORY_COLUMNS`), sorted by
        level, strategy, seed and iteration.

    Raises:
        CoSearchCacheError: ``out`` holds runs made with other settings.
    """
    settings = settings or CoSearchSettings()
    levels = [_quantile_key(q) for q in quantiles]
    seeds = [int(s) for s in seeds]
    for s in strategies:
        _check_strategy(s)
    if not levels or not seeds or not strategies:
        raise ValueError("run_cosearches needs at least one quantile, seed and strategy")
    folder = None if out is None else _cache_folder(out)
    cached = pd.DataFrame(columns=HISTORY_COLUMNS)
    if folder is not None:
        _check_settings(folder, settings)
        _check_header(folder / "histories.csv")
        cached = read_histories(folder)
    done = set(zip(cached["budget_quantile"], cached["strategy"], cached["seed"], strict=True))
    jobs = [
        (q, s, seed)
        for q in dict.fromkeys(levels)
        for s in dict.fromkeys(strategies)
        for seed in dict.fromkeys(seeds)
        if (q, s, seed) not in done
    ]
    parts = []
    if jobs:
        started = time.perf_counter()
        header = run_header("cosearch", command, None)
        problems = {q: settings.problem(q) for q in {j[0] for j in jobs}}
        shared = {"settings": settings, "problems": problems}
        bar = tqdm(total=len(jobs), desc="co-search runs", disable=not progress, file=sys.stderr)

        def finished(run: pd.DataFrame) -> None:
            if folder is not None:
                _append_run(folder / "histories.csv", run)
            parts.append(run)
            bar.update(1)

        try:
            if n_jobs <= 1 or len(jobs) == 1:
                saved = dict(_SHARED)
                _init_worker(shared)
                try:
                    for job in jobs:
                        finished(_one_run(job))
                finally:
                    _init_worker(saved)
            else:
                method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
                with ProcessPoolExecutor(
                    max_workers=min(n_jobs, len(jobs)),
                    mp_context=mp.get_context(method),
                    initializer=_init_worker,
                    initargs=(shared,),
                ) as pool:
                    futures = [pool.submit(_one_run, job) for job in jobs]
                    for future in as_completed(futures):
                        finished(future.result())
        finally:
            bar.close()
            if folder is not None and parts:
                _log_run(
                    folder,
                    {
                        **header,
                        "runs_added": len(parts),
                        "wall_s": round(time.perf_counter() - started, 1),
                        "ended": now_iso(),
                    },
                )
                write_cache_readme(folder)
    frames = [f for f in (cached, *parts) if len(f)]
    if not frames:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    allruns = pd.concat(frames, ignore_index=True)
    allruns["budget_quantile"] = allruns["budget_quantile"].map(_quantile_key)
    wanted = (
        allruns["budget_quantile"].isin(levels)
        & allruns["strategy"].isin(strategies)
        & allruns["seed"].isin(seeds)
    )
    out_frame = allruns[wanted].drop(columns=["run_rows", "block"], errors="ignore")
    return out_frame.sort_values(["budget_quantile", "strategy", "seed", "iteration"]).reset_index(
        drop=True
    )


# ====================================================================== analysis


def strategy_curves(histories: pd.DataFrame, *, model_only: bool = True) -> pd.DataFrame:
    """Best feasible test error after each training, per strategy and seed.

    Feasible means the configuration's cheapest measured deployment is within the budget
    (``feasible``), for both strategies. With ``model_only``, the sequential runs are
    scored a second time, feasible only at the baseline deployment (``feasible_baseline``):
    the model searched and never re-deployed, as method :data:`MODEL_ONLY`.

    Args:
        histories: histories of one budget level (:func:`run_cosearches`).
        model_only: add the :data:`MODEL_ONLY` curve.

    Returns:
        :func:`hwml.optimize.best_so_far` curves: ``method`` (the strategy), ``seed``,
        ``iteration`` (trainings), ``cumulative_time_s`` and ``best_objective``.
    """
    if histories["budget_quantile"].nunique() > 1:
        raise ValueError("strategy_curves takes the histories of one budget level")
    frame = histories.assign(method=histories["strategy"])
    parts = [best_so_far(frame)]
    seq = frame[frame["strategy"] == "sequential"]
    if model_only and len(seq):
        parts.append(best_so_far(seq.assign(method=MODEL_ONLY, feasible=seq["feasible_baseline"])))
    return pd.concat(parts, ignore_index=True)


def final_errors(curves: pd.DataFrame) -> pd.DataFrame:
    """Each run's best feasible error after its last training.

    Returns:
        ``method``, ``seed``, ``trainings`` and ``best_objective`` (NaN when the run
        found nothing feasible).
    """
    last = curves.sort_values("iteration").groupby(["method", "seed"], sort=True).tail(1)
    out = last[["method", "seed", "iteration", "best_objective"]].rename(
        columns={"iteration": "trainings"}
    )
    return out.sort_values(["method", "seed"]).reset_index(drop=True)


def summarize_final(
    final: pd.DataFrame, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean best feasible error per method with a percentile bootstrap interval over seeds.

    Args:
        final: :func:`final_errors` (a run with nothing feasible is left out and counted
            in ``none_feasible``).
        n_boot: bootstrap resamples of the seeds.
        confidence: level of the interval.
        seed: seed of the resampling.

    Returns:
        One row per method (index): ``n``, ``mean``, ``lower``, ``upper``, ``std``,
        ``median``, ``min``, ``max`` (test error, fractions) and ``none_feasible``.
    """
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2
    rows = {}
    for method, part in final.groupby("method", sort=False):
        v = part["best_objective"].to_numpy(dtype=float)
        missing = int((~np.isfinite(v)).sum())
        v = v[np.isfinite(v)]
        if len(v) == 0:
            rows[method] = {"n": 0, "none_feasible": missing}
            continue
        boots = v[rng.integers(len(v), size=(n_boot, len(v)))].mean(axis=1)
        rows[method] = {
            "n": len(v),
            "mean": float(v.mean()),
            "lower": float(np.quantile(boots, tail)),
            "upper": float(np.quantile(boots, 1 - tail)),
            "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "median": float(np.median(v)),
            "min": float(v.min()),
            "max": float(v.max()),
            "none_feasible": missing,
        }
    columns = ["n", "mean", "lower", "upper", "std", "median", "min", "max", "none_feasible"]
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=columns)


def difference_interval(
    final: pd.DataFrame,
    method: str,
    baseline: str,
    n_boot: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean best feasible error of ``method`` minus ``baseline``'s, with a bootstrap interval.

    The runs of the two methods are independent searches; each method's seeds are
    resampled on their own.

    Args:
        final: :func:`final_errors`.
        method: e.g. ``"joint"``.
        baseline: e.g. ``"sequential"``.
        n_boot: bootstrap resamples.
        confidence: level of the interval.
        seed: seed of the resampling.

    Returns:
        ``difference``, ``lower``, ``upper`` (test error, fractions; negative: ``method``
        is lower) and ``p_below`` (the share of resamples in which ``method``'s mean is
        lower).
    """
    rng = np.random.default_rng(seed)
    a = final.loc[final["method"] == method, "best_objective"].to_numpy(dtype=float)
    b = final.loc[final["method"] == baseline, "best_objective"].to_numpy(dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"no feasible runs of {method!r} or {baseline!r}")
    da = a[rng.integers(len(a), size=(n_boot, len(a)))].mean(axis=1)
    db = b[rng.integers(len(b), size=(n_boot, len(b)))].mean(axis=1)
    diff = da - db
    tail = (1.0 - confidence) / 2
    return {
        "difference": float(a.mean() - b.mean()),
        "lower": float(np.quantile(diff, tail)),
        "upper": float(np.quantile(diff, 1 - tail)),
        "p_below": float((diff < 0).mean()),
    }


def budget_levels(
    histories: pd.DataFrame,
    settings: CoSearchSettings | None = None,
    *,
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per budget level of a co-search: the budget, what fits it, and the result.

    Args:
        histories: :func:`run_cosearches` histories of one or more levels.
        settings: the settings they were made with (rebuilds each level's problem).
        n_boot: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``quantile``, ``budget_mj``, ``baseline_fit`` and ``any_fit`` (fractions of the
        structures within the budget at the baseline and at their cheapest deployment),
        ``oracle_baseline`` and ``oracle_any`` (the table's best feasible error each
        way), ``seeds``, ``mean[<m>]``, ``lower[<m>]``, ``upper[<m>]`` for each method of
        :func:`strategy_curves`, and ``diff``, ``diff_lower``, ``diff_upper`` (joint minus
        sequential).
    """
    settings = settings or CoSearchSettings()
    rows = []
    for q, part in histories.groupby("budget_quantile", sort=True):
        problem = settings.problem(float(q))
        fits = problem.budget_summary()
        final = final_errors(strategy_curves(part))
        summary = summarize_final(final, n_boot=n_boot, seed=seed)
        row: dict[str, Any] = {
            "quantile": float(q),
            "budget_mj": problem.budget_mj,
            "baseline_fit": fits["baseline"],
            "any_fit": fits["any"],
            "oracle_baseline": problem.best_feasible_error(after_deployment=False),
            "oracle_any": problem.best_feasible_error(after_deployment=True),
            "seeds": int(part["seed"].nunique()),
        }
        for m in summary.index:
            for col in ("mean", "lower", "upper"):
                row[f"{col}[{m}]"] = float(summary.loc[m, col])
        if {"joint", "sequential"} <= set(summary.index):
            d = difference_interval(final, "joint", "sequential", n_boot=n_boot, seed=seed)
            row.update(diff=d["difference"], diff_lower=d["lower"], diff_upper=d["upper"])
        rows.append(row)
    return pd.DataFrame(rows)


# ====================================================================== command line


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


_FULL: dict[str, Any] = {"quantiles": "0.2", "seeds": "0-19", "trainings": 40, "gp_restarts": 2}
_QUICK: dict[str, Any] = {"quantiles": "0.2", "seeds": "0-2", "trainings": 12, "gp_restarts": 1}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run (or read back) the co-search comparison and print the summary."""
    parser = argparse.ArgumentParser(
        prog="python -m hwml.hyperpower.cosearch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--benchmark", default=DEFAULT_BENCHMARK, help="benchmark folder or name")
    parser.add_argument("--deploy", default=DEFAULT_DEPLOY, help="deployment folder or name")
    parser.add_argument("--out", help="cache folder (resumable); default: compute in memory")
    parser.add_argument("--quantiles", help="budget quantiles, comma-separated (0.2)")
    parser.add_argument("--seeds", help="seeds, e.g. 0-19 or 0,3,5 (0-19)")
    parser.add_argument("--trainings", type=int, help="trainings per run (40)")
    parser.add_argument("--init", type=int, default=5, help="random trainings that start a run")
    parser.add_argument("--method", default="hw-ieci", choices=COSEARCH_METHODS)
    parser.add_argument("--gp-restarts", type=int, help="GP fits of a full fit (2)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="defaults of a small check: 3 seeds, 12 trainings, quantile 0.2, 1 GP restart",
    )
    args = parser.parse_args(argv)
    defaults = _QUICK if args.quick else _FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    settings = CoSearchSettings(
        n_trainings=args.trainings,
        n_init=args.init,
        method=args.method,
        gp_restarts=args.gp_restarts,
        benchmark=args.benchmark,
        deploy=args.deploy,
    )
    quantiles = [float(q) for q in args.quantiles.split(",") if q.strip()]
    start = time.perf_counter()
    histories = run_cosearches(
        quantiles=quantiles,
        seeds=_seeds(args.seeds),
        settings=settings,
        out=args.out,
        n_jobs=args.jobs,
        progress=True,
        command="python -m hwml.hyperpower.cosearch "
        + " ".join(sys.argv[1:] if argv is None else argv),
    )
    levels = budget_levels(histories, settings)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(levels.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"{len(histories)} trainings read or run in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
