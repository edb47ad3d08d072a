"""MoCo: multi-objective gradient correction.

Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating Gradient Bias in Multi-objective
Learning: A Provably Convergent Approach", ICLR 2023 (the first author's code:
heshandevaka/Trade-Off-MOL, ``LibMTL/LibMTL/weighting/MoCo.py``).

Stochastic MGDA is biased: the min-norm weights of a noisy Jacobian are not those of the true
one. MoCo tracks the Jacobian with a moving average and the weights with a projected gradient
step, then descends along the tracked direction:

    Y ← Y − β (Y − J)                                 (Y = 0 at first; J the step's [T, n] Jacobian)
    λ ← Π_Δ(λ − γ (Y Yᵀ λ + ρ λ))                     (λ = 1/T at first)
    d = Yᵀ λ

on the shared parameters; task-specific parameters get their own gradients, unscaled (as in the
authors' code). The paper's Algorithm 1 also projects each ``y_i`` onto a ball of radius
``C_y`` (a constant of the analysis), which the code omits, as here.

Hyperparameters: ``beta`` β in (0, 1] (default 0.1), ``gamma`` γ > 0 (default 0.1), ``rho``
ρ ≥ 0 (default 0.1): the authors' code's defaults (``beta_moco``, ``gamma_moco``,
``rho_moco``), which track the raw gradients (``moco_gn = 'none'``). LibMTL's port differs:
decaying steps ``β/t^0.5`` (β = 0.5) and ``γ/t^0.5`` (γ = 0.1), ρ = 0, gradients rescaled to
``L_i g_i/‖g_i‖`` before tracking, and ``softmax`` in place of the projection onto the simplex.

State: ``Y`` (``[T, n]``) and λ, in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import JacobianStateMixin, check_real, project_onto_simplex, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, GradientMethod, Setting
from scalarize.methods.registry import register


@register
class MoCo(JacobianStateMixin, GradientMethod):
    """MGDA along a tracked (moving-average) Jacobian."""

    name = "moco"
    promises = frozenset({PERMUTATION_EQUIVARIANT})
    _jacobian_state_keys = ("tracked",)

    def __init__(self, beta: float = 0.1, gamma: float = 0.1, rho: float = 0.1) -> None:
        super().__init__()
        self.beta = check_real(self.name, "beta", beta, low=0, high=1, low_open=True)
        self.gamma = check_real(self.name, "gamma", gamma, low=0, low_open=True)
        self.rho = check_real(self.name, "rho", rho, low=0)
        self.tracked: Tensor | None = None  # Y, [T, n]
        self.register_buffer("lambd", torch.zeros(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.lambd = torch.full((self.num_tasks,), 1.0 / self.num_tasks, dtype=torch.float64)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        g = gradients.detach()
        self.step_dtype = g.dtype
        if self.tracked is None or self.tracked.shape != g.shape:
            self.tracked = torch.zeros_like(g)
        y = self.tracked.to(g)
        y = y - self.beta * (y - g)
        self.tracked = y
        lambd = self.lambd.to(g.device)
        y64 = y.double()
        step = y64 @ (y64.T @ lambd) + self.rho * lambd
        self.lambd = project_onto_simplex(lambd - self.gamma * step)
        return self.lambd.to(y) @ y

    def current_weights(self) -> Tensor | None:
        return self.reported(self.lambd)
