"""The network zoo: the survey's Table-2 networks and modern reference networks.

Every entry builds a fresh ``nn.Module`` with random weights (a network's cost does not
depend on its weight values) and knows the input size of its paper. Names are lower case;
:func:`names` lists them and :func:`get` builds one.

Table-2 networks (NeuralPower, Cai et al. 2017):

* ``vgg16``: torchvision VGG-16, 224x224.
* ``alexnet``: torchvision AlexNet (the single-tower variant of "One weird trick"), 224x224.
* ``nin``: Network in Network, the ImageNet model of Lin et al. 2014 (Caffe model zoo
  definition): four blocks of a spatial convolution followed by two 1x1 "cccp"
  convolutions, max pooling between blocks, global average pooling over 1000 maps;
  224x224 input, Caffe's ceil-mode pooling.
* ``overfeat``: OverFeat "fast" (Sermanet et al. 2014, table 1): 231x231 input, five
  convolutions (96-11x11/4, 256-5x5, 512-3x3, 1024-3x3, 1024-3x3), three max pools,
  fully connected 3072, 4096, 1000.
* ``cifar10_6conv``: the six-convolution CIFAR-10 network used in the NeuralPower
  evaluation. Its paper gives no layer table, so hwml uses the common VGG-style reading
  of the name: three stages of two 3x3 convolutions (64, 128, 256 filters, padding 1,
  ReLU) each followed by 2x2 max pooling, then fully connected 1024 and 10; 32x32 input.

Modern networks: torchvision ``resnet18``, ``resnet50``, ``mobilenet_v2``,
``efficientnet_b0`` and ``densenet121``, all at 224x224.

Beyond the zoo, :func:`entry` resolves a network *spec* the way ``--net`` takes it:
a zoo name, ``torchvision:NAME`` (any classifier of ``torchvision.models``, random
weights, 224x224 unless the model needs more), ``cells:SEED`` (a network drawn from the
cell space of :mod:`hwml.cells`, 224x224) or ``package.module:callable`` (your own
function or class returning an ``nn.Module``; give its input shape). :func:`get`,
:func:`input_shape` and :func:`describe_net` accept specs too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from hwml.describe import Network, describe

__all__ = [
    "ZooEntry",
    "ZOO",
    "TABLE2",
    "names",
    "network_set",
    "family",
    "get",
    "input_shape",
    "describe_net",
    "UnknownNetworkError",
    "entry",
]


class UnknownNetworkError(KeyError):
    """Raised for a network name that is not in the zoo."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class ZooEntry:
    """A zoo network: how to build it and the input size of its paper.

    Attributes:
        name: Zoo name.
        build: Returns a fresh module with random weights.
        image_size: Input height and width in pixels.
        channels: Input channels.
        source: Where the definition comes from.
        table2: Whether the survey's Table 2 reports it.
        sample_shape: The shape of one input without the batch dimension, when it is not
            ``(channels, image_size, image_size)`` (e.g. a sequence model's).
    """

    name: str
    build: Callable[[], nn.Module]
    image_size: int
    channels: int = 3
    source: str = ""
    table2: bool = False
    sample_shape: tuple[int, ...] | None = None

    def shape(self, batch: int) -> tuple[int, ...]:
        """The input shape at ``batch``."""
        sample = self.sample_shape or (self.channels, self.image_size, self.image_size)
        return (batch, *sample)


