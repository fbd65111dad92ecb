"""Tracing a module into a :class:`Network`: layers in execution order and their edges.

:func:`describe` traces any ``torch.nn.Module`` with ``torch.fx`` and propagates shapes on
the ``meta`` device (nothing is computed, so VGG-16 at batch 256 costs nothing); each
graph node becomes a :class:`~hwml.describe.layer.Layer` through one rule per node op
(``call_module``, ``call_function``, ``call_method``), and residual additions and
concatenations stay visible as edges.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

from hwml.describe.layer import (
    ACTIVATIONS,
    KINDS,
    Layer,
    Shape,
    UnsupportedLayerError,
    _pair,
)

__all__ = ["Network", "describe"]

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


# ====================================================================== networks


@dataclass
class Network:
    """A traced network: its layers in execution order and the edges between them.

    Attributes:
        name: Network name.
        input_shape: Shape of the input tensor, batch first.
        layers: Layers in execution order; ``layer.inputs`` are the graph edges.
        graph_module: The ``torch.fx`` graph the layers came from (real weights, CPU), used
            by the profiler to run single layers in place. ``None`` for hand-made networks.
    """

    name: str
    input_shape: Shape
    layers: list[Layer]
    graph_module: fx.GraphModule | None = field(default=None, repr=False)

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def layer(self, name: str) -> Layer:
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"network {self.name!r} has no layer {name!r}")

    def edges(self) -> list[tuple[str, str]]:
        """(source, destination) pairs of the data-flow graph; the input is ``"input"``."""
        return [(src, layer.name) for layer in self.layers for src in layer.inputs]

    def table(self):
        """One row per layer (see :meth:`Layer.to_row`), plus ``network`` and ``index``.

        Returns:
            pandas.DataFrame with one row per layer.
        """
        import pandas as pd

        rows = []
        for i, layer in enumerate(self.layers):
            row = {"network": self.name, "index": i, **layer.to_row()}
            rows.append(row)
        return pd.DataFrame(rows)

    def totals(self) -> dict[str, float]:
        """Network totals: layers, params, MACs, FLOPs, vector ops and activation bytes.

        ``activation_bytes`` sums every layer's output; ``params`` and ``param_bytes`` count
        each parameter once (all kinds without NaN). Layers of kind ``other`` have no
        analytical features: they are left out, with a warning that names them.
        """

        left_out = [layer for layer in self.layers if layer.kind == "other"]
        if left_out:
            types = sorted({layer.op or layer.module_type or "?" for layer in left_out})
            warnings.warn(
                f"{self.name}: {len(left_out)} layer(s) of kind 'other' ({', '.join(types)}) "
                "have no analytical features and are left out of the totals",
                UserWarning,
                stacklevel=2,
            )

        def total(attr: str) -> float:
            return float(
                sum(
                    getattr(layer, attr)
                    for layer in self.layers
                    if not math.isnan(getattr(layer, attr))
                )
            )

        return {
            "layers": float(len(self.layers)),
            "params": total("params"),
            "param_bytes": total("param_bytes"),
            "macs": total("macs"),
            "flops": total("flops"),
            "vector_ops": total("vector_ops"),
            "activation_bytes": total("output_bytes"),
            "total_bytes": total("total_bytes"),
        }

    def runnable(self, name: str) -> nn.Module:
        """A module that runs layer ``name`` exactly as the network does.

        It takes the layer's input tensors (shapes in ``layer.in_shapes``) in order and
        shares weights with the traced network. Used to time layers in place.
        """
        if self.graph_module is None:
            return self.layer(name).to_module()
        node = next((n for n in self.graph_module.graph.nodes if n.name == name), None)
        if node is None:
            raise KeyError(f"network {self.name!r} has no layer {name!r}")
        return _NodeRunner(self.graph_module, node)


class _NodeRunner(nn.Module):
    """Runs one fx node with its tensor arguments replaced by the given tensors."""

    def __init__(self, gm: fx.GraphModule, node: fx.Node) -> None:
        super().__init__()
        self.op = node.op
        self.target = node.target
        self.sub = gm.get_submodule(node.target) if node.op == "call_module" else None
        self.args_template = node.args
        self.kwargs_template = dict(node.kwargs)
        self.order = _tensor_inputs(node)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        env = dict(zip(self.order, tensors, strict=True))
        args = fx.node.map_arg(self.args_template, lambda n: env[n])
        kwargs = fx.node.map_arg(self.kwargs_template, lambda n: env[n])
        if self.sub is not None:
            return self.sub(*args, **kwargs)
        if self.op == "call_method":
            obj, *rest = args
            return getattr(obj, self.target)(*rest, **kwargs)
        return self.target(*args, **kwargs)


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    seen: list[fx.Node] = []

    def visit(n: fx.Node) -> fx.Node:
        if (
            isinstance(n.meta.get("tensor_meta"), torch.fx.passes.shape_prop.TensorMetadata)
            and n not in seen
        ):
            seen.append(n)
        return n

    fx.node.map_arg((node.args, node.kwargs), visit)
    return seen


def describe(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    name: str | None = None,
    dtype_bytes: int = 4,
    strict: bool = True,
) -> Network:
    """Describe a module's layers for a given input shape.

    The module is traced with ``torch.fx`` and shapes are propagated on the ``meta`` device,
    so no arithmetic runs and no memory is allocated for activations.

    Args:
        module: Any ``nn.Module`` that ``torch.fx.symbolic_trace`` can trace.
        input_shape: Input tensor shape, batch first, e.g. ``(64, 3, 224, 224)``.
        name: Network name (defaults to the module's class name).
        dtype_bytes: Bytes per element used for the byte features (4 = fp32).
        strict: When True, an operation hwml cannot model raises
            :class:`UnsupportedLayerError` naming its module path and type; when False it
            becomes a layer of kind ``other`` with NaN analytical features.

    Returns:
        The :class:`Network` description.

    Raises:
        ValueError: for a non-positive input size.
        UnsupportedLayerError: for an unknown operation (with ``strict=True``).
    """
    from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape must hold positive sizes, got {input_shape}")
    module = module.eval()
    try:
        gm = fx.symbolic_trace(module)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise UnsupportedLayerError(
            f"torch.fx could not trace {type(module).__name__}: {err}"
        ) from err
    meta_gm = fx.GraphModule(gm, gm.graph)
    # Shape propagation on the meta device: parameters are swapped for meta tensors in a
    # copy, so the caller's module keeps its real weights.
    meta_gm = _to_meta(meta_gm)
    try:
        ShapeProp(meta_gm).propagate(torch.empty(input_shape, device="meta"))
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"{name or type(module).__name__}: input shape {input_shape} does not fit: {err}"
        ) from err
    # Copy the shape metadata back onto the real graph (same node order).
    for real, meta in zip(gm.graph.nodes, meta_gm.graph.nodes, strict=True):
        real.meta.update(meta.meta)

    producer: dict[fx.Node, str] = {}
    layers: list[Layer] = []
    unsupported: list[str] = []
    tuples: set[fx.Node] = set()  # nodes whose output is several tensors (LSTM, attention)
    for node in gm.graph.nodes:
        tm = node.meta.get("tensor_meta")
        if node.op == "placeholder":
            producer[node] = "input"
            continue
        if node.op in ("output", "get_attr"):
            continue
        if _picks_from(node, tuples):
            # one tensor taken out of a layer's tuple output: an edge, not a layer
            producer[node] = producer[node.args[0]]
            continue
        shapes = _output_shapes(tm)
        if not shapes:
            continue  # sizes, flags and other non-tensor values
        if not isinstance(tm, TensorMetadata):
            tuples.add(node)
        ins = _tensor_inputs(node)
        sources = tuple(dict.fromkeys(producer.get(n, n.name) for n in ins))
        in_shapes = tuple(tuple(n.meta["tensor_meta"].shape) for n in ins)
        try:
            layer = _layer_from_node(gm, node, in_shapes, shapes[0], dtype_bytes, strict)
        except UnsupportedLayerError as err:
            unsupported.append(err.what)  # every unsupported node is named, then raised
            layer = _layer_from_node(gm, node, in_shapes, shapes[0], dtype_bytes, False)
        layer = dataclasses.replace(layer, name=node.name, inputs=sources)
        layers.append(layer)
        producer[node] = node.name
    if unsupported:
        raise UnsupportedLayerError(
            f"hwml cannot describe {len(unsupported)} operation"
            f"{'s' if len(unsupported) > 1 else ''} of {name or type(module).__name__}: "
            + "; ".join(unsupported)
            + f". Supported kinds: {', '.join(k for k in KINDS if k != 'other')}. "
            "Pass strict=False to keep them as kind 'other' with NaN analytical features.",
            what="; ".join(unsupported),
        )
    return Network(
        name=name or type(module).__name__, input_shape=input_shape, layers=layers, graph_module=gm
    )


def _output_shapes(tm: Any) -> list[Shape]:
    """The shapes of the tensors a node produces (several for a tuple output)."""
    from torch.fx.passes.shape_prop import TensorMetadata

    if isinstance(tm, TensorMetadata):
        return [tuple(tm.shape)]
    if isinstance(tm, tuple | list):
        return [shape for item in tm for shape in _output_shapes(item)]
    if isinstance(tm, dict):
        return [shape for item in tm.values() for shape in _output_shapes(item)]
    return []


def _picks_from(node: fx.Node, tuples: set[fx.Node]) -> bool:
    """Whether ``node`` takes one item out of a tuple-producing layer's output."""
    return (
        node.op == "call_function"
        and node.target is operator.getitem
        and bool(node.args)
        and node.args[0] in tuples
    )


def _to_meta(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``gm`` whose parameters and buffers live on the meta device (no data copied)."""
    memo: dict[int, Any] = {}
    for p in gm.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in gm.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(gm, memo)


def _layer_from_node(
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
    return _unsupported(f"method {target!r} (node {node.name!r})", strict, common)


#: How each kind of fx call becomes a layer: ``rule(gm, node, strict, common)``.
_NODE_RULES: dict[str, Callable[[fx.GraphModule, fx.Node, bool, dict[str, Any]], Layer]] = {
    "call_module": _layer_from_module,
    "call_function": _layer_from_function,
    "call_method": _layer_from_method,
}


def _unsupported(what: str, strict: bool, common: dict[str, Any]) -> Layer:
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
    shape = common["in_shapes"][0]
    c = shape[1] if len(shape) > 1 else 0
    return Layer(kind="activation", op=op, in_channels=c, out_channels=c, **common)


def _binary_layer(kind: str, common: dict[str, Any]) -> Layer:
    c = common["out_shape"][1] if len(common["out_shape"]) > 1 else 0
    return Layer(kind=kind, in_channels=c, out_channels=c, **common)
