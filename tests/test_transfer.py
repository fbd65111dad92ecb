"""Tests of hwml.predict.transfer: cross-device layer-runtime models and their helpers."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from hwml.predict import (
    MetaTransfer,
    RescaleTransfer,
    RooflineTransfer,
    ScratchTransfer,
    TooFewRowsError,
    UnknownKindError,
    load,
)
from hwml.predict.transfer import (
    CURVE_COLUMNS,
    NETWORK_CURVE_COLUMNS,
    best_within,
    ceilings_of,
    choose_rows,
    network_curve,
    network_layers,
    pair_rows,
    predict_networks,
    summarize_curve,
    transfer_curve,
    transfer_methods,
    transfer_pairs,
)

KINDS = ("conv2d", "linear", "maxpool2d", "batchnorm2d")
SCALE = {"conv2d": 3.0, "linear": 5.0, "maxpool2d": 0.5, "batchnorm2d": 2.0}


def _layers(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic source-device layers whose runtime is smooth in log FLOPs and bytes."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(KINDS, n)
    flops = np.exp(rng.uniform(8, 22, n))
    nbytes = np.exp(rng.uniform(10, 20, n))
    lf, lb = np.log(flops), np.log(nbytes)
    shift = {"conv2d": -9.0, "linear": -8.0, "maxpool2d": -7.0, "batchnorm2d": -7.5}
    log_t = np.array([shift[k] for k in kinds]) + 0.5 * lf + 0.3 * lb + 0.01 * (lf - 15) ** 2
    return pd.DataFrame(
        {
            "key": [f"k{seed}-{i}" for i in range(n)],
            "dtype": "float32",
            "kind": kinds,
            "flops": flops,
            "vector_ops": 0.0,
            "total_bytes": nbytes,
            "runtime_ms": np.exp(log_t),
            "status": "ok",
        }
    )


def _rescaled(source: pd.DataFrame) -> pd.DataFrame:
    """The target device: an exact per-kind rescaling of the source."""
    return source.assign(runtime_ms=source["runtime_ms"] * source["kind"].map(SCALE))


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return _layers(1000, seed=0)


@pytest.fixture(scope="module")
def target() -> pd.DataFrame:
    return _rescaled(_layers(1000, seed=1))


def _mape(model, rows: pd.DataFrame) -> float:
    return float(np.mean(np.abs(model.predict(rows) / rows["runtime_ms"].to_numpy() - 1)))


ROOF = {"peak_flops_per_s": 1e11, "bandwidth_bytes_per_s": 2e10, "overhead_ms": 0.01}
MODELS = [
    lambda: ScratchTransfer(),
    lambda: RescaleTransfer(),
    lambda: MetaTransfer(),
    lambda: RooflineTransfer(**ROOF),
]


@pytest.mark.parametrize("make", MODELS, ids=["scratch", "rescale", "meta", "roofline"])
def test_save_load_round_trip(make, source, target, tmp_path):
    model = make().fit(source, target.iloc[:30])
    path = model.save(tmp_path / "m.json")
    again = load(path)
    assert type(again) is type(model)
    np.testing.assert_array_equal(again.predict(target), model.predict(target))
    assert again.get_params() == model.get_params() or type(model) is MetaTransfer
    assert type(model).load(path).n_target_ == 30


def test_scratch_needs_target_rows(source, target):
    with pytest.raises(TooFewRowsError, match="needs measured target rows"):
        ScratchTransfer().fit(None, None)
    with pytest.raises(TooFewRowsError, match="needs measured target rows"):
        ScratchTransfer().fit(source, target.iloc[:0])
    one = ScratchTransfer().fit(None, target.iloc[:1])  # k = 1: a constant
    np.testing.assert_allclose(one.predict(target), target["runtime_ms"].iloc[0], rtol=1e-4)


def test_rescale_without_target_rows_is_the_source_model(source, target):
    model = RescaleTransfer().fit(source, None)
    np.testing.assert_array_equal(model.predict(target), model.predict_source(target))
    # and the source model fits the (noise-free) source closely
    assert _mape(model, source) < 1e-3


def test_meta_and_roofline_work_without_target_rows(source, target):
    assert np.all(np.isfinite(MetaTransfer().fit(source, None).predict(target)))
    roof = RooflineTransfer(**ROOF).fit()
    pred = roof.predict(target)
    work = target["flops"] / 1e11
    expected = np.maximum(work, target["total_bytes"] / 2e10) * 1e3 + 0.01
    np.testing.assert_allclose(pred, expected)
    with pytest.raises(TooFewRowsError, match="peak_flops_per_s"):
        RooflineTransfer().fit(None, None)


def test_roofline_envelope_from_rows(target):
    rows = target.iloc[:50]
    roof = RooflineTransfer(envelope=True, overhead_ms=None).fit(None, rows)
    assert roof.state_["overhead_ms"] == pytest.approx(0.5 * rows["runtime_ms"].min())
    # the envelope is the best rate any row reached: no row is predicted slower
    assert np.all(roof.predict(rows) <= rows["runtime_ms"].to_numpy() * (1 + 1e-9))


def test_rescale_recovers_an_exact_per_kind_rescaling(source, target):
    # layers inside the range of the source's rows of their kind, where the source model
    # is not clipped (see test_source_model_is_not_extrapolated)
    inside = np.ones(len(target), dtype=bool)
    for kind, part in source.groupby("kind"):
        mine = target["kind"].to_numpy() == kind
        for col in ("flops", "total_bytes"):
            values = target[col].to_numpy()
            inside &= ~mine | ((values >= part[col].min()) & (values <= part[col].max()))
    assert inside.mean() > 0.9
    rows = target[inside]
    train, test = rows.iloc[:700], rows.iloc[700:]
    model = RescaleTransfer().fit(source, train)
    assert _mape(model, test) < 1e-5
    assert _mape(model, train) < 1e-5


def test_scratch_with_many_rows_is_close(target):
    model = ScratchTransfer().fit(None, target.iloc[:800])
    # a log-linear form cannot follow the small curvature exactly, but it comes close
    assert _mape(model, target.iloc[800:]) < 0.2


def test_meta_beats_scratch_at_small_k(source, target):
    meta, scratch = [], []
    for seed in range(5):
        train = choose_rows(target, 10, "chosen", seed)
        test = target.drop(index=train.index)
        meta.append(_mape(MetaTransfer().fit(source, train), test))
        scratch.append(_mape(ScratchTransfer().fit(None, train), test))
    assert np.mean(meta) < 0.5 * np.mean(scratch)


def test_meta_learns_a_prior_from_several_tasks(source):
    slow = source.assign(dtype="float16", runtime_ms=source["runtime_ms"] * 2.0)
    model = MetaTransfer().fit({"a": pd.concat([source, slow])}, None)
    assert len(model.state_["sources"]) == 2
    w = np.array(model.state_["prior_mean"])
    assert w[1] == pytest.approx(1.0, abs=0.05)  # one task is a rescaled copy of the other


def test_k_larger_than_the_data(source, target):
    small = target.iloc[:7]
    for make in MODELS:
        model = make().fit(source, small)
        assert model.n_target_ == 7
        assert np.all(np.isfinite(model.predict(target)))
    assert len(choose_rows(small, 50, "chosen")) == 7
    assert len(choose_rows(small, 50, "random")) == 7


def test_unknown_kinds():
    src = _layers(200)
    model = RescaleTransfer().fit(src[src.kind != "linear"], None)
    with pytest.raises(UnknownKindError, match="linear"):
        model.predict(src)
    with pytest.raises(UnknownKindError, match="other"):
        ScratchTransfer().fit(None, src).predict(src.assign(kind="other"))


@pytest.mark.parametrize("k", [4, 6, 9, 30])
def test_choose_rows_chosen_covers_every_kind(target, k):
    rows = choose_rows(target, k, "chosen", seed=3)
    assert len(rows) == k
    assert rows.index.is_unique
    assert set(rows["kind"]) == set(KINDS)


def test_choose_rows_chosen_spreads_over_flops(target):
    conv = target[target.kind == "conv2d"]
    chosen = np.log(choose_rows(conv, 8, "chosen", seed=0)["flops"])
    lf = np.log(conv["flops"])
    # k-means centres cover the range: both ends are represented
    assert chosen.min() < lf.quantile(0.2) and chosen.max() > lf.quantile(0.8)
    with pytest.raises(ValueError, match="how"):
        choose_rows(target, 3, "best")


def test_transfer_curve_columns_and_k_cap(source, target):
    small = target.iloc[:40]
    curve = transfer_curve(
        source,
        small,
        {"scratch": ScratchTransfer(), "rescale": RescaleTransfer()},
        ks=(0, 5, 100),
        how=("random", "chosen"),
        seeds=range(2),
    )
    assert list(curve.columns) == list(CURVE_COLUMNS)
    assert {"k", "k_used", "capped", "mape_pct", "spearman"} <= set(curve.columns)
    assert len(curve) == 2 * 3 * 2 * 2
    big = curve[curve.k == 100]
    assert big["capped"].all() and (big["k_used"] == 30).all() and (big["n_test"] == 10).all()
    assert not curve[curve.k < 100]["capped"].any()
    zero = curve[(curve.method == "scratch") & (curve.k == 0)]
    assert zero["mape_pct"].isna().all() and zero["error"].str.contains("TooFewRows").all()
    ok = curve[curve.error == ""]
    assert ok["mape_pct"].notna().all() and (ok["spearman"] <= 1).all()
    resc = curve[(curve.method == "rescale") & (curve.k == 100)]
    assert (resc["mape_pct"] < 1.0).all()  # exact rescaling, 30 rows: under 1 %


def test_transfer_curve_too_few_rows(source, target):
    curve = transfer_curve(source, target.iloc[:5], ["rescale"], ks=(0, 3), seeds=[0])
    assert curve["error"].str.contains("usable target rows").all()


def test_pair_rows(source):
    other = source.iloc[::2].assign(runtime_ms=1.0)
    pairs = pair_rows(source, other)
    assert len(pairs) == len(other)
    np.testing.assert_array_equal(pairs["runtime_ms_source"], source.iloc[::2]["runtime_ms"])


def test_predict_networks_sums_layers(source, target):
    model = RescaleTransfer().fit(source, target.iloc[:100])
    net_layers = target.iloc[:10].assign(network=["a"] * 4 + ["b"] * 6, batch=1)
    net_layers.loc[net_layers.index[0], "kind"] = "other"
    nets = pd.DataFrame({"network": ["a", "b"], "batch": 1, "dtype": "float32", "runtime_ms": 2.0})
    out = predict_networks(model, net_layers, nets)
    expected_b = model.predict(net_layers.iloc[4:]).sum()
    row_b = out.set_index("network").loc["b"]
    assert row_b["predicted_ms"] == pytest.approx(expected_b)
    assert row_b["ratio"] == pytest.approx(expected_b / 2.0)
    assert out.set_index("network").loc["a", "left_out"] == 1


def test_measure_ceilings_cpu_is_quick_and_positive():
    from hwml.profile import measure_ceilings

    start = time.perf_counter()
    c = measure_ceilings("cpu", matmul_n=64, copy_bytes=1 << 20, budget_ms=5)
    assert time.perf_counter() - start < 5
    for key in ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms"):
        assert math.isfinite(c[key]) and c[key] > 0
    model = RooflineTransfer.from_ceilings(c).fit()
    assert np.all(model.predict(_layers(5)) > 0)


# ---------------------------------------------------------------- sources lacking a group


def test_unknown_groups_pooled_prices_a_group_the_source_lacks(source, target):
    no_linear = source[source.kind != "linear"]
    linear = target[target.kind == "linear"]
    with pytest.raises(UnknownKindError, match="linear"):
        RescaleTransfer().fit(no_linear, None).predict(linear)
    for make in (RescaleTransfer, MetaTransfer):
        model = make(unknown_groups="pooled").fit(no_linear, target.iloc[:40])
        pred = model.predict(target)
        assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    # several sources, one of them without linear layers: the meta model still prices them
    both = {"a": source, "b": no_linear.assign(runtime_ms=no_linear["runtime_ms"] * 3)}
    with pytest.raises(UnknownKindError, match="linear"):
        MetaTransfer().fit(both, target.iloc[:40]).predict(linear)
    model = MetaTransfer(unknown_groups="pooled").fit(both, target.iloc[:40])
    assert len(model.state_["sources"]) == 2
    assert np.all(np.isfinite(model.predict(linear)))
    with pytest.raises(ValueError, match="unknown_groups"):
        RescaleTransfer(unknown_groups="guess").fit(source, target.iloc[:10])


def test_unknown_groups_pooled_round_trips(source, target, tmp_path):
    no_linear = source[source.kind != "linear"]
    model = RescaleTransfer(unknown_groups="pooled").fit(no_linear, target.iloc[:30])
    again = load(model.save(tmp_path / "m.json"))
    assert again.get_params()["unknown_groups"] == "pooled"
    np.testing.assert_array_equal(again.predict(target), model.predict(target))


# ---------------------------------------------------------------- ceilings from provenance


def test_ceilings_of_reads_what_was_measured_and_nothing_else():
    gpu = {
        "peak_flops_per_s": {"float32": 5e13, "float16": 6e14},
        "copy_bandwidth_bytes_per_s": 4e12,
    }
    assert ceilings_of(gpu) == {
        "peak_flops_per_s": 5e13,
        "bandwidth_bytes_per_s": 4e12,
        "overhead_ms": None,  # never measured: not guessed
    }
    assert ceilings_of(gpu, "float16")["peak_flops_per_s"] == 6e14
    assert ceilings_of(gpu, "bfloat16")["peak_flops_per_s"] is None
    cpu = {"cpu": "AMD EPYC", "cpu_count": 2, "dataset_kind": "cpu"}
    assert ceilings_of(cpu) == dict.fromkeys(
        ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms")
    )
    nested = {"ceilings": {"dtype": "float32", **ROOF}}
    assert ceilings_of(nested) == ROOF
    assert ceilings_of(nested, "float16")["peak_flops_per_s"] is None  # measured in float32
    bad = {"peak_flops_per_s": -1.0, "bandwidth_bytes_per_s": float("nan"), "overhead_ms": 0.0}
    assert ceilings_of(bad) == {
        "peak_flops_per_s": None,
        "bandwidth_bytes_per_s": None,
        "overhead_ms": 0.0,
    }


def test_roofline_from_provenance_without_ceilings_refuses_k0(target):
    cpu = {"cpu": "AMD EPYC", "dataset_kind": "cpu"}
    model = RooflineTransfer.from_provenance(cpu, envelope=True)
    with pytest.raises(
        TooFewRowsError, match="peak_flops_per_s, bandwidth_bytes_per_s, overhead_ms"
    ):
        model.fit(None, None)
    fitted = RooflineTransfer.from_provenance(cpu, envelope=True).fit(None, target.iloc[:20])
    assert np.all(fitted.predict(target) > 0)
    full = RooflineTransfer.from_provenance({"ceilings": ROOF}).fit()
    np.testing.assert_allclose(
        full.predict(target), RooflineTransfer.from_ceilings(ROOF).fit().predict(target)
    )


# ---------------------------------------------------------------- several platforms

PLATFORMS = ("gpu", "big-cpu", "small-cpu")


def test_transfer_pairs_of_three_platforms():
    pairs = transfer_pairs(PLATFORMS, ["big-cpu", "small-cpu"])
    assert pairs == [
        (("gpu",), "big-cpu"),
        (("small-cpu",), "big-cpu"),
        (("gpu", "small-cpu"), "big-cpu"),
        (("gpu",), "small-cpu"),
        (("big-cpu",), "small-cpu"),
        (("gpu", "big-cpu"), "small-cpu"),
    ]
    every = transfer_pairs(PLATFORMS, multi_source=False, target_only=True)
    assert len(every) == 3 * 3 and every[0] == ((), "gpu")
    assert all(target not in sources for sources, target in every)
    assert transfer_pairs(["a", "b"], ["b"]) == [(("a",), "b")]  # one other: no multi-source
    with pytest.raises(ValueError, match="not among"):
        transfer_pairs(PLATFORMS, ["tpu"])
    with pytest.raises(ValueError, match="twice"):
        transfer_pairs(["a", "a", "b"])


def test_transfer_methods_follow_the_source(source):
    assert list(transfer_methods(None)) == ["scratch", "roofline"]
    assert list(transfer_methods(source)) == ["rescale", "meta"]  # no CUDA-graph column
    gpu = source.assign(runtime_graph_ms=source["runtime_ms"] / 2)
    methods = transfer_methods(gpu)
    assert list(methods) == ["rescale", "rescale (graph)", "meta"]
    assert methods["rescale (graph)"].source_target == "runtime_graph_ms"
    assert methods["rescale"].unknown_groups == "pooled"
    assert list(transfer_methods({"a": source, "b": gpu})) == ["meta"]
    assert list(transfer_methods({"a": gpu})) == ["rescale", "rescale (graph)", "meta"]
    empty_graph = source.assign(runtime_graph_ms=np.nan)
    assert "rescale (graph)" not in transfer_methods(empty_graph)


def _platform(layers: pd.DataFrame, scale: dict[str, float]) -> pd.DataFrame:
    """The same layers on another platform: an exact per-kind rescaling."""
    return layers.assign(runtime_ms=layers["runtime_ms"] * layers["kind"].map(scale))


def _three_platforms() -> dict[str, pd.DataFrame]:
    base = _layers(300, seed=2)
    return {
        "gpu": base,
        "big-cpu": _platform(
            base, {"conv2d": 20.0, "linear": 10.0, "maxpool2d": 4.0, "batchnorm2d": 6.0}
        ),
        "small-cpu": _platform(
            base, {"conv2d": 200.0, "linear": 90.0, "maxpool2d": 30.0, "batchnorm2d": 50.0}
        ),
    }


def _networks(platform: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four networks of 12 layers each, their measured runtime the sum of their layers'."""
    rows = platform.iloc[-48:].assign(
        network=np.repeat(["n0", "n1", "n2", "n3"], 12), batch=np.tile([1, 8], 24)
    )
    nets = rows.groupby(["network", "batch", "dtype"], as_index=False)["runtime_ms"].sum()
    return rows.drop(columns="runtime_ms"), nets.assign(status="ok")


