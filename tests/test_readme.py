"""The README's runnable examples run as written (the optimizer example on a toy objective)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_optimizer_example_runs_and_resumes(tmp_path: Path, monkeypatch, capsys) -> None:
    [example] = [b for b in _python_blocks() if "from hwml.optimize import" in b]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    exec(compile(example, "README.md", "exec"), {"__name__": "__main__"})
    first = capsys.readouterr().out.strip()
    assert float(first) < 0.3  # the best feasible error found
    history = (tmp_path / "runs" / "hw-ieci-s0.csv").read_text().splitlines()
    assert len(history) == 26  # header + 25 evaluations
    exec(compile(example, "README.md", "exec"), {"__name__": "__main__"})  # resumes: no new rows
    assert capsys.readouterr().out.strip() == first
    assert len((tmp_path / "runs" / "hw-ieci-s0.csv").read_text().splitlines()) == 26


@pytest.mark.parametrize("block", range(len(_python_blocks())))
def test_python_blocks_parse(block: int) -> None:
    compile(_python_blocks()[block], "README.md", "exec")
