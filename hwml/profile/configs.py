"""What a sweep measures: its options, and the layer configurations it draws.

:class:`SweepOptions` holds the settings every sweep shares (dtype, power, periods,
timing budget, shard). :func:`sample_layers` draws seeded random configurations of each
layer kind over wide ranges (a prefix-stable sequence per kind: asking for more later
keeps the ones already drawn); :func:`zoo_layers` gives the distinct layers of the zoo
networks; :func:`layer_key` is a measurement's identity in the tables.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from hwml import zoo
from hwml.describe import Layer
from hwml.profile.columns import DTYPES

__all__ = ["SAMPLED_KINDS", "SweepOptions", "layer_key", "sample_layers", "zoo_layers"]


# ====================================================================== options


@dataclass(frozen=True)
class SweepOptions:
    """How each row is measured.

    Attributes:
        dtype: Tensor dtype name (a key of :data:`DTYPES`).
        power: Measure energy and power with the energy meter.
        periods: Energy-counter updates each power window spans (>= 3 recommended).
        budget_ms: Approximate time spent in the timed eager repeats of one row (ms).
        warmup: Untimed calls before timing (cuDNN autotunes a new shape on the first).
        graph: Capture the workload into a CUDA graph: GPU runtime
            (``runtime_graph_ms``), and the power window replays the graph so that the
            GPU never waits for the host. Off, or when capture fails, the window runs
            eager launches and says so (``power_mode``).
        eager_power: Also measure a second window with eager launches (``eager_*``
            columns): the energy a PyTorch user pays, host gaps included.
        shard: ``(i, n)``: measure only every n-th pending row starting at i, so n
            processes (one per GPU) can share a sweep.
        progress: Show a progress bar.
        retry_failed: Measure again the rows a previous run recorded with status
            ``error`` (by default a sweep skips every key already in its table).
    """

    dtype: str = "float32"
    power: bool = True
    periods: int = 3
    budget_ms: float = 50.0
    warmup: int = 5
    graph: bool = True
    eager_power: bool = False
    shard: tuple[int, int] = (0, 1)
    progress: bool = True
    retry_failed: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        if self.periods < 1:
            raise ValueError(f"periods must be >= 1, got {self.periods}")
        i, n = self.shard
        if not (0 <= i < n):
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {self.shard}")


# ====================================================================== configurations

_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SIZES = (7, 8, 13, 14, 16, 27, 28, 32, 55, 56, 64, 112, 224)
SAMPLED_KINDS = ("conv2d", "linear", "maxpool2d", "avgpool2d", "batchnorm2d", "activation", "add")


def _log_int(rng: random.Random, lo: int, hi: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _size(rng: random.Random) -> int:
    return rng.choice(_SIZES) if rng.random() < 0.6 else _log_int(rng, 7, 224)


def sample_layers(
    kind: str,
    n: int,
    seed: int = 0,
    *,
    dtype_bytes: int = 4,
    max_activation_bytes: float = 2e9,
    max_flops: float = 2e12,
) -> list[Layer]:
    """Random layer configurations of ``kind`` over ranges that cover the zoo at batch 1-256.

    Args:
        kind: One of :data:`SAMPLED_KINDS`.
        n: How many configurations.
        seed: Random seed (the same seed gives the same list).
        dtype_bytes: Element size for the byte features.
        max_activation_bytes: Reject configurations whose inputs and output exceed this.
        max_flops: Reject configurations with more FLOPs than this.

    Returns:
        ``n`` distinct layers.
    """
    if kind not in SAMPLED_KINDS:
        raise ValueError(f"cannot sample kind {kind!r}; sampled kinds: {', '.join(SAMPLED_KINDS)}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    rng = random.Random(f"{kind}:{seed}")
    out: dict[tuple, Layer] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"could not sample {n} distinct {kind} layers")
        try:
            layer = _sample_one(kind, rng, dtype_bytes)
        except ValueError:
            continue
        if layer.input_bytes + layer.output_bytes > max_activation_bytes or layer.flops > max_flops:
            continue
        out.setdefault(layer.signature(), layer)
    return list(out.values())


def _sample_one(kind: str, rng: random.Random, db: int) -> Layer:
    batch = rng.choice(_BATCHES)
    if kind == "conv2d":
        size = _size(rng)
        k = rng.choices((1, 3, 5, 7, 11), (0.3, 0.45, 0.1, 0.1, 0.05))[0]
        stride = rng.choices((1, 2, 4), (0.65, 0.3, 0.05))[0]
        pad = k // 2 if rng.random() < 0.8 else 0
        r = rng.random()
        if r < 0.12:  # depthwise
            c = _log_int(rng, 16, 1536)
            return Layer.conv2d(
                batch,
                c,
                size,
                size,
                c,
                k,
                stride,
                pad,
                groups=c,
                bias=rng.random() < 0.3,
                dtype_bytes=db,
            )
        cin = _log_int(rng, 3, 1024)
        cout = _log_int(rng, 8, 1024)
        groups = 1
        if r < 0.17:
            g = rng.choice((2, 4, 8, 32))
            cin, cout, groups = max(g, cin // g * g), max(g, cout // g * g), g
        return Layer.conv2d(
            batch,
            cin,
            size,
            size,
            cout,
            k,
            stride,
            pad,
            groups=groups,
            bias=rng.random() < 0.5,
            dtype_bytes=db,
        )
    if kind == "linear":
        return Layer.linear(
            batch,
            _log_int(rng, 16, 25088),
            _log_int(rng, 10, 8192),
            bias=rng.random() < 0.8,
            dtype_bytes=db,
        )
    if kind in ("maxpool2d", "avgpool2d"):
        size = _size(rng)
        c = _log_int(rng, 3, 2048)
        if rng.random() < 0.15:  # global pooling
            return Layer.pool2d(kind, batch, c, size, size, size, 1, dtype_bytes=db)
        k = rng.choices((2, 3, 5), (0.45, 0.45, 0.1))[0]
        s = rng.choice((1, 2, 2, k))
        pad = rng.choice((0, 0, k // 2))
        return Layer.pool2d(
            kind, batch, c, size, size, k, s, pad, ceil_mode=rng.random() < 0.2, dtype_bytes=db
        )
    size = _size(rng)
    shape = (batch, _log_int(rng, 3, 2048), size, size)
    if kind == "batchnorm2d":
        return Layer.batchnorm2d(*shape, dtype_bytes=db)
    if kind == "activation":
        op = rng.choice(("relu", "relu", "relu6", "silu", "sigmoid", "hardswish"))
        return Layer.activation(op, shape, dtype_bytes=db)
    return Layer.elementwise("add", shape, dtype_bytes=db)


def zoo_layers(
    networks: Iterable[str],
    batches: Iterable[int],
    *,
    dtype_bytes: int = 4,
    kinds: Iterable[str] | None = None,
) -> list[tuple[str, Layer]]:
    """Every distinct layer of the given zoo networks at the given batch sizes.

    Returns:
        ``(source, layer)`` pairs, ``source = "zoo:<network>"`` of the first network with
        that layer; layers are stripped of names and edges (they are measured alone).
    """
    wanted = set(kinds) if kinds is not None else None
    seen: dict[tuple, tuple[str, Layer]] = {}
    for name in networks:
        for b in batches:
            net = zoo.describe_net(name, b, dtype_bytes=dtype_bytes, weights=False)
            for layer in net:
                if layer.kind in ("flatten", "dropout", "other"):
                    continue
                if wanted is not None and layer.kind not in wanted:
                    continue
                free = Layer.from_row({**layer.to_row(), "name": "", "inputs": ""})
                seen.setdefault(free.signature(), (f"zoo:{name}", free))
    return list(seen.values())


def layer_key(layer: Layer, dtype: str) -> str:
    """Stable identity of a layer measurement: a hash of its computation and dtype."""
    text = repr((layer.signature(), dtype))
    return hashlib.sha1(text.encode()).hexdigest()[:16]
