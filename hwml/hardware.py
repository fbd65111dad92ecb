"""The only door to the device: timers, the NVML energy meter, memory and device facts.

Everything that touches ``torch.cuda`` timing or imports ``pynvml`` lives here, behind
three small interfaces:

* a timer (:class:`CudaTimer` with CUDA events, :class:`CpuTimer` with a monotonic clock)
  that times a callable after warm-up and reports the median and spread;
* an energy meter (:class:`NvmlEnergyMeter` on the GPU's total-energy counter,
  :class:`NullEnergyMeter` when no counter exists) that measures energy per call and
  average power over a window between two counter updates, reading the counter from a
  background thread (:class:`CounterPoller`) while the device's queue stays full;
* markers in the device's queue (CUDA events with timing; :class:`CpuMarker` on a CPU)
  that tell when each chunk of work ran, and CUDA-graph capture for a GPU runtime free
  of launch overhead (:meth:`CudaTimer.capture`);
* a :class:`Device` bundling them with memory readings and provenance facts.

Tests patch ``pynvml`` (autospec) and replay counter traces so everything except the
measurement itself runs on a CPU-only machine.

Units: milliseconds (``*_ms``), seconds (``*_s``), watts (``*_w``), millijoules
(``*_mj``), bytes (``*_bytes``), megahertz (``*_mhz``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import platform
import statistics
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

log = logging.getLogger(__name__)

__all__ = [
    "DeviceUnavailableError",
    "Timing",
    "PowerReading",
    "Timer",
    "CpuTimer",
    "CudaTimer",
    "EnergyMeter",
    "Marker",
    "CpuMarker",
    "CounterPoller",
    "NvmlEnergyMeter",
    "GraphCaptureError",
    "CapturedGraph",
    "NullEnergyMeter",
    "Device",
    "open_device",
    "summarize",
    "cudnn_autotune",
    "tf32_matmul",
    "math_settings",
    "use_device",
    "rng_devices",
    "is_oom",
    "release_memory",
    "wait_for",
    "cuda_device_names",
    "DATASET_FACTS",
]


class DeviceUnavailableError(RuntimeError):
    """Raised when the requested device does not exist on this machine."""


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


# ====================================================================== energy


@dataclass(frozen=True)
class PowerReading:
    """Energy over a window aligned to energy-counter updates while a workload ran.

    Attributes:
        power_w: Average power over the window, ΔE / Δt (W); NaN when not measured.
        window_s: Window length (s).
        energy_mj: Energy the counter accumulated over the window, ΔE (mJ).
        periods: Counter updates spanned by the window.
        calls: Workload calls completed inside the window (fractional at its edges).
        energy_per_call_mj: ΔE / calls from this same window (mJ).
        busy_fraction: Share of the window the device spent executing the workload,
            from device-side timestamps (see :meth:`NvmlEnergyMeter.measure`).
        device_ms_per_call: Device time of one call while the window ran (ms): the
            executing time inside the window divided by ``calls``.
        window_start_s: Clock time of the window's first counter update (s).
        window_end_s: Clock time of its last counter update (s).
    """

    power_w: float
    window_s: float
    energy_mj: float
    periods: int
    calls: float
    energy_per_call_mj: float = math.nan
    busy_fraction: float = math.nan
    device_ms_per_call: float = math.nan
    window_start_s: float = math.nan
    window_end_s: float = math.nan

    @classmethod
    def missing(cls, calls: float = 0) -> PowerReading:
        """A reading of nothing: every number NaN (never zero)."""
        return cls(math.nan, math.nan, math.nan, 0, calls)


class Marker(Protocol):
    """A point in a device's queue of work (a CUDA event with timing on a GPU)."""

    def synchronize(self) -> None:
        """Block until the device has reached this marker."""
        ...

    def elapsed_time(self, later: Any) -> float:
        """Device time from this marker to ``later`` (ms)."""
        ...


