"""The only door to the device: timers, the NVML energy meter, memory and device facts.

Everything that touches ``torch.cuda`` timing or imports ``pynvml`` lives here, behind
three small interfaces:

* a timer (:class:`CudaTimer` with CUDA events, :class:`CpuTimer` with a monotonic clock)
  that times a callable after warm-up and reports the median and spread;
* an energy meter (:class:`NvmlEnergyMeter` on the GPU's total-energy counter,
  :class:`NullEnergyMeter` when no counter exists) that measures average power over a
  window aligned to the counter's own updates;
* a :class:`Device` bundling them with memory readings and provenance facts.

Tests patch ``pynvml`` (autospec) and replay counter traces so everything except the
measurement itself runs on a CPU-only machine.

Units: milliseconds (``*_ms``), seconds (``*_s``), watts (``*_w``), millijoules
(``*_mj``), bytes (``*_bytes``), megahertz (``*_mhz``).
"""

from __future__ import annotations

import logging
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    "NvmlEnergyMeter",
    "NullEnergyMeter",
    "Device",
    "open_device",
    "summarize",
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

    def time_graph(self, fn: Callable[[], Any], *, repeats: int = 50) -> float:
        """Median time of one call replayed from a CUDA graph (ms): launch overhead removed.

        Returns NaN when the workload cannot be captured.
        """
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(3):
                    fn()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
            graph.replay()
            torch.cuda.synchronize(self.device)
            samples = []
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                graph.replay()
                b.record()
                b.synchronize()
                samples.append(a.elapsed_time(b))
            del graph
            return statistics.median(samples)
        except Exception as err:  # noqa: BLE001 - capture is best effort
            log.debug("CUDA graph capture failed: %s", err)
            torch.cuda.synchronize(self.device)
            return math.nan


# ====================================================================== energy


@dataclass(frozen=True)
class PowerReading:
    """Average power over a window aligned to energy-counter updates.

    Attributes:
        power_w: Average power over the window (W); NaN when not measured.
        window_s: Window length (s).
        energy_mj: Energy the counter accumulated over the window (mJ).
        periods: Counter updates spanned by the window.
        calls: Workload calls made inside the window.
    """

    power_w: float
    window_s: float
    energy_mj: float
    periods: int
    calls: int


class EnergyMeter(Protocol):
    """Measures the device's average power while a workload runs."""

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
        wait: Callable[[], None],
        *,
        periods: int = 3,
        chunk_calls: int = 1,
    ) -> PowerReading:
        """Average power while ``launch`` runs back to back (see NvmlEnergyMeter)."""
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
        wait: Callable[[], None],
        *,
        periods: int = 3,
        chunk_calls: int = 1,
    ) -> PowerReading:
        return PowerReading(math.nan, math.nan, math.nan, 0, 0)


