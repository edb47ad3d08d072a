"""MGDA-UB: MGDA on an upper bound, with gradients on the shared representation.

Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018 (Section 3.3).

MGDA's min-norm problem is solved on the gradients of the task losses with respect to the shared
representation ``Z`` (the trunk's output, flattened over the batch) instead of the shared
parameters:

    α = argmin_{α ∈ Δ} ‖Σ_i α_i ∇_Z L_i‖²

The model's update is the gradient of ``Σ_i α_i L_i`` (so, as in the authors' code, the heads'
gradients are scaled by α too). With the trainer's ``head_inputs`` (methods/context.py) this costs
one backward pass through the heads, which gives every ``∇_Z L_i`` and every head's gradient, and
one backward of ``Σ_i α_i ∇_Z L_i`` through the trunk: the passes of a uniform step, plus the
small min-norm problem. Without them, one partial backward per task through its head, then one
whole backward.

Hyperparameters: as ``mgda`` — ``normalization`` ("none" | "l2" | "loss" | "loss+"), ``solver``
("exact" default | "frank_wolfe", with ``epsilon`` 1e-3 and ``max_iters`` 100).

The exact min-norm solver of ``mgda`` (``methods/_min_norm.py``); needs the trainer to pass
``features``.
"""

from __future__ import annotations

from torch import Tensor

from scalarize.methods.base import FEATURE_GRADIENTS, LOSSES, NON_CONFLICTING, PERMUTATION_EQUIVARIANT, defined
from scalarize.methods.context import StepContext
from scalarize.methods.mgda import MinNormMethod, normalise_gramian
from scalarize.methods.registry import register


@register
class MGDAUB(MinNormMethod):
    """MGDA weights from the representation's gradients, then one backward (:meth:`weights` takes
    the ``[T, d]`` gradients on the representation)."""

    name = "mgda_ub"
    needs = frozenset({LOSSES, FEATURE_GRADIENTS})
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING})

    def weights_from_gramian(self, gram: Tensor, losses: Tensor) -> Tensor:
        """:meth:`weights` from the Gramian of the representation's gradients (the
        normalisations are row scalings: ``D G D``)."""
        return self.weighting(normalise_gramian(gram, losses, self.normalization))

    def backward(self, context: StepContext) -> None:
        # the Gramian over the whole batch (summed over the ranks in data-parallel training)
        alpha = self.weights_from_gramian(context.feature_gramian(), context.losses.detach())
        alpha = alpha.to(context.losses)
        self.last_weights = alpha.detach().clone()
        context.backward_weighted(alpha)

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
