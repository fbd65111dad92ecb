"""Tests of ``hwml optimize``: argument parsing, tabular runs, the benchmark and live commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hwml.cli import main
from hwml.cli_optimize import parse_seeds
from hwml.data import update_provenance
from hwml.hyperpower import CONFIG_COLUMNS, STRUCTURE_COLUMNS, sample_configs, sample_structures
from hwml.optimize import read_history
from hwml.tasks import cnn_space, structural_features

SPACE = cnn_space(filters=(2, 8), dense_units=(8, 24))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A synthetic benchmark folder: power and memory grow with size, error has a bowl."""
    folder = tmp_path / "bench"
    folder.mkdir()
    s = sample_structures(30, 0, SPACE)
    f = structural_features(s, image_size=16, batch=4)
    structures = pd.DataFrame(
        {
            **{c: s[c] for c in s.columns},
            **{c: f[c] for c in ("params", "macs", "flops", "activation_bytes")},
            "in_channels": 1,
            "image_size": 16,
            "batch": 4,
            "power_w": 100.0 + 2e-4 * f["flops"],
            "peak_mem_bytes": 1e5 + 4 * f["params"] + f["activation_bytes"],
            "runtime_ms": 1.0,
            "status": "ok",
        }
    ).reindex(columns=STRUCTURE_COLUMNS)
    structures.to_csv(folder / "structures.csv", index=False)
    c = sample_configs(120, 0, s, SPACE)
    lr = np.log10(c["learning_rate"])
    configs = c.assign(
        test_error=0.02 + 0.05 * (lr + 1.5) ** 2 + 0.002 * (8 - c["conv2_filters"]),
        train_time_s=1.0 + 0.1 * c["conv1_filters"],
        status="ok",
        epochs=1,
        batch_size=64,
        image_size=16,
        train_seed=0,
        reason="",
    ).reindex(columns=CONFIG_COLUMNS)
    configs.loc[3, "test_error"] = np.nan
    configs.loc[3, "status"] = "failed"
    configs.loc[3, "reason"] = "diverged: training loss nan in epoch 1"
    configs.to_csv(folder / "configs.csv", index=False)
    update_provenance(folder, {"space": SPACE.to_specs(), "image_size": 16, "dataset": "digits"})
    return folder


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5,0-1,5") == [5, 0, 1]
    for bad in ("3-1", "a", "", "-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)


def test_tabular_run_respects_predicted_budgets(bench: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs" / "h.csv"
    rc = main(
        [
            "optimize",
            "run",
            "--benchmark",
            str(bench),
            "--method",
            "hw-ieci,random",
            "--seeds",
            "0-1",
            "--n-evals",
            "8",
            "--n-init",
            "3",
            "--power-quantile",
            "0.5",
            "--mem-budget-bytes",
            "2e6",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "hw-ieci" in printed and "random" in printed
    assert printed.splitlines()[0].split()[3:5] == ["incumbent", "best"]
    for method in ("hw-ieci", "random"):
        for seed in (0, 1):
            path = out.with_name(f"h-{method}-s{seed}.csv")
            history = read_history(path, SPACE, ["power_w", "mem_bytes"])
            assert len(history) == 8
            assert history["measured_power_w"].notna().all()
            meta = json.loads(path.with_suffix(".json").read_text())
            assert meta["method"] == method and meta["seed"] == seed
            assert meta["budgets"]["mem_bytes"] == 2e6
            assert 0 < meta["fraction_predicted_feasible"] < 1
            assert meta["models"]["power_w"]["features"]
            incumbent = meta["incumbent"]  # noise-aware: a feasible row, at its GP mean
            assert incumbent["kind"] == "posterior" and incumbent["std"] >= 0
            row = history.set_index("iteration").loc[incumbent["iteration"]]
            assert row["feasible"] and row["objective"] == incumbent["observed"]
            if method == "hw-ieci":  # never trains a configuration predicted to violate
                assert history["feasible_pred"].all()
    budget = json.loads(out.with_name("h-hw-ieci-s0.json").read_text())["budgets"]["power_w"]
    assert budget == pytest.approx(pd.read_csv(bench / "structures.csv")["power_w"].median())


def test_run_errors_are_reported(bench: Path, tmp_path: Path, capsys) -> None:
    args = [
        "optimize",
        "run",
        "--benchmark",
        str(bench),
        "--n-evals",
        "3",
        "--out",
        str(tmp_path / "h.csv"),
        "--no-progress",
    ]
    assert main([*args, "--power-budget-w", "1"]) == 2
    assert "no configuration meets the budgets" in capsys.readouterr().err
    assert main([*args[:3], str(tmp_path / "nowhere"), *args[4:]]) == 2
    assert "structures" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--method", "simulated-annealing"])


@pytest.mark.parametrize("what", ["structures", "train"])
@pytest.mark.parametrize("bad", ["3/2", "2/2", "-1/4", "0/0", "1", "a/b"])
def test_bad_shards_are_refused(tmp_path: Path, capsys, what: str, bad: str) -> None:
    folder = tmp_path / "b"
    args = ["optimize", "benchmark", what, "--out", str(folder), "--device", "cpu"]
    with pytest.raises(SystemExit) as exited:
        main([*args, f"--shard={bad}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --shard" in err and repr(bad) in err and "Traceback" not in err
    assert not folder.exists()


def test_benchmark_commands_on_cpu(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "b"
    common = ["--out", str(folder), "--device", "cpu", "--no-progress"]
    assert (
        main(
            [
                "optimize",
                "benchmark",
                "structures",
                *common,
                "--n-structures",
                "3",
                "--batch",
                "2",
                "--image-size",
                "16",
                "--filters",
                "2-6",
                "--dense-units",
                "8-16",
                "--budget-ms",
                "2",
            ]
        )
        == 0
    )
    assert (
        main(["optimize", "benchmark", "train", *common, "--n-configs", "3", "--epochs", "1"]) == 0
    )
    assert len(pd.read_csv(folder / "configs.csv")) == 3
    assert main(["optimize", "benchmark", "summary", "--out", str(folder)]) == 0
    summary = json.loads(capsys.readouterr().out)  # strict JSON: no NaN
    assert summary["structures"]["by_status"] == {"no_power": 3}
    assert summary["budgets_at_quantile"]["power_w"] is None


def test_live_search_on_cpu(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.csv"
    rc = main(
        [
            "optimize",
            "live",
            "--device",
            "cpu",
            "--structures",
            str(bench / "structures.csv"),
            "--power-quantile",
            "0.7",
            "--n-evals",
            "2",
            "--n-init",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    history = read_history(out, SPACE, ["power_w"])
    assert len(history) == 2 and history["feasible_pred"].all()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["mode"] == "live" and meta["image_size"] == 16 and meta["inference_batch"] == 4
    assert meta["dataset"] == "digits"  # the folder's


def test_live_takes_the_dataset_of_the_structures_folder(bench: Path, tmp_path: Path) -> None:
    update_provenance(bench, {"dataset": "cued-digits"})
    args = ["optimize", "live", "--device", "cpu", "--structures", str(bench)]
    args += ["--n-evals", "1", "--n-init", "1", "--epochs", "1", "--no-progress"]
    out = tmp_path / "live.csv"
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["dataset"] == "cued-digits"
    given = tmp_path / "given.csv"
    assert main([*args, "--dataset", "digits", "--out", str(given)]) == 0  # an explicit one wins
    assert json.loads(given.with_suffix(".json").read_text())["dataset"] == "digits"


def test_live_with_a_missing_local_dataset(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "datasets"
    rc = main(
        [
            "optimize",
            "live",
            "--device",
            "cpu",
            "--dataset",
            "mnist",
            "--data-root",
            str(missing),
            "--n-evals",
            "1",
            "--out",
            str(tmp_path / "h.csv"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "never downloads" in err


def test_live_batch_search_on_two_cpu_workers(bench: Path, tmp_path: Path) -> None:
    """A live batch HW-IECI run with q = 2: every evaluation trains on one of two worker
    processes of a local Dask cluster; the history is written here, in finishing order."""
    out = tmp_path / "batch.csv"
    rc = main(
        [
            "optimize",
            "live",
            "--device",
            "cpu",
            "--structures",
            str(bench / "structures.csv"),
            "--power-quantile",
            "0.7",
            "--n-evals",
            "4",
            "--n-init",
            "2",
            "--epochs",
            "1",
            "--cluster",
            "local:2",
            "--batch",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    history = read_history(out, SPACE, ["power_w"])
    assert len(history) == 4 and history["feasible_pred"].all()
    assert (history["status"] == "ok").all()
    assert not history.duplicated(SPACE.names).any()
    assert history["cumulative_time_s"].is_monotonic_increasing
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["batch"] == 2 and meta["cluster"] == "local:2" and meta["workers"] == 2
