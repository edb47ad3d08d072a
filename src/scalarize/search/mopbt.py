"""Multi-objective PBT (MO-PBT): truncation by Pareto rank and spread, not by one fitness.

Dushatskiy, Chebykin, Alderliesten & Bosman, "Multi-Objective Population Based Training",
ICML 2023 (code: github.com/ArkadiyD/MO-PBT, ``search/mo_utils.py``, ``epsnet``). At each sync
the members are ordered best first by

1. **non-dominated sorting** of their objective values (``moocore.pareto_rank``; Deb et al.
   2002): every member of front 0 before every member of front 1, and so on;
2. **greedy scattered subset selection** inside each front (the paper's diversity measure, an
   ε-net; *not* NSGA-II's crowding distance nor a hypervolume contribution): the first member
   of front 0 is the one with the largest first objective; after that each front repeatedly
   takes its member farthest (Euclidean distance in objective space) from every member already
   ordered, including those of earlier fronts. Ties keep the order of the first objective,
   largest first.

The order then replaces the scalar fitness of PBT (:class:`~scalarize.search.pbt.PBTPolicy`):
the bottom quantile copies a member drawn from the top quantile and explores its weights and lr
exactly as PBTPolicy does (same quantile rule, explore, :class:`~scalarize.search.pbt.Decision`
records, seeds and draw order). Objectives are oriented by ``maximize`` (one bool per objective;
default: all higher is better). A member with any non-finite objective has diverged: it ranks
last and is always replaced. Distances use the raw values, as in the paper (its objectives share
the [0, 1] scale); ``normalize=True`` divides each objective by its range over the finite
members first, for objectives on different scales (an accuracy and an MSE).

No torch and no I/O: numpy and moocore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import moocore
import numpy as np

from scalarize.pareto import pareto_front
from scalarize.search.pbt import PBTPolicy

__all__ = ["MOPBTPolicy", "front_members", "objective_matrix", "scattered_order"]


def objective_matrix(
    metrics: Sequence[Mapping[str, float]], names: Sequence[str]
) -> np.ndarray:
    """The objectives ``[N, K]`` of ``N`` members: ``metrics[m][names[j]]``, raw values.

    A member without metrics (an empty mapping: not evaluated yet) gets a row of NaN, which
    :class:`MOPBTPolicy` treats as diverged; a metric missing from a non-empty mapping is an
    error (a misspelt objective).
    """
    rows = []
    for m, values in enumerate(metrics):
        if not values:
            rows.append([np.nan] * len(names))
            continue
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(
                f"member {m}: metric {missing[0]!r} is missing (have {sorted(values)})"
            )
        rows.append([float(values[name]) for name in names])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def scattered_order(points: np.ndarray) -> np.ndarray:
    """Row indices of ``points`` ``[n, K]`` (finite, higher is better) best first, by MO-PBT's rule.

    Fronts in Pareto-rank order; inside each, the first pick of the whole order is the row with
    the largest first objective, and every later pick is the row of the current front whose
    distance to the nearest row already ordered is largest. Candidates are scanned in order of
    decreasing first objective (stable), so ties go to the larger first objective, then to
    the lower index.
    """
    pts = np.asarray(points, dtype=np.float64)
    ranks = moocore.pareto_rank(pts, maximise=True)
    nearest = np.full(len(pts), np.inf)  # distance to the nearest row already ordered
    order: list[int] = []
    for rank in np.unique(ranks):
        front = np.flatnonzero(ranks == rank)
        front = front[np.argsort(-pts[front, 0], kind="stable")]
        while front.size:
            pick = int(np.argmax(nearest[front]))  # first maximum: the tie-break above
            chosen = int(front[pick])
            order.append(chosen)
            front = np.delete(front, pick)
            nearest = np.minimum(nearest, np.linalg.norm(pts - pts[chosen], axis=1))
    return np.array(order, dtype=np.int64)


def _orientation(maximize: Sequence[bool] | None, k: int) -> np.ndarray:
    if maximize is None:
        return np.ones(k, dtype=bool)
    if len(maximize) != k:
        raise ValueError(
            f"MOPBTPolicy.maximize has {len(maximize)} entries but fitness has {k} objectives"
        )
    return np.asarray(maximize, dtype=bool)


def front_members(
    objectives: np.ndarray | Sequence[Sequence[float]], maximize: Sequence[bool] | None = None
) -> np.ndarray:
    """Indices (ascending) of the members on the population's front.

    The non-dominated rows of ``objectives`` ``[N, K]`` among the finite ones (a diverged
    member is never on the front); ``maximize`` as in :class:`MOPBTPolicy`. Copies of a
    non-dominated row are all kept.
    """
    values = np.asarray(objectives, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"objectives must be a 2-D array [N, K]; got shape {values.shape}")
    finite = np.flatnonzero(np.isfinite(values).all(axis=1))
    maxi = _orientation(maximize, values.shape[1])
    return finite[pareto_front(values[finite], maxi)]


@dataclass(frozen=True)
class MOPBTPolicy(PBTPolicy):
    """PBT whose ranking is MO-PBT's (see the module docstring); every field of
    :class:`~scalarize.search.pbt.PBTPolicy`, plus:

    - ``maximize``: one bool per objective, ``True`` when higher is better; ``None`` (default)
      when the caller already oriented every objective higher-is-better.
    - ``normalize``: divide each objective by its range over the finite members before
      measuring distances (default ``False``, the paper's raw values).

    :meth:`decide` takes ``fitness`` as a matrix ``[N, K]`` (members × objectives), e.g. from
    :func:`objective_matrix`; everything else is PBTPolicy's.
    """

    maximize: tuple[bool, ...] | None = None
    normalize: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.maximize
        if m is not None:
            if isinstance(m, (str, bytes)) or not isinstance(m, (Sequence, np.ndarray)) or not (
                len(m) > 0 and all(isinstance(x, (bool, np.bool_)) for x in m)
            ):
                raise ValueError(f"MOPBTPolicy.maximize must be None or a list of bools; got {m!r}")
            object.__setattr__(self, "maximize", tuple(bool(x) for x in m))
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise ValueError(f"MOPBTPolicy.normalize must be a bool; got {self.normalize!r}")
        object.__setattr__(self, "normalize", bool(self.normalize))

    def fitness_array(self, fitness: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """``fitness`` as float64 ``[N, K]``, oriented higher-is-better (minimised columns
        negated); ValueError unless 2-D with at least one member and one objective."""
        f = np.asarray(fitness, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
            raise ValueError(
                f"fitness must be a non-empty 2-D array [members, objectives]; got shape {f.shape}"
            )
        return np.where(_orientation(self.maximize, f.shape[1]), f, -f)

    def diverged(self, fitness: np.ndarray) -> np.ndarray:
        """Mask ``[N]``: members with any non-finite objective."""
        return ~np.isfinite(fitness).all(axis=1)

    def rank(
        self, fitness: np.ndarray | Sequence[Sequence[float]], rng: np.random.Generator
    ) -> np.ndarray:
        """Member indices best first: the finite members in :func:`scattered_order`, then the
        diverged ones. ``fitness`` is oriented (as :meth:`fitness_array` returns it). Members
        are first shuffled by one ``rng.permutation(N)`` draw, so exact ties (identical rows)
        do not favour low indices."""
        f = np.asarray(fitness, dtype=np.float64)
        perm = rng.permutation(len(f))
        bad = self.diverged(f)[perm]
        finite = perm[~bad]
        points = f[finite]
        if self.normalize and len(points):
            span = np.ptp(points, axis=0)
            points = points / np.where(span > 0, span, 1.0)
        return np.concatenate([finite[scattered_order(points)], perm[bad]]).astype(np.int64)
