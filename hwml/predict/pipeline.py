"""Whole-network runtime and energy from two resources: the host that issues kernels and
the GPU that runs them (:class:`PipelineModel`).

An eager PyTorch forward pass is a pipeline. The host walks the network and launches one
or more kernels per layer (a few microseconds each); the GPU runs them in order. At small
batch the GPU finishes each kernel before the next one arrives and the network takes
about as long as the host needs to issue it; at large batch the host runs ahead and the
network takes as long as the GPU needs. A sum of isolated layer times models neither.

The model has three parts, each fitted on measured networks (``nets.csv``):

* **host**: issue time = sum over layer groups of (layers in the group) x (issue cost of
  the group), fitted with non-negative least squares on the eager time of the networks
  that are clearly host-bound (GPU time under half the eager time; their steady-state
  eager time *is* the host's). The one-shot ``host_dispatch_ms`` (one forward into an
  empty queue) is the fallback when too few networks are host-bound; it is noisier (a
  cold first call, page faults).
* **device**: GPU time = sum over layer groups of a x (FLOPs / measured matrix rate) +
  b x (bytes / measured copy bandwidth) + c x (layers), with a, b, c >= 0 per group
  (a roofline whose efficiencies are learned), fitted on ``runtime_graph_ms`` (the
  network replayed from a CUDA graph, so the host plays no part), per dtype;
* **pipeline**: eager time = max(host, device) + overlap x min(host, device), with
  ``overlap`` in [0, 1] fitted on ``runtime_ms`` (0: perfect overlap, 1: none).

Power follows from how busy the GPU is: eager power = idle + (busy power - idle) x
device / eager, where busy power is fitted per dtype on the CUDA-graph windows (always
busy) as a linear function of the FLOP share of the device time and of the log of the
network's roofline time; energy = power x time.

Features come from :func:`network_features` (a :class:`~hwml.describe.Network`, so any
network :func:`hwml.describe.describe` handles) and prediction is a few dot products, so
pricing thousands of candidate networks is cheap (:meth:`PipelineModel.predict`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from hwml.describe import Network
from hwml.predict.base import DTYPE_BYTES, KIND_GROUPS, TRIVIAL_GROUP, PredictorError

__all__ = [
    "FEATURE_COLUMNS",
    "GROUPS",
    "SUM_COLUMNS",
    "PipelineModel",
    "FORMAT",
    "ceilings_of",
    "idle_power",
    "signed_errors",
    "held_out_errors",
    "leave_out",
    "measured_features",
    "network_features",
    "feature_sums",
    "finish_features",
]

#: Layer groups the model prices, in a fixed order: the layer models' groups
#: (:data:`~hwml.predict.base.KIND_GROUPS`; ``trivial`` launches no kernel on the GPU but
#: still costs the host a Python call), with Swin's shifted-window attention apart from
#: the other attention layers (one traced call that issues dozens of kernels, where
#: ``nn.MultiheadAttention`` in inference issues a few fused ones).
GROUPS: tuple[str, ...] = (*dict.fromkeys(KIND_GROUPS.values()), "window_attention")


def _group(layer: Any) -> str:
    """The pipeline model's group of a layer (see :data:`GROUPS`)."""
    if layer.kind == "attention" and "window" in layer.op:
        return "window_attention"
    return KIND_GROUPS[layer.kind]


#: Columns :func:`network_features` returns, beside the identifying ones.
FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"n_{g}" for g in GROUPS),
    *(f"flop_ms_{g}" for g in GROUPS),
    *(f"byte_ms_{g}" for g in GROUPS),
    "flops",
    "total_bytes",
    "roof_ms",
    "flop_share",
)

FORMAT = "hwml.pipeline/1"


def _peak(provenance: Mapping[str, Any], dtype: str) -> tuple[float, float]:
    """The measured matrix rate (FLOP/s) of ``dtype`` and copy bandwidth (B/s)."""
    peaks = provenance.get("peak_flops_per_s") or {}
    bandwidth = provenance.get("copy_bandwidth_bytes_per_s")
    if dtype not in peaks or not bandwidth:
        raise PredictorError(
            f"the dataset's provenance lacks the measured ceilings for {dtype!r} "
            f"(peak_flops_per_s has {sorted(peaks)}; run `hwml profile calibrate`)"
        )
    return float(peaks[dtype]), float(bandwidth)


