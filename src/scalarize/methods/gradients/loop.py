"""The ``loop`` engine: one ``torch.autograd.grad`` per task.

The lightest in memory (one task's gradients at a time) and, on a CPU, the faster for
convolutional trunks (``benchmarks/methods_scaling.py``, its ``engines`` section).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from scalarize.methods.gradients.engine import (
    GradientEngine,
    Own,
    Rows,
    TaskLosses,
    stack_rows,
)


class LoopEngine(GradientEngine):
    """T backward passes, one after the other."""

    name = "loop"

    def task_gradients(
        self,
        losses: TaskLosses,
        inputs: Sequence[Tensor],
        own: Sequence[Sequence[Tensor]] = (),
    ) -> tuple[Rows, Own]:
        shared = len(inputs)
        per_task, task_grads = [], []
        for i in range(losses.num_tasks):
            output, seed = losses.one(i)
            mine = list(own[i]) if i < len(own) else []
            grads = self.autograd(output, [*inputs, *mine], grad_outputs=seed, **self.options())
            per_task.append(grads[:shared])
            task_grads.append(tuple(grads[shared:]))
        return stack_rows(per_task, inputs), task_grads

    def products(self, output: Tensor, inputs: Sequence[Tensor], cotangents: Tensor) -> Rows:
        per_task = [self.autograd(output, list(inputs), grad_outputs=g, **self.options()) for g in cotangents]
        return stack_rows(per_task, inputs)
