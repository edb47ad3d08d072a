"""Search over task weights: sweep designs (fixed and adaptive), PBT and MO-PBT policies, PBT
fitness, PB2 explore.

Pure logic: numpy (scipy for Sobol' points), no torch, no I/O. ``pb2_explore`` imports
scikit-learn, so it is loaded only when first used.
"""

from __future__ import annotations

from typing import Any

from scalarize.search.adaptive import adaptive_weights, front_gaps, maximin_weights
from scalarize.search.designs import (
    dirichlet,
    grid,
    lattice,
    sobol_simplex,
    uniform,
    validate_weights,
)
from scalarize.search.fitness import (
    FITNESS_NAMES,
    FitnessFn,
    build_fitness,
    constrained,
    delta_m_fitness,
    fitness_vector,
    mean_primary,
)
from scalarize.search.mopbt import (
    DIVERSITY,
    MOPBTPolicy,
    crowding_distance,
    crowding_order,
    front_members,
    hypervolume_contributions,
    hypervolume_order,
    objective_matrix,
    scattered_order,
)
from scalarize.search.pbt import (
    Decision,
    LineageRow,
    PBTPolicy,
    initial_rows,
    lineage_rows,
    quantile_count,
    schedule_of,
)

__all__ = [
    "DIVERSITY",
    "FITNESS_NAMES",
    "Decision",
    "FitnessFn",
    "LineageRow",
    "MOPBTPolicy",
    "PBTPolicy",
    "adaptive_weights",
    "build_fitness",
    "constrained",
    "crowding_distance",
    "crowding_order",
    "delta_m_fitness",
    "dirichlet",
    "fitness_vector",
    "front_gaps",
    "front_members",
    "grid",
    "hypervolume_contributions",
    "hypervolume_order",
    "initial_rows",
    "lattice",
    "lineage_rows",
    "maximin_weights",
    "mean_primary",
    "objective_matrix",
    "pb2_explore",
    "quantile_count",
    "scattered_order",
    "schedule_of",
    "sobol_simplex",
    "uniform",
    "validate_weights",
]


def __getattr__(name: str) -> Any:
    if name == "pb2_explore":  # scikit-learn is heavy: import on first use
        from scalarize.search.pb2 import pb2_explore

        return pb2_explore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
