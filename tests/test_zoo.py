"""Tests of hwml.zoo: every network describes, and FLOPs agree with FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwml import zoo


@pytest.mark.parametrize("name", zoo.names())
def test_flops_agree_with_flop_counter(name):
    batch = 2
    net = zoo.describe_net(name, batch, weights=False)
    with torch.device("meta"):
        module = zoo.get(name)
    with FlopCounterMode(display=False) as counter:
        module(torch.empty(zoo.input_shape(name, batch), device="meta"))
    assert net.totals()["flops"] == pytest.approx(counter.get_total_flops(), rel=1e-9)
    assert net.totals()["flops"] > 0
    assert net.layers[-1].out_shape[0] == batch


def test_table2_networks_and_outputs():
    assert zoo.TABLE2 == ("vgg16", "alexnet", "nin", "overfeat", "cifar10_6conv")
    assert zoo.describe_net("cifar10_6conv", 1, weights=False).layers[-1].out_shape == (1, 10)
    assert zoo.describe_net("overfeat", 1, weights=False).layers[-1].out_shape == (1, 1000)
    nin = zoo.describe_net("nin", 1, weights=False)
    assert nin.layers[-1].out_shape == (1, 1000)
    assert sum(layer.kind == "conv2d" for layer in nin) == 12


def test_known_parameter_counts():
    # torchvision's published sizes
    assert zoo.describe_net("resnet50", 1, weights=False).totals()["params"] == 25_557_032
    assert zoo.describe_net("vgg16", 1, weights=False).totals()["params"] == 138_357_544


def test_unknown_network_lists_the_zoo():
    with pytest.raises(zoo.UnknownNetworkError) as err:
        zoo.get("lenet")
    assert "lenet" in str(err.value) and "resnet50" in str(err.value)


def test_batch_must_be_positive():
    with pytest.raises(ValueError):
        zoo.input_shape("vgg16", 0)
