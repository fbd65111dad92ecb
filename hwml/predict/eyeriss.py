"""An Eyeriss-style analytical energy model for CNN accelerators.

Yang et al. ("Designing Energy-Efficient Convolutional Neural Networks using
Energy-Aware Pruning", CVPR 2017) estimate a layer's energy on the Eyeriss accelerator
as computation plus data movement::

    E = E_comp + E_data,   E_comp = MACs x e_MAC,
    E_data = sum over data types (ifmap, weight, psum) and memory levels of
             accesses(type, level) x e(level)

with the cost of one access, relative to one MAC, of 1 for the register file (RF) in
each processing element, 2 for the array's network (passing a value between PEs), 6
for the global buffer and 200 for DRAM. A MAC is skipped, with its accesses, when its
weight or input activation is zero, and a reduced bit-width scales the energy of the
units involved. The survey (section 3.1) notes such a model fits ASICs and does not
transfer to GPUs without new fitting; hwml uses it to show that FLOPs and energy rank
layers differently.

**Access counts.** Eyeriss' row-stationary dataflow is summarised here by reuse
factors: a value fetched once from a level is used ``r`` times at the level below. With
``M'`` the MACs actually performed, every MAC reads one ifmap value, one weight and one
partial sum at the RF, so each data type has ``M'`` RF accesses; for each data type::

    array  = max(M' / r_rf,           buffer)
    buffer = max(M' / (r_rf * r_arr), dram)
    dram   = values moved to or from DRAM once

and the reuse factors follow row stationary (a PE holds one filter row and slides it
along one input row; the PEs of a set share rows diagonally and pass partial sums up):

=======  ====================================  ==========================================
type     RF reuse ``r_rf``                     array reuse ``r_arr``
=======  ====================================  ==========================================
ifmap    ``max(1, kernel_w / stride_w)``       ``max(1, kernel_h / stride_h)``
weight   ``out_w`` (row kept while sliding)    ``min(out_h, pe_cols)`` (row broadcast)
psum     ``kernel_w`` (1-D conv in one PE)     ``kernel_h`` (accumulated up the column)
=======  ====================================  ==========================================

DRAM traffic is the layer's input, weights (``params``, bias included) and output, once
each; the ``max`` terms keep every level at least as busy as the one above it. A
fully connected layer is a 1x1 convolution on a 1x1 map, so all its reuse factors are 1.
This is a deliberately simple model (no tiling limits, no buffer capacity), meant to
reproduce the *structure* of Yang et al.'s estimates, not Eyeriss' exact numbers.

**Products of activations.** ``matmul`` (a product of two activation tensors) and
``attention`` (projections plus ``Q @ K^T`` and ``A @ V``) are priced like a fully
connected layer: all reuse factors 1, DRAM traffic of their inputs (both operands of a
matmul), parameters and output once. An attention layer's ``vector_ops`` (scaling,
softmax, bias adds) cost ``e_vector`` and one RF access each, its data already on chip.
Eyeriss was designed for CNNs, so these are the model's rules applied to a
matrix-product dataflow, not energies the paper reports.

**Other kinds.** Pooling, batch norm, activations, element-wise layers, and the
``norm``, ``softmax`` and ``reduce`` layers of transformers and modern CNNs perform
``vector_ops`` operations, each costing ``e_vector`` (relative to a MAC) and one RF
access, and move their input, parameters and output once through DRAM and the buffer
(unless ``fuse_vector``: fused into the preceding layer, their data stays on chip).
Concatenation, flatten (including pure data movement such as permute or pad) and
dropout are data layout only: zero energy. Kind ``other`` has no features: ``predict``
and ``breakdown`` raise :class:`~hwml.predict.base.UnknownKindError` for it, and
``predict_network`` leaves it out (NaN, ``left_out=True``, totals over the other
layers, a warning) or, with ``strict=True``, raises (see :mod:`hwml.predict.base`).

**Sparsity and bit-width.** ``M' = MACs x (1 - weight_sparsity) x (1 - act_sparsity)``;
DRAM traffic of weights scales by ``1 - weight_sparsity`` and of input activations by
``1 - act_sparsity`` (zeros not stored or fetched); outputs are written dense. A MAC's
energy scales by ``weight_bits x act_bits / ref_bits^2`` (a multiplier's cost grows
with the product of its operand widths) and each access by the bits of its data type
over ``ref_bits``. Per-layer sparsities may be given as table columns
``weight_sparsity`` and ``act_sparsity``, overriding the constructor's values.

Units: energies in units of one ``ref_bits``-bit MAC (columns ending ``_mac``); set
``mac_energy_pj`` to also get picojoules (``energy_pj``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from hwml.describe import Network
from hwml.predict import io
from hwml.predict.base import (
    LayerBatch,
    LayerEstimator,
    NetworkPrediction,
    require_columns,
)

__all__ = ["Eyeriss", "LEVELS", "DATA_TYPES"]

#: Memory levels from the closest to the MAC to the farthest.
LEVELS: tuple[str, ...] = ("rf", "array", "buffer", "dram")
#: Data types moved by a convolution.
DATA_TYPES: tuple[str, ...] = ("ifmap", "weight", "psum")

_MAC_KINDS = ("conv2d", "linear", "matmul", "attention")
_VECTOR_KINDS = (
    "maxpool2d",
    "avgpool2d",
    "batchnorm2d",
    "activation",
    "add",
    "mul",
    "norm",
    "softmax",
    "reduce",
)
_FREE_KINDS = ("concat", "flatten", "dropout")
_KNOWN_KINDS = (*_MAC_KINDS, *_VECTOR_KINDS, *_FREE_KINDS)


@io.register
class Eyeriss(LayerEstimator):
    """Eyeriss-style per-layer energy (analytical: ``fit`` learns nothing).

    Args:
        e_mac: Energy of one MAC at ``ref_bits`` (the unit, 1.0).
        e_rf, e_array, e_buffer, e_dram: Energy of one access at each level, relative
            to a MAC (Eyeriss: 1, 2, 6, 200).
        e_vector: Energy of one element-wise operation (pooling, batch norm, ...)
            relative to a MAC.
        pe_cols: Columns of the PE array (Eyeriss: 14), bounding weight reuse.
        weight_sparsity, act_sparsity: Fractions (0..1) of zero weights and zero input
            activations.
        weight_bits, act_bits, psum_bits: Bit-widths of weights, activations and partial
            sums.
        ref_bits: Bit-width at which the costs above hold (Eyeriss: 16).
        fuse_vector: Treat element-wise kinds as fused into the layer before them: their
            operations and RF accesses count, their DRAM and buffer traffic does not.
        mac_energy_pj: Energy of one reference MAC in pJ, to report ``energy_pj`` too.
        device_check: Unused in practice (the model has no training device).
    """

    model_type: ClassVar[str] = "eyeriss"
    target: ClassVar[str] = "energy_mac"
    device_: ClassVar[str | None] = None
    dtype_: ClassVar[str | None] = None

    def __init__(
        self,
        e_mac: float = 1.0,
        e_rf: float = 1.0,
        e_array: float = 2.0,
        e_buffer: float = 6.0,
        e_dram: float = 200.0,
        e_vector: float = 1.0,
        pe_cols: int = 14,
        weight_sparsity: float = 0.0,
        act_sparsity: float = 0.0,
        weight_bits: int = 16,
        act_bits: int = 16,
        psum_bits: int = 16,
        ref_bits: int = 16,
        fuse_vector: bool = False,
        mac_energy_pj: float | None = None,
        device_check: str = "ignore",
    ) -> None:
        self.e_mac = e_mac
        self.e_rf = e_rf
        self.e_array = e_array
        self.e_buffer = e_buffer
        self.e_dram = e_dram
        self.e_vector = e_vector
        self.pe_cols = pe_cols
        self.weight_sparsity = weight_sparsity
        self.act_sparsity = act_sparsity
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        self.psum_bits = psum_bits
        self.ref_bits = ref_bits
        self.fuse_vector = fuse_vector
        self.mac_energy_pj = mac_energy_pj
        self.device_check = device_check

    def _check_fitted(self) -> None:  # analytical: always ready
        return None

    def fit(self, table: pd.DataFrame | None = None, y: Any = None, **_: Any) -> Eyeriss:
        """Nothing to learn; returns self (scikit-learn compatibility)."""
        self._check_params()
        return self

    def _check_params(self) -> None:
        for name in ("weight_sparsity", "act_sparsity"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        for name in ("weight_bits", "act_bits", "psum_bits", "ref_bits", "pe_cols"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    # ------------------------------------------------------------------ model
    def _levels(self) -> dict[str, float]:
        return {
            "rf": self.e_rf,
            "array": self.e_array,
            "buffer": self.e_buffer,
            "dram": self.e_dram,
        }

    def _compute(
        self, batch: LayerBatch, w_sparse: np.ndarray, a_sparse: np.ndarray
    ) -> dict[str, np.ndarray]:
        self._check_params()
        groups_known = self._priceable(batch)
        if not groups_known.all():
            raise self._unknown(batch, ~groups_known, self._supported())
        col = batch.column
        n = len(batch)
        dbytes = col("dtype_bytes")
        n_in = col("input_bytes") / dbytes
        n_out = col("output_bytes") / dbytes
        n_par = col("params")
        is_mac = np.isin(batch.kinds, _MAC_KINDS)
        is_vec = np.isin(batch.kinds, _VECTOR_KINDS)
        dw, da = 1.0 - w_sparse, 1.0 - a_sparse
        macs = np.where(is_mac, col("macs") * dw * da, 0.0)

        # Reuse factors (1 for linear layers, whose kernel and maps are 1x1).
        conv = batch.kinds == "conv2d"
        kh = np.where(conv, col("kernel_h"), 1.0)
        kw = np.where(conv, col("kernel_w"), 1.0)
        sh = np.where(conv, col("stride_h"), 1.0)
        sw = np.where(conv, col("stride_w"), 1.0)
        oh = np.where(conv, col("out_h"), 1.0)
        ow = np.where(conv, col("out_w"), 1.0)
        reuse = {
            "ifmap": (np.maximum(1.0, kw / sw), np.maximum(1.0, kh / sh)),
            "weight": (np.maximum(1.0, ow), np.maximum(1.0, np.minimum(oh, float(self.pe_cols)))),
            "psum": (kw, kh),
        }
        dram = {"ifmap": n_in * da, "weight": n_par * dw, "psum": n_out}
        bits = {"ifmap": self.act_bits, "weight": self.weight_bits, "psum": self.psum_bits}
        e_level = self._levels()

        out: dict[str, np.ndarray] = {"macs_effective": macs}
        access = {lvl: np.zeros(n) for lvl in LEVELS}
        energy_level = {lvl: np.zeros(n) for lvl in LEVELS}
        for t in DATA_TYPES:
            r_rf, r_arr = reuse[t]
            acc = {"dram": dram[t]}
            acc["buffer"] = np.maximum(macs / (r_rf * r_arr), acc["dram"])
            acc["array"] = np.maximum(macs / r_rf, acc["buffer"])
            acc["rf"] = np.maximum(macs, acc["array"])
            scale = bits[t] / self.ref_bits
            e_t = np.zeros(n)
            for lvl in LEVELS:
                a = np.where(is_mac, acc[lvl], 0.0)
                access[lvl] += a
                e = a * e_level[lvl] * scale
                energy_level[lvl] += e
                e_t += e
            out[f"{t}_energy_mac"] = e_t

        # Element-wise kinds: one RF access per operation, DRAM and buffer once per value;
        # an attention layer's own vector operations (softmax, ...) on on-chip data.
        vec_ops = np.where(is_vec | (batch.kinds == "attention"), col("vector_ops"), 0.0)
        moved = np.where(is_vec & (not self.fuse_vector), n_in * da + n_par + n_out, 0.0)
        a_scale = self.act_bits / self.ref_bits
        for lvl, count in (("rf", vec_ops), ("buffer", moved), ("dram", moved)):
            access[lvl] += count
            energy_level[lvl] += count * e_level[lvl] * a_scale
        mac_scale = self.weight_bits * self.act_bits / self.ref_bits**2
        comp = macs * self.e_mac * mac_scale + vec_ops * self.e_vector * a_scale
        data = sum(energy_level.values())
        for lvl in LEVELS:
            out[f"{lvl}_accesses"] = access[lvl]
        for lvl in LEVELS:
            out[f"{lvl}_energy_mac"] = energy_level[lvl]
        out["comp_energy_mac"] = comp
        out["data_energy_mac"] = data
        out["energy_mac"] = comp + data
        if self.mac_energy_pj is not None:
            out["energy_pj"] = (comp + data) * float(self.mac_energy_pj)
        return out

    def _priceable(self, batch: LayerBatch) -> np.ndarray:
        return np.isin(batch.kinds, _KNOWN_KINDS)

    def _supported(self) -> list[str]:
        return list(_KNOWN_KINDS)

    def _totals(self, out: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Sums of every component."""
        return {k: float(np.sum(v)) for k, v in out.items()}

    def _predict_batch(self, batch: LayerBatch) -> dict[str, np.ndarray]:
        n = len(batch)
        return self._compute(
            batch, np.full(n, float(self.weight_sparsity)), np.full(n, float(self.act_sparsity))
        )

    def _sparsities(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        n = len(table)
        w = (
            table["weight_sparsity"].to_numpy(dtype=float)
            if "weight_sparsity" in table.columns
            else np.full(n, float(self.weight_sparsity))
        )
        a = (
            table["act_sparsity"].to_numpy(dtype=float)
            if "act_sparsity" in table.columns
            else np.full(n, float(self.act_sparsity))
        )
        if np.any((w < 0) | (w >= 1) | (a < 0) | (a >= 1)):
            raise ValueError("weight_sparsity and act_sparsity columns must lie in [0, 1)")
        return w, a

    def breakdown(self, table: pd.DataFrame) -> pd.DataFrame:
        """Per-layer energy components of a layer table.

        Args:
            table: Layer table (columns of :meth:`Layer.to_row`), optionally with
                ``weight_sparsity`` / ``act_sparsity`` columns.

        Returns:
            One row per layer (same index): ``macs_effective``; per data type
            ``ifmap_energy_mac``, ``weight_energy_mac``, ``psum_energy_mac``; per level
            ``<level>_accesses`` and ``<level>_energy_mac`` for rf, array, buffer, dram;
            ``comp_energy_mac``, ``data_energy_mac``, ``energy_mac`` (and ``energy_pj``).
        """
        batch = LayerBatch.from_table(table)
        w, a = self._sparsities(table)
        return pd.DataFrame(self._compute(batch, w, a), index=table.index)

    def predict(self, table: pd.DataFrame, *, device: str | None = None) -> np.ndarray:
        """Total energy of every layer, in MAC units (``energy_mac``)."""
        require_columns(table, ["kind"], "predict")
        return self.breakdown(table)["energy_mac"].to_numpy()

    def predict_network(
        self, net: Network | pd.DataFrame, *, device: str | None = None, strict: bool = False
    ) -> NetworkPrediction:
        """Per-layer breakdown of a network and its totals (sums of every component).

        Layers of kind ``other`` are left out (``strict=False``, with a warning) or raise
        :class:`~hwml.predict.base.UnknownKindError` (``strict=True``); see
        :mod:`hwml.predict.base`.
        """
        if isinstance(net, pd.DataFrame):
            batch = LayerBatch.from_table(net)
            w, a = self._sparsities(net)
        else:
            batch = LayerBatch.from_layers(net.layers)
            w = np.full(len(batch), float(self.weight_sparsity))
            a = np.full(len(batch), float(self.act_sparsity))
        return self._assemble(
            batch, lambda rows: self._compute(batch.take(rows), w[rows], a[rows]), strict
        )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        return None
