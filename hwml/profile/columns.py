"""The columns of the profiling tables, their units and meanings, and the row statuses.

:data:`LAYER_COLUMNS`, :data:`NET_LAYER_COLUMNS` and :data:`NET_COLUMNS` are the headers of
``layers.csv`` (and ``repeats.csv``), ``net_layers.csv`` and ``nets.csv``;
:func:`column_docs` gives ``{table: {column: (unit, meaning)}}`` for the dataset README.
A row's ``status`` is ``ok``, ``low_busy`` (the GPU was busy for less than
:data:`MIN_BUSY_FRACTION` of the power window), ``over_limit`` (power above
:data:`OVER_LIMIT_FACTOR` times the board's limit), ``no_power``, ``oom`` or ``error``.
"""

from __future__ import annotations

import torch

from hwml.describe import KINDS, Layer

__all__ = [
    "DTYPES",
    "LAYER_COLUMNS",
    "MIN_BUSY_FRACTION",
    "NET_COLUMNS",
    "NET_LAYER_COLUMNS",
    "OVER_LIMIT_FACTOR",
    "column_docs",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

_LAYER_FEATURES = list(Layer.linear(1, 1, 1).to_row())

_MEASURED: dict[str, tuple[str, str]] = {
    "runtime_ms": (
        "ms",
        "eager runtime: median time of one call launched from Python, what a PyTorch user "
        "sees (CUDA events after warm-up; CPU: monotonic clock)",
    ),
    "runtime_p10_ms": ("ms", "10th percentile of the timed eager calls"),
    "runtime_p90_ms": ("ms", "90th percentile of the timed eager calls"),
    "runtime_cv": ("1", "coefficient of variation of the timed eager calls"),
    "repeats": ("count", "timed eager calls"),
    "host_dispatch_ms": (
        "ms",
        "host dispatch: CPU time to issue one call into an empty queue (GPU only)",
    ),
    "runtime_graph_ms": (
        "ms",
        "GPU runtime: median time of one call replayed from a CUDA graph, launch overhead "
        "removed (empty when the workload could not be captured; see graph_error)",
    ),
    "graph_calls": ("count", "calls captured in one CUDA graph (about 0.5 ms of work)"),
    "graph_error": ("-", "why the workload could not be captured into a CUDA graph"),
    "power_mode": (
        "-",
        "how the workload ran during the power window: 'graph' (replays of the CUDA graph, "
        "the GPU kept busy) or 'eager' (when it could not be captured)",
    ),
    "power_w": (
        "W",
        "average board power over the window, ΔE / Δt between two energy-counter updates",
    ),
    "energy_mj": (
        "mJ",
        "energy of one call: ΔE / calls completed inside the same window",
    ),
    "power_window_s": ("s", "window length, between two observed energy-counter updates"),
    "power_periods": ("count", "energy-counter updates the window spans"),
    "window_energy_mj": ("mJ", "ΔE: energy the counter accumulated over the window"),
    "window_calls": ("count", "calls completed inside the window (fractional at its edges)"),
    "busy_fraction": (
        "1",
        "share of the window the GPU spent executing the workload (CUDA events); rows under "
        "0.95 have status low_busy",
    ),
    "window_device_ms": (
        "ms",
        "GPU time of one call while the window ran (a power cap can make it longer than "
        "runtime_graph_ms)",
    ),
    "eager_power_w": ("W", "average power over a second window with eager launches"),
    "eager_energy_mj": ("mJ", "energy of one eagerly launched call: ΔE / calls in that window"),
    "eager_window_s": ("s", "length of the eager window"),
    "eager_busy_fraction": (
        "1",
        "share of the eager window the GPU executed the workload (calls x window_device_ms "
        "/ window): what host dispatch leaves of the GPU's time",
    ),
    "peak_mem_bytes": (
        "bytes",
        "peak memory PyTorch allocated for the workload in eager calls (inputs, weights, "
        "outputs, workspace; see the folder's notes for rows measured before 2026-11-30)",
    ),
    "used_mem_bytes": ("bytes", "device memory in use (NVML) at the end of the measurement"),
    "sm_clock_mhz": ("MHz", "SM clock read right after the measurement"),
    "gpu_uuid": (
        "-",
        "UUID of the GPU that measured the row (several GPUs of one model may share a sweep)",
    ),
    "run_id": ("-", "the run (provenance.json runs[].run_id) that measured the row"),
    "status": (
        "-",
        "ok; low_busy (power measured but the GPU idled for over 5 % of the window: not "
        "fitted on unless asked); over_limit (power above the board's power limit: a window "
        "or counter error); no_power (runtime measured, power not); oom; error",
    ),
    "error": ("-", "error message when status is not ok"),
    "timestamp": ("-", "UTC time the row was measured"),
}

#: Busy fraction under which a power row gets ``status = low_busy``.
MIN_BUSY_FRACTION = 0.95
#: A window may read a little above the board's power limit (the limit is held over a
#: longer time than a 0.3 s window; on an H200, 0.3 s windows read up to ~4 % above 700 W
#: while a 3 s loop on the same workload agreed within 4 %). Above this factor x the
#: limit, a reading is taken for a window or counter error (``status = over_limit``).
OVER_LIMIT_FACTOR = 1.05

_LAYER_META: dict[str, tuple[str, str]] = {
    "key": ("-", "row identity used to resume a sweep"),
    "source": (
        "-",
        "'sample' (random configuration) or 'zoo:<network>' (a layer of a zoo network)",
    ),
    "dtype": ("-", "tensor dtype of inputs and weights"),
}

_FEATURE_DOCS: dict[str, tuple[str, str]] = {
    "name": ("-", "layer name inside its network (empty for sampled layers)"),
    "kind": ("-", "layer kind: " + ", ".join(KINDS)),
    "op": (
        "-",
        "activation function; 'adaptive' for adaptive pooling; the variant of a norm "
        "(layer_norm, group_norm, ...), matmul (matmul, bmm, einsum:<equation>, linear, "
        "...), attention (scaled_dot_product_attention, multihead_attention, "
        "shifted_window_attention, ...), softmax or reduce layer (mean, sum, amax, ...); "
        "the data movement of a flatten layer "
        "(permute, transpose, chunk, getitem, pad, roll, ...; empty for flatten, view "
        "and reshape); the operation's name for kind other",
    ),
    "batch": ("count", "batch size"),
    "in_channels": ("count", "input channels (conv, pool, batch norm, group norm)"),
    "in_h": ("px", "input height (1 for 2-D inputs)"),
    "in_w": ("px", "input width (1 for 2-D inputs)"),
    "out_channels": ("count", "output channels"),
    "out_h": ("px", "output height"),
    "out_w": ("px", "output width"),
    "kernel_h": ("px", "kernel height (window attention: window height)"),
    "kernel_w": ("px", "kernel width (window attention: window width)"),
    "stride_h": ("px", "vertical stride (window attention: vertical shift of the windows)"),
    "stride_w": ("px", "horizontal stride (window attention: horizontal shift)"),
    "pad_h": ("px", "vertical zero padding (window attention: bottom padding to whole windows)"),
    "pad_w": ("px", "horizontal zero padding (window attention: right padding)"),
    "groups": (
        "count",
        "convolution groups (= in_channels for depthwise); norm groups (norm); heads (attention)",
    ),
    "in_features": (
        "count",
        "linear input features; norm: elements each mean and variance is taken over; "
        "matmul: contraction size (0 without one); attention: query/key feature size "
        "(the embedding width for multi-head and window attention); softmax: length of "
        "the softmax dimension; reduce: input elements per output element",
    ),
    "out_features": (
        "count",
        "linear output features; norm: affine width (0: no affine); attention: value "
        "feature size (the embedding width for multi-head and window attention)",
    ),
    "bias": (
        "bool",
        "conv/linear bias; norm: affine shift; attention: projection biases; matmul: "
        "F.linear's bias",
    ),
    "ceil_mode": ("bool", "pooling output rounds up"),
    "dtype_bytes": ("bytes", "bytes per element"),
    "in_shapes": ("-", "shapes of the inputs, 'x'-separated, ';' between inputs"),
    "out_shape": ("-", "shape of the output"),
    "inputs": ("-", "names of the layers feeding this one (graph edges)"),
    "macs": (
        "count",
        "multiply-accumulates (conv, linear, matmul; attention: projections and the two products)",
    ),
    "flops": ("count", "2 x macs (the FlopCounterMode convention)"),
    "vector_ops": (
        "count",
        "element-wise operations not in flops (bias, pooling, batch norm, activation, "
        "add, mul, norm, softmax, reduce, attention's scaling and softmax; 0 for data "
        "movement)",
    ),
    "params": ("count", "learnable parameters"),
    "param_bytes": ("bytes", "parameter bytes"),
    "input_bytes": ("bytes", "input activation bytes"),
    "output_bytes": ("bytes", "output activation bytes"),
    "total_bytes": ("bytes", "input + parameter + output bytes"),
    "arith_intensity": ("FLOP/byte", "(flops + vector_ops) / total_bytes"),
}

LAYER_COLUMNS: list[str] = ["key", "source", "dtype", *_LAYER_FEATURES, *_MEASURED]
NET_LAYER_COLUMNS: list[str] = ["key", "network", "index", "dtype", *_LAYER_FEATURES, *_MEASURED]
NET_COLUMNS: list[str] = [
    "key",
    "network",
    "batch",
    "dtype",
    "layers",
    "params",
    "macs",
    "flops",
    "activation_bytes",
    *_MEASURED,
    "energy_per_image_mj",
    "eager_energy_per_image_mj",
]
_NET_DOCS: dict[str, tuple[str, str]] = {
    "key": _LAYER_META["key"],
    "network": ("-", "zoo network name"),
    "batch": ("count", "batch size"),
    "dtype": _LAYER_META["dtype"],
    "layers": ("count", "layers in the description"),
    "params": ("count", "learnable parameters"),
    "macs": ("count", "multiply-accumulates"),
    "flops": ("count", "2 x macs"),
    "activation_bytes": ("bytes", "sum of every layer's output bytes"),
    **_MEASURED,
    "energy_mj": ("mJ", "energy of one forward pass of the batch: ΔE / calls in the window"),
    "energy_per_image_mj": ("mJ", "energy_mj / batch"),
    "eager_energy_per_image_mj": ("mJ", "eager_energy_mj / batch"),
}


#: Columns of ``validation.csv`` (written by :mod:`hwml.validation`, documented here with
#: the other tables of a dataset folder).
_VALIDATION_DOCS: dict[str, tuple[str, str]] = {
    "key": _LAYER_META["key"],
    "workload": ("-", "layer kind, or network and batch"),
    "kind": ("-", "'layer' or 'network'"),
    "network": ("-", "zoo network (networks only)"),
    "batch": ("count", "batch size"),
    "dtype": _LAYER_META["dtype"],
    "flops": ("count", "FLOPs of one call"),
    "runtime_ms": _MEASURED["runtime_ms"],
    "runtime_graph_ms": _MEASURED["runtime_graph_ms"],
    "host_dispatch_ms": _MEASURED["host_dispatch_ms"],
    "graph_calls": _MEASURED["graph_calls"],
    "busy_fraction": ("1", "busy share of hwml's graph window"),
    "eager_busy_fraction": _MEASURED["eager_busy_fraction"],
    "hwml_window_s": ("s", "length of hwml's graph window"),
    "hwml_graph_energy_mj": ("mJ", "hwml: energy per call, window of graph replays"),
    "hwml_eager_energy_mj": ("mJ", "hwml: energy per call, window of eager launches"),
    "loop_graph_energy_mj": ("mJ", "reference: ΔE / calls over >= 3 s of graph replays, two reads"),
    "loop_eager_energy_mj": (
        "mJ",
        "reference: ΔE / calls over >= 3 s of eager launches, two reads",
    ),
    "zeus_eager_energy_mj": (
        "mJ",
        "Zeus (zeus-ml ZeusMonitor window): energy per call, eager loop",
    ),
    "hwml_graph_power_w": ("W", "hwml: power, graph window"),
    "hwml_eager_power_w": ("W", "hwml: power, eager window"),
    "loop_graph_power_w": ("W", "reference: ΔE over the graph loop's wall time"),
    "loop_eager_power_w": ("W", "reference: ΔE over the eager loop's wall time"),
    "zeus_eager_power_w": ("W", "Zeus: energy over its window's time"),
    "loop_eager_s": ("s", "length of the eager reference loop"),
    "loop_graph_s": ("s", "length of the graph reference loop"),
    "zeus_eager_s": ("s", "length of Zeus's window"),
    "hwml_status": ("-", "status hwml's row would have had (ok, low_busy, over_limit, ...)"),
    "gpu_uuid": _MEASURED["gpu_uuid"],
    "run_id": _MEASURED["run_id"],
    "status": ("-", "ok (empty in rows written before the column was filled)"),
    "error": _MEASURED["error"],
    "timestamp": _MEASURED["timestamp"],
}


def column_docs() -> dict[str, dict[str, tuple[str, str]]]:
    """``{table: {column: (unit, meaning)}}`` for the three profiler tables."""
    layer = {**_LAYER_META, **_FEATURE_DOCS, **_MEASURED}
    net_layer = {
        **layer,
        "network": ("-", "zoo network name"),
        "index": ("count", "execution order"),
    }
    return {
        "layers": {c: layer[c] for c in LAYER_COLUMNS},
        "repeats": {c: layer[c] for c in LAYER_COLUMNS},
        "net_layers": {c: net_layer[c] for c in NET_LAYER_COLUMNS},
        "nets": {c: _NET_DOCS[c] for c in NET_COLUMNS},
        "validation": dict(_VALIDATION_DOCS),
    }
