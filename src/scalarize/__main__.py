"""``python -m scalarize``: the ``scalarize`` command (what ``torchrun -m scalarize train ...`` runs)."""

import sys

from scalarize.cli import run

sys.exit(run())
