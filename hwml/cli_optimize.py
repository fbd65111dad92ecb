"""``hwml optimize``: the tabular CNN benchmark and hardware-constrained searches.

    hwml optimize benchmark structures --out DIR [--device cuda] [--shard I/N] ...
    hwml optimize benchmark train      --out DIR [--device cuda] [--workers W] [--shard I/N] ...
    hwml optimize benchmark summary    --out DIR [--quantile Q]
    hwml optimize run  --benchmark DIR --method hw-ieci,ei --seeds 0-19 --n-evals 50
                       (--power-budget-w W | --power-quantile Q)
                       (--mem-budget-bytes B | --mem-quantile Q) --out runs/history.csv
    hwml optimize live --device cuda --structures DIR --n-evals 30
                       (--power-budget-w W | --power-quantile Q) ... --out history.csv
                       [--cluster local|local:N|tcp://HOST:PORT] [--batch Q]
    hwml optimize parallel --benchmark DIR --qs 1,2,4,8 --seeds 0-29

``run`` searches a pre-measured benchmark (no training; any machine); ``live`` trains every
chosen network for real. Both take HyperPower's linear power and memory models fitted on
the benchmark's ``structures.csv`` as a-priori constraints. Each history file gets a JSON
file beside it (same name, ``.json``) with the budgets, the models' cross-validated
errors, the settings and the run's incumbent (the feasible evaluation with the lowest GP
posterior mean, :func:`hwml.optimize.find_incumbent`), which the printed table reports
beside the lowest observed value.

One module for the three sub-commands on purpose: they share the search options, the
budget handling and the sidecar writer; the logic itself lives in :mod:`hwml.hyperpower`
and :mod:`hwml.optimize`.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwml import cli_args
from hwml.data import DatasetError, git_commit, json_safe, now_iso, read_provenance

# Deliberately lazy: pandas, hwml.optimize (scipy), hwml.tasks (torch), hwml.hyperpower,
# hwml.profile and hwml.hardware are imported inside the functions that use them. At module
# level they would add about 0.8 s to every `hwml` command, `hwml --help` and `hwml describe`
# included (tests/test_cli.py checks that `hwml --help` loads neither pandas nor scipy).

__all__ = ["register", "parse_seeds"]

DATASET_CHOICES: tuple[str, ...] = ("digits", "cued-digits", "cued-digits-4x4", "mnist", "cifar10")
"""``--dataset`` choices: :data:`hwml.tasks.images.DATASETS`, spelled out here so that the
parser needs no torch (a test checks that the two agree)."""

_DATASET_HELP = (
    "digits (scikit-learn's bundled digits: every network size reaches about the same "
    "error), cued-digits (generated from them: the label is the digit in the cell of a "
    "3x3 grid drawn in inverted contrast; larger networks reach clearly lower error; "
    "native size 24, use --image-size 24), cued-digits-4x4 (the same with a 4x4 grid, "
    "native size 32: harder, the smallest networks stay at chance), mnist or cifar10 "
    "(read from --data-root)"
)


# ---------------------------------------------------------------------- argument types


def parse_seeds(text: str) -> list[int]:
    """``"0-19"``, ``"3"`` or ``"0,2,5-7"`` -> the listed non-negative seeds, in order."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds += range(lo, hi + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 0-19 or 0,2,5-7, got {text!r}"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected non-negative seeds, got {text!r}")
    return list(dict.fromkeys(seeds))


def _methods(text: str) -> list[str]:
    from hwml.optimize import METHODS

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [m for m in names if m not in METHODS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {bad or text!r}; known: {', '.join(METHODS)}"
        )
    return names


def _quantile(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < q < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return q


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _features(text: str) -> str | list[str]:
    from hwml.hyperpower.models import FEATURE_SETS

    if text in FEATURE_SETS:
        return text
    cols = [t.strip() for t in text.split(",") if t.strip()]
    if not cols:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(FEATURE_SETS)} or a column list")
    return cols


