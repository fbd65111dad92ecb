"""Batch-parallel searches: ``q`` evaluations in flight at once.

:func:`minimize_batch` runs the methods of :func:`~hwml.optimize.search.minimize` with
``q`` evaluations under way at a time, on ``q`` workers:

* **asynchronous** (``mode="async"``, the default): as soon as one evaluation finishes,
  the model is refitted on every finished one and a new point is proposed for the free
  worker;
* **synchronous** (``mode="sync"``): ``q`` points are proposed together, evaluated, and
  the next batch waits for the slowest of them.

Points still being evaluated are *pending*. The model-based methods treat them with the
kriging believer (:func:`~hwml.optimize.bo.propose_bo` with ``pending``): the GP, its
hyper-parameters fitted on the finished evaluations only, is conditioned on each pending
point at its posterior mean, which shrinks the expected improvement around it, so the
next proposal goes elsewhere; a pending point is never proposed twice. HW-IECI proposes
only configurations its constraint models accept, one at a time or in a batch.

Where the evaluations run is the caller's choice:

* ``executor``: any :class:`concurrent.futures.Executor` (a Dask client's,
  :meth:`hwml.cluster.Cluster.executor`, or a process pool); the clock is the wall clock.
  The objective and its configurations are sent to the workers (picklable objective). A
  future that raises (a worker that died for good: Dask's ``KilledWorker``) is recorded
  as a failed evaluation with that reason, and the search goes on.
* no executor: the evaluations run in this process and the clock is *simulated*: an
  evaluation takes the ``eval_time_s`` its result reports (a pre-measured training time
  of a :class:`~hwml.optimize.tabular.TabularObjective`), on ``q`` simulated workers.
  This is how many seeds of a parallel search are compared on a table without a GPU.

The history has the columns of :mod:`hwml.optimize.history`, one row per finished
evaluation in the order they finished (``iteration`` counts finished evaluations);
``cumulative_time_s`` is the clock when the evaluation finished: the wall-clock time of
the parallel search (the optimizer's time only where the caller waits for it: with an
executor; the simulated clock counts evaluation times only), not a sum of evaluation
times. Proposal ``k`` (1-based) draws from the generator seeded by ``(seed, k)``, as
iteration ``k`` of :func:`~hwml.optimize.search.minimize` does, so with ``q = 1`` both
make the same choices. A history file resumes a search from its finished evaluations
(those in flight when it stopped are proposed anew).
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from hwml.optimize.constraints import Constraint, InfeasibleBudgetError
from hwml.optimize.history import HistoryWriter, clean_reason, history_columns, history_frame
from hwml.optimize.search import (
    FAILED_START,
    EvaluationError,
    Objective,
    SearchExhaustedWarning,
    SearchSettings,
    _all_failed,
    _candidate_pool,
    _checked_arguments,
    _constraint_cells,
    _evaluate,
    _Evaluation,
    _exhausted_message,
    _feasibility,
    _prior_history,
    _propose,
    _replay_fits,
    _Run,
    _SearchState,
)
from hwml.optimize.seeding import derive_seed, seed_everything
from hwml.optimize.space import Space

__all__ = ["BATCH_METHODS", "BATCH_MODES", "evaluate_config", "minimize_batch"]

BATCH_METHODS = ("hw-ieci", "hw-ieci-prob", "ei", "random", "random-filtered")
"""Methods that propose batches (the genetic algorithm breeds whole generations instead)."""

BATCH_MODES = ("async", "sync")


def evaluate_config(objective: Objective, config: dict[str, Any], seed: int | None) -> _Evaluation:
    """Evaluate one configuration where the task runs (a worker, or this process).

    Args:
        objective: the objective.
        config: the configuration.
        seed: seed ``random``/numpy/torch with this first (None: leave them).

    Returns:
        The evaluation: value (NaN if it failed), result mapping, reason, time (s).
    """
    if seed is not None:
        seed_everything(seed)
    return _evaluate(objective, config)


@dataclass
class _Flight:
    """One proposal in flight."""

    number: int  # proposal number, 1-based
    phase: str
    point: np.ndarray
    config: dict[str, Any]
    acquisition: float
    pred: Any
    overhead_s: float
    started_s: float
    future: Any = None
    evaluation: _Evaluation | None = None
    finished_s: float = math.nan


class _Simulated:
    """``q`` simulated workers: each evaluation takes the time its result reports."""

    def __init__(self, run: _Run, start_s: float) -> None:
        self.run = run
        self.now = start_s
        self._heap: list[tuple[float, int, _Flight]] = []

    def start(self, flight: _Flight) -> None:
        seed = (
            derive_seed(self.run.seed, flight.number, 1)
            if self.run.settings.seed_objective
            else None
        )
        ev = evaluate_config(self.run.objective, flight.config, seed)
        flight.evaluation = ev
        flight.finished_s = flight.started_s + ev.eval_time_s
        heapq.heappush(self._heap, (flight.finished_s, flight.number, flight))

    def wait(self) -> _Flight:
        finished, _, flight = heapq.heappop(self._heap)
        self.now = max(self.now, finished)
        return flight

    def clock(self) -> float:
        return self.now


class _Executed:
    """Evaluations on an executor's workers; the clock is the wall clock."""

    def __init__(self, run: _Run, executor: cf.Executor, start_s: float) -> None:
        self.run = run
        self.executor = executor
        self._t0 = time.perf_counter() - start_s
        self._flying: dict[cf.Future, _Flight] = {}

    def clock(self) -> float:
        return time.perf_counter() - self._t0

    def start(self, flight: _Flight) -> None:
        seed = (
            derive_seed(self.run.seed, flight.number, 1)
            if self.run.settings.seed_objective
            else None
        )
        flight.future = self.executor.submit(
            evaluate_config, self.run.objective, flight.config, seed
        )
        self._flying[flight.future] = flight

    def wait(self) -> _Flight:
        done, _ = cf.wait(list(self._flying), return_when=cf.FIRST_COMPLETED)
        flight = min((self._flying[f] for f in done), key=lambda f: f.number)
        del self._flying[flight.future]
        flight.finished_s = self.clock()
        try:
            flight.evaluation = flight.future.result()
        except Exception as err:  # noqa: BLE001 - a lost worker: a failed evaluation
            text = str(err).splitlines()[0][:300] if str(err) else ""
            reason = clean_reason(f"{type(err).__name__}: {text}")
            flight.evaluation = _Evaluation(
                math.nan, {}, reason, flight.finished_s - flight.started_s
            )
        return flight


