"""Tests of hwml.hyperpower: the benchmark's two phases on a CPU, resuming, sharding, joining;
the search problem, budgets and live runs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hwml.data import DatasetError, dataset_path
from hwml.hardware import CpuTimer, Device, PowerReading, open_device
from hwml.hyperpower import (
    CONFIG_COLUMNS,
    STRUCTURE_COLUMNS,
    benchmark_objective,
    benchmark_space,
    budget_sweep,
    hyperpower_problem,
    live_best_so_far,
    load_benchmark,
    load_live_runs,
    measure_structures,
    quantile_budgets,
    sample_configs,
    sample_structures,
    summarize_benchmark,
    train_configs,
)
from hwml.hyperpower import live as live_runs
from hwml.profile import SweepOptions
from hwml.tasks import STRUCTURAL, cnn_space

SMALL = cnn_space(filters=(2, 6), dense_units=(8, 16))
FAST = SweepOptions(budget_ms=2.0, warmup=1, progress=False)


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
        calls = 300 / max(launch_ms, 1e-3)  # a 0.3 s window of back-to-back launches
        return PowerReading(
            150.0, 0.3, 45_000.0, periods, calls, 45_000.0 / calls, busy_fraction=1.0
        )


def _structures(folder, device: Any = "cpu", **kw: Any) -> int:
    args = {
        "n_structures": 5,
        "seed": 0,
        "batch": 4,
        "image_size": 16,
        "space": SMALL,
        "opts": FAST,
        "progress": False,
        "command": "test",
        **kw,
    }
    return measure_structures(folder, device, **args)


def test_structure_and_config_lists_are_seeded_and_prefix_stable() -> None:
    s = sample_structures(6, 1, SMALL)
    assert s["key"].is_unique and len(s) == 6
    assert s.equals(sample_structures(6, 1, SMALL))
    assert not s.equals(sample_structures(6, 2, SMALL))
    assert s.iloc[:3].equals(sample_structures(3, 1, SMALL))
    configs = sample_configs(14, 0, s, SMALL)
    assert configs["key"].is_unique
    assert configs.iloc[:5].equals(sample_configs(5, 0, s, SMALL))
    counts = configs["structure_key"].value_counts()
    assert counts.max() - counts.min() <= 1  # every structure trained about equally often
    SMALL.encode(configs)  # every configuration lies in the space
    assert (
        configs["learning_rate"] == configs["learning_rate"].map(lambda v: float(f"{v:.4g}"))
    ).all()
    with pytest.raises(ValueError, match="fewer than"):
        sample_structures(10_000, 0, cnn_space(filters=(2, 3), dense_units=(8, 9)))


def test_structures_without_power_resume_and_shard(tmp_path) -> None:
    folder = tmp_path / "bench"
    assert _structures(folder, shard=(1, 2)) == 2
    assert _structures(folder, shard=(0, 2)) == 3
    assert _structures(folder) == 0  # resumed: nothing left
    table = pd.read_csv(folder / "structures.csv")
    assert list(table.columns) == STRUCTURE_COLUMNS
    assert len(table) == 5 and table["key"].is_unique
    assert set(table["key"]) == set(sample_structures(5, 0, SMALL)["key"])
    assert (table["status"] == "no_power").all()
    assert table["power_w"].isna().all() and table["energy_per_image_mj"].isna().all()
    assert (table["runtime_ms"] > 0).all()
    assert (table["batch"] == 4).all() and (table["image_size"] == 16).all()
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["inference_batch"] == 4 and prov["image_size"] == 16
    assert benchmark_space(folder).to_specs() == SMALL.to_specs()
    assert len(prov["runs"]) == 3 and prov["runs"][0]["command"] == "test"
    readme = (folder / "README.md").read_text()
    assert "| `power_w` | W |" in readme and "structures.csv" in readme
    with pytest.raises(DatasetError, match="image_size"):
        _structures(folder, image_size=32)


def test_structures_with_an_energy_meter(tmp_path) -> None:
    device = Device(torch.device("cpu"), CpuTimer(), ConstantMeter(), open_device("cpu").info)
    _structures(tmp_path, n_structures=2, device=device)
    table = pd.read_csv(tmp_path / "structures.csv")
    assert (table["status"] == "ok").all()
    assert (table["power_w"] == 150.0).all()
    assert np.allclose(table["energy_per_image_mj"], 150.0 * table["runtime_ms"] / 4)
    assert json.loads((tmp_path / "provenance.json").read_text())["runs"][0]["idle_power_w"] == 60.0


def test_training_phase_resumes_and_extends(tmp_path) -> None:
    _structures(tmp_path, n_structures=3)
    common = {"seed": 0, "epochs": 1, "progress": False, "command": "test"}
    assert train_configs(tmp_path, "cpu", n_configs=4, **common) == 4
    assert train_configs(tmp_path, "cpu", n_configs=4, **common) == 0
    assert train_configs(tmp_path, "cpu", n_configs=6, **common) == 2
    table = pd.read_csv(tmp_path / "configs.csv")
    assert list(table.columns) == CONFIG_COLUMNS
    assert len(table) == 6 and table["key"].is_unique
    assert set(table["structure_key"]) <= set(pd.read_csv(tmp_path / "structures.csv")["key"])
    assert (table["image_size"] == 16).all()  # taken from the structures phase
    ok = table[table["status"] == "ok"]
    assert ok["test_error"].between(0, 1).all() and (table["train_time_s"] > 0).all()
    assert set(table["status"]) <= {"ok", "failed"}
    with pytest.raises(DatasetError, match="epochs"):
        train_configs(tmp_path, "cpu", n_configs=7, **{**common, "epochs": 2})


def test_training_workers_share_one_table(tmp_path) -> None:
    _structures(tmp_path, n_structures=3)
    n = train_configs(
        tmp_path, "cpu", n_configs=5, seed=0, epochs=1, workers_per_gpu=2, progress=False
    )
    assert n == 5
    table = pd.read_csv(tmp_path / "configs.csv")
    assert len(table) == 5 and table["key"].is_unique and (table["workers"] == 2).all()


def test_load_benchmark_joins_structures(tmp_path) -> None:
    _structures(tmp_path, n_structures=3)
    train_configs(tmp_path, "cpu", n_configs=5, seed=0, epochs=1, progress=False)
    structures = pd.read_csv(tmp_path / "structures.csv")
    structures.loc[0, "power_w"] = 123.0  # stands in for a measured value
    structures.loc[0, "peak_mem_bytes"] = 4.5e6
    structures.to_csv(tmp_path / "structures.csv", index=False)
    joined = load_benchmark(tmp_path)
    assert len(joined) == 5
    assert joined["structure_key"].isin(structures["key"]).all()
    for _, row in joined.iterrows():
        src = structures[structures["key"] == row["structure_key"]].iloc[0]
        assert row["conv1_filters"] == src["conv1_filters"]
        assert (row["power_w"] == src["power_w"]) or (
            math.isnan(row["power_w"]) and math.isnan(src["power_w"])
        )
        assert row["flops"] == src["flops"]
    objective = benchmark_objective(tmp_path)
    assert list(objective.candidates.columns) == objective.space.names
    first = joined.iloc[0]
    result = objective({n: first[n] for n in objective.space.names})
    assert result["eval_time_s"] == pytest.approx(first["train_time_s"])
    assert result["key"] == first["key"]
    assert set(STRUCTURAL) <= set(joined.columns)
    summary = summarize_benchmark(tmp_path)
    assert summary["configs"]["rows"] == 5 and summary["structures"]["rows"] == 3


def test_load_benchmark_needs_both_tables(tmp_path) -> None:
    _structures(tmp_path, n_structures=2)
    with pytest.raises(DatasetError, match="configs.csv"):
        load_benchmark(tmp_path)


def test_quantile_budgets() -> None:
    table = pd.DataFrame(
        {
            "power_w": [100.0, 200.0, 300.0, np.nan, 1e6],
            "peak_mem_bytes": [1.0, 2.0, 3.0, 4.0, 1e9],
            "status": ["ok", "ok", "ok", "ok", "oom"],
        }
    )
    budgets = quantile_budgets(table, 0.5)
    assert budgets == {"power_w": 200.0, "mem_bytes": 2.5}
    with pytest.raises(ValueError):
        quantile_budgets(table, 1.0)


H200 = dataset_path("hyperpower-nvidia-h200")


@pytest.fixture
def small_h200(tmp_path):
    """The first 60 measured structures of the committed H200 benchmark, their configurations
    and the live runs, in a temporary folder."""
    if not (H200 / "configs.csv").exists():
        pytest.skip("the committed H200 benchmark is not in data/")
    structures = pd.read_csv(H200 / "structures.csv").head(60)
    configs = pd.read_csv(H200 / "configs.csv")
    structures.to_csv(tmp_path / "structures.csv", index=False)
    configs[configs["structure_key"].isin(structures["key"])].to_csv(
        tmp_path / "configs.csv", index=False
    )
    (tmp_path / "provenance.json").write_text((H200 / "provenance.json").read_text())
    (tmp_path / "live").mkdir()
    for file in (H200 / "live").iterdir():
        (tmp_path / "live" / file.name).write_text(file.read_text())
    return tmp_path


def test_hyperpower_problem(small_h200) -> None:
    problem = hyperpower_problem(small_h200, power_quantile=0.5, mem_quantile=0.7, cv=5)
    structures = pd.read_csv(small_h200 / "structures.csv")
    assert problem.budgets == {
        "power_w": quantile_budgets(structures, 0.5)["power_w"],
        "mem_bytes": quantile_budgets(structures, 0.7)["mem_bytes"],
    }
    assert problem.quantiles == {"power_w": 0.5, "mem_bytes": 0.7}
    assert problem.space.names == benchmark_space(small_h200).names
    st = problem.structure_table()
    assert len(st) == 60 and st["cv_pred_power_w"].notna().all()
    assert st["violates_power"].mean() == pytest.approx(0.5, abs=0.02)
    summary = problem.violation_summary()
    assert summary["power"] == pytest.approx(st["violates_power"].mean())
    assert summary["mem"] == pytest.approx(0.3, abs=0.02)
    assert summary["either"] == pytest.approx(st["violates"].mean())
    assert summary["false_accept"] + summary["false_reject"] == pytest.approx(
        (st["violates"] != st["pred_violates"]).mean()
    )
    table = problem.table
    feasible = (table["power_w"] <= problem.budgets["power_w"]) & (
        table["peak_mem_bytes"] <= problem.budgets["mem_bytes"]
    )
    assert (table["feasible"] == feasible).all()
    assert summary["configs_either"] == pytest.approx(1 - feasible.mean())
    ok = table[(table["status"] == "ok") & feasible]
    assert problem.best_feasible_error() == ok["test_error"].min()
    errors = problem.model_errors()
    assert list(errors.index) == ["power_w", "mem_bytes"] and (errors["rmspe_pct"] > 0).all()
    assert errors.loc["power_w", "n"] == 60
    point = problem.constraints("hw-ieci")
    prob = problem.constraints_by_method(["hw-ieci-prob"])["hw-ieci-prob"]
    assert [c.name for c in point] == ["power_w", "mem_bytes"]
    z = structures.head(3)
    assert np.asarray(point[0].model(z)).shape == (3,)
    mean, std = prob[0].model(z)
    assert np.allclose(mean, point[0].model(z)) and np.all(std > 0)


def test_load_live_runs(small_h200, tmp_path_factory) -> None:
    histories, info = load_live_runs(small_h200)
    files = {p.stem for p in (small_h200 / "live").glob("*.csv")}
    assert set(info) == files and {"ei-s0", "hw-ieci-s0"} <= files
    assert histories["method"].unique().tolist() == ["ei", "hw-ieci"]
    runs = histories.groupby(["method", "seed"]).size()
    assert len(runs) == len(files) and runs.eq(25).all()
    assert {"pred_power_w", "measured_power_w", "feasible"} <= set(histories.columns)
    assert info["hw-ieci-s0"]["budgets"]["power_w"] > 0
    with pytest.raises(DatasetError, match="live"):
        empty = tmp_path_factory.mktemp("empty")
        (empty / "provenance.json").write_text((small_h200 / "provenance.json").read_text())
        load_live_runs(empty)


def test_load_live_runs_reads_the_batch_searches_beside_the_sequential_ones() -> None:
    folder = dataset_path("hyperpower-nvidia-h200-cued-digits")
    if not (folder / "live-batch").exists():
        pytest.skip("the committed batch-parallel live searches are not in data/")
    batch, info = load_live_runs(folder, subfolder="live-batch")
    sequential, _ = load_live_runs(folder)
    assert set(info) == {p.stem for p in (folder / "live-batch").glob("*.csv")}
    assert {meta["batch"] for meta in info.values()} == {2}
    assert batch["method"].unique().tolist() == ["hw-ieci"]
    # a different set of searches from live/: the batch runs' histories are not the sequential ones
    assert not batch[["seed", "iteration", "objective"]].equals(
        sequential.loc[sequential["method"] == "hw-ieci", ["seed", "iteration", "objective"]]
    )
    with pytest.raises(DatasetError, match="under nothing-here/"):
        load_live_runs(folder, subfolder="nothing-here")


_STOPPABLE_TRAINING = """
import sys, torch
from hwml.hyperpower import train_configs
from hwml.tasks import cnn_space
torch.set_num_threads(1)
train_configs(sys.argv[1], "cpu", n_configs=1000, seed=0, epochs=10, workers_per_gpu=2,
              threads_per_worker=1, space=cnn_space(filters=(2, 6), dense_units=(8, 16)),
              progress=False, command="stoppable")
"""


def test_training_stopped_by_sigterm_keeps_its_rows_and_its_log(tmp_path) -> None:
    """What `timeout` does to the train phase: SIGTERM to the whole process group."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _structures(tmp_path, n_structures=3)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STOPPABLE_TRAINING, str(tmp_path)], start_new_session=True
    )
    configs = tmp_path / "configs.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if configs.exists() and len(configs.read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the training finished before it could be stopped"
    time.sleep(1.5)  # let the parent hear of the rows already written
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    table = pd.read_csv(configs)
    assert 3 <= len(table) < 1000 and table["key"].is_unique
    run = json.loads((tmp_path / "provenance.json").read_text())["runs"][-1]
    assert run["command"] == "stoppable" and run["outcome"] == "stopped (SIGTERM)"
    assert 1 <= run["rows_written"] <= len(table) and run["finished"]
    assert "stopped (SIGTERM)" in (tmp_path / "README.md").read_text()


def test_budget_sweep_tightens_the_budgets_level_by_level(small_h200) -> None:
    kw = {"seeds": [0, 1, 2], "n_evals": 12, "n_init": 3, "tolerance": 0.01}
    sweep = budget_sweep(small_h200, [0.3, 0.8], method="random-filtered", baseline="random", **kw)
    structures = pd.read_csv(small_h200 / "structures.csv")
    assert list(sweep["quantile"]) == [0.3, 0.8]
    for _, row in sweep.iterrows():
        budgets = quantile_budgets(structures, row["quantile"])
        assert row["power_w"] == budgets["power_w"] and row["mem_bytes"] == budgets["mem_bytes"]
        assert (
            row["best_feasible"]
            == hyperpower_problem(
                small_h200, power_quantile=row["quantile"], mem_quantile=row["quantile"]
            ).best_feasible_error()
        )
    assert sweep["over_either"].iloc[0] > sweep["over_either"].iloc[1]  # tighter: more over
    # the a-priori filter avoids most configurations over budget; plain random search does not
    tight = sweep.iloc[0]
    assert tight["infeasible[random]"] > 0.4 > tight["infeasible[random-filtered]"]
    assert {"median_evals[random]", "speedup_evals", "speedup_time_kind"} <= set(sweep.columns)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        budget_sweep(small_h200, [0.5, 1.0], **kw)
    with pytest.raises(ValueError, match="at least one"):
        budget_sweep(small_h200, [], **kw)


