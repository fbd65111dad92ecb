"""hwml.cluster: --cluster specs, tasks in process and on a LocalCluster of two CPU
processes, results in completion order to one writer, a worker killed mid-task."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from hwml.cluster import (
    Cluster,
    ClusterSpec,
    SerialExecutor,
    TaskResult,
    open_cluster,
    parse_cluster,
    visible_gpus,
)
from hwml.data import AppendTable

# ---------------------------------------------------------------------- tasks (module level:
# the workers import them by name)


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return x


def nap(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


def nap_and_report(x: int, seconds: float, folder: str) -> dict:
    """Write this process's id (the first time the task starts), then sleep."""
    marker = Path(folder) / f"{x}.pid"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
    time.sleep(seconds)
    return {"x": x, "pid": os.getpid()}


# ---------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    "text, spec",
    [
        ("local", ClusterSpec("local")),
        (None, ClusterSpec("local")),
        ("local:3", ClusterSpec("local", n_workers=3)),
        ("process", ClusterSpec("process")),
        ("tcp://10.0.0.5:8786", ClusterSpec("remote", address="tcp://10.0.0.5:8786")),
        ("tls://sched.example:8786", ClusterSpec("remote", address="tls://sched.example:8786")),
        (" local:2 ", ClusterSpec("local", n_workers=2)),
    ],
)
def test_parse_cluster(text, spec):
    assert parse_cluster(text) == spec
    assert parse_cluster(spec) is spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpu",
        "local:0",
        "local:-1",
        "local:x",
        "local:",
        "tcp://host",
        "tcp://:8786",
        "tcp://host:99999",
        "http://host:8786",
        "remote",
    ],
)
def test_parse_cluster_rejects(text):
    with pytest.raises(ValueError, match="local, local:N"):
        parse_cluster(text)


def test_spec_text_round_trips():
    for text in ("local", "local:4", "process", "tcp://h:1"):
        assert str(parse_cluster(text)) == text
    with pytest.raises(ValueError):
        ClusterSpec("remote")
    with pytest.raises(ValueError):
        ClusterSpec("local", n_workers=0)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


# ---------------------------------------------------------------------- in process


def test_local_with_one_device_runs_in_process():
    with open_cluster("local", device="cpu") as cluster:
        assert cluster.in_process and cluster.kind == "process" and cluster.n_workers == 1
    with open_cluster("process") as cluster:
        assert cluster.in_process


def test_in_process_map_keeps_order_and_records_errors():
    cluster = open_cluster("process")
    out = list(cluster.map_unordered(fail_on, [(k, (k, 2)) for k in range(4)]))
    assert [r.key for r in out] == [0, 1, 2, 3]
    assert [r.value for r in out] == [0, 1, None, 3]
    assert out[2].error.startswith("RuntimeError: CUDA out of memory")
    assert not out[2].ok and out[3].ok and out[3].worker == "process"
    assert cluster.run_on_workers(lambda: 7) == {"process": 7}


def test_serial_executor_hands_errors_to_the_future():
    ex = SerialExecutor()
    assert ex.submit(square, 3).result() == 9
    with pytest.raises(ZeroDivisionError):
        ex.submit(lambda: 1 / 0).result()


# ---------------------------------------------------------------------- two worker processes


@pytest.fixture(scope="module")
def two_workers():
    cluster = open_cluster("local:2", device="cpu", threads_per_worker=1)
    yield cluster
    cluster.close()


