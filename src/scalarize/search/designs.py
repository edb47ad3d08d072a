"""Sweep designs over the weight simplex Δ = {w ∈ R^k : w ≥ 0, Σ w = 1}.

Each design returns a float64 array ``[n, k]`` whose rows lie on Δ, without exact duplicate
rows (first occurrence kept). Sweeping scalarization weights traces the convex part of the
Pareto front (Royer et al., NeurIPS 2023; Xin et al., NeurIPS 2022).

- :func:`lattice` — the regular simplex lattice {c / m : c ∈ N^k, Σ c = m}, m = 1 / step
  (Scheffé 1958, "simplex-lattice designs").
- :func:`sobol_simplex` — scrambled Sobol' points mapped to Δ by sorted uniform spacings.
- :func:`dirichlet` — i.i.d. Dirichlet(α) draws.
- :func:`grid` — cross product of weight rows with other factors (width, lr, seed ...).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["dirichlet", "grid", "lattice", "sobol_simplex", "uniform", "validate_weights"]

#: Largest design :func:`lattice` will build (guards against e.g. 10 tasks at step 0.01).
MAX_LATTICE_POINTS = 1_000_000


def _check_num_tasks(num_tasks: int) -> int:
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, (int, np.integer)):
        raise ValueError(f"num_tasks must be a positive int; got {num_tasks!r}")
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive int; got {num_tasks!r}")
    return int(num_tasks)


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    return int(n)


def _unique_rows(w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Drop exact duplicate rows, keeping first occurrences in their original order."""
    _, first = np.unique(w, axis=0, return_index=True)
    return w[np.sort(first)]


def uniform(num_tasks: int) -> NDArray[np.float64]:
    """The uniform weights ``[1/k] * k`` as a float64 vector."""
    k = _check_num_tasks(num_tasks)
    return np.full(k, 1.0 / k)