def network_features(net: Network, dtype: str, ceilings: tuple[float, float]) -> dict[str, float]:
    """The per-group features of one described network.

    Args:
        net: The network at the batch size to price (its layers' ``dtype_bytes`` are
            replaced by the size of ``dtype``).
        dtype: ``float32``, ``float16``, ``bfloat16``...
        ceilings: (matrix rate in FLOP/s, copy bandwidth in B/s) of the device for ``dtype``.

    Returns:
        ``n_<group>`` (layers), ``flop_ms_<group>`` and ``byte_ms_<group>`` (sums over
        the group's layers of FLOPs / rate and bytes / bandwidth, in ms), network
        ``flops``, ``total_bytes``, ``roof_ms`` (sum over layers of the larger of the two
        times) and ``flop_share`` (the part of ``roof_ms`` that is FLOP-bound).

    Raises:
        PredictorError: for a layer of kind ``other`` (nothing to price it by).
    """
    unpriced = [layer.name for layer in net.layers if layer.kind not in KIND_GROUPS]
    if unpriced:
        raise PredictorError(
            f"{net.name}: {len(unpriced)} layer(s) of kind 'other' cannot be priced "
            f"({', '.join(unpriced[:5])}{'...' if len(unpriced) > 5 else ''})"
        )
    return finish_features(feature_sums(net.layers, dtype, ceilings))


#: The additive sums :func:`feature_sums` returns: :data:`FEATURE_COLUMNS` without
#: ``flop_share``, plus ``compute_ms`` (the FLOP-bound part of ``roof_ms``).
SUM_COLUMNS: tuple[str, ...] = (
    *(c for c in FEATURE_COLUMNS if c != "flop_share"),
    "compute_ms",
)


def feature_sums(
    layers: Iterable[Any], dtype: str, ceilings: tuple[float, float]
) -> dict[str, float]:
    """The additive part of :func:`network_features` over some layers.

    Every value is a sum over layers, so the sums of parts of a network (its blocks, say)
    add up to the sums of the network: a search that prices many networks built from the
    same blocks computes each block once and adds (:func:`finish_features` then gives the
    features). Layers of kind ``other`` are skipped (:func:`network_features` refuses them).

    Args:
        layers: :class:`~hwml.describe.Layer` objects.
        dtype: ``float32``, ``float16``, ``bfloat16``...
        ceilings: (matrix rate in FLOP/s, copy bandwidth in B/s) for ``dtype``.

    Returns:
        One value per name of :data:`SUM_COLUMNS`.
    """
    rate, bandwidth = ceilings
    db = DTYPE_BYTES.get(dtype)
    if db is None:
        raise PredictorError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
    feats = dict.fromkeys(SUM_COLUMNS, 0.0)
    for layer in layers:
        if layer.kind not in KIND_GROUPS:
            continue
        group = _group(layer)
        flops = layer.flops
        # every byte count is elements x bytes per element: rescale instead of rebuilding
        total_bytes = layer.total_bytes * db / layer.dtype_bytes
        flops_ms = 1e3 * flops / rate
        bytes_ms = 1e3 * total_bytes / bandwidth
        feats[f"n_{group}"] += 1
        if group != TRIVIAL_GROUP:
            feats[f"flop_ms_{group}"] += flops_ms
            feats[f"byte_ms_{group}"] += bytes_ms
            feats["roof_ms"] += max(flops_ms, bytes_ms)
            feats["compute_ms"] += flops_ms if flops_ms > bytes_ms else 0.0
        feats["flops"] += flops
        feats["total_bytes"] += total_bytes
    return feats


def finish_features(sums: Mapping[str, float]) -> dict[str, float]:
    """:func:`network_features` from the sums of :func:`feature_sums` (of one network)."""
    feats = {c: float(sums[c]) for c in FEATURE_COLUMNS if c != "flop_share"}
    roof = float(sums["roof_ms"])
    feats["flop_share"] = float(sums["compute_ms"]) / roof if roof else 0.0
    return {c: feats[c] for c in FEATURE_COLUMNS}


