"""The cell-based search space of the platform-aware architecture search (survey 4.4).

MnasNet's factorized hierarchical space, shrunk to a 24x24 proxy task: a fixed skeleton
(a 3x3 stem convolution, four stages, global average pooling and a linear classifier) in
which each stage chooses, independently of the others,

* the **block type**: ``mbconv`` (inverted residual: 1x1 expansion, depthwise k x k,
  optional squeeze-and-excitation, 1x1 projection, as in MobileNetV2, MnasNet and
  EfficientNet), ``conv`` (one k x k convolution, batch norm, activation, as in VGG) or
  ``residual`` (ResNet's basic block);
* the **expansion ratio** of an ``mbconv`` block (1, 3 or 6);
* the **kernel size** (3 or 5);
* **squeeze-and-excitation** on or off (``mbconv`` only);
* the **depth**: how many blocks the stage repeats (1, 2 or 3);
* the **width**: output channels, from a list per stage.

Expansion and squeeze-and-excitation mean nothing to ``conv`` and ``residual`` blocks;
such a stage is stored with expansion 1 and no SE (:meth:`NASSpace.canonical`), so that
one network has one name. Every network is a :class:`hwml.cells.CellNet`: its modules are
ones :func:`hwml.describe.describe` knows, and the predictors can price it.

An :class:`Arch` is a tuple of :class:`StageChoice`; :meth:`NASSpace.key` names it in
one short string (``m6k5s1d2w24`` per stage: block letter, expansion, kernel, SE, depth,
width; stages joined by ``-``), which is the row key of the benchmark tables.
:meth:`NASSpace.search_space` gives the same decisions as a :class:`hwml.optimize.Space`
(one ordinal dimension per stage and decision), whose unit cube the search controllers
mutate and cross over.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from hwml.cells import CellNet, Stage
from hwml.optimize import Categorical, Space, derive_seed

__all__ = [
    "BLOCK_LETTERS",
    "DECISIONS",
    "Arch",
    "NASSpace",
    "StageChoice",
]

#: Block types of the space, with the letter that stands for each in an architecture key.
BLOCK_LETTERS: dict[str, str] = {"mbconv": "m", "conv": "c", "residual": "r"}

#: The decisions of one stage, in the order of the key and of the search dimensions.
DECISIONS: tuple[str, ...] = ("block", "expansion", "kernel", "se", "depth", "width")

_STAGE_KEY = re.compile(r"^([mcr])(\d+)k(\d+)s([01])d(\d+)w(\d+)$")


@dataclass(frozen=True)
class StageChoice:
    """The choices of one stage.

    Attributes:
        block: ``mbconv``, ``conv`` or ``residual``.
        expansion: expansion ratio of an ``mbconv`` block (1 for the other blocks).
        kernel: spatial kernel size.
        se: squeeze-and-excitation (``mbconv`` only; False for the other blocks).
        depth: blocks in the stage.
        width: output channels of every block of the stage.
    """

    block: str
    expansion: int
    kernel: int
    se: bool
    depth: int
    width: int

    @property
    def token(self) -> str:
        """This stage's part of an architecture key, e.g. ``m6k5s1d2w24``."""
        letter = BLOCK_LETTERS[self.block]
        return f"{letter}{self.expansion}k{self.kernel}s{int(self.se)}d{self.depth}w{self.width}"


Arch = tuple[StageChoice, ...]
"""An architecture: one :class:`StageChoice` per stage."""


