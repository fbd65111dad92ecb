"""``hwml nas``: the tabular benchmark of platform-aware architecture search, and its searches.

    hwml nas benchmark --out DIR [--device cuda] [--n-archs 256] [--batches 1,64]
                       [--epochs 5] [--workers 4] [--time-limit-s S] ...
    hwml nas summary   --out DIR [--readme]
    hwml nas price     --model NET.json [--n 1000] [--batches 1,64]
    hwml nas search    --benchmark DIR --model NET.json [--terms none,flops,predicted,measured]
                       [--controllers evolution,nsga] [--targets runtime:1,energy:64]
                       [--seeds 0-9] [--n-evals 40] [--quantile 0.3] --out RUNS.csv

``benchmark`` trains and measures the pool on a GPU (:mod:`hwml.nas.benchmark`; rerun the
same command to resume); ``price`` times the predictor's pricing path
(:func:`hwml.nas.pricing.pricing_rate`); ``search`` runs the searches over a benchmark
folder on any machine and writes every evaluation, with the measured verdict of each
search beside it (``RUNS.verdict.csv``). ``NET.json`` is a pipeline model
(``hwml fit --model pipeline --data nvidia-h200 --out NET.json``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from hwml import cli_args
from hwml.data import DatasetError

# Deliberately lazy: torch, pandas and the search code are imported by the handlers
# (tests/test_cli.py checks that `hwml --help` loads neither pandas nor scipy).

__all__ = ["register"]


def _command() -> str:
    return "hwml " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _seeds(text: str) -> list[int]:
    """``"0-9"`` or ``"0,3,5"`` -> the seeds."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-"))
                out += list(range(lo, hi + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 0-9 or 0,3,5, got {text!r}"
        ) from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative seeds, got {text!r}")
    return out


def _names(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [n for n in names if n not in choices]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"expected names among {', '.join(choices)}, got {text!r}"
            )
        return names

    return parse


def _targets(text: str) -> list[tuple[str, int]]:
    """``"runtime:1,energy:64"`` -> ``[("runtime", 1), ("energy", 64)]``."""
    from hwml.nas.table import METRICS

    out = []
    for part in text.split(","):
        metric, _, batch = part.partition(":")
        if metric not in METRICS or not batch.isdigit() or int(batch) < 1:
            raise argparse.ArgumentTypeError(
                f"expected METRIC:BATCH pairs like runtime:1,energy:64 (metrics: "
                f"{', '.join(METRICS)}), got {text!r}"
            )
        out.append((metric, int(batch)))
    return out


def _references(text: str) -> tuple[str, ...]:
    from hwml.nas.references import REFERENCES

    if text == "all":
        return tuple(REFERENCES)
    if text == "none":
        return ()
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in REFERENCES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown reference(s) {bad}; known: all, none, {', '.join(REFERENCES)}"
        )
    return names


