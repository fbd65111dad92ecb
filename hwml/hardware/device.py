"""The device: opening it, its settings, its facts, and the helpers that touch ``torch.cuda``.

:func:`open_device` returns a :class:`Device` (a timer, an energy meter, memory readings
and the facts recorded in provenance) or says clearly why the device is unavailable;
the context managers and helpers (:func:`cudnn_autotune`, :func:`tf32_matmul`,
:func:`use_device`, :func:`is_oom`, :func:`release_memory`, ...) are the rest of the
package's only way to reach CUDA settings.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from hwml.hardware.energy import NullEnergyMeter, NvmlEnergyMeter
from hwml.hardware.timing import CpuMarker, CpuTimer, CudaTimer, Marker

log = logging.getLogger(__name__)

__all__ = [
    "DATASET_FACTS",
    "Device",
    "DeviceUnavailableError",
    "cpu_flags",
    "cuda_bf16_supported",
    "cuda_capability",
    "cuda_device_names",
    "cudnn_autotune",
    "is_oom",
    "math_settings",
    "open_device",
    "release_memory",
    "rng_devices",
    "tf32_math",
    "tf32_matmul",
    "use_device",
    "wait_for",
]


class DeviceUnavailableError(RuntimeError):
    """Raised when the requested device does not exist on this machine."""


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


@contextlib.contextmanager
def tf32_math(allowed: bool) -> Iterator[None]:
    """Allow or forbid TF32 in float32 matrix products *and* cuDNN convolutions for a block.

    Both flags are put back as they were when the block exits, also on an exception.
    """
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def cuda_capability(device: torch.device | str) -> tuple[int, int] | None:
    """Compute capability ``(major, minor)`` of a CUDA device; None for any other device."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def cuda_bf16_supported(*, including_emulation: bool = False) -> bool:
    """Whether the current CUDA device runs bfloat16 (natively, or also by emulation)."""
    if not torch.cuda.is_available():
        return False
    return bool(torch.cuda.is_bf16_supported(including_emulation=including_emulation))


def cpu_flags() -> frozenset[str]:
    """The host CPU's feature flags from ``/proc/cpuinfo`` (empty where it is not readable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


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


def cuda_device_count() -> int:
    """CUDA devices this process sees (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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

    def allocated_memory_bytes(self) -> float:
        """Bytes PyTorch holds allocated on the device now (NaN on the CPU)."""
        if self.is_cuda:
            return float(torch.cuda.memory_allocated(self.torch_device))
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
    """The host CPU's model name: :func:`hwml.data.cpu_name`'s twin, kept here because
    ``hardware`` shares ``data``'s floor and may not import it (tests/test_layering.py)."""
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


def as_torch_device(device: str | torch.device | Device) -> torch.device:
    """The ``torch.device`` of a device name, a ``torch.device`` or an opened :class:`Device`."""
    if isinstance(device, Device):
        return device.torch_device
    return torch.device(device)


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
