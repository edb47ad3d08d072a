"""Hypervolume indicator (Zitzler & Thiele 1998) through ``moocore.hypervolume``.

The hypervolume of a set is the Lebesgue measure of the region that its points dominate and that
is bounded by a reference point. Maximised objectives are negated so that moocore sees a pure
minimisation problem (the reference is negated with them). Only points that *strictly* dominate
the reference (strictly better on every objective) enclose volume; the others contribute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import NDArray

from scalarize.pareto.front import BoolSeq, Points, _as_points, to_minimization

__all__ = ["default_reference", "hypervolume"]


def _as_vector(values: Sequence[float] | np.ndarray | float, k: int, name: str) -> NDArray[np.float64]:
    """Broadcast a scalar or check a length-``k`` finite vector."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(k, float(arr))
    if arr.shape != (k,):
        raise ValueError(f"{name} must have {k} entries (one per objective); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return arr


def hypervolume(points: Points, reference: Sequence[float] | np.ndarray, maximize: BoolSeq) -> float:
    """Hypervolume of ``points`` ``[n, k]`` with respect to ``reference`` ``[k]``.

    Rule: HV = vol(∪_p [p, r]) in minimisation space (maximised columns negated). Points that do
    not strictly dominate the reference contribute nothing; an empty set has volume 0.
    """
    pts, maxi = _as_points(points, maximize)
    ref = _as_vector(reference, maxi.size, "reference")
    pmin = to_minimization(pts, maxi)
    rmin = to_minimization(ref, maxi)
    inside = np.all(pmin < rmin, axis=1)
    if not np.any(inside):
        return 0.0
    return float(moocore.hypervolume(pmin[inside], ref=rmin))


def default_reference(
    points: Points,
    maximize: BoolSeq,
    stl: Sequence[float] | np.ndarray | None = None,
    margin: float | Sequence[float] = 0.0,
) -> NDArray[np.float64]:
    """A reference point for :func:`hypervolume`.

    Without ``stl``: the worst observed value of each objective (the minimum of a maximised one,
    the maximum of a minimised one), so the hypervolume measures the spread of the set itself.
    With ``stl`` (the single-task values): the STL vector, so only improvements on *every*
    objective over single-task learning count. ``margin`` (absolute, ≥ 0, scalar or per
    objective) then moves the reference that far in the *worse* direction, so that extreme
    points also enclose volume. Empty ``points`` need ``stl``.
    """
    pts, maxi = _as_points(points, maximize)
    k = maxi.size
    if stl is not None:
        base = _as_vector(stl, k, "stl")
    elif pts.shape[0] == 0:
        raise ValueError("default_reference needs at least one point or stl values")
    else:
        base = np.where(maxi, pts.min(axis=0), pts.max(axis=0))
    pad = _as_vector(margin, k, "margin")
    if np.any(pad < 0):
        raise ValueError(f"margin must be non-negative; got {pad.tolist()}")
    return np.where(maxi, base - pad, base + pad)
