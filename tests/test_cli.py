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


def _cpu_layers(out, *extra):
    return [
        "profile",
        "layers",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--kinds",
        "linear",
        "--budget-ms",
        "2",
        "--no-progress",
        "--git-commit",
        "abc",
        *extra,
    ]


@pytest.mark.parametrize("bad", ["conv2d=-5", "-1", "conv2d=x", "=3", "conv2d=1.5"])
def test_bad_sample_counts_are_refused(tmp_path, capsys, bad):
    out = tmp_path / "cpu"
    with pytest.raises(SystemExit) as exited:
        main(_cpu_layers(out, f"--samples={bad}"))
    assert exited.value.code == 2
    assert bad in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("bad", ["3/2", "2/2", "-1/4", "0/0", "1", "a/b"])
def test_bad_shards_are_refused_before_the_device(tmp_path, capsys, monkeypatch, bad):
    from hwml import cli

    def no_device(args):
        raise AssertionError("the device must not be opened")

    monkeypatch.setattr(cli, "_open", no_device)
    out = tmp_path / "cpu"
    with pytest.raises(SystemExit) as exited:
        main(_cpu_layers(out, f"--shard={bad}"))
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --shard" in err and repr(bad) in err and "Traceback" not in err
    assert not out.exists()


def test_a_sub_command_that_fails_to_import_fails_the_command(monkeypatch):
    import importlib
    import sys

    import hwml

    # A broken hwml.cli_optimize: importing it raises ImportError.
    monkeypatch.setitem(sys.modules, "hwml.cli_optimize", None)
    monkeypatch.delattr(hwml, "cli_optimize", raising=False)
    monkeypatch.delitem(sys.modules, "hwml.cli")
    monkeypatch.delattr(hwml, "cli", raising=False)
    with pytest.raises(ImportError, match="hwml.cli_optimize"):
        importlib.import_module("hwml.cli")


def test_help_loads_neither_pandas_nor_scipy():
    import subprocess
    import sys

    code = (
        "import contextlib, io, sys\n"
        "from hwml.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print(sorted(m for m in ('pandas', 'scipy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("samples", "says"),
    [("0", "0 configurations of linear"), ("conv2d=5", "conv2d in --samples but not in --kinds")],
)
def test_nothing_to_measure_stops_before_the_device(tmp_path, capsys, monkeypatch, samples, says):
    from hwml import cli

    def no_device(args):
        raise AssertionError("the device must not be opened")

    monkeypatch.setattr(cli, "_open", no_device)
    out = tmp_path / "cpu"
    assert main(_cpu_layers(out, "--samples", samples)) == 2
    err = capsys.readouterr().err
    assert "nothing to measure" in err and says in err and "--zoo-batches" in err
    assert not out.exists()  # no provenance, no table


