"""Tests of hwml.validation: picking layers, the agreement and its summary (CPU only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml import validation as V
from hwml.describe import Layer
from hwml.hardware import DeviceUnavailableError, open_device


def _layers_table(n: int = 200) -> pd.DataFrame:
    rows = []
    for i in range(n):
        layer = Layer.linear(1 + i % 7, 16 + i, 8 + i % 5)
        rows.append(
            {
                **layer.to_row(),
                "status": "ok",
                "dtype": "float32",
                "runtime_ms": 10 ** (-2 + 3 * i / n),
            }
        )
    return pd.DataFrame(rows)


def test_pick_layers_spreads_runtimes_over_the_log_scale():
    picked = V.pick_layers(_layers_table(), n=20, seed=0)
    assert len(picked) == 20
    assert all(isinstance(layer, Layer) for _, layer in picked)
    runtimes = (
        _layers_table()
        .set_index("in_features")
        .loc[[layer.in_features for _, layer in picked], "runtime_ms"]
    )
    decades = np.floor(np.log10(runtimes.to_numpy()))
    assert set(decades) == {-2.0, -1.0, 0.0}  # every decade from 10 µs to 10 ms


def _validation_rows() -> pd.DataFrame:
    base = {"kind": "layer", "batch": 1, "runtime_ms": 0.1, "eager_busy_fraction": 1.0}
    rows = []
    for loop, hwml_graph, hwml_eager, zeus, busy in [
        (10.0, 10.2, 10.1, 9.9, 1.0),
        (20.0, 19.1, 26.0, 16.0, 0.3),
    ]:
        rows.append(
            {
                **base,
                "workload": "x",
                "eager_busy_fraction": busy,
                "loop_eager_energy_mj": loop,
                "loop_graph_energy_mj": loop,
                "hwml_graph_energy_mj": hwml_graph,
                "hwml_eager_energy_mj": hwml_eager,
                "zeus_eager_energy_mj": zeus,
                "status": "ok",
            }
        )
    return pd.DataFrame(rows)


def test_agreement_compares_each_method_with_the_loop_of_its_mode():
    a = V.agreement(_validation_rows())
    assert a["hwml_graph_vs_loop_pct"].tolist() == pytest.approx([2.0, -4.5])
    assert a["hwml_eager_vs_loop_pct"].tolist() == pytest.approx([1.0, 30.0])
    assert a["zeus_vs_loop_pct"].tolist() == pytest.approx([-1.0, -20.0])


def test_summary_splits_host_bound_workloads():
    s = V.summary(_validation_rows()).set_index(["comparison", "group"])
    eager = s.loc["hwml_eager_vs_loop_pct"]
    assert eager.loc["all, GPU-bound", "median_abs_pct"] == pytest.approx(1.0)
    assert eager.loc["all, host-bound", "median_abs_pct"] == pytest.approx(30.0)
    assert s.loc[("hwml_graph_vs_loop_pct", "all"), "within_5_pct"] == pytest.approx(100.0)
    assert s.loc[("hwml_graph_vs_loop_pct", "layers"), "rows"] == 2


def test_validation_needs_a_gpu_and_says_so(tmp_path):
    with pytest.raises(DeviceUnavailableError, match="energy counter"):
        V.sweep_validation(tmp_path, open_device("cpu"), [], ["alexnet"], [1])