def test_curves_on_three_synthetic_platforms():
    tables = _three_platforms()
    targets = ["big-cpu", "small-cpu"]
    layer_curves, net_curves = [], []
    for sources, target in transfer_pairs(PLATFORMS, targets, target_only=True):
        src = (
            None
            if not sources
            else (tables[sources[0]] if len(sources) == 1 else {s: tables[s] for s in sources})
        )
        methods = transfer_methods(src)
        label = "+".join(sources) or "none"
        pair = f"{label} -> {target}"
        train_layers = tables[target].iloc[:-48]  # the networks' layers are never chosen
        net_layers, nets = _networks(tables[target])
        layer_curves.append(
            transfer_curve(
                src, train_layers, methods, ks=(0, 20, 500), how="random", seeds=[0]
            ).assign(pair=pair)
        )
        net_curves.append(
            network_curve(
                src, train_layers, net_layers, nets, methods, ks=(0, 20, 500), seeds=[0]
            ).assign(pair=pair)
        )
    layers = pd.concat(layer_curves, ignore_index=True)
    networks = pd.concat(net_curves, ignore_index=True)
    assert list(networks.columns[:-1]) == list(NETWORK_CURVE_COLUMNS)
    assert networks["pair"].nunique() == layers["pair"].nunique() == 2 * 4
    # k above the data is capped: at the layers minus min_test, at all layers for networks
    assert (layers.loc[layers.k == 500, "k_used"] == 252 - 10).all()
    assert (networks.loc[networks.k == 500, "k_used"] == 252).all()
    assert (networks.loc[networks.error == "", "n_nets"] == 8).all()
    # scratch and roofline need target rows; the rescaling models work at k = 0
    zero = networks[(networks.k == 0) & (networks.how == "chosen")]
    zero = zero.set_index(["pair", "method"])["error"]
    assert zero.loc[("none -> small-cpu", "scratch")].startswith("TooFewRowsError")
    assert "not given" in zero.loc[("none -> small-cpu", "roofline")]
    assert zero.loc[("gpu -> small-cpu", "rescale")] == ""
    summary = summarize_curve(networks, by=["pair"])
    best = best_within(summary, max_k=20, by=["pair"]).set_index("pair")
    assert len(best) == 8
    # an exact per-kind rescaling is recovered from 20 target layers, for every source
    for pair in ("gpu -> small-cpu", "big-cpu -> small-cpu", "small-cpu -> big-cpu"):
        assert best.loc[pair, "mape_pct"] < 1.0 and best.loc[pair, "met"]
        assert best.loc[pair, "method"].startswith("rescale") or best.loc[pair, "method"] == "meta"
    multi = best.loc["gpu+big-cpu -> small-cpu"]
    assert multi["method"] == "meta" and multi["spearman"] > 0.95


