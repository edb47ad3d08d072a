"""GradVac: gradient vaccine.

Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and Improving Multi-task
Optimization in Massively Multilingual Models", ICLR 2021.

Each ordered pair of tasks keeps a target cosine ``φ̂_ij`` (an EMA of the observed cosines,
starting at 0). For each task i, over the other tasks j in a random order, with
``φ_ij = cos(g_i^VC, g_j)``: if ``φ_ij < φ̂_ij``, add to ``g_i^VC`` the multiple of ``g_j``
that raises their cosine to exactly ``φ̂_ij``,

    g_i^VC ← g_i^VC + ‖g_i^VC‖ (φ̂_ij √(1−φ_ij²) − φ_ij √(1−φ̂_ij²)) / (‖g_j‖ √(1−φ̂_ij²)) · g_j

then ``φ̂_ij ← (1−β) φ̂_ij + β φ_ij``. The update is ``Σ_i g_i^VC``. With ``φ̂ = 0`` a correction
is PCGrad's projection. Applied to all shared parameters at once (the paper also studies
per-layer groupings). Task-specific parameters get their own gradients.

Hyperparameters: ``beta`` in [0, 1] (EMA rate, default 0.5 as in torchjd and LibMTL), ``eps``
(1e-8, added to denominators), ``seed`` of the generator for the random orders.

Backed by :class:`torchjd.aggregation.GradVacWeighting`. Its EMA state is kept here in the
``phi_hat`` buffer (so it is in ``state_dict``) and handed to a fresh torchjd weighting at each
step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor
from torchjd.aggregation import GradVacWeighting

from scalarize.methods._common import (
    SeededMethod,
    WeightedGradientMethod,
    check_real,
    global_rng_from,
    gramian,
    same_device,
)
from scalarize.methods.base import Setting
from scalarize.methods.registry import register


@register
class GradVac(WeightedGradientMethod, SeededMethod):
    """Raise pairwise gradient cosines to their running targets."""

    name = "gradvac"

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, seed: int | None = None) -> None:
        super().__init__()
        self.beta = check_real(self.name, "beta", beta, low=0, high=1)
        self.eps = check_real(self.name, "eps", eps, low=0)
        self.init_generator(seed)
        self.register_buffer("phi_hat", torch.zeros(0, 0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.phi_hat = torch.zeros(self.num_tasks, self.num_tasks, dtype=torch.float64)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        gram = gramian(gradients)
        weighting = GradVacWeighting(beta=self.beta, eps=self.eps)
        # Hand torchjd our EMA state (it would otherwise start from zeros).
        weighting._phi_t = self.phi_hat.detach().cpu().clone()  # type: ignore[assignment]  # torchjd's private buffer
        weighting._state_key = (gram.shape[0], gram.dtype)
        with global_rng_from(self.generator):
            w = weighting(gram)
        self.phi_hat.copy_(cast(Tensor, weighting._phi_t))
        return w
