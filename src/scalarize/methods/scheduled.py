"""Scalarization whose weights follow a schedule over training steps.

The output of population-based training is a *schedule* of weights (Royer et al. 2023): replaying
it trains one model from scratch with ``w(t)`` the last schedule entry at or before step ``t``
(as Ray Tune's ``PopulationBasedTrainingReplay`` does). MTL: ``L = sum_i w_i(t) L_i``; MDL:
``w(t)`` is the domain mixture of the batches drawn at step ``t``.

Hyperparameters: ``schedule`` (required): ``[(step, weights), ...]`` sorted by step, the first at
step 0, each weights vector as for ``scalarization``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from scalarize.methods.base import AFTER_STEP, LOSSES, MethodError, Setting, check_weights
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register
from scalarize.methods.scalarization import Scalarization


@register
class ScheduledScalarization(Scalarization):
    """``schedule``: ``[(step, weights), ...]`` sorted by step, the first at step 0."""

    name = "scheduled_scalarization"
    needs = frozenset({LOSSES, AFTER_STEP})
    promises = frozenset()  # its weights are given, by position: no symmetry

    def __init__(self, schedule: Sequence[tuple[int, Sequence[float]]]) -> None:
        if not schedule:
            raise MethodError("method scheduled_scalarization: schedule must not be empty")
        steps = [int(step) for step, _ in schedule]
        if steps[0] != 0 or steps != sorted(steps):
            raise MethodError("method scheduled_scalarization: schedule steps must start at 0 and increase")
        super().__init__(schedule[0][1])
        self.steps = steps
        self.values = [list(map(float, weights)) for _, weights in schedule]

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        super().setup(task_names, setting)
        for values in self.values:
            check_weights(values, self.num_tasks, key="schedule weights")

    def weights_at(self, step: int) -> torch.Tensor:
        values = self.values[bisect.bisect_right(self.steps, step) - 1]
        w = torch.tensor(values)
        return w / w.sum()

    def backward(self, context: StepContext) -> None:
        self.weights.copy_(self.weights_at(context.step))
        super().backward(context)

    def after_step(self, context: StepContext) -> None:
        # the mixture of the next batches (MDL) follows the schedule too
        self.weights.copy_(self.weights_at(context.step + 1))
