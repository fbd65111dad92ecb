"""Benchmark of the optimizer's overhead per iteration (GP fit + acquisition).

Run ``python -m hwml.optimize.bench`` (``--help`` for options). The overhead is what
HW-IECI spends choosing the next configuration: fitting the GP with its restarts on
``n_obs`` observations, drawing the candidate set, predicting, and scoring EI times the
constraint indicators. It should stay far below one training run.

``python -m hwml.optimize.bench --warm-start`` compares GP fitting with restarts on every
proposal (``BOSettings(refit_every=1)``) with the warm start of
:class:`~hwml.optimize.bo.GPWarmStart` (the default settings): seconds per step of a
search around ``n_obs`` observations (:func:`step_overhead`), and the search quality over
seeds on a constrained Hartmann-6 problem whose optimum is known (:func:`search_quality`).
Timing is machine- and load-dependent; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hwml.optimize.analysis import best_so_far
from hwml.optimize.bo import BOSettings, GPSurrogate, GPWarmStart, propose_bo
from hwml.optimize.candidates import Observations
from hwml.optimize.constraints import Constraint, ConstraintPrediction, predict_constraints
from hwml.optimize.experiments import reach_summary, run_searches, speedup_interval
from hwml.optimize.search import SearchSettings
from hwml.optimize.space import Integer, LogReal, Real, Space

__all__ = [
    "HARTMANN6_ARGMIN",
    "benchmark_overhead",
    "hartmann6",
    "main",
    "proposal_overhead",
    "search_quality",
    "step_overhead",
    "warm_start_benchmark",
]


def _bench_space() -> Space:
    return Space(
        [
            Integer("conv1_filters", 16, 512, structural=True),
            Integer("conv2_filters", 16, 512, structural=True),
            Integer("dense_units", 64, 4096, structural=True),
            LogReal("learning_rate", 1e-4, 1e-1),
            LogReal("weight_decay", 1e-6, 1e-2),
            Real("momentum", 0.5, 0.99),
        ]
    )


def _synthetic_error(u: np.ndarray) -> np.ndarray:
    """A smooth, multi-modal stand-in for a validation error on unit-cube inputs."""
    return 0.2 + 0.1 * np.sum(np.sin(5.0 * u) * (u - 0.4) ** 2, axis=1) + 0.05 * u[:, 3] ** 2


def _linear(weights: dict[str, float], intercept: float):
    def model(z: pd.DataFrame) -> np.ndarray:
        return intercept + sum(w * z[name].to_numpy(dtype=float) for name, w in weights.items())

    return model


def proposal_overhead(
    space: Space,
    configs: pd.DataFrame,
    values: Sequence[float] | np.ndarray,
    constraints: Sequence[Constraint] = (),
    *,
    kind: str = "hw-ieci",
    candidates: pd.DataFrame | None = None,
    settings: BOSettings | None = None,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Time the optimizer's choice of the next point after given observations.

    Each repetition times a GP fit alone (with the settings' restarts) and then a whole
    proposal: GP fit, candidate set, prediction, acquisition (times the constraint
    models' verdicts for the HW-IECI kinds). Feasibility of the observations is taken
    from the constraint models. GPy is imported before the timing.

    Args:
        space: the search space.
        configs: the observed configurations, one column per dimension, ``n`` rows.
        values: their objective values, shape ``(n,)`` (NaN for failed evaluations).
        constraints: the a-priori constraints.
        kind: ``"hw-ieci"``, ``"hw-ieci-prob"`` or ``"ei"``.
        candidates: optional finite pool of allowed configurations.
        settings: proposer settings (default :class:`~hwml.optimize.bo.BOSettings`).
        repeats: timed repetitions (each with its own generator).
        seed: seed of the generators.

    Returns:
        ``n_obs``, ``median_s`` and ``max_s`` of a whole proposal, ``gp_fit_median_s`` of
        the GP fit alone (seconds), and ``n_candidates`` scored per proposal.
    """
    settings = settings or BOSettings()
    constraints = tuple(constraints)

    def feasibility(points: np.ndarray) -> ConstraintPrediction:
        return predict_constraints(constraints, space.structural(space.decode(points)))

    points = space.encode(configs)
    y = np.asarray(values, dtype=float).reshape(-1)
    if len(y) != len(points):
        raise ValueError(f"{len(points)} configurations but {len(y)} values")
    ok = np.isfinite(y)
    if not ok.any():
        raise ValueError("no finite value to fit the GP to")
    feasible = feasibility(points).feasible if constraints else np.ones(len(y), dtype=bool)
    obs = Observations(points, y, feasible)
    pool = space.encode(candidates) if candidates is not None else None
    fill = np.where(ok, y, np.max(y[ok]))

    GPSurrogate(1, 5).fit(points[:5], fill[:5], 0)  # import GPy outside the timing
    totals, fits, n_cands = [], [], 0
    for r in range(repeats):
        start = time.perf_counter()
        GPSurrogate(settings.n_restarts, settings.max_iters).fit(
            points, fill, np.random.default_rng([seed, r])
        )
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        proposal = propose_bo(
            space,
            obs,
            np.random.default_rng([seed, r]),
            kind,
            feasibility if constraints else None,
            pool,
            settings,
        )
        totals.append(time.perf_counter() - start)
        n_cands = proposal.n_candidates if proposal is not None else 0
    return {
        "n_obs": float(len(y)),
        "median_s": float(np.median(totals)),
        "max_s": float(np.max(totals)),
        "gp_fit_median_s": float(np.median(fits)),
        "n_candidates": float(n_cands),
    }


