"""The one append-only table writer: whole lines, each flushed to disk as it is written.

:class:`hwml.data.AppendTable` (the measurement tables of a dataset folder) and
:class:`hwml.optimize.history.HistoryWriter` (the history of a search) both write through
:class:`AppendOnlyFile`: every line goes to the file in a single ``write`` on a descriptor
opened with ``O_APPEND``, which the kernel keeps whole (so several processes may append
to one file), and is forced to disk with ``fsync`` before :meth:`AppendOnlyFile.append_line`
returns. A writer killed mid-line leaves at most that line without its newline;
:func:`drop_torn_line` cuts it.

This module sits below the ground floor: ``data`` and ``optimize/`` both import it, and it
imports nothing of hwml (``tests/test_layering.py``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["AppendOnlyFile", "csv_line", "drop_torn_line"]


def csv_line(values: Sequence[Any]) -> str:
    """One CSV line, ``\\n``-terminated, as :func:`csv.writer` writes ``values``."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def drop_torn_line(
    path: str | os.PathLike[str], on_torn: Callable[[int], object] | None = None
) -> int:
    """Cut a last line that a kill interrupted mid-write (no trailing newline).

    The file is only read unless it ends with such a line; everything up to and including
    the last newline is kept (nothing, when the file holds no newline at all).

    Args:
        path: the file; it must exist.
        on_torn: called with the number of bytes about to be cut, before cutting them
            (to log it, say); not called when nothing is cut.

    Returns:
        The number of bytes cut: 0 when the file is empty or ends with a newline.
    """
    path = Path(path)
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        cut = f.read().rfind(b"\n") + 1
    if on_torn is not None:
        on_torn(size - cut)
    with path.open("rb+") as f:
        f.truncate(cut)
    return size - cut


class AppendOnlyFile:
    """A text file that grows by whole lines, each written with one ``write`` and fsynced.

    Opening one creates the file's folder, and the file itself when absent, and checks that
    the file can be appended to; a file absent or empty then gets ``header``.

    Args:
        path: the file.
        header: text (whole lines, UTF-8) written first into an absent or empty file;
            ``None`` for none.
        file_mode: permission bits of a file created here (the process's umask applies).

    Attributes:
        path: the file.
        fresh: whether the file was absent or empty when opened (and so got ``header``).
    """

    def __init__(
        self, path: str | os.PathLike[str], header: str | None = None, *, file_mode: int = 0o644
    ) -> None:
        self.path = Path(path)
        self.file_mode = file_mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._write(header.encode() if self.fresh and header else b"")

    def append_line(self, line: str) -> None:
        """Append ``line`` (its newline included, UTF-8) with one ``write`` and fsync it."""
        self._write(line.encode())

    def _write(self, data: bytes) -> None:
        """Append ``data`` in one ``write`` and fsync it (only open the file when empty)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.file_mode)
        try:
            if data:
                os.write(fd, data)
                os.fsync(fd)
        finally:
            os.close(fd)
