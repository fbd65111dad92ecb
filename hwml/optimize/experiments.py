"""Many seeds of many search methods, and the numbers the optimization chapters report.

Comparing search methods takes many runs of each (the survey's Figures 2 and 4 are
averages over repeated searches). :func:`run_searches` runs
:func:`~hwml.optimize.search.minimize` and :func:`run_pareto_searches` runs
:func:`~hwml.optimize.multiobjective.minimize_pareto` for every ``(method, seed)``,
optionally in worker processes; each run is a function of its seed alone, so the result
does not depend on ``n_jobs`` (up to the measured optimizer overhead in the time
columns).

The summaries turn best-so-far curves into how long each method took to reach a level
(HyperPower's "near-optimal region"), with runs that never reach it handled as censored,
give a bootstrap confidence interval over seeds for the speed-up of one method over
another (:func:`speedup_interval`), and compare final values of two methods across seeds.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from hwml.optimize.analysis import RUN_KEYS
from hwml.optimize.batch import BATCH_MODES, minimize_batch
from hwml.optimize.constraints import Constraint
from hwml.optimize.multiobjective import PARETO_METHODS, ParetoSettings, minimize_pareto
from hwml.optimize.search import METHODS, SearchSettings, minimize
from hwml.optimize.space import Space

__all__ = [
    "Speedup",
    "SpeedupInterval",
    "batch_label",
    "batch_summary",
    "compare_final",
    "history_file",
    "reach_summary",
    "reach_times",
    "run_batch_searches",
    "run_pareto_searches",
    "run_searches",
    "speedup",
    "speedup_interval",
    "tolerance_sweep",
]

_SHARED: dict[str, Any] = {}


def _init_worker(shared: dict[str, Any]) -> None:
    _SHARED.clear()
    _SHARED.update(shared)


def history_file(history_dir: str | os.PathLike[str], method: str, seed: int) -> Path:
    """The history file of one ``(method, seed)`` search of :func:`run_searches`.

    Args:
        history_dir: the folder of the histories.
        method: the search method.
        seed: the search seed.

    Returns:
        ``<history_dir>/<method>-s<seed>.csv``.
    """
    return Path(history_dir) / f"{method}-s{int(seed)}.csv"


def _one_search(job: tuple[str, int]) -> pd.DataFrame:
    method, seed = job
    s = _SHARED
    folder = s.get("history_dir")
    return minimize(
        s["objective"],
        s["space"],
        s["constraints"].get(method, ()),
        method=method,
        n_evals=s["n_evals"],
        n_init=s["n_init"],
        seed=seed,
        settings=s["settings"],
        progress=False,
        history_path=history_file(folder, method, seed) if folder is not None else None,
    )


def _one_pareto(job: tuple[str, int]) -> pd.DataFrame:
    method, seed = job
    s = _SHARED
    return minimize_pareto(
        s["objective"],
        s["space"],
        objectives=s["objectives"],
        method=method,
        n_evals=s["n_evals"],
        n_init=s["n_init"],
        seed=seed,
        settings=s["settings"],
        predictors=s.get("predictors"),
    )


def _check_jobs(methods: Sequence[str], seeds: Sequence[int], known: Sequence[str]) -> None:
    bad = [m for m in methods if m not in known]
    if bad or not methods:
        raise ValueError(f"methods must be among {tuple(known)}, got {list(methods)}")
    if not seeds:
        raise ValueError("seeds is empty")


def _map(
    worker: Callable[[Any], pd.DataFrame],
    shared: dict[str, Any],
    methods: Sequence[Any],
    seeds: Sequence[int],
    n_jobs: int,
) -> pd.DataFrame:
    jobs = [(m, int(s)) for m in dict.fromkeys(methods) for s in dict.fromkeys(seeds)]
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    if n_jobs == 1 or len(jobs) == 1:
        saved = dict(_SHARED)
        try:
            _init_worker(shared)
            parts = [worker(job) for job in jobs]
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
            parts = list(pool.map(worker, jobs))
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def run_searches(
    objective: Callable[[dict[str, Any]], Any],
    space: Space,
    constraints: Sequence[Constraint] | Mapping[str, Sequence[Constraint]] = (),
    *,
    methods: Sequence[str],
    seeds: Sequence[int],
    n_evals: int,
    n_init: int,
    settings: SearchSettings | None = None,
    n_jobs: int = 1,
    history_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Run :func:`~hwml.optimize.search.minimize` for every method and seed.

    With ``history_dir`` every search keeps its history file there
    (:func:`history_file`: ``<method>-s<seed>.csv``), each row written as it is made, and
    the call is resumable: run again after an interruption, each search continues from
    its file (its evaluations are replayed, not repeated, and the choices are those of
    an uninterrupted run), and a finished search only reads its file back.

    Args:
        objective: the objective (picklable when ``n_jobs > 1`` without ``fork``).
        space: the search space.
        constraints: the constraints every method gets, or ``{method: constraints}``
            (e.g. models with a predictive std for ``hw-ieci-prob``); a method missing
            from the mapping searches without constraints.
        methods: methods of :data:`~hwml.optimize.search.METHODS`.
        seeds: seeds; each method runs once per seed.
        n_evals: evaluations per run.
        n_init: initial random evaluations per run.
        settings: search settings.
        n_jobs: worker processes (1: in this process).
        history_dir: folder of the runs' history files (created if absent); None keeps
            the histories in memory only.

    Returns:
        The histories concatenated, ordered by method (as given) and seed.

    Raises:
        HistoryError: a file in ``history_dir`` belongs to another search (other
            columns, method or seed).
    """
    _check_jobs(methods, seeds, METHODS)
    if not isinstance(constraints, Mapping):
        constraints = {m: tuple(constraints) for m in methods}
    if history_dir is not None:
        Path(history_dir).mkdir(parents=True, exist_ok=True)
    shared = {
        "objective": objective,
        "space": space,
        "constraints": {m: tuple(c) for m, c in constraints.items()},
        "n_evals": n_evals,
        "n_init": n_init,
        "settings": settings,
        "history_dir": None if history_dir is None else str(history_dir),
    }
    return _map(_one_search, shared, methods, seeds, n_jobs)


