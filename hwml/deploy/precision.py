"""Numeric precision of a trained model: what the device runs it in, and what really ran.

:func:`supported_precisions` says, for each precision, whether the device runs it
natively, by emulation, or not at all; :func:`apply_precision` returns a copy of the model
in that precision and an info dict naming the dtypes that actually ran (weights of the
first convolution, the input the network saw, the output).

How each precision is applied:

* ``fp32`` — the model as is, TF32 forbidden in matrix products and convolutions.
* ``tf32`` — float32 weights and inputs, run with TF32 allowed in matrix products and
  cuDNN convolutions; the flags are set by :func:`hwml.hardware.tf32_math` around each
  forward pass and restored after it. CUDA with compute capability >= 8.0 only.
* ``bf16`` / ``fp16`` — weights (batch norm included) and input *cast* to the half type,
  not autocast: the whole forward pass runs in the half type with no casts between
  layers, which is what an inference deployment does and what the energy meter should
  see. The output stays in the half type (``output_dtype``); argmax accuracy is unaffected.
* ``int8`` — dynamic quantization of the dense (``nn.Linear``) layers with
  ``torch.ao.quantization.quantize_dynamic`` (int8 weights, activations quantized per
  batch, fbgemm/x86 kernels): CPU only. Convolutions stay float32 (``int8_layers`` says
  which layers were quantized). On CUDA there is no simple real int8 path in PyTorch
  for these layers, so int8 raises :class:`UnsupportedPrecisionError` there.
* ``fp8`` — dense layers whose sizes are multiples of 16 replaced by :class:`Fp8Linear`
  (float8 e4m3 weights and inputs with per-tensor scales, product by ``torch._scaled_mm``
  into bfloat16); convolutions and the other dense layers (the 10-way output layer, say)
  run in bfloat16 (``quantized_layers`` and ``bf16_layers`` list them). Needs CUDA
  compute capability >= 8.9 (Ada, Hopper) and at least one eligible layer; elsewhere
  :class:`UnsupportedPrecisionError`. PyTorch has a CPU
  reference ``_scaled_mm``, but it is not a native FP8 unit, so fp8 is refused on a CPU.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from hwml.hardware import (
    Device,
    as_torch_device,
    cpu_flags,
    cuda_bf16_supported,
    cuda_capability,
    math_settings,
    tf32_math,
)

__all__ = [
    "PRECISIONS",
    "Fp8Linear",
    "PrecisionModel",
    "UnsupportedPrecisionError",
    "apply_precision",
    "precision_context",
    "supported_precisions",
]

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "int8", "fp8")
"""Precisions :func:`apply_precision` knows."""

_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}
_FP8_ALIGN = 16


class UnsupportedPrecisionError(ValueError):
    """A precision that the device cannot run for real (the message names both)."""

    def __init__(self, precision: str, device: torch.device | str, reason: str, supported=()):
        self.precision = precision
        self.device = str(device)
        listed = ", ".join(supported) if supported else "none"
        super().__init__(
            f"precision {precision!r} is not supported on device {self.device}: {reason} "
            f"(runs here: {listed})"
        )


def supported_precisions(device: str | torch.device | Device) -> dict[str, str]:
    """How the device runs each precision: ``native``, ``emulated`` or ``unsupported``.

    ``native``: the hardware has units for it (tensor cores, AVX-512 BF16/AMX, int8 dot
    products); ``emulated``: PyTorch runs it correctly, but by conversion to a wider type
    (so it saves memory, not time); ``unsupported``: :func:`apply_precision` refuses it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`~hwml.hardware.Device`.
    """
    dev = as_torch_device(device)
    out = dict.fromkeys(PRECISIONS, "unsupported")
    out["fp32"] = "native"
    if dev.type == "cpu":
        flags = cpu_flags()
        out["bf16"] = "native" if flags & {"avx512_bf16", "amx_bf16"} else "emulated"
        out["fp16"] = "native" if flags & {"avx512_fp16", "amx_fp16"} else "emulated"
        out["int8"] = "native" if _dynamic_quantization_available() else "unsupported"
        return out
    if dev.type != "cuda":
        return out
    cap = cuda_capability(dev)
    if cap is None:
        return out
    out["tf32"] = "native" if cap >= (8, 0) else "unsupported"
    if cap >= (8, 0):
        out["bf16"] = "native"
    elif cuda_bf16_supported(including_emulation=True):
        out["bf16"] = "emulated"
    out["fp16"] = "native" if cap >= (5, 3) else "emulated"
    out["fp8"] = "native" if cap >= (8, 9) and hasattr(torch, "_scaled_mm") else "unsupported"
    return out


def _dynamic_quantization_available() -> bool:
    return hasattr(torch, "ao") and hasattr(torch.ao.quantization, "quantize_dynamic")


@contextlib.contextmanager
def precision_context(precision: str) -> Iterator[None]:
    """The math flags a precision runs under: TF32 allowed for ``tf32``, forbidden for
    every other precision; both flags are restored when the block exits."""
    with tf32_math(precision == "tf32"):
        yield


class PrecisionModel(nn.Module):
    """A model run in one precision: casts the input, runs under the precision's flags.

    Args:
        module: the converted model.
        precision: one of :data:`PRECISIONS`.
        input_dtype: dtype the input is cast to before the forward pass.
    """

    def __init__(self, module: nn.Module, precision: str, input_dtype: torch.dtype) -> None:
        super().__init__()
        self.module = module
        self.precision = precision
        self.input_dtype = input_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with precision_context(self.precision):
            return self.module(x.to(self.input_dtype))


class Fp8Linear(nn.Module):
    """A dense layer in FP8: e4m3 weight and input with per-tensor scales, ``_scaled_mm``.

    The weight is quantized once (scale ``max|w| / 448``); each call quantizes its input
    with a scale from that batch's ``max|x|``. The product accumulates in higher precision
    and is written in ``out_dtype``; the bias is added afterwards.

    Args:
        linear: the float layer; ``in_features`` and ``out_features`` must be multiples
            of 16 (what the FP8 GEMM kernels accept); the batch rows are zero-padded to a
            multiple of 16 and the padding's outputs dropped.
        out_dtype: dtype of the output (bfloat16 by default).
    """

    def __init__(self, linear: nn.Linear, out_dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        fp8 = torch.float8_e4m3fn
        self.fp8_max = float(torch.finfo(fp8).max)
        w = linear.weight.detach().float()
        w_scale = w.abs().max().clamp(min=1e-12) / self.fp8_max
        self.register_buffer("weight_fp8", (w / w_scale).to(fp8))
        self.register_buffer("weight_scale", w_scale.reshape(()))
        bias = linear.bias.detach().to(out_dtype) if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = out_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).float()
        rows = x2.shape[0]
        pad = -rows % _FP8_ALIGN  # the FP8 GEMM wants every dimension a multiple of 16
        if pad:
            x2 = torch.cat([x2, x2.new_zeros(pad, self.in_features)])
        x_scale = x2.abs().max().clamp(min=1e-12) / self.fp8_max
        x8 = (x2 / x_scale).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(
            x8,
            self.weight_fp8.t(),
            scale_a=x_scale.reshape(()),
            scale_b=self.weight_scale,
            out_dtype=self.out_dtype,
        )
        out = out[:rows]
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*lead, self.out_features)


def _first(model: nn.Module, kind: type[nn.Module]) -> nn.Module | None:
    return next((m for m in model.modules() if isinstance(m, kind)), None)


def _dense_weight_dtype(module: nn.Module) -> str | None:
    """Dtype of the first dense layer's weight as stored (float, quantized int8 or FP8)."""
    for m in module.modules():
        if isinstance(m, Fp8Linear):
            return str(m.weight_fp8.dtype)
        if m._get_name() == "DynamicQuantizedLinear":
            return str(m.weight().dtype)
        if isinstance(m, nn.Linear):
            return str(m.weight.dtype)
    return None


