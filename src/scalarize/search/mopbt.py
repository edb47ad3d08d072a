"""Multi-objective PBT (MO-PBT): truncation by Pareto rank and spread, not by one fitness.

Dushatskiy, Chebykin, Alderliesten & Bosman, "Multi-Objective Population Based Training",
ICML 2023 (code: github.com/ArkadiyD/MO-PBT, ``search/mo_utils.py``, ``epsnet``). At each sync
the members are ordered best first by

1. **non-dominated sorting** of their objective values (``moocore.pareto_rank``; Deb et al.
   2002): every member of front 0 before every member of front 1, and so on;
2. a **diversity order** inside each front, ``diversity``:

   - ``"scattered"`` (default, the paper's: greedy scattered subset selection, an ε-net,
     :func:`scattered_order`): the first member of front 0 is the one with the largest first
     objective; after that each front repeatedly takes its member farthest (Euclidean distance
     in objective space) from every member already ordered, including those of earlier fronts.
     Ties keep the order of the first objective, largest first.
   - ``"crowding"`` (NSGA-II's crowding distance, Deb, Pratap, Agarwal & Meyarivan, IEEE TEC
     2002, :func:`crowding_order`): largest crowding distance first.
   - ``"hypervolume"`` (each member's exclusive hypervolume contribution, as in SMS-EMOA,
     Beume, Naujoks & Emmerich 2007; computed by ``moocore.hv_contributions``,
     :func:`hypervolume_order`): largest contribution first.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import moocore
import numpy as np
from numpy.typing import NDArray

from scalarize.pareto import pareto_front
from scalarize.search.pbt import Fitness, PBTPolicy

__all__ = [
    "DIVERSITY",
    "MOPBTPolicy",
    "crowding_distance",
    "crowding_order",
    "front_members",
    "hypervolume_contributions",
    "hypervolume_order",
    "hypervolume_reference",
    "objective_matrix",
    "scattered_order",
]


def objective_matrix(metrics: Sequence[Mapping[str, float]], names: Sequence[str]) -> NDArray[np.float64]:
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
            raise ValueError(f"member {m}: metric {missing[0]!r} is missing (have {sorted(values)})")
        rows.append([float(values[name]) for name in names])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def scattered_order(points: np.ndarray) -> NDArray[np.int64]:
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


def _front_by_front(
    points: np.ndarray, score: Callable[[NDArray[np.float64]], NDArray[np.float64]]
) -> NDArray[np.int64]:
    """Row indices of ``points`` (finite, higher is better) best first: fronts in Pareto-rank
    order; inside each, ``score(front_points)`` (one number per row) descending, ties in row
    order (a stable sort)."""
    pts = np.asarray(points, dtype=np.float64)
    ranks = moocore.pareto_rank(pts, maximise=True)
    order: list[NDArray[np.intp]] = []
    for rank in np.unique(ranks):
        front = np.flatnonzero(ranks == rank)
        order.append(front[np.argsort(-score(pts[front]), kind="stable")])
    return np.concatenate(order).astype(np.int64) if order else np.zeros(0, dtype=np.int64)


def crowding_distance(points: np.ndarray) -> NDArray[np.float64]:
    """NSGA-II's crowding distance of each row of one front ``[n, K]`` (Deb et al. 2002).

    Rule: per objective ``m``, sort the rows by ``f_m`` (stable); the first and last rows get
    ``inf``; every other row adds ``(f_m[next] − f_m[previous]) / (f_m^max − f_m^min)``, the
    side length of the cuboid its neighbours span, over the front's range. An objective that is
    constant over the front adds nothing. Fronts of one or two rows are all ``inf``.
    """
    pts = np.asarray(points, dtype=np.float64)
    distance = np.zeros(len(pts))
    if len(pts) <= 2:
        return np.full(len(pts), np.inf)
    for column in pts.T:
        order = np.argsort(column, kind="stable")
        values = column[order]
        span = values[-1] - values[0]
        distance[order[[0, -1]]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def crowding_order(points: np.ndarray) -> NDArray[np.int64]:
    """Row indices of ``points`` ``[n, K]`` (finite, higher is better) best first: fronts in
    Pareto-rank order, inside each the largest :func:`crowding_distance` first (ties in row
    order), as NSGA-II's crowded-comparison operator ranks (Deb et al. 2002)."""
    return _front_by_front(points, crowding_distance)


def hypervolume_reference(points: np.ndarray) -> NDArray[np.float64]:
    """The reference point of :func:`hypervolume_order`: each objective's worst value over
    ``points`` (higher is better) minus a tenth of its range (1 when the range is 0), so that
    the extreme members of a front also enclose volume."""
    pts = np.asarray(points, dtype=np.float64)
    span = np.ptp(pts, axis=0)
    reference: NDArray[np.float64] = pts.min(axis=0) - 0.1 * np.where(span > 0, span, 1.0)
    return reference


def hypervolume_contributions(points: np.ndarray, reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each row's exclusive hypervolume contribution within ``points`` ``[n, K]`` (higher is
    better): ``HV(P) − HV(P \\ {p})`` against ``reference``, by ``moocore.hv_contributions``.
    Duplicated and dominated rows contribute 0."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[1] == 1:  # moocore needs two objectives: only a unique maximum contributes
        values, out = pts[:, 0], np.zeros(len(pts))
        top = np.flatnonzero(values == values.max())
        if len(top) == 1:
            out[top] = values.max() - max(np.delete(values, top).max(initial=reference[0]), reference[0])
        return out
    return np.asarray(moocore.hv_contributions(pts, ref=reference, maximise=True), dtype=np.float64)


