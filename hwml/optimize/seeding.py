"""Seeds: one helper for the global generators and checked conversion to numpy generators.

Everything stochastic in :mod:`hwml.optimize` takes ``seed=`` and draws from its own
:class:`numpy.random.Generator`; :func:`seed_everything` exists for code we do not control
(a user's training function), which may draw from ``random``, numpy's global state or torch.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["check_seed", "derive_seed", "make_rng", "seed_everything"]


def check_seed(seed: object, field: str = "seed") -> int:
    """Check that ``seed`` is a non-negative integer and return it as ``int``.

    Args:
        seed: the value to check. Python and numpy integers are accepted; ``bool``,
            floats, strings and ``None`` are not.
        field: the argument name used in the error message.

    Returns:
        The seed as a Python ``int``.

    Raises:
        TypeError: ``seed`` is not an integer.
        ValueError: ``seed`` is negative.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"{field} must be an int, got {type(seed).__name__} ({seed!r})")
    if seed < 0:
        raise ValueError(f"{field} must be >= 0, got {seed}")
    return int(seed)


def make_rng(seed: int | np.random.Generator, field: str = "seed") -> np.random.Generator:
    """Return a numpy generator for ``seed``.

    Args:
        seed: a non-negative int, or a generator that is returned unchanged.
        field: the argument name used in error messages.

    Returns:
        A :class:`numpy.random.Generator`.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed, field))


def derive_seed(seed: int, *keys: int) -> int:
    """Derive an independent 32-bit seed from ``seed`` and integer keys.

    Used to give every iteration of a search its own stream, so that the stream of
    iteration ``i`` does not depend on how many numbers earlier iterations drew (which
    makes a resumed search take the same decisions as an uninterrupted one).

    Args:
        seed: the run's seed.
        *keys: further non-negative integers (e.g. an iteration number).

    Returns:
        A seed in ``[0, 2**32)``.
    """
    entropy: Sequence[int] = [check_seed(seed), *(check_seed(k, "key") for k in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and, if imported, torch.

    torch is seeded only when it is already in ``sys.modules``; this function never
    imports it (importing torch takes seconds and the optimizer does not need it).

    Args:
        seed: a non-negative int; values above ``2**32 - 1`` are reduced modulo ``2**32``
            for numpy's legacy global generator.
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "manual_seed"):
        torch.manual_seed(seed)