def _row(run: _Run, flight: _Flight, iteration: int, clock_s: float) -> dict[str, Any]:
    """The history row of a finished evaluation (the columns of ``_step``'s rows)."""
    ev = flight.evaluation
    assert ev is not None
    row: dict[str, Any] = {
        "iteration": iteration,
        "method": run.method,
        "seed": run.seed,
        "phase": flight.phase,
        **flight.config,
        "objective": ev.value,
    }
    row.update(_constraint_cells(run.constraints, flight.pred, ev.result))
    row["acquisition"] = flight.acquisition
    row["status"] = "failed" if ev.reason else "ok"
    row["reason"] = ev.reason
    row["eval_time_s"] = ev.eval_time_s
    row["overhead_s"] = flight.overhead_s
    row["cumulative_time_s"] = clock_s
    return row


def _propose_one(
    run: _Run, state: _SearchState, number: int, flying: Sequence[_Flight], clock_s: float
) -> _Flight | None:
    """Proposal ``number`` given the finished evaluations and those in flight."""
    start = time.perf_counter()
    rng = np.random.default_rng(derive_seed(run.seed, number))
    phase = "init" if number <= run.n_init else "search"
    pending = np.array([f.point for f in flying]) if flying else None
    proposal = _propose(run, phase, state, rng, pending)
    if proposal is None:
        return None
    config = run.space.to_dicts(run.space.decode(proposal.point[None, :]))[0]
    pred = run.feasibility(proposal.point[None, :]) if run.feasibility is not None else None
    overhead = time.perf_counter() - start
    return _Flight(
        number, phase, proposal.point, config, proposal.acquisition, pred, overhead, clock_s
    )


def _batch_loop(
    run: _Run,
    state: _SearchState,
    n_evals: int,
    q: int,
    mode: str,
    backend: _Simulated | _Executed,
    writer: HistoryWriter | None,
    progress: bool | None,
) -> bool:
    """Propose, evaluate and record until ``n_evals`` evaluations finished.

    Returns:
        True when proposing stopped because no new configuration was left.
    """
    bar = tqdm(
        total=n_evals,
        initial=len(state.rows),
        desc=f"{run.method} q={q} seed {run.seed}",
        leave=False,
        disable=None if progress is None else not progress,
    )
    flying: list[_Flight] = []
    number = len(state.rows)  # proposals made (a resumed search re-proposes what was in flight)
    exhausted = False
    try:
        while True:
            if mode == "async" or not flying:
                while not exhausted and len(flying) < q and number < n_evals:
                    flight = _propose_one(run, state, number + 1, flying, backend.clock())
                    if flight is None:
                        exhausted = True
                        break
                    number += 1
                    if isinstance(backend, _Executed):
                        flight.started_s = backend.clock()
                    backend.start(flight)
                    flying.append(flight)
            if not flying:
                break
            flight = backend.wait()
            flying.remove(flight)
            row = _row(run, flight, len(state.rows) + 1, backend.clock())
            if writer is not None:
                writer.append(row)
            state.add(row, flight.point[None, :])
            bar.update(1)
            if len(state.rows) >= max(FAILED_START, run.n_init) and _all_failed(state.rows):
                exhausted = False
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        for f in flying:  # stopped early: do not leave work behind
            if f.future is not None:
                f.future.cancel()
    return exhausted


