"""Dataset folders under ``data/``: append-only tables, provenance and READMEs.

A dataset folder holds one device's measurements (never two GPU models in one folder):

* ``*.csv`` tables, written one row at a time and flushed, so an interrupted sweep loses
  at most the row in flight; every row has a ``key`` and a rerun skips keys already
  present;
* ``provenance.json``: the device and software facts, and one entry per measuring run
  (command line, date, git commit, idle power, counter update period, ...), written when
  the run starts and completed when it ends, however it ends (:class:`RunLog`);
* ``README.md``: where the data came from, the run log and a column | unit | meaning
  table, followed by the folder's hand-written ``NOTES.md`` when there is one.

Folders are found from the repository root, never from the current directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

__all__ = [
    "REPO_ROOT",
    "data_root",
    "dataset_path",
    "list_datasets",
    "slugify",
    "AppendTable",
    "read_table",
    "read_provenance",
    "update_provenance",
    "RunLog",
    "RunStopped",
    "git_commit",
    "now_iso",
    "write_readme",
    "DatasetError",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


class DatasetError(RuntimeError):
    """A dataset folder or table is missing or inconsistent."""


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
    ``write`` on a file opened with ``O_APPEND``, which the kernel keeps whole.

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._repair()
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header != self.columns:
                missing = sorted(set(self.columns) - set(header))
                extra = sorted(set(header) - set(self.columns))
                raise DatasetError(
                    f"{self.path}: header does not match this sweep "
                    f"(missing {missing}, unexpected {extra}); write to a new file"
                )
        else:
            self._write_line(self.columns)

    def _repair(self) -> None:
        """Drop a half-written last line left by a killed writer."""
        with self.path.open("rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1
            f.truncate(cut)

    def _write_line(self, values: Sequence[Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        data = buf.getvalue().encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def done_keys(self) -> set[str]:
        """Keys of the rows already in the table."""
        if not self.path.exists():
            return set()
        with self.path.open(newline="") as f:
            return {row[self.key] for row in csv.DictReader(f) if row.get(self.key)}

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row (missing columns empty; unknown columns are an error) and flush."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise DatasetError(f"{self.path}: row has columns not in the table: {sorted(unknown)}")
        self._write_line([_cell(row.get(c)) for c in self.columns])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return value


def read_table(dataset: str | os.PathLike[str], table: str):
    """Read ``<dataset>/<table>.csv`` as a DataFrame.

    Raises:
        DatasetError: naming the file and the tables that do exist.
    """
    import pandas as pd

    folder = dataset_path(dataset)
    path = folder / f"{table}.csv"
    if not path.exists():
        have = sorted(p.stem for p in folder.glob("*.csv")) if folder.exists() else []
        raise DatasetError(f"no table {table!r} in {folder} (tables there: {have or 'none'})")
    return pd.read_csv(path, keep_default_na=True)


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
    import fcntl

    folder = dataset_path(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    # Several sweep processes (one per GPU) may update the same file: serialize them.
    with open(folder / "provenance.json", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _update_provenance_locked(folder, facts, run, identity)


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
    prov.update({k: _json_safe(v) for k, v in facts.items() if v is not None})
    if run is not None:
        prov.setdefault("runs", []).append({k: _json_safe(v) for k, v in run.items()})
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

    Entering appends the entry (``finished`` empty, ``outcome`` "running"), so even a run
    killed outright is listed. Each row the run writes is counted with :meth:`row`; leaving
    the block records ``rows_written``, ``finished`` and the ``outcome``: "completed", or
    "stopped (SIGTERM)", "interrupted" or "failed: <error>" when it ends early. While the
    block runs in the main thread, ``SIGTERM`` raises :class:`RunStopped` (exit status 143)
    so that the rows counted so far reach the log; the previous handler comes back after.

    Example::

        with RunLog(folder, facts, {"command": cmd, "date": now_iso()}) as log:
            for row in rows:
                table.append(row)
                log.row()
    """

    def __init__(
        self,
        dataset: str | os.PathLike[str],
        facts: Mapping[str, Any],
        run: Mapping[str, Any],
        identity: Iterable[str] = ("gpu_name",),
        on_exit: Callable[[], Any] | None = None,
    ) -> None:
        """
        Args:
            dataset: Dataset folder.
            facts: Dataset-level facts, checked and merged as by :func:`update_provenance`.
            run: The run's facts (command, date, commit, ...).
            identity: Facts that must not change within the dataset.
            on_exit: Called after the entry is completed (e.g. to rewrite the README).
        """
        self.folder = dataset_path(dataset)
        self.facts = dict(facts)
        self.run = {**run, "run_id": uuid.uuid4().hex[:12]}
        self.identity = tuple(identity)
        self.on_exit = on_exit
        self.rows_written = 0
        self._previous: Any = None

    def row(self, n: int = 1) -> None:
        """Count ``n`` rows written by this run."""
        self.rows_written += n

    def __enter__(self) -> RunLog:
        update_provenance(
            self.folder,
            self.facts,
            {**self.run, "finished": None, "outcome": "running"},
            self.identity,
        )
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _raise_stopped)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
            self.run["run_id"],
            {"rows_written": self.rows_written, "finished": now_iso(), "outcome": outcome},
        )
        if self.on_exit is not None:
            self.on_exit()


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise RunStopped(signum)


def _finish_run(folder: Path, run_id: str, updates: Mapping[str, Any]) -> None:
    import fcntl

    with open(folder / "provenance.json", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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


def _json_safe(value: Any) -> Any:
    """NaN becomes None (JSON has no NaN); containers are converted recursively."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
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
        if not (folder / f"{table}.csv").exists():
            continue
        lines += [f"## `{table}.csv`", "", "| column | unit | meaning |", "| --- | --- | --- |"]
        for name, (unit, meaning) in cols.items():
            lines.append(f"| `{name}` | {unit} | {meaning} |")
        lines.append("")
    notes = folder / "NOTES.md"
    if notes.exists():  # hand-written remarks about the runs (never about the numbers)
        lines += [notes.read_text().strip(), ""]
    path = folder / "README.md"
    path.write_text("\n".join(lines))
    return path
