"""Tests of hwml.nas.benchmark on a CPU: rows, resuming, the time limit, workers, the script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hwml.data import REPO_ROOT, DatasetError
from hwml.hardware import CpuTimer, Device, PowerReading, open_device
from hwml.nas.benchmark import BenchmarkSettings, build_benchmark, networks
from hwml.nas.space import NASSpace
from hwml.nas.table import MEASURED_COLUMNS, TRAINED_COLUMNS, load_nas_benchmark, read_measurements
from hwml.profile import SweepOptions

TINY = NASSpace.tiny()
FAST = SweepOptions(budget_ms=2.0, warmup=1, progress=False)
SMALL = BenchmarkSettings(n_archs=3, references=(), epochs=1)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ConstantMeter:
    """An energy meter that always reads 150 W (stands in for NVML)."""

    available = True

    def update_period_s(self, samples: int = 20) -> float:
        return 0.1

    def idle_power_w(self, duration_s: float = 1.0) -> float:
        return 60.0

    def measure(
        self,
        launch: Callable[[], Any],
        marker: Callable[[], Any],
        *,
        launch_ms: float,
        calls_per_launch: int = 1,
        periods: int = 3,
        device_ms_per_call: float | None = None,
    ) -> PowerReading:
        launch()
        marker().synchronize()
        calls = 300 / max(launch_ms, 1e-3)
        return PowerReading(
            150.0, 0.3, 45_000.0, periods, calls, 45_000.0 / calls, busy_fraction=1.0
        )


def _build(folder: Path, settings: BenchmarkSettings = SMALL, **kw: Any) -> dict[str, int]:
    args = {
        "space": TINY,
        "workers": 1,
        "chunk": 2,
        "opts": FAST,
        "progress": False,
        "command": "test",
    }
    return build_benchmark(folder, kw.pop("device", "cpu"), settings, **{**args, **kw})


def test_rows_resume_and_provenance(tmp_path: Path) -> None:
    out = _build(tmp_path)
    assert out == {"measured": 6, "trained": 3, "remaining": 0}
    assert _build(tmp_path) == {"measured": 0, "trained": 0, "remaining": 0}  # a rerun skips all
    trained = pd.read_csv(tmp_path / "trained.csv")
    measured = pd.read_csv(tmp_path / "measured.csv")
    assert list(trained.columns) == TRAINED_COLUMNS and list(measured.columns) == MEASURED_COLUMNS
    assert len(trained) == 3 and trained["key"].is_unique
    assert (trained["status"] == "ok").all() and trained["test_error"].between(0, 1).all()
    assert sorted(measured["batch"].unique()) == [1, 64] and measured["key"].is_unique
    assert (measured["status"] == "no_power").all()  # a CPU has no energy counter
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["n_archs"] == 3 and prov["space"] == TINY.to_spec() and len(prov["runs"]) == 2
    assert "`measured.csv`" in (tmp_path / "README.md").read_text()
    with pytest.raises(DatasetError, match="epochs"):
        _build(tmp_path, BenchmarkSettings(n_archs=3, references=(), epochs=2))
    # more networks later extend the same pool
    assert _build(tmp_path, BenchmarkSettings(n_archs=4, references=(), epochs=1))["trained"] == 1
    bench = load_nas_benchmark(tmp_path)
    assert bench.pool["key"].tolist() == [TINY.key(a) for a in TINY.sample(4, 0)]
    assert not bench.has_energy and bench.batches == (1, 64)


def test_measure_only_measures_every_network_and_trains_none(tmp_path: Path) -> None:
    out = _build(tmp_path, measure_only=True, workers=2)
    assert out == {"measured": 6, "trained": 0, "remaining": 0}
    assert _build(tmp_path, measure_only=True) == {"measured": 0, "trained": 0, "remaining": 0}
    assert pd.read_csv(tmp_path / "trained.csv").empty
    measured = pd.read_csv(tmp_path / "measured.csv")
    assert measured["key"].is_unique and len(measured) == 6
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert [r["measure_only"] for r in prov["runs"]] == [True, True]
    wide = read_measurements(tmp_path)  # the second measurement, in the benchmark's shape
    assert sorted(wide.index) == sorted(measured["arch"].unique())
    assert {"runtime_ms_b1", "runtime_graph_ms_b64"} <= set(wide.columns)
    # the same folder without measure_only still owes its trainings
    assert _build(tmp_path)["trained"] == 3


def test_time_limit_stops_cleanly_and_a_rerun_finishes(tmp_path: Path) -> None:
    out = _build(tmp_path, time_limit_s=0.0)
    assert out == {"measured": 0, "trained": 0, "remaining": 3}
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["runs"][0]["outcome"] == "completed" and prov["runs"][0]["time_limit_s"] == 0.0
    assert _build(tmp_path)["remaining"] == 0


def test_energy_rows_and_references(tmp_path: Path) -> None:
    device = Device(torch.device("cpu"), CpuTimer(), ConstantMeter(), open_device("cpu").info)
    settings = BenchmarkSettings(n_archs=2, references=("mnasnet-0.5",), epochs=1, batches=(2,))
    assert [n.kind for n in networks(TINY, settings)] == ["reference", "space", "space"]
    _build(tmp_path, settings, device=device)
    bench = load_nas_benchmark(tmp_path)
    nets = bench.networks.set_index("key")
    assert bench.has_energy and nets["complete"].all()
    assert np.allclose(nets["power_w_b2"], 150.0)
    assert np.allclose(nets["energy_per_image_mj_b2"], nets["energy_mj_b2"] / 2)
    assert nets.loc["ref:mnasnet-0.5", "kind"] == "reference"
    assert len(bench.pool) == 2 and len(bench.references) == 1


@pytest.mark.slow
def test_training_workers(tmp_path: Path) -> None:
    out = _build(tmp_path, workers=2)
    assert out["trained"] == 3
    trained = pd.read_csv(tmp_path / "trained.csv")
    assert (trained["workers"] == 2).all() and trained["key"].is_unique


@pytest.mark.slow
def test_script_smoke_run_on_the_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PY": sys.executable,
        "DEVICE": "cpu",
        "GIT_COMMIT": "test",
        "PYTHONPATH": str(REPO_ROOT),
        "REFERENCES": "mnasnet-0.5",
        "REFERENCE_RATES": "0.05",
    }
    done = subprocess.run(
        [str(REPO_ROOT / "scripts" / "nas_benchmark.sh"), str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    bench = load_nas_benchmark(tmp_path / "b")
    assert len(bench.pool) == 3 and bench.space == TINY
    prov = json.loads((tmp_path / "b" / "provenance.json").read_text())
    assert prov["runs"][0]["git_commit"] == "test"
    assert "4 complete" in done.stdout  # the 3 cells and the reference
    # the reference trained once more, alone, at each of REFERENCE_RATES
    again = load_nas_benchmark(tmp_path / "b" / "references-gpu" / "lr0.05")
    assert list(again.references["key"]) == ["ref:mnasnet-0.5"] and len(again.pool) == 0
    assert again.provenance["learning_rate"] == 0.05
    assert (
        pd.read_csv(tmp_path / "b" / "references-gpu" / "lr0.05" / "trained.csv")["learning_rate"]
        .eq(0.05)
        .all()
    )
