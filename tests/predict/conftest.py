"""Synthetic layer tables for the predictor tests (no GPU, no measured data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.describe import Layer, Network


def random_layers(kind: str, n: int, seed: int) -> list[Layer]:
    """``n`` random layers of ``kind`` built with the description's constructors."""
    rng = np.random.default_rng(seed)
    pick = lambda values: int(rng.choice(values))  # noqa: E731
    out: list[Layer] = []
    while len(out) < n:
        b = pick([1, 2, 4, 8, 16, 32, 64])
        if kind == "conv2d":
            k = pick([1, 3, 5])
            s = pick([7, 14, 28, 56])
            out.append(
                Layer.conv2d(
                    b,
                    pick([3, 16, 32, 64, 128]),
                    s,
                    s,
                    pick([16, 32, 64, 128, 256]),
                    k,
                    pick([1, 2]),
                    k // 2,
                    bias=bool(rng.random() < 0.5),
                )
            )
        elif kind == "linear":
            out.append(
                Layer.linear(
                    b, pick([64, 128, 256, 512, 1024, 4096]), pick([10, 100, 256, 1000, 4096])
                )
            )
        elif kind in ("maxpool2d", "avgpool2d"):
            s = pick([8, 14, 28, 56, 112])
            out.append(
                Layer.pool2d(kind, b, pick([16, 64, 128, 256]), s, s, pick([2, 3]), pick([1, 2]))
            )
        elif kind == "batchnorm2d":
            s = pick([7, 14, 28, 56])
            out.append(Layer.batchnorm2d(b, pick([16, 64, 256]), s, s))
        elif kind == "activation":
            s = pick([7, 14, 28, 56])
            out.append(Layer.activation("relu", (b, pick([16, 64, 256]), s, s)))
        elif kind in ("add", "mul"):
            s = pick([7, 14, 28, 56])
            out.append(Layer.elementwise(kind, (b, pick([16, 64, 256]), s, s)))
        else:
            raise ValueError(kind)
    return out


def layer_table(counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """A layer table (``Layer.to_row`` columns) with ``counts[kind]`` rows of each kind."""
    rows = []
    for i, (kind, n) in enumerate(sorted(counts.items())):
        rows += [layer.to_row() for layer in random_layers(kind, n, seed + 97 * i)]
    table = pd.DataFrame(rows)
    table["status"] = "ok"
    table["dtype"] = "float32"
    table["source"] = "sweep"
    return table


def toy_net(batch: int = 4) -> Network:
    """A small conv - pool - flatten - linear network (a trivial flatten among its layers)."""
    conv = Layer.conv2d(batch, 16, 14, 14, 32, 3, padding=1)
    pool = Layer.pool2d("maxpool2d", batch, 32, 14, 14, 2)
    flat = Layer(kind="flatten", in_shapes=(pool.out_shape,), out_shape=(batch, 32 * 7 * 7))
    return Network(
        "toy",
        (batch, 16, 14, 14),
        [
            conv,
            Layer.activation("relu", conv.out_shape),
            pool,
            flat,
            Layer.linear(batch, 32 * 7 * 7, 100),
            Layer.activation("relu", (batch, 100)),
        ],
    )


@pytest.fixture
def make_table():
    """Factory fixture: ``make_table({"conv2d": 60, ...}, seed=0)``."""
    return layer_table
