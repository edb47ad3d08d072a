"""The ``batched`` engine: one ``torch.autograd.grad`` over all tasks with ``is_grads_batched``.

The T backward passes are vectorised with ``vmap``: fewer, larger kernels (the faster on a GPU,
and on a CPU for dense trunks), at the memory of T passes at once. It cannot differentiate
through a compiled model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from scalarize.methods.gradients.engine import GradientEngine, Own, Rows, TaskLosses


class BatchedEngine(GradientEngine):
    """The T backward passes as one vectorised pass."""

    name = "batched"

    def options(self) -> dict[str, Any]:
        return {**super().options(), "is_grads_batched": True}

    def task_gradients(
        self,
        losses: TaskLosses,
        inputs: Sequence[Tensor],
        own: Sequence[Sequence[Tensor]] = (),
    ) -> tuple[Rows, Own]:
        mine = [list(own[i]) if i < len(own) else [] for i in range(losses.num_tasks)]
        outputs, seeds = losses.all()
        grads = self.autograd(
            outputs, [*inputs, *(p for params in mine for p in params)], grad_outputs=seeds, **self.options()
        )
        shared = len(inputs)
        task_grads, offset = [], shared
        for i, params in enumerate(mine):
            task_grads.append(tuple(None if g is None else g[i] for g in grads[offset : offset + len(params)]))
            offset += len(params)
        return tuple(grads[:shared]), task_grads

    def products(self, output: Tensor, inputs: Sequence[Tensor], cotangents: Tensor) -> Rows:
        return self.autograd(output, list(inputs), grad_outputs=cotangents, **self.options())
