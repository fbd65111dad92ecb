"""Tests of hwml.hardware against a faked NVML (autospec) and fake clocks."""

from __future__ import annotations

import math
import threading
import time
from unittest import mock

import pynvml
import pytest
import torch

from hwml import hardware
from hwml.hardware import (
    CpuMarker,
    CpuTimer,
    NullEnergyMeter,
    NvmlEnergyMeter,
    open_device,
    summarize,
)


class SimGPU:
    """A GPU simulated in real time, for the meter's window and busy-fraction tests.

    ``launch`` enqueues ``work_s`` of device work behind what is queued; a marker completes
    when the work queued before it is done. The energy counter integrates ``busy_w`` while
    the device works and ``idle_w`` otherwise, publishes a new value every ``period_s``,
    and each read of it blocks the reading thread for ``read_s`` (as NVML's does, about
    3 ms on an H200).
    """

    def __init__(self, *, work_s=0.0005, busy_w=400.0, idle_w=100.0, period_s=0.03, read_s=0.003):
        self.work_s, self.busy_w, self.idle_w = work_s, busy_w, idle_w
        self.period_s, self.read_s = period_s, read_s
        self.t0 = time.perf_counter()
        self.free_at = self.t0
        self.busy: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def launch(self) -> None:
        with self.lock:
            now = time.perf_counter()
            start = max(now, self.free_at)
            self.free_at = start + self.work_s
            self.busy.append((start, self.free_at))

    def marker(self) -> SimMarker:
        with self.lock:
            return SimMarker(max(time.perf_counter(), self.free_at))

    def busy_s(self, a: float, b: float) -> float:
        with self.lock:
            spans = list(self.busy)
        return sum(max(0.0, min(e, b) - max(s, a)) for s, e in spans)

    def energy_mj(self, handle=None) -> int:
        time.sleep(self.read_s)
        now = time.perf_counter()
        edge = self.t0 + math.floor((now - self.t0) / self.period_s) * self.period_s
        busy = self.busy_s(self.t0, edge)
        return int(1000 * (self.idle_w * (edge - self.t0) + (self.busy_w - self.idle_w) * busy))


class SimMarker:
    def __init__(self, done_at: float) -> None:
        self.done_at = done_at

    def synchronize(self) -> None:
        delay = self.done_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def elapsed_time(self, later: SimMarker) -> float:
        return (later.done_at - self.done_at) * 1e3


def sim_meter(gpu: SimGPU, **kw) -> NvmlEnergyMeter:
    nvml = mock.create_autospec(pynvml, instance=False)
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = gpu.energy_mj
    return NvmlEnergyMeter("h", nvml, **kw)


def legacy_polling_measure(meter: NvmlEnergyMeter, gpu: SimGPU, periods: int = 3):
    """The per-chunk polling design this meter replaced: read the counter after each
    ~1 ms chunk of work, blocking until the chunk two back has finished."""
    chunk = max(1, math.ceil(0.001 / gpu.work_s))
    pending: list[SimMarker] = []

    def step() -> None:
        for _ in range(chunk):
            gpu.launch()
        pending.append(gpu.marker())
        if len(pending) > 2:
            pending.pop(0).synchronize()

    def wait_change(last: int) -> tuple[int, float]:
        while True:
            step()
            value = meter.read_mj()
            if value != last:
                return value, time.perf_counter()

    step()
    e0, t0 = wait_change(meter.read_mj())
    e, t = e0, t0
    for _ in range(periods):
        e, t = wait_change(e)
    return t0, t


def test_window_keeps_the_device_busy_although_each_read_takes_3_ms():
    gpu = SimGPU()
    meter = sim_meter(gpu)
    r = meter.measure(gpu.launch, gpu.marker, launch_ms=gpu.work_s * 1e3, periods=3)
    true_busy = gpu.busy_s(r.window_start_s, r.window_end_s) / r.window_s
    assert true_busy >= 0.95
    assert r.busy_fraction == pytest.approx(true_busy, abs=0.03)
    assert r.periods == 3 and r.window_s == pytest.approx(3 * gpu.period_s, rel=0.25)
    # Energy per call from the window itself: busy power x device time of one call.
    assert r.energy_per_call_mj == pytest.approx(gpu.busy_w * gpu.work_s * 1e3, rel=0.1)
    assert r.power_w == pytest.approx(gpu.busy_w, rel=0.1)
    assert r.calls == pytest.approx(r.window_s / gpu.work_s, rel=0.1)


