"""Adaptive sweep design: the next weights go where the traced front has its largest gaps.

Evenly spaced weights do not give evenly spaced front points (Das & Dennis 1997, "A closer look
at drawbacks of minimizing weighted sums of objectives"): where the front bends, a small change
of weights moves far along it. The adaptive weighted-sum method (Kim & de Weck 2005, "Adaptive
weighted-sum method for bi-objective optimization: Pareto front generation") therefore refines
the weights between neighbouring front points that lie far apart. :func:`adaptive_weights`
applies that rule to a sweep that is already trained:

1. **Front**: the non-dominated runs among those with finite objective values, each objective
   divided by its range on the front (a zero range counts as 1), so gaps are comparable across
   objectives.
2. **Gaps**: the edges of the Euclidean minimum spanning tree of the front points (Prim). With
   two objectives the tree is the chain of neighbours along the front (on a strictly monotone
   chain the segment between non-neighbours is the longest side of a triangle, never in the
   tree), so an edge's length is the arc-length gap between neighbours; with K objectives the
   tree links every front point to its nearest part of the front, and its longest edges span
   the largest empty regions. An edge whose end points share their weights is dropped.
3. **Refinement by bisection**: each edge starts as one segment ``[0, 1]`` of the path from its
   first to its second end point's weights, scored ``length × (b − a)`` for a segment ``[a, b]``
   (the gap it covers if the front moves at constant speed along the edge). The segment with
   the largest score is halved and its midpoint's weights ``(1 − t)·w_i + t·w_j`` proposed,
   ``batch`` times; ties go to the edge found first, then the lower segment. A midpoint that
   repeats a trained or proposed weight vector (within ``1e-9``) is split but not proposed.
4. **Fallback** (no edge of positive length: no finite run, one front point, all front points
   equal): a space-filling design instead, greedily the candidate farthest from every trained
   and proposed weight vector (maximin), over the simplex lattice of spacing 1/2^j with at most
   2,000 points, plus the uniform point (corners first when nothing is trained).

Weights are convex combinations of simplex points, so they lie on Δ (renormalised against
rounding). The result is a pure function of what was trained so far: deterministic and
resumable. No torch and no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from scalarize.pareto import pareto_front, to_minimization
from scalarize.search.designs import lattice, validate_weights

__all__ = ["adaptive_weights", "front_gaps", "maximin_weights"]

#: Most candidate points of the fallback's simplex lattice.
MAX_CANDIDATES = 2000
#: Two weight vectors closer than this (largest coordinate difference) are the same.
SAME_WEIGHTS = 1e-9


def _check_weights(weights: np.ndarray | Sequence[Sequence[float]]) -> NDArray[np.float64]:
    """Rows checked by :func:`validate_weights`, renormalised to sum 1; ``[n, k]``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] == 0:
        raise ValueError(f"weights must be a 2-D array [n, k]; got shape {w.shape}")
    rows = [validate_weights(row, w.shape[1]) for row in w]
    return np.array([row / row.sum() for row in rows]).reshape(w.shape)


def _check_batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive int; got {batch!r}")
    return int(batch)


def _spanning_tree(points: NDArray[np.float64]) -> list[tuple[float, int, int]]:
    """Edges ``(length, i, j)`` of the Euclidean minimum spanning tree (Prim, from row 0), in
    the order Prim adds them; ``j`` is the row added, ``i`` its nearest row in the tree. Ties go
    to the lowest row ``j``, then to the tree row ``i`` added first."""
    n = len(points)
    distance = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    nearest, parent = distance[0].copy(), np.zeros(n, dtype=np.int64)
    edges: list[tuple[float, int, int]] = []
    for _ in range(n - 1):
        j = int(np.argmin(np.where(in_tree, np.inf, nearest)))
        edges.append((float(nearest[j]), int(parent[j]), j))
        in_tree[j] = True
        closer = distance[j] < nearest
        nearest, parent = np.where(closer, distance[j], nearest), np.where(closer, j, parent)
    return edges


