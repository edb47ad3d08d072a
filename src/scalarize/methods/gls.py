"""GLS: the geometric loss strategy.

Chennupati, Sistu, Yogamani & Rawashdeh, "MultiNet++: Multi-Stream Feature Aggregation and
Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019.

The model minimises the geometric mean of the task losses,

    L = (Π_i L_i)^{1/T} = exp(mean_i log L_i),

whose gradient is ``Σ_i [L / (T L_i)] ∇L_i``: each task is weighted by the inverse of its loss
(the effective weights ``L / (T L_i)`` are what :meth:`current_weights` reports), which makes the
update invariant to rescaling any single loss. Losses must be positive (a zero loss gives a
non-finite gradient, a negative one a NaN loss; the trainer reports both).

Hyperparameters: none.

Same value as :class:`torchjd.scalarization.GeometricMean` (the equality is tested), written as
``exp(mean log L)`` here because torchjd's version checks the losses' signs on the host, a device
synchronisation every step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods.base import PERMUTATION_EQUIVARIANT, SCALE_INVARIANT_DIRECTION, Method, defined
from scalarize.methods.registry import register


@register
class GLS(Method):
    """Geometric mean of the task losses."""

    name = "gls"
    promises = frozenset({PERMUTATION_EQUIVARIANT, SCALE_INVARIANT_DIRECTION})

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def combine(self, losses: Tensor) -> Tensor:
        value = torch.exp(torch.log(losses).mean())
        self.last_weights = (value / (losses.numel() * losses)).detach()
        return value

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
