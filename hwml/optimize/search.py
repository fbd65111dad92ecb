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
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.bo import (
    BOSettings,
    GPWarmStart,
    Proposal,
    fit_surrogate,
    propose_bo,
    surrogate_values,
)
from hwml.optimize.candidates import FeasibilityFn, Observations, constraint_filter
from hwml.optimize.constraints import (
    Constraint,
    ConstraintPrediction,
    InfeasibleBudgetError,
)
from hwml.optimize.feasible import (
    FeasibilitySettings,
    FeasibleRegion,
    find_feasible,
    require_feasible,
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

__all__ = [
    "METHODS",
    "EvaluationError",
    "Objective",
    "SearchExhaustedWarning",
    "SearchSettings",
    "check_budgets",
    "minimize",
]

logger = logging.getLogger(__name__)

METHODS = ("hw-ieci", "hw-ieci-prob", "ei", "random", "random-filtered", "ga", "ga-filtered")
"""Search methods: HW-IECI (indicator and probabilistic), hardware-unaware BO with EI,
random search without and with the a-priori constraint filter, and the genetic algorithm
without and with constraint awareness."""

_FILTERED_INIT = {"hw-ieci", "hw-ieci-prob", "random-filtered", "ga-filtered"}
_BO_METHODS = {"hw-ieci", "hw-ieci-prob", "ei"}
_FILTERED_SEARCH = {"hw-ieci", "random-filtered", "ga-filtered"}  # never leave the models' region

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
        feasibility: how the constraint models are searched when that random sample
            finds few feasible configurations (:func:`~hwml.optimize.feasible.find_feasible`).
    """

    bo: BOSettings = field(default_factory=BOSettings)
    ga: GASettings = field(default_factory=GASettings)
    n_feasibility_check: int = 10_000
    seed_objective: bool = True
    feasibility: FeasibilitySettings = field(default_factory=FeasibilitySettings)


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
    settings: FeasibilitySettings | None = None,
) -> float:
    """Check that some configuration meets every budget, per the constraint models.

    A uniform sample of ``n`` configurations comes first; when it finds few feasible
    ones, the constraint models are searched further (an enumeration of the structural
    configurations, or a differential evolution of the worst normalized violation:
    :func:`~hwml.optimize.feasible.find_feasible`).

    Args:
        space: the search space.
        constraints: the constraints.
        seed: seed of the random sample and of the deeper search.
        n: size of the uniform random sample of the space.
        pool: optional finite set of unit-cube points to check instead of a sample.
        settings: knobs of the deeper search.

    Returns:
        The fraction of the checked configurations predicted feasible (of the sample, the
        pool, or the enumeration when one ran), in ``[0, 1]``; 0 when only the
        differential evolution found feasible configurations (fewer than one in ``n``).

    Raises:
        InfeasibleBudgetError: no configuration is predicted feasible; the message says
            what was searched and each constraint's smallest prediction.
    """
    if not constraints:
        return 1.0
    region = find_feasible(space, constraints, seed, n, pool, settings)
    require_feasible(region, constraints)
    return region.fraction


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
    run: _Run,
    phase: str,
    state: _SearchState,
    rng: np.random.Generator,
    pending: np.ndarray | None = None,
) -> Proposal | None:
    """The next point of a run's method, from the observations so far.

    Args:
        run: the run's context.
        phase: ``"init"`` or ``"search"``.
        state: the evaluations so far; its GP warm start is updated by model-based methods.
        rng: the iteration's generator.
        pending: points being evaluated (a batch search), shape ``(m, d)``: never proposed
            again; the model-based methods believe them at the GP mean (kriging believer).

    Returns:
        The proposal, or None when no new (feasible) configuration was found.
    """
    method, space, pool, region = run.method, run.space, run.pool, run.region
    obs = state.observations()
    busy = pending is not None and len(pending) > 0
    seen = obs  # the random draws must differ from evaluated and pending points alike
    if busy:
        seen = Observations(
            np.vstack([obs.points, pending]),
            np.concatenate([obs.values, np.full(len(pending), np.nan)]),
            np.concatenate([obs.feasible, np.ones(len(pending), dtype=bool)]),
        )
    filt = run.feasibility if method in _FILTERED_INIT else None
    if method in ("random", "random-filtered") or phase == "init":
        return propose_random(space, seen, rng, filt, pool, region=region)
    if method in ("ga", "ga-filtered"):
        if busy:
            raise ValueError("the genetic algorithm does not propose batches")
        return propose_ga(space, obs, rng, run.settings.ga, run.n_init, filt, pool, region=region)
    if not obs.ok.any():
        return propose_random(space, seen, rng, filt, pool, region=region)
    kind = method if run.feasibility is not None else "ei"
    try:
        proposal = propose_bo(
            space,
            obs,
            rng,
            kind,
            run.feasibility,
            pool,
            run.settings.bo,
            warm=state.warm,
            region=region,
            pending=pending if busy else None,
        )
    except np.linalg.LinAlgError as err:
        logger.warning("GP fit failed (%s); this iteration draws a random point", err)
        return propose_random(space, seen, rng, filt, pool, region=region)
    if proposal is None and pool is None:
        # no accepted candidate in this round's set (a tiny feasible region): search harder
        return propose_random(space, seen, rng, filt, pool, region=region)
    return proposal


def _replay_fits(run: _Run, state: _SearchState) -> None:
    """Rebuild a resumed search's GP warm start by redoing its proposals' GP fits.

    A model-based proposal fits its GP first, from its iteration's generator, so refitting
    on each past search iteration's observations with that generator leaves
    ``state.warm`` as an uninterrupted run would have it, and the resumed run makes the
    same choices. Costs one GP fit per past search iteration.

    Args:
        run: the run's context.
        state: the evaluations read back from the history file; ``state.warm`` is updated.
    """
    if run.method not in _BO_METHODS:
        return
    for iteration in range(run.n_init + 1, len(state.rows) + 1):
        obs = state.observations(iteration - 1)
        if not obs.ok.any():
            continue
        rng = np.random.default_rng(derive_seed(run.seed, iteration))
        y, log = surrogate_values(obs, run.settings.bo)
        try:
            fit_surrogate(obs.points, y, rng, run.settings.bo, state.warm, log)
        except np.linalg.LinAlgError:
            continue


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
        ran out of new (feasible) configurations: a :class:`SearchExhaustedWarning` then
        says why, and ``history.attrs["exhausted"]`` holds the same message.

    Raises:
        ValueError: an unknown method, duplicate constraint names, or a dimension name
            that collides with a history column.
        TypeError: ``seed``, ``n_evals`` or ``n_init`` is not an int.
        InfeasibleBudgetError: the constraint models reject every configuration (after a
            search of the models, :func:`~hwml.optimize.feasible.find_feasible`); raised
            before any evaluation, or when the search found nothing to evaluate (never an
            empty history).
        EvaluationError: every evaluation failed (the run stops once its first
            ``max(3, n_init)`` evaluations all failed); the message gives the first
            failure's reason, ``err.history`` the rows.
        ConstraintModelError: a constraint's model raised; the message names it.
        HistoryError: ``history_path`` belongs to another search.
    """
    seed, n_evals, n_init, constraints = _checked_arguments(
        objective, space, constraints, method, seed, n_evals, n_init
    )
    settings = settings or SearchSettings()
    names = [c.name for c in constraints]
    pool = _candidate_pool(objective, space, candidates)
    feasibility, region = _feasibility(space, constraints, seed, settings, pool)
    columns = history_columns(space, names)
    prior = _prior_history(history_path, space, names, method, seed)
    state = _SearchState.from_history(prior, space)
    if len(state.rows) >= n_evals:
        return history_frame(state.rows[:n_evals], space, names)

    run = _Run(
        objective, space, constraints, method, seed, n_init, settings, pool, feasibility, region
    )
    _replay_fits(run, state)
    writer = HistoryWriter(history_path, columns) if history_path is not None else None
    stopped = _search_loop(run, state, n_evals, writer, progress)
    history = history_frame(state.rows, space, names)
    if not state.rows:
        raise InfeasibleBudgetError(
            f"{method} seed {seed}: no configuration to evaluate: the constraint models "
            "accept none that the search could find (or the candidate pool is empty); "
            "loosen the budgets or check the models"
        )
    if _all_failed(state.rows):
        first = state.rows[0]
        raise EvaluationError(
            f"{method} seed {seed}: all {len(state.rows)} evaluations failed; the first "
            f"(iteration {first['iteration']}) with: {first.get('reason') or 'no reason'}",
            history,
        )
    if stopped:
        message = _exhausted_message(run, state, n_evals)
        history.attrs["exhausted"] = message
        warnings.warn(message, SearchExhaustedWarning, stacklevel=2)
    return history


class SearchExhaustedWarning(UserWarning):
    """A search stopped before ``n_evals`` evaluations: no new (feasible) configuration
    was left or found. The history returned holds the evaluations made; its
    ``attrs["exhausted"]`` repeats the message."""


def _exhausted_message(run: _Run, state: _SearchState, n_evals: int) -> str:
    """Why a search stopped early, for :class:`SearchExhaustedWarning`.

    "All ... evaluated" is said only when the count proves it: the pool's rows are checked
    exhaustively, a finite space or a complete feasible region by their sizes.
    """
    done = len(state.rows)
    head = f"{run.method} seed {run.seed}: stopped after {done} of {n_evals} evaluations: "
    filtered = run.feasibility is not None and run.method in _FILTERED_SEARCH
    accepted = " that the constraint models accept" if filtered else ""
    if run.pool is not None:
        return head + f"every row of the candidate pool{accepted} has been evaluated"
    size = run.space.size
    if not filtered and size is not None and done >= size:
        return head + f"all {size} configurations of the space have been evaluated"
    region = run.region
    if filtered and region is not None and region.complete and size is not None:
        others = size // math.prod(run.space.dimensions[j].n_levels or 1 for j in region.columns)
        total = len(region) * others
        if done >= total:  # a filtered method evaluates only accepted configurations
            return head + f"all {total} configurations{accepted} have been evaluated"
    return head + f"no new configuration{accepted} was found by random sampling"


class EvaluationError(RuntimeError):
    """Every evaluation of a search failed: the objective is broken, not the search.

    Attributes:
        history: the failed rows (also in the history file, if one was given).
    """

    def __init__(self, message: str, history: pd.DataFrame) -> None:
        super().__init__(message)
        self.history = history


#: A run stops when its first evaluations all failed: this many, or ``n_init`` if larger.
FAILED_START = 3


def _all_failed(rows: Sequence[Mapping[str, Any]]) -> bool:
    return bool(rows) and all(row.get("status") != "ok" for row in rows)


def _search_loop(
    run: _Run,
    state: _SearchState,
    n_evals: int,
    writer: HistoryWriter | None,
    progress: bool | None,
) -> bool:
    """Evaluate until ``state`` holds ``n_evals`` rows or no new configuration is left.

    Each row is appended to ``writer`` (then closed, however the loop ends) before it
    joins ``state``.

    Args:
        run: the run's context.
        state: the evaluations so far; grows here.
        n_evals: total evaluations of the run.
        writer: the history file's writer, if any.
        progress: show a tqdm bar; ``None`` shows it only on a terminal.

    Returns:
        True when the loop stopped because no new configuration was left or found.
    """
    bar = tqdm(
        total=n_evals,
        initial=len(state.rows),
        desc=f"{run.method} seed {run.seed}",
        leave=False,
        disable=None if progress is None else not progress,
    )
    try:
        for iteration in range(len(state.rows) + 1, n_evals + 1):
            step = _step(run, iteration, state)
            if step is None:
                return True
            row, config_frame = step
            if writer is not None:
                writer.append(row)
            state.add(row, run.space.encode(config_frame))
            bar.update(1)
            if len(state.rows) >= max(FAILED_START, run.n_init) and _all_failed(state.rows):
                break  # minimize raises: the objective fails on everything
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return False


def _checked_arguments(
    objective: Objective,
    space: Space,
    constraints: Sequence[Constraint],
    method: str,
    seed: int,
    n_evals: int,
    n_init: int,
) -> tuple[int, int, int, tuple[Constraint, ...]]:
    """Check :func:`minimize`'s arguments (method, ints, space, objective, constraints).

    Returns:
        ``(seed, n_evals, n_init, constraints)``: the checked ints and the constraints as
        a tuple.

    Raises:
        ValueError: an unknown method, duplicate constraint names, or a dimension name
            that collides with a history column.
        TypeError: a non-int ``seed``, ``n_evals`` or ``n_init``, a ``space`` that is not
            a :class:`Space`, an objective that is not callable, or a constraint that is
            not a :class:`Constraint`.
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
    return seed, n_evals, n_init, constraints


def _candidate_pool(
    objective: Any, space: Space, candidates: pd.DataFrame | None
) -> np.ndarray | None:
    """The unit-cube points a search may pick from, or None for the whole space.

    Args:
        objective: the objective; its ``candidates`` frame is used when ``candidates``
            is None.
        space: the search space.
        candidates: finite set of allowed configurations, one row each.

    Returns:
        The distinct encoded candidates, shape ``(n, n_dims)``, in their first-seen order;
        None when there are no candidates.

    Raises:
        ValueError: the candidates are empty.
    """
    if candidates is None:
        found = getattr(objective, "candidates", None)
        candidates = found if isinstance(found, pd.DataFrame) else None
    pool = None
    if candidates is not None:
        pool = _unique_points(space.encode(candidates))
        if len(pool) == 0:
            raise ValueError("candidates is empty")
    return pool


def _feasibility(
    space: Space,
    constraints: tuple[Constraint, ...],
    seed: int,
    settings: SearchSettings,
    pool: np.ndarray | None,
) -> tuple[FeasibilityFn | None, FeasibleRegion | None]:
    """The constraint models' predictions on unit-cube points, after checking the budgets.

    Returns:
        ``(feasibility, region)``: ``points -> ConstraintPrediction`` (None without
        constraints), and the feasible configurations found by a search beyond the
        random sample (None when the sample found enough, or over a pool).

    Raises:
        InfeasibleBudgetError: no configuration meets the budgets
            (:func:`~hwml.optimize.feasible.find_feasible` searched the models).
    """
    if not constraints:
        return None, None
    feasibility = constraint_filter(space, constraints)
    region = find_feasible(
        space, constraints, seed, settings.n_feasibility_check, pool, settings.feasibility
    )
    require_feasible(region, constraints)
    logger.info(
        "%.1f%% of checked configurations meet the budgets (%s; %d feasible kept)",
        100 * region.fraction,
        region.method,
        len(region),
    )
    return feasibility, region if region.method in ("enumeration", "evolution") else None


def _prior_history(
    history_path: str | os.PathLike[str] | None,
    space: Space,
    names: Sequence[str],
    method: str,
    seed: int,
) -> pd.DataFrame:
    """The evaluations an earlier run left in ``history_path`` (none without a path).

    Raises:
        HistoryError: the file belongs to another search (columns, method or seed).
    """
    if history_path is None:
        return history_frame([], space, names)
    prior = read_history(history_path, space, names)
    for col, want in (("method", method), ("seed", seed)):
        other = set(prior[col].tolist()) - {want}
        if other:
            raise HistoryError(
                f"history_path {str(history_path)!r} holds {col} {sorted(other)!r}, "
                f"not {want!r}; use one file per (method, seed)"
            )
    return prior


@dataclass
class _SearchState:
    """What a search has seen so far; every proposal is a function of it.

    Attributes:
        rows: the history rows, one per evaluation.
        points: unit-cube points of the evaluations, shape ``(n, n_dims)``.
        values: their objective values (NaN where failed), shape ``(n,)``.
        feasible: their feasibility, shape ``(n,)``.
        cumulative_s: the last row's ``cumulative_time_s`` (s).
        warm: the GP hyper-parameters carried between proposals (not in the history
            file; a resumed search rebuilds them, :func:`_replay_fits`).
    """

    rows: list[dict[str, Any]]
    points: np.ndarray
    values: np.ndarray
    feasible: np.ndarray
    cumulative_s: float
    warm: GPWarmStart = field(default_factory=GPWarmStart)

    def observations(self, upto: int | None = None) -> Observations:
        """The first ``upto`` evaluations (all by default) as proposers see them."""
        end = len(self.values) if upto is None else upto
        return Observations(self.points[:end], self.values[:end], self.feasible[:end])

    @classmethod
    def from_history(cls, prior: pd.DataFrame, space: Space) -> _SearchState:
        """The state after the evaluations of a history table (empty for an empty one)."""
        rows: list[dict[str, Any]] = prior.to_dict(orient="records")
        if len(prior):
            return cls(
                rows,
                space.encode(prior[space.names]),
                prior["objective"].to_numpy(dtype=float),
                prior["feasible"].to_numpy(dtype=bool),
                float(prior["cumulative_time_s"].iloc[-1]),
            )
        return cls(rows, np.empty((0, space.n_dims)), np.empty(0), np.empty(0, dtype=bool), 0.0)

    def add(self, row: dict[str, Any], point: np.ndarray) -> None:
        """Record one evaluation: its history row and its unit-cube point, shape ``(1, n_dims)``."""
        self.rows.append(row)
        self.points = np.vstack([self.points, point])
        self.values = np.append(self.values, row["objective"])
        self.feasible = np.append(self.feasible, row["feasible"])
        self.cumulative_s = row["cumulative_time_s"]


@dataclass(frozen=True, eq=False)
class _Run:
    """The fixed context of one :func:`minimize` run, its arguments checked."""

    objective: Objective
    space: Space
    constraints: tuple[Constraint, ...]
    method: str
    seed: int
    n_init: int
    settings: SearchSettings
    pool: np.ndarray | None
    feasibility: FeasibilityFn | None
    region: FeasibleRegion | None = None


def _step(
    run: _Run, iteration: int, state: _SearchState
) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """Choose, evaluate and record one configuration.

    Args:
        run: the run's context.
        iteration: the evaluation number, 1-based.
        state: the evaluations so far (only its GP warm start changes here).

    Returns:
        ``(row, config_frame)``: the history row and the one-row frame of the evaluated
        configuration; None when no new configuration is left.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(derive_seed(run.seed, iteration))
    phase = "init" if iteration <= run.n_init else "search"
    proposal = _propose(run, phase, state, rng)
    if proposal is None:
        logger.warning(
            "%s seed %d: no new configuration left after %d evaluations",
            run.method,
            run.seed,
            len(state.rows),
        )
        return None
    config_frame = run.space.decode(proposal.point[None, :])
    config = run.space.to_dicts(config_frame)[0]
    pred = run.feasibility(proposal.point[None, :]) if run.feasibility is not None else None
    overhead = time.perf_counter() - start

    if run.settings.seed_objective:
        seed_everything(derive_seed(run.seed, iteration, 1))
    ev = _evaluate(run.objective, config)

    row: dict[str, Any] = {
        "iteration": iteration,
        "method": run.method,
        "seed": run.seed,
        "phase": phase,
        **config,
        "objective": ev.value,
    }
    row.update(_constraint_cells(run.constraints, pred, ev.result))
    row["acquisition"] = proposal.acquisition
    row["status"] = "failed" if ev.reason else "ok"
    row["reason"] = ev.reason
    row["eval_time_s"] = ev.eval_time_s
    row["overhead_s"] = overhead
    row["cumulative_time_s"] = state.cumulative_s + (ev.eval_time_s + overhead)
    if ev.reason:
        logger.info(
            "%s seed %d iteration %d failed: %s", run.method, run.seed, iteration, ev.reason
        )
    return row, config_frame


def _constraint_cells(
    constraints: Sequence[Constraint],
    pred: ConstraintPrediction | None,
    result: Mapping[str, Any],
) -> dict[str, Any]:
    """The constraint columns of one history row, feasibility flags included.

    Args:
        constraints: the constraints.
        pred: the models' predictions for the configuration (None without constraints).
        result: what the objective returned (read for measured constraint values).

    Returns:
        ``pred_<c>`` and ``measured_<c>`` for each constraint, then ``feasible_pred``,
        ``prob_feasible``, ``feasible_measured`` and ``feasible`` (see
        :mod:`hwml.optimize.history`).
    """
    cells: dict[str, Any] = {}
    holds_all, measured_any, measured_all = True, False, True
    for c in constraints:
        predicted = float(pred.mean[c.name][0]) if pred is not None else math.nan
        measured = c.read_measured(result)
        cells[f"pred_{c.name}"], cells[f"measured_{c.name}"] = predicted, measured
        if math.isfinite(measured):
            measured_any = True
            measured_all &= measured <= c.budget
            holds_all &= measured <= c.budget
        else:
            holds_all &= predicted <= c.budget
    cells["feasible_pred"] = bool(pred.feasible[0]) if pred is not None else True
    cells["prob_feasible"] = float(pred.prob_feasible[0]) if pred is not None else 1.0
    cells["feasible_measured"] = bool(measured_all) if measured_any else None
    cells["feasible"] = bool(holds_all)
    return cells
