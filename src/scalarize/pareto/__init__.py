"""Pure-numpy multi-objective utilities: Pareto fronts, hypervolume, Δm, selection.

No torch and no I/O. Every function takes ``maximize``, one bool per objective.
"""

from __future__ import annotations

from scalarize.pareto.delta_m import delta_m, delta_m_batch
from scalarize.pareto.front import dominates, non_dominated_mask, pareto_front, to_minimization
from scalarize.pareto.hypervolume import default_reference, hypervolume
from scalarize.pareto.selection import (
    AtLeast,
    AtMost,
    MaxMean,
    Rule,
    WeightedPreference,
    select,
)

__all__ = [
    "AtLeast",
    "AtMost",
    "MaxMean",
    "Rule",
    "WeightedPreference",
    "default_reference",
    "delta_m",
    "delta_m_batch",
    "dominates",
    "hypervolume",
    "non_dominated_mask",
    "pareto_front",
    "select",
    "to_minimization",
]
