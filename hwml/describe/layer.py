"""One operation of a network, described without a device: :class:`Layer`.

A layer's kind (:data:`KINDS`), its hyper-parameters (batch, channels, spatial sizes,
kernel, stride, padding, groups, features) and the features derived from them (MACs,
FLOPs, element-wise operations, parameter and activation bytes, arithmetic intensity).
The constructors (:meth:`Layer.conv2d`, :meth:`Layer.linear`, :meth:`Layer.pool2d`, ...)
build a layer from hyper-parameters, :meth:`Layer.to_module` turns it back into a
runnable module, and :meth:`Layer.to_row` / :meth:`Layer.from_row` move it through the
tables.

The module is longer than the package's usual rooms on purpose: :class:`Layer` is one
frozen dataclass whose per-kind constructors, derived features and round trips must
stay consistent with each other, and splitting the class would scatter each kind over
several files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "KINDS", "Layer", "Shape", "UnsupportedLayerError"]

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
    "flatten": "no arithmetic: flatten / view / reshape (`op` empty), or the data movement "
    "named in `op` (permute, transpose, chunk, getitem, expand, pad, roll, ...)",
    "dropout": "identity at inference: dropout, stochastic depth",
    "norm": "layer or group normalization (statistics, normalize, affine); `op` says which",
    "matmul": "product of two activation tensors (matmul, bmm, einsum, `@`); `op` says which",
    "attention": "a whole attention block as one layer: scaled dot-product attention, "
    "nn.MultiheadAttention or Swin's window attention (projections included); `op` says which",
    "softmax": "softmax or log-softmax along one dimension; `op` says which",
    "reduce": "reduction over dimensions (mean, sum, amax, ...); `op` says which",
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


class UnsupportedLayerError(ValueError):
    """Raised for a module or operation the description layer does not know.

    Attributes:
        what: The operation(s) named, e.g. ``"module 'up' of type Upsample"``.
    """

    def __init__(self, message: str, *, what: str = "") -> None:
        super().__init__(message)
        self.what = what or message


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
        in_shapes: Shape of every tensor input, batch first. A tensor read as an operand
            (a parameter added or multiplied in, a table indexed) is one of them; the
            weights of a norm, linear or attention layer are its parameters instead.
        out_shape: Shape of the output, batch first (the first output of a tuple).
        name: Node name inside its network ("" for a free-standing layer).
        inputs: Names of the layers (or ``"input"``) whose outputs feed this one.
        in_channels, out_channels: Channels (conv, pool, batch norm, group norm).
        kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w: Window geometry; for
            Swin's window attention the window, its shift and the bottom/right padding
            up to a multiple of the window.
        groups: Convolution groups, norm groups, attention heads.
        in_features, out_features: Linear layer widths. ``norm``: elements each
            mean and variance is taken over, and the affine width (0: no affine).
            ``matmul``: contraction size (0 for a product without one).
            ``attention``: query/key and value feature sizes (the embedding width for
            multi-head and window attention). ``softmax``: length of the softmax
            dimension. ``reduce``: input elements per output element.
        bias: Whether the conv/linear layer (the norm's affine, the attention's
            projections) has a bias.
        ceil_mode: Pooling output rounding.
        op: Activation function name, ``"adaptive"`` for adaptive pooling, the
            variant of a ``norm``, ``matmul``, ``attention``, ``softmax`` or ``reduce``
            layer, the data movement of a ``flatten`` layer ("" for flatten, view and
            reshape), or the operation's name for kind ``other``.
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
        if self.kind in _OPS:
            self._check_op()

    def _check_op(self) -> None:
        """Validate the ``op`` and the sizes of a norm, matmul, attention, softmax or reduce."""
        known = _OPS[self.kind]
        if self.op.split(":")[0] not in known:
            raise UnsupportedLayerError(
                f"{self._label()}: unknown op {self.op!r}; supported: {', '.join(known)}"
            )
        least = 0 if self.kind == "matmul" else 1
        if self.in_features < least or self.groups < 1 or not self.in_shapes:
            raise ValueError(
                f"{self._label()}: needs an input, in_features >= {least} and groups >= 1, "
                f"got in_shapes={self.in_shapes} in_features={self.in_features} "
                f"groups={self.groups}"
            )
        if self.kind == "attention" and self.op != "scaled_dot_product_attention":
            if self.in_features % self.groups:
                raise ValueError(
                    f"{self._label()}: {self.groups} heads must divide the width {self.in_features}"
                )
        if self.op.startswith("shifted_window") and min(self.kernel_h, self.kernel_w) <= 0:
            raise ValueError(f"{self._label()}: window attention needs a positive window")

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
        """Leading (batch) dimension of the output (1 for a scalar)."""
        return self.out_shape[0] if self.out_shape else 1

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
        """Multiply-accumulates of the matrix products, as FlopCounterMode counts them.

        conv2d, linear and matmul: output elements x contraction size. attention: the
        projections (multi-head and window attention) plus the two products
        ``Q @ K^T`` and ``A @ V`` (see :func:`_attention_macs`). 0 for the other kinds,
        NaN for kind ``other``.
        """
        if self.kind == "conv2d":
            per_out = (self.in_channels // self.groups) * self.kernel_h * self.kernel_w
            return float(_numel(self.out_shape) * per_out)
        if self.kind in ("linear", "matmul"):
            return float(_numel(self.out_shape) * self.in_features)
        if self.kind == "attention":
            return float(_attention_macs(self))
        return math.nan if self.kind == "other" else 0.0

    @property
    def flops(self) -> float:
        """Floating-point operations in the FlopCounterMode convention: ``2 * macs``."""
        return 2.0 * self.macs

    @property
    def vector_ops(self) -> float:
        """Element-wise arithmetic not counted in ``flops`` (bias adds, pooling, norms).

        Per output element: 1 for a bias add, an activation, add and mul; the window size
        for pooling; 2 for inference batch norm. ``norm``: 5 per input element
        (mean, variance, normalize) plus 1 for each of the affine scale and shift.
        ``softmax``: 5 per element (max, subtract, exp, sum, divide). ``reduce``: 1 per
        input element. ``matmul``: 0 (1 per output for ``F.linear``'s bias).
        ``attention``: see :func:`_attention_vector_ops`. Data movement: 0.
        """
        out = float(_numel(self.out_shape))
        if self.kind in ("conv2d", "linear"):
            return out if self.bias else 0.0
        if self.kind in ("maxpool2d", "avgpool2d"):
            return out * self.kernel_h * self.kernel_w
        if self.kind == "batchnorm2d":
            return 2.0 * out
        if self.kind in ("activation", "add", "mul"):
            return out
        if self.kind in _VECTOR_OPS:
            return float(_VECTOR_OPS[self.kind](self))
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
        if self.kind == "norm":
            return float(self.out_features * (2 if self.bias else 1))
        if self.kind == "attention":
            return float(_attention_params(self))
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

        Data movement other than flatten/view/reshape (``flatten`` with an ``op``) is
        rebuilt by its output shape, as a view or a copy as the operation is (see
        :class:`_Move`); everything else computes what the layer describes.

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
        elif self.kind == "flatten" and not self.op:
            module = _Reshape(self.out_shape)
        elif self.kind == "flatten":
            module = _Move(self.op, self.out_shape)
        elif self.kind == "dropout":
            module = nn.Identity()
        elif self.kind in _MODULES:
            module = _MODULES[self.kind](self)
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
    """``fn(a, b)``; with one input, ``fn(a, 2.0)`` (an operation with a Python scalar)."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(a, b if b is not None else 2.0)


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class _Reshape(nn.Module):
    """A reshape keeping the input's batch size (the full shape when the batch is not kept,
    e.g. the view of a position-bias table)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = tuple(shape[1:])
        self.full = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] * _numel(self.shape) != x.numel():
            return x.reshape(self.full)
        return x.reshape(x.shape[0], *self.shape)


# ---------------------------------------------------------------------- newer kinds
#: The ``op`` values of the kinds whose ``op`` says which variant they are (``einsum``
#: carries its equation: ``"einsum:bij,bjk->bik"``).
_OPS: dict[str, tuple[str, ...]] = {
    "norm": ("layer_norm", "group_norm"),
    "matmul": ("matmul", "bmm", "mm", "einsum", "linear"),
    "attention": (
        "scaled_dot_product_attention",
        "multihead_attention",
        "multihead_attention_seq_first",
        "shifted_window_attention",
        "shifted_window_attention_v2",
    ),
    "softmax": ("softmax", "log_softmax"),
    "reduce": ("mean", "sum", "amax", "amin", "max", "min", "std", "var", "logsumexp"),
}

#: Element-wise operations per element of a softmax: max, subtract, exp, sum, divide.
SOFTMAX_OPS_PER_ELEMENT = 5
#: Element-wise operations per element of a normalization before its affine: the sums
#: for mean and variance (2), the squared deviation (1), subtract mean and scale (2).
NORM_OPS_PER_ELEMENT = 5


def _attention_geometry(layer: Layer) -> tuple[int, int, int]:
    """``(problems, queries, keys)`` of an attention layer.

    ``problems`` counts the independent score matrices (batch x heads, or windows x
    heads), each ``queries x keys``. The key length is read from the second input when
    there is one (keys, keys-and-values or values: all have the key length), else keys
    are the queries (self-attention on one tensor).
    """
    out = layer.out_shape
    keys = layer.in_shapes[1] if len(layer.in_shapes) > 1 else layer.in_shapes[0]
    if layer.op == "scaled_dot_product_attention":
        return _numel(out[:-2]), out[-2], keys[-2]
    if layer.op.startswith("multihead_attention"):
        axis = 1 if layer.op == "multihead_attention" and len(out) == 3 else 0
        queries = out[axis]
        batch = _numel(out) // (queries * layer.in_features)
        return batch * layer.groups, queries, keys[axis]
    b, h, w, _ = layer.in_shapes[0]  # window attention: windows over the padded map
    n = layer.kernel_h * layer.kernel_w
    return b * (h + layer.pad_h) * (w + layer.pad_w) // n * layer.groups, n, n


def _attention_macs(layer: Layer) -> int:
    """MACs of an attention layer, what FlopCounterMode counts (on meta tensors).

    Scaled dot-product attention: ``problems * L * S * (E + Ev)`` (``Q @ K^T`` and
    ``A @ V``). Multi-head and window attention, width ``E``: the projections of the
    queries, keys, values and output, ``(2 * q_tokens + 2 * k_tokens) * E * E``, plus
    ``2 * batch * L * S * E`` for the two products over all heads.
    """
    problems, queries, keys = _attention_geometry(layer)
    if layer.op == "scaled_dot_product_attention":
        return problems * queries * keys * (layer.in_features + layer.out_features)
    e, batch = layer.in_features, problems // layer.groups
    projections = 2 * batch * (queries + keys) * e * e
    return projections + 2 * batch * queries * keys * e


def _attention_vector_ops(layer: Layer) -> int:
    """Element-wise work of an attention layer.

    Per score: the softmax (:data:`SOFTMAX_OPS_PER_ELEMENT`) and the scaling (1); for
    window attention also the position-bias add (1) and, when the windows are shifted,
    the mask add (1). Projection biases: 1 per projected element. Swin-V2's cosine
    attention normalizes queries and keys: 3 per element of each.
    """
    problems, queries, keys = _attention_geometry(layer)
    scores = problems * queries * keys
    ops = (SOFTMAX_OPS_PER_ELEMENT + 1) * scores
    if layer.op == "scaled_dot_product_attention":
        return ops
    tokens = problems // layer.groups * (queries + keys) * layer.in_features
    if layer.op.startswith("shifted_window"):
        ops += scores * (2 if layer.stride_h or layer.stride_w else 1)
    if layer.op == "shifted_window_attention_v2":
        ops += 3 * tokens
    return ops + (2 * tokens if layer.bias else 0)


def _attention_params(layer: Layer) -> int:
    """Projection weights and biases (``4 E^2 + 4 E``) and Swin-V2's logit scales."""
    if layer.op == "scaled_dot_product_attention":
        return 0
    e = layer.in_features
    params = 4 * e * e + (4 * e if layer.bias else 0)
    return params + (layer.groups if layer.op == "shifted_window_attention_v2" else 0)


def _norm_vector_ops(layer: Layer) -> int:
    """:data:`NORM_OPS_PER_ELEMENT` per element, plus 1 each for the affine scale and shift."""
    per = NORM_OPS_PER_ELEMENT + (1 if layer.out_features else 0) + (1 if layer.bias else 0)
    return per * _numel(layer.in_shapes[0])


_VECTOR_OPS: dict[str, Callable[[Layer], int]] = {
    "norm": _norm_vector_ops,
    "softmax": lambda layer: SOFTMAX_OPS_PER_ELEMENT * _numel(layer.in_shapes[0]),
    "reduce": lambda layer: _numel(layer.in_shapes[0]),
    "matmul": lambda layer: _numel(layer.out_shape) if layer.bias else 0,
    "attention": _attention_vector_ops,
}


#: Data movements that write a new tensor; the others are views (no kernel at run time).
_COPIES = frozenset(
    {"contiguous", "pad", "roll", "index", "repeat", "patch_merging_pad", "relative_position_bias"}
)


class _Move(nn.Module):
    """A data movement rebuilt from its output shape (the operation's arguments are not kept).

    A view of the first input's elements (or a broadcast of one element, for ``expand``),
    or a copy of as many elements as the output holds for the operations that write a
    new tensor (:data:`_COPIES`): the bytes moved are the layer's, the arrangement is not.
    """

    def __init__(self, op: str, shape: Shape) -> None:
        super().__init__()
        self.copy = op in _COPIES
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        n, flat = _numel(self.shape), x.reshape(-1)
        if flat.numel() >= n:
            y = flat[:n].view(self.shape)
            return y.clone() if self.copy else y
        if self.copy:
            return flat.repeat(-(-n // flat.numel()))[:n].view(self.shape)
        return flat[:1].view((1,) * len(self.shape)).expand(self.shape)


def _norm_module(layer: Layer) -> nn.Module:
    """``nn.GroupNorm`` or ``nn.LayerNorm`` over the trailing dims holding ``in_features``."""
    x = layer.in_shapes[0]
    affine = layer.out_features > 0
    if layer.op == "group_norm":
        return nn.GroupNorm(layer.groups, x[1], affine=affine)
    k = next((k for k in range(1, len(x) + 1) if _numel(x[-k:]) == layer.in_features), 1)
    return nn.LayerNorm(x[-k:], elementwise_affine=affine, bias=layer.bias)


_MATMUL_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "matmul": torch.matmul,
    "bmm": torch.bmm,
    "mm": torch.mm,
    "linear": F.linear,
}


class _MatMul(nn.Module):
    """The product a ``matmul`` layer names (one input: the product of it with itself)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) == 1:
            xs = (xs[0], xs[0])
        if self.op.startswith("einsum:"):
            return torch.einsum(self.op.removeprefix("einsum:"), *xs)
        return _MATMUL_FUNCTIONS[self.op](*xs)


class _DotProductAttention(nn.Module):
    """``F.scaled_dot_product_attention(q, k, v[, mask])``; missing inputs repeat the last."""

    def forward(self, q: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        k = rest[0] if rest else q
        v = rest[1] if len(rest) > 1 else k
        mask = rest[2] if len(rest) > 2 else None
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class _MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` called like a layer: query[, key[, value]] -> output."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(
            layer.in_features,
            layer.groups,
            bias=layer.bias,
            batch_first=layer.op == "multihead_attention",
        )

    def forward(self, q: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        k = rest[0] if rest else q
        v = rest[1] if len(rest) > 1 else k
        return self.attn(q, k, v, need_weights=False)[0]


class _WindowAttention(nn.Module):
    """torchvision's ``shifted_window_attention`` with its own weights: (x, position bias)."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        c, heads = layer.in_features, layer.groups
        self.qkv = nn.Linear(c, 3 * c, bias=layer.bias)
        self.proj = nn.Linear(c, c, bias=layer.bias)
        v2 = layer.op == "shifted_window_attention_v2"
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0))) if v2 else None
        self.window = [layer.kernel_h, layer.kernel_w]
        self.shift = [layer.stride_h, layer.stride_w]
        self.heads = heads

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        from torchvision.models.swin_transformer import shifted_window_attention

        return shifted_window_attention(
            x,
            self.qkv.weight,
            self.proj.weight,
            position_bias,
            self.window,
            self.heads,
            shift_size=self.shift,
            qkv_bias=self.qkv.bias,
            proj_bias=self.proj.bias,
            logit_scale=self.logit_scale,
            training=False,
        )