def _range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, e.g. 16-512, got {text!r}") from None
    if not 1 <= lo < hi:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW < HIGH, got {text!r}")
    return lo, hi


def _command() -> str:
    return "hwml " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# ---------------------------------------------------------------------- helpers


class _UserError(Exception):
    """An error whose message is all the user needs (printed without a traceback)."""


def _structures_path(text: str) -> Path:
    p = Path(text)
    path = p / "structures.csv" if p.is_dir() or p.suffix != ".csv" else p
    if not path.exists():
        raise _UserError(
            f"no structures table at {str(path)!r}: measure one with "
            "`hwml optimize benchmark structures --out DIR` on the GPU first"
        )
    return path


def _hardware(args: argparse.Namespace, structures: Any) -> Any:
    """The budgets of the command line with their constraint models
    (:func:`hwml.hyperpower.models.hardware_budgets`)."""
    from hwml.hyperpower.models import hardware_budgets

    try:
        return hardware_budgets(
            structures,
            power_budget_w=args.power_budget_w,
            mem_budget_bytes=args.mem_budget_bytes,
            power_quantile=args.power_quantile,
            mem_quantile=args.mem_quantile,
            features=args.features,
        )
    except ValueError as err:
        raise _UserError(str(err)) from None


def _history_path(template: str, method: str, seed: int, many: bool) -> Path:
    if "{method}" in template or "{seed}" in template:
        return Path(template.format(method=method, seed=seed))
    path = Path(template)
    if not many:
        return path
    return path.with_name(f"{path.stem}-{method}-s{seed}{path.suffix or '.csv'}")


def _best(history: Any) -> float:
    ok = history[(history["status"] == "ok") & history["feasible"].astype(bool)]
    return float(ok["objective"].min()) if len(ok) else math.nan


def _incumbent(history: Any, space: Any, seed: int) -> dict[str, Any] | None:
    """The run's noise-aware incumbent (:func:`hwml.optimize.find_incumbent`), or None when
    no evaluation succeeded within the budgets."""
    from dataclasses import asdict

    from hwml.optimize import find_incumbent

    if math.isnan(_best(history)):
        return None
    return asdict(find_incumbent(history, space, seed=seed))


def _write_sidecar(path: Path, info: dict[str, Any], commit: str | None) -> None:
    info = {**info, "command": _command(), "date": now_iso(), "git_commit": commit or git_commit()}
    path.with_suffix(".json").write_text(
        json.dumps(json_safe(info), indent=1, default=float) + "\n"
    )


