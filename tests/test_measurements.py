"""Tests of hwml.measurements on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml import measurements as M
from hwml import zoo


def test_repeatability_cv_per_kind():
    rows = []
    for rep, (t, p) in enumerate([(1.0, 100.0), (1.1, 110.0), (0.9, 90.0)]):
        rows.append(
            {
                "key": f"aaa#r{rep}",
                "kind": "conv2d",
                "runtime_ms": t,
                "power_w": p,
                "runtime_cv": 0.05,
                "status": "ok",
            }
        )
        rows.append(
            {
                "key": f"bbb#r{rep}",
                "kind": "conv2d",
                "runtime_ms": 2.0,
                "power_w": 200.0,
                "runtime_cv": 0.01,
                "status": "ok",
            }
        )
    rows.append(
        {
            "key": "ccc#r0",
            "kind": "linear",
            "runtime_ms": 5.0,
            "power_w": np.nan,
            "runtime_cv": 0.0,
            "status": "oom",
        }
    )
    out = M.repeatability(pd.DataFrame(rows))
    assert list(out.index) == ["conv2d"]  # failed rows are ignored
    # layer aaa: std/mean = 0.1 (ddof=1); layer bbb: 0 → median 5 %
    assert out.loc["conv2d", "runtime_cv_median_pct"] == pytest.approx(5.0)
    assert out.loc["conv2d", "power_cv_median_pct"] == pytest.approx(5.0)
    assert out.loc["conv2d", "layers"] == 2


def test_roofline_and_ceiling():
    df = pd.DataFrame(
        [{"flops": 2e9, "vector_ops": 0.0, "total_bytes": 1e6, "runtime_ms": 1.0, "status": "ok"}]
    )
    r = M.roofline(df)
    assert r["achieved_flops_per_s"].iloc[0] == pytest.approx(2e12)
    assert r["achieved_bytes_per_s"].iloc[0] == pytest.approx(1e9)
    assert M.roofline_ceiling(np.array([1.0, 1000.0]), 100.0, 10.0).tolist() == [10.0, 100.0]


def test_sum_of_layers_gap():
    nets = pd.DataFrame(
        [
            {
                "network": "n",
                "batch": 1,
                "dtype": "float32",
                "runtime_ms": 10.0,
                "power_w": 200.0,
                "sm_clock_mhz": 1900.0,
                "status": "ok",
            }
        ]
    )
    nl = pd.DataFrame(
        [
            {
                "network": "n",
                "batch": 1,
                "dtype": "float32",
                "runtime_ms": x,
                "sm_clock_mhz": np.nan,
                "status": "ok",
            }
            for x in (4.0, 7.0)
        ]
    )
    out = M.sum_of_layers(nets, nl)
    assert out["sum_layers_ms"].iloc[0] == 11.0 and out["gap_pct"].iloc[0] == pytest.approx(10.0)


def test_sum_of_layers_counts_runtimes_whose_power_was_flagged_and_sums_gpu_times():
    """A layer whose power window read over the limit (or too idle) still has a valid
    runtime: dropping it would make the network look incomplete. GPU times (CUDA-graph
    replays) are summed beside the eager ones."""
    nets = pd.DataFrame(
        [
            {
                "network": "n",
                "batch": 1,
                "dtype": "float32",
                "runtime_ms": 10.0,
                "runtime_graph_ms": 8.0,
                "power_w": 200.0,
                "sm_clock_mhz": 1900.0,
                "status": "ok",
            }
        ]
    )
    nl = pd.DataFrame(
        [
            {
                "network": "n",
                "batch": 1,
                "dtype": "float32",
                "runtime_ms": x,
                "runtime_graph_ms": g,
                "sm_clock_mhz": np.nan,
                "status": s,
            }
            for x, g, s in ((4.0, 3.0, "ok"), (7.0, 5.4, "over_limit"), (1.0, 1.0, "low_busy"))
        ]
        + [{"network": "n", "batch": 1, "dtype": "float32", "runtime_ms": 9.0, "status": "error"}]
    )
    out = M.sum_of_layers(nets, nl).iloc[0]
    assert out["layers"] == 3
    assert out["sum_layers_ms"] == pytest.approx(12.0) and out["gap_pct"] == pytest.approx(20.0)
    assert out["sum_layers_graph_ms"] == pytest.approx(9.4)
    assert out["network_graph_ms"] == pytest.approx(8.0)
    assert out["graph_gap_pct"] == pytest.approx(17.5)


def test_counter_periods_from_provenance():
    prov = {
        "runs": [
            {"sweep": "layers", "counter_update_period_s": 0.1, "idle_power_w": 120},
            {"sweep": "nets", "counter_update_period_s": None, "idle_power_w": None},
        ]
    }
    out = M.counter_periods(prov)
    assert len(out) == 1 and out["idle_power_w"].iloc[0] == 120


def test_load_requires_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="provenance"):
        M.load(tmp_path)


def test_rank_agreement_and_discordant_pairs():
    df = pd.DataFrame(
        {
            "name": list("abcd"),
            "flops": [1.0, 2.0, 4.0, 8.0],
            "energy": [1.0, 3.0, 2.0, 10.0],
            "g": ["p", "p", "q", "q"],
        }
    )
    rho = M.rank_agreement(df, "flops", "energy")
    assert rho.loc["all", "spearman_rho"] == pytest.approx(0.8)
    assert M.rank_agreement(df, "flops", "energy", by="g")["n"].tolist() == [2, 2]
    pairs = M.discordant_pairs(df, "name", "flops", "energy")
    assert pairs[["smaller_x", "larger_x"]].values.tolist() == [["b", "c"]]
    assert pairs["energy_ratio"].iloc[0] == pytest.approx(1.5)
    assert M.discordant_pairs(df, "name", "flops", "energy", min_ratio=3).empty


def test_rank_agreement_multi_group_index():
    df = pd.DataFrame(
        {"a": [1, 2, 3, 1, 2, 3], "b": [1, 2, 3, 3, 2, 1], "d": ["x"] * 6, "k": [1, 1, 1, 2, 2, 2]}
    )
    out = M.rank_agreement(df, "a", "b", by=["d", "k"])
    assert out.loc[("x", 1), "spearman_rho"] == pytest.approx(1.0)
    assert out.loc[("x", 2), "spearman_rho"] == pytest.approx(-1.0)


def test_sum_of_layers_drops_networks_timed_only_in_part():
    nets = pd.DataFrame(
        [
            {
                "network": "alexnet",
                "batch": b,
                "dtype": "float32",
                "runtime_ms": 1.0,
                "power_w": 300.0,
                "sm_clock_mhz": 1900.0,
                "status": "ok",
            }
            for b in (1, 2)
        ]
    )
    n_layers = len(zoo.describe_net("alexnet", 1, weights=False).layers)
    rows = [
        {
            "network": "alexnet",
            "batch": 1,
            "dtype": "float32",
            "runtime_ms": 0.1,
            "sm_clock_mhz": np.nan,
            "status": "ok",
        }
    ] * n_layers
    rows += [{**rows[0], "batch": 2}] * (n_layers - 3)
    out = M.sum_of_layers(nets, pd.DataFrame(rows))
    assert list(out["batch"]) == [1]
    assert len(M.sum_of_layers(nets, pd.DataFrame(rows), complete_only=False)) == 2


def test_load_keeps_the_first_of_a_key_measured_twice(tmp_path):
    (tmp_path / "provenance.json").write_text("{}")
    pd.DataFrame(
        {"key": ["a", "b", "a"], "runtime_ms": [1.0, 2.0, 3.0], "status": ["ok"] * 3}
    ).to_csv(tmp_path / "layers.csv", index=False)
    m = M.load(tmp_path)
    assert list(m.layers["runtime_ms"]) == [1.0, 2.0]
    assert m.extra["layers_measured_twice"] == 1
    assert len(pd.read_csv(tmp_path / "layers.csv")) == 3  # the file is untouched


def test_run_throughput_from_the_run_log():
    """Rows over wall time per logged run; the shards of one command share a sweep_id,
    runs with too few rows or still running are left out, and --no-power runs say so."""
    runs = [
        {
            "sweep": "layers",
            "dtype": "float32",
            "command": f"hwml profile layers --out d --shard {i}/2",
            "date": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:01:40+00:00",
            "rows_written": 150 + 50 * i,
            "power_periods": 3,
            "gpu_uuid": f"g{i}",
        }
        for i in range(2)
    ]
    runs.append({**runs[0], "command": "hwml profile net-layers --no-power", "rows_written": 400})
    runs.append({**runs[0], "rows_written": 5})
    runs.append({**runs[0], "finished": None})
    out = M.run_throughput({"runs": runs})
    assert list(out["rows_per_s"]) == pytest.approx([1.5, 2.0, 4.0])
    assert list(out["power"]) == [True, True, False]
    assert out["sweep_id"].iloc[0] == out["sweep_id"].iloc[1] != out["sweep_id"].iloc[2]


def test_load_separates_the_network_set_and_drops_rows_that_shared_a_gpu(tmp_path):
    import json

    rows = [  # (network, batch, run, gpu, time)
        ("vgg16", 1, "zoo", "A", "2026-01-01T00:00:00"),
        ("vgg16", 8, "set", "A", "2026-01-01T01:00:00"),
        ("cells:3", 8, "set", "A", "2026-01-01T01:00:05"),
        ("cells:3", 1, "lost", "B", "2026-01-01T01:00:00"),  # its log entry was lost
        ("vgg16", 32, "lost", "B", "2026-01-01T01:00:10"),
        ("alexnet", 1, "other", "B", "2026-01-01T01:00:05"),  # inside run "lost" on GPU B
    ]
    nets = pd.DataFrame(
        [
            {
                "key": f"{n}|{b}|float32",
                "network": n,
                "batch": b,
                "dtype": "float32",
                "run_id": r,
                "gpu_uuid": g,
                "timestamp": t,
                "status": "ok",
                "runtime_ms": 1.0,
            }
            for n, b, r, g, t in rows
        ]
    )
    nets.to_csv(tmp_path / "nets.csv", index=False)
    runs = [
        {"run_id": "zoo", "command": "hwml profile nets --batches 1"},
        {"run_id": "set", "command": "hwml profile nets --nets set --cells 4"},
    ]
    (tmp_path / "provenance.json").write_text(json.dumps({"runs": runs}))
    ds = M.load(tmp_path)
    assert ds.extra["nets_concurrent"] == 1  # alexnet ran inside run "lost" on GPU B
    assert sorted(ds.network_set["key"]) == sorted(k for k in nets["key"] if "alexnet" not in k)
    # the zoo sweep only: not the logged set run, nor the unlogged run that measured cells:3
    assert list(ds.nets["key"]) == ["vgg16|1|float32"]


def test_label_names_a_platform_shortly():
    gpu = M.Measurements("nvidia-h200", {"gpu_name": "NVIDIA H200", "dataset_kind": "gpu"})
    assert gpu.label == "NVIDIA H200"
    xeon = M.Measurements(
        "cpu-x",
        {"device_name": "Intel(R) Xeon(R) Processor", "dataset_kind": "cpu", "cpu_count": 32},
    )
    assert xeon.label == "Intel Xeon (32 cores)"
    epyc = M.Measurements("cpu-y", {"cpu": "AMD EPYC", "dataset_kind": "cpu"})
    assert epyc.label == "AMD EPYC"  # cores not recorded: not guessed