def front_gaps(
    weights: np.ndarray | Sequence[Sequence[float]],
    values: np.ndarray | Sequence[Sequence[float]],
    maximize: Sequence[bool],
) -> list[tuple[float, int, int]]:
    """The gaps of the traced front: ``(length, i, j)`` for each edge of its minimum spanning
    tree (step 2 of the module docstring), ``i`` and ``j`` row indices of ``values``.

    Lengths are in range-normalised objective space; rows with a non-finite value are ignored;
    edges between rows with the same weights and zero-length edges are dropped.
    """
    w = _check_weights(weights)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or len(v) != len(w):
        raise ValueError(f"values must be a 2-D array with one row per weight vector ({len(w)}); got shape {v.shape}")
    finite = np.flatnonzero(np.isfinite(v).all(axis=1))
    front = finite[pareto_front(v[finite], maximize)]
    if len(front) < 2:
        return []
    points = to_minimization(v[front], maximize)
    span = np.ptp(points, axis=0)
    points = points / np.where(span > 0, span, 1.0)
    return [
        (length, int(front[i]), int(front[j]))
        for length, i, j in _spanning_tree(points)
        if length > 0 and np.max(np.abs(w[front[i]] - w[front[j]])) > SAME_WEIGHTS
    ]


def _is_new(candidate: NDArray[np.float64], seen: list[NDArray[np.float64]]) -> bool:
    return all(np.max(np.abs(candidate - s)) > SAME_WEIGHTS for s in seen)


def _fallback_candidates(k: int) -> NDArray[np.float64]:
    """The simplex lattice of spacing ``1 / m``, ``m`` the largest power of two that keeps it
    within :data:`MAX_CANDIDATES` points (``m = 1``, the corners, at least), with the uniform
    point."""
    m = 1
    while k > 1 and math.comb(2 * m + k - 1, k - 1) <= MAX_CANDIDATES:  # the lattice at 2m fits
        m *= 2
    return lattice(k, 1.0 / m)


def maximin_weights(trained: np.ndarray | Sequence[Sequence[float]], batch: int, num_tasks: int) -> NDArray[np.float64]:
    """``batch`` weight vectors chosen greedily, each the candidate farthest (Euclidean) from
    every trained and already chosen vector; candidates: :func:`_fallback_candidates`, first
    one on ties. Fewer rows only when every candidate is taken."""
    batch = _check_batch(batch)
    candidates = _fallback_candidates(num_tasks)
    nearest = np.full(len(candidates), np.inf)  # distance to the nearest trained or chosen
    for taken in _check_weights(trained) if len(trained) else []:
        nearest = np.minimum(nearest, np.linalg.norm(candidates - taken, axis=1))
    chosen: list[NDArray[np.float64]] = []
    for _ in range(batch):
        best = int(np.argmax(nearest))
        if nearest[best] <= SAME_WEIGHTS:
            break
        chosen.append(candidates[best])
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[best], axis=1))
    return np.array(chosen, dtype=np.float64).reshape(len(chosen), num_tasks)


def adaptive_weights(
    weights: np.ndarray | Sequence[Sequence[float]],
    values: np.ndarray | Sequence[Sequence[float]],
    maximize: Sequence[bool],
    batch: int,
) -> NDArray[np.float64]:
    """The next ``batch`` weight vectors ``[batch, k]`` of a sweep (see the module docstring).

    ``weights`` ``[n, k]``: the weights already trained (non-negative rows, not all zero;
    renormalised); ``values`` ``[n, K]``: their objective values (non-finite: a failed run,
    ignored for the front); ``maximize``: one bool per objective. Rows lie on the simplex and
    repeat neither a trained vector nor each other.
    """
    batch = _check_batch(batch)
    w = _check_weights(weights)
    edges = front_gaps(w, values, maximize)
    if not edges:
        return maximin_weights(w, batch, w.shape[1])
    heap = [(-length, e, 0.0, 1.0) for e, (length, _, _) in enumerate(edges)]
    heapq.heapify(heap)
    seen: list[NDArray[np.float64]] = list(w)
    proposed: list[NDArray[np.float64]] = []
    while len(proposed) < batch:
        _, e, a, b = heapq.heappop(heap)
        length, i, j = edges[e]
        t = (a + b) / 2
        for lo, hi in ((a, t), (t, b)):
            heapq.heappush(heap, (-length * (hi - lo), e, lo, hi))
        candidate = (1 - t) * w[i] + t * w[j]
        candidate = candidate / candidate.sum()
        if _is_new(candidate, seen):
            proposed.append(candidate)
            seen.append(candidate)
    return np.array(proposed)
