"""Synthetic layer tables for the predictor tests (no GPU, no measured data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from torch import nn

from hwml.describe import Layer, Network, describe


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


class ConvAttention(nn.Module):
    """A small vision transformer: a conv stem, two LayerNorms around one attention block.

    Layers (``describe`` at input ``(batch, 3, 8, 8)``): conv, act, pool (conv2d,
    activation, maxpool2d), flatten, transpose (kind flatten), ln1 (norm), attn
    (attention), ln2 (norm), getitem (flatten), head (linear).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.ln1 = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.ln2 = nn.LayerNorm(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.act(self.conv(x)))
        x = self.ln1(x.flatten(2).transpose(1, 2))
        y, _ = self.attn(x, x, x)
        return self.head(self.ln2(y)[:, 0])


def attention_net(batch: int = 2) -> Network:
    """:class:`ConvAttention` described: CNN kinds plus 2 ``norm`` and 1 ``attention`` layer."""
    return describe(ConvAttention(), (batch, 3, 8, 8), name="conv_attention")


@pytest.fixture
def make_table():
    """Factory fixture: ``make_table({"conv2d": 60, ...}, seed=0)``."""
    return layer_table