class EnergyMeter(Protocol):
    """Measures the energy a device spends while a workload runs back to back."""

    available: bool

    def update_period_s(self, samples: int = 20) -> float:
        """Measured time between two updates of the energy counter (s)."""
        ...

    def idle_power_w(self, duration_s: float = 1.0) -> float:
        """Average power with nothing running (W)."""
        ...

    def measure(
        self,
        launch: Callable[[], Any],
        marker: Callable[[], Marker],
        *,
        launch_ms: float,
        calls_per_launch: int = 1,
        periods: int = 3,
        device_ms_per_call: float | None = None,
    ) -> PowerReading:
        """Energy per call and average power while ``launch`` runs back to back."""
        ...


class NullEnergyMeter:
    """Stands in when no energy counter exists: every reading is NaN, never zero."""

    available = False

    def __init__(self, reason: str = "no energy counter") -> None:
        self.reason = reason

    def update_period_s(self, samples: int = 20) -> float:
        return math.nan

    def idle_power_w(self, duration_s: float = 1.0) -> float:
        return math.nan

    def measure(
        self,
        launch: Callable[[], Any],
        marker: Callable[[], Marker],
        *,
        launch_ms: float,
        calls_per_launch: int = 1,
        periods: int = 3,
        device_ms_per_call: float | None = None,
    ) -> PowerReading:
        return PowerReading.missing()


class CounterPoller:
    """Reads an energy counter in a background thread and timestamps each change.

    One read of NVML's total-energy counter costs milliseconds (2-3 ms median on an
    H200, up to ~18 ms), so it must never sit between two launches of the workload.
    This thread reads the counter as fast as it can; a change's time is estimated as
    the midpoint between the start of the read that still saw the old value and the
    start of the read that saw the new one (error: half a read either way, the same
    distribution at both ends of a window).

    Use as a context manager; ``changes`` holds ``(time_s, value_mj)`` pairs.

    Args:
        read_mj: Reads the counter (mJ).
        clock: Monotonic clock (s), the same one the caller timestamps with.
    """

    def __init__(self, read_mj: Callable[[], int], clock: Callable[[], float]) -> None:
        self.read_mj = read_mj
        self.clock = clock
        self.changes: list[tuple[float, int]] = []
        self.first: tuple[float, int] | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hwml-energy-poller", daemon=True)

    def _run(self) -> None:
        try:
            t_prev = self.clock()
            last = self.read_mj()
            self.first = (t_prev, last)
            self._ready.set()
            while not self._stop.is_set():
                t = self.clock()
                value = self.read_mj()
                if value != last:
                    self.changes.append(((t_prev + t) / 2, value))
                    last = value
                t_prev = t
        except BaseException as err:  # noqa: BLE001 - reported to the measuring thread
            self.error = err
            self._ready.set()

    def __enter__(self) -> CounterPoller:
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def changes_after(self, t: float) -> list[tuple[float, int]]:
        """Changes observed after clock time ``t``."""
        return [c for c in list(self.changes) if c[0] > t]