def _fp8_ok(linear: nn.Linear) -> bool:
    return not (linear.in_features % _FP8_ALIGN or linear.out_features % _FP8_ALIGN)


def _replace_linears(model: nn.Module, make, eligible=lambda m: True) -> list[str]:
    names = []
    for name, child in list(model.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.Linear) and eligible(sub):
                setattr(child, attr, make(sub))
                names.append(f"{name}.{attr}" if name else attr)
    return names


def _check(precision: str, dev: torch.device) -> dict[str, str]:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    support = supported_precisions(dev)
    if support[precision] == "unsupported":
        runs = [p for p, s in support.items() if s != "unsupported"]
        reasons = {
            "tf32": "TF32 needs CUDA compute capability >= 8.0",
            "fp8": "FP8 needs CUDA compute capability >= 8.9 and torch._scaled_mm",
            "int8": "int8 runs only as dynamic quantization of dense layers on a CPU",
            "bf16": "no bfloat16 support on this device",
        }
        raise UnsupportedPrecisionError(
            precision, dev, reasons.get(precision, "not available"), runs
        )
    return support


def apply_precision(
    model: nn.Module,
    example_input: torch.Tensor,
    precision: str,
    device: str | torch.device | Device,
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` that runs in ``precision`` on ``device``, and what ran.

    The original model is left untouched. The returned module takes float32 input (it
    casts the input itself) and is in eval mode; one forward pass on ``example_input``
    checks that it runs and records the dtypes.

    Args:
        model: a trained model (float32).
        example_input: an input batch (float32; moved to ``device``).
        precision: one of :data:`PRECISIONS`.
        device: where it will run.

    Returns:
        ``(module, info)``; info holds ``precision``, ``device``, ``support``
        (``native``/``emulated``), ``method`` (how it was applied), ``weight_dtype`` (of
        the first convolution, else the first dense layer), ``input_dtype`` (what the
        network saw), ``output_dtype``, ``tf32`` (the flag during the pass) and, for int8
        and fp8, ``quantized_layers``.

    Raises:
        UnsupportedPrecisionError: the device cannot run ``precision`` for real.
        ValueError: an unknown precision.
    """
    dev = as_torch_device(device)
    support = _check(precision, dev)
    module = copy.deepcopy(model).to(dev).eval()
    info: dict[str, Any] = {
        "precision": precision,
        "device": str(dev),
        "support": support[precision],
    }
    input_dtype = torch.float32
    if precision in ("fp32", "tf32"):
        info["method"] = "float32 weights and input" + (
            ", TF32 allowed" if precision == "tf32" else ""
        )
    elif precision in _HALF:
        input_dtype = _HALF[precision]
        module = module.to(input_dtype)
        info["method"] = f"weights and input cast to {input_dtype}"
    elif precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
            module = torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)
        info["method"] = "dynamic int8 quantization of dense layers; convolutions float32"
        info["quantized_layers"] = [
            n for n, m in module.named_modules() if m._get_name() == "DynamicQuantizedLinear"
        ]
    elif precision == "fp8":
        module = module.to(torch.bfloat16)
        info["quantized_layers"] = _replace_linears(module, Fp8Linear, _fp8_ok)
        info["bf16_layers"] = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        if not info["quantized_layers"]:
            raise UnsupportedPrecisionError(
                "fp8",
                dev,
                f"no dense layer has sizes that are multiples of {_FP8_ALIGN} (FP8 GEMM kernels)",
                [p for p, s in support.items() if s != "unsupported"],
            )
        input_dtype = torch.bfloat16
        info["method"] = (
            "dense layers FP8 (e4m3, torch._scaled_mm) where their sizes allow; "
            "convolutions and the other dense layers bfloat16"
        )
    wrapped = PrecisionModel(module, precision, input_dtype).eval()
    ref = _first(module, nn.Conv2d) or _first(module, nn.Linear)
    info["weight_dtype"] = str(ref.weight.dtype) if ref is not None else None
    info["dense_weight_dtype"] = _dense_weight_dtype(module)
    with torch.inference_mode():
        x = example_input.to(dev)
        with precision_context(precision):
            info["tf32"] = math_settings()["tf32_matmul"]
        out = wrapped(x)
    info["input_dtype"] = str(input_dtype)
    info["output_dtype"] = str(out.dtype)
    info["output_shape"] = tuple(out.shape)
    return wrapped, info
