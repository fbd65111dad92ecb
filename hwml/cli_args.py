"""Argument types shared by the ``hwml`` sub-commands (``profile``, ``optimize``).

Each takes the text of one command-line argument and returns its value, or raises
:class:`argparse.ArgumentTypeError` with a message that says what was expected.
"""

from __future__ import annotations

import argparse

__all__ = ["shard"]


def shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``: this process's share of a sweep split over ``N`` processes.

    ``0 <= I < N``; ``"0/1"`` is the whole sweep.
    """
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return i, n
