"""Every torchvision classifier describes with strict=True, with FlopCounterMode's FLOPs.

Models are built on the meta device (no weights in memory, nothing computed); the
reference is ``torch.utils.flop_counter.FlopCounterMode`` over a forward pass on a meta
input of the same shape, at batch 1 and 2. Each model is built once (about 55 s in all
on two CPU cores).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwml.describe import describe

torchvision = pytest.importorskip("torchvision")

MODELS = torchvision.models.list_models(module=torchvision.models)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Register every parameter and buffer created inside on the meta device."""
    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(self, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self, name, tensor, persistent=True):
        register_buffer(self, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter
        nn.Module.register_buffer = register_buffer


_BUILT: dict[str, nn.Module] = {}


def build(name: str) -> nn.Module:
    """A torchvision classifier with meta weights (cached for the module's tests).

    RegNet computes its stage widths with torch operations and ``.tolist()`` while it is
    built, which the meta device cannot answer; it is built on the CPU with each
    parameter moved to the meta device as it is registered (no weight memory is kept).
    """
    if name not in _BUILT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # googlenet, inception init notes
            try:
                with torch.device("meta"):
                    model = torchvision.models.get_model(name, weights=None)
            except NotImplementedError:
                with _parameters_on_meta():
                    model = torchvision.models.get_model(name, weights=None)
        _BUILT[name] = model.eval()
    return _BUILT[name]


def input_shape(name: str, batch: int) -> tuple[int, ...]:
    size = 299 if name == "inception_v3" else 224
    return (batch, 3, size, size)


def counted_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


def test_there_are_80_classifiers():
    assert len(MODELS) == 80


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", MODELS)
def test_classifier_describes_with_the_counted_flops(name, batch):
    model = build(name)
    shape = input_shape(name, batch)
    net = describe(model, shape, strict=True)
    assert not [layer.name for layer in net.layers if layer.kind == "other"]
    assert sum(layer.flops for layer in net.layers) == counted_flops(model, shape)
