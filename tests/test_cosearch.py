"""Tests of hwml.hyperpower.cosearch: the extended space and energy model, both strategies,
the cached runner, and the measurements it reads (the committed deployment folder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hwml.data import dataset_path
from hwml.hyperpower import cosearch
from hwml.hyperpower.cosearch import (
    BASELINE,
    HISTORY_COLUMNS,
    KNOBS,
    MODEL_ONLY,
    CoSearchCacheError,
    CoSearchProblem,
    CoSearchSettings,
    DeploymentCostModel,
    cache_provenance,
    cheapest_deployments,
    cosearch_problem,
    deployment_error_changes,
    difference_interval,
    final_errors,
    load_cost_table,
    main,
    read_histories,
    run_cosearch,
    run_cosearches,
    strategy_curves,
    summarize_final,
    training_noise,
)
from hwml.optimize import BOSettings, Space, TabularObjective
from hwml.tasks.cnn import STRUCTURAL, cnn_space, structural_features

DEPLOY = dataset_path("deploy-nvidia-h200-cued-digits")
BENCH = dataset_path("hyperpower-nvidia-h200-cued-digits")
FAST = BOSettings(n_restarts=1, n_random=5000, n_local=20, log_objective=True)

#: energy factor of each deployment in the toy problem: fp16 halves the cost of a FLOP,
#: a CUDA graph removes a fixed launch cost
FP16_SLOPE, GRAPH_SAVING, FIXED = 0.5, 0.05, 0.2


def _toy_energy(flops: np.ndarray, precision: str, execution: str) -> np.ndarray:
    slope = 1e-9 * (FP16_SLOPE if precision == "fp16" else 1.0)
    return FIXED + slope * flops - (GRAPH_SAVING if execution == "cuda-graph" else 0.0)


def _toy_structures(n: int = 24, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = pd.DataFrame(
        {
            "conv1_filters": rng.integers(16, 200, n),
            "conv2_filters": rng.integers(16, 200, n),
            "kernel_size": rng.choice([3, 5], n),
            "dense_units": rng.integers(32, 2000, n),
        }
    ).drop_duplicates()
    z["structure_key"] = ["-".join(str(int(v)) for v in row) for row in z[list(STRUCTURAL)].values]
    return z.reset_index(drop=True)


def _toy_costs(z: pd.DataFrame) -> pd.DataFrame:
    flops = structural_features(z, image_size=24, batch=256)["flops"].to_numpy() / 256
    parts = []
    for precision in KNOBS["precision"]:
        for execution in KNOBS["execution"]:
            parts.append(
                z.assign(
                    precision=precision,
                    execution=execution,
                    deployment=f"none/{precision}/{execution}/b256",
                    batch=256,
                    energy_per_image_mj=_toy_energy(flops, precision, execution),
                )
            )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def toy() -> CoSearchProblem:
    """A small co-search problem: error falls with size, energy rises with FLOPs."""
    z = _toy_structures()
    space = cnn_space(filters=(16, 200), dense_units=(32, 2000))
    rng = np.random.default_rng(1)
    rows = []
    flops = structural_features(z, image_size=24, batch=1)["flops"].to_numpy()
    for i, row in z.iterrows():
        for j in range(3):
            rows.append(
                {
                    **{c: int(row[c]) for c in STRUCTURAL},
                    "learning_rate": float(10 ** rng.uniform(-3, -1)),
                    "momentum": float(rng.uniform(0.5, 0.99)),
                    "weight_decay": float(10 ** rng.uniform(-6, -2)),
                    "structure_key": row["structure_key"],
                    "key": f"{row['structure_key']}|{j}",
                    "test_error": float(0.5 / (1 + 1e-7 * flops[i]) + 0.02 * j),
                    "status": "ok",
                    "train_time_s": 1.0,
                }
            )
    table = pd.DataFrame(rows)
    costs = _toy_costs(z)
    model = DeploymentCostModel(image_size=24, batch=256, cv=4).fit(costs)
    base = costs[(costs["precision"] == "fp32") & (costs["execution"] == "eager")]
    return CoSearchProblem(
        benchmark=Path("toy"),
        deploy=Path("toy"),
        objective=TabularObjective(table, space, objective="test_error", cost="train_time_s"),
        costs=costs,
        model=model,
        budget_mj=float(base["energy_per_image_mj"].quantile(0.3)),
        quantile=0.3,
    )


# ====================================================================== the energy model


def test_a_knob_moves_the_predicted_cost_the_way_it_was_measured() -> None:
    z = _toy_structures(40)
    model = DeploymentCostModel(image_size=24, batch=256, cv=5).fit(_toy_costs(z))
    at = {
        (p, e): model.predict(z.assign(precision=p, execution=e))
        for p in KNOBS["precision"]
        for e in KNOBS["execution"]
    }
    assert np.all(at["fp16", "eager"] < at["fp32", "eager"])  # fp16 cheaper, everywhere
    assert np.all(at["fp32", "cuda-graph"] < at["fp32", "eager"])  # the graph saves too
    flops = structural_features(z, image_size=24, batch=256)["flops"].to_numpy() / 256
    # the interactions let fp16 change the slope, not just the level: exact on this law
    assert at["fp16", "eager"] == pytest.approx(_toy_energy(flops, "fp16", "eager"), rel=1e-6)
    saving = at["fp32", "eager"] - at["fp16", "eager"]
    assert np.corrcoef(saving, flops)[0, 1] > 0.99
    summary = model.cv_summary(by="precision")
    assert set(summary.index) == {"fp16", "fp32"} and (summary["rmspe_pct"] < 1e-3).all()


def test_without_interactions_a_knob_is_a_constant_shift() -> None:
    z = _toy_structures(40)
    model = DeploymentCostModel(image_size=24, batch=256, cv=5, interactions=False)
    model.fit(_toy_costs(z))
    shift = model.predict(z.assign(precision="fp16", execution="eager")) - model.predict(
        z.assign(precision="fp32", execution="eager")
    )
    assert np.ptp(shift) == pytest.approx(0.0, abs=1e-9) and shift[0] < 0
    assert not any("*" in c for c in model.columns_)


def test_model_refuses_missing_or_unknown_knobs_and_at_fixes_them() -> None:
    z = _toy_structures(30)
    model = DeploymentCostModel(image_size=24, batch=256, cv=5).fit(_toy_costs(z))
    with pytest.raises(KeyError, match="precision"):
        model.predict(z.assign(execution="eager"))
    with pytest.raises(ValueError, match="bf16"):
        model.predict(z.assign(precision="bf16", execution="eager"))
    fixed = model.at({"precision": "fp16", "execution": "eager"})
    wrong = z.assign(precision="fp32", execution="cuda-graph")  # overridden by at()
    assert fixed(wrong) == pytest.approx(
        model.predict(z.assign(precision="fp16", execution="eager"))
    )


def test_cross_validation_holds_whole_structures_out() -> None:
    z = _toy_structures(30)
    costs = _toy_costs(z)
    rng = np.random.default_rng(0)
    # one structure's four rows are far off the law: only its own rows may be hurt when it
    # is held out (its rows never help predict themselves)
    odd = costs["structure_key"] == z["structure_key"].iloc[0]
    costs.loc[odd, "energy_per_image_mj"] += 5.0 + rng.uniform(0, 0.01, odd.sum())
    model = DeploymentCostModel(image_size=24, batch=256, cv=5).fit(costs)
    rows = model._train
    error = np.abs(model.cv_predictions_ - rows["energy_per_image_mj"].to_numpy())
    assert error[odd.to_numpy()].min() > 4.0  # never predicted from its own rows
    with pytest.raises(ValueError, match="structures"):
        DeploymentCostModel(image_size=24, batch=256, cv=50).fit(costs)


def test_cheapest_deployment_per_structure() -> None:
    energy = pd.DataFrame(
        {
            "fp32/eager": [3.0, 1.0, np.nan],
            "fp32/cuda-graph": [2.5, 1.2, np.nan],
            "fp16/eager": [1.5, 1.1, np.nan],
        },
        index=["a", "b", "c"],
    )
    out = cheapest_deployments(energy)
    assert out["best_label"].tolist() == ["fp16/eager", "fp32/eager", ""]
    assert out["best_precision"].tolist() == ["fp16", "fp32", ""]
    assert out["best_energy_mj"].iloc[:2].tolist() == [1.5, 1.0]
    assert np.isnan(out["best_energy_mj"].iloc[2])
    assert out["baseline_energy_mj"].iloc[0] == 3.0


# ====================================================================== the problem


def test_joint_space_adds_structural_knobs_and_constraints_see_them(toy) -> None:
    joint, model_space = toy.joint_space, toy.model_space
    assert joint.names == [*model_space.names, *KNOBS]
    assert set(KNOBS) <= set(joint.structural_names)
    configs = toy.candidates("joint")
    assert len(configs) == 4 * len(toy.candidates("sequential"))
    (c_joint,) = toy.constraints("joint")
    (c_seq,) = toy.constraints("sequential")
    one = configs.iloc[:1][joint.names]
    z = joint.structural(one)
    fp16 = c_joint.predict(z.assign(precision="fp16"))[0]
    fp32 = c_joint.predict(z.assign(precision="fp32"))[0]
    assert fp16 < fp32
    # the sequential constraint prices at the baseline whatever the frame says
    assert c_seq.predict(z.assign(precision="fp16"))[0] == pytest.approx(
        c_joint.predict(z.assign(**BASELINE))[0]
    )
    with pytest.raises(ValueError, match="strategy"):
        toy.space("both")


def test_table_verdicts_after_and_before_deployment(toy) -> None:
    table = toy.table
    assert (table["best_energy_mj"] <= table["baseline_energy_mj"]).all()
    assert (table["feasible"] == (table["best_energy_mj"] <= toy.budget_mj)).all()
    assert (table["feasible_baseline"] <= table["feasible"]).all()  # never lost by deploying
    assert toy.best_feasible_error(True) <= toy.best_feasible_error(False)
    fits = toy.budget_summary()
    assert fits["baseline"] <= fits["any"] and 0 <= fits["pred_any"] <= 1


# ====================================================================== the searches


def test_sequential_searches_at_baseline_then_takes_the_cheapest_deployment(toy) -> None:
    h = run_cosearch(toy, "sequential", seed=0, n_trainings=10, n_init=3, settings=FAST)
    assert len(h) == 10 and h["key"].is_unique
    assert (h["precision"] == "fp32").all() and (h["execution"] == "eager").all()
    assert (h["pred_energy_mj"] <= toy.budget_mj).all()  # HW-IECI trains only accepted ones
    energy = toy.energy
    for _, row in h.iterrows():
        measured = energy.loc[row["structure_key"]]
        assert row["best_energy_mj"] == pytest.approx(measured.min())
        label = f"{row['best_precision']}/{row['best_execution']}"
        assert measured[label] == measured.min()
        assert row["feasible"] == (measured.min() <= toy.budget_mj)
        assert row["feasible_baseline"] == (measured.iloc[0] <= toy.budget_mj)
    curves = strategy_curves(h.assign(budget_quantile=0.3))
    assert set(curves["method"]) == {"sequential", MODEL_ONLY}
    final = final_errors(curves).set_index("method")["best_objective"]
    assert final["sequential"] <= final[MODEL_ONLY] or np.isnan(final[MODEL_ONLY])


def test_joint_trains_each_configuration_once_and_reports_only_feasible_bests(toy) -> None:
    # make the lowest-error configuration infeasible at every deployment
    table = toy.objective.table
    cheap = cheapest_deployments(toy.energy)
    over = cheap.index[cheap["best_energy_mj"] > toy.budget_mj]
    assert len(over)
    table.loc[table["structure_key"] == over[0], "test_error"] = 0.001
    problem = CoSearchProblem(
        benchmark=toy.benchmark,
        deploy=toy.deploy,
        objective=TabularObjective(
            table, toy.model_space, objective="test_error", cost="train_time_s"
        ),
        costs=toy.costs,
        model=toy.model,
        budget_mj=toy.budget_mj,
        quantile=toy.quantile,
    )
    n = 25
    h = run_cosearch(problem, "joint", seed=3, n_trainings=n, n_init=4, settings=FAST)
    assert len(h) == n and h["key"].is_unique  # a training per row, none repeated
    assert (h["pred_energy_mj"] <= problem.budget_mj).all()
    curves = strategy_curves(h.assign(budget_quantile=0.3))
    best = curves.loc[curves["method"] == "joint", "best_objective"].dropna()
    assert len(best) and (best > 0.001).all()  # the infeasible 0.1 % never counts
    final = best.iloc[-1]
    winner = h[h["objective"] == final]
    assert winner["feasible"].any()
    assert (winner.loc[winner["feasible"], "best_energy_mj"] <= problem.budget_mj).all()
    again = run_cosearch(problem, "joint", seed=3, n_trainings=n, n_init=4, settings=FAST)
    assert again["key"].tolist() == h["key"].tolist()  # seeded


def test_joint_reaches_configurations_sequential_cannot(toy) -> None:
    seq = run_cosearch(
        toy, "sequential", seed=1, n_trainings=12, n_init=12, method="random-filtered"
    )
    joint = run_cosearch(toy, "joint", seed=1, n_trainings=12, n_init=12, method="random-filtered")
    assert (seq["feasible_baseline"] | (seq["pred_energy_mj"] <= toy.budget_mj)).all()
    assert (~joint["feasible_baseline"]).any()  # deployed cheaper, the big ones come in
    assert (joint["precision"] == "fp16").any()


def test_summary_and_difference_bracket_the_means() -> None:
    final = pd.DataFrame(
        {
            "method": ["joint"] * 5 + ["sequential"] * 5,
            "seed": list(range(5)) * 2,
            "best_objective": [0.10, 0.11, 0.12, 0.13, 0.14, 0.20, 0.21, 0.22, 0.23, np.nan],
        }
    )
    s = summarize_final(final, n_boot=2000)
    joint = s.loc["joint"]
    assert joint["mean"] == pytest.approx(0.12)
    assert joint["lower"] < joint["mean"] < joint["upper"]
    assert s.loc["sequential", "n"] == 4 and s.loc["sequential", "none_feasible"] == 1
    d = difference_interval(final, "joint", "sequential", n_boot=2000)
    assert d["difference"] == pytest.approx(0.12 - 0.215)
    assert d["lower"] < d["difference"] < d["upper"] < 0 and d["p_below"] == 1.0


# ====================================================================== the cached runner

QUICK = CoSearchSettings(n_trainings=6, n_init=3, gp_restarts=1)


@pytest.fixture
def committed() -> None:
    if not (DEPLOY / "table" / "cost_table.csv").exists() or not (BENCH / "configs.csv").exists():
        pytest.skip("the committed deployment and benchmark folders are not in data/")


def test_runner_caches_resumes_and_refuses_other_settings(committed, tmp_path, monkeypatch) -> None:
    out = tmp_path / "cache"
    first = run_cosearches(quantiles=[0.2], seeds=[0], settings=QUICK, out=out, command="test")
    assert len(first) == 2 * QUICK.n_trainings
    assert set(first["strategy"]) == {"sequential", "joint"}
    log = json.loads((out / "runs.json").read_text())
    assert log[-1]["runs_added"] == 2 and log[-1]["command"] == "test" and log[-1]["git_commit"]
    readme = (out / "README.md").read_text()
    assert "`budget_mj` | mJ |" in readme and "`test`" in readme
    prov = cache_provenance(out)
    assert prov["settings"]["n_trainings"] == QUICK.n_trainings and len(prov["runs"]) == 1

    def boom(*args, **kwargs):
        raise AssertionError("a cached run was run again")

    monkeypatch.setattr(cosearch, "run_cosearch", boom)
    again = run_cosearches(quantiles=[0.2], seeds=[0], settings=QUICK, out=out)
    cols = [c for c in first.columns if c != "overhead_s"]
    pd.testing.assert_frame_equal(
        again[cols].reset_index(drop=True), first[cols].reset_index(drop=True), check_dtype=False
    )
    with pytest.raises(CoSearchCacheError, match="n_trainings"):
        run_cosearches(
            quantiles=[0.2], seeds=[0], settings=CoSearchSettings(n_trainings=7), out=out
        )
    monkeypatch.undo()

    # a torn write: the last run's block loses its tail; the run counts as missing
    path = out / "histories.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]) + lines[-2][:10])
    kept = read_histories(out)
    assert len(kept) == QUICK.n_trainings
    rerun = run_cosearches(quantiles=[0.2], seeds=[0], settings=QUICK, out=out)
    assert len(rerun) == 2 * QUICK.n_trainings
    assert len(read_histories(out)) == 2 * QUICK.n_trainings
    assert list(pd.read_csv(path).columns) == HISTORY_COLUMNS


def test_command_line_quick(committed, tmp_path, capsys) -> None:
    assert (
        main(["--quick", "--seeds", "0", "--trainings", "5", "--init", "3", "--out", str(tmp_path)])
        == 0
    )
    text = capsys.readouterr().out
    assert "oracle_any" in text and "mean[joint]" in text
    assert len(read_histories(tmp_path)) == 10


# ====================================================================== the measured tables


def test_cost_table_is_the_four_deployments_of_every_structure(committed) -> None:
    costs = load_cost_table(DEPLOY)
    assert (costs.groupby("structure_key").size() == 4).all()
    assert set(costs["precision"]) == set(KNOBS["precision"])
    assert (costs["batch"] == 256).all() and (costs["energy_per_image_mj"] > 0).all()


def test_measured_deployments_leave_the_test_error_alone(committed) -> None:
    changes = deployment_error_changes(DEPLOY).set_index(["knob", "value"])
    assert changes.loc[("execution", "cuda-graph"), "max_abs_change"] == 0.0
    assert changes.loc[("precision", "fp16"), "mean_abs_change"] < 0.001
    assert (changes["pairs"] >= 5).all()
    noise = training_noise(DEPLOY)
    assert (noise["seeds"] >= 3).all() and (noise["std"] > 0).all()


def test_committed_problem_has_a_budget_that_cuts_the_unconstrained_best(committed) -> None:
    problem = cosearch_problem(budget_quantile=0.2)
    fits = problem.budget_summary()
    assert fits["best_violates"] == 1.0
    assert fits["baseline"] == pytest.approx(0.2, abs=0.01) and fits["any"] > fits["baseline"]
    errors = problem.model.cv_summary()
    assert errors.loc["all", "n"] == len(problem.costs)
    assert isinstance(problem.model_space, Space)