def _bench_constraints() -> list[Constraint]:
    """Linear power and memory models of the bench space's structure (about half feasible)."""
    return [
        Constraint(
            "power_w",
            160.0,
            _linear({"conv1_filters": 0.1, "conv2_filters": 0.15, "dense_units": 0.02}, 60.0),
        ),
        Constraint(
            "mem_bytes",
            6e8,
            _linear({"conv1_filters": 4e5, "conv2_filters": 6e5, "dense_units": 1.2e5}, 1e8),
        ),
    ]


def benchmark_overhead(
    n_obs: int = 100,
    repeats: int = 5,
    seed: int = 0,
    settings: BOSettings | None = None,
) -> dict[str, float]:
    """Time one HW-IECI proposal on ``n_obs`` synthetic observations.

    The space has six dimensions (three structural integers, two log-scaled reals, one
    real) and two linear constraint models, power and memory, whose budgets exclude
    roughly half of the space; the candidates are drawn from the continuous space.

    Args:
        n_obs: number of observations the GP is fitted to.
        repeats: timed repetitions (each with its own generator).
        seed: seed of the synthetic data.
        settings: proposer settings (default :class:`~hwml.optimize.bo.BOSettings`).

    Returns:
        ``median_s`` and ``max_s`` of a whole proposal, ``gp_fit_median_s`` of the GP fit
        alone (seconds), and ``n_candidates`` scored per proposal.
    """
    space, constraints = _bench_space(), _bench_constraints()
    rng = np.random.default_rng(seed)
    points = space.sample_unit(n_obs, rng)
    values = _synthetic_error(points) + rng.normal(scale=0.005, size=n_obs)
    return proposal_overhead(
        space,
        space.decode(points),
        values,
        constraints,
        kind="hw-ieci",
        settings=settings,
        repeats=repeats,
        seed=seed,
    )


