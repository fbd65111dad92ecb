"""Print what a smoke sweep wrote (used before a long GPU run): one line per row."""

from __future__ import annotations

import sys

import pandas as pd

COLS = [
    "kind",
    "network",
    "batch",
    "runtime_ms",
    "runtime_graph_ms",
    "host_dispatch_ms",
    "graph_calls",
    "power_w",
    "energy_mj",
    "busy_fraction",
    "eager_power_w",
    "eager_energy_mj",
    "eager_busy_fraction",
    "power_window_s",
    "status",
    "graph_error",
]
for path in sys.argv[1:]:
    df = pd.read_csv(path)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(path)
        print(df[[c for c in COLS if c in df.columns]].round(4).to_string())
        t = pd.to_datetime(df["timestamp"])
        if len(t) > 1:
            print(f"rows per second: {(len(t) - 1) / (t.max() - t.min()).total_seconds():.2f}")
