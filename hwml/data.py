"""Dataset folders under ``data/``: append-only tables, provenance and READMEs.

A dataset folder holds one device's measurements (never two GPU models in one folder):

* ``*.csv`` tables, written one row at a time and flushed, so an interrupted sweep loses
  at most the row in flight; every row has a ``key`` and a rerun skips keys already
  present;
* ``provenance.json``: the device and software facts, and one entry per measuring run
  (command line, date, git commit, idle power, counter update period, ...), written when
  the run starts and completed when it ends, however it ends (:class:`RunLog`); a run
  killed outright is marked as ended by the next run that enters the folder;
* ``README.md``: where the data came from, the run log and a column | unit | meaning
  table, followed by the folder's hand-written ``NOTES.md`` when there is one.

Folders are found from the repository root, never from the current directory. Hidden
``.*.lock`` files in a folder serialize writers of ``provenance.json`` and keep two copies
of one sweep from running at once (:class:`RunLog`'s ``lock_name``); they are not data.

The module holds the whole folder contract (tables, provenance, run log, README) in one
place on purpose: a reader who wants to know what a dataset folder guarantees reads one
file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from filelock import FileLock, Timeout

from hwml.tables import AppendOnlyFile, csv_line, drop_torn_line

__all__ = [
    "REPO_ROOT",
    "data_root",
    "dataset_path",
    "list_datasets",
    "slugify",
    "AppendTable",
    "read_table",
    "read_provenance",
    "run_header",
    "update_provenance",
    "provenance_lock",
    "RunLog",
    "RunStopped",
    "SweepBusyError",
    "git_commit",
    "now_iso",
    "cpu_name",
    "write_readme",
    "json_safe",
    "DatasetError",
    "USABLE_STATUS",
    "USABLE_POWER_STATUS",
    "MEASURED_MINIMUM",
    "check_measured",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Values of a measured row's ``status`` whose *runtime* is valid: ``no_power`` rows have
#: a valid runtime and a NaN power; ``low_busy`` and ``over_limit`` rows have a valid
#: runtime and a power reading that is not trusted (the sweeps that write them:
#: :mod:`hwml.profile`).
USABLE_STATUS: tuple[str, ...] = ("ok", "no_power", "low_busy", "over_limit")

#: Values of ``status`` whose power and energy are trusted.
USABLE_POWER_STATUS: tuple[str, ...] = ("ok",)


class DatasetError(RuntimeError):
    """A dataset folder or table is missing or inconsistent."""


class SweepBusyError(DatasetError):
    """Another process is running the same sweep into the same dataset folder.

    Raised by :class:`RunLog` when its ``lock_name`` lock is held by another process.
    """


#: ``outcome`` of a run found ``"running"`` after its process had gone (killed outright).
GONE_OUTCOME = "ended without a record (process gone)"


def data_root() -> Path:
    """The repository's ``data/`` folder."""
    return REPO_ROOT / "data"


def slugify(text: str) -> str:
    """A folder-safe lower-case name: ``"NVIDIA H100 80GB HBM3"`` → ``"nvidia-h100-80gb-hbm3"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def dataset_path(name: str | os.PathLike[str]) -> Path:
    """Resolve a dataset: an existing path as given, else a folder under ``data/``."""
    p = Path(name)
    if p.is_absolute() or p.exists():
        return p
    return data_root() / p


def list_datasets(kind: str | None = None) -> list[Path]:
    """Dataset folders under ``data/`` (those with a ``provenance.json``), sorted.

    Args:
        kind: Only folders whose provenance ``dataset_kind`` equals this (e.g. ``"gpu"``).
    """
    out = []
    for p in sorted(data_root().glob("*/provenance.json")):
        if kind is None or read_provenance(p.parent).get("dataset_kind") == kind:
            out.append(p.parent)
    return out


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def cpu_name() -> str:
    """The host CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The repository's HEAD commit (with ``-dirty`` if the tree has changes), or None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return head + ("-dirty" if dirty.strip() else "")
    except Exception:  # noqa: BLE001 - not a git checkout
        return None


