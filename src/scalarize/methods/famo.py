"""FAMO: Fast Adaptive Multitask Optimization.

Liu, Feng, Stone & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

With logits ξ and ``z = softmax(ξ)``, the model takes one backward of

    c · Σ_i z_i log(L_i − b_i + ε),     c = (Σ_i z_i / (L_i − b_i + ε))^{-1}  (held constant)

whose gradient is the convex combination ``Σ_i [z_i / (c (L_i − b_i + ε))] ∇L_i`` (these
effective weights, which sum to 1, are what :meth:`current_weights` reports). After the
optimizer step the trainer calls :meth:`after_step`; it recomputes the losses of the same batch
(``context.recompute_losses()``), measures ``δ_i = log(L_i^before − b_i + ε) − log(L_i^after −
b_i + ε)`` and takes one Adam step on ξ along ``J_softmax(ξ)ᵀ δ`` (with L2 weight decay), so
that tasks which improved less get more weight. O(1) in the number of tasks.

Hyperparameters: ``lr`` (Adam on ξ, default 0.025: the paper's α and every official script),
``weight_decay`` γ (L2 decay of ξ in that Adam, default 1e-3), ``min_losses`` ``b`` (default 0:
losses must stay > 0), ``betas`` (0.9, 0.999), ``eps`` (Adam, 1e-8), ``max_norm`` (default 0:
off; > 0 clips the norm of the shared parameters' gradient to it after the backward pass).

Sources of the defaults (the paper is the judge): γ = 1e-3 is the paper's Algorithm 2 and
LibMTL's default, and what the official repository (Cranial-XIX/FAMO) runs on NYUv2, CelebA and
QM9 (``experiments/*/run.sh``); it runs Cityscapes with 1e-2, and its defaults disagree (1e-2 in
``famo.py`` and ``experiments/utils.py``, 1e-5 in ``methods/weight_methods.py``). The official
training code also clips the shared gradient to norm ``max_norm = 1`` after FAMO's backward
(``clip_grad_norm_(shared_parameters, 1.0)``), which the paper does not mention: offered as
``max_norm: 1.0``, off by default.

Same rule as :class:`torchjd.scalarization.FAMO` (the equality is tested). Here ξ and the Adam
moments are buffers, not ``nn.Parameter``: they land in ``state_dict`` and stay out of the
trainer's optimizer (only FAMO's own update may move them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import check_real, same_device
from scalarize.methods.base import AFTER_STEP, LOSSES, PERMUTATION_EQUIVARIANT, Method, MethodError, Setting, defined
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

_EPSILON = 1e-8


@register
class FAMO(Method):
    """Loss-space balancing of log-losses with logits learned from the step's effect."""

    name = "famo"
    needs = frozenset({LOSSES, AFTER_STEP})
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(
        self,
        lr: float = 0.025,
        weight_decay: float = 1e-3,
        min_losses: Sequence[float] | float = 0.0,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        max_norm: float = 0.0,
    ) -> None:
        super().__init__()
        self.lr = check_real(self.name, "lr", lr, low=0)
        self.weight_decay = check_real(self.name, "weight_decay", weight_decay, low=0)
        if not isinstance(betas, Sequence) or len(betas) != 2:
            raise MethodError(f"method famo: betas must be two numbers, got {betas!r}")
        self.betas = tuple(
            check_real(self.name, f"betas[{k}]", b, low=0, high=1, high_open=True) for k, b in enumerate(betas)
        )
        self.eps = check_real(self.name, "eps", eps, low=0)
        self.max_norm = check_real(self.name, "max_norm", max_norm, low=0)
        self._min_losses = min_losses
        for key in ("logits", "exp_avg", "exp_avg_sq", "min_losses", "prev_losses"):
            self.register_buffer(key, torch.zeros(0))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            t = self.num_tasks
            try:
                b = torch.as_tensor(self._min_losses, dtype=torch.get_default_dtype())
            except (TypeError, ValueError, RuntimeError):
                b = torch.full((t + 1,), float("nan"))  # reported below
            if b.numel() == 1:
                b = b.flatten().expand(t).clone()
            if b.numel() != t or not torch.isfinite(b).all():
                raise MethodError(
                    f"method famo: min_losses must be one number or {t} finite numbers, got {self._min_losses!r}"
                )
            self.min_losses = b.flatten()
            self.logits = torch.zeros(t)
            self.exp_avg = torch.zeros(t)
            self.exp_avg_sq = torch.zeros(t)
            self.prev_losses = torch.zeros(t)
            self.adam_steps = torch.zeros((), dtype=torch.long)

    def task_weights(self) -> Tensor:
        """``z = softmax(ξ)``."""
        return torch.softmax(self.logits, dim=0)

    def combine(self, losses: Tensor) -> Tensor:
        self.prev_losses = losses.detach().to(self.logits).clone()
        z = self.task_weights().to(losses)
        shifted = losses - self.min_losses.to(losses) + _EPSILON
        c = 1.0 / (z / shifted.detach()).sum()
        self.last_weights = (c * z / shifted.detach()).detach()
        return (c * z * torch.log(shifted)).sum()

    def backward(self, context: StepContext) -> None:
        context.backward(self.combine(context.losses))
        if self.max_norm > 0:
            torch.nn.utils.clip_grad_norm_(context.shared_params, self.max_norm)

    def after_step(self, context: StepContext) -> None:
        self.update(context.recompute_losses())

    def update(self, new_losses: Tensor) -> None:
        """One Adam step on ξ from the losses of the same batch after the model step."""
        before = self.prev_losses - self.min_losses + _EPSILON
        after = new_losses.detach().to(self.logits) - self.min_losses + _EPSILON
        delta = torch.log(before) - torch.log(after)
        z = self.task_weights()
        grad = z * (delta - (z * delta).sum())  # J_softmax(ξ)ᵀ δ
        # torch.optim.Adam (L2 weight decay), written out so that its state is in buffers.
        grad = grad + self.weight_decay * self.logits
        beta1, beta2 = self.betas
        self.adam_steps += 1
        step = int(self.adam_steps)
        self.exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(self.eps)
        self.logits.addcdiv_(self.exp_avg, denom, value=-self.lr / (1 - beta1**step))

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