def step_overhead(
    n_obs: int = 100,
    settings: BOSettings | None = None,
    *,
    window: int = 10,
    n_init: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Seconds per HW-IECI step of a search, around ``n_obs`` observations.

    Steps the optimizer the way :func:`~hwml.optimize.search.minimize` does (one
    :class:`~hwml.optimize.bo.GPWarmStart` carried through the search), on the bench
    space of :func:`benchmark_overhead` with its synthetic error and two linear
    constraints: ``n_init`` feasible random points, then proposals until the GP holds
    ``n_obs + window - 1`` observations. The steps whose GP holds ``n_obs - window`` to
    ``n_obs + window - 1`` observations are timed, so that a full refit every ``k`` steps
    (``k <= 2 * window``) is counted in proportion.

    Args:
        n_obs: observations around which steps are timed.
        settings: proposer settings (default :class:`~hwml.optimize.bo.BOSettings`).
        window: half-width of the timed range, in observations.
        n_init: random observations before the first proposal.
        seed: seed of the initial points and the proposals.

    Returns:
        ``n_obs``, ``median_s``, ``mean_s`` and ``max_s`` of a step (s), ``steps`` timed,
        and the GP fits of the timed steps by kind: ``full``, ``warm`` and ``refit``.
    """
    settings = settings or BOSettings()
    if not 0 < window <= n_obs - n_init:
        raise ValueError(f"window must be in (0, n_obs - n_init], got {window}")
    space, constraints = _bench_space(), _bench_constraints()

    def feasibility(points: np.ndarray) -> ConstraintPrediction:
        return predict_constraints(constraints, space.structural(space.decode(points)))

    rng = np.random.default_rng([seed, 0])
    start = space.sample_unit(50 * n_init, rng)
    points = start[feasibility(start).feasible][:n_init]
    values = _synthetic_error(points)
    GPSurrogate(1, 5).fit(points[:5], values[:5], 0)  # import GPy outside the timing
    warm, times, kinds = GPWarmStart(), [], []
    while len(values) < n_obs + window:
        obs = Observations(points, values, np.ones(len(values), dtype=bool))
        step_rng = np.random.default_rng([seed, len(values)])
        tick = time.perf_counter()
        proposal = propose_bo(
            space, obs, step_rng, "hw-ieci", feasibility, None, settings, warm=warm
        )
        elapsed = time.perf_counter() - tick
        if proposal is None:
            raise RuntimeError(f"no proposal after {len(values)} observations")
        if len(values) >= n_obs - window:
            times.append(elapsed)
            kinds.append(warm.fits[-1])
        points = np.vstack([points, proposal.point])
        values = np.append(values, _synthetic_error(proposal.point[None, :]))
    return {
        "n_obs": float(n_obs),
        "median_s": float(np.median(times)),
        "mean_s": float(np.mean(times)),
        "max_s": float(np.max(times)),
        "steps": float(len(times)),
        **{kind: float(kinds.count(kind)) for kind in ("full", "warm", "refit")},
    }


#: Arg-min of the Hartmann-6 function on the unit cube (Dixon and Szego's test problem).
HARTMANN6_ARGMIN = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])

_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(x: np.ndarray) -> np.ndarray:
    """The Hartmann-6 function, ``-sum_i alpha_i exp(-sum_j A_ij (x_j - P_ij)^2)``.

    Args:
        x: points of the unit cube, shape ``(n, 6)``.

    Returns:
        Shape ``(n,)``; the minimum, at :data:`HARTMANN6_ARGMIN`, is about -3.32237.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    inner = np.sum(_H6_A[None, :, :] * (x[:, None, :] - _H6_P[None, :, :]) ** 2, axis=2)
    return -np.sum(_H6_ALPHA * np.exp(-inner), axis=1)


def _hartmann_problem() -> tuple[Space, list[Constraint], Any]:
    """Hartmann-6 with a 'power' budget on its first three (structural) coordinates.

    The budget ``100 + 100 (x1 + x2 + x3) <= 200`` W leaves a sixth of the cube feasible
    and keeps the global minimum feasible (its three coordinates sum to 0.83).
    """
    names = [f"x{i}" for i in range(1, 7)]
    space = Space([Real(n, 0.0, 1.0, structural=i < 3) for i, n in enumerate(names)])
    power = Constraint("power_w", 200.0, lambda z: 100.0 + 100.0 * z.sum(axis=1).to_numpy())

    def objective(config: dict[str, Any]) -> float:
        return float(hartmann6(np.array([[config[n] for n in names]]))[0])

    return space, [power], objective


def search_quality(
    settings: dict[str, BOSettings],
    seeds: Sequence[int] = range(10),
    *,
    n_evals: int = 60,
    n_init: int = 10,
    tolerances: Sequence[float] = (0.05, 0.3),
    n_jobs: int = 1,
) -> pd.DataFrame:
    """HW-IECI's search quality under several proposer settings, over seeds.

    Each setting runs :func:`~hwml.optimize.search.minimize` (``hw-ieci``) once per seed
    on constrained Hartmann-6 (:func:`hartmann6` under a budget on its first three
    coordinates that keeps the global minimum feasible); equal seeds start from equal
    random points. The reach statistics are those of
    :func:`~hwml.optimize.experiments.reach_summary` on the observed values (the objective
    has no noise), and each setting after the first is compared with the first by
    :func:`~hwml.optimize.experiments.speedup_interval` (seeds resampled in pairs).

    Args:
        settings: ``{label: BOSettings}``, the reference first, e.g.
            ``{"restarts every step": BOSettings(refit_every=1), "warm start":
            BOSettings()}``.
        seeds: search seeds.
        n_evals: evaluations per search.
        n_init: random evaluations that start each search.
        tolerances: widths of the near-optimal region above the optimum.
        n_jobs: worker processes.

    Returns:
        One row per setting and tolerance: ``setting``, ``tolerance``, ``threshold``,
        ``runs``, ``reached`` (fraction of runs), ``median_evals`` (``inf`` if censored),
        ``median_evals_bound``, ``mean_evals_reached``, ``speedup`` (the reference's
        median evaluations over this setting's: above 1 is faster) with
        ``speedup_lower`` and ``speedup_upper`` (95% bootstrap interval; NaN for the
        reference), ``final_gap_mean`` and ``final_gap_max`` (best value after
        ``n_evals`` minus the optimum), and ``overhead_median_s`` (median optimizer time
        of a search step, s).
    """
    space, constraints, objective = _hartmann_problem()
    optimum = float(hartmann6(HARTMANN6_ARGMIN)[0])
    parts, overhead = [], {}
    for label, bo in settings.items():
        runs = run_searches(
            objective,
            space,
            constraints,
            methods=["hw-ieci"],
            seeds=list(seeds),
            n_evals=n_evals,
            n_init=n_init,
            settings=SearchSettings(bo=bo),
            n_jobs=n_jobs,
        )
        overhead[label] = float(runs.loc[runs["phase"] == "search", "overhead_s"].median())
        parts.append(best_so_far(runs).assign(method=label))
    curves = pd.concat(parts, ignore_index=True)
    final = curves.groupby(["method", "seed"], sort=False)["best_objective"].last() - optimum
    reference = next(iter(settings))
    rows = []
    for tol in tolerances:
        summary = reach_summary(curves, optimum + tol)
        for label in settings:
            ci = (
                speedup_interval(curves, optimum + tol, label, reference)
                if label != reference
                else None
            )
            rows.append(
                {
                    "setting": label,
                    "tolerance": float(tol),
                    "threshold": optimum + tol,
                    **{
                        k: float(summary.loc[label, k])
                        for k in (
                            "runs",
                            "reached",
                            "median_evals",
                            "median_evals_bound",
                            "mean_evals_reached",
                        )
                    },
                    "speedup": ci.ratio if ci else math.nan,
                    "speedup_lower": ci.lower if ci else math.nan,
                    "speedup_upper": ci.upper if ci else math.nan,
                    "final_gap_mean": float(final[label].mean()),
                    "final_gap_max": float(final[label].max()),
                    "overhead_median_s": overhead[label],
                }
            )
    return pd.DataFrame(rows)


def warm_start_benchmark(
    n_obs: int = 100,
    seeds: Sequence[int] = range(10),
    *,
    n_evals: int = 60,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Restarts on every step against the warm start: step time and search quality.

    Args:
        n_obs: observations at which the step time is measured (:func:`step_overhead`).
        seeds: seeds of the quality runs (:func:`search_quality`).
        n_evals: evaluations per quality run.
        n_jobs: worker processes of the quality runs.

    Returns:
        ``{"settings": {label: repr}, "step": {label: step_overhead(...)}, "quality":
        search_quality(...) as records}`` (NaN as None, so that the JSON is strict).
    """
    settings = {"restarts every step": BOSettings(refit_every=1), "warm start": BOSettings()}
    step = {label: step_overhead(n_obs, bo) for label, bo in settings.items()}
    quality = search_quality(settings, seeds, n_evals=n_evals, n_jobs=n_jobs)
    return {
        "settings": {label: repr(bo) for label, bo in settings.items()},
        "step": step,
        "quality": quality.astype(object).where(quality.notna(), None).to_dict(orient="records"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-obs", type=int, default=100, help="observations in the GP")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="compare restarts on every step with the GP warm start (step time, quality)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="quality runs per setting")
    parser.add_argument("--n-evals", type=int, default=60, help="evaluations per quality run")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (quality runs)")
    args = parser.parse_args(argv)
    if args.warm_start:
        result = warm_start_benchmark(
            args.n_obs, range(args.seeds), n_evals=args.n_evals, n_jobs=args.jobs
        )
    else:
        result = benchmark_overhead(args.n_obs, args.repeats, args.seed)
    print(json.dumps(result, indent=2, default=float))  # noqa: T201 - command-line output


if __name__ == "__main__":
    main()
