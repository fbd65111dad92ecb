"""Layer and network descriptions: the one language every part of hwml speaks.

A :class:`Layer` is a device-free description of one operation of a network: its kind,
its hyper-parameters (batch, channels, spatial sizes, kernel, stride, padding, groups,
features) and the features derived from them (MACs, FLOPs, element-wise operations,
parameter and activation bytes, arithmetic intensity). A :class:`Network` is the list of
layers of a module in execution order together with the graph edges between them, so
residual additions and concatenations stay visible.

Descriptions are produced in two ways:

* :func:`describe` traces any ``torch.nn.Module`` with ``torch.fx`` and propagates shapes
  on the ``meta`` device (nothing is computed, so VGG-16 at batch 256 costs nothing);
* the constructors :meth:`Layer.conv2d`, :meth:`Layer.linear`, :meth:`Layer.pool2d`, ...
  build a layer straight from hyper-parameters (what the profiler's sweeps need), and
  :meth:`Layer.to_module` turns any description back into a runnable module.

FLOP convention: ``flops = 2 * macs`` and only convolutions and matrix products have
MACs, exactly what ``torch.utils.flop_counter.FlopCounterMode`` counts. The arithmetic
of every other kind (pool comparisons, batch-norm scale and shift, activations, bias
and element-wise adds) is counted separately in ``vector_ops``.

Units: bytes for every ``*_bytes`` field; counts for ``macs``, ``flops``, ``vector_ops``,
``params``; ``arith_intensity`` is (flops + vector_ops) per byte moved.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.nn import functional as F

__all__ = [
    "KINDS",
    "ACTIVATIONS",
    "Layer",
    "Network",
    "UnsupportedLayerError",
    "describe",
]

#: Every layer kind with a one-line meaning. ``other`` only appears with ``strict=False``.
KINDS: dict[str, str] = {
    "conv2d": "2-D convolution, including grouped and depthwise (groups == in_channels)",
    "linear": "fully connected layer (matrix product plus bias)",
    "maxpool2d": "2-D max pooling",
    "avgpool2d": "2-D average pooling, including adaptive and global average pooling",
    "batchnorm2d": "2-D batch normalization in inference mode (scale and shift)",
    "activation": "element-wise non-linearity; the function is in `op`",
    "add": "element-wise sum of two tensors (residual connections)",
    "mul": "element-wise product of two tensors (e.g. squeeze-and-excitation scaling)",
    "concat": "concatenation along the channel dimension",
    "flatten": "flatten / view / reshape: no arithmetic",
    "dropout": "identity at inference: dropout, stochastic depth",
    "other": "an operation hwml does not model: kept with its shapes, analytical features NaN",
}

#: Activation functions understood by ``kind == "activation"``.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}

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


class UnsupportedLayerError(ValueError):
    """Raised for a module or operation the description layer does not know."""


Shape = tuple[int, ...]


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def _pool_out(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    span = size + 2 * pad - kernel
    if ceil_mode:
        out = -(-span // stride) + 1
        # PyTorch drops a last window that would start inside the right padding.
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1


def _shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _parse_shape(text: str) -> Shape:
    return tuple(int(s) for s in str(text).split("x") if s != "")


@dataclass(frozen=True)
class Layer:
    """One operation of a network, described without reference to any device.

    Only the fields that matter for a kind are set; the others keep their zero default.
    Use the constructors (:meth:`conv2d`, :meth:`linear`, :meth:`pool2d`, ...) rather
    than filling fields by hand: they compute output shapes and validate the input.

    Attributes:
        kind: One of :data:`KINDS`.
        in_shapes: Shape of every tensor input, batch first.
        out_shape: Shape of the output, batch first.
        name: Node name inside its network ("" for a free-standing layer).
        inputs: Names of the layers (or ``"input"``) whose outputs feed this one.
        in_channels, out_channels: Channels (conv, pool, batch norm).
        kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w: Window geometry.
        groups: Convolution groups.
        in_features, out_features: Linear layer widths.
        bias: Whether the conv/linear layer has a bias.
        ceil_mode: Pooling output rounding.
        op: Activation function name, ``"adaptive"`` for adaptive pooling, or the
            operation's name for kind ``other``.
        dtype_bytes: Bytes per element (4 for fp32, 2 for fp16/bf16).
        module_type: Python type of the traced module or function (information only).
    """

    kind: str
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    name: str = ""
    inputs: tuple[str, ...] = ()
    in_channels: int = 0
    out_channels: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_h: int = 0
    pad_w: int = 0
    groups: int = 1
    in_features: int = 0
    out_features: int = 0
    bias: bool = False
    ceil_mode: bool = False
    op: str = ""
    dtype_bytes: int = 4
    module_type: str = field(default="", compare=False)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UnsupportedLayerError(
                f"unknown layer kind {self.kind!r}; supported kinds: {', '.join(KINDS)}"
            )
        object.__setattr__(
            self, "in_shapes", tuple(tuple(int(d) for d in s) for s in self.in_shapes)
        )
        object.__setattr__(self, "out_shape", tuple(int(d) for d in self.out_shape))
        for shape in (*self.in_shapes, self.out_shape):
            if any(d <= 0 for d in shape):
                raise ValueError(f"{self._label()}: every size must be positive, got shape {shape}")
        if self.dtype_bytes not in (1, 2, 4, 8):
            raise ValueError(
                f"{self._label()}: dtype_bytes must be 1, 2, 4 or 8, got {self.dtype_bytes}"
            )
        if self.kind in ("conv2d", "maxpool2d", "avgpool2d"):
            self._check_window()
        if self.kind == "conv2d":
            if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
                raise ValueError(
                    f"{self._label()}: groups={self.groups} must divide in_channels="
                    f"{self.in_channels} and out_channels={self.out_channels}"
                )
        if self.kind == "linear" and (self.in_features <= 0 or self.out_features <= 0):
            raise ValueError(f"{self._label()}: in_features and out_features must be positive")
        if self.kind == "activation" and self.op not in ACTIVATIONS:
            raise UnsupportedLayerError(
                f"{self._label()}: unknown activation {self.op!r}; supported: {', '.join(ACTIVATIONS)}"
            )

    def _label(self) -> str:
        return f"{self.kind} layer {self.name!r}" if self.name else f"{self.kind} layer"

    def _check_window(self) -> None:
        if len(self.in_shapes) != 1 or len(self.in_shapes[0]) != 4:
            raise ValueError(f"{self._label()}: expects one NCHW input, got {self.in_shapes}")
        _, _, h, w = self.in_shapes[0]
        for axis, size, k, s, p in (
            ("height", h, self.kernel_h, self.stride_h, self.pad_h),
            ("width", w, self.kernel_w, self.stride_w, self.pad_w),
        ):
            if k <= 0 or s <= 0 or p < 0:
                raise ValueError(
                    f"{self._label()}: kernel and stride must be positive and padding "
                    f"non-negative, got kernel={k} stride={s} padding={p} ({axis})"
                )
            if k > size + 2 * p:
                raise ValueError(
                    f"{self._label()}: kernel {k} is larger than the padded input "
                    f"{size}+2*{p}={size + 2 * p} ({axis})"
                )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def conv2d(
        cls,
        batch: int,
        in_channels: int,
        in_h: int,
        in_w: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
        dtype_bytes: int = 4,
    ) -> Layer:
        """A 2-D convolution from its hyper-parameters (output size computed)."""
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride)
        ph, pw = _pair(padding)
        _check_positive(
            batch=batch,
            in_channels=in_channels,
            in_h=in_h,
            in_w=in_w,
            out_channels=out_channels,
            kernel=min(kh, kw),
            stride=min(sh, sw),
        )
        out_h = (in_h + 2 * ph - kh) // sh + 1
        out_w = (in_w + 2 * pw - kw) // sw + 1
        return cls(
            kind="conv2d",
            in_shapes=((batch, in_channels, in_h, in_w),),
            out_shape=(batch, out_channels, max(out_h, 1), max(out_w, 1)),
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_h=kh,
            kernel_w=kw,
            stride_h=sh,
            stride_w=sw,
            pad_h=ph,
            pad_w=pw,
            groups=groups,
            bias=bias,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def linear(
        cls,
        batch: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype_bytes: int = 4,
    ) -> Layer:
        """A fully connected layer applied to a ``(batch, in_features)`` input."""
        _check_positive(batch=batch, in_features=in_features, out_features=out_features)
        return cls(
            kind="linear",
            in_shapes=((batch, in_features),),
            out_shape=(batch, out_features),
            in_features=in_features,
            out_features=out_features,
            bias=bias,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def pool2d(
        cls,
        kind: str,
        batch: int,
        channels: int,
        in_h: int,
        in_w: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        dtype_bytes: int = 4,
    ) -> Layer:
        """A max or average pooling layer (``kind`` is ``"maxpool2d"`` or ``"avgpool2d"``)."""
        if kind not in ("maxpool2d", "avgpool2d"):
            raise UnsupportedLayerError(
                f"pool kind must be 'maxpool2d' or 'avgpool2d', got {kind!r}"
            )
        kh, kw = _pair(kernel)
        sh, sw = _pair(stride if stride is not None else kernel)
        ph, pw = _pair(padding)
        _check_positive(
            batch=batch,
            channels=channels,
            in_h=in_h,
            in_w=in_w,
            kernel=min(kh, kw),
            stride=min(sh, sw),
        )
        out_h = _pool_out(in_h, kh, sh, ph, ceil_mode)
        out_w = _pool_out(in_w, kw, sw, pw, ceil_mode)
        return cls(
            kind=kind,
            in_shapes=((batch, channels, in_h, in_w),),
            out_shape=(batch, channels, max(out_h, 1), max(out_w, 1)),
            in_channels=channels,
            out_channels=channels,
            kernel_h=kh,
            kernel_w=kw,
            stride_h=sh,
            stride_w=sw,
            pad_h=ph,
            pad_w=pw,
            ceil_mode=ceil_mode,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def batchnorm2d(cls, batch: int, channels: int, h: int, w: int, dtype_bytes: int = 4) -> Layer:
        """Inference-mode batch normalization of an NCHW tensor."""
        _check_positive(batch=batch, channels=channels, h=h, w=w)
        shape = (batch, channels, h, w)
        return cls(
            kind="batchnorm2d",
            in_shapes=(shape,),
            out_shape=shape,
            in_channels=channels,
            out_channels=channels,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def activation(cls, op: str, shape: Sequence[int], dtype_bytes: int = 4) -> Layer:
        """An element-wise activation (``op`` from :data:`ACTIVATIONS`) on ``shape``."""
        shape = tuple(shape)
        return cls(
            kind="activation",
            in_shapes=(shape,),
            out_shape=shape,
            op=op,
            in_channels=shape[1] if len(shape) > 1 else 0,
            out_channels=shape[1] if len(shape) > 1 else 0,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def elementwise(cls, kind: str, shape: Sequence[int], dtype_bytes: int = 4) -> Layer:
        """An element-wise ``"add"`` or ``"mul"`` of two tensors of the same ``shape``."""
        if kind not in ("add", "mul"):
            raise UnsupportedLayerError(f"element-wise kind must be 'add' or 'mul', got {kind!r}")
        shape = tuple(shape)
        return cls(
            kind=kind,
            in_shapes=(shape, shape),
            out_shape=shape,
            in_channels=shape[1] if len(shape) > 1 else 0,
            out_channels=shape[1] if len(shape) > 1 else 0,
            dtype_bytes=dtype_bytes,
        )

    @classmethod
    def concat(cls, shapes: Sequence[Sequence[int]], dtype_bytes: int = 4) -> Layer:
        """Concatenation of NCHW tensors along channels."""
        shapes = tuple(tuple(s) for s in shapes)
        if len(shapes) < 2 or any(s[:1] + s[2:] != shapes[0][:1] + shapes[0][2:] for s in shapes):
            raise ValueError(f"concat needs two or more shapes equal except in dim 1, got {shapes}")
        out = (shapes[0][0], sum(s[1] for s in shapes), *shapes[0][2:])
        return cls(
            kind="concat",
            in_shapes=shapes,
            out_shape=out,
            in_channels=sum(s[1] for s in shapes),
            out_channels=out[1],
            dtype_bytes=dtype_bytes,
        )

    # ------------------------------------------------------------------ derived features
    @property
    def batch(self) -> int:
        """Leading (batch) dimension of the output."""
        return self.out_shape[0]

    @property
    def in_h(self) -> int:
        s = self.in_shapes[0] if self.in_shapes else ()
        return s[2] if len(s) == 4 else 1

    @property
    def in_w(self) -> int:
        s = self.in_shapes[0] if self.in_shapes else ()
        return s[3] if len(s) == 4 else 1

    @property
    def out_h(self) -> int:
        return self.out_shape[2] if len(self.out_shape) == 4 else 1

    @property
    def out_w(self) -> int:
        return self.out_shape[3] if len(self.out_shape) == 4 else 1

    @property
    def is_depthwise(self) -> bool:
        """True for a conv whose groups equal its input channels (and > 1)."""
        return self.kind == "conv2d" and self.groups > 1 and self.groups == self.in_channels

    @property
    def macs(self) -> float:
        """Multiply-accumulates (conv and linear only; 0 for other kinds, NaN for other)."""
        if self.kind == "conv2d":
            per_out = (self.in_channels // self.groups) * self.kernel_h * self.kernel_w
            return float(_numel(self.out_shape) * per_out)
        if self.kind == "linear":
            return float(_numel(self.out_shape) * self.in_features)
        return math.nan if self.kind == "other" else 0.0

    @property
    def flops(self) -> float:
        """Floating-point operations in the FlopCounterMode convention: ``2 * macs``."""
        return 2.0 * self.macs

    @property
    def vector_ops(self) -> float:
        """Element-wise arithmetic not counted in ``flops`` (bias adds, pooling, norms)."""
        out = float(_numel(self.out_shape))
        if self.kind in ("conv2d", "linear"):
            return out if self.bias else 0.0
        if self.kind in ("maxpool2d", "avgpool2d"):
            return out * self.kernel_h * self.kernel_w
        if self.kind == "batchnorm2d":
            return 2.0 * out
        if self.kind in ("activation", "add", "mul"):
            return out
        return math.nan if self.kind == "other" else 0.0

    @property
    def params(self) -> float:
        """Learnable parameters."""
        if self.kind == "conv2d":
            w = (
                self.out_channels
                * (self.in_channels // self.groups)
                * self.kernel_h
                * self.kernel_w
            )
            return float(w + (self.out_channels if self.bias else 0))
        if self.kind == "linear":
            return float(
                self.in_features * self.out_features + (self.out_features if self.bias else 0)
            )
        if self.kind == "batchnorm2d":
            return 2.0 * self.out_channels
        return math.nan if self.kind == "other" else 0.0

    @property
    def param_bytes(self) -> float:
        return self.params * self.dtype_bytes

    @property
    def input_bytes(self) -> float:
        """Bytes of all input activations."""
        return float(sum(_numel(s) for s in self.in_shapes) * self.dtype_bytes)

    @property
    def output_bytes(self) -> float:
        """Bytes of the output activation."""
        return float(_numel(self.out_shape) * self.dtype_bytes)

    @property
    def total_bytes(self) -> float:
        """Minimum bytes moved: inputs read, parameters read, output written."""
        return self.input_bytes + self.param_bytes + self.output_bytes

    @property
    def arith_intensity(self) -> float:
        """(flops + vector_ops) per byte of :attr:`total_bytes`."""
        return (self.flops + self.vector_ops) / self.total_bytes

    # ------------------------------------------------------------------ conversions
    def with_dtype_bytes(self, dtype_bytes: int) -> Layer:
        """The same layer with another element size (e.g. 2 for fp16)."""
        return dataclasses.replace(self, dtype_bytes=dtype_bytes)

    def signature(self) -> tuple:
        """Hashable identity of the computation (ignores name, edges and module type)."""
        return (
            self.kind,
            self.in_shapes,
            self.out_shape,
            self.in_channels,
            self.out_channels,
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.pad_h,
            self.pad_w,
            self.groups,
            self.in_features,
            self.out_features,
            self.bias,
            self.ceil_mode,
            self.op,
            self.dtype_bytes,
        )

    def to_row(self) -> dict[str, Any]:
        """A flat dict of hyper-parameters and derived features (one table row)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "op": self.op,
            "batch": self.batch,
            "in_channels": self.in_channels,
            "in_h": self.in_h,
            "in_w": self.in_w,
            "out_channels": self.out_channels,
            "out_h": self.out_h,
            "out_w": self.out_w,
            "kernel_h": self.kernel_h,
            "kernel_w": self.kernel_w,
            "stride_h": self.stride_h,
            "stride_w": self.stride_w,
            "pad_h": self.pad_h,
            "pad_w": self.pad_w,
            "groups": self.groups,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias,
            "ceil_mode": self.ceil_mode,
            "dtype_bytes": self.dtype_bytes,
            "in_shapes": ";".join(_shape_str(s) for s in self.in_shapes),
            "out_shape": _shape_str(self.out_shape),
            "inputs": ";".join(self.inputs),
            "macs": self.macs,
            "flops": self.flops,
            "vector_ops": self.vector_ops,
            "params": self.params,
            "param_bytes": self.param_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "total_bytes": self.total_bytes,
            "arith_intensity": self.arith_intensity,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any] | Any) -> Layer:
        """Rebuild a layer from :meth:`to_row` output (a dict or a pandas row)."""
        get = row.get if hasattr(row, "get") else lambda k, d=None: getattr(row, k, d)

        def text(key: str) -> str:
            value = get(key, "")
            return (
                ""
                if value is None or (isinstance(value, float) and math.isnan(value))
                else str(value)
            )

        return cls(
            kind=str(get("kind")),
            in_shapes=tuple(_parse_shape(s) for s in text("in_shapes").split(";") if s),
            out_shape=_parse_shape(text("out_shape")),
            name=text("name"),
            inputs=tuple(s for s in text("inputs").split(";") if s),
            in_channels=int(get("in_channels", 0)),
            out_channels=int(get("out_channels", 0)),
            kernel_h=int(get("kernel_h", 0)),
            kernel_w=int(get("kernel_w", 0)),
            stride_h=int(get("stride_h", 0)),
            stride_w=int(get("stride_w", 0)),
            pad_h=int(get("pad_h", 0)),
            pad_w=int(get("pad_w", 0)),
            groups=int(get("groups", 1)),
            in_features=int(get("in_features", 0)),
            out_features=int(get("out_features", 0)),
            bias=_as_bool(get("bias", False)),
            ceil_mode=_as_bool(get("ceil_mode", False)),
            op=text("op"),
            dtype_bytes=int(get("dtype_bytes", 4)),
        )

    def to_module(self) -> nn.Module:
        """A runnable module computing this layer (random weights, eval mode).

        Call it with the tensors of :attr:`in_shapes`, in order.

        Raises:
            UnsupportedLayerError: for kind ``other``.
        """
        k = (self.kernel_h, self.kernel_w)
        s = (self.stride_h, self.stride_w)
        p = (self.pad_h, self.pad_w)
        if self.kind == "conv2d":
            module: nn.Module = nn.Conv2d(
                self.in_channels, self.out_channels, k, s, p, groups=self.groups, bias=self.bias
            )
        elif self.kind == "linear":
            module = nn.Linear(self.in_features, self.out_features, bias=self.bias)
        elif self.kind == "maxpool2d":
            module = nn.MaxPool2d(k, s, p, ceil_mode=self.ceil_mode)
        elif self.kind == "avgpool2d":
            if self.op == "adaptive":
                module = nn.AdaptiveAvgPool2d((self.out_h, self.out_w))
            else:
                module = nn.AvgPool2d(k, s, p, ceil_mode=self.ceil_mode)
        elif self.kind == "batchnorm2d":
            module = nn.BatchNorm2d(self.in_channels)
        elif self.kind == "activation":
            module = ACTIVATIONS[self.op]()
        elif self.kind == "add":
            module = _Binary(torch.add)
        elif self.kind == "mul":
            module = _Binary(torch.mul)
        elif self.kind == "concat":
            module = _Concat()
        elif self.kind == "flatten":
            module = _Reshape(self.out_shape)
        elif self.kind == "dropout":
            module = nn.Identity()
        else:
            raise UnsupportedLayerError(
                f"{self._label()}: kind 'other' ({self.op or self.module_type}) cannot be rebuilt"
            )
        return module.eval()


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _check_positive(**sizes: int) -> None:
    for key, value in sizes.items():
        if not isinstance(value, (int,)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


class _Binary(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fn(a, b)


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class _Reshape(nn.Module):
    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = tuple(shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


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
        each parameter once (all kinds without NaN).
        """

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
    for node in gm.graph.nodes:
        tm = node.meta.get("tensor_meta")
        if node.op == "placeholder":
            producer[node] = "input"
            continue
        if node.op in ("output", "get_attr") or not isinstance(tm, TensorMetadata):
            continue
        ins = _tensor_inputs(node)
        sources = tuple(dict.fromkeys(producer.get(n, n.name) for n in ins))
        in_shapes = tuple(tuple(n.meta["tensor_meta"].shape) for n in ins)
        layer = _layer_from_node(gm, node, in_shapes, tuple(tm.shape), dtype_bytes, strict)
        layer = dataclasses.replace(layer, name=node.name, inputs=sources)
        layers.append(layer)
        producer[node] = node.name
    return Network(
        name=name or type(module).__name__, input_shape=input_shape, layers=layers, graph_module=gm
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
    common: dict[str, Any] = {
        "in_shapes": in_shapes,
        "out_shape": out_shape,
        "dtype_bytes": dtype_bytes,
        "name": node.name,
    }
    where = f"{node.target}"
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        mtype = type(mod).__name__
        common["module_type"] = mtype
        if isinstance(mod, nn.Conv2d):
            if (
                mod.dilation != (1, 1)
                or mod.padding_mode != "zeros"
                or isinstance(mod.padding, str)
            ):
                return _unsupported(
                    f"module {where!r} ({mtype} with dilation/padding mode)", strict, common
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
        if isinstance(mod, nn.Linear):
            return Layer(
                kind="linear",
                in_features=mod.in_features,
                out_features=mod.out_features,
                bias=mod.bias is not None,
                **common,
            )
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            if isinstance(mod, nn.MaxPool2d) and _pair(mod.dilation) != (1, 1):
                return _unsupported(f"module {where!r} ({mtype} with dilation)", strict, common)
            kind = "maxpool2d" if isinstance(mod, nn.MaxPool2d) else "avgpool2d"
            k, s, p = (
                _pair(mod.kernel_size),
                _pair(mod.stride or mod.kernel_size),
                _pair(mod.padding),
            )
            return _pool_layer(kind, k, s, p, bool(mod.ceil_mode), "", common)
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

    target = node.target
    tname = getattr(target, "__name__", str(target))
    common["module_type"] = tname
    if node.op == "call_function":
        if target in (operator.add, torch.add, operator.iadd):
            return _binary_layer("add", common)
        if target in (operator.mul, torch.mul, operator.imul):
            return _binary_layer("mul", common)
        if target in (torch.cat, torch.concat):
            return Layer(
                kind="concat",
                in_channels=sum(s[1] for s in in_shapes),
                out_channels=out_shape[1],
                **common,
            )
        if target in (torch.flatten, torch.reshape):
            return Layer(kind="flatten", **common)
        if target in _ACT_FUNCTIONS:
            return _activation_layer(_ACT_FUNCTIONS[target], common)
        if target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            kind = "avgpool2d" if target is F.adaptive_avg_pool2d else "maxpool2d"
            return _adaptive_layer(kind, common)
        if target in (F.dropout,) or tname == "stochastic_depth":
            return Layer(kind="dropout", **common)
        return _unsupported(f"function {tname!r} (node {node.name!r})", strict, common)
    if node.op == "call_method":
        if target in ("view", "reshape", "flatten", "contiguous"):
            return Layer(kind="flatten", **common)
        if target in ("add", "add_"):
            return _binary_layer("add", common)
        if target in ("mul", "mul_"):
            return _binary_layer("mul", common)
        if target in _ACT_METHODS:
            return _activation_layer(_ACT_METHODS[target], common)
        return _unsupported(f"method {target!r} (node {node.name!r})", strict, common)
    return _unsupported(f"node {node.name!r} ({node.op})", strict, common)


def _unsupported(what: str, strict: bool, common: dict[str, Any]) -> Layer:
    if strict:
        raise UnsupportedLayerError(
            f"hwml cannot describe {what}; supported kinds: "
            f"{', '.join(k for k in KINDS if k != 'other')}. "
            "Pass strict=False to keep it as kind 'other' with NaN analytical features."
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