def test_legacy_per_chunk_polling_fails_the_same_test():
    gpu = SimGPU()
    meter = sim_meter(gpu)
    t0, t1 = legacy_polling_measure(meter, gpu)
    assert gpu.busy_s(t0, t1) / (t1 - t0) < 0.95


def test_busy_fraction_sees_a_host_bound_workload():
    """A device idle between launches (host slower than the device) reads low busy."""
    gpu = SimGPU(work_s=0.0002)
    meter = sim_meter(gpu)

    def slow_launch() -> None:
        time.sleep(0.0006)  # the host needs 0.6 ms to issue 0.2 ms of work
        gpu.launch()

    r = meter.measure(slow_launch, gpu.marker, launch_ms=0.2, periods=3, device_ms_per_call=0.2)
    true_busy = gpu.busy_s(r.window_start_s, r.window_end_s) / r.window_s
    assert true_busy < 0.5
    assert r.busy_fraction == pytest.approx(true_busy, abs=0.08)
    assert r.busy_fraction < 0.95


def test_counter_is_never_read_on_the_launch_path():
    gpu = SimGPU()
    meter = sim_meter(gpu)
    main = threading.get_ident()
    readers = set()
    real = gpu.energy_mj

    def spy(handle=None) -> int:
        readers.add(threading.get_ident())
        return real(handle)

    meter.nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = spy
    meter.measure(gpu.launch, gpu.marker, launch_ms=gpu.work_s * 1e3, periods=2)
    assert readers and main not in readers
    meter.nvml.nvmlDeviceGetPowerUsage.assert_not_called()


def test_update_period_and_idle_power_from_the_poller():
    gpu = SimGPU(period_s=0.02, idle_w=90.0)
    meter = sim_meter(gpu)
    assert meter.update_period_s(samples=5) == pytest.approx(0.02, abs=0.004)
    assert meter.idle_power_w(0.1) == pytest.approx(90.0, rel=0.1)


def test_stalled_counter_gives_nan_with_warning():
    nvml = mock.create_autospec(pynvml, instance=False)
    nvml.nvmlDeviceGetTotalEnergyConsumption.return_value = 1234
    gpu = SimGPU()
    meter = NvmlEnergyMeter("h", nvml, timeout_s=0.05)
    with pytest.warns(RuntimeWarning, match="did not change"):
        reading = meter.measure(gpu.launch, gpu.marker, launch_ms=0.5)
    assert math.isnan(reading.power_w) and math.isnan(reading.energy_per_call_mj)


def test_null_meter_reports_nan_never_zero():
    m = NullEnergyMeter("none")
    assert not m.available
    assert math.isnan(m.measure(lambda: None, CpuMarker, launch_ms=1.0).power_w)
    assert math.isnan(m.idle_power_w()) and math.isnan(m.update_period_s())


def test_calls_between_interpolates_inside_edge_chunks():
    anchor = CpuMarker(0.0)
    chunks = [(CpuMarker(0.0), CpuMarker(1.0), 10), (CpuMarker(1.0), CpuMarker(2.0), 20)]
    calls, busy_ms = hardware.energy._calls_between(anchor, 100.0, chunks, 100.5, 101.5)
    assert calls == pytest.approx(10.0) and busy_ms == pytest.approx(1000.0)


def test_summarize_percentiles():
    t = summarize([float(x) for x in range(1, 11)])
    assert t.median_ms == 5.5 and t.repeats == 10
    assert t.p10_ms == pytest.approx(1.9) and t.p90_ms == pytest.approx(9.1)
    assert t.cv > 0


def test_cpu_timer_with_fake_clock():
    ticks = iter(range(0, 10**9, 2_000_000))  # every reading 2 ms after the last
    timing = CpuTimer(clock=lambda: next(ticks)).time(lambda: None, warmup=1, repeats=7)
    assert timing.repeats == 7
    assert timing.median_ms == pytest.approx(2.0)
    assert timing.cv == pytest.approx(0.0)


def test_cpu_timer_real_clock_measures_work():
    timing = CpuTimer().time(lambda: sum(range(20000)), warmup=1, repeats=5)
    assert timing.median_ms > 0


def test_open_cpu_device():
    dev = open_device("cpu")
    assert not dev.is_cuda and not dev.meter.available
    assert math.isnan(dev.peak_memory_bytes())


def test_missing_cuda_is_a_clear_error():
    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        with pytest.raises(hardware.DeviceUnavailableError, match="--device cpu"):
            open_device("cuda")


