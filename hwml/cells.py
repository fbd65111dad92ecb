"""A space of convolutional networks built from MobileNetV2/MnasNet-like cells.

A :class:`CellNet` is a stem convolution, a sequence of :class:`Stage` s and a classifier
head. Each stage repeats one block type ``depth`` times:

* ``mbconv``: inverted residual (1x1 expansion, depthwise k x k, optional
  squeeze-and-excitation, 1x1 projection), as in MobileNetV2, MnasNet and EfficientNet;
* ``residual``: two k x k convolutions with a skip connection, as in ResNet's basic block;
* ``conv``: one k x k convolution, batch norm and activation, as in VGG.

Every block is made of modules :func:`hwml.describe.describe` knows (Conv2d, BatchNorm2d,
activations, adaptive pooling, element-wise add and multiply), so every network of the
space can be described, priced by the predictors and measured.

:meth:`CellNet.sample` draws a network from the space reproducibly from a seed: the
measured network set uses it so that the networks a model learns from are not only
famous designs, and the spec ``cells:SEED`` names such a network wherever ``--net``
takes one (:func:`hwml.zoo.entry`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from torch import nn

__all__ = ["BLOCKS", "CellNet", "Stage"]

#: Block types of a stage, with their meaning.
BLOCKS: dict[str, str] = {
    "mbconv": "inverted residual: 1x1 expand, depthwise kxk, optional SE, 1x1 project",
    "residual": "basic residual block: two kxk convolutions and a skip connection",
    "conv": "plain kxk convolution, batch norm, activation",
}

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "silu": nn.SiLU}


@dataclass(frozen=True)
class Stage:
    """One stage: ``depth`` blocks of one type; the first block applies the stride.

    Attributes:
        block: One of :data:`BLOCKS`.
        width: Output channels of every block of the stage.
        depth: Number of blocks.
        kernel: Spatial kernel size (3, 5 or 7).
        stride: Stride of the first block (1 or 2).
        expansion: Expansion ratio of ``mbconv`` blocks (ignored by the others).
        se: Squeeze-and-excitation in ``mbconv`` blocks.
    """

    block: str
    width: int
    depth: int
    kernel: int = 3
    stride: int = 1
    expansion: int = 6
    se: bool = False

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"unknown block {self.block!r}; supported: {', '.join(BLOCKS)}")
        if self.width <= 0 or self.depth <= 0 or self.expansion <= 0:
            raise ValueError(f"width, depth and expansion must be positive: {self}")
        if self.kernel % 2 == 0 or self.stride not in (1, 2):
            raise ValueError(f"kernel must be odd and stride 1 or 2: {self}")


@dataclass(frozen=True)
class CellNet:
    """A network of the cell space (see the module docstring).

    Attributes:
        stages: The stages in order.
        stem: Channels of the 3x3 stem convolution.
        head: Channels of the final 1x1 convolution before pooling (0: none).
        activation: ``relu``, ``relu6``, ``hardswish`` or ``silu``.
        num_classes: Classifier outputs.
        in_channels: Input channels.
        stem_stride: Stride of the stem convolution: 2 for ImageNet-sized inputs (the
            default, as in MobileNetV2), 1 for small images (e.g. 24x24, where a halving
            at the stem would leave little for the stages to see).
    """

    stages: tuple[Stage, ...]
    stem: int = 32
    head: int = 1280
    activation: str = "relu6"
    num_classes: int = 1000
    in_channels: int = 3
    stem_stride: int = 2

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a CellNet needs at least one stage")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; supported: {', '.join(_ACTIVATIONS)}"
            )

    # ------------------------------------------------------------------ sampling
    @classmethod
    def sample(cls, seed: int, *, num_classes: int = 1000) -> CellNet:
        """A network drawn from the space with ``random.Random(seed)``.

        Four to seven stages whose strides bring a 224x224 input down to 7x7 (five
        stride-2 steps counting the stem), widths growing stage by stage, each stage's
        block type, kernel, expansion, SE and depth drawn independently. FLOPs span about
        two orders of magnitude (tens of MFLOPs to a few GFLOPs at 224x224).
        """
        rng = random.Random(seed)
        n = rng.randint(4, 7)
        strided = set(rng.sample(range(n), 4))  # the stem gives the fifth halving
        width = rng.choice([8, 16, 24, 32])
        stages = []
        for i in range(n):
            width = int(width * rng.choice([1.0, 1.5, 2.0]) + 0.5) if i else width
            width = max(8, min(640, 8 * round(width / 8)))
            block = rng.choice(["mbconv", "mbconv", "residual", "conv"])
            stages.append(
                Stage(
                    block=block,
                    width=width,
                    depth=rng.randint(1, 4),
                    kernel=rng.choice([3, 3, 5, 7]) if block == "mbconv" else rng.choice([3, 5]),
                    stride=2 if i in strided else 1,
                    expansion=rng.choice([1, 3, 4, 6]),
                    se=rng.random() < 0.4,
                )
            )
        return cls(
            stages=tuple(stages),
            stem=rng.choice([16, 24, 32, 48]),
            head=rng.choice([0, 512, 1024, 1280]),
            activation=rng.choice(list(_ACTIVATIONS)),
            num_classes=num_classes,
        )

    def to_dict(self) -> dict:
        """The architecture as plain data (stages as dicts), e.g. for a table row."""
        return asdict(self)

    # ------------------------------------------------------------------ building
    def build(self) -> nn.Module:
        """A fresh ``nn.Module`` with random weights, in eval mode."""
        act = _ACTIVATIONS[self.activation]
        layers: list[nn.Module] = [
            _conv_bn_act(self.in_channels, self.stem, 3, self.stem_stride, act)
        ]
        channels = self.stem
        for stage in self.stages:
            for j in range(stage.depth):
                stride = stage.stride if j == 0 else 1
                layers.append(_block(stage, channels, stride, act))
                channels = stage.width
        if self.head:
            layers.append(_conv_bn_act(channels, self.head, 1, 1, act))
            channels = self.head
        return _Classifier(nn.Sequential(*layers), channels, self.num_classes).eval()


def _conv_bn_act(cin: int, cout: int, k: int, stride: int, act: type, groups: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        act(),
    )


def _block(stage: Stage, cin: int, stride: int, act: type) -> nn.Module:
    if stage.block == "mbconv":
        return _MBConv(cin, stage.width, stage.kernel, stride, stage.expansion, stage.se, act)
    if stage.block == "residual":
        return _Residual(cin, stage.width, stage.kernel, stride, act)
    return _conv_bn_act(cin, stage.width, stage.kernel, stride, act)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, act: type) -> None:
        super().__init__()
        hidden = max(8, channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = act()
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, t: int, se: bool, act: type):
        super().__init__()
        hidden = cin * t
        parts: list[nn.Module] = []
        if t != 1:
            parts.append(_conv_bn_act(cin, hidden, 1, 1, act))
        parts.append(_conv_bn_act(hidden, hidden, k, stride, act, groups=hidden))
        if se:
            parts.append(_SqueezeExcite(hidden, act))
        parts += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*parts)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class _Residual(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, act: type):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_act(cin, cout, k, stride, act),
            nn.Conv2d(cout, cout, k, 1, k // 2, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.act = act()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class _Classifier(nn.Module):
    def __init__(self, features: nn.Module, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))
