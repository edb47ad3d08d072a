"""Non-dominated (Pareto) sets with mixed optimisation directions.

Every function of :mod:`scalarize.pareto` takes ``maximize``: one bool per objective, ``True``
when larger is better (accuracy) and ``False`` when smaller is better (error, loss).

Dominance (minimisation form): ``a`` dominates ``b`` when ``a`` is no worse than ``b`` on every
objective and strictly better on at least one. A point is non-dominated when no point of the set
dominates it. Identical points do not dominate each other, so **every copy of a non-dominated
point is kept** (``moocore.is_nondominated(..., keep_weakly=True)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import NDArray

__all__ = ["dominates", "non_dominated_mask", "pareto_front", "to_minimization"]

BoolSeq = Sequence[bool] | NDArray[np.bool_]
#: ``[n, k]`` points: an array or a sequence of rows.
Points = np.ndarray | Sequence[Sequence[float]]


def _as_maximize(maximize: BoolSeq, num_objectives: int | None = None) -> NDArray[np.bool_]:
    """Return ``maximize`` as a bool vector, checking its length against ``num_objectives``."""
    if isinstance(maximize, (bool, np.bool_)) or np.ndim(maximize) != 1:
        raise ValueError("maximize must be a sequence of bools, one per objective")
    values = list(maximize)
    if any(v not in (True, False) for v in values):
        raise ValueError(f"maximize must hold only bools; got {values!r}")
    out = np.asarray(values, dtype=bool)
    if num_objectives is not None and out.size != num_objectives:
        raise ValueError(f"maximize has {out.size} entries but there are {num_objectives} objectives")
    return out


def _as_points(points: Points, maximize: BoolSeq) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Validate ``points`` as a finite float array ``[n, k]`` with ``k == len(maximize)``."""
    maxi = _as_maximize(maximize)
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        return pts.reshape(0, maxi.size), maxi
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array [n, k]; got shape {pts.shape}")
    if pts.shape[1] != maxi.size:
        raise ValueError(f"points have {pts.shape[1]} objectives but maximize has {maxi.size} entries")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points must be finite (found NaN or inf)")
    return pts, maxi


def to_minimization(points: np.ndarray, maximize: BoolSeq) -> NDArray[np.float64]:
    """Negate the maximised columns so that every objective is minimised (a copy, float64)."""
    pts = np.asarray(points, dtype=np.float64)
    maxi = _as_maximize(maximize, pts.shape[-1])
    return np.where(maxi, -pts, pts)


def dominates(a: Sequence[float], b: Sequence[float], maximize: BoolSeq) -> bool:
    """Whether ``a`` Pareto-dominates ``b``: no worse everywhere and strictly better somewhere."""
    pts, maxi = _as_points(np.vstack([a, b]), maximize)
    ma, mb = to_minimization(pts, maxi)
    return bool(np.all(ma <= mb) and np.any(ma < mb))


def non_dominated_mask(points: Points, maximize: BoolSeq) -> NDArray[np.bool_]:
    """Boolean mask ``[n]``: ``True`` where no other point dominates the row.

    Uses ``moocore.is_nondominated`` (Kung, Luccio & Preparata 1975 algorithms) with
    ``keep_weakly=True``, so all copies of a duplicated non-dominated point are ``True``.
    An empty input gives an empty mask; a single point is non-dominated.
    """
    pts, maxi = _as_points(points, maximize)
    if pts.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    mask = moocore.is_nondominated(pts, maximise=maxi.tolist(), keep_weakly=True)
    return np.asarray(mask, dtype=bool)


def pareto_front(points: Points, maximize: BoolSeq) -> NDArray[np.int64]:
    """Indices (ascending, ``int64``) of the non-dominated rows; duplicates all kept."""
    return np.flatnonzero(non_dominated_mask(points, maximize)).astype(np.int64)
