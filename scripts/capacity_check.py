"""Does capacity buy accuracy? Train small to large HyperPower CNNs on two data sets.

    python scripts/capacity_check.py [--device cpu] [--epochs 10] [--image-size 24]
        [--seeds 0,1] [--datasets digits,cued-digits] [--learning-rates 0.05]
        [--configs 16-16-3-32,32-32-3-128,...]

Trains each configuration of the two-convolution CNN family (hwml.tasks.cnn; one
``C1-C2-K-D`` per configuration: filters of both convolutions, kernel size, dense units)
with every seed on every data set, for a fixed number of epochs with SGD (momentum 0.9,
weight decay 5e-4), and prints a table of test errors: one row per configuration, ordered
by multiply-accumulates per image, a column per data set (mean over seeds, then each
seed). With several learning rates, each configuration's row shows the learning rate with
the lowest mean error on that data set (the benchmark's search tunes it too). The summary
gives, per data set, the error of the smallest and the largest configuration and the rank
correlation between size (MACs) and error.

The defaults run in about four minutes on two CPU cores: 24x24 inputs (``cued-digits``'
native size, at which scripts/benchmark.sh builds its benchmark; digits' is built at 32),
configurations up to 128 filters. ``cued-digits-4x4`` is native at 32
(``--datasets cued-digits-4x4 --image-size 32``; about ten minutes for four sizes on a
CPU). On a GPU, pass ``--device cuda``, several ``--learning-rates`` and larger
configurations (e.g. ``256-256-5-1024,512-512-5-4096``). Run from the repository root
with the package importable (``pip install -e .``, or ``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
import torch

from hwml.tasks import load_data, structural_features, train_cnn
from hwml.tasks.cnn import STRUCTURAL

DEFAULT_CONFIGS = "16-16-3-32,32-32-3-128,64-64-3-256,96-96-3-512,128-128-3-512"


def _configs(text: str) -> list[dict[str, int]]:
    out = []
    for item in text.split(","):
        parts = item.strip().split("-")
        if len(parts) != 4:
            raise argparse.ArgumentTypeError(f"configuration {item!r} is not C1-C2-K-D")
        out.append(dict(zip(STRUCTURAL, map(int, parts), strict=True)))
    return out


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    p.add_argument("--image-size", type=int, default=24, help="input side (default 24)")
    p.add_argument("--seeds", type=_ints, default=[0, 1], help="training seeds (default 0,1)")
    p.add_argument(
        "--datasets",
        default="digits,cued-digits",
        help="comma-separated data sets (default digits,cued-digits)",
    )
    p.add_argument(
        "--learning-rates",
        type=_floats,
        default=[0.05],
        help="SGD learning rate(s); with several, the best per row (default 0.05)",
    )
    p.add_argument(
        "--configs",
        type=_configs,
        default=_configs(DEFAULT_CONFIGS),
        help=f"C1-C2-K-D,... (default {DEFAULT_CONFIGS})",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = [d.strip() for d in args.datasets.split(",")]

    feats = structural_features(pd.DataFrame(args.configs), image_size=args.image_size)
    order = np.argsort(feats["macs"].to_numpy(), kind="stable")
    rows = []
    start = time.perf_counter()
    for name in datasets:
        data = load_data(name, image_size=args.image_size)
        print(
            f"# {name}: {len(data.y_train)} training, {len(data.y_test)} test images "
            f"at {data.image_size}x{data.image_size}",
            file=sys.stderr,
            flush=True,
        )
        for j in order:
            config = args.configs[j]
            best = None
            for lr in args.learning_rates:
                cfg = {**config, "learning_rate": lr, "momentum": 0.9, "weight_decay": 5e-4}
                runs = [
                    train_cnn(cfg, device=args.device, epochs=args.epochs, data=data, seed=s)
                    for s in args.seeds
                ]
                errors = [r["test_error"] for r in runs]
                mean = float(np.mean(errors))  # NaN if a run diverged
                cand = {
                    "dataset": name,
                    "config": "-".join(str(config[k]) for k in STRUCTURAL),
                    "macs": float(feats["macs"].iloc[j]),
                    "params": float(feats["params"].iloc[j]),
                    "lr": lr,
                    "mean": mean,
                    "errors": errors,
                    "train_s": float(np.mean([r["train_time_s"] for r in runs])),
                }
                if best is None or (np.isfinite(mean) and not mean >= best["mean"]):
                    best = cand
            rows.append(best)
            print(
                f"#   {best['config']:>16s}  error {100 * best['mean']:5.1f} %  "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    table = pd.DataFrame(rows)

    print(
        f"test error (%) after {args.epochs} epochs, {args.image_size}x{args.image_size} "
        f"inputs, SGD momentum 0.9, weight decay 5e-4, learning rate "
        f"{'best of ' if len(args.learning_rates) > 1 else ''}"
        f"{','.join(map(str, args.learning_rates))}; mean over seeds "
        f"{','.join(map(str, args.seeds))} [each seed]"
    )
    head = f"{'C1-C2-K-D':>16s} {'MMAC/img':>9s} {'params':>9s}"
    for name in datasets:
        head += f" | {name:>24s}"
    print(head)
    for j in order:
        cfg = "-".join(str(args.configs[j][k]) for k in STRUCTURAL)
        sub = table[table["config"] == cfg]
        line = f"{cfg:>16s} {feats['macs'].iloc[j] / 1e6:9.2f} {feats['params'].iloc[j]:9.0f}"
        for name in datasets:
            r = sub[sub["dataset"] == name].iloc[0]
            each = " ".join(f"{100 * e:.1f}" for e in r["errors"])
            lr = f" lr {r['lr']:g}" if len(args.learning_rates) > 1 else ""
            line += f" | {100 * r['mean']:5.1f} [{each}]{lr}".ljust(27)
        print(line)
    print("summary:")
    for name in datasets:
        sub = table[table["dataset"] == name].set_index("config")
        small, large = sub.iloc[0], sub.iloc[-1]
        rho = _spearman(sub["macs"].to_numpy(), sub["mean"].to_numpy()) if len(sub) > 2 else None
        print(
            f"  {name}: smallest {sub.index[0]} {100 * small['mean']:.1f} %, largest "
            f"{sub.index[-1]} {100 * large['mean']:.1f} %, difference "
            f"{100 * (small['mean'] - large['mean']):+.1f} points; best "
            f"{100 * sub['mean'].min():.1f} %; Spearman rho(MACs, error) "
            + ("n/a (under three configurations)" if rho is None else f"{rho:+.2f}")
        )
    print(f"wall time {time.perf_counter() - start:.0f} s on {args.device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
