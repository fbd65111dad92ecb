"""Tests of hwml.cells: the cell space builds networks describe() prices exactly."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwml import zoo
from hwml.cells import CellNet, Stage
from hwml.describe import describe


def test_sampling_is_reproducible_and_varied():
    assert CellNet.sample(3) == CellNet.sample(3)
    nets = [CellNet.sample(s) for s in range(20)]
    assert len({n for n in nets}) == 20
    assert {s.block for n in nets for s in n.stages} == {"mbconv", "residual", "conv"}


@pytest.mark.parametrize("seed", [0, 7, 17, 31])
def test_every_sample_describes_with_counter_flops_and_reaches_7x7(seed):
    module = CellNet.sample(seed).build()
    x = torch.randn(2, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(x)
    assert out.shape == (2, 1000)
    net = describe(module, (2, 3, 224, 224))
    assert sum(layer.flops for layer in net) == counter.get_total_flops()
    assert {layer.kind for layer in net} <= {
        "conv2d",
        "batchnorm2d",
        "activation",
        "add",
        "mul",
        "avgpool2d",
        "flatten",
        "linear",
        "dropout",  # the identity shortcut of a residual block
    }
    last_conv = [layer for layer in net if layer.kind == "conv2d"][-1]
    assert last_conv.out_shape[-2:] == (7, 7)


def test_residual_and_skip_connections_are_edges():
    net = CellNet(stages=(Stage("residual", 16, 2), Stage("mbconv", 16, 2, se=True)), stem=16)
    d = describe(net.build(), (1, 3, 32, 32))
    adds = [layer for layer in d if layer.kind == "add"]
    assert len(adds) == 4  # two residual blocks and two mbconv skips (16 -> 16, stride 1)
    assert all(len(layer.inputs) == 2 for layer in adds)
    assert sum(layer.kind == "mul" for layer in d) == 2  # squeeze-and-excitation gates


def test_bad_stages_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown block 'lstm'"):
        Stage("lstm", 16, 1)
    with pytest.raises(ValueError, match="kernel must be odd"):
        Stage("conv", 16, 1, kernel=4)
    with pytest.raises(ValueError, match="unknown activation 'elu'"):
        CellNet(stages=(Stage("conv", 8, 1),), activation="elu")


def test_cells_spec_and_network_set():
    assert zoo.input_shape("cells:5", 4) == (4, 3, 224, 224)
    assert zoo.get("cells:5")(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
    with pytest.raises(zoo.UnknownNetworkError, match="cells:SEED with a non-negative"):
        zoo.entry("cells:x")
    names = zoo.network_set(cells=3)
    assert names[: len(zoo.names())] == zoo.names()
    assert "cells:2" in names and "cells:3" not in names
    assert "torchvision:resnet50" not in names  # the zoo's resnet50 is not listed twice
    assert names[-1] == "torchvision:vit_h_14"  # the heaviest come last
    assert len(names) == len(set(names))


def test_stem_stride_one_keeps_small_images_whole():
    net = CellNet(
        stages=(Stage("conv", 8, 1, stride=2),),
        stem=4,
        head=0,
        num_classes=10,
        in_channels=1,
        stem_stride=1,
    )
    d = describe(net.build(), (1, 1, 24, 24))
    assert d.layers[0].out_shape == (1, 4, 24, 24)
    assert net.build()(torch.randn(2, 1, 24, 24)).shape == (2, 10)
    with pytest.raises(ValueError, match="stem_stride"):
        CellNet(stages=(Stage("conv", 8, 1),), stem_stride=3)
