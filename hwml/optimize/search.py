"""The search loop: :func:`minimize` runs any method on any objective and keeps a history.

An *objective* is any callable ``config (dict) -> result``. The result is either a number
(the objective value to minimize, e.g. a validation error) or a mapping with the key
``"objective"`` and optionally measured constraint values (read by each
:class:`~hwml.optimize.constraints.Constraint`) and ``"eval_time_s"``, the cost of the
evaluation in seconds (a pre-measured training time, say; wall-clock time is used when
absent). An objective that raises an ``Exception`` or returns a non-finite value is
recorded as a failed evaluation and the search goes on; ``KeyboardInterrupt`` and
``SystemExit`` stop the search, leaving the history file ready to resume.

Every iteration draws from its own generator, seeded from ``(seed, iteration)``, and all
state is rebuilt from the history, so a resumed search makes the same choices as one that
was never interrupted.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.bo import BOSettings, Proposal, propose_bo
from hwml.optimize.candidates import FeasibilityFn, Observations
from hwml.optimize.constraints import (
    Constraint,
    ConstraintPrediction,
    InfeasibleBudgetError,
    predict_constraints,
)
from hwml.optimize.history import (
    HistoryError,
    HistoryWriter,
    clean_reason,
    history_columns,
    history_frame,
    read_history,
    reserved_names,
)
from hwml.optimize.seeding import check_seed, derive_seed, seed_everything
from hwml.optimize.space import Space

__all__ = ["METHODS", "Objective", "SearchSettings", "check_budgets", "minimize"]

logger = logging.getLogger(__name__)

METHODS = ("hw-ieci", "hw-ieci-prob", "ei", "random", "random-filtered", "ga", "ga-filtered")
"""Search methods: HW-IECI (indicator and probabilistic), hardware-unaware BO with EI,
random search without and with the a-priori constraint filter, and the genetic algorithm
without and with constraint awareness."""

_FILTERED_INIT = {"hw-ieci", "hw-ieci-prob", "random-filtered", "ga-filtered"}

Objective = Callable[[dict[str, Any]], Any]
"""``config -> number`` or ``config -> mapping`` with ``"objective"`` (see module docstring)."""


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of :func:`minimize` beyond the common arguments.

    Attributes:
        bo: settings of the model-based methods.
        ga: settings of the genetic algorithm.
        n_feasibility_check: random configurations on which the budgets are checked
            before the search (the whole pool when the search is over a finite pool).
        seed_objective: seed ``random``/numpy/torch before each evaluation from
            ``(seed, iteration)``, so a stochastic objective repeats exactly.
    """

    bo: BOSettings = field(default_factory=BOSettings)
    ga: GASettings = field(default_factory=GASettings)
    n_feasibility_check: int = 10_000
    seed_objective: bool = True


