"""Tests of hwml.nas.references: the reference networks at the proxy task's size."""

from __future__ import annotations

import warnings

import pytest
import torch

from hwml.describe import describe
from hwml.nas.references import REFERENCES, build_reference, reference_key


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_runs_on_small_single_channel_images(name: str) -> None:
    model = build_reference(name)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 24, 24)).shape == (2, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = describe(model, (1, 1, 24, 24))
    assert all(layer.kind != "other" for layer in net.layers)
    stem = next(layer for layer in net.layers if layer.kind == "conv2d")
    assert stem.in_channels == 1 and stem.stride_h == 1


def test_unknown_reference() -> None:
    with pytest.raises(KeyError, match="known"):
        build_reference("resnet9000")
    assert reference_key("mnasnet-0.5") == "ref:mnasnet-0.5"


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_batch_norms_track_statistics_within_a_proxy_training(name: str) -> None:
    """Every batch norm's running statistics reach the statistics of its inputs within a
    few dozen training steps, as the cell networks' do (PyTorch's default momentum 0.1).

    torchvision's MNASNet keeps TensorFlow's momentum (0.0003, tuned for hundreds of
    thousands of steps): after the proxy task's 150 steps its running statistics have moved
    a few per cent from their start, so the trained network tests at chance in eval mode.
    """
    torch.manual_seed(0)
    model = build_reference(name)  # eval mode: no dropout, no stochastic depth
    seen: dict[torch.nn.Module, torch.Tensor] = {}
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        bn.train()  # batch statistics, running statistics updated
        bn.register_forward_pre_hook(lambda m, args: seen.__setitem__(m, args[0].mean((0, 2, 3))))
    x = 2.0 + 3.0 * torch.randn(8, 1, 24, 24)  # one batch: fixed input statistics
    with torch.no_grad():
        for _ in range(60):
            model(x)
    for bn in bns:
        target = seen[bn]
        scale = float(target.abs().max())
        assert float((bn.running_mean - target).abs().max()) <= 0.05 * scale + 1e-3, (
            name,
            bn.momentum,
        )
