"""Random Loss Weighting (RLW).

Lin, Ye, Zhang & Tsang, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
Multi-Task Learning", TMLR 2022.

Every step draws fresh weights and minimises ``Σ_i w_i L_i`` with

    w = softmax(ε),  ε ~ N(0, I)          (distribution="normal", the paper's main variant)
    w ~ Dirichlet(1, …, 1)                 (distribution="dirichlet")

so ``w`` lies on the simplex. The draws come from the method's own generator, seeded by
``seed`` (``None``: drawn from torch's global RNG at construction); its state is in
``state_dict``, so a resumed run draws the same weights.

Hyperparameters: ``distribution`` ("normal" | "dirichlet", default "normal"), ``seed``.

Same rule as :class:`torchjd.scalarization.Random` (which draws from the global RNG).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods._common import SeededMethod, check_choice


class RLW(SeededMethod):
    """Random weights on the simplex, redrawn every step."""

    name = "rlw"

    def __init__(self, distribution: str = "normal", seed: int | None = None) -> None:
        super().__init__()
        self.distribution = check_choice(
            self.name, "distribution", distribution, ("normal", "dirichlet")
        )
        self.init_generator(seed)
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def draw(self) -> Tensor:
        if self.distribution == "normal":
            return torch.softmax(torch.randn(self.num_tasks, generator=self.generator), dim=0)
        # Dirichlet(1) = normalised independent Exp(1) draws.
        e = -torch.log1p(-torch.rand(self.num_tasks, generator=self.generator, dtype=torch.float64))
        return (e / e.sum()).float()

    def combine(self, losses: Tensor) -> Tensor:
        w = self.draw().to(losses)
        self.last_weights = w.detach()
        return (w * losses).sum()

    def current_weights(self) -> Tensor | None:
        return self.last_weights if self.last_weights.numel() else None