class AppendTable:
    """A CSV table that grows one flushed row at a time and can be resumed.

    Several processes may append to the same table: each row is written with a single
    ``write`` on a file opened with ``O_APPEND``, which the kernel keeps whole (the writer
    is :class:`hwml.tables.AppendOnlyFile`). Opening an existing table drops a half-written
    last line left by a killed writer.

    Args:
        path: CSV file.
        columns: Column order; an existing file must have exactly this header.
        key: Name of the column that identifies a row for resuming.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], key: str = "key"):
        self.path = Path(path)
        self.columns = list(columns)
        self.key = key
        if key not in self.columns:
            raise ValueError(f"key column {key!r} is not among the columns")
        self._file = AppendOnlyFile(self.path, header=csv_line(self.columns))
        if not self._file.fresh:
            drop_torn_line(self.path)
            self._check_header()

    def _check_header(self) -> None:
        """Refuse an existing file whose header is not :attr:`columns`."""
        with self.path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != self.columns:
            missing = sorted(set(self.columns) - set(header))
            extra = sorted(set(header) - set(self.columns))
            raise DatasetError(
                f"{self.path}: header does not match this sweep "
                f"(missing {missing}, unexpected {extra}); write to a new file"
            )

    def done_keys(self, *, retry_failed: bool = False) -> set[str]:
        """Keys of the rows already in the table.

        With ``retry_failed``, a key whose rows all have status ``error`` counts as not
        done (a sweep measures it again and appends the new row; readers prefer a usable
        row of a key, see :func:`hwml.measurements.load`).
        """
        if not self.path.exists():
            return set()
        done, failed = set(), set()
        with self.path.open(newline="") as f:
            for row in csv.DictReader(f):
                key = row.get(self.key)
                if key:
                    (failed if retry_failed and row.get("status") == "error" else done).add(key)
        return done

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row (missing columns empty; unknown columns are an error) and flush."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise DatasetError(f"{self.path}: row has columns not in the table: {sorted(unknown)}")
        self._file.append_line(csv_line([_cell(row.get(c)) for c in self.columns]))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return value


#: Measured columns that must hold numbers, and the smallest value each may take
#: (runtimes are positive; powers, energies and counts are not negative).
MEASURED_MINIMUM: dict[str, tuple[float, bool]] = {
    "runtime_ms": (0.0, False),
    "runtime_graph_ms": (0.0, False),
    "host_dispatch_ms": (0.0, True),
    "power_w": (0.0, True),
    "energy_mj": (0.0, True),
    "window_energy_mj": (0.0, True),
    "peak_mem_bytes": (0.0, True),
    "batch": (1.0, True),
}


def read_table(dataset: str | os.PathLike[str], table: str):
    """Read ``<dataset>/<table>.csv`` as a DataFrame, checking its measured columns.

    Raises:
        DatasetError: the table is missing (naming the tables that do exist) or empty,
            or a measured column (:data:`MEASURED_MINIMUM`) holds text or an impossible
            value: the message names the file, the line, the column and the value.
    """
    import pandas as pd

    folder = dataset_path(dataset)
    path = folder / f"{table}.csv"
    if not path.exists():
        have = sorted(p.stem for p in folder.glob("*.csv")) if folder.exists() else []
        raise DatasetError(f"no table {table!r} in {folder} (tables there: {have or 'none'})")
    try:
        frame = pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path} is empty (not even a header line)") from None
    check_measured(frame, path)
    return frame


def check_measured(frame: Any, path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatasetError` naming the first bad cells of the measured columns.

    A cell that is not a number, or a value below its column's minimum
    (:data:`MEASURED_MINIMUM`), is reported with the file's line number (the header is
    line 1), the column and the value; empty cells (not measured) are fine.
    """
    import pandas as pd

    problems = []
    for column, (low, inclusive) in MEASURED_MINIMUM.items():
        if column not in frame.columns:
            continue
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        text = raw.notna() & values.isna()
        below = (values < low) if inclusive else (values <= low)
        for index in list(raw.index[text])[:3]:
            problems.append(f"line {index + 2}, {column} = {raw[index]!r} is not a number")
        for index in list(raw.index[below.fillna(False)])[:3]:
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            problems.append(f"line {index + 2}, {column} = {raw[index]!r} (must be {bound})")
    if problems:
        raise DatasetError(f"{path}: " + "; ".join(problems[:5]))


