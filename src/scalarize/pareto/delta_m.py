"""Δm, the average relative gain over single-task learning (Maninis et al., CVPR 2019).

Rule, in percent::

    Δm = 100 / k · Σ_i (−1)^{l_i} (M_i − M_i^STL) / M_i^STL,   l_i = 1 when lower is better.

Positive Δm means better than the single-task models. The relative change is only meaningful
for positive metrics (accuracy, error, loss, RMSE ...), so STL values must be strictly positive:
with a negative baseline the sign of the ratio would invert and "positive = better" would no
longer hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scalarize.pareto.front import BoolSeq, Points, _as_points

__all__ = ["delta_m", "delta_m_batch"]


def _as_stl(stl: Sequence[float] | np.ndarray, k: int) -> NDArray[np.float64]:
    arr = np.asarray(stl, dtype=np.float64)
    if arr.shape != (k,):
        raise ValueError(f"stl must have {k} entries (one per task); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("stl values must be finite (found NaN or inf)")
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        raise ValueError(
            f"stl values must be strictly positive for Δm (relative change); "
            f"task(s) {bad.tolist()} have {arr[bad].tolist()}"
        )
    return arr


def delta_m_batch(metrics: Points, stl: Sequence[float] | np.ndarray, maximize: BoolSeq) -> NDArray[np.float64]:
    """Δm (percent) of each row of ``metrics`` ``[n, k]`` against ``stl`` ``[k]``; returns ``[n]``."""
    if np.ndim(metrics) != 2:
        raise ValueError(f"metrics must be a 2-D array [n, k]; got shape {np.shape(metrics)}")
    pts, maxi = _as_points(metrics, maximize)
    base = _as_stl(stl, maxi.size)
    sign = np.where(maxi, 1.0, -1.0)
    out: NDArray[np.float64] = 100.0 * np.mean(sign * (pts - base) / base, axis=1)
    return out


def delta_m(metrics: Sequence[float] | np.ndarray, stl: Sequence[float] | np.ndarray, maximize: BoolSeq) -> float:
    """Δm (percent) of one model's metrics ``[k]`` against the single-task metrics ``stl`` ``[k]``."""
    row = np.asarray(metrics, dtype=np.float64)
    if row.ndim != 1:
        raise ValueError(f"metrics must be a 1-D vector [k]; got shape {row.shape}")
    if row.size == 0:
        raise ValueError("metrics must hold at least one task")
    return float(delta_m_batch(row[None, :], stl, maximize)[0])
