"""Tests of hwml.profile on the CPU: sampling, sweeps, resume, OOM, missing power."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hwml import profile
from hwml.describe import Layer
from hwml.hardware import CpuTimer, Device, NullEnergyMeter, NvmlEnergyMeter, open_device

REPO = Path(__file__).resolve().parents[1]


def cpu_device(meter=None) -> Device:
    return Device(
        torch.device("cpu"),
        CpuTimer(),
        meter or NullEnergyMeter("test"),
        {"device_name": "test cpu", "cpu": "test cpu"},
    )


FAST = profile.SweepOptions(budget_ms=2, warmup=1, progress=False)


def small_layers(n=6):
    return [
        ("sample", layer)
        for layer in profile.sample_layers("linear", n, seed=3)
        if layer.batch * layer.in_features < 5e6
    ][:n] or [("sample", Layer.linear(1, 8, 8))]


def test_sampling_is_seeded_distinct_and_bounded():
    a = profile.sample_layers("conv2d", 200, seed=1)
    b = profile.sample_layers("conv2d", 200, seed=1)
    c = profile.sample_layers("conv2d", 200, seed=2)
    assert a == b and a != c
    assert len({layer.signature() for layer in a}) == 200
    assert any(layer.is_depthwise for layer in a) and any(layer.batch == 256 for layer in a)
    assert all(layer.flops <= 2e12 for layer in a)
    with pytest.raises(ValueError, match="lstm"):
        profile.sample_layers("lstm", 3)
    with pytest.raises(TypeError):
        profile.sample_layers("conv2d", 3, seed="1")


def test_zoo_layers_are_distinct_and_tagged():
    items = profile.zoo_layers(["resnet18"], [1, 2])
    sigs = [layer.signature() for _, layer in items]
    assert len(sigs) == len(set(sigs))
    assert all(src == "zoo:resnet18" for src, _ in items)
    assert {layer.kind for _, layer in items} >= {"conv2d", "batchnorm2d", "add", "linear"}
    assert {layer.batch for _, layer in items} == {1, 2}


def test_sweep_without_power_marks_it_missing_and_resumes(tmp_path):
    dev = cpu_device()
    layers = small_layers()
    n = profile.sweep_layers(tmp_path, dev, layers, FAST)
    assert n == len(layers)
    df = pd.read_csv(tmp_path / "layers.csv")
    assert (df["status"] == "no_power").all()
    assert df["power_w"].isna().all() and df["energy_mj"].isna().all()  # never zeros
    assert (df["runtime_ms"] > 0).all()
    assert profile.sweep_layers(tmp_path, dev, layers, FAST) == 0  # nothing left to do
    assert (tmp_path / "README.md").read_text().count("| `runtime_ms` | ms |") == 1
    prov = (tmp_path / "provenance.json").read_text()
    assert "rows_written" in prov


class RealTimeCounter:
    """NVML stand-in in real time: a 300 W board whose counter updates every 100 ms (as an
    H200's does); each read takes 1 ms, as reads of the real counter take milliseconds."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        time.sleep(0.001)
        edge = math.floor((time.perf_counter() - self.t0) / 0.1) * 0.1
        return int(edge * 300.0 * 1000)


def test_sweep_with_power_computes_energy(tmp_path):
    dev = cpu_device(NvmlEnergyMeter("h", RealTimeCounter()))
    profile.sweep_layers(tmp_path, dev, small_layers(3), FAST)
    df = pd.read_csv(tmp_path / "layers.csv")
    assert set(df["status"]) <= {"ok", "low_busy"}
    assert (df["power_mode"] == "eager").all()  # no CUDA graph on a CPU
    assert df["power_w"].to_numpy() == pytest.approx(300.0, rel=0.1)
    assert df["power_window_s"].to_numpy() == pytest.approx(0.3, rel=0.2)
    # Energy per call comes from the window: ΔE / calls completed inside it.
    assert df["energy_mj"].to_numpy() == pytest.approx(
        (df["window_energy_mj"] / df["window_calls"]).to_numpy()
    )
    assert (df["busy_fraction"] > 0.3).all()


def test_oom_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    dev = cpu_device()
    layers = small_layers(4)
    real = profile.measure_layer
    victim = layers[1][1]

    def flaky(layer, device, opts=None, module=None):
        if layer.signature() == victim.signature():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")
        return real(layer, device, opts, module)

    monkeypatch.setattr(profile.sweeps, "measure_layer", flaky)
    profile.sweep_layers(tmp_path, dev, layers, FAST)
    df = pd.read_csv(tmp_path / "layers.csv")
    assert len(df) == 4
    assert (df["status"] == "oom").sum() == 1
    assert "out of memory" in df.loc[df["status"] == "oom", "error"].iloc[0]
    assert df.loc[df["status"] == "oom", "runtime_ms"].isna().all()


def test_other_errors_warn_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    dev = cpu_device()
    layers = small_layers(3)
    real = profile.measure_layer
    victim = layers[0][1]

    def broken(layer, device, opts=None, module=None):
        if layer.signature() == victim.signature():
            raise ValueError("cuDNN refused the shape\nsecond line")
        return real(layer, device, opts, module)

    monkeypatch.setattr(profile.sweeps, "measure_layer", broken)
    with pytest.warns(RuntimeWarning, match="cuDNN refused the shape"):
        assert profile.sweep_layers(tmp_path, dev, layers, FAST) == 3
    df = pd.read_csv(tmp_path / "layers.csv")
    assert list(df["status"]) == ["error", "no_power", "no_power"]  # the CPU has no meter
    assert df.loc[df["status"] == "error", "error"].iloc[0] == "ValueError: cuDNN refused the shape"
    run = json.loads((tmp_path / "provenance.json").read_text())["runs"][-1]
    assert run["outcome"] == "completed" and run["rows_written"] == 3


def test_killed_sweep_resumes_without_duplicates_or_losses(tmp_path):
    """A subprocess is SIGKILLed mid-sweep; the rerun completes every row exactly once."""
    script = textwrap.dedent(f"""
        import time, torch, sys
        sys.path.insert(0, {str(REPO)!r})
        from hwml import profile
        from hwml.describe import Layer
        from hwml.hardware import CpuTimer, Device, NullEnergyMeter
        dev = Device(torch.device("cpu"), CpuTimer(), NullEnergyMeter("t"), {{}})
        from hwml.profile import sweeps
        real = sweeps.measure_layer
        def slow(*a, **k):
            time.sleep(0.15)
            return real(*a, **k)
        sweeps.measure_layer = slow  # what the sweep calls
        layers = [("sample", Layer.linear(1, 8 + i, 4)) for i in range(40)]
        opts = profile.SweepOptions(budget_ms=1, warmup=1, progress=False)
        profile.sweep_layers({str(tmp_path)!r}, dev, layers, opts)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    table = tmp_path / "layers.csv"
    deadline = time.time() + 60
    while time.time() < deadline:
        if table.exists() and table.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = pd.read_csv(table)
    assert 5 <= len(before) < 40
    layers = [("sample", Layer.linear(1, 8 + i, 4)) for i in range(40)]
    profile.sweep_layers(tmp_path, cpu_device(), layers, FAST)
    after = pd.read_csv(table)
    assert len(after) == 40 and after["key"].is_unique
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)  # earlier rows untouched


def test_net_layers_in_place_and_network_rows(tmp_path):
    dev = cpu_device()
    profile.sweep_net_layers(tmp_path, dev, ["cifar10_6conv"], [1], FAST)
    nl = pd.read_csv(tmp_path / "net_layers.csv")
    assert len(nl) == 19 and (nl["runtime_ms"] > 0).all()
    assert list(nl["index"]) == list(range(19))
    profile.sweep_networks(tmp_path, dev, ["cifar10_6conv"], [1, 2], FAST)
    nets = pd.read_csv(tmp_path / "nets.csv")
    assert list(nets["batch"]) == [1, 2] and nets["flops"].iloc[1] == 2 * nets["flops"].iloc[0]


def test_calibrate_on_cpu_reports_ceilings_and_nan_power():
    cal = profile.calibrate(open_device("cpu"), quick=True)
    assert cal["peak_flops_per_s"]["float32"] > 1e8
    assert cal["copy_bandwidth_bytes_per_s"] > 1e8
    assert math.isnan(cal["idle_power_w"])


def test_invalid_options_rejected():
    with pytest.raises(ValueError, match="float8"):
        profile.SweepOptions(dtype="float8")
    with pytest.raises(ValueError, match="shard"):
        profile.SweepOptions(shard=(2, 2))


def test_shards_cover_every_row_once_whenever_they_start(tmp_path):
    """Shard 0 finishes before shard 1 reads the table: still no row twice, none missed."""
    dev = cpu_device()
    layers = small_layers(7)
    for i in (0, 1):
        opts = profile.SweepOptions(budget_ms=2, warmup=1, progress=False, shard=(i, 2))
        profile.sweep_layers(tmp_path, dev, layers, opts)
    df = pd.read_csv(tmp_path / "layers.csv")
    assert len(df) == len(layers) and not df["key"].duplicated().any()


def test_layer_peak_memory_comes_from_eager_calls_before_the_graph(monkeypatch) -> None:
    """A layer's peak memory is read before the power measurement (whose CUDA graph has a
    pool of its own) and counted from what was allocated before the layer was built."""
    from hwml.profile import measure as m

    device = open_device("cpu")
    counters = {"allocated": 3e8, "peak": 4e8}  # 3e8: left over by earlier rows
    calls = []
    device.allocated_memory_bytes = lambda: counters["allocated"]
    device.peak_memory_bytes = lambda: counters["peak"]
    device.reset_peak_memory = lambda: None
    real = m._measure_callable

    def with_graph(fn, dev, opts):
        counters["peak"] += 6e8  # the graph's pool
        return real(fn, dev, opts)

    monkeypatch.setattr(m, "_measure_callable", with_graph)
    monkeypatch.setattr(m, "_counts_peak", lambda dev: calls.append(dev) or True)
    layer = Layer.linear(4, 8, 16)
    row = m.measure_layer(
        layer, device, profile.SweepOptions(budget_ms=2.0, warmup=1, power=False, progress=False)
    )
    assert calls, "the peak must be read through eager_peak_memory"
    assert row["peak_mem_bytes"] == pytest.approx(1e8)


def test_sweep_on_two_worker_processes_writes_every_row_once_and_resumes(tmp_path):
    from hwml.cluster import open_cluster

    dev = cpu_device()
    layers = small_layers(6)
    with open_cluster("local:2", device="cpu", threads_per_worker=1) as cluster:
        assert profile.sweep_layers(tmp_path, dev, layers[:4], FAST, cluster=cluster) == 4
        # a rerun over the whole list measures only the rows not yet in the table
        assert profile.sweep_layers(tmp_path, dev, layers, FAST, cluster=cluster) == 2
        assert profile.sweep_layers(tmp_path, dev, layers, FAST, cluster=cluster) == 0
    df = pd.read_csv(tmp_path / "layers.csv")
    assert len(df) == 6 and df["key"].is_unique
    assert (df["status"] == "no_power").all() and (df["runtime_ms"] > 0).all()
    runs = json.loads((tmp_path / "provenance.json").read_text())["runs"]
    assert [r["cluster"] for r in runs] == ["local:2"] * 3
    assert [r["rows_written"] for r in runs] == [4, 2, 0]


def test_measure_module_measures_any_module_on_the_given_input() -> None:
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    row = profile.measure_module(module, (3, 1, 8, 8), cpu_device(), FAST)
    assert row["runtime_ms"] > 0 and row["status"] == "no_power"
    assert math.isnan(row["peak_mem_bytes"]) or row["peak_mem_bytes"] >= 0
    assert not module.training  # measured in eval mode
