"""Tests of hwml.describe: layer features, validation, tracing, round trips."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hwml.describe import KINDS, Layer, UnsupportedLayerError, describe


def test_conv_features_by_hand():
    layer = Layer.conv2d(2, 3, 32, 32, 8, kernel=3, stride=1, padding=1, bias=True)
    assert layer.out_shape == (2, 8, 32, 32)
    assert layer.macs == 2 * 8 * 32 * 32 * 3 * 3 * 3
    assert layer.flops == 2 * layer.macs
    assert layer.params == 8 * 3 * 9 + 8
    assert layer.input_bytes == 2 * 3 * 32 * 32 * 4
    assert layer.output_bytes == 2 * 8 * 32 * 32 * 4
    assert layer.vector_ops == 2 * 8 * 32 * 32  # the bias add
    assert layer.arith_intensity == pytest.approx(
        (layer.flops + layer.vector_ops)
        / (layer.input_bytes + layer.output_bytes + layer.param_bytes)
    )


def test_depthwise_and_grouped_macs():
    dw = Layer.conv2d(1, 32, 16, 16, 32, 3, padding=1, groups=32, bias=False)
    assert dw.is_depthwise
    assert dw.macs == 32 * 16 * 16 * 9
    grouped = Layer.conv2d(1, 32, 16, 16, 64, 3, padding=1, groups=4, bias=False)
    assert not grouped.is_depthwise
    assert grouped.macs == 64 * 16 * 16 * (32 // 4) * 9


def test_linear_and_pool_features():
    lin = Layer.linear(4, 100, 10)
    assert lin.macs == 4 * 100 * 10 and lin.params == 1010
    pool = Layer.pool2d("maxpool2d", 1, 16, 7, 7, 3, 2, ceil_mode=True)
    assert pool.out_shape == (1, 16, 3, 3)  # matches PyTorch's ceil-mode rule
    assert pool.flops == 0 and pool.vector_ops == 16 * 3 * 3 * 9


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Layer.conv2d(1, 3, 4, 4, 8, kernel=7),  # kernel larger than input
        lambda: Layer.conv2d(1, 3, 4, 4, 8, kernel=5, padding=0),
        lambda: Layer.conv2d(-1, 3, 32, 32, 8, 3),  # negative batch
        lambda: Layer.conv2d(1, 6, 32, 32, 8, 3, groups=4),  # groups must divide
        lambda: Layer.linear(1, 0, 5),
        lambda: Layer.pool2d("maxpool2d", 1, 4, 2, 2, 3),
    ],
)
def test_invalid_shapes_rejected(bad):
    with pytest.raises(ValueError):
        bad()


def test_unknown_kind_names_supported():
    with pytest.raises(UnsupportedLayerError, match="conv2d"):
        Layer(kind="lstm", in_shapes=((1, 2),), out_shape=(1, 2))


LAYERS = [
    Layer.conv2d(2, 8, 15, 15, 16, 3, stride=2, padding=1),
    Layer.conv2d(2, 16, 9, 9, 16, 5, padding=2, groups=16, bias=False),
    Layer.linear(3, 40, 7),
    Layer.pool2d("maxpool2d", 2, 4, 13, 13, 3, 2, ceil_mode=True),
    Layer.pool2d("avgpool2d", 2, 4, 12, 12, 2),
    Layer.batchnorm2d(2, 4, 5, 5),
    Layer.activation("silu", (2, 4, 5, 5)),
    Layer.elementwise("add", (2, 4, 5, 5)),
    Layer.elementwise("mul", (2, 4, 5, 5)),
    Layer.concat([(2, 3, 5, 5), (2, 4, 5, 5)]),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.kind)
def test_to_module_runs_and_matches_out_shape(layer):
    module = layer.to_module()
    xs = [torch.randn(s) for s in layer.in_shapes]
    with torch.no_grad():
        y = module(*xs)
    assert tuple(y.shape) == layer.out_shape


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.kind)
def test_row_round_trip(layer):
    again = Layer.from_row(layer.to_row())
    assert again == layer
    assert again.to_row() == layer.to_row()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.other = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x))) + x
        return torch.cat([y, self.other(y)], dim=1).flatten(1)


def test_describe_edges_show_residual_and_concat():
    net = describe(Residual(), (2, 4, 8, 8), name="res")
    kinds = [layer.kind for layer in net]
    assert kinds == ["conv2d", "batchnorm2d", "activation", "add", "conv2d", "concat", "flatten"]
    add = net.layers[3]
    assert set(add.inputs) == {"relu", "input"}
    cat = net.layers[5]
    assert cat.inputs == ("add", "other") and cat.out_shape == (2, 6, 8, 8)
    assert ("add", "cat") in net.edges()


def test_runnable_reproduces_the_network_layer():
    torch.manual_seed(0)
    module = Residual().eval()
    net = describe(module, (2, 4, 8, 8))
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = module.bn(module.conv(x))
        got = net.runnable("bn")(module.conv(x))
    torch.testing.assert_close(got, expected)


class Weird(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LSTM(3, 3))

    def forward(self, x):
        return self.block[0](x).sum(dim=1)


def test_unknown_operation_names_path_and_type():
    with pytest.raises(UnsupportedLayerError, match="sum"):
        describe(Weird(), (1, 3, 4, 4))
    net = describe(Weird(), (1, 3, 4, 4), strict=False)
    other = net.layers[-1]
    assert other.kind == "other"
    assert math.isnan(other.flops) and math.isnan(other.params)  # never a silent zero


def test_unknown_module_type_is_named():
    module = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=2))
    with pytest.raises(UnsupportedLayerError, match="Upsample"):
        describe(module, (1, 3, 4, 4))


def test_describe_rejects_bad_input_shape():
    with pytest.raises(ValueError):
        describe(nn.Conv2d(3, 3, 3), (1, 3, 0, 4))
    with pytest.raises(ValueError, match="does not fit"):
        describe(nn.Conv2d(3, 3, 5), (1, 3, 2, 2))


def test_every_kind_is_documented():
    assert set(KINDS) >= {
        "conv2d",
        "linear",
        "maxpool2d",
        "avgpool2d",
        "batchnorm2d",
        "activation",
        "add",
        "concat",
        "flatten",
        "other",
    }


class Recurrent(nn.Module):
    """A module whose layer returns a tuple (output, state), as LSTM does."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.proj = nn.Linear(16, 16)

    def forward(self, x):
        y, _ = self.attn(x, x, x)
        return self.proj(y)


