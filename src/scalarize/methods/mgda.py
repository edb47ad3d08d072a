"""MGDA: the multiple-gradient descent algorithm as multi-objective optimisation.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018 (Algorithm 2,
Frank–Wolfe solver); Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization", 2012.

The update is the min-norm point of the convex hull of the task gradients:

    d = Σ_i α_i g_i,   α = argmin_{α ∈ Δ} ‖Σ_i α_i g_i‖²

found by Frank–Wolfe on the Gramian. For two tasks this is the closed form
``α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1)``. Task-specific parameters get their own
gradients (the paper's Algorithm 2).

Hyperparameters: ``normalization`` of the gradients used to find α, as in the authors' code
("none" default | "l2": g_i/‖g_i‖ | "loss": g_i/L_i | "loss+": g_i/(L_i ‖g_i‖)); α is then applied
to the raw gradients, as in that code. ``epsilon`` (Frank–Wolfe stopping step, default 1e-3) and
``max_iters`` (default 100).

The solver is :class:`torchjd.aggregation.MGDAWeighting`'s iteration run in NumPy on the Gramian
(``methods/_min_norm.py``; their equality is tested). See ``mgda_ub`` for the variant on the shared
representation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods._common import (
    WeightedGradientMethod,
    check_choice,
    check_int,
    check_real,
    gramian,
)
from scalarize.methods._min_norm import MinNormWeighting

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def normalise_rows(rows: Tensor, losses: Tensor, normalization: str) -> Tensor:
    """Sener & Koltun's gradient normalisations (used only to find α)."""
    if normalization == "none":
        return rows
    scale = torch.ones(rows.shape[0], dtype=rows.dtype, device=rows.device)
    if normalization in ("l2", "loss+"):
        scale = scale * rows.norm(dim=1)
    if normalization in ("loss", "loss+"):
        scale = scale * losses.to(rows).abs()
    return rows / scale.clamp(min=1e-12).unsqueeze(1)


def min_norm_settings(name: str, normalization: str, epsilon: float, max_iters: int) -> tuple[str, MinNormWeighting]:
    """Checked ``normalization`` and the Frank–Wolfe min-norm weighting (MGDA, MGDA-UB)."""
    normalization = check_choice(name, "normalization", normalization, NORMALIZATIONS)
    epsilon = check_real(name, "epsilon", epsilon, low=0, low_open=True)
    max_iters = check_int(name, "max_iters", max_iters, low=1)
    return normalization, MinNormWeighting(epsilon=epsilon, max_iters=max_iters)


class MGDA(WeightedGradientMethod):
    """Min-norm convex combination of the task gradients (Frank–Wolfe)."""

    name = "mgda"

    def __init__(
        self, normalization: str = "none", epsilon: float = 1e-3, max_iters: int = 100
    ) -> None:
        super().__init__()
        self.normalization, self.weighting = min_norm_settings(self.name, normalization, epsilon, max_iters)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        rows = normalise_rows(gradients.detach(), losses, self.normalization)
        return self.weighting(gramian(rows))