def _check_int(value: object, fieldname: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{fieldname} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{fieldname} must be >= {minimum}, got {value}")
    return int(value)


def _unique_points(points: np.ndarray) -> np.ndarray:
    _, first = np.unique(np.round(points, 12), axis=0, return_index=True)
    return points[np.sort(first)]


def check_budgets(
    space: Space,
    constraints: Sequence[Constraint],
    seed: int = 0,
    n: int = 10_000,
    pool: np.ndarray | None = None,
) -> float:
    """Check that some configuration meets every budget, per the constraint models.

    Args:
        space: the search space.
        constraints: the constraints.
        seed: seed of the random sample.
        n: size of the uniform random sample of the space.
        pool: optional finite set of unit-cube points to check instead of a sample.

    Returns:
        The fraction of checked configurations predicted feasible, in ``(0, 1]``.

    Raises:
        InfeasibleBudgetError: none of them is predicted feasible.
    """
    if not constraints:
        return 1.0
    points = pool if pool is not None else space.sample_unit(n, derive_seed(check_seed(seed), 0))
    configs = space.structural(space.decode(points))
    pred = predict_constraints(constraints, configs)
    fraction = float(pred.feasible.mean())
    if fraction == 0.0:
        parts = []
        for c in constraints:
            values = pred.mean[c.name]
            smallest = np.nanmin(values) if np.isfinite(values).any() else math.nan
            parts.append(f"{c.name}: budget {c.budget:g}, smallest prediction {smallest:g}")
        where = "the pool" if pool is not None else f"{len(points)} random configurations"
        raise InfeasibleBudgetError(
            "no configuration meets the budgets according to the constraint models "
            f"(checked {where}): " + "; ".join(parts)
        )
    return fraction


@dataclass
class _Evaluation:
    value: float
    result: Mapping[str, Any]
    reason: str
    eval_time_s: float


def _evaluate(objective: Objective, config: dict[str, Any]) -> _Evaluation:
    start = time.perf_counter()
    result: Mapping[str, Any] = {}
    raw: Any = math.nan
    reason = ""
    try:
        out = objective(dict(config))
    except Exception as err:  # a failing evaluation is data, not a crash of the search
        out = None
        reason = f"{type(err).__name__}: {err}"
    wall = time.perf_counter() - start
    if not reason:
        if isinstance(out, Mapping):
            result = out
            if "objective" not in out:
                reason = "result has no 'objective' key"
            raw = out.get("objective", math.nan)
        else:
            raw = out
    value = math.nan
    if not reason:
        try:
            value = float(np.asarray(raw, dtype=float).item())
        except (TypeError, ValueError):
            reason = f"objective returned {type(raw).__name__}, not a number"
        else:
            if not math.isfinite(value):
                reason = f"objective is {value}"
                value = math.nan
    cost = result.get("eval_time_s") if isinstance(result, Mapping) else None
    try:
        eval_time = float(cost) if cost is not None else wall
    except (TypeError, ValueError):
        eval_time = wall
    if not math.isfinite(eval_time):
        eval_time = wall
    return _Evaluation(value, result, clean_reason(reason) if reason else "", eval_time)


def _propose(
    method: str,
    phase: str,
    space: Space,
    obs: Observations,
    rng: np.random.Generator,
    feasibility: FeasibilityFn | None,
    pool: np.ndarray | None,
    settings: SearchSettings,
    n_init: int,
) -> Proposal | None:
    filt = feasibility if method in _FILTERED_INIT else None
    if method in ("random", "random-filtered") or phase == "init":
        return propose_random(space, obs, rng, filt, pool)
    if method in ("ga", "ga-filtered"):
        return propose_ga(space, obs, rng, settings.ga, n_init, filt, pool)
    if not obs.ok.any():
        return propose_random(space, obs, rng, filt, pool)
    kind = method if feasibility is not None else "ei"
    try:
        proposal = propose_bo(space, obs, rng, kind, feasibility, pool, settings.bo)
    except np.linalg.LinAlgError as err:
        logger.warning("GP fit failed (%s); this iteration draws a random point", err)
        return propose_random(space, obs, rng, filt, pool)
    if proposal is None and pool is None:
        # no accepted candidate in this round's set (a tiny feasible region): search harder
        return propose_random(space, obs, rng, filt, pool)
    return proposal


def minimize(
    objective: Objective,
    space: Space,
    constraints: Sequence[Constraint] = (),
    *,
    method: str = "hw-ieci",
    n_evals: int = 50,
    n_init: int = 10,
    seed: int = 0,
    history_path: str | os.PathLike[str] | None = None,
    candidates: pd.DataFrame | None = None,
    settings: SearchSettings | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Minimize an objective over a space under hardware budgets.

    Args:
        objective: ``config (dict) -> number | mapping`` (see the module docstring).
        space: the search space.
        constraints: budgets with their predictive models.
        method: one of :data:`METHODS`.
        n_evals: total number of evaluations of the run (those in a resumed history
            included).
        n_init: initial random evaluations of the model-based methods and the GA
            (filtered by the constraint models' predictions for ``hw-ieci``,
            ``hw-ieci-prob`` and ``ga-filtered``); also the GA's population size unless
            ``settings.ga.population`` is set.
        seed: the run's seed; equal seeds give equal histories (up to timing columns).
        history_path: ``.csv`` or ``.jsonl`` file; each row is appended and flushed as it
            is made, and a file left by an earlier (interrupted) run with the same method
            and seed is resumed: its evaluations are replayed, not repeated.
        candidates: finite set of allowed configurations (one row each); the search then
            picks only among its not-yet-evaluated rows. When ``None`` and the objective
            has a ``candidates`` frame (like
            :class:`~hwml.optimize.tabular.TabularObjective`), that one is used.
        settings: further knobs.
        progress: show a tqdm bar; ``None`` shows it only on a terminal.

    Returns:
        The history table, one row per evaluation (columns in
        :mod:`hwml.optimize.history`). Fewer than ``n_evals`` rows if the space or pool
        ran out of new (feasible) configurations.

    Raises:
        ValueError: an unknown method, duplicate constraint names, or a dimension name
            that collides with a history column.
        TypeError: ``seed``, ``n_evals`` or ``n_init`` is not an int.
        InfeasibleBudgetError: the constraint models reject every configuration; raised
            before any evaluation.
        HistoryError: ``history_path`` belongs to another search.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    seed = check_seed(seed)
    n_evals = _check_int(n_evals, "n_evals", 1)
    n_init = _check_int(n_init, "n_init", 1)
    if not isinstance(space, Space):
        raise TypeError(f"space must be a Space, got {type(space).__name__}")
    if not callable(objective):
        raise TypeError("objective must be callable")
    settings = settings or SearchSettings()
    constraints = tuple(constraints)
    for c in constraints:
        if not isinstance(c, Constraint):
            raise TypeError(f"constraints must be Constraint objects, got {type(c).__name__}")
    names = [c.name for c in constraints]
    if len(set(names)) != len(names):
        raise ValueError(f"constraint names must be unique, got {names}")
    clash = sorted(set(space.names) & reserved_names(names))
    if clash:
        raise ValueError(f"dimension name(s) {clash} collide with history columns")

    if candidates is None:
        found = getattr(objective, "candidates", None)
        candidates = found if isinstance(found, pd.DataFrame) else None
    pool = None
    if candidates is not None:
        pool = _unique_points(space.encode(candidates))
        if len(pool) == 0:
            raise ValueError("candidates is empty")

    feasibility: FeasibilityFn | None = None
    if constraints:

        def feasibility(points: np.ndarray) -> ConstraintPrediction:
            return predict_constraints(constraints, space.structural(space.decode(points)))

        fraction = check_budgets(space, constraints, seed, settings.n_feasibility_check, pool)
        logger.info("%.1f%% of checked configurations meet the budgets", 100 * fraction)

    columns = history_columns(space, names)
    if history_path is not None:
        prior = read_history(history_path, space, names)
        for col, want in (("method", method), ("seed", seed)):
            other = set(prior[col].tolist()) - {want}
            if other:
                raise HistoryError(
                    f"history_path {str(history_path)!r} holds {col} {sorted(other)!r}, "
                    f"not {want!r}; use one file per (method, seed)"
                )
    else:
        prior = history_frame([], space, names)
    rows: list[dict[str, Any]] = prior.to_dict(orient="records")
    if len(prior):
        points = space.encode(prior[space.names])
        values = prior["objective"].to_numpy(dtype=float)
        feasible = prior["feasible"].to_numpy(dtype=bool)
        cumulative = float(prior["cumulative_time_s"].iloc[-1])
    else:
        points = np.empty((0, space.n_dims))
        values = np.empty(0)
        feasible = np.empty(0, dtype=bool)
        cumulative = 0.0
    if len(rows) >= n_evals:
        return history_frame(rows[:n_evals], space, names)

    writer = HistoryWriter(history_path, columns) if history_path is not None else None
    bar = tqdm(
        total=n_evals,
        initial=len(rows),
        desc=f"{method} seed {seed}",
        leave=False,
        disable=None if progress is None else not progress,
    )
    try:
        for iteration in range(len(rows) + 1, n_evals + 1):
            start = time.perf_counter()
            rng = np.random.default_rng(derive_seed(seed, iteration))
            phase = "init" if iteration <= n_init else "search"
            obs = Observations(points, values, feasible)
            proposal = _propose(method, phase, space, obs, rng, feasibility, pool, settings, n_init)
            if proposal is None:
                logger.warning(
                    "%s seed %d: no new configuration left after %d evaluations",
                    method,
                    seed,
                    len(rows),
                )
                break
            config_frame = space.decode(proposal.point[None, :])
            config = space.to_dicts(config_frame)[0]
            pred = feasibility(proposal.point[None, :]) if feasibility is not None else None
            overhead = time.perf_counter() - start

            if settings.seed_objective:
                seed_everything(derive_seed(seed, iteration, 1))
            ev = _evaluate(objective, config)

            row: dict[str, Any] = {
                "iteration": iteration,
                "method": method,
                "seed": seed,
                "phase": phase,
                **config,
                "objective": ev.value,
            }
            holds_all, measured_any, measured_all = True, False, True
            for c in constraints:
                predicted = float(pred.mean[c.name][0]) if pred is not None else math.nan
                measured = c.read_measured(ev.result)
                row[f"pred_{c.name}"], row[f"measured_{c.name}"] = predicted, measured
                if math.isfinite(measured):
                    measured_any = True
                    measured_all &= measured <= c.budget
                    holds_all &= measured <= c.budget
                else:
                    holds_all &= predicted <= c.budget
            row["feasible_pred"] = bool(pred.feasible[0]) if pred is not None else True
            row["prob_feasible"] = float(pred.prob_feasible[0]) if pred is not None else 1.0
            row["feasible_measured"] = bool(measured_all) if measured_any else None
            row["feasible"] = bool(holds_all)
            row["acquisition"] = proposal.acquisition
            row["status"] = "failed" if ev.reason else "ok"
            row["reason"] = ev.reason
            row["eval_time_s"] = ev.eval_time_s
            row["overhead_s"] = overhead
            cumulative += ev.eval_time_s + overhead
            row["cumulative_time_s"] = cumulative
            if ev.reason:
                logger.info(
                    "%s seed %d iteration %d failed: %s", method, seed, iteration, ev.reason
                )

            if writer is not None:
                writer.append(row)
            rows.append(row)
            points = np.vstack([points, space.encode(config_frame)])
            values = np.append(values, ev.value)
            feasible = np.append(feasible, row["feasible"])
            bar.update(1)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return history_frame(rows, space, names)
