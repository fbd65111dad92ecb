"""Tests of hwml.data: append-only tables, repair, provenance identity."""

from __future__ import annotations

import pytest

from hwml import data
from hwml.data import AppendTable, DatasetError


def test_append_and_resume_keys(tmp_path):
    t = AppendTable(tmp_path / "t.csv", ["key", "x"])
    t.append({"key": "a", "x": 1})
    t.append({"key": "b", "x": float("nan")})
    again = AppendTable(tmp_path / "t.csv", ["key", "x"])
    assert again.done_keys() == {"a", "b"}
    df = data.read_table(tmp_path, "t")
    assert list(df["key"]) == ["a", "b"] and df["x"].isna().tolist() == [False, True]


def test_half_written_line_is_dropped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("key,x\na,1\nb,")
    t = AppendTable(path, ["key", "x"])
    assert t.done_keys() == {"a"}
    t.append({"key": "b", "x": 2})
    assert path.read_text() == "key,x\na,1\nb,2\n"


def test_header_mismatch_is_refused(tmp_path):
    AppendTable(tmp_path / "t.csv", ["key", "x"])
    with pytest.raises(DatasetError, match="missing"):
        AppendTable(tmp_path / "t.csv", ["key", "x", "y"])
    with pytest.raises(DatasetError, match="not in the table"):
        AppendTable(tmp_path / "t.csv", ["key", "x"]).append({"key": "a", "z": 1})


def test_provenance_refuses_a_second_gpu_model(tmp_path):
    data.update_provenance(tmp_path, {"gpu_name": "GPU A"}, {"command": "x", "v": float("nan")})
    prov = data.read_provenance(tmp_path)
    assert prov["runs"][0]["v"] is None  # NaN is stored as JSON null
    with pytest.raises(DatasetError, match="GPU A"):
        data.update_provenance(tmp_path, {"gpu_name": "GPU B"})


def test_missing_table_names_what_exists(tmp_path):
    AppendTable(tmp_path / "layers.csv", ["key"])
    with pytest.raises(DatasetError, match="layers"):
        data.read_table(tmp_path, "nets")


def test_readme_has_column_table(tmp_path):
    AppendTable(tmp_path / "t.csv", ["key", "runtime_ms"])
    path = data.write_readme(
        tmp_path,
        "T",
        "desc",
        {"t": {"key": ("-", "id"), "runtime_ms": ("ms", "time")}},
        {"gpu_name": "G"},
    )
    text = path.read_text()
    assert "| `runtime_ms` | ms | time |" in text and "gpu_name" in text


def test_slugify():
    assert data.slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
