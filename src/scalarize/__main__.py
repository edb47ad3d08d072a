"""``python -m scalarize``: the ``scalarize`` command (what ``torchrun -m scalarize train ...`` runs)."""

import sys

from scalarize.cli.main import main

sys.exit(main())
