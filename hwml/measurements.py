"""Summaries of a measured dataset: what the "Measuring cost" chapter shows.

Everything here reads the tables written by :mod:`hwml.profile` (as DataFrames) and
returns DataFrames; nothing touches a device. Functions:

* :func:`load` — the dataset's tables and provenance in one object;
* :func:`repeatability` — the noise floor: spread of runtime and power across repeated
  measurements of the same layer, per kind;
* :func:`roofline` — achieved FLOP/s and arithmetic intensity of each layer, with the
  device's measured ceilings;
* :func:`sum_of_layers` — whole-network runtime beside the sum of its layers timed in
  place;
* :func:`run_throughput` — rows measured per second by each logged sweep run;
* :func:`counter_periods` — the energy counter's update period and idle power recorded
  at the start of every sweep;
* :func:`paired` — two measurements of the same workloads side by side (e.g. before and
  after a change of method).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwml import zoo
from hwml.data import USABLE_STATUS, dataset_path, read_provenance, read_table

__all__ = [
    "run_throughput",
    "runtime_rows",
    "Measurements",
    "load",
    "ok_rows",
    "repeatability",
    "roofline",
    "roofline_ceiling",
    "sum_of_layers",
    "counter_periods",
    "concurrent_rows",
    "rank_agreement",
    "discordant_pairs",
    "paired",
]


@dataclass
class Measurements:
    """A dataset's tables (missing ones are None) and its provenance.

    ``nets`` holds the rows of the network sweeps of named networks (the zoo, as the
    chapters on the survey's networks use them); ``network_set`` holds every row of
    ``nets.csv``, the sweeps of the network set (``hwml profile nets --nets set``,
    :func:`hwml.zoo.network_set`) too. Both leave out rows measured while another run
    used the same GPU (:func:`concurrent_rows`).
    """

    name: str
    provenance: dict[str, Any]
    layers: pd.DataFrame | None = None
    repeats: pd.DataFrame | None = None
    nets: pd.DataFrame | None = None
    network_set: pd.DataFrame | None = None
    net_layers: pd.DataFrame | None = None
    validation: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> str:
        p = self.provenance
        return str(p.get("gpu_name") or p.get("device_name") or p.get("cpu") or self.name)

    @property
    def label(self) -> str:
        """A short name of the platform for tables and figures.

        A GPU's name as is (``"NVIDIA H200"``); a CPU's without trademark signs and the
        words "Processor" and "CPU", with the cores it was measured with when the
        provenance records them (``"Intel Xeon (32 cores)"``).
        """
        name = self.device
        if self.provenance.get("dataset_kind") != "cpu":
            return name
        short = re.sub(r"\((R|TM|r|tm)\)|\bProcessor\b|\bCPU\b", " ", name)
        short = " ".join(short.split()) or name
        cores = self.provenance.get("cpu_count")
        return f"{short} ({cores} cores)" if cores else short


def load(dataset: str | os.PathLike[str]) -> Measurements:
    """Read every profiler table of a dataset folder (``data/<name>`` or a path).

    A key measured more than once (two shards of a sweep that overlapped, see
    :func:`hwml.profile.run_rows`) keeps its first row; ``extra["<table>_measured_twice"]``
    counts the rows set aside; a failed row of a key measured again successfully
    (``--retry-failed``) is dropped (``extra["<table>_failures_measured_again"]``).
    Network rows measured while another run shared their GPU
    are set aside first (``extra["nets_concurrent"]``). The files themselves are never
    changed.
    """
    folder = dataset_path(dataset)
    if not (folder / "provenance.json").exists():
        raise FileNotFoundError(f"{folder} is not a dataset folder (no provenance.json)")
    out = Measurements(name=folder.name, provenance=read_provenance(folder))
    for table in ("layers", "repeats", "nets", "net_layers", "validation"):
        if (folder / f"{table}.csv").exists():
            df = read_table(folder, table)
            if table == "nets":
                shared = concurrent_rows(df)
                out.extra["nets_concurrent"] = int(shared.sum())
                df = df[~shared].reset_index(drop=True)
            if "key" in df.columns:
                if "status" in df.columns:  # measured again after a failure: the failure goes
                    usable = df["status"].isin(USABLE_STATUS)
                    superseded = ~usable & usable.groupby(df["key"]).transform("any")
                    out.extra[f"{table}_failures_measured_again"] = int(superseded.sum())
                    df = df[~superseded].reset_index(drop=True)
                twice = df["key"].duplicated()
                out.extra[f"{table}_measured_twice"] = int(twice.sum())
                df = df[~twice].reset_index(drop=True)
            if table == "nets":
                out.network_set = df
                if "run_id" in df.columns:
                    df = df[~df["run_id"].isin(_network_set_runs(df, out.provenance))]
                    df = df.reset_index(drop=True)
            setattr(out, table, df)
    return out


def _network_set_runs(nets: pd.DataFrame, provenance: dict[str, Any]) -> set[str]:
    """Run ids of the sweeps of the network set: logged with ``--nets set``, or having
    measured a network outside the zoo (a run whose log entry was lost still counts)."""
    logged = {
        str(run.get("run_id"))
        for run in provenance.get("runs", [])
        if "--nets set" in str(run.get("command", ""))
    }
    beyond_zoo = nets.loc[~nets["network"].isin(zoo.names()), "run_id"].astype(str)
    return logged | set(beyond_zoo)


def concurrent_rows(table: pd.DataFrame) -> pd.Series:
    """Rows measured while another run was measuring on the same GPU (boolean mask).

    Each run (``run_id``) spans the time from its first to its last row on a GPU
    (``gpu_uuid``); a row whose timestamp falls inside another run's span on the same GPU
    shared the GPU with it, so its time and power are not the workload's alone. Tables
    without those columns give an all-False mask.
    """
    mask = pd.Series(False, index=table.index)
    if not {"run_id", "gpu_uuid", "timestamp"} <= set(table.columns):
        return mask
    when = pd.to_datetime(table["timestamp"], utc=True, errors="coerce")
    spans = (
        table.assign(_t=when)
        .groupby(["gpu_uuid", "run_id"])["_t"]
        .agg(["min", "max"])
        .reset_index()
    )
    for row in spans.itertuples():
        others = (table["gpu_uuid"] == row.gpu_uuid) & (table["run_id"] != row.run_id)
        mask |= others & (when >= row.min) & (when <= row.max)
    return mask


def ok_rows(table: pd.DataFrame, *, power: bool = False) -> pd.DataFrame:
    """Rows measured successfully (``status == ok``; with ``power``, power not NaN)."""
    rows = table[table["status"] == "ok"]
    if power:
        rows = rows[rows["power_w"].notna()]
    return rows


def repeatability(repeats: pd.DataFrame) -> pd.DataFrame:
    """Spread of repeated measurements of one layer, summarized per kind.

    ``repeats`` holds several rows per layer, keyed ``<layer key>#r<i>``. For each layer
    the coefficient of variation (std / mean) of its median runtimes and of its powers
    across the repeats is computed; the result gives, per kind, the median and the 90th
    percentile of those CVs (in percent), the number of layers and of repeats.

    Returns:
        DataFrame indexed by kind with columns ``layers``, ``repeats``,
        ``runtime_cv_median_pct``, ``runtime_cv_p90_pct``, ``power_cv_median_pct``,
        ``power_cv_p90_pct``, ``within_row_cv_median_pct`` (spread of the timed calls
        inside one row).
    """
    rows = ok_rows(repeats).copy()
    rows["layer"] = rows["key"].str.split("#").str[0]

    def cv(x: pd.Series) -> float:
        x = x.dropna()
        return float(x.std(ddof=1) / x.mean()) if len(x) > 1 and x.mean() > 0 else np.nan

    per_layer = rows.groupby(["kind", "layer"]).agg(
        runtime_cv=("runtime_ms", cv),
        power_cv=("power_w", cv),
        n=("runtime_ms", "size"),
        within=("runtime_cv", "median"),
    )
    g = per_layer.groupby("kind")
    out = pd.DataFrame(
        {
            "layers": g.size(),
            "repeats": g["n"].median(),
            "runtime_cv_median_pct": 100 * g["runtime_cv"].median(),
            "runtime_cv_p90_pct": 100 * g["runtime_cv"].quantile(0.9),
            "power_cv_median_pct": 100 * g["power_cv"].median(),
            "power_cv_p90_pct": 100 * g["power_cv"].quantile(0.9),
            "within_row_cv_median_pct": 100 * g["within"].median(),
        }
    )
    return out


def roofline(layers: pd.DataFrame) -> pd.DataFrame:
    """Achieved throughput of each layer: (flops + vector_ops) / runtime vs intensity.

    Returns:
        ``layers`` (ok rows) with ``achieved_flops_per_s`` (operations per second) and
        ``achieved_bytes_per_s`` (minimum bytes moved per second) added.
    """
    rows = ok_rows(layers).copy()
    seconds = rows["runtime_ms"] / 1e3
    rows["achieved_flops_per_s"] = (rows["flops"] + rows["vector_ops"]) / seconds
    rows["achieved_bytes_per_s"] = rows["total_bytes"] / seconds
    return rows


def roofline_ceiling(
    intensity: np.ndarray, peak_flops_per_s: float, bandwidth_bytes_per_s: float
) -> np.ndarray:
    """The roofline: min(peak, intensity × bandwidth), in operations per second."""
    return np.minimum(peak_flops_per_s, np.asarray(intensity, dtype=float) * bandwidth_bytes_per_s)


def runtime_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose runtime is valid (``status`` in :data:`hwml.data.USABLE_STATUS`: a power
    window flagged ``low_busy`` or ``over_limit`` leaves the runtime valid)."""
    if "status" not in table.columns:
        return table
    return table[table["status"].astype(str).isin(USABLE_STATUS)]


def sum_of_layers(
    nets: pd.DataFrame, net_layers: pd.DataFrame, *, complete_only: bool = True
) -> pd.DataFrame:
    """Whole-network runtime beside the sum of its layers timed one by one in place.

    Both the eager runtimes (``runtime_ms``: what a PyTorch user sees, host dispatch
    included) and, where the tables have them, the GPU runtimes of CUDA-graph replays
    (``runtime_graph_ms``) are summed. Rows whose runtime is valid count
    (:func:`runtime_rows`).

    Args:
        nets: ``nets.csv``.
        net_layers: ``net_layers.csv``.
        complete_only: Keep only (network, batch, dtype) whose every layer was timed in
            place (a partial sum would understate the network).

    Returns:
        One row per (network, batch, dtype) present in both tables, with
        ``network_ms``, ``sum_layers_ms``, ``layers`` (count), ``expected_layers``,
        ``gap_pct`` = 100 × (sum − network) / network, ``network_graph_ms``,
        ``sum_layers_graph_ms``, ``graph_gap_pct`` (the same for GPU times; NaN where
        not measured) and ``network_power_w``.
    """
    nets = nets.assign(runtime_graph_ms=nets.get("runtime_graph_ms", np.nan))
    net_layers = net_layers.assign(runtime_graph_ms=net_layers.get("runtime_graph_ms", np.nan))
    whole = runtime_rows(nets)[
        ["network", "batch", "dtype", "runtime_ms", "runtime_graph_ms", "power_w", "sm_clock_mhz"]
    ]
    parts = (
        runtime_rows(net_layers)
        .groupby(["network", "batch", "dtype"])
        .agg(
            sum_layers_ms=("runtime_ms", "sum"),
            sum_layers_graph_ms=("runtime_graph_ms", lambda s: s.sum(min_count=len(s))),
            layers=("runtime_ms", "size"),
            layer_clock_mhz=("sm_clock_mhz", "median"),
        )
        .reset_index()
    )
    out = whole.merge(parts, on=["network", "batch", "dtype"], how="inner").rename(
        columns={
            "runtime_ms": "network_ms",
            "runtime_graph_ms": "network_graph_ms",
            "power_w": "network_power_w",
            "sm_clock_mhz": "network_clock_mhz",
        }
    )
    out["gap_pct"] = 100 * (out["sum_layers_ms"] - out["network_ms"]) / out["network_ms"]
    out["graph_gap_pct"] = (
        100 * (out["sum_layers_graph_ms"] - out["network_graph_ms"]) / out["network_graph_ms"]
    )
    known = set(zoo.names())
    expected = {
        n: len(zoo.describe_net(n, 1, weights=False).layers) if n in known else np.nan
        for n in out["network"].unique()
    }
    out["expected_layers"] = out["network"].map(expected)
    if complete_only:  # networks outside the zoo cannot be checked and are kept
        out = out[~(out["layers"] < out["expected_layers"])]
    return out.sort_values(["dtype", "network", "batch"]).reset_index(drop=True)


def run_throughput(provenance: dict[str, Any], *, min_rows: int = 20) -> pd.DataFrame:
    """Rows per second of each logged sweep run, from its start and end times.

    A run is one process (one shard of a sweep); shards of one command ran at the same
    time on different GPUs, so ``sweep_id`` (the command without its ``--shard``) groups
    them.

    Args:
        provenance: the folder's ``provenance.json``.
        min_rows: leave out runs that wrote fewer rows (start-up dominates them).

    Returns:
        One row per finished run: ``sweep`` (layers, nets, ...), ``dtype``, ``power``
        (whether it measured power), ``gpu_uuid``, ``rows``, ``elapsed_s``,
        ``rows_per_s``, ``sweep_id``.
    """
    rows = []
    for run in provenance.get("runs", []):
        written = run.get("rows_written") or 0
        if written < min_rows or not run.get("date") or not run.get("finished"):
            continue
        start = pd.Timestamp(run["date"])
        elapsed = (pd.Timestamp(run["finished"]) - start).total_seconds()
        if elapsed <= 0:
            continue
        words = str(run.get("command", "")).split()
        kept = [
            w
            for i, w in enumerate(words)
            if w != "--shard" and (i == 0 or words[i - 1] != "--shard")
        ]
        rows.append(
            {
                "sweep": run.get("sweep"),
                "dtype": run.get("dtype"),
                "power": run.get("power_periods") is not None and "--no-power" not in words,
                "gpu_uuid": run.get("gpu_uuid"),
                "rows": int(written),
                "elapsed_s": elapsed,
                "rows_per_s": written / elapsed,
                "sweep_id": f"{start.floor('min').isoformat()} {' '.join(kept)}",
            }
        )
    columns = ["sweep", "dtype", "power", "gpu_uuid", "rows", "elapsed_s", "rows_per_s", "sweep_id"]
    return pd.DataFrame(rows, columns=columns)


def counter_periods(provenance: dict[str, Any]) -> pd.DataFrame:
    """The counter update period and idle power measured at the start of each sweep."""
    runs = provenance.get("runs", [])
    rows = [
        {
            "sweep": r.get("sweep"),
            "date": r.get("date"),
            "gpu_uuid": r.get("gpu_uuid"),
            "counter_update_period_s": r.get("counter_update_period_s"),
            "idle_power_w": r.get("idle_power_w"),
        }
        for r in runs
    ]
    df = pd.DataFrame(
        rows, columns=["sweep", "date", "gpu_uuid", "counter_update_period_s", "idle_power_w"]
    )
    return df.dropna(subset=["counter_update_period_s"]).reset_index(drop=True)


def rank_agreement(
    table: pd.DataFrame, x: str, y: str, by: str | list[str] | None = None
) -> pd.DataFrame:
    """Spearman rank correlation between columns ``x`` and ``y`` (per group of ``by``).

    Returns:
        One row per group (indexed by the group's values; a MultiIndex when ``by`` is a
        list), or one row ``all``, with ``n`` and ``spearman_rho``.
    """
    from scipy.stats import spearmanr

    groups = table.groupby(by) if by else [("all", table)]
    rows = []
    for key, g in groups:
        g = g[[x, y]].dropna()
        rho = spearmanr(g[x], g[y]).statistic if len(g) > 2 else np.nan
        rows.append({"group": key, "n": len(g), "spearman_rho": float(rho)})
    out = pd.DataFrame(rows)
    if isinstance(by, list):
        out.index = pd.MultiIndex.from_tuples(out.pop("group"), names=by)
        return out
    return out.set_index("group")


def discordant_pairs(
    table: pd.DataFrame, label: str, x: str, y: str, min_ratio: float = 1.0
) -> pd.DataFrame:
    """Pairs of rows that ``x`` and ``y`` order in opposite ways.

    A pair (a, b) is discordant when ``x[a] < x[b]`` but ``y[a] > y[b]``. Only pairs
    where ``x`` differs by at least ``min_ratio`` (``x[b] / x[a] >= min_ratio``) are kept,
    so that ties and near-ties do not count.

    Returns:
        One row per discordant pair: ``smaller_x`` and ``larger_x`` labels, the ratio of
        their ``x`` values and the ratio of their ``y`` values (``y[a] / y[b]`` > 1),
        sorted by the ``y`` ratio, largest first.
    """
    t = table[[label, x, y]].dropna().reset_index(drop=True)
    xs, ys, names = t[x].to_numpy(), t[y].to_numpy(), t[label].to_numpy()
    out = []
    for i in range(len(t)):
        for j in range(len(t)):
            if xs[i] < xs[j] and ys[i] > ys[j] and xs[j] / xs[i] >= min_ratio:
                out.append(
                    {
                        "smaller_x": names[i],
                        "larger_x": names[j],
                        f"{x}_ratio": xs[j] / xs[i],
                        f"{y}_ratio": ys[i] / ys[j],
                    }
                )
    cols = ["smaller_x", "larger_x", f"{x}_ratio", f"{y}_ratio"]
    return pd.DataFrame(out, columns=cols).sort_values(
        f"{y}_ratio", ascending=False, ignore_index=True
    )


def paired(
    before: pd.DataFrame, after: pd.DataFrame, columns: list[str], *, on: str = "key"
) -> pd.DataFrame:
    """Rows of two measurements of the same workloads side by side (``<col>_before`` /
    ``<col>_after``), joined on ``on``; only rows present and ok in both. A column one
    table lacks is NaN on its side."""
    a = ok_rows(before).drop_duplicates(on).reindex(columns=[on, *columns])
    b = ok_rows(after).drop_duplicates(on).reindex(columns=[on, *columns])
    return a.merge(b, on=on, suffixes=("_before", "_after"))
