"""Linear scalarization: minimise a weighted sum of the task losses.

Royer et al., "Scalarization for Multi-Task and Multi-Domain Learning at Scale", NeurIPS 2023.

* MTL: ``L = sum_i w_i L_i`` with ``w`` on the simplex (uniform ``w_i = 1/T`` by default).
* MDL: ``w`` is the sampling distribution over domains: each batch is drawn from the mixture
  ``w`` and the loss is the plain mean over the batch, i.e. ``sum_d (n_d / B) L_d`` where ``n_d``
  samples of the batch came from domain ``d``.

Every minimiser of a positively weighted sum is Pareto-optimal; sweeping ``w`` traces the convex
part of the front.

Hyperparameters: ``weights`` (one non-negative number per task, normalised to sum to one;
default None: uniform).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods._common import same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, Method, Setting, normalize_weights
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


@register
class Scalarization(Method):
    """Fixed weights (normalised to sum to one); ``weights=None`` means uniform."""

    name = "scalarization"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, weights: Sequence[float] | Tensor | None = None) -> None:
        super().__init__()
        self._requested = None if weights is None else torch.as_tensor(weights, dtype=torch.float64).tolist()
        self.register_buffer("weights", torch.ones(0))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):  # the trainer may have moved the method to its device already
            super().setup(task_names, setting)
            raw = [1.0] * self.num_tasks if self._requested is None else self._requested
            self.weights = normalize_weights(raw, self.num_tasks)

    def set_weights(self, weights: Sequence[float] | Tensor) -> None:
        """Changes the weights in place (population-based training explores them)."""
        self.weights.copy_(normalize_weights(weights, self.num_tasks))

    def combine(self, losses: Tensor) -> Tensor:
        self.step_dtype = losses.dtype
        return (self.weights.to(losses.dtype) * losses).sum()

    def backward(self, context: StepContext) -> None:
        # MDL: the batch was drawn from the mixture `weights`; its plain mean weighs each
        # domain's mean loss by the share of the batch it supplied.
        fractions = context.batch_fractions if self.setting == "mdl" else None
        if fractions is None:
            context.backward(self.combine(context.losses))
        else:
            self.step_dtype = context.losses.dtype
            context.backward((fractions.to(context.losses) * context.losses).sum())

    def sampling_weights(self) -> Tensor | None:
        return self.weights if self.setting == "mdl" else None

    def current_weights(self) -> Tensor | None:
        return self.reported(self.weights)

    def objective_weights(self) -> Tensor:
        return self.weights
