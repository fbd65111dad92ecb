"""Tests of book/scorecard.py: the front page's claims filled from the chapters' glued values."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"hwml_book_{name}", ROOT / "book" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


scorecard = _load("scorecard")
build = _load("build")


def _executed(folder: Path, stem: str, values: dict) -> None:
    """An executed notebook holding the outputs myst-nb's glue writes."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"application/papermill.record/text/plain": repr(v), "text/plain": repr(v)},
            metadata={"scrapbook": {"name": k, "mime_prefix": "application/papermill.record/"}},
        )
        for k, v in values.items()
    ]
    nb.cells = [cell]
    nbformat.write(nb, folder / f"{stem}.ipynb")


CLAIMS = [
    {
        "section": "3.2",
        "claim": "conv error",
        "survey": "39.97 %",
        "chapter": "04_x",
        "ours": "{err:.1f} %",
        "verdict": {"compare": "err", "survey": 39.97, "better": "lower"},
    },
    {
        "section": "4.3",
        "claim": "speed-up",
        "survey": "3.5×",
        "chapter": "07_x",
        "ours": "{ratio}",
        "verdict": {"compare": "ratio", "survey": 3.5, "better": "higher"},
    },
    {
        "section": "3.2",
        "claim": "within 5 %",
        "survey": "{survey_mean:.1f} %",
        "chapter": "04_x",
        "ours": "{mape:.2f} %",
        "verdict": {"target": "mape", "at_most": 5},
    },
    {"section": "4.2", "claim": "Minerva", "survey": "8.1×", "page": "sections/s4_2"},
]


def test_rows_are_filled_from_the_glued_values(tmp_path: Path) -> None:
    _executed(tmp_path, "04_x", {"err": 35.63164, "mape": 16.08, "survey_mean": 12.345})
    _executed(tmp_path, "07_x", {"ratio": "1.4x"})
    rows = scorecard.rows(CLAIMS, tmp_path)
    assert [r["ours"] for r in rows] == ["35.6 %", "1.4x", "16.08 %", "not reproduced yet"]
    assert [r["verdict"] for r in rows] == [
        "better than the survey",
        "worse than the survey",
        "missed",
        "–",
    ]
    assert rows[2]["survey"] == "12.3 %"
    assert rows[0]["link"] == "_executed/04_x" and rows[3]["link"] == "sections/s4_2"


@pytest.mark.parametrize(
    ("ours", "verdict"),
    [
        (38.0, "on par with the survey"),
        (30.0, "better than the survey"),
        (50.0, "worse than the survey"),
    ],
)
def test_compare_verdict_has_a_par_band(ours: float, verdict: str) -> None:
    rule = {"compare": "x", "survey": 40.0, "better": "lower"}
    assert scorecard.verdict(rule, {"x": ours}, "here") == verdict


def test_a_missing_key_or_chapter_names_it(tmp_path: Path) -> None:
    _executed(tmp_path, "04_x", {"err": 1.0})
    with pytest.raises(scorecard.ScorecardError, match="no glued value survey_mean"):
        scorecard.rows(CLAIMS[2:3], tmp_path)
    with pytest.raises(scorecard.ScorecardError, match="07_x has not been executed"):
        scorecard.rows(CLAIMS[1:2], tmp_path)


def test_the_book_claims_name_listed_chapters_and_existing_pages() -> None:
    claims = yaml.safe_load((ROOT / "book" / "claims.yml").read_text())["claims"]
    book = build.load_book()
    stems = {Path(c.source).stem for c in book.notebooks}
    for claim in claims:
        if "page" in claim:
            assert (ROOT / "book" / f"{claim['page']}.md").is_file(), claim["page"]
        else:
            assert claim["chapter"] in stems, claim["chapter"]
            assert set(claim["verdict"]) & {"compare", "target", "below", "glued"}


def test_a_value_without_a_number_is_not_measurable_not_a_crash() -> None:
    """A speed-up glued as "undefined" (no run reached the region) gives a verdict that says
    so; a lower bound such as "more than 2.1x" is still read as its number."""
    rule = {"compare": "x", "survey": 3.5, "better": "higher"}
    assert scorecard.verdict(rule, {"x": "undefined"}, "here") == "not measurable in this run"
    assert scorecard.verdict(rule, {"x": "more than 4.2x"}, "here") == "better than the survey"
    target = {"target": "x", "at_most": 10}
    assert scorecard.verdict(target, {"x": "undefined"}, "here") == "not measurable in this run"
    with pytest.raises(scorecard.ScorecardError, match="no glued value y"):
        scorecard.verdict({"compare": "y", "survey": 1.0}, {"x": 1.0}, "here")
