"""Energy on the GPU: NVML's total-energy counter read off the launch path.

:class:`CounterPoller` reads the counter in a background thread and timestamps each
change; :class:`NvmlEnergyMeter` keeps the device's queue full while the poller watches,
opens the window on a counter change once the queue has filled and closes it ``periods``
changes later, and returns a :class:`PowerReading` (energy per call = ΔE / calls
completed in the window, power = ΔE / Δt, and the busy fraction of the window).
:class:`NullEnergyMeter` stands in where no counter exists.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hwml.hardware.timing import Marker

__all__ = ["CounterPoller", "EnergyMeter", "NullEnergyMeter", "NvmlEnergyMeter", "PowerReading"]

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
        per_chunk, max_pending = self._queue_plan(launch_ms, periods)
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
        return _window_reading(window, anchor, t_anchor, chunks, periods, device_ms_per_call)

    def _queue_plan(self, launch_ms: float, periods: int) -> tuple[int, int]:
        """Launches per chunk and chunks allowed in the queue, for :meth:`measure`.

        Args:
            launch_ms: Device time of one launch (ms); a value that is not positive and
                finite counts as 1 µs.
            periods: Counter updates the window spans (checked here).

        Returns:
            ``(per_chunk, max_pending)``: about ``chunk_ms`` of launches per chunk (at
            least 1), and about ``queue_ms`` of chunks waiting (at least 2).

        Raises:
            ValueError: ``periods`` is below 1.
        """
        if periods < 1:
            raise ValueError(f"periods must be >= 1, got {periods}")
        launch_ms = launch_ms if launch_ms > 0 and math.isfinite(launch_ms) else 1e-3
        per_chunk = max(1, math.ceil(self.chunk_ms / launch_ms))
        max_pending = max(2, math.ceil(self.queue_ms / (per_chunk * launch_ms)))
        return per_chunk, max_pending


def _window_reading(
    window: Sequence[tuple[float, int]],
    anchor: Any,
    t_anchor: float,
    chunks: Sequence[tuple[Any, Any, int]],
    periods: int,
    device_ms_per_call: float | None,
) -> PowerReading:
    """The :class:`PowerReading` of one window of counter updates (see :class:`NvmlEnergyMeter`).

    Args:
        window: The ``periods + 1`` counter updates ``(time_s, value_mj)`` that bound
            the window, first to last.
        anchor: The marker that places device timestamps on the clock.
        t_anchor: Clock time at which ``anchor`` was seen complete (s).
        chunks: ``(start marker, end marker, calls after)`` of every chunk enqueued.
        periods: Counter updates the window spans.
        device_ms_per_call: Pure device time of one call (ms), if known.

    Returns:
        The reading: energy and power from the window's first and last updates, calls
        and busy time from the chunks' device timestamps.
    """
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
