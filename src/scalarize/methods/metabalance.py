"""MetaBalance: adapting the gradient magnitudes of auxiliary tasks.

He et al., "MetaBalance: Improving Multi-Task Recommendations via
Adapting Gradient Magnitudes of Auxiliary Tasks", WWW 2022 (Algorithm 1).

One task is the target (main) task; the others are auxiliary. Separately for every shared
parameter tensor ``k``, keep moving averages of each task's gradient norm,

    m_i^k ← β m_i^k + (1 − β) ‖g_i^k‖      (starting at 0),

and rescale each auxiliary gradient toward the target's magnitude, relaxed by ``r``:

    g_a^k ← r · (m_target^k / m_a^k) · g_a^k + (1 − r) · g_a^k

The update is ``g_target + Σ_a g_a`` (per tensor), handed to the trainer's optimizer (the paper
uses Adam). ``r = 1`` makes every auxiliary gradient as large as the target's, ``r = 0`` leaves
them unchanged. A tensor that an auxiliary task does not reach is left alone. Task-specific
parameters get their own gradients. :meth:`current_weights` reports each task's scale averaged
over the shared tensors.

Hyperparameters: ``main_task`` (a task name; ``None``: the first task), ``relax_factor`` ``r``
in [0, 1] (default 0.7), ``beta`` in [0, 1) (default 0.9).

Fits the protocol as a gradient method that works per shared tensor: :meth:`backward` reads the
tensors' sizes from ``context.shared_params`` before the aggregation splits the ``[T, n]``
Jacobian. The moving averages, one ``[T, K]`` tensor for ``K`` shared tensors, are sized on the
first step and kept as extra state in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from scalarize.methods._common import WeightedGradientMethod, check_real, task_index
from scalarize.methods.base import MethodError, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


@register
class MetaBalance(WeightedGradientMethod):
    """Per-tensor rescaling of auxiliary gradients toward the target task's norm."""

    name = "metabalance"

    def __init__(self, main_task: str | None = None, relax_factor: float = 0.7, beta: float = 0.9) -> None:
        super().__init__()
        if main_task is not None and not isinstance(main_task, str):
            raise MethodError(f"method {self.name}: main_task must be a task name, got {main_task!r}")
        self.main_task = main_task
        self.relax_factor = check_real(self.name, "relax_factor", relax_factor, low=0, high=1)
        self.beta = check_real(self.name, "beta", beta, low=0, high=1, high_open=True)
        self.main_index = 0
        self.sizes: list[int] | None = None
        self.norm_averages: Tensor | None = None  # [T, K]

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        super().setup(task_names, setting)
        self.main_index = task_index(self.name, "main_task", self.main_task, self.task_names)

    def backward(self, context: StepContext) -> None:
        self.sizes = [p.numel() for p in context.shared_params]
        super().backward(context)

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        g = gradients.detach()
        sizes = self.sizes if self.sizes is not None else [g.shape[1]]
        chunks = torch.split(g, sizes, dim=1)
        norms = torch.stack([c.norm(dim=1) for c in chunks], dim=1)  # [T, K]
        if self.norm_averages is None or self.norm_averages.shape != norms.shape:
            self.norm_averages = torch.zeros_like(norms)
        m = self.norm_averages.to(norms)
        m = self.beta * m + (1 - self.beta) * norms
        self.norm_averages = m
        ratio = torch.where(m > 0, m[self.main_index] / m.clamp(min=1e-30), torch.ones_like(m))
        scale = self.relax_factor * ratio + (1 - self.relax_factor)
        scale[self.main_index] = 1.0
        self.last_weights = scale.mean(dim=1)
        return torch.cat([s @ c for s, c in zip(scale.T, chunks)])

    def get_extra_state(self) -> dict[str, Any]:
        return {"norm_averages": self.norm_averages}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        averages = state["norm_averages"]
        self.norm_averages = None if averages is None else averages.clone()
