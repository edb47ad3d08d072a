"""Random Loss Weighting (RLW).

Lin, Ye, Zhang & Tsang, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
Multi-Task Learning", TMLR 2022.

Every step draws fresh weights and minimises ``Σ_i w_i L_i`` with ``w = f(λ̃)``, ``λ̃`` drawn
from a distribution ``p`` and ``f`` a normalisation onto the simplex:

    λ̃ ~ N(0, I) ("normal", the paper's main variant), U(0, 1)ᵀ ("uniform") or Dir(1) ("dirichlet")
    w = softmax(λ̃)           (normalization="softmax", the default)
    w = λ̃ / Σ_j λ̃_j          (normalization="sum"; non-negative draws only)

The paper normalises every sampled vector with the softmax, and so does the authors' code
(LibMTL's ``RLW``, whose ``dist`` option applied ``F.softmax`` to Uniform, Normal and Dirichlet
draws alike): ``distribution="dirichlet"`` therefore means softmax of a Dirichlet draw, as they
ran it. That draw already lies on the simplex, and its softmax squeezes the weights toward
uniform (their ratio is at most e); a plain Dirichlet weighting, used by some re-implementations
(and by this method before, as its "dirichlet"), is ``distribution="dirichlet",
normalization="sum"``.

The draws come from the method's own generator, seeded by ``seed`` (``None``: drawn from torch's
global RNG at construction); its state is in ``state_dict``, so a resumed run draws the same
weights.

Hyperparameters: ``distribution`` ("normal" | "uniform" | "dirichlet", default "normal"),
``normalization`` ("softmax" | "sum", default "softmax"), ``seed``.

The default is :class:`torchjd.scalarization.Random`'s rule (softmax of normal draws; torchjd
draws from the global RNG).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods._common import SeededMethod, check_choice
from scalarize.methods.base import MethodError, defined
from scalarize.methods.registry import register

DISTRIBUTIONS = ("normal", "uniform", "dirichlet")
NORMALIZATIONS = ("softmax", "sum")


@register
class RLW(SeededMethod):
    """Random weights on the simplex, redrawn every step."""

    name = "rlw"

    def __init__(self, distribution: str = "normal", normalization: str = "softmax", seed: int | None = None) -> None:
        super().__init__()
        self.distribution = check_choice(self.name, "distribution", distribution, DISTRIBUTIONS)
        self.normalization = check_choice(self.name, "normalization", normalization, NORMALIZATIONS)
        if self.normalization == "sum" and self.distribution == "normal":
            raise MethodError(
                "method rlw: normalization 'sum' needs non-negative draws: distribution 'uniform' "
                "or 'dirichlet', got 'normal'"
            )
        self.init_generator(seed)
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def sample(self) -> Tensor:
        """One draw ``λ̃`` (float64) from the method's generator."""
        t = self.num_tasks
        if self.distribution == "normal":
            return torch.randn(t, generator=self.generator).double()
        u = torch.rand(t, generator=self.generator, dtype=torch.float64)
        if self.distribution == "uniform":
            return u
        e = -torch.log1p(-u)  # Dirichlet(1) = normalised independent Exp(1) draws
        return e / e.sum()

    def draw(self) -> Tensor:
        """The next weights ``w = f(λ̃)``."""
        raw = self.sample()
        w = torch.softmax(raw, dim=0) if self.normalization == "softmax" else raw / raw.sum()
        return w.to(torch.get_default_dtype())

    def combine(self, losses: Tensor) -> Tensor:
        w = self.draw().to(losses)
        self.last_weights = w.detach()
        return (w * losses).sum()

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
