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
    choose_rows,
    pair_rows,
    predict_networks,
    transfer_curve,
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
    train, test = target.iloc[:800], target.iloc[800:]
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