# ---------------------------------------------------------------------- handlers


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from hwml.data import read_provenance
    from hwml.nas.benchmark import BenchmarkSettings, _settings_from, build_benchmark
    from hwml.nas.space import NASSpace
    from hwml.profile import SweepOptions

    recorded = _settings_from(read_provenance(args.out)) if Path(args.out).exists() else {}
    given = {
        "n_archs": args.n_archs,
        "arch_seed": args.arch_seed,
        "batches": tuple(args.batches) if args.batches else None,
        "epochs": args.epochs,
        "train_batch_size": args.train_batch,
        "learning_rate": args.learning_rate,
        "references": args.references,
        "dataset": args.dataset,
    }
    settings = BenchmarkSettings(
        **{**recorded, **{k: v for k, v in given.items() if v is not None}}
    )
    space = NASSpace.named(args.space)
    opts = SweepOptions(
        power=not args.no_power, periods=args.power_periods, progress=not args.no_progress
    )
    out = build_benchmark(
        args.out,
        args.device,
        settings,
        space=space,
        workers=args.workers,
        chunk=args.chunk,
        time_limit_s=args.time_limit_s,
        opts=opts,
        progress=not args.no_progress,
        command=_command(),
        git_commit=args.git_commit,
        measure_only=args.measure_only,
    )
    print(
        f"measured {out['measured']} rows, trained {out['trained']} networks; "
        f"{out['remaining']} networks not complete"
    )
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from hwml.nas.table import load_nas_benchmark

    if args.readme:
        from hwml.nas.benchmark import write_benchmark_readme

        write_benchmark_readme(args.out)
    bench = load_nas_benchmark(args.out)
    nets = bench.networks
    print(f"{bench.folder}: {len(nets)} networks, {int(nets['complete'].sum())} complete")
    cols = ["test_error", *(f"runtime_ms_b{b}" for b in bench.batches)]
    cols += [f"energy_per_image_mj_b{b}" for b in bench.batches]
    stats = nets.groupby("kind")[cols].agg(["count", "min", "median", "max"]).T
    print(stats.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _load_model(path: str) -> Any:
    from hwml.predict.pipeline import PipelineModel

    return PipelineModel.load(path)


def _cmd_price(args: argparse.Namespace) -> int:
    from hwml.nas.pricing import ArchPricer, pricing_rate
    from hwml.nas.space import NASSpace

    pricer = ArchPricer(NASSpace.named(args.space), _load_model(args.model))
    cold = pricing_rate(pricer, args.n, seed=args.seed, batches=args.batches, repeats=1)
    import time

    t0 = time.perf_counter()
    pricer.warm(args.batches)
    warm_s = time.perf_counter() - t0
    warm = pricing_rate(pricer, args.n, seed=args.seed + 1, batches=args.batches, repeats=3)
    print(
        f"{args.n} candidates at batch {','.join(map(str, args.batches))}: "
        f"{cold['first_per_s']:.0f}/s from an empty stage table, "
        f"{warm['best_per_s']:.0f}/s with every stage precomputed "
        f"({warm['cached_stages']} stages, {warm_s:.1f} s to precompute)"
    )
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from hwml.nas.pricing import ArchPricer
    from hwml.nas.search import NASProblem, SearchSettings, run_searches, verdict_frame
    from hwml.nas.table import load_nas_benchmark

    bench = load_nas_benchmark(args.benchmark)
    pricer = ArchPricer(bench.space, _load_model(args.model) if args.model else None)
    problem = NASProblem.from_benchmark(bench, pricer)
    terms = [t for t in args.terms if t != "predicted" or pricer.model is not None]
    settings = SearchSettings(n_evals=args.n_evals, quantile=args.quantile)
    runs = run_searches(
        problem,
        terms=terms,
        controllers=args.controllers,
        targets=args.targets,
        seeds=args.seeds,
        settings=settings,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out, index=False)
    verdict = verdict_frame(problem, runs, args.quantile)
    verdict.to_csv(out.with_suffix(".verdict.csv"), index=False)
    summary = verdict.groupby(["metric", "batch", "term", "controller"])[
        ["hv_front_pct", "pick_error", "pick_violates", "pick_over_pct"]
    ].mean()
    print(summary.to_string(float_format=lambda v: f"{v:.3g}"))
    return 0


def _guarded(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args) or 0)
        except (DatasetError, ValueError, KeyError, FileNotFoundError) as err:
            print(f"hwml nas: error: {err}", file=sys.stderr)
            return 2

    return run


# ---------------------------------------------------------------------- parser