@dataclass(frozen=True)
class NASSpace:
    """The search space: what each stage may choose, and the fixed skeleton around it.

    The defaults are the space of the book's chapter: four stages of strides 1, 2, 2, 1
    after a stride-1 stem of 8 channels, for 24x24 single-channel images (``cued-digits``)
    and ten classes, ReLU activations. Each stage's widths are 1/4, 1/2, 1 and 3/2 of
    16, 24, 48 and 96 channels; the networks have from about a thousand to a few million
    parameters. On the proxy task, trained for five epochs, the smallest reach about 10
    to 25 % test error and most of the space 5 to 12 % (a CPU check of a few networks).

    Attributes:
        widths: per stage, the output channels it may choose.
        strides: per stage, the stride of its first block.
        blocks: block types.
        expansions: expansion ratios of ``mbconv`` blocks.
        kernels: kernel sizes.
        depths: blocks per stage.
        se: squeeze-and-excitation choices.
        stem: channels of the stem convolution.
        stem_stride: stride of the stem convolution.
        image_size: input side, pixels.
        in_channels: input channels.
        num_classes: classifier outputs.
        activation: activation of every block (see :class:`hwml.cells.CellNet`).
    """

    widths: tuple[tuple[int, ...], ...] = (
        (4, 8, 16, 24),
        (6, 12, 24, 36),
        (12, 24, 48, 72),
        (24, 48, 96, 144),
    )
    strides: tuple[int, ...] = (1, 2, 2, 1)
    blocks: tuple[str, ...] = ("mbconv", "conv", "residual")
    expansions: tuple[int, ...] = (1, 3, 6)
    kernels: tuple[int, ...] = (3, 5)
    depths: tuple[int, ...] = (1, 2, 3)
    se: tuple[bool, ...] = (False, True)
    stem: int = 8
    stem_stride: int = 1
    image_size: int = 24
    in_channels: int = 1
    num_classes: int = 10
    activation: str = "relu"

    def __post_init__(self) -> None:
        for name in ("widths", "strides", "blocks", "expansions", "kernels", "depths", "se"):
            value = getattr(self, name)
            if name == "widths":
                value = tuple(tuple(int(w) for w in ws) for ws in value)
            else:
                value = tuple(value)
            object.__setattr__(self, name, value)
        if len(self.widths) != len(self.strides) or not self.widths:
            raise ValueError(
                f"widths and strides must name the same (non-zero) number of stages, got "
                f"{len(self.widths)} and {len(self.strides)}"
            )
        unknown = [b for b in self.blocks if b not in BLOCK_LETTERS]
        if unknown or not self.blocks:
            raise ValueError(f"unknown block type(s) {unknown}; known: {', '.join(BLOCK_LETTERS)}")
        for name in ("expansions", "kernels", "depths"):
            values = getattr(self, name)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise ValueError(f"{name} must be positive integers, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd, got {self.kernels}")
        if any(not ws or min(ws) < 1 for ws in self.widths):
            raise ValueError(f"every stage needs positive widths, got {self.widths}")
        if not self.se:
            raise ValueError("se must list at least one choice")

    @classmethod
    def tiny(cls) -> NASSpace:
        """A small space for smoke runs: 4 to 8 channels, one 3x3 block per stage."""
        return cls(widths=((4,), (4,), (8,), (8,)), depths=(1,), kernels=(3,), stem=4)

    @classmethod
    def named(cls, name: str) -> NASSpace:
        """``default`` (the chapter's space) or ``tiny`` (:meth:`tiny`)."""
        if name == "default":
            return cls()
        if name == "tiny":
            return cls.tiny()
        raise ValueError(f"unknown space {name!r}; known: default, tiny")

    # ------------------------------------------------------------------ facts
    @property
    def n_stages(self) -> int:
        """Number of stages."""
        return len(self.widths)

    @property
    def size(self) -> int:
        """Number of distinct architectures in the space."""
        total = 1
        for widths in self.widths:
            per_stage = 0
            for block in self.blocks:
                mb = block == "mbconv"
                per_stage += (
                    (len(self.expansions) if mb else 1)
                    * len(self.kernels)
                    * (len(self.se) if mb else 1)
                    * len(self.depths)
                    * len(widths)
                )
            total *= per_stage
        return total

    def to_spec(self) -> dict[str, Any]:
        """The space as plain JSON data (for a benchmark's provenance)."""
        spec = asdict(self)
        out: dict[str, Any] = {}
        for k, v in spec.items():
            if k == "widths":
                out[k] = [list(ws) for ws in v]
            elif isinstance(v, tuple):
                out[k] = list(v)
            else:
                out[k] = v
        return out

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> NASSpace:
        """The space :meth:`to_spec` wrote."""
        kwargs = dict(spec)
        kwargs["widths"] = tuple(tuple(ws) for ws in kwargs.get("widths", cls().widths))
        for name in ("strides", "blocks", "expansions", "kernels", "depths", "se"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    # ------------------------------------------------------------------ architectures
    def canonical(self, arch: Iterable[StageChoice]) -> Arch:
        """``arch`` with expansion 1 and no SE in every non-``mbconv`` stage.

        Raises:
            ValueError: a stage count or a choice outside the space.
        """
        arch = tuple(arch)
        if len(arch) != self.n_stages:
            raise ValueError(f"the space has {self.n_stages} stages, the arch {len(arch)}")
        out = []
        for i, st in enumerate(arch):
            mb = st.block == "mbconv"
            choice = StageChoice(
                block=st.block,
                expansion=int(st.expansion) if mb else 1,
                kernel=int(st.kernel),
                se=bool(st.se) if mb else False,
                depth=int(st.depth),
                width=int(st.width),
            )
            self._check(i, choice)
            out.append(choice)
        return tuple(out)

    def _check(self, i: int, st: StageChoice) -> None:
        problems = []
        if st.block not in self.blocks:
            problems.append(f"block {st.block!r}")
        if st.block == "mbconv" and st.expansion not in self.expansions:
            problems.append(f"expansion {st.expansion}")
        if st.kernel not in self.kernels:
            problems.append(f"kernel {st.kernel}")
        if st.block == "mbconv" and st.se not in self.se:
            problems.append(f"se {st.se}")
        if st.depth not in self.depths:
            problems.append(f"depth {st.depth}")
        if st.width not in self.widths[i]:
            problems.append(f"width {st.width}")
        if problems:
            raise ValueError(f"stage {i + 1}: {', '.join(problems)} not in the space")

    def key(self, arch: Iterable[StageChoice]) -> str:
        """The architecture's name, e.g. ``m6k5s1d2w8-c1k3s0d1w12-...``."""
        return "-".join(st.token for st in self.canonical(arch))

    def parse(self, key: str) -> Arch:
        """The architecture a :meth:`key` names.

        Raises:
            ValueError: a malformed key or a choice outside the space.
        """
        tokens = str(key).split("-")
        stages = []
        letters = {v: k for k, v in BLOCK_LETTERS.items()}
        for token in tokens:
            m = _STAGE_KEY.match(token)
            if not m:
                raise ValueError(f"{key!r}: {token!r} is not a stage like 'm6k5s1d2w24'")
            b, e, k, s, d, w = m.groups()
            stages.append(StageChoice(letters[b], int(e), int(k), s == "1", int(d), int(w)))
        return self.canonical(stages)

    def sample(self, n: int, seed: int = 0) -> list[Arch]:
        """The first ``n`` distinct architectures of a seeded sequence.

        Each stage draws every decision uniformly and independently (block type first;
        expansion and SE only matter to ``mbconv``). The list is prefix-stable: asking for
        more later extends the same sequence.

        Raises:
            ValueError: ``n`` exceeds the space's size, or is negative.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n > self.size:
            raise ValueError(f"the space holds {self.size} architectures, fewer than n={n}")
        rng = np.random.default_rng(derive_seed(int(seed), 0x4E4153))
        seen: dict[str, Arch] = {}
        while len(seen) < n:
            arch = self.canonical(self._draw(rng))
            seen.setdefault(self.key(arch), arch)
        return list(seen.values())

    def _draw(self, rng: np.random.Generator) -> list[StageChoice]:
        stages = []
        for widths in self.widths:
            stages.append(
                StageChoice(
                    block=str(self.blocks[rng.integers(len(self.blocks))]),
                    expansion=int(self.expansions[rng.integers(len(self.expansions))]),
                    kernel=int(self.kernels[rng.integers(len(self.kernels))]),
                    se=bool(self.se[rng.integers(len(self.se))]),
                    depth=int(self.depths[rng.integers(len(self.depths))]),
                    width=int(widths[rng.integers(len(widths))]),
                )
            )
        return stages

    # ------------------------------------------------------------------ networks
    def cellnet(self, arch: Iterable[StageChoice]) -> CellNet:
        """The :class:`~hwml.cells.CellNet` of an architecture."""
        arch = self.canonical(arch)
        stages = tuple(
            Stage(
                block=st.block,
                width=st.width,
                depth=st.depth,
                kernel=st.kernel,
                stride=stride,
                expansion=st.expansion,
                se=st.se,
            )
            for st, stride in zip(arch, self.strides, strict=True)
        )
        return CellNet(
            stages=stages,
            stem=self.stem,
            head=0,
            activation=self.activation,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            stem_stride=self.stem_stride,
        )

    def build(self, arch: Iterable[StageChoice]) -> nn.Module:
        """A fresh ``nn.Module`` of the architecture (random weights, eval mode)."""
        return self.cellnet(arch).build()

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        """``(batch, in_channels, image_size, image_size)``."""
        return (int(batch), self.in_channels, self.image_size, self.image_size)

    # ------------------------------------------------------------------ search view
    @functools.cached_property
    def _search(self) -> Space:
        dims = []
        for i, widths in enumerate(self.widths):
            s = f"s{i + 1}_"
            dims += [
                Categorical(s + "block", self.blocks, structural=True),
                Categorical(s + "expansion", self.expansions, structural=True),
                Categorical(s + "kernel", self.kernels, structural=True),
                Categorical(s + "se", tuple(int(v) for v in self.se), structural=True),
                Categorical(s + "depth", self.depths, structural=True),
                Categorical(s + "width", widths, structural=True),
            ]
        return Space(dims)

    def search_space(self) -> Space:
        """The decisions as a :class:`hwml.optimize.Space`: ``s<i>_<decision>`` for each
        stage ``i`` (from 1) and decision of :data:`DECISIONS`, each an ordinal
        :class:`~hwml.optimize.Categorical` in the order the choices are listed here."""
        return self._search

    def to_frame(self, archs: Sequence[Arch]) -> pd.DataFrame:
        """One row per architecture: ``key`` and one column per search dimension."""
        rows = []
        for arch in archs:
            arch = self.canonical(arch)
            row: dict[str, Any] = {"key": self.key(arch)}
            for i, st in enumerate(arch):
                for d in DECISIONS:
                    value = getattr(st, d)
                    row[f"s{i + 1}_{d}"] = int(value) if d == "se" else value
            rows.append(row)
        return pd.DataFrame(rows, columns=["key", *self.search_space().names])

    def from_frame(self, frame: pd.DataFrame) -> list[Arch]:
        """The architectures of a frame with the search dimensions' columns."""
        archs = []
        for row in Space.to_dicts(frame[self.search_space().names]):
            archs.append(
                self.canonical(
                    StageChoice(
                        block=str(row[f"s{i + 1}_block"]),
                        expansion=int(row[f"s{i + 1}_expansion"]),
                        kernel=int(row[f"s{i + 1}_kernel"]),
                        se=bool(int(row[f"s{i + 1}_se"])),
                        depth=int(row[f"s{i + 1}_depth"]),
                        width=int(row[f"s{i + 1}_width"]),
                    )
                    for i in range(self.n_stages)
                )
            )
        return archs

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        """Unit-cube points of the architectures, shape ``(n, 6 * n_stages)``."""
        return self.search_space().encode(self.to_frame(archs))
