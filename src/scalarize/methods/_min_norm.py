"""The min-norm point of a convex hull of gradients, by Frank–Wolfe on their Gramian.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018, Algorithm 2:

    α ← 1/T;  repeat: t = argmin_i (Gα)_i;  γ = argmin_{γ ∈ [0, 1]} ‖(1 − γ) Σ_j α_j g_j + γ g_t‖²;
               α ← (1 − γ) α + γ e_t;  until γ < ε or max_iters

with ``G = [g_i · g_j]`` and the line search in closed form. This is the same iteration as
:class:`torchjd.aggregation.MGDAWeighting` (their equality is tested), run in NumPy on the small
``T × T`` Gramian with ``Gα`` updated in O(T) per iteration: torchjd runs every iteration as
several tensor operations and three host synchronisations, which made MGDA-UB's step 1.4–2.2x
uniform scalarization's on a 2-core CPU (``benchmarks/methods_scaling.py``), and would cost a
device round trip per iteration on a GPU. Here the Gramian crosses to the host once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class MinNormWeighting:
    """``α = argmin_{α ∈ Δ} αᵀ G α`` by Frank–Wolfe (``epsilon``: stop when the step γ is
    below it; ``max_iters``: at most that many iterations)."""

    def __init__(self, epsilon: float = 1e-3, max_iters: int = 100) -> None:
        self.epsilon = epsilon
        self.max_iters = max_iters

    def __call__(self, gramian: Tensor) -> Tensor:
        weights = frank_wolfe(gramian.detach().double().cpu().numpy(), self.epsilon, self.max_iters)
        return torch.from_numpy(weights).to(device=gramian.device, dtype=gramian.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epsilon={self.epsilon}, max_iters={self.max_iters})"


def frank_wolfe(gramian: np.ndarray, epsilon: float, max_iters: int) -> np.ndarray:
    """Frank–Wolfe weights on the simplex for a ``T × T`` Gramian (float64).

    ``Gα`` and ``αᵀGα`` are carried from one iteration to the next (the step's closed forms), so
    an iteration costs O(T).
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