def test_local_cluster_has_two_processes(two_workers):
    assert isinstance(two_workers, Cluster) and not two_workers.in_process
    assert two_workers.n_workers == 2
    pids = two_workers.run_on_workers(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert two_workers.facts()["cluster"] == "local:2"


def test_results_come_back_in_completion_order(two_workers):
    # task 0 sleeps longest: it finishes last though it was submitted first
    items = [(0, (0, 1.5)), (1, (1, 0.05)), (2, (2, 0.1))]
    out = list(two_workers.map_unordered(nap, items))
    assert sorted(r.key for r in out) == [0, 1, 2]
    assert out[-1].key == 0
    assert all(r.ok and r.worker.startswith("tcp://") for r in out)


def test_one_writer_appends_every_result(two_workers, tmp_path):
    table = AppendTable(tmp_path / "rows.csv", ["key", "value", "status", "error"])
    for r in two_workers.map_unordered(fail_on, [(f"k{k}", (k, 3)) for k in range(8)]):
        table.append(
            {"key": r.key, "value": r.value, "status": "ok" if r.ok else "error", "error": r.error}
        )
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert len(lines) == 9  # header + 8 whole rows, one per task
    assert table.done_keys() == {f"k{k}" for k in range(8)}
    assert table.done_keys(retry_failed=True) == {f"k{k}" for k in range(8)} - {"k3"}
    # an out-of-memory error in one task did not stop the others
    assert sum("out of memory" in line for line in lines) == 1


def test_executor_futures(two_workers):
    ex = two_workers.executor()
    futures = [ex.submit(square, i) for i in range(4)]
    assert [f.result(timeout=30) for f in futures] == [0, 1, 4, 9]


def _kill_when_started(folder: Path, task: int, killed: list[int]) -> threading.Thread:
    def run() -> None:
        marker = folder / f"{task}.pid"
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # mid-task
        pid = int(marker.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_killed_worker_task_is_retried_and_finished_rows_kept(tmp_path):
    table = AppendTable(tmp_path / "rows.csv", ["key", "x", "status", "error"])
    killed: list[int] = []
    with open_cluster("local:2", device="cpu", allowed_failures=2) as cluster:
        thread = _kill_when_started(tmp_path, 3, killed)
        items = [(k, (k, 2.0 if k == 3 else 0.2, str(tmp_path))) for k in range(6)]
        results: list[TaskResult] = []
        for r in cluster.map_unordered(nap_and_report, items):
            results.append(r)
            table.append(
                {
                    "key": r.key,
                    "x": r.value and r.value["x"],
                    "status": "ok" if r.ok else "error",
                    "error": r.error,
                }
            )
        thread.join(5)
    assert killed, "the worker was not killed"
    assert sorted(r.key for r in results) == list(range(6))
    assert all(r.ok for r in results), [r.error for r in results]
    again = next(r for r in results if r.key == 3)
    assert again.value["pid"] != killed[0]  # ran again in a live worker
    assert table.done_keys(retry_failed=True) == set(map(str, range(6)))


def test_killed_worker_task_recorded_failed_with_reason_then_resumed(tmp_path):
    table = AppendTable(tmp_path / "rows.csv", ["key", "status", "error"])
    killed: list[int] = []
    with open_cluster("local:2", device="cpu", allowed_failures=0) as cluster:
        thread = _kill_when_started(tmp_path, 1, killed)
        items = [(str(k), (k, 3.0 if k == 1 else 0.2, str(tmp_path))) for k in range(4)]
        for r in cluster.map_unordered(nap_and_report, items):
            table.append({"key": r.key, "status": "ok" if r.ok else "error", "error": r.error})
        thread.join(5)
        assert killed
        rows = (tmp_path / "rows.csv").read_text().splitlines()[1:]
        failed = [line for line in rows if line.startswith("1,")]
        assert len(rows) == 4 and len(failed) == 1
        assert "KilledWorker" in failed[0]
        # a rerun measures only what is not done: the failed task
        todo = [k for k in map(str, range(4)) if k not in table.done_keys(retry_failed=True)]
        assert todo == ["1"]
        for f in tmp_path.glob("*.pid"):
            f.unlink()
        again = list(
            cluster.map_unordered(nap_and_report, [(k, (1, 0.1, str(tmp_path))) for k in todo])
        )
    assert again[0].ok and again[0].value["x"] == 1


def test_connects_to_a_scheduler_address_and_needs_gpu_workers():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=1,
        resources={"GPU": 1},
        dashboard_address=":0",
        protocol="tcp://",
        host="127.0.0.1",
    ) as running:
        with open_cluster(running.scheduler_address) as cluster:
            assert cluster.kind == "remote" and cluster.n_workers == 1
            out = list(cluster.map_unordered(square, [(i, (i,)) for i in range(3)]))
            assert sorted(r.value for r in out) == [0, 1, 4]
    with LocalCluster(
        n_workers=1, processes=False, dashboard_address=":0", protocol="tcp://", host="127.0.0.1"
    ) as plain:
        with pytest.raises(RuntimeError, match="--resources GPU=1"):
            open_cluster(plain.scheduler_address, timeout_s=2)
