"""UPGrad: unconflicting projection of gradients.

Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024 (arXiv:2406.16232).

Each task gradient is projected onto the dual cone of all task gradients
(``{x : g_j · x ≥ 0 for all j}``) and the projections are averaged:

    d = (1/T) Σ_i π(g_i),     π(g_i) = Gᵀ v_i,   v_i = argmin_{v ≥ e_i} vᵀ (G Gᵀ) v

so ``d`` conflicts with no task (``g_j · d ≥ 0``), and when no gradients conflict it is the
plain mean. Task-specific parameters get their own gradients.

Hyperparameters: ``norm_eps`` and ``reg_eps`` (1e-4 each): the Gramian is divided by its trace
and ``reg_eps · I`` is added before solving, as in torchjd.

Backed by :class:`torchjd.aggregation.UPGradWeighting`, with the dual-cone projection solved by
:class:`NNQPProjector` (an exact active-set solver in numpy) rather than torchjd's default,
which needs the optional quadprog/qpsolvers packages.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torchjd.aggregation import DualProjWeighting, UPGradWeighting
from torchjd.linalg import DualConeProjector

from scalarize.methods._common import WeightedGradientMethod, check_real, gramian
from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT
from scalarize.methods.registry import register


def nonnegative_qp(q_mat: np.ndarray, c: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """``argmin_{x ≥ 0} ½ xᵀQx + cᵀx`` for positive definite ``Q`` (Lawson–Hanson active set)."""
    m = c.size
    x = np.zeros(m)
    passive = np.zeros(m, dtype=bool)
    for _ in range(3 * m + 10):
        w = -(q_mat @ x + c)  # negative gradient
        candidates = ~passive & (w > tol)
        if not candidates.any():
            break
        passive[np.argmax(np.where(candidates, w, -np.inf))] = True
        while True:
            z = np.zeros(m)
            idx = np.nonzero(passive)[0]
            z[idx] = np.linalg.solve(q_mat[np.ix_(idx, idx)], -c[idx])
            if (z[idx] > tol).all():
                x = z
                break
            blocking = passive & (z <= tol)
            ratios = x[blocking] / np.maximum(x[blocking] - z[blocking], 1e-300)
            x = x + ratios.min() * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
            if not passive.any():
                break
    return x


class NNQPProjector(DualConeProjector):
    """torchjd dual-cone projector: ``w = argmin_{v ≥ u} vᵀGv`` for each row ``u`` of ``U``."""

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        self.norm_eps = norm_eps
        self.reg_eps = reg_eps

    def __call__(self, U: Tensor, G: Tensor) -> Tensor:
        g = G.detach().double().cpu().numpy()
        trace = float(np.trace(g))
        g = g / trace if trace >= self.norm_eps else np.zeros_like(g)
        g = g + self.reg_eps * np.eye(g.shape[0])
        u = U.detach().double().cpu().numpy()
        flat = u.reshape(-1, u.shape[-1])
        # v = u + x with x ≥ 0:  ½(x+u)ᵀG(x+u)  ->  ½xᵀGx + (Gu)ᵀx
        out = np.stack([row + nonnegative_qp(g, g @ row) for row in flat])
        return torch.as_tensor(out.reshape(u.shape), dtype=G.dtype, device=G.device)

    def __repr__(self) -> str:
        return f"NNQPProjector(norm_eps={self.norm_eps}, reg_eps={self.reg_eps})"


class DualConeMethod(WeightedGradientMethod):
    """What UPGrad and DualProj share: their options and torchjd's weighting
    (:attr:`weighting_class`) over the projector onto the dual cone of the task gradients."""

    weighting_class: ClassVar[type[UPGradWeighting] | type[DualProjWeighting]]

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        super().__init__()
        norm_eps = check_real(self.name, "norm_eps", norm_eps, low=0)
        reg_eps = check_real(self.name, "reg_eps", reg_eps, low=0, low_open=True)
        self.weighting = self.weighting_class(projector=NNQPProjector(norm_eps, reg_eps))

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        weights: Tensor = self.weighting(gramian(gradients))
        return weights


@register
class UPGrad(DualConeMethod):
    """Mean of the task gradients projected onto the dual cone of all of them."""

    name = "upgrad"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING})
    weighting_class = UPGradWeighting