def run_pareto_searches(
    objective: Callable[[dict[str, Any]], Any],
    space: Space,
    *,
    objectives: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    n_evals: int,
    n_init: int,
    settings: ParetoSettings | None = None,
    n_jobs: int = 1,
    predictors: Mapping[str, Callable[[pd.DataFrame], Any]] | None = None,
) -> pd.DataFrame:
    """Run :func:`~hwml.optimize.multiobjective.minimize_pareto` for every method and seed.

    Args:
        objective: the objective, reporting every name of ``objectives``.
        space: the search space.
        objectives: result keys of the quantities to minimize.
        methods: methods of :data:`~hwml.optimize.multiobjective.PARETO_METHODS`.
        seeds: seeds; each method runs once per seed.
        n_evals: evaluations per run.
        n_init: initial random evaluations per run.
        settings: search settings.
        n_jobs: worker processes (1: in this process).
        predictors: a priori hardware models of ``"hw-ehvi"`` (see
            :func:`~hwml.optimize.multiobjective.minimize_pareto`).

    Returns:
        The histories concatenated, ordered by method (as given) and seed.
    """
    _check_jobs(methods, seeds, PARETO_METHODS)
    shared = {
        "objective": objective,
        "space": space,
        "objectives": tuple(objectives),
        "n_evals": n_evals,
        "n_init": n_init,
        "settings": settings,
        "predictors": None if predictors is None else dict(predictors),
    }
    return _map(_one_pareto, shared, methods, seeds, n_jobs)


def _one_batch(job: tuple[tuple[int, str], int]) -> pd.DataFrame:
    (q, mode), seed = job
    s = _SHARED
    history = minimize_batch(
        s["objective"],
        s["space"],
        s["constraints"],
        method=s["method"],
        q=q,
        mode=mode,
        n_evals=s["n_evals"],
        n_init=s["n_init"],
        seed=seed,
        settings=s["settings"],
        progress=False,
    )
    return history.assign(q=q, mode=mode)


