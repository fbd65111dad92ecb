"""Minerva's stage-by-stage optimization on a GPU (survey 4.2): how much inference energy
each level of the stack saves at the same accuracy, alone and all together.

A trained network goes through the levels a GPU user controls, in Minerva's order from the
model outward (:data:`STAGES`): which network of the family (training-space
exploration), numeric precision, pruning, execution mode and batch size. Each stage tries
its variants of one level and keeps the one of lowest measured energy per image whose
mean test error over the training seeds stays within the *noise band* of the baseline:
baseline mean error plus ``tol_sigma`` standard deviations of the baseline's error over
seeds (Minerva's "intrinsic error variation"); keeping the previous choice is always
allowed. Two tracks:

* ``together``: each stage starts from the previous stage's choice (the savings compound);
* ``alone``: each stage starts from the baseline (what that level saves by itself).

The walk itself (:func:`run_stages`) is separate from how a variant is priced: an
:class:`Evaluator` gives the per-seed test errors and the measured cost of a
(network, :class:`Deployment`). :class:`GpuEvaluator` trains, deploys and measures on a
device and appends every result to CSV tables as it goes; :class:`TableEvaluator` reads
those tables back, so a notebook reruns the same walk from committed data without a GPU.

A second phase (:func:`measure_cost_table`) measures many structures of a HyperPower
benchmark under a few deployments (random weights: the cost of dense kernels does not
depend on the values), the table that searching the model and its deployment together
(survey 5.2.2) needs.

On a GPU::

    python -m hwml.deploy.stages --out data/deploy-nvidia-h200-cued-digits --device cuda

(``--help`` for options; an interrupted run resumes: trained weights are cached under
``OUT/weights``, measured rows are skipped.)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from hwml.data import AppendTable, dataset_path
from hwml.deploy.evaluate import evaluate_accuracy, measure_deployment
from hwml.deploy.execution import prepare_execution, rebatch
from hwml.deploy.precision import apply_precision
from hwml.deploy.pruning import (
    fine_tuner,
    prune_2to4,
    prune_channels,
    prune_unstructured,
    to_semi_structured,
)
from hwml.tasks.cnn import STRUCTURAL, TRAINING

__all__ = [
    "COST_COLUMNS",
    "ERROR_COLUMNS",
    "STAGES",
    "STAGE_COST_COLUMNS",
    "Deployment",
    "Evaluator",
    "GpuEvaluator",
    "StageSettings",
    "TableEvaluator",
    "TimeUp",
    "deploy",
    "main",
    "measure_cost_table",
    "pick_networks",
    "run_stages",
    "stage_savings",
    "write_readmes",
]

STAGES = ("network", "precision", "pruning", "execution", "batch")
"""The levels, in the order the ``together`` track applies them."""

ERROR_COLUMNS = [
    "key",
    "structure_key",
    "deployment",
    "seed",
    "test_error",
    "status",
    "reason",
    "date",
]
"""``errors.csv``: one row per (network, deployment, training seed)."""

_MEASURED = (
    "runtime_ms",
    "runtime_per_image_ms",
    "power_w",
    "energy_per_image_mj",
    "busy_fraction",
    "power_mode",
    "status",
)
"""What :func:`~hwml.deploy.measure_deployment` returns that a cost row keeps."""

COST_COLUMNS = [
    "key",
    "structure_key",
    "deployment",
    "prune",
    "precision",
    "execution",
    "batch",
    "weights",
    *_MEASURED,
    "reason",
    "gpu_uuid",
    "date",
]
"""``cost_table.csv``: one measured row per (network, deployment); ``weights`` says whose
weights ran (``seed0`` trained, or ``random``)."""

STAGE_COST_COLUMNS = [*COST_COLUMNS, "info"]
"""``costs.csv``: :data:`COST_COLUMNS` and ``info``, what each step of :func:`deploy`
reported (JSON: dtypes that ran, layers stored sparse or left dense and why, the execution
mode that ran)."""


class TimeUp(RuntimeError):
    """The run's time limit came before the next training or measurement."""


@dataclass(frozen=True)
class Deployment:
    """How a trained network runs.

    Attributes:
        prune: ``none``, ``2:4`` (semi-structured, dense layers), ``channels:<keep>``
            (structured: keep that fraction of every layer's filters and units) or
            ``unstructured:<amount>`` (magnitude, global), all fine-tuned.
        precision: one of :data:`hwml.deploy.PRECISIONS`.
        execution: one of :data:`hwml.deploy.EXECUTION_MODES`.
        batch: images per inference call.
    """

    prune: str = "none"
    precision: str = "fp32"
    execution: str = "eager"
    batch: int = 64

    @property
    def label(self) -> str:
        """``prune/precision/execution/b<batch>``: the key of the deployment in tables."""
        return f"{self.prune}/{self.precision}/{self.execution}/b{self.batch}"

    @classmethod
    def from_label(cls, label: str) -> Deployment:
        """The deployment of a :attr:`label`."""
        try:
            prune, precision, execution, batch = label.split("/")
            return cls(prune, precision, execution, int(batch.removeprefix("b")))
        except ValueError as err:
            raise ValueError(
                f"not a deployment label: {label!r} (expected prune/precision/execution/b<batch>)"
            ) from err


