"""Test problems: Branin under two linear 'hardware' budgets."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BRANIN_MIN = 0.397887
# Branin's three global minima; the budgets below keep only the first one feasible.
BRANIN_MINIMA = [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)]


def branin(x1: float | np.ndarray, x2: float | np.ndarray) -> float | np.ndarray:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def power_w(x1: Any, x2: Any) -> Any:
    """A linear 'power' model: feasible (<= 60 W) only where x2 >= 2 * x1 + 8."""
    return 100 + 10 * x1 - 5 * x2


def mem_bytes(x1: Any, x2: Any) -> Any:
    """A 'memory' model that cuts off the far corner (x1, x2) = (-5, 0)."""
    return 1e6 * ((x1 + 5) ** 2 + (x2 - 15) ** 2)


def branin_objective(config: dict[str, Any]) -> dict[str, float]:
    """Branin value plus the 'measured' power (memory is left unmeasured)."""
    x1, x2 = config["x1"], config["x2"]
    return {"objective": float(branin(x1, x2)), "power_w": float(power_w(x1, x2))}
