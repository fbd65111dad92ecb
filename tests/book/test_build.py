"""Tests of book/build.py: the chapter list, the generated toc, the papermill runs."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_build():
    spec = importlib.util.spec_from_file_location("hwml_book_build", ROOT / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


build = _load_build()


# ------------------------------------------------------------------ the real book's list


def test_committed_toc_is_generated_from_the_chapter_list() -> None:
    assert (ROOT / "book" / "_toc.yml").read_text() == build.toc_text(build.load_book()), (
        "book/_toc.yml is stale: run python book/build.py toc"
    )


def test_every_notebook_is_in_the_chapter_list() -> None:
    assert build.unlisted_notebooks(build.load_book()) == []


def test_toc_and_list_name_the_same_pages() -> None:
    book = build.load_book()
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for p in toc.get("parts", []) for c in p["chapters"]]
    assert pages == book.docnames
    for chapter in book.notebooks:
        assert chapter.docname == f"_executed/{Path(chapter.source).stem}"


def test_config_keeps_execution_off_and_the_book_offline() -> None:
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    sphinx = config["sphinx"]["config"]
    mathjax = ROOT / "book" / "_static" / sphinx["mathjax_path"]
    assert mathjax.is_file()
    assert (mathjax.parent / "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff").is_file()
    assert sphinx["intersphinx_mapping"] == {} and sphinx["nb_ipywidgets_js"] == {}
    assert not config["launch_buttons"]["binderhub_url"] and not config["repository"]["url"]


# ------------------------------------------------------------------ a book made up here


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem}"),
        nbformat.v4.new_code_cell(
            "quick: bool = False  # for CI", metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(body),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _write(tmp_path / "book" / "intro.md", "# Intro\n")
    _write(tmp_path / "book" / "about.md", "# About\n")
    _notebook(tmp_path / "notebooks" / "01_ok.ipynb", "import os\nprint('cwd', os.getcwd(), quick)")
    _notebook(tmp_path / "notebooks" / "02_fails.ipynb", "raise ValueError('on purpose')")
    _write(
        tmp_path / "book" / "chapters.yml",
        """\
        root: intro.md
        parts:
          - caption: "1 Introduction"
            chapters:
              - notebook: notebooks/01_ok.ipynb
                quick: {n: 3}
                params: {n: 100}
              - page: about.md
          - caption: "2 Empty"
            chapters: []
          - caption: "3 Failing"
            chapters:
              - notebook: notebooks/02_fails.ipynb
        """,
    )
    return tmp_path


def test_load_book_and_toc(repo: Path) -> None:
    book = build.load_book(repo / "book" / "chapters.yml", repo)
    assert book.docnames == ["intro", "_executed/01_ok", "about", "_executed/02_fails"]
    assert [c.source for c in book.notebooks] == [
        "notebooks/01_ok.ipynb",
        "notebooks/02_fails.ipynb",
    ]
    ok = book.notebooks[0]
    assert ok.parameters(quick=True) == {"quick": True, "n": 3}
    assert ok.parameters(quick=False) == {"n": 100}
    assert book.notebooks[1].parameters(quick=True) == {"quick": True}
    toc = yaml.safe_load(build.toc_text(book))
    assert toc == {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {
                "caption": "1 Introduction",
                "chapters": [{"file": "_executed/01_ok"}, {"file": "about"}],
            },
            {"caption": "3 Failing", "chapters": [{"file": "_executed/02_fails"}]},
        ],
    }
    _notebook(repo / "notebooks" / "03_new.ipynb", "pass")
    assert build.unlisted_notebooks(book, repo) == ["notebooks/03_new.ipynb"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- notebook: notebooks/09_missing.ipynb", "does not exist"),
        ("- notebook: book/intro.md", "must be a path ending in .ipynb"),
        ("- page: intro.md\n  quick: {a: 1}", "a page takes no parameters"),
        ("- notebook: notebooks/01_ok.ipynb\n  quik: {a: 1}", "unknown key"),
        ("- notebook: notebooks/01_ok.ipynb\n  page: about.md", "exactly one of"),
        ("- notebook: notebooks/01_ok.ipynb\n- notebook: notebooks/01_ok.ipynb", "more than once"),
        ("- notebook: notebooks/01_ok.ipynb\n  quick: [1]", "must be a mapping"),
    ],
)
def test_malformed_lists_are_rejected(repo: Path, entry: str, message: str) -> None:
    chapters = textwrap.indent(entry, " " * 6)
    path = _write(
        repo / "book" / "bad.yml",
        f"root: intro.md\nparts:\n  - caption: P\n    chapters:\n{chapters}\n",
    )
    with pytest.raises(build.BuildError, match=message):
        build.load_book(path, repo)


@pytest.mark.slow
def test_run_names_the_failing_notebook_and_keeps_going(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = build.load_book(repo / "book" / "chapters.yml", repo)
    stale = _write(repo / "book" / "_executed" / "00_gone.ipynb", "{}")
    failures = build.run_notebooks(book, quick=True, root=repo)

    assert len(failures) == 1
    assert failures[0].startswith("notebooks/02_fails.ipynb: ValueError: on purpose")
    assert "FAILED notebooks/02_fails.ipynb" in capsys.readouterr().out
    assert not stale.exists()
    executed = nbformat.read(repo / "book" / "_executed" / "01_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 3" in injected[0].source
    printed = executed.cells[-1].outputs[0]["text"]
    assert f"cwd {repo / 'notebooks'} True" in printed  # cwd is notebooks/, quick injected
    assert (
        os.environ.get("JUPYTER_PATH") is None or "hwml-kernel-" not in os.environ["JUPYTER_PATH"]
    )

    problems = build.check_executed(book, repo)
    assert problems == ["notebooks/02_fails.ipynb: its executed copy holds an error"]

    (repo / "notebooks" / "01_ok.ipynb").touch()
    os.utime(repo / "book" / "_executed" / "01_ok.ipynb", (0, 0))
    assert (
        "notebooks/01_ok.ipynb: changed after its executed copy was made"
        in build.check_executed(book, repo)
    )
    (repo / "book" / "_executed" / "01_ok.ipynb").unlink()
    assert "notebooks/01_ok.ipynb: not executed yet" in build.check_executed(book, repo)[0]

    with pytest.raises(build.BuildError, match=r"not in book/chapters.yml: 09_x \(listed: 01_ok"):
        build.run_notebooks(book, quick=True, only=["01_ok", "09_x"], root=repo)


def test_kernel_is_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    with build.this_interpreter_kernel() as name:
        spec = KernelSpecManager().get_kernel_spec(name)
        assert spec.argv[0] == sys.executable
    assert "hwml-kernel-" not in os.environ.get("JUPYTER_PATH", "")


def test_toc_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert build.main(["toc", "--check"]) == 0


# ------------------------------------------------------------------ end to end


def _chapter_notebook(path: Path) -> Path:
    """A chapter that follows notebooks/README.md: math, a figure, glue, provenance."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb.cells = [
        md("# Pipeline check\n\nEvery part of a chapter, end to end."),
        code(
            "quick: bool = False  # few points, for CI\nn_points: int = 400  # points drawn",
            metadata={"tags": ["parameters"]},
        ),
        code(
            "import matplotlib.pyplot as plt\nimport numpy as np\nfrom myst_nb import glue\n\n"
            "from hwml.notebook import load_config, show_provenance\n\n"
            "config = load_config(globals())"
        ),
        md("We draw $n$ points of\n\n$$\ny = \\sqrt{\\frac{1}{n} \\sum_{i=1}^{n} x_i^2}.\n$$"),
        code(
            "from hwml.notebook import glue_figure\n\n"
            "x = np.linspace(0, 1, config.n_points)\n"
            "glue('n_drawn', len(x), display=False)\n"
            "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot(x, x**2)\n"
            "glue_figure('fig-check-square', fig)",
            metadata={"tags": ["remove-input"]},
        ),
        md(
            "```{glue:figure} fig-check-square\n:name: fig-check-square\n"
            ":alt: A parabola.\n\nThe square of x.\n```\n\n"
            "The figure shows {glue:text}`n_drawn` points ({numref}`fig-check-square`), "
            "as the survey would {cite}`marculescu2018hardware`."
        ),
        code("show_provenance(config, chapter='01_check')", metadata={"tags": ["remove-input"]}),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_book_end_to_end(tmp_path: Path) -> None:
    """Run a chapter, render it with the real _config.yml, and read the page in Chromium."""
    import shutil

    from test_check_offline import CHROMIUM, check

    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "book" / "_config.yml", tmp_path / "book" / "_config.yml")
    shutil.copytree(ROOT / "book" / "_static", tmp_path / "book" / "_static")
    shutil.copytree(ROOT / "book" / "_extra", tmp_path / "book" / "_extra")
    shutil.copy(ROOT / "book" / "intro.md", tmp_path / "book" / "intro.md")
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book" / "references.bib")
    shutil.copy(ROOT / "book" / "bibliography.md", tmp_path / "book" / "bibliography.md")
    (tmp_path / "book" / "_executed").mkdir()
    (tmp_path / "book" / "_executed" / "scorecard.md").write_text("| a | b |\n| --- | --- |\n")
    _chapter_notebook(tmp_path / "notebooks" / "01_check.ipynb")
    _write(
        tmp_path / "book" / "chapters.yml",
        """\
        root: intro.md
        parts:
          - caption: "1 Introduction"
            chapters:
              - notebook: notebooks/01_check.ipynb
                quick: {n_points: 7}
          - caption: "References"
            chapters:
              - page: bibliography.md
        """,
    )
    book = build.load_book(tmp_path / "book" / "chapters.yml", tmp_path)
    assert build.run_notebooks(book, quick=True, root=tmp_path) == []
    assert build.check_executed(book, tmp_path) == []
    (tmp_path / "book" / "_toc.yml").write_text(build.toc_text(book))
    assert build.build_html(tmp_path) == 0

    html = tmp_path / "book" / "_build" / "html"
    page = (html / "_executed" / "01_check.html").read_text()
    assert "The figure shows" in page and ">7<" in page  # the glued number, quick mode
    assert "<table" in page and "git commit" in page  # the provenance table
    assert "Fig. 1" in page and "The square of x." in page  # numbered, captioned
    assert "Rerun this chapter" in page and "--only" in page  # the rerun box
    assert check.static_remote_assets(html) == []
    if CHROMIUM is None:
        pytest.skip("no Chromium: the page was built but not opened")
    with check.serve(html) as base, check.Chromium(CHROMIUM) as browser:
        report = check.visit(browser, base + "_executed/01_check.html", tmp_path / "page.png")
    assert check.page_problems("_executed/01_check.html", report) == []
    state = report["state"]
    assert state["h1"] == "Pipeline check" and state["images"] == 1
    assert state["mathRendered"] >= 2  # the inline $n$ and the display formula


def test_parse_overrides() -> None:
    assert build.parse_overrides(["dataset=nvidia-h100", "seeds=5", "quick=true"]) == {
        "dataset": "nvidia-h100",
        "seeds": 5,
        "quick": True,
    }
    with pytest.raises(build.BuildError, match="NAME=VALUE"):
        build.parse_overrides(["dataset"])


@pytest.mark.slow
def test_overrides_reach_only_notebooks_that_declare_them(repo: Path) -> None:
    book = build.load_book(repo / "book" / "chapters.yml", repo)
    build.run_notebooks(
        book,
        quick=True,
        only=["01_ok"],  # a stem names the notebook as well as its path
        root=repo,
        overrides={"quick": False, "not_declared_here": 1},
    )
    executed = nbformat.read(repo / "book" / "_executed" / "01_ok.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "quick = False" in injected[0].source
    assert "not_declared_here" not in injected[0].source
