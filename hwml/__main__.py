"""``python -m hwml`` runs the command line."""

import sys

from hwml.cli import main

sys.exit(main())
