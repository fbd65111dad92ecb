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
        return self.block[0](x).cumsum(dim=1)


def test_unknown_operation_names_path_and_type():
    with pytest.raises(UnsupportedLayerError, match="cumsum"):
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


def test_a_layer_returning_a_tuple_is_never_dropped():
    module, shape = Recurrent(), (2, 5, 8)
    with pytest.raises(UnsupportedLayerError, match="LSTM"):
        describe(module, shape)
    net = describe(module, shape, strict=False)
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["other", "linear"]  # the tuple's getitem is not a layer of its own
    other = net.layers[0]
    assert other.op == "LSTM" and other.out_shape[-1] == 16
    assert net.layers[1].inputs == (other.name,)  # the edge runs through the getitem
    with pytest.warns(UserWarning, match="1 layer.*LSTM"):
        totals = net.totals()
    assert totals["layers"] == 2


def test_multihead_attention_returning_a_tuple_is_one_layer():
    net = describe(Attention(), (2, 5, 16))
    assert [layer.kind for layer in net.layers] == ["attention", "linear"]
    attn = net.layers[0]
    assert attn.op == "multihead_attention" and attn.out_shape == (2, 5, 16)
    assert net.layers[1].inputs == (attn.name,)  # the edge runs through the getitem
    assert net.totals()["layers"] == 2


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


