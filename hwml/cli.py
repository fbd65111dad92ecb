"""The ``hwml`` command line: a thin face over the same API the notebooks use.

hwml describe --net vgg16 | torchvision:NAME | pkg.module:fn [--input-shape C,H,W] --batch 64
hwml describe --list
hwml profile calibrate|layers|nets|net-layers [--out DIR] [--device cuda] [--cluster local] ...
hwml fit --data DATASET --out MODEL.json
hwml predict --model MODEL.json --net NAME --batch B
hwml optimize ...
hwml nas benchmark|summary|price|search ...
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwml import cli_args, cli_nas, cli_optimize, cli_predict

__all__ = ["main", "build_parser"]


def _ints(text: str) -> list[int]:
    return cli_args.positive_ints(text)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# ---------------------------------------------------------------------- describe


def _cmd_describe(args: argparse.Namespace) -> int:
    from hwml import zoo

    if args.list:
        for name in zoo.names():
            e = zoo.ZOO[name]
            mark = " (survey Table 2)" if e.table2 else ""
            print(f"{name:16s} {e.channels}x{e.image_size}x{e.image_size}  {e.source}{mark}")
        return 0
    if not args.net:
        print("hwml describe: give --net NAME (or --list)", file=sys.stderr)
        return 2
    net = zoo.describe_net(
        args.net,
        args.batch,
        dtype_bytes=args.dtype_bytes,
        weights=False,
        sample_shape=args.input_shape,
    )
    table = net.table()
    totals = net.totals()
    if args.format == "json":
        json.dump(
            {
                "network": net.name,
                "batch": net.batch,
                "input_shape": list(net.input_shape),
                "totals": totals,
                "layers": table.to_dict(orient="records"),
            },
            sys.stdout,
            indent=1,
            default=float,
        )
        print()
    elif args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    else:
        cols = ["index", "name", "kind", "out_shape", "flops", "params", "output_bytes"]
        view = table[cols].copy()
        view["flops"] = view["flops"].map(lambda v: f"{v / 1e6:,.1f}M")
        view["params"] = view["params"].map(lambda v: f"{v / 1e3:,.1f}k")
        view["output_bytes"] = view["output_bytes"].map(lambda v: f"{v / 2**20:,.2f}MiB")
        print(view.to_string(index=False))
        print(
            f"\n{net.name} batch {net.batch}: {int(totals['layers'])} layers, "
            f"{totals['params'] / 1e6:.2f} M params, {totals['flops'] / 1e9:.2f} GFLOPs "
            f"({totals['macs'] / 1e9:.2f} GMACs), activations {totals['activation_bytes'] / 2**20:.1f} MiB"
        )
    return 0


# ---------------------------------------------------------------------- profile


def _open(args: argparse.Namespace):
    from hwml.hardware import open_device

    return open_device(args.device, power=not args.no_power)


def _out_folder(args: argparse.Namespace, device: Any) -> Path:
    from hwml.data import data_root, slugify

    if args.out:
        return Path(args.out)
    name = device.info.get("gpu_name") if device.is_cuda else f"cpu-{device.info.get('cpu')}"
    return data_root() / slugify(str(name))


def _opts(args: argparse.Namespace):
    from hwml.profile import SweepOptions

    return SweepOptions(
        dtype=args.dtype,
        power=not args.no_power,
        periods=args.periods,
        budget_ms=args.budget_ms,
        graph=not args.no_graph,
        eager_power=args.eager_power,
        shard=args.shard,
        progress=not args.no_progress,
        retry_failed=args.retry_failed,
    )


def _nothing_to_measure(args: argparse.Namespace) -> str | None:
    """Why ``hwml profile layers`` with these arguments would measure no row, or None."""
    if args.what != "layers" or args.zoo_batches:
        return None
    counts = {kind: args.samples.get(kind, args.samples.get("*", 0)) for kind in args.kinds}
    if any(counts.values()):
        return None
    if not args.kinds:
        return "--kinds names no layer kind"
    why = f"--samples gives 0 configurations of {', '.join(args.kinds)} and no --zoo-batches"
    unused = sorted(set(args.samples) - set(args.kinds) - {"*"})
    if unused:
        why += f" ({', '.join(unused)} in --samples but not in --kinds)"
    return why


def _table_of(args: argparse.Namespace) -> str | None:
    """The table a ``hwml profile`` invocation appends to (None for calibrate)."""
    if args.what == "layers":
        return "repeats" if args.repeat > 1 else "layers"
    return {"nets": "nets", "net-layers": "net_layers", "validate": "validation"}.get(args.what)


def _cmd_profile(args: argparse.Namespace) -> int:
    """``hwml profile``: calibrate a device, or sweep measurements into a dataset folder.

    Returns:
        The exit status: 0, or 2 when there is nothing to measure or no energy counter
        for ``validate``.
    """
    from hwml import profile, zoo
    from hwml.data import read_provenance

    why = _nothing_to_measure(args)
    if why is not None:  # before the device is opened or the provenance written
        print(f"hwml profile: nothing to measure: {why}", file=sys.stderr)
        return 2
    device = _open(args)
    if args.what == "validate" and not (device.is_cuda and device.meter.available):
        print(
            "hwml profile: validate needs a GPU with NVML's energy counter "
            f"(device {args.device}: {getattr(device.meter, 'reason', 'no energy meter')})",
            file=sys.stderr,
        )
        return 2
    if args.git_commit:  # a copy of the tree without .git (e.g. on a remote GPU box)
        device.info["git_commit"] = args.git_commit
    folder = _out_folder(args, device)
    # What main() needs to tell what an interruption kept.
    args.out_folder = folder
    args.runs_before = {r.get("run_id") for r in read_provenance(folder).get("runs", [])}
    command = "hwml " + " ".join(shlex.quote(a) for a in args.argv)
    quick = args.what != "calibrate"
    cal = profile.calibrate(device, quick=quick)
    if quick:  # a sweep records the counter period and idle power, not the ceilings
        cal = {k: cal[k] for k in ("counter_update_period_s", "idle_power_w")}
    print(
        f"device {device.info.get('gpu_name') or device.info.get('device_name')}; "
        f"counter period {cal['counter_update_period_s']:.4f} s; "
        f"idle power {cal['idle_power_w']:.1f} W; output {folder}",
        file=sys.stderr,
    )
    opts = _opts(args)
    if args.what == "calibrate":
        return _record_calibration(folder, device, opts, command, cal)
    nets = {"all": zoo.names(), "set": zoo.network_set(args.cells)}.get(
        ",".join(args.nets), args.nets
    )
    for n in nets:
        zoo.input_shape(n, 1, args.input_shape)
    from hwml.cluster import open_cluster

    spec = args.cluster if args.what != "net-layers" else "process"
    with open_cluster(spec, device=args.device) as cluster:
        if not cluster.in_process:
            print(f"measuring on {cluster.describe()}", file=sys.stderr)
        n = _sweep(args, folder, device, nets, opts, command, cal, cluster)
    print(f"{n} rows written to {folder}", file=sys.stderr)
    return 0


def _record_calibration(
    folder: Path, device: Any, opts: Any, command: str, cal: dict[str, Any]
) -> int:
    """Log a ``hwml profile calibrate`` run as completed, rewrite the README, print ``cal``.

    Returns:
        The exit status, 0.
    """
    from hwml import profile
    from hwml.data import now_iso, update_provenance

    begun = profile.begin_run(folder, device, opts, command, cal, "calibrate")
    run = {**begun["run"], "finished": now_iso(), "outcome": "completed"}
    update_provenance(folder, begun["facts"], run)
    profile.write_dataset_readme(folder)
    print(json.dumps(cal, indent=1, default=float))
    return 0


def _sweep(
    args: argparse.Namespace,
    folder: Path,
    device: Any,
    nets: list[str],
    opts: Any,
    command: str,
    cal: dict[str, Any],
    cluster: Any = None,
) -> int:
    """Run the sweep ``args.what`` names (layers, nets, validate or net-layers) into ``folder``,
    its rows measured on ``cluster`` (net-layers: always in this process).

    Returns:
        The number of rows written.
    """
    from hwml import profile

    if args.what == "layers":
        return profile.sweep_layers(
            folder,
            device,
            _layer_items(args, nets),
            opts,
            command=command,
            calibration=cal,
            table="repeats" if args.repeat > 1 else "layers",
            repeat=args.repeat,
            cluster=cluster,
        )
    if args.what == "nets":
        return profile.sweep_networks(
            folder,
            device,
            nets,
            args.batches,
            opts,
            command=command,
            calibration=cal,
            sample_shape=args.input_shape,
            cluster=cluster,
        )
    if args.what == "validate":
        from hwml import validation
        from hwml.data import read_table

        layers = validation.pick_layers(
            read_table(args.layers_from, "layers"), args.validate_layers, seed=args.seed
        )
        return validation.sweep_validation(
            folder,
            device,
            layers,
            nets,
            args.batches,
            opts,
            seconds=args.seconds,
            command=command,
            calibration=cal,
            cluster=cluster,
        )
    return profile.sweep_net_layers(
        folder, device, nets, args.batches, opts, command=command, calibration=cal
    )


def _layer_items(args: argparse.Namespace, nets: list[str]) -> list:
    """The layers ``hwml profile layers`` measures: random samples, then zoo layers.

    Returns:
        ``(source, layer)`` pairs for ``profile.sweep_layers``: ``("sample", layer)`` for
        each of ``args.samples`` random configurations of ``args.kinds``, followed by the
        distinct layers of ``nets`` at ``args.zoo_batches`` (pooling kinds go together;
        ``add`` brings ``mul`` and ``concat``).
    """
    from hwml import profile

    items: list = []
    for kind in args.kinds:
        count = args.samples.get(kind, args.samples.get("*", 0))
        items += (
            [("sample", layer) for layer in profile.sample_layers(kind, count, args.seed)]
            if count
            else []
        )
    if args.zoo_batches:
        zoo_kinds = [k for k in args.kinds]
        if "maxpool2d" in zoo_kinds or "avgpool2d" in zoo_kinds:
            zoo_kinds += ["maxpool2d", "avgpool2d"]
        if "add" in zoo_kinds:
            zoo_kinds += ["mul", "concat"]
        items += profile.zoo_layers(nets, args.zoo_batches, kinds=zoo_kinds)
    return items


def _samples(text: str) -> dict[str, int]:
    """``1500`` (every kind) or ``conv2d=1500,linear=400``: counts of zero or more."""
    out: dict[str, int] = {}
    parts = _names(text)
    if not parts:
        raise argparse.ArgumentTypeError(f"expected N or KIND=N,..., got {text!r}")
    for part in parts:
        kind, _, value = part.partition("=") if "=" in part else ("*", "", part)
        kind = kind.strip()
        if not kind:
            raise argparse.ArgumentTypeError(f"{part!r} names no layer kind before '='")
        try:
            count = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected N or KIND=N with N a whole number, got {part!r}"
            ) from None
        if count < 0:
            raise argparse.ArgumentTypeError(f"a sample count cannot be negative, got {part!r}")
        out[kind] = count
    return out


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hwml`` command."""
    p = argparse.ArgumentParser(prog="hwml", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    _add_describe(sub)
    _add_profile(sub)
    cli_predict.register(sub)  # fit, predict
    cli_optimize.register(sub)  # optimize
    cli_nas.register(sub)  # nas
    return p


def _add_describe(sub: Any) -> None:
    """The ``describe`` sub-command."""
    d = sub.add_parser("describe", help="per-layer table of a network")
    d.add_argument("--net", help=cli_args.NET_HELP)
    d.add_argument(
        "--input-shape",
        type=cli_args.sample_shape,
        default=None,
        help="one input's shape without the batch, e.g. 3,224,224 (needed for "
        "package.module:callable)",
    )
    d.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    d.add_argument("--format", choices=("table", "csv", "json"), default="table")
    d.add_argument("--dtype-bytes", type=int, default=4, help="bytes per element (4 = fp32)")
    d.add_argument("--list", action="store_true", help="list the zoo")
    d.set_defaults(func=_cmd_describe)


def _add_profile(sub: Any) -> None:
    """The ``profile`` sub-command (its options in the order ``--help`` lists them)."""
    pr = sub.add_parser("profile", help="measure layers and networks on a device")
    pr.add_argument(
        "what",
        choices=("calibrate", "layers", "nets", "net-layers", "validate"),
        help="validate: hwml's energy per call beside a sustained two-read loop and Zeus",
    )
    pr.add_argument("--out", help="dataset folder (default data/<gpu name>)")
    pr.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    pr.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    _add_profile_selection(pr)
    _add_profile_method(pr)
    pr.add_argument(
        "--cluster",
        type=cli_args.cluster,
        default="local",
        help=cli_args.CLUSTER_HELP + "; net-layers always runs in this process",
    )
    pr.add_argument(
        "--shard",
        type=cli_args.shard,
        default=(0, 1),
        help="I/N: this process's share (of the rows; --cluster spreads them over GPUs)",
    )
    pr.add_argument("--no-progress", action="store_true")
    pr.add_argument(
        "--git-commit",
        default=None,
        help="commit to record when the tree has no .git (default: git rev-parse)",
    )
    pr.set_defaults(func=_cmd_profile)


def _add_profile_selection(pr: argparse.ArgumentParser) -> None:
    """``hwml profile`` options that choose what is measured: layers, networks, batches."""
    pr.add_argument(
        "--kinds",
        type=_names,
        default=["conv2d", "linear", "maxpool2d", "avgpool2d"],
        help="layer kinds to sample (layers)",
    )
    pr.add_argument(
        "--samples",
        type=_samples,
        default={"*": 100},
        help="random configurations per kind: N or kind=N,... (layers; default 100)",
    )
    pr.add_argument("--seed", type=int, default=0, help="sampling seed")
    pr.add_argument(
        "--zoo-batches",
        type=_ints,
        default=[],
        help="also measure every distinct zoo layer at these batch sizes (layers)",
    )
    pr.add_argument(
        "--nets",
        type=_names,
        default=["all"],
        help="networks: comma-separated specs (zoo name, torchvision:NAME, cells:SEED, "
        "package.module:callable), 'all' (the zoo, default) or 'set' (the measured network "
        "set: the zoo, --cells cell-space networks and every other torchvision classifier)",
    )
    pr.add_argument(
        "--retry-failed",
        action="store_true",
        help="measure again the rows a previous run recorded with status 'error' (by "
        "default a resumed sweep skips every row already in the table)",
    )
    pr.add_argument(
        "--input-shape",
        type=cli_args.sample_shape,
        default=None,
        help="one input's shape without the batch, e.g. 3,224,224 (nets; needed for "
        "package.module:callable)",
    )
    pr.add_argument(
        "--cells",
        type=int,
        default=40,
        help="cell-space networks in --nets set (default 40)",
    )
    pr.add_argument(
        "--batches", type=_ints, default=[1, 16, 64, 128], help="batch sizes (nets, net-layers)"
    )
    pr.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each layer R times into repeats.csv (layers; noise floor)",
    )


