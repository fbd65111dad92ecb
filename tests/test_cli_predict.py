"""Tests of ``hwml fit`` and ``hwml predict`` on a small synthetic dataset (fast, no GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwml import zoo
from hwml.cli import main
from hwml.predict import Eyeriss, load
from tests.predict.conftest import layer_table

FAST = ["--degrees", "1", "--cv", "3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset folder: layers with runtime and power, two networks, provenance."""
    folder = tmp_path_factory.mktemp("data") / "fake-gpu"
    folder.mkdir()
    t = layer_table(
        {"conv2d": 40, "linear": 20, "maxpool2d": 12, "avgpool2d": 12, "activation": 15}, seed=2
    )
    t["runtime_ms"] = 0.01 + 2e-11 * t["flops"] + 1e-9 * t["total_bytes"]
    t["power_w"] = 120 + 2e-7 * t["total_bytes"]
    t["source"] = "sample"
    t["gpu_name"] = "Fake GPU"
    half = t.iloc[:10].assign(dtype="float16", dtype_bytes=2)  # another dtype: must be left out
    pd.concat([t, half]).to_csv(folder / "layers.csv", index=False)
    nets = pd.DataFrame(
        {
            "network": ["vgg16", "alexnet", "vgg16"],
            "batch": [1, 1, 4],
            "dtype": "float32",
            "runtime_ms": [2.0, 0.5, 6.0],
            "status": "ok",
        }
    )
    nets.to_csv(folder / "nets.csv", index=False)
    prov = {
        "gpu_name": "Fake GPU",
        "peak_flops_per_s": {"float32": 5e13, "tf32": 3e14},
        "copy_bandwidth_bytes_per_s": 2e12,
    }
    (folder / "provenance.json").write_text(json.dumps(prov))
    return folder