@dataclass(frozen=True)
class StageSettings:
    """What :func:`run_stages` tries.

    Attributes:
        base: the baseline deployment (PyTorch defaults a user starts from).
        tol_sigma: the noise band in standard deviations of the baseline's error over seeds.
        precisions, prunings, executions, batches: the variants of each level besides the
            baseline's. A pruning ``<prune>@<precision>`` also switches the precision:
            ``2:4@fp16`` runs the 2:4 network on the sparse kernels, which take half
            precision only, whatever precision the walk kept before.
    """

    base: Deployment = field(default_factory=Deployment)
    tol_sigma: float = 2.0
    precisions: tuple[str, ...] = ("tf32", "bf16", "fp16", "fp8")
    prunings: tuple[str, ...] = (
        "2:4",
        "2:4@fp16",
        "channels:0.75",
        "channels:0.5",
        "channels:0.25",
        "unstructured:0.5",
    )
    executions: tuple[str, ...] = ("cuda-graph", "compile")
    batches: tuple[int, ...] = (256, 1024)

    @classmethod
    def from_dict(cls, facts: dict[str, Any]) -> StageSettings:
        """The settings a run recorded (``provenance.json``'s ``settings``), so that a
        replay walks exactly what the run walked, whatever today's defaults are."""
        base = facts.get("base", {})
        return cls(
            base=Deployment(**base) if isinstance(base, dict) else base,
            tol_sigma=float(facts.get("tol_sigma", 2.0)),
            precisions=tuple(facts.get("precisions", cls.precisions)),
            prunings=tuple(facts.get("prunings", cls.prunings)),
            executions=tuple(facts.get("executions", cls.executions)),
            batches=tuple(int(b) for b in facts.get("batches", cls.batches)),
        )

    def variants(self, stage: str, current: Deployment) -> list[Deployment]:
        """The deployments a stage tries from ``current`` (``current`` first, no repeats)."""
        if stage == "precision":
            tried = [replace(current, precision=p) for p in self.precisions]
        elif stage == "pruning":
            tried = []
            for p in self.prunings:
                prune, _, precision = p.partition("@")
                tried.append(
                    replace(current, prune=prune, precision=precision or current.precision)
                )
        elif stage == "execution":
            tried = [replace(current, execution=e) for e in self.executions]
        elif stage == "batch":
            tried = [replace(current, batch=b) for b in self.batches]
        else:
            raise ValueError(f"unknown stage {stage!r}; stages with variants: {STAGES[1:]}")
        return list(dict.fromkeys([current, *tried]))


class Evaluator(Protocol):
    """Prices a (network, deployment): per-seed test errors and one measured cost row."""

    def errors(self, structure_key: str, deployment: Deployment) -> list[float]:
        """Test error of each training seed's network deployed so (NaN where it failed)."""
        ...

    def cost(self, structure_key: str, deployment: Deployment) -> dict[str, Any]:
        """The measured row (:data:`COST_COLUMNS`) of the deployment."""
        ...


# ============================================================================ the walk


def _noise_band(errors: Sequence[float], sigma: float, n_test: int | None) -> float:
    e = np.asarray(errors, dtype=float)
    e = e[np.isfinite(e)]
    std = float(e.std(ddof=1)) if len(e) > 1 else 0.0
    floor = 1.0 / n_test if n_test else 0.0
    return max(sigma * std, floor)


