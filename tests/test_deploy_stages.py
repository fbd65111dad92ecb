"""Tests of hwml.deploy.stages: the Minerva-style stage walk, its evaluators and the cost table."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch

from hwml.data import dataset_path
from hwml.deploy.stages import (
    STAGES,
    Deployment,
    GpuEvaluator,
    StageSettings,
    TableEvaluator,
    TimeUp,
    deploy,
    measure_cost_table,
    pick_networks,
    run_stages,
    stage_savings,
)
from hwml.hardware import open_device
from hwml.tasks.cnn import build_cnn
from hwml.tasks.images import ImageData

STAGE_DATA = dataset_path("deploy-nvidia-h200-cued-digits")


class FakeEvaluator:
    """Errors from a dictionary; energy = the network's times a factor per knob."""

    def __init__(self, errors, energy, failing=()):
        self.err, self.energy, self.failing = errors, energy, set(failing)
        self.asked = []

    def _key(self, key, dep):
        return (key, dep.label)

    def errors(self, key, dep):
        self.asked.append(self._key(key, dep))
        return self.err.get(self._key(key, dep), self.err[("default", "")])

    def cost(self, key, dep):
        if self._key(key, dep) in self.failing:
            return {"energy_per_image_mj": math.nan, "status": "error"}
        e = self.energy[(key, "base")]
        e *= 0.5 if dep.precision == "fp16" else 1.0
        e *= 0.1 if dep.prune == "channels:0.5" else 1.0
        e *= 0.8 if dep.execution == "cuda-graph" else 1.0
        e *= 0.9 if dep.batch == 256 else 1.0
        return {
            "energy_per_image_mj": e,
            "runtime_per_image_ms": 1.0,
            "power_w": 1.0,
            "status": "ok",
        }


SETTINGS = StageSettings(
    base=Deployment(batch=64),
    precisions=("fp16",),
    prunings=("channels:0.5",),
    executions=("cuda-graph",),
    batches=(256,),
)


def _fake():
    base = Deployment(batch=64)
    errors = {
        ("default", ""): [0.10, 0.11, 0.12],  # mean 0.11, std 0.01: band up to 0.13
        ("big", base.label): [0.10, 0.11, 0.12],
        ("small", base.label): [0.12, 0.12, 0.12],  # within the band
        ("tiny", base.label): [0.20, 0.21, 0.22],  # cheapest but outside the band
        ("big", Deployment(prune="channels:0.5", batch=64).label): [0.2, 0.2, 0.2],
    }
    energy = {("big", "base"): 10.0, ("small", "base"): 4.0, ("tiny", "base"): 1.0}
    return FakeEvaluator(errors, energy)


def test_deployment_labels_round_trip_and_bad_labels_are_named() -> None:
    d = Deployment("2:4", "fp16", "cuda-graph", 256)
    assert d.label == "2:4/fp16/cuda-graph/b256"
    assert Deployment.from_label(d.label) == d
    with pytest.raises(ValueError, match="not a deployment label: 'fp16'"):
        Deployment.from_label("fp16")
    with pytest.raises(ValueError, match="unknown stage 'quantum'"):
        StageSettings().variants("quantum", d)


def test_walk_keeps_only_variants_within_the_noise_band() -> None:
    walk = run_stages(_fake(), "big", ["small", "tiny"], SETTINGS, n_test=1000)
    assert walk["limit"].iloc[0] == pytest.approx(0.11 + 2 * 0.01)
    chosen = walk[walk["chosen"]].set_index(["track", "stage"])
    # tiny is the cheapest network but 0.21 is outside the band; small is kept
    assert chosen.loc[("together", "network"), "structure_key"] == "small"
    # channel pruning would save 10x but its error leaves the band: not chosen
    assert chosen.loc[("alone", "pruning"), "prune"] == "none"
    # fp16 halves the energy within the band, alone and in the chain
    assert chosen.loc[("alone", "precision"), "precision"] == "fp16"
    assert chosen.loc[("together", "precision"), "precision"] == "fp16"
    # the chain compounds: the batch stage starts from small + fp16 + cuda-graph
    last = chosen.loc[("together", "batch")]
    assert (last["structure_key"], last["precision"], last["execution"], last["batch"]) == (
        "small",
        "fp16",
        "cuda-graph",
        256,
    )
    # pruning the small network stays within the band (only the big one's leaves it)
    assert last["prune"] == "channels:0.5"
    assert last["saving"] == pytest.approx(10.0 / (4.0 * 0.5 * 0.1 * 0.8 * 0.9))


