"""ExcessMTL: task weights from estimated excess risks.

He, Zhou, Zhao & Li, "Robust Multi-Task Learning with Excess Risks", ICML 2024 (official code:
yifei-he/ExcessMTL, ``LibMTL/LibMTL/weighting/ExcessMTL.py``).

Tasks are weighted by how far they are from convergence (their excess risk), not by their loss,
so that a task with a large irreducible (e.g. label-noise) loss does not take over. Each step,
with ``g_i`` task i's gradient on the shared parameters:

    S_i ← S_i + g_i ⊙ g_i                                (AdaGrad accumulator, S_i = 0 at first)
    E_i = Σ_k g_ik² / √(S_ik + 1e-7)                       (excess risk ≈ g_iᵀ H_i⁻¹ g_i, Eqs. 6–7)
    w ← w ⊙ exp(η E_i / E_i⁰),   w ← w / Σ_j w_j          (exponentiated gradient step, Eq. 9)

where ``E_i⁰`` is the baseline: the mean of ``E_i`` over the first ``warmup_steps`` steps, during
which the weights stay uniform (the official code uses the first step's value, no update on that
step: ``warmup_steps = 1``; the paper's Appendix C.1 suggests a few epochs). The update is
``Σ_i w_i ∇L_i`` on every parameter: a loss weighting, so each head's gradient is scaled by its
task's weight too, as in the official code's ``Σ_i w_i L_i`` backward.

Weights lie on the simplex (sum 1), as in the paper; the official code (and LibMTL) starts them at
1 and renormalises them to sum to T, i.e. T times this update (a learning rate T times larger).
The exponentiated step is taken in log space, so that a large ratio saturates instead of
overflowing (as torchjd does).

Hyperparameters: ``robust_step_size`` η > 0 (default 1e-2, the official code's and LibMTL's
default; the README's Office-Home example uses 1), ``warmup_steps`` ≥ 1 (default 1).

Same rule as :class:`torchjd.aggregation.ExcessMTLWeighting` (tested) except at the end of the
warm-up: torchjd, with no warm-up, updates the weights on the first call with the raw ``E_i``;
here, as in the official code, the baseline step leaves them uniform. State: the ``[T, n]``
accumulator ``S``, the baseline, the weights and the step count, in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import JacobianStateMixin, check_int, check_real, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, GradientMethod, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

_ADAGRAD_EPS = 1e-7
_TINY = 1e-30


@register
class ExcessMTL(JacobianStateMixin, GradientMethod):
    """Exponentiated-gradient task weights driven by AdaGrad excess-risk estimates."""

    name = "excess_mtl"
    promises = frozenset({PERMUTATION_EQUIVARIANT})
    _jacobian_state_keys = ("squares",)

    def __init__(self, robust_step_size: float = 1e-2, warmup_steps: int = 1) -> None:
        super().__init__()
        self.robust_step_size = check_real(self.name, "robust_step_size", robust_step_size, low=0, low_open=True)
        self.warmup_steps = check_int(self.name, "warmup_steps", warmup_steps, low=1)
        self.squares: Tensor | None = None  # S, [T, n]
        for key in ("loss_weights", "baseline", "warmup_sum"):
            self.register_buffer(key, torch.zeros(0, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            t = self.num_tasks
            self.loss_weights = torch.full((t,), 1.0 / t, dtype=torch.float64)
            self.baseline = torch.zeros(t, dtype=torch.float64)
            self.warmup_sum = torch.zeros(t, dtype=torch.float64)
            self.steps = torch.zeros((), dtype=torch.long)

    def excess_risks(self, gradients: Tensor) -> Tensor:
        """Accumulates ``g ⊙ g`` and returns ``E_i = Σ_k g_ik² / √(S_ik + 1e-7)`` (float64)."""
        squares = gradients.detach().double() ** 2
        if self.squares is None or self.squares.shape != squares.shape:
            self.squares = torch.zeros_like(squares)
        self.squares = self.squares.to(squares) + squares
        return (squares / torch.sqrt(self.squares + _ADAGRAD_EPS)).sum(dim=1)

    def weights(self, gradients: Tensor) -> Tensor:
        self.step_dtype = gradients.dtype
        risks = self.excess_risks(gradients).to(self.loss_weights)
        self.steps += 1
        step = int(self.steps)
        if step <= self.warmup_steps:
            self.warmup_sum = self.warmup_sum + risks
            if step == self.warmup_steps:
                self.baseline = self.warmup_sum / self.warmup_steps
            return self.loss_weights
        ratio = risks / self.baseline.clamp(min=_TINY)
        self.loss_weights = torch.softmax(torch.log(self.loss_weights) + self.robust_step_size * ratio, dim=0)
        return self.loss_weights

    def backward(self, context: StepContext) -> None:
        gradients = context.shared_jacobian()
        w = self.weights(gradients).to(gradients)
        context.backward_task_specific(w)
        context.set_shared_gradient(w @ gradients)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        return self.weights(gradients).to(gradients) @ gradients

    def current_weights(self) -> Tensor | None:
        return self.reported(self.loss_weights)
