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


def _runs(folder):
    return data.read_provenance(folder)["runs"]


def test_run_log_is_written_at_start_and_completed_at_the_end(tmp_path):
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "sweep"}) as log:
        (entry,) = _runs(tmp_path)  # on disk before any row: a killed run still shows
        assert entry["outcome"] == "running" and entry["finished"] is None
        log.row()
        log.row(2)
    (entry,) = _runs(tmp_path)
    assert entry["rows_written"] == 3 and entry["outcome"] == "completed"
    assert entry["finished"] and entry["command"] == "sweep"


def test_run_log_records_a_failure_and_lets_it_through(tmp_path):
    data.update_provenance(tmp_path, {"gpu_name": "G"}, {"command": "earlier"})
    with pytest.raises(ValueError, match="boom"):
        with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "sweep"}) as log:
            log.row()
            raise ValueError("boom\nsecond line")
    earlier, entry = _runs(tmp_path)
    assert earlier["command"] == "earlier" and "outcome" not in earlier
    assert entry["outcome"] == "failed: ValueError: boom" and entry["rows_written"] == 1


def test_run_log_turns_sigterm_into_a_recorded_stop(tmp_path):
    import os
    import signal

    before = signal.getsignal(signal.SIGTERM)
    done = []
    with pytest.raises(data.RunStopped) as stopped:
        with data.RunLog(
            tmp_path, {"gpu_name": "G"}, {"command": "sweep"}, on_exit=lambda: done.append(1)
        ) as log:
            log.row()
            os.kill(os.getpid(), signal.SIGTERM)
            log.row()  # never reached: the signal stops the run first
    assert stopped.value.code == 128 + signal.SIGTERM
    (entry,) = _runs(tmp_path)
    assert entry["outcome"] == "stopped (SIGTERM)" and entry["rows_written"] == 1
    assert done == [1] and signal.getsignal(signal.SIGTERM) is before


def test_run_log_checks_identity_before_the_run(tmp_path):
    data.update_provenance(tmp_path, {"gpu_name": "GPU A"})
    with pytest.raises(DatasetError, match="GPU A"):
        with data.RunLog(tmp_path, {"gpu_name": "GPU B"}, {"command": "sweep"}):
            pytest.fail("the run must not start")


def test_readme_lists_outcomes_and_appends_notes(tmp_path):
    data.update_provenance(tmp_path, {"gpu_name": "G"}, {"command": "killed", "outcome": "running"})
    with data.RunLog(
        tmp_path, {"gpu_name": "G"}, {"command": "ok", "git_commit": "abc1234"}
    ) as log:
        log.row(5)
    (tmp_path / "NOTES.md").write_text("## Notes\n\n- the first run was killed\n")
    text = data.write_readme(tmp_path, "T", "desc", {}).read_text()
    assert "| outcome |" in text
    assert "`killed` |  | no end recorded (killed, or still running) |" in text
    assert "`ok` | 5 | completed | abc1234 |" in text
    assert text.rstrip().endswith("- the first run was killed")