class NvmlEnergyMeter:
    """Energy from NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``).

    The counter (mJ since the driver loaded) changes only every ~100 ms and each read
    takes milliseconds, so the meter reads it from a background :class:`CounterPoller`
    while the measuring thread keeps the device's queue full: it enqueues the workload
    in chunks of about ``chunk_ms``, brackets each chunk with two device markers (CUDA
    events) and blocks only when more than ``queue_ms`` of work is waiting. The window
    opens on the first counter update after the queue first filled and closes
    ``periods`` updates later. Everything in a reading comes from that one window:

    * ``energy_mj`` = ΔE between the two updates; ``power_w`` = ΔE / Δt;
    * ``calls`` = calls completed between the two update times, read off the markers'
      device timestamps (interpolated inside the chunk at each edge);
    * ``energy_per_call_mj`` = ΔE / calls;
    * ``busy_fraction`` = device time spent inside chunks during the window / window;
      when ``device_ms_per_call`` (the pure device time of one call, e.g. from a CUDA
      graph) is given, calls x that time / window instead, which also counts the
      device's idle gaps *inside* a chunk of eagerly launched calls.

    The one-second-averaged ``nvmlDeviceGetPowerUsage`` is never used.

    Args:
        handle: NVML device handle.
        nvml: The ``pynvml`` module (injected so tests can pass a fake).
        clock: Monotonic clock in seconds.
        timeout_s: Give up (NaN reading, warning) if the counter does not move for this long.
        chunk_ms: Device work enqueued between two markers (ms).
        queue_ms: Device work allowed to wait in the queue (ms).
    """

    available = True

    def __init__(
        self,
        handle: Any,
        nvml: Any,
        clock: Callable[[], float] = time.perf_counter,
        timeout_s: float = 5.0,
        chunk_ms: float = 1.0,
        queue_ms: float = 20.0,
    ) -> None:
        self.handle = handle
        self.nvml = nvml
        self.clock = clock
        self.timeout_s = timeout_s
        self.chunk_ms = chunk_ms
        self.queue_ms = queue_ms

    def read_mj(self) -> int:
        """The counter's current value (mJ)."""
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def _poller(self) -> CounterPoller:
        return CounterPoller(self.read_mj, self.clock)

    def _wait_changes(self, poller: CounterPoller, after: float, n: int) -> list[tuple[float, int]]:
        deadline = self.clock() + self.timeout_s * n
        while True:
            got = poller.changes_after(after)
            if len(got) >= n:
                return got[:n]
            if poller.error is not None:
                raise poller.error
            if self.clock() > deadline:
                raise TimeoutError(f"energy counter did not change for {self.timeout_s} s")
            time.sleep(0.002)

    def update_period_s(self, samples: int = 20) -> float:
        """Median gap between counter updates (s), seen by the poller thread."""
        with self._poller() as poller:
            got = self._wait_changes(poller, -math.inf, samples + 1)
        return statistics.median(b[0] - a[0] for a, b in itertools.pairwise(got))

    def idle_power_w(self, duration_s: float = 1.0) -> float:
        """Idle power: ΔE/Δt between counter updates spanning about ``duration_s`` (W)."""
        period = self.update_period_s(samples=3)
        periods = max(2, round(duration_s / period)) if period > 0 else 5
        with self._poller() as poller:
            got = self._wait_changes(poller, -math.inf, periods + 1)
        (t0, e0), (t1, e1) = got[0], got[-1]
        return (e1 - e0) / 1000.0 / (t1 - t0)

    def measure(
        self,
        launch: Callable[[], Any],
        marker: Callable[[], Marker],
        *,
        launch_ms: float,
        calls_per_launch: int = 1,
        periods: int = 3,
        device_ms_per_call: float | None = None,
    ) -> PowerReading:
        """Energy per call and average power while ``launch`` runs back to back.

        Args:
            launch: Enqueues the workload once (asynchronous on a GPU): one call, or a
                CUDA graph holding ``calls_per_launch`` calls.
            marker: Records a device marker after the work enqueued so far (a CUDA
                event with timing) and returns it.
            launch_ms: Device time of one launch, measured beforehand (ms); sizes the
                chunks and the queue.
            calls_per_launch: Workload calls in one launch.
            periods: Counter updates the window spans (at least 1).
            device_ms_per_call: Pure device time of one call (ms), if known; used for
                the busy fraction (see the class docstring).

        Returns:
            The :class:`PowerReading`; NaN numbers (and a warning) if the counter stalls.
        """
        if periods < 1:
            raise ValueError(f"periods must be >= 1, got {periods}")
        launch_ms = launch_ms if launch_ms > 0 and math.isfinite(launch_ms) else 1e-3
        per_chunk = max(1, math.ceil(self.chunk_ms / launch_ms))
        max_pending = max(2, math.ceil(self.queue_ms / (per_chunk * launch_ms)))
        chunks: list[tuple[Any, Any, int]] = []  # (start marker, end marker, calls after)
        pending: deque[Any] = deque()
        calls = 0
        try:
            with self._poller() as poller:
                anchor = marker()
                anchor.synchronize()
                t_anchor = self.clock()
                t_full: float | None = None
                deadline = t_anchor + self.timeout_s * (periods + 2)
                while True:
                    start = marker()
                    for _ in range(per_chunk):
                        launch()
                    calls += per_chunk * calls_per_launch
                    end = marker()
                    chunks.append((start, end, calls))
                    pending.append(end)
                    while len(pending) > max_pending:
                        pending.popleft().synchronize()
                        if t_full is None:
                            t_full = self.clock()
                    if t_full is not None and len(poller.changes_after(t_full)) > periods:
                        break
                    if poller.error is not None:
                        raise poller.error
                    if self.clock() > deadline:
                        raise TimeoutError(
                            f"energy counter did not change {periods + 1} times in "
                            f"{self.timeout_s * (periods + 2):.0f} s"
                        )
                window = poller.changes_after(t_full)[: periods + 1]
            chunks[-1][1].synchronize()
        except TimeoutError as err:
            warnings.warn(f"power not measured: {err}", RuntimeWarning, stacklevel=2)
            return PowerReading.missing(calls)
        (t_a, e_a), (t_b, e_b) = window[0], window[-1]
        done, busy_ms = _calls_between(anchor, t_anchor, chunks, t_a, t_b)
        window_s = t_b - t_a
        energy = float(e_b - e_a)
        if device_ms_per_call is not None and math.isfinite(device_ms_per_call):
            busy = done * device_ms_per_call / (window_s * 1e3)
        else:
            busy = busy_ms / (window_s * 1e3)
        return PowerReading(
            power_w=energy / 1000.0 / window_s if window_s > 0 else math.nan,
            window_s=window_s,
            energy_mj=energy,
            periods=periods,
            calls=done,
            energy_per_call_mj=energy / done if done > 0 else math.nan,
            busy_fraction=busy,
            device_ms_per_call=busy_ms / done if done > 0 else math.nan,
            window_start_s=t_a,
            window_end_s=t_b,
        )


