"""Tests of hwml.nas.pricing: layers without tracing, stage sums, predictions, the rate."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hwml.describe import describe
from hwml.nas.pricing import ArchPricer, arch_layers, arch_network, pricing_rate
from hwml.nas.space import NASSpace
from hwml.predict.pipeline import FEATURE_COLUMNS, GROUPS, PipelineModel, network_features

SPACE = NASSpace()
CEILINGS = {"float32": (5.0e13, 3.0e12)}


def _signature(layers) -> list[tuple]:
    return sorted(
        (
            layer.kind,
            layer.op if layer.kind == "activation" else "",
            layer.in_shapes,
            layer.out_shape,
            layer.flops,
            layer.total_bytes,
        )
        for layer in layers
    )


@pytest.mark.parametrize("batch", [1, 64])
def test_layers_are_the_ones_describe_finds(batch: int) -> None:
    for arch in SPACE.sample(12, 5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = describe(SPACE.build(arch), SPACE.input_shape(batch))
        assert _signature(arch_layers(SPACE, arch, batch)) == _signature(traced.layers)


def _model() -> PipelineModel:
    """A pipeline model with made-up coefficients (enough to exercise the path)."""
    priced = [g for g in GROUPS if g != "trivial"]
    return PipelineModel(
        host_cost_ms=dict.fromkeys(GROUPS, 0.01),
        host_base_ms=0.05,
        device_scale={
            "float32": {"flop": dict.fromkeys(priced, 1.0), "byte": dict.fromkeys(priced, 1.0)}
        },
        device_fixed_ms={"float32": dict.fromkeys(priced, 0.002)},
        overlap=0.1,
        idle_w=100.0,
        busy_w={"float32": (300.0, 50.0, 100.0)},
        ceilings=CEILINGS,
    )


def test_stage_sums_give_network_features() -> None:
    pricer = ArchPricer(SPACE, _model())
    archs = SPACE.sample(15, 2)
    for batch in (1, 64):
        feats = pricer.features(archs, batch)
        for arch, (_, row) in zip(archs, feats.iterrows(), strict=True):
            ref = network_features(arch_network(SPACE, arch, batch), "float32", CEILINGS["float32"])
            assert np.allclose(
                [row[c] for c in FEATURE_COLUMNS], [ref[c] for c in FEATURE_COLUMNS], rtol=1e-12
            )
    assert pricer.cached_stages > 0


def test_predictions_floor_power_at_idle_and_match_the_model() -> None:
    model = _model()
    pricer = ArchPricer(SPACE, model)
    archs = SPACE.sample(40, 0)
    out = pricer.predict(archs, 1)
    assert (out["graph_power_w"] >= model.idle_w).all() and (out["power_w"] >= model.idle_w).all()
    raw = model.predict(pricer.features(archs, 1))
    assert np.allclose(out["runtime_ms"], raw["runtime_ms"])
    assert (out["power_floored"] == (raw["graph_power_w"] < model.idle_w)).all()
    assert out["power_floored"].any()  # these tiny networks fall below the made-up fit
    assert np.allclose(
        out["graph_energy_per_image_mj"], out["graph_power_w"] * out["runtime_graph_ms"]
    )
    assert np.allclose(pricer.flops(archs, 1), out["flops"])


def test_warm_fills_every_stage_and_pricing_then_only_looks_up() -> None:
    tiny = NASSpace.tiny()
    pricer = ArchPricer(tiny, _model())
    n = pricer.warm([1])
    assert n == pricer.cached_stages > 0
    pricer.predict(tiny.sample(200, 0), 1)
    assert pricer.cached_stages == n


def test_pricing_rate_reports_candidates_per_second() -> None:
    pricer = ArchPricer(SPACE, _model())
    rate = pricing_rate(pricer, 50, batches=(1, 64), repeats=2)
    assert rate["candidates"] == 50 and len(rate["seconds"]) == 2
    assert rate["best_per_s"] >= rate["first_per_s"] > 0
    flops_only = pricing_rate(ArchPricer(SPACE), 20, repeats=1)
    assert flops_only["first_per_s"] > 0


def test_a_pricer_without_model_gives_flops_only() -> None:
    with pytest.raises(ValueError, match="FLOPs only"):
        ArchPricer(SPACE).predict(SPACE.sample(1, 0))
    with pytest.raises(ValueError, match="fitted on"):
        ArchPricer(SPACE, _model(), dtype="float16")
    assert isinstance(ArchPricer(SPACE).features(SPACE.sample(2, 0)), pd.DataFrame)
