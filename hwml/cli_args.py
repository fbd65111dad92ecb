"""Argument types shared by the ``hwml`` sub-commands (``profile``, ``optimize``).

Each takes the text of one command-line argument and returns its value, or raises
:class:`argparse.ArgumentTypeError` with a message that says what was expected.
"""

from __future__ import annotations

import argparse

from hwml.cluster import CLUSTER_HELP, ClusterSpec, parse_cluster

__all__ = ["CLUSTER_HELP", "NET_HELP", "cluster", "positive_ints", "sample_shape", "shard"]


def cluster(text: str) -> ClusterSpec:
    """``--cluster``: ``local``, ``local:N``, ``process`` or ``tcp://HOST:PORT``
    (:func:`hwml.cluster.parse_cluster`); anything else is an argparse error."""
    try:
        return parse_cluster(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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


def positive_ints(text: str, what: str = "positive integers like 1,16,64") -> list[int]:
    """``"1,16,64"`` -> ``[1, 16, 64]``; anything else is an argparse error naming ``what``."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def sample_shape(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` (or ``3x224x224``) -> ``(3, 224, 224)``: one input's shape, no batch."""
    return tuple(positive_ints(text.replace("x", ","), "sizes like 3,224,224 (no batch)"))


NET_HELP = (
    "the network: a zoo name (see hwml describe --list), torchvision:NAME "
    "(e.g. torchvision:resnet34) or package.module:callable returning an nn.Module "
    "(give --input-shape)"
)
