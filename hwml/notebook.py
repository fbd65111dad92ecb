"""Helpers for the book's notebooks: validated parameters and a provenance footer.

A chapter notebook opens with a papermill ``parameters`` cell of typed, commented
assignments and validates them in the very next cell; its last cell shows where the
page's numbers came from::

    quick: bool = False  # few samples, for CI
    seed: int = 0  # seeds every stochastic step

    from hwml.notebook import load_config, show_provenance
    config = load_config(globals())
    ...
    show_provenance(config)

papermill only *warns* about a parameter the notebook does not declare and injects it
anyway; :func:`load_config` turns that into an error that names the parameter, and
rejects ill-typed values (``seed = "3"``) the same way.

Nothing heavy is imported at module level: ``torch`` is imported by
:func:`collect_provenance` only, and ``IPython`` only to display.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hwml
from hwml import data

__all__ = [
    "ParameterError",
    "format_number",
    "glue",
    "glue_figure",
    "plot_curves",
    "rerun_markdown",
    "show_table",
    "collect_provenance",
    "injected_parameter_names",
    "load_config",
    "provenance_markdown",
    "show_provenance",
]

T = TypeVar("T")

#: When :func:`load_config` last ran (the start of the chapter's computation).
_STARTED: list[float] = []

#: What a page's provenance may name: dataset folders, or their provenance mappings.
Datasets = Mapping[str, Mapping[str, Any]] | Mapping[str, Any] | Sequence[str | os.PathLike[str]]

#: The first line of the cell papermill injects (papermill's Python translator).
INJECTED_HEADER = "# Parameters"

#: Names a parameters cell may annotate, resolved when annotations are strings.
_ANNOTATION_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "None": None,
    "Optional": typing.Optional,
    "Literal": typing.Literal,
    "tuple": tuple,
}


class ParameterError(TypeError):
    """A notebook parameter is unknown, missing or of the wrong type."""


def load_config(
    namespace: Mapping[str, Any],
    cls: type[T] | None = None,
    *,
    injected: typing.Iterable[str] | None = None,
) -> T:
    """Validate a notebook's parameters into a frozen dataclass.

    Args:
        namespace: The notebook's global namespace, ``globals()``, after the
            ``parameters`` cell (and papermill's injected cell) ran.
        cls: A frozen dataclass whose fields are the parameters. ``None`` (the usual
            case) builds one, named ``Parameters``, from the annotated assignments of
            the parameters cell (``namespace["__annotations__"]``), in their order.
        injected: Names papermill injected. ``None`` finds them in IPython's input
            history (``namespace["In"]``): the last cell whose first line is
            ``# Parameters``. Outside IPython there is none.

    Returns:
        An instance of ``cls`` holding the namespace's values; a ``float`` field
        given an ``int`` holds it as ``float``, a ``tuple`` field given a list holds
        a tuple.

    Raises:
        ParameterError: An injected name is not a field; a field has no value in
            the namespace and no default; a value does not match its field's type
            (``bool`` is not accepted for ``int`` or ``float``). The message names
            the parameter.
        TypeError: ``cls`` is not a frozen dataclass, or a field's type is not one
            of ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
            ``tuple[X, ...]`` or an optional (``X | None``) of those.
    """
    _STARTED[:] = [time.perf_counter()]
    if cls is None:
        cls = _dataclass_from_annotations(namespace)  # type: ignore[assignment]
    assert cls is not None
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"{cls!r} is not a frozen dataclass (use @dataclass(frozen=True))")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]

    given = set(injected_parameter_names(namespace) if injected is None else injected)
    unknown = sorted(given - set(names))
    if unknown:
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)} injected by papermill; "
            f"this notebook takes: {', '.join(names) or '(none)'}"
        )

    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in fields:
        if field.name in namespace:
            value = namespace[field.name]
        elif field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            raise ParameterError(
                f"parameter {field.name!r} has no value: define it in the parameters cell"
            )
        values[field.name] = _check(field.name, value, hints[field.name])
    return cls(**values)


def injected_parameter_names(namespace: Mapping[str, Any]) -> list[str]:
    """Names assigned by the cell papermill injected, from IPython's input history.

    Args:
        namespace: The notebook's globals; its ``In`` list (IPython's history) is
            read, or the running IPython shell's when ``In`` is absent.

    Returns:
        The assigned names in order; empty when no injected cell ran (an interactive
        session, plain Python).
    """
    history = namespace.get("In")
    if history is None:
        history = _ipython_history()
    for source in reversed(list(history or [])):
        if isinstance(source, str) and source.lstrip().startswith(INJECTED_HEADER):
            return _assigned_names(source)
    return []


def _ipython_history() -> list[str]:
    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return []
    shell = ipython_module.get_ipython()
    return list(shell.user_ns.get("In", [])) if shell is not None else []


def _assigned_names(source: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def _dataclass_from_annotations(namespace: Mapping[str, Any]) -> type:
    annotations = namespace.get("__annotations__") or {}
    if not annotations:
        raise ParameterError(
            "the parameters cell declares no typed parameters "
            "(write them as `name: type = value  # comment`)"
        )
    fields = [(name, _resolve(name, tp)) for name, tp in annotations.items()]
    return dataclasses.make_dataclass("Parameters", fields, frozen=True)


def _resolve(name: str, annotation: Any) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, {"__builtins__": {}}, dict(_ANNOTATION_NAMES))  # noqa: S307
    except Exception as error:
        raise TypeError(f"parameter {name!r}: cannot read annotation {annotation!r}") from error


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _check(name: str, value: Any, tp: Any) -> Any:
    """Return ``value`` (normalised) if it matches ``tp``, else raise ParameterError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(name, value, arg)
            except ParameterError:
                pass
        raise _mismatch(name, value, tp)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _mismatch(name, value, tp)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _mismatch(name, value, tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check(name, item, args[0]) for item in value)
        if args and len(args) == len(value):
            return tuple(_check(name, item, a) for item, a in zip(value, args, strict=True))
        raise _mismatch(name, value, tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(name, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(name, value, tp)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _mismatch(name, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _mismatch(name, value, tp)
    raise TypeError(
        f"parameter {name!r}: unsupported type {_type_name(tp)} (use int, float, bool, str, "
        "Literal[...], tuple[X, ...] or X | None)"
    )


def _mismatch(name: str, value: Any, tp: Any) -> ParameterError:
    return ParameterError(
        f"parameter {name!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )


# --------------------------------------------------------------------------- provenance


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _gpu_name() -> str:
    try:
        from hwml.hardware import cuda_device_names  # noqa: PLC0415 (imports torch: heavy)
    except ImportError:
        return "none (torch not installed)"
    return ", ".join(cuda_device_names()) or "none visible"


def collect_provenance(config: Any = None) -> dict[str, str]:
    """Where and how the current page was computed.

    Args:
        config: The notebook's config (a dataclass from :func:`load_config`), shown
            as its parameter values; ``None`` leaves that row out.

    Returns:
        Ordered rows, label -> value: hwml version, git commit of the checkout,
        torch, Python, platform, CPU, visible GPUs, date (UTC) and, with ``config``,
        the parameters.
    """
    rows = {
        "hwml": hwml.__version__,
        "git commit": data.git_commit() or "unknown (not a git checkout)",
        "torch": _version("torch"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "CPU": data.cpu_name(),
        "GPU": _gpu_name(),
        "date (UTC)": data.now_iso(),
    }
    if config is not None:
        values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
        rows["parameters"] = ", ".join(f"{k}={v!r}" for k, v in dict(values).items())
    return rows


def _table(rows: Mapping[str, Any], header: tuple[str, str]) -> str:
    def cell(text: Any) -> str:
        text = str(text).replace("\n", " ")
        if " --" in text or text.startswith(("hwml ", "python", "scripts/")):
            # a command: a code span keeps "--" from becoming a typographic dash
            return "`" + text.replace("`", "'").replace("|", "\\|") + "`"
        return text.replace("|", "\\|")

    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {cell(key)} | {cell(value)} |" for key, value in rows.items()]
    return "\n".join(lines)


def _dataset_rows(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Table rows of one dataset's provenance; a run log shows its count and last run."""
    rows: dict[str, Any] = {}
    for key, value in provenance.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            rows[key] = f"{len(value)} (the last one below)"
            rows.update({f"{key}, last: {k}": _compact(v) for k, v in value[-1].items()})
        else:
            rows[key] = _compact(value)
    return rows


def _compact(value: Any) -> str:
    if value is None:
        return "–"  # not recorded
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_compact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return ", ".join(_compact(v) for v in value)
        return json.dumps(value, default=str, separators=(", ", ": "))
    if isinstance(value, float):
        return format_number(value, 6)
    return str(value)


def format_number(value: Any, digits: int = 3) -> str:
    """A number as a reader wants it: ``digits`` significant digits (integer digits are
    never rounded away), thousands separated, no exponent between 1e-4 and 1e15, an en
    dash for a missing value.

    Args:
        value: A number (anything else is returned as ``str(value)``); NaN, None and
            pandas' missing value ``pd.NA`` are missing.
        digits: Significant digits.

    Returns:
        The formatted text, e.g. ``format_number(0.546260) == "0.546"``,
        ``format_number(4250490113796.01) == "4,250,490,113,796"``.
    """
    if value is None or type(value).__name__ == "NAType":  # pandas.NA, without pandas
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "–" if math.isnan(value) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if not -4 <= magnitude < 15:
        return f"{value:.{max(digits - 1, 0)}e}"
    decimals = digits - 1 - magnitude
    if decimals <= 0:  # no integer digit is rounded away
        return f"{round(value):,}"
    return f"{value:,.{decimals}f}"


def show_table(
    table: Any,
    *,
    digits: int = 3,
    index: bool = True,
    caption: str | None = None,
) -> None:
    """Display a table that fits the page.

    Numbers are shown with ``digits`` significant digits (integers in full), missing
    values as an en dash, and the table sits in a box that scrolls sideways when it is
    wider than the text column (``book/_static/hwml.css``), so it never overflows the page.

    Args:
        table: A :class:`pandas.DataFrame` (or Series).
        digits: Significant digits of floats.
        index: Show the index.
        caption: A caption above the table.
    """
    from IPython.display import HTML, display  # noqa: PLC0415

    frame = table.to_frame() if hasattr(table, "to_frame") and table.ndim == 1 else table
    shown = frame.map(lambda v: format_number(v, digits))
    html = shown.to_html(index=index, escape=True, border=0, classes="hwml-table")
    if caption:
        html = html.replace("<thead>", f"<caption>{caption}</caption><thead>", 1)
    display(HTML(f'<div class="hwml-table-scroll">{html}</div>'))


def glue_figure(name: str, fig: Any) -> None:
    """Glue a matplotlib figure for a numbered, captioned ``{glue:figure}`` and close it,
    so the code cell itself shows nothing.

    Args:
        name: The glue key (``fig-<chapter>-<what>``), also the figure's label.
        fig: The figure.
    """
    import matplotlib.pyplot as plt  # noqa: PLC0415

    glue(name, fig, display=False)
    plt.close(fig)


def plot_curves(
    ax: Any,
    curve: Any,
    value: str,
    colors: Mapping[str, Any],
    *,
    x: str = "k",
    styles: Sequence[tuple[str, str]] = (("chosen", "-"), ("random", ":")),
    band: tuple[float, float] = (0.25, 0.75),
    log: bool = False,
) -> list[str]:
    """Plot a metric against ``x`` per method and selection: medians, with a band.

    For each method of ``colors`` and each ``(how, line style)`` of ``styles``, the
    median of ``value`` over the rows (seeds) at each ``x`` is drawn; the first style
    also gets the band between the ``band`` quantiles and the legend label. Methods or
    selections without rows are skipped. With ``log`` the vertical axis is logarithmic
    and labelled with plain numbers (``60``, ``200``), minor ticks too when it spans
    less than two decades.

    Args:
        ax: A matplotlib axes.
        curve: A tidy table with ``method``, ``how``, ``x`` and ``value`` columns (e.g.
            :func:`hwml.predict.transfer.transfer_curve`'s, failed fits removed).
        value: The column plotted.
        colors: ``method -> colour``, in legend order.
        x: The column on the horizontal axis.
        styles: ``(how, line style)`` pairs.
        band: Lower and upper quantile of the band.
        log: Logarithmic vertical axis.

    Returns:
        The methods drawn.
    """
    from matplotlib.ticker import LogFormatter  # noqa: PLC0415

    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    drawn = []
    for method, color in colors.items():
        for i, (how, style) in enumerate(styles):
            part = curve[(curve["method"] == method) & (curve["how"] == how)]
            part = part[part[value].notna()]
            if part.empty:
                continue
            q = part.groupby(x)[value].quantile([band[0], 0.5, band[1]]).unstack()
            label = method if i == 0 or method not in drawn else None
            ax.plot(q.index, q[0.5], style, marker="o", ms=3, color=color, label=label)
            if i == 0:
                ax.fill_between(q.index, q[band[0]], q[band[1]], color=color, alpha=0.15)
            if method not in drawn:
                drawn.append(method)
    return drawn


def rerun_markdown(chapter: str, config: Any = None, elapsed_s: float | None = None) -> str:
    """The "Rerun this chapter" box: the commands, the parameters and this run's time.

    Args:
        chapter: The notebook's stem, e.g. ``"04_layer_models"``.
        config: The notebook's config (its parameters are listed).
        elapsed_s: Seconds this run of the chapter took (None: not known).

    Returns:
        Markdown.
    """
    values = {}
    if config is not None:
        values = dict(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config)
    quick = bool(values.get("quick", False))
    lines = [
        "**Rerun this chapter.** From the repository root (the environment is created by "
        "`make test` or `make reproduce`):",
        "",
        "```bash",
        f".venv/bin/python book/build.py run --only {chapter}          # full run",
        f".venv/bin/python book/build.py run --quick --only {chapter}  # quick run",
        f".venv/bin/papermill notebooks/{chapter}.ipynb /tmp/{chapter}.ipynb --cwd notebooks \\",
        "    -p quick True   # any parameter below, -p NAME VALUE",
        "```",
        "",
    ]
    if values:
        lines.append(
            "Parameters of this run: " + ", ".join(f"`{k}={v!r}`" for k, v in values.items()) + "."
        )
    if elapsed_s is not None:
        mode = "a quick run" if quick else "a full run"
        lines.append(
            f"This page was computed in {format_number(elapsed_s, 2)} s ({mode}, on the "
            "machine in the provenance table below)."
        )
    return "\n".join(lines)


def _named_datasets(datasets: Datasets | None) -> dict[str, Mapping[str, Any]]:
    if not datasets:
        return {}
    if isinstance(datasets, str | os.PathLike):
        datasets = [datasets]
    if isinstance(datasets, Mapping):
        if all(isinstance(v, Mapping) for v in datasets.values()):
            return dict(datasets)
        return {"data": datasets}
    return {Path(name).name: data.read_provenance(name) for name in datasets}


def provenance_markdown(config: Any = None, datasets: Datasets | None = None) -> str:
    """The provenance section as Markdown (what :func:`show_provenance` displays).

    Args:
        config: The notebook's config, see :func:`collect_provenance`.
        datasets: The data the page read: dataset folders (names under ``data/`` or
            paths), whose ``provenance.json`` is read; or dataset name -> provenance
            mapping (GPU, driver, CUDA, torch, power limit, runs ...); or one flat
            provenance mapping, titled ``data``. One table each, in order.

    Returns:
        Markdown: a bold title, a table for this page's run and one per dataset.
    """
    parts = [
        "**Provenance.** This page was computed with:",
        _table(collect_provenance(config), ("item", "value")),
    ]
    for name, provenance in _named_datasets(datasets).items():
        parts.append(f"Measurements in `{name}` were taken with:")
        parts.append(_table(_dataset_rows(provenance), ("item", "value")))
    return "\n\n".join(parts)


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue a computed value for prose (``{glue:text}`name:.1f```), numpy-safe.

    myst-nb formats a glued number from its text form; numpy 2 writes scalars as
    ``np.float64(3.2)``, which it cannot parse, so numpy scalars are converted to plain
    Python numbers first.

    Args:
        name: The glue key.
        value: A number, string or object to glue.
        display: Also show it in the cell's output.
    """
    from myst_nb import glue as _glue  # noqa: PLC0415

    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    _glue(name, value, display=display)


def show_provenance(
    config: Any = None, datasets: Datasets | None = None, *, chapter: str | None = None
) -> None:
    """Display the "Rerun this chapter" box (with ``chapter``) and the provenance
    section; the last cell of every chapter calls it.

    Args:
        config: The notebook's config, see :func:`collect_provenance`.
        datasets: The data the page read, see :func:`provenance_markdown`.
        chapter: The notebook's stem, e.g. ``"04_layer_models"``.
    """
    from IPython.display import Markdown, display  # noqa: PLC0415

    if chapter:
        elapsed = time.perf_counter() - _STARTED[0] if _STARTED else None
        display(Markdown(rerun_markdown(chapter, config, elapsed)))
    display(Markdown(provenance_markdown(config, datasets)))