def _calls_between(
    anchor: Any, t_anchor: float, chunks: Sequence[tuple[Any, Any, int]], t_a: float, t_b: float
) -> tuple[float, float]:
    """Calls completed and device time spent in chunks between clock times ``t_a`` and ``t_b``.

    Each chunk's start and end are placed on the clock through the device's own
    timestamps: ``t_anchor`` is when the anchor marker was seen complete, and a marker's
    time is ``t_anchor`` plus its device time after the anchor. Calls within a chunk are
    spread evenly over it.

    Returns:
        ``(calls, busy_ms)``.
    """
    calls = 0.0
    busy_ms = 0.0
    before = 0
    for start, end, after in chunks:
        s = t_anchor + anchor.elapsed_time(start) / 1e3
        e = t_anchor + anchor.elapsed_time(end) / 1e3
        lo, hi = max(s, t_a), min(e, t_b)
        if hi > lo:
            share = (hi - lo) / (e - s) if e > s else 1.0
            calls += share * (after - before)
            busy_ms += (hi - lo) * 1e3
        elif e <= t_a or s >= t_b:
            pass
        before = after
    return calls, busy_ms


# ====================================================================== settings


@contextlib.contextmanager
def cudnn_autotune(enabled: bool | None) -> Iterator[None]:
    """Turn cuDNN's per-shape algorithm search on or off for a block (None: leave as is)."""
    previous = torch.backends.cudnn.benchmark
    if enabled is not None:
        torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


