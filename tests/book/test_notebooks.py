"""The conventions of notebooks/README.md, checked on every notebook in notebooks/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def nb(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    return nbformat.read(request.param, as_version=4)


def test_name_is_numbered(nb: nbformat.NotebookNode, request: pytest.FixtureRequest) -> None:
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", request.node.callspec.id)


def test_outputs_are_stripped(nb: nbformat.NotebookNode) -> None:
    for cell in _code(nb):
        assert not cell.outputs and cell.execution_count is None, cell.source[:60]


def test_first_markdown_cell_holds_the_one_title(nb: nbformat.NotebookNode) -> None:
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    assert markdown and markdown[0].source.startswith("# ")
    titles = [line for c in markdown for line in c.source.splitlines() if line.startswith("# ")]
    assert len(titles) == 1, titles


def test_parameters_cell_is_typed_commented_literals(nb: nbformat.NotebookNode) -> None:
    first = _code(nb)[0]
    assert "parameters" in first.metadata.get("tags", []), (
        "first code cell must be tagged parameters"
    )
    lines = [line for line in first.source.splitlines() if line.strip()]
    names = []
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name), (
            f"only `name: type = value  # comment` lines: {ast.unparse(node)}"
        )
        assert node.value is not None, f"{node.target.id} has no default"
        ast.literal_eval(node.value)  # a literal, not derived from anything
        names.append(node.target.id)
    assert "quick" in names, "quick mode is the parameter `quick: bool = False`"
    for line in lines:
        assert line.lstrip().startswith("#") or "  # " in line, f"comment it: {line}"


def test_next_cell_validates_and_last_shows_provenance(nb: nbformat.NotebookNode) -> None:
    code = _code(nb)
    assert "load_config(globals()" in code[1].source
    assert "show_provenance(" in code[-1].source


def test_no_definitions_in_notebooks(nb: nbformat.NotebookNode) -> None:
    for cell in _code(nb):
        tree = ast.parse(TransformerManager().transform_cell(cell.source))  # magics too
        defs = [
            n.name
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ]
        assert not defs, f"move {defs} into hwml (with a test)"
        assert not re.search(r"^\s*[!%]+\s*pip", cell.source, re.M), "no pip installs"
