"""Tests of hwml.nas.search on a made-up pool: budgets, seeds, rewards, fronts, verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.nas.search import (
    CONTROLLERS,
    TERMS,
    NASProblem,
    SearchSettings,
    equal_error_ratio,
    mnas_reward,
    normalized_hypervolume,
    pick,
    run_search,
    run_searches,
    search_front,
    verdict_frame,
)
from hwml.nas.space import NASSpace


@pytest.fixture(scope="module")
def problem() -> NASProblem:
    """120 architectures with made-up errors and costs: latency grows with depth, error
    falls with width, FLOPs follow width (so FLOPs and latency disagree)."""
    space = NASSpace()
    archs = space.sample(120, 0)
    rng = np.random.default_rng(0)
    depth = np.array([sum(st.depth for st in a) for a in archs], dtype=float)
    width = np.array([sum(st.width for st in a) for a in archs], dtype=float)
    error = 0.3 / np.sqrt(width / 20) + 0.01 * rng.random(len(archs))
    latency = 0.2 * depth + 0.05 * rng.random(len(archs))
    measured = {("runtime", 1): latency, ("energy", 1): 2 * latency}
    predicted = {("runtime", 1): latency * 0.8, ("energy", 1): 2 * latency}
    return NASProblem(
        space=space,
        keys=[space.key(a) for a in archs],
        points=space.encode(archs),
        error=error,
        flops=width**2,
        measured=measured,
        predicted=predicted,
    )


def test_mnas_reward() -> None:
    assert np.allclose(mnas_reward(np.array([0.1]), None, 1.0), [0.9])
    r = mnas_reward(np.array([0.1, 0.1]), np.array([1.0, 2.0]), 1.0, -0.07)
    assert np.isclose(r[0], 0.9) and np.isclose(r[1], 0.9 * 2**-0.07)


@pytest.mark.parametrize("controller", CONTROLLERS)
@pytest.mark.parametrize("term", TERMS)
def test_every_search_spends_exactly_its_budget(
    problem: NASProblem, term: str, controller: str
) -> None:
    settings = SearchSettings(n_evals=25, population=8)
    run = run_search(problem, term, controller, 3, settings=settings)
    assert len(run) == 25 and run["index"].is_unique
    assert run["iteration"].tolist() == list(range(1, 26))
    assert np.allclose(run["error"], problem.error[run["index"]])
    again = run_search(problem, term, controller, 3, settings=settings)
    pd.testing.assert_frame_equal(run, again)  # a function of its seed
    if term == "none":
        assert run["cost"].isna().all() and run["target"].isna().all()
    else:
        seen = problem.cost(term, "runtime", 1)
        assert np.allclose(run["cost"], seen[run["index"]])


def test_budget_larger_than_the_pool_stops_at_the_pool(problem: NASProblem) -> None:
    run = run_search(problem, "measured", "evolution", 0, settings=SearchSettings(n_evals=500))
    assert len(run) == len(problem) and run["index"].is_unique


def test_searches_beat_random_on_their_own_reward(problem: NASProblem) -> None:
    settings = SearchSettings(n_evals=30, population=8)
    best = {
        c: np.mean(
            [
                run_search(problem, "measured", c, s, settings=settings)["reward"].max()
                for s in range(8)
            ]
        )
        for c in ("evolution", "random")
    }
    assert best["evolution"] >= best["random"]


def test_fronts_picks_and_verdict(problem: NASProblem) -> None:
    settings = SearchSettings(n_evals=20, population=6, quantile=0.4)
    runs = run_searches(
        problem, seeds=range(3), settings=settings, controllers=("evolution", "nsga")
    )
    assert set(runs["term"]) == set(TERMS) and set(runs["controller"]) == {
        "evolution",
        "nsga",
        "random",
    }
    one = runs[(runs["term"] == "none") & (runs["controller"] == "evolution") & (runs["seed"] == 0)]
    assert len(search_front(one)) == 1 and pick(one)["error"] == one["error"].min()
    meas = runs[(runs["term"] == "measured") & (runs["controller"] == "nsga") & (runs["seed"] == 1)]
    front = search_front(meas)
    assert len(front) >= 1
    for _, r in front.iterrows():  # nothing it trained dominates a front member
        assert not ((meas["error"] < r["error"]) & (meas["cost"] < r["cost"])).any()
    v = verdict_frame(problem, runs, settings.quantile)
    assert len(v) == runs.groupby(["metric", "batch", "term", "controller", "seed"]).ngroups
    assert (v["hv_front"] <= v["hv_trained"] + 1e-12).all() and (
        v["hv_trained"] <= v["hv_pool"] + 1e-12
    ).all()
    assert v["hv_front_pct"].between(0, 100).all()
    target = np.nanquantile(problem.measured[("runtime", 1)], 0.4)
    assert np.allclose(v["target"], target)
    measured = v[v["term"] == "measured"]
    assert not measured["pick_violates"].any()  # its own view is the measurement
    assert (v.loc[~v["pick_violates"], "pick_over_pct"] == 0).all()
    # the predictor reads 20 % low: its picks may land above the target, never 20 % above
    predicted = v[v["term"] == "predicted"]
    assert (predicted["pick_over_pct"] <= 25.0 + 1e-9).all()
    ratio = equal_error_ratio(problem, runs, "measured", "flops", levels=[0.2, 0.3, 1.0])
    assert set(ratio.columns) == {"error_level", "measured_cost", "flops_cost", "ratio"}
    assert (ratio["ratio"] > 0).all()


def test_normalized_hypervolume(problem: NASProblem) -> None:
    full = normalized_hypervolume(problem, range(len(problem)), "runtime", 1)
    assert 0 < full <= 1
    assert normalized_hypervolume(problem, [], "runtime", 1) == 0.0
    assert normalized_hypervolume(problem, [0, 1], "runtime", 1) <= full


def test_summary_and_median_front(problem: NASProblem) -> None:
    from hwml.nas.search import median_front, summarize_verdict, term_label

    settings = SearchSettings(n_evals=20, population=6)
    runs = run_searches(problem, seeds=range(3), settings=settings, controllers=("evolution",))
    v = verdict_frame(problem, runs, settings.quantile)
    s = summarize_verdict(v)
    assert len(s) == 5 and (s["seeds"] == 3).all()
    assert s.loc[s["term"] == "measured", "violation_pct"].eq(0).all()
    front = median_front(problem, runs, v, "predicted")
    assert front["measured"].is_monotonic_increasing and len(front) >= 1
    assert term_label("predicted", "energy") == "(c) + predicted energy"
    assert term_label("measured", "gpu_time") == "(d) + measured GPU time"
    with pytest.raises(KeyError):
        median_front(problem, runs, v, "predicted", controller="nsga")


def test_equal_error_summary() -> None:
    from hwml.nas.search import equal_error_summary

    r = pd.DataFrame({"ratio": [0.5, 0.5]})
    out = equal_error_summary(r)
    assert (
        out["verdict"] == "ahead" and np.isclose(out["ratio"], 0.5) and np.isclose(out["pct"], 50)
    )
    assert equal_error_summary(pd.DataFrame({"ratio": [1.02, 0.99]}))["verdict"] == "on par"
    assert equal_error_summary(pd.DataFrame({"ratio": [2.0]}))["verdict"] == "behind"
    assert equal_error_summary(pd.DataFrame({"ratio": []}))["verdict"] == "not comparable"


def test_equal_error_sentence_says_the_verdict_and_its_size() -> None:
    from hwml.nas.search import equal_error_sentence, equal_error_summary

    ahead = equal_error_summary(pd.DataFrame({"ratio": [0.8, 0.8]}))
    assert equal_error_sentence(ahead).startswith(
        "is ahead"
    ) and "20 % faster" in equal_error_sentence(ahead)
    par = equal_error_summary(pd.DataFrame({"ratio": [1.03]}), tie_pct=5)
    assert "3.0 % slower" in equal_error_sentence(
        par, 5
    ) and "5 % called a tie" in equal_error_sentence(par, 5)
    behind = equal_error_summary(pd.DataFrame({"ratio": [1.5]}))
    assert "50 % slower" in equal_error_sentence(behind) and "not ahead" in equal_error_sentence(
        behind
    )
    none = equal_error_summary(pd.DataFrame({"ratio": []}))
    assert "share no error level" in equal_error_sentence(none)


def test_dominated_count() -> None:
    from hwml.nas.search import dominated_count

    front_err, front_cost = np.array([0.1, 0.3]), np.array([2.0, 1.0])
    stars_err = np.array([0.2, 0.1, 0.05, 0.3])
    stars_cost = np.array([3.0, 2.0, 1.0, 0.5])
    # (0.2, 3) is beaten by (0.1, 2); (0.1, 2) equals a front point: not beaten;
    # (0.05, 1) and (0.3, 0.5) are better in one coordinate than every front point
    assert dominated_count(front_err, front_cost, stars_err, stars_cost) == 1
    assert dominated_count(front_err, front_cost, stars_err + 1, stars_cost + 5) == 4
