"""Aligned-MTL: independent component alignment.

Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for Multi-Task
Learning", CVPR 2023 (Algorithm 1).

The task gradients are aligned into a system with condition number 1. From the
eigendecomposition ``G Gᵀ = V Λ Vᵀ`` (keeping the rank-many positive eigenvalues),

    B = √λ_min · V Λ^{-1/2} Vᵀ,     d = Σ_i (B w)_i g_i

with ``w`` the preference (uniform ``1/T``) and ``λ_min`` the smallest kept eigenvalue
(``scale_mode="min"``, the paper's choice; "median" and "rmse" — the mean eigenvalue, as in the
official code — are offered too). Task-specific parameters get their own gradients.

Hyperparameters: ``scale_mode`` ("min" | "median" | "rmse", default "min").

Backed by :class:`torchjd.aggregation.AlignedMTLWeighting`.
"""

from __future__ import annotations

from torch import Tensor
from torchjd.aggregation import AlignedMTLWeighting

from scalarize.methods._common import WeightedGradientMethod, check_choice, gramian
from scalarize.methods.base import PERMUTATION_EQUIVARIANT
from scalarize.methods.registry import register


@register
class AlignedMTL(WeightedGradientMethod):
    """Gradients aligned to a well-conditioned system before averaging."""

    name = "aligned_mtl"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, scale_mode: str = "min") -> None:
        super().__init__()
        self.scale_mode = check_choice(self.name, "scale_mode", scale_mode, ("min", "median", "rmse"))
        self.weighting = AlignedMTLWeighting(scale_mode=self.scale_mode)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        return self.weighting(gramian(gradients))
