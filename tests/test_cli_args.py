"""Tests of the argument types shared by the ``hwml`` sub-commands."""

from __future__ import annotations

import argparse

import pytest

from hwml.cli_args import shard


@pytest.mark.parametrize(("text", "value"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 1/ 2", (1, 2))])
def test_shard(text, value):
    assert shard(text) == value


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("3/2", "0 <= I < N"),
        ("2/2", "0 <= I < N"),
        ("-1/4", "0 <= I < N"),
        ("0/0", "0 <= I < N"),
        ("1", "e.g. 0/4"),
        ("1/2/3", "e.g. 0/4"),
        ("a/b", "e.g. 0/4"),
    ],
)
def test_bad_shard(text, says):
    with pytest.raises(argparse.ArgumentTypeError, match=says) as raised:
        shard(text)
    assert repr(text) in str(raised.value)
