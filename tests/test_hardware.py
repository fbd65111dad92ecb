"""Tests of hwml.hardware against a faked NVML (autospec) and fake clocks."""

from __future__ import annotations

import math
from unittest import mock

import pynvml
import pytest
import torch

from hwml import hardware
from hwml.hardware import CpuTimer, NullEnergyMeter, NvmlEnergyMeter, open_device, summarize


class ReplayCounter:
    """A simulated energy counter: updates every ``period_s`` of a simulated clock.

    Each poll of the clock advances time by ``tick_s``; the counter accumulates
    ``power_w`` between its updates, like NVML's total-energy counter.
    """

    def __init__(self, period_s: float = 0.1, power_w: float = 250.0, tick_s: float = 0.001):
        self.period, self.power, self.tick = period_s, power_w, tick_s
        self.t = 0.0

    def clock(self) -> float:
        self.t += self.tick
        return self.t

    def energy_mj(self, handle=None) -> int:
        updates = math.floor(self.t / self.period)
        return int(updates * self.period * self.power * 1000)


def fake_nvml(counter: ReplayCounter):
    nvml = mock.create_autospec(pynvml, instance=False)
    nvml.nvmlDeviceGetTotalEnergyConsumption.side_effect = counter.energy_mj
    return nvml


def test_window_spans_whole_counter_periods():
    counter = ReplayCounter(period_s=0.1, power_w=250.0)
    nvml = fake_nvml(counter)
    meter = NvmlEnergyMeter("h", nvml, clock=counter.clock)
    calls = []
    reading = meter.measure(lambda: calls.append(1), lambda: None, periods=3)
    assert reading.periods == 3
    assert reading.energy_mj == pytest.approx(3 * 0.1 * 250 * 1000)
    assert reading.window_s == pytest.approx(0.3, abs=0.0011)
    assert reading.power_w == pytest.approx(250.0, rel=0.01)
    assert reading.calls > 0 and len(calls) >= reading.calls
    nvml.nvmlDeviceGetTotalEnergyConsumption.assert_called_with("h")


def test_window_never_uses_one_second_power_average():
    counter = ReplayCounter()
    nvml = fake_nvml(counter)
    meter = NvmlEnergyMeter("h", nvml, clock=counter.clock)
    meter.measure(lambda: None, lambda: None, periods=2)
    nvml.nvmlDeviceGetPowerUsage.assert_not_called()


def test_update_period_is_measured_not_assumed():
    counter = ReplayCounter(period_s=0.05)
    meter = NvmlEnergyMeter("h", fake_nvml(counter), clock=counter.clock)
    with mock.patch.object(hardware.time, "sleep", lambda s: None):
        assert meter.update_period_s(samples=5) == pytest.approx(0.05, abs=0.002)


def test_stalled_counter_gives_nan_with_warning():
    nvml = mock.create_autospec(pynvml, instance=False)
    nvml.nvmlDeviceGetTotalEnergyConsumption.return_value = 1234
    t = iter(range(10_000))
    meter = NvmlEnergyMeter("h", nvml, clock=lambda: next(t) * 0.01, timeout_s=0.5)
    with pytest.warns(RuntimeWarning, match="did not change"):
        reading = meter.measure(lambda: None, lambda: None)
    assert math.isnan(reading.power_w)


def test_null_meter_reports_nan_never_zero():
    m = NullEnergyMeter("none")
    assert not m.available
    assert math.isnan(m.measure(lambda: None, lambda: None).power_w)
    assert math.isnan(m.idle_power_w()) and math.isnan(m.update_period_s())


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
        mock.patch.object(hardware, "_load_nvml", return_value=(None, "NVML missing")),
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
        mock.patch.object(hardware, "_nvml_handle", return_value="h"),
    ):
        with pytest.warns(RuntimeWarning, match="no total-energy counter"):
            dev = open_device("cuda", nvml=nvml)
    assert not dev.meter.available
