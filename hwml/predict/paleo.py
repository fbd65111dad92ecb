"""Paleo: an analytical runtime model with a fitted platform percent of peak.

Qi et al. (Paleo, ICLR 2017) split a layer's time into reading its inputs, computing,
and writing its output (survey eq. 1)::

    T(u) = R(Pa(u)) + C(f, d) + W(f, d),   C = FLOPs / speed(d),   R, W = bytes / bandwidth(d)

Real kernels reach only a fraction of the device's peak, the *platform percent of peak*
(PPP). hwml takes the peak rates as measured values (``peak_flops_per_s``: a large
matrix product in the dtype of the data; ``bandwidth_bytes_per_s``: a device-to-device
copy counting bytes read plus written, as ``provenance.json`` records them) and fits the
PPP on training measurements of the same device and dtype.

Choices, all documented here so the chapter can state them:

* **Work** is ``flops + vector_ops`` from :mod:`hwml.describe` (FLOPs = 2 x MACs of
  convolutions and matrix products; the element-wise arithmetic of pooling, batch norm,
  activations, bias adds in ``vector_ops``), so kinds without FLOPs still have a
  compute term. **Bytes** are ``total_bytes``: inputs and parameters read plus the
  output written, each once (Paleo's R + W, with the weights counted in the read).
* **Combination** (``combine``): ``"sum"`` is Paleo's ``compute + transfer``;
  ``"max"`` is the roofline's ``max(compute, transfer)``, offered for comparison.
* **PPP** (``ppp``): ``"per_group"`` (default) fits one PPP per layer group
  (:data:`~hwml.predict.base.KIND_GROUPS`: conv2d, linear, pool, ...), since a GPU
  reaches very different fractions of peak on convolutions and on pooling;
  ``"global"`` fits one PPP for all kinds, as the original Paleo. With
  ``split=True`` the compute and transfer terms get separate PPPs (non-negative least
  squares; ``combine="sum"`` only).
* **Fitting criterion**: the PPP minimises the squared *relative* error of the
  training layers (so the fitted model is RMSPE-optimal within its form); with one PPP
  the solution is closed-form, ``1/PPP = sum(r) / sum(r^2)`` with ``r = ideal / measured``.
* **Trivial kinds** (flatten, dropout, and the pure data movement described under
  ``flatten``: permute, transpose, pad, ...) are predicted 0 ms.
* **Groups without training rows.** The analytical terms exist for every described
  kind (the ``norm``, ``matmul``, ``attention``, ``softmax`` and ``reduce`` layers of
  transformers and modern CNNs have FLOPs, vector operations and bytes), but a
  per-group PPP is only known where layers of the group were measured. By default such
  a layer is not priced: ``predict`` raises :class:`~hwml.predict.base.UnknownKindError`,
  and ``predict_network`` leaves it out (NaN, ``left_out=True``, totals over the priced
  layers, a warning) or, with ``strict=True``, raises. With ``unfitted_ppp`` set, it is
  priced at that assumed PPP instead, which is an unfitted default, not a fit: the
  layer is flagged ``fallback=True`` in network predictions. With ``ppp="global"``,
  the one fitted PPP prices every kind that has a group, as in the original Paleo.
  Kind ``other`` has no FLOPs or bytes and is never priced.

Units: runtime in ms; rates in FLOP/s and byte/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from hwml.predict import io
from hwml.predict.base import (
    LAYER_COLUMNS,
    TRIVIAL_GROUP,
    LayerBatch,
    LayerEstimator,
    PredictorError,
    TooFewRowsError,
    require_columns,
    usable_rows,
)

__all__ = ["Paleo"]


@io.register
class Paleo(LayerEstimator):
    """Paleo's analytical layer runtime model with fitted PPP.

    Args:
        peak_flops_per_s: Measured peak arithmetic rate of the device in the data's dtype
            (FLOP/s).
        bandwidth_bytes_per_s: Measured device memory bandwidth (byte/s).
        ppp: ``"per_group"`` or ``"global"`` (see the module docstring).
        split: Separate PPPs for compute and transfer.
        combine: ``"sum"`` (Paleo) or ``"max"`` (roofline).
        target: Runtime column, in ms.
        kind_groups: Overrides of :data:`~hwml.predict.base.KIND_GROUPS`.
        device_check: ``"warn"``, ``"error"`` or ``"ignore"`` on a device/dtype mismatch.
        unfitted_ppp: PPP (fraction of peak, in (0, 1]) assumed for groups without
            training rows (``ppp="per_group"``), or None (default) to leave their layers
            unpriced; see the module docstring.

    Attributes:
        inv_ppp_: Group (or ``"all"``) -> ``(1/PPP_compute, 1/PPP_transfer)``; the two are
            equal unless ``split``. Stored inverted because a term the fit drops has
            ``1/PPP = 0`` (infinite PPP).
        n_train_: Group -> usable training rows.
    """

    model_type: ClassVar[str] = "paleo"
    _fitted_attr: ClassVar[str] = "inv_ppp_"

    def __init__(
        self,
        peak_flops_per_s: float = 1e12,
        bandwidth_bytes_per_s: float = 1e11,
        ppp: str = "per_group",
        split: bool = False,
        combine: str = "sum",
        target: str = "runtime_ms",
        kind_groups: Mapping[str, str] | None = None,
        device_check: str = "warn",
        unfitted_ppp: float | None = None,
    ) -> None:
        self.peak_flops_per_s = peak_flops_per_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.ppp = ppp
        self.split = split
        self.combine = combine
        self.target = target
        self.kind_groups = kind_groups
        self.device_check = device_check
        self.unfitted_ppp = unfitted_ppp

    @classmethod
    def from_provenance(
        cls, provenance: Mapping[str, Any], dtype: str = "float32", **kwargs: Any
    ) -> Paleo:
        """A Paleo model using a dataset's measured peaks.

        Args:
            provenance: The dataset's ``provenance.json`` contents
                (``peak_flops_per_s`` by dtype, ``copy_bandwidth_bytes_per_s``).
            dtype: Which peak to use.
            **kwargs: Other constructor arguments.

        Raises:
            KeyError: naming the missing provenance entry.
        """
        peaks = provenance.get("peak_flops_per_s")
        if not isinstance(peaks, Mapping) or dtype not in peaks:
            have = list(peaks) if isinstance(peaks, Mapping) else peaks
            raise KeyError(f"provenance has no peak_flops_per_s for dtype {dtype!r} (has {have})")
        if "copy_bandwidth_bytes_per_s" not in provenance:
            raise KeyError("provenance has no copy_bandwidth_bytes_per_s")
        return cls(
            peak_flops_per_s=float(peaks[dtype]),
            bandwidth_bytes_per_s=float(provenance["copy_bandwidth_bytes_per_s"]),
            **kwargs,
        )

    # ------------------------------------------------------------------ terms
    def _check_params(self) -> None:
        self._check_device_check()
        if not (self.peak_flops_per_s > 0 and self.bandwidth_bytes_per_s > 0):
            raise ValueError("peak_flops_per_s and bandwidth_bytes_per_s must be positive")
        if self.ppp not in ("per_group", "global"):
            raise ValueError(f"ppp must be 'per_group' or 'global', got {self.ppp!r}")
        if self.combine not in ("sum", "max"):
            raise ValueError(f"combine must be 'sum' or 'max', got {self.combine!r}")
        if self.unfitted_ppp is not None and not 0 < self.unfitted_ppp <= 1:
            raise ValueError(f"unfitted_ppp must lie in (0, 1], got {self.unfitted_ppp!r}")
        if self.split and self.combine != "sum":
            raise ValueError(
                "split=True needs combine='sum' (a max of two scaled terms is not linear)"
            )

    def ideal_times(self, batch: LayerBatch) -> tuple[np.ndarray, np.ndarray]:
        """Compute and transfer time at 100% of peak, in ms.

        Returns:
            ``(compute_ms, transfer_ms)``, each of shape ``(n,)``.
        """
        work = batch.column("flops") + batch.column("vector_ops")
        compute = 1e3 * work / float(self.peak_flops_per_s)
        transfer = 1e3 * batch.column("total_bytes") / float(self.bandwidth_bytes_per_s)
        return compute, transfer

    def _key(self, groups: np.ndarray) -> np.ndarray:
        return np.full(len(groups), "all", dtype=object) if self.ppp == "global" else groups

    # ------------------------------------------------------------------ fit
    def fit(self, table: pd.DataFrame, y: Any = None, *, device: str | None = None) -> Paleo:
        """Fit the PPP(s) on measured layer runtimes.

        Args:
            table: Measured layer table (columns of :meth:`Layer.to_row` and ``target``).
            y: Ignored (the target is the ``target`` column).
            device: GPU name of the measurements (default: the ``gpu_name`` column).

        Returns:
            self.

        Raises:
            MissingColumnsError, TooFewRowsError, PredictorError.
        """
        self._check_params()
        require_columns(table, ("kind", *LAYER_COLUMNS, self.target), "fit")
        rows, _ = usable_rows(table, self.target)
        self._remember_data(rows, device)
        batch = LayerBatch.from_table(rows, "fit")
        y_ms = rows[self.target].to_numpy(dtype=float)
        groups = self._group_of(batch.kinds)
        if np.any(groups == ""):
            bad = sorted(set(batch.kinds[groups == ""]))
            raise PredictorError(f"fit: layer kind(s) {bad} cannot be modelled; drop those rows")
        modelled = groups != TRIVIAL_GROUP
        if np.any(y_ms[modelled] <= 0):
            raise PredictorError(f"fit: {self.target} must be positive")
        if not modelled.any():
            raise TooFewRowsError("fit: no usable rows of a modelled kind")
        compute, transfer = self.ideal_times(batch)
        keys = self._key(groups)
        inv: dict[str, tuple[float, float]] = {}
        counts: dict[str, int] = {}
        for key in sorted(set(keys[modelled])):
            m = (keys == key) & modelled
            inv[key] = self._fit_scale(compute[m], transfer[m], y_ms[m], key)
            counts[key] = int(m.sum())
        self.inv_ppp_ = inv
        self.n_train_ = counts
        return self

    def _fit_scale(
        self, compute: np.ndarray, transfer: np.ndarray, y: np.ndarray, key: str
    ) -> tuple[float, float]:
        if self.split:
            a = np.column_stack([compute / y, transfer / y])
            sol, _ = nnls(a, np.ones(len(y)))
            if not np.any(sol > 0):
                raise PredictorError(f"fit: group {key!r}: no positive PPP fits")
            return float(sol[0]), float(sol[1])
        ideal = compute + transfer if self.combine == "sum" else np.maximum(compute, transfer)
        r = ideal / y
        if not np.any(r > 0):
            raise PredictorError(f"fit: group {key!r} has no work and no bytes to fit a PPP on")
        c = float(r.sum() / (r @ r))
        return c, c

    # ------------------------------------------------------------------ predict
    def _fitted_mask(self, groups: np.ndarray) -> np.ndarray:
        """Layers with a fitted PPP (trivial ones not included)."""
        return (
            np.isin(self._key(groups), list(self.inv_ppp_))
            & (groups != "")
            & (groups != TRIVIAL_GROUP)
        )

    def _priceable(self, batch: LayerBatch) -> np.ndarray:
        groups = self._group_of(batch.kinds)
        if self.unfitted_ppp is not None:
            return groups != ""
        return self._fitted_mask(groups) | (groups == TRIVIAL_GROUP)

    def _supported(self) -> list[str]:
        fitted = sorted({*self.inv_ppp_, TRIVIAL_GROUP})
        if self.unfitted_ppp is not None:
            fitted.append(f"any other group at the unfitted PPP {self.unfitted_ppp:g}")
        return fitted

    def _predict_batch(self, batch: LayerBatch) -> dict[str, np.ndarray]:
        unknown = ~self._priceable(batch)
        if unknown.any():
            raise self._unknown(batch, unknown, self._supported())
        groups = self._group_of(batch.kinds)
        keys = self._key(groups)
        trivial = groups == TRIVIAL_GROUP
        fitted = self._fitted_mask(groups)
        default = ~fitted & ~trivial  # priced at unfitted_ppp (empty when it is None)
        compute, transfer = self.ideal_times(batch)
        c_comp = np.zeros(len(batch))
        c_io = np.zeros(len(batch))
        for key, (a, b) in self.inv_ppp_.items():
            m = (keys == key) & fitted
            c_comp[m], c_io[m] = a, b
        if default.any():
            c_comp[default] = c_io[default] = 1.0 / float(self.unfitted_ppp)
        if self.combine == "sum":
            out = c_comp * compute + c_io * transfer
        else:
            out = c_comp * np.maximum(compute, transfer)
        out[trivial] = 0.0
        return {self.target: out, "fallback": default}

    # ------------------------------------------------------------------ reporting
    @property
    def ppp_(self) -> pd.DataFrame:
        """Fitted PPP per group: ``ppp_compute`` and ``ppp_transfer`` (fractions of peak;
        infinite where the fit dropped the term), and training rows."""
        self._check_fitted()
        rows = []
        for key, (a, b) in sorted(self.inv_ppp_.items()):
            rows.append(
                {
                    "group": key,
                    "ppp_compute": np.inf if a == 0 else 1.0 / a,
                    "ppp_transfer": np.inf if b == 0 else 1.0 / b,
                    "n_train": self.n_train_.get(key, 0),
                }
            )
        return pd.DataFrame(rows)

    def _get_state(self) -> dict[str, Any]:
        return {"inv_ppp": {k: list(v) for k, v in self.inv_ppp_.items()}, "n_train": self.n_train_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.inv_ppp_ = {k: (float(v[0]), float(v[1])) for k, v in state["inv_ppp"].items()}
        self.n_train_ = {k: int(v) for k, v in state["n_train"].items()}