def register(subparsers: Any) -> None:
    """Add the ``nas`` sub-command to the ``hwml`` parser's sub-parsers."""
    nas = subparsers.add_parser(
        "nas",
        help="platform-aware architecture search: tabular benchmark, pricing, searches",
        description=__doc__.splitlines()[0],
    )
    sub = nas.add_subparsers(dest="nas_command", required=True)

    b = sub.add_parser("benchmark", help="train and measure the pool of architectures on a device")
    b.add_argument("--out", required=True, help="benchmark folder (created; rerun to resume)")
    b.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    b.add_argument(
        "--space",
        default="default",
        choices=("default", "tiny"),
        help="search space (tiny: a smoke run)",
    )
    b.add_argument(
        "--n-archs",
        type=int,
        default=None,
        help="architectures in the pool (default 256, or the folder's)",
    )
    b.add_argument("--arch-seed", type=int, default=None, help="seed of the pool (default 0)")
    b.add_argument(
        "--batches",
        type=cli_args.positive_ints,
        default=None,
        help="inference batches measured (default 1,64)",
    )
    b.add_argument("--epochs", type=int, default=None, help="training epochs (default 5)")
    b.add_argument("--train-batch", type=int, default=None, help="training batch (default 64)")
    b.add_argument(
        "--learning-rate", type=float, default=None, help="SGD learning rate (default 0.1)"
    )
    b.add_argument("--dataset", default=None, help="proxy task (default cued-digits)")
    b.add_argument(
        "--references",
        type=_references,
        default=None,
        help="reference networks: all (default), none or a comma-separated list",
    )
    b.add_argument("--workers", type=int, default=4, help="trainings at a time (default 4)")
    b.add_argument(
        "--chunk",
        type=int,
        default=32,
        help="networks measured before their trainings start (default 32)",
    )
    b.add_argument(
        "--time-limit-s",
        type=float,
        default=None,
        help="start no new work after this many seconds; rows so far are kept (rerun to resume)",
    )
    b.add_argument(
        "--power-periods",
        type=int,
        default=2,
        help="energy-counter updates per power window (default 2)",
    )
    b.add_argument("--no-power", action="store_true", help="measure runtime and memory only")
    b.add_argument(
        "--measure-only",
        action="store_true",
        help="measure, never train: a second measurement of the networks, in a folder of its own",
    )
    b.add_argument("--no-progress", action="store_true")
    b.add_argument("--git-commit", default=None, help="commit to record when the tree has no .git")
    b.set_defaults(func=_guarded(_cmd_benchmark))

    s = sub.add_parser("summary", help="summarize a benchmark folder")
    s.add_argument("--out", required=True, help="benchmark folder")
    s.add_argument(
        "--readme",
        action="store_true",
        help="rewrite its README.md first (e.g. after adding NOTES.md)",
    )
    s.set_defaults(func=_guarded(_cmd_summary))

    p = sub.add_parser("price", help="time the predictor's pricing of random candidates")
    p.add_argument("--model", required=True, help="pipeline model JSON (hwml fit --model pipeline)")
    p.add_argument("--space", default="default", choices=("default", "tiny"))
    p.add_argument("--n", type=int, default=1000, help="candidates per timing (default 1000)")
    p.add_argument(
        "--batches",
        type=cli_args.positive_ints,
        default=[1, 64],
        help="batches priced (default 1,64)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_guarded(_cmd_price))

    r = sub.add_parser("search", help="run the searches over a benchmark folder")
    r.add_argument(
        "--benchmark", required=True, help="benchmark folder (a name under data/ or a path)"
    )
    r.add_argument(
        "--model", default=None, help="pipeline model JSON (needed for --terms predicted)"
    )
    r.add_argument(
        "--terms",
        type=_names(("none", "flops", "predicted", "measured")),
        default=["none", "flops", "predicted", "measured"],
        help="hardware terms (default all four)",
    )
    r.add_argument(
        "--controllers",
        type=_names(("evolution", "nsga", "random")),
        default=["evolution", "nsga"],
        help="controllers (default evolution,nsga; a random baseline is always added)",
    )
    r.add_argument(
        "--targets",
        type=_targets,
        default=[("runtime", 1)],
        help="METRIC:BATCH list (default runtime:1); metrics: runtime (eager latency), "
        "gpu_time (CUDA-graph replay), energy (per image)",
    )
    r.add_argument("--seeds", type=_seeds, default=list(range(10)), help="seeds (default 0-9)")
    r.add_argument("--n-evals", type=int, default=40, help="trainings per search (default 40)")
    r.add_argument(
        "--quantile",
        type=float,
        default=0.3,
        help="target as a quantile of the pool's measured cost (default 0.3)",
    )
    r.add_argument(
        "--out", required=True, help="CSV of every evaluation (verdict beside it: .verdict.csv)"
    )
    r.set_defaults(func=_guarded(_cmd_search))
