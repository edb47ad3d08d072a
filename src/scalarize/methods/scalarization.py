"""Linear scalarization: minimise a weighted sum of the task losses.

Royer et al., "Scalarization for Multi-Task and Multi-Domain Learning at Scale", NeurIPS 2023.

* MTL: ``L = sum_i w_i L_i`` with ``w`` on the simplex (uniform ``w_i = 1/T`` by default).
* MDL: ``w`` is the sampling distribution over domains: each batch is drawn from the mixture
  ``w`` and the loss is the plain mean over the batch, i.e. ``sum_d (n_d / B) L_d`` where ``n_d``
  samples of the batch came from domain ``d``.

Every minimiser of a positively weighted sum is Pareto-optimal; sweeping ``w`` traces the convex
part of the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from scalarize.methods.base import Method, check_weights


class Scalarization(Method):
    """Fixed weights (normalised to sum to one); ``weights=None`` means uniform."""

    name = "scalarization"

    def __init__(self, weights: Sequence[float] | Tensor | None = None) -> None:
        super().__init__()
        self._requested = None if weights is None else torch.as_tensor(weights).tolist()
        self.register_buffer("weights", torch.ones(0))
        self.register_buffer("batch_fractions", torch.ones(0))

    def setup(self, task_names, setting="mtl") -> None:
        super().setup(task_names, setting)
        raw = [1.0] * self.num_tasks if self._requested is None else self._requested
        w = check_weights(raw, self.num_tasks)
        self.weights = w / w.sum()
        self.batch_fractions = self.weights.clone()

    def set_weights(self, weights: Sequence[float] | Tensor) -> None:
        """Changes the weights in place (population-based training explores them)."""
        w = check_weights(weights, self.num_tasks)
        self.weights.copy_(w / w.sum())

    def set_batch_fractions(self, fractions: Tensor) -> None:
        """MDL: the share of the current batch drawn from each domain (set by the trainer)."""
        self.batch_fractions = fractions.to(self.weights)

    def combine(self, losses: Tensor) -> Tensor:
        coefficients = self.batch_fractions if self.setting == "mdl" else self.weights
        return (coefficients.to(losses.dtype) * losses).sum()

    def sampling_weights(self) -> Tensor | None:
        return self.weights if self.setting == "mdl" else None

    def current_weights(self) -> Tensor:
        return self.weights