def run_header(
    sweep: str, command: str | None, commit: str | None, shard: Sequence[int] = (0, 1)
) -> dict[str, Any]:
    """The facts a run's log entry opens with: what ran, when, and from which code.

    Args:
        sweep: What the run measures (``layers``, ``nets``, ``structures``, ...).
        command: The command line (default: this process's ``sys.argv``).
        commit: The code's commit when given explicitly (a copy without ``.git``); else
            the checkout's (:func:`git_commit`).
        shard: ``(i, n)`` of the run.
    """
    from hwml import __version__  # noqa: PLC0415 (the package root, no cycle)

    return {
        "sweep": sweep,
        "command": command or " ".join(sys.argv),
        "date": now_iso(),
        "git_commit": commit or git_commit(),
        "hwml": __version__,
        "shard": list(shard),
    }


def read_provenance(dataset: str | os.PathLike[str]) -> dict[str, Any]:
    """The dataset's ``provenance.json`` (empty dict if absent)."""
    path = dataset_path(dataset) / "provenance.json"
    if not path.exists() or path.stat().st_size == 0:
        return {}
    return json.loads(path.read_text())


def update_provenance(
    dataset: str | os.PathLike[str],
    facts: Mapping[str, Any],
    run: Mapping[str, Any] | None = None,
    identity: Iterable[str] = ("gpu_name",),
) -> dict[str, Any]:
    """Merge ``facts`` into the dataset's provenance and append ``run`` to its run log.

    Args:
        dataset: Dataset folder.
        facts: Dataset-level facts (device, software).
        run: One measuring run's facts (command, date, commit, idle power, ...).
        identity: Facts that must not change within a dataset; a mismatch is an error, so
            two GPU models never share a folder.

    Returns:
        The provenance now on disk.
    """
    folder = dataset_path(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    # Several sweep processes (one per GPU) may update the same file: serialize them.
    with provenance_lock(folder):
        return _update_provenance_locked(folder, facts, run, identity)


def provenance_lock(folder: str | os.PathLike[str]) -> FileLock:
    """The lock that serializes writers of ``<folder>/provenance.json`` (blocking).

    Use it as a context manager around a read-modify-write of the provenance (or of a
    README generated from it). It lives in ``<folder>/.provenance.json.lock``.

    Args:
        folder: Dataset folder.
    """
    return FileLock(dataset_path(folder) / ".provenance.json.lock")


def _update_provenance_locked(
    folder: Path, facts: Mapping[str, Any], run: Mapping[str, Any] | None, identity: Iterable[str]
) -> dict[str, Any]:
    prov = read_provenance(folder)
    for k in identity:
        if prov.get(k) not in (None, facts.get(k)) and facts.get(k) is not None:
            raise DatasetError(
                f"{folder} holds measurements of {k}={prov.get(k)!r}; refusing to add "
                f"{k}={facts.get(k)!r} (use another folder)"
            )
    prov.update({k: json_safe(v) for k, v in facts.items() if v is not None})
    if run is not None:
        prov.setdefault("runs", []).append({k: json_safe(v) for k, v in run.items()})
    (folder / "provenance.json").write_text(
        json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n"
    )
    return prov


class RunStopped(SystemExit):
    """A termination signal (e.g. ``SIGTERM`` from ``timeout``) arrived during a logged run.

    Uncaught, it ends the process with status 128 + the signal number, as the signal would.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signal = signal.Signals(signum).name


class RunLog:
    """One measuring run's entry in a dataset's run log, kept true however the run ends.

    Entering appends the entry (``finished`` empty, ``outcome`` "running", this process's
    ``pid`` and ``host``), so even a run killed outright is listed. Each row the run writes
    is counted with :meth:`row`; leaving the block records ``rows_written``, ``finished``
    and the ``outcome``: "completed", or "stopped (SIGTERM)", "interrupted" or
    "failed: <error>" when it ends early. While the block runs in the main thread,
    ``SIGTERM`` raises :class:`RunStopped` (exit status 143) so that the rows counted so
    far reach the log; the previous handler comes back after.

    A run killed outright (``kill -9``, power loss) cannot complete its entry. Entering a
    new run therefore settles the earlier entries still "running" on this host whose
    process is gone (its pid no longer exists, or the lock of its ``lock_name`` is free):
    their ``outcome`` becomes ``"ended without a record (process gone)"``, ``finished``
    stays empty and ``rows_written`` is counted from the ``run_id`` column of ``tables``.
    Entries of other hosts are left alone.

    With ``lock_name``, entering first takes the lock ``<folder>/.<lock_name>.lock``
    without waiting, and raises :class:`SweepBusyError` if another process holds it: two
    copies of one sweep started into one folder would otherwise both measure (and append)
    every row. Processes that share a table on purpose (one per GPU, each on its own
    shard) pass different names, e.g. ``"layers-shard0of2"``. The lock is released when
    the block ends, and by the operating system when the process dies.

    Example::

        with RunLog(folder, facts, {"command": cmd, "date": now_iso()}) as log:
            for row in rows:
                table.append({**row, "run_id": log.run_id})
                log.row()
    """

    def __init__(
        self,
        dataset: str | os.PathLike[str],
        facts: Mapping[str, Any],
        run: Mapping[str, Any],
        identity: Iterable[str] = ("gpu_name",),
        on_exit: Callable[[], Any] | None = None,
        *,
        lock_name: str | None = None,
        tables: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        """
        Args:
            dataset: Dataset folder.
            facts: Dataset-level facts, checked and merged as by :func:`update_provenance`.
            run: The run's facts (command, date, commit, ...).
            identity: Facts that must not change within the dataset.
            on_exit: Called after the entry is completed (e.g. to rewrite the README).
            lock_name: Name of the sweep, unique among the processes that may write into
                the folder at the same time (e.g. ``"layers"``, ``"layers-shard0of2"``);
                None takes no lock.
            tables: CSV tables the folder's runs write, with a ``run_id`` column, to count
                the rows of runs that ended without a record (files that do not exist or
                lack the column are skipped).

        Raises:
            ValueError: ``lock_name`` is empty or not a plain file-name part.
        """
        if lock_name is not None and (
            not lock_name or lock_name in (".", "..") or "/" in lock_name or os.sep in lock_name
        ):
            raise ValueError(f"lock_name must be a plain name, got {lock_name!r}")
        self.folder = dataset_path(dataset)
        self.facts = dict(facts)
        self.run = {**run, "run_id": uuid.uuid4().hex[:12]}
        self.identity = tuple(identity)
        self.on_exit = on_exit
        self.lock_name = lock_name
        self.tables = [Path(t) for t in tables]
        self.rows_written = 0
        self._previous: Any = None
        self._lock: FileLock | None = None

    @property
    def run_id(self) -> str:
        """This run's id in the run log (write it into each row the run appends)."""
        return self.run["run_id"]

    @property
    def lock_path(self) -> Path | None:
        """``<folder>/.<lock_name>.lock``, or None without a ``lock_name``."""
        return None if self.lock_name is None else _sweep_lock_path(self.folder, self.lock_name)

    def row(self, n: int = 1) -> None:
        """Count ``n`` rows written by this run."""
        self.rows_written += n

    def __enter__(self) -> RunLog:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.lock_name is not None:
            self._take_lock()
        try:
            entry = {
                **self.run,
                "pid": os.getpid(),
                "host": platform.node(),
                "finished": None,
                "outcome": "running",
            }
            if self.lock_name is not None:
                entry["lock_name"] = self.lock_name
            with provenance_lock(self.folder):
                _settle_gone_runs(self.folder, self.tables, self.lock_name)
                _update_provenance_locked(self.folder, self.facts, entry, self.identity)
        except BaseException:
            self._release_lock()
            raise
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _raise_stopped)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._previous is not None:
                signal.signal(signal.SIGTERM, self._previous)
                self._previous = None
            if exc_type is None:
                outcome = "completed"
            elif isinstance(exc, RunStopped):
                outcome = f"stopped ({exc.signal})"
            elif isinstance(exc, KeyboardInterrupt):
                outcome = "interrupted"
            else:
                first = str(exc).splitlines()[0][:200] if str(exc) else ""
                outcome = f"failed: {exc_type.__name__}" + (f": {first}" if first else "")
            _finish_run(
                self.folder,
                self.run_id,
                {"rows_written": self.rows_written, "finished": now_iso(), "outcome": outcome},
            )
            if self.on_exit is not None:
                self.on_exit()
        finally:
            self._release_lock()

    def _take_lock(self) -> None:
        path = self.lock_path
        assert path is not None
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise self._busy_error() from None
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()

    def _busy_error(self) -> SweepBusyError:
        """The error naming the run that holds this run's lock (from the provenance)."""
        try:
            with provenance_lock(self.folder):
                runs = read_provenance(self.folder).get("runs", [])
        except (OSError, ValueError):
            runs = []
        holders = [
            r
            for r in runs
            if isinstance(r, dict)
            and r.get("lock_name") == self.lock_name
            and r.get("outcome") == "running"
        ]
        here = platform.node()
        alive = [r for r in holders if r.get("host") != here or not _pid_gone(r.get("pid"))]
        holder = (alive or holders or [None])[-1]
        if holder is None:
            who = "by a process that has not logged its run yet"
        else:
            who = (
                f"by pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
                f"started {holder.get('date', '?')}: {holder.get('command', '?')}"
            )
        return SweepBusyError(
            f"{self.folder}: sweep {self.lock_name!r} is already running there (lock "
            f"{self.lock_path} held {who}); wait for it to end or use another --out folder"
        )


