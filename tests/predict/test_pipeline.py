"""Tests of hwml.predict.pipeline: the host + device pipeline model of whole networks."""

import numpy as np
import pandas as pd
import pytest
from torch import nn

from hwml import zoo
from hwml.describe import describe
from hwml.predict import PredictorError
from hwml.predict import pipeline as P

CEIL = (1e14, 1e12)  # FLOP/s, B/s


def small_net(batch=4):
    module = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    )
    return describe(module, (batch, 3, 8, 8), name="small")


def test_features_count_layers_and_divide_by_the_ceilings():
    net = small_net()
    f = P.network_features(net, "float32", CEIL)
    conv = net.layers[0]
    assert f["n_conv2d"] == 1 and f["n_activation"] == 1 and f["n_linear"] == 1
    assert f["n_trivial"] == 1  # the flatten view
    assert f["flop_ms_conv2d"] == pytest.approx(1e3 * conv.flops / CEIL[0])
    assert f["byte_ms_conv2d"] == pytest.approx(1e3 * conv.total_bytes / CEIL[1])
    assert f["flops"] == sum(layer.flops for layer in net)
    half = P.network_features(net, "float16", CEIL)
    assert half["byte_ms_conv2d"] == pytest.approx(f["byte_ms_conv2d"] / 2)


def test_a_layer_of_kind_other_is_refused_by_name():
    class Odd(nn.Module):
        def forward(self, x):
            return x.cumsum(1)

    net = describe(Odd(), (1, 4), strict=False)
    with pytest.raises(PredictorError, match="kind 'other' cannot be priced"):
        P.network_features(net, "float32", CEIL)