@dataclass
class PipelineModel:
    """Host + device pipeline model of whole-network runtime, power and energy.

    See the module docstring for the three parts. Fit with :meth:`fit` on a table with one
    row per measured (network, batch, dtype) holding :data:`FEATURE_COLUMNS` and the
    measured columns; predict with :meth:`predict` on a table of features.

    Attributes:
        host_cost_ms: Issue cost per layer of each group (ms).
        host_base_ms: Fixed host time per forward (ms).
        device_scale: Per dtype, ``{"flop": {group: a}, "byte": {group: b}}``: the scales
            of each group's FLOP time and byte time.
        device_fixed_ms: Per dtype, the fixed GPU time per layer of each group (ms).
        overlap: Fraction of the shorter resource's time that does not overlap.
        idle_w: Idle power (W).
        busy_w: Per dtype, the coefficients of the busy power (W) on
            :func:`_power_terms` (1, FLOP share, log10 roofline ms).
        held_out_error_pct: ``{"runtime": {batch: %}, "energy": {batch: %}}``: the mean
            absolute error on networks left out of the fit (:func:`leave_out`), stated
            with each prediction.
        ceilings: Per dtype, the device's measured (matrix rate, copy bandwidth).
        device: The GPU the model was fitted on.
    """

    host_cost_ms: dict[str, float] = field(default_factory=dict)
    host_base_ms: float = 0.0
    device_scale: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    device_fixed_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    overlap: float = 0.0
    idle_w: float = 0.0
    busy_w: dict[str, tuple[float, float]] = field(default_factory=dict)
    held_out_error_pct: dict[str, dict[str, float]] = field(default_factory=dict)
    ceilings: dict[str, tuple[float, float]] = field(default_factory=dict)
    device: str = ""

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        table: pd.DataFrame,
        *,
        idle_w: float,
        ceilings: Mapping[str, tuple[float, float]] | None = None,
        device: str = "",
    ) -> PipelineModel:
        """Fit the host, device, pipeline and power parts on measured networks.

        Args:
            table: One row per (network, batch, dtype): :data:`FEATURE_COLUMNS`,
                ``dtype``, ``host_dispatch_ms``, ``runtime_graph_ms``, ``runtime_ms`` and
                (for power) ``power_w`` (graph windows) and ``eager_power_w``.
            idle_w: The GPU's idle power (W), from the dataset's provenance.
            ceilings: Per dtype, the (matrix rate, copy bandwidth) the features were
                computed with (kept so that :meth:`predict_network` computes the same).
            device: The GPU's name.

        Returns:
            ``self``.
        """
        _require(
            table, (*FEATURE_COLUMNS, "dtype", "host_dispatch_ms", "runtime_graph_ms", "runtime_ms")
        )
        if len(table) < len(GROUPS):
            raise PredictorError(f"{len(table)} measured networks are too few to fit on")
        self.idle_w = float(idle_w)
        self.ceilings = {k: (float(v[0]), float(v[1])) for k, v in (ceilings or {}).items()}
        self.device = device
        self._fit_host(table)
        for dtype, rows in table.groupby("dtype"):
            self._fit_device(str(dtype), rows)
        self._fit_overlap(table)
        if {"power_w", "eager_power_w"} <= set(table.columns):
            for dtype, rows in table.groupby("dtype"):
                self._fit_power(str(dtype), rows)
        return self

    def _fit_host(self, table: pd.DataFrame) -> None:
        bound = table[table["runtime_graph_ms"] < 0.5 * table["runtime_ms"]]
        if len(bound) >= 2 * len(GROUPS):
            rows, target = bound, "runtime_ms"
        else:
            rows, target = table.dropna(subset=["host_dispatch_ms"]), "host_dispatch_ms"
        x = np.column_stack([rows[f"n_{g}"] for g in GROUPS] + [np.ones(len(rows))])
        coef = _nnls_relative(x, rows[target].to_numpy())
        self.host_cost_ms = {g: float(c) for g, c in zip(GROUPS, coef[:-1], strict=True)}
        self.host_base_ms = float(coef[-1])

    def _fit_device(self, dtype: str, rows: pd.DataFrame) -> None:
        rows = rows.dropna(subset=["runtime_graph_ms"])
        if rows.empty:
            return
        priced = [g for g in GROUPS if g != TRIVIAL_GROUP]
        cols = [rows[f"{f}_{g}"] for f in ("flop_ms", "byte_ms", "n") for g in priced]
        coef = _nnls_relative(np.column_stack(cols), rows["runtime_graph_ms"].to_numpy())
        k = len(priced)
        self.device_scale[dtype] = {
            "flop": dict(zip(priced, map(float, coef[:k]), strict=True)),
            "byte": dict(zip(priced, map(float, coef[k : 2 * k]), strict=True)),
        }
        self.device_fixed_ms[dtype] = dict(zip(priced, map(float, coef[2 * k :]), strict=True))

    def _fit_overlap(self, table: pd.DataFrame) -> None:
        rows = table.dropna(subset=["runtime_ms", "host_dispatch_ms", "runtime_graph_ms"])
        host, device = rows["host_dispatch_ms"].to_numpy(), rows["runtime_graph_ms"].to_numpy()
        grid = np.linspace(0, 1, 101)
        y = rows["runtime_ms"].to_numpy()
        errors = [
            np.mean(np.abs(np.maximum(host, device) + a * np.minimum(host, device) - y) / y)
            for a in grid
        ]
        self.overlap = float(grid[int(np.argmin(errors))])

    def _fit_power(self, dtype: str, rows: pd.DataFrame) -> None:
        rows = rows.dropna(subset=["power_w"])
        if len(rows) < 4:
            return
        coef, *_ = np.linalg.lstsq(_power_terms(rows), rows["power_w"].to_numpy(float), rcond=None)
        self.busy_w[dtype] = tuple(float(c) for c in coef)

    # ------------------------------------------------------------------ predicting
    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predict host, device and eager runtime, power and energy for each row.

        Args:
            features: :data:`FEATURE_COLUMNS` and ``dtype`` per row (and ``batch`` for the
                stated uncertainty).

        Returns:
            A frame on the same index: ``host_ms``, ``device_ms``, ``runtime_ms`` (eager),
            ``runtime_graph_ms`` (= device), ``power_w`` (eager), ``graph_power_w``,
            ``energy_mj`` (eager, per forward), ``graph_energy_mj`` and ``bound``
            (``host`` or ``device``).
        """
        self._check_fitted()
        _require(features, (*FEATURE_COLUMNS, "dtype"))
        host = self.host_base_ms + sum(
            self.host_cost_ms[g] * features[f"n_{g}"].to_numpy(dtype=float) for g in GROUPS
        )
        device = np.full(len(features), np.nan)
        busy = np.full(len(features), np.nan)
        for dtype, idx in features.groupby("dtype").indices.items():
            if dtype not in self.device_scale:
                raise PredictorError(
                    f"the model was fitted on {sorted(self.device_scale)}, not {dtype!r}"
                )
            rows = features.iloc[idx]
            scale, fixed = self.device_scale[dtype], self.device_fixed_ms[dtype]
            device[idx] = sum(
                scale["flop"][g] * rows[f"flop_ms_{g}"].to_numpy(float)
                + scale["byte"][g] * rows[f"byte_ms_{g}"].to_numpy(float)
                + fixed[g] * rows[f"n_{g}"].to_numpy(float)
                for g in fixed
            )
            if dtype in self.busy_w:
                busy[idx] = _power_terms(rows) @ np.asarray(self.busy_w[dtype])
        eager = np.maximum(host, device) + self.overlap * np.minimum(host, device)
        power = self.idle_w + (busy - self.idle_w) * np.clip(device / eager, 0, 1)
        return pd.DataFrame(
            {
                "host_ms": host,
                "device_ms": device,
                "runtime_ms": eager,
                "runtime_graph_ms": device,
                "power_w": power,
                "graph_power_w": busy,
                "energy_mj": power * eager,
                "graph_energy_mj": busy * device,
                "bound": np.where(host > device, "host", "device"),
            },
            index=features.index,
        )

    def predict_network(self, net: Network, dtype: str = "float32") -> dict[str, Any]:
        """Predict one described network (eager and CUDA graph), with the stated uncertainty.

        Returns:
            The columns of :meth:`predict` plus ``runtime_error_pct`` and
            ``energy_error_pct``: the held-out mean absolute errors at the nearest batch
            size the model was evaluated at (NaN if it was not).
        """
        if dtype not in self.ceilings:
            raise PredictorError(
                f"the model was fitted on {sorted(self.ceilings) or 'nothing'}, not {dtype!r}"
            )
        feats = pd.DataFrame(
            [{**network_features(net, dtype, self.ceilings[dtype]), "dtype": dtype}]
        )
        out = self.predict(feats).iloc[0].to_dict()
        for what in ("runtime", "energy"):
            out[f"{what}_error_pct"] = _nearest(self.held_out_error_pct.get(what, {}), net.batch)
        return out

    def predict_layers(self, net: Network, dtype: str = "float32") -> pd.DataFrame:
        """Each layer's share: its host issue cost and its GPU time (ms), by the fitted terms."""
        rate, bandwidth = self.ceilings[dtype]
        scale, fixed = self.device_scale[dtype], self.device_fixed_ms[dtype]
        db = DTYPE_BYTES[dtype]
        rows = []
        for i, layer in enumerate(net.layers):
            layer = layer.with_dtype_bytes(db) if layer.dtype_bytes != db else layer
            group = _group(layer) if layer.kind in KIND_GROUPS else "other"
            device = 0.0
            if group in fixed:
                device = (
                    scale["flop"][group] * 1e3 * layer.flops / rate
                    + scale["byte"][group] * 1e3 * layer.total_bytes / bandwidth
                    + fixed[group]
                )
            rows.append(
                {
                    "index": i,
                    "name": layer.name,
                    "kind": layer.kind,
                    "group": group,
                    "host_ms": self.host_cost_ms.get(group, float("nan")),
                    "device_ms": device,
                }
            )
        return pd.DataFrame(rows)

    def _check_fitted(self) -> None:
        if not self.device_scale:
            raise PredictorError("the pipeline model is not fitted: call fit() first")

    # ------------------------------------------------------------------ saving
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **{k: v for k, v in self.__dict__.items()}}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON (parent folder must exist)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PipelineModel:
        """Read a model written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PredictorError(f"{path}: not a pipeline model file (format {FORMAT})")
        return cls.load_dict(data)

    @classmethod
    def load_dict(cls, data: Mapping[str, Any]) -> PipelineModel:
        """The model of a :meth:`to_dict` document."""
        data = dict(data)
        if data.pop("format", FORMAT) != FORMAT:
            raise PredictorError(f"not a pipeline model document (format {FORMAT})")
        data["busy_w"] = {k: tuple(v) for k, v in data.get("busy_w", {}).items()}
        data["ceilings"] = {k: tuple(v) for k, v in data.get("ceilings", {}).items()}
        return cls(**data)


def _power_terms(rows: pd.DataFrame) -> np.ndarray:
    """Terms of the busy-power model: 1, FLOP share, log10 of the roofline time (ms).

    A GPU that runs big, FLOP-bound kernels back to back draws the most; a network of
    small kernels leaves most of the chip idle even when the queue never empties.
    """
    roof = np.log10(np.maximum(rows["roof_ms"].to_numpy(float), 1e-4))
    return np.column_stack([np.ones(len(rows)), rows["flop_share"].to_numpy(float), roof])


def _require(table: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PredictorError(f"the table lacks the columns {', '.join(missing)}")


def _nnls_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative errors (each row divided by its target).

    Networks span four orders of magnitude of runtime; weighting by 1/y fits percentage
    errors, which is what the model is judged by. scipy's NNLS (Lawson-Hanson) is used
    because scikit-learn's ``LinearRegression(positive=True)`` gives the same solution
    with more machinery.
    """
    w = 1.0 / np.asarray(y, dtype=float)
    coef, _ = nnls(x * w[:, None], y * w)
    return coef


