"""Tests of the hwml command line (describe and profile)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwml import zoo
from hwml.cli import main


def test_describe_json_totals_match_flop_counter(capsys):
    assert main(["describe", "--net", "resnet50", "--batch", "32", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with torch.device("meta"):
        module = zoo.get("resnet50")
    with FlopCounterMode(display=False) as counter:
        module(torch.empty(32, 3, 224, 224, device="meta"))
    assert out["totals"]["flops"] == pytest.approx(counter.get_total_flops(), rel=0.005)
    assert len(out["layers"]) == out["totals"]["layers"]
    assert out["layers"][0]["kind"] == "conv2d"


def test_describe_table_and_csv(capsys):
    assert main(["describe", "--net", "vgg16", "--batch", "64"]) == 0
    text = capsys.readouterr().out
    assert "features_0" in text and "GFLOPs" in text
    assert main(["describe", "--net", "alexnet", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("network,index,name,kind")
    assert len(lines) == 1 + len(zoo.describe_net("alexnet", weights=False))


def test_describe_list_and_unknown(capsys):
    assert main(["describe", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in zoo.names())
    assert main(["describe", "--net", "lenet"]) == 2
    err = capsys.readouterr().err
    assert "lenet" in err and "mobilenet_v2" in err


def test_profile_without_gpu_says_so(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["profile", "layers", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_profile_layers_on_cpu(tmp_path, capsys):
    out = tmp_path / "cpu"
    args = [
        "profile",
        "layers",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--kinds",
        "linear",
        "--samples",
        "linear=3",
        "--budget-ms",
        "2",
        "--no-progress",
        "--git-commit",
        "abc",
    ]
    assert main(args) == 0
    df = pd.read_csv(out / "layers.csv")
    assert len(df) == 3 and (df["status"] == "no_power").all()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["dataset_kind"] == "cpu"
    assert prov["runs"][-1]["command"].startswith("hwml profile layers")
    assert prov["runs"][-1]["outcome"] == "completed" and prov["runs"][-1]["rows_written"] == 3
    assert main(args) == 0  # resumes: nothing new
    assert len(pd.read_csv(out / "layers.csv")) == 3
    again = json.loads((out / "provenance.json").read_text())["runs"]
    assert len(again) == 2 and again[-1]["rows_written"] == 0