# ---------------------------------------------------------------------- newer kinds
def _counted_flops(fn, *shapes):
    """What FlopCounterMode counts for ``fn`` on meta tensors of ``shapes``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*(torch.empty(s, device="meta") for s in shapes))
    return counter.get_total_flops()


def _only(net, kind):
    (layer,) = [layer for layer in net.layers if layer.kind == kind]
    return layer


def test_layer_norm_features():
    net = describe(nn.LayerNorm(96), (2, 49, 96))
    norm = _only(net, "norm")
    assert (norm.op, norm.in_features, norm.out_features, norm.bias) == ("layer_norm", 96, 96, True)
    assert norm.macs == 0 and norm.flops == 0
    assert norm.vector_ops == 7 * 2 * 49 * 96  # 5 (statistics, normalize) + scale + shift
    assert norm.params == 2 * 96 and norm.param_bytes == 4 * 2 * 96
    assert norm.input_bytes == norm.output_bytes == 4 * 2 * 49 * 96
    bare = _only(describe(nn.LayerNorm(96, elementwise_affine=False), (2, 49, 96)), "norm")
    assert bare.params == 0 and bare.vector_ops == 5 * 2 * 49 * 96


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first layer norm: permute, F.layer_norm, permute back."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def test_functional_layer_norm_describes_like_the_module():
    net = describe(LayerNorm2d(8), (2, 8, 5, 5))
    assert [(layer.kind, layer.op) for layer in net.layers] == [
        ("flatten", "permute"),
        ("norm", "layer_norm"),
        ("flatten", "permute"),
    ]
    norm = net.layers[1]
    assert norm.in_shapes == ((2, 5, 5, 8),)  # weight and bias are parameters, not inputs
    assert norm.inputs == ("permute",)
    module = _only(describe(nn.LayerNorm(8), (2, 5, 5, 8)), "norm")
    assert norm.signature() == module.signature() and norm.params == 16
    for layer in (net.layers[0], net.layers[2]):
        assert layer.macs == layer.vector_ops == layer.params == 0


def test_group_norm_features():
    norm = _only(describe(nn.GroupNorm(4, 8), (2, 8, 5, 5)), "norm")
    assert (norm.op, norm.groups, norm.in_channels) == ("group_norm", 4, 8)
    assert norm.in_features == 2 * 5 * 5  # elements per group statistic
    assert norm.params == 16 and norm.vector_ops == 7 * 2 * 8 * 5 * 5


class DotProduct(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x[:, :, :7], x[:, :, :7, :8])


def test_scaled_dot_product_attention_macs_are_what_flop_counter_counts():
    net = describe(DotProduct(), (2, 4, 10, 16))
    attn = _only(net, "attention")
    assert attn.op == "scaled_dot_product_attention" and attn.out_shape == (2, 4, 10, 8)
    want = _counted_flops(
        F.scaled_dot_product_attention, (2, 4, 10, 16), (2, 4, 7, 16), (2, 4, 7, 8)
    )
    assert attn.flops == want == 2 * (2 * 4) * 10 * 7 * (16 + 8)
    assert attn.params == 0 and attn.vector_ops == 6 * 2 * 4 * 10 * 7


class CrossAttention(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        self.batch_first = batch_first
        self.attn = nn.MultiheadAttention(16, 4, batch_first=batch_first)

    def forward(self, x):
        memory = x[:, :3] if self.batch_first else x[:3]
        return self.attn(x, memory, memory)[0]


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_multihead_attention_is_one_layer_with_the_counted_flops(batch_first, cross):
    shape = (2, 5, 16) if batch_first else (5, 2, 16)
    module = (
        CrossAttention(batch_first)
        if cross
        else nn.MultiheadAttention(16, 4, batch_first=batch_first)
    )
    module = module.eval()
    net = describe(module, shape)
    attn = _only(net, "attention")
    assert attn.op == ("multihead_attention" if batch_first else "multihead_attention_seq_first")
    assert (attn.in_features, attn.groups, attn.bias) == (16, 4, True)
    assert attn.params == 4 * 16 * 16 + 4 * 16
    mha = module.attn if cross else module
    keys = (2, 3, 16) if batch_first else (3, 2, 16)
    counted = _counted_flops(lambda q, k: mha.to("meta")(q, k, k), shape, keys if cross else shape)
    assert attn.flops == counted
    assert sum(layer.flops for layer in net.layers) == counted


def test_multihead_attention_variants_it_cannot_model_are_named():
    module = nn.MultiheadAttention(16, 4, kdim=8, vdim=8, batch_first=True)

    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = module

        def forward(self, x):
            return self.attn(x, x[..., :8], x[..., :8])[0]

    with pytest.raises(UnsupportedLayerError, match="kdim/vdim"):
        describe(Cross(), (2, 5, 16))


class Products(nn.Module):
    def forward(self, x):
        scores = x @ x.transpose(-1, -2)
        mixed = torch.einsum("bij,bjk->bik", scores, x)
        outer = torch.einsum("bi,bj->bij", x[:, 0], x[:, 1])
        return torch.softmax(mixed, dim=-1), outer.mean(dim=(1, 2))


def test_matmul_einsum_softmax_and_reduce():
    net = describe(Products(), (2, 6, 4))
    kinds = {layer.name: layer for layer in net.layers}
    matmul, mixed, outer = (layer for layer in net.layers if layer.kind == "matmul")
    assert (matmul.op, matmul.in_features, matmul.macs) == ("matmul", 4, 2 * 6 * 6 * 4)
    assert (mixed.op, mixed.in_features, mixed.macs) == ("einsum:bij,bjk->bik", 6, 2 * 6 * 4 * 6)
    assert outer.in_features == 0 and outer.macs == 0  # FlopCounterMode counts no product
    want = _counted_flops(Products(), (2, 6, 4))
    assert sum(layer.flops for layer in net.layers) == want
    softmax = _only(net, "softmax")
    assert (softmax.in_features, softmax.vector_ops) == (4, 5 * 2 * 6 * 4)
    reduce = _only(net, "reduce")
    assert (reduce.op, reduce.in_features, reduce.out_shape) == ("mean", 16, (2,))
    assert reduce.vector_ops == 2 * 4 * 4
    assert kinds["transpose"].op == "transpose" and kinds["getitem"].op == "getitem"


class Shuffle(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        y = torch.transpose(torch.cat([a, b], 1).view(2, 2, 2, 3, 3), 1, 2).contiguous()
        y = F.pad(y.view(2, 4, 3, 3), (1, 1, 1, 1)).permute(0, 2, 3, 1)
        return torch.roll(y, 1, dims=1).mean([1, 2], keepdim=True)


def test_data_movement_is_flatten_with_the_operation_named():
    net = describe(Shuffle(), (2, 4, 3, 3))
    moves = [layer.op for layer in net.layers if layer.kind == "flatten"]
    assert moves == ["chunk", "", "transpose", "", "", "pad", "permute", "roll"]
    for layer in net.layers:
        if layer.kind == "flatten":
            assert layer.macs == layer.vector_ops == layer.params == 0
    cat = _only(net, "concat")
    assert cat.inputs == ("chunk",)  # both halves of the chunk are one edge
    assert _only(net, "reduce").out_shape == (2, 1, 1, 4)


class LayerScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((4, 1, 1), 0.5))
        self.register_buffer("index", torch.tensor([2, 0, 1]))
        self.table = nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return self.gamma * x + self.table[self.index].sum()


def test_parameters_used_as_operands_are_inputs_but_not_edges():
    torch.manual_seed(0)
    module = LayerScale().eval()
    net = describe(module, (2, 4, 3, 3))
    scale = net.layer("mul")
    assert scale.kind == "mul" and scale.in_shapes == ((4, 1, 1), (2, 4, 3, 3))
    assert scale.inputs == ("input",)
    gather = net.layer("getitem")
    assert (gather.kind, gather.op, gather.inputs) == ("flatten", "index", ())
    # in place, the network's own parameter and integer index are used
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        got = net.runnable("getitem")(torch.randn(3, 4), torch.randn(3))
        torch.testing.assert_close(got, module.table[module.index])
        torch.testing.assert_close(net.runnable("mul")(torch.randn(4, 1, 1), x), 0.5 * x)


def _window_attention(shift):
    from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2

    torch.manual_seed(0)
    cls = ShiftedWindowAttentionV2 if shift == "v2" else ShiftedWindowAttention
    return cls(8, [4, 4], [2, 2] if shift else [0, 0], num_heads=2).eval()


@pytest.mark.parametrize("shift", [0, 2, "v2"], ids=["plain", "shifted", "v2"])
def test_swin_window_attention_is_one_layer_with_the_counted_flops(shift):
    module = _window_attention(shift)
    x = torch.randn(2, 6, 6, 8)  # padded to 8 x 8: four 4 x 4 windows
    net = describe(module, tuple(x.shape))
    attn = _only(net, "attention")
    assert attn.op == (
        "shifted_window_attention_v2" if shift == "v2" else "shifted_window_attention"
    )
    assert (attn.kernel_h, attn.pad_h, attn.stride_h) == (4, 2, 2 if shift else 0)
    assert attn.in_shapes[0] == (2, 6, 6, 8) and len(attn.in_shapes) == 2  # x, position bias
    assert sum(layer.flops for layer in net.layers) == _counted_flops(module.to("meta"), x.shape)
    tokens, windows = 2 * 8 * 8, 2 * 4
    assert attn.macs == 4 * tokens * 8 * 8 + 2 * windows * 16 * 16 * 8
    module = _window_attention(shift)
    net = describe(module, tuple(x.shape))
    bias = module.get_relative_position_bias()
    with torch.no_grad():
        torch.testing.assert_close(net.runnable(attn.name)(x, bias), module(x))


def _new_kind_layers():
    layers = []
    for module, shape in [
        (nn.LayerNorm(96), (2, 49, 96)),
        (LayerNorm2d(8), (2, 8, 5, 5)),
        (nn.GroupNorm(4, 8), (2, 8, 5, 5)),
        (DotProduct(), (2, 4, 10, 16)),
        (nn.MultiheadAttention(16, 4, batch_first=True), (2, 5, 16)),
        (CrossAttention(False), (5, 2, 16)),
        (Products(), (2, 6, 4)),
        (Shuffle(), (2, 4, 3, 3)),
        (LayerScale(), (2, 4, 3, 3)),
        (_window_attention(2), (2, 6, 6, 8)),
        (_window_attention("v2"), (1, 8, 8, 8)),
    ]:
        layers += [
            layer for layer in describe(module, shape).layers if layer.kind not in KINDS_BEFORE
        ]
    return layers


KINDS_BEFORE = {"conv2d", "linear", "batchnorm2d", "activation", "add", "mul", "concat", "dropout"}
NEW_LAYERS = _new_kind_layers()


@pytest.mark.parametrize(
    "layer", NEW_LAYERS, ids=lambda layer: f"{layer.kind}-{layer.op or 'view'}"
)
def test_new_kinds_round_trip_and_rebuild(layer):
    assert Layer.from_row(layer.to_row()) == layer
    module = layer.to_module()
    with torch.no_grad():
        y = module(*[torch.randn(s) for s in layer.in_shapes])
    assert tuple((y[0] if isinstance(y, tuple) else y).shape) == layer.out_shape
    assert layer.flops == 2 * layer.macs and layer.vector_ops >= 0 and layer.total_bytes > 0


def test_every_new_kind_is_covered_and_documented():
    assert {layer.kind for layer in NEW_LAYERS} == {
        "norm",
        "matmul",
        "attention",
        "softmax",
        "reduce",
        "flatten",
    }
    assert set(KINDS) - KINDS_BEFORE - {"maxpool2d", "avgpool2d", "other"} == {
        "norm",
        "matmul",
        "attention",
        "softmax",
        "reduce",
        "flatten",
    }


def test_old_tables_without_new_columns_still_load():
    row = Layer.linear(2, 8, 4).to_row()
    for key in ("op", "groups"):
        row.pop(key)
    assert Layer.from_row(row) == Layer.linear(2, 8, 4)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Layer(
            kind="norm", op="batch_norm", in_shapes=((2, 4),), out_shape=(2, 4), in_features=4
        ),
        lambda: Layer(kind="softmax", op="softmax", in_shapes=((2, 4),), out_shape=(2, 4)),
        lambda: Layer(
            kind="attention",
            op="multihead_attention",
            in_shapes=((2, 5, 16),),
            out_shape=(2, 5, 16),
            in_features=16,
            out_features=16,
            groups=3,
        ),
        lambda: Layer(
            kind="attention",
            op="shifted_window_attention",
            in_shapes=((1, 4, 4, 8), (1, 2, 16, 16)),
            out_shape=(1, 4, 4, 8),
            in_features=8,
            out_features=8,
            groups=2,
        ),
    ],
    ids=["unknown-op", "no-softmax-length", "heads-do-not-divide", "no-window"],
)
def test_invalid_new_kind_layers_rejected(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize(
    ("module", "shape", "kind"),
    [
        (nn.Conv2d(3, 4, 3), (1, 3, 8, 8), "conv2d"),
        (nn.MultiheadAttention(16, 2), (5, 2, 16), "attention"),
        (nn.LayerNorm(16), (2, 16), "norm"),
    ],
    ids=["conv", "attention", "norm"],
)
def test_a_leaf_module_describes_on_its_own(module, shape, kind):
    net = describe(module, shape)
    assert [layer.kind for layer in net.layers] == [kind]
    assert net.name == type(module).__name__


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_an_untraceable_module_says_why():
    with pytest.raises(UnsupportedLayerError, match="control flow.*torch.fx.wrap"):
        describe(DataDependent(), (1, 3))


class PermuteContiguous(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1).contiguous()


def test_permute_then_contiguous_moves_bytes_without_arithmetic():
    net = describe(PermuteContiguous(), (2, 4, 3, 5))
    permute, contiguous = net.layers
    assert (permute.kind, permute.op, permute.out_shape) == ("flatten", "permute", (2, 3, 5, 4))
    assert (contiguous.kind, contiguous.op) == ("flatten", "")  # as in the existing tables
    for layer in net.layers:
        assert layer.macs == layer.vector_ops == layer.params == 0
        assert layer.input_bytes == layer.output_bytes == 4 * 2 * 4 * 3 * 5
        assert tuple(layer.to_module()(torch.randn(layer.in_shapes[0])).shape) == layer.out_shape
