"""PCGrad: projecting conflicting gradients.

Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task Learning",
NeurIPS 2020 (Algorithm 1).

For each task i, over the other tasks j in a random order: if ``g_i^PC · g_j < 0``,
``g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j`` (project onto the normal plane of the
*original* ``g_j``). The update is ``Σ_i g_i^PC``; gradients that conflict with no other are
left unchanged (with no conflict at all the update is the plain sum). Task-specific parameters
get their own gradients.

Hyperparameters: ``seed`` of the method's generator for the random orders (``None``: drawn from
torch's global RNG at construction); its state is in ``state_dict``.

Backed by :class:`torchjd.aggregation.PCGradWeighting` (run on the Gramian ``G Gᵀ``; the
weights it returns, the coefficients of ``Σ_i g_i^PC`` on the original gradients, are what
:meth:`current_weights` reports).
"""

from __future__ import annotations

from torch import Tensor
from torchjd.aggregation import PCGradWeighting

from scalarize.methods._common import (
    SeededMethod,
    WeightedGradientMethod,
    global_rng_from,
    gramian,
)
from scalarize.methods.registry import register


@register
class PCGrad(WeightedGradientMethod, SeededMethod):
    """Gradient surgery: remove the conflicting components between task gradients."""

    name = "pcgrad"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.init_generator(seed)
        self.weighting = PCGradWeighting()

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        with global_rng_from(self.generator):
            return self.weighting(gramian(gradients))