def run_stages(
    evaluator: Evaluator,
    baseline_key: str,
    candidate_keys: Sequence[str],
    settings: StageSettings | None = None,
    *,
    n_test: int | None = None,
    tracks: Sequence[str] = ("together", "alone"),
) -> pd.DataFrame:
    """Walk the stages and return every variant tried, with the choice of each stage.

    Args:
        evaluator: prices the variants.
        baseline_key: the baseline network's ``structure_key``.
        candidate_keys: the smaller networks the ``network`` stage tries.
        settings: the variants and the noise band.
        n_test: test images (the noise band is at least one image).
        tracks: ``together`` and/or ``alone``.

    Returns:
        One row per (track, stage, variant): ``track``, ``stage``, ``structure_key``,
        ``deployment`` (label), its fields, ``mean_error``, ``std_error``, ``n_seeds``,
        ``energy_per_image_mj``, ``runtime_per_image_ms``, ``power_w``, ``status`` (of the
        cost), ``within`` (mean error within the band), ``chosen`` (the stage's pick),
        ``limit`` (the largest mean error allowed) and ``saving`` (baseline energy over
        this variant's).
    """
    settings = settings or StageSettings()
    base = settings.base
    base_errors = evaluator.errors(baseline_key, base)
    limit = float(np.nanmean(base_errors)) + _noise_band(base_errors, settings.tol_sigma, n_test)
    base_energy = float(evaluator.cost(baseline_key, base)["energy_per_image_mj"])
    rows: list[dict[str, Any]] = []

    def price(track: str, stage: str, key: str, dep: Deployment) -> dict[str, Any]:
        errors = np.asarray(evaluator.errors(key, dep), dtype=float)
        cost = evaluator.cost(key, dep)
        ok = np.isfinite(errors)
        energy = float(cost.get("energy_per_image_mj", math.nan))
        mean = float(errors[ok].mean()) if ok.all() and ok.any() else math.nan
        row = {
            "track": track,
            "stage": stage,
            "structure_key": key,
            "deployment": dep.label,
            **asdict(dep),
            "mean_error": mean,
            "std_error": float(errors[ok].std(ddof=1)) if ok.sum() > 1 else math.nan,
            "n_seeds": int(ok.sum()),
            "energy_per_image_mj": energy,
            "runtime_per_image_ms": float(cost.get("runtime_per_image_ms", math.nan)),
            "power_w": float(cost.get("power_w", math.nan)),
            "status": cost.get("status", ""),
            "within": bool(np.isfinite(mean) and mean <= limit + 1e-12),
            "chosen": False,
            "limit": limit,
            "saving": base_energy / energy if energy > 0 else math.nan,
        }
        rows.append(row)
        return row

    def choose(tried: list[dict[str, Any]]) -> dict[str, Any]:
        usable = [
            r for r in tried if r["within"] and r["status"] == "ok" and r["energy_per_image_mj"] > 0
        ]
        pick = min(usable, key=lambda r: r["energy_per_image_mj"]) if usable else tried[0]
        pick["chosen"] = True
        return pick

    price("baseline", "baseline", baseline_key, base)["chosen"] = True
    for track in tracks:
        key, dep = baseline_key, base
        for stage in STAGES:
            start_key, start_dep = (key, dep) if track == "together" else (baseline_key, base)
            if stage == "network":
                tried = [
                    price(track, stage, k, start_dep)
                    for k in dict.fromkeys([start_key, *candidate_keys])
                ]
            else:
                tried = [
                    price(track, stage, start_key, v) for v in settings.variants(stage, start_dep)
                ]
            pick = choose(tried)
            if track == "together":
                key, dep = pick["structure_key"], Deployment.from_label(pick["deployment"])
    return pd.DataFrame(rows)


def stage_savings(walk: pd.DataFrame) -> pd.DataFrame:
    """Each stage's factor of energy saved, per track, from :func:`run_stages`' output.

    Returns:
        One row per (track, stage): ``choice`` (network and deployment), ``energy_per_image_mj``,
        ``mean_error``, ``factor`` (the stage's own saving: energy before the stage over
        after; for ``alone``, the baseline's over the choice's) and ``cumulative``
        (baseline energy over the choice's).
    """
    chosen = walk[walk["chosen"]]
    base = chosen[chosen["track"] == "baseline"].iloc[0]
    out = []
    for track in [t for t in ("together", "alone") if t in set(chosen["track"])]:
        before = float(base["energy_per_image_mj"])
        for stage in STAGES:
            pick = chosen[(chosen["track"] == track) & (chosen["stage"] == stage)]
            if pick.empty:
                continue
            r = pick.iloc[0]
            energy = float(r["energy_per_image_mj"])
            out.append(
                {
                    "track": track,
                    "stage": stage,
                    "choice": f"{r['structure_key']} {r['deployment']}",
                    "energy_per_image_mj": energy,
                    "mean_error": float(r["mean_error"]),
                    "factor": before / energy,
                    "cumulative": float(base["energy_per_image_mj"]) / energy,
                }
            )
            if track == "together":
                before = energy
    return pd.DataFrame(out)


