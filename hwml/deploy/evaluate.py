"""Evaluating a deployed model: its test error, its size, and what one inference costs.

* :func:`evaluate_accuracy` — test error of a module or prepared callable on an
  :class:`~hwml.tasks.images.ImageData`, in fixed-size batches (the last one padded, so
  a CUDA graph captured at that batch serves every call);
* :func:`count_parameters` — parameters, nonzero parameters, and bytes as stored;
* :func:`measure_deployment` — runtime, power and energy per inference of a prepared
  callable at a batch size, through :func:`hwml.profile.measure_callable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hwml.deploy.execution import rebatch
from hwml.hardware import Device, as_torch_device
from hwml.profile import SweepOptions, measure_callable
from hwml.tasks.images import ImageData

__all__ = ["count_parameters", "evaluate_accuracy", "measure_deployment"]


def evaluate_accuracy(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    data: ImageData,
    *,
    batch: int = 256,
    device: str | torch.device | Device = "cpu",
    input_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Test error of a model or prepared callable on ``data``'s test set.

    Every call gets exactly ``batch`` images: the last batch is padded by repeating its
    images and the padding's predictions are dropped.

    Args:
        model: a module (put in eval mode) or a callable ``x -> logits``.
        data: the data set; its test images are used.
        batch: images per call (for a CUDA graph: the batch it was captured at).
        device: where the images are sent.
        input_dtype: cast the images to this dtype first (None: float32 as stored; the
            modules of :func:`~hwml.deploy.apply_precision` cast for themselves).

    Returns:
        ``test_error`` (fraction misclassified), ``errors``, ``n_test``, ``batch``.
    """
    dev = as_torch_device(device)
    if isinstance(model, nn.Module):
        model.eval()
    n = len(data.y_test)
    errors = 0
    with torch.inference_mode():
        for i in range(0, n, int(batch)):
            xb = data.x_test[i : i + int(batch)]
            m = len(xb)
            xb = rebatch(xb, int(batch)).to(dev)
            if input_dtype is not None:
                xb = xb.to(input_dtype)
            pred = model(xb)[:m].argmax(dim=1).cpu()
            errors += int((pred != data.y_test[i : i + m]).sum())
    return {"test_error": errors / n, "errors": errors, "n_test": n, "batch": int(batch)}


def count_parameters(model: nn.Module) -> dict[str, Any]:
    """Parameters and buffers of a model as stored.

    Returns:
        ``params`` (parameter elements), ``nonzero_params``, ``param_sparsity``
        (fraction of zeros), ``param_bytes`` (bytes of the parameters and buffers as
        stored: half types count two bytes, quantized and FP8 layers their packed size
        where PyTorch exposes it).
    """
    params = nonzero = nbytes = 0
    for p in model.parameters():
        dense = p.to_dense() if type(p.data).__name__.startswith("SparseSemi") else p.detach()
        params += dense.numel()
        nonzero += int((dense != 0).sum())
        nbytes += _stored_bytes(p)
    for b in model.buffers():
        nbytes += _stored_bytes(b)
    for m in model.modules():  # dynamically quantized layers keep their weights packed
        if m._get_name() == "DynamicQuantizedLinear":
            w = m.weight()
            params += w.numel()
            nonzero += int((w.int_repr() != 0).sum())
            nbytes += w.numel() * w.element_size()
    return {
        "params": params,
        "nonzero_params": nonzero,
        "param_sparsity": 1.0 - nonzero / params if params else math.nan,
        "param_bytes": nbytes,
    }


def _stored_bytes(t: torch.Tensor) -> int:
    data = t.data if isinstance(t, nn.Parameter) else t
    if type(data).__name__.startswith("SparseSemi"):
        return sum(x.numel() * x.element_size() for x in (data.packed, data.meta) if x is not None)
    return data.numel() * data.element_size()


def measure_deployment(
    fn: Callable[[torch.Tensor], Any],
    example_input: torch.Tensor,
    device: Device,
    *,
    batch: int | None = None,
    opts: SweepOptions | None = None,
) -> dict[str, Any]:
    """Runtime, power and energy of one inference of a prepared callable.

    The input (``example_input`` re-batched to ``batch``) is put on the device once;
    :func:`hwml.profile.measure_callable` then times ``fn(x)`` and measures its energy
    under ``torch.inference_mode``. By default the power window calls ``fn`` back to back
    exactly as it is deployed (``SweepOptions(graph=False)``): eager execution pays for
    the GPU idling between kernels while the host issues them, a ``cuda-graph`` callable
    replays its graph, so execution modes are compared by the energy a user pays. (With
    ``opts.graph`` the meter would capture ``fn`` into a graph of its own and measure the
    GPU work alone, which is the same for every execution mode.)

    Args:
        fn: from :func:`~hwml.deploy.prepare_execution` (or any ``x -> output``).
        example_input: an input (float32 for the modules of ``apply_precision``).
        device: an opened :class:`~hwml.hardware.Device` (with the energy meter for power).
        batch: inference batch (None: that of ``example_input``).
        opts: measurement options (default: :class:`~hwml.profile.SweepOptions` with
            ``graph=False`` and no progress bar).

    Returns:
        :func:`measure_callable`'s row (``runtime_ms``, ``power_w``, ``energy_mj``, ...)
        plus ``batch``, ``runtime_per_image_ms`` and ``energy_per_image_mj`` (NaN
        without power).
    """
    opts = opts or SweepOptions(progress=False, graph=False)
    x = example_input if batch is None else rebatch(example_input, batch)
    x = x.to(device.torch_device)
    b = int(x.shape[0])
    with torch.inference_mode():
        row = measure_callable(lambda: fn(x), device, opts)
        device.synchronize()
    row["batch"] = b
    row["runtime_per_image_ms"] = row["runtime_ms"] / b
    energy = row.get("energy_mj", math.nan)
    row["energy_per_image_mj"] = energy / b if energy == energy else math.nan
    return row