def _one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_ctrl_c_keeps_the_rows_and_says_so(tmp_path, capsys, monkeypatch):
    from hwml.data import AppendTable

    append = AppendTable.append
    calls = []

    def interrupted_append(self, row):
        calls.append(row)
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(self, row)

    monkeypatch.setattr(AppendTable, "append", interrupted_append)
    out = tmp_path / "cpu"
    args = _cpu_layers(out, "--samples", "linear=4")
    try:
        status = main(args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main(): the user sees a traceback")
    assert status == 130
    line = _one_line(capsys.readouterr().err.split(f"output {out}", 1)[-1])
    assert line == (
        f"hwml profile: interrupted: 2 rows kept in {out} (layers.csv); "
        "run the same command again to resume"
    )
    run = json.loads((out / "provenance.json").read_text())["runs"][-1]
    assert run["outcome"] == "interrupted" and run["rows_written"] == 2
    monkeypatch.setattr(AppendTable, "append", append)
    assert main(args) == 0  # resumes
    assert len(pd.read_csv(out / "layers.csv")) == 4


def test_dataset_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "cpu"
    out.mkdir()
    (out / "layers.csv").write_text("key,x\n")  # a table of another sweep
    assert main(_cpu_layers(out, "--samples", "linear=1")) == 2
    line = _one_line(capsys.readouterr().err.split(f"output {out}", 1)[-1])
    assert line.startswith("hwml profile: error: ") and "header does not match" in line


def test_busy_sweep_is_one_line(tmp_path, capsys, monkeypatch):
    from filelock import FileLock

    from hwml import data

    enter = data.RunLog.__enter__

    def locked_enter(self):  # whatever lock name the sweep picks, make it this one
        self.lock_name = "busy-test"
        return enter(self)

    monkeypatch.setattr(data.RunLog, "__enter__", locked_enter)
    out = tmp_path / "cpu"
    out.mkdir()
    with FileLock(out / ".busy-test.lock"):  # held by another sweep
        assert main(_cpu_layers(out, "--samples", "linear=1")) == 2
    line = _one_line(capsys.readouterr().err.split(f"output {out}", 1)[-1])
    assert "'busy-test' is already running" in line and "another --out folder" in line
    assert not (out / "layers.csv").exists() or len(pd.read_csv(out / "layers.csv")) == 0


def test_validate_on_a_cpu_stops_before_measuring(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["profile", "validate", "--device", "cpu", "--out", str(out)]) == 2
    assert "energy counter" in capsys.readouterr().err
    assert not out.exists()  # nothing calibrated, nothing written


def test_describe_takes_torchvision_and_own_networks(capsys):
    assert (
        main(["describe", "--net", "torchvision:resnet34", "--batch", "4", "--format", "json"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["network"] == "torchvision:resnet34" and doc["input_shape"] == [4, 3, 224, 224]
    spec = "tests.test_zoo:tiny_net"
    assert main(["describe", "--net", spec, "--input-shape", "1,6,6", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["layers"] == 3
    assert main(["describe", "--net", spec]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_profile_nets_measures_your_own_module_and_a_cell_network(tmp_path, capsys):
    out = tmp_path / "cpu"
    args = [
        "profile",
        "nets",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--batches",
        "2",
        "--budget-ms",
        "2",
        "--no-progress",
        "--git-commit",
        "abc",
    ]
    assert main([*args, "--nets", "tests.test_zoo:tiny_net", "--input-shape", "1,6,6"]) == 0
    assert main([*args, "--nets", "cells:1"]) == 0
    nets = pd.read_csv(out / "nets.csv").set_index("network")
    assert list(nets.index) == ["tests.test_zoo:tiny_net", "cells:1"]
    assert (nets["status"] == "no_power").all() or (nets["status"] == "ok").all()
    assert (nets["runtime_ms"] > 0).all() and (nets["batch"] == 2).all()
    assert nets.loc["cells:1", "layers"] == len(zoo.describe_net("cells:1", 2, weights=False))
    # without its input shape, your own module is refused before anything runs
    assert main([*args, "--nets", "tests.test_zoo:tiny_net"]) == 2
    assert "give the input shape" in capsys.readouterr().err


def test_a_failed_network_row_is_measured_again_only_when_asked(tmp_path, capsys):
    from hwml import measurements

    out = tmp_path / "cpu"
    (out).mkdir()
    (out / "provenance.json").write_text("{}")
    args = [
        "profile",
        "nets",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--batches",
        "2",
        "--budget-ms",
        "2",
        "--no-progress",
        "--git-commit",
        "abc",
        "--nets",
        "tests.test_zoo:tiny_net",
    ]
    with pytest.warns(RuntimeWarning):
        assert main([*args, "--input-shape", "1,1,1"]) == 0  # too small: the row fails
    assert list(pd.read_csv(out / "nets.csv")["status"]) == ["error"]
    assert main([*args, "--input-shape", "1,6,6"]) == 0  # a plain resume skips it
    assert len(pd.read_csv(out / "nets.csv")) == 1
    assert main([*args, "--input-shape", "1,6,6", "--retry-failed"]) == 0
    assert list(pd.read_csv(out / "nets.csv")["status"]) == ["error", "no_power"]
    ds = measurements.load(out)
    assert list(ds.network_set["status"]) == ["no_power"]
    assert ds.extra["nets_failures_measured_again"] == 1
