"""SDMGrad: stochastic direction-oriented multi-objective gradient descent.

Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic
Algorithms", NeurIPS 2023 (official code: OptMN-Lab/sdmgrad, ``methods/weight_methods.py``).

MGDA's min-norm direction, pulled toward a target direction (the average gradient ``g_0``) by
λ: the weights ``w ∈ Δ`` minimise ``½ ‖G_ξ w + λ g_0‖²`` (in the paper's notation, with ``G``
the ``n × T`` matrix of task gradients), approximated by a few projected stochastic gradient
steps whose gradient ``(G_ξᵀ G_ξ') w + λ (G_ξᵀ G_ξ') 1/T`` uses two independent batches ξ, ξ'
(an unbiased estimate of the true product), and the update is taken on a third batch ζ:

    A = J_ξ J_ξ'ᵀ / s²,  s = mean_i √max(A_ii, 0)       (T × T, scale-free)
    repeat n_iter: w ← Π_Δ(w − lr · v),  v ← momentum · v + A (w + λ/T · 1)    (v = 0 at first)
    d = (G_ζ w + λ g_0,ζ) / (1 + λ) = Σ_i [(w_i + λ/T) / (1 + λ)] g_i,ζ

``w`` carries over from one step to the next (warm start), the momentum does not (the official
code builds a new ``torch.optim.SGD(lr=10, momentum=0.5)`` every step). The step's own batch is
ζ: its Jacobian gives the update and the heads' gradients (each head its own task's, unscaled).
ξ and ξ' come from ``context.independent_jacobians(2)`` when the trainer provides independent
batches (this method declares ``INDEPENDENT_BATCHES``); otherwise all three are the step's batch
and ``A`` is its Gramian ``G Gᵀ`` (the biased single-batch variant most re-implementations run).

Hyperparameters (the official code's experiments): ``lam`` λ ≥ 0 (default 0.3, every official
run script; its class default is 0.6), ``lr`` (inner step, default 10), ``momentum`` in [0, 1)
(default 0.5), ``n_iter`` ≥ 1 (default 20); ``max_norm`` ≥ 0 (default 0: off; > 0 scales the
shared parameters' update ``d`` down to that norm when it is longer; the heads' gradients are not
clipped, and :meth:`current_weights` reports the weights before the clipping).

The official code scales ``A`` by ``mean √(A_ii + 1e-4)`` (an absolute 1e-4 that depends on the
gradients' scale; here ``mean √max(A_ii, 0)``, as torchjd) and multiplies ``d`` by T ("to match
the sum loss"), a learning rate T times larger, then clips the shared parameters' gradient to
norm 1 (``SDMGrad.backward`` ends with ``clip_grad_norm_(shared_parameters, max_norm)``;
``--max_norm`` defaults to 1.0 and no run script changes it), which the paper does not mention.
``d`` here is the paper's, unclipped by default. The official shared update ``clip(T·d, 1)`` is
T times what ``max_norm: 1/T`` gives here: the same step under Adam, which ignores a constant
scale, or with a learning rate T times larger under SGD. Same weights as
:class:`torchjd.aggregation.SDMGradWeighting` (tested), with the state (``w``) in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import check_int, check_real, clip_norm, project_onto_simplex, same_device
from scalarize.methods.base import (
    INDEPENDENT_BATCHES,
    LOSSES,
    PERMUTATION_EQUIVARIANT,
    SHARED_GRADIENTS,
    GradientMethod,
    Setting,
    defined,
)
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


@register
class SDMGrad(GradientMethod):
    """Direction-oriented stochastic MGDA with a warm-started inner solver."""

    name = "sdmgrad"
    needs = frozenset({LOSSES, SHARED_GRADIENTS, INDEPENDENT_BATCHES})
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(
        self, lam: float = 0.3, lr: float = 10.0, momentum: float = 0.5, n_iter: int = 20, max_norm: float = 0.0
    ) -> None:
        super().__init__()
        self.lam = check_real(self.name, "lam", lam, low=0)
        self.lr = check_real(self.name, "lr", lr, low=0, low_open=True)
        self.momentum = check_real(self.name, "momentum", momentum, low=0, high=1, high_open=True)
        self.n_iter = check_int(self.name, "n_iter", n_iter, low=1)
        self.max_norm = check_real(self.name, "max_norm", max_norm, low=0)
        self.register_buffer("inner_weights", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.inner_weights = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)

    def solve(self, product: Tensor) -> Tensor:
        """The inner steps on ``A = J_ξ J_ξ'ᵀ``; returns the weights of the ζ gradients."""
        a = product.detach().double().to(self.inner_weights.device)
        t = a.shape[0]
        scale = torch.diagonal(a).clamp(min=0).sqrt().mean()
        a = a / (scale**2 + 1e-8)
        target = torch.full((t,), 1.0 / t, dtype=a.dtype, device=a.device)
        w = self.inner_weights
        velocity = None
        for _ in range(self.n_iter):
            grad = a @ (w + self.lam * target)
            velocity = grad if velocity is None else self.momentum * velocity + grad
            w = project_onto_simplex(w - self.lr * velocity)
        self.inner_weights = w
        return (w + self.lam * target) / (1.0 + self.lam)

    def backward(self, context: StepContext) -> None:
        gradients = context.shared_jacobian()
        xi, xi_prime = context.independent_jacobians(2)
        direction = self.update(self.solve(xi @ xi_prime.T), gradients)
        context.backward_task_specific()
        context.set_shared_gradient(direction)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        """The single-batch rule (``A = G Gᵀ``)."""
        return self.update(self.solve(gradients @ gradients.T), gradients)

    def update(self, weights: Tensor, gradients: Tensor) -> Tensor:
        """``d = Σ_i weights_i g_i`` on the step's batch, clipped to ``max_norm`` (when > 0)."""
        weights = weights.to(gradients)
        self.last_weights = weights.detach().clone()
        return clip_norm(weights @ gradients, self.max_norm)

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