@contextlib.contextmanager
def tf32_matmul(allowed: bool) -> Iterator[None]:
    """Allow or forbid TF32 tensor cores in float32 matrix products for a block."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def math_settings() -> dict[str, bool]:
    """The numeric settings that change what a GPU measures: cuDNN autotuning, TF32 flags."""
    return {
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
    }


def use_device(device: torch.device, *, cudnn_benchmark: bool | None = None) -> None:
    """Make ``device`` the current CUDA device of this process (no-op on a CPU)."""
    if cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = cudnn_benchmark
    if device.type == "cuda":
        torch.cuda.set_device(device)


def rng_devices(device: torch.device) -> list[int]:
    """CUDA device indices whose random state ``torch.random.fork_rng`` must save."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def is_oom(err: BaseException) -> bool:
    """Whether ``err`` says a device (or the host) ran out of memory."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, (RuntimeError, MemoryError)) and "out of memory" in str(err).lower()


def wait_for(device: torch.device) -> None:
    """Block until all work queued on ``device`` has finished (no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release_memory(device: torch.device) -> None:
    """Wait for ``device`` and give its cached, unused memory back (no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def cuda_device_names() -> list[str]:
    """Names of the CUDA devices this process sees (empty without CUDA)."""
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


# ====================================================================== device


#: Device facts recorded once per dataset folder (see :meth:`Device.dataset_facts`).
DATASET_FACTS: tuple[str, ...] = (
    "gpu_name",
    "device_name",
    "driver",
    "cuda_runtime",
    "cudnn",
    "torch",
    "python",
    "power_limit_w",
    "sm_clock_max_mhz",
    "memory_total_bytes",
    "cpu",
    "cpu_count",
)


@dataclass
class Device:
    """A measuring device: timer, energy meter, memory readings and provenance facts.

    Attributes:
        torch_device: Where tensors go.
        timer: Timer for this device.
        meter: Energy meter (a :class:`NullEnergyMeter` when power cannot be measured).
        info: Provenance facts (GPU name, driver, CUDA, cuDNN, power limit, ...).
    """

    torch_device: torch.device
    timer: Any
    meter: Any
    info: dict[str, Any] = field(default_factory=dict)
    nvml: Any = None
    handle: Any = None

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def synchronize(self) -> None:
        self.timer.synchronize()

    def reset_peak_memory(self) -> None:
        """Forget the previous peak of allocated memory (and free cached blocks)."""
        if self.is_cuda:
            torch.cuda.synchronize(self.torch_device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    def peak_memory_bytes(self) -> float:
        """Peak bytes allocated by PyTorch since the last reset (NaN on the CPU)."""
        if self.is_cuda:
            return float(torch.cuda.max_memory_allocated(self.torch_device))
        return math.nan

    def used_memory_bytes(self) -> float:
        """Device memory in use by every process, as NVML reports it (NaN if unknown)."""
        if self.nvml is None or self.handle is None:
            return math.nan
        try:
            return float(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)
        except Exception:  # noqa: BLE001
            return math.nan

    def sm_clock_mhz(self) -> float:
        """Current SM clock (MHz), NaN if unknown."""
        if self.nvml is None or self.handle is None:
            return math.nan
        try:
            return float(self.nvml.nvmlDeviceGetClockInfo(self.handle, self.nvml.NVML_CLOCK_SM))
        except Exception:  # noqa: BLE001
            return math.nan

    def marker(self) -> Marker:
        """A marker recorded after the work enqueued so far (see :class:`Marker`)."""
        if self.is_cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return CpuMarker(time.perf_counter())

    def dataset_facts(self) -> dict[str, Any]:
        """Facts that hold for every row a dataset folder gets from this device (provenance)."""
        facts = {k: self.info.get(k) for k in DATASET_FACTS}
        facts["dataset_kind"] = "gpu" if self.is_cuda else "cpu"
        return facts

    def run_facts(self) -> dict[str, Any]:
        """The device's state at the start of a run: which device, numeric settings, clocks."""
        return {
            "device": str(self.torch_device),
            "gpu_uuid": self.info.get("gpu_uuid"),
            **math_settings(),
            "sm_clock_mhz_at_start": self.sm_clock_mhz(),
            "cpu_mhz": _cpu_mhz(),
        }

    def is_oom(self, err: BaseException) -> bool:
        """Whether ``err`` is an out-of-memory error of this device."""
        return is_oom(err)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_mhz() -> float | None:
    """The host CPU's current clock (MHz, first core, from /proc/cpuinfo), or None."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def _software_info() -> dict[str, Any]:
    cudnn = torch.backends.cudnn
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        **math_settings(),
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cpu_mhz": _cpu_mhz(),
        "cpu_count": os.cpu_count(),
    }


def _nvml_handle(nvml: Any, index: int) -> Any:
    """The NVML handle of CUDA device ``index`` (matched by UUID; NVML ignores
    CUDA_VISIBLE_DEVICES)."""
    try:
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            u = nvml.nvmlDeviceGetUUID(h)
            u = u.decode() if isinstance(u, bytes) else str(u)
            if u.replace("GPU-", "") == uuid.replace("GPU-", ""):
                return h
    except Exception as err:  # noqa: BLE001
        log.debug("UUID match failed: %s", err)
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _nvml_info(nvml: Any, handle: Any) -> dict[str, Any]:
    def safe(fn: Callable[[], Any]) -> Any:
        try:
            v = fn()
            return v.decode() if isinstance(v, bytes) else v
        except Exception:  # noqa: BLE001
            return None

    limit = safe(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    mem = safe(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    return {
        "gpu_name": safe(lambda: nvml.nvmlDeviceGetName(handle)),
        "gpu_uuid": safe(lambda: nvml.nvmlDeviceGetUUID(handle)),
        "driver": safe(nvml.nvmlSystemGetDriverVersion),
        "power_limit_w": limit / 1000.0 if limit is not None else None,
        "sm_clock_mhz_at_start": safe(
            lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)
        ),
        "sm_clock_max_mhz": safe(
            lambda: nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)
        ),
        "memory_total_bytes": getattr(mem, "total", None),
    }


def _load_nvml() -> tuple[Any, str | None]:
    try:
        import pynvml  # the nvidia-ml-py package
    except ImportError:
        return None, "the pynvml module (package nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
    except Exception as err:  # noqa: BLE001
        return None, f"NVML could not start: {err}"
    return pynvml, None


def open_device(device: str = "cuda", *, power: bool = True, nvml: Any = None) -> Device:
    """Open a device for measurement.

    Args:
        device: ``"cuda"``, ``"cuda:N"`` or ``"cpu"``.
        power: Open the NVML energy meter (GPU only).
        nvml: A ``pynvml``-like module to use instead of importing it (tests).

    Returns:
        A :class:`Device`. When power is requested but NVML or the energy counter is
        missing, the device gets a :class:`NullEnergyMeter` and a warning says why:
        runtime rows are still measured, power is left NaN.

    Raises:
        DeviceUnavailableError: for a CUDA device on a machine without one.
    """
    dev = torch.device(device)
    info: dict[str, Any] = {"device": str(dev), **_software_info()}
    if dev.type == "cpu":
        info["gpu_name"] = None
        info["device_name"] = info["cpu"]
        return Device(dev, CpuTimer(), NullEnergyMeter("CPU: no energy counter"), info)
    if dev.type != "cuda":
        raise DeviceUnavailableError(
            f"unsupported device {device!r}; use 'cuda', 'cuda:N' or 'cpu'"
        )
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {device!r} requested but no CUDA device is available "
            "(torch.cuda.is_available() is False); pass --device cpu to measure on the CPU"
        )
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    dev = torch.device("cuda", index)
    torch.cuda.set_device(dev)
    torch.backends.cudnn.benchmark = True
    info.update(_software_info())
    info["device_name"] = torch.cuda.get_device_name(index)
    meter: Any = NullEnergyMeter("power not requested")
    handle = None
    lib = nvml
    reason = None
    if lib is None:  # NVML also gives the provenance facts and clocks when power is off
        lib, reason = _load_nvml()
    if lib is not None:
        handle = _nvml_handle(lib, index)
        info.update(_nvml_info(lib, handle))
        if power:
            try:
                lib.nvmlDeviceGetTotalEnergyConsumption(handle)
                meter = NvmlEnergyMeter(handle, lib)
            except Exception as err:  # noqa: BLE001
                reason = f"this GPU has no total-energy counter ({err})"
    if power and not getattr(meter, "available", False):
        reason = reason or "unknown"
        warnings.warn(f"power will not be measured: {reason}", RuntimeWarning, stacklevel=2)
        meter = NullEnergyMeter(reason)
    info.setdefault("gpu_name", info["device_name"])
    if not info.get("gpu_name"):
        info["gpu_name"] = info["device_name"]
    return Device(dev, CudaTimer(dev), meter, info, nvml=lib, handle=handle)


@dataclass(frozen=True)
class CpuMarker:
    """A :class:`Marker` for a device that works synchronously (the CPU): a clock reading."""

    t_s: float

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, later: CpuMarker) -> float:
        return (later.t_s - self.t_s) * 1e3
