"""Gradient similarity for auxiliary tasks.

Du, Czarnecki, Jayakumar, Farajtabar, Pascanu & Lakshminarayanan, "Adapting Auxiliary Losses
Using Gradient Similarity", 2018 (arXiv:1812.02224).

One task is the main task ``m``; the others are auxiliary. Each auxiliary gradient on the shared
parameters is used only as far as it agrees with the main task's:

    d = g_m + Σ_{a ≠ m} max(0, cos(g_m, g_a)) · g_a        (mode="weighted")
    d = g_m + Σ_{a ≠ m} [cos(g_m, g_a) > 0] · g_a          (mode="binary", the paper's
                                                             "unweighted" variant)

so an auxiliary gradient that conflicts with the main one (negative cosine) is dropped. The
coefficients (1 for the main task) are what :meth:`current_weights` reports. Every task's head
gets its own gradient.

Hyperparameters: ``main_task`` (a task name; default ``None``: the first task), ``mode``
("weighted" | "binary", default "weighted").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import WeightedGradientMethod, check_choice, task_index
from scalarize.methods.base import MethodError, Setting
from scalarize.methods.registry import register


@register
class GradientSimilarity(WeightedGradientMethod):
    """Add auxiliary gradients only where they point the same way as the main task's."""

    name = "gradient_similarity"

    def __init__(self, main_task: str | None = None, mode: str = "weighted") -> None:
        super().__init__()
        if main_task is not None and not isinstance(main_task, str):
            raise MethodError(f"method {self.name}: main_task must be a task name, got {main_task!r}")
        self.main_task = main_task
        self.mode = check_choice(self.name, "mode", mode, ("weighted", "binary"))
        self.main_index = 0

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        super().setup(task_names, setting)
        self.main_index = task_index(self.name, "main_task", self.main_task, self.task_names)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        g = gradients.detach()
        main = g[self.main_index]
        cos = torch.nn.functional.cosine_similarity(g, main.unsqueeze(0), dim=1, eps=1e-12)
        w = cos.clamp(min=0) if self.mode == "weighted" else (cos > 0).to(g.dtype)
        w[self.main_index] = 1.0
        return w