def validate_weights(w: Sequence[float] | np.ndarray, num_tasks: int) -> NDArray[np.float64]:
    """Check one weight vector and return it as float64 ``[num_tasks]`` (not renormalised).

    Raises ValueError, with a one-line message, when ``w`` has the wrong length, holds a
    non-finite or negative entry, or is all zero.
    """
    k = _check_num_tasks(num_tasks)
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"weights must be a sequence of {k} numbers; got {w!r}") from None
    if arr.ndim != 1 or arr.size != k:
        got = f"{arr.size} entries" if arr.ndim == 1 else f"shape {arr.shape}"
        raise ValueError(f"weights must have {k} entries (one per task); got {got}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"weights must be finite; got {arr[bad[0]]} at index {bad[0]}")
    bad = np.flatnonzero(arr < 0)
    if bad.size:
        raise ValueError(f"weights must be non-negative; got {arr[bad[0]]:g} at index {bad[0]}")
    if not np.any(arr > 0):
        raise ValueError("weights must not all be zero")
    return arr


def lattice(num_tasks: int, step: float, include_uniform: bool = True) -> NDArray[np.float64]:
    """The simplex lattice with spacing ``step``: all ``c / m`` with ``c ∈ N^k``, ``Σ c = m``.

    ``m = 1 / step`` must be an integer within 1e-9 (ValueError otherwise); the design has
    C(m + k − 1, k − 1) points (21 for k = 2, step 0.05; 66 for k = 3, step 0.1), in ascending
    lexicographic order of ``c``. The uniform point belongs to the lattice when ``k`` divides
    ``m``; otherwise ``include_uniform`` appends it as the last row.
    """
    k = _check_num_tasks(num_tasks)
    if not (isinstance(step, (int, float, np.floating)) and 0 < step <= 1):
        raise ValueError(f"step must be a number in (0, 1]; got {step!r}")
    m = round(1.0 / step)
    if abs(1.0 / step - m) > 1e-9:
        raise ValueError(f"1/step must be an integer; got step={step!r} (1/step = {1.0 / step:.12g})")
    size = math.comb(m + k - 1, k - 1)
    if size > MAX_LATTICE_POINTS:
        raise ValueError(
            f"lattice({k}, {step}) would have {size} points (> {MAX_LATTICE_POINTS}); use a "
            "larger step or sobol_simplex/dirichlet"
        )
    # Stars and bars: bar positions in lexicographic order give counts in lexicographic order.
    bars = np.array(list(itertools.combinations(range(m + k - 1), k - 1)), dtype=np.int64)
    bars = bars.reshape(size, k - 1)
    edges = np.hstack([np.full((size, 1), -1), bars, np.full((size, 1), m + k - 1)])
    counts = np.diff(edges, axis=1) - 1
    w = counts / m
    if include_uniform and m % k != 0:
        w = np.vstack([w, uniform(k)])
    return _unique_rows(w)


def _spacings(u: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map ``u ∈ [0,1]^{n × (k−1)}`` to Δ: the gaps between 0, sorted(u), 1 (Devroye 1986, §V.2)."""
    n = u.shape[0]
    edges = np.hstack([np.zeros((n, 1)), np.sort(u, axis=1), np.ones((n, 1))])
    return np.diff(edges, axis=1)


def sobol_simplex(num_tasks: int, n: int, seed: int) -> NDArray[np.float64]:
    """``n`` quasi-random points on Δ: the uniform point first, then ``n − 1`` Sobol' points.

    The Sobol' sequence in ``k − 1`` dimensions (``scipy.stats.qmc.Sobol``, scrambled with
    ``seed``; Owen 1998) is mapped to the simplex by **sorted uniform spacings**: the gaps
    between 0, the sorted coordinates and 1, which sends the uniform distribution on the cube
    to the uniform distribution on Δ. The first ``2^⌈log2(n−1)⌉`` points are drawn and the
    first ``n − 1`` kept (a prefix of a Sobol' sequence). Exact duplicates are removed.
    """
    from scipy.stats import qmc  # scipy is heavy: import only when this design is used

    k = _check_num_tasks(num_tasks)
    n = _check_count(n)
    head = uniform(k)[None, :]
    if n == 1 or k == 1:
        return head
    engine = qmc.Sobol(d=k - 1, scramble=True, seed=seed)
    u = engine.random_base2(m=max(0, math.ceil(math.log2(n - 1))))[: n - 1]
    return _unique_rows(np.vstack([head, _spacings(u)]))


def dirichlet(num_tasks: int, n: int, seed: int, alpha: float | Sequence[float] = 1.0) -> NDArray[np.float64]:
    """``n`` random points on Δ: the uniform point first, then ``n − 1`` Dirichlet(α) draws.

    Draws use ``numpy.random.default_rng(seed).dirichlet``; ``alpha`` is a positive scalar
    (symmetric; 1.0 is uniform on Δ, < 1 favours corners, > 1 the centre) or one value per task.
    Exact duplicates are removed.
    """
    k = _check_num_tasks(num_tasks)
    n = _check_count(n)
    a = np.asarray(alpha, dtype=np.float64)
    a = np.full(k, float(a)) if a.ndim == 0 else a
    if a.shape != (k,) or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"alpha must be positive, a scalar or {k} values; got {alpha!r}")
    head = uniform(k)[None, :]
    if n == 1 or k == 1:
        return head
    draws = np.random.default_rng(seed).dirichlet(a, size=n - 1)
    draws = draws / draws.sum(axis=1, keepdims=True)
    return _unique_rows(np.vstack([head, draws]))


def grid(weights: np.ndarray | Sequence[Sequence[float]], /, **factors: Sequence[Any]) -> list[dict[str, Any]]:
    """Cross product of weight rows with other factors, weights outermost.

    ``grid(w, width=[1, 2], seed=[0, 1])`` gives ``len(w) * 2 * 2`` dicts
    ``{"weights": (w0, w1, ...), "width": ..., "seed": ...}``; the factors vary in the order
    given, the last fastest (``itertools.product`` order). Each weight row is checked with
    :func:`validate_weights`; rows are kept as given (no renormalisation, no deduplication).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ValueError(f"weights must be a non-empty 2-D array [n, k]; got shape {w.shape}")
    rows = [tuple(float(x) for x in validate_weights(row, w.shape[1])) for row in w]
    if "weights" in factors:
        raise ValueError("'weights' is reserved for the weight rows; rename that factor")
    for name, values in factors.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise ValueError(f"factor {name!r} must be a list of values; got {values!r}")
        if len(values) == 0:
            raise ValueError(f"factor {name!r} must have at least one value")
    names = list(factors)
    return [
        {"weights": row, **dict(zip(names, combo))}
        for row in rows
        for combo in itertools.product(*(list(factors[k]) for k in names))
    ]
