"""Three numbers that summarise a device for a roofline: FLOP/s, bytes/s, per-call cost.

:func:`measure_ceilings` is a quick microbenchmark, small enough to run on a laptop CPU
in a few seconds, meant for :class:`hwml.predict.transfer.RooflineTransfer` (a runtime
model of a device on which no layer has been timed yet). It is rougher than
:func:`hwml.profile.calibrate` (which also measures the energy counter and every dtype):

* **peak FLOP/s**: a square matrix product ``n x n`` (``2 n^3`` operations) in ``dtype``;
* **bandwidth**: a copy of ``copy_bytes`` between two buffers, counted as bytes read plus
  bytes written (the convention of ``calibrate`` and of ``total_bytes`` in layer tables);
* **overhead**: the median time of adding a scalar to a one-element tensor, i.e. what a
  framework call costs when it does no work (dispatch, and on a GPU the kernel launch
  as CUDA events see it).

Each number is the median of timed calls after warm-up (:mod:`hwml.hardware` timers).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from hwml.hardware import CpuTimer, CudaTimer

__all__ = ["measure_ceilings"]


def measure_ceilings(
    device: str | torch.device = "cpu",
    *,
    dtype: str = "float32",
    matmul_n: int | None = None,
    copy_bytes: int | None = None,
    budget_ms: float = 100.0,
) -> dict[str, Any]:
    """Measure the peak arithmetic rate, the copy bandwidth and the per-call overhead.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (or a ``torch.device``).
        dtype: torch dtype name of the matrix product (``"float32"``, ``"float16"``, ...).
        matmul_n: Side of the square matrices (default 512 on a CPU, 8192 on a GPU).
        copy_bytes: Size of the copied buffer (default 128 MiB on a CPU, larger than its caches;
            1 GiB on a GPU).
        budget_ms: Time budget of the timed calls of each of the three measurements.

    Returns:
        ``peak_flops_per_s``, ``bandwidth_bytes_per_s``, ``overhead_ms`` (the three
        arguments of :class:`~hwml.predict.transfer.RooflineTransfer`), plus
        ``device``, ``dtype``, ``matmul_n`` and ``copy_bytes`` saying what was measured.

    Raises:
        ValueError: for an unknown dtype or non-positive sizes.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown torch dtype {dtype!r}")
    n = int(matmul_n if matmul_n is not None else (8192 if cuda else 512))
    nbytes = int(copy_bytes if copy_bytes is not None else (1 << 30 if cuda else 1 << 27))
    if n < 1 or nbytes < 4:
        raise ValueError(f"matmul_n and copy_bytes must be positive, got {n} and {nbytes}")
    timer = CudaTimer(dev) if cuda else CpuTimer()

    a = torch.randn(n, n, device=dev).to(dt)
    b = torch.randn(n, n, device=dev).to(dt)
    t_mm = timer.time(lambda a=a, b=b: a @ b, warmup=2, budget_ms=budget_ms).median_ms
    del a, b

    src = torch.empty(nbytes // 4, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    t_copy = timer.time(lambda s=src, d=dst: d.copy_(s), warmup=2, budget_ms=budget_ms).median_ms
    del src, dst

    tiny = torch.zeros(1, device=dev, dtype=dt)
    t_tiny = timer.time(lambda: tiny + 1, warmup=3, budget_ms=budget_ms).median_ms

    out = {
        "peak_flops_per_s": 2.0 * n**3 / (t_mm / 1e3),
        "bandwidth_bytes_per_s": 2.0 * (nbytes // 4 * 4) / (t_copy / 1e3),
        "overhead_ms": float(t_tiny),
        "device": str(dev),
        "dtype": dtype,
        "matmul_n": n,
        "copy_bytes": nbytes // 4 * 4,
    }
    for key in ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms"):
        if not (math.isfinite(out[key]) and out[key] > 0):  # a clock too coarse for the call
            raise RuntimeError(f"measure_ceilings: {key} came out as {out[key]}; raise the sizes")
    return out
