"""The Eyeriss-style energy model against hand computations."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from hwml.describe import Layer, Network
from hwml.predict import Eyeriss, LeftOutLayersWarning, UnknownKindError, load
from tests.predict.conftest import attention_net

# One convolution: batch 1, 2 input channels of 4x4, 3 filters of 3x3, stride 1, no
# padding, no bias -> a 3x2x2 output.
#   MACs M = 1 * 3 * 2 * 2 * (2 * 3 * 3) = 216
#   values: weights N_w = 3*2*3*3 = 54, ifmap N_i = 2*4*4 = 32, outputs N_o = 3*2*2 = 12
# Reuse factors (r_rf, r_arr):
#   ifmap  (kernel_w/stride = 3, kernel_h/stride = 3)
#   weight (out_w = 2,            min(out_h, 14) = 2)
#   psum   (kernel_w = 3,         kernel_h = 3)
# Accesses per data type, DRAM up (each level at least the one above it):
#   ifmap:  dram 32, buffer max(216/9, 32) = 32, array max(216/3, 32) = 72,  rf 216
#   weight: dram 54, buffer max(216/4, 54) = 54, array max(216/2, 54) = 108, rf 216
#   psum:   dram 12, buffer max(216/9, 12) = 24, array max(216/3, 24) = 72,  rf 216
# Totals: rf 648, array 252, buffer 110, dram 98.
# Energy (MAC = 1, RF 1, array 2, buffer 6, DRAM 200):
#   E_comp = 216
#   E_data = 648*1 + 252*2 + 110*6 + 98*200 = 648 + 504 + 660 + 19600 = 21412
#   E      = 21628
CONV = Layer.conv2d(1, 2, 4, 4, 3, 3, bias=False)


def _row(layer: Layer, **extra) -> pd.DataFrame:
    return pd.DataFrame([{**layer.to_row(), **extra}])


def test_conv_matches_hand_computation():
    out = Eyeriss().breakdown(_row(CONV)).iloc[0]
    assert CONV.macs == 216
    assert (out.rf_accesses, out.array_accesses, out.buffer_accesses, out.dram_accesses) == (
        648,
        252,
        110,
        98,
    )
    assert out.comp_energy_mac == 216
    assert (
        out.rf_energy_mac,
        out.array_energy_mac,
        out.buffer_energy_mac,
        out.dram_energy_mac,
    ) == (648, 504, 660, 19600)
    assert out.data_energy_mac == 21412
    assert out.energy_mac == 21628
    # By data type: ifmap 216 + 2*72 + 6*32 + 200*32, weight 216 + 2*108 + 6*54 + 200*54,
    # psum 216 + 2*72 + 6*24 + 200*12.
    assert out.ifmap_energy_mac == 216 + 144 + 192 + 6400
    assert out.weight_energy_mac == 216 + 216 + 324 + 10800
    assert out.psum_energy_mac == 216 + 144 + 144 + 2400
    assert Eyeriss().predict(_row(CONV))[0] == 21628


def test_linear_layer_has_no_reuse():
    # FC 1x8 -> 4, no bias: M = 32, every reuse factor 1: each data type has 32 accesses
    # at RF, array and buffer; DRAM: 8 inputs, 32 weights, 4 outputs.
    fc = Layer.linear(1, 8, 4, bias=False)
    out = Eyeriss().breakdown(_row(fc)).iloc[0]
    assert out.rf_accesses == 96 and out.array_accesses == 96 and out.buffer_accesses == 96
    assert out.dram_accesses == 8 + 32 + 4
    assert out.energy_mac == 32 + 96 * (1 + 2 + 6) + 44 * 200


def test_sparsity_skips_macs_and_traffic():
    dense = Eyeriss().breakdown(_row(CONV)).iloc[0]
    half = Eyeriss(weight_sparsity=0.5).breakdown(_row(CONV)).iloc[0]
    assert half.macs_effective == 108 and half.comp_energy_mac == 108
    # Weight DRAM traffic halves (54 -> 27); ifmap and outputs unchanged.
    assert half.dram_accesses == 32 + 27 + 12
    # A per-row column overrides the constructor's value.
    col = Eyeriss().breakdown(_row(CONV, weight_sparsity=0.5)).iloc[0]
    assert col.energy_mac == half.energy_mac < dense.energy_mac
    with pytest.raises(ValueError, match="sparsity"):
        Eyeriss().breakdown(_row(CONV, act_sparsity=1.0))


def test_bit_width_scaling():
    ref = Eyeriss().breakdown(_row(CONV)).iloc[0]
    w8 = Eyeriss(weight_bits=8).breakdown(_row(CONV)).iloc[0]
    assert w8.comp_energy_mac == ref.comp_energy_mac / 2  # 8x16 / 16^2
    assert w8.weight_energy_mac == ref.weight_energy_mac / 2
    assert w8.ifmap_energy_mac == ref.ifmap_energy_mac


def test_vector_kinds_and_free_kinds():
    # ReLU on 1x2x2x2: 8 operations (RF), 8 values in and 8 out through buffer and DRAM.
    relu = Layer.activation("relu", (1, 2, 2, 2))
    out = Eyeriss().breakdown(_row(relu)).iloc[0]
    assert out.comp_energy_mac == 8 and out.rf_energy_mac == 8
    assert out.buffer_energy_mac == 16 * 6 and out.dram_energy_mac == 16 * 200
    fused = Eyeriss(fuse_vector=True).breakdown(_row(relu)).iloc[0]
    assert fused.energy_mac == 16
    cat = Layer.concat([(1, 2, 2, 2), (1, 3, 2, 2)])
    assert Eyeriss().breakdown(_row(cat)).iloc[0].energy_mac == 0


def test_network_totals_and_pj(tmp_path):
    net = Network("toy", (1, 2, 4, 4), [CONV, Layer.activation("relu", CONV.out_shape)])
    model = Eyeriss(mac_energy_pj=0.5)
    pred = model.predict_network(net)
    assert pred.totals["energy_mac"] == pytest.approx(pred.layers.energy_mac.sum())
    assert pred.layers.energy_pj.iloc[0] == 21628 * 0.5
    back = load(model.fit().save(tmp_path / "eyeriss.json"))
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.predict(net.table()), model.predict(net.table()))


def test_other_kind_is_refused():
    other = Layer(kind="other", in_shapes=((1, 2),), out_shape=(1, 2), op="weird")
    with pytest.raises(UnknownKindError, match="'other'"):
        Eyeriss().predict(_row(other))


def test_matmul_is_priced_like_a_linear_layer():
    # (1x2x8) @ (1x8x4): M = 2*4*8 = 64, every reuse factor 1: 64 accesses of each data
    # type at RF, array and buffer; DRAM: both operands (16 + 32 values) in, 8 out.
    mm = Layer(
        kind="matmul",
        in_shapes=((1, 2, 8), (1, 8, 4)),
        out_shape=(1, 2, 4),
        in_features=8,
        op="bmm",
    )
    out = Eyeriss().breakdown(_row(mm)).iloc[0]
    assert out.macs_effective == 64 and out.rf_accesses == 3 * 64
    assert out.buffer_accesses == 3 * 64 and out.dram_accesses == 48 + 8
    assert out.energy_mac == 64 + 3 * 64 * (1 + 2 + 6) + 56 * 200


def test_transformer_kinds_are_priced_from_their_features():
    net = attention_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = Eyeriss().predict_network(net, strict=True)
    assert pred.complete and pred.totals["left_out_layers"] == 0
    layers = pred.layers.set_index("name")
    ln = net.layer("ln1")
    moved = (ln.input_bytes + ln.output_bytes) / ln.dtype_bytes + ln.params
    assert layers.loc["ln1", "comp_energy_mac"] == ln.vector_ops
    assert layers.loc["ln1", "energy_mac"] == 2 * ln.vector_ops + moved * (6 + 200)
    attn = net.layer("attn")
    assert layers.loc["attn", "macs_effective"] == attn.macs
    assert layers.loc["attn", "comp_energy_mac"] == attn.macs + attn.vector_ops
    assert layers.loc["transpose", "energy_mac"] == 0  # data movement: layout only
    assert pred.totals["energy_mac"] == pytest.approx(layers["energy_mac"].sum())


def test_other_kind_is_left_out_of_networks_or_raises_when_strict():
    other = Layer(kind="other", in_shapes=(CONV.out_shape,), out_shape=(1, 12), op="weird")
    net = Network("n", (1, 2, 4, 4), [CONV, other])
    with pytest.warns(LeftOutLayersWarning, match=r"left out 1 of 2 layers.*'other'"):
        pred = Eyeriss().predict_network(net)
    assert list(pred.layers["left_out"]) == [False, True]
    assert np.isnan(pred.layers["energy_mac"].iloc[1])
    assert pred.totals["energy_mac"] == 21628 and pred.left_out == {"other": 1}
    with pytest.raises(UnknownKindError, match="'other'.*fitted groups are .*attention"):
        Eyeriss().predict_network(net, strict=True)