def _nearest(errors: Mapping[str, float], batch: int) -> float:
    """The error recorded at the batch size nearest to ``batch`` (in log scale)."""
    if not errors:
        return float("nan")
    best = min(errors, key=lambda b: abs(np.log(int(b)) - np.log(batch)))
    return float(errors[best])


def idle_power(provenance: Mapping[str, Any]) -> float:
    """The median idle power (W) the dataset's sweeps recorded at their start."""
    runs = provenance.get("runs") or []
    values = [r.get("idle_power_w") for r in runs if r.get("idle_power_w") is not None]
    values = [v for v in values if np.isfinite(v)]
    if not values:
        raise PredictorError("the dataset's provenance records no idle power")
    return float(np.median(values))


def signed_errors(held_out: pd.DataFrame) -> pd.DataFrame:
    """Per row of :func:`leave_out`'s output, the signed % error of eager and graph runtime
    and energy (columns named for a table), beside network, family, batch and dtype."""
    pairs = {
        "eager runtime": ("runtime_ms", "pred_runtime_ms"),
        "GPU runtime (graph)": ("runtime_graph_ms", "pred_runtime_graph_ms"),
        "eager energy": ("eager_energy_mj", "pred_energy_mj"),
        "graph energy": ("energy_mj", "pred_graph_energy_mj"),
    }
    out = held_out[["network", "family", "batch", "dtype"]].copy()
    for name, (measured, predicted) in pairs.items():
        out[name] = 100 * (held_out[predicted] / held_out[measured] - 1)
    return out