def pick_networks(
    table: pd.DataFrame, n_candidates: int = 4, margin: float = 0.03
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The baseline and the candidate smaller networks from a HyperPower benchmark table.

    The baseline is the configuration of lowest test error. Candidates are other
    structures, each with its best configuration's training settings, whose best error is
    within ``margin`` of the baseline's and whose measured energy per image is lower,
    the ``n_candidates`` of lowest energy (training-space exploration over what the table
    already trained once).

    Args:
        table: :func:`~hwml.hyperpower.table.load_benchmark`'s rows.
        n_candidates: how many smaller networks the ``network`` stage tries.
        margin: largest excess of a candidate's table error over the baseline's.

    Returns:
        ``(baseline, candidates)``: configuration dicts with ``structure_key``.
    """
    ok = table[(table["status"] == "ok") & np.isfinite(table["test_error"])]
    if ok.empty:
        raise ValueError("the benchmark table has no successfully trained configuration")
    best = ok.sort_values(["test_error", "key"]).groupby("structure_key", sort=False).head(1)
    base = best.iloc[0]
    near = best[
        (best["test_error"] <= base["test_error"] + margin)
        & (best["energy_per_image_mj"] < base["energy_per_image_mj"])
        & (best["structure_key"] != base["structure_key"])
    ].sort_values("energy_per_image_mj")
    fields = ["structure_key", *STRUCTURAL, *TRAINING]

    def as_config(r: pd.Series) -> dict[str, Any]:
        return {f: (r[f].item() if hasattr(r[f], "item") else r[f]) for f in fields}

    return as_config(base), [as_config(r) for _, r in near.head(n_candidates).iterrows()]


# ==================================================================== deploying a model


def deploy(
    model: nn.Module,
    deployment: Deployment,
    example: torch.Tensor,
    device: Any,
    *,
    fine_tune: Callable[[nn.Module], Any] | None = None,
    pruned: nn.Module | None = None,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, nn.Module, dict[str, Any]]:
    """Apply a deployment to a trained float32 model.

    Pruning (fine-tuned with ``fine_tune``; pass ``pruned`` to reuse an earlier result),
    then precision, then for ``2:4`` the sparse storage where the GPU runs it, then the
    execution mode at the deployment's batch.

    Args:
        model: the trained network (not modified).
        deployment: what to apply.
        example: input images (float32); re-batched to ``deployment.batch``.
        device: where it runs (a :class:`~hwml.hardware.Device` or a torch device name).
        fine_tune: fine-tuning after pruning.
        pruned: the already pruned (and fine-tuned) float32 model.

    Returns:
        ``(callable, input, pruned_model, info)``: the callable takes ``input``'s shape;
        ``pruned_model`` is the float32 model after pruning (for reuse); info holds what
        each step reported (``prune_*``, ``precision_*``, ``sparse_*``, ``execution_*``).
    """
    from hwml.hardware import as_torch_device

    dev = as_torch_device(device)
    info: dict[str, Any] = {}
    kind, _, arg = ("2:4", "", "") if deployment.prune == "2:4" else deployment.prune.partition(":")
    if pruned is None:
        if kind == "none":
            pruned = model
        elif kind == "2:4":
            pruned, pinfo = prune_2to4(model, fine_tune=fine_tune)
            info.update({f"prune_{k}": v for k, v in pinfo.items()})
        elif kind == "channels":
            keep = float(arg)
            pruned, pinfo = prune_channels(
                model, conv1_keep=keep, conv2_keep=keep, dense_keep=keep, fine_tune=fine_tune
            )
            info.update({f"prune_{k}": v for k, v in pinfo.items()})
        elif kind == "unstructured":
            pruned, pinfo = prune_unstructured(model, float(arg), fine_tune=fine_tune)
            info.update({f"prune_{k}": v for k, v in pinfo.items()})
        else:
            raise ValueError(
                f"unknown pruning {deployment.prune!r}; supported: none, 2:4, "
                "channels:<keep fraction>, unstructured:<amount>"
            )
    x = rebatch(example, deployment.batch).to(dev)
    pruned = pruned.to(dev).eval()
    m, pinfo = apply_precision(pruned, x, deployment.precision, dev)
    info.update({f"precision_{k}": v for k, v in pinfo.items()})
    if kind == "2:4":
        m, sinfo = to_semi_structured(m, dev)
        info.update({f"sparse_{k}": v for k, v in sinfo.items()})
    fn, einfo = prepare_execution(m, x, deployment.execution, dev)
    info.update({f"execution_{k}": v for k, v in einfo.items()})
    return fn, x, pruned, info


def _reason(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]


class GpuEvaluator:
    """Trains, deploys and measures on a device, appending every result to ``out``.

    Networks are trained (``train_cnn``, one per seed) when first needed and their weights
    cached in ``out/weights``; ``errors.csv`` and ``costs.csv`` (:data:`ERROR_COLUMNS`,
    :data:`COST_COLUMNS`) get one row per result and are read back first, so a rerun
    measures only what is missing. The cost of a deployment is measured once, on the
    seed-0 network.

    Args:
        out: output folder.
        configs: ``structure_key`` -> configuration (structure and training settings).
        data: the task's data.
        device: an opened :class:`~hwml.hardware.Device`.
        seeds: training seeds.
        epochs: training epochs.
        fine_tune_epochs, fine_tune_lr: fine-tuning after pruning.
        deadline: ``time.perf_counter()`` value after which nothing new starts
            (:class:`TimeUp`).
        log: progress messages.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        configs: dict[str, dict[str, Any]],
        data: Any,
        device: Any,
        *,
        seeds: Sequence[int] = (0, 1, 2, 3, 4),
        epochs: int = 10,
        fine_tune_epochs: int = 2,
        fine_tune_lr: float = 0.01,
        deadline: float = math.inf,
        log: Callable[[str], Any] = lambda s: print(s, file=sys.stderr, flush=True),
    ) -> None:
        self.out = Path(out)
        (self.out / "weights").mkdir(parents=True, exist_ok=True)
        self.configs = configs
        self.data = data
        self.device = device
        self.seeds = tuple(int(s) for s in seeds)
        self.epochs = epochs
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tune_lr = fine_tune_lr
        self.deadline = deadline
        self.log = log
        self.error_table = AppendTable(self.out / "errors.csv", ERROR_COLUMNS)
        self.cost_table = AppendTable(self.out / "costs.csv", STAGE_COST_COLUMNS)
        self.training_table = AppendTable(
            self.out / "trainings.csv",
            [
                "key",
                "structure_key",
                "seed",
                *STRUCTURAL,
                *TRAINING,
                "epochs",
                "test_error",
                "train_time_s",
                "status",
                "reason",
                "date",
            ],
        )
        self._errors = _read_rows(self.out / "errors.csv")
        self._costs = _read_rows(self.out / "costs.csv")
        self._models: dict[tuple[str, int], nn.Module] = {}
        self._pruned: dict[tuple[str, int, str], nn.Module] = {}
        self._prune_info: dict[tuple[str, int, str], dict[str, Any]] = {}

    def _check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise TimeUp("time limit reached; rerun the same command to go on")

    def model(self, key: str, seed: int) -> nn.Module | None:
        """The trained float32 network of ``key`` and ``seed`` (None if training failed)."""
        from hwml.data import now_iso
        from hwml.tasks.cnn import build_cnn, train_cnn

        if (key, seed) in self._models:
            return self._models[(key, seed)]
        config = self.configs[key]
        path = self.out / "weights" / f"{key}-s{seed}.pt"
        dev = self.device.torch_device
        if path.exists():
            model = build_cnn(
                config,
                self.data.image_size,
                in_channels=self.data.in_channels,
                n_classes=self.data.n_classes,
            )
            model.load_state_dict(torch.load(path, map_location="cpu"))
            model = model.to(dev).eval()
        else:
            self._check_time()
            result = train_cnn(
                config,
                device=self.device,
                epochs=self.epochs,
                seed=seed,
                data=self.data,
                return_model=True,
            )
            model = result.pop("model")
            self.training_table.append(
                {
                    "key": f"{key}|s{seed}",
                    "structure_key": key,
                    "seed": seed,
                    **{k: v for k, v in config.items() if k != "structure_key"},
                    "epochs": self.epochs,
                    "test_error": result["test_error"],
                    "train_time_s": result["train_time_s"],
                    "status": result["status"],
                    "reason": result["reason"],
                    "date": now_iso(),
                }
            )
            self.log(
                f"trained {key} seed {seed}: error {result['test_error']:.4f} "
                f"({result['train_time_s']:.1f} s)"
            )
            if model is not None:
                torch.save(model.state_dict(), path)
        self._models[(key, seed)] = model
        return model

    def _deployed(self, key: str, seed: int, dep: Deployment):
        model = self.model(key, seed)
        if model is None:
            raise RuntimeError(f"{key} seed {seed} did not train")
        cache = (key, seed, dep.prune)
        fine = fine_tuner(
            self.data,
            epochs=self.fine_tune_epochs,
            learning_rate=self.fine_tune_lr,
            device=self.device,
            seed=seed,
        )
        if cache not in self._pruned:
            self._check_time()
        fn, x, pruned, info = deploy(
            model,
            dep,
            self.data.x_test[: dep.batch],
            self.device,
            fine_tune=fine,
            pruned=self._pruned.get(cache),
        )
        if cache not in self._pruned:
            self._prune_info[cache] = {k: v for k, v in info.items() if k.startswith("prune_")}
        self._pruned[cache] = pruned
        return fn, x, {**self._prune_info.get(cache, {}), **info}

    def errors(self, structure_key: str, deployment: Deployment) -> list[float]:
        """Per-seed test errors (measured now if missing)."""
        from hwml.data import now_iso

        out = []
        for seed in self.seeds:
            k = f"{structure_key}|{deployment.label}|s{seed}"
            if k not in self._errors:
                self._check_time()
                row = {
                    "key": k,
                    "structure_key": structure_key,
                    "deployment": deployment.label,
                    "seed": seed,
                    "date": now_iso(),
                }
                try:
                    fn, _, _ = self._deployed(structure_key, seed, deployment)
                    res = evaluate_accuracy(
                        fn, self.data, batch=deployment.batch, device=self.device
                    )
                    row.update(test_error=res["test_error"], status="ok", reason="")
                except TimeUp:
                    raise
                except Exception as err:  # noqa: BLE001 - a variant that fails is a result
                    row.update(test_error=math.nan, status="error", reason=_reason(err))
                self.error_table.append(row)
                self._errors[k] = row
            out.append(_float(self._errors[k].get("test_error")))
        return out

    def cost(self, structure_key: str, deployment: Deployment) -> dict[str, Any]:
        """The measured cost row (measured now on the seed-0 network if missing)."""
        from hwml.data import now_iso

        k = f"{structure_key}|{deployment.label}"
        if k not in self._costs:
            self._check_time()
            row = {
                "key": k,
                "structure_key": structure_key,
                "deployment": deployment.label,
                **asdict(deployment),
                "weights": f"seed{self.seeds[0]}",
                "gpu_uuid": self.device.info.get("gpu_uuid", ""),
                "date": now_iso(),
            }
            try:
                fn, x, info = self._deployed(structure_key, self.seeds[0], deployment)
                row["info"] = _info_json(info)
                row.update(_measured(fn, x, self.device))
            except TimeUp:
                raise
            except Exception as err:  # noqa: BLE001
                row.update(status="error", reason=_reason(err))
            self.cost_table.append(row)
            self._costs[k] = row
            self.log(
                f"measured {k}: {_float(row.get('energy_per_image_mj')):.4f} mJ/image "
                f"({row['status']})"
            )
        return _typed(self._costs[k])


