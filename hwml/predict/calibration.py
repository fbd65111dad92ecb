"""Network-level correction of summed layer predictions, for any layer model.

Layers timed one at a time do not add up to the whole network (launch overheads overlap,
caches stay warm, long networks meet the power limit). :class:`NetworkCalibration` learns
that gap from whole-network measurements of the training networks, on top of any fitted
layer model (:class:`~hwml.predict.Paleo`, :class:`~hwml.predict.NeuralPower`, ...).
It is also importable from :mod:`hwml.predict.neuralpower`, where it used to live.

A calibration is fitted and evaluated only on networks whose every layer the layer model
prices: a network with a layer it cannot price (see :mod:`hwml.predict.base`) raises
:class:`~hwml.predict.base.UnknownKindError` in :meth:`NetworkCalibration.fit`,
:meth:`~NetworkCalibration.predict` and :meth:`~NetworkCalibration.leave_one_network_out`,
since a correction learnt from partial sums would silently absorb the missing layers.
:meth:`NetworkCalibration.predict_network` follows the layer model: by default it leaves
such layers out (and says so), with ``strict=True`` it raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from hwml.describe import Network
from hwml.predict import io
from hwml.predict.base import (
    DTYPE_BYTES,
    TRIVIAL_GROUP,
    Estimator,
    LayerEstimator,
    NetworkPrediction,
    PredictorError,
    TooFewRowsError,
    require_columns,
    usable_rows,
)

__all__ = ["NetworkBuilder", "NetworkCalibration", "zoo_builder"]


NetworkBuilder = Callable[[str, int, int], Network]
"""Builds the description of network ``name`` at ``batch`` with ``dtype_bytes``."""


def zoo_builder(name: str, batch: int, dtype_bytes: int) -> Network:
    """The zoo's description of network ``name`` (the default :data:`NetworkBuilder`)."""
    from hwml import zoo

    return zoo.describe_net(name, batch, dtype_bytes=dtype_bytes, weights=False)