def minimize_batch(
    objective: Objective,
    space: Space,
    constraints: Sequence[Constraint] = (),
    *,
    method: str = "hw-ieci",
    q: int = 2,
    mode: str = "async",
    n_evals: int = 50,
    n_init: int = 10,
    seed: int = 0,
    executor: cf.Executor | None = None,
    history_path: str | os.PathLike[str] | None = None,
    candidates: pd.DataFrame | None = None,
    settings: SearchSettings | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Minimize an objective with ``q`` evaluations in flight at a time.

    Args:
        objective: ``config -> number | mapping`` (see :mod:`hwml.optimize.search`);
            picklable when ``executor`` runs it in other processes.
        space: the search space.
        constraints: budgets with their predictive models.
        method: one of :data:`BATCH_METHODS`.
        q: evaluations in flight at once (the workers of the search).
        mode: ``"async"`` (a new proposal whenever an evaluation finishes) or
            ``"sync"`` (batches of ``q``, each waiting for its slowest evaluation).
        n_evals: finished evaluations of the run (those of a resumed history included).
        n_init: initial random evaluations (filtered by the constraint models for the
            hardware-aware methods).
        seed: the run's seed.
        executor: where evaluations run (wall clock); None: in this process, on a
            simulated clock of ``q`` workers (each evaluation takes the ``eval_time_s``
            its result reports, else its wall-clock time).
        history_path: ``.csv`` or ``.jsonl`` file, a row appended as each evaluation
            finishes; an earlier run's file with the same method and seed is resumed.
        candidates: finite set of allowed configurations (default: the objective's
            ``candidates``, as for :func:`~hwml.optimize.search.minimize`).
        settings: further knobs.
        progress: show a tqdm bar; None shows it only on a terminal.

    Returns:
        The history, one row per finished evaluation in the order they finished.

    Raises:
        ValueError: an unknown method or mode, or ``q < 1``.
        InfeasibleBudgetError: the constraint models reject every configuration.
        EvaluationError: every evaluation failed.
    """
    if method not in BATCH_METHODS:
        raise ValueError(
            f"method must be one of {BATCH_METHODS} for a batch search, got {method!r}"
        )
    if mode not in BATCH_MODES:
        raise ValueError(f"mode must be one of {BATCH_MODES}, got {mode!r}")
    if isinstance(q, bool) or not isinstance(q, int | np.integer) or q < 1:
        raise ValueError(f"q must be an int >= 1, got {q!r}")
    seed, n_evals, n_init, constraints = _checked_arguments(
        objective, space, constraints, method, seed, n_evals, n_init
    )
    settings = settings or SearchSettings()
    names = [c.name for c in constraints]
    pool = _candidate_pool(objective, space, candidates)
    feasibility, region = _feasibility(space, constraints, seed, settings, pool)
    prior = _prior_history(history_path, space, names, method, seed)
    state = _SearchState.from_history(prior, space)
    if len(state.rows) >= n_evals:
        return history_frame(state.rows[:n_evals], space, names)
    run = _Run(
        objective, space, constraints, method, seed, n_init, settings, pool, feasibility, region
    )
    _replay_fits(run, state)
    backend: _Simulated | _Executed = (
        _Simulated(run, state.cumulative_s)
        if executor is None
        else _Executed(run, executor, state.cumulative_s)
    )
    writer = (
        HistoryWriter(history_path, history_columns(space, names))
        if history_path is not None
        else None
    )
    stopped = _batch_loop(run, state, n_evals, int(q), mode, backend, writer, progress)
    history = history_frame(state.rows, space, names)
    if not state.rows:
        raise InfeasibleBudgetError(
            f"{method} seed {seed}: no configuration to evaluate: the constraint models "
            "accept none that the search could find (or the candidate pool is empty)"
        )
    if _all_failed(state.rows):
        first = state.rows[0]
        raise EvaluationError(
            f"{method} q={q} seed {seed}: all {len(state.rows)} evaluations failed; the first "
            f"with: {first.get('reason') or 'no reason'}",
            history,
        )
    if stopped and len(state.rows) < n_evals:
        message = _exhausted_message(run, state, n_evals)
        history.attrs["exhausted"] = message
        warnings.warn(message, SearchExhaustedWarning, stacklevel=2)
    return history