def test_alone_track_starts_every_stage_from_the_baseline() -> None:
    walk = run_stages(_fake(), "big", ["small"], SETTINGS, tracks=("alone",))
    alone = walk[walk["track"] == "alone"]
    for stage in STAGES[1:]:
        assert set(alone.loc[alone["stage"] == stage, "structure_key"]) == {"big"}
    assert set(walk["track"]) == {"baseline", "alone"}


def test_a_failed_or_unmeasured_variant_is_never_chosen() -> None:
    fake = _fake()
    fp16 = Deployment(precision="fp16", batch=64)
    fake.failing = {("big", fp16.label)}
    walk = run_stages(fake, "big", [], SETTINGS, tracks=("alone",))
    prec = walk[(walk["stage"] == "precision")]
    assert not prec.loc[prec["precision"] == "fp16", "chosen"].any()
    assert prec.loc[prec["precision"] == "fp32", "chosen"].all()


def test_savings_compound_in_the_chain() -> None:
    walk = run_stages(_fake(), "big", ["small", "tiny"], SETTINGS)
    s = stage_savings(walk)
    chain = s[s["track"] == "together"]
    assert list(chain["stage"]) == list(STAGES)
    assert np.prod(chain["factor"]) == pytest.approx(chain["cumulative"].iloc[-1])
    alone = s[s["track"] == "alone"].set_index("stage")
    assert alone.loc["precision", "factor"] == pytest.approx(2.0)


def test_pick_networks_takes_the_best_and_cheaper_near_ones() -> None:
    rows = []
    for key, err, energy in [
        ("a", 0.10, 10.0),
        ("b", 0.12, 2.0),
        ("c", 0.30, 0.5),
        ("d", 0.11, 20.0),
        ("e", 0.125, 1.0),
    ]:
        rows.append(
            {
                "key": f"{key}-cfg",
                "structure_key": key,
                "conv1_filters": 8,
                "conv2_filters": 8,
                "kernel_size": 3,
                "dense_units": 16,
                "learning_rate": 0.05,
                "momentum": 0.9,
                "weight_decay": 1e-4,
                "test_error": err,
                "status": "ok",
                "energy_per_image_mj": energy,
            }
        )
    base, cands = pick_networks(pd.DataFrame(rows), n_candidates=4, margin=0.03)
    assert base["structure_key"] == "a"
    # c is too inaccurate, d costs more than the baseline; e before b (lower energy)
    assert [c["structure_key"] for c in cands] == ["e", "b"]
    assert isinstance(base["conv1_filters"], int) and isinstance(base["learning_rate"], float)
    with pytest.raises(ValueError, match="no successfully trained"):
        pick_networks(pd.DataFrame(rows).assign(status="failed"))


@pytest.fixture
def tiny():
    g = torch.Generator().manual_seed(0)
    data = ImageData(
        "random",
        torch.randn(64, 1, 8, 8, generator=g),
        torch.randint(0, 10, (64,), generator=g),
        torch.randn(32, 1, 8, 8, generator=g),
        torch.randint(0, 10, (32,), generator=g),
    )
    config = {
        "structure_key": "8-8-3-16",
        "conv1_filters": 8,
        "conv2_filters": 8,
        "kernel_size": 3,
        "dense_units": 16,
        "learning_rate": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0,
    }
    return data, {"8-8-3-16": config}


def _evaluator(out, tiny, **kw):
    data, configs = tiny
    return GpuEvaluator(
        out,
        configs,
        data,
        open_device("cpu", power=False),
        seeds=(0, 1),
        epochs=1,
        fine_tune_epochs=1,
        log=lambda s: None,
        **kw,
    )


