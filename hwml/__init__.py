"""hwml: hardware-aware machine learning.

Measure what a neural network costs on real hardware (runtime, power, energy, memory),
predict that cost before training, and search for networks that are accurate and fit a
hardware budget.

Layers of the package (lower ones never import upper ones)::

    describe, hardware, data, optimize/   ground floor
    predict/, profile                     use the ground floor
    objectives                            uses the above
    cli                                   the command-line face
"""

from __future__ import annotations

__version__ = "0.1.0"
