"""Search over task weights: sweep designs (and, in sibling modules, PBT/PB2 policies).

Pure logic: numpy (scipy for Sobol' points), no torch, no I/O.
"""

from __future__ import annotations

from scalarize.search.designs import (
    dirichlet,
    grid,
    lattice,
    sobol_simplex,
    uniform,
    validate_weights,
)

__all__ = ["dirichlet", "grid", "lattice", "sobol_simplex", "uniform", "validate_weights"]
