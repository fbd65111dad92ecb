"""Timing on the device: a timer per device type, CUDA-graph capture, queue markers.

:class:`CudaTimer` times a callable with CUDA events after warm-up (and the host's share
of one call, and CUDA-graph replays of it); :class:`CpuTimer` does the same with a
monotonic clock. :class:`Timing` is what either returns. Markers (a CUDA event with
timing, or :class:`CpuMarker`) tell when a piece of queued work ran.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = [
    "CapturedGraph",
    "CpuMarker",
    "CpuTimer",
    "CudaTimer",
    "GraphCaptureError",
    "GraphedCallable",
    "Marker",
    "Timer",
    "Timing",
    "summarize",
]

# ====================================================================== timing


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one workload.

    Attributes:
        median_ms: Median time of one call (ms).
        p10_ms: 10th percentile (ms).
        p90_ms: 90th percentile (ms).
        cv: Coefficient of variation (standard deviation / mean) of the samples.
        repeats: Number of timed samples.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float
    repeats: int


def summarize(samples_ms: list[float]) -> Timing:
    """Median, 10th/90th percentiles and coefficient of variation of ``samples_ms``."""
    if not samples_ms:
        raise ValueError("no timing samples")
    xs = sorted(samples_ms)
    n = len(xs)

    def pct(q: float) -> float:
        pos = q * (n - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    mean = statistics.fmean(xs)
    sd = statistics.pstdev(xs) if n > 1 else 0.0
    return Timing(statistics.median(xs), pct(0.10), pct(0.90), sd / mean if mean > 0 else 0.0, n)


class Timer(Protocol):
    """Times a zero-argument callable."""

    name: str

    def time(
        self,
        fn: Callable[[], Any],
        *,
        warmup: int = 5,
        repeats: int | None = None,
        budget_ms: float = 200.0,
    ) -> Timing:
        """Time ``fn``: ``warmup`` untimed calls, then ``repeats`` timed ones.

        When ``repeats`` is None it is chosen so the timed calls take about
        ``budget_ms`` (between 10 and 200 calls).
        """
        ...

    def synchronize(self) -> None:
        """Wait until all queued work has finished."""
        ...


def _auto_repeats(estimate_ms: float, budget_ms: float, lo: int = 10, hi: int = 200) -> int:
    if estimate_ms <= 0 or not math.isfinite(estimate_ms):
        return hi
    return int(min(hi, max(lo, budget_ms / estimate_ms)))


class CpuTimer:
    """Wall-clock timer on the CPU (``time.perf_counter_ns``)."""

    name = "cpu-perf-counter"

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._clock = clock

    def synchronize(self) -> None:
        return None

    def time(
        self,
        fn: Callable[[], Any],
        *,
        warmup: int = 3,
        repeats: int | None = None,
        budget_ms: float = 200.0,
    ) -> Timing:
        for _ in range(max(warmup, 1)):
            t0 = self._clock()
            fn()
            first_ms = (self._clock() - t0) / 1e6
        n = repeats or _auto_repeats(first_ms, budget_ms, lo=5, hi=100)
        samples = []
        for _ in range(n):
            t0 = self._clock()
            fn()
            samples.append((self._clock() - t0) / 1e6)
        return summarize(samples)


class CudaTimer:
    """CUDA-event timer: each call is bracketed by two events on the current stream."""

    name = "cuda-events"

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def time(
        self,
        fn: Callable[[], Any],
        *,
        warmup: int = 5,
        repeats: int | None = None,
        budget_ms: float = 200.0,
    ) -> Timing:
        for _ in range(max(warmup, 1)):
            fn()
        # Estimate one call from a short burst, then size the timed run.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(3):
            fn()
        end.record()
        end.synchronize()
        n = repeats or _auto_repeats(start.elapsed_time(end) / 3, budget_ms)
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(n)
        ]
        for a, b in events:
            a.record()
            fn()
            b.record()
        torch.cuda.synchronize(self.device)
        return summarize([a.elapsed_time(b) for a, b in events])

    def capture(self, fn: Callable[[], Any], calls: int = 1) -> CapturedGraph:
        """Capture ``calls`` back-to-back calls of ``fn`` into one CUDA graph.

        ``fn`` must already be warmed up (cuDNN's autotuning done). Outputs of the
        captured calls are dropped as they go, so the graph's memory pool holds about
        one call's tensors.

        Raises:
            GraphCaptureError: naming why the workload cannot be captured.
        """
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(2):
                    fn()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(calls):
                    fn()
            graph.replay()
            torch.cuda.synchronize(self.device)
        except Exception as err:  # noqa: BLE001 - the reason is recorded with the row
            torch.cuda.synchronize(self.device)
            first = str(err).splitlines()[0][:160] if str(err) else ""
            raise GraphCaptureError(f"{type(err).__name__}: {first}") from err
        return CapturedGraph(graph, calls)

    def time_graph(self, graph: CapturedGraph, *, repeats: int = 30) -> Timing:
        """Timing of one *call* replayed from ``graph`` (launch overhead removed)."""
        samples = []
        for _ in range(repeats):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            graph.replay()
            b.record()
            b.synchronize()
            samples.append(a.elapsed_time(b) / graph.calls)
        return summarize(samples)

    def host_dispatch_ms(self, fn: Callable[[], Any], *, repeats: int = 15) -> float:
        """Median host time to issue one call into an empty queue (ms)."""
        samples = []
        for _ in range(repeats):
            torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        torch.cuda.synchronize(self.device)
        return statistics.median(samples)


class GraphCaptureError(RuntimeError):
    """A workload could not be captured into a CUDA graph (the message says why)."""


@dataclass
class CapturedGraph:
    """A CUDA graph holding ``calls`` calls of a workload; :meth:`replay` launches them all."""

    graph: Any
    calls: int

    def replay(self) -> None:
        self.graph.replay()


class GraphedCallable:
    """A one-input callable captured into a CUDA graph; calling it replays the graph.

    The input's shape and dtype are fixed at capture: a call copies its argument into the
    graph's static input, replays the graph and returns the graph's static output, which
    the next call overwrites (clone it to keep it). The callable is warmed up on a side
    stream before capture, so cuDNN's autotuning and lazy initialization stay outside the
    graph.

    The callable keeps ``fn`` (and so the module it calls) alive: a graph replays the
    kernels on the memory they saw at capture, and weights freed after capture would be
    reused by other tensors and read as garbage.

    Args:
        fn: ``x -> tensor``, run once per replay.
        example: an input of the shape and dtype every later call will pass (on the CUDA
            device the graph runs on).
        warmup: calls before capture.

    Raises:
        GraphCaptureError: ``example`` is not on a CUDA device, or capture failed (the
            message says why).
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup: int = 3):
        if example.device.type != "cuda":
            raise GraphCaptureError(
                f"a CUDA graph needs a CUDA device; the input is on {example.device}"
            )
        device = example.device
        self.fn = fn  # keeps the weights the graph reads allocated
        self.static_input = example.detach().clone()
        try:
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                for _ in range(max(1, int(warmup))):
                    fn(self.static_input)
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.static_output = fn(self.static_input)
            torch.cuda.synchronize(device)
        except Exception as err:  # noqa: BLE001 - re-raised with the reason
            torch.cuda.synchronize(device)
            first = str(err).splitlines()[0][:160] if str(err) else ""
            raise GraphCaptureError(f"{type(err).__name__}: {first}") from err

    def __call__(self, x: torch.Tensor) -> Any:
        if x.shape != self.static_input.shape or x.dtype != self.static_input.dtype:
            raise ValueError(
                f"this CUDA graph was captured for input {tuple(self.static_input.shape)} "
                f"{self.static_input.dtype}, got {tuple(x.shape)} {x.dtype}; re-batch the "
                "input (hwml.deploy.rebatch) or capture again"
            )
        self.static_input.copy_(x)
        self.graph.replay()
        return self.static_output


class Marker(Protocol):
    """A point in a device's queue of work (a CUDA event with timing on a GPU)."""

    def synchronize(self) -> None:
        """Block until the device has reached this marker."""
        ...

    def elapsed_time(self, later: Any) -> float:
        """Device time from this marker to ``later`` (ms)."""
        ...


@dataclass(frozen=True)
class CpuMarker:
    """A :class:`Marker` for a device that works synchronously (the CPU): a clock reading."""

    t_s: float

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, later: CpuMarker) -> float:
        return (later.t_s - self.t_s) * 1e3
