"""Tests of hwml.hyperpower.mobo_bench on a slice of the committed cued-digits benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.data import dataset_path
from hwml.hyperpower.mobo_bench import (
    MOBO_OBJECTIVES,
    HypervolumeScale,
    hypervolume_summary,
    main,
    mobo_benchmark,
)
from hwml.optimize import BOSettings, ParetoSettings

CUED = dataset_path("hyperpower-nvidia-h200-cued-digits")
FAST = ParetoSettings(bo=BOSettings(n_restarts=1, n_random=200, n_local=20))


@pytest.fixture
def small_cued(tmp_path):
    """The first 40 structures of the committed benchmark and their configurations."""
    if not (CUED / "configs.csv").exists():
        pytest.skip("the committed cued-digits benchmark is not in data/")
    structures = pd.read_csv(CUED / "structures.csv").head(40)
    configs = pd.read_csv(CUED / "configs.csv")
    structures.to_csv(tmp_path / "structures.csv", index=False)
    configs[configs["structure_key"].isin(structures["key"])].to_csv(
        tmp_path / "configs.csv", index=False
    )
    (tmp_path / "provenance.json").write_text((CUED / "provenance.json").read_text())
    return tmp_path


def test_scale_maps_the_table_into_the_unit_cube() -> None:
    table = pd.DataFrame({"a": [0.1, 1.0, 10.0, np.nan], "b": [2.0, 4.0, 8.0, 1.0]})
    scale = HypervolumeScale.from_table(table, ["a", "b"])
    x = scale.normalize(table[["a", "b"]].to_numpy())
    assert x[:3] == pytest.approx(np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]))
    assert np.isnan(x[3, 0])
    assert scale.hypervolume(table[["a", "b"]].to_numpy()) == pytest.approx(1.1 * 1.1)
    assert scale.hypervolume(np.array([[10.0, 8.0]])) == pytest.approx(0.1 * 0.1)


def test_summary_bootstrap_brackets_the_mean() -> None:
    final = pd.DataFrame(
        {"method": ["a"] * 5 + ["b"] * 5, "hypervolume": [1, 2, 3, 4, 5, 0, 0, 1, 0, 0.0]}
    )
    out = hypervolume_summary(final, n_boot=2000)
    assert out["method"].tolist() == ["a", "b"]
    a = out.iloc[0]
    assert a["mean"] == 3.0 and a["lower"] < 3.0 < a["upper"] and a["n"] == 5


def test_mobo_benchmark_runs_and_scores(small_cued) -> None:
    bench = mobo_benchmark(
        small_cued,
        methods=["hw-ehvi", "random"],
        seeds=[0, 1],
        n_evals=8,
        n_init=4,
        settings=FAST,
        progress=False,
    )
    assert set(bench.models) == set(MOBO_OBJECTIVES[1:])
    assert len(bench.histories) == 2 * 2 * 8
    assert len(bench.final) == 4 and set(bench.final["method"]) == {"hw-ehvi", "random"}
    assert (bench.final["hypervolume"] <= bench.ceiling + 1e-12).all()
    for _, run in bench.curves.groupby(["method", "seed"]):
        assert np.all(np.diff(run["hypervolume"].to_numpy()) >= -1e-12)
    last = bench.curves.groupby(["method", "seed"])["hypervolume"].last()
    got = bench.final.set_index(["method", "seed"])["hypervolume"]
    assert got.sort_index().to_numpy() == pytest.approx(last.sort_index().to_numpy())
    again = mobo_benchmark(
        small_cued,
        methods=["hw-ehvi"],
        seeds=[1],
        n_evals=8,
        n_init=4,
        settings=FAST,
        progress=False,
    )
    assert again.final["hypervolume"].iloc[0] == pytest.approx(got[("hw-ehvi", 1)])


def test_command_line_writes_tables(small_cued, tmp_path, capsys) -> None:
    out, curves = tmp_path / "final.csv", tmp_path / "curves.csv"
    args = ["--folder", str(small_cued), "--seeds", "1", "--evals", "5", "--init", "3"]
    args += ["--methods", "random", "nsga", "--jobs", "1", "--out", str(out)]
    assert main([*args, "--curves", str(curves)]) == 0
    assert "ceiling" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 2 and len(pd.read_csv(curves)) == 10


class _FakeTraining:
    """Stands in for training and measuring: error falls and energy/runtime rise with size."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, config):
        self.calls += 1
        size = config["conv1_filters"] * config["conv2_filters"] + config["dense_units"]
        return {
            "objective": 0.1 + 1.0 / (1.0 + size / 1e4),
            "energy_per_image_mj": 0.2 + size / 1e5,
            "runtime_ms": 1.0 + size / 1e4,
        }


