"""Tests of hwml.nas.space: keys, sampling, canonical forms, modules, the search view."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hwml.describe import describe
from hwml.nas.space import NASSpace, StageChoice

SPACE = NASSpace()


def test_sample_is_seeded_distinct_and_prefix_stable() -> None:
    a = SPACE.sample(50, 3)
    assert SPACE.sample(50, 3) == a
    assert SPACE.sample(20, 3) == a[:20]
    assert len({SPACE.key(x) for x in a}) == 50
    assert SPACE.sample(50, 4) != a
    assert {st.block for arch in a for st in arch} == set(SPACE.blocks)


def test_keys_round_trip_and_name_one_network() -> None:
    for arch in SPACE.sample(30, 0):
        key = SPACE.key(arch)
        assert SPACE.parse(key) == arch
    conv_with_se = tuple(StageChoice("conv", 6, 3, True, 1, ws[0]) for ws in SPACE.widths)
    plain = tuple(StageChoice("conv", 1, 3, False, 1, ws[0]) for ws in SPACE.widths)
    assert SPACE.key(conv_with_se) == SPACE.key(plain)  # expansion and SE mean nothing there
    with pytest.raises(ValueError, match="width"):
        SPACE.canonical((StageChoice("conv", 1, 3, False, 1, 999),) * SPACE.n_stages)
    with pytest.raises(ValueError, match="not a stage"):
        SPACE.parse("x1k3s0d1w4")


def test_size_counts_canonical_architectures() -> None:
    tiny = NASSpace.tiny()
    # per stage: mbconv 3 expansions x 2 SE, conv 1, residual 1
    assert tiny.size == 8**4
    assert len(tiny.sample(tiny.size, 0)) == tiny.size
    with pytest.raises(ValueError, match="fewer"):
        tiny.sample(tiny.size + 1, 0)


def test_spec_round_trip() -> None:
    assert NASSpace.from_spec(SPACE.to_spec()) == SPACE
    assert NASSpace.named("tiny") == NASSpace.tiny()


def test_frame_and_unit_cube_round_trip() -> None:
    archs = SPACE.sample(25, 1)
    frame = SPACE.to_frame(archs)
    assert list(frame.columns) == ["key", *SPACE.search_space().names]
    assert SPACE.from_frame(frame) == archs
    points = SPACE.encode(archs)
    assert points.shape == (25, 6 * SPACE.n_stages) and np.all((points >= 0) & (points <= 1))
    back = SPACE.search_space().decode(points)
    assert SPACE.from_frame(back) == archs
    assert len({tuple(p) for p in points}) == 25  # one point per network


@pytest.mark.parametrize("seed", range(6))
def test_modules_run_and_describe_agrees_with_flop_counter(seed: int) -> None:
    arch = SPACE.sample(6, 11)[seed]
    model = SPACE.build(arch)
    x = torch.randn(SPACE.input_shape(2))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    assert out.shape == (2, SPACE.num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = describe(model, SPACE.input_shape(2))
    assert all(layer.kind != "other" for layer in net.layers)
    assert net.totals()["flops"] == counter.get_total_flops()
    params = sum(p.numel() for p in model.parameters())
    assert net.totals()["params"] == params
