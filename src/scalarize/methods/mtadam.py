"""MTAdam: Adam that balances the terms of a multi-term loss.

Malkiel & Wolf, "MTAdam: Automatic Balancing of Multiple Training Loss Terms", EMNLP 2021
(arXiv:2006.14683), following the authors' reference code.

For every parameter tensor ``p`` and every loss ``i`` that reaches it, with ``g_i = ∇_p L_i``:

    n_i ← ‖g_i‖ on the first step, then β₃ n_i + (1 − β₃) ‖g_i‖
    g_i ← ρ_i · (n_anchor / n_i) · g_i          (anchor: the first loss with n > 1e-10)
    m_i ← β₁ m_i + (1 − β₁) g_i,    v_i ← β₂ v_i + (1 − β₂) g_i²      (own moments per loss)
    p   ← p − lr · Σ_i [m_i / (1 − β₁^t)] / max_j (√(v_j / (1 − β₂^t)) + ε)

i.e. each loss's gradient is rescaled, per tensor, to the running norm of the first loss that
reaches it, and the per-loss Adam steps share the largest denominator. ``ρ`` are optional
per-loss ranks (weights, default 1). ``weight_decay`` adds ``λ p`` to each rescaled gradient.

How it fits the protocol: MTAdam *is* an optimizer, so the method declares
:data:`~scalarize.methods.base.OWN_OPTIMIZER`. Its :meth:`backward` computes the per-task
gradients of every shared and task-specific tensor (``context.shared_jacobian()`` and
``context.task_gradients()``), runs the rule above and writes
``Σ_i m̂_i / max_j denom_j`` into ``.grad``; :meth:`build_optimizer` returns plain
``torch.optim.SGD(params, lr)``, whose step ``p ← p − lr · grad`` is then exactly MTAdam's. A
head's tensor is reached by one loss only, where MTAdam reduces to Adam. The per-tensor state
(step, norms, moments) is sized on the first step and kept as extra state in ``state_dict``.

Hyperparameters: ``betas`` (β₁, β₂, β₃) default (0.9, 0.999, 0.9), ``eps`` 1e-8,
``weight_decay`` 0, ``weights`` (ranks ρ, default all 1). The learning rate is the trainer's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scalarize.methods._common import check_real, same_device
from scalarize.methods.base import (
    LOSSES,
    OWN_OPTIMIZER,
    SHARED_GRADIENTS,
    Method,
    MethodError,
    Setting,
    check_weights,
    defined,
)
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

_TINY_NORM = 1e-10


def _clone(slot: dict[str, Any] | None) -> dict[str, Any] | None:
    if slot is None:
        return None
    return {k: v.clone() if isinstance(v, Tensor) else v for k, v in slot.items()}


@register
class MTAdam(Method):
    """Adam with per-loss moments and per-tensor gradient-norm balancing."""

    name = "mtadam"
    needs = frozenset({LOSSES, SHARED_GRADIENTS, OWN_OPTIMIZER})

    def __init__(
        self,
        betas: Sequence[float] = (0.9, 0.999, 0.9),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(betas, Sequence) or len(betas) != 3:
            raise MethodError(f"method mtadam: betas must be three numbers, got {betas!r}")
        self.betas = tuple(
            check_real(self.name, f"betas[{k}]", b, low=0, high=1, high_open=True) for k, b in enumerate(betas)
        )
        self.eps = check_real(self.name, "eps", eps, low=0)
        self.weight_decay = check_real(self.name, "weight_decay", weight_decay, low=0)
        if weights is not None and not isinstance(weights, Sequence):
            raise MethodError(f"method mtadam: weights must be a list of numbers, got {weights!r}")
        self._requested = None if weights is None else list(weights)
        self.register_buffer("ranks", torch.ones(0))
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)
        self.slots: list[dict[str, Any] | None] | None = None  # per parameter tensor

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            raw = [1.0] * self.num_tasks if self._requested is None else self._requested
            self.ranks = check_weights(raw, self.num_tasks, key="method mtadam: weights")

    def build_optimizer(self, params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr)

    def backward(self, context: StepContext) -> None:
        jacobian = context.shared_jacobian().detach()
        task_grads = context.task_gradients()
        entries: list[tuple[Tensor, list[int], list[Tensor]]] = []
        offset = 0
        for p in context.shared_params:
            rows = jacobian[:, offset : offset + p.numel()]
            offset += p.numel()
            entries.append((p, list(range(rows.shape[0])), [r.view_as(p) for r in rows]))
        for i, (params, own) in enumerate(zip(context.task_params, task_grads)):
            for head_param, g in zip(params, own):
                if g is not None:
                    entries.append((head_param, [i], [g.detach()]))
        if self.slots is None or len(self.slots) != len(entries):
            self.slots = [None] * len(entries)
        shared_scales = []
        for k, (param, tasks, rows_of_tasks) in enumerate(entries):
            direction, scales = self._direction(k, param, tasks, torch.stack(rows_of_tasks))
            param.grad = direction.to(param.dtype) if param.grad is None else param.grad + direction
            if k < len(context.shared_params):
                shared_scales.append(scales)
        if shared_scales:
            self.last_weights = torch.stack(shared_scales).mean(dim=0).to(jacobian.dtype)

    def _direction(self, k: int, p: Tensor, tasks: list[int], g: Tensor) -> tuple[Tensor, Tensor]:
        beta1, beta2, beta3 = self.betas
        assert self.slots is not None  # sized by backward
        slot = self.slots[k]
        if slot is None or slot["exp_avg"].shape != g.shape:
            slot = {
                "step": 0,
                "norms": torch.zeros(len(tasks), dtype=g.dtype, device=g.device),
                "exp_avg": torch.zeros_like(g),
                "exp_avg_sq": torch.zeros_like(g),
            }
            self.slots[k] = slot
        slot["step"] += 1
        step = slot["step"]
        norms = g.flatten(1).norm(dim=1)
        n = norms if step == 1 else beta3 * slot["norms"] + (1 - beta3) * norms
        slot["norms"] = n
        reached = n > _TINY_NORM
        anchor = n[reached.to(torch.uint8).argmax()]  # first loss that reaches p (no host sync)
        ranks = self.ranks.to(n)[tasks]
        scales = torch.where(reached, ranks * anchor / n.clamp(min=_TINY_NORM), torch.ones_like(n))
        g = g * scales.view(-1, *([1] * (g.dim() - 1)))
        if self.weight_decay:
            g = g + self.weight_decay * p.detach().unsqueeze(0)
        slot["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
        slot["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (slot["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2**step)).add_(self.eps)
        direction = slot["exp_avg"].sum(dim=0) / (1 - beta1**step) / denom.max(dim=0).values
        full = torch.ones(self.num_tasks, dtype=n.dtype, device=n.device)
        full[tasks] = scales
        return direction, full

    def get_extra_state(self) -> dict[str, Any]:
        return {"slots": self.slots}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        slots = state["slots"]
        self.slots = None if slots is None else [_clone(slot) for slot in slots]

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)
