"""MoDo: multi-objective gradient descent with double sampling.

Chen, Fernando, Ying & Chen, "Three-Way Trade-Off in Multi-Objective Learning: Optimization,
Generalization and Conflict-Avoidance", NeurIPS 2023 (JMLR 2024; official code:
heshandevaka/Trade-Off-MOL, ``LibMTL/LibMTL/weighting/MoDo.py``).

MGDA's weights are not solved for but tracked by one projected gradient step per training step,
on an unbiased estimate of the Gramian from two independent batches z₁, z₂:

    λ ← Π_Δ(λ − γ (J₁ J₂ᵀ λ + ρ λ))              (λ = 1/T at first)
    d = ½ (J₁ + J₂)ᵀ λ                             (the mean of both batches' directions)

with ``J_k`` the ``[T, n]`` Jacobian of batch z_k on the shared parameters. z₁ is the step's
batch (its heads get their own tasks' gradients, unscaled) and z₂ comes from
``context.independent_jacobians(1)`` when the trainer provides independent batches (it does, from a sampler of its own; this method
declares ``INDEPENDENT_BATCHES``); otherwise z₂ = z₁, ``J₁J₂ᵀ`` is the step's Gramian (biased,
the single-batch variant) and ``d = J₁ᵀλ``. The official code updates with ``(J₁ + J₂)ᵀλ`` ("handle
averaging via lr of x"), twice this ``d``; torchjd's example (Eq. 2.9b) and this method use the
mean.

Hyperparameters: ``gamma`` γ > 0 (default 0.1) and ``rho`` ρ ≥ 0 (default 0.1), the official
code's defaults (``gamma_modo``, ``rho_modo``) and torchjd's; LibMTL's port defaults to
γ = 1e-3. Same λ update as :class:`torchjd.aggregation.MoDoWeighting` (tested), with λ in
``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import check_real, project_onto_simplex, same_device
from scalarize.methods.base import (
    INDEPENDENT_BATCHES,
    LOSSES,
    PERMUTATION_EQUIVARIANT,
    SHARED_GRADIENTS,
    GradientMethod,
    Setting,
)
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


@register
class MoDo(GradientMethod):
    """MGDA weights tracked by one projected step per training step, on two batches."""

    name = "modo"
    needs = frozenset({LOSSES, SHARED_GRADIENTS, INDEPENDENT_BATCHES})
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, gamma: float = 0.1, rho: float = 0.1) -> None:
        super().__init__()
        self.gamma = check_real(self.name, "gamma", gamma, low=0, low_open=True)
        self.rho = check_real(self.name, "rho", rho, low=0)
        self.register_buffer("lambd", torch.zeros(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.lambd = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)

    def update(self, first: Tensor, second: Tensor) -> Tensor:
        """λ's projected step from two Jacobians ``[T, n]``; returns the new λ."""
        self.step_dtype = first.dtype
        lambd = self.lambd.to(first.device)
        product = first.double() @ (second.double().T @ lambd)
        self.lambd = project_onto_simplex(lambd - self.gamma * (product + self.rho * lambd))
        return self.lambd

    def backward(self, context: StepContext) -> None:
        first = context.shared_jacobian().detach()
        if context.has_independent_batches:
            (second,) = context.independent_jacobians(1)
            lambd = self.update(first, second).to(first)
            direction = lambd @ (0.5 * (first + second))
        else:
            direction = self.update(first, first).to(first) @ first
        context.backward_task_specific()
        context.set_shared_gradient(direction)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        return self.update(gradients, gradients).to(gradients) @ gradients

    def current_weights(self) -> Tensor | None:
        return self.reported(self.lambd)
