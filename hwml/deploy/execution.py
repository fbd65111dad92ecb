"""Execution mode of a model: eager, CUDA-graph replay, or ``torch.compile``.

An execution mode changes how the same arithmetic is issued to the device, not the
arithmetic (up to the kernels a compiler fuses), so accuracy should not move while
runtime and energy may:

* ``eager`` — PyTorch's normal dispatch, one kernel launch per operation;
* ``cuda-graph`` — the forward pass captured once into a CUDA graph and replayed
  (:class:`hwml.hardware.GraphedCallable`): no per-launch host cost; the input shape is
  fixed at capture and the returned tensor is overwritten by the next call. CUDA only.
* ``compile`` — ``torch.compile`` (``inductor`` by default), compiled on the example
  input during preparation. If the backend cannot compile here (no C++/Triton toolchain,
  say), ``fallback="eager"`` returns the eager model and says so in ``info``, and
  ``fallback="error"`` (the default) raises :class:`ExecutionModeError`.

Batch size is not a mode but a parameter of measurement: :func:`rebatch` makes an input
of any batch from an example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hwml.hardware import Device, GraphCaptureError, GraphedCallable, as_torch_device

__all__ = ["EXECUTION_MODES", "ExecutionModeError", "prepare_execution", "rebatch"]

EXECUTION_MODES: tuple[str, ...] = ("eager", "cuda-graph", "compile")
"""Modes :func:`prepare_execution` knows."""


class ExecutionModeError(RuntimeError):
    """An execution mode that cannot run here (the message names the mode and why)."""


def rebatch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` with ``batch`` samples: the first ``batch`` when it has more, its samples
    repeated in order when it has fewer (a contiguous new tensor either way)."""
    batch = int(batch)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot re-batch an empty input")
    reps = -(-batch // n)
    if reps > 1:
        x = x.repeat(reps, *([1] * (x.dim() - 1)))
    return x[:batch].contiguous()


def prepare_execution(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    example_input: torch.Tensor,
    mode: str,
    device: str | torch.device | Device,
    *,
    compile_backend: str | Callable[..., Any] = "inductor",
    compile_mode: str | None = None,
    fallback: str = "error",
) -> tuple[Callable[[torch.Tensor], torch.Tensor], dict[str, Any]]:
    """A callable ``x -> output`` that runs ``model`` in an execution mode, warmed up.

    The callable runs under ``torch.inference_mode`` and with the model in eval mode
    (the model itself is not copied: do not train it while the callable is in use).

    Args:
        model: a module (or a callable such as :class:`~hwml.deploy.PrecisionModel`).
        example_input: an input batch; for ``cuda-graph`` every later call must have its
            shape and dtype (see :func:`rebatch`).
        mode: one of :data:`EXECUTION_MODES`.
        device: where it runs (the model must already be there).
        compile_backend: ``torch.compile`` backend for ``compile``.
        compile_mode: ``torch.compile`` mode (None: the default).
        fallback: for ``compile`` when the backend fails: ``"error"`` or ``"eager"``.

    Returns:
        ``(fn, info)``; info: ``mode`` (what was asked), ``ran`` (what runs: the mode, or
        ``eager`` after a fallback), ``device``, ``input_shape``, and ``fallback_reason``
        or ``compile_backend`` where they apply.

    Raises:
        ExecutionModeError: ``cuda-graph`` off CUDA or capture failed; ``compile`` failed
            with ``fallback="error"``.
        ValueError: an unknown mode or fallback.
    """
    if mode not in EXECUTION_MODES:
        raise ValueError(f"unknown execution mode {mode!r}; known: {', '.join(EXECUTION_MODES)}")
    if fallback not in ("error", "eager"):
        raise ValueError(f"fallback must be 'error' or 'eager', got {fallback!r}")
    dev = as_torch_device(device)
    if isinstance(model, nn.Module):
        model.eval()
    x = example_input.to(dev)
    info: dict[str, Any] = {
        "mode": mode,
        "ran": mode,
        "device": str(dev),
        "input_shape": tuple(x.shape),
    }

    def eager(inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(inp)

    if mode == "eager":
        eager(x)
        return eager, info
    if mode == "cuda-graph":
        if dev.type != "cuda":
            raise ExecutionModeError(
                f"execution mode 'cuda-graph' needs a CUDA device, got {dev}; use 'eager' "
                "or 'compile' here"
            )
        try:
            graphed = GraphedCallable(eager, x)
        except GraphCaptureError as err:
            raise ExecutionModeError(
                f"execution mode 'cuda-graph' failed to capture: {err}"
            ) from err
        return graphed, info
    # compile
    info["compile_backend"] = str(compile_backend)

    def run_compiled(inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(inp)

    try:  # an unknown backend fails here, a missing toolchain at the first call
        compiled = torch.compile(model, backend=compile_backend, mode=compile_mode)
        run_compiled(x)  # compiles here, not at the first measured call
    except Exception as err:  # noqa: BLE001 - the backend's own errors vary
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        if fallback == "error":
            raise ExecutionModeError(
                f"execution mode 'compile' (backend {compile_backend!r}) failed on {dev}: {reason}"
            ) from err
        info.update(ran="eager", fallback_reason=reason)
        eager(x)
        return eager, info
    return run_compiled, info
