"""Tests of hwml.notebook: parameter validation and the provenance footer."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Literal

import nbformat
import pandas as pd
import pytest

import hwml
from hwml import notebook
from hwml.notebook import ParameterError, load_config, plot_curves


@dataclasses.dataclass(frozen=True)
class Config:
    quick: bool = False
    seed: int = 0
    budget_w: float = 150.0
    device: str = "cuda"
    limit_mb: int | None = None
    mode: Literal["time", "energy"] = "time"
    seeds: tuple[int, ...] = (0, 1)


def test_values_from_namespace_and_defaults() -> None:
    config = load_config({"quick": True, "seed": 3, "budget_w": 200}, Config, injected=[])
    assert config == Config(quick=True, seed=3, budget_w=200.0)
    assert isinstance(config.budget_w, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("quick", 1),
        ("quick", "True"),
        ("seed", True),
        ("seed", 1.5),
        ("seed", "3"),
        ("budget_w", False),
        ("budget_w", "150"),
        ("device", 0),
        ("limit_mb", 1.0),
        ("mode", "power"),
        ("seeds", [0, "1"]),
        ("seeds", 3),
    ],
)
def test_ill_typed_value_fails_naming_the_field(name: str, value: object) -> None:
    with pytest.raises(ParameterError, match=rf"parameter '{name}' must be"):
        load_config({name: value}, Config, injected=[])


def test_optional_literal_and_tuple_accept_their_values() -> None:
    config = load_config(
        {"limit_mb": None, "mode": "energy", "seeds": [4, 5, 6]}, Config, injected=[]
    )
    assert config.limit_mb is None and config.mode == "energy" and config.seeds == (4, 5, 6)
    assert load_config({"limit_mb": 512}, Config, injected=[]).limit_mb == 512


def test_unknown_injected_parameter_fails_naming_it() -> None:
    with pytest.raises(
        ParameterError, match=r"unknown parameters 'sede', 'speed'.*takes: quick, seed"
    ):
        load_config({"seed": 1, "sede": 2}, Config, injected=["seed", "sede", "speed"])


def test_injected_names_come_from_the_last_papermill_cell_in_history() -> None:
    history = [
        "",
        "quick: bool = False  # for CI\nseed: int = 0",
        "# Parameters\nseed = 1\n",
        "# Parameters\nquick = True\nbatch_size = 64\nseed: int = 2\n",
        "config = load_config(globals())",
    ]
    assert notebook.injected_parameter_names({"In": history}) == ["quick", "batch_size", "seed"]
    with pytest.raises(ParameterError, match="'batch_size'"):
        load_config({"In": history, "quick": True, "seed": 2}, Config)
    assert notebook.injected_parameter_names({"In": ["x = 1"]}) == []
    assert notebook.injected_parameter_names({}) == []


def test_config_built_from_the_parameters_cell_annotations() -> None:
    namespace = {
        "__annotations__": {"quick": bool, "n_layers": "int", "tag": "str | None"},
        "quick": True,
        "n_layers": 8,
        "tag": None,
        "In": ["# Parameters\nquick = True\n"],
    }
    config = load_config(namespace)
    assert type(config).__name__ == "Parameters"
    assert dataclasses.astuple(config) == (True, 8, None)
    with pytest.raises(ParameterError, match="parameter 'n_layers' must be int"):
        load_config({**namespace, "n_layers": "8"})
    with pytest.raises(ParameterError, match="unknown parameter 'depth'"):
        load_config({**namespace, "In": ["# Parameters\ndepth = 3\n"]})
    with pytest.raises(ParameterError, match="no typed parameters"):
        load_config({"quick": True})


def test_missing_value_and_bad_classes() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoDefault:
        seed: int

    with pytest.raises(ParameterError, match="parameter 'seed' has no value"):
        load_config({}, NoDefault, injected=[])

    @dataclasses.dataclass
    class NotFrozen:
        seed: int = 0

    with pytest.raises(TypeError, match="not a frozen dataclass"):
        load_config({}, NotFrozen, injected=[])

    @dataclasses.dataclass(frozen=True)
    class Unsupported:
        sizes: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="parameter 'sizes': unsupported type"):
        load_config({}, Unsupported, injected=[])


def test_provenance_rows() -> None:
    rows = notebook.collect_provenance(Config(seed=7))
    assert rows["hwml"] == hwml.__version__
    assert rows["python"].count(".") == 2
    assert rows["git commit"] and "unknown" not in rows["git commit"]  # tests run in a checkout
    assert rows["parameters"].startswith("quick=False, seed=7, budget_w=150.0")
    assert {"torch", "platform", "CPU", "GPU", "date (UTC)"} <= set(rows)


def test_provenance_markdown_tables_for_datasets() -> None:
    text = notebook.provenance_markdown(
        None, {"layers": {"gpu_name": "NVIDIA H100 | SXM", "driver": "550.54"}}
    )
    assert text.startswith("**Provenance.**")
    assert "| git commit |" in text and "parameters" not in text
    assert "Measurements in `layers`" in text
    assert "| gpu_name | NVIDIA H100 \\| SXM |" in text
    flat = notebook.provenance_markdown(None, {"gpu_name": "H100", "driver": "550"})
    assert "Measurements in `data`" in flat and "| driver | 550 |" in flat


def test_provenance_of_dataset_folders(tmp_path) -> None:
    folder = tmp_path / "h100-layers"
    folder.mkdir()
    (folder / "provenance.json").write_text(
        json.dumps(
            {
                "gpu_name": "NVIDIA H100",
                "power_limit_w": 700,
                "runs": [{"date": "2026-01-01", "idle_power_w": 60.5}, {"date": "2026-01-02"}],
            }
        )
    )
    for datasets in ([folder], str(folder)):
        text = notebook.provenance_markdown(None, datasets)
        assert "Measurements in `h100-layers`" in text
        assert "| gpu_name | NVIDIA H100 |" in text and "| power_limit_w | 700 |" in text
        assert "| runs | 2 (the last one below) |" in text
        assert "| runs, last: date | 2026-01-02 |" in text and "idle_power_w" not in text


def test_show_provenance_displays_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    assert notebook.show_provenance(Config()) is None
    [markdown] = shown
    assert isinstance(markdown, IPython.display.Markdown)
    assert "| hwml | " in markdown.data


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.546260, 3, "0.546"),
        (4250490113796.0103, 3, "4,250,490,113,796"),
        (12.345, 3, "12.3"),
        (1234.5, 3, "1,234"),
        (0.00012345, 2, "0.00012"),
        (7, 3, "7"),
        (float("nan"), 3, "–"),
        (None, 3, "–"),
        (pd.NA, 3, "–"),
        (2.5e-7, 3, "2.50e-07"),
        ("resnet50", 3, "resnet50"),
    ],
)
def test_format_number(value: object, digits: int, text: str) -> None:
    assert notebook.format_number(value, digits) == text


def test_commands_in_provenance_stay_copyable() -> None:
    """Markdown turns "--" into a typographic dash outside code: commands go in code spans;
    nested facts are flattened and floats rounded."""
    text = notebook.provenance_markdown(
        None,
        {
            "data": {
                "command": "hwml profile layers --no-power --out d",
                "peak_flops_per_s": {"float32": 4250490113796.0103},
                "idle_power_w": None,
            }
        },
    )
    assert "| command | `hwml profile layers --no-power --out d` |" in text
    assert "| peak_flops_per_s | float32: 4,250,490,113,796 |" in text
    assert "| idle_power_w | – |" in text


def test_show_table_rounds_scrolls_and_marks_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display
    import pandas as pd

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    notebook.show_table(pd.DataFrame({"rmspe (%)": [12.3456, float("nan")]}, index=["a", "b"]))
    [html] = shown
    assert html.data.startswith('<div class="hwml-table-scroll">')
    assert "12.3<" in html.data and "–" in html.data and "12.3456" not in html.data


def test_show_provenance_with_chapter_shows_the_rerun_box(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    notebook.load_config({"quick": True, "__annotations__": {"quick": bool}}, injected=[])
    notebook.show_provenance(None, chapter="04_layer_models")
    rerun, provenance = shown
    assert "book/build.py run --only 04_layer_models" in rerun.data
    assert "papermill notebooks/04_layer_models.ipynb" in rerun.data
    assert "This page was computed in" in rerun.data
    assert provenance.data.startswith("**Provenance.**")


def test_import_is_light() -> None:
    code = "import sys, hwml.notebook; print(sorted({'torch', 'IPython'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------- a real papermill run


@pytest.fixture
def kernel(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that runs this interpreter, first on JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "hwml-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "hwml test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return "hwml-test"


@pytest.fixture
def tiny_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "quick: bool = False  # few samples, for CI\nseed: int = 0  # the seed",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(
            "from hwml.notebook import load_config\nconfig = load_config(globals())\nprint(config)"
        ),
    ]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _run(path, parameters, kernel):
    import papermill

    out = path.with_name("out.ipynb")
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=parameters,
        kernel_name=kernel,
        language="python",
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


@pytest.mark.slow
def test_papermill_run_validates_parameters(tiny_notebook, kernel) -> None:
    import papermill

    executed = _run(tiny_notebook, {"quick": True, "seed": 5}, kernel)
    assert "Parameters(quick=True, seed=5)" in executed.cells[-1].outputs[0]["text"]

    with pytest.raises(papermill.PapermillExecutionError) as unknown:
        _run(tiny_notebook, {"quick": True, "n_sampels": 10}, kernel)
    assert unknown.value.ename == "ParameterError"
    assert "unknown parameter 'n_sampels'" in unknown.value.evalue

    with pytest.raises(papermill.PapermillExecutionError) as ill_typed:
        _run(tiny_notebook, {"seed": "five"}, kernel)
    assert "parameter 'seed' must be int, got 'five'" in ill_typed.value.evalue


def test_plot_curves_draws_medians_and_one_band_per_method() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = pd.DataFrame(
        {
            "method": ["a"] * 8 + ["b"] * 4,
            "how": (["chosen"] * 4 + ["random"] * 4) + ["random"] * 4,
            "k": [0, 0, 5, 5] * 3,
            "seed": [0, 1] * 6,
            "mape_pct": [10.0, 30.0, 1.0, 3.0, 5.0, 5.0, 2.0, 2.0, 7.0, None, 6.0, 6.0],
        }
    )
    fig, ax = plt.subplots()
    drawn = plot_curves(ax, curve, "mape_pct", {"a": "red", "b": "blue", "c": "green"})
    assert drawn == ["a", "b"]  # c has no rows
    assert len(ax.lines) == 3 and len(ax.collections) == 1  # a chosen + random, b random
    chosen = ax.lines[0]
    assert list(chosen.get_xdata()) == [0, 5] and list(chosen.get_ydata()) == [20.0, 2.0]
    assert list(ax.lines[2].get_ydata()) == [7.0, 6.0]  # the NaN seed is left out
    assert [t.get_text() for t in ax.legend().get_texts()] == ["a", "b"]
    assert ax.get_yscale() == "linear"
    plot_curves(ax, curve, "mape_pct", {"a": "red"}, log=True)
    assert ax.get_yscale() == "log"
    assert ax.yaxis.get_major_formatter()(100.0) == "100"  # not 10^2
    plt.close(fig)
