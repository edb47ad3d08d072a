"""The Newton solver FairGrad and Nash-MTL share: the weights of an α-fair allocation.

Both methods' weights ``w > 0`` solve ``(G Gᵀ) w = w^(−p)`` element-wise (Nash-MTL: ``p = 1``;
FairGrad: ``p = 1/α``). They are the unique minimiser of the strictly convex

    φ(w) = ½ wᵀMw − Σ_i h(w_i),    h'(w) = w^(−p)    (h = log at p = 1),

found by damped Newton iterations (backtracking on φ, kept inside ``w > 0``) in float64 on ``M``,
the Gramian divided by its Frobenius norm (the solution is rescaled back exactly), with
``1e-8 · diag(M)`` (plus 1e-14 for zero gradients) added so that a solution exists when the
gradients are linearly dependent. A ridge proportional to each task's own ``‖g_i‖²`` keeps the
solution's scale invariance exact: scaling task i's gradient by c scales ``w_i`` by ``1/c``.
"""

from __future__ import annotations

import numpy as np

RIDGE = 1e-8  # relative to each task's own ‖g_i‖² (keeps the solution scale-invariant)
FLOOR = 1e-14  # absolute, for zero gradients


def allocation_weights(gram: np.ndarray, alpha: float, max_newton: int, tol: float) -> np.ndarray:
    """The ``w > 0`` solving ``gram · w = w^(−1/α)`` (up to the small ridge), ``α > 0``; zeros
    for a zero Gramian. Newton stops when its decrement falls below ``tol`` or after
    ``max_newton`` iterations. At α = 1 (Nash-MTL) ``h = log`` and the powers are written as
    reciprocals and square roots."""
    t = gram.shape[0]
    scale = float(np.linalg.norm(gram))
    if scale <= 0.0:
        return np.zeros(t)
    m = gram / scale
    m = m + np.diag(RIDGE * np.diag(m) + FLOOR)
    p = 1.0 / alpha  # h'(w) = w^(−p)
    nash = alpha == 1.0
    # exact when the gradients are orthogonal
    w = 1.0 / np.sqrt(np.diag(m)) if nash else np.diag(m) ** (-alpha / (alpha + 1.0))

    def phi(x: np.ndarray) -> float:
        h = np.log(x) if nash else x ** (1.0 - p) / (1.0 - p)
        return float(0.5 * x @ m @ x - h.sum())

    value = phi(w)
    for _ in range(max_newton):
        if nash:
            grad = m @ w - 1.0 / w
            hessian = m + np.diag(1.0 / w**2)
        else:
            grad = m @ w - w ** (-p)
            hessian = m + np.diag(p * w ** (-p - 1.0))
        step = -np.linalg.solve(hessian, grad)
        decrement = float(-grad @ step)
        if decrement < tol:
            break
        size = 1.0
        while (w + size * step <= 0).any():
            size *= 0.5
        while phi(w + size * step) > value - 0.25 * size * decrement and size > 1e-12:
            size *= 0.5
        w = w + size * step
        value = phi(w)
    # M = G/s: if M w' = w'^(−p) then w = c w' with c^(1+p) = 1/s solves G w = w^(−p)
    result: np.ndarray = w / np.sqrt(scale) if nash else w * scale ** (-alpha / (alpha + 1.0))
    return result