@io.register
class NetworkCalibration(Estimator):
    """Network-level correction of summed layer predictions.

    Layers timed one at a time do not add up to the whole network: inside a network,
    kernel launches overlap the work of the kernels before them and caches stay warm, so
    each layer's fixed overhead partly disappears, while a long network at high power may
    be slowed by the power limit that a short layer measurement never reaches (on the
    H200 of hwml's dataset the in-place sum is 41% below to 82% above the network). The
    survey does not quantify this gap. This estimator learns the correction
    from whole-network measurements of the *training* networks, on top of a fitted
    layer model (Paleo or NeuralPower). With ``S`` the summed layer predictions and
    ``n`` the number of layers that launch work (trivial kinds not counted):

    * ``mode="global"``: ``T = s * S`` (one scale).
    * ``mode="overhead"``: ``T = s * S + o * n``; ``o`` (ms per layer, usually negative)
      is the per-layer overhead that overlaps inside a network.
    * ``mode="affine"``: ``T = a + s * S`` (``a`` a per-network overhead in ms).
    * ``mode="per_group"``: ``T = sum_g s_g * S_g`` (a scale per layer group), pulled
      towards the global scale with strength ``ridge``: without the pull, ten networks
      cannot pin down eight scales.

    Every mode minimises the squared *relative* error over the training networks; the
    scales and ``a`` are non-negative, ``o`` may take either sign. Use
    :meth:`leave_one_network_out` for an honest estimate: each network is predicted by
    a calibration fitted without any row of that network (all its batch sizes).

    Args:
        layer_model: A fitted layer model whose ``predict_network`` gives ``target``.
        mode: ``"global"``, ``"overhead"``, ``"affine"`` or ``"per_group"``.
        ridge: Strength of the pull towards the global scale (``per_group`` only).
        target: Network column to calibrate: ``runtime_ms`` (default), or any other
            additive per-layer column of the layer model's predictions, e.g. ``energy_mj``
            of :class:`NeuralPower` (summed layer energies scaled to whole networks).
        device_check: As for every estimator.

    Attributes:
        coef_: Term -> fitted coefficient. Terms: ``"sum"`` (the scale ``s``),
            ``"layers"`` (``o``, ms per layer), ``"offset"`` (``a``, ms), or group names.
        scale_: ``s`` (global, overhead, affine), or group -> scale (per_group).
    """

    model_type: ClassVar[str] = "network_calibration"
    _fitted_attr: ClassVar[str] = "coef_"
    _MODES: ClassVar[tuple[str, ...]] = ("global", "overhead", "affine", "per_group")

    def __init__(
        self,
        layer_model: LayerEstimator | None = None,
        mode: str = "global",
        ridge: float = 0.1,
        target: str = "runtime_ms",
        device_check: str = "warn",
    ) -> None:
        self.layer_model = layer_model
        self.mode = mode
        self.ridge = ridge
        self.target = target
        self.device_check = device_check

    # ------------------------------------------------------------------ features
    def _sums(self, pred: NetworkPrediction) -> dict[str, float]:
        layers = pred.layers
        col = self.target if self.target in layers.columns else self.layer_model._output_name()
        sums = {str(g): float(v) for g, v in layers.groupby("group")[col].sum().items()}
        sums["sum"] = float(layers[col].sum())
        priced = ~layers["left_out"] if "left_out" in layers.columns else True
        sums["layers"] = float(((layers["group"] != TRIVIAL_GROUP) & priced).sum())
        sums["offset"] = 1.0
        return sums

    def _layer_sums(self, nets: pd.DataFrame, build: NetworkBuilder | None) -> pd.DataFrame:
        """Per network row: summed layer predictions (total ``sum`` and per group),
        number of working ``layers``, and a constant ``offset`` column."""
        if self.layer_model is None:
            raise PredictorError("NetworkCalibration needs a fitted layer_model")
        require_columns(nets, ["network", "batch"], "NetworkCalibration")
        build = build or zoo_builder
        cache: dict[tuple[str, int, int], dict[str, float]] = {}
        rows = []
        for _, row in nets.iterrows():
            dtype_bytes = DTYPE_BYTES.get(str(row.get("dtype", "float32")), 4)
            key = (str(row["network"]), int(row["batch"]), dtype_bytes)
            if key not in cache:
                pred = self.layer_model.predict_network(build(*key), strict=True)
                cache[key] = self._sums(pred)
            rows.append(cache[key])
        return pd.DataFrame(rows, index=nets.index).fillna(0.0)

    def _terms(self, sums: pd.DataFrame) -> list[str]:
        if self.mode not in self._MODES:
            raise ValueError(f"mode must be one of {self._MODES}, got {self.mode!r}")
        if self.mode == "global":
            return ["sum"]
        if self.mode == "overhead":
            return ["sum", "layers"]
        if self.mode == "affine":
            return ["offset", "sum"]
        return sorted(c for c in sums.columns if c not in ("sum", "layers", "offset"))

    def _solve(self, x: np.ndarray, y: np.ndarray, terms: list[str]) -> np.ndarray:
        """Least squared relative error; non-negative except the per-layer term."""
        a = x / y[:, None]
        b = np.ones(len(y))
        if self.mode == "overhead":
            sol, *_ = np.linalg.lstsq(a, b, rcond=None)
            return sol
        if self.mode == "per_group" and self.ridge > 0:
            r = x.sum(axis=1) / y
            s0 = float(r.sum() / (r @ r))
            lam = math.sqrt(float(self.ridge) * len(y))
            a = np.vstack([a, lam * np.eye(len(terms))])
            b = np.concatenate([b, np.full(len(terms), lam * s0)])
        sol, _ = nnls(a, b)
        return sol

    def _apply(self, sums: pd.DataFrame) -> np.ndarray:
        if self.mode == "per_group":
            extra = [
                g
                for g in sums.columns
                if g not in ("sum", "layers", "offset")
                and g not in self.coef_
                and np.any(sums[g] != 0)
            ]
            if extra:
                raise PredictorError(
                    f"NetworkCalibration: group(s) {extra} had no layers in the training networks, "
                    "so they have no scale; use another mode"
                )
        x = np.column_stack(
            [sums[t].to_numpy() if t in sums.columns else np.zeros(len(sums)) for t in self.coef_]
        )
        return x @ np.array(list(self.coef_.values()))

    def _set_coef(self, terms: list[str], sol: np.ndarray) -> None:
        self.coef_ = {t: float(v) for t, v in zip(terms, sol, strict=True)}
        self.scale_ = dict(self.coef_) if self.mode == "per_group" else self.coef_["sum"]

    # ------------------------------------------------------------------ API
    def fit(
        self,
        nets: pd.DataFrame,
        y: Any = None,
        *,
        build: NetworkBuilder | None = None,
        device: str | None = None,
    ) -> NetworkCalibration:
        """Fit the correction on measured whole networks.

        Args:
            nets: Network table: ``network``, ``batch``, the target and optionally
                ``dtype`` and ``status``.
            y: Ignored.
            build: ``(name, batch, dtype_bytes) -> Network``; default: the zoo.
            device: GPU name of the measurements (default: the layer model's).

        Returns:
            self.
        """
        self._check_device_check()
        require_columns(nets, ["network", "batch", self.target], "NetworkCalibration.fit")
        rows, _ = usable_rows(nets, self.target)
        if len(rows) < 2:
            raise TooFewRowsError("NetworkCalibration.fit: needs at least two usable network rows")
        y_true = rows[self.target].to_numpy(dtype=float)
        if np.any(y_true <= 0):
            raise PredictorError(f"NetworkCalibration.fit: {self.target} must be positive")
        self._remember_data(rows, device or getattr(self.layer_model, "device_", None))
        sums = self._layer_sums(rows, build)
        terms = self._terms(sums)
        self._set_coef(terms, self._solve(sums[terms].to_numpy(), y_true, terms))
        return self

    def predict(
        self, nets: pd.DataFrame, *, build: NetworkBuilder | None = None, device: str | None = None
    ) -> np.ndarray:
        """Calibrated predictions for the rows of a network table (``network``, ``batch``).

        Returns:
            Shape ``(n,)``, in the unit of ``target``.
        """
        self._check_fitted()
        self.check_device(device)
        return self._apply(self._layer_sums(nets, build))

    def predict_network(
        self, net: Network, *, device: str | None = None, strict: bool = False
    ) -> NetworkPrediction:
        """The layer model's per-layer prediction with raw and calibrated totals.

        ``totals`` holds ``<target>`` (calibrated) and ``<target>_raw`` (the plain sum).
        Layers the layer model cannot price are left out of both (``left_out_layers``
        counts them, with a warning), or raise with ``strict=True``.
        """
        self._check_fitted()
        self.check_device(device)
        pred = self.layer_model.predict_network(net, strict=strict)
        sums = self._sums(pred)
        totals = dict(pred.totals)
        totals[f"{self.target}_raw"] = sums["sum"]
        totals[self.target] = float(self._apply(pd.DataFrame([sums]).fillna(0.0))[0])
        return NetworkPrediction(pred.layers, totals, pred.left_out)

    def leave_one_network_out(
        self, nets: pd.DataFrame, *, build: NetworkBuilder | None = None
    ) -> pd.DataFrame:
        """Honest evaluation: each network predicted by a calibration fitted without it.

        Args:
            nets: Network table as for :meth:`fit`.
            build: As for :meth:`fit`.

        Returns:
            One row per usable network row: ``network``, ``batch``, ``actual``, ``raw``
            (summed layers), ``calibrated`` (held out), ``raw_err_pct`` and
            ``calibrated_err_pct`` (signed, 100 x (predicted - actual) / actual).
        """
        require_columns(nets, ["network", "batch", self.target], "leave_one_network_out")
        rows, _ = usable_rows(nets, self.target)
        names = sorted(set(rows["network"].astype(str)))
        if len(names) < 2:
            raise TooFewRowsError("leave_one_network_out needs rows of at least two networks")
        sums = self._layer_sums(rows, build)
        y_true = rows[self.target].to_numpy(dtype=float)
        out = []
        for name in names:
            test = (rows["network"].astype(str) == name).to_numpy()
            train = sums.loc[~test]
            terms = self._terms(train)
            held = NetworkCalibration(
                self.layer_model, self.mode, self.ridge, self.target, "ignore"
            )
            held._set_coef(terms, self._solve(train[terms].to_numpy(), y_true[~test], terms))
            pred = held._apply(sums.loc[test])
            raw = sums.loc[test, "sum"].to_numpy()
            for b, a, r, p in zip(rows.loc[test, "batch"], y_true[test], raw, pred, strict=True):
                out.append(
                    {
                        "network": name,
                        "batch": int(b),
                        "actual": a,
                        "raw": r,
                        "calibrated": p,
                        "raw_err_pct": 100 * (r - a) / a,
                        "calibrated_err_pct": 100 * (p - a) / a,
                    }
                )
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {"layer_model": io.to_document(self.layer_model), "coef": self.coef_}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.layer_model = io.from_document(state["layer_model"])
        coef = state["coef"]
        self._set_coef(list(coef), np.array(list(coef.values()), dtype=float))
