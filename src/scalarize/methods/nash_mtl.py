"""Nash-MTL: multi-task learning as a bargaining game.

Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, "Multi-Task Learning as a
Bargaining Game", ICML 2022.

The update ``d = Σ_i α_i g_i`` uses the Nash bargaining solution: the ``α > 0`` with

    (G Gᵀ) α = 1 / α        (element-wise),  i.e.  α_i · (g_i · d) = 1 for every task,

so every task's directional derivative is inversely proportional to its weight. Then, as in
torchjd, ``d`` is rescaled to norm ``max_norm`` when longer (``max_norm=0`` disables it; the
official code clips the shared gradient's norm at 1). With ``update_weights_every = k`` the
weights are recomputed every k steps and reused in between (the paper's speed-up).

Task-specific parameters get their own task's gradient, unscaled (``scale_heads=False``, the
default). The paper defines the update of the shared parameters only (Algorithm 1:
``θ ← θ − η G α``); the official code (AvivNavon/nash-mtl, ``NashMTL.get_weighted_loss``)
backpropagates ``Σ_i α_i L_i``, so that head i's gradient is scaled by α_i as a side effect,
with its α computed on the Gramian divided by its Frobenius norm (``α_official = √‖GGᵀ‖_F ·
α``). Unscaled heads keep each head's step independent of the other tasks' gradient scales, as in
every other gradient method here (MGDA, CAGrad, IMTL-G...). ``scale_heads=True`` scales head i's
gradient by this method's α_i (the paper's scale, before the ``max_norm`` clipping), the
official code's choice up to that scale.

Hyperparameters: ``max_norm`` (default 1.0, ≥ 0), ``update_weights_every`` (default 1),
``scale_heads`` (default False).

Solver: ``α`` is the unique minimiser of the strictly convex ``½ αᵀMα − Σ_i log α_i``
(``M = G Gᵀ``, whose stationarity condition is exactly ``Mα = 1/α``), found by damped Newton
iterations in float64 on ``M`` divided by its Frobenius norm (the solver FairGrad shares,
:mod:`scalarize.methods._allocation`), with ``1e-8 · diag(M)`` (plus
1e-14 for zero gradients) added so that it exists when the gradients are linearly dependent. A
ridge proportional to each task's own ``‖g_i‖²`` keeps the paper's invariance exact: scaling
task i's loss by c scales α_i by 1/c and leaves the update unchanged (tested); a ridge of
``1e-8 · I`` moved the update by 10% when one loss was 100× smaller than another. This replaces the official (and torchjd's)
sequence of cvxpy convex-concave subproblems, which reaches the same point but needs cvxpy and
ECOS (not dependencies here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from scalarize.methods._allocation import allocation_weights
from scalarize.methods._common import (
    WeightedGradientMethod,
    check_int,
    check_real,
    gramian,
    same_device,
)
from scalarize.methods.base import NON_CONFLICTING, PERMUTATION_EQUIVARIANT, SCALE_INVARIANT, MethodError, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


def nash_weights(gram: np.ndarray, max_newton: int = 100, tol: float = 1e-12) -> np.ndarray:
    """The ``α > 0`` solving ``gram · α = 1/α`` (up to the small ridge)."""
    return allocation_weights(gram, 1.0, max_newton, tol)


@register
class NashMTL(WeightedGradientMethod):
    """Bargaining weights: ``α_i (g_i · d) = 1`` for all tasks."""

    name = "nash_mtl"
    promises = frozenset({PERMUTATION_EQUIVARIANT, NON_CONFLICTING, SCALE_INVARIANT})

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, scale_heads: bool = False) -> None:
        super().__init__()
        if not isinstance(scale_heads, bool):
            raise MethodError(f"method nash_mtl: scale_heads must be true or false, got {scale_heads!r}")
        self.scale_heads = scale_heads
        self.max_norm = check_real(self.name, "max_norm", max_norm, low=0)
        self.update_weights_every = check_int(self.name, "update_weights_every", update_weights_every, low=1)
        self.register_buffer("alpha", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.alpha = torch.zeros(self.num_tasks, dtype=torch.float64)
            self.calls = torch.zeros((), dtype=torch.long)

    def backward(self, context: StepContext) -> None:
        gradients = context.shared_jacobian()
        direction = self.aggregate(gradients, context.losses.detach())
        context.backward_task_specific(self.alpha if self.scale_heads else None)
        context.set_shared_gradient(direction)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        if int(self.calls) % self.update_weights_every == 0:
            gram = gramian(gradients).cpu().numpy()
            self.alpha = torch.from_numpy(nash_weights(gram)).to(self.alpha.device)
        self.calls += 1
        alpha = self.alpha.to(gradients)
        if self.max_norm > 0:
            norm = (alpha @ gradients).norm()
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha
