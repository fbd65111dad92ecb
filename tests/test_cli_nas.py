"""Tests of `hwml nas`: summary, search and price on a made-up benchmark folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.cli import main
from hwml.nas.space import NASSpace
from hwml.nas.table import MEASURED_COLUMNS, TRAINED_COLUMNS
from hwml.predict.pipeline import GROUPS, PipelineModel

SPACE = NASSpace()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A benchmark folder of 60 architectures with made-up numbers (a test fixture)."""
    out = tmp_path_factory.mktemp("nas")
    archs = SPACE.sample(60, 0)
    rng = np.random.default_rng(0)
    trained, measured = [], []
    for i, a in enumerate(archs):
        key = SPACE.key(a)
        layers = sum(st.depth for st in a)
        trained.append(
            {
                "key": key,
                "index": i,
                "kind": "space",
                "test_error": 0.05 + 0.2 * rng.random(),
                "status": "ok",
            }
        )
        for b in (1, 64):
            runtime = 0.1 * layers * (1 + 0.01 * b) * (1 + 0.1 * rng.random())
            measured.append(
                {
                    "key": f"{key}@b{b}",
                    "arch": key,
                    "index": i,
                    "kind": "space",
                    "batch": b,
                    "runtime_ms": runtime,
                    "runtime_graph_ms": 0.5 * runtime,
                    "power_w": 200.0,
                    "energy_mj": 0.2 * runtime,
                    "energy_per_image_mj": 0.2 * runtime / b,
                    "status": "ok",
                }
            )
    pd.DataFrame(trained, columns=TRAINED_COLUMNS).to_csv(out / "trained.csv", index=False)
    pd.DataFrame(measured, columns=MEASURED_COLUMNS).to_csv(out / "measured.csv", index=False)
    (out / "provenance.json").write_text(json.dumps({"space": SPACE.to_spec(), "batches": [1, 64]}))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    priced = [g for g in GROUPS if g != "trivial"]
    m = PipelineModel(
        host_cost_ms=dict.fromkeys(GROUPS, 0.01),
        device_scale={
            "float32": {"flop": dict.fromkeys(priced, 1.0), "byte": dict.fromkeys(priced, 1.0)}
        },
        device_fixed_ms={"float32": dict.fromkeys(priced, 0.002)},
        idle_w=100.0,
        busy_w={"float32": (300.0, 50.0, 10.0)},
        ceilings={"float32": (5e13, 3e12)},
    )
    return m.save(tmp_path_factory.mktemp("model") / "net.json")


def test_summary(folder: Path, capsys) -> None:
    assert main(["nas", "summary", "--out", str(folder)]) == 0
    assert "60 networks, 60 complete" in capsys.readouterr().out
    (folder / "NOTES.md").write_text("## Notes\n\n- a note about the runs")
    assert main(["nas", "summary", "--out", str(folder), "--readme"]) == 0
    assert "a note about the runs" in (folder / "README.md").read_text()


