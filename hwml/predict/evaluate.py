"""Evaluating layer and network predictors against measurements (survey section 3).

What the modeling chapters and ``hwml predict`` share:

* :data:`SURVEY_TABLE1` / :data:`SURVEY_TABLE2`: the survey's numbers, to print beside ours.
* :func:`split_configurations`: a seeded, per-kind held-out split of a layer table, and
  :func:`training_split`: the chapters' split of a measured dataset (random layer
  configurations for training and testing, zoo layers kept apart as a second test set).
* :func:`fit_layer_models`: Paleo and NeuralPower fitted the same way for every chapter.
* :func:`noise_floor`: the error a perfect model (one that knows each layer's true mean)
  would show against single measurements, estimated from repeated measurements, in the
  same metrics as a model's error (RMSPE, RMSE). No model that sees only a layer's
  configuration can do better on average.
* :func:`error_table`: RMSPE, RMSE and friends of several models' predictions, per layer
  group and overall; :func:`table1` lays them out as the survey's Table 1, with the
  survey's numbers and the noise floor beside them.
* :func:`network_prediction`: a model's per-layer and total runtime, power and energy of
  a network, with the same columns whatever the model (NaN where it predicts nothing).
* :func:`predict_networks`: summed layer predictions of several models for every row of
  a network table, beside the measured runtime, power and energy.
* :func:`measured_layer_sums`: a network's layers looked up among the layers measured
  alone, summed: what summing layers gives with *perfect* layer predictions.
* :func:`time_prediction`: wall-clock time of predicting one network.

Units: runtime in ms, power in W, energy in mJ.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from hwml.describe import Layer, Network
from hwml.predict import metrics
from hwml.predict.base import (
    DTYPE_BYTES,
    KIND_GROUPS,
    LayerEstimator,
    LeftOutLayersWarning,
    NetworkPrediction,
    PredictorError,
    require_columns,
)
from hwml.predict.calibration import NetworkBuilder, NetworkCalibration, zoo_builder
from hwml.predict.neuralpower import NeuralPower
from hwml.predict.paleo import Paleo

__all__ = [
    "SURVEY_TABLE1",
    "SURVEY_TABLE2",
    "SURVEY_LAYER_NAMES",
    "SAMPLED_KIND_GROUPS",
    "LayerSplit",
    "split_configurations",
    "training_split",
    "fit_layer_models",
    "cached_zoo_builder",
    "measured_layer_sums",
    "noise_floor",
    "error_table",
    "table1",
    "network_prediction",
    "predict_networks",
    "time_prediction",
]

#: Survey Table 1 (NeuralPower vs Paleo, layer runtime on the survey's GPU): model size in
#: terms, RMSPE in percent, RMSE in ms; indexed by hwml's layer group.
SURVEY_TABLE1 = pd.DataFrame(
    {
        "neuralpower_model_size": [60, 17, 31],
        "neuralpower_rmspe_pct": [39.97, 41.92, 11.41],
        "neuralpower_rmse_ms": [1.019, 0.7474, 0.0686],
        "paleo_rmspe_pct": [58.29, 73.76, 79.91],
        "paleo_rmse_ms": [4.304, 0.8265, 1.763],
    },
    index=pd.Index(["conv2d", "linear", "pool"], name="group"),
)

#: The survey's names of the Table-1 rows, by hwml's layer group.
SURVEY_LAYER_NAMES: dict[str, str] = {"conv2d": "CONV", "linear": "FC", "pool": "Pool"}

#: Survey Table 2 (network runtime in ms: Paleo, NeuralPower, measured), indexed by zoo name.
SURVEY_TABLE2 = pd.DataFrame(
    {
        "paleo_ms": [345.83, 33.16, 45.68, 114.71, 28.75],
        "neuralpower_ms": [373.82, 43.41, 62.62, 195.21, 51.13],
        "actual_ms": [368.42, 39.02, 50.66, 197.99, 50.09],
    },
    index=pd.Index(["vgg16", "alexnet", "nin", "overfeat", "cifar10_6conv"], name="network"),
)


def split_configurations(
    table: pd.DataFrame,
    test_fraction: float = 0.2,
    seed: int = 0,
    by: str | Sequence[str] = "kind",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a seeded fraction of the rows (layer configurations) of every stratum.

    Each stratum (a value of ``by``, by default each layer kind) gives
    ``round(test_fraction * n)`` of its ``n`` rows to the test set, so every kind is
    represented in both sets in proportion.

    Args:
        table: Layer table, one row per configuration.
        test_fraction: Share of each stratum held out, in ``[0, 1)``.
        seed: Seed of the draw.
        by: Column(s) defining the strata.

    Returns:
        ``(train, test)``, each a slice of ``table`` in its original order.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    cols = [by] if isinstance(by, str) else list(by)
    require_columns(table, cols, "split_configurations")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(table), dtype=bool)
    strata = table.groupby(cols, sort=True).indices  # stratum -> row positions
    for key in sorted(strata):
        pos = strata[key]
        k = int(round(test_fraction * len(pos)))
        if k:
            test[rng.choice(pos, size=k, replace=False)] = True
    return table.loc[~test], table.loc[test]


class LayerSplit(NamedTuple):
    """The layer rows of a dataset, split for evaluation.

    Attributes:
        train: Random configurations used for fitting.
        test: Random configurations held out (the survey's Table-1 setting).
        zoo: Layers of the zoo networks measured alone, never fitted on; ``network`` is
            the first zoo network with that layer.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    zoo: pd.DataFrame


#: Kind -> group overrides for models fitted on random configurations only: the layer
#: sweep samples no concatenation, so concatenations (a copy of their inputs into one
#: output) borrow the model of the element-wise kinds, which also read inputs and write
#: an output of the same size.
SAMPLED_KIND_GROUPS: dict[str, str] = {"concat": "eltwise"}


def training_split(
    layers: pd.DataFrame,
    dtype: str = "float32",
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train_per_kind: int = 0,
) -> LayerSplit:
    """Split a measured layer table: sampled configurations for training and testing, zoo apart.

    Rows are those measured successfully (``status`` ok) in ``dtype``. The rows with
    ``source == "sample"`` are split per kind with :func:`split_configurations`; the rows
    with ``source == "zoo:<network>"`` form the second test set.

    Args:
        layers: The dataset's ``layers.csv``.
        dtype: dtype of the rows to keep.
        test_fraction: Share of each kind's sampled configurations held out.
        seed: Seed of the split (and of the subsampling).
        max_train_per_kind: When positive, at most this many training rows per kind
            (a seeded subsample, for quick runs); 0 keeps them all.

    Returns:
        :class:`LayerSplit`.
    """
    require_columns(layers, ["source", "dtype", "kind", "status"], "training_split")
    rows = layers[(layers["status"] == "ok") & (layers["dtype"].astype(str) == dtype)]
    if rows.empty:
        raise ValueError(f"no usable layer rows of dtype {dtype!r}")
    source = rows["source"].astype(str)
    sampled = rows[source == "sample"]
    zoo = rows[source.str.startswith("zoo:")].copy()
    zoo["network"] = zoo["source"].str.split(":").str[1]
    train, test = split_configurations(sampled, test_fraction, seed)
    if max_train_per_kind > 0:
        train = pd.concat(
            [
                part
                if len(part) <= max_train_per_kind
                else part.sample(max_train_per_kind, random_state=seed)
                for _, part in train.groupby("kind", sort=True)
            ]
        ).sort_index()
    return LayerSplit(train, test, zoo)


def fit_layer_models(
    train: pd.DataFrame,
    provenance: Mapping[str, Any],
    *,
    dtype: str = "float32",
    degrees: Sequence[int] = (1, 2, 3),
    cv: int = 10,
    seed: int = 0,
    paleo_peak: str | None = None,
    kind_groups: Mapping[str, str] | None = None,
    device: str | None = None,
) -> dict[str, LayerEstimator]:
    """Paleo and NeuralPower (runtime and power) fitted on the same training rows.

    Args:
        train: Measured layer rows of one dtype.
        provenance: The dataset's provenance (Paleo's measured peaks).
        dtype: dtype of the rows.
        degrees: NeuralPower's polynomial degrees tried by cross-validation.
        cv: NeuralPower's cross-validation folds.
        seed: Seed of the folds.
        paleo_peak: Which measured peak Paleo divides FLOPs by (default: ``dtype``'s).
        kind_groups: Kind -> group overrides for both models (default:
            :data:`SAMPLED_KIND_GROUPS`).
        device: GPU name of the measurements (default: the provenance's).

    Returns:
        ``{"Paleo": ..., "NeuralPower": ...}``, both fitted.
    """
    groups = dict(SAMPLED_KIND_GROUPS if kind_groups is None else kind_groups)
    device = device or provenance.get("gpu_name") or provenance.get("device_name")
    paleo = Paleo.from_provenance(provenance, paleo_peak or dtype, kind_groups=groups)
    paleo.fit(train, device=device)
    neuralpower = NeuralPower(degrees=tuple(degrees), cv=cv, seed=seed, kind_groups=groups)
    neuralpower.fit(train, device=device)
    return {"Paleo": paleo, "NeuralPower": neuralpower}


def noise_floor(
    repeats: pd.DataFrame, target: str = "runtime_ms", by: str = "kind"
) -> pd.DataFrame:
    """The error a perfect model would show against single measurements: a floor under model errors.

    ``repeats`` holds several rows per layer, keyed ``<layer key>#r<i>`` (as the profiler's
    ``repeats.csv``). A perfect model predicts each layer's true mean; its error against one
    measurement ``y`` is ``mean - y``. The true mean is estimated by the mean of the
    layer's ``n`` repetitions and the deviations are scaled by ``sqrt(n / (n - 1))``, which
    undoes the shrinkage of estimating the mean from the same repetitions (the usual
    ``ddof=1`` correction). Errors are pooled per value of ``by`` and overall.

    Args:
        repeats: Repeated measurements (``key``, ``by``, ``target``, optionally ``status``).
        target: Measured column.
        by: Column to group by (a layer kind, usually).

    Returns:
        Indexed by the values of ``by`` plus ``"all"``: ``layers``, ``measurements``,
        ``rmspe_pct``, ``rmse`` (unit of ``target``) and ``cv_median_pct`` (median over
        layers of the coefficient of variation of the repetitions).
    """
    require_columns(repeats, ["key", by, target], "noise_floor")
    rows = repeats
    if "status" in rows.columns:
        rows = rows[rows["status"].isin(("ok", "no_power"))]
    rows = rows[np.isfinite(pd.to_numeric(rows[target], errors="coerce"))].copy()
    rows["_layer"] = rows["key"].astype(str).str.split("#").str[0]
    n = rows.groupby("_layer")[target].transform("size")
    rows = rows[n >= 2]
    if rows.empty:
        raise ValueError("noise_floor: no layer was measured twice")
    y = rows[target].astype(float)
    g = y.groupby(rows["_layer"])
    n = g.transform("size")
    deviation = (g.transform("mean") - y) * np.sqrt(n / (n - 1))
    rows["_rel"] = deviation / y
    rows["_abs"] = deviation
    cv = g.agg(lambda v: v.std(ddof=1) / v.mean())

    def summarise(part: pd.DataFrame) -> dict[str, float]:
        layers = part["_layer"].unique()
        return {
            "layers": float(len(layers)),
            "measurements": float(len(part)),
            "rmspe_pct": float(100 * np.sqrt(np.mean(part["_rel"] ** 2))),
            "rmse": float(np.sqrt(np.mean(part["_abs"] ** 2))),
            "cv_median_pct": float(100 * cv.loc[layers].median()),
        }

    out = {str(k): summarise(part) for k, part in rows.groupby(by, sort=True)}
    out["all"] = summarise(rows)
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = by
    return frame.astype({"layers": int, "measurements": int})


def error_table(
    table: pd.DataFrame,
    predictions: Mapping[str, np.ndarray],
    target: str = "runtime_ms",
    by: str = "group",
    kind_groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Error metrics of several models on one measured table, per group and overall.

    Args:
        table: Measured rows (``kind`` and ``target``; ``by`` unless it is ``"group"``).
        predictions: Model name -> predictions, each of shape ``(len(table),)``. Rows where
            a model predicts NaN are left out of that model's metrics (``n`` says how many
            rows were scored).
        target: Measured column.
        by: ``"group"`` (the layer groups of :data:`~hwml.predict.base.KIND_GROUPS`,
            updated with ``kind_groups``), or any column of ``table``.
        kind_groups: Overrides of the kind -> group mapping.

    Returns:
        One row per (``by`` value, model), plus the rows of ``"all"``: ``n``,
        ``rmspe_pct``, ``rmse`` (unit of ``target``), ``mape_pct``, ``spearman``,
        ``within_10pct`` (fraction 0..1), ``median_ratio`` (median predicted / measured).
    """
    require_columns(table, ["kind", target], "error_table")
    if by == "group":
        groups = {**KIND_GROUPS, **(kind_groups or {})}
        keys = table["kind"].astype(str).map(lambda k: groups.get(k, k)).to_numpy()
    else:
        require_columns(table, [by], "error_table")
        keys = table[by].astype(str).to_numpy()
    y = table[target].to_numpy(dtype=float)
    records = []
    for name, pred in predictions.items():
        p = np.asarray(pred, dtype=float).reshape(-1)
        if p.shape != y.shape:
            raise ValueError(f"predictions of {name!r} have {p.size} values for {y.size} rows")
        ok = np.isfinite(p) & np.isfinite(y) & (y != 0)
        for key in [*sorted(set(keys)), "all"]:
            m = ok & ((keys == key) if key != "all" else True)
            row: dict[str, Any] = {by: key, "model": name, "n": int(m.sum())}
            if m.any():
                s = metrics.summary(y[m], p[m])
                row.update(
                    {k: s[k] for k in ("rmspe_pct", "rmse", "mape_pct", "spearman", "within_10pct")}
                )
                row["median_ratio"] = float(np.median(p[m] / y[m]))
            records.append(row)
    cols = [
        by,
        "model",
        "n",
        "rmspe_pct",
        "rmse",
        "mape_pct",
        "spearman",
        "within_10pct",
        "median_ratio",
    ]
    return pd.DataFrame(records).reindex(columns=cols)


def table1(
    errors: pd.DataFrame,
    model_size: Mapping[str, Mapping[str, int]] | None = None,
    noise: pd.DataFrame | None = None,
    unit: str = "ms",
    survey: bool = True,
) -> pd.DataFrame:
    """The survey's Table 1 on our data: per group, each model's RMSPE and RMSE.

    Args:
        errors: Output of :func:`error_table` with ``by="group"``.
        model_size: Model name -> group -> number of terms (non-zero coefficients).
        noise: Output of :func:`noise_floor` indexed by group (``rmspe_pct``, ``rmse``).
        unit: Unit of the RMSE, for the column names.
        survey: Add the survey's Table-1 numbers (runtime only) for conv2d, linear, pool.

    Returns:
        Indexed by group, in the order of :data:`KIND_GROUPS` then ``all``: ``n``, per
        model ``<model> terms`` (models named in ``model_size``), ``<model> RMSPE (%)``
        and ``<model> RMSE (<unit>)``, the noise floor's ``noise RMSPE (%)`` and
        ``noise RMSE (<unit>)``, and ``survey <model> ...`` columns (NaN where the survey
        has no row).
    """
    require_columns(errors, ["group", "model", "n", "rmspe_pct", "rmse"], "table1")
    order = list(dict.fromkeys([*KIND_GROUPS.values(), *errors["group"], "all"]))
    groups = [g for g in order if g in set(errors["group"])]
    models = list(dict.fromkeys(errors["model"]))
    wide = errors.set_index(["group", "model"])
    out = pd.DataFrame(index=pd.Index(groups, name="group"))
    out["n"] = wide.xs(models[0], level="model")["n"].reindex(groups)
    for name in models:
        part = wide.xs(name, level="model").reindex(groups)
        if model_size is not None and name in model_size:
            out[f"{name} terms"] = [
                model_size[name].get(g, np.nan) if g != "all" else np.nan for g in groups
            ]
        out[f"{name} RMSPE (%)"] = part["rmspe_pct"]
        out[f"{name} RMSE ({unit})"] = part["rmse"]
    if noise is not None:
        out["noise RMSPE (%)"] = noise["rmspe_pct"].reindex(groups)
        out[f"noise RMSE ({unit})"] = noise["rmse"].reindex(groups)
    if survey:
        s = SURVEY_TABLE1.reindex(groups)
        out["survey NeuralPower terms"] = s["neuralpower_model_size"]
        out["survey NeuralPower RMSPE (%)"] = s["neuralpower_rmspe_pct"]
        out["survey NeuralPower RMSE (ms)"] = s["neuralpower_rmse_ms"]
        out["survey Paleo RMSPE (%)"] = s["paleo_rmspe_pct"]
        out["survey Paleo RMSE (ms)"] = s["paleo_rmse_ms"]
    return out


#: What :func:`network_prediction` reports for every layer, whatever the model.
PREDICTED_COLUMNS: tuple[str, ...] = ("runtime_ms", "power_w", "energy_mj")


def network_prediction(
    model: LayerEstimator | NetworkCalibration, net: Network, *, strict: bool = False
) -> NetworkPrediction:
    """Per-layer and total runtime, power and energy of ``net``, whatever the model.

    Paleo predicts runtime only, a NeuralPower regressor its one target, :class:`NeuralPower`
    all three; what a model does not predict is NaN (never guessed). With a
    :class:`NetworkCalibration`, the layers are its layer model's and the totals are
    calibrated: for a runtime calibration ``runtime_ms`` is calibrated (``runtime_ms_raw``
    the plain sum) and the energy is the layers' average power times the calibrated
    runtime (``energy_mj_raw``: the plain sum of layer energies); for an energy
    calibration ``energy_mj`` is calibrated (``energy_mj_raw`` the plain sum) and the
    runtime is the plain sum. Power is always energy / runtime.

    Layers the model cannot price (see :mod:`hwml.predict.base`) are left out, with a
    warning: their row has ``left_out=True`` and NaN predictions, the totals are over the
    other layers (runtime and energy sums are then lower bounds), ``left_out_layers``
    counts them and the prediction's ``left_out`` maps their kinds to counts. With
    ``strict=True`` they raise :class:`~hwml.predict.base.UnknownKindError` instead.

    Args:
        model: A fitted layer model or network calibration.
        net: The network description.
        strict: Raise for layers the model cannot price instead of leaving them out.

    Returns:
        ``layers``: ``index``, ``name``, ``kind``, ``runtime_ms``, ``power_w``,
        ``energy_mj``, ``left_out``; ``totals``: ``runtime_ms``, ``power_w`` (energy /
        runtime), ``energy_mj``, ``layers`` (count), ``left_out_layers`` (count), and
        the ``*_raw`` totals of a calibration; ``left_out``: kind -> layers left out.
    """
    layer_model = model.layer_model if isinstance(model, NetworkCalibration) else model
    if not isinstance(layer_model, LayerEstimator):
        raise PredictorError(f"cannot predict a network with a {type(model).__name__}")
    pred = model.predict_network(net, strict=strict)
    frame = pred.layers
    if "runtime_ms" not in frame.columns:  # a single-target regressor or Paleo
        target = layer_model._output_name()
        if target != "runtime_ms" and target in PREDICTED_COLUMNS:
            frame = frame.assign(runtime_ms=np.nan)
        elif target != "runtime_ms":
            raise PredictorError(f"a model of {target!r} predicts none of {PREDICTED_COLUMNS}")
    out = frame[["index", "name", "kind"]].copy()
    for col in PREDICTED_COLUMNS:
        out[col] = frame[col].to_numpy(dtype=float) if col in frame.columns else np.nan
    left_out = (
        frame["left_out"].to_numpy(dtype=bool)
        if "left_out" in frame.columns
        else np.zeros(len(frame), dtype=bool)
    )
    out["left_out"] = left_out
    runtime = out["runtime_ms"].to_numpy()[~left_out]
    has_runtime = np.isfinite(runtime).any()
    total_runtime = float(np.nansum(runtime)) if has_runtime else math.nan
    energy = out["energy_mj"].to_numpy()[~left_out]
    total_energy = float(np.sum(energy))  # NaN if any priced layer's energy is unknown
    totals: dict[str, float] = {
        "layers": float(len(out)),
        "left_out_layers": float(left_out.sum()),
        "runtime_ms": total_runtime,
        "energy_mj": total_energy,
    }
    if isinstance(model, NetworkCalibration):
        target = model.target
        if target not in ("runtime_ms", "energy_mj"):
            raise PredictorError(f"a calibration of {target!r} is neither runtime nor energy")
        totals[f"{target}_raw"] = totals[target]
        totals[target] = float(pred.totals[target])
        if target == "runtime_ms":  # the layers' average power, over the calibrated time
            totals["energy_mj_raw"] = total_energy
            totals["energy_mj"] = total_energy / total_runtime * totals["runtime_ms"]
    runtime = totals["runtime_ms"]
    totals["power_w"] = totals["energy_mj"] / runtime if runtime > 0 else math.nan
    return NetworkPrediction(out, totals, pred.left_out)


def cached_zoo_builder() -> NetworkBuilder:
    """A zoo network builder that describes each (network, batch, element size) once."""
    return functools.lru_cache(maxsize=None)(zoo_builder)


def measured_layer_sums(
    nets: pd.DataFrame,
    layers: pd.DataFrame,
    build: NetworkBuilder | None = None,
) -> pd.DataFrame:
    """Sum, for each network, its layers as they were measured alone.

    Each layer of the network's description is looked up in ``layers`` by the identity
    of its computation (:meth:`hwml.describe.Layer.signature`: kind, shapes and
    hyper-parameters, not its name or edges) among the rows of the network's dtype;
    flatten and dropout, which the profiler does not measure, count zero.

    Args:
        nets: Network rows: ``network``, ``batch``, optionally ``dtype`` (default float32).
        layers: Measured layer table (the columns of :meth:`Layer.to_row`, ``dtype``,
            ``runtime_ms``; ``energy_mj`` if measured; ``status``).
        build: ``(name, batch, dtype_bytes) -> Network``; default: the zoo.

    Returns:
        Same index as ``nets``: ``layers_runtime_ms`` and ``layers_energy_mj`` (NaN
        when any layer is missing), ``layers_power_w`` (energy / runtime) and ``missing``
        (layers of the description not found).
    """
    require_columns(nets, ["network", "batch"], "measured_layer_sums")
    require_columns(layers, ["kind", "dtype", "runtime_ms"], "measured_layer_sums")
    build = build or zoo_builder
    ok = layers[layers["status"] == "ok"] if "status" in layers.columns else layers
    index: dict[str, dict[tuple, tuple[float, float]]] = {}
    for dtype, part in ok.groupby(ok["dtype"].astype(str)):
        energy = (
            part["energy_mj"]
            if "energy_mj" in part.columns
            else pd.Series(np.nan, index=part.index)
        )
        index[dtype] = {
            Layer.from_row(row).signature(): (float(t), float(e))
            for row, t, e in zip(
                part.to_dict(orient="records"), part["runtime_ms"], energy, strict=True
            )
        }
    records = []
    for _, row in nets.iterrows():
        dtype = str(row.get("dtype", "float32"))
        net = build(str(row["network"]), int(row["batch"]), DTYPE_BYTES.get(dtype, 4))
        known = index.get(dtype, {})
        found = [
            known.get(layer.signature())
            for layer in net.layers
            if layer.kind not in ("flatten", "dropout")
        ]
        missing = sum(f is None for f in found)
        runtime = math.nan if missing else float(sum(f[0] for f in found))
        energy = math.nan if missing else float(sum(f[1] for f in found))
        records.append(
            {
                "layers_runtime_ms": runtime,
                "layers_energy_mj": energy,
                "layers_power_w": energy / runtime if runtime > 0 else math.nan,
                "missing": missing,
            }
        )
    return pd.DataFrame(records, index=nets.index)


def predict_networks(
    models: Mapping[str, LayerEstimator | NetworkCalibration],
    nets: pd.DataFrame,
    build: NetworkBuilder | None = None,
    *,
    strict: bool = False,
) -> pd.DataFrame:
    """Predicted totals of several models beside the measured networks.

    A network with layers a model cannot price gets that model's totals over the other
    layers (lower bounds of runtime and energy) and a non-zero
    ``<name>_left_out_layers``; one :class:`~hwml.predict.base.LeftOutLayersWarning`
    per such model names the kinds and the network rows concerned. With ``strict=True``
    the first such network raises :class:`~hwml.predict.base.UnknownKindError`.

    Args:
        models: Name -> fitted model (see :func:`network_prediction`).
        nets: Measured network table: ``network``, ``batch``, optionally ``dtype``
            (default float32) and the measured ``runtime_ms``, ``power_w``, ``energy_mj``.
        build: ``(name, batch, dtype_bytes) -> Network``; default: the zoo.
        strict: Raise for layers a model cannot price instead of leaving them out.

    Returns:
        One row per row of ``nets`` (same index): ``network``, ``batch``, ``dtype``,
        ``layers``, the measured ``runtime_ms``, ``power_w``, ``energy_mj`` (NaN where
        absent), and per model ``<name>_runtime_ms``, ``<name>_power_w``,
        ``<name>_energy_mj`` and ``<name>_left_out_layers`` (count).
    """
    require_columns(nets, ["network", "batch"], "predict_networks")
    build = build or zoo_builder
    cache: dict[tuple[str, int, int], Network] = {}
    records = []
    left_kinds: dict[str, Counter[str]] = {name: Counter() for name in models}
    left_rows: dict[str, int] = dict.fromkeys(models, 0)
    for _, row in nets.iterrows():
        dtype = str(row.get("dtype", "float32"))
        key = (str(row["network"]), int(row["batch"]), DTYPE_BYTES.get(dtype, 4))
        if key not in cache:
            cache[key] = build(*key)
        rec: dict[str, Any] = {
            "network": key[0],
            "batch": key[1],
            "dtype": dtype,
            "layers": len(cache[key].layers),
        }
        for col in PREDICTED_COLUMNS:
            rec[col] = float(row[col]) if col in row.index and pd.notna(row[col]) else math.nan
        for name, model in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LeftOutLayersWarning)  # summarised below
                pred = network_prediction(model, cache[key], strict=strict)
            for col in PREDICTED_COLUMNS:
                rec[f"{name}_{col}"] = pred.totals[col]
            rec[f"{name}_left_out_layers"] = int(pred.totals["left_out_layers"])
            if pred.left_out:
                left_kinds[name].update(pred.left_out)
                left_rows[name] += 1
        records.append(rec)
    for name, kinds in left_kinds.items():
        if kinds:
            listed = ", ".join(f"{k!r} ({n} layers)" for k, n in sorted(kinds.items()))
            warnings.warn(
                f"predict_networks: model {name!r} cannot price layers of {left_rows[name]} of "
                f"{len(nets)} network rows ({listed} in all): their {name}_* totals exclude "
                f"those layers (lower bounds); see column {name}_left_out_layers",
                LeftOutLayersWarning,
                stacklevel=2,
            )
    return pd.DataFrame(records, index=nets.index)


def time_prediction(
    model: LayerEstimator | NetworkCalibration,
    net: Network | pd.DataFrame,
    repeats: int = 50,
    warmup: int = 3,
) -> np.ndarray:
    """Wall-clock seconds of ``model.predict_network(net)``, one value per repeat.

    Args:
        model: A fitted model.
        net: The network (a description or its layer table).
        repeats: Timed calls.
        warmup: Untimed calls first.

    Returns:
        Shape ``(repeats,)``, seconds (``time.perf_counter``).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be positive and warmup non-negative")
    for _ in range(warmup):
        model.predict_network(net)
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        model.predict_network(net)
        out[i] = time.perf_counter() - t0
    return out
