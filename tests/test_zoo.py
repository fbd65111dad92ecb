"""Tests of hwml.zoo: every network describes, and FLOPs agree with FlopCounterMode."""

from __future__ import annotations

import re

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


def tiny_net() -> torch.nn.Module:
    """A user's own network, for the package.module:callable spec."""
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(64, 2))


def test_specs_beyond_the_zoo():
    net = zoo.describe_net("torchvision:resnet34", 2, weights=False)
    assert net.name == "torchvision:resnet34" and net.input_shape == (2, 3, 224, 224)
    assert net.totals()["params"] == pytest.approx(21.80e6, rel=0.01)
    assert zoo.input_shape("torchvision:inception_v3", 1) == (1, 3, 299, 299)
    own = zoo.describe_net("tests.test_zoo:tiny_net", 3, sample_shape=(1, 6, 6))
    assert own.input_shape == (3, 1, 6, 6)
    assert [layer.kind for layer in own.layers] == ["conv2d", "flatten", "linear"]
    assert zoo.input_shape("vgg16", 1, sample_shape=(3, 32, 32)) == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("spec", "shape", "message"),
    [
        ("lenet", None, "give a zoo name, torchvision:NAME, cells:SEED or package.module:callable"),
        ("torchvision:nope", None, "torchvision has no classifier 'nope'; it has: alexnet"),
        ("no_such_pkg.mod:f", (3, 4, 4), "cannot load 'no_such_pkg.mod:f' (ModuleNotFoundError"),
        ("tests.test_zoo:tiny_net", None, "give the input shape of one sample"),
        ("tests.test_zoo:TINY", (1, 6, 6), "AttributeError"),
    ],
)
def test_bad_specs_say_what_was_given_and_what_is_supported(spec, shape, message):
    with pytest.raises(zoo.UnknownNetworkError, match=re.escape(message)):
        zoo.entry(spec, shape)


def test_a_network_built_on_the_cpu_is_still_described_on_the_meta_device(monkeypatch):
    # torchvision's RegNet cannot be built on the meta device; describing it without
    # weights must still not run a real forward pass (the large RegNets at batch 128 need
    # tens of GB of activations on the CPU)
    seen = []
    real_describe = zoo.describe

    def spy(module, *args, **kwargs):
        seen.append({p.device.type for p in module.parameters()})
        return real_describe(module, *args, **kwargs)

    monkeypatch.setattr(zoo, "describe", spy)
    net = zoo.describe_net("torchvision:regnet_x_400mf", 4, weights=False)
    assert seen == [{"meta"}]
    assert net.totals()["params"] == pytest.approx(5.50e6, rel=0.01)