def test_search_writes_runs_and_verdict(folder: Path, model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs.csv"
    argv = [
        "nas",
        "search",
        "--benchmark",
        str(folder),
        "--model",
        str(model),
        "--seeds",
        "0-1",
        "--n-evals",
        "12",
        "--targets",
        "runtime:1,gpu_time:1,energy:64",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    runs = pd.read_csv(out)
    verdict = pd.read_csv(out.with_suffix(".verdict.csv"))
    assert set(runs["term"]) == {"none", "flops", "predicted", "measured"}
    assert set(runs["metric"]) == {"runtime", "gpu_time", "energy"}
    assert runs.groupby(["metric", "batch", "term", "controller", "seed"]).size().eq(12).all()
    assert len(verdict) == 3 * 2 * (4 * 2 + 1)
    assert "hv_front_pct" in capsys.readouterr().out


def test_price(model: Path, capsys) -> None:
    assert main(["nas", "price", "--model", str(model), "--space", "tiny", "--n", "50"]) == 0
    assert "candidates at batch 1,64" in capsys.readouterr().out


def test_bad_arguments_are_refused(folder: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(
            ["nas", "search", "--benchmark", str(folder), "--targets", "power:1", "--out", "x.csv"]
        )
    assert "gpu_time" in capsys.readouterr().err  # the refusal lists the metrics it knows
    assert main(["nas", "summary", "--out", str(folder / "missing")]) == 2


def test_a_target_the_benchmark_did_not_measure_is_refused(
    folder: Path, tmp_path: Path, capsys
) -> None:
    measured = pd.read_csv(folder / "measured.csv")
    measured["runtime_graph_ms"] = np.nan  # measured without CUDA graphs
    bare = tmp_path / "bare"
    bare.mkdir()
    measured.to_csv(bare / "measured.csv", index=False)
    for name in ("trained.csv", "provenance.json"):
        (bare / name).write_text((folder / name).read_text())
    argv = ["nas", "search", "--benchmark", str(bare), "--targets", "gpu_time:1", "--out"]
    assert main([*argv, str(tmp_path / "runs.csv")]) == 2
    err = capsys.readouterr().err
    assert "no measured gpu_time at batch 1" in err and "runtime:1" in err
    assert not (tmp_path / "runs.csv").exists()


def test_gpu_time_is_the_graph_replay_column_measured_and_predicted(
    folder: Path, model: Path
) -> None:
    from hwml.nas.pricing import ArchPricer
    from hwml.nas.search import NASProblem
    from hwml.nas.table import load_nas_benchmark

    bench = load_nas_benchmark(folder)
    pricer = ArchPricer(bench.space, PipelineModel.load(model))
    problem = NASProblem.from_benchmark(bench, pricer)
    pool = bench.pool
    graph = pool["runtime_graph_ms_b64"].to_numpy(float)
    np.testing.assert_allclose(problem.measured[("gpu_time", 64)], graph)
    assert not np.allclose(problem.measured[("runtime", 64)], graph)
    predicted = pricer.predict([bench.space.parse(k) for k in pool["key"]], 64)
    np.testing.assert_allclose(
        problem.predicted[("gpu_time", 64)], predicted["runtime_graph_ms"].to_numpy(float)
    )


def test_a_verdict_judged_on_a_second_measurement(folder: Path, tmp_path: Path) -> None:
    from hwml.nas.search import NASProblem, SearchSettings, run_searches, verdict_frame
    from hwml.nas.table import load_nas_benchmark, read_measurements

    bench = load_nas_benchmark(folder)
    problem = NASProblem.from_benchmark(bench, None)
    again = pd.read_csv(folder / "measured.csv")
    again["runtime_ms"] = again["runtime_ms"][::-1].to_numpy()  # a measurement that disagrees
    (tmp_path / "again").mkdir()
    again.to_csv(tmp_path / "again" / "measured.csv", index=False)
    wide = read_measurements(tmp_path / "again")
    judged = problem.judged_on(wide)
    keys = pd.Index(problem.keys)
    expected = again[again["batch"] == 1].set_index("arch").loc[keys, "runtime_ms"].to_numpy()
    np.testing.assert_allclose(judged.measured[("runtime", 1)], expected)
    np.testing.assert_allclose(judged.error, problem.error)  # only the measurements change
    settings = SearchSettings(n_evals=12)
    runs = run_searches(
        problem, terms=("measured",), controllers=("nsga",), seeds=[0], settings=settings
    )
    first = verdict_frame(problem, runs, 0.3).set_index("controller")["hv_front_pct"]
    second = verdict_frame(judged, runs, 0.3).set_index("controller")["hv_front_pct"]
    assert first["nsga"] != pytest.approx(second["nsga"])  # judged on the other measurement
    with pytest.raises(ValueError, match="none of this pool"):
        problem.judged_on(wide.set_axis([f"x{i}" for i in range(len(wide))]))
