"""Check hwml.deploy's CUDA-only paths on a GPU: what CPU tests can only fake.

    PYTHONPATH=. python scripts/deploy_gpu_check.py [results.json]

On ``cuda`` with a small HyperPower CNN (random weights, random data), it runs and
reports, one line per check (an error is recorded, not raised):

* every precision (``fp32``, ``tf32``, ``bf16``, ``fp16``, ``fp8``; ``int8`` should be
  refused) with the dtypes that ran, the largest output difference from float32 and the
  test error;
* 2:4 pruning in float16, stored with ``to_sparse_semi_structured`` (the dense layers it
  converted and those it left dense, with why), against the dense masked model; in
  float32 every layer must stay dense;
* the three execution modes (``eager``, ``cuda-graph``, ``compile`` with inductor),
  their outputs and test error against eager, and a CUDA graph of a bfloat16 model;
* ``measure_deployment`` of eager and CUDA-graph execution at batch 64 (runtime, power,
  energy per image; power needs the NVML energy counter).

Results go to ``results.json`` (default ``deploy_gpu_check.json``) as well.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import torch

from hwml.deploy import (
    apply_precision,
    count_parameters,
    evaluate_accuracy,
    measure_deployment,
    prepare_execution,
    prune_2to4,
    supported_precisions,
    to_semi_structured,
)
from hwml.hardware import cuda_capability, open_device
from hwml.profile import SweepOptions
from hwml.tasks.cnn import build_cnn
from hwml.tasks.images import ImageData

RESULTS: dict = {}


def check(name, fn):
    start = time.time()
    try:
        RESULTS[name] = fn()
    except Exception as err:  # noqa: BLE001 - a check's failure is a result
        traceback.print_exc()
        RESULTS[name] = f"ERROR {type(err).__name__}: {' '.join(str(err).split())[:400]}"
    print(f"{name} ({time.time() - start:.1f} s): {RESULTS[name]}", flush=True)


def main() -> None:
    out_path = sys.argv[1] if len(sys.argv) > 1 else "deploy_gpu_check.json"
    dev = torch.device("cuda")
    torch.manual_seed(0)
    config = {"conv1_filters": 32, "conv2_filters": 64, "kernel_size": 3, "dense_units": 256}
    model = build_cnn(config, 32).to(dev).eval()
    x = torch.randn(64, 1, 32, 32, device=dev)
    g = torch.Generator().manual_seed(0)
    data = ImageData(
        "random",
        torch.randn(256, 1, 32, 32, generator=g),
        torch.randint(0, 10, (256,), generator=g),
        torch.randn(300, 1, 32, 32, generator=g),
        torch.randint(0, 10, (300,), generator=g),
    )
    with torch.inference_mode():
        ref = model(x).float()
    RESULTS["capability"] = cuda_capability(dev)
    RESULTS["supported"] = supported_precisions(dev)
    print(RESULTS)

    def err_of(fn):
        return evaluate_accuracy(fn, data, batch=64, device=dev)["test_error"]

    for p in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8"):

        def run_precision(p=p):
            m, info = apply_precision(model, x, p, dev)
            with torch.inference_mode():
                out = m(x).float()
            keep = ("support", "weight_dtype", "dense_weight_dtype", "output_dtype", "tf32")
            return {k: info.get(k) for k in keep} | {
                "quantized_layers": info.get("quantized_layers"),
                "max_diff": float((out - ref).abs().max()),
                "ref_max": float(ref.abs().max()),
                "test_error": err_of(m),
            }

        check(f"precision {p}", run_precision)

    def semi_structured():
        half = prune_2to4(model)[0].half()
        sparse, info = to_semi_structured(half, dev)
        with torch.inference_mode():
            a, b = half(x.half()).float(), sparse(x.half()).float()
        kinds = [
            type(m.weight.data).__name__ for m in sparse.modules() if isinstance(m, torch.nn.Linear)
        ]
        return info | {
            "max_diff_vs_dense_masked": float((a - b).abs().max()),
            "weight_types": kinds,
            "count": count_parameters(sparse),
        }

    check("2:4 semi-structured fp16", semi_structured)
    check("2:4 fp32 stays dense", lambda: to_semi_structured(prune_2to4(model)[0], dev)[1])

    eager_error = err_of(model)
    for mode in ("eager", "cuda-graph", "compile"):

        def run_mode(mode=mode):
            fn, info = prepare_execution(model, x, mode, dev)
            out = fn(x).float()
            return info | {
                "max_diff": float((out - ref).abs().max()),
                "test_error": err_of(fn),
                "eager_test_error": eager_error,
            }

        check(f"execution {mode}", run_mode)

    def graph_of_bf16():
        m = apply_precision(model, x, "bf16", dev)[0]
        fn = prepare_execution(m, x, "cuda-graph", dev)[0]
        return {"max_diff": float((fn(x).float() - ref).abs().max())}

    check("cuda-graph of bf16", graph_of_bf16)

    def measure():
        device = open_device("cuda", power=True)
        rows = {}
        for mode in ("eager", "cuda-graph"):
            fn = prepare_execution(model, x, mode, device)[0]
            r = measure_deployment(fn, x, device, batch=64, opts=SweepOptions(progress=False))
            keys = ("runtime_ms", "runtime_graph_ms", "power_w", "energy_per_image_mj")
            rows[mode] = {k: r.get(k) for k in (*keys, "status", "power_mode", "graph_error")}
        return rows

    check("measure_deployment", measure)
    with open(out_path, "w") as fh:
        json.dump(RESULTS, fh, default=str, indent=1)


if __name__ == "__main__":
    main()