def test_missing_nvml_falls_back_with_warning():
    """CUDA present but NVML unusable: runtime still measurable, power NaN, a warning."""
    with (
        mock.patch.object(torch.cuda, "is_available", return_value=True),
        mock.patch.object(torch.cuda, "device_count", return_value=1),
        mock.patch.object(torch.cuda, "current_device", return_value=0),
        mock.patch.object(torch.cuda, "set_device"),
        mock.patch.object(torch.cuda, "get_device_name", return_value="Fake GPU"),
        mock.patch.object(hardware.device, "_load_nvml", return_value=(None, "NVML missing")),
    ):
        with pytest.warns(RuntimeWarning, match="NVML missing"):
            dev = open_device("cuda")
    assert isinstance(dev.meter, NullEnergyMeter)
    assert dev.info["gpu_name"] == "Fake GPU"


def test_gpu_without_energy_counter_falls_back():
    nvml = mock.create_autospec(pynvml, instance=False)
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = pynvml.NVMLError(
        pynvml.NVML_ERROR_NOT_SUPPORTED
    )
    nvml.nvmlDeviceGetName.return_value = "Old GPU"
    with (
        mock.patch.object(torch.cuda, "is_available", return_value=True),
        mock.patch.object(torch.cuda, "device_count", return_value=1),
        mock.patch.object(torch.cuda, "current_device", return_value=0),
        mock.patch.object(torch.cuda, "set_device"),
        mock.patch.object(torch.cuda, "get_device_name", return_value="Old GPU"),
        mock.patch.object(hardware.device, "_nvml_handle", return_value="h"),
    ):
        with pytest.warns(RuntimeWarning, match="no total-energy counter"):
            dev = open_device("cuda", nvml=nvml)
    assert not dev.meter.available


def test_cudnn_autotune_and_tf32_blocks_restore_the_settings():
    before = hardware.math_settings()
    with hardware.cudnn_autotune(not before["cudnn_benchmark"]):
        assert torch.backends.cudnn.benchmark is (not before["cudnn_benchmark"])
    with hardware.cudnn_autotune(None):
        assert torch.backends.cudnn.benchmark is before["cudnn_benchmark"]
    with pytest.raises(ZeroDivisionError):
        with hardware.tf32_matmul(not before["tf32_matmul"]):
            assert torch.backends.cuda.matmul.allow_tf32 is (not before["tf32_matmul"])
            raise ZeroDivisionError
    assert hardware.math_settings() == before


def test_device_helpers_on_a_cpu():
    cpu = torch.device("cpu")
    assert hardware.rng_devices(cpu) == []
    hardware.wait_for(cpu)  # no-ops, no error
    hardware.release_memory(cpu)
    assert hardware.is_oom(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert not hardware.is_oom(RuntimeError("shape mismatch"))
    with mock.patch.object(torch.cuda, "is_available", return_value=False):
        assert hardware.cuda_device_names() == []


def test_dataset_and_run_facts_of_a_cpu_device():
    dev = open_device("cpu")
    facts = dev.dataset_facts()
    assert set(facts) == set(hardware.DATASET_FACTS) | {"dataset_kind"}
    assert facts["dataset_kind"] == "cpu" and facts["cpu"]
    run = dev.run_facts()
    assert run["device"] == "cpu" and set(hardware.math_settings()) <= set(run)


def test_graphed_callable_keeps_what_the_graph_reads_alive(monkeypatch) -> None:
    # A CUDA graph replays kernels on the addresses it saw at capture: if the module it
    # calls were freed, its weights' memory would be reused and read as garbage (seen on
    # an H200: a pruned bf16 model at chance after capture). CUDA is faked here.
    import contextlib
    import gc
    import types
    import weakref

    import torch

    from hwml.hardware import GraphedCallable

    class FakeInput:
        device = types.SimpleNamespace(type="cuda")
        shape = (2, 3)
        dtype = torch.float32

        def detach(self):
            return self

        def clone(self):
            return self

        def copy_(self, other):
            return self

    class FakeGraph:
        def replay(self) -> None:
            pass

    fake_stream = types.SimpleNamespace(wait_stream=lambda s: None)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: fake_stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: fake_stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", lambda g: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    class Model:
        def __call__(self, x):
            return "out"

    model = Model()
    alive = weakref.ref(model)
    graphed = GraphedCallable(model, FakeInput())
    del model
    gc.collect()
    assert alive() is not None
    assert graphed(FakeInput()) == "out"
