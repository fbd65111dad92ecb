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