def synthetic(n=60, seed=0, gamma=0.2):
    """Networks whose costs follow a known pipeline model exactly."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        f = dict.fromkeys(P.FEATURE_COLUMNS, 0.0)
        for g in P.GROUPS:
            f[f"n_{g}"] = float(rng.integers(0, 40))
            f[f"flop_ms_{g}"] = float(rng.uniform(0, 2)) if g != "trivial" else 0.0
            f[f"byte_ms_{g}"] = float(rng.uniform(0, 2)) if g != "trivial" else 0.0
        f["roof_ms"] = sum(max(f[f"flop_ms_{g}"], f[f"byte_ms_{g}"]) for g in P.GROUPS)
        f["flop_share"] = float(rng.uniform(0, 1))
        scale = rng.choice([0.05, 1.0, 20.0])  # host-bound, balanced and device-bound rows
        for k in f:
            if k.startswith(("flop_ms_", "byte_ms_")) or k == "roof_ms":
                f[k] *= scale
        host = 0.05 + sum(0.02 * f[f"n_{g}"] for g in P.GROUPS)
        device = sum(
            1.5 * f[f"flop_ms_{g}"] + 0.5 * f[f"byte_ms_{g}"] + 0.004 * f[f"n_{g}"]
            for g in P.GROUPS
            if g != "trivial"
        )
        rows.append(
            {
                **f,
                "network": f"n{i}",
                "family": f"fam{i % 5}",
                "batch": 1,
                "dtype": "float32",
                "host_dispatch_ms": host,
                "runtime_graph_ms": device,
                "runtime_ms": max(host, device) + gamma * min(host, device),
            }
        )
    return pd.DataFrame(rows)


def test_fit_recovers_a_known_pipeline():
    table = synthetic()
    model = P.PipelineModel().fit(table, idle_w=100.0)
    pred = model.predict(table)
    np.testing.assert_allclose(pred["runtime_graph_ms"], table["runtime_graph_ms"], rtol=1e-4)
    np.testing.assert_allclose(pred["runtime_ms"], table["runtime_ms"], rtol=0.02)
    assert model.overlap == pytest.approx(0.2, abs=0.02)
    assert set(pred["bound"]) == {"host", "device"}


def test_leave_out_never_predicts_a_network_from_itself():
    table = synthetic()
    table.loc[0, ["runtime_graph_ms", "runtime_ms"]] *= 3  # one network far off the model
    inside = P.PipelineModel().fit(table, idle_w=100.0).predict(table.iloc[[0]])
    held = P.leave_out(table, "network", idle_w=100.0)
    assert len(held) == len(table)
    truth = synthetic().loc[0, "runtime_graph_ms"]
    # held out, the prediction follows the other networks (the true model), not the outlier
    assert held.loc[0, "pred_runtime_graph_ms"] == pytest.approx(truth, rel=0.02)
    assert inside["runtime_graph_ms"].iloc[0] != pytest.approx(truth, rel=0.02)
    errors = P.held_out_errors(held)
    assert set(errors) == {"runtime"} and set(errors["runtime"]) == {"1"}
    by_family = P.leave_out(table, "family", idle_w=100.0)
    assert len(by_family) == len(table)


def test_save_load_and_predict_network(tmp_path):
    table = synthetic()
    model = P.PipelineModel().fit(table, idle_w=100.0, ceilings={"float32": CEIL}, device="GPU X")
    model.held_out_error_pct = {"runtime": {"1": 12.0, "32": 5.0}}
    path = model.save(tmp_path / "m.json")
    back = P.PipelineModel.load(path)
    assert back == model
    out = back.predict_network(small_net(batch=16), "float32")
    assert out["runtime_error_pct"] == 5.0  # nearest evaluated batch in log scale is 32
    assert out["runtime_ms"] > 0 and np.isnan(out["energy_error_pct"])
    per_layer = back.predict_layers(small_net(batch=16), "float32")
    assert list(per_layer["kind"]) == ["conv2d", "activation", "flatten", "linear"]
    assert per_layer.loc[2, "device_ms"] == 0  # a view costs the GPU nothing
    with pytest.raises(PredictorError, match="not 'float16'"):
        back.predict_network(small_net(), "float16")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(PredictorError, match="not a pipeline model file"):
        P.PipelineModel.load(tmp_path / "bad.json")


def test_unfitted_model_and_missing_columns_say_so():
    with pytest.raises(PredictorError, match="not fitted"):
        P.PipelineModel().predict(synthetic(5))
    with pytest.raises(PredictorError, match="lacks the columns runtime_ms"):
        P.PipelineModel().fit(synthetic().drop(columns="runtime_ms"), idle_w=1.0)


@pytest.mark.parametrize(
    ("spec", "family"),
    [
        ("resnet50", "resnet"),
        ("torchvision:resnext50_32x4d", "resnet"),
        ("cells:4", "cells"),
        ("torchvision:vit_b_16", "vit"),
        ("torchvision:maxvit_t", "maxvit"),
        ("nin", "classic"),
        ("torchvision:googlenet", "inception"),
        ("mine.mod:net", "net"),
    ],
)
def test_families(spec, family):
    assert zoo.family(spec) == family


def test_feature_sums_add_up_over_parts_of_a_network():
    net = describe(zoo.get("cells:3"), (2, 3, 64, 64), name="cells:3")
    whole = P.network_features(net, "float32", CEIL)
    half = len(net.layers) // 2
    a = P.feature_sums(net.layers[:half], "float32", CEIL)
    b = P.feature_sums(net.layers[half:], "float32", CEIL)
    added = P.finish_features({k: a[k] + b[k] for k in P.SUM_COLUMNS})
    assert added.keys() == whole.keys()
    assert all(added[k] == pytest.approx(whole[k], rel=1e-12) for k in whole)


def test_load_dict_reads_to_dict():
    table = synthetic()
    model = P.PipelineModel().fit(table, idle_w=100.0, ceilings={"float32": CEIL})
    assert P.PipelineModel.load_dict(model.to_dict()) == model
    with pytest.raises(PredictorError, match="not a pipeline model document"):
        P.PipelineModel.load_dict({"format": "other"})
