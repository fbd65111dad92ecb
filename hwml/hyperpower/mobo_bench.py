"""Multi-objective search on a tabular HyperPower benchmark: HW-EHVI against its baselines.

Each method of :data:`MOBO_METHODS` searches a benchmark folder's table for the front of
test error, energy per image and inference runtime, with the same number of evaluations
and many seeds. ``"hw-ehvi"`` models only the error with a GP and predicts energy and
runtime a priori with HyperPower's linear models of the structure
(:func:`~hwml.hyperpower.models.fit_hardware_models`, fitted on ``structures.csv``);
``"parego"``, ``"nsga"`` and ``"random"`` see only what the evaluations measure.

Score: the hypervolume of the *measured* objectives of each run's successful evaluations.
Every objective is put on one scale before it is taken (:class:`HypervolumeScale`):
``(log10(v) - lo) / (hi - lo)``, with ``lo`` and ``hi`` the smallest and largest
``log10`` of the objective over the whole table (rows with all objectives finite), so
every row lies in ``[0, 1]^3``; the reference point is 1.1 in every coordinate. The same
score of the whole table's front is the ceiling a search can reach.

Run ``python -m hwml.hyperpower.mobo_bench --seeds 20 --evals 50 --out runs.csv``
(``--quick`` for a small check, ``--help`` for options); on a GPU,
``--live DIR --seeds 3 --evals 30 --init 5`` trains and measures every chosen network
instead (:func:`mobo_live`). In a notebook::

    from hwml.hyperpower.mobo_bench import hypervolume_summary, mobo_benchmark

    bench = mobo_benchmark(seeds=20, n_evals=50, n_jobs=2)
    bench.curves                       # method, seed, iteration, hypervolume
    hypervolume_summary(bench.final)   # mean and bootstrap 95 % CI per method
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from tqdm import tqdm

from hwml.data import dataset_path
from hwml.hyperpower.models import StructuralModel, fit_hardware_models
from hwml.hyperpower.table import benchmark_objective, read_table
from hwml.optimize import ParetoSettings, TabularObjective, minimize_pareto, nondominated_ranks

__all__ = [
    "DEFAULT_FOLDER",
    "MOBO_METHODS",
    "MOBO_OBJECTIVES",
    "HypervolumeScale",
    "MoboBenchmark",
    "hypervolume_curves",
    "hypervolume_summary",
    "main",
    "mobo_benchmark",
    "mobo_live",
    "read_mobo_live",
]

DEFAULT_FOLDER = "hyperpower-nvidia-h200-cued-digits"
"""The benchmark folder under ``data/`` that :func:`mobo_benchmark` reads by default."""

MOBO_METHODS = ("hw-ehvi", "parego", "nsga", "random")
"""The methods compared, in the order of the tables."""

MOBO_OBJECTIVES = ("objective", "energy_per_image_mj", "runtime_ms")
"""The minimized quantities: test error (the tabular objective's ``objective``), energy
per image (mJ) and inference runtime of a batch (ms)."""


@dataclass(frozen=True)
class HypervolumeScale:
    """The common scale on which hypervolumes are taken.

    Attributes:
        objectives: the objective columns.
        lo: smallest ``log10`` of each objective over the table.
        hi: largest ``log10`` of each objective over the table.
        reference: the reference point on the normalized scale.
    """

    objectives: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    reference: np.ndarray

    @classmethod
    def from_table(
        cls, table: pd.DataFrame, objectives: Sequence[str], margin: float = 0.1
    ) -> HypervolumeScale:
        """The scale of a table whose columns are named like ``objectives``.

        Args:
            table: one row per configuration with positive objective values.
            objectives: the objective columns.
            margin: the reference point is ``1 + margin`` in every coordinate.
        """
        values = table[list(objectives)].to_numpy(dtype=float)
        values = values[np.all(np.isfinite(values) & (values > 0), axis=1)]
        if len(values) == 0:
            raise ValueError(f"no row of the table has positive finite {list(objectives)}")
        logs = np.log10(values)
        return cls(
            tuple(objectives),
            logs.min(axis=0),
            logs.max(axis=0),
            np.full(len(objectives), 1.0 + margin),
        )

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """``(log10(v) - lo) / (hi - lo)`` column by column; non-positive values give NaN."""
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.where(v > 0, v, np.nan))
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        return (logs - self.lo) / span

    def hypervolume(self, values: np.ndarray) -> float:
        """Hypervolume of raw objective rows (rows with NaN or beyond the reference skipped)."""
        x = self.normalize(values)
        x = x[np.all(np.isfinite(x), axis=1) & np.all(x < self.reference, axis=1)]
        return float(HV(ref_point=self.reference)(x)) if len(x) else 0.0


@dataclass(frozen=True)
class MoboBenchmark:
    """What :func:`mobo_benchmark` measured.

    Attributes:
        histories: every run's history (:func:`~hwml.optimize.minimize_pareto`'s columns).
        curves: ``method``, ``seed``, ``iteration``, ``cumulative_time_s`` (s, measured
            training time plus the method's own overhead) and ``hypervolume`` of the
            run's evaluations so far.
        final: one row per run: ``method``, ``seed``, ``hypervolume``, ``n_ok``
            (successful evaluations), ``n_front`` (non-dominated ones),
            ``overhead_mean_s`` and ``overhead_last_s`` (s, time to choose a point, over
            the run and at its last evaluation), ``run_s`` (s, wall time of the run).
        ceiling: hypervolume of the whole table.
        scale: the normalization of the hypervolumes.
        models: the hardware models ``"hw-ehvi"`` used, with their cross-validated
            errors in ``models[name].model.cv_summary()``.
        wall_s: wall time of all the runs (s).
    """

    histories: pd.DataFrame
    curves: pd.DataFrame
    final: pd.DataFrame
    ceiling: float
    scale: HypervolumeScale
    models: dict[str, StructuralModel]
    wall_s: float


def hypervolume_curves(history: pd.DataFrame, scale: HypervolumeScale) -> pd.DataFrame:
    """Hypervolume of the successful evaluations so far, after each evaluation, per run.

    Args:
        history: concatenated histories holding the columns of ``scale.objectives``.
        scale: the normalization.

    Returns:
        ``method``, ``seed``, ``iteration``, ``cumulative_time_s`` (s) and
        ``hypervolume``, sorted by run and iteration.
    """
    frame = history.sort_values(["method", "seed", "iteration"]).reset_index(drop=True)
    values = frame[list(scale.objectives)].to_numpy(dtype=float, copy=True)
    values[(frame["status"] != "ok").to_numpy()] = np.nan
    hv = np.empty(len(frame))
    for _, idx in frame.groupby(["method", "seed"], sort=False).indices.items():
        for k, i in enumerate(idx):
            hv[i] = scale.hypervolume(values[idx[: k + 1]])
    out = frame[["method", "seed", "iteration", "cumulative_time_s"]].copy()
    out["hypervolume"] = hv
    return out


def hypervolume_summary(
    final: pd.DataFrame, n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean final hypervolume per method with a percentile bootstrap interval over seeds.

    Args:
        final: :attr:`MoboBenchmark.final` (``method``, ``seed``, ``hypervolume``).
        n_boot: bootstrap resamples of the seeds.
        confidence: level of the interval.
        seed: seed of the resampling.

    Returns:
        ``method``, ``n`` (seeds), ``mean``, ``lower``, ``upper``, ``median``, ``std``,
        ordered by decreasing mean.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for method, part in final.groupby("method", sort=False):
        v = part["hypervolume"].to_numpy(dtype=float)
        boots = v[rng.integers(len(v), size=(n_boot, len(v)))].mean(axis=1)
        tail = (1.0 - confidence) / 2
        rows.append(
            {
                "method": method,
                "n": len(v),
                "mean": float(v.mean()),
                "lower": float(np.quantile(boots, tail)),
                "upper": float(np.quantile(boots, 1.0 - tail)),
                "median": float(np.median(v)),
                "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            }
        )
    out = pd.DataFrame(rows, columns=["method", "n", "mean", "lower", "upper", "median", "std"])
    return out.sort_values("mean", ascending=False, ignore_index=True)


_SHARED: dict[str, Any] = {}


def _init_worker(shared: dict[str, Any]) -> None:
    _SHARED.clear()
    _SHARED.update(shared)


def _one_run(job: tuple[str, int]) -> tuple[pd.DataFrame, float]:
    method, seed = job
    s = _SHARED
    start = time.perf_counter()
    history = minimize_pareto(
        s["objective"],
        s["objective"].space,
        objectives=s["objectives"],
        method=method,
        n_evals=s["n_evals"],
        n_init=s["n_init"],
        seed=seed,
        settings=s["settings"],
        predictors=s["predictors"] if method == "hw-ehvi" else None,
    )
    return history, time.perf_counter() - start


def _run_all(
    shared: dict[str, Any], jobs: list[tuple[str, int]], n_jobs: int, progress: bool
) -> list[tuple[pd.DataFrame, float]]:
    bar = tqdm(total=len(jobs), desc="mobo runs", disable=not progress, file=sys.stderr)
    results: list[tuple[pd.DataFrame, float] | None] = [None] * len(jobs)
    if n_jobs == 1:
        saved = dict(_SHARED)
        try:
            _init_worker(shared)
            for i, job in enumerate(jobs):
                results[i] = _one_run(job)
                bar.update()
        finally:
            _init_worker(saved)
    else:
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(
            max_workers=min(n_jobs, len(jobs)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(shared,),
        ) as pool:
            futures = {pool.submit(_one_run, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    bar.close()
    return [r for r in results if r is not None]


def mobo_benchmark(
    folder: str | os.PathLike[str] = DEFAULT_FOLDER,
    *,
    methods: Sequence[str] = MOBO_METHODS,
    seeds: int | Sequence[int] = 20,
    n_evals: int = 50,
    n_init: int = 10,
    settings: ParetoSettings | None = None,
    features: str | Sequence[str] = "derived",
    n_jobs: int = 1,
    progress: bool = True,
) -> MoboBenchmark:
    """Run every method for every seed on a benchmark folder and score the fronts found.

    Args:
        folder: a benchmark folder, or its name under ``data/``.
        methods: methods of :data:`~hwml.optimize.PARETO_METHODS`.
        seeds: a number of seeds (``0 .. seeds - 1``) or the seeds.
        n_evals: evaluations per run.
        n_init: initial random evaluations of the model-based methods and the GA.
        settings: search settings (default :class:`~hwml.optimize.ParetoSettings`).
        features: feature set of the linear hardware models
            (:data:`~hwml.hyperpower.models.FEATURE_SETS`).
        n_jobs: worker processes (1: in this process).
        progress: show a progress bar on stderr.

    Returns:
        Histories, hypervolume curves, final hypervolumes per run, and the ceiling.
    """
    start = time.perf_counter()
    path = dataset_path(folder)
    objective: TabularObjective = benchmark_objective(path)
    structures = read_table(Path(path), "structures")
    models = fit_hardware_models(
        structures, features=features, targets={n: n for n in MOBO_OBJECTIVES[1:]}
    )
    table = objective.table.rename(columns={objective.objective: "objective"})
    scale = HypervolumeScale.from_table(table, MOBO_OBJECTIVES)
    ceiling = scale.hypervolume(table[list(MOBO_OBJECTIVES)].to_numpy(dtype=float))
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    jobs = [(m, s) for m in dict.fromkeys(methods) for s in dict.fromkeys(seed_list)]
    shared = {
        "objective": objective,
        "objectives": MOBO_OBJECTIVES,
        "n_evals": n_evals,
        "n_init": n_init,
        "settings": settings or ParetoSettings(),
        "predictors": dict(models),
    }
    results = _run_all(shared, jobs, max(1, int(n_jobs)), progress)
    histories = pd.concat([h for h, _ in results], ignore_index=True)
    curves = hypervolume_curves(histories, scale)
    final = _final(
        histories, curves, scale, {job: t for job, (_, t) in zip(jobs, results, strict=True)}
    )
    return MoboBenchmark(
        histories, curves, final, ceiling, scale, dict(models), time.perf_counter() - start
    )


def _final(
    histories: pd.DataFrame,
    curves: pd.DataFrame,
    scale: HypervolumeScale,
    run_s: Mapping[tuple[str, int], float],
) -> pd.DataFrame:
    rows = []
    last = curves.sort_values("iteration").groupby(["method", "seed"], sort=False).tail(1)
    hv = {(m, s): v for m, s, v in last[["method", "seed", "hypervolume"]].itertuples(False)}
    for (method, seed), run in histories.groupby(["method", "seed"], sort=False):
        run = run.sort_values("iteration")
        ok = run[run["status"] == "ok"]
        x = scale.normalize(ok[list(scale.objectives)].to_numpy(dtype=float))
        rows.append(
            {
                "method": method,
                "seed": int(seed),
                "hypervolume": hv[(method, seed)],
                "n_ok": len(ok),
                "n_front": int(np.sum(nondominated_ranks(x) == 0)) if len(x) else 0,
                "overhead_mean_s": float(run["overhead_s"].mean()),
                "overhead_last_s": float(run["overhead_s"].iloc[-1]),
                "run_s": float(run_s.get((method, int(seed)), np.nan)),
            }
        )
    return pd.DataFrame(rows)


def mobo_live(
    folder: str | os.PathLike[str] = DEFAULT_FOLDER,
    out: str | os.PathLike[str] = "mobo-live",
    *,
    methods: Sequence[str] = MOBO_METHODS,
    seeds: Sequence[int] = (0,),
    n_evals: int = 30,
    n_init: int = 5,
    device: str = "cuda",
    epochs: int = 10,
    settings: ParetoSettings | None = None,
    features: str | Sequence[str] = "derived",
    objective: Any = None,
    git_commit: str | None = None,
    cluster: Any = None,
) -> list[Path]:
    """Live multi-objective searches: every chosen network is trained and measured.

    Each (method, seed) run searches the benchmark folder's whole space (not only its
    table) for the front of test error, energy per image and inference runtime. The
    objective trains the network (:class:`~hwml.hyperpower.objective.CNNObjective` on
    the folder's data set, image size and inference batch) and then measures its
    inference on ``device``; ``"hw-ehvi"`` takes its energy and runtime predictions from
    linear models fitted on the folder's ``structures.csv``. Each run writes
    ``OUT/<method>-s<seed>.csv`` (the history) and a ``.json`` beside it (command, date,
    commit, settings, the models' cross-validated errors). A run whose CSV exists is
    skipped, so an interrupted call resumes at the first unfinished run. The runs are
    tasks of ``cluster`` (:func:`hwml.cluster.open_cluster`: one Dask worker per GPU by
    default, each run on one worker, several runs side by side); this process alone
    writes their files, as each finishes. A run that fails (or whose worker dies) is
    reported with its reason and left for the next call.

    Args:
        folder: the benchmark folder (or its name under ``data/``).
        out: folder of the histories.
        methods: methods of :data:`~hwml.optimize.PARETO_METHODS`.
        seeds: search seeds.
        n_evals: evaluations (trainings) per run.
        n_init: initial random evaluations.
        device: where to train and measure (``cuda``, ``cuda:N`` or ``cpu``).
        epochs: training epochs per evaluation.
        settings: search settings.
        features: feature set of the linear hardware models.
        objective: the objective to use instead of training for real (tests).
        git_commit: recorded in the sidecar (default: the repository's HEAD, ``unknown`` without git).
        cluster: where the runs go: a ``--cluster`` string or an open
            :class:`~hwml.cluster.Cluster`; None: ``"local"`` for ``cuda``, this process
            otherwise (and always with a given ``objective``, which stays in this process).

    Returns:
        The history files of the runs made by this call (skipped runs not included).
    """
    import json
    from datetime import datetime
    from functools import partial

    from hwml.cluster import Cluster, open_cluster
    from hwml.data import git_commit as current_commit

    path = Path(dataset_path(folder))
    if git_commit is None:
        git_commit = current_commit() or "unknown"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = []
    for method in methods:
        for seed in seeds:
            csv_path = out_dir / f"{method}-s{int(seed)}.csv"
            if csv_path.exists():
                print(f"{csv_path} exists: skipped", file=sys.stderr)
            else:
                todo.append(((method, int(seed)), (method, int(seed))))
    if not todo:
        return []
    run = partial(
        _mobo_live_run,
        str(path),
        n_evals=n_evals,
        n_init=n_init,
        device=device,
        epochs=epochs,
        settings=settings,
        features=features,
        objective=objective,
    )
    if cluster is None:
        cluster = "local" if device == "cuda" and objective is None else "process"
    own = not isinstance(cluster, Cluster)
    where = open_cluster(cluster, device=device) if own else cluster
    written = []
    try:
        if not where.in_process:
            print(f"{len(todo)} run(s) on {where.describe()}", file=sys.stderr)
        for result in where.map_unordered(run, todo):
            method, seed = result.key
            csv_path = out_dir / f"{method}-s{seed}.csv"
            if not result.ok:
                print(f"{csv_path}: run failed ({result.error}); rerun to retry", file=sys.stderr)
                continue
            history, run_s, models_cv = result.value
            partial_path = csv_path.with_suffix(".csv.partial")
            history.to_csv(partial_path, index=False)
            partial_path.replace(csv_path)  # a run is either complete on disk or absent
            facts = {
                "command": " ".join(sys.argv),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": git_commit,
                "folder": str(path),
                "method": method,
                "seed": seed,
                "n_evals": n_evals,
                "n_init": n_init,
                "device": device,
                "epochs": epochs,
                "run_s": run_s,
                "worker": result.worker,
                "models_cv": models_cv,
            }
            csv_path.with_suffix(".json").write_text(json.dumps(facts, indent=1, default=float))
            written.append(csv_path)
            print(f"{csv_path}: {len(history)} evaluations in {run_s:.0f} s", file=sys.stderr)
    finally:
        if own:
            where.close()
    return written


def _mobo_live_run(
    folder: str,
    method: str,
    seed: int,
    *,
    n_evals: int,
    n_init: int,
    device: str,
    epochs: int,
    settings: ParetoSettings | None,
    features: str | Sequence[str],
    objective: Any,
) -> tuple[pd.DataFrame, float, dict[str, Any]]:
    """One live run of :func:`mobo_live` (a task: it runs where the cluster puts it).

    Returns:
        The history, the run's wall time (s) and the hardware models' cross-validated
        errors.
    """
    from hwml.data import read_provenance
    from hwml.hyperpower.table import benchmark_space

    path = Path(folder)
    structures = read_table(path, "structures")
    models = fit_hardware_models(
        structures, features=features, targets={n: n for n in MOBO_OBJECTIVES[1:]}
    )
    if objective is None:
        from hwml.hyperpower.objective import CNNObjective

        objective = CNNObjective(
            device,
            epochs=epochs,
            image_size=int(structures["image_size"].iloc[0]),
            dataset=read_provenance(path).get("dataset", "digits"),
            inference_batch=int(structures["batch"].iloc[0]),
        )
    start = time.perf_counter()
    history = minimize_pareto(
        objective,
        benchmark_space(path),
        objectives=MOBO_OBJECTIVES,
        method=method,
        n_evals=n_evals,
        n_init=n_init,
        seed=int(seed),
        settings=settings,
        predictors=dict(models) if method == "hw-ehvi" else None,
    )
    models_cv = {
        n: m.model.cv_summary() for n, m in models.items() if hasattr(m.model, "cv_summary")
    }
    return history, time.perf_counter() - start, models_cv


def read_mobo_live(
    folder: str | os.PathLike[str] = DEFAULT_FOLDER, live: str = "mobo-live"
) -> MoboBenchmark:
    """Score the live searches that :func:`mobo_live` wrote, like :func:`mobo_benchmark`.

    The hypervolumes use the scale of the folder's table, so a live run and a tabular one
    are on one axis (a live network may beat the table's best values, so more than the
    table's ceiling is possible).

    Args:
        folder: the benchmark folder (or its name under ``data/``).
        live: the histories' folder, relative to ``folder`` unless absolute.

    Returns:
        Histories, curves and final hypervolumes of every ``<method>-s<seed>.csv``;
        ``models`` is empty and ``wall_s`` the sum of the runs' recorded wall times.

    Raises:
        FileNotFoundError: the folder holds no history.
    """
    import json

    path = Path(dataset_path(folder))
    live_dir = Path(live) if Path(live).is_absolute() else path / live
    files = sorted(live_dir.glob("*-s*.csv"))
    if not files:
        raise FileNotFoundError(
            f"no live history (<method>-s<seed>.csv) in {live_dir}; run "
            f"`python -m hwml.hyperpower.mobo_bench --folder {path} --live {live_dir}` on a GPU"
        )
    histories = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    run_s = {}
    for f in files:
        side = f.with_suffix(".json")
        if side.exists():
            facts = json.loads(side.read_text())
            run_s[(facts["method"], int(facts["seed"]))] = float(facts["run_s"])
    tabular = benchmark_objective(path)
    table = tabular.table.rename(columns={tabular.objective: "objective"})
    scale = HypervolumeScale.from_table(table, MOBO_OBJECTIVES)
    ceiling = scale.hypervolume(table[list(MOBO_OBJECTIVES)].to_numpy(dtype=float))
    curves = hypervolume_curves(histories, scale)
    final = _final(histories, curves, scale, run_s)
    return MoboBenchmark(histories, curves, final, ceiling, scale, {}, float(sum(run_s.values())))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the comparison, print the summary, optionally save the tables."""
    parser = argparse.ArgumentParser(
        prog="python -m hwml.hyperpower.mobo_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--folder", default=DEFAULT_FOLDER, help="benchmark folder or name")
    parser.add_argument("--seeds", type=int, default=20, help="seeds per method")
    parser.add_argument("--evals", type=int, default=50, help="evaluations per run")
    parser.add_argument("--init", type=int, default=10, help="initial random evaluations")
    parser.add_argument("--methods", nargs="+", default=list(MOBO_METHODS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--out", help="CSV of the final hypervolume per run")
    parser.add_argument("--curves", help="CSV of the hypervolume after each evaluation")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 20 evaluations, 5 init")
    parser.add_argument(
        "--live",
        metavar="DIR",
        help="train and measure for real instead (seeds 0 .. --seeds - 1, one history per "
        "method and seed into DIR; resumable)",
    )
    parser.add_argument("--device", default="cuda", help="--live: cuda, cuda:N or cpu")
    parser.add_argument("--epochs", type=int, default=10, help="--live: training epochs")
    parser.add_argument(
        "--cluster",
        help="--live: where the runs go (hwml --cluster: local = one Dask worker per GPU, "
        "the default with --device cuda; local:N; process; tcp://HOST:PORT)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.evals, args.init = 3, 20, 5
    if args.live:
        mobo_live(
            args.folder,
            args.live,
            methods=args.methods,
            seeds=range(args.seeds),
            n_evals=args.evals,
            n_init=args.init,
            device=args.device,
            epochs=args.epochs,
            cluster=args.cluster,
        )
        return 0
    bench = mobo_benchmark(
        args.folder,
        methods=args.methods,
        seeds=args.seeds,
        n_evals=args.evals,
        n_init=args.init,
        n_jobs=args.jobs,
    )
    summary = hypervolume_summary(bench.final)
    overhead = bench.final.groupby("method")[["overhead_mean_s", "overhead_last_s"]].mean()
    summary = summary.join(overhead, on="method")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"ceiling (whole table): {bench.ceiling:.4f}")
    for name, model in bench.models.items():
        cv = model.model.cv_summary() if hasattr(model.model, "cv_summary") else {}
        print(f"{name} model CV: " + ", ".join(f"{k}={v:.3g}" for k, v in cv.items()))
    print(
        f"{args.seeds} seeds x {len(args.methods)} methods x {args.evals} evaluations "
        f"in {bench.wall_s:.1f} s with {args.jobs} process(es)"
    )
    if args.out:
        bench.final.assign(ceiling=bench.ceiling).to_csv(args.out, index=False)
    if args.curves:
        bench.curves.to_csv(args.curves, index=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
