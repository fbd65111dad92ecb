"""Hardware-aware hyper-parameter optimization (survey section 4).

Ground floor of :mod:`hwml`: imports no other hwml module and knows nothing about neural
networks. The objective is any callable ``config -> result``; hardware budgets come with
predictive models (any callables) that judge a configuration before it is evaluated.

Typical use::

    from hwml.optimize import Constraint, Integer, LogReal, Space, find_incumbent, minimize

    space = Space([Integer("filters", 16, 512, structural=True),
                   LogReal("learning_rate", 1e-4, 1e-1)])
    power = Constraint("power_w", budget=120.0, model=my_power_model)
    history = minimize(train_and_validate, space, [power], method="hw-ieci",
                       n_evals=50, n_init=10, seed=0, history_path="runs/hw-ieci-0.csv")
    best = find_incumbent(history, space)  # lowest GP posterior mean: noise-aware

Stepping or timing the optimizer yourself (what :func:`minimize` does each iteration)::

    import numpy as np
    from hwml.optimize import GPWarmStart, Observations, constraint_filter, propose_bo

    feasibility = constraint_filter(space, [power])      # unit-cube points -> predictions
    warm = GPWarmStart()                                  # GP hyper-parameters, step to step
    obs = Observations(points, values, feasibility(points).feasible)  # (n, d), (n,), (n,)
    proposal = propose_bo(space, obs, np.random.default_rng(0), "hw-ieci", feasibility,
                          warm=warm)                      # a Proposal, or None
    config = space.to_dicts(space.decode(proposal.point[None, :]))[0]

The pieces of a step: :class:`GPSurrogate` (the GPy GP; :func:`fit_surrogate` fits it
fully or warm-started, as :class:`GPWarmStart` decides), the acquisitions of
:data:`BO_KINDS` (:func:`expected_improvement`, times :func:`hw_ieci`'s indicators or
:func:`hw_ieci_prob`'s probabilities; functions, not classes), the candidate sets
(:func:`random_candidates`, :func:`local_candidates`, :func:`region_candidates`), and
:func:`find_feasible` (where the constraint models accept configurations).
:func:`proposal_overhead` and :func:`step_overhead` time a proposal.

Modules: :mod:`~hwml.optimize.space` (dimensions, unit cube), :mod:`~hwml.optimize.bo`
(GP, EI, HW-IECI, warm start), :mod:`~hwml.optimize.candidates` (observations, candidate
sets), :mod:`~hwml.optimize.feasible` (searching the constraint models),
:mod:`~hwml.optimize.baselines` (random search, GA, aging evolution), :mod:`~hwml.optimize.search` (the
loop), :mod:`~hwml.optimize.batch` (``q`` evaluations in flight: kriging believer,
asynchronous or synchronous, on an executor or a simulated clock),
:mod:`~hwml.optimize.incumbent` (the reported best: posterior or observed),
:mod:`~hwml.optimize.multiobjective` (ParEGO, HW-EHVI, random, NSGA-II for Pareto
fronts),
:mod:`~hwml.optimize.history` (the table and its file), :mod:`~hwml.optimize.tabular`
(pre-measured objectives), :mod:`~hwml.optimize.analysis` (curves, Pareto fronts,
hypervolume), :mod:`~hwml.optimize.experiments` (many seeds of many methods, resumable;
speed-ups), :mod:`~hwml.optimize.seeding`, :mod:`~hwml.optimize.bench` (overhead and the
warm start's benchmark).
"""

from __future__ import annotations

from hwml.optimize.baselines import (
    AgingSettings,
    GASettings,
    propose_aging,
    propose_ga,
    propose_random,
)
from hwml.optimize.batch import BATCH_METHODS, BATCH_MODES, minimize_batch
from hwml.optimize.bo import (
    BO_KINDS,
    BOSettings,
    GPSurrogate,
    GPWarmStart,
    Proposal,
    expected_improvement,
    fit_surrogate,
    hw_ieci,
    hw_ieci_prob,
    propose_bo,
    surrogate_values,
)
from hwml.optimize.candidates import (
    FeasibilityFn,
    Observations,
    constraint_filter,
    local_candidates,
    random_candidates,
    region_candidates,
)
from hwml.optimize.constraints import (
    Constraint,
    ConstraintModelError,
    ConstraintPrediction,
    InfeasibleBudgetError,
    predict_constraints,
)
from hwml.optimize.feasible import FeasibilitySettings, FeasibleRegion, find_feasible
from hwml.optimize.history import HistoryError, history_columns, read_history
from hwml.optimize.search import (
    METHODS,
    EvaluationError,
    SearchExhaustedWarning,
    SearchSettings,
    check_budgets,
    minimize,
)
from hwml.optimize.seeding import derive_seed, seed_everything
from hwml.optimize.space import Categorical, Dimension, Integer, LogReal, Real, Space, SpecError
from hwml.optimize.tabular import TabularObjective