class NvmlEnergyMeter:
    """Average power from NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``).

    The counter (mJ since driver load) changes only every ~100 ms, so a window is aligned
    to its updates: the workload runs back to back, the meter waits for the counter to
    change (window start), then keeps the workload running until the counter has changed
    ``periods`` more times (window end). Power = ΔE / Δt between the two observed changes.
    The one-second-averaged ``nvmlDeviceGetPowerUsage`` is never used for a workload.

    Args:
        handle: NVML device handle.
        nvml: The ``pynvml`` module (injected so tests can pass a fake).
        clock: Monotonic clock in seconds.
        timeout_s: Give up (NaN reading) if the counter does not move for this long.
    """

    available = True

    def __init__(
        self,
        handle: Any,
        nvml: Any,
        clock: Callable[[], float] = time.perf_counter,
        timeout_s: float = 5.0,
    ) -> None:
        self.handle = handle
        self.nvml = nvml
        self.clock = clock
        self.timeout_s = timeout_s

    def read_mj(self) -> int:
        """The counter's current value (mJ)."""
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def _wait_change(self, last: int, step: Callable[[], None]) -> tuple[int, float]:
        """Call ``step`` until the counter differs from ``last``; return (value, time)."""
        deadline = self.clock() + self.timeout_s
        while True:
            step()
            value = self.read_mj()
            now = self.clock()
            if value != last:
                return value, now
            if now > deadline:
                raise TimeoutError(f"energy counter did not change for {self.timeout_s} s")

    def update_period_s(self, samples: int = 20) -> float:
        """Median gap between counter updates, polled with 1 ms sleeps (s)."""
        value, t_prev = self._wait_change(self.read_mj(), lambda: time.sleep(0.001))
        gaps = []
        for _ in range(samples):
            value, t = self._wait_change(value, lambda: time.sleep(0.001))
            gaps.append(t - t_prev)
            t_prev = t
        return statistics.median(gaps)

    def idle_power_w(self, duration_s: float = 1.0) -> float:
        """Idle power: ΔE/Δt over whole counter periods spanning about ``duration_s``."""
        period = self.update_period_s(samples=3)
        periods = max(2, round(duration_s / period)) if period > 0 else 5
        return self.measure(lambda: time.sleep(0.001), lambda: None, periods=periods).power_w

    def measure(
        self,
        launch: Callable[[], Any],
        wait: Callable[[], None],
        *,
        periods: int = 3,
        chunk_calls: int = 1,
    ) -> PowerReading:
        """Average power while ``launch`` runs back to back.

        Args:
            launch: Enqueues one call of the workload (asynchronous on a GPU).
            wait: Blocks until everything enqueued so far has finished.
            periods: Counter updates the window must span (at least 1).
            chunk_calls: Calls enqueued between two counter polls; size it so a chunk
                takes about a millisecond, which bounds the timing error at the window's
                edges while keeping the device busy.

        Returns:
            The :class:`PowerReading`; NaN power if the counter stalls.
        """
        if periods < 1:
            raise ValueError(f"periods must be >= 1, got {periods}")
        calls = 0

        def step() -> None:
            nonlocal calls
            for _ in range(chunk_calls):
                launch()
            calls += chunk_calls
            wait()

        try:
            step()  # the device is busy before the window opens
            e0, t0 = self._wait_change(self.read_mj(), step)
            calls_at_start = calls
            e, t = e0, t0
            for _ in range(periods):
                e, t = self._wait_change(e, step)
        except TimeoutError as err:
            warnings.warn(f"power not measured: {err}", RuntimeWarning, stacklevel=2)
            return PowerReading(math.nan, math.nan, math.nan, 0, calls)
        window = t - t0
        energy = float(e - e0)
        power = energy / 1000.0 / window if window > 0 else math.nan
        return PowerReading(power, window, energy, periods, calls - calls_at_start)


# ====================================================================== device


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

    def lagged_wait(self, in_flight: int = 2) -> Callable[[], None]:
        """A ``wait`` for :meth:`NvmlEnergyMeter.measure` that keeps the device busy.

        Each call records an event and blocks only until the chunk ``in_flight`` calls
        ago has finished, so the queue never runs dry between counter polls.
        """
        if not self.is_cuda:
            return lambda: None
        pending: list[torch.cuda.Event] = []

        def wait() -> None:
            event = torch.cuda.Event()
            event.record()
            pending.append(event)
            if len(pending) > in_flight:
                pending.pop(0).synchronize()

        return wait

    def is_oom(self, err: BaseException) -> bool:
        """Whether ``err`` is an out-of-memory error of this device."""
        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
        return isinstance(err, (RuntimeError, MemoryError)) and "out of memory" in str(err).lower()


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _software_info() -> dict[str, Any]:
    cudnn = torch.backends.cudnn
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_runtime": torch.version.cuda,
        "cudnn": cudnn.version() if cudnn.is_available() else None,
        "cudnn_benchmark": bool(cudnn.benchmark),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(cudnn.allow_tf32),
        "host": platform.node(),
        "cpu": _cpu_name(),
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


def device_info_dict(device: Device) -> dict[str, Any]:
    """Provenance facts of ``device`` as a plain dict."""
    return dict(device.info)


def timing_dict(t: Timing) -> dict[str, float]:
    """A :class:`Timing` as a dict (for tables)."""
    return asdict(t)