def test_option_from_command_reads_old_sidecars():
    cmd = "hwml optimize live --power-quantile 0.6 --mem-quantile=0.45 --out x.csv"
    assert live_runs._option_from_command(cmd, "power_quantile") == 0.6
    assert live_runs._option_from_command(cmd, "mem_quantile") == 0.45
    assert (
        live_runs._option_from_command("hwml optimize live --power-budget-w 300", "power_quantile")
        is None
    )
    assert live_runs._option_from_command("", "mem_quantile") is None


def test_live_best_so_far_is_per_run_and_skips_infeasible():
    live = pd.DataFrame(
        {
            "method": ["a"] * 4 + ["b"] * 2,
            "seed": [0] * 4 + [0] * 2,
            "objective": [0.5, 0.2, 0.1, 0.3, 0.4, 0.05],
            "feasible": [True, True, False, True, True, True],
            "feasible_measured": [True, True, False, None, True, True],
            "status": ["ok", "ok", "ok", "ok", "ok", "failed"],
        }
    )
    out = live_best_so_far(live)
    assert out["best"].tolist()[:4] == [0.5, 0.2, 0.2, 0.2]  # the infeasible 0.1 never counts
    assert out["best"].tolist()[4:] == [0.4, 0.4]  # a failed evaluation never counts
    assert out["measured_over"].tolist() == [False, False, True, False, False, False]