def hypervolume_order(points: np.ndarray) -> NDArray[np.int64]:
    """Row indices of ``points`` ``[n, K]`` (finite, higher is better) best first: fronts in
    Pareto-rank order, inside each the largest exclusive hypervolume contribution within the
    front first (ties in row order), against :func:`hypervolume_reference` of all the rows."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros(0, dtype=np.int64)
    reference = hypervolume_reference(pts)
    return _front_by_front(pts, lambda front: hypervolume_contributions(front, reference))


#: The diversity orders of :class:`MOPBTPolicy`, by name.
DIVERSITY: dict[str, Callable[[NDArray[np.float64]], NDArray[np.int64]]] = {
    "scattered": scattered_order,
    "crowding": crowding_order,
    "hypervolume": hypervolume_order,
}


def _orientation(maximize: Sequence[bool] | None, k: int) -> NDArray[np.bool_]:
    if maximize is None:
        return np.ones(k, dtype=bool)
    if len(maximize) != k:
        raise ValueError(f"MOPBTPolicy.maximize has {len(maximize)} entries but fitness has {k} objectives")
    return np.asarray(maximize, dtype=bool)


def front_members(
    objectives: np.ndarray | Sequence[Sequence[float]], maximize: Sequence[bool] | None = None
) -> NDArray[np.intp]:
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
      measuring distances (default ``False``, the paper's raw values; the crowding and the
      hypervolume orders do not depend on the objectives' scales).
    - ``diversity``: the order inside a front, one of :data:`DIVERSITY` (default
      ``"scattered"``, the paper's).

    :meth:`decide` takes ``fitness`` as a matrix ``[N, K]`` (members × objectives), e.g. from
    :func:`objective_matrix`; everything else is PBTPolicy's.
    """

    maximize: tuple[bool, ...] | None = None
    normalize: bool = False
    diversity: str = "scattered"

    def __post_init__(self) -> None:
        super().__post_init__()
        m = self.maximize
        if m is not None:
            if (
                isinstance(m, (str, bytes))
                or not isinstance(m, (Sequence, np.ndarray))
                or not (len(m) > 0 and all(isinstance(x, (bool, np.bool_)) for x in m))
            ):
                raise ValueError(f"MOPBTPolicy.maximize must be None or a list of bools; got {m!r}")
            object.__setattr__(self, "maximize", tuple(bool(x) for x in m))
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise ValueError(f"MOPBTPolicy.normalize must be a bool; got {self.normalize!r}")
        object.__setattr__(self, "normalize", bool(self.normalize))
        if self.diversity not in DIVERSITY:
            allowed = ", ".join(repr(name) for name in DIVERSITY)
            raise ValueError(f"MOPBTPolicy.diversity must be one of {allowed}; got {self.diversity!r}")

    def fitness_array(self, fitness: Fitness) -> NDArray[np.float64]:
        """``fitness`` as float64 ``[N, K]``, oriented higher-is-better (minimised columns
        negated); ValueError unless 2-D with at least one member and one objective."""
        f = np.asarray(fitness, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
            raise ValueError(f"fitness must be a non-empty 2-D array [members, objectives]; got shape {f.shape}")
        return np.where(_orientation(self.maximize, f.shape[1]), f, -f)

    def ranking_fitness(
        self, fitness: Sequence[float] | np.ndarray, objectives: np.ndarray | Sequence[Sequence[float]]
    ) -> NDArray[np.float64]:
        """MO-PBT ranks by the objectives ``[N, K]`` (raw; :meth:`decide` orients them by
        ``maximize``); the scalar ``fitness`` only picks :meth:`front`'s first member."""
        return np.asarray(objectives, dtype=np.float64)

    def front(
        self, fitness: Sequence[float] | np.ndarray, objectives: np.ndarray | Sequence[Sequence[float]]
    ) -> list[int]:
        """The population's front (:func:`front_members` of ``objectives``, oriented by
        ``maximize``), ordered by the scalar ``fitness`` ``[N]``, largest first (members with a
        non-finite fitness last, ties in member order): the first is the one member a caller
        keeps when it needs a single model. ``[]`` when every member diverged."""
        f = np.asarray(fitness, dtype=np.float64)
        members = [int(m) for m in front_members(objectives, self.maximize)]
        return sorted(members, key=lambda m: (not np.isfinite(f[m]), -f[m] if np.isfinite(f[m]) else 0.0, m))

    def diverged(self, fitness: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Mask ``[N]``: members with any non-finite objective."""
        # all(axis=1) of the 2-D [N, K] fitness is an array; numpy's stubs also allow a scalar
        return ~cast(NDArray[np.bool_], np.isfinite(fitness).all(axis=1))

    def rank(self, fitness: Fitness, rng: np.random.Generator) -> NDArray[np.int64]:
        """Member indices best first: the finite members in the order ``diversity`` names
        (:data:`DIVERSITY`), then the diverged ones. ``fitness`` is oriented (as :meth:`fitness_array` returns it). Members
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
        order = DIVERSITY[self.diversity](points)
        return np.concatenate([finite[order], perm[bad]]).astype(np.int64)