def test_gpu_evaluator_records_every_result_and_resumes(tmp_path, tiny) -> None:
    ev = _evaluator(tmp_path, tiny)
    d = Deployment("channels:0.5", "fp32", "eager", 16)
    errors = ev.errors("8-8-3-16", d)
    cost = ev.cost("8-8-3-16", d)
    assert len(errors) == 2 and all(0 <= e <= 1 for e in errors)
    assert cost["runtime_per_image_ms"] > 0 and cost["status"] == "no_power"  # CPU: no meter
    info = json.loads(pd.read_csv(tmp_path / "costs.csv")["info"].iloc[0])
    assert info["prune_config"]["conv1_filters"] == 4 and info["execution_ran"] == "eager"
    # a graph on the CPU cannot run: recorded as an error row with the reason, not raised
    g = Deployment("none", "fp32", "cuda-graph", 16)
    assert all(math.isnan(e) for e in ev.errors("8-8-3-16", g))
    bad = pd.read_csv(tmp_path / "errors.csv").query("status == 'error'")
    assert len(bad) == 2 and bad["reason"].str.contains("cuda-graph").all()
    trained = len(pd.read_csv(tmp_path / "trainings.csv"))
    assert trained == 2 and len(list((tmp_path / "weights").glob("*.pt"))) == 2
    # a second evaluator on the same folder trains and measures nothing new
    again = _evaluator(tmp_path, tiny, deadline=time.perf_counter() - 1)
    assert again.errors("8-8-3-16", d) == pytest.approx(errors, nan_ok=True)
    assert again.cost("8-8-3-16", d)["runtime_ms"] == pytest.approx(cost["runtime_ms"])
    assert len(pd.read_csv(tmp_path / "trainings.csv")) == trained
    # ... and stops at its deadline before anything new, keeping what is there
    with pytest.raises(TimeUp, match="rerun"):
        again.errors("8-8-3-16", Deployment("none", "fp32", "eager", 32))
    assert len(pd.read_csv(tmp_path / "errors.csv")) == 4


def test_table_evaluator_replays_a_run_and_names_what_is_missing(tmp_path, tiny) -> None:
    ev = _evaluator(tmp_path, tiny)
    d = Deployment("none", "fp32", "eager", 16)
    ev.errors("8-8-3-16", d)
    ev.cost("8-8-3-16", d)
    table = TableEvaluator(tmp_path)
    assert table.seeds == (0, 1)
    assert table.errors("8-8-3-16", d) == pytest.approx(ev.errors("8-8-3-16", d))
    with pytest.raises(KeyError, match="b32 is not in"):
        table.cost("8-8-3-16", Deployment(batch=32))


def test_deploy_prunes_channels_and_refuses_an_unknown_pruning(tiny) -> None:
    data, configs = tiny
    model = build_cnn(configs["8-8-3-16"], 8)
    fn, x, pruned, info = deploy(model, Deployment("channels:0.5", batch=4), data.x_test, "cpu")
    assert x.shape[0] == 4 and fn(x).shape == (4, 10)
    assert pruned.conv1.out_channels == 4 if hasattr(pruned, "conv1") else True
    assert info["prune_params_after"] < info["prune_params_before"]
    with pytest.raises(ValueError, match="unknown pruning 'magic'.*channels:<keep fraction>"):
        deploy(model, Deployment("magic"), data.x_test, "cpu")


def test_cost_table_measures_each_pair_once(tmp_path) -> None:
    structures = pd.DataFrame(
        [
            {
                "key": "4-4-3-8",
                "conv1_filters": 4,
                "conv2_filters": 4,
                "kernel_size": 3,
                "dense_units": 8,
            },
            {
                "key": "8-4-3-8",
                "conv1_filters": 8,
                "conv2_filters": 4,
                "kernel_size": 3,
                "dense_units": 8,
            },
        ]
    )
    dev = open_device("cpu", power=False)
    deps = [Deployment("none", "fp32", "eager", 8)]
    quiet = {"image_size": 8, "log": lambda s: None}
    assert measure_cost_table(structures, deps, tmp_path, dev, **quiet) == 2
    assert measure_cost_table(structures, deps, tmp_path, dev, **quiet) == 0
    rows = pd.read_csv(tmp_path / "cost_table.csv")
    assert (
        list(rows["structure_key"]) == ["4-4-3-8", "8-4-3-8"]
        and (rows["weights"] == "random").all()
    )
    with pytest.raises(ValueError, match="unpruned"):
        measure_cost_table(structures, [Deployment("2:4")], tmp_path, dev, **quiet)