def _search(
    args: argparse.Namespace,
    objective: Any,
    space: Any,
    structures: Any,
    info: dict[str, Any],
    candidates: Any = None,
) -> int:
    from hwml.optimize import BATCH_METHODS, check_budgets, minimize, minimize_batch

    hardware = _hardware(args, structures)
    budgets = hardware.budgets
    runs = [(m, s) for m in args.method for s in args.seeds]
    many = len(runs) > 1
    print(
        f"budgets: power {budgets['power_w']} W, memory {budgets['mem_bytes']} bytes; "
        f"{len(runs)} run(s) of {args.n_evals} evaluations",
        file=sys.stderr,
    )
    cluster = getattr(args, "cluster_obj", None)
    q = int(getattr(args, "batch", 1) or 1)
    parallel = cluster is not None and (not cluster.in_process or q > 1)

    def one(method: str, seed: int) -> tuple:
        constraints = hardware.constraints(method)
        fraction = None
        if constraints:
            pool = space.encode(candidates) if candidates is not None else None
            fraction = check_budgets(space, constraints, seed=seed, pool=pool)
        path = _history_path(args.out, method, seed, many)
        path.parent.mkdir(parents=True, exist_ok=True)
        common = dict(
            method=method,
            n_evals=args.n_evals,
            n_init=args.n_init,
            seed=seed,
            history_path=path,
            progress=None if not args.no_progress and not parallel else False,
        )
        if parallel and method in BATCH_METHODS:
            history = minimize_batch(
                objective,
                space,
                constraints,
                q=q,
                mode=args.mode,
                executor=cluster.executor(),
                **common,
            )
        else:
            history = minimize(objective, space, constraints, **common)
        incumbent = _incumbent(history, space, seed)
        extra = (
            {
                "batch": q,
                "mode": args.mode,
                "cluster": str(cluster.spec),
                "workers": cluster.n_workers,
            }
            if parallel and method in BATCH_METHODS
            else {}
        )
        _write_sidecar(
            path,
            {
                **info,
                "method": method,
                "seed": seed,
                "n_evals": args.n_evals,
                "n_init": args.n_init,
                **extra,
                "budgets": budgets,
                "power_quantile": getattr(args, "power_quantile", None),
                "mem_quantile": getattr(args, "mem_quantile", None),
                "features": args.features,
                "models": hardware.report(),
                "fraction_predicted_feasible": fraction,
                "history": path.name,
                "incumbent": incumbent,
            },
            args.git_commit,
        )
        return (
            method,
            seed,
            len(history),
            incumbent["value"] if incumbent else math.nan,
            _best(history),
            float(history["cumulative_time_s"].iloc[-1]) if len(history) else 0.0,
            path,
        )

    if parallel:
        # searches side by side, each with q evaluations in flight, sharing the workers
        from concurrent.futures import ThreadPoolExecutor

        side_by_side = max(1, min(len(runs), cluster.n_workers // q))
        print(
            f"{side_by_side} search(es) at a time, {q} evaluation(s) in flight each, on "
            f"{cluster.describe()}",
            file=sys.stderr,
        )
        with ThreadPoolExecutor(side_by_side) as pool_:
            rows = list(pool_.map(lambda run: one(*run), runs))
    else:
        rows = [one(method, seed) for method, seed in runs]
    print(
        f"{'method':14s} {'seed':>4s} {'evals':>5s} {'incumbent':>10s} {'best observed':>13s} "
        f"{'time_s':>9s}  history"
    )
    for method, seed, n, value, best, t, path in rows:
        print(f"{method:14s} {seed:4d} {n:5d} {value:10.4f} {best:13.4f} {t:9.1f}  {path}")
    print(
        "incumbent: the feasible evaluation with the lowest GP posterior mean, valued at that "
        "mean (noise-aware; its configuration is in the .json beside each history); "
        "best observed: the lowest observed value",
        file=sys.stderr,
    )
    return 0


# ---------------------------------------------------------------------- commands


def _cmd_benchmark(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwml.hardware import open_device
    from hwml.hyperpower import models, runner, table
    from hwml.profile import SweepOptions
    from hwml.tasks.cnn import cnn_space

    if args.what == "summary":
        summary = table.summarize_benchmark(args.out)
        if (Path(args.out) / "structures.csv").exists():
            structures = pd.read_csv(Path(args.out) / "structures.csv")
            summary["budgets_at_quantile"] = {
                "quantile": args.quantile,
                **models.quantile_budgets(structures, args.quantile),
            }
        print(json.dumps(json_safe(summary), indent=1, default=float))
        return 0
    if args.what == "structures":
        opts = SweepOptions(
            power=not args.no_power,
            periods=args.periods,
            budget_ms=args.budget_ms,
            progress=not args.no_progress,
        )
        space = cnn_space(filters=args.filters, dense_units=args.dense_units)
        device = open_device(args.device, power=not args.no_power)
        n = runner.measure_structures(
            args.out,
            device,
            args.n_structures,
            args.seed,
            args.batch,
            args.image_size,
            args.shard,
            dataset=args.dataset,
            space=space,
            opts=opts,
            progress=not args.no_progress,
            command=_command(),
            git_commit=args.git_commit,
            cluster=args.cluster,
        )
        print(f"{n} structures measured into {args.out}", file=sys.stderr)
        return 0
    n = runner.train_configs(
        args.out,
        args.device,
        args.n_configs,
        args.seed,
        args.epochs,
        args.workers,
        args.shard,
        batch_size=args.batch_size,
        data_root=args.data_root,
        cudnn_benchmark=bool(args.cudnn_benchmark),
        progress=not args.no_progress,
        command=_command(),
        git_commit=args.git_commit,
        cluster=args.cluster,
    )
    print(f"{n} configurations trained into {args.out}", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwml.hyperpower.table import benchmark_objective

    folder = Path(args.benchmark)
    structures_path = _structures_path(str(folder))
    structures = pd.read_csv(structures_path)
    objective = benchmark_objective(folder)
    info = {"mode": "tabular", "benchmark": str(folder), "pool_size": len(objective.candidates)}
    return _search(args, objective, objective.space, structures, info, objective.candidates)


def _cmd_live(args: argparse.Namespace) -> int:
    import pandas as pd

    from hwml.hyperpower.objective import CNNObjective
    from hwml.hyperpower.table import benchmark_space
    from hwml.tasks.cnn import cnn_space

    structures = None
    space = cnn_space()
    image_size, inference_batch = args.image_size, args.inference_batch
    dataset = args.dataset
    if args.structures:
        path = _structures_path(args.structures)
        structures = pd.read_csv(path)
        prov = read_provenance(path.parent)
        if "space" in prov:
            space = benchmark_space(path.parent)
        if dataset is None:
            dataset = prov.get("dataset")
        image_size = int(structures["image_size"].iloc[0]) if len(structures) else image_size
        inference_batch = int(structures["batch"].iloc[0]) if len(structures) else inference_batch
    elif any(
        v is not None
        for v in (
            args.power_budget_w,
            args.mem_budget_bytes,
            args.power_quantile,
            args.mem_quantile,
        )
    ):
        raise _UserError(
            "budgets need constraint models: pass --structures DIR (a table made "
            "by `hwml optimize benchmark structures`)"
        )
    else:
        structures = pd.DataFrame({"status": []})
    dataset = dataset or "digits"
    if dataset not in DATASET_CHOICES:
        raise _UserError(f"unknown dataset {dataset!r} in {args.structures}")
    objective = CNNObjective(
        args.device,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.train_seed,
        image_size=image_size,
        dataset=dataset,
        data_root=args.data_root,
        measure=not args.no_measure,
        inference_batch=inference_batch,
    )
    objective.data  # noqa: B018 - load (or fail on) the data before the search starts
    objective._data = None  # loaded again where it trains (not sent to every worker)
    info = {
        "mode": "live",
        "device": args.device,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_seed": args.train_seed,
        "dataset": dataset,
        "image_size": image_size,
        "inference_batch": inference_batch,
        "structures": args.structures,
        "gpu_name": objective.device.info.get("gpu_name")
        or objective.device.info.get("device_name"),
    }
    from hwml.cluster import open_cluster

    with open_cluster(args.cluster, device=args.device) as cluster:
        if not cluster.in_process:
            objective._device = None  # this process only proposes; workers train
        args.cluster_obj = cluster
        return _search(args, objective, space, structures, info)


def _cmd_parallel(args: argparse.Namespace) -> int:
    """``hwml optimize parallel``: HW-IECI with q trainings at once on the tabular
    benchmark's measured training times; histories kept under the folder, a summary printed."""
    import pandas as pd

    from hwml.hyperpower import hyperpower_problem
    from hwml.hyperpower.parallel import (
        PARALLEL_FILE,
        parallel_comparison,
        save_parallel_comparison,
    )
    from hwml.optimize import BOSettings, SearchSettings, batch_summary

    problem = hyperpower_problem(
        args.benchmark,
        power_quantile=args.power_quantile,
        mem_quantile=args.mem_quantile,
        features=args.features,
    )
    settings = SearchSettings(bo=BOSettings(n_restarts=args.gp_restarts, log_objective=True))
    histories = parallel_comparison(
        problem,
        qs=args.qs,
        modes=args.modes,
        seeds=args.seeds,
        n_evals=args.n_evals,
        n_init=args.n_init,
        settings=settings,
        n_jobs=args.jobs,
    )
    out = Path(args.out) if args.out else problem.folder / PARALLEL_FILE
    save_parallel_comparison(histories, out, command=_command(), commit=args.git_commit)
    summary = batch_summary(
        histories, problem.best_feasible_error() + args.near_optimal_tol + 1e-12, seed=0
    )
    cols = [
        "label",
        "reached",
        "median_evals",
        "median_time_s",
        "time_at_evals_s",
        "speedup_equal_evals",
        "speedup_reach",
        "efficiency",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[cols].round(3).to_string(index=False))
    print(f"histories: {out}", file=sys.stderr)
    return 0


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from hwml.optimize import HistoryError, InfeasibleBudgetError
        from hwml.tasks.images import DatasetNotFoundError

        try:
            return int(handler(args) or 0)
        except (
            _UserError,
            DatasetError,
            DatasetNotFoundError,
            HistoryError,
            InfeasibleBudgetError,
        ) as err:
            print(f"hwml optimize: error: {err}", file=sys.stderr)
            return 2

    return run


# ---------------------------------------------------------------------- parser


def _add_search_args(p: argparse.ArgumentParser, *, default_evals: int, default_init: int) -> None:
    p.add_argument(
        "--method",
        type=_methods,
        default=["hw-ieci"],
        help="search method(s), comma-separated (default hw-ieci); see hwml.optimize.METHODS",
    )
    p.add_argument(
        "--n-evals",
        type=_positive_int,
        default=default_evals,
        help=f"evaluations per run (default {default_evals})",
    )
    p.add_argument(
        "--n-init",
        type=_positive_int,
        default=default_init,
        help=f"initial random evaluations (default {default_init})",
    )
    budget = p.add_argument_group(
        "budgets (each given as a value or as a quantile of the "
        "structures' measured values; none = unconstrained)"
    )
    budget.add_argument("--power-budget-w", type=float, help="inference power budget (W)")
    budget.add_argument(
        "--power-quantile",
        type=_quantile,
        help="power budget at this quantile of the measured power, e.g. 0.6",
    )
    budget.add_argument("--mem-budget-bytes", type=float, help="inference memory budget (bytes)")
    budget.add_argument(
        "--mem-quantile",
        type=_quantile,
        help="memory budget at this quantile of the measured peak memory",
    )
    p.add_argument(
        "--features",
        type=_features,
        default="derived",
        help="features of the linear power/memory models: 'z' (the structural "
        "hyper-parameters, HyperPower's form), 'derived' (z plus params, FLOPs, "
        "activation bytes; default) or a comma-separated column list",
    )
    p.add_argument(
        "--out",
        required=True,
        help="history file (.csv or .jsonl); with several methods or seeds, "
        "'-METHOD-sSEED' is added to its name unless it holds {method}/{seed}",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--git-commit",
        default=None,
        help="commit to record when the tree has no .git (default: git rev-parse)",
    )


def register(subparsers: Any) -> None:
    """Add the ``optimize`` sub-command to the ``hwml`` parser's sub-parsers."""
    opt = subparsers.add_parser(
        "optimize",
        help="tabular CNN benchmark and hardware-constrained search (HW-IECI)",
        description=__doc__.splitlines()[0],
    )
    sub = opt.add_subparsers(dest="optimize_command", required=True)

    _register_benchmark(sub)
    _register_run(sub)
    _register_live(sub)
    _register_parallel(sub)


def _register_benchmark(sub: Any) -> None:
    """``hwml optimize benchmark structures | train | summary``."""
    b = sub.add_parser("benchmark", help="build (or summarize) the tabular CNN benchmark")
    b.add_argument(
        "what",
        choices=("structures", "train", "summary"),
        help="structures: phase (a), inference power/memory of each structure; "
        "train: phase (b), train each configuration; summary: print counts "
        "and spreads",
    )
    b.add_argument("--out", required=True, help="benchmark folder")
    b.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    b.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the structure list (structures) or the configuration list (train)",
    )
    b.add_argument("--shard", type=cli_args.shard, default=(0, 1), help="I/N: this process's share")
    b.add_argument(
        "--cluster",
        type=cli_args.cluster,
        default="local",
        help=cli_args.CLUSTER_HELP + "; train starts --workers per GPU",
    )
    b.add_argument("--no-progress", action="store_true")
    b.add_argument(
        "--git-commit",
        default=None,
        help="commit to record when the tree has no .git (default: git rev-parse)",
    )
    _add_structure_args(b.add_argument_group("structures"))
    _add_train_args(b.add_argument_group("train"))
    b.set_defaults(func=_guarded(_cmd_benchmark))


def _add_structure_args(a: Any) -> None:
    """Options of phase (a), ``benchmark structures``."""
    a.add_argument(
        "--n-structures", type=_positive_int, default=400, help="distinct structures (default 400)"
    )
    a.add_argument(
        "--batch",
        type=_positive_int,
        default=256,
        help="inference batch of the measurement (default 256)",
    )
    a.add_argument(
        "--image-size",
        type=_positive_int,
        default=32,
        help="input side, a multiple of 4 (default 32)",
    )
    a.add_argument(
        "--dataset",
        default="digits",
        choices=DATASET_CHOICES,
        help=f"data set: {_DATASET_HELP} (default digits); recorded in the folder, the "
        "train phase uses the same",
    )
    a.add_argument(
        "--filters",
        type=_range,
        default=(16, 512),
        help="range of both convolutions' filters, LOW-HIGH (default 16-512); "
        "recorded in the folder, the train phase uses the same space",
    )
    a.add_argument(
        "--dense-units",
        type=_range,
        default=(32, 4096),
        help="range of the dense layer's units, LOW-HIGH (default 32-4096)",
    )
    a.add_argument("--no-power", action="store_true", help="runtime and memory only")
    a.add_argument(
        "--periods",
        type=_positive_int,
        default=3,
        help="energy-counter updates per power window (default 3)",
    )
    a.add_argument("--budget-ms", type=float, default=100.0, help="timed-repeat budget per row")


def _add_train_args(t: Any) -> None:
    """Options of phase (b), ``benchmark train`` (and ``summary``'s quantile)."""
    t.add_argument(
        "--n-configs", type=_positive_int, default=2500, help="configurations (default 2500)"
    )
    t.add_argument("--epochs", type=_positive_int, default=10, help="training epochs (default 10)")
    t.add_argument(
        "--batch-size", type=_positive_int, default=64, help="training batch (default 64)"
    )
    t.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="trainings sharing each GPU at once (worker processes; default 1)",
    )
    t.add_argument("--data-root", default=None, help="local folder of MNIST / CIFAR-10")
    t.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="let cuDNN autotune each new shape in the workers (off by default)",
    )
    t.add_argument(
        "--quantile",
        type=_quantile,
        default=0.6,
        help="summary: also print budgets at this quantile (default 0.6)",
    )


def _register_run(sub: Any) -> None:
    """``hwml optimize run``: search a pre-measured benchmark."""
    r = sub.add_parser("run", help="search a pre-measured benchmark (no training)")
    r.add_argument(
        "--benchmark", required=True, help="benchmark folder (configs.csv, structures.csv)"
    )
    r.add_argument("--seeds", type=parse_seeds, default=[0], help="seeds, e.g. 0-19 (default 0)")
    _add_search_args(r, default_evals=50, default_init=10)
    r.set_defaults(func=_guarded(_cmd_run))


def _register_live(sub: Any) -> None:
    """``hwml optimize live``: search by training each chosen network."""
    lv = sub.add_parser("live", help="search by training each chosen network on a device")
    lv.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    lv.add_argument(
        "--structures",
        default=None,
        help="structures.csv (or its folder) to fit the power/memory models on",
    )
    lv.add_argument(
        "--seed", dest="seeds", type=parse_seeds, default=[0], help="search seed(s) (default 0)"
    )
    lv.add_argument("--epochs", type=_positive_int, default=10, help="training epochs (default 10)")
    lv.add_argument(
        "--batch-size", type=_positive_int, default=64, help="training batch (default 64)"
    )
    lv.add_argument("--train-seed", type=int, default=0, help="seed of every training (default 0)")
    lv.add_argument(
        "--dataset",
        default=None,
        choices=DATASET_CHOICES,
        help=f"data set: {_DATASET_HELP} (default: that of --structures' benchmark "
        "folder, else digits)",
    )
    lv.add_argument("--data-root", default=None, help="local folder of MNIST / CIFAR-10")
    lv.add_argument(
        "--image-size",
        type=_positive_int,
        default=32,
        help="input side when no --structures is given (default 32)",
    )
    lv.add_argument(
        "--inference-batch",
        type=_positive_int,
        default=256,
        help="batch of the power/memory measurement when no --structures is given",
    )
    lv.add_argument(
        "--no-measure",
        action="store_true",
        help="do not measure each trained network's inference power and memory",
    )
    lv.add_argument(
        "--cluster",
        type=cli_args.cluster,
        default="local",
        help=cli_args.CLUSTER_HELP + "; several searches (methods x seeds) share the workers",
    )
    lv.add_argument(
        "--batch",
        type=_positive_int,
        default=1,
        help="q: trainings in flight at once per search (batch-parallel HW-IECI with the "
        "kriging believer; default 1, the sequential search)",
    )
    lv.add_argument(
        "--mode",
        choices=("async", "sync"),
        default="async",
        help="with --batch > 1: a new proposal as each training ends (async, default) or "
        "batches of q (sync)",
    )
    _add_search_args(lv, default_evals=30, default_init=5)
    lv.set_defaults(func=_guarded(_cmd_live))


def _ints_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4,8, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return list(dict.fromkeys(values))


def _modes(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or any(n not in ("async", "sync") for n in names):
        raise argparse.ArgumentTypeError(f"expected async and/or sync, got {text!r}")
    return names


def _register_parallel(sub: Any) -> None:
    """``hwml optimize parallel``: q trainings at once, simulated on the tabular benchmark."""
    pa = sub.add_parser(
        "parallel",
        help="HW-IECI with q trainings at once on a pre-measured benchmark (simulated "
        "wall-clock from its training times)",
    )
    pa.add_argument("--benchmark", required=True, help="benchmark folder (or its name under data/)")
    pa.add_argument(
        "--qs", type=_ints_list, default=[1, 2, 4, 8], help="q values (default 1,2,4,8)"
    )
    pa.add_argument(
        "--modes", type=_modes, default=["async", "sync"], help="async and/or sync (default both)"
    )
    pa.add_argument(
        "--seeds", type=parse_seeds, default=list(range(30)), help="seeds (default 0-29)"
    )
    pa.add_argument("--n-evals", type=_positive_int, default=50, help="evaluations per search (50)")
    pa.add_argument("--n-init", type=_positive_int, default=5, help="initial evaluations (5)")
    pa.add_argument("--power-quantile", type=_quantile, default=0.6, help="power budget quantile")
    pa.add_argument("--mem-quantile", type=_quantile, default=0.6, help="memory budget quantile")
    pa.add_argument("--features", type=_features, default="derived", help="model features")
    pa.add_argument("--gp-restarts", type=_positive_int, default=2, help="GP restarts (2)")
    pa.add_argument(
        "--near-optimal-tol",
        type=float,
        default=0.02,
        help="near-optimal region: this far above the best feasible error (default 0.02)",
    )
    pa.add_argument("--jobs", type=_positive_int, default=1, help="worker processes (default 1)")
    pa.add_argument(
        "--out", default=None, help="histories CSV (default <benchmark>/parallel/hw-ieci-q.csv)"
    )
    pa.add_argument("--git-commit", default=None, help="commit to record (default: git rev-parse)")
    pa.set_defaults(func=_guarded(_cmd_parallel))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwml.cli_optimize ...`` (the same as ``hwml optimize ...``)."""
    parser = argparse.ArgumentParser(prog="hwml")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
