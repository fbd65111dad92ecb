"""``hwml fit --model pipeline`` and ``hwml predict`` with a pipeline model (no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwml import zoo
from hwml.cli import main
from hwml.predict import pipeline as P

PROV = {
    "gpu_name": "Fake GPU",
    "peak_flops_per_s": {"float32": 5e13},
    "copy_bandwidth_bytes_per_s": 2e12,
    "runs": [{"idle_power_w": 100.0}, {"idle_power_w": 110.0}],
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve cell-space networks at batch 1 and 8 whose costs follow known rules."""
    folder = tmp_path_factory.mktemp("data") / "fake-gpu"
    folder.mkdir()
    ceil = (5e13, 2e12)
    rows = []
    for seed in range(12):
        for batch in (1, 8):
            f = P.network_features(
                zoo.describe_net(f"cells:{seed}", batch, weights=False), "float32", ceil
            )
            layers = sum(f[f"n_{g}"] for g in P.GROUPS)
            host, device = 0.02 * layers, 2 * f["roof_ms"] + 0.003 * layers
            eager = max(host, device) + 0.1 * min(host, device)
            rows.append(
                {
                    "network": f"cells:{seed}",
                    "batch": batch,
                    "dtype": "float32",
                    "runtime_ms": eager,
                    "runtime_graph_ms": device,
                    "host_dispatch_ms": host,
                    "power_w": 300 + 100 * f["flop_share"],
                    "eager_power_w": 200.0,
                    "energy_mj": 1.0,
                    "eager_energy_mj": 200.0 * eager,
                    "status": "ok",
                }
            )
    rows.append({**rows[0], "network": "cells:99", "status": "error"})  # a failed row is skipped
    pd.DataFrame(rows).to_csv(folder / "nets.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps(PROV))
    return folder


@pytest.fixture(scope="module")
def model(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "net.json"
    assert main(["fit", "--model", "pipeline", "--data", str(dataset), "--out", str(out)]) == 0
    return out


def test_fit_records_the_held_out_error_per_batch(model: Path, capsys):
    doc = json.loads(model.read_text())
    assert doc["format"] == P.FORMAT and doc["device"] == "Fake GPU"
    assert set(doc["held_out_error_pct"]["runtime"]) == {"1", "8"}
    assert doc["idle_w"] == 105.0
    back = P.PipelineModel.load(model)
    assert back.overlap == pytest.approx(0.1, abs=0.05)


def test_predict_prints_layers_totals_and_stated_error(model: Path, capsys):
    assert main(["predict", "--model", str(model), "--net", "resnet18", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "host_us" in out and "device_us" in out
    assert "resnet18 batch 8 (float32, Fake GPU): 69 layers" in out
    assert "held-out error near batch 8" in out and "runtime ±" in out
    assert (
        main(
            [
                "predict",
                "--model",
                str(model),
                "--net",
                "cells:3",
                "--batch",
                "1",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["model_type"] == "pipeline" and doc["totals"]["bound"] in ("host", "device")
    assert doc["totals"]["runtime_ms"] >= doc["totals"]["runtime_graph_ms"]
    assert len(doc["layers"]) == len(zoo.describe_net("cells:3", 1, weights=False))


def test_errors_name_what_is_wrong(model: Path, dataset: Path, tmp_path: Path, capsys):
    assert main(["predict", "--model", str(model), "--net", "resnet18", "--dtype", "float16"]) == 2
    assert "not 'float16'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "provenance.json").write_text(json.dumps(PROV))
    assert (
        main(
            ["fit", "--model", "pipeline", "--data", str(empty), "--out", str(tmp_path / "m.json")]
        )
        == 2
    )
    assert "has no nets.csv" in capsys.readouterr().err
