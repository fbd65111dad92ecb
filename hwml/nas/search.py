"""Platform-aware architecture searches over a tabular benchmark, and their verdict.

The searches differ only in their **hardware term** (:data:`TERMS`), the same budget of
trainings for each:

* ``none`` — accuracy only;
* ``flops`` — accuracy and FLOPs per image (from the description layer);
* ``predicted`` — accuracy and the latency (or energy) that hwml's network model predicts
  for the target GPU (:class:`hwml.nas.pricing.ArchPricer`), known before training;
* ``measured`` — accuracy and the latency (or energy) measured on the GPU: the expensive
  ground truth (the benchmark table).

Each term drives two controllers (:data:`CONTROLLERS`), plus a random baseline:

* ``evolution`` — aging evolution (:func:`hwml.optimize.propose_aging`) on MnasNet's soft
  reward ``ACC x (HW / T)^w`` (:func:`mnas_reward`; ``w = -0.07``, ``T`` the target of the
  term: a latency or energy target, or, for ``flops``, the FLOPs at the same quantile of
  the pool);
* ``nsga`` — the NSGA-II-style GA of :mod:`hwml.optimize.multiobjective` on the pair
  (error, hardware term): a Pareto search as in DPP-Net;
* ``random`` — uniform draws from the pool.

Every search evaluates architectures of the benchmark's pool only (a mutated or crossed
child is replaced by the nearest unevaluated pool architecture, as in any tabular
benchmark), and an evaluation is one training: the table's test error. Its result is its
**front** (the non-dominated evaluations under its own view: error and its hardware
term; for ``none`` its best network) and its **pick** for the target (the best error
among its evaluations whose own hardware estimate meets the target). The verdict
(:func:`verdict_frame`, :func:`equal_error_ratio`) looks both up in the *measured*
columns of the table: the hypervolume of each front in measured error x measured cost,
and how far each pick's measured cost lands from the target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from hwml.nas.pricing import ArchPricer
from hwml.nas.space import NASSpace
from hwml.nas.table import METRICS, NASBenchmark, metric_column
from hwml.optimize import (
    AgingSettings,
    GASettings,
    Observations,
    derive_seed,
    hypervolume_2d,
    nsga_fitness,
    pareto_front,
    propose_aging,
    propose_ga,
    propose_random,
)

__all__ = [
    "CONTROLLERS",
    "EQUAL_ERROR_QUANTILES",
    "TERMS",
    "NASProblem",
    "SearchSettings",
    "dominated_count",
    "equal_error_ratio",
    "equal_error_sentence",
    "equal_error_summary",
    "median_front",
    "mnas_reward",
    "normalized_hypervolume",
    "pick",
    "run_search",
    "run_searches",
    "search_front",
    "summarize_verdict",
    "term_label",
    "verdict_frame",
]

TERMS: tuple[str, ...] = ("none", "flops", "predicted", "measured")
"""Hardware terms of the searches: (a) accuracy only, (b) + FLOPs, (c) + predicted cost,
(d) + measured cost."""

CONTROLLERS: tuple[str, ...] = ("evolution", "nsga", "random")

#: The quantiles of the pool's test error at which :func:`equal_error_ratio` compares
#: two searches by default (5 %, 10 %, ..., 50 %).
EQUAL_ERROR_QUANTILES: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 11))
"""Search controllers: aging evolution on MnasNet's reward, NSGA-II on (error, hardware),
random draws."""


def mnas_reward(
    error: np.ndarray, cost: np.ndarray | None, target: float, w: float = -0.07
) -> np.ndarray:
    """MnasNet's soft reward ``ACC x (cost / target)^w``, ``ACC = 1 - error``.

    Args:
        error: test errors, shape ``(n,)``.
        cost: the hardware term (same unit as ``target``), or None for accuracy only.
        target: the target ``T``.
        w: the exponent (MnasNet: -0.07 on both sides of the target, the soft reward).

    Returns:
        Rewards, shape ``(n,)`` (higher is better).
    """
    acc = 1.0 - np.asarray(error, dtype=float)
    if cost is None:
        return acc
    return acc * (np.asarray(cost, dtype=float) / float(target)) ** float(w)


@dataclass
class NASProblem:
    """A benchmark's pool with every quantity a search or its verdict looks up.

    Attributes:
        space: the search space.
        keys: architecture keys, one per pool row.
        points: unit-cube points of the pool, shape ``(n, d)``.
        error: measured test error, shape ``(n,)``.
        flops: FLOPs per image, shape ``(n,)``.
        measured: ``{(metric, batch): values}`` measured on the GPU.
        predicted: ``{(metric, batch): values}`` predicted by the network model.
    """

    space: NASSpace
    keys: list[str]
    points: np.ndarray
    error: np.ndarray
    flops: np.ndarray
    measured: dict[tuple[str, int], np.ndarray]
    predicted: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {tuple(np.round(p, 9)): i for i, p in enumerate(self.points)}

    @classmethod
    def from_benchmark(cls, bench: NASBenchmark, pricer: ArchPricer | None) -> NASProblem:
        """The complete pool rows of a benchmark, priced by ``pricer`` (FLOPs always;
        predicted runtime and energy when it has a model)."""
        pool = bench.pool
        space = bench.space
        archs = [space.parse(k) for k in pool["key"]]
        pricer = pricer or ArchPricer(space)
        measured = {}
        predicted = {}
        for b in bench.batches:
            for metric, (_, pcol, _, _) in METRICS.items():
                measured[(metric, b)] = pool[metric_column(metric, b)].to_numpy(float)
                if pricer.model is not None:
                    predicted[(metric, b)] = pricer.predict(archs, b)[pcol].to_numpy(float)
        return cls(
            space=space,
            keys=list(pool["key"]),
            points=space.encode(archs),
            error=pool["test_error"].to_numpy(float),
            flops=pricer.flops(archs, 1),
            measured=measured,
            predicted=predicted,
        )

    def judged_on(self, wide: pd.DataFrame) -> NASProblem:
        """The same pool with its measured quantities taken from another measurement.

        ``wide`` is a second measurement in the wide form
        (:func:`hwml.nas.table.read_measurements`). A search run on this problem sees
        the first measurement; its verdict (:func:`verdict_frame`,
        :func:`equal_error_ratio`) computed on the returned problem is judged on the
        second, so a search on measured cost cannot score by the noise it was fed.
        Quantities the second measurement lacks are NaN.

        Raises:
            ValueError: ``wide`` holds none of this pool's architectures.
        """
        rows = wide.reindex(self.keys)
        if rows.isna().all(axis=None):
            raise ValueError("the second measurement holds none of this pool's architectures")
        measured = {}
        for metric, batch in self.measured:
            col = metric_column(metric, batch)
            measured[(metric, batch)] = (
                rows[col].to_numpy(float) if col in rows else np.full(len(self.keys), np.nan)
            )
        return replace(self, measured=measured, predicted=dict(self.predicted))

    def __len__(self) -> int:
        return len(self.keys)

    def cost(self, term: str, metric: str, batch: int) -> np.ndarray | None:
        """What a search with hardware term ``term`` sees of each pool row (None for
        ``none``)."""
        if term == "none":
            return None
        if term == "flops":
            return self.flops
        table = self.predicted if term == "predicted" else self.measured
        if term not in ("predicted", "measured"):
            raise ValueError(f"unknown term {term!r}; known: {', '.join(TERMS)}")
        if (metric, batch) not in table:
            raise KeyError(f"no {term} {metric} at batch {batch} in this problem")
        return table[(metric, batch)]

    def target(self, term: str, metric: str, batch: int, quantile: float) -> float:
        """The target a search with ``term`` aims at: the ``quantile`` of the pool's
        measured ``metric`` at ``batch`` (the designer's target, in ms or mJ), or for
        ``flops`` the pool's FLOPs at the same quantile (NaN for ``none``)."""
        if term == "none":
            return float("nan")
        if term == "flops":
            return float(np.nanquantile(self.flops, quantile))
        return float(np.nanquantile(self.measured[(metric, batch)], quantile))

    def index_of(self, point: np.ndarray) -> int:
        """The pool row of a unit-cube point."""
        return self._index[tuple(np.round(point, 9))]


@dataclass(frozen=True)
class SearchSettings:
    """Knobs shared by every search.

    Attributes:
        n_evals: trainings per search (the budget).
        population: aging evolution's population, NSGA-II's breeding population, and the
            number of initial random evaluations of both.
        sample: aging evolution's sample size.
        w: MnasNet's reward exponent.
        quantile: the target, as a quantile of the pool's measured cost.
    """

    n_evals: int = 40
    population: int = 10
    sample: int = 3
    w: float = -0.07
    quantile: float = 0.3

    def __post_init__(self) -> None:
        if self.n_evals < 1 or self.population < 1:
            raise ValueError("n_evals and population must be >= 1")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")


def run_search(
    problem: NASProblem,
    term: str,
    controller: str,
    seed: int,
    *,
    metric: str = "runtime",
    batch: int = 1,
    settings: SearchSettings | None = None,
) -> pd.DataFrame:
    """One search: ``settings.n_evals`` trainings chosen by ``controller`` with ``term``.

    Args:
        problem: the pool.
        term: one of :data:`TERMS`.
        controller: one of :data:`CONTROLLERS`.
        seed: the run's seed (each iteration draws from ``(seed, iteration)``).
        metric: ``runtime`` or ``energy`` (for ``predicted`` and ``measured``).
        batch: the inference batch of the metric.
        settings: the knobs.

    Returns:
        One row per evaluation: ``term``, ``controller``, ``metric``, ``batch``, ``seed``,
        ``iteration``, ``index`` (pool row), ``key``, ``error``, ``cost`` (what the search
        saw: NaN for ``none``), ``target`` and ``reward``.
    """
    settings = settings or SearchSettings()
    if controller not in CONTROLLERS:
        raise ValueError(f"unknown controller {controller!r}; known: {', '.join(CONTROLLERS)}")
    cost = problem.cost(term, metric, batch)
    target = problem.target(term, metric, batch, settings.quantile)
    reward = mnas_reward(problem.error, cost, target, settings.w)
    space = problem.space.search_space()
    pool = problem.points
    aging = AgingSettings(population=settings.population, sample=settings.sample)
    ga = GASettings(population=settings.population)
    chosen: list[int] = []
    rows = []
    for iteration in range(1, min(settings.n_evals, len(problem)) + 1):
        rng = np.random.default_rng(derive_seed(int(seed), iteration))
        idx = np.asarray(chosen, dtype=int)
        points = pool[idx] if len(idx) else np.empty((0, pool.shape[1]))
        feasible = np.ones(len(idx), dtype=bool)
        if controller == "random" or iteration <= settings.population:
            proposal = propose_random(
                space, Observations(points, np.zeros(len(idx)), feasible), rng, None, pool
            )
        elif controller == "evolution":
            obs = Observations(points, -reward[idx], feasible)
            proposal = propose_aging(space, obs, rng, aging, pool)
        else:
            values = (
                problem.error[idx][:, None]
                if cost is None
                else np.column_stack([problem.error[idx], cost[idx]])
            )
            obs = Observations(points, nsga_fitness(values), feasible)
            proposal = propose_ga(space, obs, rng, ga, settings.population, None, pool)
        if proposal is None:
            break
        i = problem.index_of(proposal.point)
        chosen.append(i)
        rows.append(
            {
                "term": term,
                "controller": controller,
                "metric": metric,
                "batch": int(batch),
                "seed": int(seed),
                "iteration": iteration,
                "index": i,
                "key": problem.keys[i],
                "error": problem.error[i],
                "cost": np.nan if cost is None else cost[i],
                "target": target,
                "reward": reward[i],
            }
        )
    return pd.DataFrame(rows)


def run_searches(
    problem: NASProblem,
    *,
    terms: Iterable[str] = TERMS,
    controllers: Iterable[str] = ("evolution", "nsga"),
    targets: Iterable[tuple[str, int]] = (("runtime", 1),),
    seeds: Iterable[int] = range(10),
    settings: SearchSettings | None = None,
    random_baseline: bool = True,
) -> pd.DataFrame:
    """Every (target, term, controller, seed) search; see :func:`run_search`.

    A random baseline (``controller="random"``, ``term="none"``) is added per target and
    seed when ``random_baseline`` is set.

    Returns:
        The rows of every search, concatenated.

    Raises:
        ValueError: a target the pool has no measured values of (e.g. ``gpu_time`` on a
            benchmark measured without CUDA graphs), before any search runs.
    """
    targets = list(targets)
    for metric, batch in targets:
        values = problem.measured.get((metric, batch))
        if values is None or not np.isfinite(values).any():
            have = sorted(
                f"{m}:{b}" for (m, b), v in problem.measured.items() if np.isfinite(v).any()
            )
            raise ValueError(
                f"no measured {metric} at batch {batch} in this pool; "
                f"targets it can take: {', '.join(have) or 'none'}"
            )
    parts = []
    for metric, batch in targets:
        for seed in seeds:
            for term in terms:
                for controller in controllers:
                    parts.append(
                        run_search(
                            problem,
                            term,
                            controller,
                            seed,
                            metric=metric,
                            batch=batch,
                            settings=settings,
                        )
                    )
            if random_baseline:
                parts.append(
                    run_search(
                        problem,
                        "none",
                        "random",
                        seed,
                        metric=metric,
                        batch=batch,
                        settings=settings,
                    )
                )
    return pd.concat(parts, ignore_index=True)


_RUN = ["metric", "batch", "term", "controller", "seed"]


def search_front(run: pd.DataFrame) -> pd.DataFrame:
    """The front a search hands over: its non-dominated evaluations in (error, cost) as it
    saw them; for the accuracy-only search, its lowest-error evaluation.

    Args:
        run: the rows of one search (:func:`run_search`).

    Returns:
        The front's rows.
    """
    if run["cost"].isna().all():
        return run.loc[[run["error"].idxmin()]]
    values = run[["error", "cost"]].to_numpy(float)
    return run.loc[pareto_front(values)]


def pick(run: pd.DataFrame) -> pd.Series:
    """The network a search picks for its target: the lowest error among its evaluations
    whose cost (as it saw it) meets the target; if none does, the one of lowest cost; for
    the accuracy-only search, its lowest error."""
    if run["cost"].isna().all():
        return run.loc[run["error"].idxmin()]
    within = run[run["cost"] <= run["target"]]
    if within.empty:
        return run.loc[run["cost"].idxmin()]
    return within.loc[within["error"].idxmin()]


def _bounds(problem: NASProblem, metric: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
    meas = problem.measured[(metric, batch)]
    lo = np.array([np.nanmin(problem.error), np.nanmin(meas)])
    hi = np.array([np.nanmax(problem.error), np.nanmax(meas)])
    return lo, hi


def normalized_hypervolume(
    problem: NASProblem, indices: Sequence[int], metric: str, batch: int
) -> float:
    """Hypervolume of pool rows in measured (error, log cost), both scaled to [0, 1] by the
    pool's range (reference point: the pool's worst error and largest cost), as a fraction
    of the unit square. The cost is taken in log scale (a network twice as fast counts the
    same at any latency, and one slow outlier does not squash the rest). NaN rows are
    left out."""
    lo, hi = _bounds(problem, metric, batch)
    lo[1], hi[1] = np.log(lo[1]), np.log(hi[1])
    idx = np.asarray(list(indices), dtype=int)
    pts = np.column_stack([problem.error[idx], np.log(problem.measured[(metric, batch)][idx])])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) == 0:
        return 0.0
    scaled = (pts - lo) / np.where(hi > lo, hi - lo, 1.0)
    return hypervolume_2d(scaled, [1.0, 1.0])


def verdict_frame(problem: NASProblem, runs: pd.DataFrame, quantile: float = 0.3) -> pd.DataFrame:
    """The measured verdict of every search.

    Args:
        problem: the pool.
        runs: :func:`run_searches` output.
        quantile: the searches' target quantile (:attr:`SearchSettings.quantile`): the
            designer's target is this quantile of the pool's measured cost, whatever the
            search looked at.

    Returns:
        One row per search (``metric``, ``batch``, ``term``, ``controller``, ``seed``):
        ``front_size``; ``hv_front`` (normalized hypervolume of its front, in *measured*
        error x log cost, :func:`normalized_hypervolume`), ``hv_trained`` (of every network it
        trained, all measured afterwards), ``hv_pool`` (of the whole pool: the best any
        search could reach) and ``hv_front_pct`` (``hv_front`` as % of ``hv_pool``);
        the pick's ``pick_key``, ``pick_error``, ``pick_cost_seen``, ``pick_measured``
        (measured cost), ``target`` (the designer's target in the metric's unit, also for
        the ``flops`` and ``none`` searches), ``pick_violates`` (measured cost above it)
        and ``pick_over_pct`` (by how much, % of the target; 0 when within);
        ``best_error`` (lowest error trained).
    """
    out = []
    pool_hv: dict[tuple[str, int], float] = {}
    for (metric, batch, term, controller, seed), run in runs.groupby(_RUN, sort=False):
        batch = int(batch)
        if (metric, batch) not in pool_hv:
            pool_hv[(metric, batch)] = normalized_hypervolume(
                problem, range(len(problem)), metric, batch
            )
        meas = problem.measured[(metric, batch)]
        front = search_front(run)
        chosen = pick(run)
        target = float(np.nanquantile(meas, quantile))
        measured_pick = float(meas[int(chosen["index"])])
        hv_front = normalized_hypervolume(problem, front["index"], metric, batch)
        out.append(
            {
                "metric": metric,
                "batch": batch,
                "term": term,
                "controller": controller,
                "seed": int(seed),
                "front_size": len(front),
                "hv_front": hv_front,
                "hv_trained": normalized_hypervolume(problem, run["index"], metric, batch),
                "hv_pool": pool_hv[(metric, batch)],
                "hv_front_pct": 100 * hv_front / pool_hv[(metric, batch)],
                "pick_key": chosen["key"],
                "pick_error": float(chosen["error"]),
                "pick_cost_seen": float(chosen["cost"]),
                "pick_measured": measured_pick,
                "target": target,
                "pick_violates": bool(measured_pick > target),
                "pick_over_pct": max(0.0, 100 * (measured_pick / target - 1)),
                "best_error": float(run["error"].min()),
            }
        )
    return pd.DataFrame(out)


def equal_error_ratio(
    problem: NASProblem,
    runs: pd.DataFrame,
    better: str,
    worse: str,
    *,
    metric: str = "runtime",
    batch: int = 1,
    controller: str = "evolution",
    levels: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Measured cost at equal error: ``better``'s fronts against ``worse``'s.

    For each error level ``e`` and seed, each search's cost at ``e`` is the lowest
    measured cost among its front's networks with error at most ``e``. The ratio at a
    level is the median over seeds of ``better``'s cost over the median of ``worse``'s
    (levels where either reaches ``e`` in fewer than half its seeds are left out).

    Args:
        problem: the pool.
        runs: :func:`run_searches` output.
        better, worse: the two terms to compare (e.g. ``predicted`` and ``flops``).
        metric, batch, controller: which searches.
        levels: error levels (default: the pool's error at ``EQUAL_ERROR_QUANTILES``).

    Returns:
        One row per level: ``error_level``, ``<better>_cost``, ``<worse>_cost`` (medians,
        measured), ``ratio`` (< 1: ``better`` is faster at that error).
    """
    meas = problem.measured[(metric, batch)]
    if levels is None:
        levels = np.nanquantile(problem.error, EQUAL_ERROR_QUANTILES)
    sel = runs[
        (runs["metric"] == metric) & (runs["batch"] == batch) & (runs["controller"] == controller)
    ]

    def costs(term: str) -> pd.DataFrame:
        rows = []
        for seed, run in sel[sel["term"] == term].groupby("seed"):
            front = search_front(run)
            err = front["error"].to_numpy()
            c = meas[front["index"].to_numpy(int)]
            for e in levels:
                ok = err <= e
                rows.append({"seed": seed, "level": e, "cost": c[ok].min() if ok.any() else np.nan})
        return pd.DataFrame(rows)

    a, b = costs(better), costs(worse)
    out = []
    for e in levels:
        ca = a.loc[np.isclose(a["level"], e), "cost"]
        cb = b.loc[np.isclose(b["level"], e), "cost"]
        if ca.notna().mean() < 0.5 or cb.notna().mean() < 0.5:
            continue
        ma, mb = float(ca.median()), float(cb.median())
        out.append(
            {"error_level": float(e), f"{better}_cost": ma, f"{worse}_cost": mb, "ratio": ma / mb}
        )
    return pd.DataFrame(out)


def targets_from(spec: Mapping[str, Sequence[int]]) -> list[tuple[str, int]]:
    """``{"runtime": [1, 64]}`` -> ``[("runtime", 1), ("runtime", 64)]``."""
    return [(m, int(b)) for m, bs in spec.items() for b in bs]


def term_label(term: str, metric: str = "runtime") -> str:
    """``(a) accuracy only``, ``(b) + FLOPs``, ``(c) + predicted latency`` ... for a term."""
    what = {"runtime": "latency", "gpu_time": "GPU time"}.get(metric, metric)
    return {
        "none": "(a) accuracy only",
        "flops": "(b) + FLOPs",
        "predicted": f"(c) + predicted {what}",
        "measured": f"(d) + measured {what}",
    }[term]


def summarize_verdict(verdict: pd.DataFrame) -> pd.DataFrame:
    """Per search method (``metric``, ``batch``, ``term``, ``controller``), over seeds:
    ``seeds``, ``hv_mean`` and ``hv_std`` (``hv_front_pct``), ``hv_trained_pct`` (mean
    hypervolume of everything trained, % of the pool's), ``pick_error`` (mean),
    ``violation_pct`` (% of seeds whose pick's measured cost exceeds the target),
    ``over_pct_when_violating`` (mean overshoot of those picks, % of the target; NaN when
    none) and ``front_size`` (mean)."""
    v = verdict.assign(hv_trained_pct=100 * verdict["hv_trained"] / verdict["hv_pool"])
    groups = v.groupby(_RUN[:-1], sort=False)
    out = groups.agg(
        seeds=("seed", "nunique"),
        hv_mean=("hv_front_pct", "mean"),
        hv_std=("hv_front_pct", "std"),
        hv_trained_pct=("hv_trained_pct", "mean"),
        pick_error=("pick_error", "mean"),
        violation_pct=("pick_violates", lambda s: 100 * float(np.mean(s))),
        front_size=("front_size", "mean"),
    )
    over = v[v["pick_violates"]].groupby(_RUN[:-1], sort=False)["pick_over_pct"].mean()
    out["over_pct_when_violating"] = over.reindex(out.index)
    return out.reset_index()


def median_front(
    problem: NASProblem,
    runs: pd.DataFrame,
    verdict: pd.DataFrame,
    term: str,
    *,
    metric: str = "runtime",
    batch: int = 1,
    controller: str = "evolution",
) -> pd.DataFrame:
    """The front of the seed whose measured hypervolume is the median of a method's seeds
    (the lower middle for an even count), with the measured cost beside each member.

    Returns:
        The front's rows (:func:`search_front`) plus ``measured`` (the metric at ``batch``),
        sorted by ``measured``.
    """
    sel = verdict[
        (verdict["term"] == term)
        & (verdict["controller"] == controller)
        & (verdict["metric"] == metric)
        & (verdict["batch"] == batch)
    ].sort_values(["hv_front", "seed"])
    if sel.empty:
        raise KeyError(f"no {term}/{controller} searches of {metric} at batch {batch}")
    seed = int(sel.iloc[(len(sel) - 1) // 2]["seed"])
    run = runs[
        (runs["term"] == term)
        & (runs["controller"] == controller)
        & (runs["metric"] == metric)
        & (runs["batch"] == batch)
        & (runs["seed"] == seed)
    ]
    front = search_front(run)
    front = front.assign(measured=problem.measured[(metric, batch)][front["index"].to_numpy(int)])
    return front.sort_values("measured")


def equal_error_summary(ratios: pd.DataFrame, tie_pct: float = 5.0) -> dict[str, float | str]:
    """One verdict from :func:`equal_error_ratio`'s levels.

    Args:
        ratios: :func:`equal_error_ratio` output.
        tie_pct: geometric-mean differences below this (%) are a tie.

    Returns:
        ``ratio`` (geometric mean of the levels' ratios; NaN without levels), ``pct``
        (``|1 - ratio|`` in %), ``levels`` and ``verdict``: ``ahead`` (the first term's
        networks are faster at equal error), ``on par``, ``behind`` or ``not comparable``.
    """
    if ratios.empty:
        return {
            "ratio": float("nan"),
            "pct": float("nan"),
            "levels": 0,
            "verdict": "not comparable",
        }
    ratio = float(np.exp(np.mean(np.log(ratios["ratio"].to_numpy(float)))))
    tie = tie_pct / 100.0
    verdict = "ahead" if ratio < 1 - tie else "behind" if ratio > 1 + tie else "on par"
    return {"ratio": ratio, "pct": 100 * abs(1 - ratio), "levels": len(ratios), "verdict": verdict}


_EQUAL_ERROR_WORDS = {
    "ahead": "is ahead: at equal error its networks are {pct:.0f} % faster (measured) than the "
    "FLOPs search's",
    "on par": "is on par with the FLOPs search: at equal error its networks are {pct:.1f} % "
    "{direction} (measured), within the {tie:.0f} % called a tie",
    "behind": "is not ahead: at equal error its networks are {pct:.0f} % slower (measured) than "
    "the FLOPs search's",
    "not comparable": "could not be compared with the FLOPs search: their fronts share no error "
    "level",
}


def equal_error_sentence(summary: Mapping[str, Any], tie_pct: float = 5.0) -> str:
    """:func:`equal_error_summary`'s verdict of a search against the FLOPs search, as the
    predicate of a sentence ("is ahead: at equal error its networks are 12 % faster ...")."""
    ratio = float(summary["ratio"])
    return _EQUAL_ERROR_WORDS[str(summary["verdict"])].format(
        pct=summary["pct"], tie=tie_pct, direction="faster" if ratio < 1 else "slower"
    )


def dominated_count(
    error: np.ndarray, cost: np.ndarray, others_error: np.ndarray, others_cost: np.ndarray
) -> int:
    """How many of the other points some point of (``error``, ``cost``) dominates: no
    worse in both, better in one (e.g. reference networks beaten by a search's front)."""
    e, c = np.asarray(error, float)[:, None], np.asarray(cost, float)[:, None]
    oe, oc = np.asarray(others_error, float)[None, :], np.asarray(others_cost, float)[None, :]
    beats = (e <= oe) & (c <= oc) & ((e < oe) | (c < oc))
    return int(beats.any(axis=0).sum())
