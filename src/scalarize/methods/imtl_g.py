"""IMTL-G: the gradient-balancing half of Impartial Multi-Task Learning.

Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task Learning",
ICLR 2021.

The update ``d = Σ_i α_i g_i`` with ``Σ_i α_i = 1`` has equal projections on every unit task
gradient ``u_i = g_i / ‖g_i‖``: ``d · u_i = d · u_j`` for all i, j. In closed form (for linearly
independent gradients) ``α ∝ (G Gᵀ)^{-1} [‖g_1‖, …, ‖g_T‖]ᵀ``, normalised to sum to 1; torchjd
uses the pseudo-inverse, which also covers linearly dependent gradients. Task-specific parameters
get their own gradients.

Hyperparameters: none.

Backed by :class:`torchjd.aggregation.IMTLGWeighting`. The loss-balancing half is ``imtl_l``.
"""

from __future__ import annotations

from torch import Tensor
from torchjd.aggregation import IMTLGWeighting

from scalarize.methods._common import WeightedGradientMethod, gramian
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, SCALE_INVARIANT_DIRECTION
from scalarize.methods.registry import register


@register
class IMTLG(WeightedGradientMethod):
    """Weights giving equal projections of the update on all unit task gradients."""

    name = "imtl_g"
    promises = frozenset({PERMUTATION_EQUIVARIANT, SCALE_INVARIANT_DIRECTION})

    def __init__(self) -> None:
        super().__init__()
        self.weighting = IMTLGWeighting()

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        return self.weighting(gramian(gradients))