def _nin() -> nn.Module:
    def block(cin: int, cout: int, k: int, s: int, p: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, k, s, p),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 1),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *block(3, 96, 11, 4, 0),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        *block(96, 256, 5, 1, 2),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        *block(256, 384, 3, 1, 1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Dropout(0.5),
        nn.Conv2d(384, 1024, 3, 1, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1000, 1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def _overfeat() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 96, 11, 4),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(96, 256, 5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(256, 512, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(512, 1024, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(1024 * 6 * 6, 3072),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(3072, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(4096, 1000),
    )


def _cifar10_6conv() -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for cout in (64, 128, 256):
        layers += [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, 2),
        ]
        cin = cout
    layers += [
        nn.Flatten(),
        nn.Linear(256 * 4 * 4, 1024),
        nn.ReLU(inplace=True),
        nn.Linear(1024, 10),
    ]
    return nn.Sequential(*layers)


def _tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("vgg16", _tv("vgg16"), 224, source="torchvision.models.vgg16", table2=True),
        ZooEntry("alexnet", _tv("alexnet"), 224, source="torchvision.models.alexnet", table2=True),
        ZooEntry("nin", _nin, 224, source="Lin et al. 2014, Caffe ImageNet model", table2=True),
        ZooEntry(
            "overfeat", _overfeat, 231, source="Sermanet et al. 2014, fast model", table2=True
        ),
        ZooEntry(
            "cifar10_6conv",
            _cifar10_6conv,
            32,
            source="VGG-style 6-conv CIFAR-10 network (see module docstring)",
            table2=True,
        ),
        ZooEntry("resnet18", _tv("resnet18"), 224, source="torchvision.models.resnet18"),
        ZooEntry("resnet50", _tv("resnet50"), 224, source="torchvision.models.resnet50"),
        ZooEntry(
            "mobilenet_v2", _tv("mobilenet_v2"), 224, source="torchvision.models.mobilenet_v2"
        ),
        ZooEntry(
            "efficientnet_b0",
            _tv("efficientnet_b0"),
            224,
            source="torchvision.models.efficientnet_b0",
        ),
        ZooEntry("densenet121", _tv("densenet121"), 224, source="torchvision.models.densenet121"),
    ]
}

#: The networks of the survey's Table 2, in its order.
TABLE2: tuple[str, ...] = tuple(n for n, e in ZOO.items() if e.table2)


def names() -> list[str]:
    """Every zoo network name, Table-2 networks first."""
    return list(ZOO)


#: Torchvision classifiers measured last in :func:`network_set` (the heaviest to run).
_HEAVIEST = ("vit_l_32", "regnet_y_32gf", "vit_l_16", "regnet_y_128gf", "vit_h_14")


#: Family of a network, by the start of its torchvision name (first match wins).
_FAMILIES = (
    ("resnext", "resnet"),
    ("wide_resnet", "resnet"),
    ("resnet", "resnet"),
    ("vgg", "vgg"),
    ("densenet", "densenet"),
    ("efficientnet_v2", "efficientnet_v2"),
    ("efficientnet", "efficientnet"),
    ("mobilenet", "mobilenet"),
    ("mnasnet", "mnasnet"),
    ("shufflenet", "shufflenet"),
    ("squeezenet", "squeezenet"),
    ("convnext", "convnext"),
    ("swin", "swin"),
    ("vit", "vit"),
    ("maxvit", "maxvit"),
    ("regnet", "regnet"),
    ("googlenet", "inception"),
    ("inception", "inception"),
)


def family(spec: str) -> str:
    """The design family of a network spec, for leave-one-family-out evaluation.

    ResNets, ResNeXts and wide ResNets are one family; GoogLeNet and Inception-v3 another;
    every ``cells:SEED`` network belongs to ``cells``; the survey's own networks (NiN,
    OverFeat, the CIFAR-10 network, AlexNet) form ``classic``; a network of no known family
    is its own.
    """
    if spec.startswith("cells:"):
        return "cells"
    name = spec.split(":", 1)[-1]
    if name in ("alexnet", "nin", "overfeat", "cifar10_6conv"):
        return "classic"
    return next((fam for prefix, fam in _FAMILIES if name.startswith(prefix)), name)


def network_set(cells: int = 40) -> list[str]:
    """The measured network set: the zoo, ``cells`` cell-space networks, every other
    torchvision classifier.

    Zoo networks that are torchvision models keep their zoo names (no network is listed
    twice); the heaviest torchvision classifiers come last, so that a time-limited sweep
    misses those first.
    """
    import torchvision

    sources = {e.source for e in ZOO.values()}
    tv = [
        n
        for n in torchvision.models.list_models(module=torchvision.models)
        if f"torchvision.models.{n}" not in sources
    ]
    tv = [n for n in tv if n not in _HEAVIEST] + [n for n in _HEAVIEST if n in tv]
    return [*ZOO, *(f"cells:{i}" for i in range(cells)), *(f"torchvision:{n}" for n in tv)]


#: Input sizes of torchvision classifiers that do not take 224x224.
_TORCHVISION_SIZES = {"inception_v3": 299}

SPEC_FORMS = "a zoo name, torchvision:NAME, cells:SEED or package.module:callable"


def entry(spec: str, sample_shape: Sequence[int] | None = None) -> ZooEntry:
    """The network a ``--net`` spec names (see the module docstring).

    Args:
        spec: A zoo name, ``torchvision:NAME``, ``cells:SEED`` or
            ``package.module:callable``.
        sample_shape: One input's shape without the batch, e.g. ``(3, 224, 224)``;
            required for ``package.module:callable``, optional otherwise.

    Raises:
        UnknownNetworkError: the spec names nothing that exists; the message says what
            was given and what is supported.
    """
    shape = tuple(int(s) for s in sample_shape) if sample_shape else None
    if shape is not None and (not shape or any(s <= 0 for s in shape)):
        raise ValueError(f"input shape must hold positive sizes, got {shape}")
    if spec in ZOO:
        return ZOO[spec] if shape is None else replace(ZOO[spec], sample_shape=shape)
    prefix, sep, target = spec.partition(":")
    if not sep or not target:
        raise UnknownNetworkError(
            f"unknown network {spec!r}: give {SPEC_FORMS}; the zoo has: {', '.join(ZOO)}"
        )
    if prefix == "torchvision":
        return _torchvision_entry(spec, target, shape)
    if prefix == "cells":
        return _cells_entry(spec, target, shape)
    return _callable_entry(spec, prefix, target, shape)


def _torchvision_entry(spec: str, name: str, shape: tuple[int, ...] | None) -> ZooEntry:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise UnknownNetworkError(
            f"torchvision has no classifier {name!r}; it has: {', '.join(known)}"
        )
    size = _TORCHVISION_SIZES.get(name, 224)
    return ZooEntry(
        spec,
        lambda: torchvision.models.get_model(name, weights=None),
        size,
        source=f"torchvision.models.{name}",
        sample_shape=shape,
    )


def _cells_entry(spec: str, seed: str, shape: tuple[int, ...] | None) -> ZooEntry:
    from hwml.cells import CellNet

    if not seed.isdigit():
        raise UnknownNetworkError(
            f"{spec!r}: a cell-space network is named cells:SEED with a non-negative "
            "integer seed, e.g. cells:17"
        )
    net = CellNet.sample(int(seed))
    return ZooEntry(
        spec, net.build, 224, source=f"hwml.cells.CellNet.sample({seed})", sample_shape=shape
    )


def _callable_entry(spec: str, module: str, attr: str, shape: tuple[int, ...] | None) -> ZooEntry:
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise UnknownNetworkError(
            f"cannot load {spec!r} ({type(err).__name__}: {err}); give {SPEC_FORMS}"
        ) from None
    if not callable(found):
        raise UnknownNetworkError(f"{spec!r} is not callable: it must return an nn.Module")
    if shape is None:
        raise UnknownNetworkError(
            f"{spec!r}: give the input shape of one sample (e.g. --input-shape 3,224,224)"
        )

    def build() -> nn.Module:
        module = found()
        if not isinstance(module, nn.Module):
            raise UnknownNetworkError(
                f"{spec!r} returned a {type(module).__name__}, not a torch.nn.Module"
            )
        return module

    return ZooEntry(spec, build, shape[-1], channels=shape[0], source=spec, sample_shape=shape)


def get(name: str, sample_shape: Sequence[int] | None = None) -> nn.Module:
    """Build network ``name`` (a zoo name or spec, see :func:`entry`) with random
    weights, in eval mode.

    Raises:
        UnknownNetworkError: naming the network and what is supported.
    """
    return entry(name, sample_shape).build().eval()


def input_shape(
    name: str, batch: int = 1, sample_shape: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The input shape of network ``name`` at ``batch``: (N, C, H, W) for an image model."""
    e = entry(name, sample_shape)
    if not isinstance(batch, int) or batch <= 0:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    return e.shape(batch)


def describe_net(
    name: str,
    batch: int = 1,
    dtype_bytes: int = 4,
    weights: bool = True,
    sample_shape: Sequence[int] | None = None,
) -> Network:
    """Describe network ``name`` at ``batch`` (see :func:`hwml.describe.describe`).

    Args:
        name: A zoo name or spec (:func:`entry`).
        batch: Batch size.
        dtype_bytes: Bytes per element for the byte features.
        weights: When False the module is built on the meta device: describing is then
            instant, but ``Network.runnable`` layers cannot run on data.
        sample_shape: One input's shape without the batch (see :func:`entry`).
    """
    shape = input_shape(name, batch, sample_shape)
    if weights:
        return describe(get(name, sample_shape), shape, name=name, dtype_bytes=dtype_bytes)
    try:
        with torch.device("meta"):
            module = get(name, sample_shape)
    except (NotImplementedError, RuntimeError):
        # Some constructors compute sizes from tensor data (torchvision's RegNet calls
        # .tolist()), which the meta device does not hold: build those on the CPU, then
        # move them to the meta device, so that describing never runs a real forward pass
        # (RegNetY-128GF at batch 128 would need tens of GB of activations on the CPU).
        module = get(name, sample_shape).to("meta")
    return describe(module, shape, name=name, dtype_bytes=dtype_bytes)
