"""FairGrad: α-fair resource allocation among tasks.

Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024 (official code:
OptMN-Lab/fairgrad).

The update ``d = Σ_i w_i g_i`` maximises the α-fair utility of the tasks' directional
derivatives ``u_i = g_i · d`` within a ball; its weights ``w > 0`` solve (Eq. 4)

    (G Gᵀ) w = w^{−1/α}        (element-wise),  i.e.  (g_i · d) = w_i^{−1/α} for every task,

so that α = 1 is Nash-MTL's proportional fairness and α → ∞ approaches the max–min (MGDA-like)
allocation; α = 0 (linear utility) gives uniform weights. Task-specific parameters get their own
gradients (the official code backpropagates each task's loss into its head unweighted).

Solver: ``w`` is the unique minimiser of the strictly convex
``½ wᵀMw − Σ_i h(w_i)`` with ``h'(w) = w^{−1/α}`` (``h = log`` at α = 1), whose stationarity
condition is exactly ``Mw = w^{−1/α}``: damped Newton iterations in float64 on ``M = G Gᵀ``
divided by its Frobenius norm, with a small ridge (the solver Nash-MTL shares,
:mod:`scalarize.methods._allocation`). This replaces the official
(and torchjd's) ``scipy.optimize.least_squares`` on the residual, which stops at its own
tolerance; the two agree on well-conditioned Gramians (tested).

Hyperparameters: ``alpha`` α ≥ 0 (default 2.0: every run script of the official code, for
NYUv2, Cityscapes, CelebA, QM9 and Metaworld MT10, uses α = 2; LibMTL's default is 1.0);
``max_norm`` ≥ 0 (default 0: off; > 0 scales the shared parameters' update ``d`` down to that
norm when it is longer; the heads' gradients are not clipped, and :meth:`current_weights` reports
the weights before the clipping).

The official code multiplies ``d`` by T ("to match the sum loss"), i.e. a learning rate T times
larger, then clips the shared parameters' gradient to norm 1 (``FairGrad.backward`` ends with
``clip_grad_norm_(shared_parameters, max_norm)``; ``--max_norm`` defaults to 1.0 and no run
script changes it), which the paper does not mention. Here ``d`` is the paper's, unclipped by
default. The official shared update ``clip(T·d, 1)`` is T times what ``max_norm: 1/T`` gives
here (e.g. ``max_norm: 0.333`` for three tasks): the same step under Adam, which ignores a
constant scale, or with a learning rate T times larger under SGD.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from scalarize.methods._allocation import allocation_weights
from scalarize.methods._common import WeightedGradientMethod, check_real, clip_norm, gramian
from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT
from scalarize.methods.registry import register


def fairgrad_weights(gram: np.ndarray, alpha: float, max_newton: int = 200, tol: float = 1e-14) -> np.ndarray:
    """The ``w > 0`` solving ``gram · w = w^(−1/α)`` (up to the small ridge; uniform at α = 0,
    zeros for a zero or non-finite Gramian)."""
    t = gram.shape[0]
    if alpha == 0.0:
        return np.full(t, 1.0 / t)
    scale = float(np.linalg.norm(gram))
    if not np.isfinite(scale) or scale <= 0.0:
        return np.zeros(t)
    return allocation_weights(gram, alpha, max_newton, tol)


@register
class FairGrad(WeightedGradientMethod):
    """α-fair weights: ``(g_i · d) = w_i^(−1/α)`` for all tasks."""

    name = "fairgrad"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING})

    def __init__(self, alpha: float = 2.0, max_norm: float = 0.0) -> None:
        super().__init__()
        self.alpha = check_real(self.name, "alpha", alpha, low=0)
        self.max_norm = check_real(self.name, "max_norm", max_norm, low=0)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        gram = gramian(gradients).cpu().numpy()
        return torch.from_numpy(fairgrad_weights(gram, self.alpha))

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        """``d = Σ_i w_i g_i``, clipped to ``max_norm`` (when > 0)."""
        return clip_norm(super().aggregate(gradients, losses), self.max_norm)