@pytest.fixture(scope="module")
def np_model(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "np.json"
    assert main(["fit", "--data", str(dataset), "--out", str(out), *FAST]) == 0
    return out


def test_fit_writes_a_neuralpower_model_of_the_chosen_dtype(np_model: Path, capsys):
    model = load(np_model)
    assert model.model_type == "neuralpower"
    assert model.dtype_ == "float32" and model.device_ == "Fake GPU"
    assert model.power_ is not None
    assert set(model.runtime_.groups_) == {"conv2d", "linear", "pool", "activation"}


def test_predict_vgg16_prints_layers_and_totals(np_model: Path, capsys):
    assert main(["predict", "--model", str(np_model), "--net", "vgg16", "--batch", "64"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["index", "name", "kind", "runtime_ms", "power_w", "energy_mj"]
    n_layers = len(zoo.describe_net("vgg16", 64, weights=False))
    assert sum(1 for line in lines if "features_" in line or "classifier_" in line) == n_layers - 2
    assert "vgg16 batch 64 (float32, Fake GPU)" in out and "runtime" in out and "mJ" in out


def test_predict_json_and_csv_agree(np_model: Path, capsys):
    assert (
        main(
            [
                "predict",
                "--model",
                str(np_model),
                "--net",
                "alexnet",
                "--batch",
                "8",
                "--format",
                "json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    runtimes = [row["runtime_ms"] for row in doc["layers"]]
    assert doc["totals"]["runtime_ms"] == pytest.approx(sum(runtimes))
    assert doc["totals"]["energy_mj"] == pytest.approx(
        sum(row["energy_mj"] for row in doc["layers"])
    )
    assert doc["network"] == "alexnet" and doc["batch"] == 8 and doc["model_type"] == "neuralpower"
    dropout = [row for row in doc["layers"] if row["kind"] == "dropout"]
    assert dropout and all(row["power_w"] is None for row in dropout)  # no time, no power
    assert (
        main(
            [
                "predict",
                "--model",
                str(np_model),
                "--net",
                "alexnet",
                "--batch",
                "8",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    from io import StringIO

    table = pd.read_csv(StringIO(capsys.readouterr().out))
    assert table["name"].iloc[-1] == "total"
    assert table["runtime_ms"].iloc[-1] == pytest.approx(doc["totals"]["runtime_ms"])
    assert len(table) == len(doc["layers"]) + 1


def test_paleo_predicts_runtime_only(dataset: Path, tmp_path: Path, capsys):
    out = tmp_path / "paleo.json"
    assert main(["fit", "--data", str(dataset), "--out", str(out), "--model", "paleo"]) == 0
    assert load(out).model_type == "paleo"
    assert "ppp_compute" in capsys.readouterr().out
    assert (
        main(["predict", "--model", str(out), "--net", "vgg16", "--batch", "2", "--format", "json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["runtime_ms"] > 0
    assert doc["totals"]["energy_mj"] is None and all(r["power_w"] is None for r in doc["layers"])
    assert main(["predict", "--model", str(out), "--net", "vgg16", "--batch", "2"]) == 0
    assert "not predicted by this model" in capsys.readouterr().out
    assert (
        main(
            [
                "fit",
                "--data",
                str(dataset),
                "--out",
                str(out),
                "--model",
                "paleo",
                "--target",
                "power",
            ]
        )
        == 2
    )
    assert "runtime only" in capsys.readouterr().err


def test_single_target_and_calibrated_models(dataset: Path, tmp_path: Path, capsys):
    power = tmp_path / "power.json"
    assert (
        main(["fit", "--data", str(dataset), "--out", str(power), "--target", "power", *FAST]) == 0
    )
    assert load(power).target == "power_w"
    capsys.readouterr()
    assert main(["predict", "--model", str(power), "--net", "alexnet", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["runtime_ms"] is None and doc["layers"][0]["power_w"] > 0
    cal = tmp_path / "cal.json"
    assert (
        main(["fit", "--data", str(dataset), "--out", str(cal), "--calibrate", "global", *FAST])
        == 0
    )
    assert load(cal).model_type == "network_calibration"
    assert "network calibration (global)" in capsys.readouterr().err
    assert (
        main(["predict", "--model", str(cal), "--net", "vgg16", "--batch", "4", "--format", "json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    totals = doc["totals"]
    assert totals["runtime_ms"] != pytest.approx(totals["runtime_ms_raw"])
    assert totals["energy_mj"] == pytest.approx(totals["power_w"] * totals["runtime_ms"])
    assert main(["predict", "--model", str(cal), "--net", "vgg16", "--batch", "4"]) == 0
    assert "network-calibrated" in capsys.readouterr().out


def test_model_file_of_another_version_or_type_is_refused(np_model: Path, tmp_path: Path, capsys):
    doc = json.loads(np_model.read_text())
    doc["format_version"] = 99
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    assert main(["predict", "--model", str(old), "--net", "vgg16", "--batch", "1"]) == 2
    err = capsys.readouterr().err
    assert "hwml predict: error" in err and "format_version 99" in err and "refit" in err
    other = Eyeriss().fit().save(tmp_path / "eyeriss.json")
    assert main(["predict", "--model", str(other), "--net", "vgg16"]) == 2
    err = capsys.readouterr().err
    assert "'eyeriss'" in err and "neuralpower" in err
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}')
    assert main(["predict", "--model", str(junk), "--net", "vgg16"]) == 2
    assert "not an hwml predictor file" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "missing.json"), "--net", "vgg16"]) == 2
    assert "hwml fit" in capsys.readouterr().err


def test_unknown_net_and_bad_fit_inputs(np_model: Path, dataset: Path, tmp_path: Path, capsys):
    assert main(["predict", "--model", str(np_model), "--net", "lenet", "--batch", "1"]) == 2
    err = capsys.readouterr().err
    assert "lenet" in err and "vgg16" in err
    out = str(tmp_path / "m.json")
    assert main(["fit", "--data", str(dataset), "--out", out, "--dtype", "bfloat16", *FAST]) == 2
    err = capsys.readouterr().err
    assert "'bfloat16'" in err and "['float16', 'float32']" in err
    assert main(["fit", "--data", str(tmp_path / "nowhere"), "--out", out]) == 2
    assert "not a dataset folder" in capsys.readouterr().err
    assert main(["fit", "--data", str(dataset), "--out", out, "--source", "zoo"]) == 2
    assert "source 'zoo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--data", str(dataset), "--out", out, "--degrees", "0"])
    assert not Path(out).exists()


def test_errors_name_the_file_line_and_column(
    np_model: Path, dataset: Path, tmp_path: Path, capsys
):
    """A folder given as the model, an --out whose folder is missing (refused before the
    fit), a bad cell, an impossible runtime and an empty table: one line each, naming the
    file, line and column; nothing half-written."""
    assert main(["predict", "--model", str(tmp_path), "--net", "vgg16"]) == 2
    assert f"{tmp_path} is a folder" in capsys.readouterr().err
    doc = json.loads(np_model.read_text())
    doc["state"] = None
    null = tmp_path / "null.json"
    null.write_text(json.dumps(doc))
    assert main(["predict", "--model", str(null), "--net", "vgg16"]) == 2
    err = capsys.readouterr().err
    assert str(null) in err and "damaged" in err
    missing = tmp_path / "no" / "such" / "m.json"
    assert main(["fit", "--data", str(dataset), "--out", str(missing), *FAST]) == 2
    assert f"the folder {missing.parent} does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "provenance.json").write_text((dataset / "provenance.json").read_text())
    table = pd.read_csv(dataset / "layers.csv")
    table["runtime_ms"] = table["runtime_ms"].astype(object)
    table.loc[1, "runtime_ms"] = "abc"
    table.loc[4, "runtime_ms"] = -1.0
    table.to_csv(bad / "layers.csv", index=False)
    out = tmp_path / "m.json"
    assert main(["fit", "--data", str(bad), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "layers.csv: line 3, runtime_ms = 'abc' is not a number" in err
    assert "line 6, runtime_ms = " in err and "(must be > 0)" in err
    (bad / "layers.csv").write_text("")
    assert main(["fit", "--data", str(bad), "--out", str(out), *FAST]) == 2
    assert "layers.csv is empty" in capsys.readouterr().err
    assert not out.exists()


ATTENTION_NET = ["--net", "tests.predict.conftest:ConvAttention", "--input-shape", "3,8,8"]


def test_predict_names_the_layers_it_left_out(np_model: Path, capsys):
    """The model has no norm or attention rows: those layers are left out, and said so."""
    args = ["predict", "--model", str(np_model), *ATTENTION_NET, "--batch", "2"]
    assert main(args) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[-1] == "left_out"
    note = "left out: 3 layers the model cannot price, by kind: attention (1), norm (2); "
    assert lines[-1].startswith(note) and "the totals exclude them" in lines[-1]
    for name in ("ln1", "attn", "ln2"):
        row = next(line for line in lines if line.split()[1:2] == [name])
        assert row.split()[-1] == "True"
    assert "Warning" not in captured.err  # said once, in the output's own form

    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["left_out"]["layers"] == 3 and doc["left_out"]["kinds"] == {
        "attention": 1,
        "norm": 2,
    }
    assert doc["totals"]["left_out_layers"] == 3
    assert doc["left_out"]["note"].startswith(note)
    left = [row["name"] for row in doc["layers"] if row["left_out"]]
    assert left == ["ln1", "attn", "ln2"]
    assert doc["totals"]["runtime_ms"] == pytest.approx(
        sum(row["runtime_ms"] for row in doc["layers"] if not row["left_out"])
    )

    assert main([*args, "--format", "csv"]) == 0
    captured = capsys.readouterr()
    from io import StringIO

    table = pd.read_csv(StringIO(captured.out))
    assert list(table.loc[table["left_out"] == True, "name"]) == ["ln1", "attn", "ln2"]  # noqa: E712
    assert table["name"].iloc[-1] == "total"
    assert note in captured.err

    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert "hwml predict: error" in err
    assert (
        "'attention' (1 layer), 'norm' (2 layers)" in err and "fitted groups are activation" in err
    )


def test_a_complete_prediction_has_no_left_out_line(np_model: Path, capsys):
    assert main(["predict", "--model", str(np_model), "--net", "alexnet", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "left out" not in out and "left_out" not in out
    assert main(["predict", "--model", str(np_model), "--net", "alexnet", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["left_out"] == {"layers": 0, "kinds": {}, "note": None}
