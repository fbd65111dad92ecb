"""Argument types shared by the ``hwml`` sub-commands (``profile``, ``optimize``).

Each takes the text of one command-line argument and returns its value, or raises
:class:`argparse.ArgumentTypeError` with a message that says what was expected.
"""

from __future__ import annotations

import argparse

__all__ = ["NET_HELP", "sample_shape", "shard"]


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


def sample_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` -> ``(3, 224, 224)``: one input's shape, without the batch."""
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected sizes like 3,224,224 (no batch), got {text!r}"
        ) from None
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"expected positive sizes like 3,224,224, got {text!r}")
    return shape


NET_HELP = (
    "the network: a zoo name (see hwml describe --list), torchvision:NAME "
    "(e.g. torchvision:resnet34) or package.module:callable returning an nn.Module "
    "(give --input-shape)"
)