def test_summarize_curve_and_best_within():
    curve = pd.DataFrame(
        {
            "pair": "p",
            "method": ["a", "a", "a", "b", "b", "b", "b"],
            "how": "random",
            "k": [5, 5, 5, 5, 20, 20, 50],
            "k_used": [5, 5, 5, 5, 20, 20, 40],
            "seed": [0, 1, 2, 0, 0, 1, 0],
            "mape_pct": [30.0, 10.0, np.nan, 12.0, 9.0, 7.0, 1.0],
            "spearman": [0.9, 0.8, np.nan, 0.9, 0.97, 0.99, 1.0],
            "error": ["", "", "TooFewRowsError: no", "", "", "", ""],
        }
    )
    summary = summarize_curve(curve, by=["pair"]).set_index(["method", "k"])
    assert summary.loc[("a", 5), "fits"] == 2  # the failed fit is left out
    assert summary.loc[("a", 5), "mape_pct"] == pytest.approx(20.0)
    assert summary.loc[("b", 20), "spearman"] == pytest.approx(0.98)
    best = best_within(summarize_curve(curve, by=["pair"]), max_k=20, by=["pair"]).iloc[0]
    assert (best["method"], best["k"], best["mape_pct"]) == ("b", 20, pytest.approx(8.0))
    assert best["met"] and best["met_by"] == "b (random), k = 20"  # k = 50 is over budget
    assert best["max_spearman"] == pytest.approx(0.98)
    strict = best_within(summarize_curve(curve), max_k=5, spearman=0.95).iloc[0]
    assert strict["k"] == 5 and not strict["met"] and strict["met_by"] == ""


