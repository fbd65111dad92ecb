"""Tests of book/check_offline.py: it must catch a page that reaches another host."""

from __future__ import annotations

import importlib.util
import sys
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_checker():
    path = ROOT / "book" / "check_offline.py"
    spec = importlib.util.spec_from_file_location("hwml_book_check_offline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = _load_checker()

# A host under the reserved .invalid domain: Chromium is told to resolve nothing but
# 127.0.0.1 and localhost, so no packet leaves the machine; the request is still made.
REMOTE = "http://hwml-offline-test.invalid"


@pytest.mark.parametrize(
    ("url", "remote"),
    [
        ("_static/mathjax/tex-chtml.js", False),
        ("../_static/a.css?v=1", False),
        ("/favicon.ico", False),
        ("data:image/png;base64,AAAA", False),
        ("http://127.0.0.1:8000/x.js", False),
        ("http://localhost/x.js", False),
        ("file:///tmp/x.css", False),
        ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", True),
        ("//fonts.googleapis.com/css?family=Lato", True),
        ("http://127.0.0.2/x.js", True),
    ],
)
def test_is_remote(url: str, remote: bool) -> None:
    assert check.is_remote(url) is remote


def _site(tmp_path: Path, body: str, head: str = "") -> Path:
    page = f"<html><head><title>Intro &#8212; Book</title>{head}</head><body>{body}</body></html>"
    (tmp_path / "index.html").write_text(page)
    return tmp_path


def test_static_check_finds_loaded_assets_not_links(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        f'<a href="{REMOTE}/paper.pdf">paper</a><img src="{REMOTE}/a.png"><img src="b.png">'
        f'<img srcset="c.png 1x, {REMOTE}/c2.png 2x">',
        head=f'<script src="{REMOTE}/x.js"></script><link rel="preconnect" href="https://fonts.gstatic.com">'
        '<script src="_static/local.js"></script>',
    )
    (site / "style.css").write_text(
        f"@import url('{REMOTE}/font.css');\nbody {{ background: url(img/bg.png); }}\n"
        f"@import '{REMOTE}/other.css';"
    )
    found = check.static_remote_assets(site)
    assert found == [
        f"index.html: <script> {REMOTE}/x.js",
        "index.html: <link> https://fonts.gstatic.com",
        f"index.html: <img> {REMOTE}/a.png",
        f"index.html: <img> {REMOTE}/c2.png",
        f"style.css: url({REMOTE}/font.css)",
        f"style.css: url({REMOTE}/other.css)",
    ]


def _state(**changes):
    state = {
        "url": "http://127.0.0.1:1/intro.html",
        "title": "Intro — Book",
        "h1": "Intro",
        "h1Visible": True,
        "mathSources": 2,
        "mathRendered": 2,
        "mathErrors": 0,
        "brokenImages": [],
        "images": 1,
    }
    return {**state, **changes}


def test_page_problems() -> None:
    ok = {"requests": ["http://127.0.0.1:1/intro.html"], "failed": [], "state": _state()}
    assert check.page_problems("intro.html", ok) == []
    bad = {
        "requests": ["http://127.0.0.1:1/intro.html", f"{REMOTE}/x.js"],
        "failed": ["http://127.0.0.1:1/_static/gone.js: HTTP 404"],
        "state": _state(title="", h1="", mathRendered=0, brokenImages=["a.png"]),
    }
    reader = _state(wideTables=1, uncaptionedImages=2, nanCells=3, dashedOptions=1, codeWalls=1)
    assert check.page_problems("_executed/02_measuring.html", {**ok, "state": reader}) == [
        "_executed/02_measuring.html: 1 table(s) wider than the text column",
        "_executed/02_measuring.html: 2 image(s) without a numbered caption",
        "_executed/02_measuring.html: 3 table cell(s) reading NaN",
        "_executed/02_measuring.html: 1 command(s) whose -- became a dash (not copyable)",
        "_executed/02_measuring.html: 1 visible code cell(s) over 15 lines",
    ]
    no_math = {**ok, "state": _state(mathSources=0, mathRendered=0)}
    assert check.page_problems("_executed/01_networks.html", no_math) == [
        "_executed/01_networks.html: no equation (add the chapter's formulas)"
    ]
    assert check.page_problems("sections/s4_4_platform_aware_nas.html", no_math) == []
    problems = check.page_problems("intro.html", bad)
    assert problems == [
        f"intro.html: remote request {REMOTE}/x.js",
        "intro.html: failed request http://127.0.0.1:1/_static/gone.js: HTTP 404",
        "intro.html: empty <title>",
        "intro.html: no visible first heading",
        "intro.html: 2 math element(s), none typeset",
        "intro.html: image not shown: a.png",
    ]
    assert check.page_problems("x", {**ok, "state": _state(title="Other")}) == [
        "x: title 'Other' does not start with 'Intro'"
    ]


# ------------------------------------------------------------------ in Chromium

CHROMIUM = check.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium (make offline-check and make test install it)"
)


@needs_chromium
@pytest.mark.slow
def test_browser_records_remote_and_failed_requests(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        "<article><h1>Intro</h1></article><img src='dot.svg'>"
        f"<script>fetch('{REMOTE}/beacon').catch(() => {{}});</script>",
        head="<link rel='icon' href='dot.svg'><link rel='stylesheet' href='missing.css'>",
    )
    (site / "dot.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'
    )
    (site / "clean.html").write_text(
        "<html><head><title>Clean</title><link rel='icon' href='dot.svg'></head>"
        "<body><h1>Clean</h1></body></html>"
    )
    shot = tmp_path / "shot.png"
    with check.serve(site) as base, check.Chromium(CHROMIUM) as browser:
        report = check.visit(browser, urllib.parse.urljoin(base, "index.html"), shot)
        clean = check.visit(browser, urllib.parse.urljoin(base, "clean.html"), None)

    assert f"{REMOTE}/beacon" in report["requests"]
    problems = check.page_problems("index.html", report)
    assert f"index.html: remote request {REMOTE}/beacon" in problems
    assert any("missing.css: HTTP 404" in p for p in problems)
    assert report["state"]["h1"] == "Intro" and report["state"]["images"] == 1
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert check.page_problems("clean.html", clean) == []
    assert all(u.startswith(base) for u in clean["requests"])


def test_scorecard_check_finds_a_stale_number(tmp_path: Path, monkeypatch) -> None:
    """The front page must show each scorecard row's current number (typographic quotes
    on the page are read as plain ones)."""
    import sys

    monkeypatch.syspath_prepend(str(Path(check.__file__).parent))
    sys.modules.pop("scorecard", None)
    import scorecard  # book/scorecard.py, the module check_offline imports

    rows = [{"section": "3.2", "ours": "35.6 % lower RMSPE than Paleo's"}]
    monkeypatch.setattr(scorecard, "rows", lambda claims, executed: rows)
    (tmp_path / "intro.html").write_text("<td>35.6 % lower RMSPE than Paleo’s</td>")
    assert check.scorecard_problems(tmp_path) == []
    (tmp_path / "intro.html").write_text("<td>34.1 % lower RMSPE than Paleo’s</td>")
    assert check.scorecard_problems(tmp_path) == [
        'intro.html: scorecard row 3.2 does not show "35.6 % lower RMSPE than Paleo\'s"'
    ]
