"""Layer-runtime transfer from the H200 (fp32 layers) to the 2-core AMD EPYC CPU.

Runs :func:`hwml.predict.transfer.transfer_curve` for every transfer method, k in
(0, 5, 10, 20, 50, 100), random and chosen rows, 10 seeds, and prints the median MAPE,
median absolute percentage error and Spearman rho per (method, how, k). The roofline's
ceilings are measured on the machine running this script (a few seconds), which is
only meaningful when it is the CPU of ``data/cpu-amd-epyc``. Under a minute of CPU.

Usage: python scripts/transfer_h200_to_cpu.py [out.csv]
"""

from __future__ import annotations

import sys

import pandas as pd

from hwml import measurements
from hwml.predict.transfer import (
    MetaTransfer,
    RescaleTransfer,
    RooflineTransfer,
    ScratchTransfer,
    pair_rows,
    transfer_curve,
)
from hwml.profile import measure_ceilings


def main() -> None:
    h200 = measurements.load("data/nvidia-h200").layers
    cpu = measurements.load("data/cpu-amd-epyc").layers
    source = h200[h200.dtype == "float32"]
    print(f"{len(source)} source rows, {len(cpu)} target rows, {len(pair_rows(source, cpu))} pairs")
    learned = {
        "scratch": ScratchTransfer(),
        "rescale": RescaleTransfer(),
        "rescale_graph": RescaleTransfer(source_target="runtime_graph_ms"),
        "meta": MetaTransfer(),
        "roofline_envelope": RooflineTransfer(envelope=True, overhead_ms=None),
    }
    curves = [
        transfer_curve(source, cpu, learned),
        transfer_curve(
            source, cpu, {"meta_all_dtypes": MetaTransfer()}, meta_source_rows={"h200": h200}
        ),
    ]
    # torch last: once its thread pool has run, scikit-learn's k-means (choose_rows) was
    # seen to slow down many times over on a 2-core machine
    ceilings = measure_ceilings("cpu")
    keys = ("peak_flops_per_s", "bandwidth_bytes_per_s", "overhead_ms")
    print("ceilings:", {k: ceilings[k] for k in keys})
    roofline = {"roofline": RooflineTransfer.from_ceilings(ceilings)}
    curves.append(transfer_curve(source, cpu, roofline))
    curve = pd.concat(curves, ignore_index=True)
    if len(sys.argv) > 1:
        curve.to_csv(sys.argv[1], index=False)
    table = (
        curve.groupby(["method", "how", "k"], sort=False)
        .agg(
            k_used=("k_used", "first"),
            mape_pct=("mape_pct", "median"),
            medape_pct=("medape_pct", "median"),
            spearman=("spearman", "median"),
            failed=("error", lambda e: int((e != "").sum())),
        )
        .round(2)
    )
    print(table.to_string())


if __name__ == "__main__":
    main()
