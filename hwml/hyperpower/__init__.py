"""HyperPower (survey section 4.3) in one place: hardware-constrained search of a CNN family.

* :mod:`~hwml.hyperpower.models` — the a-priori constraints: linear power and memory models
  of the structural hyper-parameters ``z``, budgets (values or quantiles of the measured
  structures), and :class:`HardwareBudgets`, which hands both to the optimizer;
* :mod:`~hwml.hyperpower.objective` — the live objective: train a configuration
  (:mod:`hwml.tasks.cnn`), then measure its inference power and memory;
* :mod:`~hwml.hyperpower.table` — the tabular benchmark: its two tables, the seeded
  configurations, reading a folder;
* :mod:`~hwml.hyperpower.runner` — building a benchmark folder on a GPU (measure the
  structures, train the configurations; resumable, sharded);
* :mod:`~hwml.hyperpower.problem` — a folder as the constrained search problem, and the
  sweep over budget levels;
* :mod:`~hwml.hyperpower.live` — live searches read back;
* :mod:`~hwml.hyperpower.mobo_bench` — multi-objective search of a benchmark table (error,
  energy, runtime): HW-EHVI with the linear models against ParEGO, NSGA-II and random
  search, scored by hypervolume (``python -m hwml.hyperpower.mobo_bench``);
* :mod:`~hwml.hyperpower.cosearch` — searching the model and its deployment (precision,
  execution mode) together against one after the other, at equal numbers of trainings,
  under an energy budget (``python -m hwml.hyperpower.cosearch``).

The linear estimator itself is :class:`hwml.predict.LinearHardwareModel` (the predictors
room holds every cost model); the search is :func:`hwml.optimize.minimize`.
"""

from hwml.hyperpower.live import live_best_so_far, load_live_runs
from hwml.hyperpower.models import (
    FEATURE_SETS,
    HardwareBudgets,
    StructuralModel,
    fit_hardware_models,
    hardware_budgets,
    hardware_constraints,
    quantile_budgets,
)
from hwml.hyperpower.objective import CNNObjective, measure_inference
from hwml.hyperpower.problem import (
    HyperPowerProblem,
    budget_level,
    budget_sweep,
    hyperpower_problem,
)
from hwml.hyperpower.runner import measure_structures, train_configs
from hwml.hyperpower.table import (
    CONFIG_COLUMNS,
    STRUCTURE_COLUMNS,
    benchmark_objective,
    benchmark_space,
    column_docs,
    load_benchmark,
    sample_configs,
    sample_structures,
    summarize_benchmark,
)

__all__ = [
    "CNNObjective",
    "CONFIG_COLUMNS",
    "FEATURE_SETS",
    "HardwareBudgets",
    "HyperPowerProblem",
    "STRUCTURE_COLUMNS",
    "StructuralModel",
    "benchmark_objective",
    "benchmark_space",
    "budget_level",
    "budget_sweep",
    "column_docs",
    "fit_hardware_models",
    "hardware_budgets",
    "hardware_constraints",
    "hyperpower_problem",
    "live_best_so_far",
    "load_benchmark",
    "load_live_runs",
    "measure_inference",
    "measure_structures",
    "quantile_budgets",
    "sample_configs",
    "sample_structures",
    "summarize_benchmark",
    "train_configs",
]