def ceilings_of(provenance: Mapping[str, Any], dtypes: Iterable[str]) -> dict:
    """Per dtype, the measured (matrix rate, copy bandwidth) recorded in a provenance."""
    return {d: _peak(provenance, d) for d in dtypes}


def measured_features(
    nets: pd.DataFrame, provenance: Mapping[str, Any], *, progress: bool = True
) -> pd.DataFrame:
    """Features of every usable measured network row, beside its measured columns.

    Args:
        nets: Rows of ``nets.csv`` (``network``, ``batch``, ``dtype``, the measured
            columns and ``status``); rows without a usable status are dropped.
        provenance: The dataset's provenance (the measured ceilings).
        progress: Show a progress bar (each (network, batch) is described once, about
            0.1-1 s each).

    Returns:
        One row per measured (network, batch, dtype): ``family`` (:func:`hwml.zoo.family`),
        :data:`FEATURE_COLUMNS` and the measured columns.
    """
    import warnings

    from tqdm import tqdm

    from hwml import zoo
    from hwml.data import USABLE_STATUS

    rows = nets[nets["status"].isin(USABLE_STATUS)]
    rows = rows.drop(
        columns=[
            c
            for c in ("flops", "layers", "params", "macs", "activation_bytes")
            if c in rows.columns
        ]
    )
    ceilings = ceilings_of(provenance, sorted(rows["dtype"].unique()))
    out = []
    pairs = rows.groupby(["network", "batch"], sort=True)
    for (name, batch), group in tqdm(pairs, disable=not progress, desc="describing networks"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = zoo.describe_net(str(name), int(batch), weights=False)
        for dtype in group["dtype"]:
            out.append(
                {
                    "network": name,
                    "batch": batch,
                    "dtype": dtype,
                    "family": zoo.family(str(name)),
                    **network_features(net, dtype, ceilings[dtype]),
                }
            )
    return pd.DataFrame(out).merge(rows, on=["network", "batch", "dtype"])


def leave_out(
    table: pd.DataFrame,
    by: str,
    *,
    idle_w: float,
) -> pd.DataFrame:
    """Held-out predictions: for each value of ``table[by]``, fit on the other rows and
    predict these.

    Args:
        table: :func:`measured_features` output.
        by: ``"network"`` (leave one network out) or ``"family"`` (leave a family out).
        idle_w: Idle power (W).

    Returns:
        ``table``'s identifying and measured columns beside the predictions
        (``pred_<column>``), in the order of ``table``.
    """
    parts = []
    for _, test in table.groupby(by, sort=False):
        train = table.drop(index=test.index)
        model = PipelineModel().fit(train, idle_w=idle_w)
        known = test[test["dtype"].isin(model.device_scale)]
        parts.append(model.predict(known).add_prefix("pred_"))
    return table.join(pd.concat(parts), how="inner")


def held_out_errors(held_out: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Mean absolute % error per batch of eager runtime and energy in :func:`leave_out`'s
    output (the uncertainty a model states with its predictions)."""
    out: dict[str, dict[str, float]] = {}
    for what, measured, predicted in (
        ("runtime", "runtime_ms", "pred_runtime_ms"),
        ("energy", "eager_energy_mj", "pred_energy_mj"),
    ):
        if measured not in held_out.columns:
            continue
        rows = held_out.dropna(subset=[measured, predicted])
        err = (100 * (rows[predicted] / rows[measured] - 1)).abs()
        out[what] = {str(int(b)): float(e) for b, e in err.groupby(rows["batch"]).mean().items()}
    return out
