"""Profiling sweeps: runtime, power, energy and memory of layers and networks.

Three sweeps fill a dataset folder (see :mod:`hwml.data`):

* :func:`sweep_layers` → ``layers.csv``: single layers built from hyper-parameters, both
  sampled at random (seeded) over wide ranges and taken from every zoo network;
* :func:`sweep_networks` → ``nets.csv``: whole zoo networks at several batch sizes and
  dtypes;
* :func:`sweep_net_layers` → ``net_layers.csv``: every layer of a zoo network timed in
  place, with its real input shape and the network's own weights.

:func:`measure_ceilings` is a seconds-long microbenchmark of FLOP/s, bandwidth and
per-call overhead (for roofline transfer, :mod:`hwml.predict.transfer`);
:func:`calibrate` measures the device's ceilings (matrix-product rate per dtype, copy
bandwidth), the energy counter's update period and the idle power; they go into the
dataset's ``provenance.json``.

Every sweep appends rows one at a time, skips rows already present (so a rerun resumes
where a killed run stopped), records an out-of-memory configuration as ``status=oom``
and carries on, and shows a progress bar with an ETA.

Modules: :mod:`~hwml.profile.columns` (the tables' columns and row statuses),
:mod:`~hwml.profile.configs` (options, sampled and zoo layer configurations),
:mod:`~hwml.profile.measure` (one callable, layer or network; calibration),
:mod:`~hwml.profile.sweeps` (the resumable sweeps into a folder).
"""

from hwml.profile.ceilings import measure_ceilings
from hwml.profile.columns import (
    DTYPES,
    LAYER_COLUMNS,
    MIN_BUSY_FRACTION,
    NET_COLUMNS,
    NET_LAYER_COLUMNS,
    OVER_LIMIT_FACTOR,
    column_docs,
)
from hwml.profile.configs import SAMPLED_KINDS, SweepOptions, layer_key, sample_layers, zoo_layers
from hwml.profile.measure import (
    GRAPH_TARGET_MS,
    calibrate,
    eager_peak_memory,
    measure_callable,
    measure_layer,
    measure_module,
    measure_network,
    model_inputs,
)
from hwml.profile.sweeps import (
    begin_run,
    failed_measurement,
    logged_run,
    measure_task,
    run_rows,
    sweep_layers,
    sweep_net_layers,
    sweep_networks,
    worker_device,
    write_dataset_readme,
)

__all__ = [
    "DTYPES",
    "GRAPH_TARGET_MS",
    "LAYER_COLUMNS",
    "MIN_BUSY_FRACTION",
    "NET_COLUMNS",
    "NET_LAYER_COLUMNS",
    "OVER_LIMIT_FACTOR",
    "SAMPLED_KINDS",
    "SweepOptions",
    "begin_run",
    "calibrate",
    "column_docs",
    "eager_peak_memory",
    "failed_measurement",
    "layer_key",
    "logged_run",
    "measure_callable",
    "measure_ceilings",
    "measure_layer",
    "measure_module",
    "measure_network",
    "model_inputs",
    "measure_task",
    "run_rows",
    "sample_layers",
    "sweep_layers",
    "sweep_net_layers",
    "sweep_networks",
    "worker_device",
    "write_dataset_readme",
    "zoo_layers",
]