def _measured(fn: Callable, x: torch.Tensor, device: Any) -> dict[str, Any]:
    r = measure_deployment(fn, x, device)
    return {k: r.get(k) for k in _MEASURED} | {"reason": r.get("reason", "")}


def _info_json(info: dict[str, Any]) -> str:
    """What :func:`deploy` reported, as compact JSON (long lists cut)."""
    import json

    def short(v: Any) -> Any:
        if isinstance(v, list | tuple) and len(v) > 8:
            return [*v[:8], f"... {len(v) - 8} more"]
        return v

    return json.dumps({k: short(v) for k, v in info.items()}, default=str)[:2000]


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in ("runtime_ms", "runtime_per_image_ms", "power_w", "energy_per_image_mj"):
        out[k] = _float(out.get(k))
    out["status"] = str(out.get("status") or "")
    return out


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists() or path.stat().st_size == 0:
        return {}
    frame = pd.read_csv(path, keep_default_na=False)
    return {str(r["key"]): r for r in frame.to_dict("records")}


class TableEvaluator:
    """Reads a finished run's ``errors.csv`` and ``costs.csv``: the walk without a GPU.

    Args:
        folder: the run's folder (or its name under ``data/``).
        seeds: the training seeds to read (default: all in the table).

    Raises:
        KeyError: from :meth:`errors` or :meth:`cost`, for a variant the run never priced
            (the message names it and the folder).
    """

    def __init__(self, folder: str | os.PathLike[str], seeds: Sequence[int] | None = None):
        self.folder = Path(dataset_path(folder))
        self._errors = _read_rows(self.folder / "errors.csv")
        self._costs = _read_rows(self.folder / "costs.csv")
        if not self._costs:
            raise FileNotFoundError(f"no costs.csv in {self.folder}")
        found = sorted({int(r["seed"]) for r in self._errors.values()})
        self.seeds = tuple(seeds) if seeds is not None else tuple(found)

    def errors(self, structure_key: str, deployment: Deployment) -> list[float]:
        """Per-seed test errors from ``errors.csv``."""
        out = []
        for seed in self.seeds:
            k = f"{structure_key}|{deployment.label}|s{seed}"
            if k not in self._errors:
                raise KeyError(f"{k} is not in {self.folder / 'errors.csv'}: the run stopped early")
            out.append(_float(self._errors[k]["test_error"]))
        return out

    def cost(self, structure_key: str, deployment: Deployment) -> dict[str, Any]:
        """The row of ``costs.csv``."""
        k = f"{structure_key}|{deployment.label}"
        if k not in self._costs:
            raise KeyError(f"{k} is not in {self.folder / 'costs.csv'}: the run stopped early")
        return _typed(self._costs[k])


