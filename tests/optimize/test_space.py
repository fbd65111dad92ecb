"""Tests of hwml.optimize.space: dimensions, the unit-cube map, sampling, bad specs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwml.optimize.space import Categorical, Integer, LogReal, Real, Space, SpecError


@pytest.fixture
def mixed() -> Space:
    return Space(
        [
            Integer("filters", 16, 256, structural=True),
            Real("dropout", 0.0, 0.5),
            LogReal("lr", 1e-4, 1e-1),
            Categorical("act", ["relu", "tanh", "gelu"], structural=True),
            Categorical("kernel", [3, 5, 7], structural=True),
        ]
    )


def test_round_trip_keeps_values_and_types(mixed: Space) -> None:
    configs = mixed.sample(50, seed=0)
    again = mixed.decode(mixed.encode(configs))
    pd.testing.assert_frame_equal(
        again[["filters", "act", "kernel"]], configs[["filters", "act", "kernel"]]
    )
    np.testing.assert_allclose(again["dropout"], configs["dropout"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(again["lr"], configs["lr"], rtol=1e-12)
    assert again["filters"].dtype == np.int64 and again["kernel"].dtype == np.int64
    one = mixed.to_dicts(configs)[0]
    assert (
        type(one["filters"]) is int and type(one["kernel"]) is int and isinstance(one["act"], str)
    )


def test_encoding_values_by_hand() -> None:
    space = Space(
        [
            Integer("n", 1, 4),
            Real("r", -1.0, 1.0),
            LogReal("g", 1e-3, 1e1),
            Categorical("c", ["x", "y"]),
        ]
    )
    u = space.encode({"n": 3, "r": 0.5, "g": 1e-1, "c": "y"})
    # integer level 2 of 4 -> bin centre 2.5/4; linear 0.75; log 2 of 4 decades; choice 1 of 2
    np.testing.assert_allclose(u, [[2.5 / 4, 0.75, 0.5, 0.75]])
    decoded = space.decode(np.array([[0.0, 0.0, 1.0, 0.49], [1.0, 1.0, 0.0, 0.51]]))
    assert decoded["n"].tolist() == [1, 4]
    assert decoded["r"].tolist() == [-1.0, 1.0]
    np.testing.assert_allclose(decoded["g"], [1e1, 1e-3])
    assert decoded["c"].tolist() == ["x", "y"]


def test_uniform_sampling_gives_end_levels_their_share() -> None:
    space = Space([Integer("n", 0, 3)])
    counts = np.bincount(space.sample(40_000, seed=1)["n"], minlength=4) / 40_000
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


def test_logreal_samples_uniform_in_log() -> None:
    values = Space([LogReal("lr", 1e-4, 1e0)]).sample(20_000, seed=2)["lr"].to_numpy()
    share_below = np.mean(values < 1e-2)  # half of the decades
    assert share_below == pytest.approx(0.5, abs=0.02)
    assert values.min() >= 1e-4 and values.max() <= 1.0


def test_sampling_is_seeded(mixed: Space) -> None:
    pd.testing.assert_frame_equal(mixed.sample(10, seed=7), mixed.sample(10, seed=7))
    assert not mixed.sample(10, seed=7).equals(mixed.sample(10, seed=8))


def test_snap_is_idempotent_and_canonical(mixed: Space) -> None:
    raw = np.random.default_rng(0).random((100, mixed.n_dims))
    snapped = mixed.snap(raw)
    np.testing.assert_array_equal(mixed.snap(snapped), snapped)
    np.testing.assert_allclose(mixed.encode(mixed.decode(raw)), snapped, atol=1e-12)


def test_perturb_stays_in_cube_and_near(mixed: Space) -> None:
    center = mixed.encode({"filters": 128, "dropout": 0.25, "lr": 1e-2, "act": "tanh", "kernel": 5})
    near = mixed.perturb_unit(center, 500, 0.02, seed=3)
    assert near.shape == (500, mixed.n_dims)
    assert np.all((near >= 0) & (near <= 1))
    assert np.median(np.abs(near[:, 1] - center[0, 1])) < 0.05
    far = mixed.perturb_unit(center, 500, 0.3, seed=3)
    assert np.median(np.abs(far[:, 1] - center[0, 1])) > np.median(
        np.abs(near[:, 1] - center[0, 1])
    )
    # a categorical gene changes sometimes, not always
    changed = np.mean(near[:, 3] != center[0, 3])
    assert 0 < changed < 0.5


def test_structural_columns(mixed: Space) -> None:
    configs = mixed.sample(3, seed=0)
    assert list(mixed.structural(configs).columns) == ["filters", "act", "kernel"]
    plain = Space([Real("a", 0, 1), Real("b", 0, 1)])
    assert list(plain.structural(plain.sample(2, 0)).columns) == ["a", "b"]


def test_size_and_specs_round_trip(mixed: Space) -> None:
    assert mixed.size is None
    assert Space([Integer("a", 0, 4), Categorical("b", ["x", "y"])]).size == 10
    assert Space.from_specs(mixed.to_specs()).to_specs() == mixed.to_specs()


def test_categorical_reads_back_text_of_numbers() -> None:
    dim = Categorical("k", [3, 5, 7])
    np.testing.assert_allclose(dim.encode(["5", 7]), [0.5, 5 / 6])


# -- bad input names the field ------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: Integer("n", 5, 5), "'n'.*empty"),
        (lambda: Integer("n", 6, 5), "'n'.*inverted.*'low'"),
        (lambda: Real("r", 1.0, 0.0), "'r'.*inverted"),
        (lambda: Real("r", 0.0, float("inf")), "'r'.*'high'.*finite"),
        (lambda: Real("r", "0", 1.0), "'r'.*'low'.*number"),
        (lambda: LogReal("lr", 0.0, 1.0), "'lr'.*'low'.*> 0"),
        (lambda: Integer("n", 0.5, 3), "'n'.*'low'.*integer"),
        (lambda: Categorical("c", []), "'c'.*'choices'.*empty"),
        (lambda: Categorical("c", ["a", "a"]), "'c'.*'choices'.*duplicate"),
        (lambda: Categorical("c", "abc"), "'c'.*'choices'"),
        (lambda: Real("", 0.0, 1.0), "'name'"),
        (lambda: Real("r", 0.0, 1.0, structural="yes"), "'structural'"),
    ],
)
def test_bad_dimension_names_field(make, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        make()


def test_duplicate_names_rejected() -> None:
    with pytest.raises(SpecError, match="duplicate name 'a'"):
        Space([Real("a", 0, 1), Integer("a", 0, 3)])


def test_unknown_dimension_type() -> None:
    with pytest.raises(SpecError, match="'type'.*'ordinal'"):
        Space.from_specs([{"name": "x", "type": "ordinal", "low": 0, "high": 1}])
    with pytest.raises(SpecError, match="unknown dimension type 'dict'"):
        Space([{"name": "x"}])  # type: ignore[list-item]


def test_spec_missing_and_unknown_fields() -> None:
    with pytest.raises(SpecError, match="'x'.*missing field 'high'"):
        Space.from_specs([{"name": "x", "type": "real", "low": 0}])
    with pytest.raises(SpecError, match="'x'.*unknown field 'step'"):
        Space.from_specs([{"name": "x", "type": "integer", "low": 0, "high": 3, "step": 2}])


def test_out_of_domain_values_name_the_field(mixed: Space) -> None:
    good = {"filters": 64, "dropout": 0.1, "lr": 1e-3, "act": "relu", "kernel": 3}
    with pytest.raises(SpecError, match="'filters'.*300"):
        mixed.encode({**good, "filters": 300})
    with pytest.raises(SpecError, match="'filters'.*not an integer"):
        mixed.encode({**good, "filters": 64.5})
    with pytest.raises(SpecError, match="'act'.*'swish'"):
        mixed.encode({**good, "act": "swish"})
    with pytest.raises(SpecError, match="lacks.*'lr'"):
        mixed.encode({k: v for k, v in good.items() if k != "lr"})


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_seed_must_be_int(mixed: Space, seed: object) -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        mixed.sample(3, seed=seed)  # type: ignore[arg-type]


def test_negative_seed_rejected(mixed: Space) -> None:
    with pytest.raises(ValueError, match="seed must be >= 0"):
        mixed.sample(3, seed=-1)