def test_network_layers_from_a_builder_and_the_zoo():
    class _Net:
        def __init__(self, n: int) -> None:
            self.n = n

        def table(self) -> pd.DataFrame:
            return _layers(self.n).drop(columns=["runtime_ms", "status", "dtype"])

    nets = pd.DataFrame({"network": ["x", "x", "y"], "batch": [1, 8, 1], "dtype": "float32"})
    calls = []
    rows = network_layers(
        nets, lambda name, batch, nbytes: calls.append((name, batch, nbytes)) or _Net(3)
    )
    assert calls == [("x", 1, 4), ("x", 8, 4), ("y", 1, 4)]
    assert len(rows) == 9 and set(rows["network"]) == {"x", "y"}
    assert (rows["dtype"] == "float32").all()
    real = network_layers(
        pd.DataFrame({"network": ["cifar10_6conv"], "batch": [2], "dtype": "float16"})
    )
    assert (real["batch"] == 2).all() and (real["dtype"] == "float16").all()
    assert (real["dtype_bytes"] == 2).all() and (real["kind"] == "conv2d").any()


def test_source_model_is_not_extrapolated(source):
    """Layers outside the range of their group's source rows get the edge's prediction."""
    model = RescaleTransfer().fit(source, None)
    conv = source[source.kind == "conv2d"]
    smallest = conv.loc[[conv["flops"].idxmin()]]
    tiny = smallest.assign(flops=smallest["flops"] / 1e6)  # far below any conv2d row
    np.testing.assert_allclose(model.predict_source(tiny), model.predict_source(smallest))
    # a group the source lacks ("pooled") is clipped to the range of all source rows
    no_pool = source[source.kind != "maxpool2d"]
    pooled = RescaleTransfer(unknown_groups="pooled").fit(no_pool, None)
    pool = source[source.kind == "maxpool2d"].iloc[:1]
    lowest = np.log(np.maximum(no_pool["flops"] + no_pool["vector_ops"], 1)).min()
    below = pool.assign(flops=0.0)  # lf = 0, under every source row
    at_edge = pool.assign(flops=np.exp(lowest))
    np.testing.assert_allclose(pooled.predict_source(below), pooled.predict_source(at_edge))