# ============================================================= the co-search cost table


def measure_cost_table(
    structures: pd.DataFrame,
    deployments: Sequence[Deployment],
    out: str | os.PathLike[str],
    device: Any,
    *,
    image_size: int = 24,
    in_channels: int = 1,
    deadline: float = math.inf,
    log: Callable[[str], Any] = lambda s: print(s, file=sys.stderr, flush=True),
) -> int:
    """Measure every structure under every deployment (random weights) into ``cost_table.csv``.

    Args:
        structures: rows with ``key`` (the structure key) and the structural fields.
        deployments: what to measure (pruning other than ``none`` needs trained weights
            and is refused).
        out: output folder.
        device: an opened :class:`~hwml.hardware.Device`.
        image_size, in_channels: the task's input.
        deadline: stop before a new structure after this ``time.perf_counter()`` value.
        log: progress messages.

    Returns:
        Rows measured by this call (rows already in the table are skipped).
    """
    from hwml.data import now_iso
    from hwml.tasks.cnn import build_cnn

    if any(d.prune != "none" for d in deployments):
        raise ValueError("the cost table measures unpruned networks only (random weights)")
    table = AppendTable(Path(out) / "cost_table.csv", COST_COLUMNS)
    done = table.done_keys()
    dev = device.torch_device
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(max(d.batch for d in deployments), in_channels, image_size, image_size)
    n = 0
    for i, (_, s) in enumerate(structures.iterrows()):
        todo = [d for d in deployments if f"{s['key']}|{d.label}" not in done]
        if not todo:
            continue
        if time.perf_counter() > deadline:
            raise TimeUp("time limit reached; rerun the same command to go on")
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        model = build_cnn(s.to_dict(), image_size, in_channels=in_channels).to(dev).eval()
        for d in todo:
            row = {
                "key": f"{s['key']}|{d.label}",
                "structure_key": s["key"],
                "deployment": d.label,
                **asdict(d),
                "weights": "random",
                "gpu_uuid": device.info.get("gpu_uuid", ""),
                "date": now_iso(),
            }
            try:
                fn, x, _, _ = deploy(model, d, example, device)
                row.update(_measured(fn, x, device))
            except Exception as err:  # noqa: BLE001
                row.update(status="error", reason=_reason(err))
            table.append(row)
            n += 1
        log(f"cost table: structure {i + 1}/{len(structures)} {s['key']}")
        del model
    return n


