"""Do the NAS benchmark's reference networks learn the proxy task? Train them again, on a CPU.

    PYTHONPATH=. python scripts/nas_reference_check.py --out OUT
        [--benchmark data/nas-nvidia-h200-cued-digits] [--networks all]
        [--pool 0,1,2] [--learning-rates 0.1,0.03,0.01] [--epochs 5]
        [--bn fixed,torchvision] [--threads 2]

Trains each network (the benchmark's reference networks, ``hwml.nas.references``, and
the cell networks at the given positions of its pool, for contrast) once per learning
rate and number of epochs with the benchmark's own recipe otherwise (read from its
``provenance.json``: task, image size, batch, SGD momentum, weight decay, seed) through
the library's training function (``hwml.tasks.train_module``), and appends one row per
training to ``OUT/trainings.csv``: training loss, test error in eval mode (as the
benchmark tests), error on the training images in eval mode, and the test error after
the batch norms' running statistics are recomputed over the training images (a
cumulative average of train-mode passes, weights unchanged), which shows whether eval
mode, not the weights, is what fails.

``--bn``: ``fixed`` builds the references as the library now does (every batch norm with
PyTorch's default momentum, 0.1); ``torchvision`` keeps torchvision's momenta (MNASNet's
0.0003), as the benchmark's references were built before this was fixed. The
``torchvision`` variant is trained only where it differs (MNASNet). Rows already in
``trainings.csv`` are skipped, so the script can be rerun with more settings or resumed;
every call is recorded in ``OUT/runs.json`` when it starts (and updated after each row)
and ``OUT/README.md`` is rewritten from it.

Nothing here is measured on the benchmark's GPU: these are CPU trainings (float32;
results differ from a GPU's in the last bits, and trainings on the edge of divergence
can end far apart). A 5-epoch training of one reference takes 20 to 60 s on two cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwml.data import cpu_name, git_commit, now_iso, read_provenance
from hwml.nas.references import BN_MOMENTUM, REFERENCES, build_reference
from hwml.nas.space import NASSpace
from hwml.nas.table import load_nas_benchmark
from hwml.tasks.images import ImageData, load_data
from hwml.tasks.training import test_error, train_module

COLUMNS: dict[str, tuple[str, str]] = {
    "network": ("-", "`ref:<name>` (a reference network) or a cell-space key"),
    "kind": ("-", "`reference` or `space`"),
    "bn": ("-", "`fixed`: every batch norm with momentum 0.1; `torchvision`: torchvision's"),
    "bn_momentum": ("1", "the batch norms' momentum (the smallest, if they differ)"),
    "learning_rate": ("1", "SGD learning rate at the start of the cosine decay"),
    "epochs": ("count", "training epochs"),
    "batch_size": ("count", "training batch size"),
    "train_seed": ("-", "seed of the initial weights and the batch order"),
    "params": ("count", "learnable parameters"),
    "status": ("-", "ok, failed (loss NaN or infinite) or oom"),
    "train_loss": ("1", "mean cross-entropy of the last epoch (train mode)"),
    "train_error_eval": ("1", "fraction of the training images misclassified in eval mode"),
    "test_error": ("1", "fraction of the 2,000 test images misclassified in eval mode"),
    "test_error_recalibrated": (
        "1",
        "test error in eval mode after the batch norms' running statistics were recomputed "
        "over the training images (weights unchanged)",
    ),
    "train_time_s": ("s", "seconds to build, train and test (other work shared the CPU)"),
    "run": ("-", "the call (`runs.json`, table below) that wrote the row"),
    "timestamp": ("-", "UTC time the row was written"),
}


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = 0
    with torch.inference_mode():
        for i in range(0, len(y), 512):
            wrong += int((model(x[i : i + 512]).argmax(1) != y[i : i + 512]).sum())
    return wrong / len(y)


def _recalibrated_error(model: nn.Module, data: ImageData, batch_size: int) -> float:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
    model.train()
    with torch.no_grad():
        for i in range(0, len(data.y_train), batch_size):
            model(data.x_train[i : i + batch_size])
    return test_error(model, data, torch.device("cpu"))


def _save_runs(out: Path, runs: list[dict[str, Any]]) -> None:
    (out / "runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    _readme(out, runs)


def _readme(out: Path, runs: list[dict[str, Any]]) -> None:
    lines = [
        "# Reference networks on the proxy task, trained again on a CPU",
        "",
        "Written by `scripts/nas_reference_check.py` (its docstring says what each column "
        "is for). Nothing here was measured on the benchmark's GPU: each row is one CPU "
        "training with the benchmark's recipe except for the learning rate and epochs "
        "given, built with the batch-norm momentum given (`bn`).",
        "",
        "## Runs",
        "",
        "| run | date | command | rows | outcome | commit | host | torch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['run']} | {r['date']} | `{r['command']}` | {r['rows']} | {r['outcome']} | "
            f"{r['git_commit']} | "
            f"{r['cpu']} ({r['threads']} threads, {r['elapsed_s']} s) | {r['torch']} |"
        )
    lines += ["", "## `trainings.csv`", "", "| column | unit | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{k}` | {u} | {m} |" for k, (u, m) in COLUMNS.items()]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--benchmark", default="data/nas-nvidia-h200-cued-digits")
    p.add_argument("--networks", default="all", help="reference names, comma-separated, or all")
    p.add_argument("--pool", default="0,1,2", help="pool positions of cell networks ('' none)")
    p.add_argument("--learning-rates", default="0.1,0.03,0.01")
    p.add_argument("--epochs", default="5", help="comma-separated")
    p.add_argument("--bn", default="fixed,torchvision")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    started, t0, commit = now_iso(), time.time(), git_commit() or ""
    torch.set_num_threads(args.threads)

    prov = read_provenance(args.benchmark)
    bench = load_nas_benchmark(args.benchmark)
    space: NASSpace = bench.space
    data = load_data(prov["dataset"], image_size=int(prov["image_size"]))
    refs = list(REFERENCES) if args.networks == "all" else args.networks.split(",")
    nets = [(f"ref:{r}", "reference") for r in refs]
    pool = bench.pool.set_index("index")["key"] if len(bench.pool) else {}
    nets += [(pool[int(i)], "space") for i in args.pool.split(",") if i.strip()]
    lrs = [float(v) for v in args.learning_rates.split(",")]
    epochs = [int(v) for v in args.epochs.split(",")]
    bns = args.bn.split(",")

    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / "runs.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else []
    entry: dict[str, Any] = {
        "run": len(runs),
        "date": started,
        "command": "python scripts/nas_reference_check.py " + shlex.join(argv or sys.argv[1:]),
        "outcome": "running (no end recorded: killed, or still running)",
        "rows": 0,
        "git_commit": commit,
        "cpu": cpu_name(),
        "threads": args.threads,
        "torch": torch.__version__,
        "benchmark": str(args.benchmark),
        "elapsed_s": 0,
    }
    runs.append(entry)
    _save_runs(args.out, runs)
    table = args.out / "trainings.csv"
    done: set[tuple[str, str, float, int]] = set()
    if table.exists():
        with table.open(newline="") as f:
            for row in csv.DictReader(f):
                done.add(
                    (row["network"], row["bn"], float(row["learning_rate"]), int(row["epochs"]))
                )
    new = not table.exists()
    rows = 0
    with table.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        if new:
            writer.writeheader()
        for key, kind in nets:
            for bn in bns:
                if bn == "torchvision" and not (kind == "reference" and "mnasnet" in key):
                    continue  # the same network as "fixed"
                momentum = BN_MOMENTUM if bn == "fixed" else None

                def build(key: str = key, kind: str = kind, momentum: float | None = momentum):
                    if kind == "reference":
                        name = key.removeprefix("ref:")
                        return build_reference(
                            name,
                            in_channels=space.in_channels,
                            num_classes=space.num_classes,
                            bn_momentum=momentum,
                        )
                    return space.build(space.parse(key))

                bn_m = min(
                    float(m.momentum)
                    for m in build().modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm)
                )
                for ep in epochs:
                    for lr in lrs:
                        if (key, bn, lr, ep) in done:
                            continue
                        r = train_module(
                            build,
                            data,
                            device="cpu",
                            epochs=ep,
                            batch_size=int(prov["train_batch_size"]),
                            learning_rate=lr,
                            momentum=float(prov["momentum"]),
                            weight_decay=float(prov["weight_decay"]),
                            seed=int(prov["train_seed"]),
                            return_model=True,
                        )
                        model = r.pop("model")
                        row: dict[str, Any] = {
                            "network": key,
                            "kind": kind,
                            "bn": bn,
                            "bn_momentum": bn_m,
                            "learning_rate": lr,
                            "epochs": ep,
                            "batch_size": int(prov["train_batch_size"]),
                            "train_seed": int(prov["train_seed"]),
                            "params": r["params"],
                            "status": r["status"],
                            "train_loss": r["train_loss"],
                            "test_error": r["test_error"],
                            "train_time_s": round(r["train_time_s"], 2),
                        }
                        if model is not None:
                            row["train_error_eval"] = _error(model, data.x_train, data.y_train)
                            row["test_error_recalibrated"] = _recalibrated_error(
                                model, data, int(prov["train_batch_size"])
                            )
                        row["run"] = entry["run"]
                        row["timestamp"] = now_iso()
                        writer.writerow(row)
                        f.flush()
                        rows += 1
                        entry.update(rows=rows, elapsed_s=round(time.time() - t0))
                        _save_runs(args.out, runs)
                        print(
                            f"{key} bn={bn} lr={lr} epochs={ep}: loss {r['train_loss']:.3f}, "
                            f"test error {r['test_error']:.3f}",
                            file=sys.stderr,
                            flush=True,
                        )
    entry.update(outcome="complete", rows=rows, elapsed_s=round(time.time() - t0))
    _save_runs(args.out, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
