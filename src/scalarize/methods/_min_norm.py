"""The min-norm point of the convex hull of task gradients, from their Gramian.

MGDA's direction (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
NeurIPS 2018) is ``d = Σ_i α_i g_i`` with

    α = argmin_{α ∈ Δ} αᵀ G α,        G = [g_i · g_j]  (the T × T Gramian)

Two solvers, both in NumPy on the Gramian (it crosses to the host once; no iteration is a tensor
operation on the device):

* :func:`min_norm_weights` (the default, "exact"): the nearest-point problem rewritten as
  non-negative least squares on a factor of the Gramian and solved by SciPy's Lawson–Hanson
  active-set solver (Lawson & Hanson, "Solving Least Squares Problems", 1974, ch. 23; the
  reduction is in :func:`_nearest_point`). It is finite and exact to rounding, the weights of the
  tasks off the optimal face are exactly 0, and it needs no pivot test: on rank-deficient,
  duplicated, shifted and badly scaled Gramians up to T = 120 the KKT conditions
  ``(Gα)_j ≥ αᵀGα`` (equality on the support) hold to 1e-14 of the largest ``‖g_i‖²`` under
  every OpenBLAS kernel (a property test). It replaced a hand-written Wolfe algorithm (Wolfe
  1976) whose early exits stopped short on rank-deficient Gramians (‖d‖² = 39 where the optimum
  is 0, at T = 60 with AVX-512 kernels). Equal gradients (``‖g_i − g_j‖² ≤ 1e-14`` of the
  largest ``‖g_i‖²``) are merged first and share their weight equally, so identical gradients
  get equal weights; all-zero gradients get uniform weights. Two tasks take the closed form.
* :func:`frank_wolfe` (``solver="frank_wolfe"``): the paper's Algorithm 2, as
  :class:`torchjd.aggregation.MGDAWeighting` runs it (uniform start, ``γ < ε`` stop, at most
  ``max_iters`` steps; their equality is tested). It is inexact at T ≥ 3: Frank–Wolfe converges
  sublinearly and never sets a weight back to 0 once it is positive; on random Gramians its
  direction was 1e-3 (T = 3) to 4e-2 (T = 5) off the exact one with the default ε = 1e-3,
  and still 7e-5 off at T = 5 with ε = 1e-12 and 1e5 iterations.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import torch
from torch import Tensor

#: Tolerances of the exact solver, relative to the largest squared gradient norm: gradients this
#: close are merged; eigenvalues of the Gramian below this (times T) are rounding.
_DUPLICATE_TOL = 1e-14
_RANK_TOL = 1e-15
#: Lawson–Hanson's iteration bound, per task (it needs about one per task that enters the support).
_NNLS_STEPS = 10
#: How much closer to the KKT conditions than the solver's answer a shared answer must stay.
_SHARE_TOL = 1e-12

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


# -- exact: the nearest-point problem as non-negative least squares -----------------------------


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
    alpha = _pair(g) if size == 2 else _nearest_point(g)
    return _share_between_duplicates(g, alpha)


def _pair(g: np.ndarray) -> np.ndarray:
    """Two tasks, in closed form: ``α₁ = clip((G₂₂ − G₁₂) / ‖g₁ − g₂‖², 0, 1)``."""
    gap = g[0, 0] + g[1, 1] - 2.0 * g[0, 1]
    if not gap > 0.0:  # equal gradients (to rounding): every α gives the same d
        return np.full(2, 0.5)
    a = min(max((g[1, 1] - g[0, 1]) / gap, 0.0), 1.0)
    return np.array([a, 1.0 - a])


def kkt_violation(g: np.ndarray, alpha: np.ndarray) -> float:
    """How far ``α`` is from MGDA's optimality conditions on ``G``: the largest of
    ``αᵀGα − (Gα)_j`` over every j and ``|(Gα)_j − αᵀGα|`` over the support (0 at the optimum)."""
    products = g @ alpha
    norm2 = float(alpha @ products)
    support = alpha > 0
    return max(float(np.max(norm2 - products)), float(np.max(np.abs(products[support] - norm2))))


def _share_between_duplicates(g: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Equal gradients share their group's weight equally, so identical tasks get identical
    weights, as long as the KKT conditions stay as close as the solver's own answer (within
    1e-12): for exact duplicates the direction does not move, for near-duplicates it may."""
    groups = _duplicate_groups(g)
    if len(groups) == g.shape[0]:
        return alpha
    shared = alpha.copy()
    for group in groups:
        shared[group] = alpha[group].sum() / group.size
    return shared if kkt_violation(g, shared) <= kkt_violation(g, alpha) + _SHARE_TOL else alpha


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


def _nearest_point(g: np.ndarray) -> np.ndarray:
    """The min-norm weights of a Gramian scaled so that its largest diagonal entry is 1.

    ``min_{α ∈ Δ} αᵀGα`` equals the non-negative least-squares problem

        u* = argmin_{u ≥ 0} ‖F u‖² + (1ᵀu − 1)²,     FᵀF = G,

    and ``α = u* / 1ᵀu*``: on the ray ``u = tα`` the objective is ``t²αᵀGα + (t − 1)²``,
    minimised over α ∈ Δ by the min-norm weights for every t. Its KKT conditions are MGDA's,
    ``(Gα)_j ≥ αᵀGα`` with equality on the support. ``F`` is taken from the eigendecomposition of
    ``G`` (eigenvalues below rounding, ``1e-15·T``, dropped: a change of G below 1e-15 of its
    largest entry), and the NNLS problem goes to SciPy's Lawson–Hanson solver
    (:func:`scipy.optimize.nnls`), whose active set sets the weights off the optimal face to
    exactly 0. Rank deficiency needs no special case: the origin in the hull is a zero residual.
    SciPy 1.12–1.15 shipped other NNLS solvers that were not robust (scipy#21140, #25389); the
    package's SciPy range leaves them out.
    """
    size = g.shape[0]
    eigenvalues, vectors = np.linalg.eigh(g)
    kept = eigenvalues > _RANK_TOL * size
    factor = (vectors[:, kept] * np.sqrt(eigenvalues[kept])).T  # F, rank × T
    system = np.vstack([factor, np.ones((1, size))])
    target = np.zeros(system.shape[0])
    target[-1] = 1.0
    try:
        u, _ = scipy.optimize.nnls(system, target, maxiter=_NNLS_STEPS * size)
    except RuntimeError:  # its iteration bound: the bounded-variable solver instead (slower)
        u = scipy.optimize.lsq_linear(system, target, bounds=(0.0, np.inf), method="bvls").x
    total = float(u.sum())
    return u / total if total > 0 and np.isfinite(total) else np.full(size, 1.0 / size)


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
