"""MGDA: the multiple-gradient descent algorithm as multi-objective optimisation.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018 (Algorithm 2,
Frank–Wolfe solver); Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization", 2012.

The update is the min-norm point of the convex hull of the task gradients:

    d = Σ_i α_i g_i,   α = argmin_{α ∈ Δ} ‖Σ_i α_i g_i‖²

solved exactly on the Gramian ``G = [g_i · g_j]`` (the nearest-point problem as non-negative least
squares, solved by SciPy's Lawson–Hanson active-set solver, ``methods/_min_norm.py``: tasks off
the optimal face get weight exactly 0; tested against a brute-force solve over every active set,
and its KKT conditions by a property test on rank-deficient, duplicated and badly scaled
Gramians up to T = 120). For two tasks this is the
closed form ``α_1 = clip(((g_2 − g_1)·g_2) / ‖g_1 − g_2‖², 0, 1)``. Task-specific parameters
get their own gradients (the paper's Algorithm 2).

Hyperparameters: ``normalization`` of the gradients used to find α, as in the authors' code
("none" default | "l2": g_i/‖g_i‖ | "loss": g_i/L_i | "loss+": g_i/(L_i ‖g_i‖)); α is then applied
to the raw gradients, as in that code. ``solver``: "exact" (default) or "frank_wolfe", the paper's
Algorithm 2 as torchjd's ``MGDAWeighting`` runs it (equal to it, tested), with ``epsilon`` (stop
when the step γ < ε, default 1e-3) and ``max_iters`` (default 100), options of that solver only.
Frank–Wolfe is inexact at T ≥ 3 (its direction was 1e-3 to 4e-2 off the exact one on random
Gramians with the defaults, and never sets a weight back to 0); it is kept to reproduce
implementations that use it (torchjd). The authors' own code (and LibMTL's port) starts from the
best pair and runs projected-gradient steps until the weights move by less than 1e-5
(``find_min_norm_element``, at most 250 steps), also inexact; its Frank–Wolfe variant
(``find_min_norm_element_FW``) is this solver from the best pair.

See ``mgda_ub`` for the variant on the shared representation.
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
from scalarize.methods._min_norm import SOLVERS, MinNormWeighting
from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT, Method, MethodError
from scalarize.methods.registry import register

NORMALIZATIONS = ("none", "l2", "loss", "loss+")
#: Frank–Wolfe's defaults (torchjd's MGDAWeighting).
FW_EPSILON = 1e-3
FW_MAX_ITERS = 100


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


def normalise_gramian(gram: Tensor, losses: Tensor, normalization: str) -> Tensor:
    """The Gramian of :func:`normalise_rows`'s rows, from the Gramian of the raw rows."""
    if normalization == "none":
        return gram
    scale = torch.ones(gram.shape[0], dtype=gram.dtype, device=gram.device)
    if normalization in ("l2", "loss+"):
        scale = scale * gram.diagonal().clamp(min=0).sqrt()
    if normalization in ("loss", "loss+"):
        scale = scale * losses.to(gram).abs()
    inverse = 1.0 / scale.clamp(min=1e-12)
    return gram * inverse.unsqueeze(0) * inverse.unsqueeze(1)


def min_norm_settings(
    name: str, normalization: str, solver: str, epsilon: float | None, max_iters: int | None
) -> tuple[str, MinNormWeighting]:
    """Checked ``normalization`` and the min-norm weighting (MGDA, MGDA-UB)."""
    normalization = check_choice(name, "normalization", normalization, NORMALIZATIONS)
    solver = check_choice(name, "solver", solver, SOLVERS)
    if solver != "frank_wolfe":
        for key, value in (("epsilon", epsilon), ("max_iters", max_iters)):
            if value is not None:
                raise MethodError(
                    f"method {name}: {key} is an option of solver 'frank_wolfe' only, got solver {solver!r}"
                )
        return normalization, MinNormWeighting(solver)
    epsilon = check_real(name, "epsilon", FW_EPSILON if epsilon is None else epsilon, low=0, low_open=True)
    max_iters = check_int(name, "max_iters", FW_MAX_ITERS if max_iters is None else max_iters, low=1)
    return normalization, MinNormWeighting(solver, epsilon=epsilon, max_iters=max_iters)


class MinNormMethod(Method):
    """What MGDA and MGDA-UB share: their options and the min-norm weights of (normalised) rows,
    the task gradients on the shared parameters (MGDA) or on the representation (MGDA-UB)."""

    def __init__(
        self,
        normalization: str = "none",
        solver: str = "exact",
        epsilon: float | None = None,
        max_iters: int | None = None,
    ) -> None:
        super().__init__()
        self.normalization, self.weighting = min_norm_settings(self.name, normalization, solver, epsilon, max_iters)
        # the last weights, for current_weights (a WeightedGradientMethod registers it already)
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        rows = normalise_rows(gradients.detach(), losses, self.normalization)
        return self.weighting(gramian(rows))


@register
class MGDA(MinNormMethod, WeightedGradientMethod):
    """Min-norm convex combination of the task gradients."""

    name = "mgda"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING})
