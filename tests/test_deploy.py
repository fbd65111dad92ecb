"""Deployment levels (hwml.deploy) on a CPU: tiny CNN, tiny random data, fakes for CUDA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwml.deploy import (
    SEMI_STRUCTURED,
    ExecutionModeError,
    Fp8Linear,
    PrecisionModel,
    UnsupportedPrecisionError,
    apply_precision,
    count_parameters,
    evaluate_accuracy,
    fine_tuner,
    is_2to4,
    mask_2to4,
    measure_deployment,
    precision_context,
    prepare_execution,
    prune_2to4,
    prune_channels,
    prune_unstructured,
    rebatch,
    semi_structured_backend,
    supported_precisions,
    to_semi_structured,
)
from hwml.deploy import precision as precision_mod
from hwml.deploy import pruning as pruning_mod
from hwml.hardware import math_settings, open_device
from hwml.profile import SweepOptions
from hwml.tasks.cnn import build_cnn
from hwml.tasks.images import ImageData

CONFIG = {"conv1_filters": 8, "conv2_filters": 8, "kernel_size": 3, "dense_units": 16}
SIDE = 8


@pytest.fixture()
def model():
    torch.manual_seed(0)
    m = build_cnn(CONFIG, SIDE)
    with torch.no_grad():  # non-trivial batch-norm statistics
        bn = m.features[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture()
def x():
    return torch.randn(6, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


@pytest.fixture()
def data():
    g = torch.Generator().manual_seed(2)
    return ImageData(
        name="tiny",
        x_train=torch.randn(64, 1, SIDE, SIDE, generator=g),
        y_train=torch.randint(0, 10, (64,), generator=g),
        x_test=torch.randn(37, 1, SIDE, SIDE, generator=g),
        y_test=torch.randint(0, 10, (37,), generator=g),
    )


def _out(m, x):
    with torch.inference_mode():
        return m(x)


# ====================================================================== precision


def test_fp32_is_identical_and_leaves_the_model_alone(model, x):
    ref = _out(model, x)
    m, info = apply_precision(model, x, "fp32", "cpu")
    assert torch.equal(_out(m, x), ref)
    assert info["weight_dtype"] == "torch.float32" and info["output_dtype"] == "torch.float32"
    assert m.module is not model


def test_bf16_runs_in_bf16_and_stays_close(model, x):
    ref = _out(model, x)
    m, info = apply_precision(model, x, "bf16", "cpu")
    out = _out(m, x)
    assert out.shape == ref.shape
    assert out.dtype == torch.bfloat16
    assert info["weight_dtype"] == info["input_dtype"] == "torch.bfloat16"
    assert next(model.parameters()).dtype == torch.float32  # original untouched
    assert not torch.equal(out.float(), ref)  # really ran in another precision
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_int8_quantizes_the_dense_layers_on_cpu(model, x):
    m, info = apply_precision(model, x, "int8", "cpu")
    assert (
        info["quantized_layers"] == ["module.classifier.1", "module.classifier.3"]
        or len(info["quantized_layers"]) == 2
    )
    assert info["dense_weight_dtype"] == "torch.qint8"
    out, ref = _out(m, x), _out(model, x)
    assert out.shape == ref.shape and not torch.equal(out, ref)
    torch.testing.assert_close(out, ref, atol=0.05, rtol=0.05)


def test_supported_precisions_on_cpu():
    s = supported_precisions("cpu")
    assert set(s) == {"fp32", "tf32", "bf16", "fp16", "int8", "fp8"}
    assert s["fp32"] == "native"
    assert s["tf32"] == s["fp8"] == "unsupported"
    assert s["bf16"] in ("native", "emulated") and s["fp16"] in ("native", "emulated")


def test_fp8_on_cpu_is_refused_by_name(model, x):
    with pytest.raises(UnsupportedPrecisionError, match=r"'fp8'.*cpu"):
        apply_precision(model, x, "fp8", "cpu")
    with pytest.raises(UnsupportedPrecisionError, match="tf32"):
        apply_precision(model, x, "tf32", "cpu")


def test_supported_precisions_follow_a_fake_cuda_capability(monkeypatch):
    monkeypatch.setattr(precision_mod, "cuda_bf16_supported", lambda **kw: True)
    monkeypatch.setattr(precision_mod, "cuda_capability", lambda dev: (9, 0))
    h = supported_precisions("cuda")
    assert h == {
        "fp32": "native",
        "tf32": "native",
        "bf16": "native",
        "fp16": "native",
        "int8": "unsupported",
        "fp8": "native",
    }
    monkeypatch.setattr(precision_mod, "cuda_capability", lambda dev: (7, 5))
    t = supported_precisions("cuda")
    assert t["tf32"] == t["fp8"] == "unsupported" and t["bf16"] == "emulated"


def test_tf32_flags_are_set_in_the_context_and_restored(model, x):
    seen = []

    class Probe(nn.Module):
        def forward(self, inp):
            seen.append(math_settings()["tf32_matmul"] and math_settings()["tf32_cudnn"])
            return inp

    before = math_settings()
    with precision_context("fp32"):  # start from TF32 off
        PrecisionModel(Probe(), "tf32", torch.float32)(x)
        assert seen == [True]
        assert not math_settings()["tf32_matmul"] and not math_settings()["tf32_cudnn"]
        with pytest.raises(RuntimeError), precision_context("tf32"):
            assert math_settings()["tf32_cudnn"]
            raise RuntimeError("boom")
        assert not math_settings()["tf32_matmul"] and not math_settings()["tf32_cudnn"]
    assert math_settings() == before


def test_fp8_linear_quantizes_and_approximates():
    torch.manual_seed(3)
    lin = nn.Linear(32, 16)
    layer = Fp8Linear(lin)
    inp = torch.randn(8, 32)
    try:
        out = layer(inp)
    except RuntimeError as err:  # pragma: no cover - depends on the CPU reference kernel
        pytest.skip(f"torch._scaled_mm has no CPU reference here: {err}")
    assert layer.weight_fp8.dtype == torch.float8_e4m3fn
    assert out.dtype == torch.bfloat16 and out.shape == (8, 16)
    ref = lin(inp).detach()
    assert not torch.equal(out.float(), ref)
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


# ====================================================================== pruning


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_unstructured_reaches_the_target_and_is_permanent(model, x, scope):
    m, info = prune_unstructured(model, 0.6, scope=scope)
    layers = [mod for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert not any(hasattr(mod, "weight_orig") for mod in layers)
    n = sum(mod.weight.numel() for mod in layers)
    zeros = sum(int((mod.weight == 0).sum()) for mod in layers)
    slack = 1 if scope == "global" else len(layers)
    assert abs(zeros - 0.6 * n) <= slack
    assert info["zeros"] == zeros
    assert _out(m, x).shape == _out(model, x).shape
    assert sum(int((p == 0).sum()) for p in model.parameters()) < 0.1 * n  # original dense


def test_fine_tune_runs_with_the_masks_held(model):
    def fine_tune(m):
        with torch.no_grad():
            for mod in m.modules():
                if hasattr(mod, "weight_orig"):
                    mod.weight_orig.fill_(1.0)  # what an optimizer step could do
        return "tuned"

    m, info = prune_unstructured(model, 0.5, fine_tune=fine_tune)
    assert info["fine_tune"] == "tuned"
    assert abs(info["sparsity"] - 0.5) < 1e-3
    w = m.classifier[1].weight
    assert set(torch.unique(w).tolist()) == {0.0, 1.0}


def test_fine_tuner_trains_a_pruned_model(model, data):
    tuner = fine_tuner(data, epochs=1, batch_size=16, learning_rate=0.05)
    m, info = prune_unstructured(model, 0.5, fine_tune=tuner)
    assert info["fine_tune"]["steps"] == 4
    assert abs(info["sparsity"] - 0.5) < 1e-3
    assert not torch.equal(m.classifier[3].bias, model.classifier[3].bias)


def test_2to4_keeps_the_two_largest_of_every_four(model, x):
    m, info = prune_2to4(model, conv=True)
    assert "classifier.1" in info["pruned"] and "features.4" in info["pruned"]
    assert info["skipped"] == ["features.0"]  # 1 input channel x 9 taps
    for name in ("classifier.1", "classifier.3", "features.4"):
        before = model.get_submodule(name).weight.detach().reshape(-1, 4)
        after = m.get_submodule(name).weight.detach().reshape(-1, 4)
        assert is_2to4(m.get_submodule(name).weight)
        top2 = before.abs().topk(2, dim=1).indices.sort(dim=1).values
        kept = (after != 0).float().topk(2, dim=1).indices.sort(dim=1).values
        assert torch.equal(kept, top2)
        assert torch.equal(after.gather(1, top2), before.gather(1, top2))
    assert _out(m, x).shape == _out(model, x).shape


def test_is_2to4_rejects_a_dense_weight():
    w = torch.randn(16, 32)
    assert not is_2to4(w)
    assert is_2to4(w * mask_2to4(w))
    assert not is_2to4(torch.randn(4, 6))  # input dimension not a multiple of 4


@pytest.mark.parametrize(
    ("cap", "dtype", "expected"),
    [
        ((8, 0), torch.float16, SEMI_STRUCTURED),
        ((9, 0), torch.bfloat16, SEMI_STRUCTURED),
        ((8, 0), torch.float32, "emulated (dense)"),
        ((7, 5), torch.float16, "emulated (dense)"),
        (None, torch.float16, "emulated (dense)"),
    ],
)
def test_semi_structured_only_on_ampere_with_half_weights(monkeypatch, cap, dtype, expected):
    monkeypatch.setattr(pruning_mod, "cuda_capability", lambda dev: cap)
    assert semi_structured_backend("cuda", dtype) == expected


def test_to_semi_structured_keeps_dense_weights_on_cpu(model, x):
    m, _ = prune_2to4(model)
    s, info = to_semi_structured(m, "cpu")
    assert info["backend"] == "emulated (dense)" and info["converted"] == []
    assert set(info["dense"]) == {"classifier.1", "classifier.3"}
    assert torch.equal(_out(s, x), _out(m, x))


def test_channel_pruning_shrinks_the_network(model, x):
    with torch.no_grad():
        model.features[0].weight[2].zero_()  # lowest L1: must go
    small, info = prune_channels(model, conv1_keep=0.5, conv2_keep=0.5, dense_keep=0.5)
    assert info["config"] == {
        "conv1_filters": 4,
        "conv2_filters": 4,
        "kernel_size": 3,
        "dense_units": 8,
    }
    assert 2 not in info["kept"]["conv1"]
    assert count_parameters(small)["params"] < count_parameters(model)["params"]
    assert info["params_after"] == sum(
        p.numel() for p in build_cnn(info["config"], SIDE).parameters()
    )
    assert _out(small, x).shape == _out(model, x).shape
    assert not torch.equal(_out(small, x), _out(model, x))


def test_channel_pruning_keeping_everything_is_exact(model, x):
    same, info = prune_channels(model)
    assert info["config"] == CONFIG
    assert torch.equal(_out(same, x), _out(model, x))


# ====================================================================== execution


def test_eager_mode_gives_identical_outputs(model, x):
    fn, info = prepare_execution(model, x, "eager", "cpu")
    assert info["ran"] == "eager"
    assert torch.equal(fn(x), _out(model, x))


def test_cuda_graph_on_cpu_is_refused(model, x):
    with pytest.raises(ExecutionModeError, match="cuda-graph.*CUDA"):
        prepare_execution(model, x, "cuda-graph", "cpu")


def test_compile_runs_or_falls_back(model, x):
    # the 'eager' backend runs torch.compile's graph capture without a C++ toolchain
    # (inductor on this CPU takes about 20 s; a GPU run exercises it)
    fn, info = prepare_execution(model, x, "compile", "cpu", compile_backend="eager")
    assert info["ran"] == "compile"
    torch.testing.assert_close(fn(x), _out(model, x))

    def broken(gm, inputs):
        raise RuntimeError("no toolchain")

    fn, info = prepare_execution(
        model, x, "compile", "cpu", compile_backend=broken, fallback="eager"
    )
    assert info["ran"] == "eager" and "no toolchain" in info["fallback_reason"]
    assert torch.equal(fn(x), _out(model, x))
    torch._dynamo.reset()
    with pytest.raises(ExecutionModeError, match="compile"):
        prepare_execution(model, x, "compile", "cpu", compile_backend=broken)
    torch._dynamo.reset()


def test_rebatch(x):
    assert torch.equal(rebatch(x, 4), x[:4])
    big = rebatch(x, 14)
    assert big.shape[0] == 14 and torch.equal(big[6:12], x) and torch.equal(big[12:], x[:2])


# ====================================================================== evaluation


def test_evaluate_accuracy_pads_the_last_batch(model, data):
    with torch.inference_mode():
        pred = model(data.x_test).argmax(dim=1)
    expected = int((pred != data.y_test).sum())
    calls = []

    def fixed_batch(inp):  # a CUDA graph accepts only its captured batch
        calls.append(inp.shape[0])
        assert inp.shape[0] == 16
        return model(inp)

    r = evaluate_accuracy(fixed_batch, data, batch=16)
    assert r["errors"] == expected and r["test_error"] == expected / 37
    assert calls == [16, 16, 16]
    assert evaluate_accuracy(model, data, batch=37)["errors"] == expected


def test_count_parameters_sees_zeros(model):
    before = count_parameters(model)
    pruned, _ = prune_unstructured(model, 0.5)
    after = count_parameters(pruned)
    assert after["params"] == before["params"]
    assert after["nonzero_params"] < before["nonzero_params"] - 0.4 * before["params"]
    half, _ = apply_precision(model, torch.zeros(1, 1, SIDE, SIDE), "fp16", "cpu")
    assert count_parameters(half)["param_bytes"] < 0.6 * before["param_bytes"]


def test_measure_deployment_on_cpu(model, x):
    device = open_device("cpu", power=False)
    fn, _ = prepare_execution(model, x, "eager", device)
    opts = SweepOptions(power=False, budget_ms=5.0, warmup=1, progress=False)
    row = measure_deployment(fn, x, device, batch=12, opts=opts)
    assert row["batch"] == 12
    assert row["runtime_ms"] > 0 and row["runtime_per_image_ms"] == row["runtime_ms"] / 12
    assert row["status"] == "ok" and row["energy_per_image_mj"] != row["energy_per_image_mj"]


def test_fp8_conversion_with_a_faked_fp8_device(monkeypatch, model, x):
    # the conversion logic, run on the CPU reference torch._scaled_mm; the real FP8 path
    # needs a GPU of compute capability >= 8.9
    native = dict.fromkeys(("fp32", "fp8"), "native")
    monkeypatch.setattr(precision_mod, "supported_precisions", lambda dev: native)
    try:
        m, info = apply_precision(model, x, "fp8", "cpu")
    except RuntimeError as err:  # pragma: no cover - depends on the CPU reference kernel
        pytest.skip(f"torch._scaled_mm has no CPU reference here: {err}")
    assert info["quantized_layers"] == ["classifier.1"]  # 32 -> 16
    assert info["bf16_layers"] == ["classifier.3"]  # 16 -> 10: not a multiple of 16
    assert info["dense_weight_dtype"] == "torch.float8_e4m3fn"
    out, ref = _out(m, x), _out(model, x)
    assert out.shape == ref.shape
    assert (out.float() - ref).abs().max() < 0.15 * ref.abs().max()


def test_measure_deployment_measures_the_callable_as_deployed(monkeypatch, model, x):
    # the meter must not capture its own CUDA graph of the callable: that would price
    # eager and CUDA-graph execution alike (the GPU work only, no host gaps)
    from hwml.deploy import evaluate as evaluate_mod

    seen = {}

    def fake_measure(fn, device, opts):
        seen["graph"] = opts.graph
        return {"runtime_ms": 2.0, "energy_mj": 6.0, "status": "ok"}

    monkeypatch.setattr(evaluate_mod, "measure_callable", fake_measure)
    device = open_device("cpu", power=False)
    row = measure_deployment(lambda t: t, x, device, batch=4)
    assert seen["graph"] is False
    assert row["energy_per_image_mj"] == pytest.approx(1.5)
    assert row["runtime_per_image_ms"] == pytest.approx(0.5)