def _sweep_lock_path(folder: Path, lock_name: str) -> Path:
    return folder / f".{lock_name}.lock"


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise RunStopped(signum)


def _pid_gone(pid: Any) -> bool:
    """Whether ``pid`` surely names no process on this host (False when it cannot tell)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: a process of another user
        return False
    return False


def _lock_free(folder: Path, lock_name: Any, own: str | None) -> bool:
    """Whether nobody holds the sweep lock ``lock_name`` of ``folder``."""
    if not isinstance(lock_name, str) or not lock_name:
        return False
    if lock_name == own:  # this process holds it: the earlier run cannot
        return True
    path = _sweep_lock_path(folder, lock_name)
    if not path.exists():
        return True
    probe = FileLock(path, timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return False
    probe.release()
    return True


def _settle_gone_runs(folder: Path, tables: Sequence[Path], own_lock: str | None) -> None:
    """Mark this host's "running" entries whose process is gone (caller holds the lock)."""
    prov = read_provenance(folder)
    here = platform.node()
    gone = [
        entry
        for entry in prov.get("runs", [])
        if isinstance(entry, dict)
        and entry.get("outcome") == "running"
        and entry.get("host") == here
        and "pid" in entry
        and (
            _pid_gone(entry["pid"])
            or ("lock_name" in entry and _lock_free(folder, entry["lock_name"], own_lock))
        )
    ]
    if not gone:
        return
    counts = _count_run_rows(tables, {str(e.get("run_id")) for e in gone}) if tables else {}
    for entry in gone:
        entry["outcome"] = GONE_OUTCOME
        entry["finished"] = None
        entry["rows_written"] = counts.get(str(entry.get("run_id"))) if tables else None
    (folder / "provenance.json").write_text(
        json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n"
    )