_LAZY: dict[str, str] = {
    "best_so_far": "analysis",
    "evals_to_reach": "analysis",
    "hypervolume_2d": "analysis",
    "hypervolume_curve": "analysis",
    "mean_band": "analysis",
    "on_grid": "analysis",
    "pareto_front": "analysis",
    "pareto_rows": "analysis",
    "Speedup": "experiments",
    "SpeedupInterval": "experiments",
    "batch_label": "experiments",
    "batch_summary": "experiments",
    "compare_final": "experiments",
    "history_file": "experiments",
    "reach_summary": "experiments",
    "reach_times": "experiments",
    "run_batch_searches": "experiments",
    "run_pareto_searches": "experiments",
    "run_searches": "experiments",
    "speedup": "experiments",
    "speedup_interval": "experiments",
    "tolerance_sweep": "experiments",
    "INCUMBENT_KINDS": "incumbent",
    "Incumbent": "incumbent",
    "find_incumbent": "incumbent",
    "incumbent_curve": "incumbent",
    "PARETO_METHODS": "multiobjective",
    "ParetoSettings": "multiobjective",
    "chebyshev": "multiobjective",
    "crowding_distance": "multiobjective",
    "expected_hypervolume_improvement": "multiobjective",
    "minimize_pareto": "multiobjective",
    "nondominated_ranks": "multiobjective",
    "nsga_fitness": "multiobjective",
}
"""Names imported from their module on first use: the modules that need pymoo (Pareto
fronts, hypervolume) and those built on them, so that importing the package (e.g. for
:class:`Space` on a GPU machine without pymoo) does not need it."""

_BENCH = ("proposal_overhead", "step_overhead")


def __getattr__(name: str) -> object:
    """Names imported on first use: the timing functions of :mod:`hwml.optimize.bench`
    (importing the module with the package would make ``python -m hwml.optimize.bench``
    warn) and the names of :data:`_LAZY`."""
    if name in _BENCH:
        from hwml.optimize import bench

        return getattr(bench, name)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"hwml.optimize.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgingSettings",
    "BATCH_METHODS",
    "BATCH_MODES",
    "BOSettings",
    "BO_KINDS",
    "Categorical",
    "Constraint",
    "ConstraintModelError",
    "ConstraintPrediction",
    "Dimension",
    "EvaluationError",
    "FeasibilityFn",
    "FeasibilitySettings",
    "FeasibleRegion",
    "GASettings",
    "GPSurrogate",
    "GPWarmStart",
    "HistoryError",
    "INCUMBENT_KINDS",
    "Incumbent",
    "InfeasibleBudgetError",
    "Integer",
    "LogReal",
    "METHODS",
    "Observations",
    "PARETO_METHODS",
    "ParetoSettings",
    "Proposal",
    "Real",
    "SearchExhaustedWarning",
    "SearchSettings",
    "Space",
    "SpecError",
    "Speedup",
    "SpeedupInterval",
    "TabularObjective",
    "batch_label",
    "batch_summary",
    "best_so_far",
    "chebyshev",
    "check_budgets",
    "compare_final",
    "constraint_filter",
    "crowding_distance",
    "derive_seed",
    "evals_to_reach",
    "expected_hypervolume_improvement",
    "expected_improvement",
    "find_feasible",
    "find_incumbent",
    "fit_surrogate",
    "history_columns",
    "history_file",
    "hw_ieci",
    "hw_ieci_prob",
    "hypervolume_2d",
    "hypervolume_curve",
    "incumbent_curve",
    "local_candidates",
    "mean_band",
    "minimize",
    "minimize_batch",
    "minimize_pareto",
    "nondominated_ranks",
    "nsga_fitness",
    "on_grid",
    "pareto_front",
    "pareto_rows",
    "predict_constraints",
    "proposal_overhead",
    "propose_bo",
    "propose_aging",
    "propose_ga",
    "propose_random",
    "random_candidates",
    "reach_summary",
    "reach_times",
    "read_history",
    "run_batch_searches",
    "region_candidates",
    "run_pareto_searches",
    "run_searches",
    "seed_everything",
    "speedup",
    "speedup_interval",
    "step_overhead",
    "surrogate_values",
    "tolerance_sweep",
]
