"""Tracing a module into a :class:`Network`: layers in execution order and their edges.

:func:`describe` traces any ``torch.nn.Module`` with ``torch.fx`` and propagates shapes on
the ``meta`` device (nothing is computed, so VGG-16 at batch 256 costs nothing); each
graph node becomes a :class:`~hwml.describe.layer.Layer` through one rule per node op
(``call_module``, ``call_function``, ``call_method``; the rules are in
:mod:`~hwml.describe.rules`), and residual additions and concatenations stay visible as
edges.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from hwml.describe.layer import KINDS, Layer, Shape, UnsupportedLayerError
from hwml.describe.rules import layer_from_node, tensor_inputs

__all__ = ["Network", "describe"]

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
    """Runs one fx node with its tensor arguments replaced by the given tensors.

    Parameters and buffers the node reads (``get_attr``) always come from the network,
    with their own dtype (an integer index stays an index): a tensor given for one (it
    is one of the layer's ``in_shapes`` when the node uses it as an operand) is ignored.
    """

    def __init__(self, gm: fx.GraphModule, node: fx.Node) -> None:
        super().__init__()
        self.op = node.op
        self.target = node.target
        self.sub = gm.get_submodule(node.target) if node.op == "call_module" else None
        self.args_template = node.args
        self.kwargs_template = dict(node.kwargs)
        self.order = tensor_inputs(node)
        # (owner module, attribute) of each get_attr argument; a plain dict, so the
        # owners are not registered as submodules of the runner.
        self.attrs: dict[fx.Node, tuple[nn.Module, str]] = {}

        def owner(n: fx.Node) -> fx.Node:
            if n.op == "get_attr":
                path, _, attr = str(n.target).rpartition(".")
                self.attrs[n] = (gm.get_submodule(path), attr)
            return n

        fx.node.map_arg((node.args, node.kwargs), owner)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        env = dict(zip(self.order, tensors, strict=True))

        def value(n: fx.Node) -> Any:
            if n in self.attrs:
                module, attr = self.attrs[n]
                return getattr(module, attr)
            if n not in env and _VALUE in n.meta:
                return n.meta[_VALUE]  # a size computed from the traced input's shape
            return env[n]

        args = fx.node.map_arg(self.args_template, value)
        kwargs = fx.node.map_arg(self.kwargs_template, value)
        if self.sub is not None:
            return self.sub(*args, **kwargs)
        if self.op == "call_method":
            obj, *rest = args
            return getattr(obj, self.target)(*rest, **kwargs)
        return self.target(*args, **kwargs)


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

    Every torchvision classifier describes with ``strict=True``, and its layers' FLOPs add
    up to what ``FlopCounterMode`` counts for a forward pass. A module ``torch.fx`` keeps
    whole (``nn.MultiheadAttention``, ``nn.LSTM``, ``nn.Conv2d``) is one layer, also
    when it is the module described.

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
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"input_shape must hold positive sizes, got {input_shape}")
    name = name or type(module).__name__
    gm = _trace(module.eval())
    _propagate(gm, input_shape, name)
    layers, unsupported = _layers(gm, dtype_bytes, strict)
    if unsupported:
        raise UnsupportedLayerError(
            f"hwml cannot describe {len(unsupported)} operation"
            f"{'s' if len(unsupported) > 1 else ''} of {name}: "
            + "; ".join(unsupported)
            + f". Supported kinds: {', '.join(k for k in KINDS if k != 'other')}. "
            "Pass strict=False to keep them as kind 'other' with NaN analytical features.",
            what="; ".join(unsupported),
        )
    return Network(name=name, input_shape=input_shape, layers=layers, graph_module=gm)


class _Leaf(nn.Module):
    """Holds a module that ``torch.fx`` treats as a leaf (``nn.Conv2d``, ``nn.LSTM``,
    ``nn.MultiheadAttention``): traced as the root, it would be traced through (a leaf
    only stays whole below the root). It is called with the input for each required
    argument (``attn(x, x, x)``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.layer = module
        params = inspect.signature(module.forward).parameters.values()
        self.arity = sum(
            p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            for p in params
        )

    def forward(self, x: torch.Tensor) -> Any:
        return self.layer(*([x] * max(self.arity, 1)))


def _trace(module: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` of ``module`` (a leaf module as one call of it)."""
    if fx.Tracer().is_leaf_module(module, ""):
        module = _Leaf(module)
    try:
        return fx.symbolic_trace(module)
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise UnsupportedLayerError(
            f"torch.fx could not trace {type(module).__name__}: {err}. torch.fx records "
            "calls on symbolic tensors and cannot follow Python control flow on their "
            "values or sizes; describe a submodule, or hide such a function from tracing "
            "with torch.fx.wrap (it then becomes one node)."
        ) from err


def _propagate(gm: fx.GraphModule, input_shape: Shape, name: str) -> None:
    """Record every node's output shapes (``meta["tensor_meta"]``) for ``input_shape``.

    Shapes are propagated on the meta device: parameters are swapped for meta tensors in
    a copy, so the caller's module keeps its real weights (a module built on the meta
    device is used as it is).
    """
    meta_gm = _to_meta(gm)
    try:
        _ShapeProp(meta_gm).propagate(torch.empty(input_shape, device="meta"))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{name}: input shape {input_shape} does not fit: {err}") from err
    # Copy the shape metadata back onto the real graph (same node order).
    if meta_gm is not gm:
        for real, meta in zip(gm.graph.nodes, meta_gm.graph.nodes, strict=True):
            real.meta.update(meta.meta)


def _layers(gm: fx.GraphModule, dtype_bytes: int, strict: bool) -> tuple[list[Layer], list[str]]:
    """The layers of a traced, shape-propagated graph and the unsupported operations."""
    from torch.fx.passes.shape_prop import TensorMetadata

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
        ins = tensor_inputs(node)
        # parameters and buffers (get_attr) are inputs but not edges: no layer makes them
        sources = tuple(dict.fromkeys(producer.get(n, n.name) for n in ins if n.op != "get_attr"))
        in_shapes = tuple(tuple(n.meta["tensor_meta"].shape) for n in ins)
        try:
            layer = layer_from_node(gm, node, in_shapes, shapes[0], dtype_bytes, strict)
        except UnsupportedLayerError as err:
            unsupported.append(err.what)  # every unsupported node is named, then raised
            layer = layer_from_node(gm, node, in_shapes, shapes[0], dtype_bytes, False)
        layers.append(dataclasses.replace(layer, name=node.name, inputs=sources))
        producer[node] = node.name
    return layers, unsupported


#: Node meta key of the plain values (sizes, ints) a node computed in shape propagation.
_VALUE = "hwml_value"


class _ShapeProp(ShapeProp):
    """Shape propagation that also keeps the plain values nodes compute (``x.size(0)``,
    ``h // 7``), so :meth:`Network.runnable` can run a node whose arguments are sizes."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if _is_plain(result):
            n.meta[_VALUE] = result
        return result


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is a number, string, None or a tuple/list/Size of those."""
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (int, float, bool, str))


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
    """A copy of ``gm`` whose parameters and buffers live on the meta device (no data copied).

    ``gm`` itself when they all are on the meta device already (nothing to copy).
    """
    tensors = [*gm.parameters(), *gm.buffers()]
    if tensors and all(t.is_meta for t in tensors):
        return gm
    gm = fx.GraphModule(gm, gm.graph)
    memo: dict[int, Any] = {}
    for p in gm.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in gm.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(gm, memo)
