"""How each ``torch.fx`` node becomes a :class:`~hwml.describe.layer.Layer`: the node rules.

One rule per kind of call (:data:`_NODE_RULES`: ``call_module``, ``call_function``,
``call_method``), each dispatching on the module type, function or method name to a rule
that reads the node's arguments and shapes. :func:`tensor_inputs` says which tensors are
a node's inputs: a parameter read with ``get_attr`` is an input when the operation uses it
as an operand (a layer scale, a position embedding, an indexed table) and a parameter of
the layer when it is the weight of a norm, ``F.linear`` or window attention
(:data:`_WEIGHT_ARGUMENTS`).

Functions that torchvision hides from ``torch.fx`` with ``torch.fx.wrap`` (Swin's
``shifted_window_attention``, ``_get_relative_position_bias``, ``_patch_merging_pad``)
appear as one ``call_function`` node each and are described as one layer each: tracing
into them is impossible, since they branch on tensor sizes.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import TensorMetadata
from torch.nn import functional as F

from hwml.describe.layer import (
    ACTIVATIONS,
    KINDS,
    Layer,
    Shape,
    UnsupportedLayerError,
    _attention_geometry,
    _pair,
)

__all__ = ["layer_from_node", "tensor_inputs"]

Rule = Callable[[fx.GraphModule, fx.Node, bool, dict[str, Any]], Layer]

_ACT_MODULES: dict[type, str] = {cls: op for op, cls in ACTIVATIONS.items()}  # type: ignore[misc]
_ACT_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    F.relu6: "relu6",
    F.silu: "silu",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    F.gelu: "gelu",
    torch.tanh: "tanh",
    F.leaky_relu: "leaky_relu",
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}


_SWIN = "torchvision.models.swin_transformer."

#: Arguments that are the weights of the layer a function computes, as (name, position).
#: A parameter passed there (a ``get_attr`` node) is counted in the layer's parameters and
#: is not one of its inputs; :class:`~hwml.describe.network.Network.runnable` reads it
#: from the network.
_WEIGHT_ARGUMENTS: dict[Any, tuple[tuple[str, int], ...]] = {
    F.layer_norm: (("weight", 2), ("bias", 3)),
    F.group_norm: (("weight", 2), ("bias", 3)),
    F.linear: (("weight", 1), ("bias", 2)),
    _SWIN + "shifted_window_attention": (
        ("qkv_weight", 1),
        ("proj_weight", 2),
        ("qkv_bias", 9),
        ("proj_bias", 10),
        ("logit_scale", 11),
    ),
}


def _qualname(target: Any) -> str:
    """``module.name`` of a function (how torchvision's wrapped functions are recognized)."""
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"


def _argument(node: fx.Node, name: str, position: int, default: Any = None) -> Any:
    """A call's argument, given by keyword or by position."""
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[position] if len(node.args) > position else default


def _weight_nodes(node: fx.Node) -> set[fx.Node]:
    """The parameters (``get_attr`` nodes) a call reads as its weights."""
    if node.op != "call_function":
        return set()
    spec = _WEIGHT_ARGUMENTS.get(node.target) or _WEIGHT_ARGUMENTS.get(_qualname(node.target))
    found = set()
    for name, position in spec or ():
        arg = _argument(node, name, position)
        if isinstance(arg, fx.Node) and arg.op == "get_attr":
            found.add(arg)
    return found


def tensor_inputs(node: fx.Node) -> list[fx.Node]:
    """The nodes of a node's tensor inputs, in argument order, each once (weights excluded)."""
    weights = _weight_nodes(node)
    seen: list[fx.Node] = []

    def visit(n: fx.Node) -> fx.Node:
        if (
            isinstance(n.meta.get("tensor_meta"), TensorMetadata)
            and n not in seen
            and n not in weights
        ):
            seen.append(n)
        return n

    fx.node.map_arg((node.args, node.kwargs), visit)
    return seen


def _shape(arg: Any) -> Shape | None:
    """The shape of a tensor argument (None for anything else)."""
    tm = arg.meta.get("tensor_meta") if isinstance(arg, fx.Node) else None
    return tuple(tm.shape) if isinstance(tm, TensorMetadata) else None


def layer_from_node(
    gm: fx.GraphModule,
    node: fx.Node,
    in_shapes: tuple[Shape, ...],
    out_shape: Shape,
    dtype_bytes: int,
    strict: bool,
) -> Layer:
    """Describe one traced node, by the rules of its kind of call (:data:`_NODE_RULES`).

    Args:
        gm: The traced module.
        node: A node that produces a tensor.
        in_shapes: Shapes of its tensor inputs, in order.
        out_shape: Shape of its output.
        dtype_bytes: Bytes per element.
        strict: Raise :class:`UnsupportedLayerError` for an operation hwml cannot model
            (else describe it as kind ``other``).

    Returns:
        The layer (named after the node).
    """
    common: dict[str, Any] = {
        "in_shapes": in_shapes,
        "out_shape": out_shape,
        "dtype_bytes": dtype_bytes,
        "name": node.name,
    }
    rule = _NODE_RULES.get(node.op)
    if rule is not None:
        return rule(gm, node, strict, common)
    common["module_type"] = _target_name(node.target)
    return _unsupported(f"node {node.name!r} ({node.op})", strict, common)


def _target_name(target: Any) -> str:
    """A function's or method's name, as a layer's ``module_type``."""
    return getattr(target, "__name__", str(target))


def _layer_from_module(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """Describe a ``call_module`` node by its module's type (sets ``module_type``)."""
    where = f"{node.target}"
    mod = gm.get_submodule(node.target)
    mtype = type(mod).__name__
    common["module_type"] = mtype
    if isinstance(mod, nn.Conv2d):
        return _conv2d_layer(mod, where, strict, common)
    if isinstance(mod, nn.Linear):
        return Layer(
            kind="linear",
            in_features=mod.in_features,
            out_features=mod.out_features,
            bias=mod.bias is not None,
            **common,
        )
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool_module_layer(mod, where, strict, common)
    if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        kind = "avgpool2d" if isinstance(mod, nn.AdaptiveAvgPool2d) else "maxpool2d"
        return _adaptive_layer(kind, common)
    if isinstance(mod, nn.BatchNorm2d):
        return Layer(
            kind="batchnorm2d",
            in_channels=mod.num_features,
            out_channels=mod.num_features,
            **common,
        )
    if type(mod) in _ACT_MODULES:
        return _activation_layer(_ACT_MODULES[type(mod)], common)
    if isinstance(mod, (nn.Dropout, nn.Dropout2d, nn.Identity)) or mtype == "StochasticDepth":
        return Layer(kind="dropout", **common)
    if isinstance(mod, nn.Flatten):
        return Layer(kind="flatten", **common)
    for types, rule in _MODULE_RULES:
        if isinstance(mod, types):
            return rule(mod, node, strict, common)
    return _unsupported(f"module {where!r} of type {mtype}", strict, common)


def _conv2d_layer(mod: nn.Conv2d, where: str, strict: bool, common: dict[str, Any]) -> Layer:
    """A ``Conv2d`` module as a layer (dilation and non-zero padding modes unsupported)."""
    if mod.dilation != (1, 1) or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
        return _unsupported(
            f"module {where!r} ({common['module_type']} with dilation/padding mode)",
            strict,
            common,
        )
    return Layer(
        kind="conv2d",
        in_channels=mod.in_channels,
        out_channels=mod.out_channels,
        kernel_h=mod.kernel_size[0],
        kernel_w=mod.kernel_size[1],
        stride_h=mod.stride[0],
        stride_w=mod.stride[1],
        pad_h=mod.padding[0],
        pad_w=mod.padding[1],
        groups=mod.groups,
        bias=mod.bias is not None,
        **common,
    )


def _pool_module_layer(
    mod: nn.MaxPool2d | nn.AvgPool2d, where: str, strict: bool, common: dict[str, Any]
) -> Layer:
    """A ``MaxPool2d`` or ``AvgPool2d`` module as a layer (dilated max pooling unsupported)."""
    if isinstance(mod, nn.MaxPool2d) and _pair(mod.dilation) != (1, 1):
        return _unsupported(
            f"module {where!r} ({common['module_type']} with dilation)", strict, common
        )
    kind = "maxpool2d" if isinstance(mod, nn.MaxPool2d) else "avgpool2d"
    k, s, p = (
        _pair(mod.kernel_size),
        _pair(mod.stride or mod.kernel_size),
        _pair(mod.padding),
    )
    return _pool_layer(kind, k, s, p, bool(mod.ceil_mode), "", common)


def _layer_from_function(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """Describe a ``call_function`` node by its function (sets ``module_type``)."""
    target = node.target
    tname = _target_name(target)
    common["module_type"] = tname
    if target in (operator.add, torch.add, operator.iadd):
        return _binary_layer("add", common)
    if target in (operator.mul, torch.mul, operator.imul):
        return _binary_layer("mul", common)
    if target in (torch.cat, torch.concat):
        return Layer(
            kind="concat",
            in_channels=sum(s[1] for s in common["in_shapes"]),
            out_channels=common["out_shape"][1],
            **common,
        )
    if target in (torch.flatten, torch.reshape):
        return Layer(kind="flatten", **common)
    if target in _ACT_FUNCTIONS:
        return _activation_layer(_ACT_FUNCTIONS[target], common)
    if target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        kind = "avgpool2d" if target is F.adaptive_avg_pool2d else "maxpool2d"
        return _adaptive_layer(kind, common)
    if tname in ("max_pool2d", "_max_pool2d", "avg_pool2d"):
        return _functional_pool(tname, node, strict, common)
    if target in (F.dropout,) or tname == "stochastic_depth":
        return Layer(kind="dropout", **common)
    rule = _FUNCTION_RULES.get(target) or _FUNCTION_RULES.get(_qualname(target))
    if rule is not None:
        return rule(gm, node, strict, common)
    return _unsupported(f"function {tname!r} (node {node.name!r})", strict, common)


#: Positional parameters (after the input) of the functional pools, in order.
_POOL_PARAMETERS = {
    "max_pool2d": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    "avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
}


def _functional_pool(tname: str, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
    """``F.max_pool2d`` / ``F.avg_pool2d`` described like their modules."""
    name = "avg_pool2d" if tname == "avg_pool2d" else "max_pool2d"
    values = dict(zip(_POOL_PARAMETERS[name], node.args[1:], strict=False))
    values.update(node.kwargs)
    if name == "max_pool2d" and _pair(values.get("dilation", 1)) != (1, 1):
        return _unsupported(
            f"function {tname!r} with dilation (node {node.name!r})", strict, common
        )
    k = _pair(values["kernel_size"])
    s = _pair(values.get("stride") or values["kernel_size"])
    p = _pair(values.get("padding", 0))
    kind = "avgpool2d" if name == "avg_pool2d" else "maxpool2d"
    return _pool_layer(kind, k, s, p, bool(values.get("ceil_mode", False)), "", common)


def _layer_from_method(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """Describe a ``call_method`` node by the tensor method's name (sets ``module_type``)."""
    target = node.target
    common["module_type"] = _target_name(target)
    if target in ("view", "reshape", "flatten", "contiguous"):
        return Layer(kind="flatten", **common)
    if target in ("add", "add_"):
        return _binary_layer("add", common)
    if target in ("mul", "mul_"):
        return _binary_layer("mul", common)
    if target in _ACT_METHODS:
        return _activation_layer(_ACT_METHODS[target], common)
    rule = _METHOD_RULES.get(target)
    if rule is not None:
        return rule(gm, node, strict, common)
    return _unsupported(f"method {target!r} (node {node.name!r})", strict, common)


#: How each kind of fx call becomes a layer: ``rule(gm, node, strict, common)``.
_NODE_RULES: dict[str, Rule] = {
    "call_module": _layer_from_module,
    "call_function": _layer_from_function,
    "call_method": _layer_from_method,
}


def _unsupported(what: str, strict: bool, common: dict[str, Any]) -> Layer:
    """Raise naming ``what`` (strict), else describe the node as kind ``other``."""
    if strict:
        raise UnsupportedLayerError(
            f"hwml cannot describe {what}; supported kinds: "
            f"{', '.join(k for k in KINDS if k != 'other')}. "
            "Pass strict=False to keep it as kind 'other' with NaN analytical features.",
            what=what,
        )
    return Layer(kind="other", op=common.get("module_type", ""), **common)


def _pool_layer(
    kind: str,
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    ceil_mode: bool,
    op: str,
    common: dict[str, Any],
) -> Layer:
    """A max or average pooling layer with window ``k``, stride ``s`` and padding ``p``."""
    c = common["in_shapes"][0][1]
    return Layer(
        kind=kind,
        in_channels=c,
        out_channels=c,
        kernel_h=k[0],
        kernel_w=k[1],
        stride_h=s[0],
        stride_w=s[1],
        pad_h=p[0],
        pad_w=p[1],
        ceil_mode=ceil_mode,
        op=op,
        **common,
    )


def _adaptive_layer(kind: str, common: dict[str, Any]) -> Layer:
    """Adaptive pooling as its equivalent window (exact when sizes divide)."""
    _, _, h, w = common["in_shapes"][0]
    _, _, oh, ow = common["out_shape"]
    kh, kw = -(-h // oh), -(-w // ow)
    sh, sw = max(h // oh, 1), max(w // ow, 1)
    return _pool_layer(kind, (kh, kw), (sh, sw), (0, 0), False, "adaptive", common)


def _activation_layer(op: str, common: dict[str, Any]) -> Layer:
    """An element-wise activation ``op`` (channels from dim 1 when there is one)."""
    shape = common["in_shapes"][0]
    c = shape[1] if len(shape) > 1 else 0
    return Layer(kind="activation", op=op, in_channels=c, out_channels=c, **common)


def _binary_layer(kind: str, common: dict[str, Any]) -> Layer:
    """An element-wise ``add`` or ``mul`` (of two tensors, or of a tensor and a number)."""
    c = common["out_shape"][1] if len(common["out_shape"]) > 1 else 0
    return Layer(kind=kind, in_channels=c, out_channels=c, **common)


# ====================================================================== newer kinds
# Rules for the norm, matmul, attention, softmax and reduce kinds and for data movement
# (kind ``flatten`` with an ``op``). Module rules take ``(mod, node, strict, common)``;
# function and method rules ``(gm, node, strict, common)`` like :data:`_NODE_RULES`.


def _moving(op: str) -> Rule:
    """A rule for a data movement ``op``: kind ``flatten`` (no arithmetic) named ``op``."""

    def rule(gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
        return Layer(kind="flatten", op=op, **common)

    rule.__doc__ = f"``{op}``: kind flatten, op {op!r} (data movement, no arithmetic)."
    return rule


def _getitem_layer(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``x[...]`` on a tensor: op ``getitem`` (a view) or ``index`` (a tensor index: a gather)."""
    op = "index" if len(tensor_inputs(node)) > 1 else "getitem"
    return Layer(kind="flatten", op=op, **common)


def _norm_layer(
    op: str, width: int, affine: int, bias: bool, groups: int, common: dict[str, Any]
) -> Layer:
    """A ``norm`` layer: ``width`` elements per statistic, ``affine`` learned scales."""
    channels = common["in_shapes"][0][1] if op == "group_norm" else 0
    return Layer(
        kind="norm",
        op=op,
        in_features=width,
        out_features=affine,
        bias=bias,
        groups=groups,
        in_channels=channels,
        out_channels=channels,
        **common,
    )


def _group_width(shape: Shape, groups: int) -> int:
    """Elements per group statistic of a group norm of ``shape``."""
    return math.prod(shape) // (shape[0] * groups) if len(shape) > 1 else 1


def _layer_norm_module(
    mod: nn.LayerNorm, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``nn.LayerNorm``: statistics over ``normalized_shape``, affine of the same width."""
    width = math.prod(mod.normalized_shape)
    affine = width if mod.weight is not None else 0
    return _norm_layer("layer_norm", width, affine, mod.bias is not None, 1, common)


def _group_norm_module(
    mod: nn.GroupNorm, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``nn.GroupNorm``: statistics per group of channels, affine per channel."""
    width = _group_width(common["in_shapes"][0], mod.num_groups)
    affine = mod.num_channels if mod.affine else 0
    return _norm_layer("group_norm", width, affine, mod.affine, mod.num_groups, common)


def _functional_norm(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``F.layer_norm(x, normalized_shape, weight, bias)`` / ``F.group_norm(x, groups, ...)``."""
    weight, bias = _argument(node, "weight", 2), _argument(node, "bias", 3)
    if (weight is None and bias is not None) or len(common["in_shapes"]) != 1:
        return _unsupported(
            f"{node.target.__name__} with a bias but no weight, or with weights that are "
            f"not parameters (node {node.name!r})",
            strict,
            common,
        )
    shape = common["in_shapes"][0]
    if node.target is F.group_norm:
        groups = _argument(node, "num_groups", 1)
        affine = shape[1] if weight is not None else 0
        return _norm_layer(
            "group_norm", _group_width(shape, groups), affine, bias is not None, groups, common
        )
    normalized = _argument(node, "normalized_shape", 1)
    width = math.prod([normalized] if isinstance(normalized, int) else normalized)
    affine = width if weight is not None else 0
    return _norm_layer("layer_norm", width, affine, bias is not None, 1, common)


def _softmax_dim(dim: Any, rank: int) -> int:
    """The dimension a softmax runs along (PyTorch's legacy choice when ``dim`` is None)."""
    if dim is None:
        dim = 0 if rank in (0, 1, 3) else 1
    return dim % max(rank, 1)


def _softmax_layer(op: str, dim: Any, common: dict[str, Any]) -> Layer:
    """A ``softmax`` layer along ``dim`` (``in_features`` = that dimension's length)."""
    shape = common["in_shapes"][0]
    length = shape[_softmax_dim(dim, len(shape))] if shape else 1
    return Layer(kind="softmax", op=op, in_features=length, **common)


def _softmax_module(mod: nn.Module, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
    """``nn.Softmax`` / ``nn.LogSoftmax``."""
    op = "log_softmax" if isinstance(mod, nn.LogSoftmax) else "softmax"
    return _softmax_layer(op, mod.dim, common)


def _softmax_call(op: str) -> Rule:
    """A rule for ``F.softmax`` / ``torch.softmax`` / ``x.softmax`` (and their log forms)."""

    def rule(gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
        return _softmax_layer(op, _argument(node, "dim", 1), common)

    rule.__doc__ = f"``{op}`` along its ``dim``: kind softmax."
    return rule


def _reducing(op: str) -> Rule:
    """A rule for a reduction ``op`` of one tensor (``torch.max(a, b)`` is not one)."""

    def rule(gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
        if len(common["in_shapes"]) != 1:
            return _unsupported(f"{op} of several tensors (node {node.name!r})", strict, common)
        ratio = math.prod(common["in_shapes"][0]) // max(math.prod(common["out_shape"]), 1)
        return Layer(kind="reduce", op=op, in_features=max(ratio, 1), **common)

    rule.__doc__ = f"``{op}`` over some dimensions: kind reduce."
    return rule


def _matmul_layer(op: str) -> Rule:
    """A rule for ``matmul`` / ``@`` / ``bmm`` / ``mm``: contraction = first operand's last dim."""

    def rule(gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
        shapes = [_shape(a) for a in (*node.args, *node.kwargs.values())][:2]
        if len(shapes) != 2 or None in shapes:
            return _unsupported(
                f"{op} with a non-tensor operand (node {node.name!r})", strict, common
            )
        return Layer(kind="matmul", op=op, in_features=shapes[0][-1], **common)

    rule.__doc__ = f"``{op}`` of two tensors: kind matmul."
    return rule


def _einsum_sizes(subscripts: str, shape: Shape) -> dict[str, int]:
    """Letter -> size for one einsum operand (``...`` covers the dims between)."""
    head, _, tail = subscripts.partition("...")
    sizes = dict(zip(head, shape, strict=False))
    if tail:
        sizes.update(zip(tail, shape[len(shape) - len(tail) :], strict=False))
    return sizes


def _einsum_layer(gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]) -> Layer:
    """``torch.einsum`` of two tensors: kind matmul, op ``einsum:<equation>``.

    The contraction size is the product of the letters both operands have and the output
    has not; an einsum without one is an element-wise or outer product (torch multiplies,
    FlopCounterMode counts nothing), so its contraction is 0.
    """
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    equation = equation.replace(" ", "")
    shapes = [_shape(o) for o in operands]
    if len(shapes) != 2 or None in shapes:
        return _unsupported(f"einsum {equation!r} of {len(shapes)} operands", strict, common)
    inputs, _, output = equation.partition("->")
    a, b = inputs.split(",")
    if "->" not in equation:
        letters = a + b
        output = "".join(sorted(c for c in set(letters) if c != "." and letters.count(c) == 1))
    sizes = {**_einsum_sizes(b, shapes[1]), **_einsum_sizes(a, shapes[0])}
    summed = (set(a) & set(b)) - set(output) - {"."}
    contraction = math.prod(sizes[c] for c in summed) if summed else 0
    return Layer(kind="matmul", op=f"einsum:{equation}", in_features=contraction, **common)


def _linear_function(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``F.linear(x, weight, bias)``: kind linear for a parameter weight, else matmul."""
    weight, bias = _argument(node, "weight", 1), _argument(node, "bias", 2)
    w = _shape(weight)
    if w is None or len(w) != 2:
        return _unsupported(f"linear with weight of shape {w} (node {node.name!r})", strict, common)
    if weight.op == "get_attr" and len(common["in_shapes"]) == 1:  # parameters, no inputs
        return Layer(
            kind="linear", in_features=w[1], out_features=w[0], bias=bias is not None, **common
        )
    return Layer(kind="matmul", op="linear", in_features=w[1], bias=bias is not None, **common)


def _checked_attention(
    layer: Layer, keys: int, what: str, strict: bool, common: dict[str, Any]
) -> Layer:
    """``layer`` if the key length its inputs imply is ``keys`` (masks can hide it), else
    unsupported."""
    if _attention_geometry(layer)[2] == keys:
        return layer
    return _unsupported(
        f"{what} whose key length cannot be told from its input shapes", strict, common
    )


def _dot_product_attention(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``F.scaled_dot_product_attention(q, k, v, ...)``: kind attention, one layer."""
    q, k, v = (_shape(_argument(node, n, i)) for i, n in enumerate(("query", "key", "value")))
    if q is None or k is None or v is None:
        return _unsupported(f"scaled_dot_product_attention (node {node.name!r})", strict, common)
    layer = Layer(
        kind="attention",
        op="scaled_dot_product_attention",
        in_features=q[-1],
        out_features=v[-1],
        groups=q[-3] if len(q) >= 3 else 1,
        **common,
    )
    return _checked_attention(layer, k[-2], f"node {node.name!r}", strict, common)


def _multihead_attention(
    mod: nn.MultiheadAttention, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """``nn.MultiheadAttention`` (a leaf module): projections and attention as one layer."""
    where = f"module {node.target!r}"
    if not mod._qkv_same_embed_dim or mod.bias_k is not None or mod.add_zero_attn:
        return _unsupported(
            f"{where} (MultiheadAttention with kdim/vdim, bias_k/bias_v or add_zero_attn)",
            strict,
            common,
        )
    op = "multihead_attention" if mod.batch_first else "multihead_attention_seq_first"
    layer = Layer(
        kind="attention",
        op=op,
        in_features=mod.embed_dim,
        out_features=mod.embed_dim,
        groups=mod.num_heads,
        bias=mod.in_proj_bias is not None,
        **common,
    )
    key = _shape(_argument(node, "key", 1))
    axis = 1 if mod.batch_first and key is not None and len(key) == 3 else 0
    return _checked_attention(layer, key[axis] if key else 0, where, strict, common)


def _window_attention(
    gm: fx.GraphModule, node: fx.Node, strict: bool, common: dict[str, Any]
) -> Layer:
    """torchvision's Swin ``shifted_window_attention`` (fx-wrapped): one attention layer.

    The window goes in ``kernel_h/w``, the shift in ``stride_h/w`` (0 where the window
    covers the padded map, as the function does), the bottom/right padding up to a
    multiple of the window in ``pad_h/w``.
    """
    bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
    bound.apply_defaults()
    arg = bound.arguments
    x = _shape(arg["input"])
    (wh, ww), shift = arg["window_size"], list(arg["shift_size"])
    if (
        x is None
        or len(x) != 4
        or len(common["in_shapes"]) != 2  # the input and the position bias; weights apart
        or (arg["qkv_bias"] is None) != (arg["proj_bias"] is None)
    ):
        return _unsupported(
            f"shifted_window_attention with weights that are not parameters or a bias on one "
            f"projection only (node {node.name!r})",
            strict,
            common,
        )
    _, h, w, c = x
    pad_b, pad_r = (wh - h % wh) % wh, (ww - w % ww) % ww
    if wh >= h + pad_b:
        shift[0] = 0
    if ww >= w + pad_r:
        shift[1] = 0
    v2 = "_v2" if arg["logit_scale"] is not None else ""
    return Layer(
        kind="attention",
        op="shifted_window_attention" + v2,
        in_features=c,
        out_features=c,
        groups=arg["num_heads"],
        bias=arg["qkv_bias"] is not None,
        kernel_h=wh,
        kernel_w=ww,
        stride_h=shift[0],
        stride_w=shift[1],
        pad_h=pad_b,
        pad_w=pad_r,
        **common,
    )


#: Module types of the newer kinds and their rules, tried in order.
_MODULE_RULES: tuple[tuple[type | tuple[type, ...], Callable[..., Layer]], ...] = (
    (nn.LayerNorm, _layer_norm_module),
    (nn.GroupNorm, _group_norm_module),
    ((nn.Softmax, nn.LogSoftmax), _softmax_module),
    (nn.MultiheadAttention, _multihead_attention),
)

#: Data movements by function (their ``__name__`` is the layer's ``op``).
_MOVING_FUNCTIONS = (
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.swapdims,
    torch.movedim,
    torch.unsqueeze,
    torch.squeeze,
    torch.chunk,
    torch.split,
    torch.tensor_split,
    torch.unbind,
    torch.narrow,
    torch.select,
    torch.roll,
    torch.t,
    torch.unflatten,
    F.pad,
)

#: Data movements by tensor method (the method's name is the layer's ``op``).
_MOVING_METHODS = (
    "permute",
    "transpose",
    "swapaxes",
    "swapdims",
    "movedim",
    "unsqueeze",
    "squeeze",
    "chunk",
    "split",
    "tensor_split",
    "unbind",
    "narrow",
    "select",
    "roll",
    "t",
    "unflatten",
    "expand",
    "expand_as",
    "repeat",
    "view_as",
    "reshape_as",
)

_REDUCTIONS = ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp")

#: Function rules of the newer kinds, by function or by ``module.name`` (torchvision's
#: fx-wrapped functions).
_FUNCTION_RULES: dict[Any, Rule] = {
    **{f: _moving(f.__name__) for f in _MOVING_FUNCTIONS},
    operator.getitem: _getitem_layer,
    torch.matmul: _matmul_layer("matmul"),
    operator.matmul: _matmul_layer("matmul"),
    torch.bmm: _matmul_layer("bmm"),
    torch.mm: _matmul_layer("mm"),
    torch.einsum: _einsum_layer,
    F.linear: _linear_function,
    F.scaled_dot_product_attention: _dot_product_attention,
    F.layer_norm: _functional_norm,
    F.group_norm: _functional_norm,
    F.softmax: _softmax_call("softmax"),
    torch.softmax: _softmax_call("softmax"),
    F.log_softmax: _softmax_call("log_softmax"),
    torch.log_softmax: _softmax_call("log_softmax"),
    **{getattr(torch, op): _reducing(op) for op in _REDUCTIONS},
    _SWIN + "shifted_window_attention": _window_attention,
    _SWIN + "_get_relative_position_bias": _moving("relative_position_bias"),
    _SWIN + "_patch_merging_pad": _moving("patch_merging_pad"),
}

#: Tensor-method rules of the newer kinds, by method name.
_METHOD_RULES: dict[str, Rule] = {
    **{m: _moving(m) for m in _MOVING_METHODS},
    "matmul": _matmul_layer("matmul"),
    "bmm": _matmul_layer("bmm"),
    "mm": _matmul_layer("mm"),
    "softmax": _softmax_call("softmax"),
    "log_softmax": _softmax_call("log_softmax"),
    **{op: _reducing(op) for op in _REDUCTIONS},
}