def _count_run_rows(tables: Sequence[Path], run_ids: set[str]) -> dict[str, int]:
    """Rows per ``run_id`` (of ``run_ids``) in the CSV ``tables`` that have the column.

    A half-written last line (a writer killed mid-row) is not counted.
    """
    counts = dict.fromkeys(run_ids, 0)
    for path in tables:
        if not path.is_file() or path.stat().st_size == 0:
            continue
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            complete = f.read(1) == b"\n"
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if "run_id" not in header:
                continue
            col = header.index("run_id")
            last: str | None = None
            for row in reader:
                last = row[col] if len(row) > col else None
                if last in counts:
                    counts[last] += 1
            if not complete and last in counts:
                counts[last] -= 1
    return counts


def _finish_run(folder: Path, run_id: str, updates: Mapping[str, Any]) -> None:
    with provenance_lock(folder):
        prov = read_provenance(folder)
        for entry in prov.get("runs", []):
            if entry.get("run_id") == run_id:
                entry.update(updates)
                break
        else:  # the file was replaced meanwhile: keep the run anyway
            prov.setdefault("runs", []).append({"run_id": run_id, **updates})
        (folder / "provenance.json").write_text(
            json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n"
        )


def json_safe(value: Any) -> Any:
    """``value`` ready for :func:`json.dumps`, the one JSON sanitizer of the package.

    NaN and infinities become None (JSON has neither), numpy scalars become Python
    numbers, and dicts, lists and tuples are converted recursively (tuples become lists);
    anything else is returned as it is.
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # a numpy scalar, without importing numpy here
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_readme(
    folder: str | os.PathLike[str],
    title: str,
    description: str,
    tables: Mapping[str, Mapping[str, tuple[str, str]]],
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dataset README: description, provenance summary and column tables.

    Args:
        folder: Dataset folder.
        title: First heading.
        description: Markdown paragraphs: source, how it was measured.
        tables: ``{table: {column: (unit, meaning)}}`` for each CSV present.
        provenance: Facts to summarize (defaults to the folder's provenance.json).

    Returns:
        The README path.
    """
    folder = dataset_path(folder)
    prov = dict(provenance if provenance is not None else read_provenance(folder))
    lines = [f"# {title}", "", description.strip(), ""]
    runs = prov.pop("runs", [])
    if prov:
        lines += ["## Provenance", "", "| fact | value |", "| --- | --- |"]
        for k in sorted(prov):
            v = prov[k]
            if isinstance(v, dict):
                v = ", ".join(
                    f"{a}: {b:.4g}" if isinstance(b, float) else f"{a}: {b}" for a, b in v.items()
                )
            lines.append(f"| {k} | {v} |")
        lines.append("")
    if runs:
        lines += [
            "## Runs",
            "",
            "| date | command | rows | outcome | commit |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in runs:
            rows = r.get("rows_written")
            outcome = r.get("outcome", "")
            if outcome == "running":  # never completed: killed, or still measuring
                outcome = "no end recorded (killed, or still running)"
            lines.append(
                f"| {r.get('date', '')} | `{r.get('command', '')}` | "
                f"{'' if rows is None else rows} | {outcome} | {r.get('git_commit', '') or ''} |"
            )
        lines.append("")
    for table, cols in tables.items():
        path = folder / f"{table}.csv"
        if not path.exists():
            continue
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        lines += [f"## `{table}.csv`", "", "| column | unit | meaning |", "| --- | --- | --- |"]
        for name in header:  # the file's own columns, in its order
            unit, meaning = cols.get(name, ("?", "not documented by this version of hwml"))
            lines.append(f"| `{name}` | {unit} | {meaning} |")
        lines.append("")
    notes = folder / "NOTES.md"
    if notes.exists():  # hand-written remarks about the runs (never about the numbers)
        lines += [notes.read_text().strip(), ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path
