"""GradDrop: gradient sign dropout.

Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a Sign: Optimizing Deep
Multitask Models with Gradient Sign Dropout", NeurIPS 2020 (Algorithm 1, lines 10–15).

Per coordinate k of the shared parameters, with the positive sign purity

    P_k = ½ (1 + Σ_i g_ik / Σ_i |g_ik|)

draw ``U_k ~ U(0, 1)`` and keep only the positive contributions where ``P_k > U_k`` and only
the negative ones where ``P_k < U_k``:

    d_k = Σ_i (ℓ_i + (1 − ℓ_i) M_ik) g_ik,  M_ik = [P_k > U_k][g_ik > 0] + [P_k < U_k][g_ik < 0]

so each coordinate keeps one sign (with leak ``ℓ = 0``), the sign chosen with probability equal
to its share of the total gradient mass. The paper applies GradDrop at a layer's activations;
here, as in torchjd, it acts on the gradients of the shared parameters. Task-specific parameters
get their own gradients. Weights per task are not defined (``current_weights`` is ``None``).

Hyperparameters: ``leak`` in [0, 1] (default 0: pure sign dropout; 1: plain sum), ``seed``.

Same rule as :class:`torchjd.aggregation.GradDrop` with ``f`` = identity (the equality is
tested); written here so that ``U`` comes from the method's own generator (in ``state_dict``)
whatever the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods._common import SeededMethod, check_real
from scalarize.methods.base import GradientMethod
from scalarize.methods.registry import register


@register
class GradDrop(GradientMethod, SeededMethod):
    """Keep, per coordinate, one sign of the task gradients, drawn by sign purity."""

    name = "graddrop"

    def __init__(self, leak: float = 0.0, seed: int | None = None) -> None:
        super().__init__()
        self.leak = check_real(self.name, "leak", leak, low=0, high=1)
        self.init_generator(seed)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        g = gradients.detach()
        if g.numel() == 0:
            return torch.zeros(g.shape[1], dtype=g.dtype, device=g.device)
        purity = 0.5 * (1 + g.sum(dim=0) / g.abs().sum(dim=0))
        u = torch.rand(purity.shape, generator=self.generator, dtype=g.dtype).to(g.device)
        keep = (purity > u) & (g > 0) | (purity < u) & (g < 0)
        return ((self.leak + (1 - self.leak) * keep.to(g.dtype)) * g).sum(dim=0)
