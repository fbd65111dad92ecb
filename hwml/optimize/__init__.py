"""Hardware-aware hyper-parameter optimization (survey section 4).

Ground floor of :mod:`hwml`: imports no other hwml module and knows nothing about neural
networks. The objective is any callable ``config -> result``; hardware budgets come with
predictive models (any callables) that judge a configuration before it is evaluated.

Typical use::

    from hwml.optimize import Constraint, Integer, LogReal, Space, minimize

    space = Space([Integer("filters", 16, 512, structural=True),
                   LogReal("learning_rate", 1e-4, 1e-1)])
    power = Constraint("power_w", budget=120.0, model=my_power_model)
    history = minimize(train_and_validate, space, [power], method="hw-ieci",
                       n_evals=50, n_init=10, seed=0, history_path="runs/hw-ieci-0.csv")

Modules: :mod:`~hwml.optimize.space` (dimensions, unit cube), :mod:`~hwml.optimize.bo`
(GP, EI, HW-IECI), :mod:`~hwml.optimize.baselines` (random search, GA),
:mod:`~hwml.optimize.search` (the loop), :mod:`~hwml.optimize.multiobjective` (ParEGO,
random, NSGA-II for Pareto fronts), :mod:`~hwml.optimize.history` (the table and its
file), :mod:`~hwml.optimize.tabular` (pre-measured objectives), :mod:`~hwml.optimize.analysis`
(curves, Pareto fronts, hypervolume), :mod:`~hwml.optimize.experiments` (many seeds of many
methods, speed-ups), :mod:`~hwml.optimize.seeding`, :mod:`~hwml.optimize.bench`.
"""

from __future__ import annotations

from hwml.optimize.analysis import (
    best_so_far,
    evals_to_reach,
    hypervolume_2d,
    hypervolume_curve,
    mean_band,
    on_grid,
    pareto_front,
    pareto_rows,
)
from hwml.optimize.baselines import GASettings, propose_ga, propose_random
from hwml.optimize.bo import (
    BOSettings,
    GPSurrogate,
    expected_improvement,
    hw_ieci,
    hw_ieci_prob,
    propose_bo,
)
from hwml.optimize.constraints import (
    Constraint,
    ConstraintPrediction,
    InfeasibleBudgetError,
    predict_constraints,
)
from hwml.optimize.experiments import (
    Speedup,
    SpeedupInterval,
    compare_final,
    reach_summary,
    reach_times,
    run_pareto_searches,
    run_searches,
    speedup,
    speedup_interval,
    tolerance_sweep,
)
from hwml.optimize.history import HistoryError, history_columns, read_history
from hwml.optimize.multiobjective import (
    PARETO_METHODS,
    ParetoSettings,
    chebyshev,
    crowding_distance,
    minimize_pareto,
    nondominated_ranks,
    nsga_fitness,
)
from hwml.optimize.search import METHODS, SearchSettings, check_budgets, minimize
from hwml.optimize.seeding import derive_seed, seed_everything
from hwml.optimize.space import Categorical, Dimension, Integer, LogReal, Real, Space, SpecError
from hwml.optimize.tabular import TabularObjective

__all__ = [
    "BOSettings",
    "Categorical",
    "Constraint",
    "ConstraintPrediction",
    "Dimension",
    "GASettings",
    "GPSurrogate",
    "HistoryError",
    "InfeasibleBudgetError",
    "Integer",
    "LogReal",
    "METHODS",
    "PARETO_METHODS",
    "ParetoSettings",
    "Real",
    "SearchSettings",
    "Space",
    "SpecError",
    "Speedup",
    "SpeedupInterval",
    "TabularObjective",
    "best_so_far",
    "chebyshev",
    "check_budgets",
    "compare_final",
    "crowding_distance",
    "derive_seed",
    "evals_to_reach",
    "expected_improvement",
    "history_columns",
    "hw_ieci",
    "hw_ieci_prob",
    "hypervolume_2d",
    "hypervolume_curve",
    "mean_band",
    "minimize",
    "minimize_pareto",
    "nondominated_ranks",
    "nsga_fitness",
    "on_grid",
    "pareto_front",
    "pareto_rows",
    "predict_constraints",
    "propose_bo",
    "propose_ga",
    "propose_random",
    "reach_summary",
    "reach_times",
    "read_history",
    "run_pareto_searches",
    "run_searches",
    "seed_everything",
    "speedup",
    "speedup_interval",
    "tolerance_sweep",
]
