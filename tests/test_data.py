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


def test_json_safe():
    import json
    import math

    import numpy as np

    value = {
        "nan": math.nan,
        "inf": [math.inf, -np.inf],
        "numpy": (np.float64(1.5), np.int64(3), np.bool_(True), np.float32("nan")),
        "kept": {"text": "a", "none": None, "int": 2, "float": 0.25},
    }
    safe = data.json_safe(value)
    assert safe == {
        "nan": None,
        "inf": [None, None],
        "numpy": [1.5, 3, True, None],
        "kept": {"text": "a", "none": None, "int": 2, "float": 0.25},
    }
    assert [type(v) for v in safe["numpy"][:3]] == [float, int, bool]
    json.dumps(safe, allow_nan=False)


def test_provenance_holds_no_nan(tmp_path):
    import json
    import math

    data.update_provenance(tmp_path, {"gpu_name": "X"}, {"idle_power_w": math.nan, "n": [1.0]})
    text = (tmp_path / "provenance.json").read_text()
    assert json.loads(text)["runs"][0] == {"idle_power_w": None, "n": [1.0]}


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


# ---------------------------------------------------------------- concurrent and killed runs

_CHILD_SWEEP = """
import sys, time
from pathlib import Path
from hwml.data import AppendTable, RunLog

folder, lock_name, rows = Path(sys.argv[1]), sys.argv[2] or None, int(sys.argv[3])
table = AppendTable(folder / "t.csv", ["key", "run_id"])
run = {"command": "child sweep", "date": "2024-05-06T07:08:09+00:00"}
with RunLog(folder, {"gpu_name": "G"}, run, lock_name=lock_name, tables=[table.path]) as log:
    for i in range(rows):
        table.append({"key": f"k{i}", "run_id": log.run_id})
        log.row()
    with table.path.open("a") as f:  # a row in flight when the kill comes
        f.write(f"half,{log.run_id}")
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def child_sweep():
    """Start a sweep in another process: ``start(folder, lock_name, rows)``; killed after."""
    import subprocess
    import sys

    procs = []

    def start(folder, lock_name=None, rows=3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_SWEEP, str(folder), lock_name or "", str(rows)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _kill(proc):
    import signal

    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_run_id_is_public(tmp_path):
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "sweep"}) as log:
        (entry,) = _runs(tmp_path)
        assert log.run_id == entry["run_id"] == log.run["run_id"]


def test_run_entry_names_its_process(tmp_path):
    import os
    import platform

    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "sweep"}, lock_name="layers"):
        (entry,) = _runs(tmp_path)
    assert entry["pid"] == os.getpid() and entry["host"] == platform.node()
    assert entry["lock_name"] == "layers"


def test_second_copy_of_a_sweep_is_refused(tmp_path, child_sweep):
    import platform

    proc = child_sweep(tmp_path, "layers")
    with pytest.raises(data.SweepBusyError) as busy:
        with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "again"}, lock_name="layers"):
            pytest.fail("the second copy must not run")
    message = str(busy.value)
    for part in (
        str(tmp_path),
        "'layers'",
        f"pid {proc.pid}",
        platform.node(),
        "child sweep",
        "2024-05-06T07:08:09+00:00",
        "another --out folder",
    ):
        assert part in message
    assert isinstance(busy.value, DatasetError) and "\n" not in message
    assert [r["command"] for r in _runs(tmp_path)] == ["child sweep"]  # nothing logged
    # Another shard of the same table runs alongside on purpose.
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "s1"}, lock_name="layers-1"):
        pass
    _kill(proc)  # the lock dies with its process
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "after"}, lock_name="layers"):
        pass
    assert [r["outcome"] for r in _runs(tmp_path)] == [
        data.GONE_OUTCOME,
        "completed",
        "completed",
    ]


def test_sweep_lock_is_released_at_the_end(tmp_path):
    facts, run = {"gpu_name": "G"}, {"command": "sweep"}
    with data.RunLog(tmp_path, facts, run, lock_name="layers"):
        with pytest.raises(data.SweepBusyError, match="pid"):  # even within one process
            with data.RunLog(tmp_path, facts, run, lock_name="layers"):
                pass
    with pytest.raises(ValueError, match="boom"):
        with data.RunLog(tmp_path, facts, run, lock_name="layers"):
            raise ValueError("boom")
    with data.RunLog(tmp_path, facts, run, lock_name="layers"):
        pass
    assert [r["outcome"] for r in _runs(tmp_path)] == [
        "completed",
        "failed: ValueError: boom",
        "completed",
    ]
    with pytest.raises(ValueError, match="plain name"):
        data.RunLog(tmp_path, facts, run, lock_name="../x")


def test_killed_run_is_marked_ended_with_its_rows_counted(tmp_path, child_sweep):
    proc = child_sweep(tmp_path, None, rows=3)
    _kill(proc)
    (killed,) = _runs(tmp_path)
    assert killed["outcome"] == "running" and killed["pid"] == proc.pid
    (tmp_path / "other.csv").write_text("key,x\nk0,1\n")  # no run_id column: skipped
    tables = [tmp_path / "t.csv", tmp_path / "other.csv", tmp_path / "missing.csv"]
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "next"}, tables=tables) as log:
        killed, entry = _runs(tmp_path)
        assert entry["run_id"] == log.run_id and entry["outcome"] == "running"
    killed, entry = _runs(tmp_path)
    assert killed["outcome"] == "ended without a record (process gone)"
    assert killed["finished"] is None
    assert killed["rows_written"] == 3  # the half-written row is not counted
    assert entry["outcome"] == "completed"
    text = data.write_readme(tmp_path, "T", "desc", {}).read_text()
    assert "`child sweep` | 3 | ended without a record (process gone) |" in text


def test_only_gone_processes_of_this_host_are_settled(tmp_path):
    import os
    import platform
    import subprocess
    import sys

    from filelock import FileLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here, me = platform.node(), os.getpid()
    earlier = {
        "dead": {"pid": dead.pid, "host": here},
        "free-lock": {"pid": me, "host": here, "lock_name": "layers-1"},
        "held-lock": {"pid": me, "host": here, "lock_name": "layers-2"},
        "alive": {"pid": me, "host": here},
        "elsewhere": {"pid": dead.pid, "host": here + "-other"},
        "no-pid": {"host": here},
    }
    for run_id, fields in earlier.items():
        run = {"run_id": run_id, "command": run_id, "finished": None, "outcome": "running"}
        data.update_provenance(tmp_path, {"gpu_name": "G"}, {**run, **fields})
    (tmp_path / "t.csv").write_text(
        "key,run_id\na,dead\nb,free-lock\nc,dead\nd,alive\n", encoding="utf-8"
    )
    with FileLock(tmp_path / ".layers-2.lock"):  # its holder still runs
        with data.RunLog(
            tmp_path, {"gpu_name": "G"}, {"command": "new"}, tables=[tmp_path / "t.csv"]
        ):
            pass
    runs = {r["run_id"]: r for r in _runs(tmp_path)}
    assert runs["dead"]["outcome"] == runs["free-lock"]["outcome"] == data.GONE_OUTCOME
    assert runs["dead"]["rows_written"] == 2 and runs["free-lock"]["rows_written"] == 1
    for run_id in ("held-lock", "alive", "elsewhere", "no-pid"):
        assert runs[run_id]["outcome"] == "running" and "rows_written" not in runs[run_id]


def test_gone_run_without_tables_has_no_row_count(tmp_path, child_sweep):
    _kill(child_sweep(tmp_path, None, rows=2))
    with data.RunLog(tmp_path, {"gpu_name": "G"}, {"command": "next"}):
        pass
    killed, _ = _runs(tmp_path)
    assert killed["outcome"] == data.GONE_OUTCOME and killed["rows_written"] is None


def test_provenance_writers_wait_for_the_folder_lock(tmp_path):
    import threading

    from filelock import FileLock

    done = threading.Event()

    def write():
        data.update_provenance(tmp_path, {"gpu_name": "G"}, {"command": "x"})
        done.set()

    with FileLock(tmp_path / ".provenance.json.lock"):
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5)  # blocked while another writer holds the lock
        assert not (tmp_path / "provenance.json").exists()
    writer.join(10)
    assert done.is_set() and [r["command"] for r in _runs(tmp_path)] == ["x"]


def test_concurrent_runs_keep_every_entry(tmp_path):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from hwml.data import RunLog\n"
        "for i in range(8):\n"
        "    with RunLog(sys.argv[1], {'gpu_name': 'G'}, {'command': sys.argv[2]}) as log:\n"
        "        log.row(i)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{k}"]) for k in range(4)
    ]
    assert [p.wait(120) for p in procs] == [0] * 4
    runs = _runs(tmp_path)
    assert len(runs) == 32 and all(r["outcome"] == "completed" for r in runs)
    assert sorted(r["rows_written"] for r in runs) == sorted(list(range(8)) * 4)


def test_cpu_name_reads_cpuinfo_and_falls_back_to_platform(monkeypatch) -> None:
    import platform
    from pathlib import Path

    from hwml.data import cpu_name

    monkeypatch.setattr(
        Path, "read_text", lambda self, *a, **k: "cpu\t: 0\nmodel name\t: Test CPU 9000\n"
    )
    assert cpu_name() == "Test CPU 9000"

    def missing(self, *a, **k):
        raise OSError("no /proc here")

    monkeypatch.setattr(Path, "read_text", missing)
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_name() == platform.machine()
