"""Benchmark of the optimizer's overhead per iteration (GP fit + acquisition).

Run ``python -m hwml.optimize.bench`` (``--help`` for options). The overhead is what
HW-IECI spends choosing the next configuration: fitting the GP with its restarts on
``n_obs`` observations, drawing the candidate set, predicting, and scoring EI times the
constraint indicators. It should stay far below one training run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hwml.optimize.bo import BOSettings, GPSurrogate, propose_bo
from hwml.optimize.candidates import Observations
from hwml.optimize.constraints import Constraint, ConstraintPrediction, predict_constraints
from hwml.optimize.space import Integer, LogReal, Real, Space

__all__ = ["benchmark_overhead", "main", "proposal_overhead"]


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
    space = _bench_space()
    constraints = [
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-obs", type=int, default=100, help="observations in the GP")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    args = parser.parse_args(argv)
    result = benchmark_overhead(args.n_obs, args.repeats, args.seed)
    print(json.dumps(result, indent=2))  # noqa: T201 - command-line output


if __name__ == "__main__":
    main()