def run_batch_searches(
    objective: Callable[[dict[str, Any]], Any],
    space: Space,
    constraints: Sequence[Constraint] = (),
    *,
    method: str = "hw-ieci",
    qs: Sequence[int],
    seeds: Sequence[int],
    n_evals: int,
    n_init: int,
    modes: Sequence[str] = ("async",),
    settings: SearchSettings | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Run :func:`~hwml.optimize.batch.minimize_batch` for every ``q``, mode and seed, on
    the simulated clock (the evaluations report their cost in ``eval_time_s``, as a
    :class:`~hwml.optimize.tabular.TabularObjective` with a cost column does).

    Args:
        objective: the objective.
        space: the search space.
        constraints: the constraints of ``method``.
        method: a method of :data:`~hwml.optimize.batch.BATCH_METHODS`.
        qs: evaluations in flight at once, e.g. ``(1, 2, 4, 8)``.
        seeds: seeds; each ``(q, mode)`` runs once per seed.
        n_evals: evaluations per run.
        n_init: initial random evaluations per run.
        modes: ``"async"`` and/or ``"sync"``.
        settings: search settings.
        n_jobs: worker processes (1: in this process); results do not depend on it.

    Returns:
        The histories concatenated, with columns ``q`` and ``mode`` added, ordered by
        ``(q, mode)`` as given and seed.
    """
    if not qs or any(int(q) < 1 for q in qs):
        raise ValueError(f"qs must be integers >= 1, got {list(qs)}")
    bad = [m for m in modes if m not in BATCH_MODES]
    if bad or not modes:
        raise ValueError(f"modes must be among {BATCH_MODES}, got {list(modes)}")
    if not seeds:
        raise ValueError("seeds is empty")
    shared = {
        "objective": objective,
        "space": space,
        "constraints": tuple(constraints),
        "method": method,
        "n_evals": n_evals,
        "n_init": n_init,
        "settings": settings,
    }
    variants = [(int(q), m) for q in dict.fromkeys(qs) for m in dict.fromkeys(modes)]
    return _map(_one_batch, shared, variants, seeds, n_jobs)


def batch_label(q: int, mode: str) -> str:
    """The label of a batch variant in curves and summaries: ``"q=4 async"``."""
    return f"q={int(q)} {mode}"


def _bootstrap_median(
    values: np.ndarray, reached: np.ndarray, draws: np.ndarray, confidence: float
) -> tuple[float, float]:
    """Percentile interval of the median over resampled seeds; a run that never reached
    the level counts as infinite at the upper end and at its censored value at the lower."""
    low = np.median(values[draws], axis=1)
    high = np.median(np.where(reached, values, np.inf)[draws], axis=1)
    return (
        float(np.quantile(low, (1.0 - confidence) / 2.0, method="lower")),
        float(np.quantile(high, (1.0 + confidence) / 2.0, method="higher")),
    )


def batch_summary(
    histories: pd.DataFrame,
    threshold: float,
    *,
    at_evals: int | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """How a batch-parallel search scales with ``q``: evaluations and wall-clock time to
    reach a level, and the speed-up in wall-clock at equal evaluations.

    Args:
        histories: output of :func:`run_batch_searches` (columns ``q`` and ``mode``; the
            same seeds for every variant, ``q = 1`` among them).
        threshold: objective level of the near-optimal region.
        at_evals: the evaluation count at which wall-clock times are compared (default:
            the smallest run's length).
        n_boot: bootstrap resamples of the seeds.
        confidence: nominal coverage of the intervals.
        seed: seed of the resampling.

    Returns:
        One row per ``(mode, q)``: ``label``, ``runs``, ``reached`` (fraction),
        ``median_evals`` with ``evals_lower`` / ``evals_upper`` (the interval; ``inf``
        when censored runs decide it) and ``median_evals_bound`` (censored median's
        bound), ``median_time_s`` with ``time_lower`` / ``time_upper``, ``time_at_evals_s``
        (median wall-clock of ``at_evals`` evaluations), ``speedup_equal_evals`` (median
        over seeds of the ``q = 1`` run's time to ``at_evals`` evaluations over this run's,
        with ``speedup_equal_lower`` / ``speedup_equal_upper``), ``speedup_reach``
        (:func:`speedup_interval` of the time to reach the level against ``q = 1`` of
        the same mode) with ``speedup_reach_lower`` / ``speedup_reach_upper`` /
        ``speedup_reach_kind``, ``efficiency`` (``speedup_equal_evals / q``), and for
        prose ``evals_text`` (``"12"`` or ``"more than 50"``), ``speedup_equal_text`` and
        ``speedup_reach_text`` (``"3.8x (95% CI 3.5x to 4.1x)"``).
    """
    from hwml.optimize.analysis import best_so_far

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    frame = histories.assign(
        method=[batch_label(q, m) for q, m in zip(histories["q"], histories["mode"], strict=True)]
    )
    curves = best_so_far(frame)
    n_at = int(at_evals or frame.groupby(["method", "seed"]).size().min())
    times = reach_times(curves, threshold)
    seeds = np.sort(frame["seed"].unique())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seeds), size=(int(n_boot), len(seeds)))

    def at_n(run: pd.DataFrame) -> float:
        run = run.sort_values("iteration")
        hit = run[run["iteration"] == n_at]
        return float(hit["cumulative_time_s"].iloc[0]) if len(hit) else math.nan

    clock = frame.groupby(["method", "seed"]).apply(at_n, include_groups=False)
    rows = []
    for (q, mode), _ in frame.groupby(["q", "mode"], sort=True):
        label = batch_label(q, mode)
        mine = times[times["method"] == label].set_index("seed").reindex(seeds)
        reached = mine["reached"].to_numpy(bool)
        evals = mine["evals"].to_numpy(float)
        secs = mine["time_s"].to_numpy(float)
        e_med, e_bound, _ = _censored_median(evals, reached)
        t_med, t_bound, _ = _censored_median(secs, reached)
        e_lo, e_hi = _bootstrap_median(evals, reached, draws, confidence)
        t_lo, t_hi = _bootstrap_median(secs, reached, draws, confidence)
        row: dict[str, Any] = {
            "mode": mode,
            "q": int(q),
            "label": label,
            "runs": int(len(mine)),
            "reached": float(reached.mean()),
            "median_evals": e_med,
            "median_evals_bound": e_bound,
            "evals_lower": e_lo,
            "evals_upper": e_hi,
            "median_time_s": t_med,
            "median_time_s_bound": t_bound,
            "time_lower": t_lo,
            "time_upper": t_hi,
            "at_evals": n_at,
        }
        base_label = batch_label(1, mode)
        mine_t = clock.loc[label].reindex(seeds).to_numpy(float)
        row["time_at_evals_s"] = float(np.nanmedian(mine_t))
        if base_label in clock.index.get_level_values(0):
            base_t = clock.loc[base_label].reindex(seeds).to_numpy(float)
            ratio = base_t / mine_t
            boot = np.nanmedian(ratio[draws], axis=1)
            row["speedup_equal_evals"] = float(np.nanmedian(ratio))
            row["speedup_equal_lower"] = float(np.quantile(boot, (1 - confidence) / 2))
            row["speedup_equal_upper"] = float(np.quantile(boot, (1 + confidence) / 2))
            ci = (
                speedup_interval(
                    curves,
                    threshold,
                    label,
                    base_label,
                    "time_s",
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=seed,
                )
                if label != base_label
                else None
            )
            row["speedup_reach"] = ci.ratio if ci else 1.0
            row["speedup_reach_lower"] = ci.lower if ci else 1.0
            row["speedup_reach_upper"] = ci.upper if ci else 1.0
            row["speedup_reach_kind"] = ci.kind if ci else "exact"
        else:
            for col in (
                "speedup_equal_evals",
                "speedup_equal_lower",
                "speedup_equal_upper",
                "speedup_reach",
                "speedup_reach_lower",
                "speedup_reach_upper",
            ):
                row[col] = math.nan
            row["speedup_reach_kind"] = "undefined"
        row["efficiency"] = row["speedup_equal_evals"] / int(q)
        row["evals_text"] = f"{e_med:g}" if math.isfinite(e_med) else f"more than {e_bound:g}"
        row["speedup_equal_text"] = SpeedupInterval(
            row["speedup_equal_evals"],
            "exact" if math.isfinite(row["speedup_equal_evals"]) else "undefined",
            row["speedup_equal_lower"],
            row["speedup_equal_upper"],
            confidence,
            int(n_boot),
            len(seeds),
        ).text()
        row["speedup_reach_text"] = SpeedupInterval(
            row["speedup_reach"],
            row["speedup_reach_kind"],
            row["speedup_reach_lower"],
            row["speedup_reach_upper"],
            confidence,
            int(n_boot),
            len(seeds),
        ).text()
        rows.append(row)
    return pd.DataFrame(rows)


def reach_times(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Evaluations and time each run needed to reach ``best_objective <= threshold``.

    Unlike :func:`~hwml.optimize.analysis.evals_to_reach`, a run that never reached the
    level keeps a *censored* value: its number of evaluations and its total time, lower
    bounds of what it would have needed.

    Args:
        curves: output of :func:`~hwml.optimize.analysis.best_so_far`.
        threshold: objective level, in the objective's unit.

    Returns:
        Frame with ``method``, ``seed``, ``reached`` (bool), ``evals`` and ``time_s`` (s;
        at the first evaluation at or below the level, or the censored bounds).
    """
    rows = []
    for (method, seed), run in curves.groupby(RUN_KEYS, sort=True):
        run = run.sort_values("iteration")
        hit = run["best_objective"].to_numpy(dtype=float) <= threshold
        at = run.iloc[int(np.argmax(hit))] if hit.any() else run.iloc[-1]
        rows.append(
            (method, seed, bool(hit.any()), float(at["iteration"]), float(at["cumulative_time_s"]))
        )
    return pd.DataFrame(rows, columns=[*RUN_KEYS, "reached", "evals", "time_s"])


def _censored_median(values: np.ndarray, reached: np.ndarray) -> tuple[float, float, bool]:
    """Median with unreached runs counted as never reaching, and its bound if censored."""
    exact = np.where(reached, values, np.inf)
    median = float(np.median(exact))
    if math.isfinite(median):
        return median, median, False
    return math.inf, float(np.median(values)), True


def reach_summary(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """How quickly each method reaches a level, over its seeds.

    Medians count a run that never reached the level as needing more than the run had;
    when that is true of half the runs or more, the median is unknown (``inf``) and
    ``*_bound`` holds a lower bound (the median of the censored values).

    Args:
        curves: output of :func:`~hwml.optimize.analysis.best_so_far` for many runs.
        threshold: objective level, in the objective's unit.

    Returns:
        One row per method (index): ``runs``, ``reached`` (fraction of runs),
        ``median_evals``, ``median_evals_bound``, ``median_time_s``,
        ``median_time_s_bound`` (s), ``censored`` (the medians are only bounds) and
        ``mean_evals_reached`` (mean over the runs that reached it).
    """
    times = reach_times(curves, threshold)
    rows = {}
    for method, runs in times.groupby("method", sort=False):
        reached = runs["reached"].to_numpy(dtype=bool)
        evals, evals_bound, censored = _censored_median(runs["evals"].to_numpy(float), reached)
        time_s, time_bound, _ = _censored_median(runs["time_s"].to_numpy(float), reached)
        rows[method] = {
            "runs": len(runs),
            "reached": float(reached.mean()),
            "median_evals": evals,
            "median_evals_bound": evals_bound,
            "median_time_s": time_s,
            "median_time_s_bound": time_bound,
            "censored": censored,
            "mean_evals_reached": float(runs.loc[reached, "evals"].mean())
            if reached.any()
            else math.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class Speedup:
    """How many times fewer evaluations (or less time) one method needed than another.

    Attributes:
        ratio: baseline median / method median; a lower bound when ``kind`` is
            ``"lower"``; NaN when ``kind`` is ``"undefined"``.
        kind: ``"exact"``, ``"lower"`` (the baseline's median is censored: it needs
            *more* than this) or ``"undefined"`` (the method's own median is censored).
    """

    ratio: float
    kind: str

    def text(self, digits: int = 1) -> str:
        """``"3.5x"``, ``"more than 2.0x"`` or ``"undefined"``, for prose."""
        if self.kind == "undefined":
            return "undefined"
        value = f"{self.ratio:.{digits}f}x"
        return value if self.kind == "exact" else f"more than {value}"


def speedup(summary: pd.DataFrame, method: str, baseline: str, what: str = "evals") -> Speedup:
    """Speed-up of ``method`` over ``baseline`` from :func:`reach_summary`.

    Args:
        summary: output of :func:`reach_summary`.
        method: the faster method, e.g. ``"hw-ieci"``.
        baseline: the method it is compared with, e.g. ``"ei"``.
        what: ``"evals"`` or ``"time_s"``.

    Returns:
        The ratio of the baseline's median to the method's.
    """
    if what not in ("evals", "time_s"):
        raise ValueError(f"what must be 'evals' or 'time_s', got {what!r}")
    mine = float(summary.loc[method, f"median_{what}"])
    theirs = float(summary.loc[baseline, f"median_{what}"])
    if not math.isfinite(mine) or mine <= 0:
        return Speedup(math.nan, "undefined")
    if math.isfinite(theirs):
        return Speedup(theirs / mine, "exact")
    return Speedup(float(summary.loc[baseline, f"median_{what}_bound"]) / mine, "lower")


@dataclass(frozen=True)
class SpeedupInterval:
    """A speed-up with a bootstrap confidence interval over seeds.

    Attributes:
        ratio: the speed-up of all seeds, as :func:`speedup` gives it (NaN when
            undefined).
        kind: ``"exact"``, ``"lower"`` or ``"undefined"``, as :class:`Speedup`.
        lower: lower end of the interval; 0 when, in more resamples than the tail
            allows, the method's median is censored (it may never reach the level).
        upper: upper end of the interval; ``inf`` when, in more resamples than the tail
            allows, the baseline's median is censored (it may never reach the level).
        confidence: the interval's nominal coverage, e.g. 0.95.
        n_boot: bootstrap resamples.
        n_seeds: seeds resampled.
    """

    ratio: float
    kind: str
    lower: float
    upper: float
    confidence: float
    n_boot: int
    n_seeds: int

    def includes(self, value: float = 1.0) -> bool:
        """Whether ``value`` (1: no speed-up) lies inside the interval."""
        return bool(self.lower <= value <= self.upper)

    def interval_text(self, digits: int = 1) -> str:
        """The interval alone, ``"0.9x to 2.3x"``; an infinite end is written ``∞``."""

        def end(value: float) -> str:
            return "∞" if math.isinf(value) else f"{value:.{digits}f}x"

        return f"{end(self.lower)} to {end(self.upper)}"

    def text(self, digits: int = 1, label: bool = True) -> str:
        """``"1.4x (95% CI 0.9x to 2.3x)"`` for prose, ``"1.4x (0.9x to 2.3x)"`` without
        ``label``."""
        head = Speedup(self.ratio, self.kind).text(digits)
        tag = f"{100 * self.confidence:g}% CI " if label else ""
        return f"{head} ({tag}{self.interval_text(digits)})"


def speedup_interval(
    curves: pd.DataFrame,
    threshold: float,
    method: str,
    baseline: str,
    what: str = "evals",
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SpeedupInterval:
    """Speed-up of ``method`` over ``baseline`` with a percentile bootstrap interval.

    The point estimate is :func:`speedup` of :func:`reach_summary`: the ratio of the
    baseline's median evaluations (or time) to reach ``threshold`` to the method's, a
    run that never reaches it counting as needing more than it had. The interval
    resamples the seeds with replacement, ``n_boot`` times, keeping both methods' runs of
    a drawn seed together (the methods share their seeds, and runs of one seed may be
    alike), and takes the ratio of medians of each resample. A run that never reached
    the level needs more than its censored value (its number of evaluations or its time),
    so where censored runs decide a median the resample's ratio is only known to lie
    between two bounds: the lower one takes the baseline's censored runs at their
    censored values and the method's as never reaching it (ratio 0 if that decides the
    method's median), the upper one the other way round (``inf`` if the baseline's
    median is censored). The interval runs from the ``(1 - confidence) / 2`` quantile of
    the lower bounds to the ``(1 + confidence) / 2`` quantile of the upper bounds, taken
    at resampled values (no interpolation); without censoring both bounds are the ratio.

    Args:
        curves: output of :func:`~hwml.optimize.analysis.best_so_far`, with one run per
            seed of each of the two methods (other methods are ignored).
        threshold: objective level, in the objective's unit.
        method: the method whose speed-up is computed, e.g. ``"hw-ieci"``.
        baseline: the method it is compared with, e.g. ``"ei"``.
        what: ``"evals"`` or ``"time_s"``.
        n_boot: bootstrap resamples.
        confidence: nominal coverage of the interval, in (0, 1).
        seed: seed of the resampling.

    Returns:
        The speed-up and its interval.

    Raises:
        ValueError: ``what``, ``n_boot`` or ``confidence`` is invalid, a method has no
            runs, or the two methods were not run with the same seeds.
    """
    if what not in ("evals", "time_s"):
        raise ValueError(f"what must be 'evals' or 'time_s', got {what!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    pair = curves[curves["method"].isin([method, baseline])]
    times = reach_times(pair, threshold)
    runs = {
        m: times[times["method"] == m].set_index("seed").sort_index() for m in (method, baseline)
    }
    for m, frame in runs.items():
        if frame.empty:
            raise ValueError(f"no runs of {m!r} in the curves")
    seeds = runs[method].index
    if not seeds.equals(runs[baseline].index):
        raise ValueError(f"{method!r} and {baseline!r} were not run with the same seeds")
    point = speedup(reach_summary(pair, threshold), method, baseline, what)

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seeds), size=(int(n_boot), len(seeds)))

    def medians(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per resample, the median with censored runs at their bound and at ``inf``."""
        reached = frame["reached"].to_numpy(bool)
        values = frame[what].to_numpy(float)
        low = np.median(values[draws], axis=1)
        high = np.median(np.where(reached, values, np.inf)[draws], axis=1)
        return low, high

    mine_low, mine_high = medians(runs[method])
    theirs_low, theirs_high = medians(runs[baseline])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_low = theirs_low / mine_high  # 0 where the method's median is censored
        ratio_high = theirs_high / mine_low  # inf where the baseline's median is censored
    lower = float(np.quantile(ratio_low, (1.0 - confidence) / 2.0, method="lower"))
    upper = float(np.quantile(ratio_high, (1.0 + confidence) / 2.0, method="higher"))
    return SpeedupInterval(
        ratio=point.ratio,
        kind=point.kind,
        lower=lower,
        upper=upper,
        confidence=float(confidence),
        n_boot=int(n_boot),
        n_seeds=len(seeds),
    )


def tolerance_sweep(
    curves: pd.DataFrame,
    optimum: float,
    tolerances: Sequence[float] | np.ndarray,
    method: str,
    baseline: str,
) -> pd.DataFrame:
    """Reach statistics and speed-ups for near-optimal regions of several widths.

    Args:
        curves: output of :func:`~hwml.optimize.analysis.best_so_far`.
        optimum: the best attainable objective (e.g. the best feasible row of a table).
        tolerances: widths of the region ``objective <= optimum + tolerance``.
        method: the method whose speed-up is computed, e.g. ``"hw-ieci"``.
        baseline: the method it is compared with, e.g. ``"ei"``.

    Returns:
        One row per tolerance: ``tolerance``, ``threshold``, for each method of the
        curves ``median_evals[<m>]`` and ``reached[<m>]``, and ``speedup_evals``,
        ``speedup_time`` (ratios; lower bounds where ``*_kind`` is ``"lower"``) with
        ``speedup_evals_kind`` and ``speedup_time_kind``.
    """
    rows = []
    for tol in tolerances:
        threshold = float(optimum) + float(tol)
        summary = reach_summary(curves, threshold + 1e-12)
        row: dict[str, Any] = {"tolerance": float(tol), "threshold": threshold}
        for m in summary.index:
            row[f"median_evals[{m}]"] = float(summary.loc[m, "median_evals"])
            row[f"reached[{m}]"] = float(summary.loc[m, "reached"])
        for what, label in (("evals", "speedup_evals"), ("time_s", "speedup_time")):
            s = speedup(summary, method, baseline, what)
            row[label], row[f"{label}_kind"] = s.ratio, s.kind
        rows.append(row)
    return pd.DataFrame(rows)


def compare_final(frame: pd.DataFrame, value: str, method: str, baseline: str) -> dict[str, float]:
    """Compare one number per run (e.g. final hypervolume) between two methods.

    Args:
        frame: one row per run with ``method`` and the column ``value``.
        value: the compared column.
        method: first method.
        baseline: second method.

    Returns:
        ``mean`` and ``std`` of each (``mean_method``, ``std_method``, ``mean_baseline``,
        ``std_baseline``), ``difference`` (mean of method minus mean of baseline) and
        ``p_value`` of a two-sided Mann-Whitney U test (NaN with fewer than two runs
        each).
    """
    a = frame.loc[frame["method"] == method, value].to_numpy(dtype=float)
    b = frame.loc[frame["method"] == baseline, value].to_numpy(dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"no runs of {method!r} or {baseline!r} in the frame")
    p = math.nan
    if len(a) >= 2 and len(b) >= 2:
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return {
        "mean_method": float(a.mean()),
        "std_method": float(a.std(ddof=1)) if len(a) > 1 else math.nan,
        "mean_baseline": float(b.mean()),
        "std_baseline": float(b.std(ddof=1)) if len(b) > 1 else math.nan,
        "difference": float(a.mean() - b.mean()),
        "p_value": p,
    }