def _attention_module(layer: Layer) -> nn.Module:
    if layer.op == "scaled_dot_product_attention":
        return _DotProductAttention()
    if layer.op.startswith("multihead_attention"):
        return _MultiheadAttention(layer)
    return _WindowAttention(layer)


def _softmax_module(layer: Layer) -> nn.Module:
    """Softmax along the last dimension whose length is ``in_features``."""
    shape = layer.in_shapes[0]
    dim = max((d for d, s in enumerate(shape) if s == layer.in_features), default=-1)
    return nn.LogSoftmax(dim=dim) if layer.op == "log_softmax" else nn.Softmax(dim=dim)


_REDUCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "mean": torch.mean,
    "sum": torch.sum,
    "amax": torch.amax,
    "max": torch.amax,
    "amin": torch.amin,
    "min": torch.amin,
    "std": torch.std,
    "var": torch.var,
    "logsumexp": torch.logsumexp,
}


def _reduced_dims(in_shape: Shape, out_shape: Shape) -> tuple[tuple[int, ...], bool]:
    """The dims a reduction from ``in_shape`` to ``out_shape`` removes, and keepdim."""
    if len(in_shape) == len(out_shape):
        dims = tuple(d for d, (a, b) in enumerate(zip(in_shape, out_shape, strict=True)) if a != b)
        return dims or (len(in_shape) - 1,), True
    dims, j = [], 0
    for d, size in enumerate(in_shape):
        if j < len(out_shape) and size == out_shape[j]:
            j += 1
        else:
            dims.append(d)
    return tuple(dims), False


class _Reduce(nn.Module):
    """The reduction ``op`` over the dims that turn the input shape into the output's."""

    def __init__(self, op: str, in_shape: Shape, out_shape: Shape) -> None:
        super().__init__()
        self.fn = _REDUCTIONS[op]
        self.dims, self.keepdim = _reduced_dims(in_shape, out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, dim=self.dims, keepdim=self.keepdim)


_MODULES: dict[str, Callable[[Layer], nn.Module]] = {
    "norm": _norm_module,
    "matmul": lambda layer: _MatMul(layer.op),
    "attention": _attention_module,
    "softmax": _softmax_module,
    "reduce": lambda layer: _Reduce(layer.op, layer.in_shapes[0], layer.out_shape),
}