# ======================================================================== documentation

_COST_DOCS: dict[str, tuple[str, str]] = {
    "key": ("", "`<structure_key>|<deployment>`: the row's identity (resuming skips it)"),
    "structure_key": ("", "the network: conv1 filters-conv2 filters-kernel-dense units"),
    "deployment": ("", "`prune/precision/execution/b<batch>` (`Deployment.label`)"),
    "prune": ("", "`none`, `2:4`, `channels:<kept fraction>` or `unstructured:<amount>`"),
    "precision": ("", "fp32, tf32, bf16, fp16 or fp8 (what ran is in `info`)"),
    "execution": ("", "eager, cuda-graph or compile"),
    "batch": ("images", "images per inference call"),
    "weights": ("", "`seed0`: the trained seed-0 network; `random`: untrained weights"),
    "runtime_ms": ("ms", "median wall time of one call, eager timing of the deployed callable"),
    "runtime_per_image_ms": ("ms", "runtime_ms / batch"),
    "power_w": ("W", "average board power over the window of back-to-back calls"),
    "energy_per_image_mj": ("mJ", "energy of the window / calls / batch"),
    "busy_fraction": ("", "share of the window the GPU was busy (NVML utilization)"),
    "power_mode": ("", "how the window ran the work (`eager`: the callable as deployed)"),
    "status": ("", "`ok`, `error` (did not run: see reason), `no_power`, `over_limit`"),
    "reason": ("", "why a row is not ok"),
    "gpu_uuid": ("", "the GPU that measured the row"),
    "date": ("", "when the row was measured (UTC)"),
    "info": ("", "JSON: what each step of `deploy` reported (dtypes, sparse layers, mode)"),
}
_ERROR_DOCS: dict[str, tuple[str, str]] = {
    "key": ("", "`<structure_key>|<deployment>|s<seed>`"),
    "structure_key": _COST_DOCS["structure_key"],
    "deployment": _COST_DOCS["deployment"],
    "seed": ("", "training seed of the network (pruning fine-tunes with the same seed)"),
    "test_error": ("fraction", "test images misclassified by the deployed network"),
    "status": ("", "`ok` or `error`"),
    "reason": ("", "why a row is not ok"),
    "date": _COST_DOCS["date"],
}
_TRAINING_DOCS: dict[str, tuple[str, str]] = {
    "key": ("", "`<structure_key>|s<seed>`"),
    "structure_key": _COST_DOCS["structure_key"],
    "seed": ("", "training seed (initial weights and batch order)"),
    "conv1_filters": ("", "filters of the first convolution"),
    "conv2_filters": ("", "filters of the second convolution"),
    "kernel_size": ("", "kernel side of both convolutions"),
    "dense_units": ("", "hidden units of the dense layer"),
    "learning_rate": ("", "SGD learning rate (cosine decay to zero)"),
    "momentum": ("", "SGD momentum"),
    "weight_decay": ("", "SGD weight decay"),
    "epochs": ("", "training epochs"),
    "test_error": ("fraction", "test error of the float32 network after training"),
    "train_time_s": ("s", "time to build, train and test the network"),
    "status": ("", "`ok`, `failed` (diverged) or `oom`"),
    "reason": ("", "why a training is not ok"),
    "date": _COST_DOCS["date"],
}


