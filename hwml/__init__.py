"""hwml: hardware-aware machine learning.

Measure what a neural network costs on real hardware (runtime, power, energy, memory),
predict that cost before training, and search for networks that are accurate and fit a
hardware budget.

Layers of the package (lower ones never import upper ones)::

    tables                                the one append-only file writer
    describe/, hardware/, data, optimize/ ground floor
    zoo                                   networks, described
    predict/, profile/, measurements      use the ground floor
    tasks/, validation                    what searches train; the meter checked
    hyperpower/, deploy/, nas/            HyperPower; deployment levels; platform-aware NAS
    cli_args, notebook, cli_*, cli        the faces (tests/test_layering.py has the floors)
"""

from __future__ import annotations

__version__ = "0.1.0"
