"""The package's floors: a module imports only modules on lower floors (or its own package).

-1 tables                                   (the one append-only file writer)
0  describe, hardware, data, optimize/, cells (the ground floor; cells: the CNN cell space)
1  zoo, cluster                              (networks, described; where tasks run)
2  predict/, profile, measurements          (use the ground floor)
3  tasks, validation                        (data and CNN families to train; meter checks)
4  hyperpower                               (HyperPower: constraints, objective, benchmark)
4  nas/                                     (platform-aware architecture search; beside hyperpower)
5  deploy/                                  (deployment levels of a trained CNN, walked over
                                             networks of the HyperPower benchmark)
6  cli_args, notebook                       (argument types of the faces; notebook helpers)
7  cli_predict, cli_optimize, cli_nas       (the faces' sub-commands)
8  cli                                      (the `hwml` command: describe, profile, and the above)
9  __main__
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "hwml"

FLOORS = {
    "tables": -1,
    "describe": 0,
    "hardware": 0,
    "data": 0,
    "optimize": 0,
    "zoo": 1,
    "cluster": 1,
    "cells": 0,
    "predict": 2,
    "profile": 2,
    "measurements": 2,
    "tasks": 3,
    "validation": 3,
    "hyperpower": 4,
    "deploy": 5,
    "nas": 4,
    "cli_args": 6,
    "notebook": 6,
    "cli_predict": 7,
    "cli_optimize": 7,
    "cli_nas": 7,
    "cli": 8,
    "__main__": 9,
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwml"):
            parts = node.module.split(".")
            if len(parts) > 1:
                names.add(parts[1])
            else:  # from hwml import zoo, __version__
                names.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("hwml."):
                    names.add(a.name.split(".")[1])
    return {n for n in names if n in FLOORS}


MODULES = sorted(p for p in PKG.rglob("*.py") if _unit(p) != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_import_runs_back_up(path):
    unit = _unit(path)
    assert unit in FLOORS, f"{unit} has no floor: add it to FLOORS in this test"
    for other in _imported_units(path):
        if other == unit:
            continue
        assert FLOORS[other] < FLOORS[unit], (
            f"hwml/{path.relative_to(PKG)} (floor {FLOORS[unit]}) imports hwml.{other} "
            f"(floor {FLOORS[other]})"
        )


def _device_calls(path: Path) -> list[str]:
    """Dotted names under ``torch.cuda`` / ``torch.backends`` used in a module's code."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            parts = []
            cur: ast.AST = node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if (
                isinstance(cur, ast.Name)
                and cur.id == "torch"
                and parts[-1] in ("cuda", "backends")
            ):
                found.append(".".join(["torch", *reversed(parts)]))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] == "pynvml" for n in names):
                found.append("import pynvml")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_only_hardware_touches_the_device(path):
    if _unit(path) == "hardware":
        return
    assert _device_calls(path) == [], (
        f"hwml/{path.relative_to(PKG)} reaches the device directly; go through hwml.hardware"
    )
