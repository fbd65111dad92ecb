"""Tests of hwml.tables: the one append-only writer and the torn-line repair."""

from __future__ import annotations

import os
import stat

import pytest

from hwml.tables import AppendOnlyFile, csv_line, drop_torn_line


def test_csv_line_quotes_and_ends_with_a_newline():
    assert csv_line(["a", 'q"uo,te', 1.5, None, "line\nbreak"]) == (
        'a,"q""uo,te",1.5,,"line\nbreak"\n'
    )


def test_header_only_in_an_absent_or_empty_file(tmp_path):
    path = tmp_path / "sub" / "t.csv"
    first = AppendOnlyFile(path, header="key,x\n")
    assert first.fresh and path.read_text() == "key,x\n"
    first.append_line("a,1\n")
    again = AppendOnlyFile(path, header="key,x\n")
    assert not again.fresh
    again.append_line("b,2\n")
    assert path.read_text() == "key,x\na,1\nb,2\n"
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert AppendOnlyFile(empty, header="h\n").fresh and empty.read_text() == "h\n"


def test_no_header_still_creates_the_file(tmp_path):
    path = tmp_path / "h.jsonl"
    AppendOnlyFile(path)
    assert path.exists() and path.read_bytes() == b""


def test_file_mode_applies_to_a_created_file(tmp_path):
    old = os.umask(0o002)
    try:
        AppendOnlyFile(tmp_path / "a.csv", "h\n")
        AppendOnlyFile(tmp_path / "b.csv", "h\n", file_mode=0o666)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.csv").stat().st_mode) == 0o664


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b"key,x\na,1\n", b"key,x\na,1\n"),
        (b"key,x\na,1\nb,", b"key,x\na,1\n"),
        (b"key,x", b""),  # not even a whole header: nothing is kept
    ],
)
def test_drop_torn_line(tmp_path, content, kept):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    seen = []
    cut = drop_torn_line(path, on_torn=lambda n: seen.append((n, path.read_bytes())))
    assert path.read_bytes() == kept
    assert cut == len(content) - len(kept)
    # the callback runs before the cut, and only when something is cut
    assert seen == ([(cut, content)] if cut else [])