def write_readmes(out: str | os.PathLike[str]) -> list[Path]:
    """Write the README (description, provenance, column tables, NOTES.md) of a stage run's
    folder and of its ``table/`` sub-folder, where they hold data."""
    from hwml.data import write_readme

    out = Path(out)
    written = []
    if (out / "provenance.json").exists():
        written.append(
            write_readme(
                out,
                "Savings across the stack: stage by stage",
                "Written by `python -m hwml.deploy.stages` (the module's docstring gives the "
                "method): a baseline network of a HyperPower benchmark and smaller candidates, "
                "trained over several seeds, then priced under deployments level by level "
                "(network, precision, pruning, execution, batch): each deployment's test error "
                "per seed (`errors.csv`) and its measured runtime, power and energy per image "
                "(`costs.csv`, on the seed-0 network). `networks.json` names the networks; "
                "`runs.json` lists the commands. Rows are appended as measured, never edited.",
                {"errors": _ERROR_DOCS, "costs": _COST_DOCS, "trainings": _TRAINING_DOCS},
            )
        )
    if (out / "table" / "provenance.json").exists():
        written.append(
            write_readme(
                out / "table",
                "Deployment cost table",
                "Written by `python -m hwml.deploy.stages --phases table`: every structure of "
                "a HyperPower benchmark measured under a few deployments (precision x "
                "execution at one batch) with random weights, the table a search over the "
                "model and its deployment together prices candidates from. `runs.json` lists "
                "the commands.",
                {"cost_table": _COST_DOCS},
            )
        )
    return written


# ======================================================================== command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwml.deploy.stages``: the stage walk and the cost table on a GPU."""
    import json

    from hwml.data import git_commit, now_iso, read_provenance
    from hwml.hardware import open_device
    from hwml.hyperpower.table import load_benchmark
    from hwml.tasks.images import load_data

    p = argparse.ArgumentParser(prog="python -m hwml.deploy.stages", description=__doc__)
    p.add_argument("--folder", default="hyperpower-nvidia-h200-cued-digits")
    p.add_argument(
        "--out", required=True, help="output folder (the table phase writes into OUT/table)"
    )
    p.add_argument("--device", default="cuda")
    p.add_argument("--phases", nargs="+", default=["stages", "table"], choices=["stages", "table"])
    p.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--margin", type=float, default=0.03)
    p.add_argument("--table-structures", type=int, default=200)
    p.add_argument("--table-batch", type=int, default=256)
    p.add_argument("--time-limit", type=float, default=math.inf, help="seconds")
    p.add_argument("--git-commit", default=None)
    args = p.parse_args(argv)

    deadline = time.perf_counter() + args.time_limit
    folder = dataset_path(args.folder)
    prov = read_provenance(folder)
    table = load_benchmark(folder)
    data = load_data(prov.get("dataset", "digits"), image_size=int(prov.get("image_size", 32)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitignore").write_text("weights/\n")
    device = open_device(args.device, power=args.device != "cpu")
    settings = StageSettings()
    facts = {
        "benchmark": str(args.folder),
        "dataset": prov.get("dataset"),
        "image_size": int(prov.get("image_size", 32)),
        "n_test": len(data.y_test),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "settings": asdict(settings),
        **{k: v for k, v in device.info.items() if isinstance(v, str | int | float)},
    }
    commit = args.git_commit or git_commit() or "unknown"

    def record(where: Path) -> None:
        """Append this run to ``where/runs.json`` and write the machine's facts."""
        where.mkdir(parents=True, exist_ok=True)
        log = where / "runs.json"
        runs = json.loads(log.read_text()) if log.exists() else []
        run = {"command": " ".join(sys.argv), "date": now_iso(), "git_commit": commit}
        runs.append({**run, "phases": args.phases})
        log.write_text(json.dumps(runs, indent=1))
        (where / "provenance.json").write_text(json.dumps(facts, indent=1, default=str))

    try:
        if "stages" in args.phases:
            record(out)
            base, candidates = pick_networks(table, args.candidates, args.margin)
            configs = {c["structure_key"]: c for c in [base, *candidates]}
            (out / "networks.json").write_text(
                json.dumps({"baseline": base, "candidates": candidates}, indent=1)
            )
            evaluator = GpuEvaluator(
                out,
                configs,
                data,
                device,
                seeds=range(args.seeds),
                epochs=args.epochs,
                deadline=deadline,
            )
            walk = run_stages(
                evaluator,
                base["structure_key"],
                [c["structure_key"] for c in candidates],
                settings,
                n_test=len(data.y_test),
            )
            print(stage_savings(walk).to_string(), flush=True)
        if "table" in args.phases:
            record(out / "table")
            structures = pd.read_csv(folder / "structures.csv").head(args.table_structures)
            b = args.table_batch
            deployments = [
                Deployment("none", p, e, b)
                for p in ("fp32", "fp16")
                for e in ("eager", "cuda-graph")
            ]
            n = measure_cost_table(
                structures,
                deployments,
                out / "table",
                device,
                image_size=data.image_size,
                in_channels=data.in_channels,
                deadline=deadline,
            )
            print(f"cost table: {n} rows measured", flush=True)
    except TimeUp as err:
        print(f"stopped: {err}", file=sys.stderr)
        write_readmes(out)
        return 3
    write_readmes(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