@pytest.mark.skipif(not (STAGE_DATA / "costs.csv").exists(), reason="no committed stage run")
def test_the_committed_run_replays_without_a_gpu() -> None:
    nets = json.loads((STAGE_DATA / "networks.json").read_text())
    from hwml.data import read_provenance

    walk = run_stages(
        TableEvaluator(STAGE_DATA),
        nets["baseline"]["structure_key"],
        [c["structure_key"] for c in nets["candidates"]],
        StageSettings.from_dict(read_provenance(STAGE_DATA)["settings"]),
        n_test=2000,
    )
    chain = stage_savings(walk).query("track == 'together'")
    assert list(chain["stage"]) == list(STAGES)
    assert chain["cumulative"].iloc[-1] >= 1.0
    # execution modes change no prediction: the same errors seed by seed
    errors = pd.read_csv(STAGE_DATA / "errors.csv")
    errors["mode_free"] = errors["deployment"].str.replace(
        r"/(eager|cuda-graph|compile)/", "/*/", regex=True
    )
    spread = errors.groupby(["structure_key", "mode_free", "seed"])["test_error"].agg(np.ptp)
    assert spread.max() <= 0.002  # at most 4 of 2,000 images differ


@pytest.mark.skipif(
    not (dataset_path("hyperpower-nvidia-h200-cued-digits") / "structures.csv").exists(),
    reason="no committed benchmark",
)
def test_command_line_table_phase_writes_into_out_table(tmp_path) -> None:
    from hwml.deploy.stages import main

    argv = ["--out", str(tmp_path), "--device", "cpu", "--phases", "table"]
    argv += ["--table-structures", "1", "--table-batch", "2", "--git-commit", "abc"]
    assert main(argv) == 0
    rows = pd.read_csv(tmp_path / "table" / "cost_table.csv")
    assert sorted(rows["deployment"].str.split("/").str[1:3].str.join("/")) == [
        "fp16/cuda-graph",
        "fp16/eager",
        "fp32/cuda-graph",
        "fp32/eager",
    ]
    # a CUDA graph cannot run on the CPU: recorded with the reason, the others measured
    graph = rows[rows["execution"] == "cuda-graph"]
    assert (graph["status"] == "error").all() and graph["reason"].str.contains("CUDA").all()
    runs = json.loads((tmp_path / "table" / "runs.json").read_text())
    assert runs[-1]["git_commit"] == "abc" and runs[-1]["phases"] == ["table"]
    assert not (tmp_path / "costs.csv").exists()
    readme = (tmp_path / "table" / "README.md").read_text()
    assert "## `cost_table.csv`" in readme and "not documented" not in readme


def test_settings_round_trip_and_a_pruning_may_switch_precision() -> None:
    from dataclasses import asdict

    s = StageSettings()
    assert StageSettings.from_dict(json.loads(json.dumps(asdict(s)))) == s
    # an older run's recorded settings are walked as recorded, not as today's defaults
    old = StageSettings.from_dict({"prunings": ["2:4"], "batches": [256]})
    assert old.prunings == ("2:4",) and old.batches == (256,)
    tf32 = Deployment(precision="tf32")
    tried = StageSettings(prunings=("2:4", "2:4@fp16")).variants("pruning", tf32)
    assert [d.label for d in tried] == [
        "none/tf32/eager/b64",
        "2:4/tf32/eager/b64",
        "2:4/fp16/eager/b64",
    ]
    # already in half precision: the two 2:4 variants are one
    half = StageSettings(prunings=("2:4", "2:4@fp16")).variants(
        "pruning", Deployment(precision="fp16")
    )
    assert len(half) == 2