def _add_profile_method(pr: argparse.ArgumentParser) -> None:
    """``hwml profile`` options that choose how it measures, ``validate``'s included."""
    pr.add_argument("--no-power", action="store_true", help="runtime only")
    pr.add_argument("--periods", type=int, default=3, help="counter updates per power window")
    pr.add_argument("--budget-ms", type=float, default=50.0, help="timed-repeat budget per row")
    pr.add_argument(
        "--no-graph",
        action="store_true",
        help="no CUDA graph: no GPU runtime, and power windows run eager launches",
    )
    pr.add_argument(
        "--eager-power",
        action="store_true",
        help="also a power window of eager launches (always on for nets)",
    )
    pr.add_argument(
        "--layers-from",
        default="nvidia-h200",
        help="validate: measured dataset whose layers.csv the layers are picked from",
    )
    pr.add_argument(
        "--validate-layers", type=int, default=40, help="validate: layers (spread by runtime)"
    )
    pr.add_argument(
        "--seconds", type=float, default=3.0, help="validate: length of each reference loop (s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hwml`` console script."""
    from hwml.data import DatasetError
    from hwml.describe import UnsupportedLayerError
    from hwml.hardware import DeviceUnavailableError
    from hwml.zoo import UnknownNetworkError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args) or 0)
    except (
        UnknownNetworkError,
        UnsupportedLayerError,
        DeviceUnavailableError,
        DatasetError,  # SweepBusyError among them
        ValueError,
    ) as err:
        print(f"hwml {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hwml {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130


def _interrupted(args: argparse.Namespace) -> str:
    """One line on what an interrupted command kept (for a sweep: its rows, from the log)."""
    folder = getattr(args, "out_folder", None)
    if args.command != "profile" or folder is None:
        return "interrupted"
    from hwml.data import read_provenance

    table = _table_of(args)
    try:
        runs = read_provenance(folder).get("runs", [])
    except (OSError, ValueError):
        runs = []
    before = getattr(args, "runs_before", set())
    mine = [
        r
        for r in runs
        if isinstance(r, dict) and r.get("pid") == os.getpid() and r.get("run_id") not in before
    ]
    if table is None or not mine:
        return f"interrupted before the run was recorded in {folder}; run the same command again"
    counts = [r.get("rows_written") for r in mine]
    if any(c is None for c in counts):  # a second Ctrl-C before the log was completed
        kept = "the rows measured so far"
    else:
        n = sum(counts)
        kept = f"{n} row{'' if n == 1 else 's'}"
    return (
        f"interrupted: {kept} kept in {folder} ({table}.csv); run the same command again to resume"
    )


if __name__ == "__main__":
    sys.exit(main())