def test_mobo_live_writes_one_history_per_run_and_resumes(small_cued, tmp_path) -> None:
    from hwml.hyperpower.mobo_bench import mobo_live

    fake = _FakeTraining()
    out = tmp_path / "live"
    kwargs = dict(
        methods=["hw-ehvi", "random"],
        seeds=[0],
        n_evals=4,
        n_init=2,
        settings=FAST,
        objective=fake,
        git_commit="abc",
    )
    written = mobo_live(small_cued, out, **kwargs)
    assert sorted(p.name for p in written) == ["hw-ehvi-s0.csv", "random-s0.csv"]
    assert fake.calls == 8
    history = pd.read_csv(out / "hw-ehvi-s0.csv")
    assert len(history) == 4 and set(MOBO_OBJECTIVES) <= set(history.columns)
    assert (history["status"] == "ok").all()
    import json

    facts = json.loads((out / "hw-ehvi-s0.json").read_text())
    assert facts["git_commit"] == "abc" and facts["method"] == "hw-ehvi"
    assert set(facts["models_cv"]) == set(MOBO_OBJECTIVES[1:])
    # a second call finds both runs on disk and trains nothing
    assert mobo_live(small_cued, out, **kwargs) == []
    assert fake.calls == 8
    # a deleted run is made again, the other is kept
    (out / "random-s0.csv").unlink()
    assert [p.name for p in mobo_live(small_cued, out, **kwargs)] == ["random-s0.csv"]
    assert fake.calls == 12


def test_read_mobo_live_scores_the_written_runs_on_the_table_scale(small_cued, tmp_path) -> None:
    from hwml.hyperpower.mobo_bench import mobo_live, read_mobo_live

    with pytest.raises(FileNotFoundError, match="no live history"):
        read_mobo_live(small_cued, "live")
    mobo_live(
        small_cued,
        small_cued / "live",
        methods=["hw-ehvi", "random"],
        seeds=[0, 1],
        n_evals=4,
        n_init=2,
        settings=FAST,
        objective=_FakeTraining(),
        git_commit="abc",
    )
    live = read_mobo_live(small_cued, "live")
    assert sorted(zip(live.final["method"], live.final["seed"], strict=True)) == [
        ("hw-ehvi", 0),
        ("hw-ehvi", 1),
        ("random", 0),
        ("random", 1),
    ]
    assert (live.final["n_ok"] == 4).all() and live.wall_s > 0
    # the scale is the table's: the same rows scored directly give the same hypervolume
    run = live.histories[(live.histories["method"] == "random") & (live.histories["seed"] == 1)]
    direct = live.scale.hypervolume(run[list(MOBO_OBJECTIVES)].to_numpy(dtype=float))
    got = live.final.set_index(["method", "seed"]).loc[("random", 1), "hypervolume"]
    assert got == pytest.approx(direct)
    table = pd.read_csv(small_cued / "structures.csv")
    assert 10 ** live.scale.lo[1] == pytest.approx(table["energy_per_image_mj"].min())


def test_mobo_live_spreads_its_runs_over_the_workers_and_writes_them_here(small_cued, tmp_path):
    from hwml.cluster import open_cluster
    from hwml.hyperpower.mobo_bench import mobo_live

    out = tmp_path / "live"
    kwargs = dict(methods=["random", "nsga"], n_evals=4, n_init=2, settings=FAST, git_commit="abc")
    with open_cluster("local:2", device="cpu", threads_per_worker=1) as two:
        written = mobo_live(
            small_cued, out, seeds=[0, 1], objective=_FakeTraining(), cluster=two, **kwargs
        )
    assert sorted(p.name for p in written) == [
        "nsga-s0.csv",
        "nsga-s1.csv",
        "random-s0.csv",
        "random-s1.csv",
    ]
    import json

    workers = {json.loads(p.with_suffix(".json").read_text())["worker"] for p in written}
    assert "process" not in workers and len(workers) >= 1
    # the same run in this process gives the same history: where it ran does not matter
    here = mobo_live(
        small_cued,
        tmp_path / "here",
        seeds=[1],
        objective=_FakeTraining(),
        cluster="process",
        **kwargs,
    )
    for path in here:
        pd.testing.assert_frame_equal(
            pd.read_csv(path).drop(
                columns=["overhead_s", "eval_time_s", "cumulative_time_s"], errors="ignore"
            ),
            pd.read_csv(out / path.name).drop(
                columns=["overhead_s", "eval_time_s", "cumulative_time_s"], errors="ignore"
            ),
        )
