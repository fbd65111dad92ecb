"""The front page's scorecard: each claim of the survey beside this book's number.

``book/claims.yml`` lists the claims (its header documents the fields). :func:`render`
fills each row from the glued values of the executed chapter it names
(:func:`read_glued`) and writes a Markdown table with a verdict and a link to the
chapter; claims not reproduced yet link to the page that says why. ``book/build.py
html`` writes the table to ``book/_executed/scorecard.md`` before building, and the
front page includes that file, so the scorecard always shows the numbers of the
chapters it is built with.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

BOOK = Path(__file__).resolve().parent
CLAIMS = BOOK / "claims.yml"
EXECUTED = BOOK / "_executed"
OUTPUT = EXECUTED / "scorecard.md"

#: Within this relative distance of the survey's number a result is "on par".
PAR_TOLERANCE = 0.10


class ScorecardError(ValueError):
    """A claim names a chapter, key or rule that does not exist; the message says which."""


def read_glued(notebook: Path) -> dict[str, Any]:
    """The values a notebook glued (myst-nb's ``glue``), by key.

    Numbers come back as ``int``/``float``, text as ``str``; figures and other objects
    as their text form.
    """
    values: dict[str, Any] = {}
    for cell in json.loads(Path(notebook).read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if not name:
                continue
            text = output.get("data", {}).get("application/papermill.record/text/plain")
            if isinstance(text, list):
                text = "".join(text)
            try:
                values[name] = ast.literal_eval(text) if text is not None else None
            except (ValueError, SyntaxError):
                values[name] = text
    return values


def _number(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = re.search(r"-?\d+(\.\d+)?", str(value))
    if not match:
        raise ScorecardError(f"{where}: {value!r} holds no number")
    return float(match.group())


def _has_number(value: Any) -> bool:
    """Whether :func:`_number` can read a number from ``value``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    return re.search(r"-?\d+(\.\d+)?", str(value)) is not None


def _fill(template: str, values: Mapping[str, Any], where: str) -> str:
    keys = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    missing = [k for k in keys if k not in values]
    if missing:
        raise ScorecardError(f"{where}: no glued value {', '.join(missing)}")
    return template.format(**values)


def verdict(rule: Mapping[str, Any], values: Mapping[str, Any], where: str) -> str:
    """The verdict text of one claim (see the header of ``book/claims.yml``)."""

    def value(key: str) -> Any:
        if key not in values:
            raise ScorecardError(f"{where}: no glued value {key}")
        return values[key]

    if ("compare" in rule or "target" in rule) and not _has_number(
        value(rule.get("compare", rule.get("target")))
    ):
        # e.g. a speed-up glued as "undefined" when no run reached the region (quick mode)
        return "not measurable in this run"
    if "compare" in rule:
        ours = _number(value(rule["compare"]), where)
        survey = (
            _number(value(rule["survey_key"]), where)
            if "survey_key" in rule
            else float(rule["survey"])
        )
        if abs(ours - survey) <= PAR_TOLERANCE * abs(survey):
            return "on par with the survey"
        lower_is_better = rule.get("better", "lower") == "lower"
        return (
            "better than the survey"
            if (ours < survey) == lower_is_better
            else "worse than the survey"
        )
    if "target" in rule:
        ours = _number(value(rule["target"]), where)
        if "at_most" in rule:
            return "met" if ours <= float(rule["at_most"]) else "missed"
        if "at_least" in rule:
            return "met" if ours >= float(rule["at_least"]) else "missed"
        raise ScorecardError(f"{where}: a target needs at_most or at_least")
    if "below" in rule:
        low, high = _number(value(rule["below"]), where), _number(value(rule["other"]), where)
        return "confirmed" if low < high else "not confirmed"
    if "glued" in rule:
        return str(value(rule["glued"]))
    raise ScorecardError(f"{where}: unknown verdict rule {dict(rule)}")


def rows(claims: list[Mapping[str, Any]], executed: Path = EXECUTED) -> list[dict[str, str]]:
    """The scorecard's rows: ``section``, ``claim``, ``survey``, ``ours``, ``verdict``,
    ``link`` (a document path relative to ``book/``).

    Raises:
        ScorecardError: a chapter not executed, a glue key or rule that does not exist.
    """
    out = []
    cache: dict[str, dict[str, Any]] = {}
    for i, claim in enumerate(claims):
        where = f"claims.yml, claim {i + 1} ({claim.get('section')})"
        if "page" in claim:
            out.append(
                {
                    "section": str(claim["section"]),
                    "claim": claim["claim"],
                    "survey": str(claim["survey"]),
                    "ours": "not reproduced yet",
                    "verdict": "–",
                    "link": claim["page"],
                }
            )
            continue
        chapter = claim["chapter"]
        if chapter not in cache:
            path = executed / f"{chapter}.ipynb"
            if not path.is_file():
                raise ScorecardError(f"{where}: chapter {chapter} has not been executed ({path})")
            cache[chapter] = read_glued(path)
        values = cache[chapter]
        out.append(
            {
                "section": str(claim["section"]),
                "claim": claim["claim"],
                "survey": _fill(str(claim["survey"]), values, where),
                "ours": _fill(claim["ours"], values, where),
                "verdict": verdict(claim["verdict"], values, where),
                "link": f"{EXECUTED.name}/{chapter}",
            }
        )
    return out


def render(claims_file: Path = CLAIMS, executed: Path = EXECUTED) -> str:
    """The scorecard as Markdown (a table; links are MyST ``{doc}`` roles relative to
    the front page)."""
    claims = yaml.safe_load(Path(claims_file).read_text())["claims"]
    lines = [
        "| § | Claim of the survey | Survey | This book | Verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows(claims, executed):
        cells = [
            row["section"],
            f"{row['claim']} ({{doc}}`details <{row['link']}>`)",
            row["survey"],
            row["ours"],
            f"**{row['verdict']}**",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write(output: Path = OUTPUT, claims_file: Path = CLAIMS, executed: Path = EXECUTED) -> Path:
    """Render the scorecard into ``output`` (what the front page includes)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(claims_file, executed))
    return output