@pytest.mark.parametrize("module", [Recurrent(), Attention()], ids=["lstm", "attention"])
def test_a_layer_returning_a_tuple_is_never_dropped(module):
    shape = (2, 5, 8) if isinstance(module, Recurrent) else (2, 5, 16)
    inner = "LSTM" if isinstance(module, Recurrent) else "MultiheadAttention"
    with pytest.raises(UnsupportedLayerError, match=inner):
        describe(module, shape)
    net = describe(module, shape, strict=False)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["other", "linear"]  # the tuple's getitem is not a layer of its own
    other = net.layers[0]
    assert other.op == inner and other.out_shape[-1] == 16
    assert net.layers[1].inputs == (other.name,)  # the edge runs through the getitem
    with pytest.warns(UserWarning, match=f"1 layer.*{inner}"):
        totals = net.totals()
    assert totals["layers"] == 2


def test_strict_error_names_every_unsupported_operation_at_once():
    module = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Upsample(scale_factor=2), nn.PixelShuffle(1))
    with pytest.raises(UnsupportedLayerError, match="2 operations.*Upsample.*PixelShuffle"):
        describe(module, (1, 3, 4, 4))


class FunctionalPools(nn.Module):
    def forward(self, x):
        return F.avg_pool2d(F.max_pool2d(x, 2), kernel_size=3, stride=1, padding=1)


def test_functional_pools_describe_like_their_modules():
    net = describe(FunctionalPools(), (1, 4, 8, 8))
    ref = describe(nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(3, 1, 1)), (1, 4, 8, 8))
    assert [layer.kind for layer in net.layers] == ["maxpool2d", "avgpool2d"]
    for got, want in zip(net.layers, ref.layers, strict=True):
        assert got.signature() == want.signature()
