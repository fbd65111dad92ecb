"""Hand-designed and searched mobile networks, adapted to the proxy task's small images.

The survey's Figure 5 places the networks a platform-aware search finds beside
state-of-the-art mobile networks. :data:`REFERENCES` holds torchvision's MobileNetV2
(hand-designed), MnasNet (found by MnasNet's platform-aware search for a phone) and
EfficientNet-B0 (found by a search for accuracy under a FLOPs target, then scaled),
each at one or two widths, rebuilt for the proxy task: ten classes, and a stem
convolution that takes the task's channels at stride 1 instead of 3 channels at stride
2 (at 24x24, a stride-2 stem followed by the networks' four further halvings would leave
less than one pixel). Everything after the stem is torchvision's network unchanged, with
one exception: every batch norm uses PyTorch's default momentum of the running statistics
(0.1, as the cell networks do). torchvision's MNASNet keeps TensorFlow's 0.0003
(``1 - 0.9997``), made for hundreds of thousands of ImageNet steps; after the proxy
task's 150 steps its running statistics have moved a few per cent from their start (mean
0, variance 1), so a network that has learned the task tests at chance in eval mode.
(``data/nas-nvidia-h200-cued-digits`` was trained before this was fixed; its NOTES.md
says which rows it touches.)

:func:`build_reference` builds one; the benchmark trains and measures them with the same
script, task and settings as the networks of the search space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["BN_MOMENTUM", "REFERENCES", "Reference", "build_reference", "reference_key"]


@dataclass(frozen=True)
class Reference:
    """A reference network.

    Attributes:
        name: short name, e.g. ``mobilenet_v2-0.5``.
        family: ``mobilenet_v2``, ``mnasnet`` or ``efficientnet_b0``.
        width: width multiplier.
        source: torchvision constructor.
        designed: how it was designed (``hand``, ``platform-aware search``, ...).
    """

    name: str
    family: str
    width: float
    source: str
    designed: str


REFERENCES: dict[str, Reference] = {
    r.name: r
    for r in (
        Reference(
            "mobilenet_v2-0.5",
            "mobilenet_v2",
            0.5,
            "torchvision.models.mobilenet_v2(width_mult=0.5)",
            "hand",
        ),
        Reference(
            "mobilenet_v2-1.0",
            "mobilenet_v2",
            1.0,
            "torchvision.models.mobilenet_v2(width_mult=1.0)",
            "hand",
        ),
        Reference(
            "mnasnet-0.5",
            "mnasnet",
            0.5,
            "torchvision.models.mnasnet0_5",
            "platform-aware search (phone latency)",
        ),
        Reference(
            "mnasnet-1.0",
            "mnasnet",
            1.0,
            "torchvision.models.mnasnet1_0",
            "platform-aware search (phone latency)",
        ),
        Reference(
            "efficientnet_b0",
            "efficientnet_b0",
            1.0,
            "torchvision.models.efficientnet_b0",
            "search for accuracy under a FLOPs target",
        ),
    )
}
"""The reference networks, by name."""


def reference_key(name: str) -> str:
    """The benchmark row key of a reference network: ``ref:<name>``."""
    if name not in REFERENCES:
        raise KeyError(f"unknown reference network {name!r}; known: {', '.join(REFERENCES)}")
    return f"ref:{name}"


def _stem(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)


def _constructor(ref: Reference) -> Callable[..., nn.Module]:
    import torchvision.models as tvm

    if ref.family == "mobilenet_v2":
        return lambda **kw: tvm.mobilenet_v2(width_mult=ref.width, **kw)
    if ref.family == "mnasnet":
        return {0.5: tvm.mnasnet0_5, 0.75: tvm.mnasnet0_75, 1.0: tvm.mnasnet1_0}[ref.width]
    return tvm.efficientnet_b0


#: Momentum of the running statistics of every reference network's batch norms
#: (PyTorch's default, which the cell networks use too).
BN_MOMENTUM = 0.1


def build_reference(
    name: str,
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    bn_momentum: float | None = BN_MOMENTUM,
) -> nn.Module:
    """Build reference network ``name`` for the proxy task (random weights, eval mode).

    Args:
        name: a key of :data:`REFERENCES`.
        in_channels: input channels of the stem.
        num_classes: classifier outputs.
        bn_momentum: momentum of every batch norm's running statistics; None keeps
            torchvision's (MNASNet's 0.0003: how the references of
            ``data/nas-nvidia-h200-cued-digits`` were trained).

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    if name not in REFERENCES:
        raise KeyError(f"unknown reference network {name!r}; known: {', '.join(REFERENCES)}")
    ref = REFERENCES[name]
    net = _constructor(ref)(weights=None, num_classes=num_classes)
    if ref.family == "mnasnet":
        old = net.layers[0]
        net.layers[0] = _stem(in_channels, old.out_channels)
    else:  # MobileNetV2 and EfficientNet: features[0] is conv, norm, activation
        old = net.features[0][0]
        net.features[0][0] = _stem(in_channels, old.out_channels)
    if bn_momentum is not None:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = bn_momentum
    return net.eval()
