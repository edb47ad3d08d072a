"""The min-norm point of the convex hull of task gradients, from their Gramian.

MGDA's direction (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
NeurIPS 2018) is ``d = Σ_i α_i g_i`` with

    α = argmin_{α ∈ Δ} αᵀ G α,        G = [g_i · g_j]  (the T × T Gramian)

Two solvers, both in NumPy on the Gramian (it crosses to the host once; no iteration is a tensor
operation on the device):

* :func:`min_norm_weights` (the default, "exact"): Wolfe's active-set algorithm for the nearest
  point of a polytope (Wolfe, "Finding the nearest point in a polytope", Math. Programming 1976),
  written on the Gramian. It keeps a *corral* ``S`` of affinely independent gradients whose
  affine hull's min-norm point has positive weights; a gradient ``g_j`` with ``g_j · x < ‖x‖²``
  enters, and a minor cycle moves toward the affine minimiser of ``S``, dropping the first
  weight that reaches zero. It ends after finitely many steps at the exact solution (each affine
  minimiser is a small linear solve), so the weights of the tasks off the optimal face are
  exactly 0 and the others are exact to rounding. Its stopping test bounds the error: when
  ``min_j g_j · x ≥ ‖x‖² − δ``, ``‖x − x*‖² ≤ δ`` (δ = 1e-15 of the largest ``‖g_i‖²``).
  Equal gradients (``‖g_i − g_j‖² ≤ 1e-14`` of the largest ``‖g_i‖²``) are merged first and
  share their weight equally, so identical gradients get equal weights; all-zero gradients get
  uniform weights. Two tasks take the closed form.
* :func:`frank_wolfe` (``solver="frank_wolfe"``): the paper's Algorithm 2, as
  :class:`torchjd.aggregation.MGDAWeighting` runs it (uniform start, ``γ < ε`` stop, at most
  ``max_iters`` steps; their equality is tested). It is inexact at T ≥ 3: Frank–Wolfe converges
  sublinearly and never sets a weight back to 0 once it is positive; on random Gramians its
  direction was 1e-3 (T = 3) to 4e-2 (T = 5) off the exact one with the default ε = 1e-3,
  and still 7e-5 off at T = 5 with ε = 1e-12 and 1e5 iterations.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Tolerances of the exact solver, relative to the largest squared gradient norm.
_DUPLICATE_TOL = 1e-14
_OPTIMALITY_TOL = 1e-15
_WEIGHT_TOL = 1e-15
_PIVOT_TOL = 1e-18

SOLVERS = ("exact", "frank_wolfe")


class MinNormWeighting:
    """``α = argmin_{α ∈ Δ} αᵀ G α`` from a Gramian tensor (float64 on the host, returned on the
    Gramian's device and dtype). ``solver="exact"`` (default) or ``"frank_wolfe"`` with
    ``epsilon`` (stop when the step γ is below it) and ``max_iters``."""

    def __init__(self, solver: str = "exact", epsilon: float = 1e-3, max_iters: int = 100) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        self.solver = solver
        self.epsilon = epsilon
        self.max_iters = max_iters

    def __call__(self, gramian: Tensor) -> Tensor:
        g = gramian.detach().double().cpu().numpy()
        if self.solver == "exact":
            weights = min_norm_weights(g)
        else:
            weights = frank_wolfe(g, self.epsilon, self.max_iters)
        return torch.from_numpy(weights).to(device=gramian.device, dtype=gramian.dtype)

    def __repr__(self) -> str:
        if self.solver == "exact":
            return f"{type(self).__name__}(solver='exact')"
        return f"{type(self).__name__}(solver='frank_wolfe', epsilon={self.epsilon}, max_iters={self.max_iters})"


# -- exact: Wolfe's nearest-point algorithm on the Gramian ------------------------------------


def min_norm_weights(gramian: np.ndarray) -> np.ndarray:
    """Exact ``argmin_{α ∈ Δ} αᵀGα`` for a symmetric positive semi-definite ``G`` (T × T).

    Rank-deficient, duplicated and (by rounding) slightly indefinite Gramians are handled;
    non-finite entries give uniform weights (the trainer skips such steps anyway).
    """
    g = np.asarray(gramian, dtype=np.float64)
    size = g.shape[0]
    if size == 1:
        return np.ones(1)
    uniform = np.full(size, 1.0 / size)
    if not np.isfinite(g).all():
        return uniform
    g = 0.5 * (g + g.T)
    scale = float(np.max(np.diag(g)))
    if scale <= 0.0:
        return uniform  # every gradient is zero: every α is optimal
    g = g / scale
    if size == 2:  # closed form: α₁ = clip((G₂₂ − G₁₂) / ‖g₁ − g₂‖², 0, 1)
        gap = g[0, 0] + g[1, 1] - 2.0 * g[0, 1]
        if gap <= _DUPLICATE_TOL:
            return np.full(2, 0.5)
        a = min(max((g[1, 1] - g[0, 1]) / gap, 0.0), 1.0)
        return np.array([a, 1.0 - a])
    groups = _duplicate_groups(g)
    if len(groups) == size:
        return _wolfe(g)
    reps = [int(group[0]) for group in groups]
    beta = _wolfe(g[np.ix_(reps, reps)])
    alpha = np.zeros(size)
    for b, group in zip(beta, groups):
        alpha[group] = b / len(group)
    return alpha


def _duplicate_groups(g: np.ndarray) -> list[np.ndarray]:
    """Indices of equal gradients, grouped (‖g_i − g_j‖² = G_ii + G_jj − 2 G_ij ≈ 0)."""
    diag = np.diag(g)
    close = (diag[:, None] + diag[None, :] - 2.0 * g) <= _DUPLICATE_TOL
    if close.sum() == g.shape[0]:  # no duplicates (the usual case)
        return [np.array([i]) for i in range(g.shape[0])]
    groups, free = [], np.ones(g.shape[0], dtype=bool)
    for i in range(g.shape[0]):
        if free[i]:
            members = np.flatnonzero(close[i] & free)
            free[members] = False
            groups.append(members)
    return groups


def _wolfe(g: np.ndarray) -> np.ndarray:
    """Wolfe's algorithm on a Gramian scaled so that its largest diagonal entry is 1.

    The affine minimiser of the corral ``S`` is ``v = M⁻¹1 / 1ᵀM⁻¹1`` with ``M = G_S + 11ᵀ``,
    the Gramian of the lifted points ``(g_i, 1)``: positive definite exactly when the corral is
    affinely independent. ``M⁻¹`` is updated in O(|S|²) when a gradient enters (bordering; a
    gradient whose lifted point depends on the corral's cannot improve ``x`` and is not added)
    or leaves (the Schur complement), and the final weights are solved afresh from ``M``.
    """
    size = g.shape[0]
    lifted = g + 1.0
    first = int(np.argmin(np.diag(g)))  # the shortest gradient (first one on ties)
    corral = np.array([first])
    inverse = np.array([[1.0 / lifted[first, first]]])  # M_S⁻¹
    weights = np.ones(1)
    for _ in range(10 * size + 50):
        products = g[:, corral] @ weights  # g_j · x for every j
        norm2 = float(weights @ products[corral])  # ‖x‖²
        entering = int(np.argmin(products))
        if products[entering] >= norm2 - _OPTIMALITY_TOL or entering in corral:
            break
        border = lifted[corral, entering]
        u = inverse @ border
        pivot = float(lifted[entering, entering] - border @ u)
        if pivot <= _PIVOT_TOL:
            break  # in the corral's affine hull up to rounding: x is optimal to rounding
        n = corral.size
        grown = np.empty((n + 1, n + 1))
        grown[:n, :n] = inverse + np.outer(u, u) / pivot
        grown[:n, n] = grown[n, :n] = -u / pivot
        grown[n, n] = 1.0 / pivot
        inverse = grown
        corral = np.append(corral, entering)
        weights = np.append(weights, 0.0)
        for _ in range(n + 2):  # minor cycle
            y = inverse.sum(axis=1)  # M⁻¹1
            v = y / y.sum()
            if v.min() > _WEIGHT_TOL:
                weights = v
                break
            # move from `weights` toward `v` until the first weight reaches zero
            falling = (v <= _WEIGHT_TOL) & (weights > v)
            theta = float(np.min(weights[falling] / (weights[falling] - v[falling]))) if falling.any() else 1.0
            weights = weights + min(max(theta, 0.0), 1.0) * (v - weights)
            keep = weights > _WEIGHT_TOL
            if keep.all():  # rounding: drop the smallest one
                keep[int(np.argmin(weights))] = False
            for k in np.flatnonzero(~keep)[::-1]:  # remove from M⁻¹ (Schur complement)
                rest = np.arange(inverse.shape[0]) != k
                column = inverse[rest, k]
                inverse = inverse[np.ix_(rest, rest)] - np.outer(column, column) / inverse[k, k]
            corral = corral[keep]
            weights = weights[keep] / weights[keep].sum()
    return _alpha(size, corral, _polish(lifted[np.ix_(corral, corral)], weights))


def _polish(lifted_s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The corral's affine minimiser solved afresh (no accumulated update error), when it has
    positive weights; else the weights as they are."""
    try:
        y = np.linalg.solve(lifted_s, np.ones(lifted_s.shape[0]))
    except np.linalg.LinAlgError:
        return weights
    v = y / y.sum()
    return v if np.isfinite(v).all() and v.min() > 0 else weights


def _alpha(size: int, corral: np.ndarray, weights: np.ndarray) -> np.ndarray:
    alpha = np.zeros(size)
    alpha[corral] = np.clip(weights, 0.0, None)
    return alpha / alpha.sum()


# -- Frank–Wolfe: the paper's Algorithm 2 (inexact) -------------------------------------------


def frank_wolfe(gramian: np.ndarray, epsilon: float, max_iters: int) -> np.ndarray:
    """Frank–Wolfe weights on the simplex for a ``T × T`` Gramian (float64).

    Sener & Koltun's Algorithm 2 as torchjd's ``MGDAWeighting`` runs it: ``α ← 1/T``; repeat
    ``t = argmin_i (Gα)_i``, ``γ = argmin_{γ ∈ [0, 1]} ‖(1 − γ) Σ_j α_j g_j + γ g_t‖²`` (closed
    form), ``α ← (1 − γ) α + γ e_t`` until ``γ < ε`` or ``max_iters``. ``Gα`` and ``αᵀGα``
    are carried from one iteration to the next, so an iteration costs O(T).
    """
    size = gramian.shape[0]
    gramian = np.ascontiguousarray(gramian, dtype=np.float64)  # rows = columns (symmetric)
    alpha = np.full(size, 1.0 / size)
    g_alpha = gramian @ alpha  # Gα
    b = float(alpha @ g_alpha)  # αᵀGα
    for _ in range(max_iters):
        t = int(np.argmin(g_alpha))
        a = float(g_alpha[t])  # αᵀG e_t
        c = float(gramian[t, t])  # e_tᵀG e_t
        if c <= a:
            gamma = 1.0
        elif b <= a:
            gamma = 0.0
        else:
            gamma = (b - a) / (b + c - 2 * a)
        alpha *= 1 - gamma
        alpha[t] += gamma
        g_alpha *= 1 - gamma
        g_alpha += gamma * gramian[t]
        b = (1 - gamma) ** 2 * b + 2 * gamma * (1 - gamma) * a + gamma**2 * c
        if gamma < epsilon:
            break
    return alpha
