"""``hwml fit`` and ``hwml predict``: layer-wise runtime, power and energy predictors.

    hwml fit --data DATASET --out MODEL.json [--model neuralpower|paleo|pipeline] [--dtype float32]
             [--target runtime|power|both] [--source all|sample|zoo] [--degrees 1,2,3]
             [--cv 10] [--space auto|log|linear] [--seed 0] [--calibrate MODE]
    hwml predict --model MODEL.json --net NAME --batch B [--format table|csv|json] [--strict]

``fit`` reads a measured dataset (``data/<name>`` or a folder, as written by ``hwml
profile``), keeps the layer rows of one dtype and fits NeuralPower's sparse polynomial
models (runtime, power or both) or Paleo's analytical runtime model; with ``--calibrate``
it also fits a network-level correction of summed layer runtimes on the dataset's
``nets.csv``. The model is saved as portable JSON (see :mod:`hwml.predict.io`).

``fit --model pipeline`` fits the host + device pipeline model of whole networks
(:mod:`hwml.predict.pipeline`) on the dataset's measured networks (``nets.csv``, every
dtype in it), evaluates it leaving one network out at a time and records that held-out
error per batch size in the file; ``predict`` then states it beside each prediction.

``predict`` loads such a file and prints the per-layer and total runtime (ms), power (W)
and energy (mJ) of a zoo network at a batch size; what the model does not predict is
left empty. The network is described in the element size of the model's training data.
Layers the model cannot price (kinds it has no training rows of, e.g. ``norm`` or
``attention`` for a model fitted on CNN layers, and kind ``other``) are left out: their
row is empty with ``left_out`` True, and a line under the table names their kinds and
counts and says the totals exclude them (csv: the ``left_out`` column and that line on
stderr; json: a ``left_out`` object). ``--strict`` fails instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from hwml import cli_args
from hwml.data import json_safe

__all__ = ["register", "MODEL_TYPES"]

#: Model types ``hwml predict`` accepts (``model_type`` of the saved file).
MODEL_TYPES: tuple[str, ...] = (
    "neuralpower",
    "neuralpower_regressor",
    "paleo",
    "network_calibration",
)

_TARGETS = {"runtime": "runtime_ms", "power": "power_w"}


def _degrees(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected degrees like 1,2,3, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive degrees, got {text!r}")
    return values


def _fail(command: str, message: str) -> int:
    print(f"hwml {command}: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------- fit


def _fit_rows(args: argparse.Namespace, layers: Any) -> Any:
    rows = layers
    if "dtype" in rows.columns:
        have = sorted(set(rows["dtype"].dropna().astype(str)))
        rows = rows[rows["dtype"].astype(str) == args.dtype]
        if rows.empty:
            raise ValueError(f"no layer rows of dtype {args.dtype!r} (the dataset has {have})")
    if args.source != "all":
        source = rows["source"].astype(str).str.split(":").str[0]
        rows = rows[source == args.source]
        if rows.empty:
            raise ValueError(f"no layer rows of source {args.source!r} and dtype {args.dtype!r}")
    return rows


def _build_model(args: argparse.Namespace, provenance: dict[str, Any]) -> Any:
    from hwml.predict import NeuralPower, NeuralPowerRegressor, Paleo

    target = args.target or ("both" if args.model == "neuralpower" else "runtime")
    if args.model == "paleo":
        if target != "runtime":
            raise ValueError(
                "Paleo models runtime only: use --target runtime (or --model neuralpower)"
            )
        peak = args.peak_dtype or args.dtype
        try:
            return Paleo.from_provenance(provenance, peak, device_check="warn")
        except KeyError as err:
            raise ValueError(
                f"the dataset's provenance.json lacks Paleo's peaks: {err.args[0]}"
            ) from None
    shared = {"degrees": args.degrees, "cv": args.cv, "space": args.space, "seed": args.seed}
    if target == "both":
        return NeuralPower(**shared)
    return NeuralPowerRegressor(target=_TARGETS[target], **shared)


def _cmd_fit(args: argparse.Namespace) -> int:
    import warnings

    from hwml import measurements
    from hwml.predict import NetworkCalibration, NeuralPower

    out = Path(args.out)
    if out.is_dir():
        return _fail("fit", f"--out {out} is a folder: give a file name, e.g. {out / 'model.json'}")
    if not out.parent.is_dir():
        return _fail(
            "fit", f"--out {out}: the folder {out.parent} does not exist (create it first)"
        )
    try:
        ds = measurements.load(args.data)
    except FileNotFoundError as err:
        return _fail("fit", str(err))
    if args.model == "pipeline":
        return _fit_pipeline(ds, out)
    if ds.layers is None:
        return _fail("fit", f"dataset {args.data} has no layers.csv to fit on")
    rows = _fit_rows(args, ds.layers)
    model = _build_model(args, ds.provenance)
    print(
        f"fitting {type(model).__name__} on {len(rows)} {args.dtype} layer rows of {ds.device}",
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(rows, device=ds.device)
    if isinstance(model, NeuralPower) and model.power_ is None:
        print(
            "note: no layer kind has enough rows with measured power; power and energy "
            "will predict as missing",
            file=sys.stderr,
        )
    saved = model
    if args.calibrate != "none":
        if ds.nets is None:
            return _fail(
                "fit", f"--calibrate needs the dataset's nets.csv, and {args.data} has none"
            )
        nets = (
            ds.nets[ds.nets["dtype"].astype(str) == args.dtype] if "dtype" in ds.nets else ds.nets
        )
        saved = NetworkCalibration(model, mode=args.calibrate).fit(nets, device=ds.device)
        coef = ", ".join(f"{k} {v:.4g}" for k, v in saved.coef_.items())
        print(
            f"network calibration ({args.calibrate}) on {len(nets)} network rows: {coef}",
            file=sys.stderr,
        )
    path = saved.save(args.out)
    _print_fit_summary(model)
    print(f"saved {saved.model_type} model to {path}", file=sys.stderr)
    return 0


def _fit_pipeline(ds: Any, out: Path) -> int:
    """``hwml fit --model pipeline``: fit on the measured networks, record held-out errors."""
    from hwml.predict import pipeline as P

    if ds.network_set is None or ds.network_set.empty:
        return _fail("fit", f"dataset {ds.name} has no nets.csv to fit the pipeline model on")
    table = P.measured_features(ds.network_set, ds.provenance)
    idle = P.idle_power(ds.provenance)
    dtypes = sorted(table["dtype"].unique())
    print(
        f"fitting the pipeline model on {len(table)} measured rows of "
        f"{table['network'].nunique()} networks ({', '.join(dtypes)}) of {ds.device}",
        file=sys.stderr,
    )
    model = P.PipelineModel().fit(
        table, idle_w=idle, ceilings=P.ceilings_of(ds.provenance, dtypes), device=ds.device
    )
    model.held_out_error_pct = P.held_out_errors(P.leave_out(table, "network", idle_w=idle))
    path = model.save(out)
    for what, errors in model.held_out_error_pct.items():
        by_batch = ", ".join(
            f"b{b} {e:.1f} %" for b, e in sorted(errors.items(), key=lambda kv: int(kv[0]))
        )
        print(f"held-out {what} error (leave one network out, mean abs.): {by_batch}")
    print(f"saved pipeline model to {path}", file=sys.stderr)
    return 0


def _print_fit_summary(model: Any) -> None:
    from hwml.predict import NeuralPower, NeuralPowerRegressor, Paleo

    if isinstance(model, Paleo):
        print(model.ppp_.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return
    parts = (
        [("runtime", model.runtime_), ("power", model.power_)]
        if isinstance(model, NeuralPower)
        else [(model.target, model)]
    )
    for label, reg in parts:
        if isinstance(reg, NeuralPowerRegressor):
            table = reg.summary()[
                ["group", "n_train", "space", "degree", "model_size", "cv_rmspe_pct"]
            ]
            print(f"{label}:")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))


# ---------------------------------------------------------------------- predict


def _load_model(path: str) -> Any:
    from hwml.predict import load

    if not Path(path).exists():
        raise FileNotFoundError(f"no model file {path}: make one with hwml fit")
    model = load(path)
    if model.model_type not in MODEL_TYPES:
        raise ValueError(
            f"{path} holds a {model.model_type!r} model; hwml predict takes "
            f"{', '.join(MODEL_TYPES)} models (made by hwml fit)"
        )
    return model


def _number(value: float, digits: int = 4) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}g}"


def _left_out_note(left_out: dict[str, int]) -> str:
    """One line on the layers a prediction left out ("" when none)."""
    if not left_out:
        return ""
    n = sum(left_out.values())
    kinds = ", ".join(f"{kind} ({count})" for kind, count in sorted(left_out.items()))
    return (
        f"left out: {n} layer{'s' if n != 1 else ''} the model cannot price, by kind: {kinds}; "
        "the totals exclude them (runtime and energy are lower bounds). Refit on layers of "
        "these kinds, or pass --strict to fail instead"
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np

    from hwml import zoo
    from hwml.predict.base import DTYPE_BYTES, LeftOutLayersWarning
    from hwml.predict.evaluate import network_prediction

    if _is_pipeline_file(args.model):
        return _predict_pipeline(args)
    try:
        model = _load_model(args.model)
    except FileNotFoundError as err:
        return _fail("predict", str(err))
    dtype = model.dtype_ or "float32"
    if args.dtype and args.dtype != dtype:
        return _fail("predict", f"the model was fitted on {dtype} layers, not {args.dtype}")
    net = zoo.describe_net(
        args.net,
        args.batch,
        dtype_bytes=DTYPE_BYTES.get(dtype, 4),
        weights=False,
        sample_shape=args.input_shape,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeftOutLayersWarning)  # reported below, in each format
        pred = network_prediction(model, net, strict=args.strict)
    layers, totals = pred.layers, pred.totals
    left_out = dict(pred.left_out)
    note = _left_out_note(left_out)
    header = {
        "network": args.net,
        "batch": args.batch,
        "dtype": dtype,
        "device": model.device_,
        "model_type": model.model_type,
    }
    if args.format == "json":
        doc = json_safe(
            {
                **header,
                "totals": {k: float(v) for k, v in totals.items()},
                "left_out": {
                    "layers": sum(left_out.values()),
                    "kinds": left_out,
                    "note": note or None,
                },
                "layers": layers.astype(object).to_dict(orient="records"),
            }
        )
        json.dump(
            doc, sys.stdout, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v)
        )
        print()
        return 0
    if args.format == "csv":
        total = {
            "index": "",
            "name": "total",
            "kind": "",
            **{c: totals[c] for c in ("runtime_ms", "power_w", "energy_mj")},
            "left_out": "",
        }
        out = layers.astype(object)
        out.loc[len(out)] = total
        out.to_csv(sys.stdout, index=False)
        if note:  # stdout stays one CSV table
            print(f"hwml predict: {note}", file=sys.stderr)
        return 0
    view = layers if left_out else layers.drop(columns="left_out")
    view = view.copy()
    for col, digits in (("runtime_ms", 4), ("power_w", 4), ("energy_mj", 4)):
        view[col] = [_number(float(v), digits) for v in layers[col]]
    print(view.to_string(index=False))
    r, p, e = totals["runtime_ms"], totals["power_w"], totals["energy_mj"]
    line = (
        f"\n{args.net} batch {args.batch} ({dtype}, {model.device_ or 'unknown device'}): "
        f"{len(layers)} layers; runtime {_number(r)} ms"
    )
    if "runtime_ms_raw" in totals:
        line += f" (sum of layers {_number(totals['runtime_ms_raw'])} ms, network-calibrated)"
    line += (
        f"; average power {_number(p)} W; energy {_number(e)} mJ"
        if np.isfinite(p)
        else "; power and energy: not predicted by this model"
    )
    print(line)
    if note:
        print(note)
    return 0


def _is_pipeline_file(path: str) -> bool:
    from hwml.predict.pipeline import FORMAT

    try:
        head = Path(path).read_text()[:4096]
    except OSError:
        return False
    return f'"format": "{FORMAT}"' in head


def _predict_pipeline(args: argparse.Namespace) -> int:
    """``hwml predict`` with a pipeline model: per-layer shares, totals and stated error."""
    from hwml import zoo
    from hwml.predict import PredictorError
    from hwml.predict.pipeline import PipelineModel

    dtype = args.dtype or "float32"
    try:
        model = PipelineModel.load(args.model)
        net = zoo.describe_net(args.net, args.batch, weights=False, sample_shape=args.input_shape)
        total = model.predict_network(net, dtype)
    except PredictorError as err:
        return _fail("predict", str(err))
    layers = model.predict_layers(net, dtype)
    header = {
        "network": args.net,
        "batch": args.batch,
        "dtype": dtype,
        "device": model.device,
        "model_type": "pipeline",
    }
    if args.format == "json":
        doc = {**header, "totals": total, "layers": layers.to_dict(orient="records")}
        json.dump(json_safe(doc), sys.stdout, indent=1, default=str)
        print()
        return 0
    if args.format == "csv":
        layers.to_csv(sys.stdout, index=False)
    else:
        view = layers.copy()
        for col in ("host_ms", "device_ms"):
            view[col] = [_number(float(v) * 1e3, 3) for v in layers[col]]
        print(
            view.rename(columns={"host_ms": "host_us", "device_ms": "device_us"}).to_string(
                index=False
            )
        )
    lines = [
        f"\n{args.net} batch {args.batch} ({dtype}, {model.device or 'unknown device'}): "
        f"{len(net)} layers",
        f"host issue {_number(total['host_ms'])} ms, GPU {_number(total['device_ms'])} ms "
        f"({total['bound']}-bound); eager forward {_number(total['runtime_ms'])} ms "
        f"(CUDA graph {_number(total['runtime_graph_ms'])} ms)",
        f"power {_number(total['power_w'])} W; energy {_number(total['energy_mj'])} mJ per "
        f"forward ({_number(total['graph_energy_mj'])} mJ from a CUDA graph)",
        f"held-out error near batch {args.batch} (networks the model never saw): runtime "
        f"±{_number(total['runtime_error_pct'], 3)} %, energy "
        f"±{_number(total['energy_error_pct'], 3)} % (mean absolute)",
    ]
    print("\n".join(lines), file=sys.stderr if args.format == "csv" else sys.stdout)
    return 0


# ---------------------------------------------------------------------- parser


def register(subparsers: Any) -> None:
    """Add the ``fit`` and ``predict`` sub-commands to the ``hwml`` parser's sub-parsers."""
    f = subparsers.add_parser(
        "fit",
        help="fit a layer runtime/power predictor on a measured dataset",
        description="Fit NeuralPower (runtime, power) or Paleo (runtime) on a dataset's layers, "
        "or the host + device pipeline model on its measured networks.",
    )
    f.add_argument("--data", required=True, help="dataset folder: a name under data/ or a path")
    f.add_argument("--out", required=True, help="model file to write (JSON)")
    f.add_argument(
        "--model",
        choices=("neuralpower", "paleo", "pipeline"),
        default="neuralpower",
        help="neuralpower or paleo (layer models, from layers.csv) or pipeline (whole "
        "networks, host + device, from nets.csv; about two minutes)",
    )
    f.add_argument(
        "--dtype", default="float32", help="dtype of the layer rows to fit (default float32)"
    )
    f.add_argument(
        "--target",
        choices=("runtime", "power", "both"),
        default=None,
        help="what to model (default: both for neuralpower, runtime for paleo)",
    )
    f.add_argument(
        "--source",
        choices=("all", "sample", "zoo"),
        default="all",
        help="layer rows to fit: random samples, zoo layers or all (default all)",
    )
    f.add_argument(
        "--degrees",
        type=_degrees,
        default=(1, 2, 3),
        help="polynomial degrees tried by cross-validation (default 1,2,3)",
    )
    f.add_argument("--cv", type=int, default=10, help="cross-validation folds (default 10)")
    f.add_argument(
        "--space",
        choices=("auto", "log", "linear"),
        default="auto",
        help="NeuralPower's fitting space (default auto: per group, by CV)",
    )
    f.add_argument("--seed", type=int, default=0, help="seed of the folds")
    f.add_argument(
        "--peak-dtype",
        default=None,
        help="Paleo: which measured peak to use (default: --dtype; e.g. tf32)",
    )
    f.add_argument(
        "--calibrate",
        choices=("none", "global", "overhead", "affine", "per_group"),
        default="none",
        help="also fit a network-level correction of summed layers on nets.csv",
    )
    f.set_defaults(func=_cmd_fit)

    p = subparsers.add_parser(
        "predict",
        help="per-layer and total runtime, power and energy of a network",
        description="Predict a network (zoo, torchvision or your own) with a model made by hwml fit.",
    )
    p.add_argument("--model", required=True, help="model file written by hwml fit")
    p.add_argument("--net", required=True, help=cli_args.NET_HELP)
    p.add_argument(
        "--input-shape",
        type=cli_args.sample_shape,
        default=None,
        help="one input's shape without the batch, e.g. 3,224,224 (needed for "
        "package.module:callable)",
    )
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument(
        "--dtype",
        default=None,
        help="dtype to predict (pipeline models: float32 or float16, default float32; layer "
        "models: the dtype they were fitted on)",
    )
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail when the model cannot price some of the network's layers (default: leave "
        "them out, name them, and total the others)",
    )
    p.set_defaults(func=_cmd_predict)
