"""DB-MTL: dual-balancing multi-task learning.

Lin, Jiang, Ye, Zhang, Chen, Chen, Liu & Kwok, "Dual-Balancing for Multi-Task Learning",
arXiv:2308.12029, 2023 (the authors' implementation is LibMTL's ``DB_MTL``).

Two balancings, one per scale:

* loss scale: every task loss is log-transformed, ``ℓ_i = log(L_i + ε)``, so that each task's
  gradient ``∇ℓ_i = ∇L_i / (L_i + ε)`` is free of its loss's scale;
* gradient magnitude: with ``ĝ_i`` an exponential moving average of ``∇ℓ_i`` on the shared
  parameters, ``ĝ_i ← β_t ĝ_i + (1 − β_t) ∇ℓ_i`` (``ĝ_i = 0`` at first, ``β_t = β / t^σ`` at
  step t), every ĝ_i is scaled to the largest norm:

      d = Σ_i (max_j ‖ĝ_j‖ / ‖ĝ_i‖) ĝ_i.

Task-specific parameters get the gradient of their own log-loss, ``∇L_i / (L_i + ε)`` (as in
the authors' code). :meth:`current_weights` reports the weight this step's ``∇L_i`` gets in
``d``: ``(1 − β_t) max_j ‖ĝ_j‖ / (‖ĝ_i‖ (L_i + ε))``.

With plain SGD at a constant learning rate, a task whose loss approaches 0 gets ever larger
steps (``∇L/L``, and the other tasks are scaled up to its norm): its loss falls, then bounces
instead of settling (on the test suite's toy problem, from step ~18 at lr 0.05 and step ~60 at
0.02). This is the rule itself, the same in the paper's algorithm and in LibMTL's ``DB_MTL``; an
optimizer whose steps are bounded, such as Adam, keeps it in check.

Hyperparameters: ``beta`` β in [0, 1) (default 0.9), ``beta_sigma`` σ ≥ 0 (default 0: a constant
β), both LibMTL's defaults (``DB_beta``, ``DB_beta_sigma``); ``eps`` ε = 1e-8 as there.

State: the ``[T, n]`` averages ĝ (one shared gradient per task) and the step count, in
``state_dict``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scalarize.methods._common import JacobianStateMixin, check_real
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, SCALE_INVARIANT, GradientMethod, defined
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

_NORM_EPS = 1e-8


@register
class DBMTL(JacobianStateMixin, GradientMethod):
    """Log-losses, and EMA task gradients scaled to the largest norm."""

    name = "db_mtl"
    promises = frozenset({PERMUTATION_EQUIVARIANT, SCALE_INVARIANT})
    _jacobian_state_keys = ("averages",)
    steps: Tensor  # a buffer: the steps taken

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.beta = check_real(self.name, "beta", beta, low=0, high=1, high_open=True)
        self.beta_sigma = check_real(self.name, "beta_sigma", beta_sigma, low=0)
        self.eps = check_real(self.name, "eps", eps, low=0, low_open=True)
        self.averages: Tensor | None = None  # ĝ, [T, n]
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def backward(self, context: StepContext) -> None:
        jacobian = context.shared_jacobian().detach()
        scale = 1.0 / (context.losses.detach().to(jacobian) + self.eps)  # ∇log(L + ε) = ∇L / (L + ε)
        context.backward_task_specific(scale)
        context.set_shared_gradient(self.direction(jacobian * scale.unsqueeze(1), scale))

    def direction(self, log_gradients: Tensor, scale: Tensor) -> Tensor:
        """One step of the rule on the gradients of the log-losses ``[T, n]``."""
        self.steps += 1
        beta = self.beta / float(self.steps) ** self.beta_sigma
        if self.averages is None or self.averages.shape != log_gradients.shape:
            self.averages = torch.zeros_like(log_gradients)
        averages = self.averages.to(log_gradients)
        averages = log_gradients + beta * (averages - log_gradients)
        self.averages = averages
        norms = averages.norm(dim=1)
        alpha = norms.max() / (norms + _NORM_EPS)
        self.last_weights = ((1 - beta) * alpha * scale).detach()
        direction: Tensor = alpha @ averages
        return direction

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        scale = 1.0 / (losses.to(gradients) + self.eps)
        return self.direction(gradients * scale.unsqueeze(1), scale)

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