def test_live_best_so_far_can_be_noise_aware():
    from hwml.optimize import Real, Space, incumbent_curve

    space = Space([Real("x", 0.0, 1.0)])
    rng = np.random.default_rng(0)
    x = rng.random(12)
    live = pd.DataFrame(
        {
            "method": "hw-ieci",
            "seed": 0,
            "iteration": np.arange(1, 13),
            "x": x,
            "objective": (x - 0.3) ** 2 + 0.1 * rng.standard_normal(12),
            "feasible": [True] * 11 + [False],
            "feasible_measured": [True] * 11 + [False],
            "status": "ok",
            "cumulative_time_s": np.arange(12.0),
        }
    )
    out = live_best_so_far(live, incumbent="posterior", space=space)
    curve = incumbent_curve(live, space)  # the last row is infeasible in both
    np.testing.assert_allclose(out["best"], curve["best_objective"])
    assert out["best"].iloc[-1] > live["objective"].min()  # not the luckiest draw
    with pytest.raises(ValueError, match="needs the search space"):
        live_best_so_far(live, incumbent="posterior")
    with pytest.raises(ValueError, match="'observed' or 'posterior', got 'mean'"):
        live_best_so_far(live, incumbent="mean")


def test_parallel_comparison_is_cached_with_its_settings(small_h200, tmp_path_factory) -> None:
    from hwml.hyperpower import hyperpower_problem
    from hwml.hyperpower.parallel import (
        PARALLEL_FILE,
        load_parallel_comparison,
        parallel_comparison,
        parallel_settings,
        save_parallel_comparison,
    )
    from hwml.optimize import BOSettings, SearchSettings

    problem = hyperpower_problem(small_h200, power_quantile=0.6, mem_quantile=0.6)
    settings = SearchSettings(bo=BOSettings(n_restarts=1, n_random=300, n_local=30))
    kwargs = dict(qs=[1, 2], modes=["async"], seeds=[0, 1], n_evals=6, n_init=3)
    histories = parallel_comparison(problem, settings=settings, **kwargs)
    assert len(histories) == 2 * 2 * 6 and set(histories["q"]) == {1, 2}
    assert histories["feasible_pred"].all()  # HW-IECI proposes only what the models accept
    expect = parallel_settings(problem, settings=settings, **kwargs)
    assert histories.attrs["settings"] == expect
    save_parallel_comparison(histories, small_h200 / PARALLEL_FILE, command="test")
    back = load_parallel_comparison(small_h200, expect)
    assert back is not None and back.attrs["info"]["command"] == "test"
    pd.testing.assert_frame_equal(
        back[["q", "seed", "iteration", "objective"]].reset_index(drop=True),
        histories[["q", "seed", "iteration", "objective"]].reset_index(drop=True),
    )
    other = parallel_settings(problem, settings=settings, **{**kwargs, "seeds": [0, 1, 2]})
    assert load_parallel_comparison(small_h200, other) is None  # other settings: not used
    empty = tmp_path_factory.mktemp("empty")
    assert load_parallel_comparison(empty, expect) is None  # no table at all
