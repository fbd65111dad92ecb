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

Modules: :mod:`~hwml.hardware.timing` (timers, graphs, markers),
:mod:`~hwml.hardware.energy` (the counter poller and the meter),
:mod:`~hwml.hardware.device` (opening the device, its settings and facts).

Tests patch ``pynvml`` (autospec) and replay counter traces so everything except the
measurement itself runs on a CPU-only machine.

Units: milliseconds (``*_ms``), seconds (``*_s``), watts (``*_w``), millijoules
(``*_mj``), bytes (``*_bytes``), megahertz (``*_mhz``).
"""

from hwml.hardware.device import (
    DATASET_FACTS,
    Device,
    DeviceUnavailableError,
    as_torch_device,
    cpu_flags,
    cuda_bf16_supported,
    cuda_capability,
    cuda_device_count,
    cuda_device_names,
    cudnn_autotune,
    is_oom,
    math_settings,
    open_device,
    release_memory,
    rng_devices,
    tf32_math,
    tf32_matmul,
    use_device,
    wait_for,
)
from hwml.hardware.energy import (
    CounterPoller,
    EnergyMeter,
    NullEnergyMeter,
    NvmlEnergyMeter,
    PowerReading,
)
from hwml.hardware.timing import (
    CapturedGraph,
    CpuMarker,
    CpuTimer,
    CudaTimer,
    GraphCaptureError,
    GraphedCallable,
    Marker,
    Timer,
    Timing,
    summarize,
)

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
    "as_torch_device",
    "open_device",
    "summarize",
    "cudnn_autotune",
    "tf32_matmul",
    "tf32_math",
    "cuda_capability",
    "cuda_bf16_supported",
    "cpu_flags",
    "GraphedCallable",
    "math_settings",
    "use_device",
    "rng_devices",
    "is_oom",
    "release_memory",
    "wait_for",
    "cuda_device_count",
    "cuda_device_names",
    "DATASET_FACTS",
]
